//! Hostile traffic against a live node: the engine behind `tessera attack`.
//!
//! Bird's eye view: each [`Kind`] is one family of abuse against one of the node's ports (peer,
//! ingress, JSON-RPC). A kind runs on its own thread until a deadline and tallies what it sent
//! and what it saw the node do to its connections ([`Tally`]). Around each kind (or around all
//! of them, when they run at once) the node's `/metrics` is scraped, and the report gives the
//! counters that moved. Everything the attacker holds is capped: connections at once
//! ([`Limits::max_connections`]), new connections per second, transactions per second, and
//! buffers are reused, so the attacker's own memory stays flat.

pub mod byzantine;
pub mod http;
pub mod wire;
pub mod ws;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

/// One family of hostile traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Kind {
    /// Peer and ingress: frames with a bad magic, version, kind or reserved field, payloads
    /// that do not decode, are not canonical or carry trailing bytes, and kinds not allowed on
    /// the port. On the peer port they follow a full node's handshake, so they reach the
    /// penalty and ban path.
    MalformedFrames,
    /// Peer and ingress: a header that promises more bytes than ever arrive, or half a header,
    /// then the connection closes.
    TruncatedFrames,
    /// Peer and ingress: headers declaring frames over the node's maximum (up to 4 GiB), with
    /// a little filler behind them.
    OversizedFrames,
    /// Peer: wrong chain, wrong protocol version, unknown validator index, a validator's index
    /// with a forged proof, a proof before any greeting, a greeting twice.
    HandshakeViolations,
    /// Peer, with `--reflect-peer`: connect to the node claiming to be the validator at
    /// `--reflect-peer`, connect to that validator as a full node, and present its handshake
    /// proof as our own. The node must refuse every one (counted as closed; an acceptance is
    /// counted as a completed handshake).
    HandshakeReflection,
    /// Peer, ingress and RPC: connections opened as fast as the caps allow, held, and dropped.
    ConnectionFlood,
    /// Peer, ingress and RPC: as many connections as the cap allows, each sending one byte of a
    /// plausible request every second, never finishing.
    SlowLoris,
    /// Peer: a full node's handshake, then sync requests from height 1 whose answers it never
    /// reads, so the node's writes back up.
    SlowReader,
    /// Ingress: validly framed transaction batches at a high rate, each signature well formed
    /// but wrong. With `--genesis`, the senders are funded accounts (their nonces read over
    /// `--rpc` when given), so every transaction passes the cheap checks and costs the node a
    /// full verification; without it, throwaway senders the node refuses before verifying.
    BadSignatureSpam,
    /// Ingress: correctly signed transfers from keys that own nothing, each offering a fee near
    /// 2^64. The node must refuse every one for insufficient funds before verifying it, and no
    /// honest transaction may be evicted for them.
    UnfundedFeeSpam,
    /// Ingress, with `--genesis`: correctly signed transfers from the funded load accounts the
    /// genesis leaves to the attack (`Genesis::attack_spenders`), each freshly signed: many
    /// variants (fee, recipient) for each sender's next two nonces, and debits past the
    /// sender's balance. The node may admit one body per sender and nonce; every other variant
    /// must be refused before its signature is verified, so the node's verifications keep pace
    /// with its admissions (`tessera_pipeline_verified_total` against
    /// `tessera_pipeline_admitted_total`).
    NonceVariantSpam,
    /// Peer: a full node's valid handshake, then random bytes.
    GarbageAfterHandshake,
    /// Peer: as many full nodes' handshakes as `--max-connections` allows, each then silent
    /// and held. The node must close them past its follower cap and after the follower idle
    /// timeout, and keep its validators connected.
    FollowerFlood,
    /// Peer: as full nodes, sync requests from height 1, each answer read in full, as fast as
    /// the node answers; reports the bytes received per byte sent (the amplification).
    SyncAmplification,
    /// RPC: bodies that are not JSON, not requests, unknown methods, bad parameters, oversized
    /// batches, deep nesting, invalid UTF-8, wrong HTTP methods, broken HTTP.
    RpcMalformed,
    /// RPC: bodies over the node's limit, sent or only declared, plain and chunked.
    RpcOversized,
    /// RPC: WebSocket subscribers that take every subscription a connection may hold (the
    /// most transaction ids each) and never read; every fourth also sends a message over the
    /// size limit. The node must drop them and keep answering.
    WsSubscribers,
    /// Peer, with `--key`: as that validator, two conflicting proposals for the node's next
    /// height and view (the behaviour library's equivocating proposer).
    Equivocation,
    /// Peer, with `--key`: as that validator, two conflicting votes per view.
    DoubleVote,
    /// Peer, with `--key`: proposals with a bad signature, a wrong state root, and over the
    /// block limit.
    InvalidProposals,
    /// Peer, with `--key`: old signed votes (from finalized blocks' certificates) and this
    /// attacker's own earlier messages, sent again.
    Replay,
    /// Peer, with `--key`: validly signed votes, each many times over, as fast as the rate cap
    /// allows.
    ConsensusFlood,
    /// Peer, with `--key`: distinct signed proposals, at the node's height, for the last view
    /// this validator led that the node has left. The node must drop them before any work
    /// (`tessera_consensus_stale_proposals_total`) and keep finalizing.
    OldViewProposals,
    /// Peer, with `--key`: sync responses of 64 made-up blocks chained from the node's next
    /// height, each with a commit certificate of one vote, this validator's own, validly
    /// signed: short of a quorum, they can never finalize anything. The node must drop them
    /// before checking any signature (`tessera_consensus_signatures_verified_total` moves no
    /// faster than honest traffic moves it).
    SubQuorumSync,
    /// Peer, with `--key`: as that validator, transaction batches over its own link (where
    /// validators forward what they admitted), every signature forged. The node must refuse
    /// them on a spot check (`tessera_net_forwarded_batches_refused_total`), not verify each
    /// one in its pipeline.
    ForwardedSignatureSpam,
    /// Peer, with `--key`: as that validator, forwarded batches of one forgery among 255 good
    /// signatures (throwaway keys, the same each batch), which pass the two-signature spot
    /// check almost always. The node must charge the pipeline's verdict on each forgery to the
    /// forwarder (`tessera_net_forwarded_forgeries_total`) and ban its index past the penalty
    /// threshold, so only a handful are ever verified.
    ForwardedDilutedForgeries,
}

