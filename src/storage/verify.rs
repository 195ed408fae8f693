//! The read-only half of recovery, shared by [`Store::open`](super::Store::open) and
//! `tessera inspect`: map every file, check every checksum, and rebuild the ledger by replaying
//! blocks. Nothing here writes.

use std::path::{Path, PathBuf};

use memmap2::Mmap;
use tessera_components::storage::{
    DirCheck, FILE_HEADER_SIZE, FileRef, IndexEntry, Place, Problem, RecordKind, STATE_INDEX_WORDS_OFFSET,
    StateDelta, StateLog, StateSnapshot, check_directory, check_record, check_state_index_words,
    decode_block_payload, decode_genesis_file, decode_state_file, decode_state_index_head, decode_state_log,
    parse_segment_file_name, segment_file_name,
};
use tessera_components::{Block, Hash, QuorumCertificate, TxnId};
use tessera_systems::execute::execute_block;
use tessera_systems::ledger::index::{self, Base, CheckedOrder};
use tessera_systems::{Ledger, LedgerParts};

use super::map::DirLock;
use super::{GENESIS_FILE, INDEX_FILE, STATE_FILE, STATE_INDEX_FILE, STATE_LOG_FILE, StoreError};

/// What the read-only pass found in a sound directory.
#[derive(Debug)]
pub struct Verified {
    /// The stored genesis balances.
    pub genesis: Vec<([u8; 32], u64)>,
    /// Their id, stamped into every file header.
    pub genesis_id: Hash,
    /// Committed entries and torn tails.
    pub check: DirCheck,
    /// Segment files (numbered `0..segment_count`).
    pub segment_count: u32,
    /// Bytes in all segment files.
    pub segment_bytes: u64,
    /// The stored account-state snapshot.
    pub state: StateSnapshot,
    /// The state deltas written since it (older ones included; a rebuild skips them), and a
    /// torn tail of the log to drop.
    pub state_log: StateLog,
}

/// The corruption error for a problem found by the format checks.
pub fn corrupt(lock: &DirLock, problem: Problem) -> StoreError {
    corrupt_at(lock.path(&problem.file.file_name()), problem)
}

/// The corruption error for a problem in `file`, the path errors give the problem's file.
pub fn corrupt_at(file: PathBuf, problem: Problem) -> StoreError {
    StoreError::Corrupt { file, offset: problem.offset, reason: problem.reason }
}

/// Refuses a state snapshot beyond the last committed block; `file` names the state file.
///
/// # Errors
/// [`StoreError::Corrupt`] at the end of the state file's header.
pub fn check_state_height(file: PathBuf, state: &StateSnapshot, check: &DirCheck) -> Result<(), StoreError> {
    if state.height > check.height() {
        return Err(StoreError::Corrupt {
            file,
            offset: FILE_HEADER_SIZE as u64,
            reason: format!(
                "state snapshot is at height {}, beyond the last committed block {}",
                state.height,
                check.height()
            ),
        });
    }
    Ok(())
}

fn map_required(lock: &DirLock, name: &str, sequential: bool) -> Result<Mmap, StoreError> {
    lock.map(name, sequential).map_err(|source| missing_or_io(lock, name, source))
}

/// A directory's file that could not be opened: a missing one is damage to the directory.
fn missing_or_io(lock: &DirLock, name: &str, source: std::io::Error) -> StoreError {
    if source.kind() == std::io::ErrorKind::NotFound {
        StoreError::Corrupt { file: lock.path(name), offset: 0, reason: "file is missing".to_string() }
    } else {
        StoreError::Io { file: lock.path(name), source }
    }
}

