//! Consensus under the simulator, many seeds: honest clusters, each Byzantine behaviour, and a
//! partition healed by block sync. Each cluster is a small scenario of the event-driven engine:
//! a mildly lossy LAN (1–30 ms one way, 2 % loss, 1 % duplicates) and a client sending 400
//! transfers a second round-robin.
//!
//! The Byzantine and sync runs sign for real: what they test is how honest validators treat
//! what a faulty one signed. The 200-seed honest runs test agreement and progress under loss
//! and reordering, which no signature decides, so they use the simulator's stand-in tags
//! (a keyed BLAKE3 tag in place of Ed25519, same messages, same schedule): real Ed25519 made
//! them two thirds of this crate's test time.

use super::engine::Sim;
use super::scenario::{
    ByzantineKind, Fault, FullNodes, LatencyModel, Network, PartitionSpec, Policy, RandomFaults, Region,
    Scenario, SigverifyMode, Validators, Workload,
};

/// Seeds per configuration; `TESSERA_SEED=N` runs just that seed.
fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("TESSERA_SEED").ok().and_then(|seed| seed.parse().ok()) {
        Some(seed) => vec![seed],
        None => (1..=count).collect(),
    }
}

const S: u64 = 1_000_000_000;

fn cluster(seed: u64, validators: u32, duration_s: f64) -> Scenario {
    let scenario = Scenario {
        name: format!("cluster-{validators}"),
        duration_s,
        seed,
        validators: Validators {
            count: validators,
            view_timeout_ms: 200,
            block_interval_ms: 0,
            block_txn_max: 64,
            process_us: 200,
            tick_ms: 5,
            sigverify: SigverifyMode::Real,
            storage: false,
            disk: Default::default(),
            costs: None,
            cores: 1,
            per_host: 1,
            aggregate_votes_from: None,
            forward_to_leaders_from: None,
            wake: Default::default(),
        },
        full_nodes: FullNodes { count: 0, degree: 8 },
        network: Network {
            latency_ms: vec![vec![15.5]],
            latency: LatencyModel::Uniform,
            jitter: 14.5 / 15.5,
            pareto_shape: 3.0,
            pareto_shape_per_ms: None,
            pareto_scale_offset_ms: 0.0,
            loss: 0.02,
            duplicate: 0.01,
            reorder: 0.0,
            regions: vec![Region {
                name: "lan".into(),
                share: 1.0,
                upload_mbps: 1000.0,
                download_mbps: 1000.0,
            }],
        },
        workload: Workload {
            rate: vec![[0.0, 400.0]],
            policy: Policy::RoundRobin,
            batch_ms: 5,
            accounts: 16,
        },
        partitions: Vec::new(),
        faults: Vec::new(),
        random_faults: RandomFaults::default(),
    };
    scenario.validate().expect("a valid cluster scenario");
    scenario
}

fn run_honest(validators: u32, seed: u64) {
    let mut scenario = cluster(seed, validators, 2.0);
    scenario.validators.sigverify = SigverifyMode::StandIn;
    let mut sim = Sim::new(scenario, seed).expect("simulator");
    sim.run(|_, _| {});
    let low = sim.honest_min_height();
    assert!(low >= 3, "seed {seed}: only {low} heights finalized by every validator in 2 s of virtual time");
    assert_eq!(sim.recorder.violation(), None, "seed {seed}");
}

#[test]
fn four_validators_agree_and_progress_over_200_seeds() {
    for seed in seeds(200) {
        run_honest(4, seed);
    }
}

#[test]
fn seven_validators_agree_and_progress_over_200_seeds() {
    for seed in seeds(200) {
        run_honest(7, seed);
    }
}

fn run_byzantine(validators: u32, seed: u64, behaviour: ByzantineKind) -> Sim {
    let mut scenario = cluster(seed, validators, 4.0);
    let f = (validators - 1) / 3;
    // Put the faulty validators where the rotation reaches them early.
    scenario.faults = (0..f)
        .map(|i| Fault::Byzantine {
            node: (seed as u32 + i) % validators,
            behaviour,
            from_s: 0.0,
            until_s: Some(1.5),
        })
        .collect();
    let mut sim = Sim::new(scenario, seed).expect("simulator");
    sim.run_until(3 * S / 2, |_, _| {});
    let during = sim.honest_min_height();
    sim.run(|_, _| {});
    let after = sim.honest_min_height();
    assert!(after > during, "seed {seed}: no progress after {behaviour:?} stopped ({during} → {after})");
    assert_eq!(sim.recorder.violation(), None, "seed {seed}");
    sim
}

