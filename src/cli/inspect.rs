//! `tessera inspect`: verify a data directory without writing to it.

use std::path::PathBuf;

use clap::Args;

use crate::storage::{DirLock, LockMode, Rebuilt, Replay, SegmentReader, check_chain, rebuild, verify};

/// Arguments of `tessera inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The node's data directory. It is opened read-only under a shared lock (so it fails while
    /// a node holds the directory) and nothing in it is written.
    pub dir: PathBuf,
    /// Also re-execute every stored block from genesis, checking each block's state root and
    /// that the state snapshot matches the replayed state at its height.
    #[arg(long)]
    pub replay: bool,
}

/// Verifies and prints.
///
/// # Errors
/// The first problem found, naming its file and byte offset where it is about bytes on disk.
pub fn run(args: &InspectArgs) -> Result<(), Box<dyn std::error::Error>> {
    if !args.dir.is_dir() {
        return Err(crate::InputError(format!("{} is not a directory", args.dir.display())).into());
    }
    let lock = DirLock::new(&args.dir, LockMode::Shared)?;
    let verified = verify(&lock)?;
    let mut reader = SegmentReader::default();
    let mode = if args.replay { Replay::FromGenesis } else { Replay::FromSnapshot };
    if !args.replay {
        // Replaying from genesis reads every block anyway; otherwise walk them separately.
        check_chain(&lock, &verified, &mut reader)?;
    }
    let Rebuilt { ledger, replayed, deltas, state_height, address_index, log_applied, .. } =
        rebuild(&lock, &verified, &mut reader, mode)?;
    let height = verified.check.height();
    println!("genesis {} accounts {}", verified.genesis_id, verified.genesis.len());
    println!("segments {} bytes {}", verified.segment_count, verified.segment_bytes);
    println!("state_snapshot height {}", verified.state.height);
    let log = &verified.state_log.deltas;
    println!(
        "state_log deltas {} applied {deltas} state_height {state_height} rows {}",
        log.len(),
        log.iter().map(|delta| delta.rows.len()).sum::<usize>()
    );
    // The index is derived data: one that does not check is not damage, the next start builds it.
    println!("address_index {address_index}");
    println!("state_log_applied {log_applied}");
    let tails = [verified.check.index_tail, verified.check.segment_tail, verified.state_log.tail];
    for tail in tails.into_iter().flatten() {
        println!(
            "torn {} offset {} bytes {} (an unfinished final write; the node drops it at its next start)",
            lock.path(&tail.file.file_name()).display(),
            tail.offset,
            tail.size
        );
    }
    println!("height {height}");
    println!("state_root {}", ledger.state_root());
    if args.replay {
        println!("replayed {replayed} blocks from genesis: every state root matches");
    }
    println!("ok: {height} blocks in {} segments, every checksum verified", verified.segment_count);
    Ok(())
}
