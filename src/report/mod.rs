//! Human-readable rendering of results: a run's table of threads, the compare/sweep table
//! (its columns described once, in [`columns`]), and every export behind one trait
//! ([`export`]).

use std::fmt::Write;

use crate::result::{IoSummary, RunResult};
use crate::units::us;

pub mod about;
pub mod columns;
pub mod export;
pub mod fit;
pub mod plot;
pub mod table;

use columns::{
    Column, Source, ThreadColumn, COLUMNS, RATIO_BASES, TEXT_DROP_ORDER, THREAD_COLUMNS,
    THREAD_DROP_ORDER,
};
use fit::Table;
pub use fit::View;

/// A rate, compactly: `5.5k`, `18.53M`.
pub fn rate(x: f64) -> String {
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

/// What a run's row label carries besides its name: `(failed)` when the run failed (its
/// `failure`), `(partial)` when it was cut short.
pub fn row_mark(failed: bool, partial: bool) -> &'static str {
    if failed {
        " (failed)"
    } else if partial {
        " (partial)"
    } else {
        ""
    }
}

/// The table `gilbench run` prints for one run, with the default columns.
pub fn run_table(r: &RunResult) -> String {
    run_table_in(r, &View::default())
}

/// The threads of run `r` as a table of the columns `view` asks for.
fn thread_table(r: &RunResult, view: &View) -> String {
    let keys: Vec<String> = THREAD_COLUMNS.iter().map(|c| c.key()).collect();
    let names: Vec<&str> = THREAD_COLUMNS.iter().map(|c| c.name).collect();
    let cols = view.wanted(&keys, &names, &|i| THREAD_COLUMNS[i].in_text);
    let pick = |cell: &dyn Fn(&ThreadColumn) -> String| -> Vec<String> {
        cols.iter().map(|&i| cell(&THREAD_COLUMNS[i])).collect()
    };
    let mut lines = vec![pick(&|c| c.name.to_owned())];
    lines.extend(r.threads.iter().map(|t| pick(&|c| c.cell(r, t))));
    lines.push(pick(&|c| (c.total)(r)));
    let table = Table {
        lines,
        min_width: cols.iter().map(|&i| THREAD_COLUMNS[i].width).collect(),
        left: cols.iter().map(|&i| THREAD_COLUMNS[i].left).collect(),
        gap: 1,
    };
    let keys: Vec<String> = cols.iter().map(|&i| keys[i].clone()).collect();
    let names: Vec<&str> = cols.iter().map(|&i| names[i]).collect();
    view.lay_out(&table, &keys, &names, THREAD_DROP_ORDER)
}

/// The table `gilbench run` prints for one run, its threads' columns as `view` asks.
pub fn run_table_in(r: &RunResult, view: &View) -> String {
    let mut o = String::new();
    // `gilbench load` ran no design, only a client against a server it names.
    let what = if r.lock == "external" {
        format!(
            "load against {}",
            r.params["connect"].as_str().unwrap_or("?")
        )
    } else {
        format!("{} on {}", r.scenario, r.row_label())
    };
    let _ = writeln!(
        o,
        "{what} ({:.2}s measured, pin {})",
        r.measured_s,
        r.params["pin"].as_str().unwrap_or("?")
    );
    if r.measured_s <= 0.0 {
        // Figures of an empty window would all be zeros or rates of nothing.
        let _ = writeln!(
            o,
            "nothing was measured: the run stopped before its warm-up ended"
        );
        notes_and_verdict(&mut o, r);
        return o;
    }
    // A load alone has no interpreter threads: no table of them.
    if !r.threads.is_empty() {
        o += &thread_table(r, view);
    }
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
        io_throughput_line(&mut o, r, io);
        io_detail_lines(&mut o, r, io);
    }
    gil_lines(&mut o, r);
    notes_and_verdict(&mut o, r);
    o
}

