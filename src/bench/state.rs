//! `tessera bench state`: what one block costs the account state at several ledger sizes. For
//! blocks of 4,096 transfers between random accounts it times speculative execution with the
//! state root (what a proposal or a validation pays), committing the winning delta (what
//! finalization pays), and, for comparison, one whole-ledger copy (what each proposal and
//! validation paid before deltas), and persisting: the block's state delta appended to a
//! state log and synced (`persist_ms`, the store's own schedule and record), plus the block's
//! share of rewriting the whole snapshot, which the store does once the log has grown to the
//! snapshot's size (`snapshot_s` × delta bytes ÷ snapshot bytes). The figure that matters is the
//! ratio of the largest size's per-block cost to the smallest's: flat means the cost follows the
//! block, not the ledger.
//!
//! It also prints what the address index's O(N) work costs, which no block of transfers
//! between existing accounts meets: building the slot table from every address (at each
//! restart; `index_table_ms`), and folding the accounts created since the index's base into a
//! new base, which begins once per N/8 creations and is done a step at a time by the
//! creations after it. Over account creations from the one that begins a fold to the one that
//! ends it, `index_fold_ms` is the longest any single creation took and `index_fold_block_ms`
//! the longest 4,096 consecutive creations took (a block of 4,096 transfers to new accounts):
//! the worse of new addresses spread among the old ones and new addresses all above them.
//! `index_create_block_ms`, for comparison, is the median of 4,096 consecutive creations before
//! the fold begins.
//!
//! Last, what one leaf (80 bytes) and one inner node (64 bytes) cost to hash on one core, one at
//! a time with `blake3::keyed_hash` and eight lanes at a time as the tree hashes them
//! (`hash_ns`).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use clap::Args;
use serde_json::json;
use tessera_components::TxnBody;
use tessera_components::storage::{FILE_HEADER_SIZE, StateView, encode_state_log_header, write_state_file};
use tessera_systems::Ledger;
use tessera_systems::kernels::keyed_hash8::keyed_hash_many;
use tessera_systems::ledger::index::{AddressIndex, Base, FOLD_MIN};
use tessera_systems::workload::SeedStream;

use crate::InputError;
use crate::storage::{StateSchedule, StateWrite};

/// Arguments of `tessera bench state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// Ledger sizes, in accounts (comma-separated; 10000000 works, in about 2 GB).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000u64, 1_000_000])]
    accounts: Vec<u64>,
    /// Transfers per block.
    #[arg(long, default_value_t = 4096)]
    block_txns: usize,
    /// Blocks timed at each size (the median is reported).
    #[arg(long, default_value_t = 9)]
    blocks: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// A planted regression for the gate to catch: recompute the root from every account each
    /// block, as before the incremental tree.
    #[arg(long, hide = true)]
    rehash_all: bool,
    /// Where the state log and snapshot are written and synced (a scratch directory inside it,
    /// removed at the end). Default: the system's temporary directory.
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

/// A scratch directory for one run, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the whole snapshot of `ledger` to `path` a record at a time, synced: (bytes, seconds).
fn write_snapshot(path: &std::path::Path, ledger: &Ledger) -> std::io::Result<(u64, f64)> {
    let started = Instant::now();
    let view = StateView {
        height: 0,
        state_root: ledger.state_root(),
        keys: ledger.keys(),
        accounts: ledger.accounts(),
        burned: ledger.burned(),
        supply: ledger.supply(),
    };
    let mut file = std::io::BufWriter::with_capacity(1 << 20, File::create(path)?);
    let bytes = write_state_file(tessera_components::Hash::ZERO, view, |piece| file.write_all(piece))?;
    file.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()?;
    // And the address index the store writes beside each snapshot.
    let index_path = path.with_file_name(crate::storage::STATE_INDEX_FILE);
    let mut file = std::io::BufWriter::with_capacity(1 << 20, File::create(&index_path)?);
    crate::storage::write_address_index_to(
        &mut file,
        tessera_components::Hash::ZERO,
        0,
        view.state_root,
        ledger,
    )?;
    file.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()?;
    Ok((bytes, started.elapsed().as_secs_f64()))
}

/// Building the slot table of `index` (over `keys`) from its stored order, in milliseconds.
fn index_table_ms(keys: &[[u8; 32]], index: &mut AddressIndex) -> Result<f64, Box<dyn std::error::Error>> {
    let order = index.base(keys).order().to_vec();
    let started = Instant::now();
    let base = Base::from_order(keys, order)?;
    let table_ms = started.elapsed().as_secs_f64() * 1e3;
    drop(base);
    Ok(table_ms)
}