/// The node port a kind speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    /// Peer protocol.
    Peer,
    /// Client ingress.
    Ingress,
    /// JSON-RPC.
    Rpc,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 26] = [
        Kind::MalformedFrames,
        Kind::TruncatedFrames,
        Kind::OversizedFrames,
        Kind::HandshakeViolations,
        Kind::HandshakeReflection,
        Kind::ConnectionFlood,
        Kind::SlowLoris,
        Kind::SlowReader,
        Kind::BadSignatureSpam,
        Kind::UnfundedFeeSpam,
        Kind::NonceVariantSpam,
        Kind::GarbageAfterHandshake,
        Kind::FollowerFlood,
        Kind::SyncAmplification,
        Kind::RpcMalformed,
        Kind::RpcOversized,
        Kind::WsSubscribers,
        Kind::Equivocation,
        Kind::DoubleVote,
        Kind::InvalidProposals,
        Kind::Replay,
        Kind::ConsensusFlood,
        Kind::OldViewProposals,
        Kind::SubQuorumSync,
        Kind::ForwardedSignatureSpam,
        Kind::ForwardedDilutedForgeries,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::MalformedFrames => "malformed-frames",
            Kind::TruncatedFrames => "truncated-frames",
            Kind::OversizedFrames => "oversized-frames",
            Kind::HandshakeViolations => "handshake-violations",
            Kind::HandshakeReflection => "handshake-reflection",
            Kind::ConnectionFlood => "connection-flood",
            Kind::SlowLoris => "slow-loris",
            Kind::SlowReader => "slow-reader",
            Kind::BadSignatureSpam => "bad-signature-spam",
            Kind::UnfundedFeeSpam => "unfunded-fee-spam",
            Kind::NonceVariantSpam => "nonce-variant-spam",
            Kind::GarbageAfterHandshake => "garbage-after-handshake",
            Kind::FollowerFlood => "follower-flood",
            Kind::SyncAmplification => "sync-amplification",
            Kind::RpcMalformed => "rpc-malformed",
            Kind::RpcOversized => "rpc-oversized",
            Kind::WsSubscribers => "ws-subscribers",
            Kind::Equivocation => "equivocation",
            Kind::DoubleVote => "double-vote",
            Kind::InvalidProposals => "invalid-proposals",
            Kind::Replay => "replay",
            Kind::ConsensusFlood => "consensus-flood",
            Kind::OldViewProposals => "old-view-proposals",
            Kind::SubQuorumSync => "sub-quorum-sync",
            Kind::ForwardedSignatureSpam => "forwarded-signature-spam",
            Kind::ForwardedDilutedForgeries => "forwarded-diluted-forgeries",
        }
    }

    /// The ports this kind can use.
    pub fn ports(self) -> &'static [Port] {
        match self {
            Kind::MalformedFrames | Kind::TruncatedFrames | Kind::OversizedFrames => {
                &[Port::Peer, Port::Ingress]
            }
            Kind::ConnectionFlood | Kind::SlowLoris => &[Port::Peer, Port::Ingress, Port::Rpc],
            Kind::BadSignatureSpam | Kind::UnfundedFeeSpam | Kind::NonceVariantSpam => &[Port::Ingress],
            Kind::RpcMalformed | Kind::RpcOversized | Kind::WsSubscribers => &[Port::Rpc],
            _ => &[Port::Peer],
        }
    }

    /// True for the kinds that act as a validator and need its key (and the node's RPC, to
    /// learn its height and view).
    pub fn needs_key(self) -> bool {
        matches!(
            self,
            Kind::Equivocation
                | Kind::DoubleVote
                | Kind::InvalidProposals
                | Kind::Replay
                | Kind::ConsensusFlood
                | Kind::OldViewProposals
                | Kind::SubQuorumSync
                | Kind::ForwardedSignatureSpam
                | Kind::ForwardedDilutedForgeries
        )
    }
}

