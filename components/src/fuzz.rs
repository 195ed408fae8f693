//! Fuzz harnesses and their seed scaffolding, for `cargo test` and the `fuzz/` crate.
//!
//! Bird's eye view: each harness is an ordinary function that drives one decoder or check of
//! this crate with arbitrary bytes and asserts what must hold for every input. `cargo test`
//! runs each on seeded inputs ([`FuzzSeeds`]) and on the target's checked-in seed corpus
//! ([`fuzz_corpus`]); `fuzz/fuzz_targets/<target>.rs` hands each to libFuzzer in one line.
//! The harnesses of `tessera-systems` and of the `tessera` binary use the same seed helpers.
//!
//! This module is test and fuzz scaffolding, compiled only for `cargo test`, under
//! `cfg(fuzzing)` and with the `fuzzing` feature; the node never links it. [`fuzz_corpus`] and
//! [`fuzz_write_seeds`] are the only file access in this crate: they read and write seed
//! corpora, never node data.

use crate::block::{Block, QuorumCertificate, Signature, VoteKind};
use crate::constants::{WIRE_HEADER_SIZE, WIRE_MAGIC, WIRE_VERSION};
use crate::hash::Hash;
use crate::storage::{
    FILE_HEADER_SIZE, FileHeader, FileKind, FileRef, INDEX_ENTRY_SIZE, IndexEntry, Place, RecordKind,
    check_directory, check_record, decode_block_payload, decode_genesis_payload, decode_state_payload,
    encode_block_payload, encode_genesis_payload, encode_record, genesis_id,
};
use crate::wire::{Codec, Frame, FrameKind, encode};

/// Fuzz harness for [`decode`](crate::wire::decode): any input either fails to decode or decodes to a frame that
/// re-encodes to exactly the input. Run by `cargo test` on seeded inputs and by
/// `fuzz/fuzz_targets/wire_decode.rs`.
pub fn fuzz_decode(data: &[u8]) {
    if let Ok(frame) = Codec::new(1 << 16).decode(data) {
        assert_eq!(encode(&frame), data, "accepted frame must be canonical");
    }
}

/// Fuzz harness core for one message type: `data` is taken as the payload of a frame of `kind`
/// (the header is written here, so the fuzzer spends its effort on the payload). The payload
/// either fails to decode or decodes to a value that re-encodes to exactly `data`; the decoded
/// frame is returned for the type's own checks. Used by the `block`, `certificate` and
/// `consensus_message` harnesses.
pub fn fuzz_payload(kind: FrameKind, data: &[u8]) -> Option<Frame> {
    let length = u32::try_from(data.len()).ok()?;
    let mut bytes = Vec::with_capacity(WIRE_HEADER_SIZE + data.len());
    bytes.extend_from_slice(&WIRE_MAGIC);
    bytes.extend_from_slice(&[WIRE_VERSION, kind as u8, 0, 0]);
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(data);
    let frame = Codec::default().decode(&bytes).ok()?;
    assert_eq!(frame.kind(), kind, "a frame decodes to the kind its header names");
    assert_eq!(encode(&frame), bytes, "accepted payload must be canonical");
    Some(frame)
}

/// Fuzz harness for blocks: `data` is a block frame's payload. Whatever decodes re-encodes to
/// the same bytes ([`fuzz_payload`]), its identity and transaction root compute
/// without panicking, and the storage record of the block with a certificate for it decodes
/// back to the same pair, or is refused exactly when the header's count disagrees with the
/// body. Run by `cargo test` on seeded inputs and by `fuzz/fuzz_targets/block.rs`.
pub fn fuzz_block(data: &[u8]) {
    let Some(Frame::Block(block)) = fuzz_payload(FrameKind::Block, data) else {
        return;
    };
    let hash = block.header.hash();
    let _ = Block::compute_txn_root(&block.txns);
    assert_eq!(block.body_size(), block.txns.len() * crate::constants::TXN_SIZE);
    let certificate = QuorumCertificate {
        kind: VoteKind::Commit,
        view: block.header.view,
        height: block.header.height,
        block: hash,
        signers: vec![0],
        signatures: vec![Signature([0; 64])],
    };
    let payload = encode_block_payload(&block, &certificate);
    let height = block.header.height;
    match decode_block_payload(&payload, height) {
        Ok(decoded) => assert_eq!(decoded, (block, certificate)),
        Err(_) => {
            assert_ne!(block.header.txn_count as usize, block.txns.len(), "a sound block record refused")
        }
    }
}

