//! Figures as SVG with plotters: no system libraries, a bundled font (DejaVu Sans), and the
//! same bytes on every machine.

use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};

const FONT: &[u8] = include_bytes!("../../data/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
const SIZE: (u32, u32) = (900, 540);
/// Grid lines: light enough that the data reads first.
const GRID: RGBColor = RGBColor(215, 215, 215);
const GRID_LIGHT: RGBColor = RGBColor(240, 240, 240);
/// The fill of data bars (the figures' first colour), as the SVG writes it.
const BAR_FILL: &str = "#466EAA";

/// Gives the first `titles.len()` `<tag>` elements (with fill `fill`, when given) of the SVG
/// at `path` a `<title>`, in document order: the value a reader sees on hover, with no script.
fn add_titles(path: &Path, tag: &str, fill: Option<&str>, titles: &[String]) -> Result<()> {
    let svg = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
    let open = format!("<{tag} ");
    let mut out = String::with_capacity(svg.len() + titles.len() * 32);
    let mut rest = svg.as_str();
    let mut next = titles.iter();
    while let Some(at) = rest.find(&open) {
        let Some(end) = rest[at..].find("/>").map(|e| at + e) else {
            break;
        };
        let element = &rest[at..end];
        let wanted = fill.is_none_or(|f| element.contains(&format!("fill=\"{f}\"")));
        match next.clone().next().filter(|_| wanted) {
            Some(title) => {
                next.next();
                out.push_str(&rest[..end]);
                let escaped = title
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                out.push_str(&format!("><title>{escaped}</title></{tag}>"));
            }
            None => out.push_str(&rest[..end + 2]),
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    std::fs::write(path, out).map_err(Error::io("write", path))
}

fn value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bundled font is valid; if it were not, text would fail to draw and the chart
        // functions would return an error rather than panic.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

fn chart_error(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |message| Error::Chart {
        path: path.to_owned(),
        message,
    }
}

/// Axis tick text: whole numbers without a fraction (`200`, not `200.0`), others with at most
/// three significant decimals.
fn tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        let text = format!("{v:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

fn padded(range: Range<f64>) -> Range<f64> {
    let span = (range.end - range.start).abs().max(1e-9);
    range.start..range.end + span * 0.05
}

/// Horizontal bars, one per label, top to bottom in the given order.
pub fn bar_chart(
    path: &Path,
    title: &str,
    labels: &[String],
    values: &[f64],
    x_label: &str,
) -> Result<()> {
    register_font();
    let err = chart_error(path);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let max = values.iter().copied().fold(0.0f64, f64::max).max(1.0);
    let n = labels.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(190)
        .build_cartesian_2d(0.0..max * 1.08, 0.0..n as f64)
        .map_err(|e| err(e.to_string()))?;
    let label_of = |y: &f64| {
        let row = n as f64 - y - 0.5;
        if row >= 0.0 && (row - row.round()).abs() < 1e-6 {
            labels
                .get(row.round() as usize)
                .cloned()
                .unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID)
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&label_of)
        .x_label_formatter(&tick)
        .x_desc(x_label)
        .label_style((FAMILY, 13))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(values.iter().enumerate().map(|(i, v)| {
            let top = n as f64 - i as f64;
            Rectangle::new(
                [(0.0, top - 0.85), (*v, top - 0.15)],
                RGBColor(70, 110, 170).filled(),
            )
        }))
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    drop(chart);
    drop(root);
    let titles: Vec<String> = labels
        .iter()
        .zip(values)
        .map(|(l, v)| format!("{l}: {}", value(*v)))
        .collect();
    add_titles(path, "rect", Some(BAR_FILL), &titles)
}

/// A histogram from precomputed bins `(low, high, count)`.
pub fn histogram(
    path: &Path,
    title: &str,
    bins: &[(f64, f64, f64)],
    x_label: &str,
    y_label: &str,
) -> Result<()> {
    register_font();
    let err = chart_error(path);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let lo = bins.first().map_or(0.0, |b| b.0);
    let hi = bins.last().map_or(1.0, |b| b.1).max(lo + 1e-9);
    let top = bins.iter().map(|b| b.2).fold(0.0f64, f64::max).max(1.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(lo..hi, padded(0.0..top))
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID)
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style((FAMILY, 13))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(bins.iter().map(|(a, b, c)| {
            Rectangle::new([(*a, 0.0), (*b, *c)], RGBColor(70, 110, 170).filled())
        }))
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    drop(chart);
    drop(root);
    let titles: Vec<String> = bins
        .iter()
        .map(|(a, b, c)| format!("{} to {}: {}", value(*a), value(*b), value(*c)))
        .collect();
    add_titles(path, "rect", Some(BAR_FILL), &titles)
}

/// One series of a line chart, with an optional error band (mean +- std).
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
    /// Half-width of the band around each point, if any.
    pub band: Option<Vec<f64>>,
}

/// Lines (with optional bands) and an optional horizontal reference line.
pub fn line_chart(
    path: &Path,
    title: &str,
    series: &[Series],
    x_label: &str,
    y_label: &str,
    reference: Option<(f64, String)>,
) -> Result<()> {
    register_font();
    let err = chart_error(path);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let ys = series.iter().flat_map(|s| {
        s.points.iter().enumerate().flat_map(move |(i, p)| {
            let w = s.band.as_ref().map_or(0.0, |b| b[i]);
            [p.1 - w, p.1 + w]
        })
    });
    let (mut y0, mut y1) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    if let Some((r, _)) = &reference {
        y0 = y0.min(*r);
        y1 = y1.max(*r);
    }
    if x0 > x1 {
        return Err(err("no points to draw".into()));
    }
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1.max(x0 + 1e-9), padded(y0.min(0.0)..y1))
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID)
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style((FAMILY, 13))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let colors = [
        RGBColor(70, 110, 170),
        RGBColor(200, 90, 40),
        RGBColor(60, 150, 80),
        RGBColor(140, 80, 160),
    ];
    for (k, s) in series.iter().enumerate() {
        let color = colors[k % colors.len()];
        if let Some(band) = &s.band {
            let upper = s.points.iter().zip(band).map(|(p, w)| (p.0, p.1 + w));
            let lower = s.points.iter().zip(band).rev().map(|(p, w)| (p.0, p.1 - w));
            let polygon: Vec<(f64, f64)> = upper.chain(lower).collect();
            chart
                .draw_series(std::iter::once(Polygon::new(
                    polygon,
                    color.mix(0.2).filled(),
                )))
                .map_err(|e| err(e.to_string()))?;
        }
        chart
            .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        // A dot per point, to hover over.
        chart
            .draw_series(s.points.iter().map(|p| Circle::new(*p, 2, color.filled())))
            .map_err(|e| err(e.to_string()))?;
    }
    if let Some((value, label)) = reference {
        chart
            .draw_series(LineSeries::new(
                vec![(x0, value), (x1, value)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| err(e.to_string()))?
            .label(label)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FAMILY, 13))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    drop(chart);
    drop(root);
    let titles: Vec<String> = series
        .iter()
        .flat_map(|s| {
            s.points.iter().enumerate().map(move |(i, p)| {
                let band = s
                    .band
                    .as_ref()
                    .map_or_else(String::new, |b| format!(" ± {}", value(b[i])));
                format!("{}: {} at {}{band}", s.name, value(p.1), value(p.0))
            })
        })
        .collect();
    add_titles(path, "circle", None, &titles)
}

/// Equal-width bins over `values`: `(low, high, count)`.
pub fn bins(values: &[f64], count: usize) -> Vec<(f64, f64, f64)> {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() || count == 0 {
        return Vec::new();
    }
    let width = ((hi - lo) / count as f64).max(1e-12);
    let mut counts = vec![0.0; count];
    for v in values {
        let i = (((v - lo) / width) as usize).min(count - 1);
        counts[i] += 1.0;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (lo + i as f64 * width, lo + (i + 1) as f64 * width, c))
        .collect()
}

/// Points of several named series as dots, x in [0, 1] and y up to 1 (scores).
pub fn scatter(
    path: &Path,
    title: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    x_label: &str,
    y_label: &str,
) -> Result<()> {
    let ys = series.iter().flat_map(|s| s.1.iter().map(|p| p.1));
    let y0 = ys.fold(1.0f64, f64::min).min(0.9);
    let axes = Axes {
        x: (0.0, 1.02),
        y: (y0 - 0.01, 1.005),
        diagonal: false,
    };
    scatter_on(path, title, series, (x_label, y_label), axes)
}

/// The ranges of a scatter plot, and whether to draw the line y = x (where a prediction
/// equals its target, or two scores are equal).
pub struct Axes {
    /// Range of x.
    pub x: (f64, f64),
    /// Range of y.
    pub y: (f64, f64),
    /// Draw y = x.
    pub diagonal: bool,
}

impl Axes {
    /// The same range on both axes, covering every point with a margin, and y = x drawn.
    pub fn square_around(series: &[(&str, Vec<(f64, f64)>)]) -> Self {
        let values = series
            .iter()
            .flat_map(|s| s.1.iter().flat_map(|p| [p.0, p.1]))
            .filter(|v| v.is_finite());
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let (lo, hi) = if lo.is_finite() && hi > lo {
            (lo, hi)
        } else {
            (0.0, 1.0)
        };
        let pad = (hi - lo) * 0.03;
        Self {
            x: (lo - pad, hi + pad),
            y: (lo - pad, hi + pad),
            diagonal: true,
        }
    }
}

/// Points of several named series as dots on the given axes.
pub fn scatter_on(
    path: &Path,
    title: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    (x_label, y_label): (&str, &str),
    axes: Axes,
) -> Result<()> {
    register_font();
    let err = chart_error(path);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(axes.x.0..axes.x.1, axes.y.0..axes.y.1)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID)
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style((FAMILY, 13))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    if axes.diagonal {
        let (lo, hi) = (axes.x.0.max(axes.y.0), axes.x.1.min(axes.y.1));
        chart
            .draw_series(LineSeries::new([(lo, lo), (hi, hi)], GRID.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?;
    }
    let colors = [
        RGBColor(70, 110, 170),
        RGBColor(200, 90, 40),
        RGBColor(60, 150, 80),
    ];
    for (k, (name, points)) in series.iter().enumerate() {
        let color = colors[k % colors.len()];
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(|e| err(e.to_string()))?
            .label(*name)
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FAMILY, 13))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    drop(chart);
    drop(root);
    // Data dots come first in the file; the legend's come after them and get no title.
    let titles: Vec<String> = series
        .iter()
        .flat_map(|(name, points)| {
            points
                .iter()
                .map(move |p| format!("{name}: {}, {}", value(p.0), value(p.1)))
        })
        .collect();
    add_titles(path, "circle", None, &titles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bar_point_and_dot_has_its_value_on_hover() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let bars = dir.path().join("bars.svg");
        bar_chart(
            &bars,
            "t",
            &["Rock".into(), "Jazz & Blues".into()],
            &[3.0, 0.5],
            "tracks",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let svg = std::fs::read_to_string(&bars).unwrap_or_else(|e| panic!("{e}"));
        assert!(svg.contains("><title>Rock: 3</title></rect>"), "{svg}");
        assert!(
            svg.contains("><title>Jazz &amp; Blues: 0.5000</title></rect>"),
            "{svg}"
        );
        assert_eq!(svg.matches("<title>").count(), 2);

        let lines = dir.path().join("lines.svg");
        let series = [Series {
            name: "jaccard".into(),
            points: vec![(1.0, 0.25), (2.0, 0.5)],
            band: Some(vec![0.01, 0.02]),
        }];
        line_chart(&lines, "t", &series, "k", "J", Some((0.3, "ref".into())))
            .unwrap_or_else(|e| panic!("{e}"));
        let svg = std::fs::read_to_string(&lines).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            svg.contains("<title>jaccard: 0.2500 at 1 ± 0.0100</title>"),
            "{svg}"
        );
        assert!(
            svg.contains("<title>jaccard: 0.5000 at 2 ± 0.0200</title>"),
            "{svg}"
        );
        // Whole numbers read without a fraction on the axes.
        assert!(!svg.contains(">1.0<"), "{svg}");
    }
}
