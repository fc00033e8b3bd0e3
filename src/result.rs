//! The one result type every exporter reads (docs/design.md §6). Extra fields are welcome; the
//! documented ones keep their names.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::{Counters, CtxSwitches, Hist, Interval, Percentiles};
use crate::workload::server::ServerStats;

/// A result file: one or more runs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultFile {
    pub gilbench: String,
    pub runs: Vec<RunResult>,
}

impl RunResult {
    /// The row this run belongs to: its label, or its design when it has none.
    pub fn row_label(&self) -> &str {
        if self.label.is_empty() {
            &self.lock
        } else {
            &self.label
        }
    }
}

impl RunResult {
    /// The first figure of this run that cannot be, as `field is value`: a negative duration,
    /// rate, count, latency or share. A result file holding one was edited, or not written
    /// by gilbench; its tables would print it as measured.
    pub fn impossible_figure(&self) -> Option<String> {
        negative_in(&serde_json::to_value(self).ok()?, "")
    }
}

/// Fields whose values may be below 0: the scenario's settings as given (checked when it
/// ran), and the frontier `1 - h*x`, which falls below 0 when a run's I/O outdid its alone.
const MAY_BE_NEGATIVE: [&str; 2] = ["params", "baseline.frontier"];

/// The first number below 0 in `v` (at `path`), outside [`MAY_BE_NEGATIVE`].
fn negative_in(v: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    if MAY_BE_NEGATIVE.contains(&path) {
        return None;
    }
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match v {
        Value::Number(n) if n.as_f64().is_some_and(|x| x < 0.0) => Some(format!("{path} is {n}")),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| negative_in(x, &format!("{path}[{i}]"))),
        Value::Object(m) => m.iter().find_map(|(k, x)| negative_in(x, &join(k))),
        _ => None,
    }
}

impl ResultFile {
    pub fn new(runs: Vec<RunResult>) -> Self {
        ResultFile {
            gilbench: env!("CARGO_PKG_VERSION").to_owned(),
            runs,
        }
    }

    /// Whether this gilbench reads the format of the version that wrote the file: refused
    /// when that version is unreadable or newer in its major or minor number (a newer patch
    /// keeps the format).
    pub fn check_version(&self) -> Result<(), String> {
        check_version(&self.gilbench, env!("CARGO_PKG_VERSION"))
    }
}

/// `MAJOR.MINOR.PATCH` (a pre-release or build suffix ignored).
fn major_minor(v: &str) -> Option<(u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let _patch: u64 = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((major, minor))
}

fn check_version(file: &str, ours: &str) -> Result<(), String> {
    let Some(theirs) = major_minor(file) else {
        return Err(format!("written by an unknown gilbench version {file:?}"));
    };
    let ours_mm = major_minor(ours).expect("our own version is MAJOR.MINOR.PATCH");
    if theirs > ours_mm {
        return Err(format!(
            "written by gilbench {file}, a newer format than this gilbench {ours} reads"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_version;

    #[test]
    fn reads_its_own_and_older_formats_only() {
        for ok in ["0.1.0", "0.1.7", "0.0.9", "0.1.0-dev"] {
            assert!(check_version(ok, "0.1.0").is_ok(), "{ok}");
        }
        for bad in ["0.2.0", "1.0.0", "banana", "", "0.1", "0.1.0.0", "x.1.0"] {
            assert!(check_version(bad, "0.1.0").is_err(), "{bad}");
        }
    }
}

/// One run of one scenario on one design.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub scenario: String,
    pub lock: String,
    /// The row this run belongs to in a compare or sweep (the design, the swept value, or
    /// both); the design's name for a single run.
    #[serde(default)]
    pub label: String,
    /// Which repetition of its row this run is (0-based).
    #[serde(default)]
    pub repeat: u32,
    /// In a compare or sweep: the run's place in the experiment's sequence and the order
    /// the repetitions ran in (absent for a single run and in older results).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<Sequence>,
    pub params: serde_json::Value,
    /// From the start signal until every thread was joined.
    pub wall_s: f64,
    /// From the start signal until the stop signal: what rates are computed over.
    pub measured_s: f64,
    pub cpu: Option<CpuSummary>,
    pub io: Option<IoSummary>,
    pub gil: GilSummary,
    pub threads: Vec<ThreadResult>,
    /// Things the user should know about this run (pinning fallbacks, wrap-around...).
    pub notes: Vec<String>,
    /// Set when the run was cut short (e.g. by Ctrl-C): its numbers cover less than asked.
    #[serde(default)]
    pub partial: bool,
    /// Why the run failed although it has results (e.g. it outlived its deadline, or the
    /// watchdog found it hung): what it measured is kept, marked partial, and the process
    /// exits 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// In an experiment with baselines: the same row run with I/O alone and with CPU alone
    /// (same repetition), and this run as fractions / multiples of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    /// The full histograms (not in the JSON; for `--hgrm`), by metric name.
    #[serde(skip)]
    pub hists: BTreeMap<String, Hist>,
    /// Interval histograms (not in the JSON; for `--hlog`), tagged `thread.metric`.
    #[serde(skip)]
    pub intervals: Vec<(String, Interval)>,
    /// The GIL timeline (not in the result JSON; for `--trace`).
    #[serde(skip)]
    pub trace: Option<crate::trace::Timeline>,
}

/// The order an experiment's repetitions run in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// A B C A B C ...: each repetition of every row before the next repetition, so that a
    /// machine that drifts over time moves every row alike.
    #[default]
    Interleaved,
    /// A A A B B B ...: every repetition of a row before the next row.
    Blocks,
}

impl Order {
    pub fn name(self) -> &'static str {
        match self {
            Order::Interleaved => "interleaved",
            Order::Blocks => "blocks",
        }
    }
}

