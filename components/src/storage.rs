//! The data directory's on-disk formats, and the pure checks that turn its bytes into a
//! recovery plan.
//!
//! Bird's eye view: every file starts with a 64-byte [`FileHeader`]; every piece of content is a
//! *record* (a 40-byte [`RecordHeader`] then a payload) whose header binds it to its kind, its
//! height, and the segment number and byte offset it was written at; the index is a run of
//! 32-byte [`IndexEntry`]s, one per committed height. All three are `#[repr(C)]` Pod layouts in
//! little-endian order, each protected by CRC32C. Bytes read from disk are untrusted: every
//! check here looks at the length first, then the checksum, then the fields.
//!
//! [`check_directory`] is the recovery rule as a pure function: given the bytes of the index
//! and of every segment it either names the first problem (file and byte offset) or returns the
//! committed records and the torn tail to drop. The `tessera` binary's storage module maps the
//! files, calls it, and applies the plan; `docs/storage.md` describes every byte.
//!
//! Nothing here does I/O.

use bytemuck::{Pod, Zeroable};

use crate::account::Account;
use crate::block::{Block, QuorumCertificate};
use crate::hash::Hash;

/// First eight bytes of every file in a data directory.
pub const STORE_MAGIC: [u8; 8] = *b"TESSERA\0";
/// Format version in every file header. Any other version is refused.
pub const STORE_VERSION: u16 = 1;
/// First four bytes of every record.
pub const RECORD_MAGIC: [u8; 4] = *b"TREC";
/// Record format version. Any other version is refused.
pub const RECORD_VERSION: u8 = 1;
/// Bytes in a [`FileHeader`].
pub const FILE_HEADER_SIZE: usize = 64;
/// Bytes in a [`RecordHeader`].
pub const RECORD_HEADER_SIZE: usize = 40;
/// Bytes in an [`IndexEntry`].
pub const INDEX_ENTRY_SIZE: usize = 32;
/// Largest record payload. CRC32C detects every error of up to three bits in messages of up to
/// 2^31 bits (256 MiB); keeping a record (header included) inside that bound keeps the
/// guarantee.
pub const RECORD_PAYLOAD_MAX: usize = (256 << 20) - RECORD_HEADER_SIZE;
/// Bytes of the fixed part of a state payload (before the columns).
pub const STATE_FIXED_SIZE: usize = 8 + 32 + 8 + 16 + 8;
/// Bytes per account in a state payload: its address and its [`Account`].
pub const STATE_ROW_SIZE: usize = 32 + size_of::<Account>();
/// Bytes per account in a genesis payload: address and balance.
pub const GENESIS_ROW_SIZE: usize = 32 + 8;

const _: () = assert!(size_of::<FileHeader>() == FILE_HEADER_SIZE);
const _: () = assert!(size_of::<RecordHeader>() == RECORD_HEADER_SIZE);
const _: () = assert!(size_of::<IndexEntry>() == INDEX_ENTRY_SIZE);
// An index entry never straddles a 512-byte sector, so a power cut cannot tear one in half.
const _: () = assert!(512 % INDEX_ENTRY_SIZE == 0 && FILE_HEADER_SIZE.is_multiple_of(INDEX_ENTRY_SIZE));
const _: () = assert!(((RECORD_HEADER_SIZE + RECORD_PAYLOAD_MAX) as u64) * 8 <= 1 << 31);
const _: () = assert!(STATE_ROW_SIZE == 48);

/// CRC32C (Castagnoli) of `bytes`.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// What a file in the data directory holds; byte 10 of its header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum FileKind {
    /// `genesis`: the genesis balances.
    Genesis = 1,
    /// `segment-NNNNNNNN`: finalized blocks with their certificates.
    Segment = 2,
    /// `index`: height → (segment, offset).
    Index = 3,
    /// `state`: an account-state snapshot.
    State = 4,
}

/// What a record holds; byte 5 of its header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum RecordKind {
    /// Genesis balances ([`encode_genesis_payload`]).
    Genesis = 1,
    /// A block and its certificate ([`encode_block_payload`]).
    Block = 2,
    /// An account-state snapshot ([`encode_state_payload`]).
    State = 3,
}

impl RecordKind {
    fn from_byte(byte: u8) -> Option<RecordKind> {
        match byte {
            1 => Some(RecordKind::Genesis),
            2 => Some(RecordKind::Block),
            3 => Some(RecordKind::State),
            _ => None,
        }
    }
}

/// The 64 bytes at the start of every file.
///
/// ```text
/// offset size field
/// 0      8    magic       b"TESSERA\0"
/// 8      2    version     STORE_VERSION (1)
/// 10     1    kind        FileKind
/// 11     1    reserved    zero
/// 12     4    sequence    segment number (segments), zero (other files)
/// 16     32   genesis_id  BLAKE3 of the genesis payload: binds the file to its directory
/// 48     12   reserved    zero
/// 60     4    checksum    CRC32C of bytes 0..60
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct FileHeader {
    /// [`STORE_MAGIC`].
    pub magic: [u8; 8],
    /// [`STORE_VERSION`].
    pub version: u16,
    /// [`FileKind`] as a byte.
    pub kind: u8,
    /// Zero.
    pub reserved0: u8,
    /// Segment number for segments, zero otherwise.
    pub sequence: u32,
    /// [`genesis_id`] of the directory's genesis.
    pub genesis_id: Hash,
    /// Zero.
    pub reserved1: [u8; 12],
    /// CRC32C of the 60 bytes before it.
    pub checksum: u32,
}

impl FileHeader {
    /// A sealed header.
    pub fn new(kind: FileKind, sequence: u32, genesis_id: Hash) -> FileHeader {
        let mut header = FileHeader {
            magic: STORE_MAGIC,
            version: STORE_VERSION,
            kind: kind as u8,
            reserved0: 0,
            sequence,
            genesis_id,
            reserved1: [0; 12],
            checksum: 0,
        };
        header.checksum = checksum(&bytemuck::bytes_of(&header)[..FILE_HEADER_SIZE - 4]);
        header
    }

