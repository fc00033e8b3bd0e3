//! `--csv [PATH]`: a line per run, numbers at full precision, the columns of
//! [`COLUMNS`] that are figures of one run.

use super::{text_to, Context, Dest, Exporter, Mark, Outcome, Target};
use crate::report::columns::{value, Source, COLUMNS};
use crate::report::{summary, verdicts, SummaryRow, CONFIDENCE_KEYS, VERDICT};
use crate::result::RunResult;

/// The format.
pub struct Csv;

/// The format's entry in `ALL`.
pub const FORMAT: Csv = Csv;

/// The fields before the columns.
const LEAD: &str = "scenario,label,lock,repeat,partial,wall_s";

/// The headers of gilbench 0.1.0 before `idle_while_wanted`, before `cpu_fairness`,
/// `p999_vs_alone` and `transfer_received`, and before the rows against the first: files
/// with them are gilbench's too.
const OLD_HEADERS: [&str; 3] = [
    "scenario,label,lock,repeat,partial,wall_s,requests_per_sec,latency_p50_us,latency_p99_us,latency_p999_us,cpu_ticks_per_sec,switches,forced_drops,ctx_switches,transfer_s",
    "scenario,label,lock,repeat,partial,wall_s,requests_per_sec,requests_vs_alone,latency_p50_us,latency_p99_us,p99_vs_alone,latency_p999_us,cpu_ticks_per_sec,cpu_kept,switches,forced_drops,ctx_switches,idle_while_wanted,transfer_s,transfer_vs_alone",
    "scenario,label,lock,repeat,partial,wall_s,requests_per_sec,requests_vs_alone,latency_p50_us,latency_p99_us,p99_vs_alone,latency_p999_us,p999_vs_alone,cpu_ticks_per_sec,cpu_kept,cpu_fairness,switches,forced_drops,ctx_switches,idle_while_wanted,transfer_s,transfer_vs_alone,transfer_received",
];

impl Exporter for Csv {
    fn flag(&self) -> &'static str {
        "csv"
    }
    fn help(&self) -> &'static str {
        "Write a CSV line per run to PATH (or print it, without PATH)"
    }
    fn target(&self) -> Target {
        Target::FileOrStdout
    }
    fn mark(&self) -> Mark {
        Mark::FirstLine(
            std::iter::once(header())
                .chain(OLD_HEADERS.map(String::from))
                .collect(),
        )
    }
    fn write(&self, cx: &Context<'_>, to: &Dest) -> Result<Outcome, String> {
        match cx.table {
            Some(t) => text_to(cx, to, &t.csv()),
            None => text_to(cx, to, &csv(cx.runs)),
        }
    }
}

/// The columns a CSV line has after [`LEAD`]: the figures of one run.
fn per_run() -> impl Iterator<Item = &'static crate::report::columns::Column> {
    COLUMNS
        .iter()
        .filter(|c| matches!(c.source, Source::Run(_)))
}

/// The CSV header; gilbench recognises its own CSV files by it. After the figures of the
/// run come its row's against the first row (the same on every run of the row): for each
/// of [`CONFIDENCE_KEYS`], the ratio of the medians and its 95% interval, then the verdict
/// on the table's ratio.
pub fn header() -> String {
    let against_first = CONFIDENCE_KEYS
        .iter()
        .flat_map(|k| ["ratio", "ratio_low", "ratio_high"].map(|s| format!("{k}_{s}")));
    std::iter::once(LEAD.to_owned())
        .chain(per_run().map(|c| c.key.to_owned()))
        .chain(against_first)
        .chain(std::iter::once(VERDICT.to_owned()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The fields of a run's row against the first row (see [`header`]); empty where absent.
fn against_first(row: Option<&SummaryRow>, verdict: Option<&String>) -> Vec<String> {
    let num = |x: Option<f64>| x.map_or(String::new(), |v| format!("{v}"));
    let mut f: Vec<String> = CONFIDENCE_KEYS
        .iter()
        .flat_map(|k| {
            let c = row.and_then(|r| r.against_first(k));
            let i = c.and_then(|c| c.interval);
            [
                num(c.map(|c| c.ratio)),
                num(i.map(|i| i.low)),
                num(i.map(|i| i.high)),
            ]
        })
        .collect();
    f.push(verdict.map_or(String::new(), |v| field(v)));
    f
}

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A line per run, numbers at full precision.
pub fn csv(runs: &[RunResult]) -> String {
    let rows = summary(runs);
    let verdicts = verdicts(&rows);
    let mut o = header();
    o.push('\n');
    for r in runs {
        let mut f = vec![
            field(&r.scenario),
            field(r.row_label()),
            field(&r.lock),
            r.repeat.to_string(),
            r.partial.to_string(),
            format!("{}", r.wall_s),
        ];
        f.extend(per_run().map(|c| value(c, r).map_or(String::new(), |v| format!("{v}"))));
        let row = rows.iter().position(|s| s.label == r.row_label());
        f.extend(against_first(
            row.map(|i| &rows[i]),
            row.and_then(|i| verdicts.as_ref().map(|v| &v[i])),
        ));
        o.push_str(&f.join(","));
        o.push('\n');
    }
    o
}
