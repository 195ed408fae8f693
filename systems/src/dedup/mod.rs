//! Dedup: refuse a transaction whose id was already admitted, or that repeats within a tick.

use foldhash::HashSet;

use bevy_ecs::prelude::*;
use tessera_components::{RejectReason, Stage, TxnId};

use crate::config::PipelineConfig;
use crate::counters::RejectCounters;
use crate::fifo::FifoMap;
use crate::plugin::Plugin;

/// The dedup subsystem's sets.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DedupSystems {
    /// Moves [`Stage::Verified`] to [`Stage::Unique`] or [`Stage::Rejected`].
    Dedup,
}

/// Ids of recently admitted transactions, oldest forgotten first past `seen_capacity`.
/// Written by the mempool on admission; read by [`dedup_txns`]. The set is only looked up,
/// never iterated. A replay older than the window is still refused by its nonce.
#[derive(Debug, Resource)]
pub struct SeenIds(FifoMap<TxnId, ()>);

impl SeenIds {
    /// An empty window of `capacity` ids.
    pub fn new(capacity: usize) -> SeenIds {
        assert!(capacity > 0, "seen capacity must be positive");
        SeenIds(FifoMap::new(capacity))
    }

    /// Whether `id` is in the window.
    pub fn contains(&self, id: &TxnId) -> bool {
        self.0.contains_key(id)
    }

    /// Reserves the whole window now, so it never reallocates ([`FifoMap::preallocate`]).
    /// A node calls this once at start; the simulator, with thousands of pipelines, does not.
    pub fn preallocate(&mut self) {
        self.0.preallocate();
    }

    /// Remembers `id`, forgetting the oldest id if the window is full.
    pub fn insert(&mut self, id: TxnId) {
        self.0.insert(id, ());
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Refuses verified transactions already seen, or seen earlier in this tick.
pub fn dedup_txns(
    seen: Res<SeenIds>,
    mut counters: ResMut<RejectCounters>,
    mut this_tick: Local<HashSet<TxnId>>,
    mut txns: Query<(&TxnId, &mut Stage)>,
) {
    this_tick.clear();
    for (id, mut stage) in &mut txns {
        if *stage != Stage::Verified {
            continue;
        }
        *stage = if seen.contains(id) || !this_tick.insert(*id) {
            counters.bump(RejectReason::Duplicate);
            Stage::Rejected(RejectReason::Duplicate)
        } else {
            Stage::Unique
        };
    }
}

/// Installs dedup.
#[derive(Debug, Default)]
pub struct DedupPlugin;

impl Plugin for DedupPlugin {
    fn build(&self, world: &mut World, schedule: &mut Schedule) {
        let capacity = world.resource::<PipelineConfig>().seen_capacity;
        world.insert_resource(SeenIds::new(capacity));
        schedule.add_systems(dedup_txns.in_set(DedupSystems::Dedup));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_components::Hash;

    #[test]
    fn window_forgets_oldest_first() {
        let mut seen = SeenIds::new(2);
        let id = |n: u8| TxnId(Hash([n; 32]));
        seen.insert(id(1));
        seen.insert(id(2));
        seen.insert(id(2));
        assert_eq!(seen.len(), 2);
        seen.insert(id(3));
        assert!(!seen.contains(&id(1)));
        assert!(seen.contains(&id(2)) && seen.contains(&id(3)));
    }

    /// A preallocated window never reallocates: ids passing through it cause no heap
    /// allocation at all (neither the ring nor the set grows or moves; the set may rehash its
    /// tombstones in place, which is why its `capacity()` reading drifts with the hash seed and
    /// is not what this checks), and it still forgets oldest first.
    #[test]
    fn a_preallocated_window_keeps_its_ring() {
        let id = |n: u32| {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&n.to_le_bytes());
            TxnId(Hash(bytes))
        };
        let mut seen = SeenIds::new(1000);
        seen.preallocate();
        let (ring, set) = seen.0.capacities();
        assert!(ring >= 1000 && set >= 2000);
        let allocations = crate::test_alloc::allocations_during(|| {
            for n in 0u32..10_000 {
                seen.insert(id(n));
            }
        });
        assert_eq!(allocations, 0, "a preallocated window allocated while ids passed through");
        assert_eq!(seen.len(), 1000);
        assert_eq!(seen.0.capacities().0, ring);
        // The count above would catch a growth: the same ids through a window that was not
        // preallocated do allocate.
        let mut cold = SeenIds::new(1000);
        let allocations = crate::test_alloc::allocations_during(|| {
            for n in 0u32..10_000 {
                cold.insert(id(n));
            }
        });
        assert!(allocations > 0, "the allocation count sees nothing");
        let mut last = [0u8; 32];
        last[..4].copy_from_slice(&9_999u32.to_le_bytes());
        let mut evicted = [0u8; 32];
        evicted[..4].copy_from_slice(&8_999u32.to_le_bytes());
        assert!(seen.contains(&TxnId(Hash(last))));
        assert!(!seen.contains(&TxnId(Hash(evicted))));
    }
}
