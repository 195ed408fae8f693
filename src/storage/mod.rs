//! Persistence: the node's data directory.
//!
//! Bird's eye view: a data directory holds a `genesis` file, append-only `segment-NNNNNNNN`
//! files of finalized blocks with their certificates, an append-only `index` of where each
//! height's record is, and a `state` snapshot of the accounts. Files are read through read-only
//! maps ([`map`]) and written with ordinary positioned writes plus `fdatasync`. The record
//! formats and the recovery rule are plain data and pure functions in
//! [`tessera_components::storage`]; this module owns the files: the lock, the writes, the order
//! of syncs, and applying what recovery decided. `docs/storage.md` has every byte.
//!
//! A commit writes the block's record at the end of the last segment and syncs it, then
//! appends its index entry and syncs that; only then does [`Store::commit`] return `Ok`. Every
//! [`StoreConfig::state_interval_blocks`] heights it also rewrites the state snapshot atomically
//! (write a temporary file, sync, rename, sync the directory). [`Store::open`] verifies every
//! checksum, drops the torn remains of an unfinished final commit (and says how much), refuses
//! to start on anything else, and replays the blocks after the snapshot to reach the last
//! committed height, checking each block's state root on the way.

pub mod drill;
mod map;
mod port;
pub mod safety;
mod schedule;
mod verify;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use tessera_components::storage::{
    FILE_HEADER_SIZE, INDEX_ENTRY_SIZE, IndexEntry, Place, RECORD_HEADER_SIZE, RECORD_PAYLOAD_MAX,
    RecordKind, StateIndexMeta, StateView, check_record_header, encode_block_record, encode_index_header,
    encode_segment_header, encode_state_file, encode_state_index_head, encode_state_log_header,
    genesis_id_of, seal_record_header, segment_file_name, write_genesis_file, write_le_words,
    write_state_file,
};
use tessera_components::{Block, CertifiedBlock, Hash, QuorumCertificate};
use tessera_systems::{GenesisError, Ledger};

pub use map::{DirLock, LockMode};
pub use port::Storage;
pub(crate) use port::commit_in_order;
pub(crate) use schedule::{StateSchedule, StateWrite, state_due};
pub use verify::{
    AddressIndexSource, BlockSource, LogApplied, Rebuilt, Replay, SegmentReader, Verified, check_chain,
    check_state_height, corrupt_at, read_entry, rebuild, rebuild_from, segment_numbers, verify,
};

/// The genesis file's name.
pub const GENESIS_FILE: &str = "genesis";
/// The index file's name.
pub const INDEX_FILE: &str = "index";
/// The state snapshot's name.
pub const STATE_FILE: &str = "state";
/// The name of the log of state deltas written since the snapshot.
pub const STATE_LOG_FILE: &str = "state-log";
/// The name of the snapshot's address index (derived data: a restart maps it when it matches
/// the snapshot, and builds the index from the snapshot's addresses otherwise).
pub const STATE_INDEX_FILE: &str = "state-index";
/// Suffix of a file being written before it is renamed into place.
pub const TEMP_SUFFIX: &str = ".tmp";

/// How a [`Store`] writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// A segment is closed and a new one started when the next record would take it past this
    /// many bytes (a record larger than this gets a segment of its own). Default 64 MiB.
    pub segment_size_max: u64,
    /// `fdatasync` each write before reporting it done. Default true. Without it a commit
    /// survives the process dying but not the machine losing power: for tests and for filling
    /// benchmark directories only.
    pub sync: bool,
    /// Write the state every this many heights (at least 1): a delta of the accounts changed
    /// since the last write, or, when the deltas would outgrow the snapshot, a whole new
    /// snapshot. A restart replays at most this many blocks less one. Default 64.
    pub state_interval_blocks: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { segment_size_max: 64 << 20, sync: true, state_interval_blocks: 64 }
    }
}

