//! End-to-end: signed transfers with every kind of bad input through the whole schedule.

use std::collections::HashMap;

use tessera_components::{Hash, RejectReason, Source, Txn, TxnBody};

use crate::workload::{SeedStream, TransferSpec, sign, signing_key, transfers};
use crate::{Ledger, Pipeline, PipelineConfig};

const SEED: u64 = 7;
const SENDERS: u64 = 200;
const PER_SENDER: u64 = 50;
const BALANCE: u64 = 1_000_000;
const POOR_SENDERS: u64 = 100;

struct Outcome {
    pipeline: Pipeline,
    block_hashes: Vec<Hash>,
}

struct Scenario {
    genesis: Vec<([u8; 32], u64)>,
    /// Submitted while the valid transfers are flowing, one tick per chunk.
    live: Vec<Vec<Txn>>,
    /// Submitted after everything above executed.
    late: Vec<Txn>,
    valid: Vec<Txn>,
    expected: HashMap<RejectReason, u64>,
}

fn scenario() -> Scenario {
    let config = PipelineConfig::default();
    let base = transfers(TransferSpec {
        seed: SEED,
        chain_id: config.chain_id,
        senders: SENDERS,
        per_sender: PER_SENDER,
        balance: BALANCE,
        fee_min: config.fee_floor,
    });
    let mut genesis = base.genesis.clone();
    let valid = base.txns.clone();
    let mut expected = HashMap::new();
    let mut stream = SeedStream::new("pipeline test", SEED);

    // Shuffle the valid transfers (nonce gaps within and across ticks are the mempool's job),
    // then build each tick's arrivals around its own valid transfers, so that every bad copy
    // meets its original in the same tick and is refused for exactly the intended reason.
    let mut order = valid.clone();
    stream.shuffle(&mut order);
    let mut live: Vec<Vec<Txn>> = order.chunks(1500).map(<[Txn]>::to_vec).collect();
    let (mut bad_signatures, mut duplicates, mut low_fees) = (0u64, 0u64, 0u64);
    for (tick, chunk) in live.iter_mut().enumerate() {
        let originals = chunk.clone();
        let pick = |stream: &mut SeedStream| originals[stream.below(originals.len() as u64) as usize];
        for i in 0..70 {
            // A valid transfer with one signature bit flipped.
            let mut txn = pick(&mut stream);
            txn.signature.0[(i * 7 + tick) % 64] ^= 1 << (i % 8);
            chunk.push(txn);
            bad_signatures += 1;
        }
        for _ in 0..40 {
            // An exact copy.
            chunk.push(pick(&mut stream));
            duplicates += 1;
        }
        for i in 0..30u64 {
            // Correctly signed, fee below the floor.
            let key = signing_key(SEED, (tick as u64 * 30 + i) % SENDERS);
            let body = TxnBody { sender: key.verifying_key().to_bytes(), fee: 0, ..pick(&mut stream).body };
            chunk.push(sign(&key, body));
            low_fees += 1;
        }
        stream.shuffle(chunk);
    }
    expected.insert(RejectReason::BadSignature, bad_signatures);
    expected.insert(RejectReason::FeeTooLow, low_fees);

    // Overdrafts: poor senders funded with 10 try to move 100; admission refuses them, since
    // their amount and fee exceed their balance.
    for i in 0..POOR_SENDERS {
        let key = signing_key(SEED + 1, i);
        let sender = key.verifying_key().to_bytes();
        genesis.push((sender, 10));
        let txn = sign(
            &key,
            TxnBody { chain_id: 1, reserved: 0, sender, recipient: [9; 32], amount: 100, fee: 1, nonce: 0 },
        );
        let tick = i as usize % live.len();
        live[tick].push(txn);
    }
    expected.insert(RejectReason::InsufficientFunds, POOR_SENDERS);
    expected.insert(RejectReason::Duplicate, duplicates);

    // After execution: byte-for-byte replays (caught as duplicates by id) and re-signed
    // transfers reusing executed nonces (caught as stale nonces).
    // The prefilter sees a byte-for-byte replay's executed nonce before dedup sees its id.
    let mut late: Vec<Txn> = (0..150).map(|i| valid[(i * 61) % valid.len()]).collect();
    let stale: Vec<Txn> = (0..200)
        .map(|i| {
            let key = signing_key(SEED, i % SENDERS);
            let body =
                TxnBody { amount: 1, nonce: i / SENDERS, ..valid[(i % SENDERS * PER_SENDER) as usize].body };
            sign(&key, body)
        })
        .collect();
    expected.insert(RejectReason::NonceStale, (late.len() + stale.len()) as u64);
    late.extend(stale);

    Scenario { genesis, live, late, valid, expected }
}