/// Segment numbers present in the directory, ascending.
///
/// # Errors
/// The directory cannot be listed.
pub fn segment_numbers(lock: &DirLock) -> Result<Vec<u32>, StoreError> {
    let io = |source| StoreError::Io { file: lock.dir().to_path_buf(), source };
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(lock.dir()).map_err(io)? {
        let entry = entry.map_err(io)?;
        if let Some(number) = entry.file_name().to_str().and_then(parse_segment_file_name) {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Checks every file of the directory: genesis, every segment (every record's checksums), the
/// index, and the state snapshot. Reports torn tails without touching them. Every map it makes
/// is dropped before it returns.
///
/// # Errors
/// [`StoreError::NoStore`] without a genesis file; otherwise the first problem, with its file and
/// byte offset.
pub fn verify(lock: &DirLock) -> Result<Verified, StoreError> {
    if !lock.path(GENESIS_FILE).exists() {
        return Err(StoreError::NoStore { dir: lock.dir().to_path_buf() });
    }
    let (genesis_id, genesis) = {
        let map = map_required(lock, GENESIS_FILE, false)?;
        decode_genesis_file(&map).map_err(|problem| corrupt(lock, problem))?
    };
    let numbers = segment_numbers(lock)?;
    for (expected, number) in numbers.iter().enumerate() {
        if *number != expected as u32 {
            return Err(StoreError::Corrupt {
                file: lock.path(&segment_file_name(expected as u32)),
                offset: 0,
                reason: format!("file is missing, but {} exists", segment_file_name(*number)),
            });
        }
    }
    let index = map_required(lock, INDEX_FILE, true)?;
    let segments: Vec<Mmap> = match numbers.len() {
        0 => {
            return Err(corrupt(
                lock,
                Problem { file: FileRef::Segment(0), offset: 0, reason: "file is missing".to_string() },
            ));
        }
        _ => numbers
            .iter()
            .map(|number| map_required(lock, &segment_file_name(*number), true))
            .collect::<Result<_, _>>()?,
    };
    let slices: Vec<&[u8]> = segments.iter().map(|map| &map[..]).collect();
    let check = check_directory(genesis_id, &index, &slices).map_err(|problem| corrupt(lock, problem))?;
    let segment_bytes = slices.iter().map(|s| s.len() as u64).sum();
    drop(slices);
    drop(segments);
    drop(index);

    let state = {
        let map = map_required(lock, STATE_FILE, false)?;
        decode_state_file(&map, genesis_id).map_err(|problem| corrupt(lock, problem))?
    };
    check_state_height(lock.path(STATE_FILE), &state, &check)?;
    // A directory from before the log existed has none: that is an empty log.
    let state_log = match lock.map(STATE_LOG_FILE, true) {
        Ok(map) => {
            decode_state_log(&map, genesis_id, check.height()).map_err(|problem| corrupt(lock, problem))?
        }
        Err(source) if source.kind() == std::io::ErrorKind::NotFound => StateLog::default(),
        Err(source) => return Err(StoreError::Io { file: lock.path(STATE_LOG_FILE), source }),
    };
    Ok(Verified {
        genesis,
        genesis_id,
        check,
        segment_count: numbers.len() as u32,
        segment_bytes,
        state,
        state_log,
    })
}

/// Reads committed blocks with `pread`, into a buffer of the record's size, through the
/// descriptors of the [`SEGMENTS_OPEN_MAX`] segments read last.
///
/// Not through maps, as it did until 2026-12-07: a running node serves blocks for as long as it
/// lives (sync answers, RPC), and a mapped page that cannot be read (a segment cut short by
/// another process, or a disk's read error) raises `SIGBUS`, which killed the node. A read
/// returns the error instead, and the request that asked for the block fails alone.
#[derive(Debug, Default)]
pub struct SegmentReader {
    /// (segment number, its descriptor), the one read last at the end.
    files: Vec<(u32, std::fs::File)>,
    /// The last record read: kept, so a read allocates only past the largest before it.
    buffer: Vec<u8>,
}

/// Segment descriptors a [`SegmentReader`] keeps open. One per segment would grow with the
/// chain: a sync from height 1 (or one RPC read per segment) held a descriptor for each, and
/// 4,000 segments took the descriptors the node's sockets need.
pub const SEGMENTS_OPEN_MAX: usize = 32;

impl SegmentReader {
    /// Segment descriptors held open now.
    pub fn files_open(&self) -> usize {
        self.files.len()
    }

    /// Reads and checks the record `entry` names, and decodes its block and certificate.
    ///
    /// # Errors
    /// A record or payload that fails its checks, named by file and offset.
    pub fn read(
        &mut self,
        lock: &DirLock,
        entry: &IndexEntry,
    ) -> Result<(Block, QuorumCertificate), StoreError> {
        use std::os::unix::fs::FileExt;
        let name = segment_file_name(entry.segment);
        let path = lock.path(&name);
        if let Some(at) = self.files.iter().position(|(number, _)| *number == entry.segment) {
            let used = self.files.remove(at);
            self.files.push(used);
        } else {
            let (file, _) =
                crate::open_regular(&path).map_err(|source| missing_or_io(lock, &name, source))?;
            if self.files.len() >= SEGMENTS_OPEN_MAX {
                self.files.remove(0);
            }
            self.files.push((entry.segment, file));
        }
        let (_, file) = self.files.last().expect("pushed or moved last just above");
        // The index entry names the record's size (at most a record's limit, 256 MiB, checked
        // when the store opened): exactly what is read, into the buffer of the reads before.
        let record = &mut self.buffer;
        record.resize(entry.record_size as usize, 0);
        file.read_exact_at(record, entry.offset).map_err(|source| match source.kind() {
            std::io::ErrorKind::UnexpectedEof => StoreError::Corrupt {
                file: path.clone(),
                offset: entry.offset,
                reason: format!("the file ends before the {}-byte record the index names", entry.record_size),
            },
            _ => StoreError::Io { file: path.clone(), source },
        })?;
        read_entry(record, entry, &path)
    }
}

/// Reads and checks the committed record `entry` names, from `record`: the segment's bytes from
/// the entry's offset on (they may run past the record). Decodes its block and certificate.
/// Errors name `file`.
///
/// # Errors
/// A record or payload that fails its checks, or is not the record the entry names.
pub fn read_entry(
    record: &[u8],
    entry: &IndexEntry,
    file: &Path,
) -> Result<(Block, QuorumCertificate), StoreError> {
    let at_error =
        |reason: String| StoreError::Corrupt { file: file.to_path_buf(), offset: entry.offset, reason };
    let place = Place { kind: RecordKind::Block, segment: entry.segment, offset: entry.offset };
    let record = check_record(record, place).map_err(|error| at_error(error.to_string()))?;
    if record.header.height != entry.height || record.header.header_checksum != entry.record_checksum {
        return Err(at_error(format!("record is not the one the index names for height {}", entry.height)));
    }
    decode_block_payload(record.payload, entry.height).map_err(|error| at_error(error.to_string()))
}

/// Where a rebuild reads committed blocks, and how its errors name files: the data directory's
/// maps for [`rebuild`], byte buffers for the simulator's disk.
pub trait BlockSource {
    /// The path errors give the file `name`.
    fn path(&self, name: &str) -> PathBuf;
    /// Reads and checks the committed record `entry` names.
    ///
    /// # Errors
    /// As [`read_entry`], or a failed read.
    fn read(&mut self, entry: &IndexEntry) -> Result<(Block, QuorumCertificate), StoreError>;

    /// The snapshot's address order, kept beside it (the `state-index` file): checked to name
    /// this snapshot and to hold each of its slots once; or why there is none to use. A source
    /// that keeps none says so.
    fn address_order(&mut self, genesis_id: Hash, snapshot: &StateSnapshot) -> Result<CheckedOrder, String> {
        let _ = (genesis_id, snapshot);
        Err("this source keeps no address index".to_string())
    }
}

/// Maps the directory's `state-index` file and copies its order out, if it checks and names
/// `snapshot`.
fn map_address_order(
    lock: &DirLock,
    genesis_id: Hash,
    snapshot: &StateSnapshot,
) -> Result<CheckedOrder, String> {
    let map = lock.map(STATE_INDEX_FILE, true).map_err(|error| format!("{STATE_INDEX_FILE}: {error}"))?;
    let meta =
        decode_state_index_head(&map, genesis_id).map_err(|error| format!("{STATE_INDEX_FILE}: {error}"))?;
    let names = (meta.height, meta.state_root, meta.count);
    if names != (snapshot.height, snapshot.state_root, snapshot.keys.len() as u64) {
        return Err(format!(
            "{STATE_INDEX_FILE} indexes {} accounts at height {}, the snapshot holds {} at height {}",
            meta.count,
            meta.height,
            snapshot.keys.len(),
            snapshot.height
        ));
    }
    // Only now the pass over the words, whose length the head's count gave: checked first, a
    // head naming 2^40 accounts over a sparse file cost a checksum of 4 TiB at every start
    // (found in review).
    check_state_index_words(&map).map_err(|error| format!("{STATE_INDEX_FILE}: {error}"))?;
    if cfg!(target_endian = "big") {
        // The words are stored little-endian and served in place.
        return Err(format!("{STATE_INDEX_FILE}: not served in place on a big-endian machine"));
    }
    let Ok(words) = bytemuck::try_cast_slice::<u8, u32>(&map[STATE_INDEX_WORDS_OFFSET..]) else {
        return Err(format!("{STATE_INDEX_FILE}: words not aligned in the map"));
    };
    // Copied out of the map (4 bytes an account, beside a table of 8 to 16 built from it), so
    // no later write to the file by anyone else can change an order already checked.
    index::check_order(words.to_vec(), snapshot.keys.len())
        .map_err(|error| format!("{STATE_INDEX_FILE}: {error}"))
}

/// The directory's segments, read through `reader`'s maps.
struct Mapped<'a> {
    lock: &'a DirLock,
    reader: &'a mut SegmentReader,
}

impl BlockSource for Mapped<'_> {
    fn path(&self, name: &str) -> PathBuf {
        self.lock.path(name)
    }

    fn read(&mut self, entry: &IndexEntry) -> Result<(Block, QuorumCertificate), StoreError> {
        self.reader.read(self.lock, entry)
    }

    fn address_order(&mut self, genesis_id: Hash, snapshot: &StateSnapshot) -> Result<CheckedOrder, String> {
        map_address_order(self.lock, genesis_id, snapshot)
    }
}

/// Where a ledger rebuild starts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Replay {
    /// From the state snapshot, replaying only the blocks after it (what a restart does).
    FromSnapshot,
    /// From genesis, replaying every block and comparing the snapshot on the way
    /// (`tessera inspect --replay`).
    FromGenesis,
}

/// A ledger rebuilt from the directory.
#[derive(Debug)]
pub struct Rebuilt {
    /// State after the last committed block.
    pub ledger: Ledger,
    /// Hash of the last committed block's header ([`Hash::ZERO`] at genesis).
    pub tip_hash: Hash,
    /// Blocks re-executed.
    pub replayed: u64,
    /// State-log deltas applied.
    pub deltas: u64,
    /// Height of the last stored state the rebuild started from: the snapshot's or the last
    /// delta's.
    pub state_height: u64,
    /// Senders and recipients of the blocks replayed after it: what the next state delta must
    /// cover.
    pub touched: Vec<[u8; 32]>,
    /// How the snapshot's address index was had: mapped from the store, or built (and why).
    pub address_index: AddressIndexSource,
    /// How the state log's deltas over the snapshot were applied.
    pub log_applied: LogApplied,
}

/// How a rebuild applied the state log's deltas over the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogApplied {
    /// There were none.
    Empty,
    /// All at once, the state built once ([`fold_log`]), and its root the chain's.
    AtOnce,
    /// A delta at a time, each through the tree and checked, for this reason.
    OneAtATime(String),
}

