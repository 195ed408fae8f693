//! Consensus: BFT agreement with finality, as ECS systems around a sans-IO state machine.
//!
//! Bird's eye view: the shell writes inbound consensus messages into [`ConsensusInbox`];
//! [`verify_consensus_messages`] batch-verifies every signature they carry through the
//! signature kernel and drops what fails; [`step_consensus`] feeds the survivors and the
//! [`crate::Clock`] to the [`core::Core`] state machine, which proposes from the mempool,
//! validates proposals by executing them speculatively, and finalizes blocks by applying them
//! to the ledger and writing [`crate::BlockCommitted`]. Outbound messages collect in
//! [`ConsensusOutbox`] for the shell to send.

#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub mod cluster;
pub mod core;
pub mod forward;
#[cfg(any(test, fuzzing, feature = "fuzzing"))]
pub mod fuzz;

use bevy_ecs::prelude::*;
use foldhash::HashMap;
use tessera_components::constants::TXN_SIZE;
use tessera_components::{
    Block, BlockFields, BlockHeader, CertifiedBlock, ConsensusMessage, Hash, QuorumCertificate, TxnId,
};

use self::core::{BlockFault, Core, Destination, Host, sync_cost};
use crate::clock::Clock;
use crate::config::PipelineConfig;
use crate::counters::{PipelineCounters, RejectCounters, Work};
use crate::execute::{SharedExecutions, count_outcomes};
use crate::kernels::sigverify::{VerifyItem, stand_in_signature, verify_many};
use crate::ledger::{Ledger, LedgerDelta};
use crate::mempool::Mempool;
use crate::messages::{BlockCommitted, ChainTip};
use crate::plugin::Plugin;
use crate::prefilter::check_body;
use crate::sigverify::{AcceptedSignatures, SharedVerdicts};

/// The consensus subsystem's sets.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsensusSystems {
    /// Batch-verifies inbound signatures.
    Verify,
    /// Runs the state machine.
    Step,
}

/// Messages from peers, written by the shell: `(sender validator index, message)`. Bounded by
/// `capacity`; arrivals past it are dropped and counted.
#[derive(Debug, Resource)]
pub struct ConsensusInbox {
    messages: Vec<(u32, ConsensusMessage)>,
    capacity: usize,
    /// Messages dropped because the inbox was full.
    pub dropped: u64,
}

impl ConsensusInbox {
    /// An empty inbox of `capacity` messages.
    pub fn new(capacity: usize) -> ConsensusInbox {
        ConsensusInbox { messages: Vec::new(), capacity, dropped: 0 }
    }

    /// Queues a message from validator `from`; false (and counted) when full.
    pub fn push(&mut self, from: u32, message: ConsensusMessage) -> bool {
        if self.messages.len() >= self.capacity {
            self.dropped += 1;
            return false;
        }
        self.messages.push((from, message));
        true
    }

    /// Queued messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// Messages for peers, drained by the shell after each tick.
#[derive(Debug, Default, Resource)]
pub struct ConsensusOutbox {
    /// `(destination, message)` in the order produced.
    pub messages: Vec<(Destination, ConsensusMessage)>,
}

/// Messages that passed signature verification this tick, in arrival order.
#[derive(Debug, Default, Resource)]
pub struct VerifiedConsensus {
    messages: Vec<(u32, ConsensusMessage)>,
    /// Messages dropped so far for a bad signature or an unknown signer.
    pub dropped_bad_signature: u64,
    /// Distinct signatures verified so far.
    pub signatures_verified: u64,
}

/// The validator's state machine and its speculative-execution cache.
#[derive(Debug, Resource)]
pub struct Consensus {
    /// The protocol state.
    pub core: Core,
    started: bool,
    /// What executing each block validated (or built) but not yet finalized changes, by block
    /// hash: a delta over the ledger in proportion to the accounts the block touches.
    speculative: HashMap<Hash, (LedgerDelta, BlockCommitted)>,
    /// Finalized blocks kept in memory for peers that sync, oldest dropped once they take more
    /// than `history_bytes_max` (as [`sync_cost`] counts them: transactions, header and
    /// certificate).
    history: std::collections::VecDeque<CertifiedBlock>,
    history_bytes: usize,
    history_bytes_max: usize,
}

impl Consensus {
    /// Finalized blocks kept for sync, and their cost as counted against `history_bytes_max`.
    pub fn history_held(&self) -> (usize, usize) {
        (self.history.len(), self.history_bytes)
    }

