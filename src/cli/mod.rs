//! Subcommands that are not benchmarks.

pub mod keygen;
