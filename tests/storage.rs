//! The data directory as the node's processes see it: commits that survive SIGKILL, damage that
//! is found and named, and `tessera inspect`, which never writes.
//!
//! The child is `tessera storage-drill DIR`, which prints `committed <height> <state_root>`
//! after each durable commit. Seeds are printed; set `TESSERA_STORAGE_SEED` to rerun one.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera")).args(args).output().expect("run tessera")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-storage-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// splitmix64: a seeded stream, so a failing run can be repeated exactly.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Removes a scratch directory once its test has passed (a failing test leaves it to look at).
fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

fn seed() -> u64 {
    std::env::var("TESSERA_STORAGE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5107_a6e5)
}

fn drill(dir: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command
        .arg("storage-drill")
        .arg(dir)
        .args(["--segment-size-max", "6000", "--state-interval", "5"])
        .args(extra);
    command
}

/// `inspect DIR [--replay]`: (exit ok, stdout, stderr).
fn inspect(dir: &Path, replay: bool) -> (bool, String, String) {
    let mut args = vec!["inspect", dir.to_str().unwrap()];
    if replay {
        args.push("--replay");
    }
    let out = tessera(&args);
    assert_ne!(out.status.code(), Some(101), "inspect panicked: {}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

/// The value after `key ` on the line starting with it.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.split_whitespace().next())
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    tessera::storage::drill::dir_contents(dir).expect("a readable directory")
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for (name, bytes) in files(from) {
        std::fs::write(to.join(name), bytes).unwrap();
    }
}

/// What the parent has learned from the drills' output across kills.
#[derive(Default)]
struct Watch {
    seed: u64,
    kill: u32,
    /// Highest height a drill reported committed.
    reported: u64,
    /// State root each reported height had.
    roots: BTreeMap<u64, String>,
    /// Restarts that dropped a torn tail, and the bytes dropped.
    torn_restarts: u32,
    torn_bytes: u64,
    /// Restarts that found one commit more than was reported (killed between the last sync and
    /// the print).
    unreported_commits: u32,
}

impl Watch {
    /// Takes in one line of drill output.
    fn line(&mut self, line: &str) {
        let (seed, kill) = (self.seed, self.kill);
        let mut words = line.split_whitespace();
        match words.next() {
            Some("recovered") => {
                let height: u64 = words.next().unwrap().parse().unwrap();
                let root = words.next().unwrap();
                assert!(
                    height >= self.reported,
                    "kill {kill} (seed {seed}): recovered {height}, but {} were reported committed",
                    self.reported
                );
                if let Some(expected) = self.roots.get(&height) {
                    assert_eq!(root, expected, "kill {kill} (seed {seed}): state root at height {height}");
                }
                if height > self.reported {
                    // Durable though never reported: from now on it must stay.
                    self.unreported_commits += 1;
                    self.roots.insert(height, root.to_string());
                    self.reported = height;
                }
                let dropped: u64 = words.nth(1).unwrap().parse().unwrap();
                self.torn_restarts += u32::from(dropped > 0);
                self.torn_bytes += dropped;
            }
            Some("committed") => {
                let height: u64 = words.next().unwrap().parse().unwrap();
                assert!(height > self.reported, "kill {kill} (seed {seed}): committed {height} twice");
                self.roots.insert(height, words.next().unwrap().to_string());
                self.reported = height;
            }
            _ => {}
        }
    }

    /// Reads lines until `commits` commits were seen or the output ends.
    fn read(&mut self, lines: &mut impl Iterator<Item = std::io::Result<String>>, commits: u64) {
        let mut seen = 0;
        while seen < commits {
            let Some(Ok(line)) = lines.next() else { return };
            seen += u64::from(line.starts_with("committed "));
            self.line(&line);
        }
    }
}

fn spawn_drill(dir: &Path, txns: u64) -> (Child, std::io::Lines<BufReader<ChildStdout>>) {
    let mut child = drill(dir, &["--txns-per-block", &txns.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drill");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

#[test]
fn sigkill_at_random_moments_loses_no_committed_block() {
    let seed = seed();
    eprintln!("crash test seed {seed} (TESSERA_STORAGE_SEED={seed} to repeat)");
    let mut rng = Seeded(seed);
    let dir = scratch("crash");
    let mut watch = Watch { seed, ..Watch::default() };
    let kills = 32;
    for kill in 0..kills {
        watch.kill = kill;
        let (mut child, mut lines) = spawn_drill(&dir, 1 + rng.below(24));
        // Let it run for a seeded number of commits (zero: it may still be starting, creating
        // or recovering), then a seeded delay of up to 4 ms, which lands anywhere in a commit's
        // writes and syncs.
        watch.read(&mut lines, rng.below(5));
        std::thread::sleep(Duration::from_micros(rng.below(4000)));
        child.kill().expect("SIGKILL the drill");
        let status = child.wait().unwrap();
        // Lines already in the pipe were printed after durable commits too.
        watch.read(&mut lines, u64::MAX);
        if status.code().is_some() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            panic!("kill {kill} (seed {seed}): the drill exited by itself ({status}): {stderr}");
        }

        // What is on disk now is sound (a torn tail is allowed), holds every reported commit,
        // and replays from genesis to the state root the child reported.
        let before = files(&dir);
        let (ok, out, err) = inspect(&dir, true);
        if !ok && err.contains("holds no store") {
            assert_eq!(watch.reported, 0, "killed before the store was created");
            continue;
        }
        assert!(ok, "kill {kill} (seed {seed}): inspect --replay failed: {err}");
        assert_eq!(files(&dir), before, "inspect wrote to the directory");
        let height: u64 = field(&out, "height").unwrap().parse().unwrap();
        let reported = watch.reported;
        assert!(height >= reported, "kill {kill} (seed {seed}): {height} on disk, {reported} reported");
        assert!(height <= reported + 1, "at most the one commit the child had no time to report");
        if let Some(root) = watch.roots.get(&height) {
            assert_eq!(field(&out, "state_root"), Some(root.as_str()), "kill {kill} (seed {seed})");
        }
    }
    // A last run to completion: it recovers, goes on, and stops cleanly.
    let target = watch.reported + 3;
    let out = drill(&dir, &["--blocks", &target.to_string()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        watch.line(line);
    }
    let (ok, text, err) = inspect(&dir, true);
    assert!(ok, "{err}");
    assert_eq!(field(&text, "height"), Some(target.to_string().as_str()));
    eprintln!(
        "{kills} kills: {} commits reported; {} restarts dropped a torn tail ({} bytes in all); {} restarts \
         found a commit the drill had not reported",
        watch.reported, watch.torn_restarts, watch.torn_bytes, watch.unreported_commits
    );
    assert!(watch.reported > 10, "the kills should land between real commits (seed {seed})");
    remove(&dir);
}

/// A sound directory of 40 blocks over several segments, built once per test.
fn sound_store(name: &str) -> PathBuf {
    let dir = scratch(name);
    let out = drill(&dir, &["--blocks", "40", "--txns-per-block", "6", "--no-sync"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

/// (height, segment, offset, size) of every committed record, read from the index (format in
/// docs/storage.md: a 64-byte header, then 32-byte entries).
fn records(dir: &Path) -> Vec<(u64, u32, u64, u64)> {
    let index = std::fs::read(dir.join("index")).unwrap();
    index[64..]
        .chunks_exact(32)
        .map(|e| {
            let u64_at = |at: usize| u64::from_le_bytes(e[at..at + 8].try_into().unwrap());
            let u32_at = |at: usize| u32::from_le_bytes(e[at..at + 4].try_into().unwrap());
            (u64_at(0), u32_at(16), u64_at(8), u64::from(u32_at(20)))
        })
        .collect()
}

fn segment_name(number: u32) -> String {
    format!("segment-{number:08}")
}

/// Applies `damage` to a copy of `sound`; then `inspect` and the node (the drill) must both
/// refuse, naming `file` and `offset`, without panicking or writing.
fn assert_refused(sound: &Path, name: &str, damage: impl FnOnce(&Path), file: &str, offset: u64) {
    let dir = sound.with_file_name(format!("{}-{name}", sound.file_name().unwrap().to_str().unwrap()));
    copy_dir(sound, &dir);
    damage(&dir);
    let before = files(&dir);
    let expected = format!("{}: corrupt at byte offset {offset}:", dir.join(file).display());
    for replay in [false, true] {
        let (ok, _, err) = inspect(&dir, replay);
        assert!(!ok, "{name}: inspect accepted the damage");
        assert!(err.contains(&expected), "{name}: inspect said {err:?}, expected {expected:?}");
    }
    assert_eq!(files(&dir), before, "{name}: inspect wrote to the directory");
    let out = drill(&dir, &["--blocks", "0"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{name}: the node must refuse to start, without panicking: {err}");
    assert!(err.contains(&expected), "{name}: the node said {err:?}, expected {expected:?}");
    assert_eq!(files(&dir), before, "{name}: a refused start wrote to the directory");
    remove(&dir);
}

fn edit(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    change(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn injected_faults_are_named_by_file_and_offset() {
    let sound = sound_store("faults");
    let (ok, out, err) = inspect(&sound, true);
    assert!(ok, "{err}");
    assert_eq!(field(&out, "height"), Some("40"));
    let records = records(&sound);
    assert_eq!(records.len(), 40);
    let segments = records.last().unwrap().1 + 1;
    assert!(segments >= 4, "the fixture should span several segments, has {segments}");
    let in_segment = |n: u32| records.iter().filter(move |r| r.1 == n).copied().collect::<Vec<_>>();
    let mut seeded = Seeded(seed());

    // Bit flips anywhere in a committed record: header or payload.
    for _ in 0..6 {
        let (_, segment, offset, size) = records[seeded.below(40) as usize];
        let at = offset + seeded.below(size);
        let bit = seeded.below(8);
        let name = segment_name(segment);
        assert_refused(
            &sound,
            "bitflip",
            |dir| edit(&dir.join(&name), |b| b[at as usize] ^= 1 << bit),
            &name,
            offset,
        );
    }

    // A zeroed 4 KiB page in the middle of segment 1: the record holding its first byte.
    let page = 4096u64;
    let (_, _, offset, _) = *in_segment(1).iter().find(|r| r.2 <= page && page < r.2 + r.3).unwrap();
    assert_refused(
        &sound,
        "zeroed-page",
        |dir| {
            edit(&dir.join(segment_name(1)), |b| {
                let end = (page as usize + 4096).min(b.len());
                b[page as usize..end].fill(0);
            })
        },
        &segment_name(1),
        offset,
    );

    // Truncation: a closed segment cut inside its third record.
    let third = in_segment(0)[2];
    assert_refused(
        &sound,
        "truncated",
        |dir| edit(&dir.join(segment_name(0)), |b| b.truncate((third.2 + 10) as usize)),
        &segment_name(0),
        third.2,
    );

    // A misdirected write: segment 0's second record lands on segment 2's second record.
    let (source, target) = (in_segment(0)[1], in_segment(2)[1]);
    assert_refused(
        &sound,
        "misdirected",
        |dir| {
            let copy = std::fs::read(dir.join(segment_name(0))).unwrap()[source.2 as usize..]
                [..source.3 as usize]
                .to_vec();
            edit(&dir.join(segment_name(2)), |b| {
                let end = (target.2 as usize + copy.len()).min(b.len());
                b[target.2 as usize..end].copy_from_slice(&copy[..end - target.2 as usize]);
            });
        },
        &segment_name(2),
        target.2,
    );

    // The index, the state snapshot and the genesis file are checked too.
    assert_refused(
        &sound,
        "index",
        |dir| edit(&dir.join("index"), |b| b[64 + 32 * 7 + 3] ^= 0x40),
        "index",
        64 + 32 * 7,
    );
    assert_refused(&sound, "state", |dir| edit(&dir.join("state"), |b| b[200] ^= 1), "state", 64);
    assert_refused(&sound, "genesis", |dir| edit(&dir.join("genesis"), |b| b[300] ^= 1), "genesis", 64);
    assert_refused(
        &sound,
        "missing-segment",
        |dir| std::fs::remove_file(dir.join(segment_name(1))).unwrap(),
        &segment_name(1),
        0,
    );
    remove(&sound);
}

#[test]
fn a_torn_last_write_is_reported_by_inspect_and_dropped_by_the_node() {
    let sound = scratch("torn");
    let build = |blocks: &str| {
        let out =
            drill(&sound, &["--blocks", blocks, "--txns-per-block", "6", "--no-sync"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    // The drill writes the state when it stops; keep the snapshot and state log from height
    // 39, as a crash while committing 40 would have.
    build("39");
    let state_at_39 = std::fs::read(sound.join("state")).unwrap();
    let log_at_39 = std::fs::read(sound.join("state-log")).unwrap();
    build("40");
    let dir = scratch("torn-copy");
    copy_dir(&sound, &dir);
    std::fs::write(dir.join("state"), state_at_39).unwrap();
    std::fs::write(dir.join("state-log"), log_at_39).unwrap();
    // The state a crash halfway through writing block 40 leaves: its record cut short and
    // no index entry.
    let (_, segment, offset, size) = *records(&sound).last().unwrap();
    let index_len = std::fs::metadata(dir.join("index")).unwrap().len();
    edit(&dir.join("index"), |b| b.truncate(index_len as usize - 32));
    edit(&dir.join(segment_name(segment)), |b| b.truncate((offset + size / 3) as usize));

    let before = files(&dir);
    let (ok, out, err) = inspect(&dir, true);
    assert!(ok, "a torn tail is what a crash leaves; the directory is sound: {err}");
    assert_eq!(files(&dir), before, "inspect wrote to the directory");
    assert_eq!(field(&out, "height"), Some("39"));
    let torn =
        format!("torn {} offset {offset} bytes {}", dir.join(segment_name(segment)).display(), size / 3);
    assert!(out.contains(&torn), "inspect said {out:?}, expected {torn:?}");

    let out = drill(&dir, &["--blocks", "39"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("recovered 39 "), "{text}");
    assert!(text.contains(&format!("dropped {}", size / 3)), "{text}");
    assert!(text.contains(&format!(
        "torn {} {offset} {}",
        dir.join(segment_name(segment)).display(),
        size / 3
    )));
    let (ok, out, _) = inspect(&dir, false);
    assert!(ok && !out.contains("torn "), "{out}");
    remove(&dir);
    remove(&sound);
}

#[test]
fn inspect_and_a_second_node_are_refused_while_a_node_runs() {
    let dir = scratch("lock");
    let (mut child, mut lines) = spawn_drill(&dir, 2);
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("recovered 0 "), "{first}");
    let (ok, _, err) = inspect(&dir, false);
    assert!(!ok && err.contains("is locked by another process"), "{err}");
    let out = drill(&dir, &["--blocks", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is locked by another process"));
    child.kill().unwrap();
    child.wait().unwrap();
    let (ok, _, err) = inspect(&dir, false);
    assert!(ok, "{err}");
    remove(&dir);
}

#[test]
fn inspect_explains_itself_and_refuses_a_directory_without_a_store() {
    let out = tessera(&["inspect", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--replay") && help.contains("read-only"), "{help}");
    let out = tessera(&["--help"]);
    assert!(String::from_utf8(out.stdout).unwrap().contains("inspect"));
    let empty = scratch("empty");
    let (ok, _, err) = inspect(&empty, false);
    assert!(!ok && err.contains("holds no store"), "{err}");
    assert!(files(&empty).is_empty());
    remove(&empty);
}
