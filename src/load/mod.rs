//! The open-loop load generator shared by `tessera loadgen` and `tessera devnet`.
//!
//! Bird's eye view: transactions are signed before the measured window (so signing does not
//! compete with the validators for cores), each is given an *intended* send time on a fixed
//! schedule (`start + i / rate`), and a sender thread sends everything due every few
//! milliseconds whatever the node's state — open loop. A tracker polls a node's JSON-RPC for
//! finalized blocks and records, for each of our transactions, finalization time minus
//! intended send time. Measuring from the intended time, not the actual send, keeps a
//! stalled sender or node from hiding latency (no coordinated omission).

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use hdrhistogram::Histogram;
use rayon::prelude::*;
use serde_json::{Value, json};
use tessera_components::wire::{Frame, encode};
use tessera_components::{Txn, TxnBody, TxnId};
use tessera_systems::workload::{SeedStream, filler_address, sign_many, signing_key};

/// A JSON-RPC client over plain HTTP.
#[derive(Debug, Clone)]
pub struct RpcClient {
    agent: ureq::Agent,
    url: String,
}

impl RpcClient {
    /// A client for `url` (for example `http://127.0.0.1:27002`).
    pub fn new(url: &str) -> RpcClient {
        let config = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build();
        RpcClient { agent: config.into(), url: url.to_owned() }
    }

    /// Calls `method`; the `result`, or the error as text.
    ///
    /// # Errors
    /// Transport failure or a JSON-RPC error.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
        let mut response = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .send(&body)
            .map_err(|error| format!("{}: {error}", self.url))?;
        let text = response.body_mut().read_to_string().map_err(|error| error.to_string())?;
        let value: Value = serde_json::from_str(&text).map_err(|error| error.to_string())?;
        match value.get("error") {
            Some(error) => Err(error.to_string()),
            None => Ok(value.get("result").cloned().unwrap_or(Value::Null)),
        }
    }
}

/// How transactions reach the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// Binary frames on the ingress port (the fast path).
    Ingress,
    /// `tessera_sendTransaction` over JSON-RPC.
    Rpc,
}

/// The funded load accounts of a genesis.
#[derive(Debug, Clone, Copy)]
pub struct Accounts {
    /// Chain id to sign for.
    pub chain_id: u32,
    /// Seed of the account keys.
    pub load_seed: u64,
    /// How many accounts sign.
    pub count: u64,
    /// Receive-only filler accounts (`workload::filler_address`) in the genesis. With any,
    /// each transfer goes to one of them picked by a hash of its sender and nonce, so the load
    /// touches accounts spread over the whole state; without, to the next load account.
    pub filler: u64,
}

/// Most transfers one run signs ahead of sending them (160 bytes and about 15 µs of signing
/// each: 8 GB at the bound). An hour's soak at 8,000 sustained (`tools/soak --minutes 60`) signs
/// about 20 million.
pub const PRESIGNED_TXNS_MAX: f64 = 50_000_000.0;

/// Most seconds a load or attack run lasts: a week.
pub const RUN_SECONDS_MAX: u64 = 7 * 86_400;

/// Refuses a `--rate` and `--duration` (seconds) a run cannot keep: a duration of zero or past
/// [`RUN_SECONDS_MAX`] (`Instant` arithmetic past it panicked), a rate that is not positive and
/// finite, or more transfers than [`PRESIGNED_TXNS_MAX`] to sign ahead (`--rate 1e18` panicked
/// on a capacity overflow, after the nodes had started).
///
/// # Errors
/// Which of them, with the flags' names.
pub fn check_run(rate: Option<f64>, duration: u64) -> Result<(), String> {
    if duration == 0 || duration > RUN_SECONDS_MAX {
        return Err(format!("--duration must be between 1 and {RUN_SECONDS_MAX} seconds"));
    }
    if let Some(rate) = rate {
        if !(rate > 0.0 && rate.is_finite()) {
            return Err("--rate must be positive".into());
        }
        if rate * duration as f64 > PRESIGNED_TXNS_MAX {
            return Err(format!(
                "--rate × --duration must be at most {PRESIGNED_TXNS_MAX} transfers (each is signed before the run)"
            ));
        }
    }
    Ok(())
}

