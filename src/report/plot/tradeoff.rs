//! The trade-off chart (issue 22): each row's I/O requests kept against its CPU kept (both vs
//! alone), at the median over repeats with the min-max as error bars, beside the frontier
//! `1 - h*x` of a GIL that wastes nothing (DESIGN.md §4).

use plotters::prelude::*;

use super::layout::{self, Corner, Placed, Rect};
use super::{err, font_px, mark, LEGEND_MARGIN};
use crate::report::{summary, Stat, SummaryRow};
use crate::result::RunResult;

/// One row's point: its I/O kept (x) and CPU kept (y) over its repeats, and its `h`.
struct Point {
    label: String,
    /// The label without `spin=adaptive`: a design's parked and adaptive rows share it, and
    /// so their colour, and are joined by a line (the price of its hand-off mechanism).
    family: String,
    adaptive: bool,
    x: Stat,
    y: Stat,
    h: Option<f64>,
}

impl Point {
    fn of(row: &SummaryRow) -> Option<Point> {
        let (family, adaptive) = super::family(&row.label);
        Some(Point {
            label: row.marked_label(),
            family,
            adaptive,
            x: row.cell("requests_vs_alone")?,
            y: row.cell("cpu_kept")?,
            h: row.cell("io_hold_share").map(|s| s.median),
        })
    }
}

/// The `h` the frontier line uses (the median of the rows'), and how its caption names it:
/// with the rows' range when they differ.
fn frontier_h(points: &[Point]) -> Option<(f64, String)> {
    let hs: Vec<f64> = points.iter().filter_map(|p| p.h).collect();
    let s = Stat::of(hs)?;
    let mut name = format!("frontier 1 - h·x, h = {:.3}", s.median);
    if s.n > 1 {
        name += &format!(" (median of rows; rows {:.3}-{:.3})", s.min, s.max);
    }
    Some((s.median, name))
}

/// The chart, or `None` when no row has a point (no baselines, or a bulk scenario).
pub fn tradeoff(runs: &[RunResult]) -> Result<Option<String>, String> {
    let bulk = |r: &RunResult| r.io.as_ref().is_some_and(|io| io.mode == "bulk");
    if runs.iter().any(bulk) {
        return Ok(None);
    }
    let points: Vec<Point> = summary(runs).iter().filter_map(Point::of).collect();
    if points.is_empty() {
        return Ok(None);
    }
    let title = format!("{}: CPU kept against I/O kept", runs[0].scenario);
    let mut svg = String::new();
    draw(&mut svg, &title, &points)?;
    Ok(Some(mark(svg)))
}

/// The axes' upper ends: at least 1.05, room for every error bar.
fn upper(points: &[Point], s: fn(&Point) -> &Stat) -> f64 {
    points.iter().map(|p| s(p).max * 1.05).fold(1.05, f64::max)
}

