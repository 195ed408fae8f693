#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_components::block::fuzz_block(data));
