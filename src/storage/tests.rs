//! The store through its API: commit, reopen, read back, refuse.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tessera_components::storage::{FILE_HEADER_SIZE, INDEX_ENTRY_SIZE};

use super::*;

const SENDERS: u64 = 16;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Removes a scratch directory once its test has passed (a failing test leaves it to look at).
fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

fn config() -> StoreConfig {
    StoreConfig { segment_size_max: 4096, sync: false, state_interval_blocks: 4 }
}

fn genesis() -> Vec<([u8; 32], u64)> {
    drill::genesis(SENDERS)
}

/// Commits blocks until `height`, returning every block committed.
fn commit_to(store: &mut Store, ledger: &mut Ledger, height: u64) -> Vec<(Block, QuorumCertificate)> {
    let mut committed = Vec::new();
    while store.height() < height {
        let next = store.height() + 1;
        let (block, certificate) =
            drill::next_block(ledger, store.tip_hash(), next, SENDERS, (next % 5) as usize);
        store.commit(&block, &certificate, ledger).unwrap();
        committed.push((block, certificate));
    }
    committed
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    super::drill::dir_contents(dir).expect("a readable directory")
}

/// A store of `height` blocks, closed.
fn store_of(name: &str, height: u64) -> (PathBuf, Vec<(Block, QuorumCertificate)>, Hash) {
    let dir = scratch(name);
    let (mut store, mut ledger, recovery) = Store::open(&dir, &genesis(), config()).unwrap();
    assert!(recovery.created);
    let blocks = commit_to(&mut store, &mut ledger, height);
    (dir, blocks, ledger.state_root())
}

#[test]
fn reopen_continues_from_the_last_commit_with_the_same_state() {
    let (dir, blocks, root) = store_of("reopen", 23);
    let (mut store, mut ledger, recovery) = Store::open(&dir, &genesis(), config()).unwrap();
    assert!(!recovery.created);
    assert_eq!((recovery.height, recovery.blocks, recovery.torn_bytes_dropped), (23, 23, 0));
    assert_eq!(recovery.state_root, root);
    assert_eq!(ledger.state_root(), root);
    assert_eq!((recovery.state_height, recovery.replayed), (20, 3));
    let segments = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().file_name().to_string_lossy().starts_with("segment-"))
        .count();
    assert!(segments > 3, "the test means to span several segments, has {segments}");
    for (height, committed) in (1..).zip(&blocks) {
        assert_eq!(store.block(height).unwrap().as_ref(), Some(committed));
    }
    assert_eq!(store.block(0).unwrap(), None);
    assert_eq!(store.block(24).unwrap(), None);
    // And it goes on.
    commit_to(&mut store, &mut ledger, 30);
    store.write_state(&ledger).unwrap();
    drop(store);
    let (store, reopened, recovery) = Store::open(&dir, &genesis(), config()).unwrap();
    assert_eq!((store.height(), recovery.state_height, recovery.replayed), (30, 30, 0));
    assert_eq!(reopened.state_root(), ledger.state_root());
    remove(&dir);
}

#[test]
fn a_second_opener_is_refused_while_the_first_holds_the_lock() {
    let dir = scratch("lock");
    let (store, _, _) = Store::open(&dir, &genesis(), config()).unwrap();
    let error = Store::open(&dir, &genesis(), config()).unwrap_err();
    assert!(matches!(&error, StoreError::Locked { dir: d } if d == &dir), "{error}");
    assert!(error.to_string().contains("locked by another process"));
    assert!(matches!(DirLock::new(&dir, LockMode::Shared), Err(StoreError::Locked { .. })));
    drop(store);
    let shared = DirLock::new(&dir, LockMode::Shared).unwrap();
    assert!(DirLock::new(&dir, LockMode::Shared).is_ok(), "readers share");
    assert!(matches!(Store::open(&dir, &genesis(), config()), Err(StoreError::Locked { .. })));
    drop(shared);
    Store::open(&dir, &genesis(), config()).unwrap();
    remove(&dir);
}

#[test]
fn another_genesis_is_refused() {
    let (dir, _, _) = store_of("genesis", 2);
    let other = drill::genesis(SENDERS + 1);
    assert!(matches!(Store::open(&dir, &other, config()), Err(StoreError::GenesisMismatch { .. })));
    remove(&dir);
}

#[test]
fn blocks_that_do_not_fit_are_refused_and_nothing_is_written() {
    let (dir, _, _) = store_of("refuse", 3);
    let before = files(&dir);
    let (mut store, ledger, _) = Store::open(&dir, &genesis(), config()).unwrap();
    let (block, certificate) = store.block(3).unwrap().unwrap();
    let error = store.commit(&block, &certificate, &ledger).unwrap_err();
    assert!(matches!(error, StoreError::OutOfOrder { height: 3, got: 3 }), "{error}");

    let mut scratch_ledger = ledger.clone();
    let (mut next, certificate) = drill::next_block(&mut scratch_ledger, store.tip_hash(), 4, SENDERS, 2);
    let (_, other_certificate) = store.block(2).unwrap().unwrap();
    assert!(matches!(
        store.commit(&next, &other_certificate, &scratch_ledger),
        Err(StoreError::CertificateMismatch { .. })
    ));
    // Height 4 is a snapshot height: the ledger must be the state after the block.
    assert!(matches!(store.commit(&next, &certificate, &ledger), Err(StoreError::StateRootMismatch { .. })));
    let mut short = next.clone();
    short.txns = short.txns[..short.txns.len() - 1].into();
    assert!(matches!(
        store.commit(&short, &certificate, &scratch_ledger),
        Err(StoreError::InvalidBlock { height: 4, .. })
    ));
    next.header.parent = Hash([9; 32]);
    assert!(matches!(
        store.commit(&next, &certificate, &scratch_ledger),
        Err(StoreError::ParentMismatch { .. })
    ));
    drop(store);
    assert_eq!(files(&dir), before);
    remove(&dir);
}