    /// Checks the header at the front of `bytes` (length, checksum, then every field).
    /// `genesis_id` of `None` accepts any (the genesis file, whose id is derived afterwards).
    ///
    /// # Errors
    /// The reason, for the caller to report at offset 0 of the file.
    pub fn check(
        bytes: &[u8],
        kind: FileKind,
        sequence: u32,
        genesis_id: Option<Hash>,
    ) -> Result<FileHeader, String> {
        let Some(raw) = bytes.first_chunk::<FILE_HEADER_SIZE>() else {
            return Err(format!(
                "file of {} bytes is shorter than its {FILE_HEADER_SIZE}-byte header",
                bytes.len()
            ));
        };
        let header: FileHeader = bytemuck::pod_read_unaligned(raw);
        let computed = checksum(&raw[..FILE_HEADER_SIZE - 4]);
        if header.checksum != computed {
            return Err(format!(
                "file header checksum {:#010x} does not match its contents ({computed:#010x})",
                header.checksum
            ));
        }
        if header.magic != STORE_MAGIC {
            return Err(format!("bad file magic {:02x?}", header.magic));
        }
        if header.version != STORE_VERSION {
            return Err(format!("unsupported store format version {}", header.version));
        }
        if header.reserved0 != 0 || header.reserved1 != [0; 12] {
            return Err("nonzero reserved bytes in the file header".to_string());
        }
        if header.kind != kind as u8 {
            return Err(format!("file header says kind {}, expected {kind:?} ({})", header.kind, kind as u8));
        }
        if header.sequence != sequence {
            return Err(format!("file header says sequence {}, expected {sequence}", header.sequence));
        }
        if let Some(expected) = genesis_id
            && header.genesis_id != expected
        {
            return Err(format!(
                "file belongs to the store with genesis {}, this directory's genesis is {expected}",
                header.genesis_id
            ));
        }
        Ok(header)
    }
}

/// The 40 bytes in front of every record's payload.
///
/// ```text
/// offset size field
/// 0      4    magic             b"TREC"
/// 4      1    version           RECORD_VERSION (1)
/// 5      1    kind              RecordKind
/// 6      2    reserved          zero
/// 8      8    height            block height (0 for genesis, the snapshot's height for state)
/// 16     4    segment           segment number the record was written to (0 outside segments)
/// 20     4    payload_size      bytes of payload after this header
/// 24     8    offset            byte offset of this header in its file
/// 32     4    payload_checksum  CRC32C of the payload
/// 36     4    header_checksum   CRC32C of bytes 0..36
/// ```
///
/// The header checksum covers the position the record was written at, so a record that lands
/// anywhere else (a misdirected write, or a copy from another segment) is detected even though
/// its own checksums are intact.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct RecordHeader {
    /// [`RECORD_MAGIC`].
    pub magic: [u8; 4],
    /// [`RECORD_VERSION`].
    pub version: u8,
    /// [`RecordKind`] as a byte.
    pub kind: u8,
    /// Zero.
    pub reserved: u16,
    /// Height the record belongs to.
    pub height: u64,
    /// Segment number the record was written to.
    pub segment: u32,
    /// Payload bytes after the header.
    pub payload_size: u32,
    /// Offset of the header within its file.
    pub offset: u64,
    /// CRC32C of the payload.
    pub payload_checksum: u32,
    /// CRC32C of the 36 header bytes before it.
    pub header_checksum: u32,
}

impl RecordHeader {
    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; RECORD_HEADER_SIZE] {
        bytemuck::cast(*self)
    }

    /// Header plus payload bytes.
    pub fn record_size(&self) -> u64 {
        RECORD_HEADER_SIZE as u64 + u64::from(self.payload_size)
    }
}

/// Where a record is expected: its kind, file position and (for blocks) height.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Place {
    /// Kind the record must have.
    pub kind: RecordKind,
    /// Segment number it must carry.
    pub segment: u32,
    /// File offset it must carry (and is read at).
    pub offset: u64,
}

/// Why the bytes at a place are not a sound record.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum RecordError {
    /// The bytes end before the header or the declared payload does.
    #[error("record needs {needed} bytes but only {available} remain in the file")]
    Incomplete {
        /// Bytes the record needs (header, or header plus declared payload).
        needed: u64,
        /// Bytes from the record's offset to the end of the file.
        available: u64,
    },
    /// The header's checksum does not match its bytes.
    #[error("record header checksum {stored:#010x} does not match its contents ({computed:#010x})")]
    HeaderChecksum {
        /// Stored checksum.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// A checksummed header with a field this build refuses.
    #[error("record header: {0}")]
    BadField(String),
    /// A sound record written for another place: a misdirected write or a copied record.
    #[error(
        "record was written as {kind} at segment {segment} offset {offset}, found at segment \
         {expected_segment} offset {expected_offset} (misdirected or copied)"
    )]
    Misplaced {
        /// Kind byte in the header.
        kind: u8,
        /// Segment in the header.
        segment: u32,
        /// Offset in the header.
        offset: u64,
        /// Where it was read.
        expected_segment: u32,
        /// Where it was read.
        expected_offset: u64,
    },
    /// The payload's checksum does not match its bytes.
    #[error("record payload checksum {stored:#010x} does not match its contents ({computed:#010x})")]
    PayloadChecksum {
        /// Stored checksum.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
}

/// A checked record: its header and its payload bytes.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// The header, checksum and fields verified.
    pub header: RecordHeader,
    /// The payload, checksum verified.
    pub payload: &'a [u8],
}

/// The sealed header for `payload` at `place` and `height`.
///
/// # Panics
/// If `payload` exceeds [`RECORD_PAYLOAD_MAX`]; callers check sizes first.
pub fn seal_record_header(place: Place, height: u64, payload: &[u8]) -> RecordHeader {
    assert!(payload.len() <= RECORD_PAYLOAD_MAX, "record payload of {} bytes", payload.len());
    let mut header = RecordHeader {
        magic: RECORD_MAGIC,
        version: RECORD_VERSION,
        kind: place.kind as u8,
        reserved: 0,
        height,
        segment: place.segment,
        payload_size: payload.len() as u32,
        offset: place.offset,
        payload_checksum: checksum(payload),
        header_checksum: 0,
    };
    header.header_checksum = checksum(&bytemuck::bytes_of(&header)[..RECORD_HEADER_SIZE - 4]);
    header
}

/// Encodes a record for `place` at `height` around `payload`.
///
/// # Panics
/// If `payload` exceeds [`RECORD_PAYLOAD_MAX`]; callers check sizes first.
pub fn encode_record(place: Place, height: u64, payload: &[u8]) -> Vec<u8> {
    let header = seal_record_header(place, height, payload);
    let mut out = Vec::with_capacity(RECORD_HEADER_SIZE + payload.len());
    out.extend_from_slice(bytemuck::bytes_of(&header));
    out.extend_from_slice(payload);
    // Pair assertion: what we are about to write reads back as itself.
    debug_assert!(check_record(&out, place).is_ok_and(|record| record.header == header));
    out
}