fn run(scenario: &Scenario, config: PipelineConfig) -> Outcome {
    let mut pipeline = Pipeline::new(config, Ledger::from_genesis(&scenario.genesis).unwrap()).unwrap();
    let mut block_hashes = Vec::new();
    let mut now_ns = 0;
    let mut tick = |pipeline: &mut Pipeline| {
        now_ns += 1_000_000;
        for committed in pipeline.tick(now_ns) {
            assert_eq!(committed.block.header.parent, block_hashes.last().copied().unwrap_or(Hash::ZERO));
            block_hashes.push(committed.hash);
        }
    };
    for chunk in &scenario.live {
        for txn in chunk {
            assert!(pipeline.submit(*txn));
        }
        tick(&mut pipeline);
    }
    while !pipeline.is_idle() {
        tick(&mut pipeline);
    }
    for txn in &scenario.late {
        assert!(pipeline.submit(*txn));
    }
    while !pipeline.is_idle() {
        tick(&mut pipeline);
    }
    Outcome { pipeline, block_hashes }
}

fn check(scenario: &Scenario, outcome: &Outcome) {
    let pipeline = &outcome.pipeline;
    let ledger = pipeline.ledger();
    let mut balances: HashMap<[u8; 32], u64> = scenario.genesis.iter().copied().collect();
    let mut burned = 0;
    for txn in &scenario.valid {
        *balances.get_mut(&txn.body.sender).unwrap() -= txn.body.amount + txn.body.fee;
        *balances.entry(txn.body.recipient).or_default() += txn.body.amount;
        burned += txn.body.fee;
    }
    for (key, balance) in &balances {
        assert_eq!(ledger.balance_of(key), *balance);
    }
    for (i, (key, _)) in scenario.genesis.iter().enumerate() {
        let nonce = if (i as u64) < SENDERS { PER_SENDER } else { 0 };
        assert_eq!(ledger.nonce_of(key), nonce);
    }
    assert_eq!(ledger.len(), balances.len(), "no account appeared from a refused transfer");
    assert_eq!(ledger.burned(), burned);

    let counters = pipeline.reject_counters();
    for reason in RejectReason::ALL {
        assert_eq!(
            counters.get(reason),
            scenario.expected.get(&reason).copied().unwrap_or(0),
            "{}",
            reason.name()
        );
    }
    let totals = pipeline.counters();
    assert_eq!(totals.executed, scenario.valid.len() as u64);
    assert_eq!(totals.failed, 0, "an unpayable transfer reached a block");
    let live: usize = scenario.live.iter().map(Vec::len).sum();
    assert_eq!(totals.ingested, (live + scenario.late.len()) as u64);
    assert_eq!(pipeline.tip().height, outcome.block_hashes.len() as u64);
    assert_eq!(pipeline.tip().state_root, ledger.state_root());
}

#[test]
fn ten_thousand_transfers_with_bad_input_end_to_end() {
    let scenario = scenario();
    assert!(scenario.valid.len() >= 10_000);
    let mut batched = run(&scenario, PipelineConfig::default());
    check(&scenario, &batched);
    // Regression: every despawned entity left removal messages in the world that nothing
    // cleared, ~85 bytes per transaction for the life of a node. Two idle ticks after the
    // run, the double-buffered removal messages are gone.
    for extra in 1..=2 {
        batched.pipeline.tick(1_000_000_000_000 + extra);
    }
    let removals: usize = batched.pipeline.world().removed_components().iter().map(|(_, m)| m.len()).sum();
    assert_eq!(removals, 0, "removal messages kept after {} transactions", scenario.valid.len());

    // Determinism and the batch on/off switch: same input, same blocks, bit for bit.
    let single = run(&scenario, PipelineConfig { sigverify_batch: false, ..PipelineConfig::default() });
    check(&scenario, &single);
    assert_eq!(batched.block_hashes, single.block_hashes);
    let scalar_prefilter =
        run(&scenario, PipelineConfig { prefilter_simd: false, ..PipelineConfig::default() });
    assert_eq!(batched.block_hashes, scalar_prefilter.block_hashes);
    let small_batches =
        run(&scenario, PipelineConfig { sigverify_batch_size: 7, ..PipelineConfig::default() });
    assert_eq!(batched.block_hashes, small_batches.block_hashes);

    // Without overlap verdicts land a tick earlier, so blocks are cut differently; the final
    // balances, nonces and refusals are the same.
    let inline = run(&scenario, PipelineConfig { sigverify_overlap: false, ..PipelineConfig::default() });
    check(&scenario, &inline);
}