/// The address index's pauses as accounts are created over `index` (of `keys`, addresses
/// `0..keys.len()`), in milliseconds: over the creations from the one that begins a fold to the
/// one that ends it, the longest single creation and the longest 4,096 consecutive ones; and,
/// for comparison, the median of 4,096 consecutive creations before the fold begins. With
/// `above`, every new address sorts above every old one (the shape that makes a fold's merge
/// copy the whole old order before the first new address).
fn fold_pauses(
    keys: &[[u8; 32]],
    mut index: AddressIndex,
    above: bool,
) -> Result<IndexPauses, Box<dyn std::error::Error>> {
    let mut keys = keys.to_vec();
    // A fold begins at an eighth of the base and ends within half as many creations again.
    let creations = (keys.len() / 8).max(FOLD_MIN) * 2;
    let (mut longest, mut block, mut longest_block, mut in_block) = (0f64, 0f64, 0f64, 0);
    let mut outside = Vec::new();
    let mut began = false;
    for n in 0..creations {
        let mut key = address(keys.len() as u64);
        if above {
            // Above every old address (whose first 8 bytes are a count, little-endian), and
            // sharing its first 8 bytes with every other new one, as ground addresses can.
            key[..8].fill(0xff);
            key[8..16].copy_from_slice(&(keys.len() as u64).to_be_bytes());
        }
        keys.push(key);
        let started = Instant::now();
        index.insert(key, keys.len() as u32 - 1, &keys);
        let ms = started.elapsed().as_secs_f64() * 1e3;
        if !began && !index.is_folding() {
            block += ms;
            in_block += 1;
            if in_block == 4_096 {
                outside.push(block);
                (block, in_block) = (0.0, 0);
            }
            continue;
        }
        if !began {
            (block, in_block) = (0.0, 0);
        }
        began = true;
        longest = longest.max(ms);
        block += ms;
        in_block += 1;
        if in_block == 4_096 || !index.is_folding() {
            longest_block = longest_block.max(block);
            (block, in_block) = (0.0, 0);
        }
        if !index.is_folding() {
            let outside_block_ms = if outside.is_empty() { 0.0 } else { median(&mut outside) };
            return Ok(IndexPauses {
                longest_ms: longest,
                longest_block_ms: longest_block,
                outside_block_ms,
            });
        }
        if n + 1 == creations {
            break;
        }
    }
    Err("the address index did not fold within a quarter of its size in creations".into())
}

/// What [`fold_pauses`] measures, in milliseconds.
struct IndexPauses {
    longest_ms: f64,
    longest_block_ms: f64,
    outside_block_ms: f64,
}

fn address(index: u64) -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&index.to_le_bytes());
    key[8] = 0xac;
    key
}

/// Nanoseconds a hash of an `L`-byte input takes on one core: one at a time, and in lanes
/// ([`keyed_hash_many`]); medians of five rounds of 8,192 inputs.
fn hash_ns<const L: usize>() -> (f64, f64) {
    let key = *blake3::hash(b"tessera bench state hash").as_bytes();
    let inputs: Vec<[u8; L]> = (0..8192u32)
        .map(|i| std::array::from_fn(|j| (i.wrapping_mul(2_654_435_761) >> (j % 24)) as u8))
        .collect();
    let mut out = vec![[0u8; 32]; inputs.len()];
    let (mut single, mut lanes) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let started = Instant::now();
        for (input, out) in inputs.iter().zip(out.iter_mut()) {
            *out = *blake3::keyed_hash(&key, input).as_bytes();
        }
        single.push(started.elapsed().as_secs_f64() * 1e9 / inputs.len() as f64);
        let check = std::hint::black_box(out.clone());
        let started = Instant::now();
        keyed_hash_many(&key, &inputs, &mut out);
        lanes.push(started.elapsed().as_secs_f64() * 1e9 / inputs.len() as f64);
        assert_eq!(check, out, "the lanes hash as blake3 does");
    }
    (median(&mut single), median(&mut lanes))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn rss_anon_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    crate::node::metrics::rss_anon_bytes(&status).unwrap_or(0)
}