/// What [`Store::open`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The last committed height (0: only genesis).
    pub height: u64,
    /// Committed blocks whose records were verified.
    pub blocks: u64,
    /// Bytes dropped from the ends of files: the remains of a commit that never finished.
    pub torn_bytes_dropped: u64,
    /// State root after the last committed block.
    pub state_root: Hash,
    /// Each dropped tail: file, offset it was cut at, bytes.
    pub torn: Vec<TornTail>,
    /// Height of the stored state the ledger was rebuilt from: the snapshot's, or that of the
    /// last state delta applied over it.
    pub state_height: u64,
    /// State deltas applied over the snapshot.
    pub deltas: u64,
    /// Blocks re-executed after the snapshot.
    pub replayed: u64,
    /// How the snapshot's address index was had: mapped, or built from its addresses.
    pub address_index: AddressIndexSource,
    /// How the state log's deltas were applied over the snapshot.
    pub log_applied: LogApplied,
    /// True when this open created the store.
    pub created: bool,
    /// The consensus safety state last persisted ([`Store::save_safety`]), if any.
    pub safety: Option<tessera_components::SafetyState>,
    /// A safety slot held bytes that failed their checks ([`safety::SafetyRecovered`]).
    pub safety_damaged: bool,
    /// `safety` may be older than what the validator signed ([`safety::SafetyRecovered`]).
    pub safety_uncertain: bool,
}

/// A torn tail that recovery dropped (or, for `inspect`, would drop).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The file.
    pub file: PathBuf,
    /// Where the unfinished write started; the file is cut to this length.
    pub offset: u64,
    /// Bytes dropped.
    pub size: u64,
}

/// Why the store could not open, commit or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An operating-system error on a file.
    #[error("{}: {source}", file.display())]
    Io {
        /// The file or directory.
        file: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Another process holds the directory's lock.
    #[error("data directory {} is locked by another process (is a node running on it?)", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// The directory holds no store.
    #[error("{} holds no store (no {GENESIS_FILE} file)", dir.display())]
    NoStore {
        /// The directory.
        dir: PathBuf,
    },
    /// Bytes on disk that are not what the store wrote: the node refuses to start.
    #[error("{}: corrupt at byte offset {offset}: {reason}", file.display())]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// Byte offset of the problem in it.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A stored block whose replay gives another state root than it records.
    #[error(
        "{}: block {height} at byte offset {offset} records state root {stored}, replaying it gives {computed}",
        file.display()
    )]
    StateMismatch {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the block's record.
        offset: u64,
        /// The block's height.
        height: u64,
        /// Root in the block header.
        stored: Hash,
        /// Root after replaying it.
        computed: Hash,
    },
    /// The directory's genesis is not the one given.
    #[error("{}: the stored genesis differs from the one given; this directory belongs to another chain", file.display())]
    GenesisMismatch {
        /// The genesis file.
        file: PathBuf,
    },
    /// The genesis given cannot build a ledger.
    #[error("invalid genesis: {0}")]
    Genesis(#[from] GenesisError),
    /// A configuration value that cannot work.
    #[error("invalid store configuration: {0}")]
    Config(&'static str),
    /// A block that is not the next height.
    #[error("block {got} does not extend the store at height {height}")]
    OutOfOrder {
        /// The store's height.
        height: u64,
        /// The block's height.
        got: u64,
    },
    /// A block whose parent is not the stored tip.
    #[error("block {height}'s parent {parent} is not the stored tip {tip}")]
    ParentMismatch {
        /// The block's height.
        height: u64,
        /// Its parent hash.
        parent: Hash,
        /// Hash of the stored tip.
        tip: Hash,
    },
    /// A block whose header does not describe its body.
    #[error("block {height} is malformed: {reason}")]
    InvalidBlock {
        /// The block's height.
        height: u64,
        /// What is wrong.
        reason: String,
    },
    /// A certificate for another block.
    #[error(
        "the certificate (height {certified_height}, block {certified}) does not certify block {height} ({hash})"
    )]
    CertificateMismatch {
        /// The block's height.
        height: u64,
        /// The block's hash.
        hash: Hash,
        /// Height in the certificate.
        certified_height: u64,
        /// Block hash in the certificate.
        certified: Hash,
    },
    /// The ledger given is not the state the block records.
    #[error("block {height} records state root {block}, the ledger given has {ledger}")]
    StateRootMismatch {
        /// The block's height.
        height: u64,
        /// Root in its header.
        block: Hash,
        /// Root of the ledger given.
        ledger: Hash,
    },
    /// A record above the format's size limit.
    #[error("{what} encodes to {size} bytes, above the record maximum of {RECORD_PAYLOAD_MAX}")]
    TooLarge {
        /// What was being written.
        what: String,
        /// Its payload size.
        size: usize,
    },
    /// An earlier write failed, so what is on disk past the last commit is unknown.
    #[error("an earlier write failed ({0}); reopen the store to recover")]
    Poisoned(String),
}

