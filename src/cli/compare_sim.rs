//! `tessera devnet --compare-sim`: the devnet's workload run again in the simulator,
//! calibrated on this machine, and the two side by side.
//!
//! The simulated network is `tools/scenarios/devnet-4.toml` (compiled in) with the devnet's
//! validator count, rate and duration: every validator on one host with this machine's
//! cores, loopback links, the node's default consensus settings, and the cost table
//! `tessera bench calibrate` wrote (`--costs`).

use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use plotters::style::{BLUE, RED};
use serde_json::{Value, json};

use crate::sim::costs::{CostFile, Costs};
use crate::sim::scenario::Scenario;

/// The simulated devnet's template.
const TEMPLATE: &str = include_str!("../../tools/scenarios/devnet-4.toml");

/// The points of a latency CDF: (milliseconds, fraction at or below), every percent and the
/// 99.9th.
pub fn cdf(histogram: &Histogram<u64>, unit_per_ms: f64) -> Vec<(f64, f64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<(f64, f64)> = (0..=100)
        .map(|percent| {
            let q = f64::from(percent) / 100.0;
            (histogram.value_at_quantile(q) as f64 / unit_per_ms, q)
        })
        .collect();
    points.insert(100, (histogram.value_at_quantile(0.999) as f64 / unit_per_ms, 0.999));
    points
}

/// The simulated twin of a devnet of `validators` offered `rate` transactions a second for
/// `duration_s`, with the cost table at `costs` on a host of `cores` cores.
///
/// # Errors
/// A cost table that cannot be read, or values the scenario refuses.
pub fn scenario(
    validators: u32,
    rate: f64,
    duration_s: f64,
    costs: &Path,
    cores: u32,
) -> Result<Scenario, String> {
    let mut scenario: Scenario = toml::from_str(TEMPLATE).map_err(|e| format!("devnet-4.toml: {e}"))?;
    scenario.name = format!("devnet-{validators}");
    scenario.duration_s = duration_s;
    scenario.validators.count = validators;
    scenario.validators.per_host = validators;
    scenario.validators.cores = cores;
    scenario.validators.costs = Some(Costs::Table(CostFile::load(costs)?.costs));
    scenario.workload.rate = vec![[0.0, rate], [duration_s, rate]];
    scenario.validate().map_err(|e| e.to_string())?;
    Ok(scenario)
}

