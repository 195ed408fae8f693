//! Subcommands that are not benchmarks.

pub mod attack;
pub mod devnet;
pub mod doctor;
pub mod drill;
pub mod genesis;
pub mod inspect;
pub mod keygen;
pub mod loadgen;
pub mod sigverify;
pub mod sim;
