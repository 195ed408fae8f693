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
    /// The work consensus did, counted where it is done (the simulator charges virtual CPU
    /// time for it, see [`Work`]).
    pub work: Work,
}

/// Units of work the node's consensus path did, for a cost model: each is counted where the
/// work happens, and a tick's work is the difference of two readings ([`Work::since`]).
/// Transaction signatures checked in the pipeline, and transactions admitted, are in
/// [`PipelineCounters::verified`] and [`PipelineCounters::admitted`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Blocks this node built as leader (packed from the mempool and executed).
    pub blocks_built: u64,
    /// Transactions packed into those blocks.
    pub txns_packed: u64,
    /// Proposed blocks this node validated (checked and executed speculatively).
    pub blocks_validated: u64,
    /// Transactions in those blocks.
    pub txns_validated: u64,
    /// Transaction signatures checked while validating a block (those the node had not seen).
    pub block_signatures: u64,
    /// Blocks finalized and committed to the ledger.
    pub blocks_committed: u64,
    /// Transactions in those blocks.
    pub txns_committed: u64,
    /// Consensus messages handled after their signatures verified.
    pub consensus_messages: u64,
    /// Consensus signatures verified (votes, proposals, certificates).
    pub consensus_signatures: u64,
}

impl Work {
    /// The sum of two counts.
    pub fn plus(&self, other: &Work) -> Work {
        Work {
            blocks_built: self.blocks_built + other.blocks_built,
            txns_packed: self.txns_packed + other.txns_packed,
            blocks_validated: self.blocks_validated + other.blocks_validated,
            txns_validated: self.txns_validated + other.txns_validated,
            block_signatures: self.block_signatures + other.block_signatures,
            blocks_committed: self.blocks_committed + other.blocks_committed,
            txns_committed: self.txns_committed + other.txns_committed,
            consensus_messages: self.consensus_messages + other.consensus_messages,
            consensus_signatures: self.consensus_signatures + other.consensus_signatures,
        }
    }

    /// The work done between `earlier` and this reading.
    pub fn since(&self, earlier: &Work) -> Work {
        Work {
            blocks_built: self.blocks_built - earlier.blocks_built,
            txns_packed: self.txns_packed - earlier.txns_packed,
            blocks_validated: self.blocks_validated - earlier.blocks_validated,
            txns_validated: self.txns_validated - earlier.txns_validated,
            block_signatures: self.block_signatures - earlier.block_signatures,
            blocks_committed: self.blocks_committed - earlier.blocks_committed,
            txns_committed: self.txns_committed - earlier.txns_committed,
            consensus_messages: self.consensus_messages - earlier.consensus_messages,
            consensus_signatures: self.consensus_signatures - earlier.consensus_signatures,
        }
    }
}
