//! `tessera node --config FILE`: one validator on real sockets.
//!
//! Bird's eye view: the main thread owns the `Pipeline` (the ECS world and schedule) and runs
//! the node loop: drain the network's inbound queues and the RPC queries, tick the schedule
//! with wall-clock time, persist and index what was finalized, and hand outbound consensus
//! messages to the network's per-peer queues. The network runs on glommio executors
//! ([`net`]), JSON-RPC and metrics on tiny_http threads ([`rpc`], [`metrics`]).

pub mod config;
pub mod genesis;
pub mod heap;
pub mod metrics;
pub mod net;
pub mod rpc;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use tessera_components::wire::{Frame, encode};
use tessera_components::{CertifiedBlock, ConsensusMessage, Hash, Txn, TxnId};
use tessera_systems::consensus::core::{ConsensusConfig, Core, Destination, ValidatorSet};
use tessera_systems::{ChainTip, Pipeline, Stages};

use self::config::{NodeConfig, Role};
use self::genesis::Genesis;
use self::metrics::Metrics;
use self::rpc::{Query, Request, code};
use crate::cli::keygen::KeyFile;
use crate::storage::{Store, StoreConfig};

/// What happened to a transaction this node has seen.
#[derive(Debug, Clone)]
enum Fate {
    Committed { height: u64, result: Result<(), String> },
    Rejected(String),
}

/// Recent transaction fates, bounded: the oldest are forgotten first.
#[derive(Debug, Default)]
struct Fates {
    map: HashMap<TxnId, Fate>,
    order: VecDeque<TxnId>,
}

impl Fates {
    const MAX: usize = 1 << 20;

    /// The whole window, reserved at start: the ring for `MAX` ids, and the map for twice
    /// that, the size a map holding `MAX` entries under constant churn settles at (below it,
    /// tombstones force a resize, a step of ~140 MiB long after the window first filled).
    fn new() -> Fates {
        Fates { map: HashMap::with_capacity(2 * Self::MAX), order: VecDeque::with_capacity(Self::MAX) }
    }

    fn record(&mut self, id: TxnId, fate: Fate) {
        if let Some(known) = self.map.get_mut(&id) {
            *known = fate;
            return;
        }
        // Forget first, so the ring never holds more than `MAX` and never reallocates.
        if self.order.len() == Self::MAX
            && let Some(old) = self.order.pop_front()
        {
            self.map.remove(&old);
        }
        self.map.insert(id, fate);
        self.order.push_back(id);
        debug_assert!(self.order.len() <= Self::MAX);
    }
}

/// Loads a key file.
///
/// # Errors
/// Unreadable, not JSON, or not a 32-byte hex secret matching its public key.
pub fn load_key(path: &Path) -> Result<SigningKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read key file {}: {error}", path.display()))?;
    let file: KeyFile = serde_json::from_str(&text)
        .map_err(|error| format!("key file {} is not valid: {error}", path.display()))?;
    let secret: [u8; 32] = hex::decode(&file.secret_key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| format!("key file {}: secret_key must be 64 hex digits", path.display()))?;
    let key = SigningKey::from_bytes(&secret);
    if hex::encode(key.verifying_key().to_bytes()) != file.public_key {
        return Err(format!("key file {}: public_key does not match secret_key", path.display()));
    }
    Ok(key)
}

/// Microseconds since the first call: the clock the verification stage times its jobs with.
fn monotonic_us() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn block_json(certified: &CertifiedBlock) -> Value {
    let header = &certified.block.header;
    json!({
        "height": header.height,
        "hash": header.hash().to_hex(),
        "parent": header.parent.to_hex(),
        "state_root": header.state_root.to_hex(),
        "txn_root": header.txn_root.to_hex(),
        "view": header.view,
        "proposer": header.proposer,
        "timestamp_ms": header.timestamp_ms,
        "txn_count": header.txn_count,
        "transactions": certified.block.txns.iter().map(|t| t.id().0.to_hex()).collect::<Vec<_>>(),
        "certificate": {
            "view": certified.certificate.view,
            "signers": certified.certificate.signers,
        },
    })
}

