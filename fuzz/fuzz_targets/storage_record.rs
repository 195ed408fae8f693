#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_components::fuzz::fuzz_record_decode(data));
