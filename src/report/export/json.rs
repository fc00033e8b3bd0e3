//! `--json PATH`: the result file itself, every run, with how it was made.

use super::{text_to, Context, Dest, Exporter, Mark, Outcome, Target};
use crate::report::about::Provenance;
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
        text_to(cx, to, &json_with(cx.runs, cx.about.recorded.as_ref()))
    }
}

/// The result file as pretty JSON.
pub fn json(runs: &[RunResult]) -> String {
    json_with(runs, None)
}

/// The result file as pretty JSON, with how the results were made when known.
pub fn json_with(runs: &[RunResult], provenance: Option<&Provenance>) -> String {
    /// `ResultFile` without copying the runs, and with its provenance.
    #[derive(serde::Serialize)]
    struct Borrowed<'a> {
        gilbench: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        provenance: Option<&'a Provenance>,
        runs: &'a [RunResult],
    }
    let doc = Borrowed {
        gilbench: env!("CARGO_PKG_VERSION"),
        provenance,
        runs,
    };
    serde_json::to_string_pretty(&doc).expect("results always encode") + "\n"
}

/// How the results in a result file were made, if it says (`provenance`).
pub fn provenance(text: &str) -> Option<Provenance> {
    #[derive(serde::Deserialize)]
    struct P {
        provenance: Option<Provenance>,
    }
    serde_json::from_str::<P>(text).ok()?.provenance
}
