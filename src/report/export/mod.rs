//! Every output format behind one trait, as hyperfine's `src/export/`: each format is one
//! file implementing [`Exporter`], which declares its flag, whether it writes a file, a
//! directory or stdout ([`Target`]), how gilbench recognises a file it wrote ([`Mark`]) and
//! what the run must gather for it ([`Needs`]). The command line, the checks before a run,
//! the writing after it and [`ours`] all go through [`ALL`]: adding a format is one
//! file plus its name in the `exporters!` line below.

use std::path::{Path, PathBuf};

use crate::output::{write_file, Replace};
use crate::result::RunResult;

mod recognise;
pub use recognise::{ours, replace, versioned};

/// Where a format writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// One file: `--flag PATH`.
    File,
    /// One file, or stdout when the flag is given without a path: `--flag [PATH]`.
    FileOrStdout,
    /// Files ending in `.{ext}` in a directory: `--flag DIR`.
    Dir {
        /// The extension of the files it writes there.
        ext: &'static str,
    },
}

/// How gilbench recognises a file it wrote in a format, by content it controls (never by a
/// mention of its name); see [`ours`].
#[derive(Clone, Debug)]
pub enum Mark {
    /// The first line is exactly one of these (the current form first, then older ones).
    FirstLine(Vec<String>),
    /// The first line is `{open}VERSION{close}`, VERSION digits and dots.
    Versioned {
        open: &'static str,
        close: &'static str,
    },
    /// The first line is exactly `first`, the last non-empty one `{open}VERSION{close}`.
    HeadAndTail {
        first: &'static str,
        open: &'static str,
        close: &'static str,
    },
    /// A JSON document, parsed whole, with a string at each of `strings` and an array at
    /// each of `arrays` (paths of object keys joined by `.`).
    Json {
        strings: &'static [&'static str],
        arrays: &'static [&'static str],
    },
}

/// What a format needs the run to gather beyond the result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// The GIL timeline (`--trace-events` bounds it).
    pub timeline: bool,
    /// Interval histograms (1 s).
    pub intervals: bool,
}

/// Where the user asked a format to go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    File(PathBuf),
    Dir(PathBuf),
    Stdout,
}

impl Dest {
    /// The path, unless stdout.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Dest::File(p) | Dest::Dir(p) => Some(p),
            Dest::Stdout => None,
        }
    }
}

/// What writing a format did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written to its file or directory.
    Written,
    /// Printed on stdout.
    Printed,
    /// Nothing to write (a note said why).
    Nothing,
    /// Stopped by a signal: nothing was written.
    Abandoned,
}

/// What every format is written from.
pub struct Context<'a> {
    /// The runs, in order.
    pub runs: &'a [RunResult],
    /// The swept key, for a sweep.
    pub sweep_key: Option<&'a str>,
    /// A table of its own (calibrate's): the formats that write a table (CSV, Markdown)
    /// write it instead of the compare/sweep table, and the result file carries its record.
    pub table: Option<&'a crate::report::table::Table>,
    /// Replace files gilbench did not write.
    pub force: bool,
    /// How the results were made (command, machine, date) and how they are being written.
    pub about: &'a crate::report::about::About,
    /// Outputs already written, by flag: the HTML page links them.
    pub written: &'a [(&'static str, PathBuf)],
    /// Prints on stdout.
    pub say: &'a dyn Fn(&str),
    /// Prints a note on stderr.
    pub note: &'a dyn Fn(&str),
}

impl Context<'_> {
    /// Which existing files the formats may replace (see [`replace`]).
    pub fn replace(&self) -> Replace {
        replace(self.force)
    }
}

