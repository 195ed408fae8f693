//! The validator's safety state on disk: what it has bound itself to in consensus (the view it
//! entered and its lock), written and synced before any message it signed leaves the node.
//!
//! Two slot files, `safety-0` and `safety-1`, each hold the whole state. Write `n` goes to
//! `safety-0`, whole, then one `fdatasync`, then the same to `safety-1`; only then may what it
//! covers be sent. A crash in the middle of a save tears at most the slot being written, and
//! the other holds either this save (the tear is in `safety-1`) or the previous one, which is
//! all that was sent (the tear is in `safety-0`). Damage found later in one slot leaves the
//! other holding the newest state sent. So recovery takes the valid slot with the higher
//! sequence number, and one bad slot never leaves the node older than what it signed. A slot
//! is (little-endian):
//!
//! ```text
//! 0   8  magic "TSSAFE02" (a save to both slots; "TSSAFE01", the older format, went to one)
//! 8   8  sequence number (the n-th save since the store was created, from 1)
//! 16  4  payload length in bytes (at most SAFETY_PAYLOAD_MAX)
//! 20  4  CRC-32C of bytes 8..20 and the payload
//! 24  …  payload: the SafetyState, postcard-encoded
//! ```
//!
//! Bytes past the payload are left from longer earlier writes and ignored. A slot that fails
//! its checks (torn, damaged, or never written) holds no state; two such slots mean no state
//! was ever written, which is only right for a new store: with blocks, the node resumes bound to
//! sign nothing below its tip + 2 (`crate::driver::resume`).
//!
//! Before, save `n` went to slot `n mod 2` alone (the `TSSAFE01` format). A bit flipped later in
//! the newest slot then looked like a torn write, and recovery took the other slot, a state the
//! validator had signed past: restarted, it voted again in a view it had voted in (found in
//! review). A store whose newest valid slot is of that format, with the other slot damaged,
//! cannot tell the two apart, so it is reported uncertain and the node binds itself past its
//! tip; its first save after that writes both slots. A sequence number of 2^63 or more fails
//! the checks: the next save could not be numbered past it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

use tessera_components::SafetyState;

use super::map::DirLock;
use super::{StoreError, io_error};

/// The slot files' names.
pub const SAFETY_FILES: [&str; 2] = ["safety-0", "safety-1"];
const MAGIC: &[u8; 8] = b"TSSAFE02";
/// The older format's magic: each save went to one slot only.
const MAGIC_ONE_SLOT: &[u8; 8] = b"TSSAFE01";
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
    if &header[..8] != MAGIC && &header[..8] != MAGIC_ONE_SLOT {
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
    /// A slot holds bytes that fail its checks: torn by a crash, or damaged since.
    pub damaged: bool,
    /// `state` may be older than what the validator signed under: a slot is damaged and the
    /// newest valid one is of the one-slot format (see the module docs).
    pub uncertain: bool,
}

