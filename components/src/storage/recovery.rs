//! Recovery planning: the recovery rule as a pure function over a directory's bytes.
//!
//! Bird's eye view: [`check_directory`] takes the bytes of the index and of every segment and
//! either names the first problem (file and byte offset) or returns the committed records and
//! the torn tails of an unfinished final commit to drop. The `tessera` binary's storage module
//! maps the files, calls it, and applies the plan.

use super::index::{INDEX_ENTRY_SIZE, IndexEntry};
use super::record::{
    FILE_HEADER_SIZE, FileHeader, FileKind, Place, RECORD_HEADER_SIZE, RECORD_PAYLOAD_MAX, RecordKind,
    check_record, check_record_header,
};
use crate::hash::Hash;

/// Which file of the data directory a problem or a tail is in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileRef {
    /// `genesis`.
    Genesis,
    /// `index`.
    Index,
    /// `state`.
    State,
    /// `state-log`.
    StateLog,
    /// `segment-NNNNNNNN`.
    Segment(u32),
}

impl FileRef {
    /// The file's name inside the data directory.
    pub fn file_name(&self) -> String {
        match self {
            FileRef::Genesis => "genesis".to_string(),
            FileRef::Index => "index".to_string(),
            FileRef::State => "state".to_string(),
            FileRef::StateLog => "state-log".to_string(),
            FileRef::Segment(number) => segment_file_name(*number),
        }
    }
}

/// `segment-` and the number in eight decimal digits.
pub fn segment_file_name(number: u32) -> String {
    format!("segment-{number:08}")
}

/// Parses a segment file name; `None` for any other name.
pub fn parse_segment_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("segment-")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A problem that makes the directory unsound: where, and why.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Problem {
    /// The file.
    pub file: FileRef,
    /// Byte offset in it.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

impl Problem {
    pub(super) fn new(file: FileRef, offset: u64, reason: impl std::fmt::Display) -> Problem {
        Problem { file, offset, reason: reason.to_string() }
    }
}

/// Bytes at the end of a file left by a commit that never finished: `[offset, offset + size)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Tail {
    /// The file.
    pub file: FileRef,
    /// Where the unfinished write starts (the file is truncated to this length).
    pub offset: u64,
    /// Bytes from there to the end of the file.
    pub size: u64,
}

/// What [`check_directory`] found in a sound directory.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct DirCheck {
    /// Every committed height's entry, height 1 first; each record checked in full.
    pub entries: Vec<IndexEntry>,
    /// An unfinished final index write to drop, if any.
    pub index_tail: Option<Tail>,
    /// An unfinished final record write to drop, if any.
    pub segment_tail: Option<Tail>,
}