/// Encodes a block record at `place` in one buffer: the payload is serialised straight after
/// room for the header, which is sealed in place, so a block is copied once, not three times.
///
/// # Errors
/// The payload's size, if it exceeds [`RECORD_PAYLOAD_MAX`].
pub fn encode_block_record(
    place: Place,
    block: &Block,
    certificate: &QuorumCertificate,
) -> Result<(RecordHeader, Vec<u8>), usize> {
    // The transactions dominate; the rest (header fields, certificate) is a few hundred bytes
    // plus 64 per signature.
    let estimate = RECORD_HEADER_SIZE + block.body_size() + 256 + 72 * certificate.signatures.len();
    let mut out = Vec::with_capacity(estimate);
    out.resize(RECORD_HEADER_SIZE, 0);
    let mut out = postcard::to_extend(&(block, certificate), out)
        .expect("postcard into a Vec is infallible for blocks");
    let payload_size = out.len() - RECORD_HEADER_SIZE;
    if payload_size > RECORD_PAYLOAD_MAX {
        return Err(payload_size);
    }
    let header = seal_record_header(place, block.header.height, &out[RECORD_HEADER_SIZE..]);
    out[..RECORD_HEADER_SIZE].copy_from_slice(bytemuck::bytes_of(&header));
    debug_assert!(check_record(&out, place).is_ok_and(|record| record.header == header));
    Ok((header, out))
}

/// Checks the header only: length, checksum, then fields (magic, version, reserved, kind,
/// position, declared size). `bytes` starts at the record and may run past it.
///
/// # Errors
/// The first problem found.
pub fn check_record_header(bytes: &[u8], place: Place) -> Result<RecordHeader, RecordError> {
    let Some(raw) = bytes.first_chunk::<RECORD_HEADER_SIZE>() else {
        return Err(RecordError::Incomplete {
            needed: RECORD_HEADER_SIZE as u64,
            available: bytes.len() as u64,
        });
    };
    let header: RecordHeader = bytemuck::pod_read_unaligned(raw);
    let computed = checksum(&raw[..RECORD_HEADER_SIZE - 4]);
    if header.header_checksum != computed {
        return Err(RecordError::HeaderChecksum { stored: header.header_checksum, computed });
    }
    if header.magic != RECORD_MAGIC {
        return Err(RecordError::BadField(format!("bad record magic {:02x?}", header.magic)));
    }
    if header.version != RECORD_VERSION {
        return Err(RecordError::BadField(format!("unsupported record version {}", header.version)));
    }
    if header.reserved != 0 {
        return Err(RecordError::BadField(format!("nonzero reserved bytes {:#06x}", header.reserved)));
    }
    if RecordKind::from_byte(header.kind).is_none() {
        return Err(RecordError::BadField(format!("unknown record kind {}", header.kind)));
    }
    if header.kind != place.kind as u8 || header.segment != place.segment || header.offset != place.offset {
        return Err(RecordError::Misplaced {
            kind: header.kind,
            segment: header.segment,
            offset: header.offset,
            expected_segment: place.segment,
            expected_offset: place.offset,
        });
    }
    if header.payload_size as usize > RECORD_PAYLOAD_MAX {
        return Err(RecordError::BadField(format!(
            "payload of {} bytes exceeds the maximum of {RECORD_PAYLOAD_MAX}",
            header.payload_size
        )));
    }
    Ok(header)
}

/// Checks a whole record at the front of `bytes`: the header as [`check_record_header`], then
/// that the declared payload is present, then the payload checksum.
///
/// # Errors
/// The first problem found.
pub fn check_record(bytes: &[u8], place: Place) -> Result<Record<'_>, RecordError> {
    let header = check_record_header(bytes, place)?;
    let size = header.record_size();
    let Some(record) = bytes.get(..size as usize) else {
        return Err(RecordError::Incomplete { needed: size, available: bytes.len() as u64 });
    };
    let payload = &record[RECORD_HEADER_SIZE..];
    let computed = checksum(payload);
    if header.payload_checksum != computed {
        return Err(RecordError::PayloadChecksum { stored: header.payload_checksum, computed });
    }
    Ok(Record { header, payload })
}

/// One committed height's place: 32 bytes in the `index` file.
///
/// ```text
/// offset size field
/// 0      8    height           the block's height; entry n (from 0) holds height n + 1
/// 8      8    offset           the record's offset in its segment
/// 16     4    segment          the segment number
/// 20     4    record_size      header plus payload bytes
/// 24     4    record_checksum  the record's header_checksum
/// 28     4    checksum         CRC32C of bytes 0..28
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct IndexEntry {
    /// Height.
    pub height: u64,
    /// Offset of the record in its segment.
    pub offset: u64,
    /// Segment number.
    pub segment: u32,
    /// Header plus payload bytes.
    pub record_size: u32,
    /// The record header's checksum, binding the entry to exactly that record.
    pub record_checksum: u32,
    /// CRC32C of the 28 bytes before it.
    pub checksum: u32,
}

impl IndexEntry {
    /// A sealed entry pointing at `header`.
    pub fn new(header: &RecordHeader) -> IndexEntry {
        let mut entry = IndexEntry {
            height: header.height,
            offset: header.offset,
            segment: header.segment,
            record_size: header.record_size() as u32,
            record_checksum: header.header_checksum,
            checksum: 0,
        };
        entry.checksum = checksum(&bytemuck::bytes_of(&entry)[..INDEX_ENTRY_SIZE - 4]);
        entry
    }

    /// The entry's bytes.
    pub fn to_bytes(&self) -> [u8; INDEX_ENTRY_SIZE] {
        bytemuck::cast(*self)
    }

    /// Checks 32 bytes: checksum, then that the entry is for `height`.
    ///
    /// # Errors
    /// The reason.
    pub fn check(raw: &[u8; INDEX_ENTRY_SIZE], height: u64) -> Result<IndexEntry, String> {
        let entry: IndexEntry = bytemuck::pod_read_unaligned(raw);
        let computed = checksum(&raw[..INDEX_ENTRY_SIZE - 4]);
        if entry.checksum != computed {
            return Err(format!(
                "index entry checksum {:#010x} does not match its contents ({computed:#010x})",
                entry.checksum
            ));
        }
        if entry.height != height {
            return Err(format!("index entry says height {}, its position is height {height}", entry.height));
        }
        if (entry.record_size as usize) < RECORD_HEADER_SIZE
            || entry.record_size as usize > RECORD_HEADER_SIZE + RECORD_PAYLOAD_MAX
        {
            return Err(format!("index entry has impossible record size {}", entry.record_size));
        }
        Ok(entry)
    }
}