#[test]
fn mempool_bound_holds_under_a_flood() {
    let base = transfers(TransferSpec {
        seed: 3,
        chain_id: 1,
        senders: 1000,
        per_sender: 1,
        balance: 1000,
        fee_min: 1,
    });
    // Never propose: a proposal just happened and the interval is longer than the test.
    let config =
        PipelineConfig { mempool_count_max: 300, block_interval_ns: u64::MAX, ..PipelineConfig::default() };
    let mut pipeline = Pipeline::new(config, Ledger::from_genesis(&base.genesis).unwrap()).unwrap();
    pipeline.world_mut().resource_mut::<crate::propose::ProposerState>().last_proposal_ns = Some(0);
    for txn in &base.txns {
        assert!(pipeline.submit(*txn));
    }
    pipeline.tick(1);
    pipeline.tick(2);
    let mempool = pipeline.world().resource::<crate::mempool::Mempool>();
    assert_eq!(mempool.len(), 300);
    let counters = pipeline.reject_counters();
    let admitted = pipeline.counters().admitted;
    assert_eq!(admitted - counters.get(RejectReason::Evicted), 300);
    assert_eq!(admitted + counters.get(RejectReason::MempoolFull), 1000);
    // The survivors are the highest fees: none refused or evicted paid more than the lowest kept.
    let mut fees: Vec<u64> = base.txns.iter().map(|t| t.body.fee).collect();
    fees.sort_unstable_by(|a, b| b.cmp(a));
    let kept_min = fees[299];
    let packed = pipeline.world_mut().resource_mut::<crate::mempool::Mempool>().pack(
        &Ledger::from_genesis(&base.genesis).unwrap(),
        1000,
        usize::MAX,
    );
    assert_eq!(packed.len(), 300);
    assert!(packed.iter().all(|(t, _)| t.body.fee >= kept_min));
}

#[test]
fn unfunded_fee_spam_cannot_displace_funded_transfers() {
    let funded = transfers(TransferSpec {
        seed: 11,
        chain_id: 1,
        senders: 50,
        per_sender: 1,
        balance: 1000,
        fee_min: 1,
    });
    let mut genesis = funded.genesis.clone();
    // Ten underfunded senders: 10 units each, not enough for the fee they offer.
    let poor: Vec<_> = (0..10).map(|i| signing_key(12, i)).collect();
    genesis.extend(poor.iter().map(|key| (key.verifying_key().to_bytes(), 10)));
    let config =
        PipelineConfig { mempool_count_max: 50, block_interval_ns: u64::MAX, ..PipelineConfig::default() };
    let mut pipeline = Pipeline::new(config, Ledger::from_genesis(&genesis).unwrap()).unwrap();
    pipeline.world_mut().resource_mut::<crate::propose::ProposerState>().last_proposal_ns = Some(0);
    for txn in &funded.txns {
        assert!(pipeline.submit(*txn));
    }
    pipeline.tick(1);
    pipeline.tick(2);
    // A full pool of funded transfers. Now 200 correctly signed transfers from keys that own
    // nothing, and 10 from keys that own too little, each offering a fee near 2^64.
    let spam = (0..210u64).map(|i| {
        let (key, owned) =
            if i < 200 { (signing_key(13, i), false) } else { (poor[(i - 200) as usize].clone(), true) };
        let sender = key.verifying_key().to_bytes();
        let fee = if owned { 11 } else { u64::MAX - i };
        sign(&key, TxnBody { chain_id: 1, reserved: 0, sender, recipient: [7; 32], amount: 1, fee, nonce: 0 })
    });
    let verified = pipeline.counters().verify_cache_misses;
    for txn in spam {
        assert!(pipeline.submit(txn));
    }
    pipeline.tick(3);
    pipeline.tick(4);
    assert_eq!(
        pipeline.counters().verify_cache_misses,
        verified,
        "an unpayable transfer cost a verification"
    );
    assert_eq!(pipeline.reject_counters().get(RejectReason::Evicted), 0, "spam evicted a funded transfer");
    assert_eq!(pipeline.reject_counters().get(RejectReason::InsufficientFunds), 210);
    let mempool = pipeline.world().resource::<crate::mempool::Mempool>();
    assert!(funded.txns.iter().all(|txn| mempool.contains(&txn.id())), "a funded transfer was displaced");
    let ledger = Ledger::from_genesis(&genesis).unwrap();
    let packed =
        pipeline.world_mut().resource_mut::<crate::mempool::Mempool>().pack(&ledger, 1000, usize::MAX);
    assert_eq!(packed.len(), 50, "the block is the funded transfers");
}

/// A pipeline over `genesis` that never proposes (what it admits stays pending), with `config`
/// otherwise.
fn quiet(genesis: &[([u8; 32], u64)], config: PipelineConfig) -> Pipeline {
    let config = PipelineConfig { block_interval_ns: u64::MAX, ..config };
    let mut pipeline = Pipeline::new(config, Ledger::from_genesis(genesis).unwrap()).unwrap();
    pipeline.world_mut().resource_mut::<crate::propose::ProposerState>().last_proposal_ns = Some(0);
    pipeline
}

/// `signing_key(seed, 0)`, funded with `balance` and alone in the genesis of a [`quiet`]
/// pipeline with the default config.
fn one_sender(seed: u64, balance: u64) -> (ed25519_dalek::SigningKey, Pipeline) {
    let key = signing_key(seed, 0);
    let pipeline = quiet(&[(key.verifying_key().to_bytes(), balance)], PipelineConfig::default());
    (key, pipeline)
}

