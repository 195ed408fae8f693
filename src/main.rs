//! `tessera`: the command line around the node's schedule.

use std::process::ExitCode;

#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

use clap::{Parser, Subcommand};
use tessera::{bench, cli, exit_code, node};

/// Tessera: a data-oriented ledger node you can run, simulate and attack.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, long_about = None)]
struct Cli {
    /// Log lines as text (colour only on a terminal, and never with NO_COLOR set) or as one
    /// JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
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
    /// Simulate many nodes in one process over a simulated network in virtual time: a scenario
    /// file in, a deterministic report.json and plots out; `--swarm --seeds A..B` checks the
    /// invariants over a random scenario per seed.
    Sim(cli::sim::SimArgs),
    /// Hostile traffic against a live node's peer, ingress and RPC ports, with a report of what
    /// was sent and what the node did (`--help` lists the kinds).
    Attack(cli::attack::AttackArgs),
    /// Run a benchmark suite and print its figures.
    Bench(bench::BenchArgs),
    /// Check an account proof from `tessera_getAccount` against a state root, offline.
    VerifyProof(cli::verify_proof::VerifyProofArgs),
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

/// Structured logs to stderr, filtered by `RUST_LOG` (default `info`): text, coloured only
/// when stderr is a terminal and `NO_COLOR` is unset (a log file gets plain text), or JSON.
fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).try_init()
        }
    };
}

fn main() -> ExitCode {
    #[cfg(feature = "dhat-heap")]
    let _profiler = dhat::Profiler::new_heap();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(args) => cli::keygen::run(&args),
        Command::Sigverify(args) => cli::sigverify::run(&args),
        Command::Node(args) => {
            init_logging(cli.log_format);
            node::run(&args.config)
        }
        Command::Genesis(args) => cli::genesis::run(&args),
        Command::Devnet(args) => cli::devnet::run(&args),
        Command::Loadgen(args) => cli::loadgen::run(&args),
        Command::Doctor(args) => cli::doctor::run(&args),
        Command::Inspect(args) => cli::inspect::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Sim(args) => cli::sim::run(&args),
        Command::Attack(args) => cli::attack::run(&args),
        Command::StorageDrill(args) => cli::drill::run(&args),
        Command::VerifyProof(args) => cli::verify_proof::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(exit_code(error.as_ref()))
        }
    }
}
