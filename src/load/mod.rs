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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rayon::prelude::*;
use serde_json::{Value, json};
use tessera_components::wire::{Frame, encode};
use tessera_components::{Txn, TxnBody, TxnId};
use tessera_systems::workload::{sign, signing_key};

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
    /// How many accounts.
    pub count: u64,
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
    plan.par_iter()
        .map(|(account, nonce)| {
            let key = &keys[*account];
            let recipient = keys[(account + 1) % count].verifying_key().to_bytes();
            let body = TxnBody {
                chain_id: accounts.chain_id,
                reserved: 0,
                sender: key.verifying_key().to_bytes(),
                recipient,
                amount: 1,
                fee,
                nonce: *nonce,
            };
            sign(key, body)
        })
        .collect()
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

/// Runs one open-loop phase: sends `txns` at `rate` to the targets, tracks finalization on
/// `tracker`, waits up to `drain` after the last send for stragglers.
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
    drain: Duration,
    live: &Live,
) -> Result<PhaseReport, String> {
    assert!(rate > 0.0, "rate must be positive");
    let ids: Vec<TxnId> = txns.par_iter().map(Txn::id).collect();
    let start = Instant::now();
    let intended_ns = |i: usize| (i as f64 / rate * 1e9) as u64;
    let index: HashMap<TxnId, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let done = Arc::new(AtomicBool::new(false));
    let sent = AtomicU64::new(0);
    let mut latency = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).expect("histogram bounds");
    let mut committed = 0u64;
    let first_height = tracker.call("tessera_getStatus", json!([]))?["height"].as_u64().unwrap_or(0);
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
        // Track finalization until everything is in or the drain time after sending ends.
        let mut height = first_height;
        let mut send_finished: Option<Instant> = None;
        loop {
            let status = tracker.call("tessera_getStatus", json!([]));
            if let Ok(status) = &status {
                live.mempool.store(status["mempool_size"].as_u64().unwrap_or(0), Ordering::Relaxed);
                let tip = status["height"].as_u64().unwrap_or(height);
                while height < tip {
                    // One call for up to 256 blocks: a tracker that fetched block by block fell
                    // behind fast chains and reported its own lag as latency.
                    let count = (tip - height).min(256);
                    let Ok(blocks) = tracker.call("tessera_getBlockRange", json!([height + 1, count])) else {
                        break;
                    };
                    let seen_ns = start.elapsed().as_nanos() as u64;
                    let blocks = blocks.as_array().cloned().unwrap_or_default();
                    if blocks.is_empty() {
                        break;
                    }
                    for block in &blocks {
                        for id in block["transactions"].as_array().into_iter().flatten() {
                            let Some(bytes) = id.as_str().and_then(|text| hex::decode(text).ok()) else {
                                continue;
                            };
                            let Ok(bytes) = <[u8; 32]>::try_from(bytes.as_slice()) else { continue };
                            if let Some(i) = index.get(&TxnId(tessera_components::Hash(bytes))) {
                                let ms = seen_ns.saturating_sub(intended_ns(*i)) / 1_000_000;
                                latency.saturating_record(ms.max(1));
                                committed += 1;
                            }
                        }
                        height += 1;
                    }
                }
                live.height.store(height, Ordering::Relaxed);
                live.committed.store(committed, Ordering::Relaxed);
                if !latency.is_empty() {
                    live.p99_us.store(latency.value_at_quantile(0.99) * 1000, Ordering::Relaxed);
                }
            }
            if sender.is_finished() && send_finished.is_none() {
                send_finished = Some(Instant::now());
            }
            if committed as usize >= txns.len() || send_finished.is_some_and(|t| t.elapsed() > drain) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
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
        committed,
        finalized_tps: committed as f64 / elapsed.max(duration_s),
        latency_ms: latency,
    })
}
