//! The discrete-event simulator behind `tessera sim`: validators running the node's own
//! pipeline (ingest, prefilter, sigverify, dedup, mempool, propose, execute, consensus, and
//! optionally the real storage code), full nodes that relay finalized blocks by gossip, and a
//! network model with regions, latency distributions, bandwidth, loss, duplication,
//! reordering and partitions — all in virtual time, deterministic from the seed.
//!
//! Bird's eye view: one priority queue of events ordered by (virtual time, sequence number).
//! A message delivery hands the message to the node and schedules its wake-up a processing
//! delay later; a wake-up runs one schedule tick at the node's (possibly skewed) clock,
//! records what it finalized, and sends what it produced through the network model. A
//! validator with nothing to do sleeps until its consensus core's next deadline, so idle
//! virtual time costs nothing. Nothing here reads the wall clock.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::rc::Rc;

use ed25519_dalek::SigningKey;
use rayon::prelude::*;
use tessera_components::wire::{consensus_frame_size, txns_frame_size};
use tessera_components::{CertifiedBlock, ConsensusMessage, Hash, SafetyState, Txn, TxnId};
use tessera_systems::consensus::core::{ConsensusConfig, ConsensusCounters, Core, ValidatorSet};
use tessera_systems::kernels::sigverify::stand_in_sign;
use tessera_systems::workload::{SeedStream, signing_key};
use tessera_systems::{ChainTip, Ledger, Pipeline, PipelineConfig, Stages};

use super::clients::{Batch, ClientPlan, Clients};
use super::costs::{CostTable, Costs, Hosts, TickWork};
use super::disk::{SimDisk, SimDiskConfig};
use super::network::{Network, Transmission};
use super::report::{Recorder, Report};
use super::scenario::{Fault, Scenario, SigverifyMode, StorageFault, Wake};
use super::{Behaviour, byzantine, validator_key};
use crate::driver;
use crate::forward::Forwarding;
use crate::storage::Storage;
use tessera_components::constants::FRAME_SIZE_LIMIT;
use tessera_systems::counters::Work;

/// What a run's seed is mixed with to derive its client accounts.
const CLIENTS: u64 = 0xc11e;

/// The signing key of client account `index` of a run with real signatures.
fn client_key(seed: u64, index: u64) -> SigningKey {
    signing_key(seed ^ CLIENTS, index)
}

/// The domain client addresses of a run with stand-in signatures are derived in, from the seed
/// and the client's index (`workload::seeded_addresses`), with no key behind them (stand-in
/// tags need none).
static STAND_IN_ADDRESS: tessera_components::Domain =
    tessera_components::Domain::new("tessera 2026 sim client address");

const MS: u64 = 1_000_000;

fn ns(seconds: f64) -> u64 {
    // Scenario times are validated finite and non-negative; the cast saturates.
    (seconds * 1e9) as u64
}

/// What travels between nodes.
#[derive(Clone, Debug)]
enum Payload {
    Consensus(Rc<ConsensusMessage>),
    /// Client transactions (from a client, or forwarded by the validator that got them).
    Txns {
        batch: Rc<Vec<Txn>>,
        /// The batch's ids, hashed once for every validator the batch reaches.
        ids: Rc<Vec<TxnId>>,
        forwarded: bool,
    },
    /// A finalized block announced by gossip: height, hash.
    Block(u64, Hash),
}

#[derive(Debug)]
enum Event {
    Wake(u32),
    Deliver {
        to: u32,
        from: u32,
        payload: Payload,
        bytes: u64,
    },
    Clients,
    Crash(u32, StorageFault),
    /// Crash at the node's next tick, after it persisted and before it sends; restart so
    /// many nanoseconds after that (never, with `None`).
    CrashAfterPersist(u32, StorageFault, Option<u64>),
    Restart(u32),
    LivenessMark,
}

struct Entry {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        // A max-heap: the earliest (time, sequence) first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Events by kind: wake-ups (of validators and of full nodes alike), deliveries by what they
/// carry and to whom, and the rest (clients' batches, faults, marks).
#[derive(Clone, Copy, Debug, Default)]
pub struct EventKinds {
    /// Wake-ups, including those that find the validator busy or already woken.
    pub wakes: u64,
    /// Consensus messages delivered to validators.
    pub consensus: u64,
    /// Transaction batches delivered to validators (from clients or forwarded).
    pub txns: u64,
    /// Block announcements delivered to validators (gossip from full nodes).
    pub blocks_to_validators: u64,
    /// Deliveries to full nodes.
    pub to_full_nodes: u64,
    /// Of those, block announcements certain when sent to be duplicates when they arrive (the
    /// full node holds the height, or an announcement queued to arrive first brings it):
    /// counted then, never queued ([`Sim::send_at`]).
    pub to_full_nodes_counted: u64,
    /// Of the block announcements to validators, those to a validator that is never down:
    /// counted when sent, never queued (a validator has the block from consensus).
    pub blocks_to_validators_counted: u64,
    /// Clients' batches due, crashes, restarts and liveness marks.
    pub other: u64,
}

impl EventKinds {
    fn count(&mut self, event: &Event, validators: u32) {
        match event {
            Event::Wake(_) => self.wakes += 1,
            Event::Deliver { to, payload, .. } => *self.delivery(*to, payload, validators) += 1,
            _ => self.other += 1,
        }
    }

    /// The counter of a delivery of `payload` to `to`.
    fn delivery(&mut self, to: u32, payload: &Payload, validators: u32) -> &mut u64 {
        match payload {
            _ if to >= validators => &mut self.to_full_nodes,
            Payload::Consensus(_) => &mut self.consensus,
            Payload::Txns { .. } => &mut self.txns,
            Payload::Block(..) => &mut self.blocks_to_validators,
        }
    }