/// `key`'s transfer of `amount` at `fee` and `nonce` to the address `[to; 32]`, on chain 1.
fn transfer_of(key: &ed25519_dalek::SigningKey, nonce: u64, amount: u64, fee: u64, to: u8) -> Txn {
    let sender = key.verifying_key().to_bytes();
    sign(key, TxnBody { chain_id: 1, reserved: 0, sender, recipient: [to; 32], amount, fee, nonce })
}

/// Signed transfers from `senders` funded keys, `per_sender` each, and a pipeline over their
/// genesis that never proposes: what it admits stays pending.
fn never_proposing(seed: u64, senders: u64, per_sender: u64) -> (crate::workload::Transfers, Pipeline) {
    let base = transfers(TransferSpec { seed, chain_id: 1, senders, per_sender, balance: 1000, fee_min: 1 });
    let pipeline = quiet(&base.genesis, PipelineConfig::default());
    (base, pipeline)
}

#[test]
fn resubmission_hits_the_verification_cache() {
    let (base, mut pipeline) = never_proposing(5, 4, 2);
    for txn in &base.txns {
        pipeline.submit(*txn);
    }
    pipeline.tick(1);
    pipeline.tick(2);
    assert_eq!(pipeline.counters().verify_cache_misses, 8);
    assert_eq!(pipeline.counters().verify_cache_hits, 0);
    // The same bytes again (a gossip duplicate): no second verification, refused as duplicates.
    for txn in &base.txns {
        pipeline.submit(*txn);
    }
    pipeline.tick(3);
    pipeline.tick(4);
    assert_eq!(pipeline.counters().verify_cache_hits, 8);
    assert_eq!(pipeline.counters().verified, 8);
    assert_eq!(pipeline.reject_counters().get(RejectReason::Duplicate), 8);
    // A forged twin (same body, different signature) is a different id, for a nonce taken:
    // refused before verification, as any other body for that nonce at that fee would be.
    let mut forged = base.txns[0];
    forged.signature.0[0] ^= 1;
    pipeline.submit(forged);
    pipeline.tick(5);
    pipeline.tick(6);
    assert_eq!(pipeline.counters().verify_cache_misses, 8);
    assert_eq!(pipeline.reject_counters().get(RejectReason::NonceTaken), 1);
    // A forgery the mempool would take: a miss, then refused for its signature.
    let mut forged = base.txns[0];
    forged.body.nonce = 2;
    pipeline.submit(forged);
    pipeline.tick(7);
    pipeline.tick(8);
    assert_eq!(pipeline.counters().verify_cache_misses, 9);
    assert_eq!(pipeline.reject_counters().get(RejectReason::BadSignature), 1);
}

/// A transaction is next in line when its nonce is its sender's account nonce or follows a
/// run of the sender's pending nonces; one behind a gap is not.
#[test]
fn next_in_line_follows_the_account_nonce_and_the_pending_run() {
    let (base, mut pipeline) = never_proposing(9, 1, 3);
    let mut txns = base.txns.clone();
    txns.sort_by_key(|txn| txn.body.nonce);
    let in_line =
        |pipeline: &Pipeline| txns.iter().map(|txn| pipeline.is_next_in_line(txn)).collect::<Vec<bool>>();
    assert_eq!(in_line(&pipeline), [true, false, false], "only the account nonce");
    pipeline.submit(txns[0]);
    pipeline.tick(1);
    pipeline.tick(2);
    assert!(pipeline.is_pending(&txns[0].id()));
    assert_eq!(in_line(&pipeline), [true, true, false], "nonce 1 follows the pending 0");
    pipeline.submit(txns[2]);
    pipeline.tick(3);
    pipeline.tick(4);
    assert!(pipeline.is_pending(&txns[2].id()));
    assert_eq!(in_line(&pipeline), [true, true, false], "nonce 2 still waits behind 1");
}

