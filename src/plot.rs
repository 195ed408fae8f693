//! Line plots as SVG, for the simulator's and the devnet's reports.

use std::path::Path;

use plotters::prelude::*;

/// A plot's outcome.
pub type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// Distinct line colours, for plots with a curve per node.
pub const COLOURS: [RGBColor; 8] =
    [BLUE, RED, RGBColor(0, 150, 0), MAGENTA, RGBColor(230, 140, 0), CYAN, BLACK, RGBColor(120, 70, 20)];

/// Draws `curves` (name, points, colour) on one pair of axes starting at zero, with a legend,
/// into the SVG file `path`.
///
/// # Errors
/// A file that cannot be written.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
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
    chart.configure_mesh().x_desc(x_label).y_desc(y_label).draw()?;
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
