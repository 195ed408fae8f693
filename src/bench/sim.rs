//! `tessera bench sim`: the simulator's cost per event, on the shipped scenarios (or any file),
//! run to a fixed virtual time.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use crate::InputError;
use crate::sim::engine::Sim;
use crate::sim::scenario::Scenario;

/// Arguments of `tessera bench sim`.
#[derive(Debug, Args)]
pub struct SimBenchArgs {
    /// Scenario files (default: tools/scenarios/lan-4.toml and simblock-300.toml, relative to
    /// the current directory: run from the repository's root, or name the files).
    #[arg(long, value_name = "FILE")]
    scenario: Vec<PathBuf>,
    /// Virtual seconds of each to run (default: 20, or the scenario's length if shorter).
    #[arg(long, default_value_t = 20.0)]
    virtual_s: f64,
    /// Also switch every scenario to stand-in signatures (the scale-run setting).
    #[arg(long)]
    stand_in: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the suite.
///
/// # Errors
/// A scenario that cannot be read or run.
pub fn run(args: &SimBenchArgs) -> Result<(), Box<dyn std::error::Error>> {
    let files = if args.scenario.is_empty() {
        // Relative to the working directory, so an installed binary does not point into the
        // tree it was built in.
        let root = PathBuf::from("tools/scenarios");
        vec![root.join("lan-4.toml"), root.join("simblock-300.toml")]
    } else {
        args.scenario.clone()
    };
    if !(args.virtual_s.is_finite() && args.virtual_s > 0.0) {
        return Err(InputError("--virtual-s must be positive".into()).into());
    }
    let mut rows = Vec::new();
    // Measured once for each number of client keys, only if some run signs for real.
    let mut signature_costs: std::collections::BTreeMap<u64, (f64, f64, f64)> = Default::default();
    for file in files {
        let mut scenario = Scenario::load(&file).map_err(|error| {
            InputError(format!("{error} (run from the repository's root, or give --scenario FILE)"))
        })?;
        scenario.duration_s = scenario.duration_s.min(args.virtual_s);
        if args.stand_in {
            scenario.validators.sigverify = crate::sim::scenario::SigverifyMode::StandIn;
        }
        let (name, seed, virtual_s) = (scenario.name.clone(), scenario.seed, scenario.duration_s);
        let real = scenario.validators.sigverify != crate::sim::scenario::SigverifyMode::StandIn;
        // A batch check costs less when signatures share keys, so the costs are measured with
        // as many signing keys as the scenario's clients have (up to a sample's size).
        let client_keys = scenario.workload.accounts.min(SAMPLE_SIGNATURES as u64);
        let started = Instant::now();
        let mut sim = Sim::new(scenario, seed)?;
        sim.run(|_, _| {});
        let wall = started.elapsed().as_secs_f64().max(1e-9);
        let report = sim.report();
        // The answer is checked, not just timed: a run that broke an invariant is no benchmark.
        if report["invariants"]["safety"]["ok"] != true {
            return Err(format!("{name}: safety violated during the benchmark").into());
        }
        // With real signatures, signatures bound the run: the clients' transactions and the
        // validators' consensus messages are each signed once and verified once (the simulator
        // verifies a signature once for all its nodes), on however many cores there are. Every
        // verification is priced at a batch check's share, so the bound is generous: consensus
        // messages arrive a few at a time and are mostly checked singly.
        let submitted = report["transactions"]["submitted"].as_u64().unwrap_or(0);
        let verified = sim.signatures_verified();
        let consensus = verified.saturating_sub(submitted);
        let bound = real.then(|| {
            let (sign_s, sign_many_s, verify_s) =
                *signature_costs.entry(client_keys).or_insert_with(|| sign_and_verify_s(client_keys));
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as f64;
            // Clients sign a window at a time (`sign_many`), validators one message at a time.
            let client_bound_s = submitted as f64 * (sign_many_s + verify_s) / cores;
            let bound_wall_s = client_bound_s + consensus as f64 * (sign_s + verify_s) / cores;
            json!({
                "client_signatures": submitted,
                "consensus_signatures": consensus,
                "sign_us": sign_s * 1e6,
                "sign_many_us": sign_many_s * 1e6,
                "verify_us": verify_s * 1e6,
                "sign_and_verify_us": (sign_s + verify_s) * 1e6,
                "client_sign_and_verify_us": (sign_many_s + verify_s) * 1e6,
                "cores": cores,
                "client_bound_wall_s": client_bound_s,
                "bound_wall_s": bound_wall_s,
                "bound_virtual_to_wall": virtual_s / bound_wall_s.max(1e-9),
                "ratio_to_bound": bound_wall_s / wall,
            })
        });
        rows.push(json!({
            "scenario": name,
            "nodes": report["validators"].as_u64().unwrap_or(0) + report["full_nodes"].as_u64().unwrap_or(0),
            "virtual_s": virtual_s,
            "events": sim.events,
            "wall_s": wall,
            "events_per_s": sim.events as f64 / wall,
            "ns_per_event": wall * 1e9 / sim.events.max(1) as f64,
            "virtual_to_wall": virtual_s / wall,
            "finalized_height": report["chain"]["height_max"],
            "signature_bound": bound,
        }));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<16} {:>6} {:>10} {:>12} {:>10} {:>12} {:>14}",
            "scenario", "nodes", "virtual_s", "events", "wall_s", "ns_per_event", "virtual/wall"
        );
        for row in &rows {
            println!(
                "{:<16} {:>6} {:>10.1} {:>12} {:>10.2} {:>12.0} {:>14.1}",
                row["scenario"].as_str().unwrap_or(""),
                row["nodes"],
                row["virtual_s"].as_f64().unwrap_or(0.0),
                row["events"],
                row["wall_s"].as_f64().unwrap_or(0.0),
                row["ns_per_event"].as_f64().unwrap_or(0.0),
                row["virtual_to_wall"].as_f64().unwrap_or(0.0),
            );
        }
        for row in rows.iter().filter(|row| !row["signature_bound"].is_null()) {
            let bound = &row["signature_bound"];
            println!(
                "{}: {} client and {} consensus signatures at {:.1} and {:.1} us each to sign and verify on one core, \
                 over {} cores: at best {:.2} s wall ({:.0}x real time); this run reached {:.2} of that bound",
                row["scenario"].as_str().unwrap_or(""),
                bound["client_signatures"],
                bound["consensus_signatures"],
                bound["client_sign_and_verify_us"].as_f64().unwrap_or(0.0),
                bound["sign_and_verify_us"].as_f64().unwrap_or(0.0),
                bound["cores"],
                bound["bound_wall_s"].as_f64().unwrap_or(0.0),
                bound["bound_virtual_to_wall"].as_f64().unwrap_or(0.0),
                bound["ratio_to_bound"].as_f64().unwrap_or(0.0),
            );
        }
    }
    Ok(())
}