/// How the note on an experiment's runs left undone begins (a note of its last run; see
/// `experiment::not_run_note`).
pub const NOT_RUN: &str = "not run:";

/// Where a run stood in its experiment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// Its place in the sequence of runs (0-based; baselines are not counted).
    pub index: u32,
    /// The order the experiment ran its repetitions in.
    pub order: Order,
}

/// A run beside its two baselines: its I/O threads without the CPU threads, and its CPU
/// threads without the I/O threads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Echo requests/s with no CPU thread.
    pub io_alone_requests_per_sec: f64,
    /// Echo latency p99 (µs) with no CPU thread; absent without client-side latency (a bulk
    /// transfer, or no request answered).
    #[serde(default)]
    pub io_alone_p99_us: Option<f64>,
    /// Bulk transfer time (s) with no CPU thread, for bulk scenarios.
    pub io_alone_transfer_s: Option<f64>,
    /// CPU ticks/s with no I/O thread.
    pub cpu_alone_ticks_per_sec: f64,
    /// This run's requests/s as a fraction of alone.
    pub requests_vs_alone: f64,
    /// This run's p99 as a multiple of alone; absent where either side has no latency.
    /// (Results of gilbench before 2026-12-08 wrote 0 there.)
    #[serde(default)]
    pub p99_vs_alone: Option<f64>,
    /// Echo latency p99.9 (µs) with no CPU thread.
    #[serde(default)]
    pub io_alone_p999_us: Option<f64>,
    /// This run's p99.9 as a multiple of alone.
    #[serde(default)]
    pub p999_vs_alone: Option<f64>,
    /// This run's bulk transfer time as a multiple of alone.
    pub transfer_vs_alone: Option<f64>,
    /// This run's CPU ticks/s as a fraction of alone.
    pub cpu_kept: f64,
    /// `h`: the share of the I/O-alone run's measured window in which its I/O threads held
    /// the GIL (their holds' mean times count over the window). Absent when that run
    /// recorded no holds (`record = false`), for bulk scenarios and for `none` (no GIL).
    #[serde(default)]
    pub io_hold_share: Option<f64>,
    /// The frontier at this run's I/O kept `x`: `1 - h*x`, the most CPU a GIL that wastes
    /// nothing lets the CPU threads keep (DESIGN.md §4).
    #[serde(default)]
    pub frontier: Option<f64>,
    /// CPU kept over the frontier (1: on it).
    #[serde(default)]
    pub efficiency: Option<f64>,
}