/// Runs a node until SIGINT or SIGTERM.
///
/// # Errors
/// Bad configuration, genesis or key; a port that cannot be bound; storage that cannot open.
pub fn run(config_path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let config = NodeConfig::load(config_path)?;
    let genesis = Genesis::load(&config.genesis_file)?;
    let validators = genesis.validator_keys();
    if validators.len() != config.network.peers.len() {
        return Err(format!(
            "config: network.peers has {} entries but genesis has {} validators",
            config.network.peers.len(),
            validators.len()
        )
        .into());
    }
    // Validation guarantees a validator its index and key file, and a full node neither.
    let (me, key) = match (config.role, config.validator_index, &config.key_file) {
        (Role::Validator, Some(me), Some(key_file)) => {
            let key = load_key(key_file)?;
            if validators[me as usize] != key.verifying_key().to_bytes() {
                return Err(format!(
                    "key file {} is not validator {me}'s key in the genesis",
                    key_file.display()
                )
                .into());
            }
            (me, key)
        }
        // A full node proves nothing in the handshake, so its key never signs.
        _ => (net::FOLLOWER, SigningKey::from_bytes(&[0; 32])),
    };
    let full = config.role == Role::Full;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())?;
    }

    let mut pipeline_config = config.pipeline_config();
    pipeline_config.chain_id = genesis.chain_id;
    // The data directory: created on first start, otherwise verified (every checksum) and
    // recovered; a torn final write is dropped and reported, any other damage refuses to start.
    let (mut store, ledger, recovery) =
        Store::open(&config.data_dir, &genesis.balances(), StoreConfig::default())?;
    tracing::info!(
        height = recovery.height,
        torn_bytes_dropped = recovery.torn_bytes_dropped,
        replayed = recovery.replayed,
        created = recovery.created,
        "data directory {} ready",
        config.data_dir.display()
    );
    let tip = ChainTip { height: recovery.height, hash: store.tip_hash(), state_root: recovery.state_root };
    let consensus_config = ConsensusConfig {
        view_timeout_ns: config.consensus.view_timeout_ms * 1_000_000,
        view_timeout_max_ns: config.consensus.view_timeout_ms * 1_000_000 * 30,
        block_interval_ns: config.consensus.block_interval_ms * 1_000_000,
        ..ConsensusConfig::default()
    };
    let set = ValidatorSet::new(validators.clone());
    let core = if full {
        Core::observer(set, consensus_config.clone(), tip.height, tip.hash)
    } else {
        Core::new(me, key.clone(), set, consensus_config.clone(), tip.height, tip.hash)
    };
    let mut pipeline = Pipeline::with_stages(
        pipeline_config,
        ledger,
        tip,
        Stages::Validator { core: Box::new(core), history_bytes_max: 256 << 20 },
    )?;

    pipeline.set_verify_clock(monotonic_us);
    let (net, net_threads) = net::start(net::NetSetup {
        chain_id: genesis.chain_id,
        me,
        key,
        validators: validators.clone(),
        peers: config.network.peers.clone(),
        listen: config.network.listen,
        ingress: config.ingress.listen,
        cores: config.network.cores,
        outbound_queue_frames: config.network.outbound_queue_frames,
        penalty_threshold: config.network.penalty_threshold,
        ban: Duration::from_secs(config.network.ban_secs),
        max_frame_bytes: config.network.max_frame_bytes,
        peer_connections_max: config.network.connections_max,
        ingress_connections_max: config.ingress.connections_max,
        ingress_idle_timeout: Duration::from_secs(config.ingress.idle_timeout_secs),
    })?;
    let metrics = Arc::new(Metrics::new(net.counters.clone()));
    let _metrics_thread = metrics::serve(
        config.metrics.listen,
        config.metrics.connections_max,
        Duration::from_secs(config.metrics.idle_timeout_secs),
        metrics.clone(),
    )?;
    let (rpc_tx, rpc_rx) = flume::bounded::<Request>(1024);
    let rpc_limits = tiny_http::ConnectionLimits {
        max_open: config.rpc.connections_max,
        idle_timeout: Duration::from_secs(config.rpc.idle_timeout_secs),
        stats: metrics.rpc_connections.clone(),
    };
    let _rpc_threads = rpc::serve(config.rpc.listen, config.rpc.body_limit_bytes, rpc_limits, rpc_tx)?;
    tracing::info!(role = ?config.role, validator = ?config.validator_index, peer = %config.network.listen, ingress = %config.ingress.listen, rpc = %config.rpc.listen, metrics = %config.metrics.listen, "node started");

    let mut fates = Fates::new();
    if let Some(mut seen) = pipeline.world_mut().get_resource_mut::<tessera_systems::dedup::SeenIds>() {
        seen.preallocate();
    }
    let mut submitted_at: HashMap<TxnId, u64> = HashMap::new();
    let mut submitted_order: VecDeque<TxnId> = VecDeque::new();
    let tick = Duration::from_millis(config.consensus.tick_ms);
    let mut last_tick = Instant::now() - tick;
    let mut last_trim = Instant::now();
    // A full node asks the validators in turn for what it lacks.
    let mut follow = Follow::default();

    while !stop.load(Ordering::Relaxed) {
        let mut busy = false;
        for _ in 0..4096 {
            let Ok((from, message)) = net.inbound.try_recv() else { break };
            pipeline.deliver(from, message);
            busy = true;
        }
        let now_ns = wall_ns();
        for _ in 0..64 {
            let Ok(batch) = net.txns.try_recv() else { break };
            // Forward client transactions to every validator: any of them may lead next.
            let frame = Arc::new(encode(&Frame::Txns(batch.clone())));
            for peer in 0..config.network.peers.len() as u32 {
                if peer != me {
                    net.send(peer, frame.clone());
                }
            }
            for txn in batch {
                let id = txn.id();
                if pipeline.submit(txn) && submitted_at.insert(id, now_ns).is_none() {
                    submitted_order.push_back(id);
                }
            }
            busy = true;
        }
        for _ in 0..64 {
            let Ok(batch) = net.peer_txns.try_recv() else { break };
            for txn in batch {
                pipeline.submit(txn);
            }
            busy = true;
        }
        // Commits come roughly in submission order, so ids whose time was already taken (by
        // their commit or rejection) leave from the front; what is left is bounded too.
        while submitted_order.front().is_some_and(|id| !submitted_at.contains_key(id)) {
            submitted_order.pop_front();
        }
        while submitted_order.len() > 1 << 20 {
            if let Some(old) = submitted_order.pop_front() {
                submitted_at.remove(&old);
            }
        }
        while let Ok((from_height, reply)) = net.sync_requests.try_recv() {
            let _ = reply.send(Arc::new(sync_response(&store, from_height, &consensus_config)));
        }
        if full && follow.due(pipeline.tip().height) {
            let request = encode(&Frame::Consensus(ConsensusMessage::SyncRequest {
                from_height: pipeline.tip().height + 1,
            }));
            net.send(follow.next_peer(validators.len() as u32), Arc::new(request));
        }
        let mut from_rpc = Vec::new();
        while let Ok(request) = rpc_rx.try_recv() {
            let answer = answer_query(
                request.query,
                &mut pipeline,
                &store,
                &fates,
                &net.counters,
                &mut submitted_at,
                &mut from_rpc,
                now_ns,
            );
            let _ = request.reply.send(answer);
        }
        if !from_rpc.is_empty() {
            // Like ingress batches: every validator may lead next (and a full node never does).
            let frame = Arc::new(encode(&Frame::Txns(from_rpc)));
            for peer in (0..config.network.peers.len() as u32).filter(|peer| *peer != me) {
                net.send(peer, frame.clone());
            }
        }
        if !busy && last_tick.elapsed() < tick {
            // Nothing arrived: wait for the next message or the next tick, whichever is first.
            if let Ok((from, message)) = net.inbound.recv_timeout(tick.saturating_sub(last_tick.elapsed())) {
                pipeline.deliver(from, message);
            }
            continue;
        }
        last_tick = Instant::now();
        pipeline.tick(wall_ns());
        Metrics::record(&metrics.tick_us, last_tick.elapsed().as_micros() as u64);
        for us in pipeline.drain_verify_timings() {
            Metrics::record(&metrics.verify_batch_us, us);
        }
        let finished_ns = wall_ns();
        for rejected in pipeline.drain_rejections() {
            fates.record(rejected.id, Fate::Rejected(rejected.reason.name().to_owned()));
            submitted_at.remove(&rejected.id);
        }
        let certified_blocks = pipeline.drain_certified();
        // Durable first: only a block whose record and index entry are synced is reported
        // anywhere (RPC, metrics, logs).
        let (durable, written) = store.commit_finalized(&certified_blocks, pipeline.ledger());
        let persist_failed = written.err();
        for certified in certified_blocks.into_iter().take(durable) {
            let header = certified.block.header;
            Metrics::record(
                &metrics.propagation_us,
                finished_ns.saturating_sub(header.timestamp_ms * 1_000_000) / 1000,
            );
            for txn in &certified.block.txns {
                let id = txn.id();
                if let Some(at) = submitted_at.remove(&id) {
                    Metrics::record(&metrics.commit_latency_us, finished_ns.saturating_sub(at) / 1000);
                }
                fates.record(id, Fate::Committed { height: header.height, result: Ok(()) });
            }
            tracing::debug!(height = header.height, txns = header.txn_count, "finalized");
        }
        if let Some(error) = persist_failed {
            // A node that cannot persist must not go on voting as if it had.
            tracing::error!(%error, "cannot persist a finalized block; stopping");
            net.stop.store(true, Ordering::Relaxed);
            return Err(error.into());
        }
        for (destination, message) in pipeline.drain_outbound() {
            let frame = Arc::new(encode(&Frame::Consensus(message)));
            match destination {
                Destination::All => {
                    for peer in 0..config.network.peers.len() as u32 {
                        if peer != me {
                            net.send(peer, frame.clone());
                        }
                    }
                }
                Destination::One(peer) => net.send(peer, frame),
            }
        }
        if last_trim.elapsed() >= heap::TRIM_INTERVAL {
            let (took, _) = heap::release_free_pages();
            Metrics::record(&metrics.trim_us, took.as_micros() as u64);
            last_trim = Instant::now();
        }
        publish_gauges(
            &metrics,
            &pipeline,
            [
                ("tessera_node_window_entries{window=\"fates\"}", fates.order.len()),
                ("tessera_node_window_entries{window=\"submit_times\"}", submitted_at.len()),
                ("tessera_node_window_entries{window=\"submit_order\"}", submitted_order.len()),
            ],
        );
    }
    tracing::info!(height = pipeline.tip().height, "shutting down");
    // A fresh snapshot at the last committed height, so the next start replays nothing.
    if let Err(error) = store.write_state(pipeline.ledger()) {
        tracing::warn!(%error, "could not write the final state snapshot; the next start replays");
    }
    net.stop.store(true, Ordering::Relaxed);
    drop(net_threads);
    Ok(())
}

