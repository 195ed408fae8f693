//! # tessera-systems: the behaviour of a Tessera node
//!
//! Bird's eye view: a node is a bevy_ecs `World` plus one `Schedule`. The shell (real
//! runtime, simulator, fuzzer or test) writes inbound transactions into the [`ingest::Inbox`]
//! resource and the time into [`clock::Clock`], runs the schedule once (a *tick*), and drains
//! [`BlockCommitted`] messages. Systems never touch sockets, files, threads or clocks.
//!
//! One tick runs these sets in order, each from its own subsystem [`Plugin`]:
//!
//! ```text
//! ingest → prefilter → sigverify → dedup → mempool(admit) → propose → execute
//!        → mempool(prune) → check_invariants (debug builds)
//! ```
//!
//! Transactions in flight are entities whose fields are component columns ([`TxnBody`],
//! [`TxnSignature`], [`TxnId`], [`Stage`]); each stage sweeps the entities at its
//! input [`Stage`] and moves them on. Every transaction entity is despawned in the mempool
//! set once its signature verdict has landed (the tick it arrived in, or the next one when
//! verification overlaps the tick): admitted ones live on in the [`mempool::Mempool`]
//! resource, whose indexes (per-sender nonce order, fee order) are not column sweeps.
//!
//! Pure kernels (Ed25519 verification) live in [`kernels`] and never import bevy_ecs.
//!
//! [`TxnBody`]: tessera_components::TxnBody
//! [`TxnSignature`]: tessera_components::TxnSignature
//! [`TxnId`]: tessera_components::TxnId
//! [`Stage`]: tessera_components::Stage

pub mod clock;
pub mod config;
pub mod consensus;
pub mod counters;
pub mod dedup;
pub mod execute;
pub mod fifo;
pub mod ingest;
pub mod invariants;
pub mod kernels;
pub mod ledger;
pub mod mempool;
pub mod messages;
pub mod plugin;
pub mod prefilter;
pub mod propose;
pub mod sigverify;
pub mod workload;

#[cfg(test)]
mod pipeline_tests;
#[cfg(test)]
mod test_alloc;

use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{LogLevel, ScheduleBuildSettings, SingleThreadedExecutor};
use tessera_components::{Txn, TxnId};

pub use clock::Clock;
pub use config::{ConfigError, PipelineConfig};
pub use counters::{PipelineCounters, RejectCounters};
pub use ledger::{GenesisError, Ledger, LedgerDelta, LedgerParts, Overlay};
pub use messages::{BlockCommitted, BlockProposed, ChainTip, TxnOutcome, TxnRejected};
pub use plugin::Plugin;

/// Advances the double-buffered message queues once per tick, first thing.
fn update_messages(
    mut proposed: ResMut<Messages<BlockProposed>>,
    mut committed: ResMut<Messages<BlockCommitted>>,
    mut rejected: ResMut<Messages<TxnRejected>>,
) {
    proposed.update();
    committed.update();
    rejected.update();
}

/// Which stages a [`Pipeline`] runs.
#[derive(Debug)]
pub enum Stages {
    /// Every stage, with this node proposing and executing every block on its own: ingest
    /// through execute. Benchmarks and single-node tests.
    Full,
    /// A validator: the admission path and the mempool, then BFT consensus (which proposes
    /// when this node leads, validates others' proposals and finalizes blocks).
    Validator {
        /// The state machine, set up with this validator's key and the validator set.
        core: Box<consensus::core::Core>,
        /// Bytes of finalized blocks kept in memory to serve peers that sync.
        history_bytes_max: usize,
    },
    /// Ingest, prefilter, sigverify and dedup only; transactions that pass are counted as
    /// admitted and dropped. The admission path on its own, for measurement.
    ThroughDedup,
}

/// End of the [`Stages::ThroughDedup`] schedule: counts what passed and despawns every
/// transaction entity whose verdict has landed.
fn drain_checked_txns(
    mut commands: Commands,
    mut pipeline: ResMut<PipelineCounters>,
    txns: Query<(Entity, &tessera_components::Stage)>,
) {
    for (entity, stage) in &txns {
        match stage {
            tessera_components::Stage::Verifying => continue,
            tessera_components::Stage::Unique => pipeline.admitted += 1,
            _ => {}
        }
        commands.entity(entity).despawn();
    }
}

/// Runs before every other set.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FirstSystems;

/// Why a pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A configuration value cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The schedule has an ordering conflict (ambiguity detection is an error).
    #[error("schedule does not build: {0}")]
    Schedule(String),
}