/// An append-only block store over one data directory, held with `flock(LOCK_EX)` for as long
/// as the value lives.
#[derive(Debug)]
pub struct Store {
    config: StoreConfig,
    genesis_id: Hash,
    /// Entry `h - 1` places height `h`.
    entries: Vec<IndexEntry>,
    segment: File,
    segment_number: u32,
    segment_len: u64,
    index: File,
    index_len: u64,
    state_log: File,
    schedule: schedule::StateSchedule,
    tip_hash: Hash,
    tip_state_root: Hash,
    state_height: u64,
    /// Set by a failed write: what is on disk past the last commit is then unknown, so every
    /// later commit is refused until the store is reopened (and recovered).
    poisoned: Option<String>,
    reader: Mutex<SegmentReader>,
    safety: safety::SafetyFile,
    // Declared last so it is dropped last: the lock outlives every map and file handle.
    lock: DirLock,
}

fn io_error(file: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { file: file.to_path_buf(), source }
}

/// Writes `bytes` to `name` atomically: a temporary file, synced, renamed over `name`, then the
/// directory synced so the rename is durable.
fn write_atomic(lock: &DirLock, name: &str, bytes: &[u8], sync: bool) -> Result<(), StoreError> {
    write_atomic_with(lock, name, sync, |file| file.write_all(bytes)).map(|_| ())
}