impl std::fmt::Display for LogApplied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogApplied::Empty => write!(f, "no deltas"),
            LogApplied::AtOnce => write!(f, "at once"),
            LogApplied::OneAtATime(why) => write!(f, "one delta at a time ({why})"),
        }
    }
}

/// How a rebuild had the snapshot's address index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressIndexSource {
    /// The order mapped from the `state-index` file (no address was sorted), the table built.
    Mapped,
    /// Built from the snapshot's addresses, for this reason.
    Built(String),
}

impl std::fmt::Display for AddressIndexSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddressIndexSource::Mapped => write!(f, "mapped from {STATE_INDEX_FILE}"),
            AddressIndexSource::Built(why) => write!(f, "built from the snapshot ({why})"),
        }
    }
}

fn location(source: &impl BlockSource, entry: &IndexEntry) -> (PathBuf, u64) {
    (source.path(&segment_file_name(entry.segment)), entry.offset)
}

/// Rebuilds the ledger at the last committed height: from the snapshot (checked against the
/// block it claims to follow) or from genesis, replaying blocks in order and checking each one's
/// parent link and recorded state root.
///
/// # Errors
/// A snapshot that does not match its block, a broken parent link, or a block whose replay gives
/// another state root; each named by file and offset.
pub fn rebuild(
    lock: &DirLock,
    verified: &Verified,
    reader: &mut SegmentReader,
    replay: Replay,
) -> Result<Rebuilt, StoreError> {
    rebuild_from(&mut Mapped { lock, reader }, verified, replay)
}