/// An empty schedule as a node runs one: on one thread, and refusing to build when two
/// systems that touch the same data have no order between them (their order would be the
/// executor's choice, and a node's results must not depend on it).
fn node_schedule() -> Schedule {
    let mut schedule = Schedule::default();
    // Single-threaded: the heavy kernel (sigverify) parallelises inside its system with
    // rayon, and the multi-threaded executor's overhead exceeds what the small systems
    // would gain.
    schedule.set_executor(SingleThreadedExecutor::new());
    schedule.set_build_settings(ScheduleBuildSettings {
        ambiguity_detection: LogLevel::Error,
        ..ScheduleBuildSettings::default()
    });
    schedule
}

/// A node's world and schedule, driven by a shell.
pub struct Pipeline {
    world: World,
    schedule: Schedule,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").field("tip", &self.tip()).finish_non_exhaustive()
    }
}

impl Pipeline {
    /// Builds the world and schedule over `ledger` (the genesis state).
    ///
    /// # Errors
    /// An invalid configuration, or a schedule with ambiguous system order.
    pub fn new(config: PipelineConfig, ledger: Ledger) -> Result<Pipeline, PipelineError> {
        let tip = ChainTip::genesis(&ledger);
        Pipeline::with_stages(config, ledger, tip, Stages::Full)
    }

    /// Builds a pipeline of the given [`Stages`] over `ledger`.
    ///
    /// # Errors
    /// An invalid configuration, or a schedule with ambiguous system order.
    pub fn with_stages(
        config: PipelineConfig,
        ledger: Ledger,
        tip: ChainTip,
        stages: Stages,
    ) -> Result<Pipeline, PipelineError> {
        config.validate()?;
        let mut world = World::new();
        world.insert_resource(config);
        world.insert_resource(ledger);
        world.insert_resource(tip);
        world.init_resource::<Clock>();
        world.init_resource::<RejectCounters>();
        world.init_resource::<PipelineCounters>();

        let mut schedule = node_schedule();
        let admission: [&dyn Plugin; 4] = [
            &ingest::IngestPlugin,
            &prefilter::PrefilterPlugin,
            &sigverify::SigverifyPlugin,
            &dedup::DedupPlugin,
        ];
        for plugin in admission {
            plugin.build(&mut world, &mut schedule);
        }
        match stages {
            Stages::Full => {
                let rest: [&dyn Plugin; 4] = [
                    &mempool::MempoolPlugin,
                    &propose::ProposePlugin,
                    &execute::ExecutePlugin,
                    &invariants::InvariantsPlugin,
                ];
                for plugin in rest {
                    plugin.build(&mut world, &mut schedule);
                }
                schedule.add_systems(update_messages.in_set(FirstSystems));
            }
            Stages::ThroughDedup => {
                schedule.add_systems(drain_checked_txns.in_set(mempool::MempoolSystems::Admit));
            }
            Stages::Validator { core, history_bytes_max } => {
                world.init_resource::<Messages<BlockProposed>>();
                world.init_resource::<Messages<BlockCommitted>>();
                let plugin = consensus::ConsensusPlugin {
                    core: std::sync::Mutex::new(Some(*core)),
                    inbox_capacity: 1 << 16,
                    history_bytes_max,
                };
                let rest: [&dyn Plugin; 3] =
                    [&mempool::MempoolPlugin, &plugin, &invariants::InvariantsPlugin];
                for plugin in rest {
                    plugin.build(&mut world, &mut schedule);
                }
                schedule.add_systems(update_messages.in_set(FirstSystems));
            }
        }
        schedule.configure_sets(
            (
                FirstSystems,
                ingest::IngestSystems::Ingest,
                prefilter::PrefilterSystems::Filter,
                sigverify::SigverifySystems::Verify,
                dedup::DedupSystems::Dedup,
                mempool::MempoolSystems::Admit,
                propose::ProposeSystems::Propose,
                execute::ExecuteSystems::Execute,
                consensus::ConsensusSystems::Verify,
                consensus::ConsensusSystems::Step,
                mempool::MempoolSystems::Prune,
                invariants::InvariantSystems::Check,
            )
                .chain(),
        );
        if let Err(error) = schedule.initialize(&mut world) {
            return Err(PipelineError::Schedule(error.to_string(schedule.graph(), &world)));
        }
        Ok(Pipeline { world, schedule })
    }

    /// Transactions the inbox has room for before it drops what is submitted.
    pub fn inbox_room(&self) -> usize {
        self.world.resource::<ingest::Inbox>().room()
    }

    /// Queues a transaction; false if the inbox is full (the drop is counted).
    pub fn submit(&mut self, txn: Txn) -> bool {
        self.world.resource_mut::<ingest::Inbox>().push(txn)
    }

    /// Queues a transaction whose id the caller computed already as `txn.id()` (see
    /// [`ingest::Inbox::push_with_id`]); false if the inbox is full.
    pub fn submit_with_id(&mut self, txn: Txn, id: TxnId) -> bool {
        self.world.resource_mut::<ingest::Inbox>().push_with_id(txn, id)
    }