/// One output format.
pub trait Exporter: Sync {
    /// Its flag, without the dashes: `json` for `--json`.
    fn flag(&self) -> &'static str;
    /// The flag's help.
    fn help(&self) -> &'static str;
    /// Where it writes.
    fn target(&self) -> Target;
    /// How gilbench knows a file it wrote in this format.
    fn mark(&self) -> Mark;
    /// What the run must gather for it.
    fn needs(&self) -> Needs {
        Needs::default()
    }
    /// Writes `cx.runs` to `to` (of the kind [`Exporter::target`] says).
    fn write(&self, cx: &Context<'_>, to: &Dest) -> Result<Outcome, String>;
}

/// Writes `text` to the file `to` names (safely, see `output`), or prints it.
pub fn text_to(cx: &Context<'_>, to: &Dest, text: &str) -> Result<Outcome, String> {
    match to {
        Dest::File(p) => write_file(p, text.as_bytes(), cx.replace()).map(|()| Outcome::Written),
        Dest::Dir(p) => Err(format!(
            "{}: a one-file format given a directory",
            p.display()
        )),
        Dest::Stdout => {
            (cx.say)(text);
            Ok(Outcome::Printed)
        }
    }
}

/// Declares the format modules and [`ALL`], in the order they are listed in `--help` and
/// written (the HTML page last: it links what the others wrote).
macro_rules! exporters {
    ($($m:ident),* $(,)?) => {
        $(pub mod $m;)*
        /// Every format.
        pub static ALL: &[&dyn Exporter] = &[$(&$m::FORMAT),*];
    };
}

exporters!(json, csv, markdown, hgrm, hlog, plot, trace, html);

/// The format with flag `flag`.
pub fn by_flag(flag: &str) -> Option<&'static dyn Exporter> {
    ALL.iter().copied().find(|e| e.flag() == flag)
}

/// Percentiles for tests: `base` at the median, the tail a fixed multiple of it.
#[cfg(test)]
fn sample_percentiles(base: f64) -> crate::metrics::Percentiles {
    crate::metrics::Percentiles {
        p50: base,
        p90: base * 2.0,
        p99: base * 4.0,
        p999: base * 8.0,
        max: base * 10.0,
        mean: base * 1.5,
        count: 1000,
    }
}

/// A run's GIL figures for tests: every counter measured.
#[cfg(test)]
fn sample_gil() -> crate::result::GilSummary {
    crate::result::GilSummary {
        acquisitions: Some(2000),
        switches: Some(1500),
        forced_drops: Some(200),
        voluntary_drops: Some(0),
        overlaps: Some(0),
        idle_while_wanted: Some(0.0123),
        idle_while_wanted_s: Some(0.0123),
        ctx_switches: Some(Default::default()),
        wait_us: sample_percentiles(10.0),
        hold_us: sample_percentiles(100.0),
        ..Default::default()
    }
}