#[test]
fn a_torn_final_write_is_dropped_and_reported() {
    let (dir, _, _) = store_of("torn", 9);
    let root_at_8 = {
        let (store, _, _) = Store::open(&dir, &genesis(), config()).unwrap();
        store.block(8).unwrap().unwrap().0.header.state_root
    };
    // Drop the last index entry and cut the last record in half: the state after a crash in
    // the middle of writing block 9.
    let index = dir.join(INDEX_FILE);
    let index_len = std::fs::metadata(&index).unwrap().len();
    let last = std::fs::read(&index).unwrap()[index_len as usize - INDEX_ENTRY_SIZE..].to_vec();
    let offset = u64::from_le_bytes(last[8..16].try_into().unwrap());
    let segment = u32::from_le_bytes(last[16..20].try_into().unwrap());
    let size = u64::from(u32::from_le_bytes(last[20..24].try_into().unwrap()));
    std::fs::OpenOptions::new().write(true).open(&index).unwrap().set_len(index_len - 32).unwrap();
    let segment_path = dir.join(segment_file_name(segment));
    std::fs::OpenOptions::new().write(true).open(&segment_path).unwrap().set_len(offset + size / 2).unwrap();

    let (store, ledger, recovery) = Store::open(&dir, &genesis(), config()).unwrap();
    assert_eq!(recovery.height, 8);
    assert_eq!(recovery.state_root, root_at_8);
    assert_eq!(ledger.state_root(), root_at_8);
    assert_eq!(recovery.torn_bytes_dropped, size / 2);
    assert_eq!(recovery.torn, vec![TornTail { file: segment_path.clone(), offset, size: size / 2 }]);
    assert_eq!(std::fs::metadata(&segment_path).unwrap().len(), offset);
    drop(store);
    let (_, _, again) = Store::open(&dir, &genesis(), config()).unwrap();
    assert_eq!((again.height, again.torn_bytes_dropped), (8, 0));
    remove(&dir);
}

/// Temporaries a crash left before their rename are removed at the next start, each store
/// file's (`state-index.tmp` was left out and stayed for good); other files are kept.
#[test]
fn temporaries_left_by_a_crash_are_removed_at_the_next_start() {
    let (dir, _, _) = store_of("temporaries", 2);
    for name in ["state-index.tmp", "state.tmp", "index.tmp", "notes.tmp"] {
        std::fs::write(dir.join(name), b"partial").unwrap();
    }
    drop(Store::open(&dir, &genesis(), config()).unwrap());
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|entry| entry.unwrap().file_name().into_string().ok())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert_eq!(left, ["notes.tmp"], "not the store's own: kept");
    remove(&dir);
}

/// A FIFO in place of a store file, or of the directory, is refused with an error: opening one
/// to read waited forever for a writer, and the node hung at its start (found in review).
#[test]
fn a_fifo_in_place_of_a_file_is_refused_not_waited_on() {
    let (dir, _, _) = store_of("fifo", 3);
    let opened = |path: PathBuf| {
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ =
                done.send(Store::open(&path, &genesis(), config()).map(|_| ()).map_err(|e| e.to_string()));
        });
        result.recv_timeout(std::time::Duration::from_secs(20)).expect("the open returned, not hung")
    };
    let fifo = |path: &Path| {
        let made = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo runs");
        assert!(made.success(), "mkfifo {}", path.display());
    };
    let index = dir.join("index");
    std::fs::remove_file(&index).unwrap();
    fifo(&index);
    let error = opened(dir.clone()).unwrap_err();
    assert!(error.contains("index") && error.contains("not a regular file"), "{error}");
    // A safety slot, opened to read and write, opens at once but failed every save after.
    std::fs::remove_file(&index).unwrap();
    let (restored, _, _) = store_of("fifo-restored", 3);
    std::fs::copy(restored.join("index"), &index).unwrap();
    remove(&restored);
    let slot = dir.join(super::safety::SAFETY_FILES[0]);
    std::fs::remove_file(&slot).unwrap();
    fifo(&slot);
    let error = opened(dir.clone()).unwrap_err();
    assert!(error.contains("safety-0") && error.contains("not a regular file"), "{error}");
    let lone = scratch("fifo-dir");
    fifo(&lone);
    assert!(opened(lone.clone()).is_err());
    let _ = std::fs::remove_file(&lone);
    remove(&dir);
}