    /// As JSON, with `ticks`: the wake-ups that ran a validator's pipeline.
    pub fn to_json(&self, ticks: u64) -> serde_json::Value {
        serde_json::json!({
            "wakes": self.wakes,
            "validator_ticks": ticks,
            "consensus_to_validators": self.consensus,
            "txns_to_validators": self.txns,
            "blocks_to_validators": self.blocks_to_validators,
            "to_full_nodes": self.to_full_nodes,
            "to_full_nodes_counted_when_sent": self.to_full_nodes_counted,
            "blocks_to_validators_counted_when_sent": self.blocks_to_validators_counted,
            "other": self.other,
        })
    }
}

struct Validator {
    pipeline: Option<Pipeline>,
    key: SigningKey,
    /// Its simulated disk (with `validators.storage`): it outlives the validator's crashes.
    disk: Option<SimDisk>,
    byzantine: Vec<(Behaviour, u64, u64)>,
    skew_ns: i64,
    /// The consensus safety state this validator last persisted. It survives crashes, even
    /// when the block store does not (no storage, or a directory wiped after corruption): it
    /// models the small file a validator keeps whatever happens to its blocks. A restart
    /// resumes from it.
    safety: Option<SafetyState>,
    /// A crash due at its next tick, between the persist and the send, and the downtime.
    crash_after_persist: Option<(StorageFault, Option<u64>)>,
    /// No crash is scheduled for this validator (of the scenario's or the random ones): it
    /// runs from the start to the end. Set when the faults are scheduled.
    never_down: bool,
    /// Client transactions waiting for admission to be forwarded, and what it forwarded to the
    /// next leaders (forgotten in a crash, as a node's memory is): the node's own
    /// [`Forwarding`].
    forwarding: Forwarding,
}

/// What a simulated validator persists through: its block store if it has one, and its safety
/// state, which is mirrored into [`Validator::safety`] (on the store's own files as well when
/// there is a store, so the real safety file code runs too).
struct SimStorage<'a> {
    store: Option<&'a mut SimDisk>,
    safety: &'a mut Option<SafetyState>,
}

impl Storage for SimStorage<'_> {
    fn commit_finalized(
        &mut self,
        blocks: &[CertifiedBlock],
        ledger: &Ledger,
    ) -> (usize, Result<(), crate::storage::StoreError>) {
        match self.store.as_deref_mut() {
            Some(store) => store.commit_finalized(blocks, ledger),
            // Without storage a validator keeps its blocks in memory only.
            None => (blocks.len(), Ok(())),
        }
    }

    fn write_state(&mut self, ledger: &Ledger) -> Result<(), crate::storage::StoreError> {
        self.store.as_deref_mut().map_or(Ok(()), |store| store.write_state(ledger))
    }

    fn block(
        &self,
        height: u64,
    ) -> Result<
        Option<(tessera_components::Block, tessera_components::QuorumCertificate)>,
        crate::storage::StoreError,
    > {
        self.store.as_deref().map_or(Ok(None), |store| store.block(height))
    }

    fn height(&self) -> u64 {
        self.store.as_deref().map_or(0, Storage::height)
    }

    fn tip_hash(&self) -> Hash {
        self.store.as_deref().map_or(Hash::ZERO, Storage::tip_hash)
    }

    fn save_safety(&mut self, state: &SafetyState) -> Result<(), crate::storage::StoreError> {
        if let Some(store) = self.store.as_deref_mut() {
            store.save_safety(state)?;
        }
        *self.safety = Some(state.clone());
        Ok(())
    }
}

/// Per-node scheduling and gossip state (the network model holds the links).
struct NodeState {
    /// When the node's next wake-up is scheduled (`u64::MAX`: none).
    wake_at: u64,
    neighbours: Vec<u32>,
    /// Highest block height this full node holds (full nodes only).
    best_height: u64,
    /// A block announcement queued for this full node: its height and arrival time (the
    /// earliest queued of the highest height queued; `(0, u64::MAX)` for none). Any
    /// announcement of a height at most this one arriving at that time or later is a duplicate
    /// when it arrives: this one is processed first (ties go in the order scheduled).
    promised: (u64, u64),
}

/// The simulator.
pub struct Sim {
    scenario: Scenario,
    seed: u64,
    now: u64,
    end: u64,
    seq: u64,
    queue: BinaryHeap<Entry>,
    validators: Vec<Validator>,
    nodes: Vec<NodeState>,
    network: Network,
    /// The clients' batches, made ahead of their times ([`super::clients`]).
    clients: Clients,
    genesis: Vec<([u8; 32], u64)>,
    /// The genesis state, built once: every validator starts from a copy (a copy is a few
    /// memory moves; building one hashes every account and fills the index).
    genesis_ledger: Option<Ledger>,
    /// Copies of it made ahead, on every core, for the validators' first starts.
    genesis_copies: Vec<Ledger>,
    set: ValidatorSet,
    consensus_config: ConsensusConfig,
    pipeline_config: PipelineConfig,
    /// Everything the report is made of.
    pub recorder: Recorder,
    /// Events processed.
    pub events: u64,
    /// Validator ticks run.
    pub ticks: u64,
    /// Events processed, by kind (in `timing.json`: where a run's wall time goes).
    pub kinds: EventKinds,
    /// The planted bug of [`Sim::plant_amnesia`].
    planted_amnesia: bool,
    /// Signature verdicts shared by every simulated node: a transaction verified by one is
    /// not verified again by the next (verification is pure; virtual time is charged per
    /// wake-up, so reports do not change).
    verdicts: tessera_systems::sigverify::SharedVerdicts,
    /// Blocks executed by one validator, reused by the next on the same state (execution is
    /// pure; virtual time is charged from work counters, so reports do not change).
    executions: tessera_systems::execute::SharedExecutions,
    /// With `validators.costs`: the priced work's cores, and when each validator's last tick
    /// is done.
    cpu: Option<Cpu>,
    /// The audit of the consensus signatures validators vouch for in `verdicts` as they make
    /// them ([`super::audit`]).
    auditor: super::audit::Auditor,
    /// Validators vouch for none of their signatures, so every one is verified where it is
    /// received (for tests comparing the two).
    verify_alone: bool,
    /// Every delivery goes through the queue, none is counted when sent ([`Sim::only_counts`];
    /// for tests comparing the two).
    queue_every_delivery: bool,
    /// The time the current `run_until` runs to: a delivery counted when sent is counted at
    /// once if it arrives by then, else kept in `counted_later` until a run reaches it.
    until: u64,
    /// Deliveries counted when sent that arrive after `until` (and by the end): time, node,
    /// bytes.
    counted_later: Vec<(u64, u32, u64)>,
}

