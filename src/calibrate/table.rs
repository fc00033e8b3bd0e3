//! The calibrate table: for a terminal, in Markdown and CSV, and the result file.

use super::fit::{Calibration, Fit, GOAL_POINTS, GOAL_RATIO};
use super::run::Outcome;
use super::samples::{median, Sample};
use crate::units::us;

/// The CSV header of a calibrate table (one line per condition and side).
pub const CSV_HEADER: &str = "condition,side,repeats,requests_per_sec,latency_p50_us,latency_p99_us,cpu_kept,ctx_switches_per_sec,waited_0,waited_1,waited_2,waited_3_plus,fit";

/// The CSV header of a calibrate table of a bulk scenario.
pub const BULK_CSV_HEADER: &str = "condition,side,repeats,transfer_s,mb_per_sec,received,cpu_kept,ctx_switches_per_sec,slowdown,unfinished,fit";

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{:.0}%", x * 100.0))
}

fn times(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}x")
    } else {
        "inf".into()
    }
}

/// `median (min-max)` over the repetitions, or the median alone for one.
fn spread(
    median: f64,
    runs: &[Sample],
    of: impl Fn(&Sample) -> f64,
    show: impl Fn(f64) -> String,
) -> String {
    if runs.len() < 2 {
        return show(median);
    }
    let lo = runs.iter().map(&of).fold(f64::INFINITY, f64::min);
    let hi = runs.iter().map(&of).fold(f64::NEG_INFINITY, f64::max);
    format!("{} ({}-{})", show(median), show(lo), show(hi))
}

fn buckets(w: &[f64; 4]) -> String {
    w.iter()
        .map(|x| format!("{:.0}", x * 100.0))
        .collect::<Vec<_>>()
        .join("/")
}

fn points(p: &[f64; 4]) -> String {
    p.iter()
        .map(|x| format!("{:+.0}", x))
        .collect::<Vec<_>>()
        .join("/")
}

fn verdict(f: &Fit) -> String {
    if f.ok {
        "ok".into()
    } else {
        format!("MISS ({})", f.missed.join(", "))
    }
}

/// Whether the calibration is of a bulk scenario (its table has the transfer's columns).
pub fn is_bulk(cal: &Calibration) -> bool {
    cal.conditions
        .iter()
        .any(|c| c.cpython.bulk.is_some() || c.gilbench.bulk.is_some())
}

/// The seven figures of a side's row, echo.
fn echo_cells(s: &Sample, runs: &[Sample]) -> [String; 7] {
    [
        spread(s.requests_per_sec, runs, |x| x.requests_per_sec, rate),
        spread(s.p50_us, runs, |x| x.p50_us, us),
        us(s.p99_us),
        pct(s.cpu_kept),
        rate(s.ctx_per_sec),
        buckets(&s.waited),
        String::new(),
    ]
}

