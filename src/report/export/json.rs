//! `--json PATH`: the result file itself, every run, with how it was made.

use super::{text_to, Context, Dest, Exporter, Mark, Outcome, Target};
use crate::report::about::Provenance;
use crate::report::{summary, verdicts, Confidence};
use crate::result::RunResult;

/// The format.
pub struct Json;

/// The format's entry in `ALL`.
pub const FORMAT: Json = Json;

impl Exporter for Json {
    fn flag(&self) -> &'static str {
        "json"
    }
    fn help(&self) -> &'static str {
        "Write the result as JSON to PATH"
    }
    fn target(&self) -> Target {
        Target::File
    }
    fn mark(&self) -> Mark {
        Mark::Json {
            strings: &["gilbench"],
            arrays: &["runs"],
        }
    }
    fn write(&self, cx: &Context<'_>, to: &Dest) -> Result<Outcome, String> {
        let record = cx.table.map(|t| &t.record);
        text_to(cx, to, &document(cx.runs, cx.about.recorded.as_ref(), record))
    }
}

/// The result file as pretty JSON.
pub fn json(runs: &[RunResult]) -> String {
    json_with(runs, None)
}

/// The result file as pretty JSON, with how the results were made when known.
pub fn json_with(runs: &[RunResult], provenance: Option<&Provenance>) -> String {
    document(runs, provenance, None)
}

/// The result file as pretty JSON, with how the results were made when known, and the
/// record of a table of its own (calibrate's `calibrate`) before the runs.
fn document(
    runs: &[RunResult],
    provenance: Option<&Provenance>,
    record: Option<&serde_json::Map<String, serde_json::Value>>,
) -> String {
    /// `ResultFile` without copying the runs, with its provenance and each row against the
    /// first (not read back: `report` computes it again from the runs).
    #[derive(serde::Serialize)]
    struct Borrowed<'a> {
        gilbench: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        provenance: Option<&'a Provenance>,
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        record: Option<&'a serde_json::Map<String, serde_json::Value>>,
        runs: &'a [RunResult],
        #[serde(skip_serializing_if = "Vec::is_empty")]
        comparison: Vec<Compared<'a>>,
    }
    let rows = summary(runs);
    // Only for repeated rows, as the tables (single runs have no verdict).
    let repeated = verdicts(&rows).is_some();
    let comparison = rows
        .iter()
        .filter(|_| repeated)
        .flat_map(|r| {
            r.confidence.iter().map(|c| Compared {
                row: &r.label,
                reference: &rows[0].label,
                verdict: c.verdict(),
                figure: c,
            })
        })
        .collect();
    let doc = Borrowed {
        gilbench: env!("CARGO_PKG_VERSION"),
        provenance,
        record,
        runs,
        comparison,
    };
    serde_json::to_string_pretty(&doc).expect("results always encode") + "\n"
}

/// One figure of a row against the first row's, in the result file.
#[derive(serde::Serialize)]
struct Compared<'a> {
    row: &'a str,
    reference: &'a str,
    #[serde(flatten)]
    figure: &'a Confidence,
    verdict: String,
}

/// How the results in a result file were made, if it says (`provenance`).
pub fn provenance(text: &str) -> Option<Provenance> {
    #[derive(serde::Deserialize)]
    struct P {
        provenance: Option<Provenance>,
    }
    serde_json::from_str::<P>(text).ok()?.provenance
}
