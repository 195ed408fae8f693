#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera::node::rpc::fuzz_body(data));