impl DirCheck {
    /// The last committed height (0: none).
    pub fn height(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Bytes in the torn tails.
    pub fn torn_bytes(&self) -> u64 {
        self.index_tail.map_or(0, |t| t.size) + self.segment_tail.map_or(0, |t| t.size)
    }
}

/// The recovery rule over a directory's bytes. `segments[n]` holds segment `n`'s bytes (the
/// caller has found segments `0..segments.len()` with no gap).
///
/// A commit writes its record at the end of the last segment, makes it durable, then appends
/// the index entry and makes that durable. So the index is the list of committed heights, and
/// only the final, unfinished commit can leave anything else behind: a partial index entry (or
/// a zero-filled one, after a power cut) and, in the last segment, at most one record of the
/// next height, complete or cut short, or zero fill. Those bytes are reported as tails to drop.
/// Anything else that is wrong is a [`Problem`]: a bad checksum, a misplaced record, a committed
/// record cut short, a gap, bytes after a closed segment's last record.
///
/// # Errors
/// The first problem, with its file and byte offset.
pub fn check_directory(genesis_id: Hash, index: &[u8], segments: &[&[u8]]) -> Result<DirCheck, Problem> {
    FileHeader::check(index, FileKind::Index, 0, Some(genesis_id))
        .map_err(|reason| Problem::new(FileRef::Index, 0, reason))?;
    if segments.is_empty() {
        return Err(Problem::new(FileRef::Segment(0), 0, "missing: a store always has segment 0"));
    }
    for (number, bytes) in segments.iter().enumerate() {
        let number = u32::try_from(number)
            .map_err(|_| Problem::new(FileRef::Segment(u32::MAX), 0, "more than 2^32 segments"))?;
        FileHeader::check(bytes, FileKind::Segment, number, Some(genesis_id))
            .map_err(|reason| Problem::new(FileRef::Segment(number), 0, reason))?;
    }

    let mut check = DirCheck::default();
    let (entries, index_tail) = check_index_entries(index)?;
    check.index_tail = index_tail;

    // Walk the committed records in order: each starts where the previous one ended, and a
    // new segment starts only once the previous one holds nothing more.
    let mut segment: u32 = 0;
    let mut cursor = FILE_HEADER_SIZE as u64;
    for (position, entry) in entries.iter().enumerate() {
        let index_offset = (FILE_HEADER_SIZE + position * INDEX_ENTRY_SIZE) as u64;
        if entry.segment != segment || entry.offset != cursor {
            let bytes = segments[segment as usize];
            let closes_segment = entry.segment == segment + 1
                && entry.offset == FILE_HEADER_SIZE as u64
                && cursor > FILE_HEADER_SIZE as u64;
            if !closes_segment {
                return Err(Problem::new(
                    FileRef::Index,
                    index_offset,
                    format!(
                        "index entry for height {} points at segment {} offset {}, the next record \
                         is at segment {segment} offset {cursor}",
                        entry.height, entry.segment, entry.offset
                    ),
                ));
            }
            if (bytes.len() as u64) != cursor {
                return Err(Problem::new(
                    FileRef::Segment(segment),
                    cursor,
                    format!(
                        "{} bytes after the last record of a closed segment",
                        bytes.len() as u64 - cursor.min(bytes.len() as u64)
                    ),
                ));
            }
            segment += 1;
            cursor = FILE_HEADER_SIZE as u64;
        }
        let Some(bytes) = segments.get(segment as usize) else {
            return Err(Problem::new(
                FileRef::Segment(segment),
                0,
                format!("missing, but the index places height {} in it", entry.height),
            ));
        };
        let place = Place { kind: RecordKind::Block, segment, offset: cursor };
        let tail = bytes.get(cursor as usize..).unwrap_or(&[]);
        let record = check_record(tail, place).map_err(|error| {
            Problem::new(FileRef::Segment(segment), cursor, format!("height {}: {error}", entry.height))
        })?;
        if record.header.height != entry.height
            || record.header.record_size() != u64::from(entry.record_size)
            || record.header.header_checksum != entry.record_checksum
        {
            return Err(Problem::new(
                FileRef::Segment(segment),
                cursor,
                format!(
                    "record (height {}, {} bytes) is not the one the index entry for height {} names",
                    record.header.height,
                    record.header.record_size(),
                    entry.height
                ),
            ));
        }
        cursor += record.header.record_size();
    }
    let next_height = entries.len() as u64 + 1;
    check.entries = entries;

    // After the last committed record: at most one more segment, and at most one unfinished
    // record.
    let last = segments.len() - 1;
    let current = segment as usize;
    if last > current + 1 {
        return Err(Problem::new(
            FileRef::Segment(current as u32 + 2),
            0,
            format!("segment exists but the last committed record is in segment {current}"),
        ));
    }
    let current_len = segments[current].len() as u64;
    if last == current + 1 {
        if current_len != cursor {
            return Err(Problem::new(
                FileRef::Segment(current as u32),
                cursor,
                "bytes after the last committed record, but a newer segment exists",
            ));
        }
        segment += 1;
        cursor = FILE_HEADER_SIZE as u64;
    }
    let bytes = segments[segment as usize];
    check.segment_tail = check_unfinished_record(bytes, segment, cursor, next_height)?;
    Ok(check)
}

/// The index's entries, and its torn tail if any.
fn check_index_entries(index: &[u8]) -> Result<(Vec<IndexEntry>, Option<Tail>), Problem> {
    let body = &index[FILE_HEADER_SIZE..];
    let whole = body.len() / INDEX_ENTRY_SIZE;
    let partial = body.len() % INDEX_ENTRY_SIZE;
    // Reserved up to a bound: a sparse index file's length is no promise of entries (a
    // terabyte of holes asked for its length's worth before the first entry was checked).
    let mut entries = Vec::with_capacity(whole.min(1 << 20));
    let mut tail = None;
    for (position, raw) in body.chunks_exact(INDEX_ENTRY_SIZE).enumerate() {
        let offset = (FILE_HEADER_SIZE + position * INDEX_ENTRY_SIZE) as u64;
        let raw: &[u8; INDEX_ENTRY_SIZE] = raw.try_into().expect("chunks_exact yields whole entries");
        match IndexEntry::check(raw, position as u64 + 1) {
            Ok(entry) => entries.push(entry),
            // A zero-filled last entry is an append whose data never reached the disk (the size
            // did, as a power cut can leave it).
            Err(_) if position + 1 == whole && partial == 0 && raw.iter().all(|b| *b == 0) => {
                tail = Some(Tail { file: FileRef::Index, offset, size: INDEX_ENTRY_SIZE as u64 });
            }
            Err(reason) => return Err(Problem::new(FileRef::Index, offset, reason)),
        }
    }
    if partial != 0 {
        let offset = (FILE_HEADER_SIZE + whole * INDEX_ENTRY_SIZE) as u64;
        tail = Some(Tail { file: FileRef::Index, offset, size: partial as u64 });
    }
    Ok((entries, tail))
}

/// Classifies the bytes of segment `segment` from `cursor` to its end, which follow the last
/// committed record: nothing, or the remains of one unfinished commit of `height`.
fn check_unfinished_record(
    bytes: &[u8],
    segment: u32,
    cursor: u64,
    height: u64,
) -> Result<Option<Tail>, Problem> {
    let available = (bytes.len() as u64).saturating_sub(cursor);
    if available == 0 {
        return Ok(None);
    }
    let tail = Tail { file: FileRef::Segment(segment), offset: cursor, size: available };
    // One unfinished commit leaves at most one record. Checked before any byte is read: a
    // sparse file's terabyte of zeros took hours to scan, and was then taken for one write.
    let one_write = (RECORD_HEADER_SIZE + RECORD_PAYLOAD_MAX) as u64;
    if available > one_write {
        return Err(Problem::new(
            FileRef::Segment(segment),
            cursor,
            format!(
                "{available} bytes after the last committed record, more than one unfinished write leaves"
            ),
        ));
    }
    let rest = &bytes[cursor as usize..];
    if rest.len() < RECORD_HEADER_SIZE || rest.iter().all(|b| *b == 0) {
        // A header cut short, or zero fill: the start of a write that did not finish.
        return Ok(Some(tail));
    }
    let place = Place { kind: RecordKind::Block, segment, offset: cursor };
    match check_record_header(rest, place) {
        Ok(header) if header.height == height => {
            if header.record_size() >= available {
                // The next height's record, cut short or complete, whose index entry never
                // became durable: the commit did not happen.
                Ok(Some(tail))
            } else {
                Err(Problem::new(
                    FileRef::Segment(segment),
                    cursor + header.record_size(),
                    format!(
                        "{} bytes after the unfinished record for height {height}",
                        available - header.record_size()
                    ),
                ))
            }
        }
        Ok(header) => Err(Problem::new(
            FileRef::Segment(segment),
            cursor,
            format!("uncommitted record for height {}, expected {height}", header.height),
        )),
        // A header whose write stopped at a sector boundary inside it: the first sector's bytes
        // arrived, the rest of the file reads as zeros.
        Err(_) if header_cut_at_sector(cursor, rest) || header_sector_lost(cursor, rest) => Ok(Some(tail)),
        Err(error) => Err(Problem::new(
            FileRef::Segment(segment),
            cursor,
            format!("bytes after the last committed record are not an unfinished write: {error}"),
        )),
    }
}

/// Whether a sector the header at the start of `rest` (file offset `cursor`) lies in reads as
/// zeros throughout, while other bytes of the write do not: before its flush a drive may
/// persist a write's sectors in any order, so a power cut can keep later sectors of the
/// unfinished record and lose the header's. (The part of a sector before `cursor` belongs to
/// the last committed record; a lost sector's part from `cursor` on reads as zeros.) Before,
/// such a tail refused the start until the segment was cut by hand (found in review).
fn header_sector_lost(cursor: u64, rest: &[u8]) -> bool {
    let end = cursor.saturating_add(rest.len() as u64);
    let header_end = cursor.saturating_add(RECORD_HEADER_SIZE as u64).min(end);
    let mut sector = cursor / SECTOR_SIZE * SECTOR_SIZE;
    while sector < header_end {
        let from = sector.max(cursor) - cursor;
        let to = sector.saturating_add(SECTOR_SIZE).min(end) - cursor;
        if rest[from as usize..to as usize].iter().all(|b| *b == 0) {
            return true;
        }
        sector += SECTOR_SIZE;
    }
    false
}

/// The smallest unit a disk writes whole. A power cut can leave a file whose new size reached
/// the disk while the data of its last sectors did not, so they read back as zeros; every
/// larger sector or page boundary is also a boundary of this size.
pub const SECTOR_SIZE: u64 = 512;

/// Whether `rest`, the bytes of a segment from file offset `cursor` to its end, is a record
/// header cut by a lost sector: a sector boundary falls inside the header's 40 bytes and
/// every byte from that boundary to the end of the file is zero.
fn header_cut_at_sector(cursor: u64, rest: &[u8]) -> bool {
    let inside = SECTOR_SIZE - cursor % SECTOR_SIZE;
    inside < RECORD_HEADER_SIZE as u64
        && rest.get(inside as usize..).is_some_and(|after| after.iter().all(|b| *b == 0))
}

#[cfg(test)]
mod tests {
    use super::super::record::encode_record;
    use super::*;
    use crate::storage::testing::image;

