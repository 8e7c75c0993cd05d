//! SVG line charts drawn with `plotters`: one series per line, points
//! marked, a legend, optionally logarithmic axes (granularities and burst
//! sizes span orders of magnitude).

use anyhow::{Context as _, anyhow};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

/// Width and height of every chart, in pixels.
const SIZE: (u32, u32) = (760, 440);

/// A named line of (x, y) points.
pub struct Series {
    /// Shown in the legend.
    pub name: String,
    /// In the order they are joined.
    pub points: Vec<(f64, f64)>,
}

/// What a chart shows and how its axes are scaled.
pub struct Chart<'a> {
    /// Its caption.
    pub title: &'a str,
    /// What the x axis measures.
    pub x_label: &'a str,
    /// What the y axis measures.
    pub y_label: &'a str,
    /// Logarithmic x axis (values must be positive).
    pub log_x: bool,
    /// Logarithmic y axis (values must be positive).
    pub log_y: bool,
}

/// `[lo, hi]` around `values`, padded so that no point sits on the frame.
fn bounds(values: impl Iterator<Item = f64>, log: bool) -> anyhow::Result<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return Err(anyhow!("nothing to plot"));
    }
    Ok(if log {
        (lo / 1.5, hi * 1.5)
    } else {
        let pad = ((hi - lo) * 0.05).max(hi.abs() * 0.05).max(1e-9);
        // Quantities here are sizes and times: their axis starts at 0.
        (if lo >= 0.0 { 0.0 } else { lo - pad }, hi + pad)
    })
}

impl Chart<'_> {
    /// The chart of `series` as an SVG document.
    ///
    /// # Errors
    /// When there is nothing to plot or drawing fails.
    pub fn svg(&self, series: &[Series]) -> anyhow::Result<String> {
        let xs = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)), self.log_x)?;
        let ys = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), self.log_y)?;
        let mut svg = String::new();
        match (self.log_x, self.log_y) {
            (false, false) => self.draw(&mut svg, xs.0..xs.1, ys.0..ys.1, series),
            (true, false) => self.draw(&mut svg, (xs.0..xs.1).log_scale(), ys.0..ys.1, series),
            (false, true) => self.draw(&mut svg, xs.0..xs.1, (ys.0..ys.1).log_scale(), series),
            (true, true) => self.draw(&mut svg, (xs.0..xs.1).log_scale(), (ys.0..ys.1).log_scale(), series),
        }
        .map_err(|e| anyhow!("drawing {}: {e}", self.title))?;
        Ok(svg)
    }

    fn draw<X, Y>(&self, svg: &mut String, x: X, y: Y, series: &[Series]) -> Result<(), Box<dyn std::error::Error + '_>>
    where
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 18))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(x, y)?;
        chart.configure_mesh().x_desc(self.x_label).y_desc(self.y_label).light_line_style(WHITE).draw()?;
        for (index, line) in series.iter().enumerate() {
            let color = Palette99::pick(index).to_rgba();
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), color.stroke_width(2)))?
                .label(line.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            chart.draw_series(line.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        root.present()?;
        Ok(())
    }
}

/// Writes `svg` to `dir/name` and answers the file name, for the report.
pub fn save(dir: &std::path::Path, name: &str, svg: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(log_x: bool) -> Chart<'static> {
        Chart { title: "latency", x_label: "granularity", y_label: "seconds", log_x, log_y: false }
    }

    #[test]
    fn a_chart_is_an_svg_with_every_series_named() {
        let series = [
            Series { name: "broadcast".into(), points: vec![(1.0, 0.5), (2.0, 0.3), (8.0, 0.1)] },
            Series { name: "all-to-all".into(), points: vec![(1.0, 0.9), (8.0, 0.2)] },
        ];
        for log_x in [false, true] {
            let svg = chart(log_x).svg(&series).expect("draws");
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
            for text in ["latency", "granularity", "seconds", "broadcast", "all-to-all"] {
                assert!(svg.contains(text), "{text} missing");
            }
        }
    }

    #[test]
    fn nothing_to_plot_is_an_error_not_a_blank_chart() {
        assert!(chart(false).svg(&[]).is_err());
        let zeros = [Series { name: "zero".into(), points: vec![(0.0, 1.0)] }];
        assert!(chart(true).svg(&zeros).is_err(), "a log axis has no place for 0");
    }
}
