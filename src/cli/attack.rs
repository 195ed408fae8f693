//! `tessera attack`: hostile traffic against a live node's peer, ingress and JSON-RPC ports,
//! and a report of what was sent and what the node did.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::attack::{Kind, Limits, Target};

/// Arguments of `tessera attack`.
#[derive(Debug, Args)]
#[command(after_long_help = KINDS_HELP)]
pub struct AttackArgs {
    /// The node's peer port (a devnet prints it as `peer ADDR`).
    #[arg(long, value_name = "ADDR")]
    pub peer: Option<String>,
    /// The node's client ingress port (`ingress ADDR`).
    #[arg(long, value_name = "ADDR")]
    pub ingress: Option<String>,
    /// The node's JSON-RPC URL (`rpc http://ADDR`).
    #[arg(long, value_name = "URL")]
    pub rpc: Option<String>,
    /// The node's metrics URL (`metrics http://ADDR/metrics`), scraped before and after each
    /// kind to report what the node counted. Default: the port after the RPC port, as `tessera
    /// genesis` lays ports out.
    #[arg(long, value_name = "URL")]
    pub metrics: Option<String>,
    /// Seconds of attack in all (split between the kinds unless --concurrent).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Kinds to run (repeat or comma-separate); default: every kind the given addresses (and
    /// key) allow. See the list below.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub kind: Vec<Kind>,
    /// Run every kind at once for the whole duration instead of one after another.
    #[arg(long)]
    pub concurrent: bool,
    /// Most connections one kind holds open at once.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// Most new connections one kind opens per second.
    #[arg(long, default_value_t = 200)]
    pub connect_rate: u32,
    /// Transactions per second of bad-signature spam, and consensus messages per second of a
    /// consensus flood.
    #[arg(long, default_value_t = 20_000)]
    pub rate: u32,
    /// Chain id used in handshakes and transactions.
    #[arg(long, default_value_t = 1)]
    pub chain_id: u32,
    /// A validator's key file: enables the consensus kinds, which act as that validator.
    #[arg(long, value_name = "FILE", requires = "validator_index")]
    pub key: Option<PathBuf>,
    /// The index of the validator whose key --key holds.
    #[arg(long, value_name = "INDEX")]
    pub validator_index: Option<u32>,
    /// Validators in the set (decides which views --validator-index leads).
    #[arg(long, default_value_t = 4)]
    pub validators: u32,
    /// The attacked node's validator index: every handshake names it as the other end.
    #[arg(long, default_value_t = 0)]
    pub node_index: u32,
    /// Another validator's peer port, for handshake-reflection.
    #[arg(long, value_name = "ADDR")]
    pub reflect_peer: Option<String>,
    /// That validator's index (default: the attacked node's index plus one).
    #[arg(long, value_name = "INDEX")]
    pub reflect_index: Option<u32>,
    /// The chain's genesis file: its funded accounts become bad-signature spam's senders, so
    /// the spam passes the cheap checks and reaches signature verification, and its last load
    /// accounts (which honest load leaves alone) nonce-variant spam's.
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Make every attack connection from this local address (for example 127.0.0.3), so the
    /// node sees the attacker as one address and honest clients on the same machine as others.
    /// The position reads of the Byzantine kinds and the metrics scrapes keep the default.
    #[arg(long, value_name = "IP")]
    pub source: Option<std::net::IpAddr>,
    /// Seed of the attacker's random bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

const KINDS_HELP: &str = "\
Kinds (each runs against the ports given that it can use):
  malformed-frames        peer, ingress: bad magic/version/kind/reserved bytes, payloads that do
                          not decode, non-canonical encodings, trailing bytes, kinds not allowed
                          on the port; on the peer port after a full node's handshake, so they
                          reach the penalty and ban path
  truncated-frames        peer, ingress: half a header, or a header promising more than arrives
  oversized-frames        peer, ingress: headers declaring frames over the maximum (up to 4 GiB)
  handshake-violations    peer: wrong chain, wrong version, unknown index, forged proof, proof
                          first, greeting twice, a transaction batch instead of a greeting
  handshake-reflection    peer, with --reflect-peer: claim to be that validator, fetch its
                          handshake proof as a full node, and present it; every attempt must be
                          refused (closed); one accepted shows as a completed handshake
  connection-flood        peer, ingress, rpc: connections as fast as --connect-rate allows, up to
                          --max-connections held at once
  slow-loris              peer, ingress, rpc: --max-connections connections, one byte a second
                          each of a request that never completes
  slow-reader             peer: a full node's handshake, then sync requests whose answers are
                          never read
  bad-signature-spam      ingress: --rate transactions a second, validly framed, each signature
                          well formed but wrong; with --genesis from funded senders (nonces via
                          --rpc), so each costs a verification, else from throwaway senders
  unfunded-fee-spam       ingress: --rate correctly signed transfers a second from keys that own
                          nothing, fees near 2^64; all must be refused for insufficient funds
                          before verification, and none may evict an honest transaction
  nonce-variant-spam      ingress, with --genesis: freshly signed transfers (at most 4,000 a
                          second) from the genesis's last 16 load accounts, which honest load
                          leaves alone: many variants for each sender's next two nonces, and
                          debits past its balance; the node may admit one per sender and nonce
                          and must refuse the rest before verifying them
  garbage-after-handshake peer: a full node's valid handshake, then random bytes
  follower-flood          peer: up to --max-connections full nodes' handshakes, each then silent
                          and held; the node must close them past its follower cap and when idle
  sync-amplification      peer: as a full node, sync requests from height 1 at --rate, each answer
                          read in full; reports bytes received per byte sent
  rpc-malformed           rpc: not JSON, not a request, unknown method, bad params, oversized and
                          all-bad batches, deep nesting, invalid UTF-8, GET, broken HTTP
  rpc-oversized           rpc: bodies over the limit, sent, only declared, and chunked
  ws-subscribers          rpc: WebSockets holding every subscription they may (1024 ids each),
                          never reading; every fourth sends a 2 MiB message; the node must drop
                          them and keep answering
With --key and --validator-index (and --rpc, to learn the node's height and view), acting as
that validator through the behaviour library the simulator uses:
  equivocation            two conflicting proposals for a view the validator leads
  double-vote             two conflicting prepare votes per view
  invalid-proposals       proposals with a bad signature, a wrong state root, over the block limit
  replay                  old genuine votes from finalized certificates, and its own earlier sends
  consensus-flood         validly signed votes, each many times over, at --rate
  old-view-proposals      distinct proposals for the last view the validator led that the node
                          has left (at most 500 a second); each must be dropped before any work
  sub-quorum-sync         sync responses of 64 made-up blocks, each certified by the validator's
                          own vote alone (at most 200 a second); each must be dropped before any
                          signature is checked
  forwarded-signature-spam
                          transaction batches at --rate over the validator's own link, every
                          signature forged (with --genesis from funded senders); the node must
                          refuse them on a spot check, not verify each one
  forwarded-diluted-forgeries
                          forwarded batches of one forgery among 255 good signatures, which pass
                          the spot check; the node must charge each forgery its pipeline finds
                          to the forwarder and ban it past the penalty threshold

The report gives, per kind: connections made and refused, frames, bytes, requests or
transactions sent, handshakes completed, connections the node closed and ones left open, HTTP
statuses and JSON-RPC error codes, and the node's counters (from its metrics) that moved.";

fn address(text: &str, what: &str) -> Result<SocketAddr, crate::InputError> {
    let bare = text.trim_start_matches("http://").split('/').next().unwrap_or(text);
    bare.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| crate::InputError(format!("--{what} {text}: not an address")))
}

/// Runs the attack and prints the report.
///
/// # Errors
/// Bad arguments, or a key file that cannot be read.
pub fn run(args: &AttackArgs) -> Result<(), Box<dyn std::error::Error>> {
    crate::load::check_run(None, args.duration).map_err(crate::InputError)?;
    let peer = args.peer.as_deref().map(|a| address(a, "peer")).transpose()?;
    let ingress = args.ingress.as_deref().map(|a| address(a, "ingress")).transpose()?;
    let rpc = args.rpc.as_deref().map(|a| address(a, "rpc")).transpose()?;
    let metrics = match &args.metrics {
        Some(url) => Some(address(url, "metrics")?),
        None => rpc.map(|rpc| SocketAddr::new(rpc.ip(), rpc.port().wrapping_add(1))),
    };
    if peer.is_none() && ingress.is_none() && rpc.is_none() {
        return Err(crate::InputError("give at least one of --peer, --ingress, --rpc".into()).into());
    }
    let validator = match (&args.key, args.validator_index) {
        (Some(path), Some(index)) => Some((index, crate::node::load_key(path).map_err(crate::InputError)?)),
        _ => None,
    };
    let genesis = args.genesis.as_deref().map(crate::node::genesis::Genesis::load).transpose()?;
    let target = Target {
        peer,
        ingress,
        rpc,
        metrics,
        chain_id: args.chain_id,
        validator,
        validators: args.validators,
        node_index: args.node_index,
        reflect: match &args.reflect_peer {
            Some(addr) => Some((
                address(addr, "reflect-peer")?,
                args.reflect_index.unwrap_or(args.node_index.wrapping_add(1) % args.validators.max(1)),
            )),
            None => None,
        },
        funded: genesis
            .as_ref()
            .map(|genesis| {
                genesis
                    .balances()
                    .into_iter()
                    .filter(|(_, balance)| *balance > 0)
                    .map(|(address, _)| address)
                    .collect()
            })
            .unwrap_or_default(),
        spenders: genesis
            .as_ref()
            .map(|genesis| {
                let seed = genesis.load_seed.unwrap_or(0);
                genesis
                    .attack_spenders()
                    .map(|index| (tessera_systems::workload::signing_key(seed, index), genesis.load_balance))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let kinds: Vec<Kind> = if args.kind.is_empty() { Kind::ALL.to_vec() } else { args.kind.clone() };
    let skipped: Vec<&str> =
        kinds.iter().filter(|kind| !target.applies(**kind)).map(|kind| kind.name()).collect();
    if !args.kind.is_empty() && !skipped.is_empty() {
        eprintln!("skipped (no address or key for them): {}", skipped.join(", "));
    }
    if let Some(source) = args.source {
        // Bound once here, so a bad address is a clear error, not a kind that connects nowhere;
        // and of the targets' family, since a socket of one family cannot reach the other.
        std::net::TcpListener::bind((source, 0))
            .map_err(|error| format!("--source {source}: not a local address: {error}"))?;
        let targets =
            [target.peer, target.ingress, target.rpc, target.metrics, target.reflect.map(|(addr, _)| addr)];
        if let Some(other) = targets.into_iter().flatten().find(|addr| addr.is_ipv4() != source.is_ipv4()) {
            return Err(format!("--source {source} cannot reach {other}: one is IPv4, the other IPv6").into());
        }
        crate::attack::set_source(source)?;
    }
    let limits = Limits {
        max_connections: args.max_connections.max(1),
        connect_rate: args.connect_rate.max(1),
        rate: args.rate.max(1),
        seed: args.seed,
    };
    let report =
        crate::attack::run(&kinds, &target, &limits, Duration::from_secs(args.duration), args.concurrent);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// `tessera attack --help` describes every kind the command takes: `sub-quorum-sync` was
    /// added without its line.
    #[test]
    fn help_describes_every_kind() {
        for kind in crate::attack::Kind::ALL {
            let line = format!("\n  {}", kind.name());
            assert!(super::KINDS_HELP.contains(&line), "--help does not describe {}", kind.name());
        }
    }
}
