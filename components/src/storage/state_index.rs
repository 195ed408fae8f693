//! The `state-index` file: the order of the ledger's address index (the slots of the `state`
//! snapshot's accounts, sorted by address), so that a restart maps it instead of sorting every
//! address again. The index's slot table is not stored: a restart builds it under a key of its
//! own (`tessera_systems::ledger::index`).
//!
//! It is derived data. A store writes it after each snapshot and a restart uses it only when it
//! checks (header, checksums, sizes) and names the snapshot's height, state root and account
//! count; otherwise the restart rebuilds the index from the snapshot's addresses, as it would
//! without the file. So it never decides what the state is: the snapshot and the chain do.
//!
//! Layout (little-endian):
//!
//! | offset | bytes | field |
//! | --- | --- | --- |
//! | 0 | 64 | [`FileHeader`], kind [`FileKind::StateIndex`] |
//! | 64 | 8 | height of the snapshot indexed |
//! | 72 | 32 | its state root |
//! | 104 | 8 | account count (`count`) |
//! | 112 | 4 | CRC32C of the words |
//! | 116 | 4 | CRC32C of bytes 64..116 |
//! | 120 | to 4096 | zero |
//! | 4096 | 4 × count | the words: the slots in address order |
//!
//! The words start on a page boundary so that a map of the file serves them in place.

use super::record::{FILE_HEADER_SIZE, FileHeader, FileHeaderError, FileKind, checksum};
use crate::hash::Hash;

/// Offset of the words: one page, so a map of the file holds them aligned.
pub const STATE_INDEX_WORDS_OFFSET: usize = 4096;

const META_END: usize = 120;

/// What a `state-index` file says of itself.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct StateIndexMeta {
    /// Height of the snapshot indexed.
    pub height: u64,
    /// Its state root.
    pub state_root: Hash,
    /// Accounts indexed: the words.
    pub count: u64,
}

/// Why a `state-index` file is not usable.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum StateIndexError {
    /// The file header is damaged or not this directory's.
    #[error("file header: {0}")]
    Header(#[from] FileHeaderError),
    /// The file ends before its fixed part does.
    #[error("file of {length} bytes is shorter than its {STATE_INDEX_WORDS_OFFSET}-byte head")]
    Short {
        /// Bytes in the file.
        length: usize,
    },
    /// The fixed part's checksum does not match it.
    #[error("index header checksum does not match its contents")]
    MetaChecksum,
    /// A byte between the fixed part and the words that is not zero.
    #[error("index header padding is not zero at byte {offset}")]
    Padding {
        /// Offset of the first nonzero byte.
        offset: usize,
    },
    /// A count that does not match the file's length.
    #[error("index of {count} accounts cannot be {length} bytes")]
    Length {
        /// Declared accounts.
        count: u64,
        /// Bytes in the file.
        length: usize,
    },
    /// The words' checksum does not match them.
    #[error("index words checksum {stored:#010x} does not match their contents ({computed:#010x})")]
    WordsChecksum {
        /// Stored checksum.
        stored: u32,
        /// Checksum of the words read.
        computed: u32,
    },
}

/// The head of a `state-index` file for `words` (the slots in address order): the bytes before
/// the words. The file is this, then the words, little-endian.
pub fn encode_state_index_head(genesis_id: Hash, meta: &StateIndexMeta, words: &[u32]) -> Vec<u8> {
    let mut head = vec![0u8; STATE_INDEX_WORDS_OFFSET];
    head[..FILE_HEADER_SIZE].copy_from_slice(bytemuck::bytes_of(&FileHeader::new(
        FileKind::StateIndex,
        0,
        genesis_id,
    )));
    head[64..72].copy_from_slice(&meta.height.to_le_bytes());
    head[72..104].copy_from_slice(&meta.state_root.0);
    head[104..112].copy_from_slice(&meta.count.to_le_bytes());
    let mut words_crc = 0;
    let Ok(()) = write_le_words::<std::convert::Infallible>(words, |bytes| {
        words_crc = crc32c::crc32c_append(words_crc, bytes);
        Ok(())
    });
    head[112..116].copy_from_slice(&words_crc.to_le_bytes());
    let sealed = checksum(&head[64..116]);
    head[116..META_END].copy_from_slice(&sealed.to_le_bytes());
    head
}

