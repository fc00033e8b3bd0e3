//! SVG plots (plotters): per compare, each design's latency percentile distribution on one
//! chart (x axis 1/(1-p), log scale, labelled 50%, 90%, 99%...); per sweep, the main metrics
//! against the swept value.

use plotters::prelude::*;

use super::summary;
use crate::result::RunResult;

mod layout;
pub(crate) mod tradeoff;

use layout::{Corner, Rect};
use plotters::coord::combinators::{BindKeyPoints, LogCoord, WithKeyPoints};
pub use tradeoff::tradeoff;

/// A colour per design: the ten of Tableau 10 and two darker ones, enough for every design
/// gilbench has (eleven) to differ; beyond twelve they repeat.
const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(57, 59, 121),
    RGBColor(99, 121, 57),
];

/// The `i`th series' colour.
fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The label token of a row whose waiters spin adaptively (`spin = adaptive`).
const ADAPTIVE: &str = "spin=adaptive";

/// A row label's family and whether its waiters spin adaptively: the label without
/// `spin=adaptive`, or `spin=0s` (a sweep over `spin` names the parked rows so; they are the
/// default). A design's parked and adaptive rows share a family, so a colour.
fn family(label: &str) -> (String, bool) {
    let words: Vec<&str> = label.split(' ').collect();
    let adaptive = words.contains(&ADAPTIVE);
    let parked = |w: &str| {
        w.strip_prefix("spin=")
            .is_some_and(|v| v.trim_end_matches(char::is_alphabetic) == "0")
    };
    let family: Vec<&str> = words
        .into_iter()
        .filter(|w| *w != ADAPTIVE && !parked(w))
        .collect();
    (family.join(" "), adaptive)
}

/// Each family's colour: a design's own (its place in `gilbench locks`, so that `timed` is
/// red in every chart of every experiment), any other family the next colour that none of
/// these designs has, in the order the families first appear.
fn family_colors<'a>(families: impl Iterator<Item = &'a str>) -> Vec<RGBColor> {
    let families: Vec<&str> = families.collect();
    let design = |f: &str| {
        let kind = f.parse::<crate::gil::LockKind>().ok()?;
        crate::gil::LockKind::ALL.iter().position(|k| *k == kind)
    };
    let taken: Vec<usize> = families.iter().filter_map(|f| design(f)).collect();
    let free: Vec<usize> = (0..PALETTE.len()).filter(|i| !taken.contains(i)).collect();
    let mut others: Vec<&str> = Vec::new();
    families
        .iter()
        .map(|f| {
            let i = design(f).unwrap_or_else(|| {
                let nth = others.iter().position(|o| o == f).unwrap_or_else(|| {
                    others.push(f);
                    others.len() - 1
                });
                // The nth colour no design here has (they repeat past the palette).
                free.get(nth % free.len().max(1)).copied().unwrap_or(nth)
            });
            color(i)
        })
        .collect()
}

/// Where plotters puts a legend in `corner`.
fn legend_position(corner: Corner) -> SeriesLabelPosition {
    match corner {
        Corner::UpperRight => SeriesLabelPosition::UpperRight,
        Corner::LowerLeft => SeriesLabelPosition::LowerLeft,
        Corner::LowerRight => SeriesLabelPosition::LowerRight,
        Corner::UpperLeft => SeriesLabelPosition::UpperLeft,
    }
}

/// plotters' SVG backend writes a font of nominal size `s` as `s * 25 / 31` px (seen in its
/// output): a text's size in pixels.
fn font_px(nominal: f64) -> f64 {
    nominal * 25.0 / 31.0
}

/// A legend's estimated size: 16 px a row and 12 around them, as wide as its longest entry beside a 40 px key,
/// in plotters' default legend font.
fn legend_size<'a>(entries: impl Iterator<Item = &'a str>) -> (i32, i32) {
    let (mut rows, mut widest) = (0, 0);
    for e in entries {
        rows += 1;
        widest = widest.max(layout::text_size(e, font_px(12.0)).0);
    }
    (widest + 40, rows * 16 + 12)
}