    fn check(index: &[u8], segments: &[Vec<u8>]) -> Result<DirCheck, Problem> {
        let segments: Vec<&[u8]> = segments.iter().map(Vec::as_slice).collect();
        check_directory(crate::fuzz::fuzz_genesis_id(), index, &segments)
    }

    #[test]
    fn file_names_round_trip_and_nothing_else_parses_as_a_segment() {
        assert_eq!(segment_file_name(7), "segment-00000007");
        assert_eq!(FileRef::Segment(42).file_name(), "segment-00000042");
        assert_eq!(
            [FileRef::Genesis, FileRef::Index, FileRef::State].map(|file| file.file_name()),
            ["genesis", "index", "state"]
        );
        for number in [0, 1, 7, 12_345_678, 99_999_999] {
            assert_eq!(parse_segment_file_name(&segment_file_name(number)), Some(number));
        }
        for name in [
            "segment-0000007",
            "segment-000000071",
            "segment-0000000a",
            "segment-+0000007",
            "segment-",
            "segment00000007",
            "index",
            "state",
            "",
        ] {
            assert_eq!(parse_segment_file_name(name), None, "{name}");
        }
    }

    /// The index entry at `position` changed by `change`, and sealed again (so only the walk,
    /// not the entry's checksum, can refuse it).
    fn reseal(index: &[u8], position: usize, change: impl FnOnce(&mut IndexEntry)) -> Vec<u8> {
        let at = FILE_HEADER_SIZE + position * INDEX_ENTRY_SIZE;
        let mut entry: IndexEntry = bytemuck::pod_read_unaligned(&index[at..at + INDEX_ENTRY_SIZE]);
        change(&mut entry);
        entry.checksum = super::super::record::checksum(&bytemuck::bytes_of(&entry)[..INDEX_ENTRY_SIZE - 4]);
        let mut out = index.to_vec();
        out[at..at + INDEX_ENTRY_SIZE].copy_from_slice(bytemuck::bytes_of(&entry));
        out
    }

