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

use crate::block::{Block, BlockHeader, QuorumCertificate, Signature, VoteKind};
use crate::constants::{WIRE_HEADER_SIZE, WIRE_MAGIC, WIRE_VERSION};
use crate::hash::Hash;
use crate::storage::{
    DeltaRow, DirCheck, FILE_HEADER_SIZE, FileHeader, FileKind, FileRef, INDEX_ENTRY_SIZE, IndexEntry, Place,
    Problem, RECORD_HEADER_SIZE, Record, RecordError, RecordKind, StateDelta, StateLog, check_directory,
    check_record, check_record_header, decode_block_payload, decode_genesis_payload, decode_state_log,
    decode_state_payload, encode_block_payload, encode_delta_record, encode_genesis_payload,
    encode_index_header, encode_record, encode_segment_header, encode_state_log_header, genesis_id,
};
use crate::txn::{Txn, TxnBody, TxnSignature};
use crate::wire::{Codec, DecodeError, Frame, FrameKind, encode};

/// Fuzz harness for [`decode`](crate::wire::decode). The header is read again by hand, as
/// `docs/wire.md` spells it, and the decoder must agree with that reading: the same verdict and
/// reason from [`Codec::decode_header`], a frame whose kind is the kind byte and whose size is
/// the declared length, and a refusal of a frame with a sound header only for a length mismatch
/// (with the right counts) or a payload reason. An accepted frame re-encodes to exactly the
/// input, and decodes from that encoding to the same value. Run by `cargo test` on seeded inputs
/// and by `fuzz/fuzz_targets/wire_decode.rs`.
pub fn fuzz_decode(data: &[u8]) {
    let codec = Codec::new(1 << 16);
    let by_hand = wire_header_by_hand(data, codec.max_frame_size());
    let header = codec.decode_header(data);
    match (&header, &by_hand) {
        (Ok(header), Ok((kind, payload_size))) => {
            assert_eq!(header.kind as u8, *kind, "decoded kind is the kind byte");
            assert_eq!(header.payload_size, *payload_size, "decoded length is the length field");
        }
        (Err(error), Err(reason)) => {
            assert_eq!(header_error_name(error), *reason, "header refused for {error}")
        }
        _ => panic!("decode_header says {header:?}, the header read by hand says {by_hand:?}"),
    }
    match codec.decode(data) {
        Ok(frame) => {
            let (kind, payload_size) = by_hand.expect("a frame decoded from a sound header");
            assert_eq!(frame.kind() as u8, kind, "a frame decodes to the kind its header names");
            assert_eq!(data.len(), WIRE_HEADER_SIZE + payload_size, "a frame is exactly its declared size");
            assert_eq!(encode(&frame), data, "an accepted frame re-encodes to its bytes");
            assert_eq!(codec.decode(&encode(&frame)).as_ref(), Ok(&frame), "a frame survives a round trip");
        }
        Err(error) => match by_hand {
            Err(_) => assert_eq!(Err(error), header.map(|_| ())),
            Ok((kind, payload_size)) => {
                let size = WIRE_HEADER_SIZE + payload_size;
                match error {
                    DecodeError::Truncated { needed, available } => {
                        assert_eq!((needed, available), (size, data.len()));
                        assert!(data.len() < size);
                    }
                    DecodeError::TrailingBytes { extra } => assert_eq!(data.len(), size + extra),
                    DecodeError::Payload { kind: refused, .. }
                    | DecodeError::PayloadTrailing { kind: refused, .. }
                    | DecodeError::NonCanonical { kind: refused } => {
                        assert_eq!(data.len(), size, "a payload is judged only at its declared size");
                        assert_eq!(refused as u8, kind);
                    }
                    other => panic!("a sound header refused for {other}"),
                }
            }
        },
    }
}

/// The frame header read by hand, in the order `docs/wire.md` lists its checks: the kind byte
/// and the payload length, or the name of the first check that fails.
fn wire_header_by_hand(data: &[u8], max_frame_size: usize) -> Result<(u8, usize), &'static str> {
    if data.len() < 12 {
        return Err("truncated");
    }
    if data[..4] != *b"TSRA" {
        return Err("magic");
    }
    if data[4] != 1 {
        return Err("version");
    }
    if !(1..=7).contains(&data[5]) {
        return Err("kind");
    }
    if data[6] != 0 || data[7] != 0 {
        return Err("reserved");
    }
    let payload_size = u32::from_le_bytes([data[8], data[9], data[10], data[11]]) as usize;
    if 12 + payload_size > max_frame_size {
        return Err("too large");
    }
    Ok((data[5], payload_size))
}