#[test]
fn corruption_refuses_to_start_naming_file_and_offset_and_writes_nothing() {
    let (dir, _, _) = store_of("corrupt", 12);
    let segment = dir.join(segment_file_name(1));
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = FILE_HEADER_SIZE + 60;
    bytes[at] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    let before = files(&dir);
    let error = Store::open(&dir, &genesis(), config()).unwrap_err();
    match &error {
        StoreError::Corrupt { file, offset, .. } => {
            assert_eq!(file, &segment);
            assert_eq!(*offset, FILE_HEADER_SIZE as u64);
        }
        other => panic!("expected corruption, got {other}"),
    }
    let text = error.to_string();
    assert!(text.contains("segment-00000001") && text.contains("byte offset 64"), "{text}");
    assert_eq!(files(&dir), before);
    remove(&dir);
}

#[test]
fn a_replay_that_disagrees_with_the_recorded_root_is_refused() {
    // A block whose recorded state root is wrong, with valid checksums: only replay sees it.
    let dir = scratch("replay");
    let (mut store, mut ledger, _) = Store::open(&dir, &genesis(), config()).unwrap();
    commit_to(&mut store, &mut ledger, 5);
    let (mut block, _) = drill::next_block(&mut ledger, store.tip_hash(), 6, SENDERS, 3);
    block.header.state_root = Hash([1; 32]);
    let certificate = QuorumCertificate {
        kind: tessera_components::VoteKind::Commit,
        view: 6,
        height: 6,
        block: block.header.hash(),
        signers: vec![],
        signatures: vec![],
    };
    store.commit(&block, &certificate, &ledger).unwrap();
    drop(store);
    let error = Store::open(&dir, &genesis(), config()).unwrap_err();
    assert!(matches!(error, StoreError::StateMismatch { height: 6, .. }), "{error}");
    remove(&dir);
}

#[test]
fn an_interrupted_creation_is_finished_but_a_store_without_genesis_is_refused() {
    let dir = scratch("create");
    let (store, _, _) = Store::open(&dir, &genesis(), config()).unwrap();
    drop(store);
    // Creation writes genesis last: without it, the pristine rest is overwritten.
    std::fs::remove_file(dir.join(GENESIS_FILE)).unwrap();
    std::fs::write(dir.join("state.tmp"), b"partial").unwrap();
    let (_, _, recovery) = Store::open(&dir, &genesis(), config()).unwrap();
    assert!(recovery.created);
    assert!(!dir.join("state.tmp").exists());
    remove(&dir);

    let (dir, _, _) = store_of("create-refuse", 3);
    std::fs::remove_file(dir.join(GENESIS_FILE)).unwrap();
    let before = files(&dir);
    let error = Store::open(&dir, &genesis(), config()).unwrap_err();
    assert!(matches!(&error, StoreError::Corrupt { file, .. } if file.ends_with(GENESIS_FILE)), "{error}");
    assert_eq!(files(&dir), before);
    remove(&dir);
}

#[test]
fn bad_configuration_is_refused() {
    let dir = scratch("config");
    let zero = StoreConfig { state_interval_blocks: 0, ..config() };
    assert!(matches!(Store::open(&dir, &genesis(), zero), Err(StoreError::Config(_))));
    let tiny = StoreConfig { segment_size_max: 10, ..config() };
    assert!(matches!(Store::open(&dir, &genesis(), tiny), Err(StoreError::Config(_))));
    assert!(!dir.exists(), "nothing is created for a refused configuration");
}

/// More accounts than one record holds (~5.6 M at 48 bytes each): every validator's snapshot
/// write used to fail at the same height, and the nodes exited and crash-looped. Now the state
/// file takes as many records as it needs, and a reopen reads it back to the same root.
#[test]
fn a_state_past_one_record_is_snapshotted_and_reopened() {
    use tessera_components::storage::{RECORD_PAYLOAD_MAX, STATE_ROW_SIZE};
    let dir = scratch("huge-state");
    let mut genesis = genesis();
    let extra = RECORD_PAYLOAD_MAX / STATE_ROW_SIZE + 1 - genesis.len();
    genesis.extend((0..extra as u64).map(|i| {
        let mut key = [0xaa; 32];
        key[..8].copy_from_slice(&i.to_le_bytes());
        (key, 1)
    }));
    let (mut store, mut ledger, _) = Store::open(&dir, &genesis, config()).unwrap();
    commit_to(&mut store, &mut ledger, 4);
    assert_eq!(store.state_height(), 4, "the snapshot at height 4 was written");
    let (root, accounts) = (ledger.state_root(), ledger.len());
    assert!(accounts * STATE_ROW_SIZE > RECORD_PAYLOAD_MAX);
    drop((store, ledger));
    let (store, reopened, recovery) = Store::open(&dir, &genesis, config()).unwrap();
    assert_eq!((store.height(), reopened.state_root(), reopened.len()), (4, root, accounts));
    assert_eq!(recovery.replayed, 0, "restarted from the snapshot, not a replay");
    drop((store, reopened));
    remove(&dir);
}