    /// Sealed index entries that do not describe the records in order are refused, each at
    /// the entry (or, for a size the record does not have, at the record).
    #[test]
    fn sealed_entries_that_misdescribe_the_records_are_refused_where_they_are() {
        // A few records per segment.
        let (index, segments) = image(10, 1500);
        assert!(segments.len() >= 2);
        let entry_offset = |position: usize| (FILE_HEADER_SIZE + position * INDEX_ENTRY_SIZE) as u64;
        let entries: Vec<IndexEntry> = (0..10)
            .map(|p| bytemuck::pod_read_unaligned(&index[entry_offset(p) as usize..][..INDEX_ENTRY_SIZE]))
            .collect();
        // An offset one byte off, in the middle of a segment.
        let mid = (1..10)
            .find(|&p| entries[p].segment == entries[p - 1].segment)
            .expect("two records in a segment");
        let problem = check(&reseal(&index, mid, |e| e.offset += 1), &segments).unwrap_err();
        assert_eq!((problem.file, problem.offset), (FileRef::Index, entry_offset(mid)), "{}", problem.reason);
        // The first record of the next segment, at the wrong offset.
        let first_of_next =
            (1..10).find(|&p| entries[p].segment == entries[p - 1].segment + 1).expect("a second segment");
        let problem = check(&reseal(&index, first_of_next, |e| e.offset += 1), &segments).unwrap_err();
        assert_eq!(
            (problem.file, problem.offset),
            (FileRef::Index, entry_offset(first_of_next)),
            "{}",
            problem.reason
        );
        // A segment left with nothing in it: height 1 placed at the start of segment 1.
        let problem = check(&reseal(&index, 0, |e| e.segment = 1), &segments).unwrap_err();
        assert_eq!((problem.file, problem.offset), (FileRef::Index, entry_offset(0)), "{}", problem.reason);
        // A record size other than the record's.
        let problem = check(&reseal(&index, mid, |e| e.record_size += 1), &segments).unwrap_err();
        assert_eq!(
            (problem.file, problem.offset),
            (FileRef::Segment(entries[mid].segment), entries[mid].offset)
        );
        // A record checksum other than the record's.
        let problem = check(&reseal(&index, mid, |e| e.record_checksum ^= 1), &segments).unwrap_err();
        assert_eq!(
            (problem.file, problem.offset),
            (FileRef::Segment(entries[mid].segment), entries[mid].offset)
        );
        // Unchanged, all of it is sound.
        assert_eq!(check(&reseal(&index, mid, |_| ()), &segments).unwrap().height(), 10);
    }