fn draw(svg: &mut String, title: &str, points: &[Point]) -> Result<(), String> {
    let root = SVGBackend::with_string(svg, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (x_max, y_max) = (upper(points, |p| &p.x), upper(points, |p| &p.y));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("I/O requests/s kept vs alone")
        .y_desc("CPU ticks/s kept vs alone")
        .draw()
        .map_err(err)?;
    draw_frontier(&mut chart, points, x_max)?;
    let colors = family_colors(points);
    draw_parked_to_adaptive(&mut chart, points, &colors)?;
    let (corner, labels) = arrange(&chart, points);
    for ((p, color), label) in points.iter().zip(&colors).zip(labels) {
        draw_point(&mut chart, p, *color, label)?;
    }
    let marks = marks_shown(points);
    legend_of_marks(&mut chart, &marks)?;
    // A legend only where it has something to say (no frontier without `h`, no marks
    // without adaptive rows).
    if frontier_h(points).is_some() || !marks.is_empty() {
        super::draw_legend(&mut chart, corner)?;
    }
    root.present().map_err(err)
}

/// The points' labels' font size (nominal, as plotters takes it).
const LABEL_FONT: f64 = 15.0;

/// A point's label: where it goes and its estimated size in pixels.
type Label = (Placed, (i32, i32));

/// Where the legend and each point's label go: the legend in a corner clear of the points
/// and their error bars, each label beside its point, clear of the legend, the points and
/// the labels before it (further away, with a leader line, in a crowd).
fn arrange(chart: &Chart<'_, '_>, points: &[Point]) -> (Corner, Vec<Label>) {
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let area = Rect::new(xs.start, ys.start, xs.end, ys.end);
    let px = |x: f64, y: f64| chart.backend_coord(&(x, y));
    let at: Vec<(i32, i32)> = points.iter().map(|p| px(p.x.median, p.y.median)).collect();
    let mut occupied: Vec<Rect> = at.iter().map(|&d| Rect::around(d, 6)).collect();
    for p in points {
        let (left, right) = (px(p.x.min, p.y.median), px(p.x.max, p.y.median));
        let (low, high) = (px(p.x.median, p.y.min), px(p.x.median, p.y.max));
        occupied.push(Rect::new(left.0, left.1 - 3, right.0, right.1 + 3));
        occupied.push(Rect::new(low.0 - 3, low.1, high.0 + 3, high.1));
    }
    let legend = legend_size(points);
    let order = [
        Corner::UpperRight,
        Corner::LowerLeft,
        Corner::LowerRight,
        Corner::UpperLeft,
    ];
    let corner = layout::legend_corner(&area, legend, LEGEND_MARGIN, &occupied, &order);
    // Labels may cross lines and error bars at a price: the frontier, the dashed joins and
    // the bars (the points themselves are hard obstacles).
    let mut soft: Vec<Rect> = occupied.split_off(points.len());
    if let Some((h, _)) = frontier_h(points) {
        let [a, b] = frontier_ends(h, chart.x_range().end);
        soft.extend(layout::segment_boxes(px(a.0, a.1), px(b.0, b.1)));
    }
    for (a, b) in parked_to_adaptive(points) {
        soft.extend(layout::segment_boxes(
            px(a.x.median, a.y.median),
            px(b.x.median, b.y.median),
        ));
    }
    let obstacles = layout::Obstacles {
        hard: vec![corner.rect(&area, legend, LEGEND_MARGIN)],
        soft,
    };
    let sizes: Vec<(i32, i32)> = points
        .iter()
        .map(|p| layout::text_size(&p.label, font_px(LABEL_FONT)))
        .collect();
    let placed = layout::place_labels(&at, &sizes, obstacles, area);
    (corner, placed.into_iter().zip(sizes).collect())
}

/// The legend's estimated size: its entries are the frontier, and the two marks where a row
/// spins adaptively.
fn legend_size(points: &[Point]) -> (i32, i32) {
    let mut entries: Vec<String> = frontier_h(points)
        .map(|(_, name)| name)
        .into_iter()
        .collect();
    entries.extend(marks_shown(points).iter().map(|(_, name)| name.to_string()));
    super::legend_size(entries.iter().map(String::as_str))
}

/// The frontier `1 - h*x` as a line, named in the legend with its `h`.
fn draw_frontier(chart: &mut Chart<'_, '_>, points: &[Point], x_max: f64) -> Result<(), String> {
    if let Some((h, name)) = frontier_h(points) {
        let style = BLACK.stroke_width(2);
        chart
            .draw_series(LineSeries::new(frontier_ends(h, x_max), style))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    Ok(())
}

/// The frontier's ends on the chart: from (0, 1) down the line `1 - h*x` to where it meets
/// the x axis (`1/h`) or the chart's right edge, whichever comes first.
fn frontier_ends(h: f64, x_max: f64) -> [(f64, f64); 2] {
    let x_end = if h > 0.0 { x_max.min(1.0 / h) } else { x_max };
    [(0.0, 1.0), (x_end, (1.0 - h * x_end).max(0.0))]
}

/// Each point's colour: one per family (a design's parked and adaptive rows share it).
fn family_colors(points: &[Point]) -> Vec<RGBColor> {
    super::family_colors(points.iter().map(|p| p.family.as_str()))
}

/// A dashed line from each parked point to the same design's adaptive one: the length is
/// what the hand-off mechanism costs.
fn draw_parked_to_adaptive(
    chart: &mut Chart<'_, '_>,
    points: &[Point],
    colors: &[RGBColor],
) -> Result<(), String> {
    for (parked, adaptive) in parked_to_adaptive(points) {
        let color = colors[points
            .iter()
            .position(|p| std::ptr::eq(p, parked))
            .unwrap_or(0)];
        let ends = [
            (parked.x.median, parked.y.median),
            (adaptive.x.median, adaptive.y.median),
        ];
        chart
            .draw_series(DashedLineSeries::new(ends, 6, 4, color.stroke_width(1)))
            .map_err(err)?;
    }
    Ok(())
}

/// Each parked point with the same design's adaptive ones.
fn parked_to_adaptive(points: &[Point]) -> impl Iterator<Item = (&Point, &Point)> {
    points
        .iter()
        .filter(|p| !p.adaptive)
        .flat_map(move |parked| {
            points
                .iter()
                .filter(move |p| p.adaptive && p.family == parked.family)
                .map(move |adaptive| (parked, adaptive))
        })
}

/// The legend's entries for the two marks: filled for parked waiters, hollow for adaptive.
const MARKS: [(bool, &str); 2] = [
    (true, "parked waiters (default)"),
    (
        false,
        "spin = adaptive (dashed: from the same design parked)",
    ),
];

/// The marks the legend explains: none unless a row spins adaptively (every dot is then
/// filled, the default), and of those only the kinds the chart has.
fn marks_shown(points: &[Point]) -> Vec<(bool, &'static str)> {
    if !points.iter().any(|p| p.adaptive) {
        return Vec::new();
    }
    let has = |filled: bool| points.iter().any(|p| p.adaptive != filled);
    MARKS
        .into_iter()
        .filter(|(filled, _)| has(*filled))
        .collect()
}

/// The legend's keys for the marks shown.
fn legend_of_marks(chart: &mut Chart<'_, '_>, marks: &[(bool, &str)]) -> Result<(), String> {
    let key = |filled: bool| {
        move |(x, y): (i32, i32)| {
            let style = if filled {
                BLACK.filled()
            } else {
                BLACK.stroke_width(2)
            };
            Circle::new((x + 10, y), 5, style)
        }
    };
    for &(filled, name) in marks {
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(err)?
            .label(name)
            .legend(key(filled));
    }
    Ok(())
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A row's median as a dot named by its label (hollow for `spin = adaptive`) where `arrange`
/// put it (joined by a thin line when away from the dot), its min-max over repeats as error
/// bars.
fn draw_point(
    chart: &mut Chart<'_, '_>,
    p: &Point,
    color: RGBColor,
    (label, size): Label,
) -> Result<(), String> {
    let (x, y) = (p.x, p.y);
    let style = color.stroke_width(1);
    let across = ErrorBar::new_horizontal(y.median, x.min, x.median, x.max, style, 6);
    let up = ErrorBar::new_vertical(x.median, y.min, y.median, y.max, style, 6);
    chart.draw_series([across]).map_err(err)?;
    chart.draw_series([up]).map_err(err)?;
    let font = ("sans-serif", 15).into_font().color(&color);
    let dot = EmptyElement::at((x.median, y.median))
        + Circle::new(
            (0, 0),
            5,
            if p.adaptive {
                color.stroke_width(2)
            } else {
                color.filled()
            },
        )
        + Text::new(p.label.clone(), (label.dx, label.dy), font);
    chart.draw_series([dot]).map_err(err)?;
    if label.leader {
        let leader = EmptyElement::at((x.median, y.median))
            + PathElement::new(vec![(0, 0), label.leader_end(size)], color.mix(0.6));
        chart.draw_series([leader]).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::export::sample_run;
    use crate::result::Baseline;

    /// A run of row `label` at I/O kept `x` and CPU kept `y`, its I/O alone holding `h`.
    pub(crate) fn at(label: &str, repeat: u32, (x, y): (f64, f64), h: f64) -> RunResult {
        let mut r = sample_run(label);
        r.repeat = repeat;
        let b = Baseline {
            requests_vs_alone: x,
            cpu_kept: y,
            ..Baseline::default()
        };
        r.baseline = Some(b.with_frontier(Some(h)));
        r
    }

    /// Three rows of two repeats each.
    pub(crate) fn three_rows() -> Vec<RunResult> {
        let mut runs = Vec::new();
        for (i, (label, x, y)) in [("mlfq", 0.3, 0.6), ("bfs", 0.4, 0.4), ("timed", 0.0, 0.99)]
            .into_iter()
            .enumerate()
        {
            runs.push(at(label, 0, (x, y), 0.3 + 0.01 * i as f64));
            runs.push(at(label, 1, (x + 0.02, y - 0.02), 0.3));
        }
        runs
    }

    #[test]
    fn a_dot_per_row_named_by_its_label_and_the_frontier_s_h() {
        let svg = tradeoff(&three_rows())
            .unwrap()
            .expect("rows with baselines");
        assert!(svg.starts_with(super::super::SVG_MARK));
        // A filled dot per row (the error bars' own circles are hollow).
        let dots = svg.matches("<circle").count();
        let filled = svg
            .split("<circle")
            .skip(1)
            .filter(|c| c.contains("fill=\"#"));
        assert!(dots > 3);
        assert_eq!(filled.count(), 3, "{svg}");
        for label in [">\nmlfq\n<", ">\nbfs\n<", ">\ntimed\n<"] {
            assert_eq!(svg.matches(label).count(), 1, "{label}");
        }
        // Medians of the rows' h: 0.3, 0.305, 0.31.
        assert!(
            svg.contains("h = 0.305 (median of rows; rows 0.300-0.310)"),
            "{svg}"
        );
    }

    /// The text element that shows `label`, from its opening tag to its content.
    fn text_of<'a>(svg: &'a str, label: &str) -> &'a str {
        let end = svg.find(&format!(">\n{label}\n<")).expect(label);
        &svg[svg[..end].rfind("<text").unwrap()..end]
    }

    /// A design's parked and adaptive rows: one colour, the adaptive dot hollow, a dashed
    /// line between them, and a legend saying which is which.
    #[test]
    fn a_design_parked_and_adaptive_share_a_colour_and_are_joined() {
        let mut runs = three_rows();
        runs.push(at("mlfq spin=adaptive", 0, (0.35, 0.75), 0.3));
        runs.push(at("mlfq spin=adaptive", 1, (0.36, 0.74), 0.3));
        // A sweep over `spin` names the parked rows `spin=0s`.
        runs.push(at("bfs spin=0s", 0, (0.4, 0.3), 0.3));
        runs.push(at("bfs spin=adaptive", 0, (0.45, 0.35), 0.3));
        runs.push(at("bfs spin=50us", 0, (0.42, 0.33), 0.3));
        let svg = tradeoff(&runs).unwrap().unwrap();
        let fill = |t: &str| t.split("fill=\"").nth(1).unwrap()[..7].to_owned();
        let (parked, adaptive) = (text_of(&svg, "mlfq"), text_of(&svg, "mlfq spin=adaptive"));
        assert_eq!(fill(parked), fill(adaptive), "{parked} / {adaptive}");
        assert_ne!(fill(parked), fill(text_of(&svg, "bfs")));
        let bfs = fill(text_of(&svg, "bfs spin=0s"));
        assert_eq!(bfs, fill(text_of(&svg, "bfs spin=adaptive")));
        assert_ne!(bfs, fill(text_of(&svg, "bfs spin=50us")));
        for want in ["parked waiters (default)", "spin = adaptive (dashed"] {
            assert!(svg.contains(want), "{want}: {svg}");
        }
        // Five filled dots (the rows not adaptive) and the legend's filled key.
        let tags = svg
            .split("<circle")
            .skip(1)
            .map(|c| c.split('>').next().unwrap());
        assert_eq!(tags.filter(|c| c.contains("fill=\"#")).count(), 6, "{svg}");
        // Without adaptive rows, no legend for them.
        let plain = tradeoff(&three_rows()).unwrap().unwrap();
        assert!(!plain.contains("parked waiters"));
    }

    /// Both ends of the drawn frontier lie on `1 - h*x`, within the chart. (It once ran
    /// from (0, 1) to (x_max, 0) whenever the line met the axis before the chart's edge:
    /// the history chart's line, h = 0.755, crossed x = 1 at 0.46 instead of 0.245.)
    #[test]
    fn the_frontier_is_drawn_on_its_line() {
        for (h, x_max) in [
            (0.755, 1.85),
            (0.755, 1.05),
            (0.3, 1.05),
            (1.0, 1.0),
            (0.0, 1.2),
        ] {
            let ends = frontier_ends(h, x_max);
            assert_eq!(ends[0], (0.0, 1.0));
            let (x, y) = ends[1];
            assert!((y - (1.0 - h * x)).abs() < 1e-12, "h {h}: {ends:?}");
            assert!(x <= x_max && y >= 0.0, "h {h}: {ends:?}");
            // It reaches the axis or the edge.
            assert!(y.abs() < 1e-12 || x == x_max, "h {h}: {ends:?}");
        }
    }

    /// Crowded rows (every fair GIL at (0, 1)): each label drawn once, at its own place.
    #[test]
    fn crowded_labels_are_drawn_apart() {
        let mut runs = Vec::new();
        for name in ["timed", "fifo", "ocaml", "fastcond", "ruby"] {
            runs.push(at(name, 0, (0.005, 0.99), 0.75));
            runs.push(at(&format!("{name} spin=adaptive"), 0, (0.004, 0.98), 0.75));
        }
        runs.push(at("none", 0, (0.86, 1.0), 0.75));
        let svg = tradeoff(&runs).unwrap().unwrap();
        let place = |label: &str| {
            let t = text_of(&svg, label);
            let attr = |a: &str| {
                t.split(&format!(" {a}=\""))
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .to_owned()
            };
            (attr("x"), attr("y"))
        };
        let mut seen = std::collections::HashSet::new();
        for r in &runs {
            assert!(
                seen.insert(place(&r.label)),
                "{} drawn where another is",
                r.label
            );
        }
    }

    /// The legend says only what the chart has: no box at all without a frontier or adaptive
    /// rows, and no "parked" key when every row spins adaptively.
    #[test]
    fn the_legend_lists_only_what_is_drawn() {
        let legend_box = |svg: &str| svg.contains("fill=\"none\" stroke=\"#000000\"/>");
        let mut unrecorded = Vec::new();
        for (label, x, y) in [("timed", 0.0, 0.99), ("mlfq", 0.3, 0.6)] {
            let mut r = at(label, 0, (x, y), 0.3);
            let b = r.baseline.take().unwrap();
            r.baseline = Some(b.with_frontier(None));
            unrecorded.push(r);
        }
        let svg = tradeoff(&unrecorded).unwrap().unwrap();
        assert!(!legend_box(&svg), "{svg}");
        assert!(legend_box(&tradeoff(&three_rows()).unwrap().unwrap()));
        let adaptive = vec![
            at("timed spin=adaptive", 0, (0.0, 0.99), 0.3),
            at("mlfq spin=adaptive", 0, (0.3, 0.6), 0.3),
        ];
        let svg = tradeoff(&adaptive).unwrap().unwrap();
        assert!(svg.contains("spin = adaptive (dashed"), "{svg}");
        assert!(!svg.contains("parked waiters"), "{svg}");
    }

    #[test]
    fn no_chart_without_baselines_or_for_bulk() {
        assert_eq!(tradeoff(&[sample_run("a")]).unwrap(), None);
        let mut runs = three_rows();
        runs[0].io.as_mut().unwrap().mode = "bulk".into();
        assert_eq!(tradeoff(&runs).unwrap(), None);
    }

    /// `h`, the frontier and the efficiency in every format; absent for a row whose alone
    /// run recorded no holds.
    #[test]
    fn every_format_has_the_frontier_and_efficiency() {
        let mut runs = three_rows();
        let mut unrecorded = at("unrec", 0, (0.5, 0.5), 0.0);
        let b = unrecorded.baseline.take().unwrap();
        unrecorded.baseline = Some(b.with_frontier(None));
        runs.push(unrecorded);
        for (format, out) in crate::report::export::tests::every_format(&runs) {
            // mlfq: 0.6 / (1 - 0.3*0.3) and 0.58 / (1 - 0.3*0.32), median 0.650.
            let want = if matches!(format, "csv" | "json") {
                "0.6593406"
            } else {
                "0.650"
            };
            assert!(
                out.contains("efficiency") && out.contains(want),
                "{format}: {out}"
            );
        }
        let v: serde_json::Value =
            serde_json::from_str(&crate::report::export::json::json(&runs)).unwrap();
        let b = &v["runs"][6]["baseline"];
        assert!(
            b["io_hold_share"].is_null() && b["efficiency"].is_null(),
            "{b}"
        );
        assert!((v["runs"][0]["baseline"]["frontier"].as_f64().unwrap() - 0.91).abs() < 1e-9);
        let md = crate::report::export::markdown::markdown(&runs);
        fn cells(l: &str) -> Vec<&str> {
            l.split('|').map(str::trim).collect()
        }
        let header = cells(md.lines().find(|l| l.contains("| efficiency")).unwrap());
        let row = cells(md.lines().find(|l| l.starts_with("| unrec |")).unwrap());
        for col in ["I/O hold h", "frontier", "efficiency"] {
            let i = header.iter().position(|h| h == &col).expect(col);
            assert_eq!(row[i], "-", "{col}: {md}");
        }
    }
}