/// Which file of the data directory a problem or a tail is in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileRef {
    /// `genesis`.
    Genesis,
    /// `index`.
    Index,
    /// `state`.
    State,
    /// `segment-NNNNNNNN`.
    Segment(u32),
}

impl FileRef {
    /// The file's name inside the data directory.
    pub fn file_name(&self) -> String {
        match self {
            FileRef::Genesis => "genesis".to_string(),
            FileRef::Index => "index".to_string(),
            FileRef::State => "state".to_string(),
            FileRef::Segment(number) => segment_file_name(*number),
        }
    }
}

/// `segment-` and the number in eight decimal digits.
pub fn segment_file_name(number: u32) -> String {
    format!("segment-{number:08}")
}

/// Parses a segment file name; `None` for any other name.
pub fn parse_segment_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("segment-")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A problem that makes the directory unsound: where, and why.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Problem {
    /// The file.
    pub file: FileRef,
    /// Byte offset in it.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

impl Problem {
    fn new(file: FileRef, offset: u64, reason: impl Into<String>) -> Problem {
        Problem { file, offset, reason: reason.into() }
    }
}

/// Bytes at the end of a file left by a commit that never finished: `[offset, offset + size)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Tail {
    /// The file.
    pub file: FileRef,
    /// Where the unfinished write starts (the file is truncated to this length).
    pub offset: u64,
    /// Bytes from there to the end of the file.
    pub size: u64,
}

/// What [`check_directory`] found in a sound directory.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct DirCheck {
    /// Every committed height's entry, height 1 first; each record checked in full.
    pub entries: Vec<IndexEntry>,
    /// An unfinished final index write to drop, if any.
    pub index_tail: Option<Tail>,
    /// An unfinished final record write to drop, if any.
    pub segment_tail: Option<Tail>,
}

