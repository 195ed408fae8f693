//! `tessera`: the command line around the node's schedule.

mod bench;
mod cli;
#[allow(dead_code, reason = "the cluster harness grows into `tessera sim`; tests drive it today")]
mod sim;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tessera: a data-oriented ledger node you can run, simulate and attack.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate an Ed25519 key pair and write it as a key file.
    Keygen(cli::keygen::KeygenArgs),
    /// Check Ed25519 signatures by hand under the node's accept rule (ZIP-215).
    Sigverify(cli::sigverify::SigverifyArgs),
    /// Run a benchmark suite and print its figures.
    Bench(bench::BenchArgs),
}

/// Bad input from the user (a malformed file, say): reported with exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(args) => cli::keygen::run(&args),
        Command::Sigverify(args) => cli::sigverify::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            if error.is::<InputError>() { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}
