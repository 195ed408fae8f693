//! Record framing: the header at the start of every file, and the checksummed, position-bound
//! header in front of every record's payload.
//!
//! Bird's eye view: a [`FileHeader`] names the file's kind, its sequence number and the
//! directory's genesis id; a [`RecordHeader`] binds a payload to its kind, its height, and the
//! segment and byte offset it was written at. Checks look at the length first, then the
//! checksum, then the fields.

use bytemuck::{Pod, Zeroable};

use crate::hash::Hash;

/// First eight bytes of every file in a data directory.
pub const STORE_MAGIC: [u8; 8] = *b"TESSERA\0";
/// Format version in every file header. Any other version is refused. 2 since consensus
/// signatures are bound to the chain: a version 1 directory holds certificates no node of this
/// version verifies (and would serve them, and be banned for it).
pub const STORE_VERSION: u16 = 2;
/// First four bytes of every record.
pub const RECORD_MAGIC: [u8; 4] = *b"TREC";
/// Record format version. Any other version is refused.
pub const RECORD_VERSION: u8 = 1;
/// Bytes in a [`FileHeader`].
pub const FILE_HEADER_SIZE: usize = 64;
/// Bytes in a [`RecordHeader`].
pub const RECORD_HEADER_SIZE: usize = 40;

/// Largest record payload. CRC32C detects every error of up to three bits in messages of up to
/// 2^31 bits (256 MiB); keeping a record (header included) inside that bound keeps the
/// guarantee.
pub const RECORD_PAYLOAD_MAX: usize = (256 << 20) - RECORD_HEADER_SIZE;

const _: () = assert!(size_of::<FileHeader>() == FILE_HEADER_SIZE);
const _: () = assert!(size_of::<RecordHeader>() == RECORD_HEADER_SIZE);
const _: () = assert!(((RECORD_HEADER_SIZE + RECORD_PAYLOAD_MAX) as u64) * 8 <= 1 << 31);

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
    /// `state-log`: the state deltas written since the snapshot.
    StateLog = 5,
    /// `state-index`: the address index of the `state` snapshot's accounts.
    StateIndex = 6,
}

/// What a record holds; byte 5 of its header.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum RecordKind {
    /// Genesis balances ([`encode_genesis_payload`](super::encode_genesis_payload)).
    Genesis = 1,
    /// A block and its certificate ([`encode_block_payload`](super::encode_block_payload)).
    Block = 2,
    /// An account-state snapshot ([`encode_state_payload`](super::encode_state_payload)).
    State = 3,
    /// The accounts a run of blocks changed ([`encode_delta_payload`](super::encode_delta_payload)).
    StateDelta = 4,
}

impl RecordKind {
    fn from_byte(byte: u8) -> Option<RecordKind> {
        match byte {
            1 => Some(RecordKind::Genesis),
            2 => Some(RecordKind::Block),
            3 => Some(RecordKind::State),
            4 => Some(RecordKind::StateDelta),
            _ => None,
        }
    }
}

/// The 64 bytes at the start of every file.
///
/// ```text
/// offset size field
/// 0      8    magic       b"TESSERA\0"
/// 8      2    version     STORE_VERSION (2)
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
    /// [`genesis_id`](super::genesis_id) of the directory's genesis.
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
    /// The first problem found, for the caller to report at offset 0 of the file.
    pub fn check(
        bytes: &[u8],
        kind: FileKind,
        sequence: u32,
        genesis_id: Option<Hash>,
    ) -> Result<FileHeader, FileHeaderError> {
        let Some(raw) = bytes.first_chunk::<FILE_HEADER_SIZE>() else {
            return Err(FileHeaderError::Short { length: bytes.len() });
        };
        let header: FileHeader = bytemuck::pod_read_unaligned(raw);
        let computed = checksum(&raw[..FILE_HEADER_SIZE - 4]);
        if header.checksum != computed {
            return Err(FileHeaderError::Checksum { stored: header.checksum, computed });
        }
        if header.magic != STORE_MAGIC {
            return Err(FileHeaderError::BadMagic { found: header.magic });
        }
        if header.version != STORE_VERSION {
            return Err(FileHeaderError::UnsupportedVersion { found: header.version });
        }
        if header.reserved0 != 0 || header.reserved1 != [0; 12] {
            return Err(FileHeaderError::NonzeroReserved {
                reserved0: header.reserved0,
                reserved1: header.reserved1,
            });
        }
        if header.kind != kind as u8 {
            return Err(FileHeaderError::WrongKind { found: header.kind, expected: kind });
        }
        if header.sequence != sequence {
            return Err(FileHeaderError::WrongSequence { found: header.sequence, expected: sequence });
        }
        if let Some(expected) = genesis_id
            && header.genesis_id != expected
        {
            return Err(FileHeaderError::WrongGenesis { found: header.genesis_id, expected });
        }
        Ok(header)
    }
}

