//! The simulator's disk: an in-memory [`Storage`] that writes the real store's bytes (the
//! same record framing, index entries, checksums and state file) into buffers instead of
//! files, and recovers them with the real recovery rule ([`check_directory`], the state file
//! decoder, [`rebuild_from`]), so a simulated crash exercises the recovery code the node runs.
//!
//! Bird's eye view: every "file" is a byte buffer with a durable prefix and the appends made
//! since its last sync. A commit makes the real store's writes in the real store's order
//! (record, sync, index entry, sync, and every `state_interval_blocks` heights a snapshot
//! swapped in whole). [`SimDisk::crash`] then applies a [`StorageFault`], decided by a
//! [`SeedStream`], and leaves the buffers as a restart would find them; [`SimDisk::recover`]
//! runs recovery over them, and [`SimDisk::wipe`] reformats a disk recovery refused.
//!
//! The faults, after TigerBeetle's fault-injecting test storage:
//! - [`StorageFault::LostSync`]: power fails in the middle of the next commit; every write since
//!   its file's last sync is lost, wholly or in part (cut at a byte, or its length reached the
//!   disk but its data did not: zeros). With `store.sync` that is only the commit in flight;
//!   without it, committed blocks too, and recovery may refuse.
//! - [`StorageFault::Torn`]: the next commit's write in flight is cut at a byte, or its tail is
//!   zeros (allocated but unwritten); the cuts are the ones the recovery rule drops.
//! - [`StorageFault::Misdirected`] (at a crash) and [`SimDiskConfig::misdirect`] (on any record
//!   write): a record lands at an earlier record's place; recovery finds it by its checksum
//!   and place, and refuses.
//! - [`StorageFault::Corrupt`]: a bit flips inside a committed record at rest.
//! - [`SimDiskConfig::read_corrupt`]: a block read sees a flipped bit; the read is an error.
//! - Latency: each write, sync and read adds a virtual duration, taken with
//!   [`SimDisk::take_busy_ns`].
//!
//! A commit interrupted by a crash is modelled as the next height's record (a sealed header
//! around filler bytes): it is never committed, so recovery checks its header and drops it but
//! never decodes it. The crash always comes before that commit's index entry is whole.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use tessera_components::storage::{
    FILE_HEADER_SIZE, FileRef, INDEX_ENTRY_SIZE, IndexEntry, Place, Problem, RECORD_HEADER_SIZE, RecordKind,
    StateView, check_directory, check_record_header, decode_genesis_file, decode_state_file,
    decode_state_log, encode_block_record, encode_genesis_file, encode_index_header, encode_record,
    encode_segment_header, encode_state_file, encode_state_log_header, seal_record_header, segment_file_name,
};
use tessera_components::{Block, CertifiedBlock, Hash, QuorumCertificate, SafetyState};
use tessera_systems::Ledger;
use tessera_systems::workload::SeedStream;

use crate::sim::scenario::{DiskSpec, StorageFault};
use crate::storage::{
    BlockSource, GENESIS_FILE, INDEX_FILE, Rebuilt, Recovery, Replay, STATE_FILE, STATE_LOG_FILE,
    StateSchedule, StateWrite, Storage, StoreConfig, StoreError, TornTail, Verified, check_next,
    check_snapshot_root, check_state_height, corrupt_at, encode_snapshot, read_entry, rebuild_from,
    state_due,
};

const NS_PER_US: u64 = 1_000;

/// How a [`SimDisk`] writes, and how often it fails. The default injects nothing and takes no
/// virtual time.
#[derive(Clone, Debug, PartialEq)]
pub struct SimDiskConfig {
    /// Segment size, snapshot interval and whether commits sync, as for the real store.
    pub store: StoreConfig,
    /// Probability that a block record write lands at an earlier record's place.
    pub misdirect: f64,
    /// Probability that a block read sees a flipped bit.
    pub read_corrupt: f64,
    /// Virtual duration of one write, drawn uniformly from `[low, high]` nanoseconds.
    pub write_ns: [u64; 2],
    /// Virtual duration of one sync, `[low, high]` nanoseconds.
    pub sync_ns: [u64; 2],
    /// Virtual duration of one read, `[low, high]` nanoseconds.
    pub read_ns: [u64; 2],
}

impl Default for SimDiskConfig {
    fn default() -> Self {
        SimDiskConfig {
            store: StoreConfig::default(),
            misdirect: 0.0,
            read_corrupt: 0.0,
            write_ns: [0; 2],
            sync_ns: [0; 2],
            read_ns: [0; 2],
        }
    }
}

impl SimDiskConfig {
    /// The configuration a scenario's `[validators.disk]` describes, over the default store
    /// configuration (which syncs).
    pub fn from_spec(spec: &DiskSpec) -> SimDiskConfig {
        let ns = |[low, high]: [u64; 2]| [low * NS_PER_US, high * NS_PER_US];
        SimDiskConfig {
            store: StoreConfig::default(),
            misdirect: spec.misdirect,
            read_corrupt: spec.read_corrupt,
            write_ns: ns(spec.write_us),
            sync_ns: ns(spec.sync_us),
            read_ns: ns(spec.read_us),
        }
    }
}