/// A bad signature on a transaction with a source (a forwarding validator, a client's address)
/// is charged to that source, with the overlap on (verdicts land a tick later) and off;
/// transactions without a source, and good ones, are charged to nobody.
#[test]
fn bad_signatures_are_charged_to_their_source() {
    let base = transfers(TransferSpec {
        seed: 6,
        chain_id: 1,
        senders: 4,
        per_sender: 2,
        balance: 1000,
        fee_min: 1,
    });
    for overlap in [true, false] {
        let config = PipelineConfig {
            block_interval_ns: u64::MAX,
            sigverify_overlap: overlap,
            ..PipelineConfig::default()
        };
        let mut pipeline = Pipeline::new(config, Ledger::from_genesis(&base.genesis).unwrap()).unwrap();
        let forge = |txn: &Txn| {
            let mut forged = *txn;
            forged.signature.0[5] ^= 1;
            forged
        };
        let client = Source::Address([7; 16]);
        pipeline.submit(forge(&base.txns[0]));
        pipeline.submit_from(base.txns[1], Source::Validator(1));
        pipeline.submit_from(forge(&base.txns[2]), Source::Validator(2));
        pipeline.submit_from(forge(&base.txns[3]), Source::Validator(2));
        pipeline.submit_from(forge(&base.txns[4]), Source::Validator(3));
        pipeline.submit_from(forge(&base.txns[5]), client);
        pipeline.submit_from(base.txns[6], client);
        pipeline.tick(1);
        pipeline.tick(2);
        assert_eq!(pipeline.reject_counters().get(RejectReason::BadSignature), 5, "overlap {overlap}");
        let expected = vec![(Source::Validator(2), 2), (Source::Validator(3), 1), (client, 1)];
        assert_eq!(pipeline.take_forged(), expected, "overlap {overlap}");
        assert_eq!(pipeline.take_forged(), vec![], "taken once");
    }
}

/// The node's schedule refuses two systems that write the same resource with no order between
/// them, saying so, and accepts them once ordered: a pipeline's results never depend
/// on the order an executor happens to pick.
#[test]
fn a_schedule_with_two_unordered_writers_of_one_resource_does_not_build() {
    use bevy_ecs::prelude::*;

    #[derive(Resource, Default)]
    struct Tally(u64);
    fn add(mut tally: ResMut<Tally>) {
        tally.0 += 1;
    }
    fn double(mut tally: ResMut<Tally>) {
        tally.0 *= 2;
    }

    let mut world = World::new();
    world.init_resource::<Tally>();
    let mut unordered = crate::node_schedule();
    unordered.add_systems((add, double));
    let Err(error) = unordered.initialize(&mut world) else {
        panic!("an ambiguous order is refused");
    };
    let said = error.to_string(unordered.graph(), &world);
    // (Systems and resources are named only with bevy's `debug` feature, which is off.)
    assert!(said.contains("1 pairs of systems with conflicting data access"), "the conflict is said: {said}");

    let mut ordered = crate::node_schedule();
    ordered.add_systems((add, double).chain());
    assert!(ordered.initialize(&mut world).is_ok(), "an ordered pair builds");
    ordered.run(&mut world);
    assert_eq!(world.resource::<Tally>().0, 2, "add, then double");
}

/// Copies of one signed transfer arriving in one tick are verified once, and take the
/// original's verdict in the same tick: then the duplicate check refuses them, as before.
/// Before, each copy was verified, then refused as a duplicate, and charged to nobody: a frame
/// repeating one transfer 64 times cost 64 verifications (found in review).
#[test]
fn copies_in_one_tick_are_verified_once() {
    let (base, mut pipeline) = never_proposing(11, 1, 1);
    for _ in 0..64 {
        pipeline.submit(base.txns[0]);
    }
    pipeline.tick(1);
    pipeline.tick(2);
    assert_eq!(pipeline.counters().verified, 1, "one verification for 64 copies");
    assert_eq!(pipeline.reject_counters().get(RejectReason::Duplicate), 63);
    assert!(pipeline.is_pending(&base.txns[0].id()), "the original is admitted");
    // A forgery repeated is verified once too, and each copy refused for its signature (and
    // charged, as each was before). (A forged twin of the original, for its taken nonce, is
    // refused before verification: `variants_the_mempool_would_refuse_cost_no_verification`.)
    let mut forged = base.txns[0];
    forged.body.nonce += 1;
    for _ in 0..8 {
        pipeline.submit(forged);
    }
    pipeline.tick(3);
    pipeline.tick(4);
    assert_eq!(pipeline.counters().verified, 2);
    assert_eq!(pipeline.reject_counters().get(RejectReason::BadSignature), 8);
    assert_eq!(pipeline.reject_counters().get(RejectReason::Duplicate), 63);
}

