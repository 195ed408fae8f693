#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_systems::prefilter::fuzz_txn_body(data));