/// True with probability `p`; draws nothing when `p` is 0 or 1.
fn chance(stream: &mut SeedStream, p: f64) -> bool {
    if p <= 0.0 {
        return false;
    }
    if p >= 1.0 {
        return true;
    }
    ((stream.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
}

/// A duration from `[low, high]`; draws nothing for a single value.
fn duration(stream: &mut SeedStream, [low, high]: [u64; 2]) -> u64 {
    if high <= low { low } else { low + stream.below(high - low + 1) }
}

/// One file: its bytes as a restart would see them after a process crash, and how much of
/// them is durable.
#[derive(Clone, Debug, Default)]
struct SimFile {
    bytes: Vec<u8>,
    /// `bytes[..synced]` is durable.
    synced: usize,
    /// End of each append since the last sync, in order.
    unsynced: Vec<usize>,
}

impl SimFile {
    fn durable(bytes: Vec<u8>) -> SimFile {
        SimFile { synced: bytes.len(), bytes, unsynced: Vec::new() }
    }

    fn append(&mut self, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        self.unsynced.push(self.bytes.len());
    }

    fn sync(&mut self) {
        self.synced = self.bytes.len();
        self.unsynced.clear();
    }

    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Writes `data` at `at`, extending the file with it if it runs past the end: a misdirected
    /// write.
    fn overwrite(&mut self, at: usize, data: &[u8]) {
        let end = at + data.len();
        if end > self.bytes.len() {
            self.bytes.resize(end, 0);
        }
        self.bytes[at..end].copy_from_slice(data);
    }

    /// Power fails: a prefix of the unsynced appends survives whole, the next survives cut
    /// short, as zeros, or not at all, and the rest are lost. Returns the unsynced bytes kept
    /// and in all, and whether zeros were left.
    fn lose_unsynced(&mut self, stream: &mut SeedStream) -> Option<(u64, u64, bool)> {
        if self.unsynced.is_empty() {
            return None;
        }
        let base = self.synced;
        let total = (self.bytes.len() - base) as u64;
        let count = self.unsynced.len();
        let whole = stream.below(count as u64 + 1) as usize;
        let start = if whole == 0 { self.synced } else { self.unsynced[whole - 1] };
        let mut end = start;
        let mut zeros = false;
        if let Some(&next_end) = self.unsynced.get(whole) {
            let size = next_end - start;
            match stream.below(3) {
                0 => {}
                1 if size > 1 => end = start + 1 + stream.below(size as u64 - 1) as usize,
                1 => {}
                _ => {
                    self.bytes[start..next_end].fill(0);
                    end = next_end;
                    zeros = true;
                }
            }
        }
        self.bytes.truncate(end);
        self.sync();
        Some(((end - base) as u64, total, zeros))
    }
}

/// The segments' buffers as a [`BlockSource`] for the rebuild.
struct Buffers<'a> {
    segments: &'a [SimFile],
}

impl BlockSource for Buffers<'_> {
    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(name)
    }

    fn read(&mut self, entry: &IndexEntry) -> Result<(Block, QuorumCertificate), StoreError> {
        let bytes = self.segments.get(entry.segment as usize).map_or(&[][..], |file| &file.bytes[..]);
        let record = usize::try_from(entry.offset).ok().and_then(|offset| bytes.get(offset..)).unwrap_or(&[]);
        read_entry(record, entry, Path::new(&segment_file_name(entry.segment)))
    }
}

/// The corruption error for a problem the format checks found; it names the file alone.
fn corrupt(problem: Problem) -> StoreError {
    corrupt_at(PathBuf::from(problem.file.file_name()), problem)
}

/// An in-memory block store with injected faults; see the module documentation.
pub struct SimDisk {
    config: SimDiskConfig,
    /// Crash-time and write-time fault decisions.
    faults: SeedStream,
    /// Write and sync latencies.
    latency: SeedStream,
    /// Read faults and latencies (reads take `&self`).
    reads: RefCell<SeedStream>,
    busy_ns: u64,
    read_busy_ns: Cell<u64>,
    genesis: Vec<([u8; 32], u64)>,
    genesis_id: Hash,
    genesis_file: Vec<u8>,
    segments: Vec<SimFile>,
    index: SimFile,
    /// The durable state file.
    state: Vec<u8>,
    /// A state file swapped in whose swap is not yet durable (only without `store.sync`).
    state_pending: Option<Vec<u8>>,
    /// The state log: deltas appended, synced as the store syncs.
    state_log: SimFile,
    /// An emptied state log swapped in whose swap is not yet durable (only without
    /// `store.sync`).
    state_log_pending: Option<Vec<u8>>,
    /// Which state write comes next (the real store's rule).
    schedule: StateSchedule,
    /// What recovery established and commits extended: entry `h - 1` places height `h`.
    entries: Vec<IndexEntry>,
    tip_hash: Hash,
    tip_state_root: Hash,
    state_height: u64,
    /// Set by a crash (or a wipe) until [`SimDisk::recover`]: commits are refused.
    poisoned: Option<String>,
    /// The next recovery reports a created store.
    created: bool,
    /// The consensus safety state last saved: two small slots written whole and synced, as
    /// the real store's are; modelled as durable once saved (a crash tears at most the slot
    /// being written, and the other holds the previous state, so recovery loses nothing
    /// saved).
    safety: Option<SafetyState>,
}

impl SimDisk {
    /// Formats a disk with this genesis and recovers it, as [`Store::open`] does for an empty
    /// directory. Returns the disk, the genesis ledger and the recovery report.
    ///
    /// # Errors
    /// [`StoreError::Genesis`] or [`StoreError::Config`] for bad arguments,
    /// [`StoreError::TooLarge`] for a genesis above the record limit.
    ///
    /// [`Store::open`]: crate::storage::Store::open
    pub fn new(
        genesis: &[([u8; 32], u64)],
        config: SimDiskConfig,
        mut stream: SeedStream,
    ) -> Result<(SimDisk, Ledger, Recovery), StoreError> {
        if config.store.state_interval_blocks == 0 {
            return Err(StoreError::Config("state_interval_blocks must be at least 1"));
        }
        if config.store.segment_size_max < (FILE_HEADER_SIZE + RECORD_HEADER_SIZE) as u64 {
            return Err(StoreError::Config("segment_size_max must hold a file header and a record header"));
        }
        let probability = |p: f64| p.is_finite() && (0.0..=1.0).contains(&p);
        if !probability(config.misdirect) || !probability(config.read_corrupt) {
            return Err(StoreError::Config("fault probabilities must be between 0 and 1"));
        }
        let faults = SeedStream::new("tessera 2026 sim disk faults", stream.next_u64());
        let latency = SeedStream::new("tessera 2026 sim disk latency", stream.next_u64());
        let reads = SeedStream::new("tessera 2026 sim disk reads", stream.next_u64());
        let (genesis_id, genesis_file) = encode_genesis_file(genesis);
        let mut disk = SimDisk {
            config,
            faults,
            latency,
            reads: RefCell::new(reads),
            busy_ns: 0,
            read_busy_ns: Cell::new(0),
            genesis: genesis.to_vec(),
            genesis_id,
            genesis_file,
            segments: Vec::new(),
            index: SimFile::default(),
            state: Vec::new(),
            state_pending: None,
            state_log: SimFile::default(),
            state_log_pending: None,
            schedule: StateSchedule::default(),
            entries: Vec::new(),
            tip_hash: Hash::ZERO,
            tip_state_root: Hash::ZERO,
            state_height: 0,
            poisoned: None,
            created: true,
            safety: None,
        };
        disk.format()?;
        let (ledger, recovery) = disk.recover()?;
        Ok((disk, ledger, recovery))
    }