/// When a full node asks for blocks, and whom.
#[derive(Debug, Default)]
struct Follow {
    last_request: Option<Instant>,
    height_at_request: u64,
    peer: u32,
}

impl Follow {
    /// Ask again as soon as the last answer moved the tip (more may be waiting), else at most
    /// every 20 ms (a request also goes elsewhere if a validator is slow or gone).
    fn due(&mut self, height: u64) -> bool {
        let due = match self.last_request {
            None => true,
            Some(at) => height > self.height_at_request || at.elapsed() >= Duration::from_millis(20),
        };
        if due {
            self.last_request = Some(Instant::now());
            self.height_at_request = height;
        }
        due
    }

    fn next_peer(&mut self, validators: u32) -> u32 {
        self.peer = (self.peer + 1) % validators.max(1);
        self.peer
    }
}

/// A `SyncResponse` frame with the finalized blocks from `from_height`, read from storage,
/// bounded like the consensus core's own responses.
fn sync_response(store: &Store, from_height: u64, config: &ConsensusConfig) -> Vec<u8> {
    let mut blocks = Vec::new();
    let mut bytes = 0;
    for height in from_height.max(1)..from_height.max(1).saturating_add(config.sync_batch_max as u64) {
        let Ok(Some((block, certificate))) = store.block(height) else { break };
        let certified = CertifiedBlock { block, certificate };
        bytes += tessera_systems::consensus::core::sync_cost(&certified);
        if !blocks.is_empty() && bytes > config.sync_bytes_max {
            break;
        }
        blocks.push(certified);
    }
    encode(&Frame::Consensus(ConsensusMessage::SyncResponse(blocks)))
}

