//! Execute: apply a block's transfers to the ledger and seal its state root.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bevy_ecs::prelude::*;
use tessera_components::{Block, Hash, Txn, TxnId};

use crate::counters::{PipelineCounters, RejectCounters};
use crate::fifo::FifoMap;
use crate::ledger::{Ledger, LedgerDelta};
use crate::messages::{BlockCommitted, BlockProposed, ChainTip, TxnOutcome};
use crate::plugin::Plugin;

/// The execute subsystem's sets.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecuteSystems {
    /// Applies proposed blocks.
    Execute,
}

/// Executes a block over `ledger` without changing it, in order: failing transactions are
/// recorded with their reason and change only what the fee rule charges; the header's state
/// root is set to the root after the block. Returns the delta that finalizing the block
/// commits ([`Ledger::commit`]) and the sealed block. `ids` are the transactions' ids in block
/// order. Costs O(k log N) for the k accounts the block touches, whatever the ledger's size.
pub fn execute_speculative(
    ledger: &Ledger,
    mut block: Block,
    ids: &[TxnId],
) -> (LedgerDelta, BlockCommitted) {
    assert_eq!(block.txns.len(), ids.len(), "one id per transaction");
    let (results, mut delta) = ledger.execute(block.txns.iter().map(|txn| &txn.body));
    block.header.state_root = ledger.root_after(&mut delta);
    let outcomes = ids.iter().zip(results).map(|(id, result)| TxnOutcome { id: *id, result }).collect();
    (delta, BlockCommitted { hash: block.header.hash(), block, outcomes })
}

/// Blocks executed by one simulated validator, for the next. Executing a block is a pure
/// function of the state it runs on, named by its state root, and of the block, named by its
/// header's hash (which commits to the transactions once their root has been checked against
/// the body, as validation does before executing). So a validator on the same state given
/// the same block gets the outcome the first one computed, byte for byte. The simulator
/// charges virtual time from work counters, which count as before, so no report changes. A
/// node process has none (the default): each node executes for itself, as it must.
#[derive(Clone, Debug, Default, Resource)]
pub struct SharedExecutions(Option<Arc<Mutex<Executions>>>);

/// The memo behind [`SharedExecutions`]: outcomes by (state root, block hash), oldest first
/// out.
#[derive(Debug)]
struct Executions {
    outcomes: FifoMap<(Hash, Hash), Arc<(LedgerDelta, BlockCommitted)>>,
    /// Blocks executed for the memo, and outcomes taken from it.
    executed: u64,
    reused: u64,
    /// Bodies whose transaction root was checked, by that root; oldest first out.
    bodies: FifoMap<Hash, Arc<CheckedBody>>,
}

impl Default for Executions {
    fn default() -> Executions {
        Executions {
            outcomes: FifoMap::new(SharedExecutions::MAX),
            executed: 0,
            reused: 0,
            bodies: FifoMap::new(SharedExecutions::MAX),
        }
    }
}

/// A block body whose transaction root was checked: its transactions' ids, and whether every
/// signature in it is known to verify. Both are pure functions of the body's bytes, so the
/// simulator's validators share one (through [`SharedExecutions`]); a node's is its own.
#[derive(Debug)]
pub struct CheckedBody {
    /// The body, to tell it from another body under the same header (memo only): the block's
    /// own shared transactions, so keeping them copies nothing.
    txns: Arc<[Txn]>,
    /// The transactions' ids, in block order.
    pub ids: Arc<[TxnId]>,
    /// Every signature verified, by real verification (`[0]`) or stand-ins (`[1]`).
    valid: [AtomicBool; 2],
}

impl CheckedBody {
    /// True once a validator verified every signature of the body itself, in this mode.
    pub fn signatures_valid(&self, stand_in: bool) -> bool {
        self.valid[usize::from(stand_in)].load(Ordering::Relaxed)
    }

    /// Records that every signature of the body verified, in this mode. Only a validator that
    /// verified each one itself may say so, not one that took some from its own cache of
    /// accepted signatures: the record is shared, and a cache is one node's.
    pub fn set_signatures_valid(&self, stand_in: bool) {
        self.valid[usize::from(stand_in)].store(true, Ordering::Relaxed);
    }
}

impl SharedExecutions {
    /// Most outcomes held, each a delta and a block: enough for every validator of a large
    /// simulation to find the blocks of the views in flight, few enough that full blocks
    /// (about 650 KB each) stay within tens of megabytes.
    pub const MAX: usize = 64;

    /// A memo to hand to every validator that shares it.
    pub fn new() -> SharedExecutions {
        SharedExecutions(Some(Arc::default()))
    }

    /// Blocks executed and outcomes reused so far; (0, 0) without a memo.
    pub fn counts(&self) -> (u64, u64) {
        self.0.as_ref().map_or((0, 0), |memo| {
            let memo = memo.lock().unwrap_or_else(PoisonError::into_inner);
            (memo.executed, memo.reused)
        })
    }

