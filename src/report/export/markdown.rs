//! `--markdown [PATH]`: the compare/sweep table in Markdown, the columns of
//! [`COLUMNS`](crate::report::columns::COLUMNS) as plain numbers.

use std::fmt::Write;

use super::{text_to, Context, Dest, Exporter, Mark, Outcome, Target};
use crate::report::columns::measured;
use crate::report::{
    other_verdicts, shown, summary, verdicts, CONFIDENCE_METHOD, VERDICT,
};
use crate::result::RunResult;

/// The format.
pub struct Markdown;

/// The format's entry in `ALL`.
pub const FORMAT: Markdown = Markdown;

impl Exporter for Markdown {
    fn flag(&self) -> &'static str {
        "markdown"
    }
    fn help(&self) -> &'static str {
        "Write the table as Markdown to PATH (or print it, without PATH)"
    }
    fn target(&self) -> Target {
        Target::FileOrStdout
    }
    fn mark(&self) -> Mark {
        Mark::Versioned {
            open: "<!-- gilbench ",
            close: " -->",
        }
    }
    fn write(&self, cx: &Context<'_>, to: &Dest) -> Result<Outcome, String> {
        match cx.table {
            Some(t) => text_to(cx, to, &t.markdown()),
            None => text_to(cx, to, &markdown(cx.runs)),
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The compare/sweep table in Markdown; each cell is the median, with (min–max) when rows
/// were repeated.
pub fn markdown(runs: &[RunResult]) -> String {
    let mut o = format!("<!-- gilbench {} -->\n", env!("CARGO_PKG_VERSION"));
    if let Some(r) = runs.first() {
        let _ = writeln!(
            o,
            "**{}**: {}; latency in microseconds, client-side\n",
            escape(&r.scenario),
            crate::report::count_runs(runs)
        );
    }
    let rows = summary(runs);
    let cols = shown(&rows);
    let verdicts = verdicts(&rows);
    let names: Vec<&str> = cols
        .iter()
        .map(|(_, c)| c.name)
        .chain(verdicts.as_ref().map(|_| VERDICT))
        .collect();
    let _ = writeln!(o, "| run | {} |", names.join(" | "));
    let _ = writeln!(o, "|---|{}", "---:|".repeat(names.len()));
    for (n, row) in rows.iter().enumerate() {
        let cells: Vec<String> = cols
            .iter()
            .map(|&(i, c)| row.cells[i].map_or("-".into(), |s| s.show(c.plain, "–")))
            .chain(verdicts.as_ref().map(|v| escape(&v[n])))
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} |",
            escape(&row.marked_label()),
            cells.join(" | ")
        );
    }
    if verdicts.is_some() {
        let _ = writeln!(o, "\nVerdicts: {CONFIDENCE_METHOD}.");
        for v in other_verdicts(&rows) {
            let _ = writeln!(o, "- {}", escape(&v));
        }
    }
    for r in runs.iter().filter(|r| r.failure.is_some()) {
        let _ = writeln!(
            o,
            "\n**Failed**: {}: {}",
            escape(r.row_label()),
            escape(r.failure.as_deref().unwrap_or_default())
        );
        for n in r.notes.iter().filter(|_| !measured(r)) {
            let _ = writeln!(o, "- {}", escape(n));
        }
    }
    for n in crate::report::experiment_notes(runs) {
        let _ = writeln!(o, "\n**Note**: {}", escape(n));
    }
    o
}