/// Variants of a transfer that the mempool would refuse whatever their signatures (another body
/// for a nonce taken behind a gap, a debit past what the pending ones leave) cost no
/// verification, however many come. Before, each was verified, then refused by the mempool and
/// charged to nobody; never admitted, one set of them could be replayed forever (found in
/// review).
#[test]
fn variants_the_mempool_would_refuse_cost_no_verification() {
    let (key, mut pipeline) = one_sender(21, 10);
    let transfer = |nonce: u64, amount: u64, to: u8| transfer_of(&key, nonce, amount, 1, to);
    // Nonce 1, behind the gap at 0: admitted.
    let gapped = transfer(1, 1, 1);
    assert!(pipeline.submit(gapped));
    pipeline.tick(1);
    pipeline.tick(2);
    assert!(pipeline.is_pending(&gapped.id()));
    let verified = pipeline.counters().verified;
    // Fifty other bodies for nonce 1, and twenty at nonce 2 debiting 9 + 1 beside the 2 pending.
    for round in 0..2 {
        for to in 2..52 {
            assert!(pipeline.submit(transfer(1, 1, to)));
        }
        for to in 2..22 {
            assert!(pipeline.submit(transfer(2, 9, to)));
        }
        pipeline.tick(3 + 2 * round);
        pipeline.tick(4 + 2 * round);
    }
    assert_eq!(pipeline.counters().verified, verified, "a variant the mempool refuses was verified");
    assert_eq!(pipeline.reject_counters().get(RejectReason::NonceTaken), 100);
    assert_eq!(pipeline.reject_counters().get(RejectReason::InsufficientFunds), 40);
    // What the mempool takes is still verified and admitted: nonce 0, and a copy of the gapped
    // transfer is still refused as the duplicate it is.
    let head = transfer(0, 1, 9);
    assert!(pipeline.submit(head));
    assert!(pipeline.submit(gapped));
    pipeline.tick(7);
    pipeline.tick(8);
    assert!(pipeline.is_pending(&head.id()));
    assert_eq!(pipeline.counters().verified, verified + 1);
    assert_eq!(pipeline.reject_counters().get(RejectReason::Duplicate), 1);
}

/// A pipeline of the stages before admission (the signature benchmark's) has no mempool, and
/// ticks all the same: the prefilter asks the mempool only where there is one. A prefilter that
/// required it stopped the benchmark in its first tick, which no test ran.
#[test]
fn a_pipeline_through_dedup_ticks_without_a_mempool() {
    let base = transfers(TransferSpec {
        seed: 23,
        chain_id: 1,
        senders: 4,
        per_sender: 2,
        balance: 1000,
        fee_min: 1,
    });
    let ledger = Ledger::from_genesis(&base.genesis).unwrap();
    let tip = crate::ChainTip::genesis(&ledger);
    let mut pipeline =
        Pipeline::with_stages(PipelineConfig::default(), ledger, tip, crate::Stages::ThroughDedup).unwrap();
    for txn in &base.txns {
        assert!(pipeline.submit(*txn));
    }
    pipeline.tick(1);
    pipeline.tick(2);
    assert_eq!(pipeline.counters().verified, 8);
}

/// Bodies for one sender and a fresh nonce, sent by one source in one tick: one goes on to
/// verification, and copies of it (refused later as duplicates); the others are refused before
/// it. Before, each was verified: a source could have thousands verified a tick for each fresh
/// nonce, the mempool taking one.
#[test]
fn one_source_gets_one_body_a_sender_and_nonce_verified_a_tick() {
    use tessera_components::Source;
    let (key, mut pipeline) = one_sender(22, 1000);
    let transfer = |to: u8| transfer_of(&key, 0, 1, 1, to);
    let (one, other) = (Source::Address([9; 16]), Source::Address([7; 16]));
    for to in 1..=50 {
        assert!(pipeline.submit_from(transfer(to), one));
    }
    for _ in 0..3 {
        assert!(pipeline.submit_from(transfer(1), one));
    }
    // Another source's body for the same nonce is its own: verified, then refused by the
    // mempool, whose nonce the first took.
    assert!(pipeline.submit_from(transfer(60), other));
    pipeline.tick(1);
    pipeline.tick(2);
    assert_eq!(pipeline.counters().verified, 2);
    assert!(pipeline.is_pending(&transfer(1).id()));
    assert_eq!(pipeline.reject_counters().get(RejectReason::NonceTaken), 49 + 1);
    assert_eq!(pipeline.reject_counters().get(RejectReason::Duplicate), 3);
    // For nonce 1: the body paying the most goes on, not the first; a body the cheap checks
    // refuse (below the fee floor) takes no turn; an address in the same IPv6 /64 counts as
    // the same source, as bans count it (found in review of the first version).
    let body = |to: u8, fee: u64| transfer_of(&key, 1, 1, fee, to);
    let mut neighbour = [9; 16];
    neighbour[15] = 1;
    assert!(pipeline.submit_from(body(1, 0), one));
    assert!(pipeline.submit_from(body(2, 1), one));
    assert!(pipeline.submit_from(body(3, 2), one));
    assert!(pipeline.submit_from(body(4, 3), Source::Address(neighbour)));
    pipeline.tick(3);
    pipeline.tick(4);
    assert_eq!(pipeline.counters().verified, 3, "one more verification, for the body paying the most");
    assert!(pipeline.is_pending(&body(4, 3).id()));
    assert_eq!(pipeline.reject_counters().get(RejectReason::NonceTaken), 50 + 2);
}

