//! `tessera node --config FILE`: one validator on real sockets.
//!
//! Bird's eye view: the main thread owns the `Pipeline` (the ECS world and schedule) and runs
//! the node loop: drain the network's inbound queues and the RPC queries, tick the schedule
//! with wall-clock time, persist and index what was finalized, and hand outbound consensus
//! messages to the network's per-peer queues; then publish what reads need ([`reads`]). The
//! network runs on glommio executors ([`net`]), JSON-RPC and metrics on one HTTP server thread
//! each ([`http`], [`rpc`], [`metrics`]); the RPC thread answers reads from the published view
//! and sends the rest (accounts, older blocks, submissions) to the loop.

pub mod config;
pub mod genesis;
pub mod heap;
pub mod http;
pub mod key;
pub mod metrics;
pub mod net;
pub mod proof;
pub mod reads;
pub mod rpc;
pub mod subscribe;
mod window;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use tessera_components::wire::{Frame, encode};
use tessera_components::{CertifiedBlock, ChainTag, ConsensusMessage, Hash, Source, Txn, TxnId, VoteKind};
use tessera_systems::consensus::core::{ConsensusConfig, Core, Destination, ValidatorSet, verify_messages};
use tessera_systems::{ChainTip, Pipeline, Stages, TxnOutcome};

use self::config::{NodeConfig, Role};
use self::genesis::Genesis;
pub use self::key::load_key;
use self::metrics::Metrics;
use self::net::Lane;
use self::reads::{ReadView, Status};
use self::rpc::{Query, Request, code};
use self::window::IdWindow;
use crate::forward::Forwarding;
use crate::storage::{Store, StoreConfig};
use crate::{InputError, driver};

/// What happened to a transaction this node has seen.
#[derive(Debug, Clone)]
enum Fate {
    Committed { height: u64, result: Result<(), String> },
    Rejected(String),
}

/// Recent transaction fates, bounded, the oldest forgotten first, in two windows: what
/// finalized blocks decided, and what was refused before any block. A refusal costs its sender
/// nothing (256 malformed transactions a JSON-RPC call), and in one window refusals pushed a
/// committed payment out within seconds: `tessera_getTransaction` then answered `unknown`, and
/// a wallet that signs again on `unknown` pays twice (found in review). Refusals now push out
/// refusals only.
#[derive(Debug)]
struct Fates {
    committed: IdWindow<Fate>,
    rejected: IdWindow<Fate>,
}

impl Fates {
    /// Fates of transactions in finalized blocks kept.
    const MAX: usize = 1 << 20;
    /// Refusals kept.
    const REJECTED_MAX: usize = 1 << 18;

    /// Both windows, reserved at start (see [`IdWindow::reserved`]).
    fn new() -> Fates {
        Fates { committed: IdWindow::reserved(Self::MAX), rejected: IdWindow::reserved(Self::REJECTED_MAX) }
    }

    /// Windows of `max` ids each, reserving nothing (for tests).
    #[cfg(test)]
    fn with_max(max: usize) -> Fates {
        Fates { committed: IdWindow::new(max), rejected: IdWindow::new(max) }
    }

    /// Records what happened to `id`. A fate in a finalized block is final: nothing recorded
    /// later (a replay of the same bytes refused as a duplicate, say) replaces it. Only an
    /// executed transfer goes to the committed window. One that failed in its block moved no
    /// amount (it may have paid its fee: see `Overlay::apply`), and a Byzantine leader can fill
    /// its blocks with failures that paid nothing, so failures share the refusals' window,
    /// where a refusal does not replace them: a wallet that reads `unknown` for one and signs
    /// again risks a second fee, never a second payment.
    fn record(&mut self, id: TxnId, fate: Fate) {
        let executed = matches!(fate, Fate::Committed { result: Ok(()), .. });
        if executed {
            if self.rejected.remove(&id).is_some() {
                self.rejected.trim();
            }
            self.committed.record(id, fate, |_| false);
        } else if !self.committed.contains(&id) {
            let failed = matches!(fate, Fate::Committed { .. });
            self.rejected.record(id, fate, |known| failed || !matches!(known, Fate::Committed { .. }));
        }
    }

    /// What is known of `id`.
    fn get(&self, id: &TxnId) -> Option<&Fate> {
        self.committed.get(id).or_else(|| self.rejected.get(id))
    }

    /// Places taken in both windows' rings.
    fn ring_len(&self) -> usize {
        self.committed.ring_len() + self.rejected.ring_len()
    }

    /// Records the outcome of every transaction of the finalized block at `height`: executed,
    /// or failed with its reason (a failed transfer changed nothing).
    fn record_block(&mut self, height: u64, outcomes: &[TxnOutcome]) {
        for outcome in outcomes {
            let result = outcome.result.map_err(|reason| reason.name().to_owned());
            self.record(outcome.id, Fate::Committed { height, result });
        }
    }
}

