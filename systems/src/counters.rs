//! Plain counters bumped on the hot path; the metrics layer publishes them.

use bevy_ecs::resource::Resource;
use tessera_components::RejectReason;

/// One counter per [`RejectReason`]. Written by every stage that refuses a transaction.
#[derive(Clone, Debug, Default, Resource)]
pub struct RejectCounters {
    counts: [u64; RejectReason::COUNT],
}

impl RejectCounters {
    /// Counts one refusal.
    pub fn bump(&mut self, reason: RejectReason) {
        self.counts[reason as usize] += 1;
    }

    /// Counts `n` refusals.
    pub fn add(&mut self, reason: RejectReason, n: u64) {
        self.counts[reason as usize] += n;
    }

    /// Refusals for one reason.
    pub fn get(&self, reason: RejectReason) -> u64 {
        self.counts[reason as usize]
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(name, count)` for every reason, in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        RejectReason::ALL.iter().map(|reason| (reason.name(), self.get(*reason)))
    }
}

/// Throughput counters for the pipeline. Each is written by the stage named in its doc.
#[derive(Clone, Debug, Default, Resource)]
pub struct PipelineCounters {
    /// Transactions spawned by ingest.
    pub ingested: u64,
    /// Signatures checked by sigverify (cache misses).
    pub verified: u64,
    /// Signatures found in the verification cache and not checked again.
    pub verify_cache_hits: u64,
    /// Signatures not in the verification cache.
    pub verify_cache_misses: u64,
    /// Transactions admitted to the mempool.
    pub admitted: u64,
    /// Blocks proposed.
    pub blocks_proposed: u64,
    /// Transactions executed successfully.
    pub executed: u64,
    /// Transactions included in blocks that failed at execution.
    pub failed: u64,
}