    /// Ledgers executed speculatively for validated, not yet finalized blocks.
    pub fn speculative_held(&self) -> usize {
        self.speculative.len()
    }

    /// Wraps a state machine; keeps recent finalized blocks for sync within `history_bytes_max`.
    pub fn new(core: Core, history_bytes_max: usize) -> Consensus {
        Consensus {
            core,
            started: false,
            speculative: HashMap::default(),
            history: std::collections::VecDeque::new(),
            history_bytes: 0,
            history_bytes_max,
        }
    }
}

/// Appends the next finalized block to the sync history, dropping the oldest past the budget
/// (the newest is always kept).
fn keep_for_sync(
    history: &mut std::collections::VecDeque<CertifiedBlock>,
    history_bytes: &mut usize,
    history_bytes_max: usize,
    certified: CertifiedBlock,
) {
    *history_bytes += sync_cost(&certified);
    history.push_back(certified);
    while *history_bytes > history_bytes_max && history.len() > 1 {
        let dropped = history.pop_front().expect("more than one block kept");
        *history_bytes -= sync_cost(&dropped);
    }
}

impl Consensus {
    /// Refills the sync history at start-up with the newest finalized blocks, up to the byte
    /// budget: `block(height)` reads one from the node's store, walking down from
    /// `tip_height` until the budget is spent or a block is missing. Without it a validator
    /// that restarted could serve no block finalized before the restart, and a peer behind
    /// every restarted validator could never catch up. Returns how many blocks it holds.
    pub fn preload_history(
        &mut self,
        tip_height: u64,
        mut block: impl FnMut(u64) -> Option<CertifiedBlock>,
    ) -> usize {
        let mut newest_first = Vec::new();
        let mut bytes = 0usize;
        for height in (1..=tip_height).rev() {
            let Some(certified) = block(height).filter(|c| c.block.header.height == height) else { break };
            bytes += sync_cost(&certified);
            if bytes > self.history_bytes_max && !newest_first.is_empty() {
                break;
            }
            newest_first.push(certified);
        }
        self.history.clear();
        self.history_bytes = 0;
        for certified in newest_first.into_iter().rev() {
            keep_for_sync(&mut self.history, &mut self.history_bytes, self.history_bytes_max, certified);
        }
        self.history.len()
    }
}

/// The [`Host`] a tick lends the state machine: the mempool, ledger and chain tip.
struct NodeHost<'a> {
    config: &'a PipelineConfig,
    mempool: &'a mut Mempool,
    ledger: &'a mut Ledger,
    tip: &'a mut ChainTip,
    speculative: &'a mut HashMap<Hash, (LedgerDelta, BlockCommitted)>,
    history: &'a mut std::collections::VecDeque<CertifiedBlock>,
    history_bytes: &'a mut usize,
    history_bytes_max: usize,
    committed: &'a mut Vec<BlockCommitted>,
    accepted: &'a mut AcceptedSignatures,
    /// The simulator's memo of verdicts, by transaction id (none in a node process).
    shared: &'a SharedVerdicts,
    executions: &'a SharedExecutions,
    work: &'a mut Work,
    now_ms: u64,
}

impl NodeHost<'_> {
    fn execute(&mut self, block: &Block) -> (LedgerDelta, BlockCommitted) {
        let ids: Vec<TxnId> = block.txns.iter().map(|txn| txn.id()).collect();
        self.executions.execute(self.ledger, block, &ids)
    }
}