/// Where the node listens, and who the attacker may claim to be.
#[derive(Clone, Debug)]
pub struct Target {
    /// Peer port.
    pub peer: Option<SocketAddr>,
    /// Ingress port.
    pub ingress: Option<SocketAddr>,
    /// JSON-RPC host and port.
    pub rpc: Option<SocketAddr>,
    /// Metrics host and port, scraped for the report.
    pub metrics: Option<SocketAddr>,
    /// Chain id spoken in handshakes and signed into transactions.
    pub chain_id: u32,
    /// A validator's index and key, for the consensus kinds.
    pub validator: Option<(u32, SigningKey)>,
    /// Validators in the set (who leads which view), for the consensus kinds.
    pub validators: u32,
    /// The node's own validator index, which every handshake names as the other end.
    pub node_index: u32,
    /// Another validator's peer port and index, for the handshake reflection.
    pub reflect: Option<(SocketAddr, u32)>,
    /// Funded account addresses (from the public genesis), for bad-signature spam.
    pub funded: Vec<[u8; 32]>,
    /// Funded keys no honest client signs for, with their genesis balance (from the public
    /// genesis's load seed: `Genesis::attack_spenders`), for nonce-variant spam.
    pub spenders: Vec<(SigningKey, u64)>,
}

impl Target {
    /// The address of `port`, if given.
    pub fn address(&self, port: Port) -> Option<SocketAddr> {
        match port {
            Port::Peer => self.peer,
            Port::Ingress => self.ingress,
            Port::Rpc => self.rpc,
        }
    }

    /// True when `kind` has everything it needs.
    pub fn applies(&self, kind: Kind) -> bool {
        let ports = kind.ports().iter().any(|port| self.address(*port).is_some());
        let reflect = kind != Kind::HandshakeReflection || self.reflect.is_some();
        let spenders = kind != Kind::NonceVariantSpam || !self.spenders.is_empty();
        ports
            && reflect
            && spenders
            && (!kind.needs_key() || (self.validator.is_some() && self.rpc.is_some()))
    }
}

