//! Human-readable rendering of results.

use std::fmt::Write;

use crate::metrics::Percentiles;
use crate::result::RunResult;

fn rate(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2}G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Microseconds, compactly.
pub fn us(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}s", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.2}ms", x / 1e3)
    } else {
        format!("{x:.1}us")
    }
}

fn pct(p: &Percentiles) -> String {
    if p.count == 0 {
        return "-".into();
    }
    format!("{}/{}/{}", us(p.p50), us(p.p99), us(p.max))
}

/// The table `gilbench run` prints for one run.
pub fn run_table(r: &RunResult) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} on {} ({:.2}s measured, pin {})",
        r.scenario,
        r.row_label(),
        r.measured_s,
        r.params["pin"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        o,
        "{:<8} {:<10} {:>5} {:>10} {:>8} {:>8} {:>8} {:>26} {:>26} {:>12}",
        "thread",
        "work",
        "core",
        "ticks/s",
        "acq",
        "switch",
        "forced",
        "GIL wait p50/p99/max",
        "GIL hold p50/p99/max",
        "ctx vol/inv"
    );
    for t in &r.threads {
        let core = match (t.pinned, t.core) {
            (_, Some(c)) => c.to_string(),
            _ => "?".into(),
        };
        let _ = writeln!(
            o,
            "{:<8} {:<10} {:>5} {:>10} {:>8} {:>8} {:>8} {:>26} {:>26} {:>12}",
            t.name,
            t.workload,
            core,
            rate(t.ticks_per_sec),
            t.counters.acquisitions,
            t.counters.switches,
            t.counters.forced_drops,
            pct(&t.wait_us),
            pct(&t.hold_us),
            format!(
                "{}/{}",
                t.ctx_switches.voluntary, t.ctx_switches.involuntary
            )
        );
    }
    let g = &r.gil;
    let _ = writeln!(
        o,
        "{:<8} {:<10} {:>5} {:>10} {:>8} {:>8} {:>8} {:>26} {:>26} {:>12}",
        "total",
        "",
        "",
        r.cpu.as_ref().map_or("-".into(), |c| rate(c.ticks_per_sec)),
        g.acquisitions,
        g.switches,
        g.forced_drops,
        pct(&g.wait_us),
        pct(&g.hold_us),
        format!(
            "{}/{}",
            g.ctx_switches.voluntary, g.ctx_switches.involuntary
        )
    );
    if let Some(c) = &r.cpu {
        let _ = writeln!(
            o,
            "cpu: {} threads, {} ticks/s, {}B/s hashed",
            c.threads,
            rate(c.ticks_per_sec),
            rate(c.bytes_per_sec)
        );
    }
    if let Some(io) = &r.io {
        let l = &io.latency_us;
        let _ = writeln!(
            o,
            "io: {} requests, {} req/s, latency p50 {} p90 {} p99 {} p99.9 {} max {}",
            io.requests,
            rate(io.requests_per_sec),
            us(l.p50),
            us(l.p90),
            us(l.p99),
            us(l.p999),
            us(l.max)
        );
        if let Some(t) = io.transfer_s {
            let _ = writeln!(o, "io: transfer of {}B took {t:.3}s", rate(io.bytes as f64));
        }
        if io.mode == "open" {
            let l = &io.lateness_us;
            let _ = writeln!(
                o,
                "io: open loop at {}/s; client send lateness p50 {} p99 {} max {}; {} sends more than 1 ms late",
                rate(io.rate),
                us(l.p50),
                us(l.p99),
                us(l.max),
                io.late_sends
            );
        }
        if io.failed > 0 {
            let _ = writeln!(
                o,
                "io: {} requests failed (no reply within the timeout)",
                io.failed
            );
        }
        if io.reacquire_us.count > 0 {
            let r = &io.reacquire_us;
            let _ = writeln!(
                o,
                "io: server GIL re-acquire after a blocking call p50 {} p99 {} max {}",
                us(r.p50),
                us(r.p99),
                us(r.max)
            );
        }
        if !io.loadgen.is_empty() {
            let _ = writeln!(o, "io: load generator ran on {}", io.loadgen);
        }
    }
    if !g.design.is_empty() {
        let parts: Vec<String> = g.design.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(o, "{}: {}", r.lock, parts.join(", "));
    }
    for n in &r.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}

pub mod export;
pub mod hgrm;
pub mod plot;

/// The part of an output file name (`--hgrm`, `--plot`) that a scenario name or row label
/// becomes: ASCII letters, digits, `-` and `.` kept, anything else `_`. Not injective, so an
/// experiment rejects rows whose labels it maps alike (`experiment::sweep_rows`).
pub fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The columns of a compare/sweep table, after the label.
pub const COLUMNS: [&str; 9] = [
    "requests/s",
    "p50 us",
    "p99 us",
    "p99.9 us",
    "CPU ticks/s",
    "switches",
    "forced drops",
    "ctx switches",
    "ratio",
];

/// Shown after the ratio when some run has it (bulk transfers).
pub const TRANSFER_COLUMN: &str = "transfer s";

/// The columns a table of `runs` shows: [`COLUMNS`], and the transfer time when any run has
/// one.
pub fn columns(runs: &[RunResult]) -> Vec<&'static str> {
    let mut c = COLUMNS.to_vec();
    if runs
        .iter()
        .any(|r| r.io.as_ref().is_some_and(|io| io.transfer_s.is_some()))
    {
        c.push(TRANSFER_COLUMN);
    }
    c
}

