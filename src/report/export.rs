//! Exports from the one result type: JSON (the result file itself), CSV (a line per run) and
//! Markdown (the compare/sweep table).

use std::fmt::Write;

use super::{columns, metric, summary};
use crate::result::RunResult;

/// The CSV header; gilbench recognises its own CSV files by it.
pub const CSV_HEADER: &str = "scenario,label,lock,repeat,partial,wall_s,requests_per_sec,latency_p50_us,latency_p99_us,latency_p999_us,cpu_ticks_per_sec,switches,forced_drops,ctx_switches,transfer_s";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or(String::new(), |v| format!("{v}"))
}

/// A line per run, numbers at full precision.
pub fn csv(runs: &[RunResult]) -> String {
    let mut o = String::from(CSV_HEADER);
    o.push('\n');
    for r in runs {
        let mut f = vec![
            csv_field(&r.scenario),
            csv_field(r.row_label()),
            csv_field(&r.lock),
            r.repeat.to_string(),
            r.partial.to_string(),
            format!("{}", r.wall_s),
        ];
        f.extend((0..8).map(|c| opt(metric(r, c))));
        f.push(opt(r.io.as_ref().and_then(|io| io.transfer_s)));
        o.push_str(&f.join(","));
        o.push('\n');
    }
    o
}

fn md_num(c: usize, x: f64) -> String {
    match c {
        0..=3 => format!("{x:.1}"),
        8 | 9 => format!("{x:.3}"),
        _ => format!("{x:.0}"),
    }
}

/// The compare/sweep table in Markdown; each cell is the median, with (min–max) when rows
/// were repeated.
pub fn markdown(runs: &[RunResult]) -> String {
    let mut o = format!("<!-- gilbench {} -->\n", env!("CARGO_PKG_VERSION"));
    if let Some(r) = runs.first() {
        let _ = writeln!(
            o,
            "**{}**: {} runs; latency in microseconds, client-side\n",
            r.scenario,
            runs.len()
        );
    }
    let cols = columns(runs);
    let _ = writeln!(o, "| run | {} |", cols.join(" | "));
    let _ = writeln!(o, "|---|{}", "---:|".repeat(cols.len()));
    for row in summary(runs) {
        let cells: Vec<String> = row
            .cells
            .iter()
            .take(cols.len())
            .enumerate()
            .map(|(c, s)| match s {
                None => "-".into(),
                Some(s) if s.n > 1 => format!(
                    "{} ({}–{})",
                    md_num(c, s.median),
                    md_num(c, s.min),
                    md_num(c, s.max)
                ),
                Some(s) => md_num(c, s.median),
            })
            .collect();
        let label = if row.partial {
            format!("{} (partial)", row.label)
        } else {
            row.label
        };
        let _ = writeln!(
            o,
            "| {} | {} |",
            label.replace('|', "\\|"),
            cells.join(" | ")
        );
    }
    o
}

/// The result file as pretty JSON.
pub fn json(runs: &[RunResult]) -> String {
    /// `ResultFile` without copying the runs.
    #[derive(serde::Serialize)]
    struct Borrowed<'a> {
        gilbench: &'a str,
        runs: &'a [RunResult],
    }
    let doc = Borrowed {
        gilbench: env!("CARGO_PKG_VERSION"),
        runs,
    };
    serde_json::to_string_pretty(&doc).expect("results always encode") + "\n"
}