/// The snapshot's address order is kept beside it and mapped on reopen. One that is missing,
/// damaged, names another snapshot, or checks but is not each slot once or orders the
/// addresses otherwise is not used: the index is built from the snapshot's addresses instead,
/// and the state is the same.
#[test]
fn the_address_index_is_mapped_on_reopen_and_a_bad_one_is_built_again() {
    use tessera_components::storage::{
        STATE_INDEX_WORDS_OFFSET, StateIndexMeta, decode_state_index, encode_state_index_head, genesis_id_of,
    };
    let id = genesis_id_of(&genesis());
    let sealed = |meta: &StateIndexMeta, words: &[u32]| {
        let mut bytes = encode_state_index_head(id, meta, words);
        bytes.extend(words.iter().flat_map(|word| word.to_le_bytes()));
        bytes
    };
    // Each case: the stored index as the store wrote it, changed or not.
    type Change = fn(&StateIndexMeta, &mut Vec<u32>, &mut Vec<u8>) -> Option<StateIndexMeta>;
    let cases: [(&str, Change, &str); 7] = [
        ("kept", |_, _, _| None, ""),
        (
            "missing",
            |_, _, file| {
                file.clear();
                None
            },
            "state-index",
        ),
        (
            "damaged",
            |_, _, file| {
                *file.last_mut().unwrap() ^= 1;
                None
            },
            "checksum",
        ),
        (
            "another snapshot's",
            |meta, _, _| Some(StateIndexMeta { height: meta.height + 4, ..*meta }),
            "at height",
        ),
        (
            // A head naming another count, over words its checksum does not cover: the count
            // is refused first, before any pass over the words (a sparse file of terabytes).
            "another count, its words unchecked",
            |meta, _, file| {
                let count = meta.count + 1;
                file[104..112].copy_from_slice(&count.to_le_bytes());
                file.extend_from_slice(&[0; 4]);
                let head = tessera_components::storage::checksum(&file[64..116]);
                file[116..120].copy_from_slice(&head.to_le_bytes());
                None
            },
            "the snapshot holds",
        ),
        (
            "checked but a slot twice",
            |meta, words, _| {
                words[0] = words[1];
                Some(*meta)
            },
            "each of its",
        ),
        (
            "checked but misordered",
            |meta, words, _| {
                words.swap(0, 1);
                Some(*meta)
            },
            "another state root",
        ),
    ];
    for (case, change, why) in cases {
        let (dir, _, root) = store_of("address-index", 23);
        let mut file = read(&dir, STATE_INDEX_FILE);
        let meta = decode_state_index(&file, id).unwrap();
        let mut words: Vec<u32> = file[STATE_INDEX_WORDS_OFFSET..]
            .chunks_exact(4)
            .map(|word| u32::from_le_bytes(word.try_into().unwrap()))
            .collect();
        assert_eq!(sealed(&meta, &words), file, "the test seals a file as the store does");
        if let Some(meta) = change(&meta, &mut words, &mut file) {
            file = sealed(&meta, &words);
        }
        match file.is_empty() {
            true => std::fs::remove_file(dir.join(STATE_INDEX_FILE)).unwrap(),
            false => std::fs::write(dir.join(STATE_INDEX_FILE), &file).unwrap(),
        }
        let (mut store, mut ledger, recovery) = Store::open(&dir, &genesis(), config()).unwrap();
        // A stored order that is not used never costs the one-at-a-time path: the log is
        // applied at once with the addresses sorted instead.
        assert!(
            !matches!(recovery.log_applied, LogApplied::OneAtATime(_)),
            "{case}: {}",
            recovery.log_applied
        );
        match &recovery.address_index {
            AddressIndexSource::Mapped => assert_eq!(case, "kept"),
            AddressIndexSource::Built(reason) => {
                assert_ne!(case, "kept", "{reason}");
                assert!(reason.contains(why), "{case}: {reason}");
            }
        }
        assert_eq!((ledger.state_root(), ledger.state_root_from_scratch()), (root, root), "{case}");
        // The store goes on from either index, and reopens again.
        commit_to(&mut store, &mut ledger, 27);
        assert_eq!(ledger.state_root(), ledger.state_root_from_scratch(), "{case}");
        let root = ledger.state_root();
        drop((store, ledger));
        let (_, reopened, _) = Store::open(&dir, &genesis(), config()).unwrap();
        assert_eq!(reopened.state_root(), root, "{case}");
        drop(reopened);
        remove(&dir);
    }
}

/// At height 0 no block records the snapshot's root, so that root cannot vouch for a stored
/// order: a `state` file and a `state-index` that agree on a misordered order (the root of a
/// ledger built on it) are refused, not served as the genesis state with wrong successors.
#[test]
fn a_stored_order_is_not_vouched_for_by_the_genesis_snapshot_alone() {
    use tessera_components::storage::{StateView, genesis_id_of, write_state_file};
    use tessera_systems::ledger::index::Base;
    let (dir, _, root) = store_of("order-at-genesis", 0);
    let (store, ledger, recovery) = Store::open(&dir, &genesis(), config()).unwrap();
    assert_eq!(recovery.state_height, 0);
    drop(store);
    let reversed: Vec<u32> = ledger.address_order().iter().rev().copied().collect();
    let base = Base::from_order(ledger.keys(), reversed).unwrap();
    let forged = Ledger::from_parts_indexed(ledger.to_parts(), Some(base)).unwrap();
    assert_ne!(forged.state_root(), root, "another order, another root");
    let id = genesis_id_of(&genesis());
    let view = StateView {
        height: 0,
        state_root: forged.state_root(),
        keys: forged.keys(),
        accounts: forged.accounts(),
        burned: forged.burned(),
        supply: forged.supply(),
    };
    let mut state = Vec::new();
    write_state_file(id, view, |bytes| {
        state.extend_from_slice(bytes);
        Ok::<(), std::io::Error>(())
    })
    .unwrap();
    std::fs::write(dir.join(STATE_FILE), state).unwrap();
    let mut index = Vec::new();
    write_address_index_to(&mut index, id, 0, forged.state_root(), &forged).unwrap();
    std::fs::write(dir.join(STATE_INDEX_FILE), index).unwrap();
    match Store::open(&dir, &genesis(), config()) {
        Ok((_, reopened, recovery)) => {
            panic!("opened at root {} ({})", reopened.state_root(), recovery.address_index)
        }
        Err(error) => assert!(error.to_string().contains("recorded state root"), "{error}"),
    }
    remove(&dir);
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap()
}

