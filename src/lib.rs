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
pub mod forward;
pub mod load;
pub mod node;
pub mod plot;
pub mod sim;
pub mod storage;

/// Bad input from the user (a malformed file, say): reported with exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// The exit status for a command that failed with `error`: 2 for bad input (usage, or a file
/// named on the command line or in a config that is missing, unreadable or malformed:
/// [`InputError`], [`node::config::ConfigError`], [`node::genesis::GenesisError`]), 1 for a run
/// that failed (a damaged data directory, a port in use, a network that did not agree). Clap's
/// usage errors exit 2 too, so every command keeps one code for input.
pub fn exit_code(error: &(dyn std::error::Error + 'static)) -> u8 {
    let input = error.is::<InputError>()
        || error.is::<node::config::ConfigError>()
        || error.is::<node::genesis::GenesisError>();
    if input { 2 } else { 1 }
}
