//! `--hgrm DIR`: HdrHistogram's percentile distribution (`.hgrm`, as
//! `outputPercentileDistribution` prints it, read by HdrHistogram's plotter), a file per run
//! and metric.

use std::fmt::Write;

use super::{Context, Dest, Exporter, Mark, Outcome, Target};
use crate::metrics::Hist;
use crate::output::{ensure_dir, file_part, write_file};

/// Values are nanoseconds; files show microseconds (HdrHistogram's "value unit scaling
/// ratio" of 1000).
pub(crate) const SCALE: f64 = 1000.0;

/// The format.
pub struct Hgrm;

/// The format's entry in `ALL`.
pub const FORMAT: Hgrm = Hgrm;

const MARK_OPEN: &str = "#[gilbench ";
const MARK_CLOSE: &str = " percentile distribution; values in microseconds]";

impl Exporter for Hgrm {
    fn flag(&self) -> &'static str {
        "hgrm"
    }
    fn help(&self) -> &'static str {
        "Write an HdrHistogram percentile file (.hgrm) per run and metric into DIR"
    }
    fn target(&self) -> Target {
        Target::Dir { ext: "hgrm" }
    }
    fn mark(&self) -> Mark {
        Mark::HeadAndTail {
            first: HGRM_HEADER,
            open: MARK_OPEN,
            close: MARK_CLOSE,
        }
    }
    fn write(&self, cx: &Context<'_>, to: &Dest) -> Result<Outcome, String> {
        let Dest::Dir(dir) = to else {
            return Err("--hgrm writes into a directory".into());
        };
        ensure_dir(dir)?;
        let mut written = 0;
        for r in cx.runs {
            // An empty histogram measured nothing (e.g. unrecorded GIL waits): no file.
            for (metric, h) in r.hists.iter().filter(|(_, h)| !h.is_empty()) {
                let name = format!(
                    "{}_{}_{}_{}.hgrm",
                    file_part(&r.scenario),
                    file_part(r.row_label()),
                    r.repeat,
                    metric
                );
                write_file(&dir.join(name), hgrm(h).as_bytes(), cx.replace())?;
                written += 1;
            }
        }
        if written == 0 {
            (cx.note)(&format!("note: no histograms to write to {} (results loaded from JSON keep only percentiles)", dir.display()));
            return Ok(Outcome::Nothing);
        }
        Ok(Outcome::Written)
    }
}

/// The first line of a `.hgrm` file (HdrHistogram's standard layout).
pub const HGRM_HEADER: &str = "       Value     Percentile TotalCount 1/(1-Percentile)";

/// The last line of a `.hgrm` file written by gilbench: how gilbench recognises its own (see
/// `output`); a `#[` line, which HdrHistogram's readers skip like the footer above it.
pub fn hgrm_mark() -> String {
    format!("{MARK_OPEN}{}{MARK_CLOSE}", env!("CARGO_PKG_VERSION"))
}

/// The percentile distribution of `h` in HdrHistogram's standard text layout.
pub fn hgrm(h: &Hist) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{HGRM_HEADER}\n");
    if !h.is_empty() {
        let mut count = 0u64;
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            let value = v.value_iterated_to() as f64 / SCALE;
            count += v.count_since_last_iteration();
            if q < 1.0 {
                let _ = writeln!(
                    o,
                    "{value:>12.3} {q:>2.12} {count:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(o, "{value:>12.3} {q:>2.12} {count:>10}");
            }
        }
    }
    let sub_buckets = (2.0 * 10f64.powi(i32::from(h.sigfig())))
        .log2()
        .ceil()
        .exp2() as u64;
    let _ = writeln!(
        o,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / SCALE,
        h.stdev() / SCALE
    );
    let _ = writeln!(
        o,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / SCALE,
        h.len()
    );
    let _ = writeln!(
        o,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets
    );
    let _ = writeln!(o, "{}", hgrm_mark());
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::new_hist;

    #[test]
    fn hgrm_has_the_standard_layout() {
        let mut h = new_hist();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let text = hgrm(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("Value") && lines[0].contains("1/(1-Percentile)"));
        assert!(lines.iter().any(|l| l.starts_with("#[Mean")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("#[Max") && l.contains("Total count")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("#[Buckets") && l.contains("SubBuckets     =         2048")));
        // Values in microseconds: the median of 1..1000 us is about 500.
        let median = lines
            .iter()
            .find(|l| l.contains(" 0.500000000000 "))
            .unwrap();
        let v: f64 = median.split_whitespace().next().unwrap().parse().unwrap();
        assert!((499.0..=501.0).contains(&v), "{median}");
    }
}