/// Signs `total` transfers round-robin over the accounts, continuing from `nonces`.
pub fn presign(accounts: Accounts, total: usize, nonces: &mut [u64], fee: u64) -> Vec<Txn> {
    assert_eq!(nonces.len() as u64, accounts.count, "one nonce per account");
    let count = accounts.count as usize;
    let plan: Vec<(usize, u64)> = (0..total)
        .map(|i| {
            let account = i % count;
            let nonce = nonces[account];
            nonces[account] += 1;
            (account, nonce)
        })
        .collect();
    let keys: Vec<_> =
        (0..accounts.count).into_par_iter().map(|i| signing_key(accounts.load_seed, i)).collect();
    let signed: Vec<(&SigningKey, TxnBody)> = plan
        .par_iter()
        .map(|(account, nonce)| {
            let key = &keys[*account];
            let recipient = if accounts.filler > 0 {
                let mut pick = SeedStream::new("tessera 2026 load recipient", accounts.load_seed ^ *nonce);
                let spread = pick.next_u64() ^ (*account as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                filler_address(accounts.load_seed, spread % accounts.filler)
            } else {
                keys[(account + 1) % count].verifying_key().to_bytes()
            };
            let body = TxnBody {
                chain_id: accounts.chain_id,
                reserved: 0,
                sender: key.verifying_key().to_bytes(),
                recipient,
                amount: 1,
                fee,
                nonce: *nonce,
            };
            (key, body)
        })
        .collect();
    // A chunk's signatures share one inversion (`sign_many`: the signatures `sign` makes).
    signed.par_chunks(1024).flat_map_iter(sign_many).collect()
}

/// Figures of one load phase.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    /// Target rate.
    pub rate: f64,
    /// Seconds of sending.
    pub duration_s: f64,
    /// Transactions sent.
    pub submitted: u64,
    /// Of those, seen finalized.
    pub committed: u64,
    /// Intended send → finalized, milliseconds.
    pub latency_ms: Histogram<u64>,
    /// Committed per second over the phase.
    pub finalized_tps: f64,
    /// Blocks the tracker had pushed over its WebSocket subscription, and blocks it fetched
    /// (gaps, or no subscription).
    pub blocks_pushed: u64,
    /// See `blocks_pushed`.
    pub blocks_fetched: u64,
    /// Second by second from the phase's start, as each followed node saw it: the tracker
    /// first, then the nodes of `also` in order.
    pub per_node: Vec<Vec<Second>>,
}

impl PhaseReport {
    /// Percentile in milliseconds (0 when nothing was recorded).
    pub fn percentile(&self, q: f64) -> f64 {
        if self.latency_ms.is_empty() { 0.0 } else { self.latency_ms.value_at_quantile(q) as f64 }
    }

    /// `latency_ms` as JSON.
    pub fn latency_json(&self) -> Value {
        json!({
            "p50": self.percentile(0.5),
            "p90": self.percentile(0.9),
            "p99": self.percentile(0.99),
            "p999": self.percentile(0.999),
            "max": if self.latency_ms.is_empty() { 0 } else { self.latency_ms.max() },
        })
    }
}

/// Live figures for a progress line.
#[derive(Debug, Default)]
pub struct Live {
    /// Last finalized height seen.
    pub height: AtomicU64,
    /// Committed so far in this phase.
    pub committed: AtomicU64,
    /// Mempool size of the tracked node.
    pub mempool: AtomicU64,
    /// Current p99, microseconds.
    pub p99_us: AtomicU64,
    /// When the current phase started, microseconds since the generator's epoch.
    pub phase_start_us: AtomicU64,
    /// The generator's epoch.
    pub epoch: std::sync::OnceLock<Instant>,
}

