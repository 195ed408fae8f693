//! Criterion benchmarks, one group per subsystem, each on seeded warm state and each checking
//! its answer: `cargo bench --bench subsystems [-- GROUP]`.
//!
//! Wall-clock figures on a shared machine wander; the budget gate (`tessera bench --check`)
//! relies on ratios and instruction counts instead. These are for comparing one change with
//! the last on the same machine (Criterion keeps the previous run in target/criterion).

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tessera_components::wire::{Frame, decode, encode};
use tessera_components::{
    Block, ChainTag, ConsensusMessage, Hash, Txn, TxnId, Vote, VoteKind, vote_signing_bytes,
};
use tessera_systems::consensus::core::{ValidatorSet, verify_messages};
use tessera_systems::execute::execute_block;
use tessera_systems::kernels::prefilter::{
    PrefilterColumns, PrefilterParams, PrefilterRow, check_scalar, check_simd,
};
use tessera_systems::kernels::sigverify::{VerifyItem, verify_many};
use tessera_systems::workload::{TransferSpec, Transfers, signing_key, transfers};
use tessera_systems::{Ledger, Pipeline, PipelineConfig};

fn workload(count: u64) -> Transfers {
    transfers(TransferSpec {
        seed: 7,
        chain_id: 1,
        senders: count.div_ceil(8),
        per_sender: 8,
        balance: 1 << 40,
        fee_min: 1,
    })
}

mod sigverify {
    use super::*;

    pub fn bench(c: &mut Criterion) {
        let w = workload(1024);
        let items: Vec<VerifyItem<'_>> = w.txns.iter().map(VerifyItem::of_txn).collect();
        let mut group = c.benchmark_group("sigverify");
        group.throughput(Throughput::Elements(items.len() as u64));
        group.bench_function("verify_many_1024_batch128", |b| {
            let mut verdicts = vec![false; items.len()];
            b.iter(|| {
                verify_many(&items, &mut verdicts, 128);
                assert!(verdicts.iter().all(|ok| *ok));
            });
        });
        group.finish();
    }
}

mod prefilter {
    use super::*;

    pub fn bench(c: &mut Criterion) {
        let mut columns = PrefilterColumns::default();
        for i in 0..4096u64 {
            columns.push(PrefilterRow {
                chain_id: 1,
                reserved: 0,
                fee: 1 + i % 7,
                amount: 1 + i,
                self_transfer: u64::from(i % 97 == 0),
                nonce: i % 5,
                account_nonce: i % 3,
            });
        }
        let params = PrefilterParams { chain_id: 1, fee_floor: 2, nonce_window: 4 };
        let mut expected = vec![0u8; 4096];
        check_scalar(&columns, &params, &mut expected);
        let mut group = c.benchmark_group("prefilter");
        group.throughput(Throughput::Elements(4096));
        for (name, simd) in [("simd_4096", true), ("scalar_4096", false)] {
            group.bench_function(name, |b| {
                let mut codes = vec![0u8; 4096];
                b.iter(|| {
                    if simd {
                        check_simd(&columns, &params, &mut codes);
                    } else {
                        check_scalar(&columns, &params, &mut codes);
                    }
                    assert_eq!(codes, expected);
                });
            });
        }
        group.finish();
    }
}

mod mempool {
    use super::*;

    /// Admission of 2048 transfers into a fresh pipeline: ingest, prefilter, sigverify, dedup
    /// and mempool (and whatever propose and execute then do with them).
    pub fn bench(c: &mut Criterion) {
        let w = workload(2048);
        let config = PipelineConfig { sigverify_overlap: false, ..PipelineConfig::default() };
        let mut group = c.benchmark_group("mempool");
        group.throughput(Throughput::Elements(w.txns.len() as u64));
        group.bench_function("admit_2048", |b| {
            b.iter_batched(
                || Pipeline::new(config.clone(), Ledger::from_genesis(&w.genesis).unwrap()).unwrap(),
                |mut pipeline| {
                    for txn in &w.txns {
                        pipeline.submit(*txn);
                    }
                    let mut now = 0;
                    while !pipeline.is_idle() {
                        now += 1;
                        pipeline.tick(now);
                    }
                    assert_eq!(pipeline.counters().admitted, w.txns.len() as u64);
                },
                BatchSize::LargeInput,
            );
        });
        group.finish();
    }
}

mod consensus {
    use super::*;