/// The run's I/O figure in one line: a bulk transfer's time, a lone server's count, or the
/// requests with their latency.
fn io_throughput_line(o: &mut String, r: &RunResult, io: &IoSummary) {
    let l = &io.latency_us;
    if io.mode == "bulk" {
        bulk_transfer_line(o, io);
    } else if io.mode == "serve" && r.params["io"] == "bulk" {
        // A server alone (`serve`) has no client here: the sender times the transfer.
        let _ = writeln!(
            o,
            "io: {}B received in {} recvs (the sender times the transfer)",
            rate(io.bytes as f64),
            io.requests,
        );
    } else if io.mode == "serve" {
        // ... and the client measures latency.
        let _ = writeln!(
            o,
            "io: {} requests, {} req/s (latency is measured by the client)",
            io.requests,
            rate(io.requests_per_sec),
        );
    } else if l.count == 0 {
        let _ = writeln!(
            o,
            "io: {} requests, {} req/s; no reply timed, so no latency",
            io.requests,
            rate(io.requests_per_sec),
        );
    } else {
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
    }
}

/// A bulk client's transfer: how long it took, or how far it got when unfinished.
fn bulk_transfer_line(o: &mut String, io: &IoSummary) {
    let speed = io
        .bytes_per_sec
        .map_or(String::new(), |b| format!(" at {}B/s", rate(b)));
    let total = io.transfer_bytes.unwrap_or(io.bytes);
    let _ = match io.transfer_s {
        Some(t) => writeln!(
            o,
            "io: bulk transfer of {}B took {t:.3}s{speed}, {} recvs",
            rate(total as f64),
            io.requests
        ),
        None => writeln!(
            o,
            "io: bulk transfer unfinished: {}B of {}B received ({:.1}%){speed}, {} recvs",
            rate(io.bytes as f64),
            rate(total as f64),
            io.bytes as f64 * 100.0 / total.max(1) as f64,
            io.requests
        ),
    };
}