/// Virtual CPU time (see [`super::costs`]).
#[derive(Debug)]
struct Cpu {
    costs: CostTable,
    hosts: Hosts,
    busy_until: Vec<u64>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("scenario", &self.scenario.name)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Builds the nodes, the topology and the schedule of faults.
    ///
    /// # Errors
    /// An invalid scenario, or storage that cannot be created.
    pub fn new(scenario: Scenario, seed: u64) -> Result<Sim, Box<dyn std::error::Error>> {
        scenario.validate()?;
        let v = scenario.validators.count;
        let nodes = scenario.node_count();
        let keys: Vec<SigningKey> = (0..u64::from(v)).map(|i| validator_key(seed, i)).collect();
        let set = ValidatorSet::new(keys.iter().map(|key| key.verifying_key().to_bytes()).collect());
        // Clients sign for real only when validators verify for real: a stand-in tag needs no
        // key, and deriving an Ed25519 public key (a scalar multiplication) for each of a
        // million accounts cost more than the whole run.
        let client_keys: Vec<SigningKey> = if scenario.validators.sigverify == SigverifyMode::StandIn {
            Vec::new()
        } else {
            (0..scenario.workload.accounts).into_par_iter().map(|i| client_key(seed, i)).collect()
        };
        let clients: Vec<[u8; 32]> = if client_keys.is_empty() {
            tessera_systems::workload::seeded_addresses(
                &STAND_IN_ADDRESS,
                seed ^ CLIENTS,
                0..scenario.workload.accounts,
            )
        } else {
            client_keys.iter().map(|key| key.verifying_key().to_bytes()).collect()
        };
        // 2^50 each, or less where that many accounts would not fit the supply's u64.
        let balance = tessera_systems::workload::balance_within_supply(1 << 50, clients.len() as u64);
        let genesis: Vec<([u8; 32], u64)> = clients.iter().map(|address| (*address, balance)).collect();
        let consensus_config = ConsensusConfig {
            view_timeout_ns: scenario.validators.view_timeout_ms * MS,
            view_timeout_max_ns: scenario.validators.view_timeout_ms * MS * 16,
            block_interval_ns: scenario.validators.block_interval_ms * MS,
            stand_in_signatures: scenario.validators.sigverify == SigverifyMode::StandIn,
            aggregate_votes_from: scenario.validators.aggregate_votes_from.unwrap_or(usize::MAX),
            forward_to_leaders_from: scenario.validators.forward_to_leaders_from.unwrap_or(usize::MAX),
            ..ConsensusConfig::default()
        };
        let pipeline_config = PipelineConfig {
            block_txn_max: scenario.validators.block_txn_max,
            sigverify_overlap: false,
            sigverify_stand_in: scenario.validators.sigverify == SigverifyMode::StandIn,
            ..PipelineConfig::default()
        };

        let mut network = Network::new(&scenario, seed);
        let placement = network.placement();
        let nodes_state: Vec<NodeState> = network
            .gossip_topology(v, scenario.full_nodes.degree)
            .into_iter()
            .map(|neighbours| NodeState {
                wake_at: u64::MAX,
                neighbours,
                best_height: 0,
                promised: (0, u64::MAX),
            })
            .collect();
        debug_assert_eq!(nodes_state.len(), nodes as usize);

        let mut validators = Vec::with_capacity(v as usize);
        for (index, key) in keys.iter().enumerate() {
            let disk = if scenario.validators.storage {
                let config = SimDiskConfig::from_spec(&scenario.validators.disk);
                let stream = SeedStream::new("tessera sim disk", seed ^ index as u64);
                Some(SimDisk::new(&genesis, config, stream)?.0)
            } else {
                None
            };
            validators.push(Validator {
                pipeline: None,
                key: key.clone(),
                disk,
                byzantine: Vec::new(),
                skew_ns: 0,
                safety: None,
                crash_after_persist: None,
                // Until the faults are scheduled.
                never_down: false,
                forwarding: Forwarding::new(FRAME_SIZE_LIMIT),
            });
        }
        let end = ns(scenario.duration_s);
        let plan = ClientPlan::new(
            scenario.workload.clone(),
            SeedStream::new("tessera sim clients", seed),
            clients,
            client_keys,
            pipeline_config.chain_id,
            v,
            end,
        );
        // Real signatures are the clients' cost: a thread of their own signs ahead of the
        // loop, on every core. Stand-in tags are a hash each, made on the loop's thread.
        let verdicts = tessera_systems::sigverify::SharedVerdicts::new();
        let clients = if scenario.validators.sigverify == SigverifyMode::StandIn {
            Clients::inline(plan)
        } else {
            Clients::ahead(plan, verdicts.clone())
        };
        let auditor = super::audit::Auditor::new(verdicts.clone(), pipeline_config.sigverify_batch_size);
        let mut sim = Sim {
            recorder: Recorder::new(&scenario, seed, &placement),
            scenario,
            seed,
            now: 0,
            end,
            seq: 0,
            queue: BinaryHeap::new(),
            validators,
            nodes: nodes_state,
            network,
            clients,
            genesis,
            genesis_ledger: None,
            genesis_copies: Vec::new(),
            set,
            consensus_config,
            pipeline_config,
            events: 0,
            ticks: 0,
            kinds: EventKinds::default(),
            planted_amnesia: false,
            verdicts,
            executions: tessera_systems::execute::SharedExecutions::new(),
            cpu: None,
            auditor,
            verify_alone: false,
            queue_every_delivery: false,
            until: 0,
            counted_later: Vec::new(),
        };
        if let Some(Costs::Table(costs)) = &sim.scenario.validators.costs {
            let (per_host, cores) = (sim.scenario.validators.per_host, sim.scenario.validators.cores);
            sim.cpu = Some(Cpu {
                costs: costs.clone(),
                hosts: Hosts::new(v, per_host, cores),
                busy_until: vec![0; v as usize],
            });
        }
        // The validators without storage start from clones of the genesis ledger, made on every
        // core. The clones share the tree's pages until each writes them
        // (`Ledger::from_genesis_shared`), so a clone copies the balances (16 bytes an account)
        // and not the tree (64); at ten million accounts the three clones went from 1.9 s to
        // 0.3 s of the start. The ledger itself is kept for restarts only when the scenario can
        // restart one of them; otherwise it is the last validator's.
        let from_genesis = sim.validators.iter().filter(|validator| validator.disk.is_none()).count();
        if from_genesis > 0 {
            let genesis = Ledger::from_genesis_shared(&sim.genesis)?;
            if sim.scenario.restarts_from_genesis() {
                sim.genesis_copies = (0..from_genesis).into_par_iter().map(|_| genesis.clone()).collect();
                sim.genesis_ledger = Some(genesis);
            } else {
                sim.genesis_copies = (1..from_genesis).into_par_iter().map(|_| genesis.clone()).collect();
                sim.genesis_copies.push(genesis);
            }
        }
        for index in 0..v {
            sim.start_validator(index)?;
        }
        sim.schedule_faults();
        if !sim.scenario.workload.rate.is_empty() {
            sim.push(0, Event::Clients);
        }
        Ok(sim)
    }

