//! `tessera`: the command line around the node's schedule.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera::{InputError, bench, cli, node};

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
    /// Start a local multi-validator network of real node processes, drive open-loop load at
    /// it, show progress, and print a report.
    Devnet(cli::devnet::DevnetArgs),
    /// Open-loop load against a running node, with latency percentiles.
    Loadgen(cli::loadgen::LoadgenArgs),
    /// Check this machine and a node config for production readiness (pass/warn/fail per check).
    Doctor(cli::doctor::DoctorArgs),
    /// Run a validator node: peer network, client ingress, JSON-RPC and metrics.
    Node(NodeArgs),
    /// Write a genesis file, a key file per validator and a node config per validator.
    Genesis(cli::genesis::GenesisArgs),
    /// Check Ed25519 signatures by hand under the node's accept rule (ZIP-215).
    Sigverify(cli::sigverify::SigverifyArgs),
    /// Verify a node's data directory without writing to it.
    ///
    /// Checks every checksum in every file, every block's certificate and parent link, and the
    /// state snapshot, then replays the blocks after it. Prints `height <H>` and
    /// `state_root <hex>` for the last committed block. Exits 0 when the directory is sound (a
    /// torn final write, which the node drops at its next start, is reported but sound), and
    /// non-zero naming the file and byte offset of the first problem otherwise.
    Inspect(cli::inspect::InspectArgs),
    /// Run a benchmark suite and print its figures.
    Bench(bench::BenchArgs),
    /// Commit deterministic blocks to a data directory, printing each durable commit (crash
    /// drills and tests).
    #[command(hide = true)]
    StorageDrill(cli::drill::DrillArgs),
}

/// Arguments of `tessera node`.
#[derive(Debug, clap::Args)]
struct NodeArgs {
    /// The node's TOML configuration (see docs/operations.md; `tessera genesis` writes one per
    /// validator).
    #[arg(long, value_name = "FILE")]
    config: std::path::PathBuf,
}

/// Structured logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(args) => cli::keygen::run(&args),
        Command::Sigverify(args) => cli::sigverify::run(&args),
        Command::Node(args) => {
            init_logging();
            node::run(&args.config)
        }
        Command::Genesis(args) => cli::genesis::run(&args),
        Command::Devnet(args) => cli::devnet::run(&args),
        Command::Loadgen(args) => cli::loadgen::run(&args),
        Command::Doctor(args) => cli::doctor::run(&args),
        Command::Inspect(args) => cli::inspect::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::StorageDrill(args) => cli::drill::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            if error.is::<InputError>() { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}
