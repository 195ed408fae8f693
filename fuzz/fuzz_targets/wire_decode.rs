#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_components::wire::fuzz_decode(data));