    /// A checker self-test, never a node setting: from now on a restarted validator forgets
    /// the safety state it persisted (the vote amnesia of a node that does not keep it), so the
    /// swarm's and the fuzz target's safety invariant can be shown to catch the bug. Only the
    /// simulator has it: the node builds its core from its own store and never reads it.
    pub fn plant_amnesia(&mut self) {
        self.planted_amnesia = true;
    }

    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Entry { at, seq: self.seq, event });
    }

    fn schedule_faults(&mut self) {
        let mut heal = 0u64;
        for fault in self.scenario.faults.clone() {
            match fault {
                Fault::Crash { node, at_s, restart_s, storage, after_persist } => {
                    if after_persist {
                        // The crash lands on the node's next tick, so the restart is timed
                        // from there.
                        let down = restart_s.map(|restart| ns(restart) - ns(at_s));
                        self.push(ns(at_s), Event::CrashAfterPersist(node, storage, down));
                    } else {
                        self.push(ns(at_s), Event::Crash(node, storage));
                    }
                    if let Some(restart) = restart_s.filter(|_| !after_persist) {
                        self.push(ns(restart), Event::Restart(node));
                        heal = heal.max(ns(restart));
                    } else if let Some(restart) = restart_s {
                        heal = heal.max(ns(restart));
                    } else {
                        self.recorder.never_restarts(node);
                    }
                }
                Fault::ClockSkew { node, skew_ms } => {
                    self.validators[node as usize].skew_ns = skew_ms * MS as i64
                }
                Fault::Slow { node, factor } => self.network.set_slow(node, u64::from(factor)),
                Fault::Byzantine { node, behaviour, from_s, until_s } => {
                    let until = until_s.map_or(u64::MAX, ns);
                    self.validators[node as usize].byzantine.push((behaviour.behaviour(), ns(from_s), until));
                    self.recorder.mark_byzantine(node);
                    if until != u64::MAX {
                        heal = heal.max(until);
                    }
                }
            }
        }
        let random = self.scenario.random_faults.clone();
        let mut stream = SeedStream::new("tessera sim random faults", self.seed);
        let mut crashing: Vec<u32> = self
            .scenario
            .faults
            .iter()
            .filter_map(|fault| match fault {
                Fault::Crash { node, .. } => Some(*node),
                _ => None,
            })
            .collect();
        for _ in 0..random.crashes {
            let node = stream.below(u64::from(self.scenario.validators.count)) as u32;
            crashing.push(node);
            let at = stream.below(self.end.max(1) / 2 + 1);
            let restart = at + ns(random.down_s);
            self.push(at, Event::Crash(node, StorageFault::None));
            self.push(restart, Event::Restart(node));
            heal = heal.max(restart);
        }
        for (index, validator) in self.validators.iter_mut().enumerate() {
            validator.never_down = !crashing.contains(&(index as u32));
        }
        for p in &self.scenario.partitions {
            heal = heal.max(ns(p.end_s));
        }
        // Liveness is judged from a grace period after the last fault heals: view timeouts
        // back off up to 16×, so allow a few of them.
        let grace = self.consensus_config.view_timeout_ns * 4;
        let mark = heal.saturating_add(grace);
        self.recorder.set_heal(heal, mark);
        if mark < self.end {
            self.push(mark, Event::LivenessMark);
        }
    }

    /// (Re)starts validator `index` from its storage, or from genesis without storage.
    fn start_validator(&mut self, index: u32) -> Result<(), Box<dyn std::error::Error>> {
        let validator = &mut self.validators[index as usize];
        let (ledger, tip) = match validator.disk.as_mut() {
            Some(disk) => {
                let (ledger, recovery) = match disk.recover() {
                    Ok(recovered) => recovered,
                    Err(error) => {
                        // A disk the node refuses (corruption) is wiped, as an operator would
                        // wipe the directory, and the validator resyncs from its peers.
                        self.recorder.storage_refused(index, self.now, &error.to_string());
                        disk.wipe();
                        disk.recover()?
                    }
                };
                if recovery.torn_bytes_dropped > 0 {
                    self.recorder.storage_torn(index, self.now, recovery.torn_bytes_dropped);
                }
                let tip = ChainTip {
                    height: recovery.height,
                    hash: disk.tip_hash(),
                    state_root: recovery.state_root,
                };
                (ledger, tip)
            }
            None => {
                let ledger = match (self.genesis_copies.pop(), &self.genesis_ledger) {
                    (Some(copy), _) => copy,
                    (None, Some(ledger)) => ledger.clone(),
                    (None, None) => {
                        self.genesis_ledger.insert(Ledger::from_genesis_shared(&self.genesis)?).clone()
                    }
                };
                let tip = ChainTip::genesis(&ledger);
                (ledger, tip)
            }
        };
        let mut core = Core::new(
            index,
            validator.key.clone(),
            self.set.clone(),
            self.consensus_config.clone(),
            tip.height,
            tip.hash,
        );
        if !self.verify_alone {
            core.vouch_in(self.verdicts.clone());
        }
        if let Some(saved) = validator.safety.as_ref().filter(|_| !self.planted_amnesia) {
            core = core.with_safety_state(saved);
        }
        // Sync history per validator: enough for a crashed peer to catch up over minutes,
        // small enough for a thousand-node run.
        let stages = Stages::Validator { core: Box::new(core), history_bytes_max: 8 << 20 };
        let mut pipeline = Pipeline::with_stages(self.pipeline_config.clone(), ledger, tip, stages)?;
        pipeline.world_mut().insert_resource(self.verdicts.clone());
        pipeline.world_mut().insert_resource(self.executions.clone());
        if let Some(disk) = validator.disk.as_ref() {
            driver::restore_sync_history(&mut pipeline, disk);
        }
        validator.pipeline = Some(pipeline);
        validator.forwarding = Forwarding::new(FRAME_SIZE_LIMIT);
        self.recorder.restarted(index, self.now, tip.height);
        let at = self.now;
        self.wake(index, at);
        Ok(())
    }

    fn wake(&mut self, node: u32, at: u64) {
        let link = &mut self.nodes[node as usize];
        if at < link.wake_at {
            link.wake_at = at;
            self.push(at, Event::Wake(node));
        }
    }

    /// Sends at `now` (this moment or, after a tick's work, a later one) through the network
    /// model: partition, loss, upload queueing, transfer at the slower of the two ends'
    /// bandwidth, latency, reordering and duplication.
    fn send_at(&mut self, now: u64, from: u32, to: u32, payload: Payload, bytes: u64) {
        self.recorder.sent(from, bytes);
        match self.network.transmit(now, from, to, bytes) {
            Transmission::Partitioned => self.recorder.partitioned += 1,
            Transmission::Lost => self.recorder.lost += 1,
            Transmission::Arrives { at, duplicate_at } => {
                if duplicate_at.is_some() {
                    self.recorder.duplicated += 1;
                }
                for arrival in std::iter::once(at).chain(duplicate_at) {
                    if self.only_counts(to, &payload, arrival) {
                        // So it is counted, as its delivery would count it, instead of going
                        // through the queue: most of a large network's gossip. When it arrives
                        // by the time this run goes to, now; else once a run reaches it. Never
                        // after the end, when the run processes no more events.
                        if arrival <= self.until {
                            self.count_arrival(to, bytes);
                        } else if arrival <= self.end {
                            self.counted_later.push((arrival, to, bytes));
                        }
                        continue;
                    }
                    if let Payload::Block(height, _) = payload
                        && to >= self.scenario.validators.count
                    {
                        let promised = &mut self.nodes[to as usize].promised;
                        if height > promised.0 || (height == promised.0 && arrival < promised.1) {
                            *promised = (height, arrival);
                        }
                    }
                    self.push(arrival, Event::Deliver { to, from, payload: payload.clone(), bytes });
                }
            }
        }
    }

    /// Counts a delivery of a block announcement of `bytes` to `to` as its arrival would, when
    /// it only counts ([`Sim::only_counts`]): an event of its kind, a message received, and for
    /// a full node a gossip duplicate.
    fn count_arrival(&mut self, to: u32, bytes: u64) {
        self.events += 1;
        let validators = self.scenario.validators.count;
        *self.kinds.delivery(to, &Payload::Block(0, Hash::ZERO), validators) += 1;
        self.recorder.received(to, bytes);
        if to >= validators {
            self.kinds.to_full_nodes_counted += 1;
            self.recorder.gossip_duplicates += 1;
        } else {
            self.kinds.blocks_to_validators_counted += 1;
        }
    }

    /// Whether delivering `payload` to `to` at `arrival` would only count it: a block
    /// announcement to a full node that will hold its height by then (holds it already, as a
    /// full node's best height only grows, or an announcement queued to arrive first will
    /// bring it), so a duplicate; or one to a validator never down, which has the block from
    /// consensus and is not woken for it.
    fn only_counts(&self, to: u32, payload: &Payload, arrival: u64) -> bool {
        let Payload::Block(height, _) = payload else { return false };
        if self.queue_every_delivery {
            return false;
        }
        if to < self.scenario.validators.count {
            return self.validators[to as usize].never_down;
        }
        let node = &self.nodes[to as usize];
        *height <= node.best_height || (*height <= node.promised.0 && arrival >= node.promised.1)
    }

    fn behaviour(&self, node: u32) -> Behaviour {
        self.validators[node as usize]
            .byzantine
            .iter()
            .find(|(_, from, until)| self.now >= *from && self.now < *until)
            .map_or(Behaviour::Honest, |(behaviour, _, _)| *behaviour)
    }

    /// Signatures verified so far, each distinct one once for every node (the clients' and
    /// the validators'). With stand-ins it counts the transactions' stand-in checks and not
    /// the consensus messages'; `bench sim` reads it only with real signatures.
    pub fn signatures_verified(&self) -> u64 {
        self.verdicts.verified()
    }

    /// Runs to the end of the scenario; `progress` is called now and then with the virtual
    /// time reached.
    pub fn run(&mut self, progress: impl FnMut(u64, u64)) {
        self.run_until(self.end, progress);
        self.now = self.end;
        self.finish_audit();
    }

    /// Waits for the audit of every signature vouched for so far, and records a failure
    /// (again, harmlessly, if it was recorded before).
    fn finish_audit(&mut self) {
        if let Some(failed) = self.auditor.finish().failed {
            self.recorder.audit_failed(self.now, failed);
        }
    }

    /// Runs every event due by `until_ns` (at most the scenario's end); a later call goes on
    /// from there.
    pub fn run_until(&mut self, until_ns: u64, mut progress: impl FnMut(u64, u64)) {
        let until_ns = until_ns.min(self.end);
        self.until = until_ns;
        if !self.counted_later.is_empty() {
            let mut later = std::mem::take(&mut self.counted_later);
            later.retain(|&(at, to, bytes)| {
                if at <= until_ns {
                    self.count_arrival(to, bytes);
                }
                at > until_ns
            });
            self.counted_later = later;
        }
        let mut since_progress = 0u32;
        while self.queue.peek().is_some_and(|entry| entry.at <= until_ns) {
            let Some(entry) = self.queue.pop() else { break };
            self.now = entry.at;
            self.events += 1;
            since_progress += 1;
            if since_progress == 4096 {
                since_progress = 0;
                progress(self.now, self.events);
            }
            self.kinds.count(&entry.event, self.scenario.validators.count);
            match entry.event {
                Event::Wake(node) => {
                    self.on_wake(node);
                    self.auditor.poll();
                }
                Event::Deliver { to, from, payload, bytes } => self.on_deliver(to, from, payload, bytes),
                Event::Clients => self.on_clients(),
                Event::Crash(node, fault) => self.on_crash(node, fault),
                Event::CrashAfterPersist(node, fault, down) => {
                    let validator = &mut self.validators[node as usize];
                    if validator.pipeline.is_some() {
                        validator.crash_after_persist = Some((fault, down));
                    }
                }
                Event::Restart(node) => {
                    if self.validators[node as usize].pipeline.is_none()
                        && let Err(error) = self.start_validator(node)
                    {
                        self.recorder.storage_refused(node, self.now, &error.to_string());
                    }
                }
                Event::LivenessMark => self.recorder.liveness_mark(),
            }
        }
        self.now = self.now.max(until_ns);
    }

    /// Whether validator `node` is honest for the whole run (no Byzantine fault scheduled).
    pub fn is_honest(&self, node: u32) -> bool {
        !self.recorder.is_byzantine(node)
    }

    /// The last height validator `node` finalized.
    pub fn finalized_height(&self, node: u32) -> u64 {
        self.recorder.finalized_height(node)
    }

    /// The lowest finalized height among the validators honest for the whole run.
    pub fn honest_min_height(&self) -> u64 {
        (0..self.scenario.validators.count)
            .filter(|node| self.is_honest(*node))
            .map(|node| self.finalized_height(node))
            .min()
            .unwrap_or(0)
    }

    /// Validator `node`'s consensus counters (`None` while it is down).
    pub fn consensus_counters(&self, node: u32) -> Option<ConsensusCounters> {
        let pipeline = self.validators[node as usize].pipeline.as_ref()?;
        pipeline.consensus().map(|consensus| consensus.core.counters().clone())
    }

    /// A counter summed over the validators honest for the whole run.
    pub fn honest_sum(&self, counter: impl Fn(&ConsensusCounters) -> u64) -> u64 {
        (0..self.scenario.validators.count)
            .filter(|node| self.is_honest(*node))
            .filter_map(|node| self.consensus_counters(node))
            .map(|counters| counter(&counters))
            .sum()
    }

    /// Every delivery is queued from now on, none counted when sent ([`Sim::only_counts`]; for
    /// tests comparing the two).
    #[cfg(test)]
    pub(crate) fn queue_every_delivery(&mut self) {
        self.queue_every_delivery = true;
    }

    /// Every validator executes blocks for itself, as node processes do (for tests comparing
    /// the two).
    #[cfg(test)]
    pub(crate) fn execute_alone(&mut self) {
        self.executions = tessera_systems::execute::SharedExecutions::default();
        for validator in &mut self.validators {
            if let Some(pipeline) = validator.pipeline.as_mut() {
                pipeline.world_mut().insert_resource(self.executions.clone());
            }
        }
    }

    /// Validators vouch for none of their signatures from now on: each is verified where it is
    /// received, as in node processes (for tests comparing the two).
    #[cfg(test)]
    pub(crate) fn verify_alone(&mut self) {
        self.verify_alone = true;
        for validator in &mut self.validators {
            if let Some(pipeline) = validator.pipeline.as_mut() {
                let mut consensus =
                    pipeline.world_mut().resource_mut::<tessera_systems::consensus::Consensus>();
                consensus.core.vouch_in(tessera_systems::sigverify::SharedVerdicts::default());
            }
        }
    }

    /// Vouches in the run's memo for a signature that does not verify, as a broken signer
    /// would: the audit must find it, and fail the run (a self-test of the audit's wiring).
    #[cfg(test)]
    pub(crate) fn plant_bad_vouch(&mut self) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let signature = ed25519_dalek::Signer::sign(&key, b"signed").to_bytes();
        self.verdicts.vouch(&key.verifying_key().to_bytes(), b"vouched", &signature);
    }

    /// Signatures the audit has checked so far (all of them, once the run has ended).
    #[cfg(test)]
    pub(crate) fn audited(&self) -> u64 {
        self.auditor.audited()
    }

    /// Blocks executed for the shared memo, and executions reused from it.
    pub fn shared_executions(&self) -> (u64, u64) {
        self.executions.counts()
    }

    /// Ends the run's bookkeeping and makes the report (deterministic: no wall-clock figure
    /// in it).
    pub fn report(&mut self) -> Report {
        // A run driven by `run_until` alone is audited here: no report stands on an unchecked
        // verdict.
        self.finish_audit();
        self.recorder.finish();
        self.recorder.report(self.end, self.events)
    }

    fn on_clients(&mut self) {
        let batch_ns = self.scenario.workload.batch_ms * MS;
        if let Some(Batch { txns, targets, .. }) = self.clients.take(self.now)
            && !txns.is_empty()
        {
            let ids: Vec<TxnId> = txns.iter().map(Txn::id).collect();
            for id in &ids {
                self.recorder.submitted(*id, self.now);
            }
            let (batch, ids) = (Rc::new(txns), Rc::new(ids));
            // Clients sit next to the validator they use: the ingress hop costs processing only.
            for to in targets {
                let at = self.now;
                self.push(
                    at,
                    Event::Deliver {
                        to,
                        from: u32::MAX,
                        payload: Payload::Txns { batch: batch.clone(), ids: ids.clone(), forwarded: false },
                        bytes: 0,
                    },
                );
            }
        }
        if self.now + batch_ns <= self.end {
            self.push(self.now + batch_ns, Event::Clients);
        }
    }

    fn on_deliver(&mut self, to: u32, from: u32, payload: Payload, bytes: u64) {
        if from != u32::MAX {
            self.recorder.received(to, bytes);
        }
        let v = self.scenario.validators.count;
        if to >= v {
            return self.on_full_node_message(to, from, payload, bytes);
        }
        let now = self.now;
        let process = self.scenario.validators.process_us * 1000 * self.network.slow(to);
        let grid = self.scenario.validators.tick_ms * MS;
        let validator = &mut self.validators[to as usize];
        let Some(pipeline) = validator.pipeline.as_mut() else {
            self.recorder.to_crashed += 1;
            return;
        };
        match payload {
            Payload::Consensus(message) => {
                if let ConsensusMessage::Proposal(proposal) = &*message
                    && proposal.justify.is_none()
                {
                    self.recorder.holds(proposal.block.header.hash(), to, now);
                }
                pipeline.deliver(from, Rc::unwrap_or_clone(message));
            }
            Payload::Txns { batch, ids, forwarded } => {
                let forwarding = &mut validator.forwarding;
                for (txn, id) in batch.iter().zip(ids.iter()) {
                    // Like the node: a client's transaction is forwarded once admitted here
                    // (after the tick that admits it: `forward_admitted`).
                    if pipeline.submit_with_id(*txn, *id) && !forwarded {
                        forwarding.push(*txn, *id);
                    }
                }
            }
            // A full node's gossip reached a validator, which has the block from consensus:
            // nothing for its pipeline, so nothing to wake it for.
            Payload::Block(..) => return,
        }
        let ready = match &self.cpu {
            // The work is charged when the tick runs; it runs once the last one is done.
            Some(cpu) => now.max(cpu.busy_until[to as usize]),
            None => now + process,
        };
        self.wake(to, ready.div_ceil(grid) * grid);
    }

    fn on_full_node_message(&mut self, to: u32, from: u32, payload: Payload, bytes: u64) {
        let Payload::Block(height, hash) = payload else { return };
        let slow = self.network.slow(to);
        let link = &mut self.nodes[to as usize];
        if height <= link.best_height {
            self.recorder.gossip_duplicates += 1;
            return;
        }
        link.best_height = height;
        let forward_at_delay = self.scenario.validators.process_us * 1000 * slow;
        let neighbours: Vec<u32> = link.neighbours.iter().copied().filter(|n| *n != from).collect();
        self.recorder.holds(hash, to, self.now);
        // Relay after checking it (modelled as the processing delay): the upload queue then
        // spaces the copies by the sender's bandwidth.
        let at = self.now + forward_at_delay;
        for neighbour in neighbours {
            self.send_at(at, to, neighbour, Payload::Block(height, hash), bytes);
        }
    }

    fn on_crash(&mut self, node: u32, fault: StorageFault) {
        let validator = &mut self.validators[node as usize];
        validator.crash_after_persist = None;
        if validator.pipeline.take().is_none() {
            return;
        }
        self.nodes[node as usize].wake_at = u64::MAX;
        self.recorder.crashed(node, self.now);
        if let Some(what) = validator.disk.as_mut().and_then(|disk| disk.crash(fault)) {
            self.recorder.storage_damaged(node, self.now, &what);
        }
    }

    fn on_wake(&mut self, node: u32) {
        let link = &mut self.nodes[node as usize];
        if link.wake_at != self.now {
            return;
        }
        link.wake_at = u64::MAX;
        if let Some(busy) =
            self.cpu.as_ref().map(|cpu| cpu.busy_until[node as usize]).filter(|busy| *busy > self.now)
        {
            // Still working on its last tick.
            return self.wake(node, busy);
        }
        let behaviour = self.behaviour(node);
        self.ticks += 1;
        let validator = &mut self.validators[node as usize];
        let Some(pipeline) = validator.pipeline.as_mut() else { return };
        let local = self.now.saturating_add_signed(validator.skew_ns);
        let before = tick_work(pipeline.counters());
        let mut storage = SimStorage { store: validator.disk.as_mut(), safety: &mut validator.safety };
        let ticked = driver::tick(pipeline, local, Some(&mut storage));
        // When this tick's work is done: its messages leave and its blocks count from then.
        let slow = self.network.slow(node);
        let done = match self.cpu.as_mut() {
            Some(cpu) => {
                let after = tick_work(pipeline.counters());
                let work = TickWork {
                    txn_signatures: after.txn_signatures - before.txn_signatures,
                    admitted: after.admitted - before.admitted,
                    work: after.work.since(&before.work),
                };
                let (serial, parallel) = cpu.costs.price(&work);
                let done = cpu.hosts.run(node, self.now, (serial * slow, parallel * slow));
                cpu.busy_until[node as usize] = done;
                done
            }
            None => self.now,
        };
        // The disk's virtual time for this tick's writes: the node is busy until they are done.
        let disk_busy_ns = validator.disk.as_mut().map_or(0, SimDisk::take_busy_ns);
        let deadline = pipeline.next_wake_ns();
        if let Some(error) = &ticked.persist_error {
            self.recorder.storage_refused(node, self.now, &error.to_string());
        }
        let honest = behaviour == Behaviour::Honest && !self.recorder.is_byzantine(node);
        for finalized in &ticked.finalized {
            self.finalized(node, finalized, honest, done);
        }
        if let Some((fault, down)) = self.validators[node as usize].crash_after_persist {
            // Everything this tick signed is on disk; none of it leaves.
            self.on_crash(node, fault);
            if let Some(down) = down {
                self.push(self.now + down, Event::Restart(node));
            }
            return;
        }
        self.forward_admitted(node, &ticked, done + disk_busy_ns);
        let key = self.validators[node as usize].key.clone();
        let public = key.verifying_key().to_bytes();
        let stand_in = self.consensus_config.stand_in_signatures;
        let sign = move |message: &[u8]| {
            if stand_in {
                stand_in_sign(&public, message)
            } else {
                ed25519_dalek::Signer::sign(&key, message).to_bytes()
            }
        };
        let v = self.scenario.validators.count;
        for (destination, message) in ticked.outbound {
            if let ConsensusMessage::Proposal(proposal) = &message
                && proposal.justify.is_none()
            {
                self.recorder.proposed(proposal.block.header.hash(), node, self.now);
            }
            if honest {
                self.recorder.signed(node, &message, self.now);
            }
            let targets: Vec<u32> = destination.recipients(node, v).collect();
            let sends = byzantine::outbound(behaviour, self.set.chain(), &sign, &targets, message);
            // One encoding per distinct message: its real wire size. The cache holds each
            // message's `Rc`, so no address in it can be freed and reused while it lives.
            let mut sizes: Vec<(Rc<ConsensusMessage>, u64)> = Vec::new();
            for (to, message) in sends {
                let size = match sizes.iter().find(|(known, _)| Rc::ptr_eq(known, &message)) {
                    Some((_, size)) => *size,
                    None => {
                        let size = consensus_frame_size(&message) as u64;
                        sizes.push((Rc::clone(&message), size));
                        size
                    }
                };
                // Sent once the tick's writes (blocks, safety state) are on the disk.
                self.send_at(done + disk_busy_ns, node, to, Payload::Consensus(message), size);
            }
        }
        // Next: the pipeline's own next deadline (in global time), and no sooner than a
        // millisecond and this tick's writes from now. Pending transactions are not a deadline:
        // a validator waiting out a long block interval is not woken until its proposal is due
        // or something arrives. On the grid, the next grid point is one too.
        let skew = self.validators[node as usize].skew_ns;
        let mut global_deadline =
            if deadline == u64::MAX { u64::MAX } else { deadline.saturating_add_signed(-skew) };
        if self.scenario.validators.wake == Wake::Grid {
            let grid = self.scenario.validators.tick_ms * MS;
            global_deadline = global_deadline.min((self.now / grid + 1) * grid);
        }
        let next = global_deadline.max(self.now + MS.max(disk_busy_ns)).max(done + disk_busy_ns);
        if next <= self.end {
            self.wake(node, next);
        }
    }

    /// Like the node after a tick ([`Forwarding::after_tick`]): the client transactions
    /// validator `node` admitted, and what it forwarded to earlier leaders and still holds, go
    /// out at `at`, in batches of at most a frame.
    fn forward_admitted(&mut self, node: u32, ticked: &driver::Ticked, at: u64) {
        let validator = &mut self.validators[node as usize];
        let Some(pipeline) = validator.pipeline.as_ref() else { return };
        let forward = validator.forwarding.after_tick(pipeline, ticked);
        let batch_max = validator.forwarding.batch_max();
        let v = self.scenario.validators.count;
        for chunk in forward.txns.chunks(batch_max) {
            let (txns, ids): (Vec<Txn>, Vec<TxnId>) = chunk.iter().copied().unzip();
            let size = txns_frame_size(&txns) as u64;
            let (batch, ids) = (Rc::new(txns), Rc::new(ids));
            for peer in forward.destination.recipients(node, v) {
                let payload = Payload::Txns { batch: batch.clone(), ids: ids.clone(), forwarded: true };
                self.send_at(at, node, peer, payload, size);
            }
        }
    }

    fn finalized(&mut self, node: u32, finalized: &driver::Finalized, honest: bool, at: u64) {
        let block = &finalized.certified;
        let header = &block.block.header;
        let hash = block.certificate.block;
        let ids: Vec<TxnId> = finalized.outcomes.iter().map(|outcome| outcome.id).collect();
        self.recorder.finalized(node, header.height, hash, &ids, at, honest);
        if !honest {
            return;
        }
        // Announce to full-node neighbours (a block is about 160 bytes a transaction).
        let bytes = 256 + 160 * block.block.txns.len() as u64;
        let neighbours = self.nodes[node as usize].neighbours.clone();
        for neighbour in neighbours {
            self.send_at(at, node, neighbour, Payload::Block(header.height, hash), bytes);
        }
    }
}