/// The margin between a legend and its plotting area's edges.
const LEGEND_MARGIN: i32 = 5;

fn err<E: std::fmt::Display>(e: E) -> String {
    format!("cannot draw the plot: {e}")
}

/// The first line of every plot: how gilbench recognises its SVG files (see `output`).
pub const SVG_MARK: &str = "<!-- gilbench plot -->";

/// Marks the file as gilbench's (see `output`).
fn mark(svg: String) -> String {
    svg.replacen("<svg", &format!("{SVG_MARK}\n<svg"), 1)
}

/// Each label's latency distribution (first repetition), x = 1/(1-p) on a log axis.
/// Without client-side latency (CPU-only and bulk scenarios) nothing is drawn.
pub fn latency_percentiles(runs: &[RunResult]) -> Result<Option<String>, String> {
    let series = latency_series(runs);
    if series.is_empty() {
        return Ok(None);
    }
    let title = format!("{}: request latency by percentile", runs[0].scenario);
    let mut svg = String::new();
    draw_latency_chart(&mut svg, title, &series)?;
    Ok(Some(mark(svg)))
}

/// A label and its points (x = 1/(1-p), y = latency in µs).
type LatencySeries = Vec<(String, Vec<(f64, f64)>)>;

/// Each run's percentile points, first repetition only (one line per label). p = 100% has
/// no place on a 1/(1-p) axis and a zero none on a log one, so both are left out.
fn latency_series(runs: &[RunResult]) -> LatencySeries {
    let mut series = Vec::new();
    for r in runs.iter().filter(|r| r.repeat == 0) {
        let Some(io) = &r.io else { continue };
        let pts: Vec<(f64, f64)> = io
            .latency_dist
            .iter()
            .filter(|p| p[0] < 100.0 && p[1] > 0.0)
            .map(|p| (1.0 / (1.0 - p[0] / 100.0), p[1]))
            .collect();
        if !pts.is_empty() {
            series.push((r.row_label().to_owned(), pts));
        }
    }
    series
}

/// The axes' ranges: x up to 99.9% at least, y with room above and below (log scale).
fn latency_ranges(series: &LatencySeries) -> (f64, f64, f64) {
    let x_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.0))
        .fold(10.0f64, f64::max)
        .max(1000.0);
    let y_min = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.1))
        .fold(f64::MAX, f64::min)
        .max(0.1)
        / 1.5;
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        * 1.5;
    (x_max, y_min, y_max)
}

/// Draws the percentile chart of `series` into `svg`: a line per label, a legend.
fn draw_latency_chart(
    svg: &mut String,
    title: String,
    series: &LatencySeries,
) -> Result<(), String> {
    let (x_max, y_min, y_max) = latency_ranges(series);
    let root = SVGBackend::with_string(svg, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((1.0f64..x_max).log_scale(), log_axis(y_min, y_max))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs, log scale)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(err)?;
    let corner = latency_legend_corner(&chart, series);
    let families: Vec<(String, bool)> = series.iter().map(|(name, _)| family(name)).collect();
    let colors = family_colors(families.iter().map(|(f, _)| f.as_str()));
    for (((name, pts), (_, adaptive)), color) in series.iter().zip(&families).zip(colors) {
        let style = color.stroke_width(2);
        // A design's adaptive row dashed, in its parked row's colour.
        let drawn = if *adaptive {
            chart.draw_series(DashedLineSeries::new(pts.iter().copied(), 8, 4, style))
        } else {
            chart.draw_series(LineSeries::new(pts.iter().copied(), style))
        };
        let dashed = *adaptive;
        drawn
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| {
                // The key in two pieces, with a gap between them when dashed.
                let (a, b) = if dashed { (8, 12) } else { (10, 10) };
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (a, 0)], style)
                    + PathElement::new(vec![(b, 0), (20, 0)], style)
            });
    }
    draw_legend(&mut chart, corner)?;
    root.present().map_err(err)
}