    /// Queues a transaction from `from` (a forwarding validator, or a client's address): a bad
    /// signature on it is charged to `from` (see [`Pipeline::take_forged`]). False if the inbox
    /// is full.
    pub fn submit_from(&mut self, txn: Txn, from: tessera_components::Source) -> bool {
        self.world.resource_mut::<ingest::Inbox>().push_from(txn, Some(from))
    }

    /// Bad signatures found since the last call on transactions with a source, and consensus
    /// messages dropped for a bad signature (each charged to the validator that sent it), per
    /// source: `(source, count)`, in source order. An honest validator forwards only what it
    /// verified and sends only what it signed or verified, and an honest client signs what it
    /// sends, so each is evidence against its source.
    pub fn take_forged(&mut self) -> Vec<(tessera_components::Source, u64)> {
        let mut forged = self.world.resource_mut::<sigverify::Forged>();
        std::mem::take(&mut forged.0).into_iter().collect()
    }

    /// Runs one tick at `now_ns` and returns the blocks it committed.
    pub fn tick(&mut self, now_ns: u64) -> Vec<BlockCommitted> {
        self.world.resource_mut::<Clock>().now_ns = now_ns;
        self.schedule.run(&mut self.world);
        // Every despawned transaction entity leaves a `RemovedComponentEntity` message per
        // component in the world's removal buffers, which only this call empties (an App
        // does it after each update). Without it the buffers grew by ~85 bytes per
        // transaction for the life of the process: the soak's unexplained RSS growth, found
        // with the dhat-heap build. Nothing here reads removals or world-level change ticks.
        self.world.clear_trackers();
        match self.world.get_resource_mut::<Messages<BlockCommitted>>() {
            Some(mut committed) => committed.drain().collect(),
            None => Vec::new(),
        }
    }

    /// The earliest pipeline clock reading at which a tick would do something if nothing new
    /// arrived: 0 (now) while input is queued (transactions not yet through ingest, a
    /// verification job whose verdicts are still to land, consensus messages not yet
    /// stepped); else the consensus core's next deadline (a proposal due, a view timeout, a
    /// resend); without consensus, the solo proposer's next block while the mempool holds
    /// transactions; else `u64::MAX`. Pending transactions alone are no reason to tick a
    /// validator: the core proposes from the mempool at its proposal deadline, and a follower
    /// packs nothing. The simulator sleeps a node until this, so a waiting node costs nothing
    /// per virtual second.
    pub fn next_wake_ns(&self) -> u64 {
        let queued = !self.world.resource::<ingest::Inbox>().is_empty()
            || self.world.resource::<sigverify::VerifyJob>().is_busy()
            || self.world.get_resource::<consensus::ConsensusInbox>().is_some_and(|inbox| !inbox.is_empty());
        if queued {
            return 0;
        }
        if let Some(consensus) = self.consensus() {
            return consensus.core.next_deadline_ns();
        }
        let mempool_empty =
            self.world.get_resource::<mempool::Mempool>().is_none_or(mempool::Mempool::is_empty);
        match self.world.get_resource::<propose::ProposerState>() {
            Some(state) if !mempool_empty => state.last_proposal_ns.map_or(0, |last| {
                last.saturating_add(self.world.resource::<PipelineConfig>().block_interval_ns)
            }),
            _ => u64::MAX,
        }
    }

    /// Refills a validator's sync history from its finalized chain at start-up (see
    /// [`consensus::Consensus::preload_history`]); 0 without consensus.
    pub fn preload_sync_history(
        &mut self,
        block: impl FnMut(u64) -> Option<tessera_components::CertifiedBlock>,
    ) -> usize {
        let tip = self.tip().height;
        match self.world.get_resource_mut::<consensus::Consensus>() {
            Some(mut consensus) => consensus.preload_history(tip, block),
            None => 0,
        }
    }

    /// True when nothing is queued, in flight or pending: another tick would do nothing.
    pub fn is_idle(&self) -> bool {
        self.world.resource::<ingest::Inbox>().is_empty()
            && !self.world.resource::<sigverify::VerifyJob>().is_busy()
            && self.world.get_resource::<mempool::Mempool>().is_none_or(mempool::Mempool::is_empty)
    }

    /// Queues a consensus message from validator `from`; false if this pipeline runs no
    /// consensus or its inbox is full (the drop is counted).
    pub fn deliver(&mut self, from: u32, message: tessera_components::ConsensusMessage) -> bool {
        match self.world.get_resource_mut::<consensus::ConsensusInbox>() {
            Some(mut inbox) => inbox.push(from, message),
            None => false,
        }
    }

