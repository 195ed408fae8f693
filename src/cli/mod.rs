//! Subcommands that are not benchmarks.

pub mod genesis;
pub mod keygen;
pub mod sigverify;
