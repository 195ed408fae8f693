//! Pipeline configuration: every limit the schedule enforces, fixed at startup.

use bevy_ecs::resource::Resource;

/// Limits and policies of the transaction pipeline. Inserted once; systems read it and never
/// grow a structure past it.
#[derive(Clone, Debug, Resource)]
pub struct PipelineConfig {
    /// Chain id transactions must carry.
    pub chain_id: u32,
    /// Lowest fee the prefilter lets through.
    pub fee_floor: u64,
    /// A transaction's nonce must lie in `[account nonce, account nonce + nonce_window)`.
    pub nonce_window: u64,
    /// Transactions the shell's inbox holds before it drops arrivals.
    pub inbox_capacity: usize,
    /// Transactions ingest takes from the inbox per tick.
    pub ingest_batch_max: usize,
    /// Run the prefilter's checks with the SIMD kernel (false: the scalar reference; same
    /// verdicts).
    pub prefilter_simd: bool,
    /// Signatures per batch-verification chunk (each chunk runs on one core).
    pub sigverify_batch_size: usize,
    /// Use batch verification; when false every signature is checked singly (same verdicts,
    /// slower). An optimisation switch for A/B measurement.
    pub sigverify_batch: bool,
    /// Entries in the cache of accepted signatures (keyed by transaction id); 0 turns the
    /// cache off.
    pub sigverify_cache_capacity: usize,
    /// Overlap verification with the rest of the tick: a tick's signatures are checked on the
    /// verification pool while the main thread runs mempool, propose and execute, and their
    /// verdicts are applied at the start of the next tick's sigverify set. When false, the
    /// verdicts land in the same tick (one tick less latency, less throughput). Either way the
    /// verdicts are identical and land at a fixed point in the schedule, so runs stay
    /// deterministic.
    pub sigverify_overlap: bool,
    /// Check transaction signatures against a deterministic stand-in
    /// ([`crate::kernels::sigverify::stand_in_signature`]) instead of Ed25519: for simulations
    /// at scale only, where clients sign with the stand-in too. Never set on a real node.
    pub sigverify_stand_in: bool,
    /// Transaction ids remembered for duplicate detection.
    pub seen_capacity: usize,
    /// Most transactions the mempool holds.
    pub mempool_count_max: usize,
    /// Most bytes the mempool accounts for (see `MEMPOOL_ENTRY_BYTES`).
    pub mempool_bytes_max: usize,
    /// Most transactions per block.
    pub block_txn_max: usize,
    /// Most bytes per block (header plus transactions).
    pub block_bytes_max: usize,
    /// Least time between two blocks, nanoseconds of `Clock` time; 0 proposes every tick.
    pub block_interval_ns: u64,
}

/// Most entries of the signature cache (34 bytes each).
pub const SIGVERIFY_CACHE_CAPACITY_MAX: usize = 1 << 22;

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            chain_id: 1,
            fee_floor: 1,
            nonce_window: 1024,
            inbox_capacity: 1 << 17,
            ingest_batch_max: 8192,
            sigverify_batch_size: 128,
            prefilter_simd: true,
            sigverify_batch: true,
            sigverify_overlap: true,
            sigverify_stand_in: false,
            sigverify_cache_capacity: 1 << 16,
            seen_capacity: 1 << 20,
            mempool_count_max: 200_000,
            mempool_bytes_max: 128 << 20,
            block_txn_max: 20_000,
            block_bytes_max: 4 << 20,
            block_interval_ns: 0,
        }
    }
}

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid pipeline config: {0}")]
pub struct ConfigError(pub &'static str);

impl PipelineConfig {
    /// Checks the relationships between limits.
    ///
    /// # Errors
    /// The first limit that is zero or inconsistent with another.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(bool, &'static str); 14] = [
            (self.nonce_window > 0, "nonce_window must be positive"),
            (self.inbox_capacity > 0, "inbox_capacity must be positive"),
            (self.ingest_batch_max > 0, "ingest_batch_max must be positive"),
            (self.sigverify_batch_size > 0, "sigverify_batch_size must be positive"),
            (self.seen_capacity > 0, "seen_capacity must be positive"),
            (self.mempool_count_max > 0, "mempool_count_max must be positive"),
            (
                self.mempool_bytes_max >= tessera_components::constants::MEMPOOL_ENTRY_BYTES,
                "mempool_bytes_max must hold at least one transaction",
            ),
            (self.block_txn_max > 0, "block_txn_max must be positive"),
            (
                self.block_bytes_max
                    >= size_of::<tessera_components::BlockHeader>() + tessera_components::constants::TXN_SIZE,
                "block_bytes_max must hold a header and one transaction",
            ),
            (
                // The lock and three counted views' blocks, which a validator never evicts, must
                // leave room for the current view's block (`Core::hold_block_for`).
                self.block_bytes_max <= crate::consensus::core::BLOCKS_HELD_BYTES_MAX / 4,
                "block_bytes_max must be at most 16 MiB (a quarter of the blocks a validator holds)",
            ),
            // Sizes that allocate, bounded so that a mistyped value is refused with its name
            // instead of aborting the node on an allocation of terabytes.
            (
                self.sigverify_cache_capacity <= SIGVERIFY_CACHE_CAPACITY_MAX,
                "sigverify_cache_capacity must be at most 4194304 (2^22 entries, 136 MiB)",
            ),
            (self.sigverify_batch_size <= 1 << 16, "sigverify_batch_size must be at most 65536"),
            (self.mempool_count_max <= 1 << 24, "mempool_count_max must be at most 16777216"),
            (self.block_txn_max <= 1 << 20, "block_txn_max must be at most 1048576"),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, reason)) => Err(ConfigError(reason)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PipelineConfig;

    /// Blocks larger than a quarter of what a validator holds are refused at start: the lock
    /// and three counted views' blocks, never evicted, must leave room for the block being
    /// decided (`Core::hold_block_for`).
    #[test]
    fn a_block_bound_past_a_quarter_of_the_blocks_held_is_refused() {
        assert!(PipelineConfig::default().validate().is_ok());
        let quarter = crate::consensus::core::BLOCKS_HELD_BYTES_MAX / 4;
        assert!(PipelineConfig { block_bytes_max: quarter, ..PipelineConfig::default() }.validate().is_ok());
        let over = PipelineConfig { block_bytes_max: quarter + 1, ..PipelineConfig::default() }.validate();
        assert!(over.is_err_and(|error| error.0.contains("block_bytes_max must be at most")));
    }

    /// Sizes that allocate are bounded: `sigverify_cache_capacity = 100000000000` aborted the
    /// node on an allocation of 4 TiB (and `usize::MAX` panicked on a capacity overflow), after
    /// its data directory was created.
    #[test]
    fn sizes_that_allocate_are_refused_past_their_bounds() {
        let default = PipelineConfig::default;
        let cap = super::SIGVERIFY_CACHE_CAPACITY_MAX;
        assert!(PipelineConfig { sigverify_cache_capacity: cap, ..default() }.validate().is_ok());
        for config in [
            PipelineConfig { sigverify_cache_capacity: cap + 1, ..default() },
            PipelineConfig { sigverify_cache_capacity: usize::MAX, ..default() },
            PipelineConfig { sigverify_batch_size: usize::MAX, ..default() },
            PipelineConfig { mempool_count_max: usize::MAX, ..default() },
            PipelineConfig { block_txn_max: usize::MAX, ..default() },
        ] {
            assert!(config.validate().is_err_and(|error| error.0.contains("must be at most")), "{config:?}");
        }
    }
}