impl Host for NodeHost<'_> {
    fn build_block(&mut self, height: u64, view: u64, parent: Hash, proposer: u32) -> Block {
        let packed = self.mempool.pack(self.ledger, self.config.block_txn_max, self.config.block_bytes_max);
        self.mempool.note_packed(height, &packed);
        let (txns, ids): (Vec<_>, Vec<_>) = packed.into_iter().unzip();
        self.work.blocks_built += 1;
        self.work.txns_packed += txns.len() as u64;
        let fields =
            BlockFields { height, view, timestamp_ms: self.now_ms, proposer, parent, state_root: Hash::ZERO };
        let mut block = Block::assemble(fields, txns, &ids);
        let (delta, sealed) = self.executions.execute(self.ledger, &block, &ids);
        block.header.state_root = sealed.block.header.state_root;
        debug_assert_eq!(sealed.hash, block.header.hash());
        self.speculative.insert(sealed.hash, (delta, sealed));
        block
    }

    fn validate_block(&mut self, block: &Block) -> Result<(), BlockFault> {
        let size = size_of::<BlockHeader>() + block.txns.len() * TXN_SIZE;
        if block.txns.len() > self.config.block_txn_max || size > self.config.block_bytes_max {
            return Err(BlockFault::OverLimit);
        }
        if block.header.txn_count as usize != block.txns.len() {
            return Err(BlockFault::BadBody);
        }
        // Each id once: the root, the signature cache and execution all use them (in the
        // simulator, once for every validator given the same body).
        let Some(body) = self.executions.checked_body(block) else {
            return Err(BlockFault::BadBody);
        };
        let ids = &body.ids;
        // Static checks against a ledger with no nonce history, so only the stateless rules
        // apply here (nonces and balances are execution outcomes, recorded per transaction).
        let stateless = Ledger::default();
        let relaxed = PipelineConfig { nonce_window: u64::MAX, ..self.config.clone() };
        if block.txns.iter().any(|txn| check_body(&txn.body, &relaxed, &stateless).is_err()) {
            return Err(BlockFault::InvalidTransaction);
        }
        // Transactions this node already verified (it saw them in its own pipeline) are in the
        // cache of accepted signatures; only the rest are checked here, and counted as this
        // node's work whether or not another simulated validator checked the same body first.
        let stand_in = self.config.sigverify_stand_in;
        let unseen: Vec<usize> = (0..ids.len()).filter(|i| !self.accepted.0.contains(&ids[*i].0.0)).collect();
        self.work.blocks_validated += 1;
        self.work.txns_validated += block.txns.len() as u64;
        self.work.block_signatures += unseen.len() as u64;
        if !body.signatures_valid(stand_in) {
            // Through the simulator's memo, keyed by transaction id (a hash of exactly the
            // key, message and signature): the clients' thread verified what they signed
            // ahead of the loop, and another validator may have checked the rest.
            let verdicts = self.shared.remembered(
                &unseen,
                |i| ids[*i].0.0,
                |unknown| {
                    if stand_in {
                        unknown
                            .iter()
                            .map(|i| block.txns[*i].signature.0 == stand_in_signature(&block.txns[*i].body))
                            .collect()
                    } else {
                        let items: Vec<VerifyItem<'_>> =
                            unknown.iter().map(|i| VerifyItem::of_txn(&block.txns[*i])).collect();
                        let mut verdicts = vec![false; items.len()];
                        verify_many(&items, &mut verdicts, self.config.sigverify_batch_size);
                        verdicts
                    }
                },
            );
            if verdicts.iter().any(|ok| !ok) {
                return Err(BlockFault::InvalidTransaction);
            }
            if unseen.len() == ids.len() {
                body.set_signatures_valid(stand_in);
            }
        }
        for i in unseen {
            self.accepted.0.insert(&ids[i].0.0);
        }
        // After the transaction root was checked against the body, so the header's hash names
        // the transactions too, as the shared executions require.
        let (delta, sealed) = self.executions.execute(self.ledger, block, ids);
        if sealed.block.header.state_root != block.header.state_root {
            return Err(BlockFault::WrongStateRoot);
        }
        self.speculative.insert(block.header.hash(), (delta, sealed));
        Ok(())
    }

    fn commit_block(&mut self, block: &Block, certificate: &QuorumCertificate) {
        let hash = block.header.hash();
        let (delta, sealed) = match self.speculative.remove(&hash) {
            Some(cached) => cached,
            None => self.execute(block),
        };
        assert_eq!(sealed.hash, hash, "executed block is the finalized block");
        self.ledger.commit(delta);
        self.work.blocks_committed += 1;
        self.work.txns_committed += block.txns.len() as u64;
        *self.tip = ChainTip { height: block.header.height, hash, state_root: block.header.state_root };
        self.speculative.clear();
        let certified = CertifiedBlock { block: block.clone(), certificate: certificate.clone() };
        keep_for_sync(self.history, self.history_bytes, self.history_bytes_max, certified);
        self.committed.push(sealed);
    }

    fn finalized_block(&self, height: u64) -> Option<CertifiedBlock> {
        let first = self.history.front()?.block.header.height;
        let index = usize::try_from(height.checked_sub(first)?).ok()?;
        self.history.get(index).cloned()
    }
}

