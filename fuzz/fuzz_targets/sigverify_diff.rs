#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_systems::kernels::sigverify::fuzz_differential(data));