/// Draws the chart's legend (its series' labels) in `corner`, on a white box.
fn draw_legend<'a, 'b, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<X, Y>>,
    corner: Corner,
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
    'b: 'a,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .margin(LEGEND_MARGIN as u32)
        .position(legend_position(corner))
        .draw()
        .map_err(err)
}

/// The latency chart's legend corner: upper left, where curves rising to the right leave
/// room, unless a convoyed design's curve is already high there; then the first corner its
/// lines leave free.
fn latency_legend_corner<X, Y>(
    chart: &ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, Y>>,
    series: &LatencySeries,
) -> Corner
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let area = Rect::new(xs.start, ys.start, xs.end, ys.end);
    let lines: Vec<Rect> = series
        .iter()
        .flat_map(|(_, pts)| {
            let px: Vec<(i32, i32)> = pts.iter().map(|p| chart.backend_coord(p)).collect();
            let pieces: Vec<Rect> = px
                .windows(2)
                .flat_map(|w| layout::segment_boxes(w[0], w[1]))
                .collect();
            pieces
        })
        .collect();
    let size = legend_size(series.iter().map(|(name, _)| name.as_str()));
    let order = [
        Corner::UpperLeft,
        Corner::LowerRight,
        Corner::UpperRight,
        Corner::LowerLeft,
    ];
    layout::legend_corner(&area, size, LEGEND_MARGIN, &lines, &order)
}

struct Line {
    pts: Vec<(f64, f64)>,
    style: ShapeStyle,
    color: RGBColor,
}

fn draw_lines<Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<
        '_,
        SVGBackend<'_>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, Y>,
    >,
    lines: &[Line],
) -> Result<(), String> {
    for l in lines {
        let style = l.style;
        chart
            .draw_series(LineSeries::new(l.pts.clone(), style))
            .map_err(err)?;
        let color = l.color;
        chart
            .draw_series(
                l.pts
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
            )
            .map_err(err)?;
    }
    Ok(())
}

/// A log axis from `lo` to `hi` labelled at 1, 2 and 5 times the powers of ten in it (at
/// every whole multiple when fewer than three of those fall in range), with grid lines at
/// every whole multiple. plotters' own key points on a log axis can name one value twice
/// (with a doubled grid line) and none at all on a range within a decade.
fn log_axis(lo: f64, hi: f64) -> WithKeyPoints<LogCoord<f64>> {
    let (labelled, grid) = log_key_points(lo, hi);
    (lo..hi)
        .log_scale()
        .with_key_points(labelled)
        .with_light_points(grid)
}

/// The labelled and the grid points of a log axis from `lo` to `hi` (see [`log_axis`]).
fn log_key_points(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return (Vec::new(), Vec::new());
    }
    let (first, last) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let at = |steps: &[f64]| -> Vec<f64> {
        (first..=last)
            .flat_map(|k| steps.iter().map(move |m| m * 10f64.powi(k)))
            .filter(|v| *v >= lo && *v <= hi)
            .collect()
    };
    let every: Vec<f64> = (1..=9).map(f64::from).collect();
    let mut labelled = at(&[1.0, 2.0, 5.0]);
    if labelled.len() < 3 {
        labelled = at(&every);
    }
    (labelled, at(&every))
}