/// At each snapshot point the accounts the blocks since the last one touched are appended to
/// the state log; the state file is rewritten (and the log emptied) only when the log would
/// outgrow it. A reopen applies the deltas and replays only the blocks after the last one,
/// and a replay from genesis agrees with every delta.
#[test]
fn state_deltas_are_appended_applied_on_reopen_and_folded_into_new_snapshots() {
    let dir = scratch("deltas");
    let (mut store, mut ledger, _) = Store::open(&dir, &genesis(), config()).unwrap();
    let (mut appended, mut rewritten) = (0, 0);
    let mut state = read(&dir, STATE_FILE);
    let mut log_len = read(&dir, STATE_LOG_FILE).len();
    let mut height = 0;
    // Until both kinds of write were seen, and the last one was a delta.
    while appended < 6 || rewritten < 2 || log_len == FILE_HEADER_SIZE {
        height += 4;
        assert!(height <= 400, "{appended} deltas, {rewritten} snapshots by height {height}");
        commit_to(&mut store, &mut ledger, height);
        let (now_state, now_log) = (read(&dir, STATE_FILE), read(&dir, STATE_LOG_FILE));
        if now_state == state {
            assert!(now_log.len() > log_len, "height {height}: neither file written");
            appended += 1;
        } else {
            assert_eq!(now_log.len(), FILE_HEADER_SIZE, "height {height}: a new snapshot empties the log");
            rewritten += 1;
        }
        // The log never holds more than the snapshot (or the small allowance) does.
        assert!(now_log.len() as u64 <= (now_state.len() as u64).max(4096), "height {height}");
        (state, log_len) = (now_state, now_log.len());
        assert_eq!(store.state_height(), height);
    }
    commit_to(&mut store, &mut ledger, height + 3);
    drop(store);
    let (store, reopened, recovery) = Store::open(&dir, &genesis(), config()).unwrap();
    assert_eq!(reopened.state_root(), ledger.state_root());
    assert_eq!((store.height(), recovery.state_height, recovery.replayed), (height + 3, height, 3));
    let log =
        tessera_components::storage::decode_state_log(&read(&dir, STATE_LOG_FILE), store.genesis_id, height)
            .unwrap();
    assert_eq!(recovery.deltas, log.deltas.len() as u64);
    assert!(recovery.deltas > 0, "the last state write was a delta");
    drop(store);
    let lock = DirLock::new(&dir, LockMode::Shared).unwrap();
    let verified = verify(&lock).unwrap();
    let from_genesis = rebuild(&lock, &verified, &mut SegmentReader::default(), Replay::FromGenesis).unwrap();
    assert_eq!((from_genesis.ledger.state_root(), from_genesis.replayed), (ledger.state_root(), height + 3));
    drop(lock);
    remove(&dir);
}

/// Replacing the snapshot writes the new state file, then the empty log. A crash between the
/// two, or (without syncs) one swap surviving and not the other, leaves a log of deltas made
/// over another snapshot: they are skipped, never applied to the wrong state, and the blocks
/// after the snapshot are replayed instead.
#[test]
fn deltas_made_over_another_snapshot_are_skipped() {
    let dir = scratch("delta-base");
    let (mut store, mut ledger, _) = Store::open(&dir, &genesis(), config()).unwrap();
    // Run until a snapshot point rewrites the state file with deltas in the log before it.
    let mut previous = (read(&dir, STATE_FILE), read(&dir, STATE_LOG_FILE));
    let (old, new) = loop {
        let height = store.height() + 4;
        commit_to(&mut store, &mut ledger, height);
        let now = (read(&dir, STATE_FILE), read(&dir, STATE_LOG_FILE));
        if now.0 != previous.0 && previous.1.len() > FILE_HEADER_SIZE {
            break (previous, now);
        }
        previous = now;
        assert!(height < 400, "no snapshot after deltas");
    };
    // Two more deltas over the new snapshot.
    let height = store.height();
    commit_to(&mut store, &mut ledger, height + 9);
    let newer_log = read(&dir, STATE_LOG_FILE);
    assert!(newer_log.len() > new.1.len());
    drop(store);
    for (case, state, log) in
        [("new snapshot, old log", &new.0, &old.1), ("old snapshot, new log", &old.0, &newer_log)]
    {
        std::fs::write(dir.join(STATE_FILE), state).unwrap();
        std::fs::write(dir.join(STATE_LOG_FILE), log).unwrap();
        let (store, reopened, recovery) = Store::open(&dir, &genesis(), config()).unwrap();
        assert_eq!(reopened.state_root(), ledger.state_root(), "{case}");
        assert_eq!(recovery.deltas, 0, "{case}");
        assert_eq!(
            read(&dir, STATE_LOG_FILE).len(),
            FILE_HEADER_SIZE,
            "{case}: the unused deltas are emptied out"
        );
        assert_eq!(recovery.replayed, height + 9 - recovery.state_height, "{case}");
        drop(store);
    }
    remove(&dir);
}

