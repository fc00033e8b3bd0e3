//! `--plot DIR`: SVG plots (drawn by [`report::plot`](crate::report::plot)): every row's
//! latency percentile distribution on one chart; for a sweep, the main metrics against the
//! swept value; with baselines, the trade-off chart (CPU kept against I/O kept, the frontier).

use super::{Context, Dest, Exporter, Mark, Outcome, Target};
use crate::output::{ensure_dir, file_part, write_file};
use crate::report::plot::{latency_percentiles, sweep, tradeoff, SVG_MARK};

/// The format.
pub struct Plot;

/// The format's entry in `ALL`.
pub const FORMAT: Plot = Plot;

impl Exporter for Plot {
    fn flag(&self) -> &'static str {
        "plot"
    }
    fn help(&self) -> &'static str {
        "Write SVG plots into DIR"
    }
    fn target(&self) -> Target {
        Target::Dir { ext: "svg" }
    }
    fn mark(&self) -> Mark {
        Mark::FirstLine(vec![SVG_MARK.to_owned()])
    }
    fn write(&self, cx: &Context<'_>, to: &Dest) -> Result<Outcome, String> {
        let Dest::Dir(dir) = to else {
            return Err("--plot writes into a directory".into());
        };
        ensure_dir(dir)?;
        let runs = cx.runs;
        let scen = file_part(runs.first().map_or("", |r| r.scenario.as_str()));
        let mut wrote = false;
        if let Some(key) = cx.sweep_key {
            let svg = sweep(runs, key)?;
            let name = format!("{scen}_sweep_{}.svg", file_part(key));
            write_file(&dir.join(name), svg.as_bytes(), cx.replace())?;
            wrote = true;
        }
        if let Some(svg) = latency_percentiles(runs)? {
            write_file(
                &dir.join(format!("{scen}_latency.svg")),
                svg.as_bytes(),
                cx.replace(),
            )?;
            wrote = true;
        } else if cx.sweep_key.is_none() {
            (cx.note)(
                "note: no client-side latency to plot (no request was answered, or the run had no client of its own: a CPU-only or bulk scenario, or serve)",
            );
        }
        if let Some(svg) = tradeoff(runs)? {
            let name = format!("{scen}_tradeoff.svg");
            write_file(&dir.join(name), svg.as_bytes(), cx.replace())?;
            wrote = true;
        }
        Ok(if wrote {
            Outcome::Written
        } else {
            Outcome::Nothing
        })
    }
}
