//! The simulator's plots, as SVG next to the report: throughput over time, latency
//! percentiles over time, and the block-propagation CDF.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

type PlotResult = Result<(), Box<dyn std::error::Error>>;

fn series(report: &Value, key: &str) -> Vec<(f64, f64)> {
    report["series"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|row| Some((row["t_s"].as_f64()?, row[key].as_f64()?))).collect())
        .unwrap_or_default()
}

fn lines(
    path: &Path,
    title: &str,
    y_label: &str,
    curves: &[(&str, Vec<(f64, f64)>, RGBColor)],
) -> PlotResult {
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_max = curves.iter().flat_map(|(_, c, _)| c.iter().map(|p| p.0)).fold(1.0, f64::max);
    let y_max = curves.iter().flat_map(|(_, c, _)| c.iter().map(|p| p.1)).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart.configure_mesh().x_desc("virtual time (s)").y_desc(y_label).draw()?;
    for (name, curve, color) in curves {
        let color = *color;
        chart
            .draw_series(LineSeries::new(curve.iter().copied(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
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
    lines(
        &throughput,
        &format!("{name}: throughput"),
        "transactions / s",
        &[("submitted", series(report, "submitted"), BLUE), ("finalized", series(report, "finalized"), RED)],
    )?;
    let latency = dir.join("latency.svg");
    lines(
        &latency,
        &format!("{name}: submit → finalized latency"),
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