/// The name [`wire_header_by_hand`] gives a header-level refusal.
fn header_error_name(error: &DecodeError) -> &'static str {
    match error {
        DecodeError::Truncated { .. } => "truncated",
        DecodeError::BadMagic { .. } => "magic",
        DecodeError::UnsupportedVersion { .. } => "version",
        DecodeError::UnknownKind { .. } => "kind",
        DecodeError::NonzeroReserved { .. } => "reserved",
        DecodeError::TooLarge { .. } => "too large",
        _ => "not a header error",
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
/// the same bytes ([`fuzz_payload`]) and decodes from them to the same value. The transaction
/// root binds the body: flipping a bit of any transaction, dropping the last one, appending a
/// copy of it (the duplicated-leaf collision of Merkle trees that pad odd levels), or swapping
/// two different transactions changes the root. The header hash (the block's id) changes with
/// any bit of the header. The storage record of the block with a certificate for it decodes
/// back to the same pair, or is refused exactly when the header's count disagrees with the
/// body. Run by `cargo test` on seeded inputs and by `fuzz/fuzz_targets/block.rs`.
pub fn fuzz_block(data: &[u8]) {
    fuzz_block_with(data, Block::compute_txn_root);
}

/// [`fuzz_block`] with `txn_root` in place of [`Block::compute_txn_root`], so tests can run the
/// oracle against a wrong one.
pub fn fuzz_block_with(data: &[u8], txn_root: fn(&[Txn]) -> Hash) {
    let Some(Frame::Block(block)) = fuzz_payload(FrameKind::Block, data) else {
        return;
    };
    let frame = Frame::Block(block.clone());
    let again = Codec::default().decode(&encode(&frame)).expect("an encoded block decodes");
    assert_eq!(again, frame, "a block does not decode to the value encoded");
    // Which bits to flip, from the input, so the fuzzer reaches every one.
    let pick = Hash::of(data);
    let pick = u64::from_le_bytes(pick.0[..8].try_into().expect("8 bytes"));
    let root = txn_root(&block.txns);
    let mut txns = block.txns.to_vec();
    let txn_bits = 8 * size_of::<Txn>() as u64;
    for (i, txn) in txns.iter_mut().enumerate() {
        let bit = (pick.wrapping_add(i as u64 * 0x9e37_79b9)) % txn_bits;
        let bytes = bytemuck::bytes_of_mut(txn);
        bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
    }
    for i in 0..txns.len() {
        let mut one = block.txns.to_vec();
        one[i] = txns[i];
        assert_ne!(txn_root(&one), root, "flipping a bit of transaction {i} leaves the root unchanged");
    }
    if let Some(last) = block.txns.last() {
        let mut longer = block.txns.to_vec();
        longer.push(*last);
        assert_ne!(
            txn_root(&longer),
            root,
            "a copy of the last transaction appended leaves the root unchanged"
        );
        let shorter = &block.txns[..block.txns.len() - 1];
        assert_ne!(txn_root(shorter), root, "dropping the last transaction leaves the root unchanged");
        let first = block.txns[0];
        if first != *last {
            let mut swapped = block.txns.to_vec();
            let end = swapped.len() - 1;
            swapped.swap(0, end);
            assert_ne!(
                txn_root(&swapped),
                root,
                "swapping the first and last transactions leaves the root unchanged"
            );
        }
    }
    let hash = block.header.hash();
    let header_bits = 8 * size_of::<BlockHeader>() as u64;
    for j in 0..16 {
        let bit = pick.rotate_left(j * 4).wrapping_add(u64::from(j) * 61) % header_bits;
        let mut header = block.header;
        bytemuck::bytes_of_mut(&mut header)[(bit / 8) as usize] ^= 1 << (bit % 8);
        assert_ne!(header.hash(), hash, "header bit {bit} is not covered by the block id");
    }
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

/// Fuzz harness for the record codec. The first 12 bytes choose the expected segment and
/// offset. A record [`check_record`] accepts re-encodes to exactly its bytes, is refused at any
/// other place (kind, segment or offset), and is refused with any single bit of its header
/// flipped, or any of up to 256 payload bits the input picks (a CRC32C catches every
/// single-bit error). An index entry or segment file header that checks is refused with any
/// one of its bits flipped. The payload decoders never panic. Run by `cargo test` on seeded
/// inputs and by `fuzz/fuzz_targets/storage_record.rs`.
pub fn fuzz_record_decode(data: &[u8]) {
    fuzz_record_decode_with(data, check_record);
}

/// A `state-index` file that checks (under the genesis id its header names) is exactly the
/// file its meta and words encode, and no flipped bit of it checks.
fn state_index_oracle(bytes: &[u8]) {
    use crate::storage::{STATE_INDEX_WORDS_OFFSET, decode_state_index, encode_state_index_head};
    let Some(id) = bytes.get(16..48) else { return };
    let id = Hash(id.try_into().expect("32 bytes"));
    let Ok(meta) = decode_state_index(bytes, id) else { return };
    let words: Vec<u32> = bytes[STATE_INDEX_WORDS_OFFSET..]
        .chunks_exact(4)
        .map(|word| u32::from_le_bytes(word.try_into().expect("4 bytes")))
        .collect();
    assert_eq!(encode_state_index_head(id, &meta, &words), &bytes[..STATE_INDEX_WORDS_OFFSET]);
    let bits = 8 * bytes.len();
    let mut flipped = bytes.to_vec();
    for bit in (0..bits).step_by(bits.div_ceil(512).max(1)) {
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(
            decode_state_index(&flipped, id).is_err(),
            "state-index bit {bit} flipped and still accepted"
        );
        flipped[bit / 8] ^= 1 << (bit % 8);
    }
}

/// [`fuzz_record_decode`] with `check` in place of [`check_record`], so tests can run the
/// oracle against a wrong one.
pub fn fuzz_record_decode_with(
    data: &[u8],
    check: for<'a> fn(&'a [u8], Place) -> Result<Record<'a>, RecordError>,
) {
    let Some((choice, bytes)) = data.split_first_chunk::<12>() else {
        return;
    };
    let segment = u32::from_le_bytes(choice[..4].try_into().expect("4 bytes")) % 4;
    let offset = u64::from_le_bytes(choice[4..].try_into().expect("8 bytes")) % 256;
    let kinds = [RecordKind::Genesis, RecordKind::Block, RecordKind::State];
    for kind in kinds {
        let place = Place { kind, segment, offset };
        let Ok(record) = check(bytes, place) else { continue };
        let size = record.header.record_size() as usize;
        assert_eq!(encode_record(place, record.header.height, record.payload), &bytes[..size]);
        let _ = decode_block_payload(record.payload, record.header.height);
        for other in kinds.into_iter().filter(|other| *other != kind) {
            assert!(
                check(bytes, Place { kind: other, ..place }).is_err(),
                "a {kind:?} record accepted as {other:?}"
            );
        }
        for elsewhere in [Place { segment: segment ^ 1, ..place }, Place { offset: offset + 1, ..place }] {
            assert!(
                check(bytes, elsewhere).is_err(),
                "a record accepted at {elsewhere:?}, written for {place:?}"
            );
        }
        let mut flipped = bytes[..size].to_vec();
        let payload_bits = 8 * (size - RECORD_HEADER_SIZE);
        let payload_flips = (0..payload_bits.min(256)).map(|j| {
            8 * RECORD_HEADER_SIZE
                + (usize::from(choice[0]) + j * payload_bits.div_ceil(256).max(1)) % payload_bits
        });
        for bit in (0..8 * RECORD_HEADER_SIZE).chain(payload_flips) {
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(check(&flipped, place).is_err(), "record bit {bit} flipped and still accepted");
            flipped[bit / 8] ^= 1 << (bit % 8);
        }
    }
    let _ = decode_block_payload(bytes, 1);
    let _ = decode_state_payload(bytes);
    let _ = decode_genesis_payload(bytes);
    state_index_oracle(bytes);
    if let Some(raw) = bytes.first_chunk::<INDEX_ENTRY_SIZE>()
        && IndexEntry::check(raw, 1).is_ok()
    {
        for bit in 0..8 * INDEX_ENTRY_SIZE {
            let mut flipped = *raw;
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                IndexEntry::check(&flipped, 1).is_err(),
                "index entry bit {bit} flipped and still accepted"
            );
        }
    }
    if FileHeader::check(bytes, FileKind::Segment, segment, None).is_ok() {
        let mut flipped = bytes[..FILE_HEADER_SIZE].to_vec();
        for bit in 0..8 * FILE_HEADER_SIZE {
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                FileHeader::check(&flipped, FileKind::Segment, segment, None).is_err(),
                "file header bit {bit} flipped and still accepted"
            );
            flipped[bit / 8] ^= 1 << (bit % 8);
        }
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

/// Fuzz harness for recovery, two modes chosen by the top bit of byte 0.
///
/// * Arbitrary files (bit clear; input layout [`fuzz_split`]): [`check_directory`] never panics,
///   and when it accepts, each tail it names runs to the end of its file, and applying the plan
///   (dropping the tails) gives a directory it accepts again with the same entries and nothing
///   to drop.
/// * Crash (bit set; [`fuzz_recovery_crash`]): a sound store's history of writes cut at a
///   chosen byte, optionally with a tail sector of the last write lost, must be accepted at the
///   height of the last whole index entry, with every earlier entry as written.
///
/// Run by `cargo test` on seeded inputs and by `fuzz/fuzz_targets/storage_recovery.rs`.
pub fn fuzz_recovery(data: &[u8]) {
    fuzz_recovery_reached(data);
    fuzz_state_log(data);
}

/// The state log under the recovery target's inputs, both ways:
/// * the input's bytes after a sound log header, read as a log: the decoder never panics, and
///   when it accepts, its tail runs to the end of the file, its deltas rise in height up to the
///   committed height (byte 0), re-encoding them at their offsets gives the file up to the tail,
///   and the file cut at the tail decodes to the same deltas with nothing to drop;
/// * a sound log of deltas built from the input, cut at a byte the input picks, optionally
///   with the final 512-byte sector of what remains read back as zeros: it is read back as
///   exactly the deltas whose records lie wholly before the damage, the rest a tail.
///
/// Returns how many deltas the second way read back, for the seeded test.
pub fn fuzz_state_log(data: &[u8]) -> usize {
    state_log_with(data, decode_state_log)
}

/// A state-log reader: [`decode_state_log`], or in the oracle's self-test a planted bug.
type ReadLog = fn(&[u8], Hash, u64) -> Result<StateLog, Problem>;

fn state_log_with(data: &[u8], decode_state_log: ReadLog) -> usize {
    let id = fuzz_genesis_id();
    let committed = u64::from(data.first().copied().unwrap_or(0));
    let mut file = encode_state_log_header(id).to_vec();
    file.extend_from_slice(data.get(1..).unwrap_or(&[]));
    if let Ok(log) = decode_state_log(&file, id, committed) {
        check_state_log(id, &file, &log, committed, decode_state_log);
    }

    // A sound log: up to eight deltas whose rows the input's bytes choose.
    let mut bytes = data.iter().copied().chain(std::iter::repeat(0x5a));
    let mut next = move || bytes.next().unwrap_or(0);
    let count = 1 + usize::from(next() % 8);
    let mut log = encode_state_log_header(id).to_vec();
    let mut ends = Vec::new();
    let mut deltas = Vec::new();
    let mut accounts = 4u64;
    for k in 0..count as u64 {
        accounts += u64::from(next() % 4);
        let mut slot = 0u64;
        let mut rows = Vec::new();
        while slot < accounts && rows.len() < 12 {
            slot += u64::from(next() % 3);
            if slot >= accounts {
                break;
            }
            let tag = next();
            rows.push(DeltaRow {
                slot,
                address: [tag; 32],
                account: crate::Account { balance: u64::from(tag) << 8, nonce: k },
            });
            slot += 1;
        }
        let delta = StateDelta {
            height: 3 * k + 1,
            base_height: 0,
            state_root: Hash([next(); 32]),
            burned: k,
            count: accounts,
            rows,
        };
        log.extend_from_slice(&encode_delta_record(log.len() as u64, &delta).expect("a small delta fits"));
        ends.push(log.len());
        deltas.push(delta);
    }
    let cut_seed = u32::from_le_bytes([next(), next(), next(), next()]);
    let cut = FILE_HEADER_SIZE + (cut_seed as usize) % (log.len() - FILE_HEADER_SIZE + 1);
    let mut damaged = log[..cut].to_vec();
    let mut damage_at = cut;
    if next() & 1 == 1 && cut > FILE_HEADER_SIZE {
        // The last sector of what was written reads back as zeros (the header is never in it:
        // the file was created whole, by a rename).
        let sector =
            ((cut - 1) / FUZZ_SECTOR_SIZE as usize * FUZZ_SECTOR_SIZE as usize).max(FILE_HEADER_SIZE);
        // The first byte the zeros change is where the damage starts (bytes already zero are
        // still right).
        if let Some(first) = damaged[sector..].iter().position(|byte| *byte != 0) {
            damaged[sector..].fill(0);
            damage_at = sector + first;
        }
    }
    let read = decode_state_log(&damaged, id, u64::MAX).expect("a cut sound log is a tail, not corruption");
    let whole = ends.iter().filter(|end| **end <= damage_at).count();
    assert_eq!(read.deltas, deltas[..whole], "the deltas wholly before the damage, and only those");
    let kept = if whole == 0 { FILE_HEADER_SIZE } else { ends[whole - 1] };
    assert_eq!(read.tail.map(|tail| tail.offset), (kept < damaged.len()).then_some(kept as u64));
    check_state_log(id, &damaged, &read, u64::MAX, decode_state_log);
    // Deltas past the committed height are dropped with what follows them.
    let committed = deltas.get(whole.saturating_sub(1)).map_or(0, |delta| delta.height.saturating_sub(1));
    let earlier = decode_state_log(&damaged, id, committed).expect("still no corruption");
    assert!(earlier.deltas.iter().all(|delta| delta.height <= committed));
    assert_eq!(earlier.deltas.len(), whole.saturating_sub(1));
    whole
}

fn check_state_log(id: Hash, file: &[u8], log: &StateLog, committed: u64, decode_state_log: ReadLog) {
    let end = match log.tail {
        Some(tail) => {
            assert_eq!(tail.offset + tail.size, file.len() as u64, "a tail runs to the end of the log");
            tail.offset as usize
        }
        None => file.len(),
    };
    assert!(log.deltas.windows(2).all(|pair| pair[0].height < pair[1].height), "heights rise");
    assert!(log.deltas.iter().all(|delta| delta.height <= committed), "nothing past the committed height");
    let mut rebuilt = encode_state_log_header(id).to_vec();
    for delta in &log.deltas {
        assert!(delta.rows.windows(2).all(|pair| pair[0].slot < pair[1].slot));
        assert!(delta.rows.iter().all(|row| row.slot < delta.count));
        rebuilt.extend_from_slice(&encode_delta_record(rebuilt.len() as u64, delta).expect("it was decoded"));
    }
    assert_eq!(rebuilt, file[..end], "the accepted deltas re-encode to the bytes they came from");
    let again = decode_state_log(&file[..end], id, committed).expect("the log cut at its tail is sound");
    assert_eq!((again.deltas.as_slice(), again.tail), (log.deltas.as_slice(), None));
}

/// [`fuzz_recovery`], returning whether the input got past [`check_directory`] to the checks
/// on an accepted directory, so the seeded test can count how many inputs reach them.
pub fn fuzz_recovery_reached(data: &[u8]) -> bool {
    if data.first().is_some_and(|byte| byte & 0x80 != 0) {
        return fuzz_recovery_crash(data);
    }
    let Some((index, segments)) = fuzz_split(data) else {
        return false;
    };
    let Ok(check) = check_directory(fuzz_genesis_id(), index, &segments) else {
        return false;
    };
    check_recovered(index, &segments, &check);
    true
}

/// Applies an accepted plan (drops the tails) and checks the result is sound, with the same
/// entries and nothing more to drop.
fn check_recovered(index: &[u8], segments: &[&[u8]], check: &DirCheck) {
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
    let again =
        check_directory(fuzz_genesis_id(), &index, &segments).expect("a recovered directory is sound");
    assert_eq!(again.entries, check.entries);
    assert_eq!(again.torn_bytes(), 0);
}

/// The sector a lost write is modelled in: a power cut can leave a file's new size on disk
/// while the data of its last sector never arrives and reads back as zeros.
pub const FUZZ_SECTOR_SIZE: u64 = 512;

/// One write of a store's history, in the order the store makes them durable.
#[derive(Clone, Debug)]
pub struct FuzzWrite {
    /// The file written.
    pub file: FileRef,
    /// Where in it (every write appends).
    pub offset: u64,
    /// What.
    pub bytes: Vec<u8>,
    /// The height whose commit this write belongs to (0: the store's creation).
    pub height: u64,
    /// Whether the write appears whole or not at all (file headers: a new file is written to a
    /// temporary name and renamed into place).
    pub atomic: bool,
}

/// The block and commit certificate of `height` with `txns` transactions, as the storage tests
/// and the recovery harness store them.
pub fn fuzz_block_at(height: u64, txns: usize) -> (Block, QuorumCertificate) {
    let txns: Vec<Txn> = (0..txns)
        .map(|i| Txn {
            body: TxnBody {
                chain_id: 1,
                reserved: 0,
                sender: [i as u8; 32],
                recipient: [7; 32],
                amount: height,
                fee: 1,
                nonce: i as u64,
            },
            signature: TxnSignature([3; 64]),
        })
        .collect();
    let header = BlockHeader {
        height,
        view: height,
        timestamp_ms: height * 10,
        proposer: 0,
        txn_count: txns.len() as u32,
        parent: Hash::ZERO,
        txn_root: Block::compute_txn_root(&txns),
        state_root: Hash([height as u8; 32]),
    };
    let block = Block { header, txns: txns.into() };
    let certificate = QuorumCertificate {
        kind: VoteKind::Commit,
        view: height,
        height,
        block: header.hash(),
        signers: vec![0, 1, 2],
        signatures: vec![Signature([9; 64]); 3],
    };
    (block, certificate)
}

/// The writes that build a store of `heights` blocks, in the order the store makes them (the
/// index and segment 0 headers; then per height: a new segment's header when the record would
/// take the current segment past `segment_max` bytes, the record, the index entry).
pub fn fuzz_image_writes(heights: u64, segment_max: usize) -> Vec<FuzzWrite> {
    let id = fuzz_genesis_id();
    let header = |file, bytes: &[u8], height| FuzzWrite {
        file,
        offset: 0,
        bytes: bytes.to_vec(),
        height,
        atomic: true,
    };
    let mut writes = vec![
        header(FileRef::Index, &encode_index_header(id), 0),
        header(FileRef::Segment(0), &encode_segment_header(0, id), 0),
    ];
    let mut segment = 0u32;
    let mut segment_len = FILE_HEADER_SIZE;
    let mut index_len = FILE_HEADER_SIZE;
    for height in 1..=heights {
        let (block, certificate) = fuzz_block_at(height, (height % 3) as usize);
        let payload = encode_block_payload(&block, &certificate);
        if segment_len > FILE_HEADER_SIZE && segment_len + RECORD_HEADER_SIZE + payload.len() > segment_max {
            segment += 1;
            segment_len = FILE_HEADER_SIZE;
            writes.push(header(FileRef::Segment(segment), &encode_segment_header(segment, id), height));
        }
        let place = Place { kind: RecordKind::Block, segment, offset: segment_len as u64 };
        let record = encode_record(place, height, &payload);
        let entry =
            IndexEntry::new(&check_record_header(&record, place).expect("a record just encoded checks"));
        let record_size = record.len();
        writes.push(FuzzWrite {
            file: FileRef::Segment(segment),
            offset: place.offset,
            bytes: record,
            height,
            atomic: false,
        });
        writes.push(FuzzWrite {
            file: FileRef::Index,
            offset: index_len as u64,
            bytes: entry.to_bytes().to_vec(),
            height,
            atomic: false,
        });
        segment_len += record_size;
        index_len += INDEX_ENTRY_SIZE;
    }
    writes
}

/// Appends the first `take` bytes of `write` to the file it names: the index, or segment
/// `number` (created when it is the next one). An image writes nothing else and only appends.
pub(crate) fn append_write(index: &mut Vec<u8>, segments: &mut Vec<Vec<u8>>, write: &FuzzWrite, take: usize) {
    let file = match write.file {
        FileRef::Index => index,
        FileRef::Segment(number) => {
            if segments.len() == number as usize {
                segments.push(Vec::new());
            }
            &mut segments[number as usize]
        }
        other => unreachable!("an image writes only the index and segments, not {other:?}"),
    };
    assert_eq!(file.len() as u64, write.offset, "the store only appends");
    file.extend_from_slice(&write.bytes[..take]);
}

/// The crash mode of [`fuzz_recovery`]. Input: a flags byte (top bit set; bit 0: lose a tail
/// sector of the last write), the height count (1 + byte % 12), the segment size limit
/// (256 + 64 × byte) and a little-endian u32 choosing the byte of the history after creation
/// at which the power is cut. Returns whether the checks on the accepted directory ran (always,
/// for a well-formed input: refusing a crashed store is a failure).
///
/// # Panics
/// If recovery refuses the crashed store, or accepts it at any height but that of the last
/// whole index entry (h or h − 1 for a cut in height h's commit), or with an entry changed.
pub fn fuzz_recovery_crash(data: &[u8]) -> bool {
    crash_with(data, check_directory)
}

/// A recovery rule: [`check_directory`], or in the oracle's self-test a planted bug.
type Recover = fn(Hash, &[u8], &[&[u8]]) -> Result<DirCheck, Problem>;

/// [`fuzz_recovery_crash`] against the recovery rule `recover`.
fn crash_with(data: &[u8], recover: Recover) -> bool {
    let Some((&[flags, heights, size], rest)) = data.split_first_chunk::<3>() else {
        return false;
    };
    let Some(cut) = rest.first_chunk::<4>() else {
        return false;
    };
    let heights = 1 + u64::from(heights % 12);
    let writes = fuzz_image_writes(heights, 256 + usize::from(size) * 64);
    let history: u64 = writes[2..].iter().map(|write| write.bytes.len() as u64).sum();
    let mut remaining = u64::from(u32::from_le_bytes(*cut)) % (history + 1);
    let lose_sector = flags & 1 != 0;

    let mut index: Vec<u8> = Vec::new();
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let mut entries_written: Vec<&[u8]> = Vec::new();
    // The height of the last write that reached the files at all: the commit the cut is in.
    let mut cut_height = 0;
    let mut last: Option<(FileRef, u64)> = None;
    for (position, write) in writes.iter().enumerate() {
        let length = write.bytes.len() as u64;
        let take = if position < 2 {
            length
        } else if remaining == 0 || (write.atomic && remaining < length) {
            break;
        } else {
            remaining.min(length)
        };
        if position >= 2 {
            remaining -= take;
        }
        append_write(&mut index, &mut segments, write, take as usize);
        if write.file == FileRef::Index && position >= 2 && take == length {
            entries_written.push(&write.bytes);
        }
        cut_height = write.height;
        // A write can lose its tail only while it is the latest: every earlier one was synced
        // before the next began (a new segment is renamed into place only after that).
        last = (!write.atomic).then_some((write.file, write.offset));
        if take < length {
            break;
        }
    }
    if lose_sector && let Some((file_ref, write_offset)) = last {
        let file = match file_ref {
            FileRef::Index => &mut index,
            FileRef::Segment(number) => &mut segments[number as usize],
            other => unreachable!("{other:?}"),
        };
        let end = file.len() as u64;
        if end > write_offset {
            let from = write_offset.max((end - 1) / FUZZ_SECTOR_SIZE * FUZZ_SECTOR_SIZE);
            file[from as usize..].fill(0);
            if file_ref == FileRef::Index
                && entries_written.len() as u64 * INDEX_ENTRY_SIZE as u64 + FILE_HEADER_SIZE as u64 > from
            {
                // Entries are 32-byte aligned, so a lost sector takes whole entries: the last.
                entries_written.pop();
            }
        }
    }

    let segment_refs: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
    let check = recover(fuzz_genesis_id(), &index, &segment_refs).unwrap_or_else(|problem| {
        panic!("a store cut by a crash in height {cut_height}'s commit is refused: {problem:?}")
    });
    let committed = entries_written.len() as u64;
    assert!(
        committed + 1 >= cut_height && committed <= cut_height,
        "{committed} entries written, cut at {cut_height}"
    );
    assert_eq!(
        check.height(),
        committed,
        "a crash in height {cut_height}'s commit, with {committed} whole index entries, recovers to the wrong height"
    );
    for (found, written) in check.entries.iter().zip(&entries_written) {
        assert_eq!(&found.to_bytes()[..], *written, "recovery changed the entry for height {}", found.height);
    }
    check_recovered(&index, &segment_refs, &check);
    true
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

/// The checked-in seed inputs of fuzz target `target` (the files of `fuzz/corpus/<target>/`
/// that git tracks), for replay by `cargo test`. Inputs a fuzzer run wrote there and nobody
/// committed are not read, so running a campaign never breaks `cargo test`. Outside a git
/// checkout (git missing, or a source archive) every file of the directory is read. Empty when
/// the directory does not exist.
///
/// # Panics
/// If the directory exists but cannot be read.
pub fn fuzz_corpus(target: &str) -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let relative = format!("fuzz/corpus/{target}");
    let tracked = std::process::Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["ls-files", "-z", "--"])
        .arg(&relative)
        .stderr(std::process::Stdio::null())
        .output();
    let mut paths: Vec<std::path::PathBuf> = match tracked {
        Ok(output) if output.status.success() => output
            .stdout
            .split(|byte| *byte == 0)
            .filter(|name| !name.is_empty())
            .map(|name| root.join(String::from_utf8_lossy(name).as_ref()))
            .collect(),
        _ => match std::fs::read_dir(root.join(&relative)) {
            Ok(entries) => entries.map(|entry| entry.expect("corpus directory entry").path()).collect(),
            Err(_) => return Vec::new(),
        },
    };
    paths.sort();
    paths.iter().filter(|path| path.is_file()).map(|path| std::fs::read(path).expect("corpus file")).collect()
}