    /// Takes the consensus messages produced since the last call.
    pub fn drain_outbound(
        &mut self,
    ) -> Vec<(consensus::core::Destination, tessera_components::ConsensusMessage)> {
        match self.world.get_resource_mut::<consensus::ConsensusOutbox>() {
            Some(mut outbox) => std::mem::take(&mut outbox.messages),
            None => Vec::new(),
        }
    }

    /// The consensus safety state if it changed since the last call (a validator only): the
    /// shell persists it before it takes the outbox (see
    /// [`consensus::core::Core::take_safety_update`]).
    pub fn take_safety_update(&mut self) -> Option<tessera_components::SafetyState> {
        self.world.get_resource_mut::<consensus::Consensus>()?.core.take_safety_update()
    }

    /// The shell could not persist the state [`Pipeline::take_safety_update`] returned: it is
    /// returned again at the next call (see [`consensus::core::Core::safety_not_saved`]).
    pub fn safety_not_saved(&mut self) {
        if let Some(mut consensus) = self.world.get_resource_mut::<consensus::Consensus>() {
            consensus.core.safety_not_saved();
        }
    }

    /// Takes the blocks finalized since the last call, with their commit certificates (a
    /// validator only; the shell persists them).
    pub fn drain_certified(&mut self) -> Vec<tessera_components::CertifiedBlock> {
        match self.world.get_resource_mut::<consensus::Consensus>() {
            Some(mut consensus) => consensus.core.drain_finalized(),
            None => Vec::new(),
        }
    }

    /// Takes the refusals recorded since the last call.
    pub fn drain_rejections(&mut self) -> Vec<TxnRejected> {
        match self.world.get_resource_mut::<Messages<TxnRejected>>() {
            Some(mut rejected) => rejected.drain().collect(),
            None => Vec::new(),
        }
    }

    /// Gives the verification stage a monotonic clock (microseconds) to time its jobs with;
    /// the node passes one, the simulator none.
    pub fn set_verify_clock(&mut self, clock_us: fn() -> u64) {
        if let Some(mut timings) = self.world.get_resource_mut::<sigverify::VerifyTimings>() {
            timings.set_clock(clock_us);
        }
    }

    /// Microseconds of the verification jobs finished since the last call (with a clock set).
    pub fn drain_verify_timings(&mut self) -> Vec<u64> {
        self.world.get_resource_mut::<sigverify::VerifyTimings>().map_or_else(Vec::new, |mut t| t.drain())
    }

    /// Pending transactions in the mempool (0 without one).
    pub fn mempool_len(&self) -> usize {
        self.world.get_resource::<mempool::Mempool>().map_or(0, mempool::Mempool::len)
    }

    /// Whether `id` is pending in the mempool.
    pub fn is_pending(&self, id: &tessera_components::TxnId) -> bool {
        self.world.get_resource::<mempool::Mempool>().is_some_and(|mempool| mempool.contains(id))
    }

    /// Whether `txn` is next in line for its sender: its nonce is the sender's account nonce, or
    /// each nonce from that one up to it is pending in the mempool or in a block this node
    /// packed ([`mempool::Mempool::in_line`]; a run of at most
    /// [`consensus::forward::Forwarded::PER_SENDER_MAX`]). A transaction that is not waits
    /// behind a gap ([`consensus::forward::Forwarded::note`]).
    pub fn is_next_in_line(&self, txn: &tessera_components::Txn) -> bool {
        let (Some(ledger), Some(mempool)) =
            (self.world.get_resource::<Ledger>(), self.world.get_resource::<mempool::Mempool>())
        else {
            return false;
        };
        let body = &txn.body;
        let run_max = u64::from(consensus::forward::Forwarded::PER_SENDER_MAX);
        mempool.in_line(&body.sender, ledger.nonce_of(&body.sender), body.nonce, run_max)
    }

    /// The consensus state, if this pipeline is a validator.
    pub fn consensus(&self) -> Option<&consensus::Consensus> {
        self.world.get_resource::<consensus::Consensus>()
    }

    /// Distinct signatures verified on consensus messages so far (0 without consensus).
    pub fn consensus_signatures_verified(&self) -> u64 {
        self.world.get_resource::<consensus::VerifiedConsensus>().map_or(0, |v| v.signatures_verified)
    }

    /// The world, for reading resources.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The world, for drivers that need to write resources directly.
    pub fn world_mut(&mut self) -> &mut World {
        &mut self.world
    }

    /// Account state.
    pub fn ledger(&self) -> &Ledger {
        self.world.resource::<Ledger>()
    }

    /// Refusal counters.
    pub fn reject_counters(&self) -> &RejectCounters {
        self.world.resource::<RejectCounters>()
    }

    /// Throughput counters.
    pub fn counters(&self) -> &PipelineCounters {
        self.world.resource::<PipelineCounters>()
    }

    /// The last executed block.
    pub fn tip(&self) -> ChainTip {
        *self.world.resource::<ChainTip>()
    }
}
