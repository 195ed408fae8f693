//! `tessera loadgen`: open-loop load against any node, with HDR latency percentiles.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tessera_systems::workload::signing_key;

use crate::InputError;
use crate::load::{Accounts, Live, RpcClient, Via, presign, run_phase};
use crate::node::genesis::Genesis;

/// Arguments of `tessera loadgen`.
#[derive(Debug, Args)]
pub struct LoadgenArgs {
    /// Where to send: the node's ingress address (host:port) with `--via ingress`, its JSON-RPC
    /// address (host:port or http://host:port) with `--via rpc`.
    #[arg(long)]
    pub target: String,
    /// Offered load, transactions per second (positive).
    #[arg(long, allow_negative_numbers = true, value_parser = super::positive_rate)]
    pub rate: f64,
    /// Seconds of load.
    #[arg(long)]
    pub duration: u64,
    /// How transactions are sent.
    #[arg(long, value_enum, default_value_t = Via::Ingress)]
    pub via: Via,
    /// The node's JSON-RPC address, polled for finalized blocks (default: the target with
    /// `--via rpc`; required with `--via ingress`).
    #[arg(long)]
    pub rpc: Option<String>,
    /// The network's genesis: chain id and the funded load accounts' seed.
    #[arg(long, value_name = "FILE")]
    pub genesis: PathBuf,
    /// Also write the report as JSON here.
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<PathBuf>,
}

fn url(address: &str) -> String {
    if address.starts_with("http://") { address.to_owned() } else { format!("http://{address}") }
}

/// Runs the load.
///
/// # Errors
/// Bad arguments (exit 2), an unusable genesis, or a node that cannot be reached.
pub fn run(args: &LoadgenArgs) -> Result<(), Box<dyn std::error::Error>> {
    crate::load::check_run(Some(args.rate), args.duration).map_err(InputError)?;
    let genesis = Genesis::load(&args.genesis)?;
    let Some(load_seed) = genesis.load_seed else {
        return Err(InputError(format!(
            "{} names no load_seed: no funded load accounts",
            args.genesis.display()
        ))
        .into());
    };
    let total = (args.rate * args.duration as f64) as usize;
    // Round-robin: no more senders than transfers (each costs a nonce lookup below).
    // The genesis's last few load accounts are left to `tessera attack` (`attack_spenders`).
    let count = genesis.load_signers().min(total.max(1) as u64);
    if count == 0 {
        return Err(InputError("the genesis funds no load accounts".into()).into());
    }
    let tracker_url = match (&args.rpc, args.via) {
        (Some(rpc), _) => url(rpc),
        (None, Via::Rpc) => url(&args.target),
        (None, Via::Ingress) => {
            return Err(InputError("--via ingress needs --rpc to follow finalization".into()).into());
        }
    };
    let tracker = RpcClient::new(&tracker_url);
    let ingress: Vec<SocketAddr> = match args.via {
        Via::Ingress => args
            .target
            .to_socket_addrs()
            .map_err(|error| InputError(format!("--target {}: {error}", args.target)))?
            .take(1)
            .collect(),
        Via::Rpc => Vec::new(),
    };
    let rpc = vec![RpcClient::new(&url(&args.target))];
    // Continue from the accounts' current nonces, so a second run against the same node works.
    let mut nonces = Vec::with_capacity(count as usize);
    for i in 0..count {
        let address = hex::encode(signing_key(load_seed, i).verifying_key().to_bytes());
        let account = tracker.call("tessera_getAccount", json!([address]))?;
        nonces.push(account["nonce"].as_u64().unwrap_or(0));
    }
    eprintln!("signing {total} transfers from {count} accounts…");
    let txns = presign(
        Accounts { chain_id: genesis.chain_id, load_seed, count, filler: genesis.filler_accounts },
        total,
        &mut nonces,
        1,
    );
    let live = Live::default();
    let phase =
        run_phase(&txns, args.rate, args.via, &ingress, &rpc, &tracker, &[], Duration::from_secs(10), &live)?;
    let report = json!({
        "target": args.target,
        "via": format!("{:?}", args.via).to_lowercase(),
        "rate": args.rate,
        "duration_s": phase.duration_s,
        "submitted": phase.submitted,
        "committed": phase.committed,
        "finalized_tps": phase.finalized_tps.round(),
        "latency_ms": phase.latency_json(),
        "blocks_pushed": phase.blocks_pushed,
        "blocks_fetched": phase.blocks_fetched,
    });
    println!(
        "submitted {} committed {} finalized_tps {:.0} latency_ms p50 {} p99 {} p999 {} max {}",
        phase.submitted,
        phase.committed,
        phase.finalized_tps,
        report["latency_ms"]["p50"],
        report["latency_ms"]["p99"],
        report["latency_ms"]["p999"],
        report["latency_ms"]["max"]
    );
    if let Some(path) = &args.report_json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    Ok(())
}