impl Baseline {
    /// `run` set beside `io_alone` (same row, no CPU thread) and `cpu_alone` (no I/O).
    pub fn of(run: &RunResult, io_alone: &RunResult, cpu_alone: &RunResult) -> Self {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let (io, alone) = (
            run.io.clone().unwrap_or_default(),
            io_alone.io.clone().unwrap_or_default(),
        );
        // A percentile of a histogram that holds something: no figure, not 0, otherwise.
        let pct = |p: &Percentiles, at: fn(&Percentiles) -> f64| (p.count > 0).then(|| at(p));
        let pct_ratio = |at: fn(&Percentiles) -> f64| {
            pct(&io.latency_us, at)
                .zip(pct(&alone.latency_us, at))
                .filter(|(_, b)| *b > 0.0)
                .map(|(a, b)| a / b)
        };
        let cpu = run.cpu.as_ref().map_or(0.0, |c| c.ticks_per_sec);
        let cpu_alone_tps = cpu_alone.cpu.as_ref().map_or(0.0, |c| c.ticks_per_sec);
        Baseline {
            io_alone_requests_per_sec: alone.requests_per_sec,
            io_alone_p99_us: pct(&alone.latency_us, |p| p.p99),
            io_alone_transfer_s: alone.transfer_s,
            cpu_alone_ticks_per_sec: cpu_alone_tps,
            requests_vs_alone: ratio(io.requests_per_sec, alone.requests_per_sec),
            p99_vs_alone: pct_ratio(|p| p.p99),
            io_alone_p999_us: pct(&alone.latency_us, |p| p.p999),
            p999_vs_alone: pct_ratio(|p| p.p999),
            transfer_vs_alone: io
                .transfer_s
                .zip(alone.transfer_s)
                .map(|(a, b)| ratio(a, b)),
            cpu_kept: ratio(cpu, cpu_alone_tps),
            ..Baseline::default()
        }
        // `none` excludes nobody: no GIL, no frontier to hold it to.
        .with_frontier(io_hold_share(io_alone).filter(|_| run.lock != "none"))
    }

    /// Sets `h`, the frontier at this run's I/O kept, and the efficiency against it (all
    /// absent without `h`, or when the frontier is not above 0).
    pub fn with_frontier(mut self, h: Option<f64>) -> Self {
        self.io_hold_share = h;
        self.frontier = h.map(|h| 1.0 - h * self.requests_vs_alone);
        self.efficiency = self
            .frontier
            .filter(|f| *f > 0.0)
            .map(|f| self.cpu_kept / f);
        self
    }
}

