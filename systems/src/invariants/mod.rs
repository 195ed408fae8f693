//! Invariants checked at the end of every tick in debug and test builds.

use bevy_ecs::prelude::*;

use crate::ledger::Ledger;
use crate::mempool::Mempool;
use crate::messages::ChainTip;
use crate::plugin::Plugin;

/// The invariant checker's sets.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvariantSystems {
    /// Runs last.
    Check,
}

/// Panics if any pipeline invariant is broken: the mempool's bound and index consistency,
/// conservation of supply, and a chain height that never goes back.
pub fn check_invariants(
    mempool: Res<Mempool>,
    ledger: Res<Ledger>,
    tip: Res<ChainTip>,
    mut last_height: Local<u64>,
) {
    mempool.check_consistency();
    assert!(mempool.len() <= mempool.capacity(), "mempool over its bound");
    assert_eq!(ledger.balance_sum(), ledger.supply(), "supply not conserved");
    assert!(tip.height >= *last_height, "height went back from {} to {}", *last_height, tip.height);
    *last_height = tip.height;
}

/// Installs the checker (only when debug assertions are on: the checks are O(state)).
#[derive(Debug, Default)]
pub struct InvariantsPlugin;

impl Plugin for InvariantsPlugin {
    fn build(&self, _world: &mut World, schedule: &mut Schedule) {
        if cfg!(debug_assertions) {
            schedule.add_systems(check_invariants.in_set(InvariantSystems::Check));
        }
    }
}
