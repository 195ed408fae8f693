//! `tessera sim`: a scenario in, a deterministic report and plots out; `--swarm` over seeds.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde_json::json;

use crate::InputError;
use crate::sim::engine::Sim;
use crate::sim::scenario::Scenario;
use crate::sim::{plot, swarm};

/// Arguments of `tessera sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Scenario file (TOML; see docs/sim.md and tools/scenarios/).
    #[arg(long, value_name = "FILE", required_unless_present_any = ["swarm", "merge"])]
    pub scenario: Option<PathBuf>,
    /// Seed (overrides the scenario's).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where report.json, timing.json and the plots go (default: sim-out/<scenario name>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Run a random small scenario per seed and check the invariants of each.
    #[arg(long, conflicts_with = "scenario", requires = "seeds")]
    pub swarm: bool,
    /// Seeds for --swarm, inclusive: A..B.
    #[arg(long, value_name = "A..B")]
    pub seeds: Option<String>,
    /// Checker self-test, not a node setting: plant the vote-amnesia bug (restarted validators
    /// forget their persisted safety state), so the swarm must report a safety violation.
    #[arg(long, requires = "swarm")]
    pub planted_amnesia: bool,
    /// With --swarm: run only shard K of N (K from 0 to N-1) of the seed range, for a cluster
    /// scheduler's array job; shards interleave and together cover the range once.
    #[arg(long, value_name = "K/N", requires = "swarm")]
    pub shard: Option<String>,
    /// With --swarm: write a JSON summary (every failing seed, with the command that
    /// reproduces it) to FILE, run every seed instead of stopping at the first failure, and
    /// exit 0 once it is written (--merge judges the campaign). With --merge: where the
    /// combined summary goes.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,
    /// Combine the --summary files of a sharded swarm into one report: every shard must be
    /// there once. Exit status 1 if any seed failed.
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with_all = ["scenario", "swarm"])]
    pub merge: Vec<PathBuf>,
}

/// Runs `tessera sim`.
///
/// # Errors
/// Bad arguments or scenario ([`InputError`]), unwritable output, or (exit 1) a failed
/// invariant.
pub fn run(args: &SimArgs) -> Result<(), Box<dyn std::error::Error>> {
    if args.swarm {
        return run_swarm(args);
    }
    if !args.merge.is_empty() {
        return run_merge(args);
    }
    let path = args.scenario.as_ref().ok_or_else(|| InputError("--scenario FILE is required".into()))?;
    let scenario = Scenario::load(path).map_err(InputError)?;
    check_memory(&scenario)?;
    let seed = args.seed.unwrap_or(scenario.seed);
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("sim-out").join(&scenario.name));
    std::fs::create_dir_all(&out)?;
    let virtual_total = scenario.duration_s;
    let name = scenario.name.clone();
    let started = Instant::now();
    let mut sim = Sim::new(scenario, seed).map_err(|error| InputError(error.to_string()))?;
    // Building the network (the genesis ledger, each validator's copy of it) before the first
    // event: what grows with `workload.accounts` rather than with the run's work.
    let setup = started.elapsed().as_secs_f64();
    let mut last_print = Instant::now();
    sim.run(|now_ns, events| {
        if last_print.elapsed().as_millis() >= 500 {
            last_print = Instant::now();
            let wall = started.elapsed().as_secs_f64();
            let reached = now_ns as f64 / 1e9;
            // Time left at the pace so far (virtual seconds per wall second).
            let eta = (virtual_total - reached).max(0.0) * wall / reached.max(1e-9);
            eprint!(
                "\rsim {name}: virtual {reached:.1}/{virtual_total:.0} s, {events} events, {:.0} events/s wall, ETA {}   ",
                events as f64 / wall.max(1e-9),
                eta_text(eta)
            );
            let _ = std::io::stderr().flush();
        }
    });
    let wall = started.elapsed().as_secs_f64();
    eprintln!();
    let report = sim.report();
    let report_path = out.join("report.json");
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)? + "\n")?;
    let plots = plot::write(&out, &report, &sim.recorder.propagation_cdf())?;
    let events = sim.events;
    let timing = json!({
        "wall_s": wall,
        "setup_s": setup,
        "events": events,
        "events_per_s": events as f64 / wall.max(1e-9),
        "virtual_s": virtual_total,
        "virtual_to_wall": virtual_total / wall.max(1e-9),
        "wall_ns_per_event": wall * 1e9 / events.max(1) as f64,
        "events_by_kind": sim.kinds.to_json(sim.ticks),
    });
    std::fs::write(out.join("timing.json"), serde_json::to_string_pretty(&timing)? + "\n")?;
    let t = &report["transactions"];
    println!("scenario {} seed {seed}", report["scenario"].as_str().unwrap_or(""));
    println!(
        "transactions submitted {} finalized {} ({:.1} tps)",
        t["submitted"],
        t["finalized"],
        t["finalized_tps"].as_f64().unwrap_or(0.0)
    );
    println!(
        "latency_ms p50 {} p99 {} · finality_lag_ms p50 {} · propagation t100 p50 {} ms",
        report["latency_ms"]["p50"],
        report["latency_ms"]["p99"],
        report["finality_lag_ms"]["p50"],
        report["block_propagation_ms"]["t100"]["p50"]
    );
    println!("chain height {}", report["chain"]["height_max"]);
    println!("safety {}", if report["invariants"]["safety"]["ok"] == true { "ok" } else { "VIOLATED" });
    println!("liveness {}", report["invariants"]["liveness"]);
    println!(
        "wall {wall:.2} s (setup {setup:.2} s) · {events} events · {:.0} events/s · virtual/wall {:.1}×",
        events as f64 / wall.max(1e-9),
        virtual_total / wall.max(1e-9)
    );
    println!("wrote {}", report_path.display());
    for plot in plots {
        println!("wrote {}", plot.display());
    }
    if report["invariants"]["safety"]["ok"] != true || report["invariants"]["liveness"]["ok"] == false {
        return Err(format!(
            "invariant failed; reproduce: tessera sim --scenario {} --seed {seed}",
            path.display()
        )
        .into());
    }
    Ok(())
}