/// The address every attack connection is made from (`tessera attack --source`); unset, the
/// system picks (127.0.0.1 toward a local node).
static SOURCE: OnceLock<IpAddr> = OnceLock::new();

/// Makes every later attack connection from `ip`. Set once, by the command line.
///
/// # Errors
/// A source was set already.
pub fn set_source(ip: IpAddr) -> Result<(), String> {
    SOURCE.set(ip).map_err(|_| "the attack's source address is set once".to_owned())
}

/// A TCP connection to `addr` within `timeout`, from the `--source` address when one is set.
///
/// # Errors
/// The source cannot be bound, or the connection fails or times out.
pub fn connect_from_source(addr: &SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let Some(source) = SOURCE.get() else { return TcpStream::connect_timeout(addr, timeout) };
    let socket = socket2::Socket::new(socket2::Domain::for_address(*addr), socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(*source, 0).into())?;
    socket.connect_timeout(&(*addr).into(), timeout)?;
    Ok(socket.into())
}

/// Caps on what the attacker holds and sends.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once, per kind.
    pub max_connections: usize,
    /// New connections per second, per kind.
    pub connect_rate: u32,
    /// Transactions (bad-signature and unfunded-fee spam) or consensus messages (consensus
    /// flood) per second.
    pub rate: u32,
    /// Seed of the attacker's random bytes.
    pub seed: u64,
}

/// What one kind sent and saw.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Connections established.
    pub connections: u64,
    /// Connection attempts that failed (refused, timed out).
    pub connect_failures: u64,
    /// Frames written (whole or partial).
    pub frames: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Bytes the node sent back (counted by the kinds that read answers).
    pub bytes_received: u64,
    /// HTTP requests written.
    pub requests: u64,
    /// Transactions sent.
    pub txns: u64,
    /// Consensus messages sent.
    pub messages: u64,
    /// Handshakes the node completed with the attacker.
    pub handshakes: u64,
    /// Connections the node closed (end of stream or reset) while the attacker held them.
    pub closed_by_node: u64,
    /// Connections still open when the attacker let go of them.
    pub left_open: u64,
    /// HTTP status codes received, with counts.
    pub http_status: BTreeMap<u16, u64>,
    /// JSON-RPC error codes received, with counts.
    pub rpc_errors: BTreeMap<i64, u64>,
    /// Seconds between opening a connection and the node closing it, longest seen.
    pub longest_hold_s: f64,
}

impl Tally {
    /// Adds `other` into this one.
    pub fn merge(&mut self, other: &Tally) {
        self.connections += other.connections;
        self.connect_failures += other.connect_failures;
        self.frames += other.frames;
        self.bytes += other.bytes;
        self.bytes_received += other.bytes_received;
        self.requests += other.requests;
        self.txns += other.txns;
        self.messages += other.messages;
        self.handshakes += other.handshakes;
        self.closed_by_node += other.closed_by_node;
        self.left_open += other.left_open;
        for (status, count) in &other.http_status {
            *self.http_status.entry(*status).or_default() += count;
        }
        for (code, count) in &other.rpc_errors {
            *self.rpc_errors.entry(*code).or_default() += count;
        }
        self.longest_hold_s = self.longest_hold_s.max(other.longest_hold_s);
    }

    /// The tally as JSON.
    pub fn json(&self) -> Value {
        json!({
            "connections": self.connections,
            "connect_failures": self.connect_failures,
            "frames": self.frames,
            "bytes": self.bytes,
            "bytes_received": self.bytes_received,
            "requests": self.requests,
            "txns": self.txns,
            "consensus_messages": self.messages,
            "handshakes_completed": self.handshakes,
            "closed_by_node": self.closed_by_node,
            "left_open": self.left_open,
            "http_status": self.http_status.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "rpc_error_codes": self.rpc_errors.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "longest_hold_s": (self.longest_hold_s * 100.0).round() / 100.0,
        })
    }
}

/// A small deterministic generator for the attacker's bytes (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded; a zero seed is replaced.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Paces an activity to at most `per_second` events.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    per_second: f64,
    done: u64,
}

impl Pacer {
    /// A pacer starting now.
    pub fn new(per_second: u32) -> Pacer {
        Pacer { start: Instant::now(), per_second: f64::from(per_second.max(1)), done: 0 }
    }