/// Fuzz harness for the record codec: any input either fails [`check_record`] or is a record
/// that re-encodes to exactly its bytes; the payload decoders never panic. The first 12 bytes
/// choose the expected segment and offset. Run by `cargo test` on seeded inputs and by
/// `fuzz/fuzz_targets/storage_record.rs`.
pub fn fuzz_record_decode(data: &[u8]) {
    let Some((choice, bytes)) = data.split_first_chunk::<12>() else {
        return;
    };
    let segment = u32::from_le_bytes(choice[..4].try_into().expect("4 bytes")) % 4;
    let offset = u64::from_le_bytes(choice[4..].try_into().expect("8 bytes")) % 256;
    for kind in [RecordKind::Genesis, RecordKind::Block, RecordKind::State] {
        let place = Place { kind, segment, offset };
        if let Ok(record) = check_record(bytes, place) {
            let size = record.header.record_size() as usize;
            assert_eq!(encode_record(place, record.header.height, record.payload), &bytes[..size]);
            let _ = decode_block_payload(record.payload, record.header.height);
        }
    }
    let _ = decode_block_payload(bytes, 1);
    let _ = decode_state_payload(bytes);
    let _ = decode_genesis_payload(bytes);
    if let Some(raw) = bytes.first_chunk::<INDEX_ENTRY_SIZE>()
        && let Ok(entry) = IndexEntry::check(raw, 1)
    {
        assert_eq!(&entry.to_bytes(), raw);
    }
    if let Ok(header) = FileHeader::check(bytes, FileKind::Segment, segment, None) {
        assert_eq!(bytemuck::bytes_of(&header), &bytes[..FILE_HEADER_SIZE]);
    }
}

/// Splits fuzz input into an index and up to four segments: byte 0 is the segment count, then
/// one little-endian u32 length per file (index first); the last file takes what is left.
pub fn fuzz_split(data: &[u8]) -> Option<(&[u8], Vec<&[u8]>)> {
    let (&count, mut rest) = data.split_first()?;
    let files = usize::from(count % 4) + 2;
    let mut lengths = Vec::with_capacity(files);
    for _ in 0..files - 1 {
        let (length, after) = rest.split_first_chunk::<4>()?;
        lengths.push(u32::from_le_bytes(*length) as usize);
        rest = after;
    }
    let mut parts = Vec::with_capacity(files);
    for length in lengths {
        let (part, after) = rest.split_at(length.min(rest.len()));
        parts.push(part);
        rest = after;
    }
    parts.push(rest);
    let index = parts.remove(0);
    Some((index, parts))
}

/// The inverse of [`fuzz_split`], for building seed inputs.
pub fn fuzz_join(index: &[u8], segments: &[&[u8]]) -> Vec<u8> {
    assert!((1..=4).contains(&segments.len()), "one to four segments");
    let mut out = vec![(segments.len() - 1) as u8];
    let files: Vec<&[u8]> = std::iter::once(index).chain(segments.iter().copied()).collect();
    for file in &files[..files.len() - 1] {
        out.extend_from_slice(&(file.len() as u32).to_le_bytes());
    }
    for file in files {
        out.extend_from_slice(file);
    }
    out
}

