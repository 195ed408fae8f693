//! Subcommands that are not benchmarks.

pub mod keygen;
pub mod sigverify;