impl Live {
    /// Microseconds since the epoch (set on first use).
    pub fn now_us(&self) -> u64 {
        self.epoch.get_or_init(Instant::now).elapsed().as_micros() as u64
    }
}

/// One second of a phase as one node's finalized blocks showed it: transactions of the phase
/// seen finalized in that second, and their intended-send → finalized latencies.
#[derive(Debug, Clone)]
pub struct Second {
    /// Transactions of the phase first seen finalized in this second.
    pub finalized: u64,
    /// Their latencies, milliseconds.
    pub latency_ms: Histogram<u64>,
}

fn latency_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).expect("histogram bounds")
}

/// A WebSocket subscription to a node's finalized blocks.
type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

/// How long one read of the subscription waits for a block: the follower's tick when blocks
/// are pushed.
const PUSH_WAIT: Duration = Duration::from_millis(5);

/// Opens a WebSocket to the node behind `rpc` and subscribes to its finalized blocks.
fn subscribe_blocks(rpc: &RpcClient) -> Result<Socket, String> {
    use std::net::ToSocketAddrs;
    let authority = rpc.url.trim_start_matches("http://").trim_end_matches('/');
    let url = format!("ws://{authority}/");
    let addr = authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("{url}: not a host and port"))?;
    // Every step bounded: a node that accepts and then says nothing must not hang the load
    // generator.
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|error| format!("{url}: {error}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|error| error.to_string())?;
    stream.set_write_timeout(Some(Duration::from_secs(5))).map_err(|error| error.to_string())?;
    let (mut socket, _) =
        tungstenite::client(url.as_str(), tungstenite::stream::MaybeTlsStream::Plain(stream))
            .map_err(|error| format!("{url}: {error}"))?;
    let request =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tessera_subscribe", "params": ["finalizedBlocks"]});
    socket.send(tungstenite::Message::text(request.to_string())).map_err(|error| error.to_string())?;
    loop {
        match socket.read().map_err(|error| error.to_string())? {
            tungstenite::Message::Text(text) => {
                let reply: Value = serde_json::from_str(text.as_str()).map_err(|error| error.to_string())?;
                if reply["result"].is_string() {
                    break;
                }
                return Err(format!("{url}: subscription refused: {reply}"));
            }
            _ => continue,
        }
    }
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream.set_read_timeout(Some(PUSH_WAIT)).map_err(|error| error.to_string())?;
    }
    Ok(socket)
}

/// Follows one node's finalized blocks and matches them against the phase's transactions.
/// Blocks come pushed over a WebSocket subscription; a gap in them (the subscription started
/// late, or was dropped and made again) is filled with `tessera_getBlockRange`, and without a
/// subscription the follower polls.
struct Follower<'a> {
    rpc: &'a RpcClient,
    push: Option<Socket>,
    /// When the subscription was last tried, so a node without one is not asked every tick.
    push_tried: Option<Instant>,
    height: u64,
    committed: u64,
    latency: Histogram<u64>,
    seconds: Vec<Second>,
    /// Blocks that came pushed, and blocks fetched.
    pushed: u64,
    fetched: u64,
    /// When the status was last read (for the mempool gauge), and what it said.
    status_at: Option<Instant>,
}

impl<'a> Follower<'a> {
    fn new(rpc: &'a RpcClient) -> Result<Self, String> {
        let height = rpc.call("tessera_getStatus", json!([]))?["height"].as_u64().unwrap_or(0);
        let mut follower = Follower {
            rpc,
            push: None,
            push_tried: None,
            height,
            committed: 0,
            latency: latency_histogram(),
            seconds: Vec::new(),
            pushed: 0,
            fetched: 0,
            status_at: None,
        };
        follower.resubscribe();
        Ok(follower)
    }

