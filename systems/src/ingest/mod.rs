//! Ingest: move transactions from the shell's inbox into the world as entities.

use std::collections::VecDeque;

use bevy_ecs::prelude::*;
use tessera_components::{RejectReason, Source, Stage, SubmittedBy, Txn, TxnId};

use crate::config::PipelineConfig;
use crate::counters::{PipelineCounters, RejectCounters};
use crate::plugin::Plugin;

/// The ingest subsystem's sets.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IngestSystems {
    /// Spawns transaction entities from the inbox.
    Ingest,
}

/// Transactions handed over by the shell (network, RPC, simulator, fuzzer), bounded by
/// `PipelineConfig::inbox_capacity`. Written by the shell between ticks; drained by
/// [`ingest_txns`]. Arrivals past capacity are dropped and counted as
/// [`RejectReason::InboxFull`].
#[derive(Debug, Resource)]
pub struct Inbox {
    /// Each transaction, with its source where it has one, and its id where the shell has
    /// computed it already.
    queue: VecDeque<(Txn, Option<Source>, Option<TxnId>)>,
    capacity: usize,
    dropped: u64,
}

impl Inbox {
    /// An empty inbox holding at most `capacity` transactions.
    pub fn new(capacity: usize) -> Inbox {
        Inbox { queue: VecDeque::with_capacity(capacity.min(1 << 16)), capacity, dropped: 0 }
    }

    /// Queues one transaction. Returns false (and counts a drop) when full.
    pub fn push(&mut self, txn: Txn) -> bool {
        self.push_from(txn, None)
    }

    /// Queues one transaction from `from`, if known: a bad signature on it is charged to that
    /// source ([`SubmittedBy`]). Returns false (and counts a drop) when full.
    pub fn push_from(&mut self, txn: Txn, from: Option<Source>) -> bool {
        self.push_entry((txn, from, None))
    }

    /// Queues one transaction whose id the shell computed already (`txn.id()`, which ingest
    /// would otherwise compute again): the simulator hashes each client transaction once for
    /// every validator it reaches. Returns false (and counts a drop) when full.
    pub fn push_with_id(&mut self, txn: Txn, id: TxnId) -> bool {
        debug_assert_eq!(id, txn.id(), "an id that is not the transaction's");
        self.push_entry((txn, None, Some(id)))
    }

    fn push_entry(&mut self, entry: (Txn, Option<Source>, Option<TxnId>)) -> bool {
        if self.queue.len() >= self.capacity {
            self.dropped += 1;
            return false;
        }
        self.queue.push_back(entry);
        true
    }

    /// Queued transactions.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Free slots.
    pub fn room(&self) -> usize {
        self.capacity - self.queue.len()
    }
}

/// Spawns up to `ingest_batch_max` transaction entities at [`Stage::Received`] and folds the
/// inbox's drop count into [`RejectCounters`].
pub fn ingest_txns(world: &mut World) {
    let batch_max = world.resource::<PipelineConfig>().ingest_batch_max;
    let (drained, dropped) = {
        let mut inbox = world.resource_mut::<Inbox>();
        let take = inbox.queue.len().min(batch_max);
        let drained: Vec<(Txn, Option<Source>, Option<TxnId>)> = inbox.queue.drain(..take).collect();
        (drained, std::mem::take(&mut inbox.dropped))
    };
    world.resource_mut::<RejectCounters>().add(RejectReason::InboxFull, dropped);
    world.resource_mut::<PipelineCounters>().ingested += drained.len() as u64;
    let entity = |txn: &Txn, id: &Option<TxnId>| {
        (txn.body, txn.signature, id.unwrap_or_else(|| txn.id()), Stage::Received)
    };
    if drained.iter().all(|(_, from, _)| from.is_none()) {
        world.spawn_batch(drained.iter().map(|(txn, _, id)| entity(txn, id)));
        return;
    }
    for (txn, from, id) in &drained {
        match from {
            Some(source) => world.spawn((entity(txn, id), SubmittedBy(*source))),
            None => world.spawn(entity(txn, id)),
        };
    }
}

/// Installs the inbox and the ingest system.
#[derive(Debug, Default)]
pub struct IngestPlugin;

impl Plugin for IngestPlugin {
    fn build(&self, world: &mut World, schedule: &mut Schedule) {
        let capacity = world.resource::<PipelineConfig>().inbox_capacity;
        world.insert_resource(Inbox::new(capacity));
        schedule.add_systems(ingest_txns.in_set(IngestSystems::Ingest));
    }
}

#[cfg(test)]
mod tests {
    use tessera_components::TxnBody;

    use super::*;

    fn txn(nonce: u64) -> Txn {
        Txn::unsigned(TxnBody::transfer(1, [1; 32], [2; 32], 1, 1, nonce))
    }

    /// A transaction queued with its id keeps that id as an entity, beside one whose id
    /// ingest computes; both are the transaction's own.
    #[test]
    fn an_id_computed_by_the_shell_is_the_one_ingest_would_compute() {
        let mut world = World::new();
        world.insert_resource(PipelineConfig::default());
        world.insert_resource(RejectCounters::default());
        world.insert_resource(PipelineCounters::default());
        let mut inbox = Inbox::new(4);
        assert!(inbox.push_with_id(txn(0), txn(0).id()));
        assert!(inbox.push(txn(1)));
        world.insert_resource(inbox);
        ingest_txns(&mut world);
        let mut ids: Vec<TxnId> = world.query::<&TxnId>().iter(&world).copied().collect();
        ids.sort_unstable_by_key(|id| id.0.0);
        let mut expected = vec![txn(0).id(), txn(1).id()];
        expected.sort_unstable_by_key(|id| id.0.0);
        assert_eq!(ids, expected);
    }

    /// An id that is not the transaction's is caught where it is queued (in builds with
    /// debug assertions, which every test build has).
    #[test]
    #[should_panic(expected = "an id that is not the transaction's")]
    fn a_wrong_id_is_caught_where_it_is_queued() {
        Inbox::new(4).push_with_id(txn(0), txn(1).id());
    }
}
