//! Propose: pack the best pending transactions into a block.

use bevy_ecs::prelude::*;
use tessera_components::{Block, BlockFields, Hash};

use crate::clock::Clock;
use crate::config::PipelineConfig;
use crate::counters::PipelineCounters;
use crate::ledger::Ledger;
use crate::mempool::Mempool;
use crate::messages::{BlockProposed, ChainTip};
use crate::plugin::Plugin;

/// The propose subsystem's sets.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProposeSystems {
    /// Packs a block from the mempool.
    Propose,
}

/// This node's proposer identity and pacing. Written by [`propose_block`].
#[derive(Debug, Default, Resource)]
pub struct ProposerState {
    /// Clock reading of the last proposal.
    pub last_proposal_ns: Option<u64>,
}

/// Packs a block when the mempool has transactions and `block_interval_ns` has passed since
/// the last proposal.
pub fn propose_block(
    config: Res<PipelineConfig>,
    clock: Res<Clock>,
    tip: Res<ChainTip>,
    ledger: Res<Ledger>,
    mut mempool: ResMut<Mempool>,
    mut state: ResMut<ProposerState>,
    mut pipeline: ResMut<PipelineCounters>,
    mut proposed: MessageWriter<BlockProposed>,
) {
    if mempool.is_empty() {
        return;
    }
    if let Some(last) = state.last_proposal_ns
        && clock.now_ns.saturating_sub(last) < config.block_interval_ns
    {
        return;
    }
    let packed = mempool.pack(&ledger, config.block_txn_max, config.block_bytes_max);
    if packed.is_empty() {
        return;
    }
    let (txns, ids): (Vec<_>, Vec<_>) = packed.into_iter().unzip();
    let fields = BlockFields {
        height: tip.height + 1,
        // A solo proposer (benchmarks, single-node tests) has no views and is validator 0.
        view: 0,
        timestamp_ms: clock.now_ns / 1_000_000,
        proposer: 0,
        parent: tip.hash,
        state_root: Hash::ZERO,
    };
    let block = Block::assemble(fields, txns, &ids);
    state.last_proposal_ns = Some(clock.now_ns);
    pipeline.blocks_proposed += 1;
    proposed.write(BlockProposed { block, ids });
}

/// Installs propose.
#[derive(Debug, Default)]
pub struct ProposePlugin;

impl Plugin for ProposePlugin {
    fn build(&self, world: &mut World, schedule: &mut Schedule) {
        world.init_resource::<ProposerState>();
        world.init_resource::<Messages<BlockProposed>>();
        schedule.add_systems(propose_block.in_set(ProposeSystems::Propose));
    }
}