impl DirCheck {
    /// The last committed height (0: none).
    pub fn height(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Bytes in the torn tails.
    pub fn torn_bytes(&self) -> u64 {
        self.index_tail.map_or(0, |t| t.size) + self.segment_tail.map_or(0, |t| t.size)
    }
}

/// The recovery rule over a directory's bytes. `segments[n]` holds segment `n`'s bytes (the
/// caller has found segments `0..segments.len()` with no gap).
///
/// A commit writes its record at the end of the last segment, makes it durable, then appends
/// the index entry and makes that durable. So the index is the list of committed heights, and
/// only the final, unfinished commit can leave anything else behind: a partial index entry (or
/// a zero-filled one, after a power cut) and, in the last segment, at most one record of the
/// next height, complete or cut short, or zero fill. Those bytes are reported as tails to drop.
/// Anything else that is wrong is a [`Problem`]: a bad checksum, a misplaced record, a committed
/// record cut short, a gap, bytes after a closed segment's last record.
///
/// # Errors
/// The first problem, with its file and byte offset.
pub fn check_directory(genesis_id: Hash, index: &[u8], segments: &[&[u8]]) -> Result<DirCheck, Problem> {
    FileHeader::check(index, FileKind::Index, 0, Some(genesis_id))
        .map_err(|reason| Problem::new(FileRef::Index, 0, reason))?;
    if segments.is_empty() {
        return Err(Problem::new(FileRef::Segment(0), 0, "missing: a store always has segment 0"));
    }
    for (number, bytes) in segments.iter().enumerate() {
        let number = u32::try_from(number)
            .map_err(|_| Problem::new(FileRef::Segment(u32::MAX), 0, "more than 2^32 segments"))?;
        FileHeader::check(bytes, FileKind::Segment, number, Some(genesis_id))
            .map_err(|reason| Problem::new(FileRef::Segment(number), 0, reason))?;
    }

    let mut check = DirCheck::default();
    let (entries, index_tail) = check_index_entries(index)?;
    check.index_tail = index_tail;

    // Walk the committed records in order: each starts where the previous one ended, and a
    // new segment starts only once the previous one holds nothing more.
    let mut segment: u32 = 0;
    let mut cursor = FILE_HEADER_SIZE as u64;
    for (position, entry) in entries.iter().enumerate() {
        let index_offset = (FILE_HEADER_SIZE + position * INDEX_ENTRY_SIZE) as u64;
        if entry.segment != segment || entry.offset != cursor {
            let bytes = segments[segment as usize];
            let closes_segment = entry.segment == segment + 1
                && entry.offset == FILE_HEADER_SIZE as u64
                && cursor > FILE_HEADER_SIZE as u64;
            if !closes_segment {
                return Err(Problem::new(
                    FileRef::Index,
                    index_offset,
                    format!(
                        "index entry for height {} points at segment {} offset {}, the next record \
                         is at segment {segment} offset {cursor}",
                        entry.height, entry.segment, entry.offset
                    ),
                ));
            }
            if (bytes.len() as u64) != cursor {
                return Err(Problem::new(
                    FileRef::Segment(segment),
                    cursor,
                    format!(
                        "{} bytes after the last record of a closed segment",
                        bytes.len() as u64 - cursor.min(bytes.len() as u64)
                    ),
                ));
            }
            segment += 1;
            cursor = FILE_HEADER_SIZE as u64;
        }
        let Some(bytes) = segments.get(segment as usize) else {
            return Err(Problem::new(
                FileRef::Segment(segment),
                0,
                format!("missing, but the index places height {} in it", entry.height),
            ));
        };
        let place = Place { kind: RecordKind::Block, segment, offset: cursor };
        let tail = bytes.get(cursor as usize..).unwrap_or(&[]);
        let record = check_record(tail, place).map_err(|error| {
            Problem::new(FileRef::Segment(segment), cursor, format!("height {}: {error}", entry.height))
        })?;
        if record.header.height != entry.height
            || record.header.record_size() != u64::from(entry.record_size)
            || record.header.header_checksum != entry.record_checksum
        {
            return Err(Problem::new(
                FileRef::Segment(segment),
                cursor,
                format!(
                    "record (height {}, {} bytes) is not the one the index entry for height {} names",
                    record.header.height,
                    record.header.record_size(),
                    entry.height
                ),
            ));
        }
        cursor += record.header.record_size();
    }
    let next_height = entries.len() as u64 + 1;
    check.entries = entries;

    // After the last committed record: at most one more segment, and at most one unfinished
    // record.
    let last = segments.len() - 1;
    let current = segment as usize;
    if last > current + 1 {
        return Err(Problem::new(
            FileRef::Segment(current as u32 + 2),
            0,
            format!("segment exists but the last committed record is in segment {current}"),
        ));
    }
    let current_len = segments[current].len() as u64;
    if last == current + 1 {
        if current_len != cursor {
            return Err(Problem::new(
                FileRef::Segment(current as u32),
                cursor,
                "bytes after the last committed record, but a newer segment exists",
            ));
        }
        segment += 1;
        cursor = FILE_HEADER_SIZE as u64;
    }
    let bytes = segments[segment as usize];
    check.segment_tail = check_unfinished_record(bytes, segment, cursor, next_height)?;
    Ok(check)
}

/// The index's entries, and its torn tail if any.
fn check_index_entries(index: &[u8]) -> Result<(Vec<IndexEntry>, Option<Tail>), Problem> {
    let body = &index[FILE_HEADER_SIZE..];
    let whole = body.len() / INDEX_ENTRY_SIZE;
    let partial = body.len() % INDEX_ENTRY_SIZE;
    let mut entries = Vec::with_capacity(whole);
    let mut tail = None;
    for (position, raw) in body.chunks_exact(INDEX_ENTRY_SIZE).enumerate() {
        let offset = (FILE_HEADER_SIZE + position * INDEX_ENTRY_SIZE) as u64;
        let raw: &[u8; INDEX_ENTRY_SIZE] = raw.try_into().expect("chunks_exact yields whole entries");
        match IndexEntry::check(raw, position as u64 + 1) {
            Ok(entry) => entries.push(entry),
            // A zero-filled last entry is an append whose data never reached the disk (the size
            // did, as a power cut can leave it).
            Err(_) if position + 1 == whole && partial == 0 && raw.iter().all(|b| *b == 0) => {
                tail = Some(Tail { file: FileRef::Index, offset, size: INDEX_ENTRY_SIZE as u64 });
            }
            Err(reason) => return Err(Problem::new(FileRef::Index, offset, reason)),
        }
    }
    if partial != 0 {
        let offset = (FILE_HEADER_SIZE + whole * INDEX_ENTRY_SIZE) as u64;
        tail = Some(Tail { file: FileRef::Index, offset, size: partial as u64 });
    }
    Ok((entries, tail))
}

/// Classifies the bytes of segment `segment` from `cursor` to its end, which follow the last
/// committed record: nothing, or the remains of one unfinished commit of `height`.
fn check_unfinished_record(
    bytes: &[u8],
    segment: u32,
    cursor: u64,
    height: u64,
) -> Result<Option<Tail>, Problem> {
    let available = (bytes.len() as u64).saturating_sub(cursor);
    if available == 0 {
        return Ok(None);
    }
    let tail = Tail { file: FileRef::Segment(segment), offset: cursor, size: available };
    let rest = &bytes[cursor as usize..];
    if rest.len() < RECORD_HEADER_SIZE || rest.iter().all(|b| *b == 0) {
        // A header cut short, or zero fill: the start of a write that did not finish.
        return Ok(Some(tail));
    }
    let place = Place { kind: RecordKind::Block, segment, offset: cursor };
    match check_record_header(rest, place) {
        Ok(header) if header.height == height => {
            if header.record_size() >= available {
                // The next height's record, cut short or complete, whose index entry never
                // became durable: the commit did not happen.
                Ok(Some(tail))
            } else {
                Err(Problem::new(
                    FileRef::Segment(segment),
                    cursor + header.record_size(),
                    format!(
                        "{} bytes after the unfinished record for height {height}",
                        available - header.record_size()
                    ),
                ))
            }
        }
        Ok(header) => Err(Problem::new(
            FileRef::Segment(segment),
            cursor,
            format!("uncommitted record for height {}, expected {height}", header.height),
        )),
        Err(error) => Err(Problem::new(
            FileRef::Segment(segment),
            cursor,
            format!("bytes after the last committed record are not an unfinished write: {error}"),
        )),
    }
}

/// BLAKE3, in the `tessera 2026 store genesis` domain, of a genesis payload: the identity of a
/// data directory, stamped into every file header.
pub fn genesis_id(genesis_payload: &[u8]) -> Hash {
    Hash::in_domain("tessera 2026 store genesis", &[genesis_payload])
}

/// Genesis payload: `count` u64, then per account its 32-byte address and u64 balance.
pub fn encode_genesis_payload(balances: &[([u8; 32], u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + balances.len() * GENESIS_ROW_SIZE);
    out.extend_from_slice(&(balances.len() as u64).to_le_bytes());
    for (key, balance) in balances {
        out.extend_from_slice(key);
        out.extend_from_slice(&balance.to_le_bytes());
    }
    out
}

/// Decodes a genesis payload.
///
/// # Errors
/// A length that does not match the declared count.
pub fn decode_genesis_payload(payload: &[u8]) -> Result<Vec<([u8; 32], u64)>, String> {
    let (count, rows) = split_u64(payload).ok_or("genesis payload shorter than its count")?;
    let expected = usize::try_from(count)
        .ok()
        .and_then(|count| count.checked_mul(GENESIS_ROW_SIZE))
        .ok_or_else(|| format!("genesis declares an impossible {count} accounts"))?;
    if rows.len() != expected {
        return Err(format!("genesis declares {count} accounts but holds {} bytes of rows", rows.len()));
    }
    Ok(rows
        .chunks_exact(GENESIS_ROW_SIZE)
        .map(|row| {
            let (key, balance) = row.split_at(32);
            (key.try_into().expect("32 bytes"), u64::from_le_bytes(balance.try_into().expect("8 bytes")))
        })
        .collect())
}

/// A whole `genesis` file for these balances, and its genesis id.
///
/// # Panics
/// If the payload exceeds [`RECORD_PAYLOAD_MAX`] (over six million accounts).
pub fn encode_genesis_file(balances: &[([u8; 32], u64)]) -> (Hash, Vec<u8>) {
    let payload = encode_genesis_payload(balances);
    let id = genesis_id(&payload);
    let mut out = bytemuck::bytes_of(&FileHeader::new(FileKind::Genesis, 0, id)).to_vec();
    let place = Place { kind: RecordKind::Genesis, segment: 0, offset: FILE_HEADER_SIZE as u64 };
    out.extend_from_slice(&encode_record(place, 0, &payload));
    (id, out)
}

/// Checks a whole `genesis` file; returns its id and balances.
///
/// # Errors
/// The first problem, with its offset.
pub fn decode_genesis_file(bytes: &[u8]) -> Result<(Hash, Vec<([u8; 32], u64)>), Problem> {
    let header = FileHeader::check(bytes, FileKind::Genesis, 0, None)
        .map_err(|reason| Problem::new(FileRef::Genesis, 0, reason))?;
    let payload = single_record(bytes, FileRef::Genesis, RecordKind::Genesis)?.payload;
    let id = genesis_id(payload);
    if id != header.genesis_id {
        return Err(Problem::new(FileRef::Genesis, 0, "file header's genesis id is not the payload's hash"));
    }
    let balances = decode_genesis_payload(payload).map_err(|reason| {
        Problem::new(FileRef::Genesis, (FILE_HEADER_SIZE + RECORD_HEADER_SIZE) as u64, reason)
    })?;
    Ok((id, balances))
}

/// The one record after a file header, filling the rest of the file.
fn single_record(bytes: &[u8], file: FileRef, kind: RecordKind) -> Result<Record<'_>, Problem> {
    let offset = FILE_HEADER_SIZE as u64;
    let place = Place { kind, segment: 0, offset };
    let record = check_record(&bytes[FILE_HEADER_SIZE..], place)
        .map_err(|error| Problem::new(file, offset, error.to_string()))?;
    let end = offset + record.header.record_size();
    if end != bytes.len() as u64 {
        return Err(Problem::new(
            file,
            end,
            format!("{} bytes after the file's record", bytes.len() as u64 - end),
        ));
    }
    Ok(record)
}

/// An account-state snapshot as stored: the ledger's columns at `height`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StateSnapshot {
    /// Height of the last block applied.
    pub height: u64,
    /// State root of these columns (the ledger recomputes and compares it).
    pub state_root: Hash,
    /// Account addresses in slot order.
    pub keys: Vec<[u8; 32]>,
    /// Accounts in slot order.
    pub accounts: Vec<Account>,
    /// Fees burned so far.
    pub burned: u64,
    /// Genesis supply.
    pub supply: u128,
}