    /// Waits until `count` more events are allowed, then counts them.
    pub fn wait(&mut self, count: u64) {
        let due = Duration::from_secs_f64(self.done as f64 / self.per_second);
        let elapsed = self.start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
        self.done += count;
    }
}

/// The node's metrics: name (labels included) to value.
pub type Scrape = BTreeMap<String, f64>;

/// Scrapes `/metrics` at `addr`; `None` when the node does not answer.
pub fn scrape(addr: SocketAddr) -> Option<Scrape> {
    let (status, body) = http::raw(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .ok()?;
    if status != 200 {
        return None;
    }
    Some(
        body.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect(),
    )
}

/// The counters that moved between two scrapes (histogram series and the scrape counter
/// left out), plus the change in finalized height.
pub fn delta(before: &Scrape, after: &Scrape) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter(|(name, _)| {
            (name.ends_with("_total") || name.contains("_total{") || name.as_str() == "tessera_chain_height")
                && !name.starts_with("tessera_metrics_scrapes")
        })
        .filter_map(|(name, value)| {
            let change = value - before.get(name).copied().unwrap_or(0.0);
            (change != 0.0).then(|| (name.clone(), change))
        })
        .collect()
}

/// One kind's outcome.
#[derive(Clone, Debug)]
pub struct KindReport {
    /// The kind.
    pub kind: Kind,
    /// Seconds it ran.
    pub seconds: f64,
    /// What it sent and saw.
    pub tally: Tally,
    /// Node counters that moved while it ran (empty without metrics, or when kinds ran at once).
    pub metrics: BTreeMap<String, f64>,
}

/// The whole run.
#[derive(Clone, Debug)]
pub struct Report {
    /// Per kind.
    pub kinds: Vec<KindReport>,
    /// Node counters that moved over the whole run.
    pub metrics: BTreeMap<String, f64>,
    /// Whether the metrics endpoint answered at the end (within [`END_SCRAPE_ATTEMPTS`]).
    pub node_answering: bool,
    /// Scrapes it took at the end to get an answer (0 without metrics; the maximum when none
    /// answered).
    pub end_scrape_attempts: u32,
    /// Kinds run at once.
    pub concurrent: bool,
}

impl Report {
    /// The report as JSON.
    pub fn json(&self) -> Value {
        json!({
            "concurrent": self.concurrent,
            "node_metrics_answering_at_end": self.node_answering,
            "end_scrape_attempts": self.end_scrape_attempts,
            "kinds": self.kinds.iter().map(|k| json!({
                "kind": k.kind.name(),
                "seconds": (k.seconds * 100.0).round() / 100.0,
                "sent": k.tally.json(),
                "node_metrics_delta": k.metrics,
            })).collect::<Vec<_>>(),
            "node_metrics_delta": self.metrics,
        })
    }

    /// The report as a table.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<24} {:>6} {:>7} {:>7} {:>9} {:>11} {:>8} {:>7} {:>6} {:>6}  responses",
            "kind", "secs", "conns", "failed", "frames", "bytes", "reqs/tx", "hshake", "closed", "open"
        );
        for k in &self.kinds {
            let t = &k.tally;
            let mut responses: Vec<String> =
                t.http_status.iter().map(|(s, n)| format!("http {s}×{n}")).collect();
            responses.extend(t.rpc_errors.iter().map(|(c, n)| format!("rpc {c}×{n}")));
            let _ = writeln!(
                out,
                "{:<24} {:>6.1} {:>7} {:>7} {:>9} {:>11} {:>8} {:>7} {:>6} {:>6}  {}",
                k.kind.name(),
                k.seconds,
                t.connections,
                t.connect_failures,
                t.frames + t.messages,
                t.bytes,
                t.requests + t.txns,
                t.handshakes,
                t.closed_by_node,
                t.left_open,
                responses.join(", ")
            );
            for (name, change) in &k.metrics {
                let _ = writeln!(out, "    node {name} {change:+}");
            }
        }
        if self.concurrent || self.kinds.len() > 1 {
            let _ = writeln!(out, "node counters over the whole run:");
            for (name, change) in &self.metrics {
                let _ = writeln!(out, "    {name} {change:+}");
            }
        }
        let _ = writeln!(
            out,
            "node metrics endpoint answering at the end: {} (scrapes: {})",
            if self.node_answering { "yes" } else { "NO" },
            self.end_scrape_attempts
        );
        out
    }
}

