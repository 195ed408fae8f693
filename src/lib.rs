//! Tessera: a data-oriented ledger node you can run, simulate and attack.
//!
//! The `tessera` binary is a thin command line over this library: the node runtime
//! ([`node`]), its storage ([`storage`]), the simulator ([`sim`]), the load generator
//! ([`load`]), the benchmark suites ([`bench`]) and the command implementations ([`cli`]).
//! Fuzz targets and benchmarks link it too.

pub mod attack;
pub mod bench;
pub mod cli;
pub mod driver;
pub mod load;
pub mod node;
pub mod sim;
pub mod storage;

/// Bad input from the user (a malformed file, say): reported with exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);
