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
    short.txns.pop();
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