fn run_swarm(args: &SimArgs) -> Result<(), Box<dyn std::error::Error>> {
    let range = args.seeds.as_deref().ok_or_else(|| InputError("--swarm needs --seeds A..B".into()))?;
    let (first, last) = swarm::parse_range(range).map_err(InputError)?;
    let shard =
        args.shard.as_deref().map_or(Ok(swarm::Shard::WHOLE), swarm::Shard::parse).map_err(InputError)?;
    let keep_going = args.summary.is_some();
    let planted = if args.planted_amnesia { " --planted-amnesia" } else { "" };
    let started = Instant::now();
    let total = shard.len(first, last);
    let (mut events, mut passed, mut failed) = (0u64, 0u64, Vec::new());
    for (done, seed) in shard.seeds(first, last).enumerate() {
        // A seed whose run errors or panics is a failing seed, not the end of the shard: a
        // panic is one of the bugs a swarm is for.
        let run = std::panic::catch_unwind(|| swarm::run_seed_with(seed, args.planted_amnesia));
        let result = match run {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => swarm::SeedResult { seed, failure: Some(format!("error: {error}")), events: 0 },
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                swarm::SeedResult { seed, failure: Some(format!("panic: {message}")), events: 0 }
            }
        };
        events += result.events;
        match result.failure {
            None => passed += 1,
            Some(failure) => {
                eprintln!();
                println!("seed {seed} FAILED: {failure}");
                let reproduce = format!("{}{planted}", swarm::reproduce(seed));
                println!("reproduce: {reproduce}");
                if let Some(out) = &args.out {
                    std::fs::create_dir_all(out)?;
                    let path = out.join(format!("swarm-{seed}.toml"));
                    std::fs::write(&path, toml::to_string_pretty(&Scenario::random(seed))?)?;
                    println!("scenario written to {} (run it with tessera sim --scenario)", path.display());
                }
                if !keep_going {
                    return Err(format!("swarm: seed {seed} failed").into());
                }
                failed.push(swarm::Failure { seed, failure, reproduce });
            }
        }
        if done % 16 == 15 || done as u64 + 1 == total {
            let wall = started.elapsed().as_secs_f64();
            let left = (total - done as u64 - 1) as f64 * wall / (done as f64 + 1.0);
            eprint!(
                "\rswarm{}: {}/{total} seeds, {} failed, {:.0} seeds/hour, ETA {left:.0} s   ",
                if shard == swarm::Shard::WHOLE { String::new() } else { format!(" shard {shard}") },
                done + 1,
                failed.len(),
                (done as f64 + 1.0) * 3600.0 / wall.max(1e-9),
            );
            let _ = std::io::stderr().flush();
        }
    }
    eprintln!();
    let wall = started.elapsed().as_secs_f64();
    if let Some(path) = &args.summary {
        let summary = swarm::Summary {
            seeds: format!("{first}..{last}"),
            shard_count: shard.count,
            shards: vec![shard.index],
            seeds_run: total,
            passed,
            failed: failed.clone(),
            planted_amnesia: args.planted_amnesia,
            events,
            wall_s: wall,
        };
        std::fs::write(path, serde_json::to_string_pretty(&summary)? + "\n")?;
        println!("wrote {}", path.display());
    }
    let of_shard = if shard == swarm::Shard::WHOLE { String::new() } else { format!(", shard {shard}") };
    println!("swarm: {passed} of {total} seeds passed ({first}..{last}{of_shard})");
    println!(
        "wall {wall:.2} s · {:.0} seeds/hour · {:.0} events/s",
        total as f64 * 3600.0 / wall.max(1e-9),
        events as f64 / wall.max(1e-9)
    );
    if failed.is_empty() {
        Ok(())
    } else if args.summary.is_some() {
        // A shard's failing seeds are its result, written above; `--merge` judges the
        // campaign. Exiting 0 keeps a scheduler (an indexed Job with no retries) from failing
        // the whole campaign and stopping the other shards before they write theirs.
        println!(
            "swarm: {} seeds failed; they are in the summary (tessera sim --merge lists them)",
            failed.len()
        );
        Ok(())
    } else {
        Err(format!("swarm: {} seeds failed", failed.len()).into())
    }
}

