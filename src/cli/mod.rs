//! Subcommands that are not benchmarks.

pub mod drill;
pub mod inspect;
pub mod keygen;
pub mod sigverify;
