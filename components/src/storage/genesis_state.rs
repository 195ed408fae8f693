//! The data directory's single-record files: `genesis` (the genesis balances, whose hash is
//! the directory's identity) and `state` (an account-state snapshot).

use super::record::{
    FILE_HEADER_SIZE, FileHeader, FileKind, Place, RECORD_HEADER_SIZE, RECORD_PAYLOAD_MAX, RecordKind,
    check_record, encode_record,
};
use super::recovery::{FileRef, Problem};
use crate::account::Account;
use crate::hash::Hash;

/// Bytes of the fixed part of a state payload (before the columns).
pub const STATE_FIXED_SIZE: usize = 8 + 32 + 8 + 16 + 8;
/// Bytes per account in a state payload: its address and its [`Account`].
pub const STATE_ROW_SIZE: usize = 32 + size_of::<Account>();
/// Bytes per account in a genesis payload: address and balance.
pub const GENESIS_ROW_SIZE: usize = 32 + 8;

const _: () = assert!(STATE_ROW_SIZE == 48);

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
pub fn decode_genesis_payload(payload: &[u8]) -> Result<Vec<([u8; 32], u64)>, GenesisPayloadError> {
    let (count, rows) = split_u64(payload).ok_or(GenesisPayloadError::Short { length: payload.len() })?;
    let expected = usize::try_from(count)
        .ok()
        .and_then(|count| count.checked_mul(GENESIS_ROW_SIZE))
        .ok_or(GenesisPayloadError::ImpossibleCount { count })?;
    if rows.len() != expected {
        return Err(GenesisPayloadError::LengthMismatch { count, rows: rows.len() });
    }
    Ok(rows
        .chunks_exact(GENESIS_ROW_SIZE)
        .map(|row| {
            let (key, balance) = row.split_at(32);
            (key.try_into().expect("32 bytes"), u64::from_le_bytes(balance.try_into().expect("8 bytes")))
        })
        .collect())
}

/// Why a genesis payload does not decode.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum GenesisPayloadError {
    /// Fewer than the 8 bytes of the account count.
    #[error("genesis payload shorter than its count")]
    Short {
        /// Bytes in the payload.
        length: usize,
    },
    /// A count whose rows could not fit in memory.
    #[error("genesis declares an impossible {count} accounts")]
    ImpossibleCount {
        /// The declared account count.
        count: u64,
    },
    /// Rows that are not exactly the declared count's.
    #[error("genesis declares {count} accounts but holds {rows} bytes of rows")]
    LengthMismatch {
        /// The declared account count.
        count: u64,
        /// Bytes of rows after the count.
        rows: usize,
    },
}

/// Most accounts in one record of a genesis file: a page of 4,096 (160 KiB of rows), each
/// with its own checksum, so damage is found and named a page at a time, and a genesis of any
/// size is stored.
pub const GENESIS_ROWS_PER_RECORD: usize = 1 << 12;

const _: () = assert!(8 + GENESIS_ROWS_PER_RECORD * GENESIS_ROW_SIZE <= RECORD_PAYLOAD_MAX);

/// The genesis id of these balances: [`genesis_id`] of their [`encode_genesis_payload`],
/// computed without building the payload.
pub fn genesis_id_of(balances: &[([u8; 32], u64)]) -> Hash {
    let mut hasher = blake3::Hasher::new_derive_key("tessera 2026 store genesis");
    hasher.update(&(balances.len() as u64).to_le_bytes());
    for (key, balance) in balances {
        hasher.update(key);
        hasher.update(&balance.to_le_bytes());
    }
    Hash(*hasher.finalize().as_bytes())
}

/// A whole `genesis` file for these balances, and its genesis id.
pub fn encode_genesis_file(balances: &[([u8; 32], u64)]) -> (Hash, Vec<u8>) {
    encode_genesis_file_in(balances, GENESIS_ROWS_PER_RECORD)
}

/// [`encode_genesis_file`] with `rows_per_record` accounts a record (tests use small ones).
///
/// # Panics
/// If `rows_per_record` is 0 or its records would pass the record limit.
pub fn encode_genesis_file_in(balances: &[([u8; 32], u64)], rows_per_record: usize) -> (Hash, Vec<u8>) {
    let mut out =
        Vec::with_capacity(FILE_HEADER_SIZE + 2 * RECORD_HEADER_SIZE + 8 + balances.len() * GENESIS_ROW_SIZE);
    let written = write_genesis_file_in(balances, rows_per_record, |bytes| {
        out.extend_from_slice(bytes);
        Ok::<(), std::convert::Infallible>(())
    });
    match written {
        Ok(id) => (id, out),
    }
}

