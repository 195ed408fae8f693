//! The `state-log` file: incremental state snapshots. Between two whole `state` snapshots the
//! store appends, at each snapshot point, one *delta* record: the accounts the blocks since the
//! previous point changed or created, with the state root, burned total and account count
//! after them. A snapshot point then costs in proportion to the accounts touched, not to the
//! ledger. Recovery applies the deltas newer than the `state` file all at once, checking each
//! one's recorded root against the chain's and the state they give against the last one's (or,
//! when that fails, one at a time, each checked, to name the one at fault), and replays only the
//! blocks after the last.
//!
//! A delta is a cache of what replaying blocks gives: losing one costs replay time, never
//! correctness. So a record that fails its checks ends the log, and it and everything after it
//! are reported as a tail to drop (the store syncs each record before the next is written, so
//! only the last can be torn). A record that checks but does not make sense (heights out of
//! order, rows out of order or past the count) was written by a faulty writer: that is
//! corruption, and refused.

use super::record::{
    FILE_HEADER_SIZE, FileHeader, FileKind, Place, RECORD_HEADER_SIZE, RECORD_PAYLOAD_MAX, RecordKind,
    check_record, encode_record,
};
use super::recovery::{FileRef, Problem, Tail};
use crate::account::Account;
use crate::hash::Hash;

/// Bytes of a delta payload's fixed part: height, base height, state root, burned, count, rows.
pub const DELTA_FIXED_SIZE: usize = 8 + 8 + 32 + 8 + 8 + 8;
/// Bytes per row of a delta payload: slot u64, address, balance, nonce.
pub const DELTA_ROW_SIZE: usize = 8 + 32 + size_of::<Account>();
/// Most rows one delta record holds; a larger change is written as a whole snapshot instead.
pub const DELTA_ROWS_MAX: usize = (RECORD_PAYLOAD_MAX - DELTA_FIXED_SIZE) / DELTA_ROW_SIZE;

const _: () = assert!(DELTA_ROW_SIZE == 56);

/// One account as a delta stores it: its slot, its address and its value after the delta.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DeltaRow {
    /// The account's slot (dense index).
    pub slot: u64,
    /// Its address.
    pub address: [u8; 32],
    /// Its balance and nonce after the delta.
    pub account: Account,
}

/// The accounts a run of blocks changed, and the state's summary after them.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct StateDelta {
    /// Height of the last block the delta covers.
    pub height: u64,
    /// Height of the `state` snapshot the log's deltas start from: a delta applies only over
    /// that snapshot (and the deltas before it), so one left from an older or newer snapshot is
    /// never applied to the wrong state.
    pub base_height: u64,
    /// State root after it.
    pub state_root: Hash,
    /// Fees burned so far.
    pub burned: u64,
    /// Accounts after it; rows at or past the previous count are the accounts created, in slot
    /// order.
    pub count: u64,
    /// Changed and created accounts, by strictly increasing slot.
    pub rows: Vec<DeltaRow>,
}

/// Why a delta payload does not decode.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DeltaPayloadError {
    /// Fewer bytes than the fixed part.
    #[error("delta payload of {length} bytes is shorter than its fixed part")]
    Short {
        /// Bytes in the payload.
        length: usize,
    },
    /// Rows that are not exactly the declared number's.
    #[error("delta declares {rows} rows but holds {bytes} bytes of rows")]
    LengthMismatch {
        /// Declared rows.
        rows: u64,
        /// Bytes after the fixed part.
        bytes: usize,
    },
    /// A row's slot not above the one before it, or not below the count.
    #[error("delta row {row} has slot {slot}, after slot {previous:?} and with {count} accounts")]
    RowOutOfOrder {
        /// Row number.
        row: usize,
        /// Its slot.
        slot: u64,
        /// The slot before it.
        previous: Option<u64>,
        /// The declared account count.
        count: u64,
    },
}

