//! `--trace PATH`: the GIL timeline as Chrome trace-event JSON (Perfetto, chrome://tracing),
//! streamed by [`crate::trace`]; a signal that arrives while it is written abandons it.

use super::{Context, Dest, Exporter, Mark, Needs, Outcome, Target};
use crate::output::write_with;
use crate::signals;
use crate::trace::{write_chrome_trace, Timeline};

/// The format.
pub struct Trace;

/// The format's entry in `ALL`.
pub const FORMAT: Trace = Trace;

impl Exporter for Trace {
    fn flag(&self) -> &'static str {
        "trace"
    }
    fn help(&self) -> &'static str {
        "Write the GIL timeline as Chrome trace-event JSON (Perfetto, chrome://tracing)"
    }
    fn target(&self) -> Target {
        Target::File
    }
    fn mark(&self) -> Mark {
        Mark::Json {
            strings: &["otherData.gilbench"],
            arrays: &["traceEvents"],
        }
    }
    fn needs(&self) -> Needs {
        Needs {
            timeline: true,
            ..Needs::default()
        }
    }
    fn write(&self, cx: &Context<'_>, to: &Dest) -> Result<Outcome, String> {
        let Dest::File(p) = to else {
            return Err("--trace writes a file".into());
        };
        let timelines: Vec<&Timeline> = cx.runs.iter().filter_map(|r| r.trace.as_ref()).collect();
        if timelines.is_empty() {
            (cx.note)(&format!(
                "note: no timeline to write to {} (a run with record = false keeps none, nor do results loaded from JSON)",
                p.display()
            ));
            return Ok(Outcome::Nothing);
        }
        // The trace can take seconds to write: a signal that arrives meanwhile abandons it
        // (a signal that already cut the run short does not: what was gathered is written).
        let before = signals::caught();
        let cancelled = || before.is_none() && signals::caught().is_some();
        let wrote = write_with(p, cx.replace(), |w| {
            write_chrome_trace(&timelines, w, &cancelled)
        })?;
        Ok(if wrote {
            Outcome::Written
        } else {
            Outcome::Abandoned
        })
    }
}