/// Writes the `genesis` file for these balances to `sink` a piece at a time: the file header,
/// then records of up to [`GENESIS_ROWS_PER_RECORD`] accounts. The first record's payload is
/// the count (u64) and the first rows; each later record's holds the next rows. So a genesis of
/// up to 2^20 accounts is the one record earlier versions wrote. The genesis id is the hash of
/// the payloads end to end ([`encode_genesis_payload`] of every row). Returns the id.
///
/// # Errors
/// The first error `sink` returns.
pub fn write_genesis_file<E>(
    balances: &[([u8; 32], u64)],
    sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<Hash, E> {
    write_genesis_file_in(balances, GENESIS_ROWS_PER_RECORD, sink)
}

fn write_genesis_file_in<E>(
    balances: &[([u8; 32], u64)],
    rows_per_record: usize,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<Hash, E> {
    assert!(
        rows_per_record > 0 && 8 + rows_per_record * GENESIS_ROW_SIZE <= RECORD_PAYLOAD_MAX,
        "rows per record in range"
    );
    let id = genesis_id_of(balances);
    sink(bytemuck::bytes_of(&FileHeader::new(FileKind::Genesis, 0, id)))?;
    let mut offset = FILE_HEADER_SIZE as u64;
    let mut start = 0;
    loop {
        let end = balances.len().min(start + rows_per_record);
        let mut payload = Vec::with_capacity(8 + (end - start) * GENESIS_ROW_SIZE);
        if start == 0 {
            payload.extend_from_slice(&(balances.len() as u64).to_le_bytes());
        }
        for (key, balance) in &balances[start..end] {
            payload.extend_from_slice(key);
            payload.extend_from_slice(&balance.to_le_bytes());
        }
        let place = Place { kind: RecordKind::Genesis, segment: 0, offset };
        let record = encode_record(place, 0, &payload);
        drop(payload);
        sink(&record)?;
        offset += record.len() as u64;
        start = end;
        if start >= balances.len() {
            return Ok(id);
        }
    }
}

/// Checks a whole `genesis` file ([`write_genesis_file`]'s layout, any chunking); returns its
/// id and balances. Memory is bounded by the file: a count it cannot hold is refused first.
///
/// # Errors
/// The first problem, with its offset.
pub fn decode_genesis_file(bytes: &[u8]) -> Result<(Hash, Vec<([u8; 32], u64)>), Problem> {
    let header = FileHeader::check(bytes, FileKind::Genesis, 0, None)
        .map_err(|reason| Problem::new(FileRef::Genesis, 0, reason))?;
    let problem = |offset: u64, reason: String| Problem::new(FileRef::Genesis, offset, reason);
    let mut hasher = blake3::Hasher::new_derive_key("tessera 2026 store genesis");
    let mut balances: Vec<([u8; 32], u64)> = Vec::new();
    let mut count: Option<u64> = None;
    let mut offset = FILE_HEADER_SIZE as u64;
    loop {
        let place = Place { kind: RecordKind::Genesis, segment: 0, offset };
        let first_row = balances.len();
        let record = check_record(bytes.get(offset as usize..).unwrap_or(&[]), place).map_err(|error| {
            Problem::new(
                FileRef::Genesis,
                offset,
                format!("the page of accounts from row {first_row}: {error}"),
            )
        })?;
        let payload_offset = offset + RECORD_HEADER_SIZE as u64;
        if record.header.height != 0 {
            return Err(problem(offset, format!("genesis record at height {}", record.header.height)));
        }
        hasher.update(record.payload);
        let rows = match count {
            None => {
                let (declared, rows) = split_u64(record.payload).ok_or_else(|| {
                    problem(
                        payload_offset,
                        GenesisPayloadError::Short { length: record.payload.len() }.to_string(),
                    )
                })?;
                if u128::from(declared) * GENESIS_ROW_SIZE as u128 > bytes.len() as u128 {
                    return Err(problem(
                        payload_offset,
                        GenesisPayloadError::ImpossibleCount { count: declared }.to_string(),
                    ));
                }
                count = Some(declared);
                rows
            }
            Some(_) if record.payload.is_empty() => {
                return Err(problem(offset, "an empty genesis record after the first".into()));
            }
            Some(_) => record.payload,
        };
        let declared = count.expect("set above");
        let have = balances.len() as u64;
        if rows.len() % GENESIS_ROW_SIZE != 0 || have + (rows.len() / GENESIS_ROW_SIZE) as u64 > declared {
            return Err(problem(
                payload_offset,
                GenesisPayloadError::LengthMismatch { count: declared, rows: rows.len() }.to_string(),
            ));
        }
        balances.extend(rows.chunks_exact(GENESIS_ROW_SIZE).map(|row| {
            let (key, balance) = row.split_at(32);
            (key.try_into().expect("32 bytes"), u64::from_le_bytes(balance.try_into().expect("8 bytes")))
        }));
        offset += record.header.record_size();
        if balances.len() as u64 == declared {
            if offset != bytes.len() as u64 {
                return Err(problem(
                    offset,
                    format!("{} bytes after the genesis's last record", bytes.len() as u64 - offset),
                ));
            }
            break;
        }
        if offset >= bytes.len() as u64 {
            return Err(problem(
                offset,
                format!("genesis declares {declared} accounts but the file ends after {}", balances.len()),
            ));
        }
    }
    let id = Hash(*hasher.finalize().as_bytes());
    if id != header.genesis_id {
        return Err(Problem::new(FileRef::Genesis, 0, "file header's genesis id is not the payload's hash"));
    }
    Ok((id, balances))
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

/// Decodes a state payload that holds every row (a state file of one record).
///
/// # Errors
/// A length that does not match the declared count.
pub fn decode_state_payload(payload: &[u8]) -> Result<StateSnapshot, StatePayloadError> {
    let (mut snapshot, count, columns) = decode_state_head(payload)?;
    if columns.len() as u128 != u128::from(count) * STATE_ROW_SIZE as u128 {
        return Err(StatePayloadError::LengthMismatch { count, columns: columns.len() });
    }
    push_rows(&mut snapshot, columns);
    Ok(snapshot)
}

/// The fixed part of a state file's first record: the snapshot without rows, its declared
/// account count, and the columns that follow in that record.
fn decode_state_head(payload: &[u8]) -> Result<(StateSnapshot, u64, &[u8]), StatePayloadError> {
    let Some((fixed, columns)) = payload.split_first_chunk::<STATE_FIXED_SIZE>() else {
        return Err(StatePayloadError::Short { length: payload.len() });
    };
    let read_u64 = |at: usize| u64::from_le_bytes(fixed[at..at + 8].try_into().expect("8 bytes"));
    let snapshot = StateSnapshot {
        height: read_u64(0),
        state_root: Hash(fixed[8..40].try_into().expect("32 bytes")),
        keys: Vec::new(),
        accounts: Vec::new(),
        burned: read_u64(40),
        supply: u128::from_le_bytes(fixed[48..64].try_into().expect("16 bytes")),
    };
    let count = read_u64(64);
    if usize::try_from(count).ok().and_then(|count| count.checked_mul(STATE_ROW_SIZE)).is_none() {
        return Err(StatePayloadError::ImpossibleCount { count });
    }
    Ok((snapshot, count, columns))
}

/// Appends one chunk's columns (its addresses, then its accounts; a whole number of rows).
fn push_rows(snapshot: &mut StateSnapshot, columns: &[u8]) {
    let rows = columns.len() / STATE_ROW_SIZE;
    let (keys, accounts) = columns.split_at(rows * 32);
    snapshot.keys.extend(keys.chunks_exact(32).map(|key| <[u8; 32]>::try_from(key).expect("32 bytes")));
    snapshot
        .accounts
        .extend(accounts.chunks_exact(size_of::<Account>()).map(bytemuck::pod_read_unaligned::<Account>));
}

/// Why a state payload does not decode.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum StatePayloadError {
    /// Fewer bytes than the fixed part before the columns.
    #[error("state payload of {length} bytes is shorter than its fixed part")]
    Short {
        /// Bytes in the payload.
        length: usize,
    },
    /// A count whose columns could not fit in memory.
    #[error("state declares an impossible {count} accounts")]
    ImpossibleCount {
        /// The declared account count.
        count: u64,
    },
    /// Columns that are not exactly the declared count's.
    #[error("state declares {count} accounts but holds {columns} bytes of columns")]
    LengthMismatch {
        /// The declared account count.
        count: u64,
        /// Bytes of columns after the fixed part.
        columns: usize,
    },
}

/// Most accounts in one record of a state file: a page of 4,096 (192 KiB of columns), each
/// with its own checksum, so that damage is found and named a page at a time (with one record
/// of every account, a flipped bit anywhere in 480 MB named the record's first byte), and a
/// state of any size is written (one record of every account stops fitting the record limit,
/// 256 MiB, at ~5.6 M accounts).
pub const STATE_ROWS_PER_RECORD: usize = 1 << 12;

const _: () = assert!(STATE_FIXED_SIZE + STATE_ROWS_PER_RECORD * STATE_ROW_SIZE <= RECORD_PAYLOAD_MAX);

/// A whole `state` file for this snapshot: the file header, then records back to back. A
/// state of up to [`STATE_ROWS_PER_RECORD`] accounts is one record, whose payload is
/// [`encode_state_payload`]'s, as before chunks existed. A larger one is chunked: the first
/// record's payload is the fixed part (height, root, burned, supply, count) and the columns
/// of the first [`STATE_ROWS_PER_RECORD`] accounts (addresses, then accounts); each later
/// record holds the columns of the next ones, in slot order.
///
/// # Panics
/// If the columns differ in length.
pub fn encode_state_file(genesis_id: Hash, state: StateView<'_>) -> Vec<u8> {
    encode_state_file_in(genesis_id, state, default_rows_per_record(state.keys.len()))
}

/// Rows a state record holds when [`encode_state_file`] writes `count` accounts: up to
/// [`STATE_ROWS_PER_RECORD`], so a state of up to that many accounts is the one record earlier
/// versions wrote (and read), and no record's payload passes 192 KiB.
fn default_rows_per_record(count: usize) -> usize {
    count.clamp(1, STATE_ROWS_PER_RECORD)
}

/// [`encode_state_file`] with `rows_per_record` accounts a record (tests use small ones).
///
/// # Panics
/// If the columns differ in length, or `rows_per_record` is 0 or its records would pass the
/// record limit.
pub fn encode_state_file_in(genesis_id: Hash, state: StateView<'_>, rows_per_record: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        FILE_HEADER_SIZE
            + state.keys.len().div_ceil(rows_per_record.max(1)).max(1) * RECORD_HEADER_SIZE
            + STATE_FIXED_SIZE
            + state.keys.len() * STATE_ROW_SIZE,
    );
    let written = write_state_file_in(genesis_id, state, rows_per_record, |bytes| {
        out.extend_from_slice(bytes);
        Ok::<(), std::convert::Infallible>(())
    });
    match written {
        Ok(_) => out,
    }
}

/// Writes [`encode_state_file`]'s bytes to `sink` a piece at a time (the file header, then each
/// record), so a state of any size is written holding at most one record's payload (192 KiB) in
/// memory. Returns the bytes written.
///
/// # Errors
/// The first error `sink` returns; nothing more is written after it.
pub fn write_state_file<E>(
    genesis_id: Hash,
    state: StateView<'_>,
    sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, E> {
    write_state_file_in(genesis_id, state, default_rows_per_record(state.keys.len()), sink)
}

fn write_state_file_in<E>(
    genesis_id: Hash,
    state: StateView<'_>,
    rows_per_record: usize,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, E> {
    assert_eq!(state.keys.len(), state.accounts.len(), "one account per address");
    assert!(
        rows_per_record > 0
            && STATE_FIXED_SIZE + rows_per_record.min(state.keys.len()) * STATE_ROW_SIZE
                <= RECORD_PAYLOAD_MAX,
        "rows per record in range"
    );
    let count = state.keys.len();
    sink(bytemuck::bytes_of(&FileHeader::new(FileKind::State, 0, genesis_id)))?;
    let mut offset = FILE_HEADER_SIZE as u64;
    let mut start = 0;
    loop {
        let end = count.min(start + rows_per_record);
        let mut payload = Vec::with_capacity(STATE_FIXED_SIZE + (end - start) * STATE_ROW_SIZE);
        if start == 0 {
            payload.extend_from_slice(&state.height.to_le_bytes());
            payload.extend_from_slice(&state.state_root.0);
            payload.extend_from_slice(&state.burned.to_le_bytes());
            payload.extend_from_slice(&state.supply.to_le_bytes());
            payload.extend_from_slice(&(count as u64).to_le_bytes());
        }
        payload.extend_from_slice(bytemuck::cast_slice(&state.keys[start..end]));
        payload.extend_from_slice(bytemuck::cast_slice(&state.accounts[start..end]));
        let place = Place { kind: RecordKind::State, segment: 0, offset };
        let record = encode_record(place, state.height, &payload);
        drop(payload);
        sink(&record)?;
        offset += record.len() as u64;
        start = end;
        if start >= count {
            return Ok(offset);
        }
    }
}

/// Checks a whole `state` file of the directory with `genesis_id` ([`encode_state_file`]'s
/// layout; any chunking is read). Memory is bounded by the file: a declared count the file
/// cannot hold is refused, and rows are allocated as records are read.
///
/// # Errors
/// The first problem, with its offset.
pub fn decode_state_file(bytes: &[u8], genesis_id: Hash) -> Result<StateSnapshot, Problem> {
    FileHeader::check(bytes, FileKind::State, 0, Some(genesis_id))
        .map_err(|reason| Problem::new(FileRef::State, 0, reason))?;
    let problem = |offset: u64, reason: String| Problem::new(FileRef::State, offset, reason);
    let mut offset = FILE_HEADER_SIZE as u64;
    let mut head: Option<(StateSnapshot, u64)> = None;
    loop {
        let place = Place { kind: RecordKind::State, segment: 0, offset };
        let first_slot = head.as_ref().map_or(0, |(snapshot, _)| snapshot.keys.len());
        let record = check_record(&bytes[offset as usize..], place).map_err(|error| {
            Problem::new(
                FileRef::State,
                offset,
                format!("the page of accounts from slot {first_slot}: {error}"),
            )
        })?;
        let payload_offset = offset + RECORD_HEADER_SIZE as u64;
        let (snapshot, count, columns) = match head.take() {
            None => {
                let (snapshot, count, columns) = decode_state_head(record.payload)
                    .map_err(|reason| Problem::new(FileRef::State, payload_offset, reason))?;
                if snapshot.height != record.header.height {
                    return Err(problem(
                        offset,
                        format!(
                            "record height {} but payload height {}",
                            record.header.height, snapshot.height
                        ),
                    ));
                }
                if count as u128 * STATE_ROW_SIZE as u128 > bytes.len() as u128 {
                    return Err(problem(
                        payload_offset,
                        format!(
                            "state declares {count} accounts, more than a file of {} bytes holds",
                            bytes.len()
                        ),
                    ));
                }
                (snapshot, count, columns)
            }
            Some((snapshot, count)) => {
                if record.header.height != snapshot.height {
                    return Err(problem(
                        offset,
                        format!(
                            "record height {} in a state at height {}",
                            record.header.height, snapshot.height
                        ),
                    ));
                }
                if record.payload.is_empty() {
                    return Err(problem(offset, "an empty state record after the first".into()));
                }
                (snapshot, count, record.payload)
            }
        };
        let mut snapshot = snapshot;
        let have = snapshot.keys.len() as u64;
        let rows = (columns.len() / STATE_ROW_SIZE) as u64;
        if columns.len() % STATE_ROW_SIZE != 0 || have + rows > count {
            return Err(problem(
                payload_offset,
                format!(
                    "state record of {} bytes of columns after {have} of {count} accounts",
                    columns.len()
                ),
            ));
        }
        push_rows(&mut snapshot, columns);
        offset += record.header.record_size();
        if snapshot.keys.len() as u64 == count {
            if offset != bytes.len() as u64 {
                return Err(problem(
                    offset,
                    format!("{} bytes after the state's last record", bytes.len() as u64 - offset),
                ));
            }
            return Ok(snapshot);
        }
        if offset >= bytes.len() as u64 {
            return Err(problem(
                offset,
                format!("state declares {count} accounts but the file ends after {}", snapshot.keys.len()),
            ));
        }
        head = Some((snapshot, count));
    }
}

fn split_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*head), rest))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

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
        let state = encode_state_file(id, view);
        assert_eq!(&state[FILE_HEADER_SIZE + RECORD_HEADER_SIZE..], encode_state_payload(view), "one record");
        let back = decode_state_file(&state, id).unwrap();
        assert_eq!(
            (back.height, back.keys.as_slice(), back.accounts.as_slice()),
            (9, &keys[..], &accounts[..])
        );
        assert!(decode_state_file(&state, Hash::ZERO).is_err(), "another directory's state");
        assert!(decode_state_file(&state[..state.len() - 1], id).is_err());
    }

    /// A state or genesis larger than a page is written a page (4,096 accounts) a record, so a
    /// flipped byte is named at the record of its page, with the page's first account; as
    /// one record of every account it was named at the file's first record, whatever the
    /// file's size.
    #[test]
    fn damage_is_named_at_its_page_of_accounts() {
        // 10,000 accounts: 480 KB of state columns, 400 KB of genesis rows. A byte flipped
        // 250,000 bytes in must be named within a page (at most 200 KB) before it.
        let count = 10_000u32;
        let flipped = 250_000;
        let near =
            |offset: u64| offset > FILE_HEADER_SIZE as u64 && offset <= flipped && flipped - offset < 200_000;
        let keys: Vec<[u8; 32]> = (0..count)
            .map(|i| {
                let mut key = [0; 32];
                key[..4].copy_from_slice(&i.to_le_bytes());
                key
            })
            .collect();
        let accounts: Vec<Account> =
            (0..u64::from(count)).map(|i| Account { balance: i, nonce: 0 }).collect();
        let view = StateView {
            height: 2,
            state_root: Hash([1; 32]),
            keys: &keys,
            accounts: &accounts,
            burned: 0,
            supply: 0,
        };
        let id = Hash([4; 32]);
        let file = encode_state_file(id, view);
        let mut bad = file.clone();
        bad[flipped as usize] ^= 1;
        let problem = decode_state_file(&bad, id).unwrap_err();
        assert!(near(problem.offset), "{}: {}", problem.offset, problem.reason);
        assert!(problem.reason.contains("the page of accounts from slot 4096"), "{}", problem.reason);
        assert_eq!(decode_state_file(&file, id).unwrap().keys.len(), count as usize);

        let balances: Vec<([u8; 32], u64)> = keys.iter().map(|key| (*key, 1)).collect();
        let (genesis_id, file) = encode_genesis_file(&balances);
        let mut bad = file.clone();
        bad[flipped as usize] ^= 1;
        let problem = decode_genesis_file(&bad).unwrap_err();
        assert!(near(problem.offset), "{}: {}", problem.offset, problem.reason);
        assert!(problem.reason.contains("the page of accounts from row 4096"), "{}", problem.reason);
        assert_eq!(decode_genesis_file(&file).unwrap().0, genesis_id);
    }

    #[test]
    fn a_state_in_many_records_round_trips_and_refuses_damage() {
        let id = Hash([3; 32]);
        let keys: Vec<[u8; 32]> = (0..7u8).map(|i| [i + 1; 32]).collect();
        let accounts: Vec<Account> = (0..7).map(|i| Account { balance: 10 + i, nonce: i }).collect();
        let view = StateView {
            height: 4,
            state_root: Hash([6; 32]),
            keys: &keys,
            accounts: &accounts,
            burned: 2,
            supply: 99,
        };
        for rows in [1, 2, 3, 6, 7, 100] {
            let file = encode_state_file_in(id, view, rows);
            let back = decode_state_file(&file, id).unwrap();
            assert_eq!(
                (back.keys.as_slice(), back.accounts.as_slice()),
                (&keys[..], &accounts[..]),
                "{rows}"
            );
            assert_eq!((back.height, back.state_root, back.burned, back.supply), (4, Hash([6; 32]), 2, 99));
            for byte in 0..file.len() {
                let mut bad = file.clone();
                bad[byte] ^= 0x10;
                assert!(decode_state_file(&bad, id).is_err(), "{rows} rows a record: flip at {byte}");
            }
            for cut in [file.len() - 1, file.len() - 48, FILE_HEADER_SIZE + 41] {
                assert!(decode_state_file(&file[..cut], id).is_err(), "{rows} rows a record: cut at {cut}");
            }
            let mut longer = file.clone();
            longer.extend_from_slice(&file[FILE_HEADER_SIZE..]);
            assert!(decode_state_file(&longer, id).is_err(), "{rows} rows a record: records after the last");
        }
        let empty = StateView { keys: &[], accounts: &[], ..view };
        assert_eq!(decode_state_file(&encode_state_file_in(id, empty, 2), id).unwrap().keys.len(), 0);
    }

    #[test]
    fn a_genesis_in_many_records_has_the_one_record_id_and_refuses_damage() {
        let balances: Vec<([u8; 32], u64)> = (0..7u8).map(|i| ([i + 1; 32], u64::from(i) * 5)).collect();
        let (id, whole) = encode_genesis_file(&balances);
        assert_eq!(id, genesis_id(&encode_genesis_payload(&balances)), "the id is the payload's hash");
        assert_eq!(id, genesis_id_of(&balances));
        for rows in [1, 2, 3, 6, 7, 100] {
            let (chunked_id, file) = encode_genesis_file_in(&balances, rows);
            assert_eq!(chunked_id, id, "{rows} rows a record: the id does not depend on chunking");
            assert_eq!(decode_genesis_file(&file).unwrap(), (id, balances.clone()), "{rows}");
            if rows >= 7 {
                assert_eq!(file, whole);
            }
            for byte in 0..file.len() {
                let mut bad = file.clone();
                bad[byte] ^= 0x08;
                assert!(decode_genesis_file(&bad).is_err(), "{rows} rows a record: flip at {byte}");
            }
            for cut in [file.len() - 1, file.len() - 40, FILE_HEADER_SIZE + 41] {
                assert!(decode_genesis_file(&file[..cut]).is_err(), "{rows} rows a record: cut at {cut}");
            }
            let mut longer = file.clone();
            longer.extend_from_slice(&file[FILE_HEADER_SIZE..]);
            assert!(decode_genesis_file(&longer).is_err(), "{rows} rows a record: records after the last");
        }
        // A count the file cannot hold is refused before rows are allocated for it.
        let (_, mut file) = encode_genesis_file(&balances);
        let at = FILE_HEADER_SIZE + RECORD_HEADER_SIZE;
        file[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_genesis_file(&file).is_err());
    }

    /// A genesis file of these payloads, sealed record by record, with the id of their bytes.
    fn sealed_genesis(payloads: &[Vec<u8>]) -> Vec<u8> {
        let id = genesis_id(&payloads.concat());
        let mut file = bytemuck::bytes_of(&FileHeader::new(FileKind::Genesis, 0, id)).to_vec();
        for payload in payloads {
            let place = Place { kind: RecordKind::Genesis, segment: 0, offset: file.len() as u64 };
            file.extend_from_slice(&encode_record(place, 0, payload));
        }
        file
    }

    fn row(tag: u8) -> Vec<u8> {
        let mut row = vec![tag; 32];
        row.extend_from_slice(&u64::from(tag).to_le_bytes());
        row
    }

    #[test]
    fn genesis_records_that_check_but_do_not_add_up_are_refused_where_they_are() {
        let count = |n: u64| n.to_le_bytes().to_vec();
        // Sound, as a control: two records of one row each.
        let sound = sealed_genesis(&[[count(2), row(1)].concat(), row(2)]);
        assert_eq!(decode_genesis_file(&sound).unwrap().1, vec![([1; 32], 1), ([2; 32], 2)]);
        let refused = |payloads: &[Vec<u8>]| decode_genesis_file(&sealed_genesis(payloads)).unwrap_err();
        // A count the file cannot hold, refused at the payload before any row is read.
        let problem = refused(&[[count(100), row(1)].concat()]);
        assert!(problem.reason.contains("impossible 100"), "{problem:?}");
        assert_eq!(problem.offset, (FILE_HEADER_SIZE + RECORD_HEADER_SIZE) as u64);
        // A partial row, more rows than the count, an empty record after the first.
        let problem = refused(&[[count(2), row(1)].concat(), [row(2), vec![9]].concat()]);
        assert!(problem.reason.contains("holds 41 bytes"), "{problem:?}");
        let problem = refused(&[[count(1), row(1), row(2)].concat()]);
        assert!(problem.reason.contains("declares 1 accounts but holds 80"), "{problem:?}");
        let problem = refused(&[[count(2), row(1)].concat(), Vec::new(), row(2)]);
        assert!(problem.reason.contains("empty genesis record"), "{problem:?}");
        // The payload decoder of one record agrees.
        let payload = encode_genesis_payload(&[([1; 32], 1), ([2; 32], 2)]);
        assert_eq!(decode_genesis_payload(&payload).unwrap(), vec![([1; 32], 1), ([2; 32], 2)]);
        assert!(matches!(
            decode_genesis_payload(&payload[..payload.len() - 1]),
            Err(GenesisPayloadError::LengthMismatch { .. })
        ));
        assert!(matches!(decode_genesis_payload(&payload[..4]), Err(GenesisPayloadError::Short { .. })));
    }

    #[test]
    fn state_records_that_check_but_do_not_add_up_are_refused_where_they_are() {
        let id = Hash([4; 32]);
        let fixed = |count: u64| {
            let mut fixed = 7u64.to_le_bytes().to_vec();
            fixed.extend_from_slice(&[1; 32]);
            fixed.extend_from_slice(&0u64.to_le_bytes());
            fixed.extend_from_slice(&100u128.to_le_bytes());
            fixed.extend_from_slice(&count.to_le_bytes());
            fixed
        };
        // `rows` rows' columns: their addresses, then their accounts.
        let columns = |rows: u8| {
            let mut columns: Vec<u8> = (0..rows).flat_map(|i| [i + 1; 32]).collect();
            columns.extend((0..rows).flat_map(|i| [u64::from(i), 0].map(u64::to_le_bytes).concat()));
            columns
        };
        let sealed = |payloads: &[Vec<u8>]| {
            let mut file = bytemuck::bytes_of(&FileHeader::new(FileKind::State, 0, id)).to_vec();
            for payload in payloads {
                let place = Place { kind: RecordKind::State, segment: 0, offset: file.len() as u64 };
                file.extend_from_slice(&encode_record(place, 7, payload));
            }
            file
        };
        let sound = sealed(&[[fixed(2), columns(1)].concat(), columns(1)]);
        assert_eq!(decode_state_file(&sound, id).unwrap().keys.len(), 2);
        let refused = |payloads: &[Vec<u8>]| decode_state_file(&sealed(payloads), id).unwrap_err();
        let problem = refused(&[[fixed(100), columns(1)].concat()]);
        assert!(problem.reason.contains("declares 100 accounts, more than a file"), "{problem:?}");
        assert_eq!(problem.offset, (FILE_HEADER_SIZE + RECORD_HEADER_SIZE) as u64);
        let problem = refused(&[[fixed(2), columns(1)].concat(), [columns(1), vec![0]].concat()]);
        assert!(problem.reason.contains("49 bytes of columns after 1 of 2"), "{problem:?}");
        let problem = refused(&[[fixed(1), columns(2)].concat()]);
        assert!(problem.reason.contains("96 bytes of columns after 0 of 1"), "{problem:?}");
        let problem = refused(&[[fixed(2), columns(1)].concat(), Vec::new(), columns(1)]);
        assert!(problem.reason.contains("empty state record"), "{problem:?}");
    }

    #[test]
    fn the_streaming_writers_return_what_they_wrote() {
        let balances: Vec<([u8; 32], u64)> = (0..5u8).map(|i| ([i + 1; 32], u64::from(i))).collect();
        let mut file = Vec::new();
        let id = write_genesis_file(&balances, |bytes| {
            file.extend_from_slice(bytes);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!((id, file.clone()), encode_genesis_file(&balances));
        let keys: Vec<[u8; 32]> = balances.iter().map(|(key, _)| *key).collect();
        let accounts: Vec<Account> =
            balances.iter().map(|(_, balance)| Account { balance: *balance, nonce: 1 }).collect();
        let view = StateView {
            height: 3,
            state_root: Hash([2; 32]),
            keys: &keys,
            accounts: &accounts,
            burned: 1,
            supply: 11,
        };
        let mut state = Vec::new();
        let written = write_state_file(id, view, |bytes| {
            state.extend_from_slice(bytes);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!((written, state.clone()), (state.len() as u64, encode_state_file(id, view)));
        // A sink that fails stops the writing with its error.
        let mut calls = 0;
        assert_eq!(
            write_state_file(id, view, |_| {
                calls += 1;
                Err("full")
            }),
            Err("full")
        );
        assert_eq!(calls, 1);
    }

    proptest! {
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