/// [`rebuild`] over any [`BlockSource`].
///
/// # Errors
/// As [`rebuild`].
pub fn rebuild_from(
    source: &mut impl BlockSource,
    verified: &Verified,
    replay: Replay,
) -> Result<Rebuilt, StoreError> {
    let entries = &verified.check.entries;
    let snapshot = &verified.state;
    let state_file = source.path(STATE_FILE);
    let state_error = |reason: String| StoreError::Corrupt {
        file: state_file.clone(),
        offset: FILE_HEADER_SIZE as u64,
        reason,
    };
    let genesis_supply: u128 = verified.genesis.iter().map(|(_, balance)| u128::from(*balance)).sum();
    if snapshot.supply != genesis_supply {
        return Err(state_error("snapshot's supply is not the genesis supply".to_string()));
    }
    let parts = || LedgerParts {
        keys: snapshot.keys.clone(),
        accounts: snapshot.accounts.clone(),
        burned: snapshot.burned,
        supply: snapshot.supply,
    };
    // The stored index is derived data: used when it checks and gives a root the chain
    // records, else the index is built from the addresses as if there were no file.
    let stored_order = source.address_order(verified.genesis_id, snapshot);
    let snapshot_block = match snapshot.height {
        0 => None,
        height => Some(source.read(&entries[height as usize - 1])?.0),
    };
    match &snapshot_block {
        Some(block) if block.header.state_root != snapshot.state_root => {
            return Err(state_error(format!(
                "snapshot at height {} has state root {}, the chain records {}",
                snapshot.height, snapshot.state_root, block.header.state_root
            )));
        }
        Some(_) => {}
        // At height 0 the snapshot is the genesis itself: its columns are compared, which is
        // the same as comparing roots without building a second ledger of every account.
        None => {
            let is_genesis = snapshot.burned == 0
                && snapshot.keys.len() == verified.genesis.len()
                && snapshot.keys.iter().zip(&snapshot.accounts).zip(&verified.genesis).all(
                    |((key, account), (genesis_key, balance))| {
                        key == genesis_key && account.balance == *balance && account.nonce == 0
                    },
                );
            if !is_genesis {
                return Err(state_error("snapshot at height 0 is not the genesis state".to_string()));
            }
        }
    }

    // The deltas made over this snapshot, in order. Deltas made over another snapshot (left
    // in the log by a crash while the snapshot was replaced) are skipped: the blocks after the
    // snapshot are replayed instead.
    let log_file = source.path(STATE_LOG_FILE);
    let log = &verified.state_log;
    let over_snapshot =
        |delta: &StateDelta| delta.base_height == snapshot.height && delta.height > snapshot.height;
    // The log holds the deltas over one snapshot, or only deltas over an older one (a crash
    // between replacing the snapshot and emptying the log). A mix is no state this store
    // writes, and emptying such a log would drop deltas that were applied: refuse it.
    if let Some(first) = log.deltas.iter().position(over_snapshot)
        && let Some(other) = log.deltas.iter().position(|delta| !over_snapshot(delta))
    {
        let (delta, offset) = (&log.deltas[other], log.offsets[other]);
        return Err(StoreError::Corrupt {
            file: log_file,
            offset,
            reason: format!(
                "state delta for height {} over the state at height {}, in a log whose delta for \
                 height {} is over the snapshot at height {}",
                delta.height, delta.base_height, log.deltas[first].height, snapshot.height
            ),
        });
    }
    let over: Vec<(&StateDelta, u64)> = log
        .deltas
        .iter()
        .zip(&log.offsets)
        .filter(|(delta, _)| over_snapshot(delta))
        .map(|(d, o)| (d, *o))
        .collect();

    // A restart applies the whole log at once, checked against the root the chain records
    // for the last delta's height (`fold_log`). Should that not give it, the deltas are
    // applied again one at a time, each checked, so that the error names the one at fault.
    let folded = match (replay, over.last()) {
        (_, None) => Err(LogApplied::Empty),
        (Replay::FromGenesis, Some(_)) => {
            Err(LogApplied::OneAtATime("a replay from genesis checks each".into()))
        }
        (Replay::FromSnapshot, Some((last, _))) => {
            // Each delta's recorded root against the chain's (a block read per delta, cheap
            // beside the rows), keeping the last block's hash; the roots between are not
            // computed, only the last, which is then the chain's too.
            let mut tip = Err(String::new());
            for (delta, _) in &over {
                let header = source.read(&entries[delta.height as usize - 1])?.0.header;
                if header.state_root != delta.state_root {
                    tip = Err(format!(
                        "the delta for height {} records a root the chain does not",
                        delta.height
                    ));
                    break;
                }
                tip = Ok(header.hash());
            }
            let at_once = |order: Option<&CheckedOrder>| -> Result<Ledger, String> {
                tip.clone()?;
                let ledger = fold_log(parts(), order, over.iter().map(|(delta, _)| *delta))?;
                match ledger.state_root() {
                    root if root == last.state_root => Ok(ledger),
                    root => Err(format!(
                        "at once they give state root {root}; the last delta and its block record {}",
                        last.state_root
                    )),
                }
            };
            // With the stored order first; if that fails, by sorting every address, as if there
            // were no file: a stored order is derived data, and one that checks but is
            // misordered must not cost the one-at-a-time path (~10 µs an account created).
            let tried = match &stored_order {
                Ok(order) => at_once(Some(order)).map(|ledger| (ledger, AddressIndexSource::Mapped)),
                Err(why) => Err(why.clone()),
            };
            tried
                .or_else(|why| {
                    let built = match &stored_order {
                        Ok(_) => format!(
                            "{STATE_INDEX_FILE} gives another state root than the chain records: {why}"
                        ),
                        Err(_) => why,
                    };
                    at_once(None).map(|ledger| (ledger, AddressIndexSource::Built(built)))
                })
                .and_then(|(ledger, source)| Ok((ledger, last.height, tip.clone()?, source)))
                .map_err(|why| LogApplied::OneAtATime(format!("at once: {why}")))
        }
    };
    let (delta_ledger, state_height, deltas, address_index, state_tip, log_applied) = match folded {
        Ok((ledger, height, tip, address_index)) => {
            drop(stored_order);
            (ledger, height, over.len() as u64, address_index, tip, LogApplied::AtOnce)
        }
        Err(log_applied) => {
            // The root that checks a stored order must be one the chain confirms: at height 0
            // no block records the snapshot's root (its columns are compared with the genesis
            // instead, which says nothing of the order), so there the index is built. (With
            // deltas over it, the log at once was checked against the root of a block.)
            let stored_order = match snapshot.height {
                0 => Err("the snapshot is the genesis state, whose root no block records".to_string()),
                _ => stored_order,
            };
            let (snapshot_ledger, address_index) =
                snapshot_ledger(snapshot, parts, stored_order, &state_error)?;
            let mut state_tip = snapshot_block.as_ref().map_or(Hash::ZERO, |b| b.header.hash());
            let mut state_height = snapshot.height;
            let mut ledger = snapshot_ledger;
            for (delta, offset) in &over {
                let log_error = |reason: String| StoreError::Corrupt {
                    file: log_file.clone(),
                    offset: *offset,
                    reason: format!("state delta for height {}: {reason}", delta.height),
                };
                let root = ledger.apply_stored(delta).map_err(log_error)?;
                if root != delta.state_root {
                    return Err(log_error(format!(
                        "its rows give state root {root}, it records {}",
                        delta.state_root
                    )));
                }
                let block = source.read(&entries[delta.height as usize - 1])?.0;
                if block.header.state_root != root {
                    return Err(log_error(format!(
                        "state root {root}, the chain records {}",
                        block.header.state_root
                    )));
                }
                state_height = delta.height;
                state_tip = block.header.hash();
            }
            if let Some((_, offset)) = over.last()
                && ledger.balance_sum() != ledger.supply()
            {
                return Err(StoreError::Corrupt {
                    file: log_file,
                    offset: *offset,
                    reason: "the state after the deltas does not conserve the genesis supply".to_string(),
                });
            }
            (ledger, state_height, over.len() as u64, address_index, state_tip, log_applied)
        }
    };

    let (mut ledger, start, mut tip_hash) = match replay {
        Replay::FromSnapshot => (delta_ledger, state_height, state_tip),
        Replay::FromGenesis => (
            Ledger::from_genesis(&verified.genesis).map_err(|error| StoreError::Corrupt {
                file: source.path(GENESIS_FILE),
                offset: 0,
                reason: format!("stored genesis is invalid: {error}"),
            })?,
            0,
            Hash::ZERO,
        ),
    };
    let mut replayed = 0;
    let mut touched = Vec::new();
    for entry in &entries[start as usize..] {
        let (block, _certificate) = source.read(entry)?;
        let (file, offset) = location(&*source, entry);
        if block.header.parent != tip_hash {
            return Err(StoreError::Corrupt {
                file,
                offset,
                reason: format!("block {}'s parent is not block {}", entry.height, entry.height - 1),
            });
        }
        if entry.height > state_height {
            touched.extend(block.txns.iter().flat_map(|txn| [txn.body.sender, txn.body.recipient]));
        }
        let stored = block.header.state_root;
        let ids: Vec<TxnId> = block.txns.iter().map(|txn| txn.id()).collect();
        let sealed = execute_block(&mut ledger, block, &ids);
        if sealed.block.header.state_root != stored {
            return Err(StoreError::StateMismatch {
                file,
                offset,
                height: entry.height,
                stored,
                computed: sealed.block.header.state_root,
            });
        }
        tip_hash = sealed.hash;
        replayed += 1;
        if replay == Replay::FromGenesis && entry.height == snapshot.height {
            let parts = ledger.to_parts();
            if parts.keys != snapshot.keys
                || parts.accounts != snapshot.accounts
                || parts.burned != snapshot.burned
            {
                return Err(state_error(format!(
                    "snapshot differs from the state replayed up to height {}",
                    snapshot.height
                )));
            }
        }
    }
    Ok(Rebuilt { ledger, tip_hash, replayed, deltas, state_height, touched, address_index, log_applied })
}