/// Column `c` (0..8, not the ratio) of a run, if it has one.
pub fn metric(r: &RunResult, c: usize) -> Option<f64> {
    let io = r.io.as_ref().filter(|io| io.mode != "bulk" || c == 0);
    match c {
        0 => io.map(|io| io.requests_per_sec),
        1 => io
            .filter(|io| io.latency_us.count > 0)
            .map(|io| io.latency_us.p50),
        2 => io
            .filter(|io| io.latency_us.count > 0)
            .map(|io| io.latency_us.p99),
        3 => io
            .filter(|io| io.latency_us.count > 0)
            .map(|io| io.latency_us.p999),
        4 => r.cpu.as_ref().map(|c| c.ticks_per_sec),
        5 => Some(r.gil.switches as f64),
        6 => Some(r.gil.forced_drops as f64),
        7 => Some((r.gil.ctx_switches.voluntary + r.gil.ctx_switches.involuntary) as f64),
        _ => None,
    }
}

/// The median and the spread of one cell over repeated runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Stat {
    fn of(mut v: Vec<f64>) -> Option<Stat> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}

/// One row of a compare/sweep table.
#[derive(Clone, Debug)]
pub struct SummaryRow {
    pub label: String,
    pub cells: Vec<Option<Stat>>,
    pub partial: bool,
}

/// Groups runs by label (in order of first appearance) into table rows; the ratio column is
/// requests/s (or, without I/O, CPU ticks/s) against the first row.
pub fn summary(runs: &[RunResult]) -> Vec<SummaryRow> {
    let mut labels: Vec<&str> = Vec::new();
    for r in runs {
        let l = r.row_label();
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    let mut rows: Vec<SummaryRow> = labels
        .iter()
        .map(|&l| {
            let group: Vec<&RunResult> = runs.iter().filter(|r| r.row_label() == l).collect();
            let cells = (0..COLUMNS.len() - 1)
                .map(|c| Stat::of(group.iter().filter_map(|r| metric(r, c)).collect()))
                .collect();
            SummaryRow {
                label: l.to_owned(),
                cells,
                partial: group.iter().any(|r| r.partial),
            }
        })
        .collect();
    let base_col = if rows.first().is_some_and(|r| r.cells[0].is_some()) {
        0
    } else {
        4
    };
    let base = rows
        .first()
        .and_then(|r| r.cells[base_col])
        .map(|s| s.median);
    for row in &mut rows {
        let ratio = match (row.cells[base_col], base) {
            (Some(s), Some(b)) if b > 0.0 => Some(Stat {
                median: s.median / b,
                min: s.min / b,
                max: s.max / b,
                n: s.n,
            }),
            _ => None,
        };
        row.cells.push(ratio);
    }
    // The transfer time (bulk) goes last; renderers show it when `columns` lists it.
    for row in &mut rows {
        let group = runs.iter().filter(|r| r.row_label() == row.label);
        row.cells.push(Stat::of(
            group
                .filter_map(|r| r.io.as_ref().and_then(|io| io.transfer_s))
                .collect(),
        ));
    }
    rows
}

fn human(c: usize, x: f64) -> String {
    match c {
        0 | 4 => rate(x),
        1..=3 => us(x),
        8 => format!("{x:.2}x"),
        9 => format!("{x:.3}s"),
        _ => format!("{x:.0}"),
    }
}

/// The compare/sweep table for a terminal.
pub fn summary_text(runs: &[RunResult]) -> String {
    let rows = summary(runs);
    let cell = |c: usize, s: &Option<Stat>| match s {
        None => "-".to_owned(),
        Some(s) if s.n > 1 => format!(
            "{} ({}-{})",
            human(c, s.median),
            human(c, s.min),
            human(c, s.max)
        ),
        Some(s) => human(c, s.median),
    };
    let cols = columns(runs);
    let mut table: Vec<Vec<String>> = vec![std::iter::once("run".to_owned())
        .chain(cols.iter().map(|c| c.to_string()))
        .collect()];
    for r in &rows {
        let mut line = vec![if r.partial {
            format!("{} (partial)", r.label)
        } else {
            r.label.clone()
        }];
        line.extend(
            r.cells
                .iter()
                .take(cols.len())
                .enumerate()
                .map(|(c, s)| cell(c, s)),
        );
        table.push(line);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|i| {
            table
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut o = String::new();
    if let Some(r) = runs.first() {
        let reps = runs.iter().map(|r| r.repeat + 1).max().unwrap_or(1);
        let _ = writeln!(
            o,
            "{}: {} runs{}; latency is client-side; ratio is {} against the first row",
            r.scenario,
            runs.len(),
            if reps > 1 {
                format!(", each row the median (min-max) of {reps}")
            } else {
                String::new()
            },
            if rows.first().is_some_and(|r| r.cells[0].is_some()) {
                "requests/s"
            } else {
                "CPU ticks/s"
            }
        );
    }
    for l in &table {
        let parts: Vec<String> = l
            .iter()
            .enumerate()
            .map(|(i, s)| {
                if i == 0 {
                    format!("{s:<w$}", w = widths[i])
                } else {
                    format!("{s:>w$}", w = widths[i])
                }
            })
            .collect();
        let _ = writeln!(o, "{}", parts.join("  ").trim_end());
    }
    o
}
