//! The simulator's plots, as SVG next to the report: throughput over time, latency
//! percentiles over time, and the block-propagation CDF.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

use crate::plot::lines;

fn series(report: &Value, key: &str) -> Vec<(f64, f64)> {
    report["series"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|row| Some((row["t_s"].as_f64()?, row[key].as_f64()?))).collect())
        .unwrap_or_default()
}

/// Seconds per throughput bucket: at least three block intervals and at most ~150 buckets per
/// run, so a chain of slow blocks plots as a rate, not a comb of one-second spikes.
fn bucket_s(report: &Value) -> usize {
    let seconds = report["series"].as_array().map_or(0, Vec::len).max(1);
    let blocks = report["chain"]["height_max"].as_u64().unwrap_or(0).max(1);
    let interval_s = seconds as f64 / blocks as f64;
    (3.0 * interval_s).max(seconds as f64 / 150.0).ceil().max(1.0) as usize
}

/// Per-second rates averaged over buckets of `width` seconds, each plotted at its middle.
fn rebucket(points: &[(f64, f64)], width: usize) -> Vec<(f64, f64)> {
    points
        .chunks(width)
        .map(|chunk| {
            let middle = (chunk[0].0 + chunk[chunk.len() - 1].0) / 2.0;
            (middle, chunk.iter().map(|p| p.1).sum::<f64>() / chunk.len() as f64)
        })
        .collect()
}

/// Writes `throughput.svg`, `latency.svg` and `propagation.svg` into `dir`; returns their paths.
///
/// # Errors
/// A file that cannot be written.
pub fn write(
    dir: &Path,
    report: &Value,
    cdf: &[(f64, f64)],
) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let name = report["scenario"].as_str().unwrap_or("sim");
    let throughput = dir.join("throughput.svg");
    let width = bucket_s(report);
    let per = if width == 1 { String::new() } else { format!(" (mean over {width} s buckets)") };
    lines(
        &throughput,
        &format!("{name}: throughput{per}"),
        "virtual time (s)",
        "transactions / s",
        &[
            ("submitted", rebucket(&series(report, "submitted"), width), BLUE),
            ("finalized", rebucket(&series(report, "finalized"), width), RED),
        ],
    )?;
    let latency = dir.join("latency.svg");
    lines(
        &latency,
        &format!("{name}: submit → finalized latency"),
        "virtual time (s)",
        "ms",
        &[("p50", series(report, "latency_p50_ms"), BLUE), ("p99", series(report, "latency_p99_ms"), RED)],
    )?;
    let propagation = dir.join("propagation.svg");
    let root = SVGBackend::new(&propagation, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = cdf.iter().map(|p| p.0).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{name}: block propagation (every block, every node)"), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..1.0)?;
    chart.configure_mesh().x_desc("ms after the proposal").y_desc("fraction of (block, node)").draw()?;
    chart.draw_series(LineSeries::new(cdf.iter().copied(), RED.stroke_width(2)))?;
    root.present()?;
    drop(chart);
    drop(root);
    Ok(vec![throughput, latency, propagation])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_blocks_get_buckets_of_several_intervals_and_rates_keep_their_mean() {
        let run = |seconds: usize, height: u64| serde_json::json!({"series": vec![serde_json::json!({}); seconds], "chain": {"height_max": height}});
        assert_eq!(bucket_s(&run(60, 1200)), 1, "fast blocks keep one-second points");
        assert_eq!(bucket_s(&run(600, 120)), 15, "a block every 5 s: three intervals");
        assert_eq!(bucket_s(&run(3600, 100_000)), 24, "a long run: at most ~150 buckets");
        // Finalized every 5th second, 500 at a time: 100/s on average, in every bucket.
        let comb: Vec<(f64, f64)> =
            (0..30).map(|s| (s as f64, if s % 5 == 0 { 500.0 } else { 0.0 })).collect();
        let buckets = rebucket(&comb, 5);
        assert_eq!(buckets.len(), 6);
        assert!(buckets.iter().all(|(_, rate)| *rate == 100.0), "{buckets:?}");
        assert_eq!(buckets[0].0, 2.0);
    }
}
