//! HdrHistogram's own file formats: the percentile distribution (`.hgrm`, as
//! `outputPercentileDistribution` prints it, read by HdrHistogram's plotter) and the interval
//! histogram log (written with the hdrhistogram crate's interval log writer).

use std::fmt::Write;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::metrics::{Hist, Interval};

/// Values are nanoseconds; files show microseconds (HdrHistogram's "value unit scaling
/// ratio" of 1000).
const SCALE: f64 = 1000.0;

/// The first line of a `.hgrm` file (HdrHistogram's standard layout).
pub const HGRM_HEADER: &str = "       Value     Percentile TotalCount 1/(1-Percentile)";

/// The last line of a `.hgrm` file written by gilbench: how gilbench recognises its own (see
/// `output`); a `#[` line, which HdrHistogram's readers skip like the footer above it.
pub fn hgrm_mark() -> String {
    format!(
        "#[gilbench {} percentile distribution; values in microseconds]",
        env!("CARGO_PKG_VERSION")
    )
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

/// An interval histogram log: every interval of every tagged series, in start order.
pub fn hlog(series: &[(String, Interval)], start: SystemTime) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    {
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "[gilbench {} interval log; values in nanoseconds]",
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
