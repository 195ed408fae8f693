//! Ingest: move transactions from the shell's inbox into the world as entities.

use std::collections::VecDeque;

use bevy_ecs::prelude::*;
use tessera_components::{RejectReason, Source, Stage, SubmittedBy, Txn};

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
    /// Each transaction, with its source where it has one.
    queue: VecDeque<(Txn, Option<Source>)>,
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
        if self.queue.len() >= self.capacity {
            self.dropped += 1;
            return false;
        }
        self.queue.push_back((txn, from));
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
        let drained: Vec<(Txn, Option<Source>)> = inbox.queue.drain(..take).collect();
        (drained, std::mem::take(&mut inbox.dropped))
    };
    world.resource_mut::<RejectCounters>().add(RejectReason::InboxFull, dropped);
    world.resource_mut::<PipelineCounters>().ingested += drained.len() as u64;
    let entity = |txn: &Txn| (txn.body, txn.signature, txn.id(), Stage::Received);
    if drained.iter().all(|(_, from)| from.is_none()) {
        world.spawn_batch(drained.iter().map(|(txn, _)| entity(txn)));
        return;
    }
    for (txn, from) in &drained {
        match from {
            Some(source) => world.spawn((entity(txn), SubmittedBy(*source))),
            None => world.spawn(entity(txn)),
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