/// Hands `words` to `write` as little-endian bytes, a chunk at a time: in place on a
/// little-endian machine, through a bounded buffer on a big-endian one.
///
/// # Errors
/// The first error `write` returns.
pub fn write_le_words<E>(words: &[u32], mut write: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
    for chunk in words.chunks(1 << 16) {
        if cfg!(target_endian = "little") {
            write(bytemuck::cast_slice(chunk))?;
        } else {
            let bytes: Vec<u8> = chunk.iter().flat_map(|word| word.to_le_bytes()).collect();
            write(&bytes)?;
        }
    }
    Ok(())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Checks a whole `state-index` file (header, head checksum, length, words checksum) and returns
/// what it says of itself. The words are `bytes[STATE_INDEX_WORDS_OFFSET..]`.
///
/// # Errors
/// The first problem found.
pub fn decode_state_index(bytes: &[u8], genesis_id: Hash) -> Result<StateIndexMeta, StateIndexError> {
    let meta = decode_state_index_head(bytes, genesis_id)?;
    check_state_index_words(bytes)?;
    Ok(meta)
}

/// [`decode_state_index`] but for the words' checksum, which [`check_state_index_words`] checks:
/// a reader compares what the head names with what it expects in between, so that a head naming
/// a count no snapshot holds (a sparse file of terabytes) costs no pass over the words.
///
/// # Errors
/// The first problem found.
pub fn decode_state_index_head(bytes: &[u8], genesis_id: Hash) -> Result<StateIndexMeta, StateIndexError> {
    FileHeader::check(bytes, FileKind::StateIndex, 0, Some(genesis_id))?;
    if bytes.len() < STATE_INDEX_WORDS_OFFSET {
        return Err(StateIndexError::Short { length: bytes.len() });
    }
    if checksum(&bytes[64..116]) != u32_at(bytes, 116) {
        return Err(StateIndexError::MetaChecksum);
    }
    if let Some(at) = bytes[META_END..STATE_INDEX_WORDS_OFFSET].iter().position(|byte| *byte != 0) {
        return Err(StateIndexError::Padding { offset: META_END + at });
    }
    let meta = StateIndexMeta {
        height: u64_at(bytes, 64),
        state_root: Hash(bytes[72..104].try_into().expect("32 bytes")),
        count: u64_at(bytes, 104),
    };
    let expected =
        meta.count.checked_mul(4).and_then(|bytes| bytes.checked_add(STATE_INDEX_WORDS_OFFSET as u64));
    if expected != Some(bytes.len() as u64) {
        return Err(StateIndexError::Length { count: meta.count, length: bytes.len() });
    }
    Ok(meta)
}

/// The words' checksum of a `state-index` file whose head [`decode_state_index_head`] checked.
///
/// # Errors
/// [`StateIndexError::WordsChecksum`].
pub fn check_state_index_words(bytes: &[u8]) -> Result<(), StateIndexError> {
    let stored = u32_at(bytes, 112);
    let computed = checksum(&bytes[STATE_INDEX_WORDS_OFFSET..]);
    if stored != computed {
        return Err(StateIndexError::WordsChecksum { stored, computed });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(meta: &StateIndexMeta, words: &[u32]) -> Vec<u8> {
        let mut bytes = encode_state_index_head(Hash([7; 32]), meta, words);
        bytes.extend(words.iter().flat_map(|word| word.to_le_bytes()));
        bytes
    }

    #[test]
    fn a_state_index_round_trips_and_any_damaged_byte_is_refused() {
        let meta = StateIndexMeta { height: 9, state_root: Hash([3; 32]), count: 3 };
        let words = [2, 0, 0x0102_0304];
        let bytes = file(&meta, &words);
        assert_eq!(bytes.len(), STATE_INDEX_WORDS_OFFSET + 12);
        assert_eq!(bytes[STATE_INDEX_WORDS_OFFSET + 8..], [4, 3, 2, 1], "little-endian words");
        assert_eq!(decode_state_index(&bytes, Hash([7; 32])), Ok(meta));
        assert!(matches!(decode_state_index(&bytes, Hash([8; 32])), Err(StateIndexError::Header(_))));
        // Every byte, flipped, is refused.
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(decode_state_index(&damaged, Hash([7; 32])).is_err(), "byte {at}");
        }
        for cut in [0, 63, 100, STATE_INDEX_WORDS_OFFSET, bytes.len() - 1] {
            assert!(decode_state_index(&bytes[..cut], Hash([7; 32])).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 4]);
        assert!(matches!(decode_state_index(&longer, Hash([7; 32])), Err(StateIndexError::Length { .. })));
        let mut padded = bytes.clone();
        padded[200] = 1;
        assert_eq!(decode_state_index(&padded, Hash([7; 32])), Err(StateIndexError::Padding { offset: 200 }));
        // No words at all is a file of its head alone: it decodes (the order of no accounts).
        let empty = StateIndexMeta { count: 0, ..meta };
        assert_eq!(decode_state_index(&file(&empty, &[]), Hash([7; 32])), Ok(empty));
        let huge = StateIndexMeta { count: u64::MAX, ..meta };
        assert!(matches!(
            decode_state_index(&file(&huge, &words), Hash([7; 32])),
            Err(StateIndexError::Length { .. })
        ));
    }
}
