//! `tessera bench storage`: block persistence against plain sequential writes with the same
//! sync policy, and the time to open (verify and recover) a large data directory.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use tessera_components::storage::{RECORD_HEADER_SIZE, encode_block_payload};
use tessera_components::{Block, Hash, QuorumCertificate};
use tessera_systems::Ledger;

use super::median;
use crate::storage::{Store, StoreConfig, drill};

/// Arguments of `tessera bench storage`.
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Directory to work in: a fresh subdirectory is made there and removed afterwards. Put it
    /// on the disk you mean to measure. Default: the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Transfers per block (160 bytes each).
    #[arg(long, default_value_t = 4096)]
    txns_per_block: usize,
    /// Blocks per bandwidth measurement.
    #[arg(long, default_value_t = 128)]
    blocks: u64,
    /// Measured rounds of each side, alternating (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Size of the data directory whose open is timed, in MiB. The target is stated for 1024
    /// (1 GiB); a smaller size is reported as such.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Bytes per MB in the reported rates (decimal, as disk rates are usually quoted).
const MB: f64 = 1e6;

/// A run of blocks, each with its certificate and the ledger's state root after it.
struct Chain {
    senders: u64,
    txns_per_block: usize,
    ledger: Ledger,
    tip: Hash,
    height: u64,
}

impl Chain {
    fn new(txns_per_block: usize) -> Result<Chain, Box<dyn std::error::Error>> {
        let senders = txns_per_block.max(1) as u64;
        let ledger = Ledger::from_genesis(&drill::genesis(senders))?;
        Ok(Chain { senders, txns_per_block, ledger, tip: Hash::ZERO, height: 0 })
    }

    fn genesis(&self) -> Vec<([u8; 32], u64)> {
        drill::genesis(self.senders)
    }

    fn next(&mut self) -> (Block, QuorumCertificate) {
        self.height += 1;
        let (block, certificate) =
            drill::next_block(&mut self.ledger, self.tip, self.height, self.senders, self.txns_per_block);
        self.tip = block.header.hash();
        (block, certificate)
    }
}

/// Record sizes (header plus payload) of the first `blocks` blocks of the chain.
fn record_sizes(blocks: u64, txns_per_block: usize) -> Result<Vec<usize>, Box<dyn std::error::Error>> {
    let mut chain = Chain::new(txns_per_block)?;
    Ok((0..blocks)
        .map(|_| {
            let (block, certificate) = chain.next();
            RECORD_HEADER_SIZE + encode_block_payload(&block, &certificate).len()
        })
        .collect())
}

/// Seconds spent inside `Store::commit` for `blocks` blocks, and the record bytes written.
pub(super) fn persist(
    dir: &Path,
    blocks: u64,
    txns_per_block: usize,
) -> Result<(f64, u64), Box<dyn std::error::Error>> {
    let mut chain = Chain::new(txns_per_block)?;
    let (mut store, _, _) = Store::open(dir, &chain.genesis(), StoreConfig::default())?;
    let mut spent = Duration::ZERO;
    let mut bytes = 0;
    for _ in 0..blocks {
        let (block, certificate) = chain.next();
        bytes += (RECORD_HEADER_SIZE + encode_block_payload(&block, &certificate).len()) as u64;
        let start = Instant::now();
        store.commit(&block, &certificate, &chain.ledger)?;
        spent += start.elapsed();
    }
    Ok((spent.as_secs_f64(), bytes))
}

