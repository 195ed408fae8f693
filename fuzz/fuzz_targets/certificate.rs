#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_systems::consensus::fuzz::fuzz_certificate(data));