/// A borrowed snapshot, for encoding without copying the columns.
#[derive(Clone, Copy, Debug)]
pub struct StateView<'a> {
    /// Height of the last block applied.
    pub height: u64,
    /// State root of these columns.
    pub state_root: Hash,
    /// Account addresses in slot order.
    pub keys: &'a [[u8; 32]],
    /// Accounts in slot order (as long as `keys`).
    pub accounts: &'a [Account],
    /// Fees burned so far.
    pub burned: u64,
    /// Genesis supply.
    pub supply: u128,
}

/// State payload: height u64, state root (32), burned u64, supply u128, count u64, then the
/// address column (32 bytes each) and the account column (16 bytes each: balance, nonce).
///
/// # Panics
/// If the columns differ in length.
pub fn encode_state_payload(state: StateView<'_>) -> Vec<u8> {
    assert_eq!(state.keys.len(), state.accounts.len(), "one account per address");
    let mut out = Vec::with_capacity(STATE_FIXED_SIZE + state.keys.len() * STATE_ROW_SIZE);
    out.extend_from_slice(&state.height.to_le_bytes());
    out.extend_from_slice(&state.state_root.0);
    out.extend_from_slice(&state.burned.to_le_bytes());
    out.extend_from_slice(&state.supply.to_le_bytes());
    out.extend_from_slice(&(state.keys.len() as u64).to_le_bytes());
    out.extend_from_slice(bytemuck::cast_slice(state.keys));
    out.extend_from_slice(bytemuck::cast_slice(state.accounts));
    out
}

/// Decodes a state payload.
///
/// # Errors
/// A length that does not match the declared count.
pub fn decode_state_payload(payload: &[u8]) -> Result<StateSnapshot, String> {
    let Some((fixed, columns)) = payload.split_first_chunk::<STATE_FIXED_SIZE>() else {
        return Err(format!("state payload of {} bytes is shorter than its fixed part", payload.len()));
    };
    let read_u64 = |at: usize| u64::from_le_bytes(fixed[at..at + 8].try_into().expect("8 bytes"));
    let height = read_u64(0);
    let state_root = Hash(fixed[8..40].try_into().expect("32 bytes"));
    let burned = read_u64(40);
    let supply = u128::from_le_bytes(fixed[48..64].try_into().expect("16 bytes"));
    let count = read_u64(64);
    let expected = usize::try_from(count)
        .ok()
        .and_then(|count| count.checked_mul(STATE_ROW_SIZE))
        .ok_or_else(|| format!("state declares an impossible {count} accounts"))?;
    if columns.len() != expected {
        return Err(format!("state declares {count} accounts but holds {} bytes of columns", columns.len()));
    }
    let (keys, accounts) = columns.split_at(count as usize * 32);
    Ok(StateSnapshot {
        height,
        state_root,
        keys: keys.chunks_exact(32).map(|key| key.try_into().expect("32 bytes")).collect(),
        accounts: accounts.chunks_exact(size_of::<Account>()).map(bytemuck::pod_read_unaligned).collect(),
        burned,
        supply,
    })
}

/// A whole `state` file for this snapshot, or `None` if its payload exceeds
/// [`RECORD_PAYLOAD_MAX`].
pub fn encode_state_file(genesis_id: Hash, state: StateView<'_>) -> Option<Vec<u8>> {
    let payload = encode_state_payload(state);
    if payload.len() > RECORD_PAYLOAD_MAX {
        return None;
    }
    let mut out = bytemuck::bytes_of(&FileHeader::new(FileKind::State, 0, genesis_id)).to_vec();
    let place = Place { kind: RecordKind::State, segment: 0, offset: FILE_HEADER_SIZE as u64 };
    out.extend_from_slice(&encode_record(place, state.height, &payload));
    Some(out)
}

/// Checks a whole `state` file of the directory with `genesis_id`.
///
/// # Errors
/// The first problem, with its offset.
pub fn decode_state_file(bytes: &[u8], genesis_id: Hash) -> Result<StateSnapshot, Problem> {
    FileHeader::check(bytes, FileKind::State, 0, Some(genesis_id))
        .map_err(|reason| Problem::new(FileRef::State, 0, reason))?;
    let record = single_record(bytes, FileRef::State, RecordKind::State)?;
    let payload_offset = (FILE_HEADER_SIZE + RECORD_HEADER_SIZE) as u64;
    let state = decode_state_payload(record.payload)
        .map_err(|reason| Problem::new(FileRef::State, payload_offset, reason))?;
    if state.height != record.header.height {
        return Err(Problem::new(
            FileRef::State,
            FILE_HEADER_SIZE as u64,
            format!("record height {} but payload height {}", record.header.height, state.height),
        ));
    }
    Ok(state)
}

