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
    #[arg(long, value_name = "FILE", required_unless_present = "swarm")]
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
    let path = args.scenario.as_ref().ok_or_else(|| InputError("--scenario FILE is required".into()))?;
    let text = std::fs::read_to_string(path)
        .map_err(|error| InputError(format!("cannot read {}: {error}", path.display())))?;
    let scenario =
        Scenario::parse(&text).map_err(|error| InputError(format!("{}: {error}", path.display())))?;
    let seed = args.seed.unwrap_or(scenario.seed);
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("sim-out").join(&scenario.name));
    std::fs::create_dir_all(&out)?;
    let virtual_total = scenario.duration_s;
    let name = scenario.name.clone();
    let started = Instant::now();
    let mut sim = Sim::new(scenario, seed).map_err(|error| InputError(error.to_string()))?;
    let mut last_print = Instant::now();
    sim.run(|now_ns, events| {
        if last_print.elapsed().as_millis() >= 500 {
            last_print = Instant::now();
            let wall = started.elapsed().as_secs_f64();
            eprint!(
                "\rsim {name}: virtual {:.1}/{virtual_total:.0} s, {events} events, {:.0} events/s wall   ",
                now_ns as f64 / 1e9,
                events as f64 / wall.max(1e-9)
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
        "events": events,
        "events_per_s": events as f64 / wall.max(1e-9),
        "virtual_s": virtual_total,
        "virtual_to_wall": virtual_total / wall.max(1e-9),
        "wall_ns_per_event": wall * 1e9 / events.max(1) as f64,
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
        "wall {wall:.2} s · {events} events · {:.0} events/s · virtual/wall {:.1}×",
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
    let started = Instant::now();
    let total = last - first + 1;
    let mut events = 0u64;
    for (done, seed) in (first..=last).enumerate() {
        let result = swarm::run_seed_with(seed, args.planted_amnesia)?;
        events += result.events;
        if let Some(failure) = result.failure {
            eprintln!();
            println!("seed {seed} FAILED: {failure}");
            let planted = if args.planted_amnesia { " --planted-amnesia" } else { "" };
            println!("reproduce: {}{planted}", swarm::reproduce(seed));
            if let Some(out) = &args.out {
                std::fs::create_dir_all(out)?;
                let path = out.join(format!("swarm-{seed}.toml"));
                std::fs::write(&path, toml::to_string_pretty(&Scenario::random(seed))?)?;
                println!("scenario written to {} (run it with tessera sim --scenario)", path.display());
            }
            return Err(format!("swarm: seed {seed} failed").into());
        }
        if started.elapsed().as_millis() > 0 && (done % 16 == 15 || done as u64 + 1 == total) {
            eprint!("\rswarm: {}/{total} seeds passed", done + 1);
            let _ = std::io::stderr().flush();
        }
    }
    eprintln!();
    let wall = started.elapsed().as_secs_f64();
    println!("swarm: {total} seeds passed ({first}..{last})");
    println!(
        "wall {wall:.2} s · {:.0} seeds/hour · {:.0} events/s",
        total as f64 * 3600.0 / wall.max(1e-9),
        events as f64 / wall.max(1e-9)
    );
    Ok(())
}