/// [`write_atomic`] of what `write` writes to the temporary file, a piece at a time. Returns the
/// file's length.
fn write_atomic_with(
    lock: &DirLock,
    name: &str,
    sync: bool,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<u64, StoreError> {
    let temp = lock.path(&format!("{name}{TEMP_SUFFIX}"));
    let target = lock.path(name);
    let mut file =
        OpenOptions::new().write(true).create(true).truncate(true).open(&temp).map_err(io_error(&temp))?;
    write(&mut file).map_err(io_error(&temp))?;
    let len = file.metadata().map_err(io_error(&temp))?.len();
    if sync {
        file.sync_all().map_err(io_error(&temp))?;
    }
    drop(file);
    std::fs::rename(&temp, &target).map_err(io_error(&target))?;
    if sync {
        lock.sync_dir().map_err(io_error(lock.dir()))?;
    }
    Ok(len)
}

/// Writes the `state` file for `ledger` at `height` (whose root, already computed, is
/// `state_root`) atomically, a record at a time, then its `state-index`. Returns the state
/// file's length.
fn write_state_whole(
    lock: &DirLock,
    genesis_id: Hash,
    height: u64,
    state_root: Hash,
    ledger: &Ledger,
    sync: bool,
) -> Result<u64, StoreError> {
    let view = StateView {
        height,
        state_root,
        keys: ledger.keys(),
        accounts: ledger.accounts(),
        burned: ledger.burned(),
        supply: ledger.supply(),
    };
    let len = write_atomic_with(lock, STATE_FILE, sync, |file| {
        let mut out = io::BufWriter::with_capacity(1 << 20, file);
        write_state_file(genesis_id, view, |bytes| out.write_all(bytes))?;
        out.flush()
    })?;
    // Then the address index beside it, so that a restart maps it instead of sorting every
    // address. After the snapshot: a crash between the two leaves an index that names the old
    // snapshot, which a restart does not use.
    write_atomic_with(lock, STATE_INDEX_FILE, sync, |file| {
        let mut out = io::BufWriter::with_capacity(1 << 20, file);
        write_address_index_to(&mut out, genesis_id, height, state_root, ledger)?;
        out.flush()
    })?;
    Ok(len)
}

/// Writes the `state-index` file's bytes for the snapshot of `ledger` at `height` to `out`.
///
/// # Errors
/// A failed write.
pub(crate) fn write_address_index_to(
    out: &mut impl Write,
    genesis_id: Hash,
    height: u64,
    state_root: Hash,
    ledger: &Ledger,
) -> io::Result<()> {
    let order = ledger.address_order();
    let meta = StateIndexMeta { height, state_root, count: order.len() as u64 };
    out.write_all(&encode_state_index_head(genesis_id, &meta, &order))?;
    write_le_words(&order, |bytes| out.write_all(bytes))
}

/// Removes the temporary files of atomic writes that never finished. They never hold
/// committed data: a file counts only once renamed into place.
fn remove_temporaries(lock: &DirLock) -> Result<(), StoreError> {
    let io = io_error(lock.dir());
    let mut names = Vec::new();
    for entry in std::fs::read_dir(lock.dir()).map_err(io)? {
        let entry = entry.map_err(io_error(lock.dir()))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
        let Some(stem) = name.strip_suffix(TEMP_SUFFIX) else { continue };
        // `state-index.tmp` too: it was left out, and one left by a crash stayed for good.
        let ours = [GENESIS_FILE, INDEX_FILE, STATE_FILE, STATE_LOG_FILE, STATE_INDEX_FILE].contains(&stem)
            || tessera_components::storage::parse_segment_file_name(stem).is_some();
        if ours {
            names.push(name);
        }
    }
    for name in names {
        let path = lock.path(&name);
        std::fs::remove_file(&path).map_err(io_error(&path))?;
    }
    Ok(())
}

/// A store is created in this order: segment 0, index and state, then `genesis` last, each
/// renamed into place. Without `genesis` there is no store, but an interrupted creation may have
/// left the others; they are overwritten only if they hold nothing committed.
fn create(lock: &DirLock, genesis: &[([u8; 32], u64)], ledger: &Ledger) -> Result<(), StoreError> {
    let refuse = |reason: &str| StoreError::Corrupt {
        file: lock.path(GENESIS_FILE),
        offset: 0,
        reason: format!("file is missing, but {reason}; refusing to create a store over it"),
    };
    let numbers = segment_numbers(lock)?;
    if numbers.iter().any(|n| *n != 0) {
        return Err(refuse("segment files beyond segment 0 exist"));
    }
    let longer_than_header = |name: &str| {
        std::fs::metadata(lock.path(name)).is_ok_and(|meta| meta.len() > FILE_HEADER_SIZE as u64)
    };
    if longer_than_header(&segment_file_name(0)) || longer_than_header(INDEX_FILE) {
        return Err(refuse("segment 0 or the index holds records"));
    }
    let id = genesis_id_of(genesis);
    write_atomic(lock, &segment_file_name(0), &encode_segment_header(0, id), true)?;
    write_atomic(lock, INDEX_FILE, &encode_index_header(id), true)?;
    write_state_whole(lock, id, 0, ledger.state_root(), ledger, true)?;
    write_atomic(lock, STATE_LOG_FILE, &encode_state_log_header(id), true)?;
    write_atomic_with(lock, GENESIS_FILE, true, |file| {
        let mut out = io::BufWriter::with_capacity(1 << 20, file);
        write_genesis_file(genesis, |bytes| out.write_all(bytes))?;
        out.flush()
    })
    .map(|_| ())
}

/// The state file for `ledger` at `height` (whose root, already computed, is `state_root`),
/// in as many records as its size needs.
pub(crate) fn encode_snapshot(genesis_id: Hash, height: u64, state_root: Hash, ledger: &Ledger) -> Vec<u8> {
    let view = StateView {
        height,
        state_root,
        keys: ledger.keys(),
        accounts: ledger.accounts(),
        burned: ledger.burned(),
        supply: ledger.supply(),
    };
    encode_state_file(genesis_id, view)
}

/// Checks that `block` with `certificate` may be committed on a store whose last committed
/// height is `committed` and whose tip hash is `tip`: the next height, extending the tip, a
/// header that describes its body, and the certificate for exactly this block. Returns the
/// block's hash.
///
/// # Errors
/// [`StoreError::OutOfOrder`], [`StoreError::ParentMismatch`], [`StoreError::InvalidBlock`] or
/// [`StoreError::CertificateMismatch`]; nothing is written.
pub(crate) fn check_next(
    committed: u64,
    tip: Hash,
    block: &Block,
    certificate: &QuorumCertificate,
) -> Result<Hash, StoreError> {
    let height = committed + 1;
    if block.header.height != height {
        return Err(StoreError::OutOfOrder { height: committed, got: block.header.height });
    }
    if block.header.parent != tip {
        return Err(StoreError::ParentMismatch { height, parent: block.header.parent, tip });
    }
    if block.header.txn_count as usize != block.txns.len() {
        // The reader refuses such a record, so storing it would make the directory refuse
        // to open.
        return Err(StoreError::InvalidBlock {
            height,
            reason: format!(
                "header says {} transactions, body has {}",
                block.header.txn_count,
                block.txns.len()
            ),
        });
    }
    let hash = block.header.hash();
    if certificate.height != height || certificate.block != hash {
        return Err(StoreError::CertificateMismatch {
            height,
            hash,
            certified_height: certificate.height,
            certified: certificate.block,
        });
    }
    Ok(hash)
}

/// Checks that `ledger`, to be written as the snapshot at `block`'s height, is the state the
/// block records.
///
/// # Errors
/// [`StoreError::StateRootMismatch`].
pub(crate) fn check_snapshot_root(block: &Block, ledger: &Ledger) -> Result<(), StoreError> {
    // Hashing the whole ledger costs O(accounts), so it is checked when it is written.
    let root = ledger.state_root();
    if root != block.header.state_root {
        return Err(StoreError::StateRootMismatch {
            height: block.header.height,
            block: block.header.state_root,
            ledger: root,
        });
    }
    Ok(())
}

impl Store {
    /// Creates DIR with this genesis if it has no store yet; otherwise recovers it (and checks
    /// the genesis matches). Returns the store, the ledger after the last committed block, and
    /// what recovery found.
    ///
    /// # Errors
    /// [`StoreError::Locked`] if another process has the directory; [`StoreError::Corrupt`] or
    /// [`StoreError::StateMismatch`] (naming file and byte offset) for damage other than a torn
    /// final write; [`StoreError::GenesisMismatch`] for another chain's directory;
    /// [`StoreError::Io`] for failed reads and writes; [`StoreError::Genesis`] or
    /// [`StoreError::Config`] for bad arguments. Nothing is written unless the whole directory
    /// checked sound (apart from removing unfinished temporary files).
    pub fn open(
        dir: &Path,
        genesis: &[([u8; 32], u64)],
        config: StoreConfig,
    ) -> Result<(Store, Ledger, Recovery), StoreError> {
        if config.state_interval_blocks == 0 {
            return Err(StoreError::Config("state_interval_blocks must be at least 1"));
        }
        if config.segment_size_max < (FILE_HEADER_SIZE + RECORD_HEADER_SIZE) as u64 {
            return Err(StoreError::Config("segment_size_max must hold a file header and a record header"));
        }
        // A genesis that cannot build a ledger is refused before anything is created; an
        // existing store's genesis is compared with the stored one instead (building a ledger
        // of every genesis account twice would double a large state's start).
        let mut genesis_ledger =
            if dir.join(GENESIS_FILE).exists() { None } else { Some(Ledger::from_genesis(genesis)?) };
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock = DirLock::new(dir, LockMode::Exclusive)?;
        remove_temporaries(&lock)?;
        let created = !lock.path(GENESIS_FILE).exists();
        if created {
            let ledger = match genesis_ledger.take() {
                Some(ledger) => ledger,
                None => Ledger::from_genesis(genesis)?,
            };
            create(&lock, genesis, &ledger)?;
        }
        drop(genesis_ledger);

        // The read-only pass: every map it makes is gone when it returns.
        let verified = verify(&lock)?;
        if verified.genesis != genesis {
            return Err(StoreError::GenesisMismatch { file: lock.path(GENESIS_FILE) });
        }

        // The rebuild reads only what was checked, so it runs before anything is written: a
        // snapshot or delta whose root the chain contradicts leaves the directory as it was.
        // Its maps go with it, so that no map outlives the truncation below (the order a
        // `state-index` map gave is copied out before its map is dropped).
        let Rebuilt { ledger, tip_hash, replayed, deltas, state_height, touched, address_index, log_applied } =
            rebuild(&lock, &verified, &mut SegmentReader::default(), Replay::FromSnapshot)?;

        // Only now, with the whole directory checked and no map alive, drop the torn tails.
        let mut torn = Vec::new();
        let tails = [verified.check.index_tail, verified.check.segment_tail, verified.state_log.tail];
        for tail in tails.into_iter().flatten() {
            let path = lock.path(&tail.file.file_name());
            let file = OpenOptions::new().write(true).open(&path).map_err(io_error(&path))?;
            file.set_len(tail.offset).map_err(io_error(&path))?;
            file.sync_all().map_err(io_error(&path))?;
            torn.push(TornTail { file: path, offset: tail.offset, size: tail.size });
        }
        // A directory from before the state log gets an empty one, and so does one whose log
        // holds deltas that were not applied (made over another snapshot): new deltas must
        // follow applied ones only, by rising height.
        let log_path = lock.path(STATE_LOG_FILE);
        let stale = verified.state_log.deltas.len() as u64 != deltas;
        if stale || !log_path.exists() {
            write_atomic(&lock, STATE_LOG_FILE, &encode_state_log_header(verified.genesis_id), config.sync)?;
        }
        let state_log = OpenOptions::new().write(true).open(&log_path).map_err(io_error(&log_path))?;
        let log_len = state_log.metadata().map_err(io_error(&log_path))?.len();
        let state_path = lock.path(STATE_FILE);
        let base_len = std::fs::metadata(&state_path).map_err(io_error(&state_path))?.len();
        let schedule = schedule::StateSchedule::new(verified.state.height, base_len, log_len, touched);
        let entries = verified.check.entries;
        let height = entries.len() as u64;
        let segment_number = verified.segment_count - 1;
        let segment_path = lock.path(&segment_file_name(segment_number));
        let segment = OpenOptions::new().write(true).open(&segment_path).map_err(io_error(&segment_path))?;
        let segment_len = segment.metadata().map_err(io_error(&segment_path))?.len();
        let index_path = lock.path(INDEX_FILE);
        let index = OpenOptions::new().write(true).open(&index_path).map_err(io_error(&index_path))?;
        let index_len = index.metadata().map_err(io_error(&index_path))?.len();
        // Pair check: the files end exactly where the checked contents do. Only a writer that
        // ignores the lock could make this fail, so it is an error, not an assertion.
        let index_end = (FILE_HEADER_SIZE + entries.len() * INDEX_ENTRY_SIZE) as u64;
        let segment_end = entries
            .last()
            .filter(|last| last.segment == segment_number)
            .map_or(FILE_HEADER_SIZE as u64, |last| last.offset + u64::from(last.record_size));
        for (path, len, end) in
            [(&index_path, index_len, index_end), (&segment_path, segment_len, segment_end)]
        {
            if len != end {
                return Err(StoreError::Corrupt {
                    file: path.clone(),
                    offset: end.min(len),
                    reason: format!(
                        "file is {len} bytes after recovery, expected {end}: changed while locked"
                    ),
                });
            }
        }

        let (safety, safety_state) = safety::SafetyFile::open(&lock, config.sync)?;
        let state_root = ledger.state_root();
        let recovery = Recovery {
            height,
            blocks: height,
            torn_bytes_dropped: torn.iter().map(|t| t.size).sum(),
            state_root,
            torn,
            state_height,
            deltas,
            replayed,
            address_index,
            log_applied,
            created,
            safety: safety_state.state,
            safety_damaged: safety_state.damaged,
            safety_uncertain: safety_state.uncertain,
        };
        let store = Store {
            config,
            genesis_id: verified.genesis_id,
            entries,
            segment,
            segment_number,
            segment_len,
            index,
            index_len,
            state_log,
            schedule,
            tip_hash,
            tip_state_root: state_root,
            state_height,
            poisoned: None,
            reader: Mutex::new(SegmentReader::default()),
            safety,
            lock,
        };
        Ok((store, ledger, recovery))
    }

    /// Appends a finalized block with its commit certificate; durable when this returns Ok.
    /// `ledger` is the state after the block.
    ///
    /// The block must be the next height, extend the stored tip, and be the block the
    /// certificate certifies. Its record is written and synced, then its index entry; every
    /// [`StoreConfig::state_interval_blocks`] heights the state snapshot is rewritten (and
    /// `ledger`'s root checked against the block's).
    ///
    /// # Errors
    /// A block or certificate that does not fit (nothing is written), or a failed write, after
    /// which the store refuses further commits ([`StoreError::Poisoned`]) until reopened.
    pub fn commit(
        &mut self,
        block: &Block,
        certificate: &QuorumCertificate,
        ledger: &Ledger,
    ) -> Result<(), StoreError> {
        self.commit_with(block, certificate, Some(ledger))
    }

    /// Commits the blocks one tick finalized, in order. `ledger` is the state after the last
    /// of them, so only that one may carry a snapshot. Returns how many were committed, and
    /// the error that stopped it, as [`Store::commit`] gives it (later blocks are not tried).
    pub fn commit_finalized(
        &mut self,
        blocks: &[CertifiedBlock],
        ledger: &Ledger,
    ) -> (usize, Result<(), StoreError>) {
        port::commit_in_order(blocks, ledger, |block, certificate, snapshot| {
            self.commit_with(block, certificate, snapshot)
        })
    }

    fn commit_with(
        &mut self,
        block: &Block,
        certificate: &QuorumCertificate,
        ledger: Option<&Ledger>,
    ) -> Result<(), StoreError> {
        if let Some(reason) = &self.poisoned {
            return Err(StoreError::Poisoned(reason.clone()));
        }
        let hash = check_next(self.height(), self.tip_hash, block, certificate)?;
        let height = block.header.height;
        let snapshot_due = schedule::state_due(height, self.state_height, self.config.state_interval_blocks);
        let ledger = ledger.filter(|_| snapshot_due);
        if let Some(ledger) = ledger {
            check_snapshot_root(block, ledger)?;
        }
        let place = Place { kind: RecordKind::Block, segment: self.segment_number, offset: self.segment_len };
        let (_, record) = encode_block_record(place, block, certificate)
            .map_err(|size| StoreError::TooLarge { what: format!("block {height}"), size })?;
        let snapshot = ledger.map(|ledger| (block.header.state_root, ledger));
        self.schedule.note(block);
        match self.append(height, record, snapshot) {
            Ok(()) => {
                self.tip_hash = hash;
                self.tip_state_root = block.header.state_root;
                Ok(())
            }
            Err(error) => {
                self.poisoned = Some(error.to_string());
                Err(error)
            }
        }
    }

    /// The writes of one commit, in their durable order. `record` was encoded for the current
    /// end of the current segment.
    fn append(
        &mut self,
        height: u64,
        mut record: Vec<u8>,
        snapshot: Option<(Hash, &Ledger)>,
    ) -> Result<(), StoreError> {
        let record_size = record.len() as u64;
        if self.segment_len > FILE_HEADER_SIZE as u64
            && self.segment_len + record_size > self.config.segment_size_max
        {
            self.roll_over()?;
            // The record moves to the start of the new segment: reseal its header there.
            let place =
                Place { kind: RecordKind::Block, segment: self.segment_number, offset: self.segment_len };
            let header = seal_record_header(place, height, &record[RECORD_HEADER_SIZE..]);
            record[..RECORD_HEADER_SIZE].copy_from_slice(&header.to_bytes());
        }
        let place = Place { kind: RecordKind::Block, segment: self.segment_number, offset: self.segment_len };
        // Pair check: the bytes about to be written are a record for exactly this place.
        let header = check_record_header(&record, place).expect("a record just sealed for this place checks");
        let segment_path = self.lock.path(&segment_file_name(self.segment_number));
        self.segment.write_all_at(&record, self.segment_len).map_err(io_error(&segment_path))?;
        if self.config.sync {
            self.segment.sync_data().map_err(io_error(&segment_path))?;
        }
        self.segment_len += record_size;

        // The record is durable; the entry makes it committed.
        let entry = IndexEntry::new(&header);
        let index_path = self.lock.path(INDEX_FILE);
        self.index.write_all_at(&entry.to_bytes(), self.index_len).map_err(io_error(&index_path))?;
        if self.config.sync {
            self.index.sync_data().map_err(io_error(&index_path))?;
        }
        self.index_len += INDEX_ENTRY_SIZE as u64;
        self.entries.push(entry);

        if let Some((state_root, ledger)) = snapshot {
            self.write_snapshot(height, state_root, ledger)?;
        }
        Ok(())
    }

    /// Starts the next segment: its header is written to a temporary file and renamed into
    /// place, so a segment file always has a whole header.
    fn roll_over(&mut self) -> Result<(), StoreError> {
        let number =
            self.segment_number.checked_add(1).ok_or(StoreError::Config("segment numbers exhausted"))?;
        let name = segment_file_name(number);
        write_atomic(&self.lock, &name, &encode_segment_header(number, self.genesis_id), self.config.sync)?;
        let path = self.lock.path(&name);
        self.segment = OpenOptions::new().write(true).open(&path).map_err(io_error(&path))?;
        self.segment_number = number;
        self.segment_len = FILE_HEADER_SIZE as u64;
        Ok(())
    }

    /// Writes the state at `height` (`ledger`, whose root, already computed, is `state_root`):
    /// a delta appended to the state log and synced, or the state file rewritten whole and the
    /// log emptied, as the schedule decides.
    fn write_snapshot(&mut self, height: u64, state_root: Hash, ledger: &Ledger) -> Result<(), StoreError> {
        match self.schedule.plan(height, state_root, ledger) {
            schedule::StateWrite::Delta(record) => {
                let path = self.lock.path(STATE_LOG_FILE);
                self.state_log.write_all_at(&record, self.schedule.log_len()).map_err(io_error(&path))?;
                if self.config.sync {
                    self.state_log.sync_data().map_err(io_error(&path))?;
                }
                self.schedule.wrote_delta(record.len() as u64);
            }
            schedule::StateWrite::Whole => {
                let sync = self.config.sync;
                let base_len =
                    write_state_whole(&self.lock, self.genesis_id, height, state_root, ledger, sync)?;
                // The new snapshot is durable, so the deltas before it are not needed; until the
                // log is replaced, a restart skips them as older than the snapshot.
                write_atomic(&self.lock, STATE_LOG_FILE, &encode_state_log_header(self.genesis_id), sync)?;
                let path = self.lock.path(STATE_LOG_FILE);
                self.state_log = OpenOptions::new().write(true).open(&path).map_err(io_error(&path))?;
                self.schedule.wrote_whole(height, base_len);
            }
        }
        self.state_height = height;
        Ok(())
    }

    /// Rewrites the state snapshot now (say, at shutdown, so the next start replays nothing).
    /// `ledger` must be the state after the last committed block.
    ///
    /// # Errors
    /// A ledger with another state root, or a failed write (which poisons the store).
    pub fn write_state(&mut self, ledger: &Ledger) -> Result<(), StoreError> {
        if let Some(reason) = &self.poisoned {
            return Err(StoreError::Poisoned(reason.clone()));
        }
        let root = ledger.state_root();
        if root != self.tip_state_root {
            return Err(StoreError::StateRootMismatch {
                height: self.height(),
                block: self.tip_state_root,
                ledger: root,
            });
        }
        let height = self.height();
        if height == self.state_height {
            // Already stored at this height (a second clean stop, or a stop right after a
            // snapshot point).
            return Ok(());
        }
        self.write_snapshot(height, root, ledger).inspect_err(|error| self.poisoned = Some(error.to_string()))
    }

    /// Persists the consensus safety state: durable when this returns `Ok` (see
    /// [`safety`]). Nothing the state covers may be sent before.
    ///
    /// # Errors
    /// A failed write or sync.
    pub fn save_safety(&mut self, state: &tessera_components::SafetyState) -> Result<(), StoreError> {
        self.safety.save(state)
    }

    /// The last committed height (0: only genesis).
    pub fn height(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Height of the last state written: the snapshot's, or the last state delta's.
    pub fn state_height(&self) -> u64 {
        self.state_height
    }

    /// Hash of the last committed block's header ([`Hash::ZERO`] at genesis).
    pub fn tip_hash(&self) -> Hash {
        self.tip_hash
    }

    /// The id of the genesis the directory was made from (BLAKE3 of its balances, the id every
    /// file header carries).
    pub fn genesis_id(&self) -> Hash {
        self.genesis_id
    }

    /// The committed block at `height` with its certificate, read back and checked (`None` for
    /// height 0 or above the tip).
    ///
    /// # Errors
    /// A record that fails its checks now (the disk changed under the store), named by file and
    /// offset, or a failed map.
    pub fn block(&self, height: u64) -> Result<Option<(Block, QuorumCertificate)>, StoreError> {
        let Some(entry) = height.checked_sub(1).and_then(|i| self.entries.get(i as usize)) else {
            return Ok(None);
        };
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        reader.read(&self.lock, entry).map(Some)
    }
}

#[cfg(test)]
mod tests;