    /// The ids of `block`'s transactions, if they give the transaction root its header names
    /// (`None`: the body is not the header's). With a memo, a body that another validator
    /// checked is not hashed again: it is found under the root it was checked against, and
    /// taken only if its bytes are this body's, since a Byzantine proposer can pair one header
    /// with several bodies. Ids are a pure function of the bytes.
    pub fn checked_body(&self, block: &Block) -> Option<Arc<CheckedBody>> {
        let root = block.header.txn_root;
        let check = |txns: Arc<[Txn]>| {
            let ids: Vec<TxnId> = block.txns.iter().map(Txn::id).collect();
            (Block::txn_root_of_ids(&ids) == root)
                .then(|| Arc::new(CheckedBody { txns, ids: Arc::from(ids), valid: Default::default() }))
        };
        let Some(memo) = &self.0 else { return check(Arc::default()) };
        let known = memo.lock().unwrap_or_else(PoisonError::into_inner).bodies.get(&root).cloned();
        if let Some(body) = known
            && (Arc::ptr_eq(&body.txns, &block.txns) || body.txns == block.txns)
        {
            return Some(body);
        }
        let body = check(block.txns.clone())?;
        memo.lock().unwrap_or_else(PoisonError::into_inner).bodies.insert(root, body.clone());
        Some(body)
    }

    /// [`execute_speculative`] of `block` over `ledger`, or its outcome from the memo. The
    /// caller has checked `block`'s transaction root against its body.
    pub fn execute(&self, ledger: &Ledger, block: &Block, ids: &[TxnId]) -> (LedgerDelta, BlockCommitted) {
        let Some(memo) = &self.0 else { return execute_speculative(ledger, block.clone(), ids) };
        let root = ledger.state_root();
        let found = {
            let mut memo = memo.lock().unwrap_or_else(PoisonError::into_inner);
            let found = memo.outcomes.get(&(root, block.header.hash())).cloned();
            memo.reused += u64::from(found.is_some());
            found
        };
        if let Some(outcome) = found {
            return (*outcome).clone();
        }
        let outcome = execute_speculative(ledger, block.clone(), ids);
        // Kept under the sealed block's hash: a proposer executes its block before the state
        // root is in the header, and the validators look it up with the root in.
        let key = (root, outcome.1.hash);
        let mut memo = memo.lock().unwrap_or_else(PoisonError::into_inner);
        memo.executed += 1;
        if !memo.outcomes.contains_key(&key) {
            memo.outcomes.insert(key, Arc::new(outcome.clone()));
        }
        outcome
    }
}

/// Applies a block to the ledger: [`execute_speculative`], then its delta committed.
pub fn execute_block(ledger: &mut Ledger, block: Block, ids: &[TxnId]) -> BlockCommitted {
    let (delta, sealed) = execute_speculative(ledger, block, ids);
    ledger.commit(delta);
    sealed
}

/// Counts a sealed block's outcomes: executed, or failed under its reason. Every path that
/// applies blocks (the solo proposer's execute, consensus finalization) counts through here.
pub fn count_outcomes(
    sealed: &BlockCommitted,
    pipeline: &mut PipelineCounters,
    counters: &mut RejectCounters,
) {
    for outcome in &sealed.outcomes {
        match outcome.result {
            Ok(()) => pipeline.executed += 1,
            Err(reason) => {
                pipeline.failed += 1;
                counters.bump(reason);
            }
        }
    }
}

/// Executes every block proposed this tick on top of the tip.
pub fn execute_blocks(
    mut proposed: ResMut<Messages<BlockProposed>>,
    mut ledger: ResMut<Ledger>,
    mut tip: ResMut<ChainTip>,
    mut counters: ResMut<RejectCounters>,
    mut pipeline: ResMut<PipelineCounters>,
    mut committed: MessageWriter<BlockCommitted>,
) {
    // Execute is the only reader of proposals, so it takes them rather than cloning blocks.
    for BlockProposed { block, ids } in proposed.drain() {
        assert_eq!(block.header.height, tip.height + 1, "proposal does not extend the tip");
        assert_eq!(block.header.parent, tip.hash, "proposal does not extend the tip");
        let sealed = execute_block(&mut ledger, block, &ids);
        count_outcomes(&sealed, &mut pipeline, &mut counters);
        *tip = ChainTip {
            height: sealed.block.header.height,
            hash: sealed.hash,
            state_root: sealed.block.header.state_root,
        };
        committed.write(sealed);
    }
}

/// Installs execute.
#[derive(Debug, Default)]
pub struct ExecutePlugin;

impl Plugin for ExecutePlugin {
    fn build(&self, world: &mut World, schedule: &mut Schedule) {
        if !world.contains_resource::<ChainTip>() {
            let tip = ChainTip::genesis(world.resource::<Ledger>());
            world.insert_resource(tip);
        }
        world.init_resource::<Messages<BlockCommitted>>();
        schedule.add_systems(execute_blocks.in_set(ExecuteSystems::Execute));
    }
}

#[cfg(test)]
mod tests {
    use tessera_components::{BlockFields, Txn, TxnBody};

    use super::*;

