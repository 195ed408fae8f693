//! Execute: apply a block's transfers to the ledger and seal its state root.

use bevy_ecs::prelude::*;
use tessera_components::{Block, TxnId};

use crate::counters::{PipelineCounters, RejectCounters};
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
