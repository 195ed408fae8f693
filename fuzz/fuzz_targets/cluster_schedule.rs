#![no_main]
//! A four-validator cluster's fault schedule (`tessera_systems::consensus::cluster`). With
//! `TESSERA_PLANTED_AMNESIA` set, restarts forget their safety state: the checker's self-test,
//! which must crash.
use std::sync::OnceLock;

use tessera_systems::consensus::cluster::{fuzz_cluster_schedule, fuzz_cluster_schedule_amnesia};

fn planted() -> bool {
    static PLANTED: OnceLock<bool> = OnceLock::new();
    *PLANTED.get_or_init(|| std::env::var_os("TESSERA_PLANTED_AMNESIA").is_some())
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if planted() { fuzz_cluster_schedule_amnesia(data) } else { fuzz_cluster_schedule(data) }
});