/// Whether the positive values among `v` span more than a decade (the largest over ten
/// times the smallest): then a sweep panel plots them on a log axis.
pub fn spans_a_decade(v: &[f64]) -> bool {
    let pos = v.iter().copied().filter(|&x| x > 0.0);
    let (lo, hi) = pos.fold((f64::MAX, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    hi > 0.0 && hi > 10.0 * lo
}

/// 1/(1-p) as a percentile: 2 -> "50%", 10 -> "90%", 1000 -> "99.9%".
fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    if p < 0.5 {
        return "0%".into();
    }
    let s = format!("{p:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// Each sweep panel's title and its columns (the first drawn bold, the others faint).
type Panel = (&'static str, &'static [&'static str]);

/// The sweep plot's panels, in reading order (2 by 2).
const SWEEP_PANELS: [Panel; 4] = [
    ("requests/s", &["requests_per_sec"]),
    (
        "latency p50 (bold) and p99 (faint), µs, log scale",
        &["latency_p50_us", "latency_p99_us"],
    ),
    ("CPU ticks/s", &["cpu_ticks_per_sec"]),
    ("context switches", &["ctx_switches"]),
];

/// The summary rows of a sweep, each split into its design and swept value, with the
/// designs (one line each) and the values (the x axis) in order of first appearance.
struct SweepData {
    rows: Vec<super::SummaryRow>,
    /// Per row: (design, swept value).
    parsed: Vec<(String, String)>,
    series: Vec<String>,
    values: Vec<String>,
}

impl SweepData {
    /// Rows are "KEY=V" or "lock KEY=V": split into (series, value); a row without a lock
    /// is of the runs' one design.
    fn of(runs: &[RunResult]) -> SweepData {
        let rows = summary(runs);
        let parsed: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                let (design, kv) = match r.label.split_once(' ') {
                    Some((d, kv)) => (d.to_owned(), kv.to_owned()),
                    // A sweep over `lock` itself: each row is its design.
                    None => match r.label.strip_prefix("lock=") {
                        Some(d) => (d.to_owned(), r.label.clone()),
                        None => (runs[0].lock.clone(), r.label.clone()),
                    },
                };
                let v = kv.split_once('=').map_or(kv.clone(), |(_, v)| v.to_owned());
                (design, v)
            })
            .collect();
        let (mut series, mut values): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        for (d, v) in &parsed {
            if !series.contains(d) {
                series.push(d.clone());
            }
            if !values.contains(v) {
                values.push(v.clone());
            }
        }
        SweepData {
            rows,
            parsed,
            series,
            values,
        }
    }

    /// Design `s`'s points of column `c`: x is the value's place on the axis, y the median.
    fn points(&self, s: &str, c: &str) -> Vec<(f64, f64)> {
        self.parsed
            .iter()
            .zip(self.rows.iter())
            .filter(|((d, _), _)| d == s)
            .filter_map(|((_, v), r)| {
                let x = self.values.iter().position(|x| x == v)? as f64;
                r.cell(c).map(|st| (x, st.median))
            })
            .collect()
    }

    /// The series with a measured 0 in any of columns `cols`.
    fn zero_series(&self, cols: &[&str]) -> Vec<String> {
        self.series
            .iter()
            .filter(|s| {
                cols.iter()
                    .any(|c| self.points(s, c).iter().any(|p| p.1 <= 0.0))
            })
            .cloned()
            .collect()
    }

    /// Each series' colour (a design its own).
    fn colors(&self) -> Vec<RGBColor> {
        family_colors(self.series.iter().map(String::as_str))
    }

    /// Every y value a panel of columns `cols` would draw.
    fn all_points(&self, cols: &[&str]) -> Vec<f64> {
        self.series
            .iter()
            .flat_map(|s| cols.iter().flat_map(move |c| self.points(s, c)))
            .map(|p| p.1)
            .collect()
    }

    /// A panel's lines: one per design and column, the first column bold, the others faint.
    fn lines(&self, cols: &[&str], log: bool) -> Vec<Line> {
        let mut lines = Vec::new();
        let colors = self.colors();
        for (i, s) in self.series.iter().enumerate() {
            for (k, c) in cols.iter().enumerate() {
                let color = colors[i];
                let style = if k == 0 {
                    color.stroke_width(2)
                } else {
                    color.mix(0.6).stroke_width(1)
                };
                lines.push(Line {
                    // A log axis has no place for zero.
                    pts: self
                        .points(s, c)
                        .into_iter()
                        .filter(|&(_, y)| !log || y > 0.0)
                        .collect(),
                    style,
                    color,
                });
            }
        }
        lines
    }
}

/// The main metrics against the swept value: a panel each for requests/s, latency p50/p99,
/// CPU ticks/s and context switches; a line per design.
pub fn sweep(runs: &[RunResult], key: &str) -> Result<String, String> {
    let data = SweepData::of(runs);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1200, 900)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let root = root
            .titled(
                &format!(
                    "{}: sweep of {key}",
                    runs.first().map_or("", |r| r.scenario.as_str())
                ),
                ("sans-serif", 24),
            )
            .map_err(err)?;
        let (width, _) = root.dim_in_pixel();
        let rows = sweep_legend_rows(&data.series, width as i32);
        let (top, panels) = root.split_vertically(rows.len() as u32 * LEGEND_ROW as u32 + 8);
        draw_sweep_legend(&top, &data.series, &rows)?;
        let areas = panels.split_evenly((2, 2));
        for (area, panel) in areas.iter().zip(SWEEP_PANELS.iter()) {
            draw_sweep_panel(area, panel, &data, key)?;
        }
        root.present().map_err(err)?;
    }
    Ok(mark(svg))
}

/// The height of a row of the sweep's legend, and its entries' font (nominal size).
const LEGEND_ROW: i32 = 22;
const LEGEND_FONT: f64 = 15.0;

/// The sweep's legend, one for its four panels (their colours are the same): each design's
/// colour and name, left to right, as many rows as they need in `width`. Each row is the
/// entries' left edges and series indices.
fn sweep_legend_rows(series: &[String], width: i32) -> Vec<Vec<(i32, usize)>> {
    let mut rows: Vec<Vec<(i32, usize)>> = vec![Vec::new()];
    let mut x = 20;
    for (i, name) in series.iter().enumerate() {
        let w = 30 + layout::text_size(name, font_px(LEGEND_FONT)).0 + 20;
        if x + w > width - 20 && x > 20 {
            rows.push(Vec::new());
            x = 20;
        }
        rows.last_mut().expect("a row").push((x, i));
        x += w;
    }
    rows
}

fn draw_sweep_legend(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    series: &[String],
    rows: &[Vec<(i32, usize)>],
) -> Result<(), String> {
    let colors = family_colors(series.iter().map(String::as_str));
    for (r, row) in rows.iter().enumerate() {
        let y = 4 + r as i32 * LEGEND_ROW;
        for &(x, i) in row {
            let key =
                PathElement::new(vec![(x, y + 8), (x + 24, y + 8)], colors[i].stroke_width(2));
            area.draw(&key).map_err(err)?;
            let font = ("sans-serif", LEGEND_FONT).into_font();
            area.draw(&Text::new(series[i].clone(), (x + 30, y), font))
                .map_err(err)?;
        }
    }
    Ok(())
}

/// A sweep panel's y axis.
struct YAxis {
    /// Latency panels label whole microseconds; the others are rates.
    latency: bool,
    log: bool,
    /// The smallest positive value and the top of the axis.
    lo: f64,
    hi: f64,
}

impl YAxis {
    fn of(cols: &[&str], all: &[f64]) -> YAxis {
        // Latency always; any other metric when its values span more than a decade
        // (32 req/s beside 5.5k would read as zero on a linear axis).
        let latency = cols.len() > 1;
        let log = latency || spans_a_decade(all);
        let hi = all.iter().copied().fold(0.0f64, f64::max) * 1.15 + 1e-9;
        let lo = all
            .iter()
            .copied()
            .filter(|&v| v > 0.0)
            .fold(f64::MAX, f64::min);
        YAxis {
            latency,
            log,
            lo,
            hi,
        }
    }
}

/// One panel of the sweep plot, or its title saying "no data" when no row has its figures.
fn draw_sweep_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    &(title, cols): &Panel,
    data: &SweepData,
    key: &str,
) -> Result<(), String> {
    let all = data.all_points(cols);
    if all.is_empty() {
        area.titled(&format!("{title}: no data"), ("sans-serif", 16))
            .map_err(err)?;
        return Ok(());
    }
    let axis = YAxis::of(cols, &all);
    let mut caption = if axis.log && !axis.latency {
        format!("{title} (log scale)")
    } else {
        title.to_owned()
    };
    // A log axis has no place for a measured 0: say whose were left out.
    let zeros = if axis.log {
        data.zero_series(cols)
    } else {
        Vec::new()
    };
    if !zeros.is_empty() {
        caption += &format!("; 0, not drawn: {}", zeros.join(", "));
    }
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70);
    let lines = data.lines(cols, axis.log);
    draw_panel_chart(builder, &axis, &data.values, &lines, key)
}

