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
//! One file per idea: `record` frames files and records, `index` holds the per-height
//! entries, `recovery` plans recovery, `genesis_state` encodes the `genesis` and `state`
//! files, `state_index` the address index kept beside the snapshot, `state_log` the deltas written between two `state` snapshots, and `block_payload` a block record's payload. Every public item is re-exported
//! here, so callers name them as `storage::Item`.
//!
//! Nothing here does I/O.

mod block_payload;
mod genesis_state;
mod index;
mod record;
mod recovery;
mod state_index;
mod state_log;
#[cfg(test)]
pub(crate) mod testing;

pub use block_payload::{BlockPayloadError, decode_block_payload, encode_block_payload, encode_block_record};
pub use genesis_state::{
    GENESIS_ROW_SIZE, GENESIS_ROWS_PER_RECORD, GenesisPayloadError, STATE_FIXED_SIZE, STATE_ROW_SIZE,
    STATE_ROWS_PER_RECORD, StatePayloadError, StateSnapshot, StateView, decode_genesis_file,
    decode_genesis_payload, decode_state_file, decode_state_payload, encode_genesis_file,
    encode_genesis_file_in, encode_genesis_payload, encode_state_file, encode_state_file_in,
    encode_state_payload, genesis_id, genesis_id_of, write_genesis_file, write_state_file,
};
pub use index::{INDEX_ENTRY_SIZE, IndexEntry, IndexEntryError, encode_index_header};
pub use record::{
    FILE_HEADER_SIZE, FileHeader, FileHeaderError, FileKind, Place, RECORD_HEADER_SIZE, RECORD_MAGIC,
    RECORD_PAYLOAD_MAX, RECORD_VERSION, Record, RecordError, RecordHeader, RecordKind, STORE_MAGIC,
    STORE_VERSION, check_record, check_record_header, checksum, encode_record, encode_segment_header,
    seal_record_header,
};
pub use recovery::{
    DirCheck, FileRef, Problem, Tail, check_directory, parse_segment_file_name, segment_file_name,
};
pub use state_index::{
    STATE_INDEX_WORDS_OFFSET, StateIndexError, StateIndexMeta, check_state_index_words, decode_state_index,
    decode_state_index_head, encode_state_index_head, write_le_words,
};
pub use state_log::{
    DELTA_FIXED_SIZE, DELTA_ROW_SIZE, DELTA_ROWS_MAX, DeltaPayloadError, DeltaRow, StateDelta, StateLog,
    decode_delta_payload, decode_state_log, encode_delta_payload, encode_delta_record,
    encode_state_log_header,
};
