//! The calibrate table: a row per condition and side and one of their ratios, its columns
//! as data ([`TableColumn`]s) rendered by the report module's [`Table`] for every format
//! (text, Markdown, CSV; the result file through the JSON export).

use super::fit::{Calibration, CondResult, Fit, GOAL_POINTS, GOAL_RATIO};
use super::samples::{median, Sample};
use crate::report::columns::TableColumn;
use crate::report::table::Table;
use crate::report::{rate, Stat};
use crate::units::us;

/// The CSV header of a calibrate table (one line per condition and side).
pub const CSV_HEADER: &str = "condition,side,repeats,requests_per_sec,latency_p50_us,latency_p99_us,cpu_kept,ctx_switches_per_sec,waited_0,waited_1,waited_2,waited_3_plus,fit";

/// The CSV header of a calibrate table of a bulk scenario.
pub const BULK_CSV_HEADER: &str = "condition,side,repeats,transfer_s,mb_per_sec,received,cpu_kept,ctx_switches_per_sec,slowdown,unfinished,fit";

/// A row of the table: one side of a condition, or their ratio.
pub struct Row<'a> {
    cond: &'a CondResult,
    /// The interpreter, as the table names it (`CPython 3.12.1`).
    python: &'a str,
    kind: Kind<'a>,
}

enum Kind<'a> {
    /// A side's medians (`key`: `cpython` or `gilbench`) and its repetitions.
    Side {
        key: &'static str,
        sample: &'a Sample,
        runs: &'a [Sample],
    },
    /// The ratios, and the verdict in words.
    Ratio { verdict: String },
}