/// The first panic of `harness` over `inputs`, as text: how the oracles' tests show that an
/// oracle fails on a planted bug (and passes without it).
pub fn fuzz_first_failure(
    inputs: &[Vec<u8>],
    harness: impl Fn(&[u8]) + std::panic::RefUnwindSafe,
) -> Option<String> {
    inputs.iter().find_map(|input| {
        let payload = std::panic::catch_unwind(|| harness(input)).err()?;
        Some(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_default(),
        )
    })
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
    use crate::block::Vote;
    use crate::storage::testing::image;

    /// Block payloads: one transaction, and three different ones (an odd count above one,
    /// which a Merkle tree that pads odd levels by duplication gets wrong).
    fn block_seeds() -> Vec<Vec<u8>> {
        [1usize, 3]
            .into_iter()
            .map(|count| {
                let txns: Vec<Txn> = (0..count)
                    .map(|i| Txn {
                        body: TxnBody { amount: i as u64 + 1, nonce: i as u64, ..TxnBody::zeroed() },
                        signature: TxnSignature([i as u8 + 1; 64]),
                    })
                    .collect();
                let header = BlockHeader {
                    height: 3,
                    view: 4,
                    txn_count: count as u32,
                    txn_root: Block::compute_txn_root(&txns),
                    ..BlockHeader::zeroed()
                };
                let frame =
                    crate::wire::encode(&crate::wire::Frame::Block(Block { header, txns: txns.into() }));
                frame[crate::constants::WIRE_HEADER_SIZE..].to_vec()
            })
            .collect()
    }

    #[test]
    fn fuzz_block_survives_seeded_inputs() {
        let sound = block_seeds();
        let refs: Vec<&[u8]> = sound.iter().map(Vec::as_slice).collect();
        fuzz_write_seeds("block", &refs);
        let mut seeds = FuzzSeeds::new(0xb10c);
        for round in 0..3000 {
            let input =
                if round % 8 == 0 { seeds.bytes(round % 400) } else { seeds.mutate(&sound[round % 2]) };
            fuzz_block(&input);
        }
        for input in sound.iter().chain(&fuzz_corpus("block")) {
            fuzz_block(input);
        }
    }

    /// The hand-built seeds and mutations of them.
    fn with_mutations(sound: &[Vec<u8>], seed: u64) -> Vec<Vec<u8>> {
        let mut seeds = FuzzSeeds::new(seed);
        let mut inputs = sound.to_vec();
        inputs.extend((0..200).map(|round| seeds.mutate(&sound[round % sound.len()])));
        inputs
    }

    #[test]
    fn the_block_oracle_catches_a_merkle_tree_that_pads_by_duplication() {
        // Odd levels padded with a copy of their last node: [a, b, c] and [a, b, c, c] collide.
        fn root(txns: &[Txn]) -> Hash {
            let mut level: Vec<Hash> = txns.iter().map(|txn| txn.id().0).collect();
            if level.is_empty() {
                return Hash::ZERO;
            }
            while level.len() > 1 {
                if level.len() % 2 == 1 {
                    level.push(*level.last().unwrap());
                }
                level = level.chunks(2).map(crate::merkle_root).collect();
            }
            level[0]
        }
        let inputs = with_mutations(&block_seeds(), 0xb10d);
        assert_eq!(fuzz_first_failure(&inputs, fuzz_block), None);
        let failure = fuzz_first_failure(&inputs, |data| fuzz_block_with(data, root)).expect("missed");
        eprintln!("the oracle reported: {failure}");
        assert!(
            failure.contains("a copy of the last transaction appended leaves the root unchanged"),
            "{failure}"
        );
    }

    #[test]
    fn the_block_oracle_catches_a_root_over_bodies_only() {
        fn root(txns: &[Txn]) -> Hash {
            let leaves: Vec<Hash> = txns.iter().map(|txn| Hash::of(bytemuck::bytes_of(&txn.body))).collect();
            crate::merkle_root(&leaves)
        }
        let inputs = with_mutations(&block_seeds(), 0xb10e);
        let failure = fuzz_first_failure(&inputs, |data| fuzz_block_with(data, root)).expect("missed");
        eprintln!("the oracle reported: {failure}");
        assert!(failure.contains("leaves the root unchanged"), "{failure}");
    }

    /// A sound record input: segment 0's first record, expected at offset 64.
    fn record_seed() -> Vec<u8> {
        let (_, record_segments) = image(2, 1 << 20);
        let mut record = vec![0u8; 12];
        record[4..12].copy_from_slice(&(FILE_HEADER_SIZE as u64).to_le_bytes());
        record.extend_from_slice(&record_segments[0][FILE_HEADER_SIZE..]);
        record
    }

    #[test]
    fn the_record_oracle_catches_an_unchecked_payload_checksum() {
        fn check(bytes: &[u8], place: Place) -> Result<Record<'_>, RecordError> {
            let header = check_record_header(bytes, place)?;
            let size = header.record_size() as usize;
            let record =
                bytes.get(..size).ok_or(RecordError::Incomplete { needed: size as u64, available: 0 })?;
            Ok(Record { header, payload: &record[RECORD_HEADER_SIZE..] })
        }
        let inputs = vec![record_seed()];
        assert_eq!(fuzz_first_failure(&inputs, fuzz_record_decode), None);
        let failure =
            fuzz_first_failure(&inputs, |data| fuzz_record_decode_with(data, check)).expect("missed");
        eprintln!("the oracle reported: {failure}");
        assert!(failure.contains("flipped and still accepted"), "{failure}");
    }

    #[test]
    fn the_record_oracle_catches_a_check_that_ignores_the_offset() {
        fn check(bytes: &[u8], place: Place) -> Result<Record<'_>, RecordError> {
            let offset = bytes
                .first_chunk::<RECORD_HEADER_SIZE>()
                .map_or(0, |raw| bytemuck::pod_read_unaligned::<crate::storage::RecordHeader>(raw).offset);
            check_record(bytes, Place { offset, ..place })
        }
        let inputs = vec![record_seed()];
        let failure =
            fuzz_first_failure(&inputs, |data| fuzz_record_decode_with(data, check)).expect("missed");
        eprintln!("the oracle reported: {failure}");
        assert!(failure.contains("a record accepted at"), "{failure}");
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
        let sound = recovery_seeds()[0].clone();
        let record = record_seed();
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
        fuzz_record_decode(&record);
        // A small `state-index` file, behind the 12 bytes of choices.
        let index_seed = {
            use crate::storage::{StateIndexMeta, encode_state_index_head};
            let meta = StateIndexMeta { height: 4, state_root: Hash([9; 32]), count: 3 };
            let words = [1, 2, 0];
            let mut seed = vec![0u8; 12];
            seed.extend(encode_state_index_head(Hash([5; 32]), &meta, &words));
            seed.extend(words.iter().flat_map(|word| word.to_le_bytes()));
            seed
        };
        fuzz_record_decode(&index_seed);
        fuzz_write_seeds("storage_record", &[&record, &index_seed]);
        for input in fuzz_corpus("storage_record") {
            fuzz_record_decode(&input);
        }
    }

    /// The recovery target's hand-built seeds: sound stores over two to four segments, stores
    /// with each kind of unfinished commit, and crash-mode inputs.
    fn recovery_seeds() -> Vec<Vec<u8>> {
        let join = |index: &[u8], segments: &[Vec<u8>]| {
            let segments: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
            fuzz_join(index, &segments)
        };
        let mut seeds = Vec::new();
        // Six heights over four segments.
        let (index, segments) = image(6, 1200);
        assert_eq!(segments.len(), 4);
        seeds.push(join(&index, &segments));
        let (index, segments) = image(4, 1400);
        assert_eq!(segments.len(), 2);
        seeds.push(join(&index, &segments));
        // A record whose index entry never landed; the same cut short; a partial index entry.
        let (short_index, _) = image(3, 1400);
        seeds.push(join(&short_index, &segments));
        let mut cut = segments.clone();
        let end = cut[1].len() - 100;
        cut[1].truncate(end);
        seeds.push(join(&short_index, &cut));
        seeds.push(join(&index[..index.len() - 7], &segments));
        // Crash mode: cuts in the record, in the index entry, and with a lost sector.
        for (flags, cut) in [(0x80u8, 100u32), (0x80, 1_000), (0x81, 2_000), (0x81, 700)] {
            let mut input = vec![flags, 7, 8];
            input.extend_from_slice(&cut.to_le_bytes());
            seeds.push(input);
        }
        // Twelve heights in one segment, cut 100 bytes into height 12's record, which starts
        // 38 bytes before a sector boundary, and that sector lost: its header is cut in two.
        let mut input = vec![0x81, 11, 255];
        input.extend_from_slice(&6462u32.to_le_bytes());
        seeds.push(input);
        seeds
    }

    #[test]
    fn fuzz_recovery_seeds_are_accepted_and_reach_the_checks() {
        let seeds = recovery_seeds();
        for (i, seed) in seeds.iter().enumerate() {
            assert!(fuzz_recovery_reached(seed), "seed {i} is refused, so it never reaches the checks");
        }
        fuzz_write_seeds("storage_recovery", &seeds.iter().map(Vec::as_slice).collect::<Vec<_>>());
        // Mutations of the stores, and crash-mode inputs with random parameters: count how many
        // get past check_directory to the checks on an accepted directory.
        let mut random = FuzzSeeds::new(0x05ee_dd1c);
        let (mut store_runs, mut store_reached, mut crash_runs, mut crash_reached) = (0, 0, 0, 0);
        for round in 0..2000 {
            if round % 2 == 0 {
                let base = &seeds[round / 2 % 5];
                let input = random.mutate(base);
                store_runs += 1;
                store_reached += usize::from(fuzz_recovery_reached(&input));
            } else {
                let mut input = random.bytes(7);
                input[0] |= 0x80;
                crash_runs += 1;
                crash_reached += usize::from(fuzz_recovery_reached(&input));
            }
        }
        assert!(store_reached * 20 >= store_runs, "{store_reached} of {store_runs} store inputs accepted");
        assert_eq!(crash_reached, crash_runs, "every crash-mode input reaches the checks");
        let corpus = fuzz_corpus("storage_recovery");
        let corpus_reached = corpus.iter().filter(|input| fuzz_recovery_reached(input)).count();
        assert!(
            corpus_reached * 2 >= corpus.len(),
            "{corpus_reached} of {} corpus inputs accepted",
            corpus.len()
        );
        eprintln!(
            "recovery: {store_reached}/{store_runs} mutated stores and {crash_reached}/{crash_runs} crash \
             inputs reached the checks; {corpus_reached}/{} corpus inputs",
            corpus.len()
        );
    }

    #[test]
    fn the_state_log_harness_reads_back_cut_logs_and_catches_planted_bugs() {
        let mut random = FuzzSeeds::new(0x57a7_e106);
        let (mut runs, mut some, mut all_kept) = (0, 0, 0);
        let seeds = recovery_seeds();
        for round in 0..3000 {
            let input =
                if round % 3 == 0 { random.mutate(&seeds[round % seeds.len()]) } else { random.bytes(16) };
            let read = fuzz_state_log(&input);
            runs += 1;
            some += usize::from(read > 0);
            all_kept += usize::from(read > 0 && fuzz_state_log(&input) == read);
        }
        assert!(some * 3 >= runs, "only {some} of {runs} cut logs kept a delta");
        assert_eq!(all_kept, some, "deterministic");
        // Planted: a tail also takes the last whole delta with it.
        fn drops_last(bytes: &[u8], id: Hash, committed: u64) -> Result<StateLog, Problem> {
            let mut log = decode_state_log(bytes, id, committed)?;
            if log.tail.is_some() {
                log.deltas.pop();
            }
            Ok(log)
        }
        // Planted: deltas past the committed height are kept.
        fn ignores_committed(bytes: &[u8], id: Hash, _committed: u64) -> Result<StateLog, Problem> {
            decode_state_log(bytes, id, u64::MAX)
        }
        for (name, planted) in [
            ("drops the last delta", drops_last as ReadLog),
            ("ignores the committed height", ignores_committed),
        ] {
            let caught = (0..200).any(|_| {
                let input = random.bytes(16);
                std::panic::catch_unwind(|| state_log_with(&input, planted)).is_err()
            });
            assert!(caught, "the state-log oracle misses a reader that {name}");
        }
    }

    #[test]
    fn crash_oracle_catches_a_recovery_that_drops_the_last_good_entry() {
        // Planted bug: when there is a torn tail to drop, drop the last committed entry too.
        fn drops_last_entry(id: Hash, index: &[u8], segments: &[&[u8]]) -> Result<DirCheck, Problem> {
            let mut check = check_directory(id, index, segments)?;
            if check.torn_bytes() > 0 {
                check.entries.pop();
            }
            Ok(check)
        }
        let crash = recovery_seeds()[6].clone();
        assert!(crash_with(&crash, check_directory));
        let caught = std::panic::catch_unwind(|| crash_with(&crash, drops_last_entry));
        let message = caught.expect_err("the oracle misses a recovery that drops an entry");
        let message = message.downcast_ref::<String>().expect("an assertion message");
        assert!(message.contains("recovers to the wrong height"), "{message}");
    }

    #[test]
    fn seed_corpus_replay_reads_only_checked_in_files() {
        let probe = std::process::Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--is-inside-work-tree"])
            .output();
        if !probe.is_ok_and(|output| output.status.success()) {
            eprintln!("skipped: not in a git work tree, so every corpus file is read");
            return;
        }
        let target = format!("untracked-probe-{}", std::process::id());
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(&target);
        struct Remove(std::path::PathBuf);
        impl Drop for Remove {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let _remove = Remove(dir.clone());
        std::fs::create_dir_all(&dir).expect("probe directory");
        std::fs::write(dir.join("found-by-a-fuzzer"), b"not a seed").expect("probe file");
        assert_eq!(fuzz_corpus(&target), Vec::<Vec<u8>>::new(), "an input no one committed is replayed");
        assert!(!fuzz_corpus("wire_decode").is_empty(), "the checked-in seeds are read");
    }
}
