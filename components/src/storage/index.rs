//! The index: one checksummed 32-byte entry per committed height, saying where its record is.

use bytemuck::{Pod, Zeroable};

use super::record::{
    FILE_HEADER_SIZE, FileHeader, FileKind, RECORD_HEADER_SIZE, RECORD_PAYLOAD_MAX, RecordHeader, checksum,
};
use crate::hash::Hash;

/// Bytes in an [`IndexEntry`].
pub const INDEX_ENTRY_SIZE: usize = 32;

const _: () = assert!(size_of::<IndexEntry>() == INDEX_ENTRY_SIZE);
// An index entry never straddles a 512-byte sector, so a power cut cannot tear one in half.
const _: () = assert!(512 % INDEX_ENTRY_SIZE == 0 && FILE_HEADER_SIZE.is_multiple_of(INDEX_ENTRY_SIZE));

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
    /// The first problem found.
    pub fn check(raw: &[u8; INDEX_ENTRY_SIZE], height: u64) -> Result<IndexEntry, IndexEntryError> {
        let entry: IndexEntry = bytemuck::pod_read_unaligned(raw);
        let computed = checksum(&raw[..INDEX_ENTRY_SIZE - 4]);
        if entry.checksum != computed {
            return Err(IndexEntryError::Checksum { stored: entry.checksum, computed });
        }
        if entry.height != height {
            return Err(IndexEntryError::WrongHeight { found: entry.height, expected: height });
        }
        if (entry.record_size as usize) < RECORD_HEADER_SIZE
            || entry.record_size as usize > RECORD_HEADER_SIZE + RECORD_PAYLOAD_MAX
        {
            return Err(IndexEntryError::ImpossibleSize { size: entry.record_size });
        }
        Ok(entry)
    }
}

/// Why 32 bytes of the index are not the entry for their height.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum IndexEntryError {
    /// The entry's checksum does not match its bytes.
    #[error("index entry checksum {stored:#010x} does not match its contents ({computed:#010x})")]
    Checksum {
        /// Stored checksum.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// A sound entry for another height than its position holds.
    #[error("index entry says height {found}, its position is height {expected}")]
    WrongHeight {
        /// Height in the entry.
        found: u64,
        /// Height of the entry's position.
        expected: u64,
    },
    /// A record size no record can have.
    #[error("index entry has impossible record size {size}")]
    ImpossibleSize {
        /// The record size in the entry.
        size: u32,
    },
}

/// An index file's first bytes.
pub fn encode_index_header(genesis_id: Hash) -> [u8; FILE_HEADER_SIZE] {
    bytemuck::cast(FileHeader::new(FileKind::Index, 0, genesis_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(height: u64, record_size: u32) -> [u8; INDEX_ENTRY_SIZE] {
        let mut entry =
            IndexEntry { height, offset: 64, segment: 0, record_size, record_checksum: 9, checksum: 0 };
        entry.checksum = checksum(&bytemuck::bytes_of(&entry)[..INDEX_ENTRY_SIZE - 4]);
        entry.to_bytes()
    }

    /// Record sizes from a bare header to a header and the largest payload are possible;
    /// one byte less or more is not.
    #[test]
    fn record_sizes_are_checked_at_both_ends() {
        let smallest = RECORD_HEADER_SIZE as u32;
        let largest = (RECORD_HEADER_SIZE + RECORD_PAYLOAD_MAX) as u32;
        for size in [smallest, smallest + 1, largest - 1, largest] {
            assert_eq!(IndexEntry::check(&sealed(3, size), 3).map(|e| e.record_size), Ok(size));
        }
        for size in [0, smallest - 1, largest + 1, u32::MAX] {
            assert_eq!(IndexEntry::check(&sealed(3, size), 3), Err(IndexEntryError::ImpossibleSize { size }));
        }
        assert_eq!(
            IndexEntry::check(&sealed(3, smallest), 4),
            Err(IndexEntryError::WrongHeight { found: 3, expected: 4 })
        );
        let mut flipped = sealed(3, smallest);
        flipped[0] ^= 1;
        assert!(matches!(IndexEntry::check(&flipped, 3), Err(IndexEntryError::Checksum { .. })));
    }
}
