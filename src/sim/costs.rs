//! What a simulated validator's work costs in virtual CPU time, and the cores it runs on.
//!
//! A [`CostTable`] prices each unit of work the node's systems count ([`Work`], plus the
//! transactions ingested, admitted and verified): signatures, transactions admitted, packed,
//! executed and committed, blocks built, validated, persisted and committed, consensus
//! messages, and each tick. `tessera bench calibrate` measures every entry on the machine at
//! hand with the node's own code; a scenario names the table (`validators.costs`).
//!
//! [`Hosts`] runs the priced work on cores: validators `i · per_host ..` share one host of
//! `cores` cores, so a scenario can describe four validators on one 2-core machine
//! (`per_host = 4, cores = 2`) as well as four machines (`per_host = 1`). Signature checks
//! spread over all of a host's cores (the node verifies on a thread pool); everything else in
//! a tick is serial, on the core that frees first. A tick's messages leave, and its blocks
//! count as finalized, when its work is done.

use serde::{Deserialize, Serialize};
use tessera_systems::counters::Work;

/// Virtual CPU nanoseconds per unit of work. Every field is required: a table is written whole
/// by `tessera bench calibrate`, and a missing entry is an error, not a silent zero.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostTable {
    /// One signature checked alone.
    pub verify_single_ns: f64,
    /// One signature of a batch (per signature, on one core).
    pub verify_batch_ns: f64,
    /// One transaction ingested, prefiltered and admitted to the mempool (its signature apart).
    pub admit_txn_ns: f64,
    /// One transaction packed into a block.
    pub pack_txn_ns: f64,
    /// One transaction executed (when a block is built, and again when one is validated).
    pub execute_txn_ns: f64,
    /// A block built, apart from its transactions (assembly, state root).
    pub build_block_ns: f64,
    /// A proposed block validated, apart from executing its transactions (body checks, ids,
    /// transaction root, state root).
    pub validate_block_ns: f64,
    /// Per transaction of a validated block: its static checks, id and share of the root.
    pub validate_txn_ns: f64,
    /// A finalized block persisted, apart from its transactions (encode, checksum, write).
    pub persist_block_ns: f64,
    /// Per transaction of a persisted block.
    pub persist_txn_ns: f64,
    /// A finalized block committed to the ledger and its state root, apart from its
    /// transactions.
    pub commit_block_ns: f64,
    /// Per transaction of a committed block.
    pub commit_txn_ns: f64,
    /// One consensus message handled (its signature apart).
    pub message_ns: f64,
    /// The fixed cost of one tick of the pipeline's schedule.
    pub tick_ns: f64,
}