/// Bytes a simulated network holds per funded account at most: the genesis ledger (about 190:
/// the columns, the address index and the tree) and each validator's copy of what a block
/// writes (80: the balances and the tree). The validators' clones share the tree's pages until
/// they write them, so a run holds the whole 80 only once its transfers have written every
/// page: `lan-4-accounts-10m` measured 5.16 GB for 10 M accounts and four validators when each
/// copied its tree at the start (516 an account against 510 here), and 2.60 GB since
/// (`docs/sim.md`).
const SIM_BYTES_PER_ACCOUNT: u64 = 190;
const SIM_BYTES_PER_ACCOUNT_PER_VALIDATOR: u64 = 80;

/// Refuses, before anything is built, a scenario whose ledgers alone would not fit the memory
/// the machine has available (`MemAvailable`): `workload.accounts = 100000000` with 1,000
/// validators asked for eight terabytes, and the run grew until the kernel stopped it. Where
/// the figure cannot be read (no `/proc/meminfo`), nothing is refused.
///
/// # Errors
/// [`InputError`] with the estimate and what is available.
fn check_memory(scenario: &Scenario) -> Result<(), InputError> {
    let accounts = scenario.workload.accounts;
    let validators = u64::from(scenario.validators.count);
    let needed = accounts.saturating_mul(
        SIM_BYTES_PER_ACCOUNT.saturating_add(SIM_BYTES_PER_ACCOUNT_PER_VALIDATOR * validators),
    );
    crate::check_memory(needed, &format!("workload.accounts = {accounts} with {validators} validators"))
        .map_err(|error| InputError(format!("{error}: fewer accounts or validators")))
}

/// `--merge`: the shards' summaries in, one summary out.
fn run_merge(args: &SimArgs) -> Result<(), Box<dyn std::error::Error>> {
    let mut summaries = Vec::new();
    for path in &args.merge {
        let text = crate::read_input_file(path, crate::SMALL_FILE_BYTES_MAX)
            .map_err(|error| InputError(format!("cannot read {}: {error}", path.display())))?;
        let summary: swarm::Summary = serde_json::from_str(&text)
            .map_err(|error| InputError(format!("{} is not a swarm summary: {error}", path.display())))?;
        summaries.push(summary);
    }
    let merged = swarm::merge(summaries).map_err(InputError)?;
    if let Some(path) = &args.summary {
        std::fs::write(path, serde_json::to_string_pretty(&merged)? + "\n")?;
        println!("wrote {}", path.display());
    }
    println!(
        "swarm: {} of {} seeds passed ({}, {} shards{}), {:.0} s of wall time in all",
        merged.passed,
        merged.seeds_run,
        merged.seeds,
        merged.shard_count,
        if merged.planted_amnesia { ", planted amnesia" } else { "" },
        merged.wall_s
    );
    for failure in &merged.failed {
        println!("seed {} FAILED: {}", failure.seed, failure.failure);
        println!("reproduce: {}", failure.reproduce);
    }
    if merged.failed.is_empty() {
        Ok(())
    } else {
        Err(format!("swarm: {} seeds failed", merged.failed.len()).into())
    }
}

/// Seconds left as `1h02m`, `3m05s` or `42s`.
fn eta_text(seconds: f64) -> String {
    let whole = seconds.round().clamp(0.0, 1e9) as u64;
    match whole {
        0..60 => format!("{whole}s"),
        60..3600 => format!("{}m{:02}s", whole / 60, whole % 60),
        _ => format!("{}h{:02}m", whole / 3600, whole % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn eta_reads_in_the_largest_sensible_units() {
        assert_eq!(super::eta_text(0.2), "0s");
        assert_eq!(super::eta_text(42.4), "42s");
        assert_eq!(super::eta_text(185.0), "3m05s");
        assert_eq!(super::eta_text(3720.0), "1h02m");
        assert_eq!(super::eta_text(f64::INFINITY), "277777h46m");
    }

    /// A scenario whose ledgers would not fit the machine is refused before anything is built,
    /// with the estimate: a hundred million accounts and a thousand validators grew until the
    /// kernel stopped the run.
    #[test]
    fn a_scenario_past_the_memory_available_is_refused_with_its_estimate() {
        assert_eq!(crate::mem_available("MemTotal: 100 kB\nMemAvailable:   2048 kB\n"), Some(2 << 20));
        assert_eq!(crate::mem_available("MemTotal: 100 kB\n"), None);
        let mut scenario = crate::sim::scenario::Scenario::load(std::path::Path::new(
            "tools/scenarios/lan-4-accounts-1m.toml",
        ))
        .unwrap();
        assert!(super::check_memory(&scenario).is_ok(), "a million accounts, four validators: 0.5 GB");
        (scenario.workload.accounts, scenario.validators.count) = (100_000_000, 1000);
        let error = super::check_memory(&scenario).unwrap_err().to_string();
        assert!(error.contains("needs about 8019.0 GB"), "{error}");
    }
}