/// A damaged delta record ends the log there: it and what follows are dropped as a tail
/// (reported), and the blocks it covered are replayed.
#[test]
fn a_damaged_delta_is_dropped_and_its_blocks_replayed() {
    let dir = scratch("delta-damage");
    let (mut store, mut ledger, _) = Store::open(&dir, &genesis(), config()).unwrap();
    while read(&dir, STATE_LOG_FILE).len() < 2 * FILE_HEADER_SIZE + 200 {
        let height = store.height() + 4;
        commit_to(&mut store, &mut ledger, height);
    }
    let height = store.height();
    drop(store);
    let mut log = read(&dir, STATE_LOG_FILE);
    let at = log.len() - 3;
    log[at] ^= 0x40;
    std::fs::write(dir.join(STATE_LOG_FILE), &log).unwrap();
    let (store, reopened, recovery) = Store::open(&dir, &genesis(), config()).unwrap();
    assert_eq!(reopened.state_root(), ledger.state_root());
    let tail = recovery.torn.iter().find(|tail| tail.file.ends_with(STATE_LOG_FILE)).expect("the log's tail");
    assert_eq!(tail.offset + tail.size, log.len() as u64);
    assert!(recovery.state_height < height && recovery.replayed >= 4);
    assert_eq!(read(&dir, STATE_LOG_FILE).len() as u64, tail.offset, "cut where the damage starts");
    drop(store);
    remove(&dir);
}

/// The state is offered only with the last block of a batch. Written at multiples of the
/// interval, batches of three with an interval of four wrote it only every twelfth height; it is
/// now written once the interval has passed since the last write, whatever the batching.
#[test]
fn the_state_is_written_every_interval_whatever_the_batching() {
    let dir = scratch("batches");
    let (mut store, mut ledger, _) = Store::open(&dir, &genesis(), config()).unwrap();
    let mut written = Vec::new();
    for _ in 0..8 {
        let mut blocks = Vec::new();
        let mut tip = store.tip_hash();
        for offset in 1..=3 {
            let height = store.height() + offset;
            let (block, certificate) = drill::next_block(&mut ledger, tip, height, SENDERS, 3);
            tip = block.header.hash();
            blocks.push(CertifiedBlock { block, certificate });
        }
        let (committed, result) = store.commit_finalized(&blocks, &ledger);
        assert_eq!((committed, result.is_ok()), (3, true));
        written.push(store.state_height());
    }
    // Batches end at 3, 6, 9, …: a write at the first batch end at least 4 past the last write.
    assert_eq!(written, [0, 6, 6, 12, 12, 18, 18, 24]);
    remove(&dir);
}

/// A store whose state log holds at least `count` deltas over its snapshot, closed: its
/// directory, its genesis id, and the log decoded.
fn store_with_deltas(name: &str, count: usize) -> (PathBuf, Hash, tessera_components::storage::StateLog) {
    let (dir, id, log, _) = store_with_log(name, |log| log.deltas.len() >= count);
    (dir, id, log)
}

/// A store closed once its state log is `enough`: its directory, its genesis id, the log
/// decoded, and the ledger it ran with.
fn store_with_log(
    name: &str,
    enough: impl Fn(&tessera_components::storage::StateLog) -> bool,
) -> (PathBuf, Hash, tessera_components::storage::StateLog, Ledger) {
    let dir = scratch(name);
    let (mut store, mut ledger, _) = Store::open(&dir, &genesis(), config()).unwrap();
    loop {
        let height = store.height() + 4;
        assert!(height <= 400, "no log as wanted by height {height}");
        commit_to(&mut store, &mut ledger, height);
        let log = tessera_components::storage::decode_state_log(
            &read(&dir, STATE_LOG_FILE),
            store.genesis_id,
            height,
        )
        .unwrap();
        if enough(&log) {
            let id = store.genesis_id;
            drop(store);
            return (dir, id, log, ledger);
        }
    }
}

/// The log re-encoded from `deltas`, each record sealed: damage that only the roots reveal.
fn log_file_of(id: Hash, deltas: &[tessera_components::storage::StateDelta]) -> Vec<u8> {
    let mut file = tessera_components::storage::encode_state_log_header(id).to_vec();
    for delta in deltas {
        let record = tessera_components::storage::encode_delta_record(file.len() as u64, delta).unwrap();
        file.extend_from_slice(&record);
    }
    file
}

