//! The validator's safety state on disk: what it has bound itself to in consensus (the view it
//! entered and its lock), written and synced before any message it signed leaves the node.
//!
//! Two slot files, `safety-0` and `safety-1`, take turns: write `n` goes to slot `n mod 2`,
//! whole, followed by one `fdatasync`. A crash in the middle of a write tears at most the slot
//! being written; the other still holds the previous state, and recovery takes the valid slot
//! with the higher sequence number. A slot is (little-endian):
//!
//! ```text
//! 0   8  magic "TSSAFE01"
//! 8   8  sequence number (the n-th write since the store was created, from 1)
//! 16  4  payload length in bytes (at most SAFETY_PAYLOAD_MAX)
//! 20  4  CRC-32C of bytes 8..20 and the payload
//! 24  …  payload: the SafetyState, postcard-encoded
//! ```
//!
//! Bytes past the payload are left from longer earlier writes and ignored. A slot that fails
//! its checks (torn, or never written) holds no state; two such slots mean no state was ever
//! written, which is only right for a new store: with blocks, the node resumes bound to sign
//! nothing below its tip + 2 (`crate::driver::resume`).
//!
//! A slot that holds bytes but fails its checks is reported as damaged, whatever the other
//! holds. A write torn by a crash and a bit flipped later in the newest slot look the same, and
//! only the first leaves the other slot's state current: after the second, resuming from the
//! other slot would forget a view signed in (or, if that slot is of a lower height, every
//! bound). So a damaged slot binds the node as a lost state does, to nothing below its tip + 2,
//! unless the valid slot binds it further. A torn write then costs a catch-up by sync, never a
//! second signature. A sequence number of 2^63 or more fails the checks too: the next write
//! could not be numbered past it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

use tessera_components::SafetyState;

use super::map::DirLock;
use super::{StoreError, io_error};

/// The slot files' names.
pub const SAFETY_FILES: [&str; 2] = ["safety-0", "safety-1"];
const MAGIC: &[u8; 8] = b"TSSAFE01";
const HEADER_SIZE: usize = 24;
/// Largest payload a slot may hold: a lock carries one signature per signer (64 bytes plus an
/// index), so this fits a certificate of over 8,000 validators.
pub const SAFETY_PAYLOAD_MAX: usize = 1 << 20;
/// Sequence numbers run below this: a slot claiming more is damaged (a CRC is no MAC, and a
/// slot numbered `u64::MAX` would overflow the next write's number, or win every restart).
const SEQUENCE_LIMIT: u64 = 1 << 63;

/// The slot bytes for write number `sequence` of `state`.
///
/// # Panics
/// A state whose encoding exceeds [`SAFETY_PAYLOAD_MAX`] (a lock of more validators than the
/// format admits; the validator set is far smaller).
pub fn encode_slot(sequence: u64, state: &SafetyState) -> Vec<u8> {
    let payload = postcard::to_allocvec(state).expect("a safety state serialises");
    assert!(payload.len() <= SAFETY_PAYLOAD_MAX, "safety state of {} bytes", payload.len());
    let mut out = Vec::with_capacity(HEADER_SIZE + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out[8..20]), &payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// The (sequence, state) a slot's bytes hold, or `None` if they fail any check: length first,
/// then magic, then checksum, then the decode.
pub fn decode_slot(bytes: &[u8]) -> Option<(u64, SafetyState)> {
    let header = bytes.get(..HEADER_SIZE)?;
    if &header[..8] != MAGIC {
        return None;
    }
    let sequence = u64::from_le_bytes(header[8..16].try_into().ok()?);
    if sequence >= SEQUENCE_LIMIT {
        return None;
    }
    let length = u32::from_le_bytes(header[16..20].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[20..24].try_into().ok()?);
    if length > SAFETY_PAYLOAD_MAX {
        return None;
    }
    let payload = bytes.get(HEADER_SIZE..HEADER_SIZE.checked_add(length)?)?;
    if crc32c::crc32c_append(crc32c::crc32c(&header[8..20]), payload) != crc {
        return None;
    }
    let state: SafetyState = postcard::from_bytes(payload).ok()?;
    Some((sequence, state))
}

/// The newest valid state among the slots' bytes.
pub fn newest(slots: &[Vec<u8>]) -> Option<(u64, SafetyState)> {
    slots.iter().filter_map(|bytes| decode_slot(bytes)).max_by_key(|(sequence, _)| *sequence)
}

/// What the slot files held at open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SafetyRecovered {
    /// The newest valid state.
    pub state: Option<SafetyState>,
    /// A slot holds bytes that fail its checks: torn by a crash, or damaged since. The node
    /// must then not trust `state` to be the newest it signed under (see the module docs).
    pub damaged: bool,
}