/// A source's body for a sender and nonce that arrives while the same source's earlier body for
/// them is still being verified (verification overlaps the next tick) is refused before
/// verification, as a second body in one tick is. Before, a source sending a fresh variant each
/// tick had two or more verified for every nonce the pool took one of (found in review). Another
/// source's body is still its own.
#[test]
fn a_source_gets_no_second_verification_for_a_nonce_it_has_on_its_way() {
    use tessera_components::Source;
    let (key, mut pipeline) = one_sender(23, 1000);
    assert!(
        pipeline.world().resource::<PipelineConfig>().sigverify_overlap,
        "the node's default: verification overlaps a tick"
    );
    let (one, other) = (Source::Address([9; 16]), Source::Address([7; 16]));
    assert!(pipeline.submit_from(transfer_of(&key, 0, 1, 1, 1), one));
    pipeline.tick(1);
    // The first body is on its way; the same source's next body for the nonce pays more.
    assert!(pipeline.submit_from(transfer_of(&key, 0, 1, 5, 2), one));
    assert!(pipeline.submit_from(transfer_of(&key, 0, 1, 1, 3), other));
    pipeline.tick(2);
    pipeline.tick(3);
    pipeline.tick(4);
    assert_eq!(pipeline.counters().verified, 2, "the first body and the other source's");
    assert!(pipeline.is_pending(&transfer_of(&key, 0, 1, 1, 1).id()));
    assert_eq!(pipeline.reject_counters().get(RejectReason::NonceTaken), 2);
}

/// A sender's run of nonces sent together is admitted whole while the pool's room for gapped
/// transactions is full: the next nonce is behind a gap only until the one before it is
/// admitted, in the same tick. The first version of the refusal before verification judged it
/// on the pool alone and refused it for want of gapped room, which an attacker's gapped
/// transactions, never executed and never paid for, could keep full (found in review).
#[test]
fn a_run_of_nonces_sent_together_is_admitted_while_the_gapped_room_is_full() {
    let (attacker, honest) = (signing_key(24, 0), signing_key(24, 1));
    let (from, to) = (attacker.verifying_key().to_bytes(), honest.verifying_key().to_bytes());
    // 16 places, so 2 for transactions behind a gap.
    let mut pipeline = quiet(
        &[(from, 100), (to, 100)],
        PipelineConfig { mempool_count_max: 16, ..PipelineConfig::default() },
    );
    let transfer = |key: &ed25519_dalek::SigningKey, nonce: u64| transfer_of(key, nonce, 1, 1, 5);
    for nonce in [1, 2] {
        assert!(pipeline.submit(transfer(&attacker, nonce)));
    }
    pipeline.tick(1);
    pipeline.tick(2);
    assert_eq!(
        pipeline.world().resource::<crate::mempool::Mempool>().gapped_len(),
        2,
        "the gapped room is full"
    );
    let run: Vec<Txn> = (0..3).map(|nonce| transfer(&honest, nonce)).collect();
    for txn in &run {
        assert!(pipeline.submit(*txn));
    }
    pipeline.tick(3);
    pipeline.tick(4);
    for txn in &run {
        assert!(pipeline.is_pending(&txn.id()), "nonce {} of the run was refused", txn.body.nonce);
    }
    assert_eq!(pipeline.reject_counters().get(RejectReason::MempoolFull), 0);
}

/// Gapped bodies do not waive each other's refusal for want of gapped room, nor does a body
/// the cheap checks refuse: a gap closes only with each nonce below pending or on its way. The
/// first version waived it for any lower nonce in the pipeline, and a sender's own gapped
/// bodies, or a replayed stale one, had every body verified again (found in review).
#[test]
fn gapped_bodies_do_not_close_each_others_gap() {
    let key = signing_key(25, 0);
    let sender = key.verifying_key().to_bytes();
    let mut pipeline =
        quiet(&[(sender, 100)], PipelineConfig { mempool_count_max: 16, ..PipelineConfig::default() });
    let transfer = |nonce: u64, chain_id: u32| {
        sign(&key, TxnBody { chain_id, reserved: 0, sender, recipient: [5; 32], amount: 1, fee: 1, nonce })
    };
    for nonce in [1, 2] {
        assert!(pipeline.submit(transfer(nonce, 1)));
    }
    pipeline.tick(1);
    pipeline.tick(2);
    assert_eq!(
        pipeline.world().resource::<crate::mempool::Mempool>().gapped_len(),
        2,
        "the gapped room is full"
    );
    let verified = pipeline.counters().verified;
    // Nonce 0 on another chain (refused by the cheap checks), then nonces 3 to 20.
    assert!(pipeline.submit(transfer(0, 2)));
    for nonce in 3..=20 {
        assert!(pipeline.submit(transfer(nonce, 1)));
    }
    pipeline.tick(3);
    pipeline.tick(4);
    assert_eq!(pipeline.counters().verified, verified, "a gapped body was verified with no room for it");
    assert_eq!(pipeline.reject_counters().get(RejectReason::MempoolFull), 18);
}