/// The I/O lines after the main figure, each only when it says something: a transfer's
/// time, the open loop's lateness, failed requests, the server's GIL re-acquire, where the
/// load generator ran.
fn io_detail_lines(o: &mut String, r: &RunResult, io: &IoSummary) {
    if let (Some(t), false) = (io.transfer_s, io.mode == "bulk") {
        let _ = writeln!(o, "io: transfer of {}B took {t:.3}s", rate(io.bytes as f64));
    }
    if io.mode == "open" && io.lateness_us.count == 0 {
        let _ = writeln!(
            o,
            "io: open loop at {}/s; no send was due in the measured window",
            rate(io.rate)
        );
    } else if io.mode == "open" {
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
            "io: {} requests failed (no reply within the timeout, lost with their connection, or a wrong reply)",
            io.failed
        );
    }
    if io.reacquire_us.count > 0 && r.lock != "none" {
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

/// The GIL's idle time while wanted (or why there is none), then the design's own counters.
fn gil_lines(o: &mut String, r: &RunResult) {
    let g = &r.gil;
    match (g.idle_while_wanted, g.idle_while_wanted_s, g.overlaps) {
        (Some(idle), Some(idle_s), Some(overlaps))
            if g.acquisitions > Some(0) && r.lock != "none" =>
        {
            let _ = writeln!(
                o,
                "gil: idle while wanted {:.1}% of the measured window ({}); holds with another holder: {overlaps}",
                idle * 100.0,
                us(idle_s * 1e6),
            );
        }
        _ if g.acquisitions.is_none() && r.lock != "external" => {
            let _ = writeln!(o, "gil: not recorded (record = false): no GIL counters");
        }
        _ => {}
    }
    if !g.design.is_empty() {
        let parts: Vec<String> = g.design.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(o, "{}: {}", r.lock, parts.join(", "));
    }
}

/// The run's notes, then whether it failed or was cut short.
fn notes_and_verdict(o: &mut String, r: &RunResult) {
    for n in &r.notes {
        let _ = writeln!(o, "note: {n}");
    }
    if let Some(f) = &r.failure {
        let _ = writeln!(o, "FAILED: {f}");
    } else if r.partial {
        let _ = writeln!(
            o,
            "partial: the run was cut short; its numbers cover less than asked"
        );
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
    fn of(v: Vec<f64>) -> Option<Stat> {
        let min = v.iter().copied().min_by(f64::total_cmp)?;
        let max = v.iter().copied().max_by(f64::total_cmp)?;
        let n = v.len();
        Some(Stat {
            median: crate::metrics::median(v)?,
            min,
            max,
            n,
        })
    }

    /// The cell as `form` writes numbers: the median, with `(min<sep>max)` over repeats.
    pub fn show(&self, form: fn(f64) -> String, sep: &str) -> String {
        if self.n > 1 {
            format!(
                "{} ({}{sep}{})",
                form(self.median),
                form(self.min),
                form(self.max)
            )
        } else {
            form(self.median)
        }
    }
}

/// One row of a compare/sweep table.
#[derive(Clone, Debug)]
pub struct SummaryRow {
    pub label: String,
    /// A cell per entry of [`COLUMNS`].
    pub cells: Vec<Option<Stat>>,
    pub partial: bool,
    /// Some run of the row failed (its `failure`).
    pub failed: bool,
    /// The row against the first, figure by figure (of [`CONFIDENCE_KEYS`] that both have);
    /// empty for the first row.
    pub confidence: Vec<Confidence>,
}

impl SummaryRow {
    /// The cell of the column `key`.
    pub fn cell(&self, key: &str) -> Option<Stat> {
        self.cells[columns::index(key)]
    }

    /// The label with its mark: `timed (partial)`.
    pub fn marked_label(&self) -> String {
        format!("{}{}", self.label, row_mark(self.failed, self.partial))
    }

    /// How this row compares with the first on `key`, if both have the figure.
    pub fn against_first(&self, key: &str) -> Option<&Confidence> {
        self.confidence.iter().find(|c| c.key == key)
    }
}

/// The header of the verdict column.
pub const VERDICT: &str = "verdict";

/// How the verdicts are reached, in a caption.
pub const CONFIDENCE_METHOD: &str =
    "95% CI by Hodges-Lehmann on log values (exact Mann-Whitney), none below 4 runs a row";

/// The figures each row is set against the first row's with a confidence interval.
pub const CONFIDENCE_KEYS: [&str; 4] = [
    "requests_per_sec",
    "cpu_ticks_per_sec",
    "latency_p99_us",
    "cpu_kept",
];

/// One figure of a row against the first row's: the ratio of their medians, and how sure
/// it is (see [`crate::stats`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Confidence {
    /// The column (a key of [`COLUMNS`]).
    pub key: &'static str,
    /// This row's median over the first row's.
    pub ratio: f64,
    /// The ratio's 95% interval; `None` with fewer runs than `stats::min_runs` (or a zero).
    pub interval: Option<crate::stats::RatioInterval>,
    /// Runs with the figure: the first row's, and this row's.
    pub runs: [usize; 2],
}

impl Confidence {
    fn of(key: &'static str, reference: &[f64], mine: &[f64]) -> Option<Confidence> {
        let (r, m) = (Stat::of(reference.to_vec())?, Stat::of(mine.to_vec())?);
        (r.median > 0.0).then(|| Confidence {
            key,
            ratio: m.median / r.median,
            interval: crate::stats::ratio_interval(reference, mine),
            runs: [reference.len(), mine.len()],
        })
    }

    /// The verdict in words: `2.80x faster, 95% CI 2.50-3.10x`, `within noise, 95% CI
    /// 0.91-1.08x`, or why there is none (the spread is in the ratio column).
    pub fn verdict(&self) -> String {
        let (up, down) = match self.key {
            "latency_p99_us" => ("higher p99", "lower p99"),
            "cpu_kept" => ("more CPU kept", "less CPU kept"),
            _ => ("faster", "slower"),
        };
        let Some(i) = self.interval else {
            let need = crate::stats::min_runs();
            let fewest = self.runs[0].min(self.runs[1]);
            return if fewest < need {
                let s = if fewest == 1 { "" } else { "s" };
                format!("no verdict: {fewest} run{s} (needs {need})")
            } else {
                "no verdict: a zero figure".into()
            };
        };
        if i.high < 1.0 {
            format!(
                "{:.2}x {down}, 95% CI {:.2}-{:.2}x",
                1.0 / self.ratio,
                1.0 / i.high,
                1.0 / i.low
            )
        } else if i.low > 1.0 {
            format!(
                "{:.2}x {up}, 95% CI {:.2}-{:.2}x",
                self.ratio, i.low, i.high
            )
        } else {
            format!("within noise, 95% CI {:.2}-{:.2}x", i.low, i.high)
        }
    }
}

/// Groups runs by label (in order of first appearance) into table rows; the ratio column is
/// requests/s (or, without I/O, CPU ticks/s) against the first row.
pub fn summary(runs: &[RunResult]) -> Vec<SummaryRow> {
    let labels = row_labels(runs);
    let values = column_values(runs, &labels);
    let mut rows: Vec<SummaryRow> = labels
        .iter()
        .zip(&values)
        .enumerate()
        .map(|(i, (&l, v))| SummaryRow {
            label: l.to_owned(),
            cells: v.iter().map(|v| Stat::of(v.clone())).collect(),
            partial: runs.iter().any(|r| r.row_label() == l && r.partial),
            failed: runs
                .iter()
                .any(|r| r.row_label() == l && r.failure.is_some()),
            // The first row is the reference the others are judged against.
            confidence: if i == 0 {
                Vec::new()
            } else {
                CONFIDENCE_KEYS
                    .iter()
                    .filter_map(|&k| {
                        let c = columns::index(k);
                        Confidence::of(k, &values[0][c], &v[c])
                    })
                    .collect()
            },
        })
        .collect();
    fill_ratio_column(&mut rows);
    rows
}

/// The runs' row labels, each once, in order of first appearance.
fn row_labels(runs: &[RunResult]) -> Vec<&str> {
    let mut labels: Vec<&str> = Vec::new();
    for r in runs {
        let l = r.row_label();
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    labels
}

/// values[row][column]: the column's figure of every run of the row that has it.
fn column_values(runs: &[RunResult], labels: &[&str]) -> Vec<Vec<Vec<f64>>> {
    labels
        .iter()
        .map(|&l| {
            let group: Vec<&RunResult> = runs.iter().filter(|r| r.row_label() == l).collect();
            COLUMNS
                .iter()
                .map(|c| group.iter().filter_map(|r| columns::value(c, r)).collect())
                .collect()
        })
        .collect()
}

/// Sets each row's ratio cells: its ratio base figure over the first row's (none when the
/// first row has no such figure or a zero one).
fn fill_ratio_column(rows: &mut [SummaryRow]) {
    let base_key = ratio_base(rows);
    let base = rows
        .first()
        .and_then(|r| r.cell(base_key))
        .map(|s| s.median);
    for row in rows.iter_mut() {
        let ratio = match (row.cell(base_key), base) {
            (Some(s), Some(b)) if b > 0.0 => Some(Stat {
                median: s.median / b,
                min: s.min / b,
                max: s.max / b,
                n: s.n,
            }),
            _ => None,
        };
        for (c, cell) in COLUMNS.iter().zip(row.cells.iter_mut()) {
            if matches!(c.source, Source::Ratio) {
                *cell = ratio;
            }
        }
    }
}

/// The verdict cell of each row (the ratio's figure against the first row), when some row
/// was repeated; `None` for a table of single runs.
pub fn verdicts(rows: &[SummaryRow]) -> Option<Vec<String>> {
    let repeated = rows
        .iter()
        .any(|r| r.cells.iter().flatten().any(|s| s.n > 1));
    if !repeated {
        return None;
    }
    let key = ratio_base(rows);
    Some(
        rows.iter()
            .enumerate()
            .map(|(i, r)| match r.against_first(key) {
                _ if i == 0 => "reference".to_owned(),
                Some(c) => c.verdict(),
                None => "-".to_owned(),
            })
            .collect(),
    )
}

/// The other figures' verdicts (p99, CPU), one line per row and figure, for the lines under
/// a table; empty for a table of single runs.
pub fn other_verdicts(rows: &[SummaryRow]) -> Vec<String> {
    if verdicts(rows).is_none() {
        return Vec::new();
    }
    let key = ratio_base(rows);
    rows.iter()
        .flat_map(|r| {
            r.confidence.iter().filter(|c| c.key != key).map(|c| {
                let name = COLUMNS[columns::index(c.key)].name;
                format!("{}, {name} {:.2}x: {}", r.label, c.ratio, c.verdict())
            })
        })
        .collect()
}

/// The column the ratio compares: the first of [`RATIO_BASES`] the first row has.
fn ratio_base(rows: &[SummaryRow]) -> &'static str {
    RATIO_BASES
        .iter()
        .copied()
        .find(|k| rows.first().is_some_and(|r| r.cell(k).is_some()))
        .unwrap_or(RATIO_BASES[RATIO_BASES.len() - 1])
}

/// The columns a table of `rows` shows: every column but the optional ones no row has.
pub fn shown(rows: &[SummaryRow]) -> Vec<(usize, &'static Column)> {
    COLUMNS
        .iter()
        .enumerate()
        .filter(|(i, c)| !c.optional || rows.iter().any(|r| r.cells[*i].is_some()))
        .collect()
}

/// `3 runs`, or `3 runs, 1 failed` when some failed before they produced results (and `1
/// stopped in its warm-up` for runs a signal stopped before they measured anything).
pub fn count_runs(runs: &[RunResult]) -> String {
    let unmeasured = |failed: bool| {
        runs.iter()
            .filter(|r| !columns::measured(r) && r.failure.is_some() == failed)
            .count()
    };
    let (failed, stopped) = (unmeasured(true), unmeasured(false));
    let n = runs.len() - failed - stopped;
    let mut s = format!("{n} run{}", if n == 1 { "" } else { "s" });
    if failed > 0 {
        s += &format!(", {failed} failed");
    }
    if stopped > 0 {
        s += &format!(", {stopped} stopped in its warm-up");
    }
    s
}

/// The notes about the experiment rather than one run (the runs a stop left undone, and the
/// rows never started), from runs whose notes are not shown with their failure.
pub fn experiment_notes(runs: &[RunResult]) -> impl Iterator<Item = &str> {
    runs.iter()
        .filter(|r| r.failure.is_none() || columns::measured(r))
        .flat_map(|r| r.notes.iter())
        .filter(|n| n.starts_with(crate::result::NOT_RUN))
        .map(String::as_str)
}

/// The line above a compare/sweep table: what it holds and what the ratio compares.
pub fn caption(runs: &[RunResult], rows: &[SummaryRow]) -> Option<String> {
    let r = runs.first()?;
    let reps = runs.iter().map(|r| r.repeat + 1).max().unwrap_or(1);
    let base = COLUMNS[columns::index(ratio_base(rows))].name;
    Some(format!(
        "{}: {}{}; latency is client-side; ratio is {base} against the first row{}",
        r.scenario,
        count_runs(runs),
        if reps > 1 {
            format!(", each row the median (min-max) of {reps}")
        } else {
            String::new()
        },
        if reps > 1 {
            format!("; verdict: {CONFIDENCE_METHOD}")
        } else {
            String::new()
        },
    ))
}

/// The compare/sweep table for a terminal, with the default columns.
pub fn summary_text(runs: &[RunResult]) -> String {
    summary_text_in(runs, &View::default())
}

/// Every key and name of the compare/sweep text table's columns (the verdict last).
pub fn summary_keys() -> (Vec<String>, Vec<&'static str>) {
    let keys = COLUMNS.iter().map(|c| c.key.to_owned());
    let names = COLUMNS.iter().map(|c| c.name);
    (
        keys.chain([VERDICT.to_owned()]).collect(),
        names.chain([VERDICT]).collect(),
    )
}

/// A cell of the text table: the median, with its min-max when repeated.
fn text_cell(s: Option<Stat>, human: fn(f64) -> String) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.n > 1 => fit::compact(&human(s.median), &human(s.min), &human(s.max)),
        Some(s) => human(s.median),
    }
}