/// The two slot files of one data directory, open for writing.
#[derive(Debug)]
pub struct SafetyFile {
    slots: [File; 2],
    paths: [std::path::PathBuf; 2],
    /// Sequence number of the newest write on disk (0: none).
    sequence: u64,
    sync: bool,
}

impl SafetyFile {
    /// Opens (creating them if missing) the slot files in the locked directory, and reads the
    /// newest state they hold.
    ///
    /// # Errors
    /// A file that cannot be created, read or synced.
    pub fn open(lock: &DirLock, sync: bool) -> Result<(SafetyFile, SafetyRecovered), StoreError> {
        let mut created = false;
        let mut contents = Vec::with_capacity(2);
        let mut files = Vec::with_capacity(2);
        let paths = SAFETY_FILES.map(|name| lock.path(name));
        for path in &paths {
            created |= !path.exists();
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(io_error(path))?;
            let length = file.metadata().map_err(io_error(path))?.len();
            // Only a slot's worth is read: a longer file was not written by this store.
            let mut bytes = vec![0u8; length.min((HEADER_SIZE + SAFETY_PAYLOAD_MAX) as u64) as usize];
            file.read_exact_at(&mut bytes, 0).map_err(io_error(path))?;
            contents.push(bytes);
            files.push(file);
        }
        if created && sync {
            // The new names must survive a crash as well as what is later written to them.
            lock.sync_dir().map_err(io_error(lock.dir()))?;
        }
        let newest = newest(&contents);
        let damaged = contents.iter().any(|bytes| !bytes.is_empty() && decode_slot(bytes).is_none());
        let sequence = newest.as_ref().map_or(0, |(sequence, _)| *sequence);
        let slots: [File; 2] = files.try_into().expect("two slot files");
        let recovered = SafetyRecovered { state: newest.map(|(_, state)| state), damaged };
        Ok((SafetyFile { slots, paths, sequence, sync }, recovered))
    }

    /// Writes `state` over the older slot and syncs it: durable when this returns `Ok`.
    ///
    /// # Errors
    /// A failed write or sync: the caller must then not send what `state` covers.
    pub fn save(&mut self, state: &SafetyState) -> Result<(), StoreError> {
        // Below 2^63 (`decode_slot` refuses more), so this cannot wrap.
        let sequence = self.sequence + 1;
        let slot = (sequence % 2) as usize;
        let bytes = encode_slot(sequence, state);
        debug_assert_eq!(decode_slot(&bytes).map(|(s, _)| s), Some(sequence));
        let path = &self.paths[slot];
        self.slots[slot].write_all_at(&bytes, 0).map_err(io_error(path))?;
        if self.sync {
            self.slots[slot].sync_data().map_err(io_error(path))?;
        }
        self.sequence = sequence;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tessera_components::{Hash, QuorumCertificate, Signature, VoteKind};

    use super::*;

    fn state(view: u64) -> SafetyState {
        let lock = QuorumCertificate {
            kind: VoteKind::Prepare,
            view,
            height: 3,
            block: Hash([7; 32]),
            signers: vec![0, 1, 2],
            signatures: vec![Signature([1; 64]); 3],
        };
        SafetyState { height: 3, view, lock: Some(lock) }
    }

    #[test]
    fn a_torn_or_damaged_slot_leaves_the_other() {
        let older = encode_slot(4, &state(9));
        let newer = encode_slot(5, &state(10));
        assert_eq!(newest(&[older.clone(), newer.clone()]), Some((5, state(10))));
        // A write torn at any byte: the older slot wins.
        for cut in 0..newer.len() {
            assert_eq!(newest(&[older.clone(), newer[..cut].to_vec()]), Some((4, state(9))), "cut at {cut}");
        }
        // Any flipped bit of the newer slot's header or payload: the older slot wins.
        for bit in 0..newer.len() * 8 {
            let mut damaged = newer.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(newest(&[older.clone(), damaged]), Some((4, state(9))), "bit {bit}");
        }
        // Stale bytes past the payload are ignored.
        let mut padded = newer.clone();
        padded.extend_from_slice(&[0xAB; 100]);
        assert_eq!(decode_slot(&padded), Some((5, state(10))));
        assert_eq!(newest(&[Vec::new(), Vec::new()]), None);
        // A sequence number past the limit is refused, checksum or not.
        assert_eq!(
            decode_slot(&encode_slot(SEQUENCE_LIMIT - 1, &state(1))).map(|(s, _)| s),
            Some(SEQUENCE_LIMIT - 1)
        );
        assert_eq!(decode_slot(&encode_slot(SEQUENCE_LIMIT, &state(1))), None);
        assert_eq!(decode_slot(&encode_slot(u64::MAX, &state(1))), None);
    }
}