/// A panel's axes (the swept values along x) and lines.
fn draw_panel_chart(
    mut builder: ChartBuilder<'_, '_, SVGBackend<'_>>,
    axis: &YAxis,
    values: &[String],
    lines: &[Line],
    key: &str,
) -> Result<(), String> {
    let n = values.len().max(2) as f64 - 1.0;
    // The x axis labels the swept values at their integer places, nothing between.
    let xfmt = |x: &f64| -> String {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            values.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    // The same axes, lines and legend on a log or a linear y axis (different types).
    macro_rules! finish_panel {
        ($chart:ident, $yfmt:expr) => {
            $chart
                .configure_mesh()
                .x_desc(key)
                .x_labels(values.len())
                .x_label_formatter(&xfmt)
                .y_label_formatter($yfmt)
                .draw()
                .map_err(err)?;
            draw_lines(&mut $chart, lines)?;
        };
    }
    let ylabels: &dyn Fn(&f64) -> String = if axis.latency {
        &|y| format!("{y:.0}")
    } else {
        &|y| super::rate(*y)
    };
    let (lo, hi) = (axis.lo, axis.hi);
    if axis.log {
        let ys = log_axis((lo / 1.5).max(0.01), hi * 1.5);
        let mut chart = builder
            .build_cartesian_2d(-0.2f64..n + 0.2, ys)
            .map_err(err)?;
        finish_panel!(chart, ylabels);
    } else {
        let mut chart = builder
            .build_cartesian_2d(-0.2f64..n + 0.2, 0.0f64..hi)
            .map_err(err)?;
        finish_panel!(chart, ylabels);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::export::sample_run;

    #[test]
    fn a_metric_over_a_decade_is_plotted_on_a_log_axis() {
        assert!(spans_a_decade(&[32.0, 5500.0]));
        assert!(spans_a_decade(&[0.0, 32.0, 5500.0]));
        assert!(!spans_a_decade(&[3000.0, 5500.0, 29_000.0]));
        assert!(!spans_a_decade(&[0.0, 0.0]));
        assert!(!spans_a_decade(&[]));
        let mut runs = Vec::new();
        for (v, rps) in [("1ms", 5500.0), ("5ms", 32.0), ("20ms", 0.0)] {
            let mut r = sample_run(&format!("interval={v}"));
            r.io.as_mut().unwrap().requests_per_sec = rps;
            runs.push(r);
        }
        let svg = sweep(&runs, "interval").unwrap();
        assert!(svg.contains("requests/s (log scale)"), "no log axis");
        // The measured 0 (interval=20ms) has no place on it: the caption says so.
        assert!(
            svg.contains("requests/s (log scale); 0, not drawn: "),
            "{svg}"
        );
        // The other panels' values are equal: linear.
        assert!(!svg.contains("CPU ticks/s (log scale)"));
        // Log-axis labels: 100 and 1.0k are both there, 32 does not sit on zero.
        assert!(
            svg.contains(">\n100\n<") || svg.contains(">100<"),
            "no 100 label"
        );
        let mut close = runs.clone();
        close[1].io.as_mut().unwrap().requests_per_sec = 3000.0;
        close[2].io.as_mut().unwrap().requests_per_sec = 4000.0;
        assert!(!sweep(&close, "interval")
            .unwrap()
            .contains("requests/s (log scale)"));
    }

    /// Every design gilbench has gets its own colour, and a design's parked and adaptive rows
    /// share one.
    #[test]
    fn each_design_has_its_own_colour() {
        let designs = [
            "tick", "timed", "mlfq", "fifo", "none", "ocaml", "fastcond", "ruby", "pypy", "bfs",
            "decay",
        ];
        let labels: Vec<String> = designs
            .iter()
            .flat_map(|d| [format!("{d} spin=0s"), format!("{d} spin=adaptive")])
            .collect();
        let colors = family_colors(
            labels
                .iter()
                .map(|l| family(l).0)
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        );
        for (i, pair) in colors.chunks(2).enumerate() {
            assert_eq!(pair[0], pair[1], "{}", designs[i]);
            for (j, other) in colors.chunks(2).enumerate().skip(i + 1) {
                assert_ne!(pair[0], other[0], "{} and {}", designs[i], designs[j]);
            }
        }
        assert_eq!(family("bfs spin=adaptive"), ("bfs".to_owned(), true));
        assert_eq!(family("bfs spin=0s"), ("bfs".to_owned(), false));
        assert_eq!(family("bfs spin=50us"), ("bfs spin=50us".to_owned(), false));
    }

    /// A design has its own colour in every chart, whatever else is in it; other families
    /// take colours no design there has.
    #[test]
    fn a_design_keeps_its_colour_across_charts() {
        let alone = family_colors(["timed"].into_iter())[0];
        let among = family_colors(["tick", "ocaml", "timed"].into_iter());
        assert_eq!(among[2], alone);
        let mixed = family_colors(["interval=1ms", "tick", "interval=5ms"].into_iter());
        let tick = family_colors(["tick"].into_iter())[0];
        assert_eq!(mixed[1], tick);
        assert!(
            mixed[0] != tick && mixed[2] != tick && mixed[0] != mixed[2],
            "{mixed:?}"
        );
    }

    /// A sweep over `lock` itself: each row is its design, named in the legend.
    #[test]
    fn a_sweep_over_lock_names_each_design() {
        let runs: Vec<_> = ["timed", "mlfq", "none"]
            .iter()
            .map(|d| {
                let mut r = sample_run(&format!("lock={d}"));
                r.lock = (*d).to_owned();
                r
            })
            .collect();
        let svg = sweep(&runs, "lock").unwrap();
        // Each is an x value of the four panels, and in the legend (only timed was, as the
        // one series).
        for d in ["timed", "mlfq", "none"] {
            assert_eq!(svg.matches(&format!(">\n{d}\n<")).count(), 5, "{d}: {svg}");
        }
    }

    /// A sweep has one legend for its four panels: each design named once, in rows that fit.
    #[test]
    fn a_sweep_names_each_design_once() {
        let mut runs = Vec::new();
        for d in ["tick", "timed", "mlfq"] {
            for v in ["1ms", "5ms"] {
                let mut r = sample_run(&format!("{d} interval={v}"));
                r.lock = d.to_owned();
                runs.push(r);
            }
        }
        let svg = sweep(&runs, "interval").unwrap();
        for d in ["tick", "timed", "mlfq"] {
            assert_eq!(svg.matches(&format!(">\n{d}\n<")).count(), 1, "{d}: {svg}");
        }
        let names: Vec<String> = (0..11).map(|i| format!("design number {i}")).collect();
        let rows = sweep_legend_rows(&names, 600);
        assert!(rows.len() > 1);
        assert_eq!(rows.iter().map(Vec::len).sum::<usize>(), 11);
        for row in &rows {
            let &(x, i) = row.last().unwrap();
            let w = 30 + layout::text_size(&names[i], font_px(LEGEND_FONT)).0;
            assert!(x + w <= 600 - 20, "{row:?}");
        }
    }

    /// A log axis is labelled at 1, 2 and 5 times powers of ten, each value once, and within
    /// a decade at every whole multiple (plotters named none there, and some values twice).
    #[test]
    fn log_axes_name_each_key_once_and_some_within_a_decade() {
        let (labelled, grid) = log_key_points(9.0, 120_000.0);
        assert_eq!(
            labelled,
            [10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5]
        );
        assert!(grid.windows(2).all(|w| w[0] < w[1]) && grid.len() > labelled.len());
        let (narrow, _) = log_key_points(19.0, 47.0);
        assert_eq!(narrow, [20.0, 30.0, 40.0]);
        assert_eq!(log_key_points(0.0, 10.0), (vec![], vec![]));
        assert_eq!(log_key_points(5.0, 5.0), (vec![], vec![]));
    }

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(2.0), "50%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
    }
}