    fn transfer(nonce: u64) -> Txn {
        Txn::unsigned(TxnBody::transfer(1, [1; 32], [3; 32], 5, 1, nonce))
    }

    fn block(txns: Vec<Txn>, state_root: Hash) -> (Block, Vec<TxnId>) {
        let ids: Vec<TxnId> = txns.iter().map(Txn::id).collect();
        let fields =
            BlockFields { height: 1, view: 0, timestamp_ms: 0, proposer: 0, parent: Hash::ZERO, state_root };
        (Block::assemble(fields, txns, &ids), ids)
    }

    /// A body checked once is not hashed again for the same bytes; a body that differs from
    /// the remembered one under the same header (a Byzantine proposer's second body) is checked
    /// for itself and refused, with or without a memo.
    #[test]
    fn checked_bodies_are_reused_only_for_the_same_bytes() {
        let (honest, ids) = block(vec![transfer(0), transfer(1)], Hash::ZERO);
        let mut other = honest.clone();
        Arc::make_mut(&mut other.txns)[1].body.amount += 1;
        for memo in [SharedExecutions::default(), SharedExecutions::new()] {
            let first = memo.checked_body(&honest).expect("the header's body");
            assert_eq!(&first.ids[..], &ids[..]);
            first.set_signatures_valid(true);
            let again = memo.checked_body(&honest).expect("the header's body");
            assert_eq!(&again.ids[..], &ids[..], "again, from the memo");
            assert_eq!(again.signatures_valid(true), memo.0.is_some(), "known valid only through a memo");
            assert!(!again.signatures_valid(false), "stand-ins say nothing of real signatures");
            assert!(memo.checked_body(&other).is_none(), "a second body under the same header");
        }
        let memo = SharedExecutions::new();
        assert!(memo.checked_body(&other).is_none(), "a wrong body first");
        assert_eq!(&memo.checked_body(&honest).expect("the header's body").ids[..], &ids[..]);
    }

    /// A validator on the same state, given the same block, gets from the memo exactly what
    /// executing it would give; another state, or a header claiming another root, is executed
    /// afresh; and a node without a memo executes every time.
    #[test]
    fn shared_executions_reuse_only_the_same_state_and_block() {
        let ledger = Ledger::from_genesis(&[([1; 32], 1_000), ([2; 32], 1_000)]).expect("genesis");
        let shared = SharedExecutions::new();
        // The proposer executes before the root is in the header.
        let (proposed, ids) = block(vec![transfer(0), transfer(1)], Hash::ZERO);
        let (_, sealed) = shared.execute(&ledger, &proposed, &ids);
        assert_eq!(shared.counts(), (1, 0));
        let alone = execute_speculative(&ledger, sealed.block.clone(), &ids);
        let reused = shared.execute(&ledger, &sealed.block, &ids);
        assert_eq!(shared.counts(), (1, 1), "a validator with the sealed block reuses it");
        assert_eq!(reused.1.hash, alone.1.hash);
        assert_eq!(format!("{:?}", reused.1.outcomes), format!("{:?}", alone.1.outcomes));
        let (mut mine, mut theirs) = (ledger.clone(), ledger.clone());
        mine.commit(alone.0);
        theirs.commit(reused.0);
        assert_eq!(mine.state_root(), theirs.state_root());
        assert_eq!(mine.balance_of(&[3; 32]), 10);
        // Another state (the block already applied): executed, not reused.
        shared.execute(&mine, &sealed.block, &ids);
        assert_eq!(shared.counts(), (2, 1));
        // A header claiming another root names no outcome.
        let mut lying = sealed.block.clone();
        lying.header.state_root = Hash([7; 32]);
        let (_, checked) = shared.execute(&ledger, &lying, &ids);
        assert_eq!(shared.counts(), (3, 1));
        assert_eq!(checked.block.header.state_root, sealed.block.header.state_root);
        let alone = SharedExecutions::default();
        alone.execute(&ledger, &sealed.block, &ids);
        assert_eq!(alone.counts(), (0, 0), "no memo in a node process");
    }

    /// The memo holds at most [`SharedExecutions::MAX`] outcomes, the oldest going first.
    #[test]
    fn shared_executions_are_bounded() {
        let ledger = Ledger::from_genesis(&[([1; 32], 1_000_000)]).expect("genesis");
        let shared = SharedExecutions::new();
        let blocks: Vec<_> =
            (0..SharedExecutions::MAX as u64 + 1).map(|n| block(vec![transfer(n)], Hash::ZERO)).collect();
        let sealed: Vec<_> = blocks.iter().map(|(b, ids)| shared.execute(&ledger, b, ids).1).collect();
        let held = shared.0.as_ref().expect("a memo").lock().expect("unpoisoned").outcomes.len();
        assert_eq!(held, SharedExecutions::MAX);
        shared.execute(&ledger, &sealed[0].block, &blocks[0].1);
        assert_eq!(shared.counts().1, 0, "the oldest outcome was dropped");
        shared.execute(&ledger, &sealed[2].block, &blocks[2].1);
        assert_eq!(shared.counts().1, 1, "a recent outcome is held");
    }
}