/// Runs one kind until `deadline`.
fn run_kind(kind: Kind, target: &Target, limits: &Limits, deadline: Instant) -> Tally {
    match kind {
        Kind::RpcMalformed | Kind::RpcOversized => http::run(kind, target, limits, deadline),
        Kind::WsSubscribers => ws::run(target, limits, deadline),
        Kind::Equivocation
        | Kind::DoubleVote
        | Kind::InvalidProposals
        | Kind::Replay
        | Kind::ConsensusFlood
        | Kind::OldViewProposals
        | Kind::SubQuorumSync
        | Kind::ForwardedSignatureSpam
        | Kind::ForwardedDilutedForgeries => byzantine::run(kind, target, limits, deadline),
        _ => wire::run(kind, target, limits, deadline),
    }
}

/// Runs `kinds` (those that apply to `target`) for `duration` in all: one after another, each
/// with its share and its own metrics delta, or all at once.
pub fn run(kinds: &[Kind], target: &Target, limits: &Limits, duration: Duration, concurrent: bool) -> Report {
    let kinds: Vec<Kind> = kinds.iter().copied().filter(|kind| target.applies(*kind)).collect();
    let first = target.metrics.and_then(scrape);
    let mut reports = Vec::new();
    if concurrent {
        if target.validator.is_some() {
            byzantine::learn_position(target);
        }
        let start = Instant::now();
        let deadline = start + duration;
        let tallies: Vec<Tally> = std::thread::scope(|scope| {
            let handles: Vec<_> = kinds
                .iter()
                .map(|kind| scope.spawn(move || run_kind(*kind, target, limits, deadline)))
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap_or_default()).collect()
        });
        let seconds = start.elapsed().as_secs_f64();
        for (kind, tally) in kinds.iter().zip(tallies) {
            reports.push(KindReport { kind: *kind, seconds, tally, metrics: BTreeMap::new() });
        }
    } else {
        let share = duration
            .checked_div(kinds.len().max(1) as u32)
            .unwrap_or(duration)
            .max(Duration::from_millis(500));
        for kind in &kinds {
            let before = target.metrics.and_then(scrape);
            let start = Instant::now();
            let tally = run_kind(*kind, target, limits, start + share);
            let seconds = start.elapsed().as_secs_f64();
            let after = target.metrics.and_then(scrape);
            let metrics = match (before, after) {
                (Some(before), Some(after)) => delta(&before, &after),
                _ => BTreeMap::new(),
            };
            reports.push(KindReport { kind: *kind, seconds, tally, metrics });
        }
    }
    let (last, end_scrape_attempts) = target.metrics.map_or((None, 0), scrape_after_attack);
    let node_answering = target.metrics.is_none() || last.is_some();
    let metrics = match (first, last) {
        (Some(first), Some(last)) => delta(&first, &last),
        _ => BTreeMap::new(),
    };
    Report { kinds: reports, metrics, node_answering, end_scrape_attempts, concurrent }
}

/// Scrapes at the end of a run, before the verdict on whether the node still answers.
pub const END_SCRAPE_ATTEMPTS: u32 = 3;

/// The end-of-run scrape: a node that is draining the attack's backlog on a loaded machine
/// may miss one 5 s deadline, so it gets [`END_SCRAPE_ATTEMPTS`] of them, a second apart
/// (at most ~17 s in all). The answer and the attempts it took.
fn scrape_after_attack(addr: SocketAddr) -> (Option<Scrape>, u32) {
    for attempt in 1..=END_SCRAPE_ATTEMPTS {
        if let Some(scrape) = scrape(addr) {
            return (Some(scrape), attempt);
        }
        if attempt < END_SCRAPE_ATTEMPTS {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    (None, END_SCRAPE_ATTEMPTS)
}