/// Microseconds since the first call: the clock the verification stage times its jobs with.
fn monotonic_us() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Microseconds from a block's timestamp (its leader's clock, in ms) to `finished_ns`; 0 for a
/// timestamp ahead. The timestamp is the leader's to choose: one of `u64::MAX` overflowed the
/// conversion to ns, a panic in a debug build on every validator that finalized the block
/// (found in review).
fn propagation_us(finished_ns: u64, timestamp_ms: u64) -> u64 {
    finished_ns.saturating_sub(timestamp_ms.saturating_mul(1_000_000)) / 1000
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

/// When each transaction this node took from a client arrived (wall ns), for its commit
/// latency: a bounded window, oldest forgotten first. Commit and rejection take an id out.
type SubmitTimes = IdWindow<u64>;

/// Ids a [`SubmitTimes`] window holds at most.
const SUBMIT_TIMES_MAX: usize = 1 << 20;

/// Transactions taken off each of the network's two queues (clients', and those forwarded by
/// peers) a tick, about (a batch is taken whole): 16,384 at a 2 ms tick is 8 M a second, far
/// past what verification keeps up with. A budget per queue, so a flood on one does not starve
/// the other.
const DRAIN_TXNS_MAX: usize = 1 << 14;

/// How long one pass of the node loop spends on queued reads (JSON-RPC queries the published
/// view could not answer, full nodes' sync requests) before it goes back to consensus; what
/// is left stays queued, in order, for the next pass. Each read is of storage (an old block, a
/// range of up to 256 of them): a body of 256 such queries was 65,536 block reads, and the
/// loop took all of them before it ticked again, so a client could keep a validator from
/// voting (found in review).
const READS_PASS_BUDGET: Duration = Duration::from_millis(2);

/// A batch taken off a network queue whose transactions are not all in the pipeline's inbox
/// yet: the rest waits for room, first at the next drain, and its queue is not read meanwhile.
type Held<S> = Option<(S, VecDeque<Txn>)>;

/// Moves transactions off a network queue (`take`, while `budget` lasts) into the pipeline's
/// inbox (`submit`), at most `room` of them: first what `held` kept from the last drain. What
/// does not fit stays in `held`, so nothing taken off the network is dropped for want of room,
/// and while it waits its queue fills and backs up into its senders' sockets. Returns how many
/// it submitted. Before, batches were taken whatever the inbox's room and the inbox dropped what
/// it could not hold: a client flood that filled it had every batch the validators forwarded
/// dropped (found in review).
fn feed<S>(
    held: &mut Held<S>,
    room: usize,
    budget: &mut DrainBudget,
    mut take: impl FnMut() -> Option<(S, Vec<Txn>)>,
    mut submit: impl FnMut(&S, Txn),
) -> usize {
    let mut fed = 0;
    while fed < room {
        if held.is_none() {
            let Some((from, batch)) = budget.next(&mut take) else { break };
            *held = Some((from, batch.into()));
        }
        let (from, txns) = held.as_mut().expect("a batch held");
        while fed < room
            && let Some(txn) = txns.pop_front()
        {
            submit(from, txn);
            fed += 1;
        }
        if txns.is_empty() {
            *held = None;
        }
    }
    fed
}

/// The refusals of a tick that say something of their transaction: not those of an id still
/// pending, a copy of it (sent again, or a twin the prefilter refused for its taken nonce)
/// refused while the original waits. Recorded, `tessera_getTransaction` read "rejected" for a
/// transaction about to commit, and subscribers were told so, by anyone who replayed its bytes
/// (found in review).
fn still_refused(
    rejections: Vec<tessera_systems::messages::TxnRejected>,
    pending: impl Fn(&TxnId) -> bool,
) -> Vec<tessera_systems::messages::TxnRejected> {
    rejections.into_iter().filter(|rejected| !pending(&rejected.id)).collect()
}

/// Drops what `held` keeps of a batch whose sender has been banned since (for forgeries found
/// in what the inbox took of it): the rest was fed before, unverified (found in review).
/// Returns how many transactions it dropped.
fn drop_if_banned<S>(held: &mut Held<S>, banned: impl Fn(&S) -> bool) -> usize {
    held.take_if(|(from, _)| banned(from)).map_or(0, |(_, txns)| txns.len())
}

/// [`feed`]s the inbox's `room`, less what it leaves for the JSON-RPC submissions the node loop
/// takes after (an eighth, 1,024 at most), from the clients' queue, half of it at most, then
/// from the peers' queue, the rest: a client flood leaves the validators' forwarded batches
/// their half. Returns how many it submitted.
fn feed_inbox<C, P>(
    room: usize,
    held_client: &mut Held<C>,
    take_client: impl FnMut() -> Option<(C, Vec<Txn>)>,
    held_peer: &mut Held<P>,
    take_peer: impl FnMut() -> Option<(P, Vec<Txn>)>,
    mut submit: impl FnMut(Fed<'_, C, P>, Txn),
) -> usize {
    let room = room - (room / 8).min(1024);
    let budget = &mut DrainBudget::new();
    let fed = feed(held_client, room / 2, budget, take_client, |from, txn| submit(Fed::Client(from), txn));
    let budget = &mut DrainBudget::new();
    fed + feed(held_peer, room - fed, budget, take_peer, |from, txn| submit(Fed::Peer(from), txn))
}

/// Whose queue a transaction [`feed_inbox`] submits came off, and its source there.
enum Fed<'a, C, P> {
    Client(&'a C),
    Peer(&'a P),
}

/// Takes items from `next` and hands each to `handle` until `budget` has passed since the
/// first: at least one when one is there, and no more once the budget is spent. Returns how
/// many it took.
fn drain_for<T>(budget: Duration, mut next: impl FnMut() -> Option<T>, mut handle: impl FnMut(T)) -> usize {
    let started = Instant::now();
    let mut taken = 0;
    while let Some(item) = next() {
        handle(item);
        taken += 1;
        if started.elapsed() >= budget {
            break;
        }
    }
    taken
}

/// What one queue may still hand the node loop this tick: 64 batches, and about
/// [`DRAIN_TXNS_MAX`] transactions. 64 batches of a full frame each were ~400k transactions,
/// each hashed and submitted before the tick got to consensus.
struct DrainBudget {
    batches: usize,
    txns: usize,
}

impl DrainBudget {
    fn new() -> DrainBudget {
        DrainBudget { batches: 64, txns: DRAIN_TXNS_MAX }
    }

    /// The next batch `take` gives while the budget lasts; a batch is taken whole.
    fn next<S, T>(&mut self, mut take: impl FnMut() -> Option<(S, Vec<T>)>) -> Option<(S, Vec<T>)> {
        if self.batches == 0 || self.txns == 0 {
            return None;
        }
        let (source, batch) = take()?;
        self.batches -= 1;
        self.txns = self.txns.saturating_sub(batch.len());
        Some((source, batch))
    }
}

/// A running node: the pipeline and everything around it that the node loop drives. Each step
/// of the loop is a method: [`Node::drain_network`], [`Node::answer_rpc`],
/// [`Node::tick_and_persist`] (which ends by sending), [`Node::housekeeping`].
struct Node {
    pipeline: Pipeline,
    store: Store,
    net: net::NetHandles,
    metrics: Arc<Metrics>,
    rpc: flume::Receiver<Request>,
    /// What reads need, published after each tick; it holds the fate window.
    reads: Arc<ReadView>,
    submitted: SubmitTimes,
    /// Client transactions to forward to the other validators once admitted here, and what
    /// went to the next leaders, to send again when they did not include it.
    forwarding: Forwarding,
    consensus_config: ConsensusConfig,
    /// This validator's index, or [`net::FOLLOWER`].
    me: u32,
    validators: u32,
    full: bool,
    tick: Duration,
    last_tick: Instant,
    last_trim: Instant,
    /// A full node asks the validators in turn for what it lacks.
    follow: Follow,
    /// What the inbox had no room for of the last client batch, and of the last batch peers
    /// forwarded ([`feed`]).
    held_client: Held<Option<IpAddr>>,
    held_peer: Held<Option<Source>>,
    stop: Arc<AtomicBool>,
    /// The JSON-RPC and metrics servers, stopped and joined at shutdown.
    http: Vec<http::Server>,
    /// Threads that live as long as the node: the network's.
    _threads: Vec<std::thread::JoinHandle<()>>,
}

/// Runs a node until SIGINT or SIGTERM.
///
/// # Errors
/// Bad configuration, genesis or key; a port that cannot be bound; storage that cannot open.
pub fn run(config_path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut node = Node::start(config_path)?;
    while !node.stop.load(Ordering::Relaxed) {
        let busy = node.drain_network();
        let reads_left = node.answer_rpc();
        if !busy && node.last_tick.elapsed() < node.tick {
            // Reads left over from their budget go on until the tick is due; otherwise the
            // loop sleeps until a message or the tick, and they would wait for one.
            if !reads_left {
                node.wait_for_message();
            }
            continue;
        }
        node.tick_and_persist()?;
        node.housekeeping();
    }
    node.shut_down();
    Ok(())
}

/// Open files a node asks for: its ports' open and waiting connections (each HTTP port holds up
/// to `connections_max` plus [`http::waiting_max`] of it), peers, followers and storage
/// segments.
const OPEN_FILES_WANTED: u64 = 65_536;

/// Raises the soft open-files limit toward [`OPEN_FILES_WANTED`], within the hard limit: a
/// shell's default soft limit of 1,024 is less than the connections the ports may hold, and a
/// descriptor taken by a client is then one a peer dial or a segment cannot have.
fn raise_open_files_limit() {
    match rlimit::utils::increase_nofile_limit(OPEN_FILES_WANTED) {
        Ok(limit) if limit < 4096 => tracing::warn!(
            limit,
            "open-files limit is low for a node's connections; raise the hard limit (ulimit -Hn, LimitNOFILE)"
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot raise the open-files limit"),
    }
}

impl Node {
    /// Loads the configuration, genesis and key; opens (or creates, or recovers) the data
    /// directory; starts the network, RPC and metrics servers.
    fn start(config_path: &Path) -> Result<Node, Box<dyn std::error::Error>> {
        let config = NodeConfig::load(config_path)?;
        let genesis = Genesis::load(&config.genesis_file)?;
        // Before anything is built or written: a ledger that cannot fit is refused, not grown
        // into until the kernel stops the process.
        let accounts = format!("a genesis of {} accounts", genesis.account_count());
        crate::check_memory(genesis.ledger_bytes(), &accounts).map_err(InputError)?;
        let validators = genesis.validator_keys();
        if validators.len() != config.network.peers.len() {
            return Err(InputError(format!(
                "config: network.peers has {} entries but genesis has {} validators",
                config.network.peers.len(),
                validators.len()
            ))
            .into());
        }
        // Validation guarantees a validator its index and key file, and a full node neither.
        let (me, key) = match (config.role, config.validator_index, &config.key_file) {
            (Role::Validator, Some(me), Some(key_file)) => {
                let key = load_key(key_file).map_err(InputError)?;
                if validators[me as usize] != key.verifying_key().to_bytes() {
                    return Err(InputError(format!(
                        "key file {} is not validator {me}'s key in the genesis",
                        key_file.display()
                    ))
                    .into());
                }
                (me, key)
            }
            // A full node proves nothing in the handshake, so its key never signs.
            _ => (net::FOLLOWER, SigningKey::from_bytes(&[0; 32])),
        };
        raise_open_files_limit();
        let full = config.role == Role::Full;
        let stop = Arc::new(AtomicBool::new(false));
        // Until the node is up, SIGINT and SIGTERM stop it at once, as they would with no
        // handler: opening a large data directory takes seconds, and a node that waited for it
        // to finish before heeding the signal could not be stopped while it started. The store
        // is crash-safe, so a start cut short leaves nothing a restart cannot recover.
        let starting = Arc::new(AtomicBool::new(true));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register_conditional_default(signal, starting.clone())?;
            signal_hook::flag::register(signal, stop.clone())?;
        }

        let mut pipeline_config = config.pipeline_config();
        pipeline_config.chain_id = genesis.chain_id;
        check_ports_free(&config)?;
        // The data directory: created on first start, otherwise verified (every checksum) and
        // recovered; a torn final write is dropped and reported, any other damage refuses to
        // start.
        tracing::info!(
            accounts = genesis.account_count(),
            "opening data directory {} (a large genesis or state takes seconds)",
            config.data_dir.display()
        );
        let (store, ledger, recovery) =
            Store::open(&config.data_dir, &genesis.balances(), StoreConfig::default())?;
        tracing::info!(
            height = recovery.height,
            torn_bytes_dropped = recovery.torn_bytes_dropped,
            state_height = recovery.state_height,
            state_deltas = recovery.deltas,
            replayed = recovery.replayed,
            created = recovery.created,
            address_index = %recovery.address_index,
            state_log = %recovery.log_applied,
            "data directory {} ready",
            config.data_dir.display()
        );
        let tip =
            ChainTip { height: recovery.height, hash: store.tip_hash(), state_root: recovery.state_root };
        let consensus_config = ConsensusConfig {
            view_timeout_ns: config.consensus.view_timeout_ms * 1_000_000,
            view_timeout_max_ns: config.consensus.view_timeout_ms * 1_000_000 * 30,
            block_interval_ns: config.consensus.block_interval_ms * 1_000_000,
            aggregate_votes_from: config.consensus.aggregate_votes_from.unwrap_or(usize::MAX),
            forward_to_leaders_from: config.consensus.forward_to_leaders_from.unwrap_or(usize::MAX),
            ..ConsensusConfig::default()
        };
        // Every consensus signature is bound to this chain: its id, its genesis balances and
        // its validators.
        let chain = ChainTag::of(genesis.chain_id, &store.genesis_id(), &validators);
        let set = ValidatorSet::new(validators.clone()).on_chain(chain);
        check_tip_signed(&store, &set).map_err(|error| {
            format!(
                "data directory {}: {error}; it was not written by a node of this chain, or was altered",
                config.data_dir.display()
            )
        })?;
        let core = if full {
            Core::observer(set, consensus_config.clone(), tip.height, tip.hash)
        } else {
            let core = Core::new(me, key.clone(), set, consensus_config.clone(), tip.height, tip.hash);
            // Resume from what this validator bound itself to before it stopped: it signs
            // nothing in a view it may already have signed in.
            if let Some(saved) = &recovery.safety {
                tracing::info!(
                    height = saved.height,
                    view = saved.view,
                    locked = saved.lock.is_some(),
                    "safety state recovered"
                );
            }
            let (core, stand_in) =
                driver::resume(core, recovery.safety.as_ref(), recovery.safety_uncertain, tip.height);
            if recovery.safety_damaged && !stand_in {
                tracing::warn!(
                    "a safety slot (safety-0 or safety-1) is torn or damaged; the other holds the newest \
                     state, and the next save rewrites both"
                );
            }
            if stand_in {
                tracing::warn!(
                    height = tip.height,
                    damaged = recovery.safety_damaged,
                    "the safety state may be older than what this validator signed (both slots lost or \
                     damaged, or one damaged beside the older one-slot format): signing nothing until \
                     height {} is reached by sync",
                    tip.height + 2
                );
            }
            core
        };
        let mut pipeline = Pipeline::with_stages(
            pipeline_config,
            ledger,
            tip,
            Stages::Validator { core: Box::new(core), history_bytes_max: 256 << 20 },
        )?;
        pipeline.set_verify_clock(monotonic_us);
        let restored = driver::restore_sync_history(&mut pipeline, &store);
        tracing::debug!(blocks = restored, "sync history restored from the store");

        let (net, threads) = net::start(net::NetSetup {
            chain_id: genesis.chain_id,
            me,
            key,
            validators: validators.clone(),
            peers: config.network.peers.clone(),
            listen: config.network.listen,
            ingress: config.ingress.listen,
            cores: config.network.cores,
            outbound_queue_frames: config.network.outbound_queue_frames,
            outbound_queue_bytes: config.network.outbound_queue_bytes,
            penalty_threshold: config.network.penalty_threshold,
            ban: Duration::from_secs(config.network.ban_secs),
            max_frame_bytes: config.network.max_frame_bytes,
            peer_connections_max: config.network.connections_max,
            followers_max: config.network.followers_max,
            follower_idle_timeout: Duration::from_secs(config.network.follower_idle_timeout_secs),
            validator_idle_timeout: Duration::from_secs(60),
            follower_sync_bytes_per_sec: config.network.follower_sync_bytes_per_sec,
            connections_per_address_max: config.network.connections_per_address_max,
            ingress_connections_max: config.ingress.connections_max,
            ingress_idle_timeout: Duration::from_secs(config.ingress.idle_timeout_secs),
            trust_loopback: config.network.trust_loopback,
        })?;
        let metrics = Arc::new(Metrics::new(net.counters.clone()));
        let http_limits = |connections_max, connections_per_address_max, idle_timeout_secs| {
            let timeout = Duration::from_secs(idle_timeout_secs);
            http::Limits {
                connections_max,
                connections_per_address_max,
                header_timeout: timeout,
                body_timeout: timeout,
                write_timeout: timeout,
            }
        };
        let metrics_server = metrics::serve(
            config.metrics.listen,
            http_limits(
                config.metrics.connections_max,
                config.metrics.connections_per_address_max,
                config.metrics.idle_timeout_secs,
            ),
            metrics.clone(),
        )?;
        let (rpc_tx, rpc_rx) = flume::bounded::<Request>(rpc::NODE_QUEUE_MAX);
        let reads = Arc::new(ReadView::new(net.counters.clone()));
        // Published before the server starts, so no read waits for the first tick.
        reads.publish([], node_status(&pipeline));
        let rpc_server = rpc::serve(
            config.rpc.listen,
            config.rpc.body_limit_bytes,
            http_limits(
                config.rpc.connections_max,
                config.rpc.connections_per_address_max,
                config.rpc.idle_timeout_secs,
            ),
            metrics.rpc_http.clone(),
            rpc_tx,
            reads.clone(),
        )?;
        let validator = config.validator_index.map_or_else(|| "none".to_owned(), |index| index.to_string());
        tracing::info!(role = %config.role.name(), validator = %validator, peer = %config.network.listen, ingress = %config.ingress.listen, rpc = %config.rpc.listen, metrics = %config.metrics.listen, "node started");

        if let Some(mut seen) = pipeline.world_mut().get_resource_mut::<tessera_systems::dedup::SeenIds>() {
            seen.preallocate();
        }
        // Up: from here a signal stops the node at the end of its tick.
        starting.store(false, Ordering::SeqCst);
        let tick = Duration::from_millis(config.consensus.tick_ms);
        Ok(Node {
            pipeline,
            store,
            net,
            metrics,
            rpc: rpc_rx,
            reads,
            submitted: SubmitTimes::new(SUBMIT_TIMES_MAX),
            forwarding: Forwarding::new(config.network.max_frame_bytes),
            consensus_config,
            me,
            validators: validators.len() as u32,
            full,
            tick,
            last_tick: Instant::now() - tick,
            last_trim: Instant::now(),
            follow: Follow::default(),
            held_client: None,
            held_peer: None,
            stop,
            http: vec![rpc_server, metrics_server],
            _threads: threads,
        })
    }

    /// Moves what the network received into the pipeline: consensus messages, client and
    /// forwarded transactions, sync requests; and, on a full node, asks for blocks it lacks.
    /// True when anything arrived.
    fn drain_network(&mut self) -> bool {
        let mut busy = false;
        let inbound = self.net.inbound.clone();
        // Each message's place in its sender's share of the queue is given back as it is taken.
        busy |=
            self.take_consensus(inbound.try_iter().take(4096).map(|(from, message, _)| (from, message))) > 0;
        let now_ns = wall_ns();
        let room = self.pipeline.inbox_room();
        let net = &self.net;
        // Sent before its sender was banned (for forgeries found in what it sent earlier):
        // dropped, not verified, whether still queued or held from the last drain.
        let client_banned = |from: &Option<IpAddr>| from.is_some_and(|ip| net.is_address_banned(ip));
        let peer_banned = |from: &Option<Source>| match from {
            Some(Source::Validator(validator)) => net.is_banned(*validator),
            Some(Source::Address(octets)) => {
                net.is_address_banned(std::net::Ipv6Addr::from(*octets).to_canonical())
            }
            None => false,
        };
        let forwarded_dropped = |count: usize| {
            let dropped = &net.counters.forwarded_from_banned_dropped;
            dropped.fetch_add(count as u64, std::sync::atomic::Ordering::Relaxed);
        };
        drop_if_banned(&mut self.held_client, client_banned);
        forwarded_dropped(drop_if_banned(&mut self.held_peer, peer_banned));
        let (pipeline, submitted, forwarding) =
            (&mut self.pipeline, &mut self.submitted, &mut self.forwarding);
        let take_client = || loop {
            let (from, batch) = net.take_txns()?;
            if !client_banned(&from) {
                return Some((from, batch));
            }
        };
        let submit = |from: Fed<'_, Option<IpAddr>, Option<Source>>, txn: Txn| match from {
            Fed::Client(from) => {
                let id = txn.id();
                let taken = match from {
                    Some(ip) => pipeline.submit_from(txn, net::address_source(*ip)),
                    None => pipeline.submit(txn),
                };
                // Client transactions are forwarded (to every validator, or in a large set to
                // the next leaders), but only once admitted here: see `Forwarding::after_tick`.
                if taken {
                    submitted.record(id, now_ns, |_| true);
                    forwarding.push(txn, id);
                }
            }
            Fed::Peer(from) => {
                match from {
                    Some(source) => pipeline.submit_from(txn, *source),
                    None => pipeline.submit(txn),
                };
            }
        };
        let take_peer = || loop {
            let (from, batch) = net.take_peer_txns()?;
            if !peer_banned(&from) {
                return Some((from, batch));
            }
            forwarded_dropped(batch.len());
        };
        let (held_client, held_peer) = (&mut self.held_client, &mut self.held_peer);
        busy |= feed_inbox(room, held_client, take_client, held_peer, take_peer, submit) > 0;
        self.submitted.trim();
        let (requests, store, config) = (&self.net.sync_requests, &self.store, &self.consensus_config);
        drain_for(
            READS_PASS_BUDGET,
            || requests.try_recv().ok(),
            |(from_height, reply)| {
                let _ = reply.send(Arc::new(sync_response(store, from_height, config)));
            },
        );
        if self.full && self.follow.due(self.pipeline.tip().height) {
            let request = encode(&Frame::Consensus(ConsensusMessage::SyncRequest {
                from_height: self.pipeline.tip().height + 1,
            }));
            self.net.send(self.follow.next_peer(self.validators), Arc::new(request), Lane::Consensus);
        }
        busy
    }

    /// Answers the queued JSON-RPC queries (what the published view could not), and forwards
    /// the transactions they submitted. Returns whether queries or full nodes' sync requests
    /// are still queued, past this pass's budget for each.
    fn answer_rpc(&mut self) -> bool {
        let now_ns = wall_ns();
        let mut from_rpc = Vec::new();
        let fates = self.reads.fates();
        let deadline = Instant::now() + READS_PASS_BUDGET;
        drain_for(
            READS_PASS_BUDGET,
            || rpc::next_request(&self.rpc),
            |request| {
                let standing = |ip| self.net.client_standing(ip);
                let answer = answer_query(
                    request.query,
                    request.from,
                    &standing,
                    &mut self.pipeline,
                    &self.store,
                    &fates,
                    &self.net.counters,
                    &mut self.submitted,
                    &mut from_rpc,
                    now_ns,
                    deadline,
                );
                let _ = request.reply.send(answer);
            },
        );
        drop(fates);
        // Like ingress batches: forwarded once admitted (every validator may lead next, and a
        // full node never does).
        for txn in from_rpc {
            self.forwarding.push(txn, txn.id());
        }
        !self.rpc.is_empty() || !self.net.sync_requests.is_empty()
    }

    /// Nothing arrived: waits for the next message or the next tick, whichever is first.
    fn wait_for_message(&mut self) {
        let left = self.tick.saturating_sub(self.last_tick.elapsed());
        let arrived = self.net.inbound.recv_timeout(left).ok().map(|(from, message, _)| (from, message));
        self.take_consensus(arrived);
    }

    /// Hands consensus messages from peers to the pipeline ([`take_consensus`]), counting
    /// those dropped for a banned sender. Returns how many it took.
    fn take_consensus(&mut self, messages: impl IntoIterator<Item = (u32, ConsensusMessage)>) -> usize {
        let (taken, dropped) = take_consensus(
            messages,
            |from| self.net.is_banned(from),
            |from, message| {
                // Past the inbox's capacity it is dropped, as before (counted by the pipeline).
                let _ = self.pipeline.deliver(from, message);
            },
        );
        let counter = &self.net.counters.consensus_from_banned_dropped;
        counter.fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
        taken
    }

    /// One schedule tick through the shared [`driver::tick`]: persists what was finalized,
    /// records fates and latencies for what is durable, sends the outbox, then publishes the
    /// tick's blocks and status for reads.
    ///
    /// # Errors
    /// A finalized block that cannot be persisted: the node stops rather than vote on as if it
    /// had.
    fn tick_and_persist(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        self.last_tick = Instant::now();
        let mut ticked = driver::tick(&mut self.pipeline, wall_ns(), Some(&mut self.store));
        Metrics::record(&self.metrics.tick_us, self.last_tick.elapsed().as_micros() as u64);
        for us in self.pipeline.drain_verify_timings() {
            Metrics::record(&self.metrics.verify_batch_us, us);
        }
        let finished_ns = wall_ns();
        for (source, forged) in self.pipeline.take_forged() {
            match source {
                Source::Validator(validator) => {
                    tracing::warn!(
                        validator,
                        forged,
                        "bad signatures from a validator (on transactions it forwarded, or consensus messages it sent)"
                    );
                    self.net.charge_forgeries(validator, forged);
                }
                Source::Address(octets) => {
                    let ip = std::net::Ipv6Addr::from(octets).to_canonical();
                    self.net.charge_address(ip, forged);
                }
            }
        }
        let forward = self.forwarding.after_tick(&self.pipeline, &ticked);
        self.send_txns(&forward.destination, &forward.txns);
        // One hold of the fate window for the whole tick: readers wait for this, not for the
        // tick.
        let mut fates = self.reads.fates_mut();
        // Events for WebSocket subscribers. Always built: one who subscribes during the tick
        // must not miss its blocks (a block's event shares the block; outcomes are moved).
        let mut events = Vec::new();
        ticked.rejections = still_refused(ticked.rejections, |id| self.pipeline.is_pending(id));
        if !ticked.rejections.is_empty() {
            events.push(subscribe::Event::rejected(
                ticked.rejections.iter().map(|rejected| (rejected.id, rejected.reason.name())).collect(),
            ));
        }
        for rejected in ticked.rejections {
            fates.record(rejected.id, Fate::Rejected(rejected.reason.name().to_owned()));
            self.submitted.remove(&rejected.id);
        }
        // Durable first: only a block whose record and index entry are synced is reported
        // anywhere (RPC, metrics, logs).
        let mut finalized_blocks = Vec::with_capacity(ticked.finalized.len());
        for finalized in ticked.finalized {
            let header = finalized.certified.block.header;
            Metrics::record(&self.metrics.propagation_us, propagation_us(finished_ns, header.timestamp_ms));
            fates.record_block(header.height, &finalized.outcomes);
            for outcome in &finalized.outcomes {
                if let Some(at) = self.submitted.remove(&outcome.id) {
                    Metrics::record(&self.metrics.commit_latency_us, finished_ns.saturating_sub(at) / 1000);
                }
            }
            tracing::debug!(height = header.height, txns = header.txn_count, "finalized");
            // Moved, not copied: the view holds the block the tick handed out.
            let block = Arc::new(finalized.certified);
            events.push(subscribe::Event::finalized(block.clone(), finalized.outcomes));
            finalized_blocks.push(block);
        }
        drop(fates);
        if let Some(error) = ticked.persist_error {
            tracing::error!(%error, "cannot persist a finalized block; stopping");
            self.net.stop.store(true, Ordering::Relaxed);
            return Err(error.into());
        }
        self.send(ticked.outbound);
        self.reads.publish(finalized_blocks, node_status(&self.pipeline));
        // After the publish: a subscriber told of a block can read it.
        for event in events {
            self.reads.push(event);
        }
        Ok(())
    }

    /// Sends transactions to `destination` in frames of at most a batch each, one encoding a
    /// frame.
    fn send_txns(&self, destination: &Destination, txns: &[(Txn, TxnId)]) {
        for chunk in txns.chunks(self.forwarding.batch_max()) {
            let batch: Vec<Txn> = chunk.iter().map(|(txn, _)| *txn).collect();
            let frame = Arc::new(encode(&Frame::Txns(batch)));
            for peer in destination.recipients(self.me, self.validators) {
                self.net.send(peer, frame.clone(), Lane::Bulk);
            }
        }
    }

    /// Hands the outbox to the network's per-peer queues, one encoding per message.
    fn send(&self, outbound: Vec<(Destination, ConsensusMessage)>) {
        for (destination, message) in outbound {
            let frame = Arc::new(encode(&Frame::Consensus(message)));
            for peer in destination.recipients(self.me, self.validators) {
                self.net.send(peer, frame.clone(), Lane::Consensus);
            }
        }
    }

    /// After a tick: free heap pages back to the kernel now and then, and the gauges.
    fn housekeeping(&mut self) {
        if self.last_trim.elapsed() >= heap::TRIM_INTERVAL {
            let (took, _) = heap::release_free_pages();
            Metrics::record(&self.metrics.trim_us, took.as_micros() as u64);
            self.last_trim = Instant::now();
        }
        publish_gauges(
            &self.metrics,
            &self.pipeline,
            self.reads.fates().ring_len(),
            self.submitted.len(),
            self.submitted.ring_len(),
        );
    }

    /// Writes a fresh snapshot at the last committed height, so the next start replays
    /// nothing, and stops the network.
    fn shut_down(mut self) {
        tracing::info!(height = self.pipeline.tip().height, "shutting down");
        // WebSocket subscribers are told the node is going away (a Close frame) before the
        // servers stop under them.
        let unclosed = self.reads.close(Duration::from_millis(500));
        if unclosed > 0 {
            tracing::debug!(sessions = unclosed, "WebSocket sessions still open at shutdown");
        }
        // No query arrives after this: the servers' threads have ended.
        for server in &mut self.http {
            server.stop();
        }
        if let Err(error) = self.store.write_state(self.pipeline.ledger()) {
            tracing::warn!(%error, "could not write the final state snapshot; the next start replays");
        }
        self.net.stop.store(true, Ordering::Relaxed);
    }
}

/// Binds each of the node's listening addresses once and lets go, so that a taken port is
/// reported before the data directory is created or recovered: a node refused at start leaves
/// nothing behind. A port taken in the moment between this and the real bind is still refused
/// there, after the directory exists.
///
/// # Errors
/// The first address that cannot be bound.
fn check_ports_free(config: &NodeConfig) -> Result<(), String> {
    let addresses = [config.network.listen, config.ingress.listen, config.rpc.listen, config.metrics.listen];
    for address in addresses {
        std::net::TcpListener::bind(address)
            .map_err(|error| format!("cannot listen on {address}: {error}"))?;
    }
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

/// Hands each of `messages` (queued consensus messages) to `deliver`, except those from a
/// sender `banned` now: queued before its ban (for bad signatures on what it sent earlier),
/// they are dropped unverified. Before, a ban left up to a queue's worth of a Byzantine
/// validator's messages to verify (found in review). Returns (taken, dropped).
fn take_consensus(
    messages: impl IntoIterator<Item = (u32, ConsensusMessage)>,
    banned: impl Fn(u32) -> bool,
    mut deliver: impl FnMut(u32, ConsensusMessage),
) -> (usize, u64) {
    let (mut taken, mut dropped) = (0, 0);
    for (from, message) in messages {
        taken += 1;
        if banned(from) {
            dropped += 1;
        } else {
            deliver(from, message);
        }
    }
    (taken, dropped)
}

/// Hands a transaction sent over JSON-RPC (HTTP or WebSocket) from `from` to the pipeline,
/// charged to that address as an ingress client's is: a bad signature found on it is a penalty
/// point for the address (`Pipeline::take_forged`), and what a banned address sends is refused
/// unverified. Loopback and validators' addresses are exempt, as on the ingress port
/// ([`net::ClientStanding`]). Before, a submission carried no source, so forged signatures
/// sent over RPC cost their sender nothing (found in review); then for a while a validator's
/// own address could be charged and banned over RPC though ingress never charges it.
///
/// # Errors
/// The address is banned, or the pipeline's inbox is full.
fn submit_from_rpc(
    pipeline: &mut Pipeline,
    txn: Txn,
    standing: net::ClientStanding,
) -> Result<(), (i64, String)> {
    let taken = match standing {
        net::ClientStanding::Banned => {
            return Err((code::SERVER_BUSY, "this address is banned for bad signatures; retry later".into()));
        }
        net::ClientStanding::Charged(ip) => pipeline.submit_from(txn, net::address_source(ip)),
        net::ClientStanding::Exempt => pipeline.submit(txn),
    };
    if !taken {
        return Err((code::SERVER_BUSY, "inbox full, retry later".into()));
    }
    Ok(())
}

/// A `SyncResponse` frame with the finalized blocks from `from_height`, read from storage,
/// bounded like the consensus core's own responses.
fn sync_response(store: &Store, from_height: u64, config: &ConsensusConfig) -> Vec<u8> {
    // Stops at the first height not stored (or not readable), as the core's own answers do.
    // Up to u64::MAX inclusive: `from_height..` would step past the end on its first item,
    // and a peer can ask for u64::MAX.
    let stored = (from_height.max(1)..=u64::MAX)
        .map_while(|height| store.block(height).ok().flatten())
        .map(|(block, certificate)| CertifiedBlock { block, certificate });
    let blocks = tessera_systems::consensus::core::bounded_sync_batch(stored, config);
    encode(&Frame::Consensus(ConsensusMessage::SyncResponse(blocks)))
}

/// Publishes the pipeline's figures and the node's window sizes for the next scrape.
fn publish_gauges(
    metrics: &Metrics,
    pipeline: &Pipeline,
    fates: usize,
    submit_times: usize,
    submit_order: usize,
) {
    let set = |series: &std::sync::atomic::AtomicU64, value: u64| series.store(value, Ordering::Relaxed);
    let node = &metrics.node;
    let counters = pipeline.counters();
    set(&node.chain_height, pipeline.tip().height);
    set(&node.mempool_transactions, pipeline.mempool_len() as u64);
    let capacity =
        pipeline.world().get_resource::<tessera_systems::PipelineConfig>().map_or(0, |c| c.mempool_count_max);
    set(&node.mempool_capacity, capacity as u64);
    set(&node.ingested, counters.ingested);
    set(&node.verified, counters.verified);
    set(&node.verify_cache_hits, counters.verify_cache_hits);
    set(&node.admitted, counters.admitted);
    set(&node.executed, counters.executed);
    set(&node.failed, counters.failed);
    let seen =
        pipeline.world().get_resource::<tessera_systems::dedup::SeenIds>().map_or(0, |seen| seen.len());
    set(&node.window_duplicate_ids, seen as u64);
    set(&node.window_fates, fates as u64);
    set(&node.window_submit_times, submit_times as u64);
    set(&node.window_submit_order, submit_order as u64);
    if let Some(consensus) = pipeline.consensus() {
        let (history_blocks, history_bytes) = consensus.history_held();
        set(&node.sync_history_blocks, history_blocks as u64);
        set(&node.sync_history_bytes, history_bytes as u64);
        set(&node.speculative_ledgers, consensus.speculative_held() as u64);
        let c = consensus.core.counters();
        set(&node.consensus_view, consensus.core.view());
        set(&node.consensus_validators, consensus.core.validators().len() as u64);
        set(&node.consensus_quorum, consensus.core.validators().quorum() as u64);
        set(&node.finalized_blocks, c.finalized);
        set(&node.synced_blocks, c.synced);
        set(&node.timeouts, c.timeouts);
        set(&node.equivocations, c.equivocations);
        set(&node.rejected_state_root, c.rejected_state_root);
        set(&node.rejected_invalid_transaction, c.rejected_invalid_txn);
        set(&node.rejected_over_limit, c.rejected_over_limit);
        set(&node.stale_proposals, c.stale_proposals);
        set(&node.dropped_unverified, c.dropped_unverified);
        set(&node.over_signature_budget, c.over_signature_budget);
        set(&node.sync_refused, c.sync_refused);
        set(&node.signatures_verified, pipeline.consensus_signatures_verified());
    }
    if let Ok(mut rejected) = metrics.rejected.lock() {
        let reasons = pipeline.reject_counters();
        if rejected.is_empty() {
            *rejected = reasons
                .iter()
                .map(|(name, _)| (format!("tessera_rejected_transactions_total{{reason=\"{name}\"}}"), 0))
                .collect();
        }
        for ((_, slot), (_, count)) in rejected.iter_mut().zip(reasons.iter()) {
            *slot = count;
        }
    }
}

/// The status fields the loop knows, for the read view and for its own answers.
fn node_status(pipeline: &Pipeline) -> Status {
    let tip = pipeline.tip();
    Status {
        height: tip.height,
        block_hash: tip.hash,
        state_root: tip.state_root,
        mempool_size: pipeline.mempool_len(),
        view: pipeline.consensus().map_or(0, |c| c.core.view()),
        observer: pipeline.consensus().is_some_and(|c| c.core.is_observer()),
        chain: pipeline.consensus().map_or(ChainTag::TEST, |c| *c.core.validators().chain()),
    }
}

/// `tessera_getTransaction`'s answer for a transaction with `fate` (if known).
fn transaction_status(fate: Option<&Fate>, pending: bool) -> Value {
    match fate {
        Some(Fate::Committed { height, result: Ok(()) }) => json!({"status": "committed", "height": height}),
        // In a finalized block, but the transfer failed and changed nothing: a payment that
        // did not happen must never read as committed.
        Some(Fate::Committed { height, result: Err(reason) }) => {
            json!({"status": "failed", "height": height, "reason": reason})
        }
        Some(Fate::Rejected(reason)) => json!({"status": "rejected", "reason": reason}),
        None if pending => json!({"status": "pending"}),
        None => json!({"status": "unknown"}),
    }
}

/// Checks that the data directory's tip is a block a quorum of `set` signed: its certificate is a
/// commit certificate for it, of a quorum's shape, and every signature verifies. The store checks
/// checksums, places and parent links, and replay checks each state root against its block, but
/// none checks a signature: a block appended to a copy of a directory, with a made-up certificate
/// and the state root its transfers give, passed them all, and the node started at a state no
/// quorum signed, and served it (found in review). The blocks below the tip and the state are
/// bound to the tip by those checks, so its certificate vouches for them all.
fn check_tip_signed(store: &Store, set: &ValidatorSet) -> Result<(), String> {
    let height = store.height();
    if height == 0 {
        return Ok(());
    }
    let (block, certificate) = match store.block(height) {
        Ok(Some(tip)) => tip,
        Ok(None) => return Err(format!("block {height}, the tip, is missing")),
        Err(error) => return Err(format!("block {height}, the tip, cannot be read: {error}")),
    };
    let names_it = certificate.kind == VoteKind::Commit
        && certificate.height == height
        && certificate.block == block.header.hash();
    if !names_it || !set.certificate_shaped(&certificate) {
        return Err(format!(
            "block {height}, the tip, is not certified by a commit certificate of a quorum of this chain's validators"
        ));
    }
    let signer = certificate.signers[0];
    let (_, dropped, _) =
        verify_messages(vec![(signer, ConsensusMessage::Certificate(certificate))], set, 64, false);
    if dropped > 0 {
        return Err(format!("a signature of the certificate of block {height}, the tip, does not verify"));
    }
    Ok(())
}

/// A `tessera_getBlockRange` answer read from the store (`read`): the blocks from `from` on, at
/// most `count`, ending at the tip, before the block that would take the answer past
/// [`reads::RANGE_TXNS_MAX`] ids, or once `deadline` has passed (the pass's budget for reads). The
/// first block is always read. Each read is a storage read; the pass checked its budget only
/// between queries, so one range of 256 blocks not in the page cache held the node loop for
/// 256 disk reads (found in review). The client goes on from the height after the last one.
fn range_from_store<E: std::fmt::Display>(
    from: u64,
    count: u64,
    deadline: Instant,
    mut read: impl FnMut(u64) -> Result<Option<CertifiedBlock>, E>,
) -> Result<Value, (i64, String)> {
    let mut blocks = Vec::new();
    let mut budget = reads::IdBudget::new(reads::RANGE_TXNS_MAX);
    for height in from.max(1)..from.saturating_add(count) {
        if !blocks.is_empty() && Instant::now() >= deadline {
            break;
        }
        match read(height) {
            Ok(Some(certified)) => {
                if !budget.takes(&certified) {
                    break;
                }
                blocks.push(reads::range_entry(&block_json(&certified)));
            }
            Ok(None) => break,
            Err(error) => return Err((code::SERVER_BUSY, format!("cannot read block {height}: {error}"))),
        }
    }
    Ok(Value::Array(blocks))
}

#[allow(clippy::too_many_arguments)]
fn answer_query(
    query: Query,
    from: Option<std::net::IpAddr>,
    standing: &dyn Fn(std::net::IpAddr) -> net::ClientStanding,
    pipeline: &mut Pipeline,
    store: &Store,
    fates: &Fates,
    net: &net::NetCounters,
    submitted: &mut SubmitTimes,
    forward: &mut Vec<Txn>,
    now_ns: u64,
    deadline: Instant,
) -> Result<Value, (i64, String)> {
    match query {
        Query::Discover => Ok(rpc::openrpc().clone()),
        Query::Subscribe(_) | Query::Unsubscribe(_) => {
            Err((code::INVALID_REQUEST, "subscriptions need a WebSocket connection".into()))
        }
        Query::Status => Ok(node_status(pipeline).to_json(net.peers_connected.load(Ordering::Relaxed))),
        Query::Block(height) => match store.block(height) {
            Ok(Some((block, certificate))) => Ok(block_json(&CertifiedBlock { block, certificate })),
            Ok(None) => Ok(Value::Null),
            Err(error) => Err((code::SERVER_BUSY, format!("cannot read block {height}: {error}"))),
        },
        Query::BlockRange(from, count) => range_from_store(from, count, deadline, |height| {
            store
                .block(height)
                .map(|block| block.map(|(block, certificate)| CertifiedBlock { block, certificate }))
        }),
        Query::Account(address, with_proof) => {
            let ledger = pipeline.ledger();
            let mut answer = match ledger.account(&address) {
                Some(account) => json!({"exists": true, "balance": account.balance, "nonce": account.nonce}),
                None => json!({"exists": false, "balance": 0, "nonce": 0}),
            };
            if with_proof {
                // The ledger holds the state after the last finalized block, whose header
                // carries the same root; a proof is only given against that root.
                let tip = pipeline.tip();
                let root = ledger.state_root();
                if root != tip.state_root {
                    return Err((code::SERVER_BUSY, "state is between blocks, retry".into()));
                }
                answer["proof"] = match ledger.proof(&address) {
                    Some(proof) => proof::proof_json(&proof, &root, tip.height, &tip.hash),
                    None => ledger.absence_proof(&address).map_or(Value::Null, |proof| {
                        proof::absence_json(&proof, &root, tip.height, &tip.hash)
                    }),
                };
            }
            Ok(answer)
        }
        Query::Transaction(id) => {
            let id = TxnId(Hash(id));
            let pending = pipeline.is_pending(&id) || submitted.contains(&id);
            Ok(transaction_status(fates.get(&id), pending))
        }
        Query::Submit(txn) => {
            let id = txn.id();
            submit_from_rpc(pipeline, *txn, from.map_or(net::ClientStanding::Exempt, standing))?;
            forward.push(*txn);
            submitted.record(id, now_ns, |_| false);
            Ok(json!(id.0.to_hex()))
        }
    }
}

#[cfg(test)]
mod tests {
    use tessera_components::{Hash, RejectReason, TxnId};
    use tessera_systems::TxnOutcome;

    use super::{DRAIN_TXNS_MAX, DrainBudget, Fate, Fates, propagation_us, transaction_status};

    /// A leader's timestamp is its own to choose: the largest one is a propagation of 0, not an
    /// overflow (a panic in a debug build on every validator that finalized the block).
    #[test]
    fn a_block_timestamp_of_any_value_is_a_propagation_time() {
        assert_eq!(propagation_us(5_000_000_000, 4_000), 1_000_000);
        assert_eq!(propagation_us(5_000_000_000, u64::MAX), 0);
        assert_eq!(propagation_us(0, 1), 0);
    }

    /// A tick took up to 64 batches off a queue whatever their size: ~400k transactions at
    /// full frames, hashed and submitted before consensus ran. It stops past the budget, a
    /// batch being taken whole, and leaves the rest queued.
    #[test]
    fn a_tick_takes_a_bounded_number_of_transactions_off_a_queue() {
        let batch = 4096;
        let mut queue: std::collections::VecDeque<((), Vec<u8>)> =
            (0..64).map(|_| ((), vec![0; batch])).collect();
        let mut budget = DrainBudget::new();
        let mut taken = 0;
        while let Some((_, txns)) = budget.next(|| queue.pop_front()) {
            taken += txns.len();
        }
        assert_eq!(taken, DRAIN_TXNS_MAX, "transactions taken in one tick");
        assert_eq!(queue.len(), 64 - DRAIN_TXNS_MAX / batch);
        // Small batches: at most 64 a tick.
        let mut queue: std::collections::VecDeque<((), Vec<u8>)> =
            (0..100).map(|_| ((), vec![0; 1])).collect();
        let mut budget = DrainBudget::new();
        while budget.next(|| queue.pop_front()).is_some() {}
        assert_eq!(queue.len(), 36);
    }

    fn id(byte: u8) -> TxnId {
        TxnId(Hash([byte; 32]))
    }

    /// A transaction sent over JSON-RPC is charged to the client's address like one sent to
    /// the ingress port: its bad signature is a penalty point for the address, and a banned
    /// address is refused. Loopback is never charged. Before, RPC submissions carried no
    /// source, and forgeries sent that way cost nothing (found in review).
    #[test]
    fn a_bad_signature_sent_over_rpc_is_charged_to_the_clients_address() {
        use tessera_components::Source;
        use tessera_systems::workload::{TransferSpec, transfers};
        use tessera_systems::{Ledger, Pipeline, PipelineConfig};
        let base = transfers(TransferSpec {
            seed: 9,
            chain_id: 1,
            senders: 3,
            per_sender: 1,
            balance: 1000,
            fee_min: 1,
        });
        let config = PipelineConfig { block_interval_ns: u64::MAX, ..PipelineConfig::default() };
        let mut pipeline = Pipeline::new(config, Ledger::from_genesis(&base.genesis).unwrap()).unwrap();
        let forge = |txn: &tessera_components::Txn| {
            let mut forged = *txn;
            forged.signature.0[7] ^= 1;
            forged
        };
        let client: std::net::IpAddr = "203.0.113.9".parse().unwrap();
        let charged = super::net::ClientStanding::Charged(client);
        super::submit_from_rpc(&mut pipeline, forge(&base.txns[0]), charged).unwrap();
        super::submit_from_rpc(&mut pipeline, forge(&base.txns[1]), super::net::ClientStanding::Exempt)
            .unwrap();
        super::submit_from_rpc(&mut pipeline, base.txns[2], charged).unwrap();
        pipeline.tick(1);
        pipeline.tick(2);
        let mapped = std::net::Ipv4Addr::new(203, 0, 113, 9).to_ipv6_mapped().octets();
        assert_eq!(pipeline.take_forged(), vec![(Source::Address(mapped), 1)]);
        let refused = super::submit_from_rpc(&mut pipeline, base.txns[2], super::net::ClientStanding::Banned)
            .unwrap_err();
        assert!(refused.1.contains("banned"), "{refused:?}");
    }

    /// Consensus messages queued before their sender was banned are dropped, not handed on to
    /// be verified; the others are, in order, at most `max` a pass.
    #[test]
    fn consensus_messages_from_a_banned_sender_are_dropped_unverified() {
        let (tx, rx) = flume::unbounded();
        for from in [1, 2, 1, 2, 3] {
            let message = tessera_components::ConsensusMessage::SyncRequest { from_height: u64::from(from) };
            tx.send((from, message)).unwrap();
        }
        let mut delivered = Vec::new();
        let (taken, dropped) =
            super::take_consensus(rx.try_iter().take(4), |from| from == 2, |from, _| delivered.push(from));
        assert_eq!((taken, dropped), (4, 2));
        assert_eq!(delivered, [1, 1]);
        assert_eq!(
            super::take_consensus(rx.try_iter().take(4), |_| false, |from, _| delivered.push(from)),
            (1, 0)
        );
        assert_eq!(delivered, [1, 1, 3]);
    }

    /// The network's batches wait for room in the inbox instead of being dropped there, and a
    /// client flood leaves the batches peers forward their half of the room. Before, every batch
    /// was taken whatever the room and the inbox dropped what it could not hold: once a client
    /// flood filled it, every batch the validators forwarded (found in review).
    #[test]
    fn the_network_feeds_the_inbox_only_what_it_has_room_for() {
        use std::collections::VecDeque;
        use tessera_components::{Txn, TxnBody};
        const CAPACITY: usize = 4096;
        const INGEST: usize = 512;
        let txn = Txn::unsigned(TxnBody::transfer(1, [1; 32], [2; 32], 1, 1, 0));
        let mut clients: VecDeque<Vec<Txn>> = (0..200).map(|_| vec![txn; 300]).collect();
        let mut peers: VecDeque<Vec<Txn>> = (0..40).map(|_| vec![txn; 100]).collect();
        let (mut held_client, mut held_peer) = (None, None);
        let mut inbox: VecDeque<bool> = VecDeque::new();
        let (mut from_clients, mut from_peers) = (0, 0);
        for _tick in 0..100 {
            let room = CAPACITY - inbox.len();
            let fed = super::feed_inbox(
                room,
                &mut held_client,
                || clients.pop_front().map(|batch| ((), batch)),
                &mut held_peer,
                || peers.pop_front().map(|batch| ((), batch)),
                |from, _| {
                    assert!(inbox.len() < CAPACITY, "submitted past the inbox's room: dropped");
                    inbox.push_back(matches!(from, super::Fed::Peer(_)));
                },
            );
            assert!(fed <= room - room / 8, "the room left for JSON-RPC submissions was taken");
            for peer in inbox.drain(..inbox.len().min(INGEST)) {
                *if peer { &mut from_peers } else { &mut from_clients } += 1;
            }
        }
        from_peers += inbox.iter().filter(|peer| **peer).count();
        from_clients += inbox.iter().filter(|peer| !**peer).count();
        assert_eq!(from_peers, 40 * 100, "every forwarded transaction got in, through the flood");
        // Nothing taken off the network was lost: in the inbox, held, or still queued.
        let held = held_client.as_ref().map_or(0, |(_, txns): &((), VecDeque<Txn>)| txns.len());
        assert_eq!(from_clients + held + clients.iter().map(Vec::len).sum::<usize>(), 200 * 300);
        // What is held of a batch whose sender has been banned since is dropped, not fed.
        assert!(held > 0, "the test means a batch held");
        assert_eq!(super::drop_if_banned(&mut held_client, |_| false), 0);
        assert_eq!(super::drop_if_banned(&mut held_client, |_| true), held);
        assert!(held_client.is_none());
    }

    /// A range read from the store stops once the pass's budget for reads is spent, and always
    /// holds its first block. Before, the pass checked its budget only between queries, so one
    /// range held the node loop for all of its up to 256 storage reads (found in review).
    #[test]
    fn a_range_read_from_the_store_stops_at_the_pass_budget() {
        use super::reads::tests::block_of;
        use std::time::{Duration, Instant};
        let mut reads = 0;
        let mut slow = |height: u64| -> Result<_, String> {
            reads += 1;
            std::thread::sleep(Duration::from_millis(1));
            Ok(Some((*block_of(height, 1)).clone()))
        };
        let answer =
            super::range_from_store(1, 256, Instant::now() + Duration::from_millis(5), &mut slow).unwrap();
        let listed = answer.as_array().unwrap().len();
        assert!((1..=6).contains(&listed), "{listed} blocks read in a 5 ms budget");
        assert_eq!(answer[0]["height"], 1);
        // A budget already spent still reads the first block, so the answer never reads as the
        // end of the chain.
        let answer = super::range_from_store(7, 256, Instant::now(), &mut slow).unwrap();
        assert_eq!(answer.as_array().unwrap().len(), 1);
        assert_eq!(reads, listed + 1);
    }

    /// A pass over a queue of slow reads stops once its budget is spent, and leaves the rest
    /// queued in order: the node loop answered every queued query before it ticked again.
    #[test]
    fn a_pass_over_queued_reads_stops_at_its_budget() {
        let mut queue: std::collections::VecDeque<u32> = (0..100).collect();
        let mut answered = Vec::new();
        let taken = super::drain_for(
            std::time::Duration::from_millis(5),
            || queue.pop_front(),
            |query| {
                std::thread::sleep(std::time::Duration::from_millis(1));
                answered.push(query);
            },
        );
        assert!((1..=5).contains(&taken), "took {taken}");
        assert_eq!(answered, (0..taken as u32).collect::<Vec<_>>());
        assert_eq!(queue.front(), Some(&(taken as u32)), "the rest left queued, in order");
        // A queue with something in it always gets one answer, however small the budget.
        assert_eq!(super::drain_for(std::time::Duration::ZERO, || queue.pop_front(), |_| {}), 1);
    }

    /// A copy of a pending transaction, refused while the original waits, is not its fate: the
    /// node recorded it, and `tessera_getTransaction` read "rejected" for a transaction about to
    /// commit, for anyone who replayed its bytes (found in review).
    #[test]
    fn a_refused_copy_of_a_pending_transaction_is_not_its_fate() {
        use tessera_components::TxnBody;
        use tessera_systems::config::PipelineConfig;
        use tessera_systems::workload::{sign, signing_key};
        let key = signing_key(29, 0);
        let sender = key.verifying_key().to_bytes();
        let ledger = tessera_systems::Ledger::from_genesis(&[(sender, 100)]).unwrap();
        let config = PipelineConfig { block_interval_ns: u64::MAX, ..PipelineConfig::default() };
        let mut pipeline = super::Pipeline::new(config, ledger).unwrap();
        pipeline.world_mut().resource_mut::<tessera_systems::propose::ProposerState>().last_proposal_ns =
            Some(0);
        let txn = sign(
            &key,
            TxnBody { chain_id: 1, reserved: 0, sender, recipient: [5; 32], amount: 1, fee: 1, nonce: 0 },
        );
        let mut forged = txn;
        forged.signature.0[0] ^= 1;
        let other = sign(
            &key,
            TxnBody { chain_id: 1, reserved: 0, sender, recipient: [6; 32], amount: 200, fee: 1, nonce: 1 },
        );
        assert!(pipeline.submit(txn));
        pipeline.tick(1);
        pipeline.tick(2);
        let _ = pipeline.drain_rejections();
        for copy in [txn, forged, other] {
            assert!(pipeline.submit(copy));
        }
        pipeline.tick(3);
        pipeline.tick(4);
        let rejections = pipeline.drain_rejections();
        assert!(rejections.iter().any(|rejected| rejected.id == txn.id()), "the copy was refused");
        let kept: Vec<TxnId> = super::still_refused(rejections, |id| pipeline.is_pending(id))
            .into_iter()
            .map(|rejected| rejected.id)
            .collect();
        assert!(pipeline.is_pending(&txn.id()));
        assert!(!kept.contains(&txn.id()), "a refused copy was taken for the pending transaction's fate");
        assert!(kept.contains(&forged.id()) && kept.contains(&other.id()), "{kept:?}");
    }

    /// A data directory is taken at start only if its tip is a block a quorum signed. The store
    /// takes any block that extends its chain (the crash drill's carry no signatures), so a
    /// block appended with a made-up certificate opened, and the node started at a state no
    /// quorum signed (found in review).
    #[test]
    fn a_tip_no_quorum_signed_is_refused_at_start() {
        use crate::storage::{Store, StoreConfig, drill};
        use ed25519_dalek::{Signer, SigningKey};
        use tessera_components::block::Signature;
        use tessera_components::block::vote_signing_bytes;
        use tessera_components::{ChainTag, QuorumCertificate, VoteKind};
        use tessera_systems::consensus::core::ValidatorSet;
        let dir = std::env::temp_dir().join(format!("tessera-node-tip-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let keys: Vec<SigningKey> = (0..4u8).map(|i| SigningKey::from_bytes(&[i + 1; 32])).collect();
        let validators: Vec<[u8; 32]> = keys.iter().map(|key| key.verifying_key().to_bytes()).collect();
        let (mut store, mut ledger, _) =
            Store::open(&dir, &drill::genesis(16), StoreConfig::default()).unwrap();
        let chain = ChainTag::of(1, &store.genesis_id(), &validators);
        let set = ValidatorSet::new(validators).on_chain(chain);
        assert_eq!(super::check_tip_signed(&store, &set), Ok(()), "genesis has no certificate to check");
        // Block 1, certified by validators 0-2 (the drill's signers) as they would sign it.
        let (block, mut certificate) = drill::next_block(&mut ledger, store.tip_hash(), 1, 16, 4);
        let message = vote_signing_bytes(&chain, VoteKind::Commit, certificate.view, 1, &certificate.block);
        certificate.signatures = certificate
            .signers
            .iter()
            .map(|signer| Signature(keys[*signer as usize].sign(&message).to_bytes()))
            .collect();
        let signed = certificate.clone();
        store.commit(&block, &certificate, &ledger).unwrap();
        assert_eq!(super::check_tip_signed(&store, &set), Ok(()));
        // Block 2 with the drill's made-up certificate: the store takes it, the start does not.
        let (block, certificate) = drill::next_block(&mut ledger, store.tip_hash(), 2, 16, 4);
        store.commit(&block, &certificate, &ledger).unwrap();
        let refused = super::check_tip_signed(&store, &set).unwrap_err();
        assert!(refused.contains("does not verify"), "{refused}");
        // Block 3 certified by a signed certificate of another block, or by one signer short of
        // a quorum.
        let (block, _) = drill::next_block(&mut ledger, store.tip_hash(), 3, 16, 4);
        store
            .commit(
                &block,
                &QuorumCertificate { height: 3, block: block.header.hash(), ..signed.clone() },
                &ledger,
            )
            .unwrap();
        assert!(super::check_tip_signed(&store, &set).unwrap_err().contains("does not verify"));
        let (block, _) = drill::next_block(&mut ledger, store.tip_hash(), 4, 16, 4);
        let short = QuorumCertificate {
            height: 4,
            block: block.header.hash(),
            signers: vec![0, 1],
            signatures: signed.signatures[..2].to_vec(),
            ..signed
        };
        store.commit(&block, &short, &ledger).unwrap();
        assert!(super::check_tip_signed(&store, &set).unwrap_err().contains("quorum"));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Any peer can ask for blocks from any height: from u64::MAX (where stepping on from the
    /// first height overflowed, and a build with overflow checks stopped the node loop) and
    /// from 0 (read as 1) alike, the answer is the stored blocks from there, here none.
    #[test]
    fn a_sync_request_from_any_height_is_answered() {
        use tessera_components::wire::{Frame, decode};
        let dir = std::env::temp_dir().join(format!("tessera-node-sync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (store, _, _) =
            crate::storage::Store::open(&dir, &[([7; 32], 1_000)], crate::storage::StoreConfig::default())
                .expect("a fresh store");
        let config = tessera_systems::consensus::core::ConsensusConfig::default();
        for from in [u64::MAX, u64::MAX - 1, 0, 1] {
            let answer = decode(&super::sync_response(&store, from, &config)).expect("a frame");
            assert!(
                matches!(&answer, Frame::Consensus(tessera_components::ConsensusMessage::SyncResponse(blocks)) if blocks.is_empty()),
                "from {from}: {answer:?}"
            );
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_transfer_reads_as_failed_and_a_final_fate_never_changes() {
        let mut fates = Fates::with_max(16);
        let outcomes = [
            TxnOutcome { id: id(1), result: Ok(()) },
            TxnOutcome { id: id(2), result: Err(RejectReason::InsufficientFunds) },
        ];
        fates.record_block(7, &outcomes);
        let status = |fates: &Fates, byte| transaction_status(fates.get(&id(byte)), false);
        assert_eq!(status(&fates, 1)["status"], "committed");
        assert_eq!(status(&fates, 1)["height"], 7);
        assert_eq!(status(&fates, 2)["status"], "failed", "{}", status(&fates, 2));
        assert_eq!(status(&fates, 2)["reason"], RejectReason::InsufficientFunds.name());
        // Replaying a committed transaction's bytes is refused as a duplicate; its fate stays.
        fates.record(id(1), Fate::Rejected("duplicate".into()));
        assert_eq!(status(&fates, 1)["status"], "committed");
        // A refusal is not final: the same transaction may still be included later.
        fates.record(id(3), Fate::Rejected("mempool_full".into()));
        fates.record_block(8, &[TxnOutcome { id: id(3), result: Ok(()) }]);
        assert_eq!(status(&fates, 3)["status"], "committed");
        assert_eq!(transaction_status(None, true)["status"], "pending");
        assert_eq!(transaction_status(None, false)["status"], "unknown");
    }

    /// Refusals, free to cause, do not push committed fates out: before, both shared one
    /// window, and enough refused transactions made a committed payment read `unknown`
    /// (found in review). Nor do transfers that failed in their blocks, which paid nothing
    /// either.
    #[test]
    fn refusals_do_not_push_committed_fates_out() {
        let mut fates = Fates::with_max(16);
        fates.record_block(7, &[TxnOutcome { id: id(1), result: Ok(()) }]);
        let failed: Vec<TxnOutcome> = (0..32u64)
            .map(|n| {
                let mut bytes = [0xdd; 32];
                bytes[..8].copy_from_slice(&n.to_le_bytes());
                TxnOutcome { id: TxnId(Hash(bytes)), result: Err(RejectReason::InsufficientFunds) }
            })
            .collect();
        fates.record_block(8, &failed);
        assert_eq!(transaction_status(fates.get(&id(1)), false)["status"], "committed");
        // A failed one stays failed when its bytes are refused later.
        fates.record(failed[31].id, Fate::Rejected("duplicate".into()));
        assert_eq!(transaction_status(fates.get(&failed[31].id), false)["status"], "failed");
        for n in 0..64u64 {
            let mut bytes = [0xee; 32];
            bytes[..8].copy_from_slice(&n.to_le_bytes());
            fates.record(TxnId(Hash(bytes)), Fate::Rejected("bad_signature".into()));
        }
        assert_eq!(transaction_status(fates.get(&id(1)), false)["status"], "committed");
        // Refusals push out refusals: the oldest is forgotten, the newest kept.
        assert!(fates.get(&TxnId(Hash([0xee; 32]))).is_none());
        let mut newest = [0xee; 32];
        newest[..8].copy_from_slice(&63u64.to_le_bytes());
        assert!(fates.get(&TxnId(Hash(newest))).is_some());
        // A refused transaction later committed moves to the committed window.
        fates.record(id(3), Fate::Rejected("mempool_full".into()));
        fates.record_block(8, &[TxnOutcome { id: id(3), result: Ok(()) }]);
        assert_eq!(transaction_status(fates.get(&id(3)), false)["status"], "committed");
        assert!(fates.ring_len() <= 32);
    }
}
