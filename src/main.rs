//! `tessera`: the command line around the node's schedule.

mod bench;
mod cli;

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
    /// Run a benchmark suite and print its figures.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(args) => cli::keygen::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