/// The rows' table of the columns `view` asks for (those a row has).
fn summary_table(rows: &[SummaryRow], view: &View) -> String {
    let verdicts = verdicts(rows);
    let mut cols: Vec<Option<(usize, &Column)>> = shown(rows).into_iter().map(Some).collect();
    cols.extend(verdicts.as_ref().map(|_| None));
    let key = |c: &Option<(usize, &Column)>| c.map_or(VERDICT, |(_, c)| c.key);
    let name = |c: &Option<(usize, &Column)>| c.map_or(VERDICT, |(_, c)| c.name);
    let keys: Vec<String> = cols.iter().map(|c| key(c).to_owned()).collect();
    let names: Vec<&str> = cols.iter().map(name).collect();
    let wanted = view.wanted(&keys, &names, &|i| TEXT_DROP_ORDER.contains(&key(&cols[i])));
    let mut lines = vec![std::iter::once("run")
        .chain(wanted.iter().map(|&i| names[i]))
        .map(str::to_owned)
        .collect::<Vec<_>>()];
    for (n, r) in rows.iter().enumerate() {
        let cell = |c: &Option<(usize, &Column)>| match (c, &verdicts) {
            (Some((i, c)), _) => text_cell(r.cells[*i], c.human),
            (None, Some(v)) => v[n].clone(),
            (None, None) => "-".into(),
        };
        lines.push(
            std::iter::once(r.marked_label())
                .chain(wanted.iter().map(|&i| cell(&cols[i])))
                .collect(),
        );
    }
    let n = wanted.len() + 1;
    let table = Table {
        lines,
        min_width: vec![0; n],
        left: (0..n).map(|i| i == 0).collect(),
        gap: 2,
    };
    let keys: Vec<String> = std::iter::once("run".to_owned())
        .chain(wanted.iter().map(|&i| keys[i].clone()))
        .collect();
    let names: Vec<&str> = std::iter::once("run")
        .chain(wanted.iter().map(|&i| names[i]))
        .collect();
    view.lay_out(&table, &keys, &names, TEXT_DROP_ORDER)
}