impl CostTable {
    /// Checks that every entry is a finite, non-negative number of nanoseconds below a second.
    ///
    /// # Errors
    /// The first bad entry, by name.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in self.entries() {
            if !(value.is_finite() && (0.0..1e9).contains(&value)) {
                return Err(format!("costs.{name} = {value}: must be a number of nanoseconds in [0, 1e9)"));
            }
        }
        Ok(())
    }

    /// Every entry, by name.
    pub fn entries(&self) -> [(&'static str, f64); 14] {
        [
            ("verify_single_ns", self.verify_single_ns),
            ("verify_batch_ns", self.verify_batch_ns),
            ("admit_txn_ns", self.admit_txn_ns),
            ("pack_txn_ns", self.pack_txn_ns),
            ("execute_txn_ns", self.execute_txn_ns),
            ("build_block_ns", self.build_block_ns),
            ("validate_block_ns", self.validate_block_ns),
            ("validate_txn_ns", self.validate_txn_ns),
            ("persist_block_ns", self.persist_block_ns),
            ("persist_txn_ns", self.persist_txn_ns),
            ("commit_block_ns", self.commit_block_ns),
            ("commit_txn_ns", self.commit_txn_ns),
            ("message_ns", self.message_ns),
            ("tick_ns", self.tick_ns),
        ]
    }

    /// Every entry rounded to a tenth of a nanosecond (below any measurement's noise), so a
    /// written table reads well.
    pub fn rounded(mut self) -> CostTable {
        for value in [
            &mut self.verify_single_ns,
            &mut self.verify_batch_ns,
            &mut self.admit_txn_ns,
            &mut self.pack_txn_ns,
            &mut self.execute_txn_ns,
            &mut self.build_block_ns,
            &mut self.validate_block_ns,
            &mut self.validate_txn_ns,
            &mut self.persist_block_ns,
            &mut self.persist_txn_ns,
            &mut self.commit_block_ns,
            &mut self.commit_txn_ns,
            &mut self.message_ns,
            &mut self.tick_ns,
        ] {
            *value = (*value * 10.0).round() / 10.0;
        }
        self
    }

    /// Nanoseconds to check `n` signatures: one alone, more as a batch.
    fn signatures(&self, n: u64) -> f64 {
        match n {
            0 => 0.0,
            1 => self.verify_single_ns,
            n => n as f64 * self.verify_batch_ns,
        }
    }

    /// What one tick's work costs: (serial, parallel) nanoseconds. The parallel part is the
    /// signature checks, which the node spreads over its cores.
    pub fn price(&self, tick: &TickWork) -> (u64, u64) {
        let w = &tick.work;
        let parallel = self.signatures(tick.txn_signatures)
            + self.signatures(w.block_signatures)
            + self.signatures(w.consensus_signatures);
        let serial = self.tick_ns
            + self.admit_txn_ns * tick.admitted as f64
            + self.pack_txn_ns * w.txns_packed as f64
            + self.execute_txn_ns * (w.txns_packed + w.txns_validated) as f64
            + self.build_block_ns * w.blocks_built as f64
            + self.validate_block_ns * w.blocks_validated as f64
            + self.validate_txn_ns * w.txns_validated as f64
            + self.persist_block_ns * w.blocks_committed as f64
            + self.persist_txn_ns * w.txns_committed as f64
            + self.commit_block_ns * w.blocks_committed as f64
            + self.commit_txn_ns * w.txns_committed as f64
            + self.message_ns * w.consensus_messages as f64;
        (serial.round() as u64, parallel.round() as u64)
    }
}

/// A scenario's `validators.costs`: a cost table's file (resolved when the scenario is loaded
/// from a file, relative to it) or the table itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Costs {
    /// The table, inline (how a loaded scenario carries it, so a report names what it used).
    Table(CostTable),
    /// A path to a table written by `tessera bench calibrate`.
    File(String),
}

/// A cost table file: the table, and where it was measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostFile {
    /// What measured it (backend, cores, date); informational.
    #[serde(default)]
    pub measured: Option<Measured>,
    /// The costs.
    pub costs: CostTable,
}

/// Where a cost table was measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measured {
    /// The command that wrote it.
    pub command: String,
    /// The signature backend that was live.
    pub backend: String,
    /// Cores the machine had.
    pub cores: usize,
    /// Unix time, seconds.
    pub unix_s: u64,
}

impl CostFile {
    /// Reads and checks a cost table file.
    ///
    /// # Errors
    /// A file that cannot be read or parsed, or an entry out of range.
    pub fn load(path: &std::path::Path) -> Result<CostFile, String> {
        let text = crate::read_input_file(path, crate::SMALL_FILE_BYTES_MAX)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file: CostFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        file.costs.validate().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(file)
    }
}

/// One tick's work: the consensus path's counts, and the pipeline's.
#[derive(Clone, Copy, Debug, Default)]
pub struct TickWork {
    /// Transaction signatures checked by the pipeline.
    pub txn_signatures: u64,
    /// Transactions admitted to the mempool.
    pub admitted: u64,
    /// The consensus path's work.
    pub work: Work,
}

/// The hosts validators run on, each a set of cores with the time each becomes free.
#[derive(Debug)]
pub struct Hosts {
    per_host: u32,
    /// Free time of each core, by host.
    cores: Vec<Vec<u64>>,
}

impl Hosts {
    /// `validators` validators, `per_host` to a host of `cores` cores.
    pub fn new(validators: u32, per_host: u32, cores: u32) -> Hosts {
        let per_host = per_host.max(1);
        let hosts = validators.div_ceil(per_host) as usize;
        Hosts { per_host, cores: vec![vec![0; cores.max(1) as usize]; hosts] }
    }