impl Sim {
    /// Validator ticks run, and the consensus work the running validators did (a crashed
    /// validator's count goes with its pipeline).
    pub fn work_done(&self) -> (u64, Work) {
        let total = self
            .validators
            .iter()
            .filter_map(|v| v.pipeline.as_ref())
            .fold(Work::default(), |total, pipeline| total.plus(&pipeline.counters().work));
        (self.ticks, total)
    }
}

/// The counts a tick's price is made of, read before and after it.
fn tick_work(counters: &tessera_systems::PipelineCounters) -> TickWork {
    TickWork { txn_signatures: counters.verified, admitted: counters.admitted, work: counters.work }
}

/// Runs a scenario to its end.
///
/// # Errors
/// See [`Sim::new`].
pub fn run(
    scenario: Scenario,
    seed: u64,
    progress: impl FnMut(u64, u64),
) -> Result<Sim, Box<dyn std::error::Error>> {
    let mut sim = Sim::new(scenario, seed)?;
    sim.run(progress);
    Ok(sim)
}

#[cfg(test)]
impl Sim {
    /// A client's batch of `txns`, delivered to validator `to` now.
    pub(super) fn deliver_client_txns(&mut self, to: u32, txns: Vec<Txn>) {
        let ids: Vec<TxnId> = txns.iter().map(Txn::id).collect();
        let payload = Payload::Txns { batch: Rc::new(txns), ids: Rc::new(ids), forwarded: false };
        self.on_deliver(to, u32::MAX, payload, 0);
    }