/// The ledger of the snapshot's columns, checked against the root it records: indexed by the
/// stored order when that gives the root, else by sorting the addresses.
fn snapshot_ledger(
    snapshot: &StateSnapshot,
    parts: impl Fn() -> LedgerParts,
    stored_order: Result<CheckedOrder, String>,
    state_error: &impl Fn(String) -> StoreError,
) -> Result<(Ledger, AddressIndexSource), StoreError> {
    let why = match stored_order {
        Err(why) => why,
        Ok(order) => match Base::from_checked(&snapshot.keys, order) {
            Err(error) => format!("{STATE_INDEX_FILE}: {error}"),
            Ok(base) => match Ledger::from_parts_indexed(parts(), Some(base)) {
                Ok(ledger) if ledger.state_root() == snapshot.state_root => {
                    return Ok((ledger, AddressIndexSource::Mapped));
                }
                Ok(_) => format!("{STATE_INDEX_FILE} gives the snapshot another state root than it records"),
                Err(error) => format!("{STATE_INDEX_FILE}: {error}"),
            },
        },
    };
    let ledger = Ledger::from_parts(parts())
        .map_err(|error| state_error(format!("snapshot does not rebuild a ledger: {error}")))?;
    if ledger.state_root() != snapshot.state_root {
        return Err(state_error("snapshot's columns do not hash to its recorded state root".to_string()));
    }
    Ok((ledger, AddressIndexSource::Built(why)))
}