/// A run for tests: two threads, I/O with a latency distribution, histograms.
#[cfg(test)]
pub(crate) fn sample_run(label: &str) -> RunResult {
    use crate::result::{CpuSummary, IoSummary, ThreadResult};
    let pct = sample_percentiles;
    let mut h = crate::metrics::new_hist();
    for v in 1..=1000u64 {
        h.record(v * 1000).unwrap();
    }
    let thread = |name: &str, work: &str| ThreadResult {
        name: name.into(),
        role: work.into(),
        workload: work.into(),
        core: Some(0),
        cores: vec![0, 1],
        migrations: Some(1),
        ticks_per_sec: 1e6,
        wait_us: pct(10.0),
        hold_us: pct(100.0),
        ..Default::default()
    };
    RunResult {
        scenario: "sample <&> \"s\"".into(),
        lock: "timed".into(),
        label: label.into(),
        repeat: 0,
        sequence: None,
        params: serde_json::json!({"pin": "spread", "interval": "5ms"}),
        wall_s: 1.1,
        measured_s: 1.0,
        cpu: Some(CpuSummary {
            threads: 1,
            ticks: 1_000_000,
            ticks_per_sec: 1e6,
            bytes: 64_000_000,
            bytes_per_sec: 64e6,
        }),
        io: Some(IoSummary {
            requests: 5500,
            requests_per_sec: 5500.0,
            latency_us: pct(150.0),
            latency_dist: vec![[50.0, 150.0], [90.0, 300.0], [99.0, 600.0], [99.9, 1200.0]],
            mode: "closed".into(),
            ..Default::default()
        }),
        gil: sample_gil(),
        threads: vec![thread("echo-0", "echo"), thread("cpu-0", "cpu-hash")],
        notes: vec!["a note <b>".into()],
        partial: false,
        failure: None,
        baseline: None,
        hists: [("io-latency".to_owned(), h)].into_iter().collect(),
        intervals: Vec::new(),
        trace: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::about::About;

    /// Every format of `runs`: the text table, Markdown, CSV, JSON and the HTML page.
    pub(crate) fn every_format(runs: &[RunResult]) -> [(&'static str, String); 5] {
        let about = About::default();
        let cx = Context {
            runs,
            sweep_key: None,
            table: None,
            force: false,
            about: &about,
            written: &[],
            say: &|_| {},
            note: &|_| {},
        };
        [
            ("text", crate::report::summary_text(runs)),
            ("markdown", markdown::markdown(runs)),
            ("csv", csv::csv(runs)),
            ("json", json::json(runs)),
            ("html", html::page(&cx, Path::new("/tmp/r.html")).unwrap()),
        ]
    }

    /// Rows `a` and `b`, `n` runs each: b serves `factor` times a's requests/s (each run a
    /// little off), with the same p99 give or take.
    fn two_rows(n: usize, factor: f64) -> Vec<RunResult> {
        let wobble = [1.0, 1.04, 0.97, 1.02, 0.99, 1.01];
        let mut runs = Vec::new();
        for r in 0..n {
            for (label, f) in [("a", 1.0), ("b", factor)] {
                let mut run = sample_run(label);
                run.repeat = r as u32;
                let io = run.io.as_mut().unwrap();
                io.requests_per_sec = 1000.0 * f * wobble[r];
                io.latency_us.p99 = 600.0 * wobble[(r + usize::from(f > 1.0)) % 6];
                runs.push(run);
            }
        }
        runs
    }

    #[test]
    fn a_clear_difference_has_its_verdict_in_every_format() {
        let runs = two_rows(5, 2.8);
        for (format, out) in every_format(&runs) {
            assert!(out.contains("2.80x faster, 95% CI "), "{format}: {out}");
            // (The CSV has the other figures' intervals as numbers.)
            assert!(
                format == "csv" || out.contains("within noise, 95% CI"),
                "{format}: {out}"
            );
        }
        let v: serde_json::Value = serde_json::from_str(&json::json(&runs)).unwrap();
        let c = &v["comparison"][0];
        assert_eq!(c["row"], "b");
        assert_eq!(c["key"], "requests_per_sec");
        assert!(c["interval"]["low"].as_f64().unwrap() > 2.5, "{c}");
        assert!((c["interval"]["coverage"].as_f64().unwrap() - 0.968).abs() < 0.001);
    }

    #[test]
    fn below_the_minimum_the_spread_shows_and_no_verdict() {
        let runs = two_rows(3, 2.8);
        for (format, out) in every_format(&runs) {
            assert!(
                out.contains("no verdict: 3 runs (needs 4)"),
                "{format}: {out}"
            );
            assert!(!out.contains("faster"), "{format}: {out}");
        }
        let csv = csv::csv(&runs);
        let line = csv.lines().nth(2).unwrap();
        // b's requests/s ratio is there, its interval empty.
        assert!(line.contains(",2.8,,,"), "{line}");
        // Single runs: no verdict column at all.
        for (format, out) in every_format(&two_rows(1, 2.8)) {
            assert!(!out.contains("no verdict"), "{format}: {out}");
        }
    }
}

#[cfg(test)]
mod absent {
    use super::tests::every_format;
    use super::*;
    use crate::result::GilSummary;

    /// A run without GIL-side recording: its counters and shares are absent, not zeros.
    fn unrecorded(label: &str) -> RunResult {
        let mut r = sample_run(label);
        r.gil = GilSummary {
            ctx_switches: Some(Default::default()),
            ..Default::default()
        };
        for t in &mut r.threads {
            t.wait_us = Default::default();
            t.hold_us = Default::default();
        }
        r
    }

    #[test]
    fn unrecorded_figures_are_absent_in_every_format() {
        let runs = [unrecorded("a"), unrecorded("b")];
        for (format, out) in every_format(&runs) {
            let (absent, zero) = match format {
                "csv" => (",0.0123", ",1500,200,0,"),
                // (Each thread's counters are still numbers in the JSON.)
                "json" => ("\"switches\": null", "\"idle_while_wanted\": 0"),
                "html" => (
                    "data-col=\"switches\" class=\"none\">-<",
                    "data-col=\"idle_while_wanted\" data-value",
                ),
                "markdown" => ("| - | - | 0 | - |", "1.23%"),
                _ => ("      -", "1.2%"),
            };
            assert!(!out.contains(zero), "{format}: {out}");
            assert!(format == "csv" || out.contains(absent), "{format}: {out}");
            assert!(format != "csv" || !out.contains(absent), "{format}: {out}");
        }
        let line = super::csv::csv(&runs).lines().nth(1).unwrap().to_owned();
        // switches, forced drops and idle/wanted empty; ctx switches measured (0).
        assert!(line.contains(",,,0,,"), "{line}");
        let v: serde_json::Value = serde_json::from_str(&json::json(&runs)).unwrap();
        let g = &v["runs"][0]["gil"];
        for k in [
            "acquisitions",
            "idle_while_wanted",
            "wait_us",
            "reacquire_us",
        ] {
            assert!(g[k].is_null(), "{k}: {g}");
        }
        assert!(v["runs"][0]["threads"][0]["wait_us"].is_null());
        // Read back: the same run.
        let back: crate::result::ResultFile = serde_json::from_value(v).unwrap();
        assert_eq!(back.runs[0].gil.switches, None);
        assert_eq!(back.runs[0].gil.wait_us.count, 0);
        let table = crate::report::run_table(&runs[0]);
        assert!(table.contains("gil: not recorded"), "{table}");
        assert!(!table.contains("idle while wanted"), "{table}");
    }

    /// Results of gilbench before absent figures (numbers everywhere) still read.
    #[test]
    fn older_results_still_read() {
        let mut v: serde_json::Value =
            serde_json::from_str(&json::json(&[sample_run("a")])).unwrap();
        v["runs"][0]["gil"]["reacquire_us"] = serde_json::json!({
            "p50": 0.0, "p90": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0, "mean": 0.0, "count": 0
        });
        v["runs"][0]["gil"]
            .as_object_mut()
            .unwrap()
            .remove("overlaps");
        let back: crate::result::ResultFile = serde_json::from_value(v).unwrap();
        assert_eq!(back.runs[0].gil.switches, Some(1500));
        assert_eq!(back.runs[0].gil.overlaps, None);
        assert_eq!(back.runs[0].gil.reacquire_us.count, 0);
    }

    /// A run a signal stopped in its warm-up (nothing measured) has no figures and no ratio
    /// (it showed 0 req/s and 0.00x).
    #[test]
    fn a_row_stopped_in_its_warm_up_has_no_figures() {
        let mut b = sample_run("b");
        b.measured_s = 0.0;
        b.partial = true;
        b.cpu = None;
        b.io = None;
        b.notes = vec!["not run: 1 run (rows never started: c)".into()];
        let runs = [sample_run("a"), b];
        for (format, out) in every_format(&runs) {
            assert!(
                !out.contains("0.00x") && !out.contains(",0.0,"),
                "{format}: {out}"
            );
            // (The CSV has a line per run and no notes.)
            assert!(
                format == "csv" || out.contains("rows never started: c"),
                "{format}: {out}"
            );
        }
        let text = crate::report::summary_text(&runs);
        let row = text.lines().find(|l| l.starts_with("b (partial)")).unwrap();
        assert!(row.split_whitespace().skip(2).all(|c| c == "-"), "{row}");
        assert!(text.contains("1 run, 1 stopped in its warm-up"), "{text}");
    }
}