    /// Runs `(serial, parallel)` nanoseconds of validator `node`'s work, ready at `now`:
    /// the parallel part split evenly over the host's cores, each starting when its core is
    /// free, then the serial part on the core that frees first. Returns when it is all done.
    pub fn run(&mut self, node: u32, now: u64, (serial, parallel): (u64, u64)) -> u64 {
        let cores = &mut self.cores[(node / self.per_host) as usize];
        let mut done = now;
        if parallel > 0 {
            let share = parallel.div_ceil(cores.len() as u64);
            for free in cores.iter_mut() {
                *free = (*free).max(now) + share;
                done = done.max(*free);
            }
        }
        let first = cores.iter_mut().min().expect("a host has a core");
        *first = (*first).max(now).max(if parallel > 0 { done } else { now }) + serial;
        done.max(*first)
    }

    /// When validator `node`'s host has a core free.
    pub fn free_at(&self, node: u32) -> u64 {
        self.cores[(node / self.per_host) as usize].iter().copied().min().unwrap_or(0)
    }
}

/// A table of plausible costs, for tests.
#[cfg(test)]
pub(crate) fn table() -> CostTable {
    CostTable {
        verify_single_ns: 40_000.0,
        verify_batch_ns: 20_000.0,
        admit_txn_ns: 1_000.0,
        pack_txn_ns: 100.0,
        execute_txn_ns: 500.0,
        build_block_ns: 10_000.0,
        validate_block_ns: 8_000.0,
        validate_txn_ns: 200.0,
        persist_block_ns: 5_000.0,
        persist_txn_ns: 50.0,
        commit_block_ns: 3_000.0,
        commit_txn_ns: 300.0,
        message_ns: 2_000.0,
        tick_ns: 1_500.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_is_priced_by_what_it_did() {
        let costs = table();
        assert_eq!(costs.price(&TickWork::default()), (1_500, 0), "an idle tick costs its overhead");
        let tick = TickWork {
            txn_signatures: 10,
            admitted: 10,
            work: Work { consensus_signatures: 1, consensus_messages: 1, ..Work::default() },
        };
        // 10 batched (200 µs) + 1 alone (40 µs); 1.5 + 10 + 2 µs serial.
        assert_eq!(costs.price(&tick), (13_500, 240_000));
        let block = TickWork {
            work: Work { blocks_committed: 1, txns_committed: 100, ..Work::default() },
            ..TickWork::default()
        };
        assert_eq!(costs.price(&block), (1_500 + 5_000 + 5_000 + 3_000 + 30_000, 0));
    }

    #[test]
    fn validators_on_one_host_share_its_cores() {
        // Four validators on one 2-core host.
        let mut shared = Hosts::new(4, 4, 2);
        assert_eq!(shared.run(0, 0, (100, 0)), 100);
        assert_eq!(shared.run(1, 0, (100, 0)), 100, "the second core is free");
        assert_eq!(shared.run(2, 0, (100, 0)), 200, "the third waits for a core");
        // Parallel work spreads over both cores, after what they are busy with.
        assert_eq!(shared.run(3, 0, (0, 400)), 400);
        assert_eq!(shared.free_at(0), 400);
        // On four machines nobody waits.
        let mut apart = Hosts::new(4, 1, 2);
        for node in 0..4 {
            assert_eq!(apart.run(node, 0, (100, 0)), 100);
        }
        assert_eq!(apart.run(0, 50, (10, 200)), 210, "parallel on both cores, then serial");
    }

    #[test]
    fn a_bad_table_is_refused_by_name() {
        let mut costs = table();
        costs.pack_txn_ns = f64::NAN;
        assert!(costs.validate().unwrap_err().contains("pack_txn_ns"));
        costs.pack_txn_ns = -1.0;
        assert!(costs.validate().unwrap_err().contains("pack_txn_ns"));
        assert!(table().validate().is_ok());
        assert!(
            toml::from_str::<CostFile>("[costs]\nverify_single_ns = 1.0\n").is_err(),
            "entries are required"
        );
    }
}