    fn resubscribe(&mut self) {
        if self.push.is_some() || self.push_tried.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return;
        }
        self.push_tried = Some(Instant::now());
        match subscribe_blocks(self.rpc) {
            Ok(socket) => self.push = Some(socket),
            Err(error) => tracing::debug!(%error, "no block subscription; polling"),
        }
    }

    /// Matches one block's transaction ids, seen at `seen_ns`.
    fn record(
        &mut self,
        block: &Value,
        seen_ns: u64,
        intended_ns: &dyn Fn(usize) -> u64,
        index: &HashMap<TxnId, usize>,
    ) {
        let second = (seen_ns / 1_000_000_000) as usize;
        for id in block["transactions"].as_array().into_iter().flatten() {
            let Some(bytes) = id.as_str().and_then(|text| hex::decode(text).ok()) else {
                continue;
            };
            let Ok(bytes) = <[u8; 32]>::try_from(bytes.as_slice()) else { continue };
            if let Some(i) = index.get(&TxnId(tessera_components::Hash(bytes))) {
                let ms = (seen_ns.saturating_sub(intended_ns(*i)) / 1_000_000).max(1);
                self.latency.saturating_record(ms);
                self.committed += 1;
                while self.seconds.len() <= second {
                    self.seconds.push(Second { finalized: 0, latency_ms: latency_histogram() });
                }
                self.seconds[second].finalized += 1;
                self.seconds[second].latency_ms.saturating_record(ms);
            }
        }
        self.height += 1;
    }

    /// Fetches and records the blocks after the last one recorded up to `tip`. A follower
    /// that falls behind reports its own lag as latency: it fetches up to 256 blocks a call
    /// for that reason.
    fn fetch_up_to(
        &mut self,
        tip: u64,
        start: Instant,
        intended_ns: &dyn Fn(usize) -> u64,
        index: &HashMap<TxnId, usize>,
    ) {
        while self.height < tip {
            let count = (tip - self.height).min(256);
            let Ok(blocks) = self.rpc.call("tessera_getBlockRange", json!([self.height + 1, count])) else {
                return;
            };
            let seen_ns = start.elapsed().as_nanos() as u64;
            let blocks = blocks.as_array().cloned().unwrap_or_default();
            if blocks.is_empty() {
                return;
            }
            for block in &blocks {
                self.record(block, seen_ns, intended_ns, index);
                self.fetched += 1;
            }
        }
    }

    /// Records what was finalized since the last poll: the pushed blocks that arrived (waiting
    /// up to [`PUSH_WAIT`] for one), or, without a subscription, what the node's status and
    /// block ranges show. Returns the node's status when it was read (at most every 250 ms
    /// while blocks are pushed).
    fn poll(
        &mut self,
        start: Instant,
        intended_ns: &dyn Fn(usize) -> u64,
        index: &HashMap<TxnId, usize>,
    ) -> Option<Value> {
        self.resubscribe();
        if let Some(mut socket) = self.push.take() {
            let mut keep = true;
            // At most this many messages a poll, so a fast chain cannot keep the caller from
            // its own checks.
            for _ in 0..256 {
                match socket.read() {
                    Ok(tungstenite::Message::Text(text)) => {
                        let seen_ns = start.elapsed().as_nanos() as u64;
                        let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                        let params = &message["params"];
                        if params.get("error").is_some() {
                            // Fell behind: dropped by the node. Subscribe again and fill the gap.
                            keep = false;
                            break;
                        }
                        let Some(height) = params["result"]["height"].as_u64() else { continue };
                        if height <= self.height {
                            continue;
                        }
                        self.fetch_up_to(height - 1, start, intended_ns, index);
                        if self.height + 1 == height {
                            self.record(&params["result"], seen_ns, intended_ns, index);
                            self.pushed += 1;
                        }
                    }
                    Ok(_) => continue,
                    Err(tungstenite::Error::Io(error))
                        if matches!(
                            error.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break;
                    }
                    Err(_) => {
                        keep = false;
                        break;
                    }
                }
            }
            if keep {
                self.push = Some(socket);
                if self.status_at.is_some_and(|at| at.elapsed() < Duration::from_millis(250)) {
                    return None;
                }
                self.status_at = Some(Instant::now());
                return self.rpc.call("tessera_getStatus", json!([])).ok();
            }
        }
        let status = self.rpc.call("tessera_getStatus", json!([])).ok()?;
        self.status_at = Some(Instant::now());
        let tip = status["height"].as_u64().unwrap_or(self.height);
        self.fetch_up_to(tip, start, intended_ns, index);
        Some(status)
    }

    /// Records everything finalized up to the node's current tip (what is pushed can lag the
    /// status by a message).
    fn finish(&mut self, start: Instant, intended_ns: &dyn Fn(usize) -> u64, index: &HashMap<TxnId, usize>) {
        self.poll(start, intended_ns, index);
        if let Ok(status) = self.rpc.call("tessera_getStatus", json!([])) {
            let tip = status["height"].as_u64().unwrap_or(self.height);
            self.fetch_up_to(tip, start, intended_ns, index);
        }
    }

    /// Whether blocks are pushed: then [`Follower::poll`] waits for them itself.
    fn pushing(&self) -> bool {
        self.push.is_some()
    }
}