impl Row<'_> {
    fn side(&self) -> Option<(&Sample, &[Sample])> {
        match &self.kind {
            Kind::Side { sample, runs, .. } => Some((sample, runs)),
            Kind::Ratio { .. } => None,
        }
    }
    fn fit(&self) -> &Fit {
        &self.cond.fit
    }
    fn bulk(&self) -> crate::calibrate::Bulk {
        self.side()
            .and_then(|(s, _)| s.bulk.clone())
            .unwrap_or_default()
    }
    /// A side's figure `side` (written by `show`), or the ratio's `ratio` (as `times`).
    fn either(
        &self,
        side: impl Fn(&Sample, &[Sample]) -> String,
        ratio: impl Fn(&Fit) -> String,
    ) -> String {
        match self.side() {
            Some((s, runs)) => side(s, runs),
            None => ratio(self.fit()),
        }
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

fn opt_times(x: Option<f64>) -> String {
    x.map_or("-".into(), times)
}

fn opt(x: Option<f64>) -> String {
    x.map_or(String::new(), |x| format!("{x:.4}"))
}

/// `median (min-max)` over the repetitions, or the median alone for one.
fn spread(median: f64, runs: &[Sample], of: fn(&Sample) -> f64, show: fn(f64) -> String) -> String {
    let all = || runs.iter().map(of);
    Stat {
        median,
        min: all().fold(f64::INFINITY, f64::min),
        max: all().fold(f64::NEG_INFINITY, f64::max),
        n: runs.len(),
    }
    .show(show, "-")
}

fn buckets(w: &[f64; 4]) -> String {
    let v: Vec<String> = w.iter().map(|x| format!("{:.0}", x * 100.0)).collect();
    v.join("/")
}

fn points(p: &[f64; 4]) -> String {
    let v: Vec<String> = p.iter().map(|x| format!("{x:+.0}")).collect();
    v.join("/")
}

fn verdict(f: &Fit) -> String {
    if f.ok {
        "ok".into()
    } else {
        format!("MISS ({})", f.missed.join(", "))
    }
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

/// A bulk side's transfer time, with how many runs did not finish it.
fn transfer(s: &Sample, runs: &[Sample]) -> String {
    let b = s.bulk.clone().unwrap_or_default();
    match (b.transfer_s, b.unfinished) {
        (None, _) => "unfinished".to_owned(),
        (Some(t), 0) => format!("{t:.3}s"),
        (Some(t), k) => format!("{t:.3}s ({k} of {} unfinished)", runs.len()),
    }
}

/// The waited bucket `K`: a side's share, or the ratio row's points.
fn waited<const K: usize>(r: &Row) -> String {
    r.either(
        |s, _| format!("{:.4}", s.waited[K]),
        |f| format!("{:.2}", f.waited_points[K]),
    )
}

/// The columns both tables lead with: the condition (named on its first row in the text
/// table), the side and the repetitions.
macro_rules! lead {
    ($ratio:expr) => {
        [
            TableColumn {
                name: Some("condition"),
                key: Some("condition"),
                numeric: false,
                human: |r: &Row| match r.kind {
                    Kind::Side { key: "cpython", .. } => r.cond.label.clone(),
                    _ => String::new(),
                },
                plain: |r: &Row| r.cond.label.clone(),
            },
            TableColumn {
                name: Some("side"),
                key: Some("side"),
                numeric: false,
                human: |r: &Row| match r.kind {
                    Kind::Side { key: "cpython", .. } => r.python.to_owned(),
                    Kind::Side { .. } => "gilbench timed".into(),
                    Kind::Ratio { .. } => $ratio.into(),
                },
                plain: |r: &Row| match r.kind {
                    Kind::Side { key, .. } => key.into(),
                    Kind::Ratio { .. } => "ratio".into(),
                },
            },
            TableColumn {
                name: None,
                key: Some("repeats"),
                numeric: false,
                human: |_: &Row| String::new(),
                plain: |r: &Row| r.cond.cpython_runs.len().to_string(),
            },
        ]
    };
}

/// The columns both tables share: CPU kept and context switches per second.
fn cpu_kept<'a>() -> TableColumn<Row<'a>> {
    TableColumn {
        name: Some("cpu kept"),
        key: Some("cpu_kept"),
        numeric: true,
        human: |r: &Row| r.either(|s, _| pct(s.cpu_kept), |f| opt_times(f.cpu_kept)),
        plain: |r: &Row| r.either(|s, _| opt(s.cpu_kept), |f| opt(f.cpu_kept)),
    }
}

fn ctx<'a>() -> TableColumn<Row<'a>> {
    TableColumn {
        name: Some("ctx/s"),
        key: Some("ctx_switches_per_sec"),
        numeric: true,
        human: |r: &Row| r.either(|s, _| rate(s.ctx_per_sec), |f| times(f.ctx_per_sec)),
        plain: |r: &Row| {
            r.either(
                |s, _| format!("{:.1}", s.ctx_per_sec),
                |f| format!("{:.4}", f.ctx_per_sec),
            )
        },
    }
}

fn fit_column<'a>() -> TableColumn<Row<'a>> {
    TableColumn {
        name: Some("fit"),
        key: Some("fit"),
        numeric: false,
        human: |r: &Row| match &r.kind {
            Kind::Ratio { verdict } => verdict.clone(),
            Kind::Side { .. } => String::new(),
        },
        plain: |r: &Row| match (&r.kind, r.fit().ok) {
            (Kind::Side { .. }, _) => String::new(),
            (Kind::Ratio { .. }, true) => "ok".into(),
            (Kind::Ratio { .. }, false) => "miss".into(),
        },
    }
}

/// The columns of an echo calibration.
fn echo_columns<'a>() -> Vec<TableColumn<Row<'a>>> {
    let mut c: Vec<TableColumn<Row<'a>>> = lead!("ratio / points").into();
    c.extend([
        TableColumn {
            name: Some("req/s"),
            key: Some("requests_per_sec"),
            numeric: true,
            human: |r: &Row| {
                r.either(
                    |s, runs| spread(s.requests_per_sec, runs, |x| x.requests_per_sec, rate),
                    |f| times(f.requests_per_sec),
                )
            },
            plain: |r: &Row| {
                r.either(
                    |s, _| format!("{:.2}", s.requests_per_sec),
                    |f| format!("{:.4}", f.requests_per_sec),
                )
            },
        },
        TableColumn {
            name: Some("p50"),
            key: Some("latency_p50_us"),
            numeric: true,
            human: |r: &Row| {
                r.either(
                    |s, runs| spread(s.p50_us, runs, |x| x.p50_us, us),
                    |f| times(f.p50),
                )
            },
            plain: |r: &Row| {
                r.either(
                    |s, _| format!("{:.1}", s.p50_us),
                    |f| format!("{:.4}", f.p50),
                )
            },
        },
        TableColumn {
            name: Some("p99"),
            key: Some("latency_p99_us"),
            numeric: true,
            human: |r: &Row| r.either(|s, _| us(s.p99_us), |f| times(f.p99)),
            plain: |r: &Row| {
                r.either(
                    |s, _| format!("{:.1}", s.p99_us),
                    |f| format!("{:.4}", f.p99),
                )
            },
        },
        cpu_kept(),
        ctx(),
    ]);
    c.extend(waited_columns());
    c.push(fit_column());
    c
}

/// The intervals waited: one column in the text table, a column per bucket in the CSV.
fn waited_columns<'a>() -> Vec<TableColumn<Row<'a>>> {
    let mut c = vec![TableColumn {
        name: Some("waited 0/1/2/3+ %"),
        key: None,
        numeric: false,
        human: |r: &Row| r.either(|s, _| buckets(&s.waited), |f| points(&f.waited_points)),
        plain: |_| String::new(),
    }];
    for (key, plain) in [
        ("waited_0", waited::<0> as fn(&Row) -> String),
        ("waited_1", waited::<1>),
        ("waited_2", waited::<2>),
        ("waited_3_plus", waited::<3>),
    ] {
        c.push(TableColumn {
            name: None,
            key: Some(key),
            numeric: false,
            human: |_| String::new(),
            plain,
        });
    }
    c
}

/// The columns of a bulk calibration.
fn bulk_columns<'a>() -> Vec<TableColumn<Row<'a>>> {
    let mut c: Vec<TableColumn<Row<'a>>> = lead!("ratio").into();
    c.extend([
        TableColumn {
            name: Some("transfer"),
            key: Some("transfer_s"),
            numeric: true,
            human: |r: &Row| r.either(transfer, |f| opt_times(f.transfer)),
            plain: |r: &Row| {
                r.either(
                    |s, _| opt(s.bulk.as_ref().and_then(|b| b.transfer_s)),
                    |f| opt(f.transfer),
                )
            },
        },
        TableColumn {
            name: Some("MB/s"),
            key: Some("mb_per_sec"),
            numeric: true,
            human: |r: &Row| {
                r.either(
                    |s, runs| spread(mb_of(s), runs, mb_of, mbps),
                    |f| opt_times(f.mb_per_sec),
                )
            },
            plain: |r: &Row| r.either(|s, _| format!("{:.4}", mb_of(s)), |f| opt(f.mb_per_sec)),
        },
        TableColumn {
            name: Some("received"),
            key: Some("received"),
            numeric: true,
            human: |r: &Row| r.either(|_, _| pct(Some(r.bulk().received())), |_| "-".into()),
            plain: |r: &Row| {
                r.either(
                    |_, _| format!("{:.4}", r.bulk().received()),
                    |_| String::new(),
                )
            },
        },
        cpu_kept(),
        ctx(),
    ]);
    c.extend(slowdown_columns());
    c.push(fit_column());
    c
}

/// A bulk side's slowdown against no CPU threads (its ratio on the ratio row), and how many
/// of its transfers did not finish (CSV).
fn slowdown_columns<'a>() -> [TableColumn<Row<'a>>; 2] {
    [
        TableColumn {
            name: Some("slowdown"),
            key: Some("slowdown"),
            numeric: true,
            human: |r: &Row| {
                r.either(
                    |_, _| opt_times(r.bulk().slowdown),
                    |f| opt_times(f.slowdown),
                )
            },
            plain: |r: &Row| r.either(|_, _| opt(r.bulk().slowdown), |f| opt(f.slowdown)),
        },
        TableColumn {
            name: None,
            key: Some("unfinished"),
            numeric: false,
            human: |_| String::new(),
            plain: |r: &Row| r.either(|_, _| r.bulk().unfinished.to_string(), |_| String::new()),
        },
    ]
}

/// Whether the calibration is of a bulk scenario (its table has the transfer's columns).
pub fn is_bulk(cal: &Calibration) -> bool {
    cal.conditions
        .iter()
        .any(|c| c.cpython.bulk.is_some() || c.gilbench.bulk.is_some())
}

/// The rows of the table: each condition's sides, then their ratio.
fn rows<'a>(cal: &'a Calibration, python: &'a str) -> Vec<Row<'a>> {
    let mut out = Vec::new();
    for c in &cal.conditions {
        for (key, sample, runs) in [
            ("cpython", &c.cpython, &c.cpython_runs),
            ("gilbench", &c.gilbench, &c.gilbench_runs),
        ] {
            let kind = Kind::Side { key, sample, runs };
            out.push(Row {
                cond: c,
                python,
                kind,
            });
        }
        let n = c.cpython_runs.len();
        let verdict = match (cal.max_other_load, c.quiet_pairs) {
            (Some(_), 0) => format!("{} [no quiet pair of {n}]", verdict(&c.fit)),
            (Some(_), q) if q < n => format!("{} [{q} quiet pairs of {n}]", verdict(&c.fit)),
            _ => verdict(&c.fit),
        };
        out.push(Row {
            cond: c,
            python,
            kind: Kind::Ratio { verdict },
        });
    }
    out
}

/// The calibration as a table, with its caption, its notes and its record for the result
/// file.
pub fn table(cal: &Calibration) -> Table {
    let python = cal.python.as_ref().map_or("CPython".to_owned(), |p| {
        format!("{} {}", p.implementation, p.version)
    });
    let rows = rows(cal, &python);
    let mut t = if is_bulk(cal) {
        Table::of(&bulk_columns(), &rows)
    } else {
        Table::of(&echo_columns(), &rows)
    };
    t.caption = header(cal);
    t.notes = cal.notes.clone();
    t.partial = cal.partial;
    t.record.insert(
        "calibrate".into(),
        serde_json::to_value(cal).unwrap_or_default(),
    );
    t
}

/// The table for a terminal.
pub fn text(cal: &Calibration) -> String {
    table(cal).text()
}

/// The table in Markdown, with gilbench's marker first.
pub fn markdown(cal: &Calibration) -> String {
    table(cal).markdown()
}

/// A line per condition and side (`cpython`, `gilbench`, `ratio`), raw numbers.
pub fn csv(cal: &Calibration) -> String {
    table(cal).csv()
}

/// What other processes used of the machine during the runs, and the pairs run again for
/// it (a part of the first header line).
fn others_line(cal: &Calibration) -> String {
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
    other
}

/// The header lines: what ran where.
fn header(cal: &Calibration) -> Vec<String> {
    let m = &cal.machine;
    let cores = m["usable_cores"].as_array().map_or(0, Vec::len);
    let py = cal.python.as_ref().map_or(String::new(), |p| {
        format!("{} {} ({})", p.implementation, p.version, p.path.display())
    });
    let other = others_line(cal);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::Bulk;

    fn calibration(bulk: bool) -> Calibration {
        let side = Sample {
            bulk: bulk.then(Bulk::default),
            ..Default::default()
        };
        Calibration {
            conditions: vec![CondResult {
                label: "a, \"b\"".into(),
                cpython: side.clone(),
                gilbench: side.clone(),
                cpython_runs: vec![side.clone()],
                gilbench_runs: vec![side],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// The headers that recognise calibrate's CSV files are the ones its columns make, and
    /// every format writes the rows the columns describe.
    #[test]
    fn the_columns_make_every_format_of_the_table() {
        for (bulk, head) in [(false, CSV_HEADER), (true, BULK_CSV_HEADER)] {
            let t = table(&calibration(bulk));
            assert_eq!(t.csv_header(), head);
            let csv = t.csv();
            assert_eq!(csv.lines().count(), 1 + 3, "{csv}");
            assert!(
                csv.lines()
                    .skip(1)
                    .all(|l| l.starts_with("\"a, \"\"b\"\"\",")),
                "{csv}"
            );
            let text = t.text();
            assert_eq!(text.matches("a, \"b\"").count(), 1, "{text}");
            let md = t.markdown();
            assert_eq!(
                md.lines().filter(|l| l.starts_with('|')).count(),
                2 + 3,
                "{md}"
            );
            assert!(t.record.contains_key("calibrate"));
        }
    }
}
