//! Heap allocations on the verification path, counted by dhat as this binary's allocator.

use tessera_systems::kernels::sigverify::{VerifyItem, verify_many};
use tessera_systems::workload::{TransferSpec, transfers};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Most allocations one verification chunk may make (its scalar and point vectors).
const PER_CHUNK_MAX: u64 = 16;

#[test]
fn verification_allocates_per_chunk_not_per_transaction() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let workload = transfers(TransferSpec {
        seed: 3,
        chain_id: 1,
        senders: 512,
        per_sender: 8,
        balance: 1 << 40,
        fee_min: 1,
    });
    let items: Vec<VerifyItem<'_>> = workload.txns.iter().map(VerifyItem::of_txn).collect();
    let batch = 128;
    let mut verdicts = vec![false; items.len()];
    // Warm up: the thread pool and lazily built tables allocate once.
    verify_many(&items[..batch * 2], &mut verdicts[..batch * 2], batch);
    let mut allocations = |n: usize| {
        let before = dhat::HeapStats::get().total_blocks;
        verify_many(&items[..n], &mut verdicts[..n], batch);
        assert!(verdicts[..n].iter().all(|ok| *ok), "workload signatures verify");
        dhat::HeapStats::get().total_blocks - before
    };
    let small = allocations(1024);
    let large = allocations(4096);
    let extra_chunks = ((4096 - 1024) / batch) as u64;
    let per_txn = large.saturating_sub(small) as f64 / 3072.0;
    println!("allocations: {small} for 1024 signatures, {large} for 4096; {per_txn:.4} per signature");
    assert!(
        large.saturating_sub(small) <= extra_chunks * PER_CHUNK_MAX,
        "{} more allocations for {extra_chunks} more chunks: allocation grows with transactions, not chunks",
        large.saturating_sub(small)
    );
}