/// Runs the suite.
///
/// # Errors
/// Sizes out of range.
pub fn run(args: &StateArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.accounts.is_empty() || args.accounts.iter().any(|n| *n < 2 || *n > 100_000_000) {
        return Err(InputError("--accounts takes sizes from 2 to 100000000".into()).into());
    }
    if args.blocks == 0 || args.block_txns == 0 || args.block_txns > 1 << 20 {
        return Err(
            InputError("--blocks and --block-txns must be positive (--block-txns ≤ 1048576)".into()).into()
        );
    }
    let scratch = Scratch(
        args.dir
            .clone()
            .unwrap_or_else(std::env::temp_dir)
            .join(format!("tessera-bench-state-{}", std::process::id())),
    );
    std::fs::create_dir_all(&scratch.0)?;
    let mut rows = Vec::new();
    for &size in &args.accounts {
        let rss_before = rss_anon_bytes();
        let started = Instant::now();
        let genesis: Vec<([u8; 32], u64)> = (0..size).map(|i| (address(i), 1 << 40)).collect();
        let mut ledger = Ledger::from_genesis(&genesis)?;
        drop(genesis);
        let genesis_s = started.elapsed().as_secs_f64();
        let rss_per_account = rss_anon_bytes().saturating_sub(rss_before) as f64 / size as f64;
        let (snapshot_bytes, snapshot_s) = write_snapshot(&scratch.0.join("state"), &ledger)?;
        let log = File::create(scratch.0.join("state-log"))?;
        log.write_all_at(&encode_state_log_header(tessera_components::Hash::ZERO), 0)?;
        // The log never outgrows the snapshot in the store; here every block's delta is
        // appended, and the rewrite it would trigger is charged by its share below.
        let mut schedule = StateSchedule::new(0, u64::MAX, FILE_HEADER_SIZE as u64, []);
        let mut stream = SeedStream::new("tessera bench state", size);
        let (mut execute_ms, mut root_ms, mut commit_ms) = (Vec::new(), Vec::new(), Vec::new());
        let (mut persist_ms, mut delta_bytes) = (Vec::new(), Vec::new());
        for _ in 0..args.blocks {
            let bodies: Vec<TxnBody> = (0..args.block_txns)
                .map(|_| {
                    let sender = address(stream.below(size));
                    let recipient = address(stream.below(size));
                    TxnBody {
                        chain_id: 1,
                        reserved: 0,
                        sender,
                        recipient,
                        amount: 1 + stream.below(1000),
                        fee: 1,
                        nonce: ledger.nonce_of(&sender),
                    }
                })
                .collect();
            let started = Instant::now();
            let (results, mut delta) = ledger.execute(&bodies);
            let executed = started.elapsed().as_secs_f64() * 1e3;
            let root = if args.rehash_all {
                // The old path: a whole-ledger copy (sharing nothing, as clones did then) and
                // a root rebuilt over every account.
                let mut after = ledger.unshared();
                after.commit(delta.clone());
                after.state_root_from_scratch()
            } else {
                ledger.root_after(&mut delta)
            };
            execute_ms.push(executed);
            root_ms.push(started.elapsed().as_secs_f64() * 1e3 - executed);
            let started = Instant::now();
            ledger.commit(delta);
            commit_ms.push(started.elapsed().as_secs_f64() * 1e3);
            if ledger.state_root() != root || results.iter().all(Result::is_err) {
                return Err("the committed root differs from the speculative one".into());
            }
            let started = Instant::now();
            schedule.note_bodies(&bodies);
            let StateWrite::Delta(record) = schedule.plan(1, root, &ledger) else {
                return Err("a block's delta did not fit one record".into());
            };
            log.write_all_at(&record, schedule.log_len())?;
            log.sync_data()?;
            schedule.wrote_delta(record.len() as u64);
            let appended = started.elapsed().as_secs_f64() * 1e3;
            persist_ms.push(appended + snapshot_s * 1e3 * record.len() as f64 / snapshot_bytes as f64);
            delta_bytes.push(record.len() as f64);
        }
        let state_files = (std::fs::metadata(scratch.0.join("state"))?.len()
            + std::fs::metadata(scratch.0.join(crate::storage::STATE_INDEX_FILE))?.len())
            as f64;
        let started = Instant::now();
        let copy = ledger.unshared();
        let copy_ms = started.elapsed().as_secs_f64() * 1e3;
        drop(copy);
        // New addresses spread among the old ones, then all above them; the worse of each.
        // One index built for both, each given one of its own, as a node's is: a fold of an
        // index nobody shares works in its own table, where a clone's would copy it.
        let (mut index, _) = AddressIndex::build(ledger.keys(), u32::MAX).map_err(|_| "duplicate address")?;
        let index_table_ms = index_table_ms(ledger.keys(), &mut index)?;
        let spread = fold_pauses(ledger.keys(), index.unshared(), false)?;
        let above = fold_pauses(ledger.keys(), index, true)?;
        let index_fold_ms = spread.longest_ms.max(above.longest_ms);
        let index_fold_block_ms = spread.longest_block_ms.max(above.longest_block_ms);
        let index_create_block_ms = spread.outside_block_ms.max(above.outside_block_ms);
        let execute = median(&mut execute_ms);
        let root = median(&mut root_ms);
        let commit = median(&mut commit_ms);
        let persist = median(&mut persist_ms);
        rows.push(json!({
            "accounts": size,
            "genesis_s": genesis_s,
            "execute_ms": execute,
            "root_ms": root,
            "commit_ms": commit,
            "persist_ms": persist,
            "per_block_ms": execute + root + commit + persist,
            "delta_bytes_per_block": median(&mut delta_bytes),
            "snapshot_s": snapshot_s,
            "disk_bytes_per_account": state_files / size as f64,
            "whole_ledger_copy_ms": copy_ms,
            "resident_bytes_per_account": rss_per_account,
            "index_table_ms": index_table_ms,
            "index_fold_ms": index_fold_ms,
            "index_fold_block_ms": index_fold_block_ms,
            "index_create_block_ms": index_create_block_ms,
        }));
    }
    let first = rows.first().and_then(|row| row["per_block_ms"].as_f64()).unwrap_or(0.0);
    let last = rows.last().and_then(|row| row["per_block_ms"].as_f64()).unwrap_or(0.0);
    let ratio = last / first.max(1e-9);
    let ((node_single, node_lanes), (leaf_single, leaf_lanes)) = (hash_ns::<64>(), hash_ns::<80>());
    let hashes = json!({
        "node_one_at_a_time": node_single,
        "node_in_lanes": node_lanes,
        "leaf_one_at_a_time": leaf_single,
        "leaf_in_lanes": leaf_lanes,
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"sizes": rows, "cost_ratio": ratio, "hash_ns": hashes}))?
        );
    } else {
        println!(
            "{:>12} {:>10} {:>11} {:>9} {:>10} {:>11} {:>13} {:>15} {:>11} {:>14} {:>15} {:>15} {:>14} {:>20} {:>22}",
            "accounts",
            "genesis_s",
            "execute_ms",
            "root_ms",
            "commit_ms",
            "persist_ms",
            "per_block_ms",
            "ledger_copy_ms",
            "snapshot_s",
            "rss_B/account",
            "disk_B/account",
            "index_table_ms",
            "index_fold_ms",
            "index_fold_block_ms",
            "index_create_block_ms"
        );
        for row in &rows {
            println!(
                "{:>12} {:>10.2} {:>11.2} {:>9.2} {:>10.2} {:>11.2} {:>13.2} {:>15.2} {:>11.2} {:>14.0} {:>15.1} {:>15.1} {:>14.2} {:>20.1} {:>22.1}",
                row["accounts"],
                row["genesis_s"].as_f64().unwrap_or(0.0),
                row["execute_ms"].as_f64().unwrap_or(0.0),
                row["root_ms"].as_f64().unwrap_or(0.0),
                row["commit_ms"].as_f64().unwrap_or(0.0),
                row["persist_ms"].as_f64().unwrap_or(0.0),
                row["per_block_ms"].as_f64().unwrap_or(0.0),
                row["whole_ledger_copy_ms"].as_f64().unwrap_or(0.0),
                row["snapshot_s"].as_f64().unwrap_or(0.0),
                row["resident_bytes_per_account"].as_f64().unwrap_or(0.0),
                row["disk_bytes_per_account"].as_f64().unwrap_or(0.0),
                row["index_table_ms"].as_f64().unwrap_or(0.0),
                row["index_fold_ms"].as_f64().unwrap_or(0.0),
                row["index_fold_block_ms"].as_f64().unwrap_or(0.0),
                row["index_create_block_ms"].as_f64().unwrap_or(0.0),
            );
        }
        println!(
            "cost_ratio {ratio:.2} (per-block cost at {} accounts over {} accounts; {} transfers a block)",
            args.accounts.last().unwrap_or(&0),
            args.accounts.first().unwrap_or(&0),
            args.block_txns
        );
        println!(
            "hash_ns node (64 B) {node_single:.1} one at a time, {node_lanes:.1} in lanes ({:.1}x); leaf (80 B) \
             {leaf_single:.1} one at a time, {leaf_lanes:.1} in lanes ({:.1}x); one core",
            node_single / node_lanes.max(1e-9),
            leaf_single / leaf_lanes.max(1e-9),
        );
    }
    Ok(())
}