/// Batch-verifies every signature in the inbox's messages; keeps those that all verify, and
/// charges each dropped message to the validator that sent it.
pub fn verify_consensus_messages(
    config: Res<PipelineConfig>,
    mut consensus: ResMut<Consensus>,
    mut inbox: ResMut<ConsensusInbox>,
    mut verified: ResMut<VerifiedConsensus>,
    shared: Res<SharedVerdicts>,
    mut pipeline: ResMut<PipelineCounters>,
    mut forged: ResMut<crate::sigverify::Forged>,
) {
    let mut messages = std::mem::take(&mut inbox.messages);
    // Cheap checks first: nothing the state machine would ignore costs a verification.
    consensus.core.drop_before_verification(&mut messages);
    let (kept, dropped, checked) = core::verify_messages_by_sender(
        messages,
        consensus.core.validators(),
        config.sigverify_batch_size,
        config.sigverify_stand_in,
        &shared,
    );
    verified.messages = kept;
    verified.dropped_bad_signature += dropped.len() as u64;
    // Charged like a forwarded transaction's bad signature: the shell bans a validator past
    // its threshold (`Pipeline::take_forged`).
    for sender in dropped {
        *forged.0.entry(tessera_components::Source::Validator(sender)).or_default() += 1;
    }
    verified.signatures_verified += checked;
    pipeline.work.consensus_signatures += checked;
}

/// Runs the state machine over this tick's verified messages and the clock.
pub fn step_consensus(
    config: Res<PipelineConfig>,
    clock: Res<Clock>,
    mut consensus: ResMut<Consensus>,
    mut verified: ResMut<VerifiedConsensus>,
    mut mempool: ResMut<Mempool>,
    mut ledger: ResMut<Ledger>,
    mut tip: ResMut<ChainTip>,
    mut accepted: ResMut<AcceptedSignatures>,
    executions: Res<SharedExecutions>,
    shared: Res<SharedVerdicts>,
    mut outbox: ResMut<ConsensusOutbox>,
    mut pipeline: ResMut<PipelineCounters>,
    mut rejects: ResMut<RejectCounters>,
    mut committed_out: MessageWriter<BlockCommitted>,
) {
    let consensus = &mut *consensus;
    let mut committed = Vec::new();
    let mut work = pipeline.work;
    let mut host = NodeHost {
        config: &config,
        mempool: &mut mempool,
        ledger: &mut ledger,
        tip: &mut tip,
        speculative: &mut consensus.speculative,
        history: &mut consensus.history,
        history_bytes: &mut consensus.history_bytes,
        history_bytes_max: consensus.history_bytes_max,
        committed: &mut committed,
        accepted: &mut accepted,
        shared: &shared,
        executions: &executions,
        work: &mut work,
        now_ms: clock.now_ns / 1_000_000,
    };
    if !consensus.started {
        consensus.started = true;
        consensus.core.start(clock.now_ns, &mut host);
    }
    for (from, message) in std::mem::take(&mut verified.messages) {
        host.work.consensus_messages += 1;
        consensus.core.on_message(from, message, &mut host);
    }
    consensus.core.tick(clock.now_ns, &mut host);
    // Executions of blocks the core no longer holds (of views it left, or refused room) go
    // too: a commit of one executes it again. Before, every block validated at a height kept
    // its execution, and its body, until the height finalized, past the core's own bound on
    // the blocks it holds (found in review).
    let core = &consensus.core;
    consensus.speculative.retain(|hash, _| core.holds_block(hash));
    outbox.messages.extend(consensus.core.drain_outbox());
    pipeline.work = work;
    for sealed in &committed {
        count_outcomes(sealed, &mut pipeline, &mut rejects);
    }
    committed_out.write_batch(committed);
}

/// Installs consensus in place of the solo proposer.
#[derive(Debug)]
pub struct ConsensusPlugin {
    /// The state machine to run (moved into the world on build).
    pub core: std::sync::Mutex<Option<Core>>,
    /// Inbox capacity in messages.
    pub inbox_capacity: usize,
    /// Bytes of finalized blocks kept in memory for sync.
    pub history_bytes_max: usize,
}

impl Plugin for ConsensusPlugin {
    fn build(&self, world: &mut World, schedule: &mut Schedule) {
        let core = self.core.lock().expect("plugin lock").take().expect("consensus plugin builds once");
        world.insert_resource(Consensus::new(core, self.history_bytes_max));
        world.insert_resource(ConsensusInbox::new(self.inbox_capacity));
        world.init_resource::<ConsensusOutbox>();
        world.init_resource::<VerifiedConsensus>();
        world.init_resource::<SharedVerdicts>();
        world.init_resource::<SharedExecutions>();
        schedule.add_systems((
            verify_consensus_messages.in_set(ConsensusSystems::Verify),
            step_consensus.in_set(ConsensusSystems::Step),
        ));
    }
}
