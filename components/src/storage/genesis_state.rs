//! The data directory's single-record files: `genesis` (the genesis balances, whose hash is
//! the directory's identity) and `state` (an account-state snapshot).

use super::record::{
    FILE_HEADER_SIZE, FileHeader, FileKind, Place, RECORD_HEADER_SIZE, RECORD_PAYLOAD_MAX, Record,
    RecordKind, check_record, encode_record,
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
    let record =
        check_record(&bytes[FILE_HEADER_SIZE..], place).map_err(|error| Problem::new(file, offset, error))?;
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
pub fn decode_state_payload(payload: &[u8]) -> Result<StateSnapshot, StatePayloadError> {
    let Some((fixed, columns)) = payload.split_first_chunk::<STATE_FIXED_SIZE>() else {
        return Err(StatePayloadError::Short { length: payload.len() });
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
        .ok_or(StatePayloadError::ImpossibleCount { count })?;
    if columns.len() != expected {
        return Err(StatePayloadError::LengthMismatch { count, columns: columns.len() });
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