    /// What follows the last committed record is an unfinished commit of the next height or
    /// a problem, named where it is.
    #[test]
    fn bytes_after_the_last_record_are_a_tail_only_when_they_can_be_the_next_commit() {
        let (index, segments) = image(4, 1 << 20);
        let cursor = segments[0].len() as u64;
        let place = Place { kind: RecordKind::Block, segment: 0, offset: cursor };
        let with = |extra: &[u8]| {
            let mut grown = segments.clone();
            grown[0].extend_from_slice(extra);
            check(&index, &grown)
        };
        // The next height's whole record: a commit whose index entry never became durable.
        let next = encode_record(place, 5, b"next block");
        assert_eq!(with(&next).unwrap().segment_tail.map(|t| t.size), Some(next.len() as u64));
        // Another height's record there is not an unfinished commit.
        let problem = with(&encode_record(place, 7, b"stale")).unwrap_err();
        assert_eq!((problem.file, problem.offset), (FileRef::Segment(0), cursor), "{}", problem.reason);
        // Bytes past the next height's record: named where they start.
        let mut longer = next.clone();
        longer.extend_from_slice(&[9; 5]);
        let problem = with(&longer).unwrap_err();
        assert_eq!((problem.file, problem.offset), (FileRef::Segment(0), cursor + next.len() as u64));
        // A whole header's length of bytes that are not a header is not a cut header.
        let problem = with(&[0xff; RECORD_HEADER_SIZE]).unwrap_err();
        assert_eq!((problem.file, problem.offset), (FileRef::Segment(0), cursor), "{}", problem.reason);
        // Fewer bytes than a header are the start of a write that did not finish.
        assert!(with(&[0xff; RECORD_HEADER_SIZE - 1]).unwrap().segment_tail.is_some());
        // A segment more than one past the last record's is named.
        let mut extra = segments.clone();
        for number in [1, 2] {
            let header = FileHeader::new(FileKind::Segment, number, crate::fuzz::fuzz_genesis_id());
            extra.push(bytemuck::bytes_of(&header).to_vec());
        }
        assert_eq!(check(&index, &extra[..2]).unwrap().height(), 4, "one empty segment after is sound");
        assert_eq!(check(&index, &extra).unwrap_err().file, FileRef::Segment(2));
    }

