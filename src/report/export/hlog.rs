//! `--hlog PATH`: an HdrHistogram interval log (1 s intervals, a tag per thread and metric),
//! written with the hdrhistogram crate's interval log writer.

use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use super::hgrm::SCALE;
use super::{Context, Dest, Exporter, Mark, Needs, Outcome, Target};
use crate::metrics::Interval;
use crate::output::{file_part, write_file};

/// The format.
pub struct Hlog;

/// The format's entry in `ALL`.
pub const FORMAT: Hlog = Hlog;

const MARK_OPEN: &str = "#[gilbench ";
const MARK_CLOSE: &str = " interval log; values in nanoseconds]";

impl Exporter for Hlog {
    fn flag(&self) -> &'static str {
        "hlog"
    }
    fn help(&self) -> &'static str {
        "Write an HdrHistogram interval log (1 s intervals, a tag per thread and metric)"
    }
    fn target(&self) -> Target {
        Target::File
    }
    fn mark(&self) -> Mark {
        Mark::Versioned {
            open: MARK_OPEN,
            close: MARK_CLOSE,
        }
    }
    fn needs(&self) -> Needs {
        Needs {
            intervals: true,
            ..Needs::default()
        }
    }
    fn write(&self, cx: &Context<'_>, to: &Dest) -> Result<Outcome, String> {
        let Dest::File(p) = to else {
            return Err("--hlog writes a file".into());
        };
        let runs = cx.runs;
        let mut series = Vec::new();
        for r in runs {
            let prefix = if runs.len() > 1 {
                format!("{}.{}.", file_part(r.row_label()), r.repeat)
            } else {
                String::new()
            };
            series.extend(
                r.intervals
                    .iter()
                    .map(|(t, iv)| (format!("{prefix}{t}"), iv.clone())),
            );
        }
        let start =
            SystemTime::now() - Duration::from_secs_f64(runs.iter().map(|r| r.wall_s).sum::<f64>());
        write_file(p, &hlog(&series, start)?, cx.replace())?;
        Ok(Outcome::Written)
    }
}

/// An interval histogram log: every interval of every tagged series, in start order.
pub fn hlog(series: &[(String, Interval)], start: SystemTime) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    {
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "{}{}{MARK_CLOSE}",
                &MARK_OPEN[1..],
                env!("CARGO_PKG_VERSION")
            ))
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(SCALE)
            .begin_log_with(&mut out, &mut ser)
            .map_err(|e| format!("cannot start the interval log: {e}"))?;
        for (tag, iv) in series {
            let tag = tag.replace([' ', ',', '\n'], "_");
            let t =
                Tag::new(&tag).ok_or_else(|| format!("'{tag}' cannot be an interval log tag"))?;
            for h in &iv.hists {
                w.write_histogram(h, iv.start, iv.len.max(Duration::from_nanos(1)), Some(t))
                    .map_err(|e| format!("cannot write the interval log: {e:?}"))?;
            }
        }
    }
    Ok(out)
}