/// The genesis id the recovery fuzz harness's inputs are built with.
pub fn fuzz_genesis_id() -> Hash {
    genesis_id(&encode_genesis_payload(&[([1; 32], 1_000)]))
}

/// Fuzz harness for recovery: [`check_directory`] never panics, and when it accepts, the plan
/// is within the files, and applying it (dropping the tails) gives a directory it accepts again
/// with the same entries and nothing to drop. Input layout: [`fuzz_split`]. Run by `cargo test`
/// on seeded inputs and by `fuzz/fuzz_targets/storage_recovery.rs`.
pub fn fuzz_recovery(data: &[u8]) {
    let Some((index, segments)) = fuzz_split(data) else {
        return;
    };
    let genesis_id = fuzz_genesis_id();
    let Ok(check) = check_directory(genesis_id, index, &segments) else {
        return;
    };
    let mut index = index.to_vec();
    let mut segments: Vec<Vec<u8>> = segments.iter().map(|s| s.to_vec()).collect();
    for tail in [check.index_tail, check.segment_tail].into_iter().flatten() {
        let file = match tail.file {
            FileRef::Index => &mut index,
            FileRef::Segment(number) => &mut segments[number as usize],
            other => panic!("tail in {other:?}"),
        };
        assert_eq!(tail.offset + tail.size, file.len() as u64, "a tail runs to the end of its file");
        file.truncate(tail.offset as usize);
    }
    let segments: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
    let again = check_directory(genesis_id, &index, &segments).expect("a recovered directory is sound");
    assert_eq!(again.entries, check.entries);
    assert_eq!(again.torn_bytes(), 0);
}

/// A deterministic input generator (splitmix64) for the harnesses' seeded `cargo test` runs,
/// so a failing input is named by its seed and round.
#[derive(Clone, Debug)]
pub struct FuzzSeeds(u64);

impl FuzzSeeds {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> FuzzSeeds {
        FuzzSeeds(seed)
    }

    /// Next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `length` random bytes.
    pub fn bytes(&mut self, length: usize) -> Vec<u8> {
        (0..length).map(|_| self.next_u64() as u8).collect()
    }

    /// A copy of `base` with a few random edits: byte overwrites, bit flips, a truncation or
    /// an appended run, the mutations a fuzzer starts with.
    pub fn mutate(&mut self, base: &[u8]) -> Vec<u8> {
        let mut data = base.to_vec();
        for _ in 0..1 + self.next_u64() % 4 {
            let position = if data.is_empty() { 0 } else { (self.next_u64() as usize) % data.len() };
            match self.next_u64() % 5 {
                0 | 1 if !data.is_empty() => data[position] = self.next_u64() as u8,
                2 if !data.is_empty() => data[position] ^= 1 << (self.next_u64() % 8),
                3 => data.truncate(position),
                _ => {
                    let length = (self.next_u64() % 24) as usize;
                    let extra = self.bytes(length);
                    data.extend_from_slice(&extra);
                }
            }
        }
        data
    }
}

/// The checked-in seed inputs of fuzz target `target` (`fuzz/corpus/<target>/`), for replay by
/// `cargo test`. Empty when the directory does not exist.
///
/// # Panics
/// If the directory exists but cannot be read.
pub fn fuzz_corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<std::path::PathBuf> =
        entries.map(|entry| entry.expect("corpus directory entry").path()).collect();
    paths.sort();
    paths.iter().filter(|path| path.is_file()).map(|path| std::fs::read(path).expect("corpus file")).collect()
}

/// Writes a seeded test's hand-built inputs to `$TESSERA_FUZZ_SEEDS/<target>/` when that
/// variable is set (how the checked-in seed corpora were started; see `docs/fuzzing.md`), and
/// does nothing otherwise.
///
/// # Panics
/// If the directory cannot be written.
pub fn fuzz_write_seeds(target: &str, inputs: &[&[u8]]) {
    let Some(root) = std::env::var_os("TESSERA_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::Path::new(&root).join(target);
    std::fs::create_dir_all(&dir).expect("seed directory");
    for (i, input) in inputs.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), input).expect("seed file");
    }
}