    /// Writes a fresh store: genesis, segment 0, the index and the genesis state, all durable.
    fn format(&mut self) -> Result<(), StoreError> {
        let ledger = Ledger::from_genesis(&self.genesis)?;
        let parts = ledger.to_parts();
        let view = StateView {
            height: 0,
            state_root: ledger.state_root(),
            keys: &parts.keys,
            accounts: &parts.accounts,
            burned: parts.burned,
            supply: parts.supply,
        };
        let state = encode_state_file(self.genesis_id, view);
        self.segments = vec![SimFile::durable(encode_segment_header(0, self.genesis_id).to_vec())];
        self.index = SimFile::durable(encode_index_header(self.genesis_id).to_vec());
        self.state = state;
        self.state_pending = None;
        self.state_log = SimFile::durable(encode_state_log_header(self.genesis_id).to_vec());
        self.state_log_pending = None;
        self.entries.clear();
        self.tip_hash = Hash::ZERO;
        self.tip_state_root = ledger.state_root();
        self.state_height = 0;
        self.created = true;
        Ok(())
    }

    /// Runs recovery over the disk's bytes, as [`Store::open`] does over a directory: checks
    /// every checksum, drops the torn remains of an unfinished final commit (reported in the
    /// [`Recovery`]), refuses anything else, and replays the blocks after the snapshot.
    /// Commits are accepted again once it succeeds.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] or [`StoreError::StateMismatch`], naming the file (by name
    /// alone) and byte offset, for damage other than a torn final write. The disk is left as
    /// it was found, but for torn tails dropped; [`SimDisk::wipe`] starts it over.
    ///
    /// [`Store::open`]: crate::storage::Store::open
    pub fn recover(&mut self) -> Result<(Ledger, Recovery), StoreError> {
        self.settle();
        let (genesis_id, genesis) = decode_genesis_file(&self.genesis_file).map_err(corrupt)?;
        if genesis != self.genesis {
            return Err(StoreError::GenesisMismatch { file: PathBuf::from(GENESIS_FILE) });
        }
        let check = {
            let slices: Vec<&[u8]> = self.segments.iter().map(|file| &file.bytes[..]).collect();
            if slices.is_empty() {
                return Err(corrupt(Problem {
                    file: FileRef::Segment(0),
                    offset: 0,
                    reason: "file is missing".to_string(),
                }));
            }
            check_directory(genesis_id, &self.index.bytes, &slices).map_err(corrupt)?
        };
        let state = decode_state_file(&self.state, genesis_id).map_err(corrupt)?;
        check_state_height(PathBuf::from(STATE_FILE), &state, &check)?;
        let state_log =
            decode_state_log(&self.state_log.bytes, genesis_id, check.height()).map_err(corrupt)?;
        let verified = Verified {
            genesis,
            genesis_id,
            segment_count: self.segments.len() as u32,
            segment_bytes: self.segments.iter().map(SimFile::len).sum(),
            check,
            state,
            state_log,
        };

        let mut torn = Vec::new();
        let tails = [verified.check.index_tail, verified.check.segment_tail, verified.state_log.tail];
        for tail in tails.into_iter().flatten() {
            let file = match tail.file {
                FileRef::Index => &mut self.index,
                FileRef::Segment(number) => &mut self.segments[number as usize],
                FileRef::StateLog => &mut self.state_log,
                FileRef::Genesis | FileRef::State => {
                    unreachable!("tails are only found in the index and segments")
                }
            };
            file.bytes.truncate(tail.offset as usize);
            file.sync();
            torn.push(TornTail {
                file: PathBuf::from(tail.file.file_name()),
                offset: tail.offset,
                size: tail.size,
            });
        }

        let Rebuilt { ledger, tip_hash, replayed, deltas, state_height, touched, address_index, log_applied } =
            rebuild_from(&mut Buffers { segments: &self.segments }, &verified, Replay::FromSnapshot)?;
        if verified.state_log.deltas.len() as u64 != deltas {
            // Deltas made over another snapshot: emptied, as the real store does.
            self.state_log = SimFile::durable(encode_state_log_header(self.genesis_id).to_vec());
        }
        let height = verified.check.height();
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
            created: std::mem::take(&mut self.created),
            safety: self.safety.clone(),
            // Kept as a value, written whole: never torn.
            safety_damaged: false,
            safety_uncertain: false,
        };
        self.entries = verified.check.entries;
        self.tip_hash = tip_hash;
        self.tip_state_root = state_root;
        self.state_height = state_height;
        self.schedule =
            StateSchedule::new(verified.state.height, self.state.len() as u64, self.state_log.len(), touched);
        self.poisoned = None;
        Ok((ledger, recovery))
    }

    /// Formats the disk afresh with its genesis, as an operator wipes a directory the node
    /// refused; [`SimDisk::recover`] then starts from genesis (reporting `created`).
    pub fn wipe(&mut self) {
        self.format().expect("the genesis formatted once already");
        self.poisoned = Some("the disk was wiped; recover it first".to_string());
    }

    /// The node crashes: applies `fault` and leaves the disk as the restart will find it.
    /// Returns what the fault did, in a short deterministic sentence, or `None` if it did
    /// nothing. Commits are refused until [`SimDisk::recover`].
    pub fn crash(&mut self, fault: impl Into<StorageFault>) -> Option<String> {
        self.poisoned = Some("the disk crashed; recover it first".to_string());
        let said = match fault.into() {
            StorageFault::None => None,
            StorageFault::Torn => self.tear(),
            StorageFault::LostSync => self.lose_power(),
            StorageFault::Corrupt => self.flip_at_rest(),
            StorageFault::Misdirected => self.misdirect_in_flight(),
        };
        self.settle();
        said
    }

    /// Virtual time the disk has been busy since the last call (writes, syncs and reads).
    pub fn take_busy_ns(&mut self) -> u64 {
        std::mem::take(&mut self.busy_ns) + self.read_busy_ns.take()
    }

    /// Height of the state snapshot on the disk.
    pub fn state_height(&self) -> u64 {
        self.state_height
    }

    /// What survived a crash is what a restart reads: it counts as on the disk from now on.
    fn settle(&mut self) {
        for file in self.segments.iter_mut().chain([&mut self.index, &mut self.state_log]) {
            file.sync();
        }
        if let Some(state) = self.state_pending.take() {
            self.state = state;
        }
        if let Some(log) = self.state_log_pending.take() {
            self.state_log = SimFile::durable(log);
        }
    }

    fn charge_write(&mut self) {
        self.busy_ns += duration(&mut self.latency, self.config.write_ns);
    }

    fn charge_sync(&mut self) {
        self.busy_ns += duration(&mut self.latency, self.config.sync_ns);
    }

    fn last_segment(&mut self) -> &mut SimFile {
        self.segments.last_mut().expect("a disk always has segment 0")
    }

    /// The record of the commit a crash interrupts: the next height's, at the end of the last
    /// segment, around filler bytes (never decoded: it is never committed).
    fn in_flight(&mut self) -> (u32, u64, u64, Vec<u8>) {
        let number = self.segments.len() as u32 - 1;
        let offset = self.last_segment().len();
        let height = self.entries.len() as u64 + 1;
        let size = 64 + self.faults.below(1024) as usize;
        let payload: Vec<u8> = (0..size).map(|_| self.faults.below(256) as u8).collect();
        let record =
            encode_record(Place { kind: RecordKind::Block, segment: number, offset }, height, &payload);
        (number, offset, height, record)
    }

    fn tear(&mut self) -> Option<String> {
        let (number, offset, height, record) = self.in_flight();
        let name = segment_file_name(number);
        let len = record.len() as u64;
        if self.faults.below(3) == 0 {
            // The record was written and synced; the index entry's write was cut.
            self.last_segment().append(&record);
            let header =
                check_record_header(&record, Place { kind: RecordKind::Block, segment: number, offset })
                    .expect("a record just sealed checks");
            let entry = IndexEntry::new(&header).to_bytes();
            if self.faults.below(2) == 0 {
                let cut = 1 + self.faults.below(INDEX_ENTRY_SIZE as u64 - 1) as usize;
                self.index.append(&entry[..cut]);
                return Some(format!(
                    "torn write: the index entry for height {height} cut at byte {cut} of {INDEX_ENTRY_SIZE}, \
                     after its {len}-byte record in {name}"
                ));
            }
            self.index.append(&[0; INDEX_ENTRY_SIZE]);
            return Some(format!(
                "torn write: the index entry for height {height} allocated but unwritten (zeros), after its \
                 {len}-byte record in {name}"
            ));
        }
        if self.faults.below(2) == 0 {
            let cut = 1 + self.faults.below(len - 1);
            self.last_segment().append(&record[..cut as usize]);
            return Some(format!(
                "torn write: the record for height {height} cut at byte {cut} of {len} in {name}"
            ));
        }
        // Zeros after a whole header, or zeros only: what the recovery rule can tell from a
        // finished record.
        let written = match self.faults.below(2) {
            0 => 0,
            _ => RECORD_HEADER_SIZE as u64 + self.faults.below(len - RECORD_HEADER_SIZE as u64),
        };
        let mut bytes = record;
        bytes[written as usize..].fill(0);
        self.last_segment().append(&bytes);
        Some(format!(
            "torn write: the record for height {height} in {name} has {written} of {len} bytes written, the rest zeros"
        ))
    }

    fn lose_power(&mut self) -> Option<String> {
        // The commit under way had issued its record write; it was not yet synced.
        let (number, _, height, record) = self.in_flight();
        self.last_segment().append(&record);
        let mut said = vec![format!("lost power writing the record for height {height}")];
        let mut files: Vec<(String, &mut SimFile)> = vec![
            (INDEX_FILE.to_string(), &mut self.index),
            (STATE_LOG_FILE.to_string(), &mut self.state_log),
        ];
        files.extend(
            self.segments.iter_mut().enumerate().map(|(n, file)| (segment_file_name(n as u32), file)),
        );
        for (name, file) in files {
            if let Some((kept, total, zeros)) = file.lose_unsynced(&mut self.faults) {
                let zeros = if zeros { ", zeros at its end" } else { "" };
                said.push(format!("{name} kept {kept} of {total} unsynced bytes{zeros}"));
            }
        }
        if self.state_pending.is_some() {
            if self.faults.below(2) == 0 {
                self.state_pending = None;
                said.push(format!("{STATE_FILE} lost its unsynced swap"));
            } else {
                said.push(format!("{STATE_FILE} kept its unsynced swap"));
            }
        }
        if self.state_log_pending.is_some() {
            if self.faults.below(2) == 0 {
                self.state_log_pending = None;
                said.push(format!("{STATE_LOG_FILE} lost its unsynced swap"));
            } else {
                said.push(format!("{STATE_LOG_FILE} kept its unsynced swap"));
            }
        }
        // A segment created since the last sync whose creation was lost altogether.
        if self.segments.len() > 1 && self.segments.last().is_some_and(|file| file.bytes.is_empty()) {
            self.segments.pop();
            said.push(format!("{} was never created", segment_file_name(number)));
        }
        Some(said.join("; "))
    }

    fn flip_at_rest(&mut self) -> Option<String> {
        let number = self.segments.iter().rposition(|file| file.len() > FILE_HEADER_SIZE as u64)?;
        let file = &mut self.segments[number];
        let at = FILE_HEADER_SIZE as u64 + self.faults.below(file.len() - FILE_HEADER_SIZE as u64);
        let bit = self.faults.below(8);
        file.bytes[at as usize] ^= 1 << bit;
        Some(format!("flipped bit {bit} of byte {at} in {}", segment_file_name(number as u32)))
    }

    fn misdirect_in_flight(&mut self) -> Option<String> {
        if self.entries.is_empty() {
            return None;
        }
        let (_, _, height, record) = self.in_flight();
        let victim = self.entries[self.faults.below(self.entries.len() as u64) as usize];
        self.segments[victim.segment as usize].overwrite(victim.offset as usize, &record);
        Some(format!(
            "misdirected write: the record for height {height} landed at byte {} of {}, over height {}'s record",
            victim.offset,
            segment_file_name(victim.segment),
            victim.height
        ))
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
        let height = self.height() + 1;
        let hash = check_next(self.height(), self.tip_hash, block, certificate)?;
        let snapshot_due = state_due(height, self.state_height, self.config.store.state_interval_blocks);
        let ledger = ledger.filter(|_| snapshot_due);
        if let Some(ledger) = ledger {
            check_snapshot_root(block, ledger)?;
        }
        let number = self.segments.len() as u32 - 1;
        let place = Place { kind: RecordKind::Block, segment: number, offset: self.last_segment().len() };
        let (_, mut record) = encode_block_record(place, block, certificate)
            .map_err(|size| StoreError::TooLarge { what: format!("block {height}"), size })?;

        let record_size = record.len() as u64;
        let segment_len = self.last_segment().len();
        if segment_len > FILE_HEADER_SIZE as u64
            && segment_len + record_size > self.config.store.segment_size_max
        {
            self.roll_over()?;
            let place =
                Place { kind: RecordKind::Block, segment: number + 1, offset: FILE_HEADER_SIZE as u64 };
            let header = seal_record_header(place, height, &record[RECORD_HEADER_SIZE..]);
            record[..RECORD_HEADER_SIZE].copy_from_slice(&header.to_bytes());
        }
        let number = self.segments.len() as u32 - 1;
        let place = Place { kind: RecordKind::Block, segment: number, offset: self.last_segment().len() };
        let header = check_record_header(&record, place).expect("a record just sealed for this place checks");
        self.write_record(number, &record);
        if self.config.store.sync {
            self.last_segment().sync();
            self.charge_sync();
        }
        let entry = IndexEntry::new(&header);
        self.index.append(&entry.to_bytes());
        self.charge_write();
        if self.config.store.sync {
            self.index.sync();
            self.charge_sync();
        }
        self.entries.push(entry);
        self.schedule.note(block);
        if let Some(ledger) = ledger {
            self.write_snapshot(height, block.header.state_root, ledger)?;
        }
        self.tip_hash = hash;
        self.tip_state_root = block.header.state_root;
        Ok(())
    }

    /// Appends `record` to segment `number`, or, misdirected, writes it over an earlier
    /// record's place (the file header's if there is none) and leaves zeros where it belonged.
    fn write_record(&mut self, number: u32, record: &[u8]) {
        self.charge_write();
        if !chance(&mut self.faults, self.config.misdirect) {
            self.segments[number as usize].append(record);
            return;
        }
        let earlier: Vec<u64> =
            self.entries.iter().filter(|entry| entry.segment == number).map(|entry| entry.offset).collect();
        let at = match earlier.len() {
            0 => 0,
            count => earlier[self.faults.below(count as u64) as usize],
        };
        let file = &mut self.segments[number as usize];
        file.append(&vec![0; record.len()]);
        file.overwrite(at as usize, record);
    }

    fn roll_over(&mut self) -> Result<(), StoreError> {
        let number = u32::try_from(self.segments.len())
            .map_err(|_| StoreError::Config("segment numbers exhausted"))?;
        let header = encode_segment_header(number, self.genesis_id);
        let mut file = SimFile::default();
        file.append(&header);
        self.charge_write();
        if self.config.store.sync {
            file.sync();
            // The file, then the directory.
            self.charge_sync();
            self.charge_sync();
        }
        self.segments.push(file);
        Ok(())
    }

    /// The real store's state write: a delta appended to the log, or the state file swapped in
    /// whole and the log emptied.
    fn write_snapshot(&mut self, height: u64, state_root: Hash, ledger: &Ledger) -> Result<(), StoreError> {
        let sync = self.config.store.sync;
        match self.schedule.plan(height, state_root, ledger) {
            StateWrite::Delta(record) => {
                // An emptied log whose swap is not yet durable is what the append goes to.
                if let Some(log) = self.state_log_pending.take() {
                    self.state_log = SimFile::durable(log);
                }
                self.state_log.append(&record);
                self.charge_write();
                if sync {
                    self.state_log.sync();
                    self.charge_sync();
                }
                self.schedule.wrote_delta(record.len() as u64);
            }
            StateWrite::Whole => {
                let file = encode_snapshot(self.genesis_id, height, state_root, ledger);
                let base_len = file.len() as u64;
                let log = encode_state_log_header(self.genesis_id).to_vec();
                // Each file: written, synced, renamed, the directory synced.
                self.charge_write();
                self.charge_write();
                if sync {
                    for _ in 0..4 {
                        self.charge_sync();
                    }
                    self.state = file;
                    self.state_pending = None;
                    self.state_log = SimFile::durable(log);
                    self.state_log_pending = None;
                } else {
                    self.state_pending = Some(file);
                    self.state_log_pending = Some(log);
                }
                self.schedule.wrote_whole(height, base_len);
            }
        }
        self.state_height = height;
        Ok(())
    }

    /// Every file's bytes as a restart would read them, by name.
    #[cfg(test)]
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut files = vec![
            (GENESIS_FILE.to_string(), self.genesis_file.clone()),
            (INDEX_FILE.to_string(), self.index.bytes.clone()),
            (STATE_FILE.to_string(), self.state_pending.clone().unwrap_or_else(|| self.state.clone())),
            (
                STATE_LOG_FILE.to_string(),
                self.state_log_pending.clone().unwrap_or_else(|| self.state_log.bytes.clone()),
            ),
        ];
        files.extend(
            self.segments
                .iter()
                .enumerate()
                .map(|(n, file)| (segment_file_name(n as u32), file.bytes.clone())),
        );
        files.sort();
        files
    }
}

