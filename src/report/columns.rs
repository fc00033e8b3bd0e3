//! The columns of gilbench's tables, as data: each one's header, key, where its value
//! comes from and how it is written. The text table, Markdown, CSV and HTML all render from
//! [`COLUMNS`] (and a run's thread table from [`THREAD_COLUMNS`]), so they cannot drift
//! apart: a new column is one entry.

use super::rate;
use crate::metrics::Percentiles;
use crate::result::{RunResult, ThreadResult};
use crate::units::us;

/// Where a column's value comes from.
#[derive(Clone, Copy)]
pub enum Source {
    /// A figure of each run (`None`: the run has no such figure).
    Run(fn(&RunResult) -> Option<f64>),
    /// A row's [`RATIO_BASES`] figure against the first row's: a table column, not a figure
    /// of one run (so not in the CSV).
    Ratio,
}

/// One column of the compare/sweep table.
pub struct Column {
    /// The header of the text table, Markdown and HTML.
    pub name: &'static str,
    /// The CSV header field and the HTML cells' `data-col`.
    pub key: &'static str,
    /// Where the value comes from.
    pub source: Source,
    /// The value for a person (text table, HTML): `5.5k`, `120.0us`.
    pub human: fn(f64) -> String,
    /// The value as a plain number (Markdown), its unit in the header.
    pub plain: fn(f64) -> String,
    /// Shown only when some run has a value (e.g. the transfer time of bulk scenarios).
    pub optional: bool,
}

/// The run's I/O figures, when it has client-side ones: bulk transfers have requests/s
/// only.
fn io(r: &RunResult) -> Option<&crate::result::IoSummary> {
    r.io.as_ref().filter(|io| io.mode != "bulk")
}

fn latency(r: &RunResult, p: fn(&Percentiles) -> f64) -> Option<f64> {
    io(r)
        .filter(|io| io.latency_us.count > 0)
        .map(|io| p(&io.latency_us))
}

/// The fewest ticks/s of a CPU thread over the most (1: an even share), when the run has two
/// or more CPU threads.
fn cpu_fairness(r: &RunResult) -> Option<f64> {
    let rates: Vec<f64> = r
        .threads
        .iter()
        .filter(|t| t.role == "cpu")
        .map(|t| t.ticks_per_sec)
        .collect();
    let most = rates.iter().copied().fold(0.0, f64::max);
    let fewest = rates.iter().copied().fold(f64::INFINITY, f64::min);
    (rates.len() >= 2 && most > 0.0).then(|| fewest / most)
}

fn one_decimal(x: f64) -> String {
    format!("{x:.1}")
}

fn whole(x: f64) -> String {
    format!("{x:.0}")
}

fn three_decimals(x: f64) -> String {
    format!("{x:.3}")
}

fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn percent_plain(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// The compare/sweep table's columns after the row label, in order.
pub const COLUMNS: &[Column] = &[
    Column {
        name: "requests/s",
        key: "requests_per_sec",
        source: Source::Run(|r| r.io.as_ref().map(|io| io.requests_per_sec)),
        human: rate,
        plain: one_decimal,
        optional: false,
    },
    Column {
        name: "vs alone",
        key: "requests_vs_alone",
        source: Source::Run(|r| r.baseline.as_ref().map(|b| b.requests_vs_alone)),
        human: |x| format!("{x:.2}x"),
        plain: three_decimals,
        optional: true,
    },
    Column {
        name: "p50 us",
        key: "latency_p50_us",
        source: Source::Run(|r| latency(r, |p| p.p50)),
        human: us,
        plain: one_decimal,
        optional: false,
    },
    Column {
        name: "p99 us",
        key: "latency_p99_us",
        source: Source::Run(|r| latency(r, |p| p.p99)),
        human: us,
        plain: one_decimal,
        optional: false,
    },
    Column {
        name: "p99 vs alone",
        key: "p99_vs_alone",
        // Absent when either side has no latency (older results wrote 0: no ratio either).
        source: Source::Run(|r| {
            r.baseline
                .as_ref()
                .and_then(|b| b.p99_vs_alone)
                .filter(|x| *x > 0.0)
        }),
        human: |x| format!("{x:.2}x"),
        plain: three_decimals,
        optional: true,
    },
    Column {
        name: "p99.9 us",
        key: "latency_p999_us",
        source: Source::Run(|r| latency(r, |p| p.p999)),
        human: us,
        plain: one_decimal,
        optional: false,
    },
    Column {
        name: "p99.9 vs alone",
        key: "p999_vs_alone",
        source: Source::Run(|r| {
            r.baseline
                .as_ref()
                .and_then(|b| b.p999_vs_alone)
                .filter(|x| *x > 0.0)
        }),
        human: |x| format!("{x:.2}x"),
        plain: three_decimals,
        optional: true,
    },
    Column {
        name: "CPU ticks/s",
        key: "cpu_ticks_per_sec",
        source: Source::Run(|r| r.cpu.as_ref().map(|c| c.ticks_per_sec)),
        human: rate,
        plain: whole,
        optional: false,
    },
    Column {
        name: "CPU kept",
        key: "cpu_kept",
        source: Source::Run(|r| r.baseline.as_ref().map(|b| b.cpu_kept)),
        human: percent,
        plain: percent_plain,
        optional: true,
    },
    Column {
        name: "CPU fairness",
        key: "cpu_fairness",
        source: Source::Run(cpu_fairness),
        human: three_decimals,
        plain: three_decimals,
        optional: true,
    },
    Column {
        // The I/O threads' GIL share in the row's own I/O-alone run (DESIGN.md §4).
        name: "I/O hold h",
        key: "io_hold_share",
        source: Source::Run(|r| r.baseline.as_ref().and_then(|b| b.io_hold_share)),
        human: three_decimals,
        plain: three_decimals,
        optional: true,
    },
    Column {
        name: "frontier",
        key: "frontier",
        source: Source::Run(|r| r.baseline.as_ref().and_then(|b| b.frontier)),
        human: percent,
        plain: percent_plain,
        optional: true,
    },
    Column {
        name: "efficiency",
        key: "efficiency",
        source: Source::Run(|r| r.baseline.as_ref().and_then(|b| b.efficiency)),
        human: three_decimals,
        plain: three_decimals,
        optional: true,
    },
    Column {
        name: "switches",
        key: "switches",
        source: Source::Run(|r| r.gil.switches.map(|x| x as f64)),
        human: whole,
        plain: whole,
        optional: false,
    },
    Column {
        name: "forced drops",
        key: "forced_drops",
        source: Source::Run(|r| r.gil.forced_drops.map(|x| x as f64)),
        human: whole,
        plain: whole,
        optional: false,
    },
    Column {
        name: "ctx switches",
        key: "ctx_switches",
        source: Source::Run(|r| {
            r.gil
                .ctx_switches
                .map(|c| (c.voluntary + c.involuntary) as f64)
        }),
        human: whole,
        plain: whole,
        optional: false,
    },
    Column {
        name: "idle/wanted",
        key: "idle_while_wanted",
        source: Source::Run(|r| r.gil.idle_while_wanted),
        human: percent,
        plain: percent_plain,
        optional: false,
    },
    Column {
        name: "ratio",
        key: "ratio",
        source: Source::Ratio,
        human: |x| format!("{x:.2}x"),
        plain: three_decimals,
        optional: false,
    },
    Column {
        name: "transfer s",
        key: "transfer_s",
        source: Source::Run(|r| r.io.as_ref().and_then(|io| io.transfer_s)),
        human: |x| format!("{x:.3}s"),
        plain: three_decimals,
        optional: true,
    },
    Column {
        name: "transfer vs alone",
        key: "transfer_vs_alone",
        source: Source::Run(|r| r.baseline.as_ref().and_then(|b| b.transfer_vs_alone)),
        human: |x| format!("{x:.2}x"),
        plain: three_decimals,
        optional: true,
    },
    Column {
        // Below 100%: the run ended before the transfer did (its transfer time is empty).
        name: "received",
        key: "transfer_received",
        source: Source::Run(|r| {
            let io = r.io.as_ref()?;
            io.transfer_bytes
                .map(|total| io.bytes as f64 / total.max(1) as f64)
        }),
        human: percent,
        plain: percent_plain,
        optional: true,
    },
];

/// The columns the ratio compares, the first the first row has: requests/s, else CPU
/// ticks/s.
pub const RATIO_BASES: [&str; 2] = ["requests_per_sec", "cpu_ticks_per_sec"];

/// The compare/sweep text table's columns by default (keys of [`COLUMNS`] and
/// [`super::VERDICT`]), in the order a narrow terminal drops them: the first first.
pub const TEXT_DROP_ORDER: &[&str] = &[
    "ratio",
    "cpu_ticks_per_sec",
    "idle_while_wanted",
    "latency_p50_us",
    "p99_vs_alone",
    "cpu_kept",
    "efficiency",
    "requests_vs_alone",
    "latency_p99_us",
    super::VERDICT,
    "requests_per_sec",
];

/// A run's text table of threads: the order a narrow terminal drops its columns (keys of
/// [`THREAD_COLUMNS`]), the first first; the thread's name stays.
pub const THREAD_DROP_ORDER: &[&str] = &[
    "core",
    "ctx_vol_inv",
    "work",
    "acq",
    "forced",
    "gil_hold",
    "switch",
    "gil_wait",
    "ticks_per_sec",
];

/// The index in [`COLUMNS`] of the column `key`.
///
/// # Panics
/// When no column has that key (a bug).
pub fn index(key: &str) -> usize {
    COLUMNS
        .iter()
        .position(|c| c.key == key)
        .unwrap_or_else(|| panic!("no column {key}"))
}

/// Whether `r` has figures at all: a run that failed before it produced any (kept to name
/// the failure, see `experiment::execute`), or one stopped before its warm-up ended, has
/// none (its zeros were never measured).
pub fn measured(r: &RunResult) -> bool {
    r.measured_s > 0.0
}

/// Column `c`'s figure of run `r` (`None` for the ratio, or when the run has none).
pub fn value(c: &Column, r: &RunResult) -> Option<f64> {
    match c.source {
        Source::Run(get) if measured(r) => get(r),
        _ => None,
    }
}

fn core(t: &ThreadResult) -> String {
    t.core.map_or("?".into(), |c| c.to_string())
}

fn pct(p: &Percentiles) -> String {
    if p.count == 0 {
        return "-".into();
    }
    format!("{}/{}/{}", us(p.p50), us(p.p99), us(p.max))
}

/// A counter of the run, `-` when it was not measured.
pub fn counter(x: Option<u64>) -> String {
    x.map_or("-".into(), |x| x.to_string())
}

fn ctx(c: &crate::metrics::CtxSwitches) -> String {
    format!("{}/{}", c.voluntary, c.involuntary)
}

/// One column of a run's table of threads (with a total row).
pub struct ThreadColumn {
    /// The header.
    pub name: &'static str,
    /// Its width in the text table, and whether it is aligned left there.
    pub width: usize,
    pub left: bool,
    /// Whether the text table shows it (the HTML page shows every column).
    pub in_text: bool,
    /// A GIL counter: `-` for every thread of a run that did not record them.
    pub gil_counter: bool,
    /// The cell of one thread.
    pub thread: fn(&ThreadResult) -> String,
    /// The cell of the total row.
    pub total: fn(&RunResult) -> String,
}

impl ThreadColumn {
    /// Its name for `--columns`: `gil_wait` for `GIL wait p50/p99/max`.
    pub fn key(&self) -> String {
        let short = self.name.split(" p50").next().unwrap_or(self.name);
        short
            .replace("/s", "_per_sec")
            .replace([' ', '/'], "_")
            .to_lowercase()
    }

    /// The cell of thread `t` of run `r`.
    pub fn cell(&self, r: &RunResult, t: &ThreadResult) -> String {
        if self.gil_counter && r.gil.acquisitions.is_none() {
            return "-".into();
        }
        (self.thread)(t)
    }
}

/// A run's table of threads, in order.
pub const THREAD_COLUMNS: &[ThreadColumn] = &[
    ThreadColumn {
        name: "thread",
        width: 8,
        left: true,
        gil_counter: false,
        in_text: true,
        thread: |t| t.name.clone(),
        total: |_| "total".into(),
    },
    ThreadColumn {
        name: "work",
        width: 10,
        left: true,
        gil_counter: false,
        in_text: true,
        thread: |t| t.workload.clone(),
        total: |_| String::new(),
    },
    ThreadColumn {
        name: "core",
        width: 5,
        left: false,
        gil_counter: false,
        in_text: true,
        thread: core,
        total: |_| String::new(),
    },
    ThreadColumn {
        name: "cores seen",
        width: 10,
        left: false,
        gil_counter: false,
        in_text: false,
        thread: |t| {
            let c: Vec<String> = t.cores.iter().map(usize::to_string).collect();
            if c.is_empty() {
                "-".into()
            } else {
                c.join(",")
            }
        },
        total: |_| String::new(),
    },
    ThreadColumn {
        name: "migrations",
        width: 10,
        left: false,
        gil_counter: false,
        in_text: false,
        thread: |t| t.migrations.map_or("-".into(), |m| m.to_string()),
        // The sum over the threads that were sampled; none sampled, none measured.
        total: |r| {
            let sampled: Vec<u64> = r.threads.iter().filter_map(|t| t.migrations).collect();
            if sampled.is_empty() {
                "-".into()
            } else {
                sampled.iter().sum::<u64>().to_string()
            }
        },
    },
    ThreadColumn {
        name: "ticks/s",
        width: 10,
        left: false,
        gil_counter: false,
        in_text: true,
        thread: |t| rate(t.ticks_per_sec),
        total: |r| r.cpu.as_ref().map_or("-".into(), |c| rate(c.ticks_per_sec)),
    },
    ThreadColumn {
        name: "acq",
        width: 8,
        left: false,
        gil_counter: true,
        in_text: true,
        thread: |t| counter(t.counters.acquisitions),
        total: |r| counter(r.gil.acquisitions),
    },
    ThreadColumn {
        name: "switch",
        width: 8,
        left: false,
        gil_counter: true,
        in_text: true,
        thread: |t| counter(t.counters.switches),
        total: |r| counter(r.gil.switches),
    },
    ThreadColumn {
        name: "forced",
        width: 8,
        left: false,
        gil_counter: true,
        in_text: true,
        thread: |t| counter(t.counters.forced_drops),
        total: |r| counter(r.gil.forced_drops),
    },
    ThreadColumn {
        name: "GIL wait p50/p99/max",
        width: 20,
        left: false,
        gil_counter: false,
        in_text: true,
        thread: |t| pct(&t.wait_us),
        total: |r| pct(&r.gil.wait_us),
    },
    ThreadColumn {
        name: "GIL hold p50/p99/max",
        width: 20,
        left: false,
        gil_counter: false,
        in_text: true,
        thread: |t| pct(&t.hold_us),
        total: |r| pct(&r.gil.hold_us),
    },
    ThreadColumn {
        name: "switch wait p50/p99/max",
        width: 26,
        left: false,
        gil_counter: false,
        in_text: false,
        thread: |t| pct(&t.switch_wait_us),
        total: |r| pct(&r.gil.switch_wait_us),
    },
    ThreadColumn {
        name: "ctx vol/inv",
        width: 12,
        left: false,
        gil_counter: false,
        in_text: true,
        thread: |t| ctx(&t.ctx_switches),
        total: |r| r.gil.ctx_switches.as_ref().map_or("-".into(), ctx),
    },
];

/// One column of a table whose rows are not runs (calibrate's, rendered by
/// [`Table`](super::table::Table)): where it shows and how its cell is written.
pub struct TableColumn<R> {
    /// The header of the text table and Markdown (`None`: CSV only).
    pub name: Option<&'static str>,
    /// The CSV header field (`None`: not in the CSV).
    pub key: Option<&'static str>,
    /// Aligned right in the text table and Markdown.
    pub numeric: bool,
    /// The cell for a person (text, Markdown).
    pub human: fn(&R) -> String,
    /// The cell as a plain number (CSV); empty when absent.
    pub plain: fn(&R) -> String,
}