#[test]
fn safety_and_recovery_with_equivocating_proposers() {
    let mut equivocations = 0;
    for seed in seeds(40) {
        equivocations += run_byzantine(4, seed, ByzantineKind::Equivocate).honest_sum(|c| c.equivocations);
    }
    assert!(equivocations > 0, "equivocation was never detected");
}

#[test]
fn safety_and_recovery_with_double_voters() {
    let mut equivocations = 0;
    for seed in seeds(40) {
        equivocations += run_byzantine(7, seed, ByzantineKind::DoubleVote).honest_sum(|c| c.equivocations);
    }
    assert!(equivocations > 0, "double votes were never detected");
}

#[test]
fn safety_and_recovery_with_vote_withholders() {
    for seed in seeds(40) {
        run_byzantine(4, seed, ByzantineKind::Withhold);
    }
}

#[test]
fn safety_and_recovery_with_invalid_proposers() {
    let mut refused = 0;
    for seed in seeds(40) {
        refused +=
            run_byzantine(4, seed, ByzantineKind::InvalidProposal).honest_sum(|c| c.rejected_state_root);
    }
    assert!(refused > 0, "no wrong state root was ever refused");
}

#[test]
fn a_partitioned_validator_catches_up_by_sync() {
    for seed in seeds(20) {
        let mut scenario = cluster(seed, 4, 3.5);
        scenario.partitions = vec![PartitionSpec { start_s: 0.1, end_s: 1.5, groups: vec![vec![], vec![3]] }];
        let mut sim = Sim::new(scenario, seed).expect("simulator");
        sim.run_until(3 * S / 2, |_, _| {});
        let behind = sim.finalized_height(3);
        let ahead = sim.finalized_height(0);
        assert!(ahead > behind + 2, "seed {seed}: the majority should have moved on ({ahead} vs {behind})");
        sim.run(|_, _| {});
        assert!(sim.finalized_height(3) >= ahead, "seed {seed}: the isolated validator did not catch up");
        let synced = sim.consensus_counters(3).map_or(0, |c| c.synced);
        assert!(synced > 0, "seed {seed}: catching up should go through block sync");
    }
}

/// Times, degrees and fault counts a scenario names are bounded where they are read, each
/// refused with its key: past an hour a time in milliseconds overflowed its conversion to
/// nanoseconds (`workload.batch_ms = 2^58` became 0, and the client event requeued itself at
/// one instant until memory ran out), a full node's degree of four billion wired the topology
/// for days, four billion random crashes took gigabytes before the first event, a crash down
/// for 1e300 s never restarted, and a name with a slash put the report wherever it pointed.
#[test]
fn scenario_values_past_their_bounds_are_refused_with_their_keys() {
    let base = || {
        let mut scenario = cluster(1, 4, 1.0);
        scenario.full_nodes.count = 2;
        scenario
    };
    let at_hour = 3_600_000;
    let mut fine = base();
    (fine.validators.view_timeout_ms, fine.workload.batch_ms, fine.full_nodes.degree) =
        (at_hour, at_hour, 64);
    fine.random_faults.crashes = 10_000;
    fine.random_faults.down_s = 1.0;
    fine.validate().expect("at the bounds");
    let cases: [(&str, Box<dyn Fn(&mut Scenario)>); 9] = [
        ("name", Box::new(|s| s.name = "../../tmp/escaped".into())),
        ("name", Box::new(|s| s.name = "/tmp/escaped".into())),
        ("workload.batch_ms", Box::new(|s| s.workload.batch_ms = 1 << 58)),
        ("validators.view_timeout_ms", Box::new(|s| s.validators.view_timeout_ms = 1 << 58)),
        ("validators.block_interval_ms", Box::new(|s| s.validators.block_interval_ms = 3_600_001)),
        ("validators.process_us", Box::new(|s| s.validators.process_us = u64::MAX)),
        ("full_nodes.degree", Box::new(|s| s.full_nodes.degree = 4_000_000_000)),
        ("random_faults.crashes", Box::new(|s| s.random_faults.crashes = 4_000_000_000)),
        ("random_faults.down_s", Box::new(|s| s.random_faults.down_s = 1e300)),
    ];
    for (key, change) in cases {
        let mut scenario = base();
        change(&mut scenario);
        let error = scenario.validate().expect_err(key).to_string();
        assert!(error.contains(key), "{key}: {error}");
    }
}