impl std::fmt::Debug for SimDisk {
    /// The shape of the disk, not its bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDisk")
            .field("height", &self.entries.len())
            .field("tip_hash", &self.tip_hash)
            .field("state_height", &self.state_height)
            .field("segment_bytes", &self.segments.iter().map(SimFile::len).collect::<Vec<_>>())
            .field("index_bytes", &self.index.len())
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Storage for SimDisk {
    fn commit_finalized(
        &mut self,
        blocks: &[CertifiedBlock],
        ledger: &Ledger,
    ) -> (usize, Result<(), StoreError>) {
        crate::storage::commit_in_order(blocks, ledger, |block, certificate, snapshot| {
            self.commit_with(block, certificate, snapshot)
        })
    }

    fn write_state(&mut self, ledger: &Ledger) -> Result<(), StoreError> {
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
        if self.height() == self.state_height {
            // Already stored at this height, as the real store says.
            return Ok(());
        }
        self.write_snapshot(self.height(), root, ledger)
    }

    fn block(&self, height: u64) -> Result<Option<(Block, QuorumCertificate)>, StoreError> {
        let Some(entry) = height.checked_sub(1).and_then(|i| self.entries.get(i as usize)) else {
            return Ok(None);
        };
        let mut reads = self.reads.borrow_mut();
        self.read_busy_ns.set(self.read_busy_ns.get() + duration(&mut reads, self.config.read_ns));
        let bytes = self.segments.get(entry.segment as usize).map_or(&[][..], |file| &file.bytes[..]);
        let start = (entry.offset as usize).min(bytes.len());
        let end = (entry.offset as usize).saturating_add(entry.record_size as usize).min(bytes.len());
        let name = segment_file_name(entry.segment);
        if chance(&mut reads, self.config.read_corrupt) && end > start {
            let mut copy = bytes[start..end].to_vec();
            let at = reads.below(copy.len() as u64) as usize;
            copy[at] ^= 1 << reads.below(8);
            return read_entry(&copy, entry, Path::new(&name)).map(Some);
        }
        read_entry(&bytes[start..end], entry, Path::new(&name)).map(Some)
    }

    fn height(&self) -> u64 {
        self.entries.len() as u64
    }

    fn tip_hash(&self) -> Hash {
        self.tip_hash
    }

    fn save_safety(&mut self, state: &SafetyState) -> Result<(), StoreError> {
        if let Some(reason) = &self.poisoned {
            return Err(StoreError::Poisoned(reason.clone()));
        }
        self.busy_ns += duration(&mut self.latency, self.config.write_ns)
            + duration(&mut self.latency, self.config.sync_ns);
        self.safety = Some(state.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tessera_components::CertifiedBlock;

    use super::*;
    use crate::storage::{Store, drill};

    const SENDERS: u64 = 16;

    fn genesis() -> Vec<([u8; 32], u64)> {
        drill::genesis(SENDERS)
    }

    /// Small segments and a short snapshot interval, so a few blocks span several of each.
    fn store_config() -> StoreConfig {
        StoreConfig { segment_size_max: 4096, sync: true, state_interval_blocks: 4 }
    }

    fn config() -> SimDiskConfig {
        SimDiskConfig { store: store_config(), ..SimDiskConfig::default() }
    }

    fn disk(seed: u64, config: SimDiskConfig) -> (SimDisk, Ledger) {
        let (disk, ledger, recovery) =
            SimDisk::new(&genesis(), config, SeedStream::new("sim disk test", seed)).unwrap();
        assert!(recovery.created);
        assert_eq!((recovery.height, recovery.torn_bytes_dropped), (0, 0));
        (disk, ledger)
    }

    /// Commits blocks through the port in ticks of one to three, until `height`; returns
    /// every block committed.
    fn commit_to(store: &mut dyn Storage, ledger: &mut Ledger, height: u64) -> Vec<CertifiedBlock> {
        let mut committed = Vec::new();
        while store.height() < height {
            let mut tick = Vec::new();
            let mut tip = store.tip_hash();
            let count = (1 + store.height() % 3).min(height - store.height());
            for next in store.height() + 1..=store.height() + count {
                let (block, certificate) = drill::next_block(ledger, tip, next, SENDERS, (next % 5) as usize);
                tip = block.header.hash();
                tick.push(CertifiedBlock { block, certificate });
            }
            let (durable, result) = store.commit_finalized(&tick, ledger);
            result.unwrap();
            assert_eq!(durable, tick.len());
            committed.extend(tick);
        }
        committed
    }

    fn assert_blocks(disk: &SimDisk, committed: &[CertifiedBlock]) {
        for (height, certified) in (1..).zip(committed) {
            let read = disk.block(height).unwrap().expect("a committed height");
            assert_eq!(read, (certified.block.clone(), certified.certificate.clone()), "height {height}");
        }
    }

    #[test]
    fn a_crash_without_fault_recovers_the_same_chain() {
        let (mut disk, mut ledger) = disk(1, config());
        let committed = commit_to(&mut disk, &mut ledger, 23);
        let (tip, root) = (disk.tip_hash(), ledger.state_root());
        assert!(disk.segments.len() > 3, "the test means to span several segments");
        assert_eq!(disk.crash(StorageFault::None), None);
        let (recovered, recovery) = disk.recover().unwrap();
        assert_eq!((recovery.height, recovery.blocks, recovery.torn_bytes_dropped), (23, 23, 0));
        assert!(recovery.state_height > 0 && recovery.state_height == disk.state_height());
        assert_eq!((recovery.replayed, recovery.created), (23 - recovery.state_height, false));
        assert_eq!((recovery.state_root, recovered.state_root()), (root, root));
        assert_eq!((disk.height(), disk.tip_hash()), (23, tip));
        assert_blocks(&disk, &committed);
        // And it goes on committing where it left off.
        let mut ledger = recovered;
        let more = commit_to(&mut disk, &mut ledger, 26);
        assert_eq!(more.first().map(|b| b.block.header.height), Some(24));
    }

    #[test]
    fn a_commit_interrupted_before_its_first_commit_is_refused_until_recovery() {
        let (mut disk, mut ledger) = disk(2, config());
        commit_to(&mut disk, &mut ledger, 3);
        disk.crash(StorageFault::None);
        let (block, certificate) = drill::next_block(&mut ledger, disk.tip_hash(), 4, SENDERS, 1);
        let (durable, result) = disk.commit_finalized(&[CertifiedBlock { block, certificate }], &ledger);
        assert_eq!(durable, 0);
        assert!(matches!(result, Err(StoreError::Poisoned(_))), "{result:?}");
    }

    #[test]
    fn a_torn_write_is_dropped_and_counted_and_nothing_committed_changes() {
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..48 {
            let (mut disk, mut ledger) = disk(seed, config());
            let height = 5 + seed % 7;
            let committed = commit_to(&mut disk, &mut ledger, height);
            let before = disk.files();
            let what = disk.crash(StorageFault::Torn).expect("a torn write says what it did");
            assert!(what.starts_with("torn write: "), "{what}");
            kinds.insert((what.contains("index entry"), what.contains("zeros")));
            let (recovered, recovery) = disk.recover().unwrap_or_else(|e| panic!("seed {seed}: {what}: {e}"));
            assert!(recovery.torn_bytes_dropped > 0, "seed {seed}: {what}");
            assert_eq!(recovery.torn_bytes_dropped, recovery.torn.iter().map(|t| t.size).sum::<u64>());
            assert!(recovery.height == height || recovery.height + 1 == height, "seed {seed}");
            assert_eq!(recovery.height, height, "the tear is always past the last commit");
            assert_eq!(recovered.state_root(), ledger.state_root());
            assert_eq!(disk.files(), before, "seed {seed}: recovery left other bytes than the commits'");
            assert_blocks(&disk, &committed);
        }
        assert_eq!(kinds.len(), 4, "the seeds should reach every kind of tear: {kinds:?}");
    }

    #[test]
    fn lost_sync_loses_only_what_was_not_synced() {
        for seed in 0..48 {
            let (mut disk, mut ledger) = disk(seed, config());
            let height = 5 + seed % 9;
            let committed = commit_to(&mut disk, &mut ledger, height);
            let what = disk.crash(StorageFault::LostSync).expect("lost power says what it lost");
            let (recovered, recovery) = disk.recover().unwrap_or_else(|e| panic!("seed {seed}: {what}: {e}"));
            assert_eq!(recovery.height, height, "seed {seed}: {what}");
            assert_eq!(recovered.state_root(), ledger.state_root());
            assert_blocks(&disk, &committed);
        }
    }

    #[test]
    fn lost_sync_without_syncing_keeps_a_prefix_or_is_refused_never_wrong_data() {
        // One segment, so the index and the records are the only two files racing.
        let store = StoreConfig { sync: false, segment_size_max: 1 << 20, ..store_config() };
        let config = SimDiskConfig { store, ..config() };
        let genesis_root = Ledger::from_genesis(&genesis()).unwrap().state_root();
        let (mut refused, mut recovered_count) = (0, 0);
        for seed in 0..48 {
            let (mut disk, mut ledger) = disk(seed, config.clone());
            let committed = commit_to(&mut disk, &mut ledger, 12);
            let what = disk.crash(StorageFault::LostSync).unwrap();
            match disk.recover() {
                Ok((recovered, recovery)) => {
                    assert!(recovery.height <= 12, "seed {seed}: {what}");
                    recovered_count += 1;
                    let kept = &committed[..recovery.height as usize];
                    assert_blocks(&disk, kept);
                    let root = kept.last().map_or(genesis_root, |b| b.block.header.state_root);
                    assert_eq!(recovered.state_root(), root, "seed {seed}: {what}");
                }
                Err(error) => {
                    assert!(matches!(error, StoreError::Corrupt { .. }), "seed {seed}: {what}: {error}");
                    refused += 1;
                    disk.wipe();
                    let (_, recovery) = disk.recover().unwrap();
                    assert_eq!((recovery.height, recovery.created), (0, true));
                }
            }
        }
        // Without syncs a power cut can take committed blocks: some disks are refused.
        assert!(refused > 0 && recovered_count > 0, "refused {refused}, recovered {recovered_count}");
    }

    fn assert_refused(result: Result<(Ledger, Recovery), StoreError>, what: &str) {
        match result {
            Err(StoreError::Corrupt { file, .. }) => {
                assert!(file.is_relative() && file.components().count() == 1, "{file:?}");
            }
            other => panic!("{what}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn misdirected_writes_and_flipped_bits_are_refused() {
        for seed in 0..16 {
            let (mut disk, mut ledger) = disk(seed, config());
            commit_to(&mut disk, &mut ledger, 9);
            let what = disk.crash(StorageFault::Misdirected).unwrap();
            assert!(what.starts_with("misdirected write: "), "{what}");
            assert_refused(disk.recover(), &what);
            disk.wipe();
            let (_, recovery) = disk.recover().unwrap();
            assert_eq!((recovery.height, recovery.created), (0, true));

            let (mut disk, mut ledger) = super::tests::disk(seed, config());
            commit_to(&mut disk, &mut ledger, 9);
            let what = disk.crash(StorageFault::Corrupt).unwrap();
            assert_refused(disk.recover(), &what);
        }
    }

    #[test]
    fn a_misdirected_commit_reads_back_as_an_error_and_is_refused_at_recovery() {
        // One segment, so the misdirected record lands on an earlier block's.
        let store = StoreConfig { segment_size_max: 1 << 20, ..store_config() };
        let (mut disk, mut ledger) = disk(3, SimDiskConfig { store, ..config() });
        let committed = commit_to(&mut disk, &mut ledger, 6);
        disk.config.misdirect = 1.0;
        let (block, certificate) = drill::next_block(&mut ledger, disk.tip_hash(), 7, SENDERS, 3);
        let (durable, result) = disk.commit_finalized(&[CertifiedBlock { block, certificate }], &ledger);
        // The disk acknowledged it: the node cannot tell.
        assert_eq!((durable, result.is_ok()), (1, true));
        assert!(disk.block(7).is_err(), "the record's own place holds zeros");
        let wrong = (1..=6).filter(|h| disk.block(*h).is_err()).count();
        let right = (1..=6)
            .filter(|h| {
                disk.block(*h).ok().flatten().is_some_and(|b| b.0 == committed[*h as usize - 1].block)
            })
            .count();
        // The record lands over an earlier one (and the next, if it is larger); every read
        // either fails or returns the block committed there.
        assert!(wrong >= 1 && wrong + right == 6, "wrong {wrong}, right {right}");
        disk.crash(StorageFault::None);
        assert_refused(disk.recover(), "misdirected commit");
    }

    #[test]
    fn a_corrupted_read_is_an_error_never_other_data() {
        let (mut disk, mut ledger) = disk(4, config());
        let committed = commit_to(&mut disk, &mut ledger, 8);
        disk.config.read_corrupt = 1.0;
        for height in 1..=8 {
            let error = disk.block(height).expect_err("every read sees a flipped bit");
            assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");
        }
        disk.config.read_corrupt = 0.5;
        let mut errors = 0;
        for round in 0..64 {
            let height = 1 + round % 8;
            match disk.block(height) {
                Ok(read) => assert_eq!(read.map(|b| b.0), Some(committed[height as usize - 1].block.clone())),
                Err(_) => errors += 1,
            }
        }
        assert!((8..56).contains(&errors), "{errors} of 64 reads failed at probability 1/2");
        // The bytes at rest are sound: without read faults, recovery accepts them.
        disk.config.read_corrupt = 0.0;
        disk.crash(StorageFault::None);
        assert_eq!(disk.recover().unwrap().1.height, 8);
    }

    #[test]
    fn latency_is_drawn_from_the_configured_ranges() {
        let (mut disk, mut ledger) = disk(5, config());
        commit_to(&mut disk, &mut ledger, 2);
        assert_eq!(disk.take_busy_ns(), 0, "no latency configured, none taken");
        disk.config.write_ns = [1_000, 2_000];
        disk.config.sync_ns = [10_000, 10_000];
        disk.config.read_ns = [500, 500];
        // One block: record write and sync, entry write and sync.
        commit_to(&mut disk, &mut ledger, 3);
        let busy = disk.take_busy_ns();
        assert!((22_000..=24_000).contains(&busy), "{busy}");
        disk.block(1).unwrap();
        assert_eq!(disk.take_busy_ns(), 500);
        assert_eq!(disk.take_busy_ns(), 0);
    }

    /// Runs one crash of each kind and returns what each said and the bytes left.
    fn crash_each(seed: u64) -> Vec<(Option<String>, Vec<(String, Vec<u8>)>)> {
        let config = SimDiskConfig { misdirect: 0.2, read_corrupt: 0.2, write_ns: [1, 100], ..config() };
        let mut out = Vec::new();
        for fault in
            [StorageFault::Torn, StorageFault::LostSync, StorageFault::Corrupt, StorageFault::Misdirected]
        {
            let (mut disk, mut ledger) = disk(seed, config.clone());
            commit_to(&mut disk, &mut ledger, 10);
            let reads: Vec<bool> = (1..=10).map(|h| disk.block(h).is_ok()).collect();
            let said = disk.crash(fault).map(|s| format!("{s} {reads:?} {}", disk.take_busy_ns()));
            out.push((said, disk.files()));
        }
        out
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        assert_eq!(crash_each(7), crash_each(7));
        assert_ne!(crash_each(7), crash_each(8));
    }

    #[test]
    fn the_store_and_the_disk_agree_byte_for_byte() {
        let dir = std::env::temp_dir().join(format!("tessera-sim-disk-{}-differential", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = store_config();
        let (mut store, mut store_ledger, _) = Store::open(&dir, &genesis(), config.clone()).unwrap();
        let (mut disk, mut disk_ledger) =
            disk(6, SimDiskConfig { store: config, ..SimDiskConfig::default() });
        let ports: [(&mut dyn Storage, &mut Ledger); 2] =
            [(&mut store, &mut store_ledger), (&mut disk, &mut disk_ledger)];
        let mut chains = Vec::new();
        for (port, ledger) in ports {
            chains.push(commit_to(port, ledger, 21));
            port.write_state(ledger).unwrap();
        }
        assert_eq!(chains[0], chains[1], "the drill's blocks depend on the ledger and height alone");
        assert_eq!((store.height(), store.tip_hash()), (disk.height(), disk.tip_hash()));
        for height in 0..=22 {
            assert_eq!(
                Storage::block(&store, height).unwrap(),
                disk.block(height).unwrap(),
                "height {height}"
            );
        }
        // The safety slot files are not block storage: the disk keeps that state as a value.
        // The state index is derived data the simulated disk does not keep (a simulated restart
        // builds the index from the snapshot, as a node without the file does); its table's
        // hash key is drawn at random, so its bytes differ between any two ledgers anyway.
        let on_disk: Vec<(String, Vec<u8>)> = crate::storage::drill::dir_contents(&dir)
            .unwrap()
            .into_iter()
            .filter(|(name, _)| !crate::storage::safety::SAFETY_FILES.contains(&name.as_str()))
            .filter(|(name, _)| name != crate::storage::STATE_INDEX_FILE)
            .collect();
        let names = |files: &[(String, Vec<u8>)]| files.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(&on_disk), names(&disk.files()));
        for ((name, real), (_, simulated)) in on_disk.iter().zip(disk.files()) {
            assert!(*real == simulated, "{name} differs");
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