#[cfg(test)]
mod tests {
    use bytemuck::Zeroable;

    use super::*;
    use crate::block::{BlockHeader, Vote};
    use crate::storage::testing::image;
    use crate::txn::Txn;

    #[test]
    fn fuzz_block_survives_seeded_inputs() {
        let header = BlockHeader { height: 3, view: 4, txn_count: 1, ..BlockHeader::zeroed() };
        let txn = Txn { body: crate::txn::TxnBody::zeroed(), signature: crate::txn::TxnSignature([1; 64]) };
        let frame = crate::wire::encode(&crate::wire::Frame::Block(Block { header, txns: vec![txn] }));
        let sound = frame[crate::constants::WIRE_HEADER_SIZE..].to_vec();
        fuzz_block(&sound);
        fuzz_write_seeds("block", &[&sound]);
        let mut seeds = FuzzSeeds::new(0xb10c);
        for round in 0..3000 {
            let input = if round % 8 == 0 { seeds.bytes(round % 400) } else { seeds.mutate(&sound) };
            fuzz_block(&input);
        }
        for input in fuzz_corpus("block") {
            fuzz_block(&input);
        }
    }

    #[test]
    fn seeded_fuzz_smoke() {
        // A few thousand deterministic inputs: mutations of valid frames and raw noise.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seed_frame = encode(&Frame::Vote(Vote {
            kind: VoteKind::Commit,
            view: 3,
            height: 2,
            block: Hash([5; 32]),
            voter: 1,
            signature: [9; 64],
        }));
        for _ in 0..4000 {
            let mut data = seed_frame.clone();
            let edits = next() % 4;
            for _ in 0..edits {
                let position = (next() as usize) % data.len();
                data[position] = next() as u8;
            }
            if next() % 8 == 0 {
                data.truncate((next() as usize) % data.len());
            }
            fuzz_decode(&data);
        }
    }

    #[test]
    fn fuzz_harnesses_survive_seeded_inputs() {
        // A small deterministic generator (splitmix64), so a failure names its seed.
        let mut state = 0x5eed_u64;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let (index, segments) = image(6, 500);
        let segments: Vec<&[u8]> = segments.iter().take(4).map(Vec::as_slice).collect();
        let sound = fuzz_join(&index, &segments);
        let (_, record_segments) = image(2, 1 << 20);
        let mut record = vec![0u8; 12];
        record[4..12].copy_from_slice(&(FILE_HEADER_SIZE as u64).to_le_bytes());
        record.extend_from_slice(&record_segments[0][FILE_HEADER_SIZE..]);
        for round in 0..3000 {
            for base in [&sound, &record] {
                let mut input = base.clone();
                match next() % 4 {
                    0 => {
                        let at = (next() as usize) % input.len();
                        input[at] ^= 1 << (next() % 8);
                    }
                    1 => input.truncate((next() as usize) % input.len()),
                    2 => {
                        let at = (next() as usize) % input.len();
                        let end = (at + 4096).min(input.len());
                        input[at..end].fill(0);
                    }
                    _ => input = (0..(next() % 256)).map(|_| next() as u8).collect(),
                }
                if round % 2 == 0 {
                    fuzz_recovery(&input);
                } else {
                    fuzz_record_decode(&input);
                }
            }
        }
        fuzz_recovery(&sound);
        fuzz_record_decode(&record);
        fuzz_write_seeds("storage_recovery", &[&sound]);
        fuzz_write_seeds("storage_record", &[&record]);
        for input in fuzz_corpus("storage_recovery") {
            fuzz_recovery(&input);
        }
        for input in fuzz_corpus("storage_record") {
            fuzz_record_decode(&input);
        }
    }
}