/// A segment file's first bytes.
pub fn encode_segment_header(number: u32, genesis_id: Hash) -> [u8; FILE_HEADER_SIZE] {
    bytemuck::cast(FileHeader::new(FileKind::Segment, number, genesis_id))
}

/// An index file's first bytes.
pub fn encode_index_header(genesis_id: Hash) -> [u8; FILE_HEADER_SIZE] {
    bytemuck::cast(FileHeader::new(FileKind::Index, 0, genesis_id))
}

/// A block record's payload: postcard of the block, then of its certificate.
///
/// # Panics
/// Never for these types: postcard into a `Vec` cannot fail for them.
pub fn encode_block_payload(block: &Block, certificate: &QuorumCertificate) -> Vec<u8> {
    postcard::to_allocvec(&(block, certificate)).expect("postcard into a Vec is infallible for blocks")
}

/// Decodes a block record's payload and checks that it is the block for `height` and that the
/// certificate certifies it.
///
/// # Errors
/// A payload that does not decode, leaves bytes over, or does not fit its height.
pub fn decode_block_payload(payload: &[u8], height: u64) -> Result<(Block, QuorumCertificate), String> {
    let ((block, certificate), rest) = postcard::take_from_bytes::<(Block, QuorumCertificate)>(payload)
        .map_err(|error| format!("block payload does not decode: {error}"))?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the block payload", rest.len()));
    }
    if block.header.height != height {
        return Err(format!("record for height {height} holds block {}", block.header.height));
    }
    if block.header.txn_count as usize != block.txns.len() {
        return Err(format!(
            "block {height} header says {} transactions, body has {}",
            block.header.txn_count,
            block.txns.len()
        ));
    }
    if certificate.height != height || certificate.block != block.header.hash() {
        return Err(format!("certificate stored with block {height} does not certify it"));
    }
    Ok((block, certificate))
}