    /// Batch-verifying the signatures of 64 votes (what every vote costs a validator).
    pub fn bench(c: &mut Criterion) {
        let keys: Vec<_> = (0..64).map(|i| signing_key(99, i)).collect();
        let set = ValidatorSet::new(keys.iter().map(|k| k.verifying_key().to_bytes()).collect());
        let block = Hash::of(b"block");
        let votes: Vec<(u32, ConsensusMessage)> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let signature = ed25519_dalek::Signer::sign(
                    key,
                    &vote_signing_bytes(&ChainTag::TEST, VoteKind::Prepare, 3, 2, &block),
                )
                .to_bytes();
                let vote =
                    Vote { kind: VoteKind::Prepare, view: 3, height: 2, block, voter: i as u32, signature };
                (i as u32, ConsensusMessage::Vote(vote))
            })
            .collect();
        let mut group = c.benchmark_group("consensus");
        group.throughput(Throughput::Elements(votes.len() as u64));
        group.bench_function("verify_64_votes", |b| {
            b.iter_batched(
                || votes.clone(),
                |votes| {
                    let (kept, dropped, checked) = verify_messages(votes, &set, 128, false);
                    assert_eq!((kept.len(), dropped, checked), (64, 0, 64));
                },
                BatchSize::SmallInput,
            );
        });
        group.finish();
    }
}

mod execution {
    use super::*;

    pub fn bench(c: &mut Criterion) {
        let w = workload(4096);
        let ids: Vec<TxnId> = w.txns.iter().map(Txn::id).collect();
        let block = Block { header: bytemuck::Zeroable::zeroed(), txns: w.txns.clone().into() };
        let mut group = c.benchmark_group("execution");
        group.throughput(Throughput::Elements(ids.len() as u64));
        group.bench_function("execute_block_4096", |b| {
            b.iter_batched(
                || (Ledger::from_genesis(&w.genesis).unwrap(), block.clone()),
                |(mut ledger, block)| {
                    let committed = execute_block(&mut ledger, block, &ids);
                    assert!(committed.outcomes.iter().all(|o| o.result.is_ok()));
                },
                BatchSize::LargeInput,
            );
        });
        group.finish();
    }
}

mod wire {
    use super::*;

    pub fn bench(c: &mut Criterion) {
        let w = workload(1024);
        let frame = Frame::Txns(w.txns.clone());
        let bytes = encode(&frame);
        let mut group = c.benchmark_group("wire");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group
            .bench_function("encode_txns_1024", |b| b.iter(|| assert_eq!(encode(&frame).len(), bytes.len())));
        group.bench_function("decode_txns_1024", |b| {
            b.iter(|| assert!(matches!(decode(&bytes), Ok(Frame::Txns(t)) if t.len() == 1024)));
        });
        group.finish();
    }
}

mod storage {
    use super::*;
    use tessera::storage::drill;
    use tessera::storage::{Store, StoreConfig};

    /// Committing blocks of 256 transfers (record and index) without fsync, so the figure is
    /// the code's, not the disk's. Blocks are made ahead, outside the timing.
    pub fn bench(c: &mut Criterion) {
        let senders = 256;
        let genesis = drill::genesis(senders);
        let mut ledger = Ledger::from_genesis(&genesis).unwrap();
        let mut tip = Hash::ZERO;
        let blocks: Vec<_> = (1..=512)
            .map(|height| {
                let made = drill::next_block(&mut ledger, tip, height, senders, 256);
                tip = made.0.header.hash();
                made
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("tessera-bench-store-{}", std::process::id()));
        let mut group = c.benchmark_group("storage");
        group.throughput(Throughput::Elements(256));
        group.bench_function("commit_block_256", |b| {
            b.iter_batched(
                || {
                    let _ = std::fs::remove_dir_all(&dir);
                    let config = StoreConfig { sync: false, ..StoreConfig::default() };
                    Store::open(&dir, &genesis, config).unwrap().0
                },
                |mut store| {
                    // Below the snapshot interval: `ledger` is never written or checked here.
                    for (block, certificate) in &blocks[..16] {
                        store.commit(block, certificate, &ledger).unwrap();
                    }
                    assert_eq!(store.height(), 16);
                },
                BatchSize::PerIteration,
            );
        });
        group.finish();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

mod sim {
    use super::*;
    use tessera::sim::engine::Sim;
    use tessera::sim::scenario::Scenario;

    /// The simulator's event loop on a swarm scenario (stand-in signatures), two virtual seconds.
    pub fn bench(c: &mut Criterion) {
        let mut group = c.benchmark_group("sim");
        group.sample_size(10);
        group.bench_function("swarm_seed_1_two_virtual_seconds", |b| {
            b.iter(|| {
                let mut scenario = Scenario::random(1);
                scenario.duration_s = 2.0;
                let mut sim = Sim::new(scenario, 1).unwrap();
                sim.run(|_, _| {});
                assert!(sim.recorder.violation().is_none());
                sim.events
            });
        });
        group.finish();
    }
}

criterion_group!(
    subsystems,
    sigverify::bench,
    prefilter::bench,
    mempool::bench,
    consensus::bench,
    execution::bench,
    wire::bench,
    storage::bench,
    sim::bench
);
criterion_main!(subsystems);