/// What the bodies on their way at lower nonces will debit counts against the balance before
/// verification: each fitting the balance alone, a run of bodies each debiting all of it
/// behind one paid transfer had every one verified, then refused by the mempool (found in
/// review).
#[test]
fn bodies_on_their_way_owe_the_balance_together() {
    let (key, mut pipeline) = one_sender(26, 100);
    let transfer = |nonce: u64, amount: u64, fee: u64| transfer_of(&key, nonce, amount, fee, 5);
    let anchor = transfer(0, 1, 1);
    assert!(pipeline.submit_from(anchor, tessera_components::Source::Address([3; 16])));
    for nonce in 1..=20 {
        assert!(pipeline.submit(transfer(nonce, 99, 1)));
    }
    pipeline.tick(1);
    pipeline.tick(2);
    assert_eq!(pipeline.counters().verified, 1, "bodies the balance cannot cover together were verified");
    assert!(pipeline.is_pending(&anchor.id()));
    assert_eq!(pipeline.reject_counters().get(RejectReason::InsufficientFunds), 20);
    // The body a source's choice goes to must be one the pool can take: the one paying the
    // most (99 of the balance of 100) is past it with the pending 2, so the other one for that
    // nonce goes on, where before both were refused.
    let (rich, modest) = (transfer(1, 49, 50), transfer(1, 49, 1));
    let source = tessera_components::Source::Address([4; 16]);
    assert!(pipeline.submit_from(modest, source));
    assert!(pipeline.submit_from(rich, source));
    pipeline.tick(3);
    pipeline.tick(4);
    assert!(pipeline.is_pending(&modest.id()), "the body the pool could take was refused");
}

/// A run n, n + 1 verified together is admitted whole whatever order the entity table holds
/// them in. With verification overlapping the next tick, a transaction admitted and despawned
/// ahead of them swapped n + 1 in front of n, so n + 1 met the pool behind a gap and was
/// refused for want of gapped room, which an attacker can keep full (found in review).
#[test]
fn a_run_verified_together_is_admitted_whatever_its_order_in_the_table() {
    let (attacker, honest, other) = (signing_key(27, 0), signing_key(27, 1), signing_key(27, 2));
    let genesis: Vec<([u8; 32], u64)> =
        [&attacker, &honest, &other].iter().map(|key| (key.verifying_key().to_bytes(), 100)).collect();
    assert!(PipelineConfig::default().sigverify_overlap, "the order comes from overlapping verification");
    let mut pipeline = quiet(&genesis, PipelineConfig { mempool_count_max: 16, ..PipelineConfig::default() });
    let transfer = |key: &ed25519_dalek::SigningKey, nonce: u64| transfer_of(key, nonce, 1, 1, 5);
    for nonce in [1, 2] {
        assert!(pipeline.submit(transfer(&attacker, nonce)));
    }
    pipeline.tick(1);
    pipeline.tick(2);
    pipeline.tick(3);
    assert_eq!(
        pipeline.world().resource::<crate::mempool::Mempool>().gapped_len(),
        2,
        "the gapped room is full"
    );
    // One transaction admitted in the tick the run is verified in, ahead of it in the table.
    assert!(pipeline.submit(transfer(&other, 0)));
    pipeline.tick(4);
    let run = [transfer(&honest, 0), transfer(&honest, 1)];
    for txn in &run {
        assert!(pipeline.submit(*txn));
    }
    pipeline.tick(5);
    pipeline.tick(6);
    pipeline.tick(7);
    for txn in &run {
        assert!(pipeline.is_pending(&txn.id()), "nonce {} of the run was refused", txn.body.nonce);
    }
}

/// A forged body at a nonce of the sender's that this node packed into a block counts nothing
/// against the balance: that nonce is owed already. Priced at the forged body's debit, the
/// whole balance, it got the sender's next transaction refused for funds by anyone without
/// its key (found in review).
#[test]
fn a_forged_body_at_a_packed_nonce_owes_nothing() {
    use tessera_components::Source;
    let key = signing_key(28, 0);
    let sender = key.verifying_key().to_bytes();
    let ledger = Ledger::from_genesis(&[(sender, 100)]).unwrap();
    let mut pipeline = quiet(&[(sender, 100)], PipelineConfig::default());
    let transfer = |nonce: u64, amount: u64| transfer_of(&key, nonce, amount, 1, 5);
    assert!(pipeline.submit(transfer(0, 10)));
    pipeline.tick(1);
    pipeline.tick(2);
    // This node leads and packs nonce 0 into a block not yet committed.
    {
        let mut mempool = pipeline.world_mut().resource_mut::<crate::mempool::Mempool>();
        let packed = mempool.pack(&ledger, 1000, usize::MAX);
        assert_eq!(packed.len(), 1);
        mempool.note_packed(1, &packed);
    }
    let mut forged = transfer(0, 98);
    forged.signature.0[0] ^= 1;
    assert!(pipeline.submit_from(forged, Source::Address([6; 16])));
    let next = transfer(1, 50);
    assert!(pipeline.submit(next));
    pipeline.tick(3);
    pipeline.tick(4);
    assert!(pipeline.is_pending(&next.id()), "the sender's next transaction was refused");
}
