//! Pure kernels: no `bevy_ecs` here. Systems call these; benches and fuzzers call them
//! directly.

pub mod keyed_hash8;
pub mod prefetch;
pub mod prefilter;
pub mod sigverify;
pub mod verify_cache;