/// Why the bytes at the front of a file are not the header it should have.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum FileHeaderError {
    /// The file ends before its header does.
    #[error("file of {length} bytes is shorter than its {FILE_HEADER_SIZE}-byte header")]
    Short {
        /// Bytes in the file.
        length: usize,
    },
    /// The header's checksum does not match its bytes.
    #[error("file header checksum {stored:#010x} does not match its contents ({computed:#010x})")]
    Checksum {
        /// Stored checksum.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// Not [`STORE_MAGIC`].
    #[error("bad file magic {found:02x?}")]
    BadMagic {
        /// The magic bytes read.
        found: [u8; 8],
    },
    /// Not [`STORE_VERSION`].
    #[error(
        "unsupported store format version {found} (this release reads 2; a version 1 directory holds consensus \
         signatures made before they named their chain: start the network again from a new genesis, \
         docs/consensus.md)"
    )]
    UnsupportedVersion {
        /// The version read.
        found: u16,
    },
    /// A reserved byte is not zero.
    #[error("nonzero reserved bytes in the file header")]
    NonzeroReserved {
        /// Byte 11.
        reserved0: u8,
        /// Bytes 48..60.
        reserved1: [u8; 12],
    },
    /// A header for another kind of file.
    #[error("file header says kind {found}, expected {expected:?} ({})", *.expected as u8)]
    WrongKind {
        /// Kind byte read.
        found: u8,
        /// Kind the file must have.
        expected: FileKind,
    },
    /// A segment header with another segment's number (or a nonzero number elsewhere).
    #[error("file header says sequence {found}, expected {expected}")]
    WrongSequence {
        /// Sequence read.
        found: u32,
        /// Sequence the file must have.
        expected: u32,
    },
    /// A file of another data directory.
    #[error("file belongs to the store with genesis {found}, this directory's genesis is {expected}")]
    WrongGenesis {
        /// Genesis id in the header.
        found: Hash,
        /// This directory's genesis id.
        expected: Hash,
    },
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
    /// A checksummed header whose magic is not [`RECORD_MAGIC`].
    #[error("record header: bad record magic {found:02x?}")]
    BadMagic {
        /// The magic bytes read.
        found: [u8; 4],
    },
    /// A checksummed header of a record version other than [`RECORD_VERSION`].
    #[error("record header: unsupported record version {found}")]
    UnsupportedVersion {
        /// The version read.
        found: u8,
    },
    /// A checksummed header whose reserved bytes are not zero.
    #[error("record header: nonzero reserved bytes {found:#06x}")]
    NonzeroReserved {
        /// The reserved field read.
        found: u16,
    },
    /// A checksummed header naming no [`RecordKind`].
    #[error("record header: unknown record kind {found}")]
    UnknownKind {
        /// The kind byte read.
        found: u8,
    },
    /// A checksummed header declaring more than [`RECORD_PAYLOAD_MAX`] bytes of payload.
    #[error("record header: payload of {size} bytes exceeds the maximum of {RECORD_PAYLOAD_MAX}")]
    PayloadTooLarge {
        /// The declared payload size.
        size: u32,
    },
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
        return Err(RecordError::BadMagic { found: header.magic });
    }
    if header.version != RECORD_VERSION {
        return Err(RecordError::UnsupportedVersion { found: header.version });
    }
    if header.reserved != 0 {
        return Err(RecordError::NonzeroReserved { found: header.reserved });
    }
    if RecordKind::from_byte(header.kind).is_none() {
        return Err(RecordError::UnknownKind { found: header.kind });
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
        return Err(RecordError::PayloadTooLarge { size: header.payload_size });
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

/// A segment file's first bytes.
pub fn encode_segment_header(number: u32, genesis_id: Hash) -> [u8; FILE_HEADER_SIZE] {
    bytemuck::cast(FileHeader::new(FileKind::Segment, number, genesis_id))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn file_header_errors_name_the_fields() {
        let header = FileHeader::new(FileKind::Segment, 2, Hash([1; 32]));
        let bytes = bytemuck::bytes_of(&header);
        let message = |kind, sequence, cut: usize| {
            FileHeader::check(&bytes[..cut], kind, sequence, None).unwrap_err().to_string()
        };
        assert_eq!(message(FileKind::Segment, 2, 10), "file of 10 bytes is shorter than its 64-byte header");
        assert_eq!(message(FileKind::Index, 2, 64), "file header says kind 2, expected Index (3)");
        assert_eq!(message(FileKind::Segment, 3, 64), "file header says sequence 2, expected 3");
        assert_eq!(
            FileHeader::check(bytes, FileKind::Segment, 2, Some(Hash::ZERO)),
            Err(FileHeaderError::WrongGenesis { found: Hash([1; 32]), expected: Hash::ZERO })
        );
    }

    #[test]
    fn file_header_reserved_bytes_must_be_zero_each() {
        let reseal = |change: &dyn Fn(&mut FileHeader)| {
            let mut header = FileHeader::new(FileKind::Segment, 2, Hash([1; 32]));
            change(&mut header);
            header.checksum = checksum(&bytemuck::bytes_of(&header)[..FILE_HEADER_SIZE - 4]);
            FileHeader::check(bytemuck::bytes_of(&header), FileKind::Segment, 2, None)
        };
        assert!(reseal(&|_| ()).is_ok());
        assert!(matches!(reseal(&|h| h.reserved0 = 1), Err(FileHeaderError::NonzeroReserved { .. })));
        assert!(matches!(reseal(&|h| h.reserved1[11] = 1), Err(FileHeaderError::NonzeroReserved { .. })));
        // A directory of the format before consensus signatures named their chain is refused,
        // with what to do: its certificates would be served, and their server banned.
        let old = reseal(&|h| h.version = 1).unwrap_err();
        assert!(matches!(old, FileHeaderError::UnsupportedVersion { found: 1 }));
        assert!(old.to_string().contains("start the network again from a new genesis"), "{old}");
    }

    /// A record header's bytes are what the checker reads back, and the payload limit is
    /// inclusive.
    #[test]
    fn record_headers_round_trip_and_the_payload_limit_is_inclusive() {
        let place = Place { kind: RecordKind::Block, segment: 3, offset: 4096 };
        let bytes = encode_record(place, 9, b"payload");
        let header = check_record_header(&bytes, place).unwrap();
        assert_eq!(header.to_bytes().as_slice(), &bytes[..RECORD_HEADER_SIZE]);
        assert_eq!(check_record_header(&header.to_bytes(), place), Ok(header));
        let with_payload = |size: usize| {
            let mut changed = header;
            changed.payload_size = size as u32;
            changed.header_checksum = checksum(&bytemuck::bytes_of(&changed)[..RECORD_HEADER_SIZE - 4]);
            check_record_header(&changed.to_bytes(), place)
        };
        assert_eq!(with_payload(RECORD_PAYLOAD_MAX).map(|h| h.payload_size as usize), Ok(RECORD_PAYLOAD_MAX));
        assert_eq!(
            with_payload(RECORD_PAYLOAD_MAX + 1),
            Err(RecordError::PayloadTooLarge { size: RECORD_PAYLOAD_MAX as u32 + 1 })
        );
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
    }
}