/// Whether a slot that passed [`decode_slot`] was written by a save to both slots.
fn saved_to_both(bytes: &[u8]) -> bool {
    bytes.get(..8) == Some(&MAGIC[..])
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
            let metadata = file.metadata().map_err(io_error(path))?;
            if !metadata.is_file() {
                // A FIFO would read as empty and fail every save: the validator would go silent.
                let source = std::io::Error::new(std::io::ErrorKind::InvalidData, "not a regular file");
                return Err(io_error(path)(source));
            }
            let length = metadata.len();
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
        let newest_slot = contents
            .iter()
            .filter_map(|bytes| {
                decode_slot(bytes).map(|(sequence, state)| (sequence, state, saved_to_both(bytes)))
            })
            .max_by_key(|(sequence, _, _)| *sequence);
        let damaged = contents.iter().any(|bytes| !bytes.is_empty() && decode_slot(bytes).is_none());
        let uncertain = damaged && newest_slot.as_ref().is_some_and(|(_, _, both)| !both);
        let sequence = newest_slot.as_ref().map_or(0, |(sequence, _, _)| *sequence);
        let slots: [File; 2] = files.try_into().expect("two slot files");
        let recovered = SafetyRecovered { state: newest_slot.map(|(_, state, _)| state), damaged, uncertain };
        Ok((SafetyFile { slots, paths, sequence, sync }, recovered))
    }

    /// Writes `state` to `safety-0`, syncs it, then the same to `safety-1`: durable in both when
    /// this returns `Ok`.
    ///
    /// # Errors
    /// A failed write or sync: the caller must then not send what `state` covers.
    pub fn save(&mut self, state: &SafetyState) -> Result<(), StoreError> {
        // Below 2^63 (`decode_slot` refuses more), so this cannot wrap.
        let sequence = self.sequence + 1;
        let bytes = encode_slot(sequence, state);
        debug_assert_eq!(decode_slot(&bytes).map(|(s, _)| s), Some(sequence));
        // In order, each synced before the next is touched: a tear is in one slot only, and
        // the other then holds this state or the last one sent.
        for (slot, path) in self.slots.iter().zip(&self.paths) {
            slot.write_all_at(&bytes, 0).map_err(io_error(path))?;
            if self.sync {
                slot.sync_data().map_err(io_error(path))?;
            }
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

    fn slots_dir(name: &str) -> (std::path::PathBuf, DirLock) {
        let dir = std::env::temp_dir().join(format!("tessera-safety-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lock = DirLock::new(&dir, super::super::map::LockMode::Exclusive).unwrap();
        (dir, lock)
    }

    /// Each save goes to both slots, so a slot torn by a crash (or damaged since) leaves the
    /// other holding the newest state sent, and the store is not uncertain of it. Before, save
    /// `n` went to one slot, and damage to the newest one rolled the validator back.
    #[test]
    fn a_save_goes_to_both_slots_so_one_bad_slot_leaves_the_newest_state() {
        let (dir, lock) = slots_dir("both");
        let (mut file, recovered) = SafetyFile::open(&lock, false).unwrap();
        assert_eq!(recovered, SafetyRecovered::default());
        file.save(&state(9)).unwrap();
        file.save(&state(10)).unwrap();
        drop(file);
        for (torn, kept) in [(0, 1), (1, 0)] {
            let bytes = std::fs::read(dir.join(SAFETY_FILES[kept])).unwrap();
            assert_eq!(decode_slot(&bytes), Some((2, state(10))), "slot {kept} holds the last save");
            let path = dir.join(SAFETY_FILES[torn]);
            let whole = std::fs::read(&path).unwrap();
            std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
            let (_, recovered) = SafetyFile::open(&lock, false).unwrap();
            assert_eq!(
                recovered,
                SafetyRecovered { state: Some(state(10)), damaged: true, uncertain: false }
            );
            std::fs::write(&path, &whole).unwrap();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A store of the older one-slot format cannot tell a torn newest slot from a damaged one:
    /// beside a damaged slot, its valid one may be older than what was signed, and the store
    /// says so. Its next save writes both slots.
    #[test]
    fn a_damaged_slot_beside_the_one_slot_format_is_uncertain() {
        let (dir, lock) = slots_dir("one-slot");
        let mut older = encode_slot(4, &state(9));
        older[..8].copy_from_slice(MAGIC_ONE_SLOT);
        std::fs::write(dir.join(SAFETY_FILES[0]), &older).unwrap();
        std::fs::write(dir.join(SAFETY_FILES[1]), [0x5a; 40]).unwrap();
        let (mut file, recovered) = SafetyFile::open(&lock, false).unwrap();
        assert_eq!(recovered, SafetyRecovered { state: Some(state(9)), damaged: true, uncertain: true });
        file.save(&state(11)).unwrap();
        drop(file);
        let (_, recovered) = SafetyFile::open(&lock, false).unwrap();
        assert_eq!(recovered, SafetyRecovered { state: Some(state(11)), damaged: false, uncertain: false });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