/// A delta's payload: height u64, base height u64, state root (32), burned u64, count u64, rows
/// u64, then each row's slot u64, address (32), balance u64 and nonce u64.
///
/// # Panics
/// In debug builds, rows out of slot order or past the count.
pub fn encode_delta_payload(delta: &StateDelta) -> Vec<u8> {
    debug_assert!(delta.rows.windows(2).all(|pair| pair[0].slot < pair[1].slot));
    debug_assert!(delta.rows.last().is_none_or(|row| row.slot < delta.count));
    let mut out = Vec::with_capacity(DELTA_FIXED_SIZE + delta.rows.len() * DELTA_ROW_SIZE);
    out.extend_from_slice(&delta.height.to_le_bytes());
    out.extend_from_slice(&delta.base_height.to_le_bytes());
    out.extend_from_slice(&delta.state_root.0);
    out.extend_from_slice(&delta.burned.to_le_bytes());
    out.extend_from_slice(&delta.count.to_le_bytes());
    out.extend_from_slice(&(delta.rows.len() as u64).to_le_bytes());
    for row in &delta.rows {
        out.extend_from_slice(&row.slot.to_le_bytes());
        out.extend_from_slice(&row.address);
        out.extend_from_slice(bytemuck::bytes_of(&row.account));
    }
    out
}

/// Decodes a delta payload, checking its length before allocating and its rows' order.
///
/// # Errors
/// The first problem found.
pub fn decode_delta_payload(payload: &[u8]) -> Result<StateDelta, DeltaPayloadError> {
    let Some((fixed, rows)) = payload.split_first_chunk::<DELTA_FIXED_SIZE>() else {
        return Err(DeltaPayloadError::Short { length: payload.len() });
    };
    let read_u64 = |at: usize| u64::from_le_bytes(fixed[at..at + 8].try_into().expect("8 bytes"));
    let declared = read_u64(64);
    if u128::from(declared) * DELTA_ROW_SIZE as u128 != rows.len() as u128 {
        return Err(DeltaPayloadError::LengthMismatch { rows: declared, bytes: rows.len() });
    }
    let mut delta = StateDelta {
        height: read_u64(0),
        base_height: read_u64(8),
        state_root: Hash(fixed[16..48].try_into().expect("32 bytes")),
        burned: read_u64(48),
        count: read_u64(56),
        rows: Vec::with_capacity(rows.len() / DELTA_ROW_SIZE),
    };
    let mut previous: Option<u64> = None;
    for (row, bytes) in rows.chunks_exact(DELTA_ROW_SIZE).enumerate() {
        let slot = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        if previous.is_some_and(|previous| slot <= previous) || slot >= delta.count {
            return Err(DeltaPayloadError::RowOutOfOrder { row, slot, previous, count: delta.count });
        }
        previous = Some(slot);
        delta.rows.push(DeltaRow {
            slot,
            address: bytes[8..40].try_into().expect("32 bytes"),
            account: bytemuck::pod_read_unaligned(&bytes[40..]),
        });
    }
    Ok(delta)
}

/// Bytes of the payload of a delta of `rows` rows.
pub const fn delta_payload_size(rows: usize) -> usize {
    DELTA_FIXED_SIZE + rows * DELTA_ROW_SIZE
}

/// The header of a `state-log` file of the directory with `genesis_id`: an empty log.
pub fn encode_state_log_header(genesis_id: Hash) -> [u8; FILE_HEADER_SIZE] {
    bytemuck::cast(FileHeader::new(FileKind::StateLog, 0, genesis_id))
}

/// The record for `delta`, to be written at byte `offset` of the `state-log` file.
///
/// # Errors
/// The payload's size, when it passes the record limit (more than [`DELTA_ROWS_MAX`] rows).
pub fn encode_delta_record(offset: u64, delta: &StateDelta) -> Result<Vec<u8>, usize> {
    let size = delta_payload_size(delta.rows.len());
    if size > RECORD_PAYLOAD_MAX {
        return Err(size);
    }
    let place = Place { kind: RecordKind::StateDelta, segment: 0, offset };
    Ok(encode_record(place, delta.height, &encode_delta_payload(delta)))
}

/// What [`decode_state_log`] found.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct StateLog {
    /// The deltas, by strictly increasing height, none past the committed height.
    pub deltas: Vec<StateDelta>,
    /// The file offset of each delta's record: `offsets[i]` is where `deltas[i]` starts, so an
    /// error found later (a root that does not match) names the record it is in.
    pub offsets: Vec<u64>,
    /// Bytes to drop from the end: a record cut short or damaged, and whatever follows it, or
    /// deltas past the last committed block.
    pub tail: Option<Tail>,
}