    /// A sector boundary inside a header's 40 bytes, and zeros from it to the end, is a cut
    /// header; a boundary at or past its end is not.
    #[test]
    fn a_header_is_cut_by_a_sector_only_when_a_boundary_falls_inside_it() {
        let zeros_after = |before: usize| {
            let mut rest = vec![1u8; before];
            rest.extend_from_slice(&[0; 100]);
            rest
        };
        let header = RECORD_HEADER_SIZE as u64;
        // `inside` bytes of the header before the boundary.
        for inside in [1, 20, header - 1] {
            assert!(header_cut_at_sector(SECTOR_SIZE - inside, &zeros_after(inside as usize)), "{inside}");
        }
        for inside in [header, header + 1, SECTOR_SIZE] {
            assert!(
                !header_cut_at_sector(SECTOR_SIZE * 3 - inside % SECTOR_SIZE, &zeros_after(inside as usize)),
                "{inside}"
            );
        }
        // Not zeros after the boundary: not a lost sector.
        let mut rest = zeros_after(20);
        rest[50] = 1;
        assert!(!header_cut_at_sector(SECTOR_SIZE - 20, &rest));
    }

    #[test]
    fn sound_image_checks_clean() {
        let (index, segments) = image(12, 700);
        assert!(segments.len() > 2);
        let found = check(&index, &segments).unwrap();
        assert_eq!(found.height(), 12);
        assert_eq!(found.torn_bytes(), 0);
    }

    #[test]
    fn unfinished_commits_are_tails_and_nothing_else_is() {
        let (index, segments) = image(5, 1 << 20);
        // A record written whose index entry is absent: drop it whole.
        let (short_index, _) = image(4, 1 << 20);
        let found = check(&short_index, &segments).unwrap();
        assert_eq!(found.height(), 4);
        let tail = found.segment_tail.unwrap();
        assert_eq!(tail.offset + tail.size, segments[0].len() as u64);
        // And cut in half.
        let mut cut = segments.clone();
        cut[0].truncate((tail.offset + tail.size / 2) as usize);
        assert_eq!(check(&short_index, &cut).unwrap().segment_tail.unwrap().size, tail.size / 2);
        // A partial index entry.
        let mut partial = index.clone();
        partial.truncate(index.len() - 5);
        let found = check(&partial, &segments).unwrap();
        assert_eq!(found.height(), 4);
        assert_eq!(found.index_tail.unwrap().size, 27);
        // A zero-filled final index entry.
        let mut zeroed = index.clone();
        let end = zeroed.len();
        zeroed[end - 32..].fill(0);
        assert_eq!(check(&zeroed, &segments).unwrap().index_tail.unwrap().size, 32);
        // Two zeroed entries are not one unfinished write.
        zeroed[end - 64..].fill(0);
        assert_eq!(check(&zeroed, &segments).unwrap_err().offset, (end - 64) as u64);
        // A committed record cut short is corruption, not a tail.
        let mut cut = segments.clone();
        let len = cut[0].len();
        cut[0].truncate(len - 1);
        let problem = check(&index, &cut).unwrap_err();
        assert_eq!(problem.file, FileRef::Segment(0));
    }