/// The share of `io_alone`'s measured window in which its I/O threads held the GIL: absent
/// for bulk transfers, and when it recorded no holds (no figure, not 0).
pub fn io_hold_share(io_alone: &RunResult) -> Option<f64> {
    let io = io_alone.io.as_ref()?;
    if io.mode == "bulk" || io_alone.measured_s <= 0.0 {
        return None;
    }
    let holds = io_alone.threads.iter().filter(|t| t.role == "io");
    let (held_us, count) = holds.fold((0.0, 0), |(s, n), t| {
        (
            s + t.hold_us.mean * t.hold_us.count as f64,
            n + t.hold_us.count,
        )
    });
    (count > 0).then(|| (held_us / 1e6 / io_alone.measured_s).min(1.0))
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CpuSummary {
    pub threads: usize,
    pub ticks: u64,
    pub ticks_per_sec: f64,
    pub bytes: u64,
    pub bytes_per_sec: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IoSummary {
    pub requests: u64,
    pub requests_per_sec: f64,
    pub bytes: u64,
    pub transfer_s: Option<f64>,
    /// bulk: the transfer's size in bytes (`bytes` is what arrived), ...
    #[serde(default)]
    pub transfer_bytes: Option<u64>,
    /// ... whether all of it arrived before the run ended, ...
    #[serde(default)]
    pub transfer_complete: Option<bool>,
    /// ... and the bytes received per second from the first byte to the end of the receive
    /// (the last byte, or the end of the run when the transfer did not complete).
    #[serde(default)]
    pub bytes_per_sec: Option<f64>,
    /// Client side: round trip (closed loop) or from the intended send time (open loop).
    #[serde(default, with = "crate::metrics::absent_if_empty")]
    pub latency_us: Percentiles,
    /// The latency distribution as [percentile, microseconds] points, for plots.
    #[serde(default)]
    pub latency_dist: Vec<[f64; 2]>,
    /// "closed", "open" (load generator), "bulk", or "serve" (no load generator here).
    pub mode: String,
    /// Open loop: the target rate.
    pub rate: f64,
    /// Requests that failed: no reply within the timeout, lost with their connection, or a
    /// wrong reply (the load generator's notes say which).
    pub failed: u64,
    /// Open loop: sends that left more than 1 ms after their intended time.
    pub late_sends: u64,
    /// Open loop: actual minus intended send time.
    #[serde(default, with = "crate::metrics::absent_if_empty")]
    pub lateness_us: Percentiles,
    /// Connection errors seen by the load generator, and the first of them.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Where the load generator ran ("core 1", "unpinned, shares cores with GIL threads").
    pub loadgen: String,
    /// Server side: GIL wait right after each blocking socket call.
    #[serde(default, with = "crate::metrics::absent_if_empty")]
    pub reacquire_us: Percentiles,
    /// Server side, summed over server threads.
    pub server: ServerStats,
}

/// The GIL side of a run. Its counters and shares are recorded only with `record = true`:
/// absent (`null`) otherwise, and where there is no GIL (`load`, the Python twin); a
/// histogram that holds nothing is `null` too.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GilSummary {
    #[serde(default)]
    pub acquisitions: Option<u64>,
    #[serde(default)]
    pub switches: Option<u64>,
    #[serde(default)]
    pub forced_drops: Option<u64>,
    #[serde(default)]
    pub voluntary_drops: Option<u64>,
    /// Holds during which another thread took the GIL too (must be 0 but for `none`).
    #[serde(default)]
    pub overlaps: Option<u64>,
    /// Share of the measured window (0-1) in which the GIL was held by nobody (free, or
    /// handed to a thread not yet running) while at least one thread waited for it: what a
    /// design's hand-off costs. 0 for `none`.
    #[serde(default)]
    pub idle_while_wanted: Option<f64>,
    /// The same, in seconds.
    #[serde(default)]
    pub idle_while_wanted_s: Option<f64>,
    #[serde(default, with = "crate::metrics::absent_if_empty")]
    pub wait_us: Percentiles,
    #[serde(default, with = "crate::metrics::absent_if_empty")]
    pub hold_us: Percentiles,
    /// GIL wait right after a blocking or native call.
    #[serde(default, with = "crate::metrics::absent_if_empty")]
    pub reacquire_us: Percentiles,
    /// Time spent inside releases before the releaser may go on (`timed`'s forced-switch
    /// wait); neither wait nor hold.
    #[serde(default, with = "crate::metrics::absent_if_empty")]
    pub switch_wait_us: Percentiles,
    /// The OS's context switches of the interpreter threads (absent without them).
    #[serde(default)]
    pub ctx_switches: Option<CtxSwitches>,
    /// Design-specific counters (e.g. mlfq boosts).
    pub design: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ThreadResult {
    pub name: String,
    pub role: String,
    pub workload: String,
    /// The core the thread was on at the end of the run.
    pub core: Option<usize>,
    /// Every core it was seen on (sampled at each acquisition and heartbeat).
    #[serde(default)]
    pub cores: Vec<usize>,
    /// Samples that found it on another core than the sample before; absent when it was
    /// never sampled (an unrecorded run samples no cores).
    #[serde(default)]
    pub migrations: Option<u64>,
    /// The core it was pinned to, if it was.
    pub pinned: Option<usize>,
    #[serde(flatten)]
    pub counters: ThreadCounters,
    pub ticks_per_sec: f64,
    #[serde(default, with = "crate::metrics::absent_if_empty")]
    pub wait_us: Percentiles,
    #[serde(default, with = "crate::metrics::absent_if_empty")]
    pub hold_us: Percentiles,
    #[serde(default, with = "crate::metrics::absent_if_empty")]
    pub reacquire_us: Percentiles,
    #[serde(default, with = "crate::metrics::absent_if_empty")]
    pub switch_wait_us: Percentiles,
    pub ctx_switches: CtxSwitches,
    /// Design-specific per-thread counters (e.g. mlfq level and demotions).
    pub design: BTreeMap<String, u64>,
    /// Digest of the data hashed, proof the work was done.
    pub digest: String,
    /// Server threads: what they served.
    pub server: Option<ServerStats>,
}

/// One thread's event counters in the result: the GIL's are absent (null) where they were
/// not measured, as the run's totals are ([`GilSummary`]): without recording, and, for the
/// holder switches and the exclusion check, where they were not derived from the event logs
/// (a design that is no lock, or logs that outgrew their budget).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadCounters {
    pub acquisitions: Option<u64>,
    pub switches: Option<u64>,
    pub forced_drops: Option<u64>,
    pub voluntary_drops: Option<u64>,
    pub ticks: u64,
    pub bytes: u64,
    #[serde(default)]
    pub overlaps: Option<u64>,
}

impl ThreadCounters {
    /// `c`'s figures: the GIL's only if `recorded`, switches and overlaps only if also
    /// `derived`.
    pub fn of(c: &Counters, recorded: bool, derived: bool) -> Self {
        let rec = |x: u64| recorded.then_some(x);
        let der = |x: u64| (recorded && derived).then_some(x);
        ThreadCounters {
            acquisitions: rec(c.acquisitions),
            switches: der(c.switches),
            forced_drops: rec(c.forced_drops),
            voluntary_drops: rec(c.voluntary_drops),
            ticks: c.ticks,
            bytes: c.bytes,
            overlaps: der(c.overlaps),
        }
    }
}

#[cfg(test)]
mod frontier_tests {
    use super::*;
    use crate::report::export::sample_run;

    /// An I/O-alone run whose echo thread held the GIL `held_us` µs in all over 1 s in
    /// `holds` holds, at 1000 requests/s.
    fn alone(held_us: f64, holds: u64) -> RunResult {
        let mut alone = sample_run("alone");
        alone.threads[0].role = "io".into();
        alone.threads[0].hold_us.mean = held_us / 1000.0;
        alone.threads[0].hold_us.count = holds;
        alone.threads[1].hold_us.mean = 1e6; // a CPU thread's holds are not the I/O's
        alone.io.as_mut().unwrap().requests_per_sec = 1000.0;
        alone
    }

    /// A run at `x` of `alone`'s requests/s and CPU `kept` of alone, beside `alone`.
    fn baseline(alone: &RunResult, x: f64, kept: f64) -> Baseline {
        let mut run = sample_run("run");
        run.io.as_mut().unwrap().requests_per_sec = 1000.0 * x;
        let cpu_alone = sample_run("cpu");
        run.cpu.as_mut().unwrap().ticks_per_sec = kept * 1e6;
        Baseline::of(&run, alone, &cpu_alone)
    }

    /// Latency ratios exist only where both sides have latency: a run whose client measured
    /// none (a bulk transfer, no request answered) has none, null in JSON (they were 0.0).
    #[test]
    fn latency_ratios_are_absent_without_latency_on_either_side() {
        let alone_run = alone(400_000.0, 1000);
        let with = baseline(&alone_run, 0.5, 0.8);
        let (p99, p999) = (with.p99_vs_alone.unwrap(), with.p999_vs_alone.unwrap());
        assert!(p99 > 0.0 && p999 > 0.0, "{with:?}");
        let mut run = sample_run("run");
        run.io.as_mut().unwrap().latency_us = Percentiles::default();
        let none = Baseline::of(&run, &alone_run, &sample_run("cpu"));
        assert_eq!((none.p99_vs_alone, none.p999_vs_alone), (None, None));
        assert!(none.io_alone_p99_us.is_some());
        let mut quiet_alone = alone_run.clone();
        quiet_alone.io.as_mut().unwrap().latency_us = Percentiles::default();
        let b = Baseline::of(&sample_run("run"), &quiet_alone, &sample_run("cpu"));
        assert_eq!((b.io_alone_p99_us, b.io_alone_p999_us), (None, None));
        assert_eq!((b.p99_vs_alone, b.p999_vs_alone), (None, None));
        let json = serde_json::to_value(&b).unwrap();
        for k in [
            "io_alone_p99_us",
            "p99_vs_alone",
            "io_alone_p999_us",
            "p999_vs_alone",
        ] {
            assert!(json[k].is_null(), "{k}: {json}");
        }
        // Older results wrote 0.0 there; they still read.
        let old: Baseline = serde_json::from_str(
            r#"{"io_alone_requests_per_sec": 1.0, "io_alone_p99_us": 0.0, "io_alone_transfer_s": null,
                "cpu_alone_ticks_per_sec": 1.0, "requests_vs_alone": 1.0, "p99_vs_alone": 0.0,
                "transfer_vs_alone": null, "cpu_kept": 1.0}"#,
        )
        .unwrap();
        assert_eq!(old.p99_vs_alone, Some(0.0));
    }

    #[test]
    fn a_run_on_the_frontier_is_efficient_and_one_below_is_not() {
        let on = baseline(&alone(400_000.0, 1000), 0.5, 0.8);
        assert!((on.io_hold_share.unwrap() - 0.4).abs() < 1e-9, "{on:?}");
        assert!((on.frontier.unwrap() - 0.8).abs() < 1e-9);
        assert!((on.efficiency.unwrap() - 1.0).abs() < 1e-9);
        let below = baseline(&alone(400_000.0, 1000), 0.5, 0.6);
        assert!((below.efficiency.unwrap() - 0.75).abs() < 1e-9, "{below:?}");
        assert!(below.efficiency.unwrap() < 1.0);
    }

    #[test]
    fn no_frontier_without_recorded_holds_for_bulk_or_without_a_gil() {
        let unrecorded = baseline(&alone(0.0, 0), 0.5, 0.6);
        assert_eq!(unrecorded.io_hold_share, None, "{unrecorded:?}");
        assert_eq!((unrecorded.frontier, unrecorded.efficiency), (None, None));
        let mut run = sample_run("none");
        run.lock = "none".into();
        let no_gil = Baseline::of(&run, &alone(400_000.0, 1000), &sample_run("cpu"));
        assert_eq!((no_gil.io_hold_share, no_gil.efficiency), (None, None));
        let mut bulk = alone(400_000.0, 1000);
        bulk.io.as_mut().unwrap().mode = "bulk".into();
        assert_eq!(io_hold_share(&bulk), None);
    }
}