/// A sealed delta whose root the chain contradicts is named by its own record's offset (every
/// such error used to name the log's first record), and the refusal writes nothing: not even
/// the log's torn tail, which a sound directory would have had cut.
#[test]
fn a_delta_the_chain_contradicts_is_named_at_its_record_and_nothing_is_written() {
    let (dir, id, log) = store_with_deltas("delta-root", 3);
    let mut deltas = log.deltas.clone();
    deltas[1].state_root = Hash([7; 32]);
    // And a torn write after the last delta, which a sound directory would have had cut.
    let mut file = log_file_of(id, &deltas);
    file.extend_from_slice(&[0xa5; 100]);
    std::fs::write(dir.join(STATE_LOG_FILE), &file).unwrap();
    let before = files(&dir);
    let error = Store::open(&dir, &genesis(), config()).unwrap_err();
    match &error {
        StoreError::Corrupt { file, offset, reason } => {
            assert!(file.ends_with(STATE_LOG_FILE), "{error}");
            assert_eq!(*offset, log.offsets[1], "{error}");
            assert!(reason.contains(&format!("height {}", deltas[1].height)), "{error}");
        }
        other => panic!("expected a corrupt log, got {other}"),
    }
    assert_eq!(files(&dir), before, "a refused open leaves every file as it was");
    remove(&dir);
}

/// A log that mixes deltas over the snapshot with one over another state is no state the
/// store writes. Emptying it as stale (what a reopen did) dropped deltas that were applied:
/// it is refused, at the stranger's record.
#[test]
fn a_log_mixing_deltas_over_two_snapshots_is_refused_not_emptied() {
    let (dir, id, log) = store_with_deltas("delta-mix", 2);
    let mut deltas = log.deltas.clone();
    let last = deltas.len() - 1;
    deltas[last].base_height += 1;
    std::fs::write(dir.join(STATE_LOG_FILE), log_file_of(id, &deltas)).unwrap();
    let before = files(&dir);
    let error = Store::open(&dir, &genesis(), config()).unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { file, offset, .. }
            if file.ends_with(STATE_LOG_FILE) && *offset == log.offsets[last]),
        "{error}"
    );
    assert_eq!(files(&dir), before);
    remove(&dir);
}

/// A restart applies the state log's deltas at once (their rows folded into the snapshot's
/// columns, the stored order merged with the accounts they create, one tree), and reaches the
/// state the running store had: every account, the order, the root.
#[test]
fn a_restart_applies_the_state_log_at_once_and_reaches_the_running_state() {
    // Deltas that create accounts over the genesis snapshot (whose stored order only the last
    // delta's block can vouch for), then over a later one.
    for genesis_snapshot in [true, false] {
        let name = format!("log-at-once-{genesis_snapshot}");
        let (dir, _, log, ledger) = store_with_log(&name, |log| {
            let creates = log.deltas.windows(2).any(|pair| pair[1].count > pair[0].count);
            log.deltas.len() >= 3 && (log.deltas[0].base_height == 0) == genesis_snapshot && creates
        });
        reopen_at_once(&dir, &log, &ledger);
    }
}

/// Reopens `dir` and checks that its `log` was applied at once and gave `ledger`.
fn reopen_at_once(dir: &Path, log: &tessera_components::storage::StateLog, ledger: &Ledger) {
    let (_, reopened, recovery) = Store::open(dir, &genesis(), config()).unwrap();
    assert_eq!(recovery.log_applied, LogApplied::AtOnce);
    assert_eq!(recovery.address_index, AddressIndexSource::Mapped);
    assert_eq!(recovery.deltas, log.deltas.len() as u64);
    assert_eq!(
        (reopened.state_root(), reopened.state_root_from_scratch()),
        (ledger.state_root(), ledger.state_root())
    );
    assert_eq!((reopened.keys(), reopened.accounts()), (ledger.keys(), ledger.accounts()));
    assert_eq!(reopened.address_order(), ledger.address_order());
    remove(dir);
}

/// A sealed delta whose rows give another state than the chain records, though it records
/// the chain's root: applied at once, the log gives another root; applied again a delta at a
/// time, the error names that delta's record. Likewise a delta that creates an account at an
/// address that has one, which the merge of the order finds.
#[test]
fn a_log_the_chain_contradicts_at_once_is_named_at_its_record_one_delta_at_a_time() {
    let (dir, id, log) = store_with_deltas("log-rows", 3);
    let last = log.deltas.len() - 1;
    let created = |delta: &tessera_components::storage::StateDelta| {
        delta.rows.iter().position(|row| row.slot >= log.deltas[last - 1].count)
    };
    let first_created = created(&log.deltas[last]).expect("the last delta creates an account");
    let spoilt: [(&str, &dyn Fn(&mut tessera_components::storage::StateDelta)); 2] = [
        // The supply still adds up: only the root tells.
        ("its rows give state root", &|delta| delta.rows[0].account.nonce += 1),
        ("names an address that has an account", &|delta| {
            delta.rows[first_created].address = log.deltas[0].rows[0].address;
        }),
    ];
    for (reason, spoil) in spoilt {
        let mut deltas = log.deltas.clone();
        spoil(&mut deltas[last]);
        std::fs::write(dir.join(STATE_LOG_FILE), log_file_of(id, &deltas)).unwrap();
        let before = files(&dir);
        match Store::open(&dir, &genesis(), config()).unwrap_err() {
            StoreError::Corrupt { file, offset, reason: said } => {
                assert!(file.ends_with(STATE_LOG_FILE), "{said}");
                assert_eq!(offset, log.offsets[last], "{said}");
                assert!(said.contains(reason), "{said}");
            }
            other => panic!("expected a corrupt log, got {other}"),
        }
        assert_eq!(files(&dir), before, "a refused open leaves every file as it was");
    }
    remove(&dir);
}