    /// Transactions validator `node` refused for `reason` so far (0 while it is down).
    pub(super) fn refused(&self, node: u32, reason: tessera_components::RejectReason) -> u64 {
        self.validators[node as usize]
            .pipeline
            .as_ref()
            .map_or(0, |pipeline| pipeline.reject_counters().get(reason))
    }

    /// The nonce of the account at `address` in validator `node`'s ledger (`None` while down).
    pub(super) fn nonce_of(&self, node: u32, address: &[u8; 32]) -> Option<u64> {
        self.validators[node as usize].pipeline.as_ref().map(|pipeline| pipeline.ledger().nonce_of(address))
    }

    /// The genesis key of client account `index` (real signatures only).
    pub(super) fn client_key(&self, index: u64) -> SigningKey {
        client_key(self.seed, index)
    }

    /// Delivers a full node's block announcement to validator `to` now; true when that queued
    /// anything (a wake-up).
    pub(super) fn announce_to_validator(&mut self, to: u32) -> bool {
        let queued = self.queue.len();
        let from = self.scenario.validators.count;
        self.on_deliver(to, from, Payload::Block(1, Hash::ZERO), 256);
        self.queue.len() > queued
    }

    /// Crashes validator `node` now, its storage intact.
    pub(super) fn crash_now(&mut self, node: u32) {
        self.validators[node as usize].never_down = false;
        self.on_crash(node, StorageFault::None);
    }

    /// Messages that reached a crashed node so far.
    pub(super) fn to_crashed(&self) -> u64 {
        self.recorder.to_crashed
    }
}