/// The state after the snapshot's columns (`parts`) and every delta over it, in order, built
/// once: the rows folded into the columns, the stored order (if any) merged with the
/// addresses the deltas create, then one tree over every account on every core. So a restart
/// costs in proportion to the state's size, whatever the log holds: applied a delta at a time,
/// each created account cost a search of the index and its own path through the tree, about
/// 10 µs at ten million accounts, and a log may hold as many rows as the snapshot.
///
/// Only the end is checked, by the caller, against the root the chain records: the roots
/// between are not computed. Any error here, or another root, sends the caller to the one-at-
/// a-time path, which names the delta at fault.
fn fold_log<'d>(
    mut parts: LedgerParts,
    stored_order: Option<&CheckedOrder>,
    deltas: impl IntoIterator<Item = &'d StateDelta>,
) -> Result<Ledger, String> {
    // Checked once, when it was read; here only that it orders these accounts.
    if let Some(order) = stored_order
        && order.as_slice().len() != parts.keys.len()
    {
        return Err(format!(
            "{STATE_INDEX_FILE} orders {} accounts, the snapshot holds {}",
            order.as_slice().len(),
            parts.keys.len()
        ));
    }
    for delta in deltas {
        parts.apply_stored(delta)?;
    }
    match stored_order {
        Some(order) => {
            let merged = index::merge_added(order, &parts.keys)
                .map_err(|key| format!("account {} is created twice", Hash(key)))?;
            let base = Base::from_checked(&parts.keys, merged).map_err(|error| error.to_string())?;
            Ledger::from_parts_indexed(parts, Some(base)).map_err(|error| error.to_string())
        }
        None => Ledger::from_parts(parts).map_err(|error| error.to_string()),
    }
}

/// Reads every committed block and checks that it decodes, is certified, and links to its
/// parent: the chain's structure, without executing it.
///
/// # Errors
/// The first block that fails, named by file and offset.
pub fn check_chain(
    lock: &DirLock,
    verified: &Verified,
    reader: &mut SegmentReader,
) -> Result<(), StoreError> {
    let mut parent = Hash::ZERO;
    for entry in &verified.check.entries {
        let (block, _certificate) = reader.read(lock, entry)?;
        if block.header.parent != parent {
            let (file, offset) = (lock.path(&segment_file_name(entry.segment)), entry.offset);
            return Err(StoreError::Corrupt {
                file,
                offset,
                reason: format!("block {}'s parent is not block {}", entry.height, entry.height - 1),
            });
        }
        parent = block.header.hash();
    }
    Ok(())
}