/// A stored order that checks (each slot once) but is misordered, under a log of deltas: the
/// log is applied at once with the addresses sorted instead, and the state is the running
/// store's. (It fell to the one-at-a-time path, about 10 µs an account created.)
#[test]
fn a_misordered_stored_order_under_a_log_is_sorted_again_not_applied_a_delta_at_a_time() {
    use tessera_components::storage::{
        STATE_INDEX_WORDS_OFFSET, decode_state_index, encode_state_index_head,
    };
    let (dir, id, log, ledger) = store_with_log("misordered-log", |log| {
        let creates = log.deltas.windows(2).any(|pair| pair[1].count > pair[0].count);
        log.deltas.len() >= 2 && log.deltas[0].base_height > 0 && creates
    });
    let file = read(&dir, STATE_INDEX_FILE);
    let meta = decode_state_index(&file, id).unwrap();
    let mut words: Vec<u32> = file[STATE_INDEX_WORDS_OFFSET..]
        .chunks_exact(4)
        .map(|word| u32::from_le_bytes(word.try_into().unwrap()))
        .collect();
    words.swap(0, 1);
    let mut sealed = encode_state_index_head(id, &meta, &words);
    sealed.extend(words.iter().flat_map(|word| word.to_le_bytes()));
    std::fs::write(dir.join(STATE_INDEX_FILE), sealed).unwrap();
    let (_, reopened, recovery) = Store::open(&dir, &genesis(), config()).unwrap();
    assert_eq!(recovery.log_applied, LogApplied::AtOnce);
    assert_eq!(recovery.deltas, log.deltas.len() as u64);
    match &recovery.address_index {
        AddressIndexSource::Built(why) => assert!(why.contains("another state root"), "{why}"),
        other => panic!("a misordered order was used: {other}"),
    }
    assert_eq!(
        (reopened.state_root(), reopened.address_order()),
        (ledger.state_root(), ledger.address_order())
    );
    remove(&dir);
}

/// A segment cut short under a running store (by another process, as a disk's read error
/// would look) fails the read of a block past the cut with its file and offset, and the blocks
/// before it still read. Through a map, the read raised `SIGBUS` and killed the process: this
/// test's binary died on the first read past the cut.
#[test]
fn a_segment_cut_short_under_the_store_fails_the_read_not_the_process() {
    // One segment of several pages: bytes past the end of a file but within its last page
    // read as zeros through a map; the pages after it fault.
    let config = StoreConfig { segment_size_max: 1 << 20, ..config() };
    let dir = scratch("cut-under");
    let (mut store, mut ledger, _) = Store::open(&dir, &genesis(), config.clone()).unwrap();
    let blocks = commit_to(&mut store, &mut ledger, 60);
    drop(store);
    let (store, _, _) = Store::open(&dir, &genesis(), config).unwrap();
    assert!(std::fs::metadata(dir.join(segment_file_name(0))).unwrap().len() > 4 * 4096, "pages to cut");
    let last = blocks.len() as u64;
    // Read every block once first, so that a reader that keeps maps has one of each segment.
    for (height, committed) in (1..=last).zip(&blocks) {
        assert_eq!(store.block(height).unwrap().as_ref(), Some(committed));
    }
    let segment = dir.join(segment_file_name(0));
    // At a page's end: through a map, the first byte past it faults.
    let kept = 4096;
    std::fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(kept).unwrap();
    let mut failed = 0;
    for (height, committed) in (1..=last).zip(&blocks) {
        match store.block(height) {
            Ok(block) => assert_eq!(block.as_ref(), Some(committed), "height {height}"),
            Err(StoreError::Corrupt { file, offset, reason }) => {
                assert_eq!(file, segment, "height {height}");
                assert!(reason.contains("the file ends before"), "height {height} at {offset}: {reason}");
                failed += 1;
            }
            Err(other) => panic!("height {height}: {other}"),
        }
    }
    assert!(failed > 0, "some block lay past the cut");
    drop(store);
    remove(&dir);
}

/// Reading every block of a chain of many segments keeps at most `SEGMENTS_OPEN_MAX`
/// descriptors open, and reads each block right when its segment's descriptor had been closed:
/// one per segment, kept for the process's life, took the descriptors of a node whose chain
/// had thousands of segments.
#[test]
fn the_block_reader_keeps_a_bounded_number_of_segments_open() {
    let (dir, blocks, _) = store_of("many-segments", 300);
    let (store, _, _) = Store::open(&dir, &genesis(), config()).unwrap();
    let segments = super::verify::segment_numbers(&store.lock).unwrap().len();
    assert!(segments > super::verify::SEGMENTS_OPEN_MAX + 8, "{segments} segments");
    for _ in 0..2 {
        for (height, committed) in (1..=blocks.len() as u64).zip(&blocks) {
            assert_eq!(store.block(height).unwrap().as_ref(), Some(committed));
            let open = store.reader.lock().unwrap().files_open();
            assert!(open <= super::verify::SEGMENTS_OPEN_MAX, "{open} open at height {height}");
        }
    }
    drop(store);
    remove(&dir);
}