    #[test]
    fn record_header_cut_by_a_lost_sector_is_a_tail() {
        // Twelve heights in one segment: height 12's record starts at 6106, 38 bytes before a
        // sector boundary. Its write reached the disk up to 6206 except the sector from 6144.
        let (short_index, _) = image(11, 1 << 20);
        let (_, segments) = image(12, 1 << 20);
        let start = 6106;
        assert_eq!(check(&short_index, &segments).unwrap().segment_tail.unwrap().offset, start);
        let mut cut = segments.clone();
        cut[0].truncate(start as usize + 100);
        cut[0][6144..].fill(0);
        let found = check(&short_index, &cut).unwrap();
        assert_eq!(found.height(), 11);
        assert_eq!(found.segment_tail, Some(Tail { file: FileRef::Segment(0), offset: start, size: 100 }));
        // Nonzero bytes after the boundary are not a lost sector: still refused.
        cut[0][6150] = 1;
        assert_eq!(check(&short_index, &cut).unwrap_err().offset, start);
    }

    /// The header's first sector lost and the rest of the write kept (a drive persists a
    /// write's sectors in any order before its flush) is the unfinished commit's tail too.
    /// Before, it refused the start.
    #[test]
    fn a_record_whose_header_sector_was_lost_but_not_the_next_is_a_tail() {
        let (short_index, _) = image(11, 1 << 20);
        let (_, segments) = image(12, 1 << 20);
        let start = 6106;
        let mut cut = segments.clone();
        let size = cut[0].len() - start;
        assert!(start + size > 6144 + 64, "the record runs well past the sector boundary");
        // Height 12's bytes in the sector before 6144 read as zeros; those after it arrived.
        cut[0][start..6144].fill(0);
        assert!(cut[0][6144..].iter().any(|b| *b != 0));
        let found = check(&short_index, &cut).unwrap();
        assert_eq!(found.height(), 11);
        assert_eq!(
            found.segment_tail,
            Some(Tail { file: FileRef::Segment(0), offset: start as u64, size: size as u64 })
        );
        // A header's bytes in a sector that did arrive are not zeros: refused, as before.
        let mut damaged = segments.clone();
        damaged[0][start] ^= 0x40;
        assert_eq!(check(&short_index, &damaged).unwrap_err().offset, start as u64);
        // More than one record's worth after the last commit is never one unfinished write,
        // and is refused before a byte of it is read.
        let cursor = FILE_HEADER_SIZE as u64;
        let sparse = vec![0u8; FILE_HEADER_SIZE + RECORD_HEADER_SIZE + RECORD_PAYLOAD_MAX + 1];
        let problem = check_unfinished_record(&sparse, 0, cursor, 1).unwrap_err();
        assert_eq!(problem.offset, cursor, "{}", problem.reason);
    }

    #[test]
    fn misdirected_record_is_named() {
        let (index, mut segments) = image(10, 600);
        assert!(segments.len() >= 3);
        // Copy segment 1's first record over segment 2's first record.
        let size = check_record_header(
            &segments[1][FILE_HEADER_SIZE..],
            Place { kind: RecordKind::Block, segment: 1, offset: FILE_HEADER_SIZE as u64 },
        )
        .unwrap()
        .record_size() as usize;
        let size = size.min(segments[2].len() - FILE_HEADER_SIZE);
        let copy = segments[1][FILE_HEADER_SIZE..FILE_HEADER_SIZE + size].to_vec();
        segments[2][FILE_HEADER_SIZE..FILE_HEADER_SIZE + size].copy_from_slice(&copy);
        let problem = check(&index, &segments).unwrap_err();
        assert_eq!((problem.file, problem.offset), (FileRef::Segment(2), FILE_HEADER_SIZE as u64));
        assert!(problem.reason.contains("misdirected"), "{}", problem.reason);
    }

    #[test]
    fn every_bit_flip_is_caught_with_its_place() {
        let (index, segments) = image(4, 1 << 20);
        for byte in (0..segments[0].len()).step_by(7) {
            let mut flipped = segments.clone();
            flipped[0][byte] ^= 1 << (byte % 8);
            let problem = check(&index, &flipped).unwrap_err();
            assert_eq!(problem.file, FileRef::Segment(0));
            assert!(problem.offset <= byte as u64, "problem at {} for flip at {byte}", problem.offset);
        }
        for byte in 0..index.len() {
            let mut flipped = index.clone();
            flipped[byte] ^= 0x80;
            let problem = check(&flipped, &segments).unwrap_err();
            assert_eq!(problem.file, FileRef::Index, "flip at {byte}");
        }
    }
}