/// Runs one open-loop phase: sends `txns` at `rate` to the targets, tracks finalization on
/// `tracker`, waits up to `drain` after the last send for stragglers. Each node of `also` is
/// followed too, on a thread of its own, for [`PhaseReport::per_node`].
///
/// # Errors
/// A target that cannot be reached at all.
pub fn run_phase(
    txns: &[Txn],
    rate: f64,
    via: Via,
    ingress: &[SocketAddr],
    rpc: &[RpcClient],
    tracker: &RpcClient,
    also: &[RpcClient],
    drain: Duration,
    live: &Live,
) -> Result<PhaseReport, String> {
    assert!(rate > 0.0, "rate must be positive");
    let ids: Vec<TxnId> = txns.par_iter().map(Txn::id).collect();
    let start = Instant::now();
    let intended_ns = |i: usize| (i as f64 / rate * 1e9) as u64;
    let index: HashMap<TxnId, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let done = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let mut follower = Follower::new(tracker)?;
    let mut others = also.iter().map(Follower::new).collect::<Result<Vec<_>, _>>()?;
    live.committed.store(0, Ordering::Relaxed);
    live.phase_start_us.store(live.now_us(), Ordering::Relaxed);
    std::thread::scope(|scope| -> Result<(), String> {
        let sender = scope.spawn(|| -> Result<(), String> {
            let mut streams: Vec<TcpStream> = Vec::new();
            if via == Via::Ingress {
                for addr in ingress {
                    let stream =
                        TcpStream::connect(addr).map_err(|error| format!("ingress {addr}: {error}"))?;
                    stream.set_nodelay(true).ok();
                    streams.push(stream);
                }
            }
            let mut next = 0usize;
            let mut turn = 0usize;
            while next < txns.len() {
                let now = start.elapsed().as_nanos() as u64;
                let mut due = next;
                while due < txns.len() && intended_ns(due) <= now {
                    due += 1;
                }
                if due > next {
                    let batch = &txns[next..due];
                    match via {
                        Via::Ingress => {
                            let slot = turn % streams.len();
                            let stream = &mut streams[slot];
                            for chunk in batch.chunks(4096) {
                                let frame = encode(&Frame::Txns(chunk.to_vec()));
                                if stream.write_all(&frame).is_err() {
                                    // The node went away: reconnect once and carry on.
                                    if let Ok(fresh) = TcpStream::connect(ingress[turn % ingress.len()]) {
                                        *stream = fresh;
                                        let _ = stream.write_all(&frame);
                                    }
                                }
                            }
                        }
                        Via::Rpc => {
                            for txn in batch {
                                let client = &rpc[turn % rpc.len()];
                                let text = hex::encode(bytemuck::bytes_of(txn));
                                let _ = client.call("tessera_sendTransaction", json!([text]));
                                turn += 1;
                            }
                        }
                    }
                    turn += 1;
                    sent.store(due as u64, Ordering::Relaxed);
                    next = due;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(())
        });
        for other in &mut others {
            let (done, index) = (&done, &index);
            scope.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    other.poll(start, &intended_ns, index);
                    if !other.pushing() {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                // What was finalized by the time the tracker stopped.
                other.finish(start, &intended_ns, index);
            });
        }
        // Track finalization until everything is in or the drain time after sending ends.
        let mut send_finished: Option<Instant> = None;
        loop {
            if let Some(status) = follower.poll(start, &intended_ns, &index) {
                live.mempool.store(status["mempool_size"].as_u64().unwrap_or(0), Ordering::Relaxed);
                live.height.store(follower.height, Ordering::Relaxed);
                live.committed.store(follower.committed, Ordering::Relaxed);
                if !follower.latency.is_empty() {
                    live.p99_us.store(follower.latency.value_at_quantile(0.99) * 1000, Ordering::Relaxed);
                }
            }
            if sender.is_finished() && send_finished.is_none() {
                send_finished = Some(Instant::now());
            }
            if follower.committed as usize >= txns.len() || send_finished.is_some_and(|t| t.elapsed() > drain)
            {
                break;
            }
            // A pushed block is timed when it is read: sleeping here as well as in the poll's
            // wait for a push left it in the socket for up to 15 ms, and counted that as latency.
            if !follower.pushing() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        done.store(true, Ordering::Relaxed);
        sender.join().map_err(|_| "sender thread panicked".to_string())?
    })?;
    let duration_s = txns.len() as f64 / rate;
    let elapsed = start.elapsed().as_secs_f64();
    Ok(PhaseReport {
        rate,
        duration_s,
        submitted: sent.load(Ordering::Relaxed),
        committed: follower.committed,
        finalized_tps: follower.committed as f64 / elapsed.max(duration_s),
        latency_ms: follower.latency,
        blocks_pushed: follower.pushed,
        blocks_fetched: follower.fetched,
        per_node: std::iter::once(follower.seconds)
            .chain(others.into_iter().map(|other| other.seconds))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Presigned transfers go round-robin over the accounts from their nonces, to the next
    /// account, and each carries the signature its key makes alone, across chunks of signing.
    #[test]
    fn presigned_transfers_are_each_signed_by_their_sender() {
        let accounts = Accounts { chain_id: 3, load_seed: 9, count: 5, filler: 0 };
        let mut nonces = vec![0, 1, 2, 3, 4];
        let txns = presign(accounts, 2_500, &mut nonces, 2);
        assert_eq!(nonces, [500, 501, 502, 503, 504]);
        let keys: Vec<SigningKey> = (0..5).map(|i| signing_key(9, i)).collect();
        for (i, txn) in txns.iter().enumerate() {
            let (account, round) = (i % 5, (i / 5) as u64);
            let key = &keys[account];
            assert_eq!(txn.body.sender, key.verifying_key().to_bytes());
            assert_eq!(txn.body.recipient, keys[(account + 1) % 5].verifying_key().to_bytes());
            assert_eq!((txn.body.nonce, txn.body.fee, txn.body.chain_id), (account as u64 + round, 2, 3));
            assert_eq!(*txn, tessera_systems::workload::sign(key, txn.body), "transfer {i}");
        }
    }

    /// `--rate 1e18 --duration 1` panicked on a capacity overflow signing ahead, and
    /// `--duration 18446744073709551615` on `Instant` arithmetic; both are refused by name.
    #[test]
    fn a_run_past_its_bounds_is_refused_before_it_starts() {
        assert_eq!(super::check_run(Some(1000.0), 60), Ok(()));
        assert_eq!(super::check_run(None, super::RUN_SECONDS_MAX), Ok(()));
        for (rate, duration, flag) in [
            (Some(1e18), 1, "--rate × --duration"),
            (Some(f64::NAN), 1, "--rate"),
            (Some(-1.0), 1, "--rate"),
            (None, 0, "--duration"),
            (None, u64::MAX, "--duration"),
            (Some(1000.0), u64::MAX, "--duration"),
        ] {
            let error = super::check_run(rate, duration).unwrap_err();
            assert!(error.starts_with(flag), "{rate:?} {duration}: {error}");
        }
    }
}