/// Runs the simulated side of `real` (the devnet's report, with `latency_cdf_ms`), prints
/// both, and writes `compare.json`, `sim-report.json` and `latency_cdf.svg` into `out`.
/// Returns the comparison.
///
/// # Errors
/// The simulation cannot be set up, or a file cannot be written.
pub fn compare(real: &Value, costs: &Path, out: &Path) -> Result<Value, Box<dyn std::error::Error>> {
    let validators = real["validators"].as_u64().unwrap_or(0) as u32;
    let rate = real["rate"].as_f64().unwrap_or(0.0);
    let duration_s = real["duration_s"].as_f64().unwrap_or(0.0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let mut scenario = scenario(validators, rate, duration_s, costs, cores).map_err(crate::InputError)?;
    let option = |key: &str| real[key].as_u64().map(|from| usize::try_from(from).unwrap_or(usize::MAX));
    scenario.validators.aggregate_votes_from = option("aggregate_votes_from");
    scenario.validators.forward_to_leaders_from = option("forward_to_leaders_from");
    eprintln!("compare: simulating {} ({validators} validators on {cores} cores) ...", scenario.name);
    let mut sim = crate::sim::engine::run(scenario, 1, |_, _| {})?;
    let simulated = sim.report();
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("sim-report.json"), serde_json::to_string_pretty(&simulated)? + "\n")?;

    let real_blocks =
        (real["blocks_pushed"].as_u64().unwrap_or(0) + real["blocks_fetched"].as_u64().unwrap_or(0)) as f64;
    let sim_height = simulated["chain"]["height_max"].as_f64().unwrap_or(0.0);
    // Everything validators sent: consensus messages and forwarded transaction batches.
    let messages = simulated["network"]["messages_sent"].as_f64();
    let bytes = simulated["network"]["bytes_sent"].as_f64();
    let per_block = |total: Option<f64>| total.filter(|_| sim_height > 0.0).map(|t| t / sim_height);
    // (name, real, simulated); blocks/s counts the blocks the devnet's tracker saw finalized
    // during the load (its height also counts blocks from before it).
    let rows: Vec<(&str, Option<f64>, Option<f64>)> = vec![
        (
            "finalized_tps",
            real["finalized_tps"].as_f64(),
            simulated["transactions"]["finalized_tps"].as_f64(),
        ),
        ("blocks_per_s", Some(real_blocks / duration_s.max(1e-9)), Some(sim_height / duration_s.max(1e-9))),
        ("latency_p50_ms", real["latency_ms"]["p50"].as_f64(), simulated["latency_ms"]["p50"].as_f64()),
        ("latency_p90_ms", real["latency_ms"]["p90"].as_f64(), simulated["latency_ms"]["p90"].as_f64()),
        ("latency_p99_ms", real["latency_ms"]["p99"].as_f64(), simulated["latency_ms"]["p99"].as_f64()),
        ("messages_per_block", real["messages_per_block"].as_f64(), per_block(messages)),
        ("bytes_per_block", real["bytes_per_block"].as_f64(), per_block(bytes)),
    ];
    println!("\n== devnet vs simulator ({validators} validators, {rate:.0} txn/s, {duration_s:.0} s) ==");
    println!("{:<20}{:>12}{:>12}{:>10}", "", "real", "simulated", "sim/real");
    let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
    let mut figures = serde_json::Map::new();
    for (name, r, s) in &rows {
        let ratio = match (r, s) {
            (Some(r), Some(s)) if *r > 0.0 => Some(s / r),
            _ => None,
        };
        println!(
            "{name:<20}{:>12}{:>12}{:>10}",
            show(*r),
            show(*s),
            ratio.map_or("-".into(), |q| format!("{q:.3}"))
        );
        figures.insert((*name).into(), json!({"real": r, "simulated": s, "ratio": ratio}));
    }
    let comparison = json!({
        "validators": validators,
        "rate": rate,
        "duration_s": duration_s,
        "cores": cores,
        "costs": costs.display().to_string(),
        "figures": figures,
        "real": real,
        "simulated": simulated,
    });
    let path = out.join("compare.json");
    std::fs::write(&path, serde_json::to_string_pretty(&comparison)? + "\n")?;
    println!("comparison written to {}", path.display());

    let real_cdf: Vec<(f64, f64)> = real["latency_cdf_ms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|point| Some((point[0].as_f64()?, point[1].as_f64()?)))
        .collect();
    let sim_cdf = cdf(sim.recorder.latency_us(), 1000.0);
    let plot = out.join("latency_cdf.svg");
    crate::plot::lines(
        &plot,
        &format!("submit → finalized latency, {validators} validators at {rate:.0} txn/s"),
        "ms",
        "fraction of transactions",
        &[("devnet", real_cdf, BLUE), ("simulator", sim_cdf, RED)],
    )?;
    println!("plot written to {}", plot.display());
    Ok(comparison)
}

/// Where the comparison goes by default: beside the devnet's data.
pub fn default_out(data_dir: &Path) -> PathBuf {
    data_dir.join("compare")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_twin_follows_the_devnet() {
        let dir = std::env::temp_dir().join(format!("tessera-compare-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let costs = dir.join("costs.toml");
        let table = CostFile { measured: None, costs: crate::sim::costs::table() };
        std::fs::write(&costs, toml::to_string(&table).unwrap()).unwrap();
        let twin = scenario(7, 3500.0, 12.0, &costs, 2).unwrap();
        assert_eq!((twin.validators.count, twin.validators.per_host, twin.validators.cores), (7, 7, 2));
        assert_eq!(twin.workload.rate_at(6.0), 3500.0);
        assert_eq!(twin.validators.costs, Some(Costs::Table(crate::sim::costs::table())));
        let missing = scenario(4, 1.0, 1.0, &dir.join("none.toml"), 2).unwrap_err();
        assert!(missing.contains("none.toml"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();

        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for ms in 1..=100 {
            histogram.record(ms).unwrap();
        }
        let points = cdf(&histogram, 1.0);
        assert_eq!(points.len(), 102);
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1), "{points:?}");
        assert_eq!(points[50], (50.0, 0.5));
    }
}
