#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_components::storage::fuzz_record_decode(data));