/// Seconds to write the same sizes sequentially to one file, `fdatasync` after each: the
/// ceiling for "each block durable before the next".
fn ceiling(path: &Path, sizes: &[usize]) -> Result<f64, Box<dyn std::error::Error>> {
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(path)?;
    let buffer = vec![0xa5u8; sizes.iter().copied().max().unwrap_or(0)];
    let start = Instant::now();
    for size in sizes {
        file.write_all(&buffer[..*size])?;
        file.sync_data()?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Fills a store to `size_bytes` of segments (without syncs, to save time; the open measured
/// afterwards does not depend on it), then times `Store::open` on it.
fn open_time(
    dir: &Path,
    size_bytes: u64,
    txns_per_block: usize,
) -> Result<(f64, u64, u64, u64), Box<dyn std::error::Error>> {
    let mut chain = Chain::new(txns_per_block)?;
    let genesis = chain.genesis();
    let fill = StoreConfig { sync: false, ..StoreConfig::default() };
    let (mut store, _, _) = Store::open(dir, &genesis, fill)?;
    let mut written = 0u64;
    while written < size_bytes {
        let (block, certificate) = chain.next();
        written += (RECORD_HEADER_SIZE + encode_block_payload(&block, &certificate).len()) as u64;
        store.commit(&block, &certificate, &chain.ledger)?;
    }
    let height = store.height();
    drop(store);
    let start = Instant::now();
    let (store, ledger, recovery) = Store::open(dir, &genesis, StoreConfig::default())?;
    let seconds = start.elapsed().as_secs_f64();
    if store.height() != height || ledger.state_root() != chain.ledger.state_root() {
        return Err("reopened store does not match what was written".into());
    }
    Ok((seconds, written, height, recovery.replayed))
}

/// Runs the benchmark.
///
/// # Errors
/// Invalid arguments, or a failed write or open.
pub fn run(args: &StorageArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.txns_per_block == 0 || args.blocks == 0 || args.rounds == 0 || args.size_mib == 0 {
        return Err("--txns-per-block, --blocks, --rounds and --size-mib must be positive".into());
    }
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let root = base.join(format!("tessera-bench-storage-{}", std::process::id()));
    if root.exists() {
        std::fs::remove_dir_all(&root)?;
    }
    std::fs::create_dir_all(&root)?;
    let result = measure(args, &root);
    let cleanup = std::fs::remove_dir_all(&root);
    let report = result?;
    cleanup?;
    print(args, &root, &report);
    Ok(())
}

struct Report {
    record_bytes_mean: u64,
    ceiling_mb_per_s: f64,
    persist_mb_per_s: f64,
    /// Median over rounds of each round's persist / ceiling.
    ratio_to_ceiling: f64,
    open_s: f64,
    open_bytes: u64,
    open_height: u64,
    open_replayed: u64,
}

fn measure(args: &StorageArgs, root: &Path) -> Result<Report, Box<dyn std::error::Error>> {
    if !args.json {
        eprintln!(
            "writing {} blocks of {} transfers per side, {} rounds, in {}",
            args.blocks,
            args.txns_per_block,
            args.rounds,
            root.display()
        );
    }
    // The chain is deterministic, so its record sizes are known before either side runs; the
    // ceiling writes exactly these sizes.
    let sizes = record_sizes(args.blocks, args.txns_per_block)?;
    let bytes: u64 = sizes.iter().map(|s| *s as u64).sum();
    let mut ceiling_rates = Vec::with_capacity(args.rounds);
    let mut persist_rates = Vec::with_capacity(args.rounds);
    let mut ratios = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        // Alternate which side goes first, so drift in the disk's speed during a round (it is
        // shared) does not always favour the same side; the ratio is taken per round, between
        // two measurements made moments apart.
        let mut persist_rate = 0.0;
        let mut ceiling_rate = 0.0;
        for side in [round % 2, 1 - round % 2] {
            if side == 0 {
                let dir = root.join(format!("persist-{round}"));
                let (seconds, persisted) = persist(&dir, args.blocks, args.txns_per_block)?;
                std::fs::remove_dir_all(&dir)?;
                if persisted != bytes {
                    return Err("the persisted chain differs from the one measured for the ceiling".into());
                }
                persist_rate = bytes as f64 / MB / seconds;
            } else {
                let path = root.join("ceiling");
                let seconds = ceiling(&path, &sizes)?;
                std::fs::remove_file(&path)?;
                ceiling_rate = bytes as f64 / MB / seconds;
            }
        }
        persist_rates.push(persist_rate);
        ceiling_rates.push(ceiling_rate);
        ratios.push(persist_rate / ceiling_rate);
    }
    let record_bytes_mean = bytes / args.blocks;
    if !args.json {
        eprintln!("filling a {} MiB data directory to time its open", args.size_mib);
    }
    let (open_s, open_bytes, open_height, open_replayed) =
        open_time(&root.join("open"), args.size_mib << 20, args.txns_per_block)?;
    Ok(Report {
        record_bytes_mean,
        ceiling_mb_per_s: median(&mut ceiling_rates),
        persist_mb_per_s: median(&mut persist_rates),
        ratio_to_ceiling: median(&mut ratios),
        open_s,
        open_bytes,
        open_height,
        open_replayed,
    })
}

fn print(args: &StorageArgs, root: &Path, report: &Report) {
    let ratio = report.ratio_to_ceiling;
    let open_mib = report.open_bytes as f64 / f64::from(1u32 << 20);
    let full_size = args.size_mib == 1024;
    if args.json {
        let json = serde_json::json!({
            "dir": root.parent().map(|p| p.display().to_string()),
            "txns_per_block": args.txns_per_block,
            "record_bytes_mean": report.record_bytes_mean,
            "blocks": args.blocks,
            "rounds": args.rounds,
            "ceiling_mb_per_s": (report.ceiling_mb_per_s * 10.0).round() / 10.0,
            "persist_mb_per_s": (report.persist_mb_per_s * 10.0).round() / 10.0,
            "ratio_to_ceiling": (ratio * 1000.0).round() / 1000.0,
            "open_size_mib": (open_mib * 10.0).round() / 10.0,
            "open_full_1gib": full_size,
            "open_1gib_s": (report.open_s * 1000.0).round() / 1000.0,
            "open_blocks": report.open_height,
            "open_replayed_blocks": report.open_replayed,
            "page_cache": "warm",
        });
        println!("{json}");
    } else {
        println!(
            "blocks             {} x {} transfers ({} bytes per record), fdatasync per write",
            args.blocks, args.txns_per_block, report.record_bytes_mean
        );
        println!(
            "ceiling            {:>8.1} MB/s  (sequential write + fdatasync per block-sized write)",
            report.ceiling_mb_per_s
        );
        println!(
            "persist            {:>8.1} MB/s  (Store::commit: record + sync, index entry + sync, snapshots)",
            report.persist_mb_per_s
        );
        println!("ratio_to_ceiling   {ratio:>8.3}  (median of each round's ratio; target >= 0.5)");
        let size_note = if full_size {
            "1 GiB".to_string()
        } else {
            format!("{open_mib:.0} MiB, NOT the 1 GiB of the target (--size-mib {})", args.size_mib)
        };
        println!(
            "open               {:>8.3} s     ({size_note}: {} blocks, every checksum, {} blocks replayed; warm page cache; target < 2 s)",
            report.open_s, report.open_height, report.open_replayed
        );
    }
}