/// The compare/sweep table for a terminal, its columns as `view` asks.
pub fn summary_text_in(runs: &[RunResult], view: &View) -> String {
    let rows = summary(runs);
    let mut o = String::new();
    if let Some(c) = caption(runs, &rows) {
        let pieces: Vec<String> = c.split("; ").map(str::to_owned).collect();
        let _ = writeln!(o, "{}", fit::wrap(&pieces, "; ", view.width));
    }
    o += &summary_table(&rows, view);
    for r in runs.iter().filter(|r| r.failure.is_some()) {
        let _ = writeln!(
            o,
            "FAILED: {}: {}",
            r.row_label(),
            r.failure.as_deref().unwrap_or_default()
        );
        for n in r.notes.iter().filter(|_| !columns::measured(r)) {
            let _ = writeln!(o, "  {n}");
        }
    }
    for v in other_verdicts(&rows) {
        let _ = writeln!(o, "{v}");
    }
    for n in experiment_notes(runs) {
        let _ = writeln!(o, "note: {n}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Percentiles;
    use crate::report::export::sample_run;

    /// A run's table never shows figures it does not have: no latency zeros without a reply,
    /// no lateness zeros without a send, no table for an empty window, no ratio of nothing.
    #[test]
    fn the_table_shows_no_made_up_figures() {
        let mut r = sample_run("r");
        assert!(run_table(&r).contains("latency p50"));
        let io = r.io.as_mut().unwrap();
        io.requests = 0;
        io.requests_per_sec = 0.0;
        io.latency_us = Percentiles::default();
        io.mode = "open".into();
        io.rate = 1.0;
        let t = run_table(&r);
        assert!(
            t.contains("io: 0 requests, 0 req/s; no reply timed, so no latency"),
            "{t}"
        );
        assert!(t.contains("io: open loop at 1/s; no send was due in the measured window"));
        assert!(!t.contains(" 0.0us"), "{t}");
        r.measured_s = 0.0;
        let t = run_table(&r);
        assert!(t.contains("nothing was measured"), "{t}");
        assert!(
            !t.contains("ticks/s") && t.contains("note: a note <b>"),
            "{t}"
        );
        let mut b = crate::result::Baseline::of(&r, &sample_run("alone"), &sample_run("cpu"));
        b.p99_vs_alone = Some(0.0);
        r.baseline = Some(b);
        let col = crate::report::columns::COLUMNS
            .iter()
            .find(|c| c.key == "p99_vs_alone")
            .unwrap();
        assert!(matches!(&col.source, columns::Source::Run(f) if f(&r).is_none()));
    }
}

#[cfg(test)]
mod confidence_tests {
    #[test]
    fn the_method_names_the_minimum_it_uses() {
        let need = crate::stats::min_runs();
        assert!(super::CONFIDENCE_METHOD.contains(&format!("below {need} runs")));
    }
}

#[cfg(test)]
mod width_tests {
    use super::fit::{Choice, View};
    use super::*;
    use crate::report::export::sample_run;
    use crate::result::Baseline;

    /// Rows `tick` and `timed`, 4 runs each, with baselines and wide min-max spreads.
    fn repeated() -> Vec<RunResult> {
        let mut runs = Vec::new();
        for rep in 0..4u32 {
            for (label, f) in [("tick", 1.0), ("timed", 37.0)] {
                let mut r = sample_run(label);
                r.repeat = rep;
                let w = 1.0 + f64::from(rep) * 0.7;
                let io = r.io.as_mut().unwrap();
                io.requests_per_sec *= w * f;
                io.latency_us.p99 *= w * f;
                io.latency_us.p50 *= w;
                r.baseline = Some(Baseline::of(&r, &sample_run("alone"), &sample_run("cpu")));
                runs.push(r);
            }
        }
        runs
    }

    /// The table's header, split into column names (two spaces apart).
    fn header(text: &str) -> Vec<String> {
        let line = text.lines().find(|l| l.starts_with("run ")).unwrap();
        line.split("  ")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn view(choice: Choice, width: usize) -> View {
        View { choice, width }
    }

    #[test]
    fn the_default_tables_fit_120_columns() {
        for runs in [repeated(), vec![sample_run("a"), sample_run("b")]] {
            let text = summary_text(&runs);
            assert!(text.lines().all(|l| l.chars().count() <= 120), "{text}");
            assert!(header(&text).contains(&"requests/s".to_owned()), "{text}");
        }
        let text = summary_text(&repeated());
        assert!(header(&text).contains(&VERDICT.to_owned()), "{text}");
        let table = run_table(&sample_run("a"));
        let wide = table.lines().filter(|l| l.chars().count() > 120);
        assert_eq!(wide.count(), 0, "{table}");
    }

    #[test]
    fn all_shows_every_column_and_a_list_those_named() {
        let runs = repeated();
        let text = summary_text_in(&runs, &view(Choice::All, 120));
        let every: Vec<String> = shown(&summary(&runs))
            .iter()
            .map(|(_, c)| c.name.to_owned())
            .collect();
        assert_eq!(
            header(&text)[1..header(&text).len() - 1],
            every[..],
            "{text}"
        );
        assert!(!text.contains("not shown"), "{text}");
        let list = Choice::parse("verdict,requests_per_sec,p50 us");
        let text = summary_text_in(&runs, &view(list, 120));
        assert_eq!(
            header(&text),
            ["run", "requests/s", "p50 us", VERDICT],
            "{text}"
        );
        let all = run_table_in(&sample_run("a"), &view(Choice::All, 120));
        assert!(
            all.contains("cores seen") && all.contains("switch wait"),
            "{all}"
        );
        assert!(!run_table(&sample_run("a")).contains("cores seen"));
    }

    #[test]
    fn a_narrow_terminal_drops_columns_and_says_which() {
        let text = summary_text_in(&repeated(), &view(Choice::Default, 60));
        let head = header(&text);
        assert!(head.contains(&"requests/s".to_owned()) && !head.contains(&"p50 us".to_owned()));
        assert!(
            text.contains("not shown, to fit 60 columns: ratio, CPU ticks/s"),
            "{text}"
        );
        let table = text.lines().skip_while(|l| !l.starts_with("run ")).take(3);
        assert!(table.clone().all(|l| l.chars().count() <= 60), "{text}");
        let run = run_table_in(&sample_run("a"), &view(Choice::Default, 60));
        assert!(run.contains("not shown, to fit 60 columns: core"), "{run}");
    }
}