/// Checks a `state-log` file of the directory with `genesis_id`, whose last committed height is
/// `committed`; see the module documentation for what is a tail and what is corruption.
///
/// # Errors
/// A bad file header, or a record that checks but whose payload does not decode or whose height
/// is not above the one before it; with its offset.
pub fn decode_state_log(bytes: &[u8], genesis_id: Hash, committed: u64) -> Result<StateLog, Problem> {
    FileHeader::check(bytes, FileKind::StateLog, 0, Some(genesis_id))
        .map_err(|reason| Problem::new(FileRef::StateLog, 0, reason))?;
    let mut log = StateLog::default();
    let mut offset = FILE_HEADER_SIZE as u64;
    while offset < bytes.len() as u64 {
        let place = Place { kind: RecordKind::StateDelta, segment: 0, offset };
        let Ok(record) = check_record(&bytes[offset as usize..], place) else { break };
        let delta = decode_delta_payload(record.payload)
            .map_err(|reason| Problem::new(FileRef::StateLog, offset + RECORD_HEADER_SIZE as u64, reason))?;
        if delta.height != record.header.height {
            return Err(Problem::new(
                FileRef::StateLog,
                offset,
                format!("record height {} but payload height {}", record.header.height, delta.height),
            ));
        }
        if let Some(last) = log.deltas.last()
            && delta.height <= last.height
        {
            return Err(Problem::new(
                FileRef::StateLog,
                offset,
                format!("delta for height {} after one for height {}", delta.height, last.height),
            ));
        }
        if delta.height > committed {
            // Written after a block whose commit did not survive (only without syncs).
            break;
        }
        log.deltas.push(delta);
        log.offsets.push(offset);
        offset += record.header.record_size();
    }
    if offset < bytes.len() as u64 {
        log.tail = Some(Tail { file: FileRef::StateLog, offset, size: bytes.len() as u64 - offset });
    }
    Ok(log)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(height: u64, rows: &[(u64, u8)]) -> StateDelta {
        StateDelta {
            height,
            base_height: 2,
            state_root: Hash([height as u8; 32]),
            burned: height * 3,
            count: 10,
            rows: rows
                .iter()
                .map(|(slot, tag)| DeltaRow {
                    slot: *slot,
                    address: [*tag; 32],
                    account: Account { balance: u64::from(*tag) * 7, nonce: *slot },
                })
                .collect(),
        }
    }

    fn log_of(id: Hash, deltas: &[StateDelta]) -> Vec<u8> {
        let mut file = encode_state_log_header(id).to_vec();
        for delta in deltas {
            let record = encode_delta_record(file.len() as u64, delta).unwrap();
            file.extend_from_slice(&record);
        }
        file
    }

    #[test]
    fn a_log_round_trips_and_a_damaged_or_cut_record_ends_it_as_a_tail() {
        let id = Hash([9; 32]);
        let deltas = [delta(4, &[(0, 1), (3, 2), (9, 3)]), delta(8, &[]), delta(12, &[(5, 4)])];
        let file = log_of(id, &deltas);
        let whole = decode_state_log(&file, id, 12).unwrap();
        assert_eq!((whole.deltas.as_slice(), whole.tail), (&deltas[..], None));
        let starts: Vec<u64> = (0..deltas.len()).map(|n| log_of(id, &deltas[..n]).len() as u64).collect();
        assert_eq!(whole.offsets, starts, "each delta's record offset");
        // Past the committed height: dropped as a tail.
        let short = decode_state_log(&file, id, 11).unwrap();
        assert_eq!(short.deltas, deltas[..2]);
        let second_end = log_of(id, &deltas[..2]).len() as u64;
        assert_eq!(
            short.tail,
            Some(Tail { file: FileRef::StateLog, offset: second_end, size: file.len() as u64 - second_end })
        );
        // Every cut and every flipped bit past the header ends the log at the record it hits,
        // keeping exactly the records before it.
        let ends: Vec<u64> = (0..=deltas.len()).map(|n| log_of(id, &deltas[..n]).len() as u64).collect();
        for cut in FILE_HEADER_SIZE..file.len() {
            let log = decode_state_log(&file[..cut], id, 12).unwrap();
            let kept = ends.iter().filter(|end| **end <= cut as u64).count() - 1;
            assert_eq!(log.deltas, deltas[..kept], "cut at {cut}");
            assert_eq!(
                log.tail.map(|t| t.offset),
                (ends[kept] < cut as u64).then_some(ends[kept]),
                "cut at {cut}"
            );
        }
        for byte in FILE_HEADER_SIZE..file.len() {
            let mut bad = file.clone();
            bad[byte] ^= 0x20;
            let log = decode_state_log(&bad, id, 12).unwrap();
            let hit = ends.iter().filter(|end| **end <= byte as u64).count() - 1;
            assert_eq!(log.deltas, deltas[..hit], "flip at {byte}");
            assert_eq!(
                log.tail.map(|t| (t.offset, t.size)),
                Some((ends[hit], file.len() as u64 - ends[hit]))
            );
        }
        // The header is not a tail: another directory's log, or a damaged header, is refused.
        assert!(decode_state_log(&file, Hash::ZERO, 12).is_err());
        let mut bad = file.clone();
        bad[3] ^= 1;
        assert!(decode_state_log(&bad, id, 12).is_err());
        assert!(decode_state_log(&file[..FILE_HEADER_SIZE - 1], id, 12).is_err());
    }

    #[test]
    fn records_that_check_but_make_no_sense_are_corruption() {
        let id = Hash([9; 32]);
        // Heights out of order.
        let file = log_of(id, &[delta(8, &[]), delta(8, &[])]);
        assert!(decode_state_log(&file, id, 20).unwrap_err().reason.contains("after one for height 8"));
        // Rows out of order, repeated, or past the count, sealed with good checksums.
        for rows in [vec![(3, 1), (2, 2)], vec![(3, 1), (3, 2)], vec![(10, 1)]] {
            let mut bad = delta(4, &[]);
            let mut payload = encode_delta_payload(&bad);
            payload[64..72].copy_from_slice(&(rows.len() as u64).to_le_bytes());
            for (slot, tag) in &rows {
                payload.extend_from_slice(&u64::to_le_bytes(*slot));
                payload.extend_from_slice(&[*tag; 32]);
                payload.extend_from_slice(&[0; 16]);
            }
            bad.rows.clear();
            let mut file = encode_state_log_header(id).to_vec();
            let place = Place { kind: RecordKind::StateDelta, segment: 0, offset: FILE_HEADER_SIZE as u64 };
            file.extend_from_slice(&encode_record(place, 4, &payload));
            let problem = decode_state_log(&file, id, 20).unwrap_err();
            assert!(problem.reason.contains("has slot"), "{rows:?}: {problem:?}");
            assert_eq!(problem.offset, (FILE_HEADER_SIZE + RECORD_HEADER_SIZE) as u64, "at the payload");
            assert!(matches!(decode_delta_payload(&payload), Err(DeltaPayloadError::RowOutOfOrder { .. })));
        }
        // A declared row count the payload does not hold, including one that would overflow.
        let mut payload = encode_delta_payload(&delta(4, &[(1, 1)]));
        for declared in [0u64, 2, u64::MAX] {
            payload[64..72].copy_from_slice(&declared.to_le_bytes());
            assert!(matches!(decode_delta_payload(&payload), Err(DeltaPayloadError::LengthMismatch { .. })));
        }
        assert!(matches!(decode_delta_payload(&payload[..10]), Err(DeltaPayloadError::Short { .. })));
        // The most rows one record holds, and one more.
        assert!(delta_payload_size(DELTA_ROWS_MAX) <= RECORD_PAYLOAD_MAX);
        assert!(delta_payload_size(DELTA_ROWS_MAX + 1) > RECORD_PAYLOAD_MAX);
        assert_eq!(delta_payload_size(3), DELTA_FIXED_SIZE + 3 * DELTA_ROW_SIZE);
        assert_eq!(encode_delta_payload(&delta(4, &[(1, 1), (2, 2), (3, 3)])).len(), delta_payload_size(3));
        let mut huge = delta(4, &[]);
        huge.rows =
            vec![DeltaRow { slot: 0, address: [0; 32], account: Account::default() }; DELTA_ROWS_MAX + 1];
        assert_eq!(encode_delta_record(64, &huge), Err(delta_payload_size(DELTA_ROWS_MAX + 1)));
    }
}