fn split_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*head), rest))
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::block::{BlockHeader, Signature, VoteKind};
    use crate::txn::{Txn, TxnBody, TxnSignature};

    fn block_at(height: u64, txns: usize) -> (Block, QuorumCertificate) {
        let txns: Vec<Txn> = (0..txns)
            .map(|i| Txn {
                body: TxnBody {
                    chain_id: 1,
                    reserved: 0,
                    sender: [i as u8; 32],
                    recipient: [7; 32],
                    amount: height,
                    fee: 1,
                    nonce: i as u64,
                },
                signature: TxnSignature([3; 64]),
            })
            .collect();
        let header = BlockHeader {
            height,
            view: height,
            timestamp_ms: height * 10,
            proposer: 0,
            txn_count: txns.len() as u32,
            parent: Hash::ZERO,
            txn_root: Block::compute_txn_root(&txns),
            state_root: Hash([height as u8; 32]),
        };
        let block = Block { header, txns };
        let certificate = QuorumCertificate {
            kind: VoteKind::Commit,
            view: height,
            height,
            block: header.hash(),
            signers: vec![0, 1, 2],
            signatures: vec![Signature([9; 64]); 3],
        };
        (block, certificate)
    }

    /// An index and segments holding `heights` blocks, rolling over past `segment_max` bytes.
    pub(crate) fn image(heights: u64, segment_max: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let id = crate::fuzz::fuzz_genesis_id();
        let mut index = encode_index_header(id).to_vec();
        let mut segments = vec![encode_segment_header(0, id).to_vec()];
        for height in 1..=heights {
            let (block, certificate) = block_at(height, (height % 3) as usize);
            let payload = encode_block_payload(&block, &certificate);
            let mut current = segments.len() - 1;
            if segments[current].len() > FILE_HEADER_SIZE
                && segments[current].len() + RECORD_HEADER_SIZE + payload.len() > segment_max
            {
                segments.push(encode_segment_header(segments.len() as u32, id).to_vec());
                current += 1;
            }
            let place = Place {
                kind: RecordKind::Block,
                segment: current as u32,
                offset: segments[current].len() as u64,
            };
            let record = encode_record(place, height, &payload);
            let header = check_record_header(&record, place).unwrap();
            segments[current].extend_from_slice(&record);
            index.extend_from_slice(&IndexEntry::new(&header).to_bytes());
        }
        (index, segments)
    }

    fn check(index: &[u8], segments: &[Vec<u8>]) -> Result<DirCheck, Problem> {
        let segments: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
        check_directory(crate::fuzz::fuzz_genesis_id(), index, &segments)
    }

    #[test]
    fn sound_image_checks_clean() {
        let (index, segments) = image(12, 700);
        assert!(segments.len() > 2);
        let found = check(&index, &segments).unwrap();
        assert_eq!(found.height(), 12);
        assert_eq!(found.torn_bytes(), 0);
    }

    #[test]
    fn unfinished_commits_are_tails_and_nothing_else_is() {
        let (index, segments) = image(5, 1 << 20);
        // A record written whose index entry is absent: drop it whole.
        let (short_index, _) = image(4, 1 << 20);
        let found = check(&short_index, &segments).unwrap();
        assert_eq!(found.height(), 4);
        let tail = found.segment_tail.unwrap();
        assert_eq!(tail.offset + tail.size, segments[0].len() as u64);
        // And cut in half.
        let mut cut = segments.clone();
        cut[0].truncate((tail.offset + tail.size / 2) as usize);
        assert_eq!(check(&short_index, &cut).unwrap().segment_tail.unwrap().size, tail.size / 2);
        // A partial index entry.
        let mut partial = index.clone();
        partial.truncate(index.len() - 5);
        let found = check(&partial, &segments).unwrap();
        assert_eq!(found.height(), 4);
        assert_eq!(found.index_tail.unwrap().size, 27);
        // A zero-filled final index entry.
        let mut zeroed = index.clone();
        let end = zeroed.len();
        zeroed[end - 32..].fill(0);
        assert_eq!(check(&zeroed, &segments).unwrap().index_tail.unwrap().size, 32);
        // Two zeroed entries are not one unfinished write.
        zeroed[end - 64..].fill(0);
        assert_eq!(check(&zeroed, &segments).unwrap_err().offset, (end - 64) as u64);
        // A committed record cut short is corruption, not a tail.
        let mut cut = segments.clone();
        let len = cut[0].len();
        cut[0].truncate(len - 1);
        let problem = check(&index, &cut).unwrap_err();
        assert_eq!(problem.file, FileRef::Segment(0));
    }

    #[test]
    fn misdirected_record_is_named() {
        let (index, mut segments) = image(10, 600);
        assert!(segments.len() >= 3);
        // Copy segment 1's first record over segment 2's first record.
        let size = check_record_header(
            &segments[1][FILE_HEADER_SIZE..],
            Place { kind: RecordKind::Block, segment: 1, offset: FILE_HEADER_SIZE as u64 },
        )
        .unwrap()
        .record_size() as usize;
        let size = size.min(segments[2].len() - FILE_HEADER_SIZE);
        let copy = segments[1][FILE_HEADER_SIZE..FILE_HEADER_SIZE + size].to_vec();
        segments[2][FILE_HEADER_SIZE..FILE_HEADER_SIZE + size].copy_from_slice(&copy);
        let problem = check(&index, &segments).unwrap_err();
        assert_eq!((problem.file, problem.offset), (FileRef::Segment(2), FILE_HEADER_SIZE as u64));
        assert!(problem.reason.contains("misdirected"), "{}", problem.reason);
    }

    #[test]
    fn every_bit_flip_is_caught_with_its_place() {
        let (index, segments) = image(4, 1 << 20);
        for byte in (0..segments[0].len()).step_by(7) {
            let mut flipped = segments.clone();
            flipped[0][byte] ^= 1 << (byte % 8);
            let problem = check(&index, &flipped).unwrap_err();
            assert_eq!(problem.file, FileRef::Segment(0));
            assert!(problem.offset <= byte as u64, "problem at {} for flip at {byte}", problem.offset);
        }
        for byte in 0..index.len() {
            let mut flipped = index.clone();
            flipped[byte] ^= 0x80;
            let problem = check(&flipped, &segments).unwrap_err();
            assert_eq!(problem.file, FileRef::Index, "flip at {byte}");
        }
    }

    #[test]
    fn genesis_and_state_files_round_trip_and_refuse_damage() {
        let balances = vec![([1; 32], 5), ([2; 32], 7)];
        let (id, file) = encode_genesis_file(&balances);
        assert_eq!(decode_genesis_file(&file).unwrap(), (id, balances));
        for byte in 0..file.len() {
            let mut bad = file.clone();
            bad[byte] ^= 4;
            assert!(decode_genesis_file(&bad).is_err(), "flip at {byte}");
        }
        let keys = [[1; 32], [2; 32]];
        let accounts = [Account { balance: 4, nonce: 1 }, Account { balance: 7, nonce: 0 }];
        let view = StateView {
            height: 9,
            state_root: Hash([5; 32]),
            keys: &keys,
            accounts: &accounts,
            burned: 1,
            supply: 12,
        };
        let state = encode_state_file(id, view).unwrap();
        let back = decode_state_file(&state, id).unwrap();
        assert_eq!(
            (back.height, back.keys.as_slice(), back.accounts.as_slice()),
            (9, &keys[..], &accounts[..])
        );
        assert!(decode_state_file(&state, Hash::ZERO).is_err(), "another directory's state");
        assert!(decode_state_file(&state[..state.len() - 1], id).is_err());
    }

    proptest! {
        #[test]
        fn record_round_trips_and_binds_its_place(
            payload in prop::collection::vec(any::<u8>(), 0..600),
            height in any::<u64>(),
            segment in 0u32..1000,
            offset in 0u64..1 << 40,
            flip in any::<prop::sample::Index>(),
        ) {
            let place = Place { kind: RecordKind::Block, segment, offset };
            let bytes = encode_record(place, height, &payload);
            let record = check_record(&bytes, place).unwrap();
            prop_assert_eq!(record.payload, payload.as_slice());
            prop_assert_eq!(record.header.height, height);
            // Trailing bytes belong to the next record, not this one.
            let mut longer = bytes.clone();
            longer.extend_from_slice(&[1, 2, 3]);
            prop_assert_eq!(check_record(&longer, place).unwrap().payload, payload.as_slice());
            // Anywhere else, it is refused.
            let elsewhere = Place { segment: segment + 1, ..place };
            let is_misplaced = matches!(check_record(&bytes, elsewhere), Err(RecordError::Misplaced { .. }));
            prop_assert!(is_misplaced);
            let moved = Place { offset: offset + 1, ..place };
            prop_assert!(check_record(&bytes, moved).is_err());
            let as_state = Place { kind: RecordKind::State, ..place };
            prop_assert!(check_record(&bytes, as_state).is_err());
            // Any single bit flip is caught.
            let mut flipped = bytes.clone();
            let bit = flip.index(bytes.len() * 8);
            flipped[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(check_record(&flipped, place).is_err());
            // Any truncation is incomplete.
            let cut = flip.index(bytes.len());
            let is_incomplete = matches!(check_record(&bytes[..cut], place), Err(RecordError::Incomplete { .. }));
            prop_assert!(is_incomplete);
        }

        #[test]
        fn block_payload_round_trips(height in 1u64..1 << 50, txns in 0usize..5) {
            let (block, certificate) = block_at(height, txns);
            let payload = encode_block_payload(&block, &certificate);
            let place = Place { kind: RecordKind::Block, segment: 3, offset: 4096 };
            let (header, record) = encode_block_record(place, &block, &certificate).unwrap();
            prop_assert_eq!(&record, &encode_record(place, height, &payload));
            prop_assert_eq!(header, check_record_header(&record, place).unwrap());
            prop_assert_eq!(decode_block_payload(&payload, height).unwrap(), (block, certificate));
            prop_assert!(decode_block_payload(&payload, height + 1).is_err());
        }

        #[test]
        fn state_payload_round_trips(rows in prop::collection::vec((any::<[u8; 32]>(), any::<u64>(), any::<u64>()), 0..40)) {
            let keys: Vec<[u8; 32]> = rows.iter().map(|r| r.0).collect();
            let accounts: Vec<Account> = rows.iter().map(|r| Account { balance: r.1, nonce: r.2 }).collect();
            let view = StateView { height: 3, state_root: Hash([1; 32]), keys: &keys, accounts: &accounts, burned: 4, supply: 99 };
            let back = decode_state_payload(&encode_state_payload(view)).unwrap();
            prop_assert_eq!(back.keys, keys);
            prop_assert_eq!(back.accounts, accounts);
            prop_assert_eq!((back.height, back.burned, back.supply), (3, 4, 99));
        }
    }
}
