//! `tessera storage-drill` (hidden): commit deterministic blocks to a data directory, printing
//! each durable commit. The child process of the crash tests, and a way to make a directory to
//! look at with `tessera inspect`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::storage::{Store, StoreConfig, drill};

/// Arguments of `tessera storage-drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The data directory (a store is created in it if it has none).
    pub dir: PathBuf,
    /// Stop once the store reaches this height. Without it, commit until killed.
    #[arg(long)]
    pub blocks: Option<u64>,
    /// Transfers per block (at most --senders).
    #[arg(long, default_value_t = 8)]
    pub txns_per_block: usize,
    /// Funded accounts in the drill's genesis.
    #[arg(long, default_value_t = 64)]
    pub senders: u64,
    /// Roll over to a new segment past this many bytes.
    #[arg(long, default_value_t = StoreConfig::default().segment_size_max)]
    pub segment_size_max: u64,
    /// Rewrite the state snapshot every this many heights.
    #[arg(long, default_value_t = StoreConfig::default().state_interval_blocks)]
    pub state_interval: u64,
    /// Skip fdatasync (commits then survive a killed process, not a power cut).
    #[arg(long)]
    pub no_sync: bool,
}

/// Opens (or creates) the store and commits until `--blocks` or forever. Prints
/// `recovered <height> <state_root> dropped <bytes> state_height <h> replayed <n> deltas <n>
/// open_ms <ms>` (how long opening took: checks, recovery, rebuilding the ledger), a
/// `torn <file> <offset> <bytes>` line per dropped tail, then `committed <height> <state_root>`
/// after each commit is durable (and read back), and `stopped <height> state_height <h>` after a
/// clean stop at `--blocks`.
///
/// # Errors
/// Invalid arguments, or the store's refusal to open or commit.
pub fn run(args: &DrillArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.txns_per_block as u64 > args.senders {
        return Err("--txns-per-block must not exceed --senders".into());
    }
    let config = StoreConfig {
        segment_size_max: args.segment_size_max,
        sync: !args.no_sync,
        state_interval_blocks: args.state_interval,
    };
    let genesis = drill::genesis(args.senders);
    let started = std::time::Instant::now();
    let (mut store, mut ledger, recovery) = Store::open(&args.dir, &genesis, config)?;
    let open_ms = started.elapsed().as_secs_f64() * 1e3;
    drop(genesis);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "recovered {} {} dropped {} state_height {} replayed {} deltas {} open_ms {open_ms:.0}",
        recovery.height,
        recovery.state_root,
        recovery.torn_bytes_dropped,
        store.state_height(),
        recovery.replayed,
        recovery.deltas,
    )?;
    for tail in &recovery.torn {
        writeln!(out, "torn {} {} {}", tail.file.display(), tail.offset, tail.size)?;
    }
    out.flush()?;
    while args.blocks.is_none_or(|blocks| store.height() < blocks) {
        let height = store.height() + 1;
        let (block, certificate) =
            drill::next_block(&mut ledger, store.tip_hash(), height, args.senders, args.txns_per_block);
        store.commit(&block, &certificate, &ledger)?;
        // Pair check: the block reads back from its segment as exactly what was committed.
        if store.block(height)? != Some((block.clone(), certificate)) {
            return Err(format!("block {height} does not read back as committed").into());
        }
        writeln!(out, "committed {height} {}", block.header.state_root)?;
        out.flush()?;
    }
    // A clean stop: snapshot the state so the next start replays nothing.
    store.write_state(&ledger)?;
    writeln!(out, "stopped {} state_height {}", store.height(), store.state_height())?;
    Ok(())
}
