//! Consensus under the cluster harness: many seeds, honest and Byzantine.

use super::network::Partition;
use super::*;

/// Seeds per configuration; `TESSERA_SEED=N` runs just that seed.
fn seeds(count: u64) -> Vec<u64> {
    match std::env::var("TESSERA_SEED").ok().and_then(|seed| seed.parse().ok()) {
        Some(seed) => vec![seed],
        None => (1..=count).collect(),
    }
}

fn run_honest(validators: usize, seed: u64) {
    let mut cluster = Cluster::new(ClusterConfig::new(seed, validators)).expect("cluster");
    cluster.run_until(2_000_000_000);
    let low = cluster.honest_min_height();
    assert!(low >= 3, "seed {seed}: only {low} heights finalized by every validator in 2 s of virtual time");
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

fn run_byzantine(validators: usize, seed: u64, behaviour: Behaviour) -> Cluster {
    let mut config = ClusterConfig::new(seed, validators);
    let f = (validators - 1) / 3;
    // Put the faulty validators where the rotation reaches them early.
    config.byzantine = (0..f as u32).map(|i| ((seed as u32 + i) % validators as u32, behaviour)).collect();
    config.fault_until_ns = 1_500_000_000;
    let mut cluster = Cluster::new(config).expect("cluster");
    cluster.run_until(1_500_000_000);
    let during = cluster.honest_min_height();
    cluster.run_until(4_000_000_000);
    let after = cluster.honest_min_height();
    assert!(after > during, "seed {seed}: no progress after {behaviour:?} stopped ({during} → {after})");
    cluster
}

#[test]
fn safety_and_recovery_with_equivocating_proposers() {
    let mut equivocations = 0;
    for seed in seeds(40) {
        equivocations += run_byzantine(4, seed, Behaviour::EquivocatingProposer).equivocations_seen();
    }
    assert!(equivocations > 0, "equivocation was never detected");
}

#[test]
fn safety_and_recovery_with_double_voters() {
    let mut equivocations = 0;
    for seed in seeds(40) {
        equivocations += run_byzantine(7, seed, Behaviour::DoubleVoter).equivocations_seen();
    }
    assert!(equivocations > 0, "double votes were never detected");
}

#[test]
fn safety_and_recovery_with_vote_withholders() {
    for seed in seeds(40) {
        run_byzantine(4, seed, Behaviour::VoteWithholder);
    }
}

#[test]
fn safety_and_recovery_with_invalid_proposers() {
    let mut refused = 0;
    for seed in seeds(40) {
        refused += run_byzantine(4, seed, Behaviour::InvalidProposer).wrong_state_roots_seen();
    }
    assert!(refused > 0, "no wrong state root was ever refused");
}

#[test]
fn a_partitioned_validator_catches_up_by_sync() {
    for seed in seeds(20) {
        let mut cluster = Cluster::new(ClusterConfig::new(seed, 4)).expect("cluster");
        cluster.network_mut().add_partition(Partition {
            start_ns: 100_000_000,
            end_ns: 1_500_000_000,
            group_of: vec![0, 0, 0, 1],
        });
        cluster.run_until(1_500_000_000);
        let behind = cluster.finalized_height(3);
        let ahead = cluster.finalized_height(0);
        assert!(ahead > behind + 2, "seed {seed}: the majority should have moved on ({ahead} vs {behind})");
        cluster.run_until(3_500_000_000);
        assert!(cluster.finalized_height(3) >= ahead, "seed {seed}: the isolated validator did not catch up");
        let synced = cluster.pipeline(3).consensus().map_or(0, |c| c.core.counters().synced);
        assert!(synced > 0, "seed {seed}: catching up should go through block sync");
    }
}
