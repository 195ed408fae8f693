#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera::node::config::fuzz_config(data));