/// Signatures in each round of [`sign_and_verify_s`].
const SAMPLE_SIGNATURES: usize = 1024;

/// Seconds one core takes to sign one transfer alone (as a validator signs its messages), to
/// sign one among many at once (`sign_many`, as the simulator's clients sign a window), and to
/// verify one in the clients' batches: the medians of five rounds of 1,024, signed in turn by
/// `client_keys` keys (a batch check costs less when keys repeat: one term a key).
fn sign_and_verify_s(client_keys: u64) -> (f64, f64, f64) {
    use tessera_systems::workload::{sign, sign_many, signing_key};
    let keys: Vec<_> = (0..client_keys.max(1)).map(|i| signing_key(0xb0b, i)).collect();
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (mut signs, mut many, mut verifies) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..5 {
        let signed: Vec<_> = (0..SAMPLE_SIGNATURES)
            .map(|i| {
                let key = &keys[i % keys.len()];
                let body = tessera_components::TxnBody::transfer(
                    1,
                    key.verifying_key().to_bytes(),
                    [7; 32],
                    1,
                    1,
                    (round * SAMPLE_SIGNATURES + i) as u64,
                );
                (key, body)
            })
            .collect();
        let started = Instant::now();
        let txns: Vec<_> = signed.iter().map(|(key, body)| sign(key, *body)).collect();
        signs.push(started.elapsed().as_secs_f64() / SAMPLE_SIGNATURES as f64);
        let started = Instant::now();
        let at_once = sign_many(&signed);
        many.push(started.elapsed().as_secs_f64() / SAMPLE_SIGNATURES as f64);
        assert_eq!(at_once, txns, "signing many at once gives the same signatures");
        let started = Instant::now();
        let txns: Vec<&tessera_components::Txn> = txns.iter().collect();
        let verdicts = crate::sim::clients::verify_in_batches(&txns);
        assert!(verdicts.iter().all(|ok| *ok), "the benchmark's own signatures verify");
        verifies.push(started.elapsed().as_secs_f64() / SAMPLE_SIGNATURES as f64);
    }
    (median(signs), median(many), median(verifies))
}