fn mbps(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

fn mb_of(s: &Sample) -> f64 {
    s.bulk.as_ref().map_or(0.0, |b| b.mb_per_sec)
}

/// The seven figures of a side's row, bulk.
fn bulk_cells(s: &Sample, runs: &[Sample]) -> [String; 7] {
    let b = s.bulk.clone().unwrap_or_default();
    let transfer = match (b.transfer_s, b.unfinished) {
        (None, _) => "unfinished".to_owned(),
        (Some(t), 0) => format!("{t:.3}s"),
        (Some(t), k) => format!("{t:.3}s ({k} of {} unfinished)", runs.len()),
    };
    [
        transfer,
        spread(b.mb_per_sec, runs, mb_of, mbps),
        pct(Some(b.received())),
        pct(s.cpu_kept),
        rate(s.ctx_per_sec),
        b.slowdown.map_or("-".into(), times),
        String::new(),
    ]
}

/// The rows of the table: condition, side, then the cells.
fn rows(cal: &Calibration) -> Vec<[String; 9]> {
    let py = cal.python.as_ref().map_or("CPython".to_owned(), |p| {
        format!("{} {}", p.implementation, p.version)
    });
    let bulk = is_bulk(cal);
    let mut out = Vec::new();
    for c in &cal.conditions {
        for (side, s, runs) in [
            (py.as_str(), &c.cpython, &c.cpython_runs),
            ("gilbench timed", &c.gilbench, &c.gilbench_runs),
        ] {
            let cells = if bulk {
                bulk_cells(s, runs)
            } else {
                echo_cells(s, runs)
            };
            let label = if side == py {
                c.label.clone()
            } else {
                String::new()
            };
            let [a, b, c, d, e, f, g] = cells;
            out.push([label, side.to_owned(), a, b, c, d, e, f, g]);
        }
        let f = &c.fit;
        let n = c.cpython_runs.len();
        let verdict = match (cal.max_other_load, c.quiet_pairs) {
            (Some(_), 0) => format!("{} [no quiet pair of {n}]", verdict(f)),
            (Some(_), q) if q < n => format!("{} [{q} quiet pairs of {n}]", verdict(f)),
            _ => verdict(f),
        };
        let opt = |x: Option<f64>| x.map_or("-".into(), times);
        out.push(if bulk {
            [
                String::new(),
                "ratio".into(),
                opt(f.transfer),
                opt(f.mb_per_sec),
                "-".into(),
                opt(f.cpu_kept),
                times(f.ctx_per_sec),
                opt(f.slowdown),
                verdict,
            ]
        } else {
            [
                String::new(),
                "ratio / points".into(),
                times(f.requests_per_sec),
                times(f.p50),
                times(f.p99),
                opt(f.cpu_kept),
                times(f.ctx_per_sec),
                points(&f.waited_points),
                verdict,
            ]
        });
    }
    out
}

const HEAD: [&str; 9] = [
    "condition",
    "side",
    "req/s",
    "p50",
    "p99",
    "cpu kept",
    "ctx/s",
    "waited 0/1/2/3+ %",
    "fit",
];

const BULK_HEAD: [&str; 9] = [
    "condition",
    "side",
    "transfer",
    "MB/s",
    "received",
    "cpu kept",
    "ctx/s",
    "slowdown",
    "fit",
];

/// The table's header and its right-aligned (numeric) columns.
fn head(cal: &Calibration) -> ([&'static str; 9], std::ops::RangeInclusive<usize>) {
    if is_bulk(cal) {
        (BULK_HEAD, 2..=7)
    } else {
        (HEAD, 2..=6)
    }
}

/// The header lines: what ran where.
fn header(cal: &Calibration) -> Vec<String> {
    let m = &cal.machine;
    let cores = m["usable_cores"].as_array().map_or(0, Vec::len);
    let py = cal.python.as_ref().map_or(String::new(), |p| {
        format!("{} {} ({})", p.implementation, p.version, p.path.display())
    });
    let others: Vec<f64> = cal
        .conditions
        .iter()
        .flat_map(|c| c.cpython_runs.iter().chain(&c.gilbench_runs))
        .filter_map(|s| s.other_load)
        .collect();
    let other = if others.is_empty() {
        String::new()
    } else {
        let max = others.iter().copied().fold(0.0, f64::max);
        format!(
            "; other processes used {:.0}% of the machine during a run (median; at most {:.0}%)",
            median(others) * 100.0,
            max * 100.0
        )
    };
    let mut other = other;
    if let Some(max) = cal.max_other_load {
        other.push_str(&format!(
            "; {} run pairs repeated as others used more than {:.0}%",
            cal.retried,
            max * 100.0
        ));
        if cal.noisy_kept > 0 {
            other.push_str(&format!(", {} kept so after the last try", cal.noisy_kept));
        }
    }
    let first = format!(
        "calibrate {}: gilbench timed vs {py}, on {} ({cores} cores, Linux {}){other}",
        cal.scenario,
        m["cpu_model"].as_str().unwrap_or("?"),
        m["kernel"].as_str().unwrap_or("?")
    );
    if is_bulk(cal) {
        return vec![
            first,
            format!(
                "medians of {} repeats (over the quiet pairs where some were not; min-max of all in brackets); load average {:.2} before, {:.2} after; each transfer measured whole, from its first byte to its last (or to the end of the run: unfinished, counted with what arrived); MB/s = 10^6 bytes received per second of that; cpu kept and ctx/s during the transfer; slowdown = MB/s without CPU threads / with; ratio = gilbench / CPython; goals: MB/s and slowdown within {:.0}%",
                cal.repeat,
                cal.load_average[0],
                cal.load_average[1],
                GOAL_RATIO * 100.0
            ),
        ];
    }
    vec![
        first,
        format!(
            "medians of {} repeats (over the quiet pairs where some were not; min-max of all in brackets); load average {:.2} before, {:.2} after; waited = round(latency / interval) per request; ratio = gilbench / CPython; goals: req/s and p50 within {:.0}%, waited within {:.0} points",
            cal.repeat,
            cal.load_average[0],
            cal.load_average[1],
            GOAL_RATIO * 100.0,
            GOAL_POINTS
        ),
    ]
}

/// The table for a terminal.
pub fn text(cal: &Calibration) -> String {
    let rows = rows(cal);
    let (head, numeric) = head(cal);
    let mut w = head.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut o = String::new();
    for h in header(cal) {
        o.push_str(&h);
        o.push('\n');
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            if numeric.contains(&i) {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                if i + 1 < cells.len() {
                    l.push_str(&" ".repeat(pad));
                }
            }
            if i + 1 < cells.len() {
                l.push_str("  ");
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    o.push_str(&line(&head.map(str::to_owned)));
    for r in &rows {
        o.push_str(&line(r));
    }
    for n in &cal.notes {
        o.push_str(&format!("note: {n}\n"));
    }
    if cal.partial {
        o.push_str("note: interrupted: the table covers the runs finished so far\n");
    }
    o
}

/// The table in Markdown, with gilbench's marker first.
pub fn markdown(cal: &Calibration) -> String {
    let mut o = format!("<!-- gilbench {} -->\n", env!("CARGO_PKG_VERSION"));
    for h in header(cal) {
        o.push_str(&h);
        o.push_str("\n\n");
    }
    let (head, numeric) = head(cal);
    o.push_str(&format!("| {} |\n", head.join(" | ")));
    o.push_str(&format!(
        "|{}\n",
        head.iter()
            .enumerate()
            .map(|(i, _)| if numeric.contains(&i) {
                "---:|"
            } else {
                "---|"
            })
            .collect::<String>()
    ));
    for r in rows(cal) {
        let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
        o.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    for n in &cal.notes {
        o.push_str(&format!("\n{n}\n"));
    }
    o
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A line per condition and side (`cpython`, `gilbench`, `ratio`), raw numbers.
pub fn csv(cal: &Calibration) -> String {
    let opt = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:.4}"));
    if is_bulk(cal) {
        return bulk_csv(cal, &opt);
    }
    let mut o = format!("{CSV_HEADER}\n");
    for c in &cal.conditions {
        for (side, s) in [("cpython", &c.cpython), ("gilbench", &c.gilbench)] {
            o.push_str(&format!(
                "{},{side},{},{:.2},{:.1},{:.1},{},{:.1},{:.4},{:.4},{:.4},{:.4},\n",
                csv_field(&c.label),
                c.cpython_runs.len(),
                s.requests_per_sec,
                s.p50_us,
                s.p99_us,
                opt(s.cpu_kept),
                s.ctx_per_sec,
                s.waited[0],
                s.waited[1],
                s.waited[2],
                s.waited[3],
            ));
        }
        let f = &c.fit;
        o.push_str(&format!(
            "{},ratio,{},{:.4},{:.4},{:.4},{},{:.4},{:.2},{:.2},{:.2},{:.2},{}\n",
            csv_field(&c.label),
            c.cpython_runs.len(),
            f.requests_per_sec,
            f.p50,
            f.p99,
            opt(f.cpu_kept),
            f.ctx_per_sec,
            f.waited_points[0],
            f.waited_points[1],
            f.waited_points[2],
            f.waited_points[3],
            if f.ok { "ok" } else { "miss" }
        ));
    }
    o
}

/// The bulk table as CSV: transfer time, MB/s, share received, CPU kept, context switches
/// per second, slowdown and unfinished runs per side; the ratios and the verdict.
fn bulk_csv(cal: &Calibration, opt: &dyn Fn(Option<f64>) -> String) -> String {
    let mut o = format!("{BULK_CSV_HEADER}\n");
    for c in &cal.conditions {
        let n = c.cpython_runs.len();
        let label = csv_field(&c.label);
        for (side, s) in [("cpython", &c.cpython), ("gilbench", &c.gilbench)] {
            let b = s.bulk.clone().unwrap_or_default();
            o.push_str(&format!(
                "{label},{side},{n},{},{:.4},{:.4},{},{:.1},{},{},\n",
                opt(b.transfer_s),
                b.mb_per_sec,
                b.received(),
                opt(s.cpu_kept),
                s.ctx_per_sec,
                opt(b.slowdown),
                b.unfinished,
            ));
        }
        let f = &c.fit;
        o.push_str(&format!(
            "{label},ratio,{n},{},{},,{},{:.4},{},,{}\n",
            opt(f.transfer),
            opt(f.mb_per_sec),
            opt(f.cpu_kept),
            f.ctx_per_sec,
            opt(f.slowdown),
            if f.ok { "ok" } else { "miss" }
        ));
    }
    o
}

/// The result file: the calibration, and every run with a server (both sides) as `runs`, so
/// that `gilbench report` reads it too.
pub fn json(out: &Outcome) -> String {
    let mut v = serde_json::json!({
        "gilbench": env!("CARGO_PKG_VERSION"),
        "calibrate": out.calibration,
    });
    v["runs"] = serde_json::to_value(&out.runs).unwrap_or_default();
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}