fn publish_gauges(metrics: &Metrics, pipeline: &Pipeline, windows: [(&'static str, usize); 3]) {
    let tip = pipeline.tip();
    let counters = pipeline.counters();
    let mut gauges: Vec<(&'static str, &'static str, &'static str, f64)> = vec![
        ("tessera_chain_height", "gauge", "Height of the last finalized block.", tip.height as f64),
        (
            "tessera_mempool_transactions",
            "gauge",
            "Transactions pending in the mempool.",
            pipeline.mempool_len() as f64,
        ),
        (
            "tessera_pipeline_ingested_total",
            "counter",
            "Transactions ingested into the pipeline.",
            counters.ingested as f64,
        ),
        (
            "tessera_pipeline_verified_total",
            "counter",
            "Signatures verified (cache misses).",
            counters.verified as f64,
        ),
        (
            "tessera_pipeline_verify_cache_hits_total",
            "counter",
            "Signatures found in the verification cache.",
            counters.verify_cache_hits as f64,
        ),
        (
            "tessera_pipeline_admitted_total",
            "counter",
            "Transactions admitted to the mempool.",
            counters.admitted as f64,
        ),
        (
            "tessera_pipeline_executed_total",
            "counter",
            "Transactions executed successfully.",
            counters.executed as f64,
        ),
        (
            "tessera_pipeline_failed_total",
            "counter",
            "Transactions in blocks that failed at execution.",
            counters.failed as f64,
        ),
    ];
    let seen =
        pipeline.world().get_resource::<tessera_systems::dedup::SeenIds>().map_or(0, |seen| seen.len());
    gauges.push((
        "tessera_node_window_entries{window=\"duplicate_ids\"}",
        "gauge",
        "Entries in each of the node's bounded id windows.",
        seen as f64,
    ));
    for (labelled, entries) in windows {
        gauges.push((labelled, "gauge", "Entries in each of the node's bounded id windows.", entries as f64));
    }
    static REJECT_SERIES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let series = REJECT_SERIES.get_or_init(|| {
        pipeline
            .reject_counters()
            .iter()
            .map(|(name, _)| format!("tessera_rejected_transactions_total{{reason=\"{name}\"}}"))
            .collect()
    });
    for (labelled, (_, count)) in series.iter().zip(pipeline.reject_counters().iter()) {
        gauges.push((labelled.as_str(), "counter", "Transactions refused, by reason.", count as f64));
    }
    if let Some(consensus) = pipeline.consensus() {
        let (history_blocks, history_bytes) = consensus.history_held();
        gauges.extend([
            (
                "tessera_node_sync_history_blocks",
                "gauge",
                "Finalized blocks kept in memory for peers that sync.",
                history_blocks as f64,
            ),
            (
                "tessera_node_sync_history_bytes",
                "gauge",
                "Cost of the sync history as counted against its bound (transaction bytes plus 512 per block).",
                history_bytes as f64,
            ),
            (
                "tessera_node_speculative_ledgers",
                "gauge",
                "Ledgers executed for validated blocks not yet finalized.",
                consensus.speculative_held() as f64,
            ),
        ]);
        let c = consensus.core.counters();
        gauges.extend([
            ("tessera_consensus_view", "gauge", "Current consensus view.", consensus.core.view() as f64),
            ("tessera_consensus_finalized_blocks_total", "counter", "Blocks finalized.", c.finalized as f64),
            (
                "tessera_consensus_synced_blocks_total",
                "counter",
                "Blocks finalized through block sync.",
                c.synced as f64,
            ),
            ("tessera_consensus_timeouts_total", "counter", "Views abandoned on timeout.", c.timeouts as f64),
            (
                "tessera_consensus_equivocations_total",
                "counter",
                "Equivocations detected.",
                c.equivocations as f64,
            ),
            (
                "tessera_consensus_rejected_state_root_total",
                "counter",
                "Proposals refused for a wrong state root.",
                c.rejected_state_root as f64,
            ),
            (
                "tessera_consensus_rejected_invalid_transaction_total",
                "counter",
                "Proposals refused for an invalid transaction.",
                c.rejected_invalid_txn as f64,
            ),
            (
                "tessera_consensus_rejected_over_limit_total",
                "counter",
                "Proposals refused for exceeding limits.",
                c.rejected_over_limit as f64,
            ),
        ]);
    }
    let backend: &'static str = match tessera_systems::kernels::sigverify::curve_backend() {
        "avx512" => "tessera_sigverify_backend_info{backend=\"avx512\"}",
        "avx2" => "tessera_sigverify_backend_info{backend=\"avx2\"}",
        _ => "tessera_sigverify_backend_info{backend=\"serial\"}",
    };
    gauges.push((backend, "gauge", "The curve arithmetic backend in use (value 1).", 1.0));
    #[cfg(feature = "dhat-heap")]
    {
        let heap = dhat::HeapStats::get();
        gauges.extend([
            (
                "tessera_heap_allocations_total",
                "counter",
                "Heap allocations since start.",
                heap.total_blocks as f64,
            ),
            (
                "tessera_heap_allocated_bytes_total",
                "counter",
                "Bytes allocated since start.",
                heap.total_bytes as f64,
            ),
            (
                "tessera_heap_live_bytes",
                "gauge",
                "Bytes allocated and not yet freed.",
                heap.curr_bytes as f64,
            ),
            ("tessera_heap_live_allocations", "gauge", "Allocations not yet freed.", heap.curr_blocks as f64),
        ]);
    }
    if let Ok(mut slot) = metrics.gauges.lock() {
        *slot = gauges;
    }
}

#[allow(clippy::too_many_arguments)]
fn answer_query(
    query: Query,
    pipeline: &mut Pipeline,
    store: &Store,
    fates: &Fates,
    net: &net::NetCounters,
    submitted_at: &mut HashMap<TxnId, u64>,
    forward: &mut Vec<Txn>,
    now_ns: u64,
) -> Result<Value, (i64, String)> {
    match query {
        Query::Status => {
            let tip = pipeline.tip();
            Ok(json!({
                "height": tip.height,
                "finalized_height": tip.height,
                "block_hash": tip.hash.to_hex(),
                "state_root": tip.state_root.to_hex(),
                "peers": net.peers_connected.load(Ordering::Relaxed),
                "mempool_size": pipeline.mempool_len(),
                "view": pipeline.consensus().map_or(0, |c| c.core.view()),
                "role": if pipeline.consensus().is_some_and(|c| c.core.is_observer()) { "full" } else { "validator" },
            }))
        }
        Query::Block(height) => match store.block(height) {
            Ok(Some((block, certificate))) => Ok(block_json(&CertifiedBlock { block, certificate })),
            Ok(None) => Ok(Value::Null),
            Err(error) => Err((code::SERVER_BUSY, format!("cannot read block {height}: {error}"))),
        },
        Query::BlockRange(from, count) => {
            let mut blocks = Vec::new();
            for height in from.max(1)..from.saturating_add(count) {
                match store.block(height) {
                    Ok(Some((block, _))) => blocks.push(json!({
                        "height": height,
                        "hash": block.header.hash().to_hex(),
                        "transactions": block.txns.iter().map(|t| t.id().0.to_hex()).collect::<Vec<_>>(),
                    })),
                    Ok(None) => break,
                    Err(error) => {
                        return Err((code::SERVER_BUSY, format!("cannot read block {height}: {error}")));
                    }
                }
            }
            Ok(Value::Array(blocks))
        }
        Query::Account(address) => {
            let ledger = pipeline.ledger();
            Ok(match ledger.account(&address) {
                Some(account) => json!({"exists": true, "balance": account.balance, "nonce": account.nonce}),
                None => json!({"exists": false, "balance": 0, "nonce": 0}),
            })
        }
        Query::Transaction(id) => {
            let id = TxnId(Hash(id));
            Ok(match fates.map.get(&id) {
                Some(Fate::Committed { height, result }) => match result {
                    Ok(()) => json!({"status": "committed", "height": height}),
                    Err(reason) => json!({"status": "committed", "height": height, "failed": reason}),
                },
                Some(Fate::Rejected(reason)) => json!({"status": "rejected", "reason": reason}),
                None if pipeline.is_pending(&id) || submitted_at.contains_key(&id) => {
                    json!({"status": "pending"})
                }
                None => json!({"status": "unknown"}),
            })
        }
        Query::Submit(txn) => {
            let id = txn.id();
            if !pipeline.submit(*txn) {
                return Err((code::SERVER_BUSY, "inbox full, retry later".into()));
            }
            forward.push(*txn);
            submitted_at.entry(id).or_insert(now_ns);
            Ok(json!(id.0.to_hex()))
        }
    }
}
