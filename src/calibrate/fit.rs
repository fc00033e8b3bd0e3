//! The fit: how the model compares with CPython in each condition, against the fidelity
//! goals, and the whole calibration's record.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::coldstart::ColdStart;
use super::conditions::Condition;
use super::samples::{median, median_sample, Sample};
use super::twin::Python;
use crate::scenario::ServerKind;
use crate::units::format_duration;

/// Fidelity goals: req/s and p50 within this factor, ...
pub const GOAL_RATIO: f64 = 0.25;
/// ... and every intervals-waited bucket within this many percentage points.
pub const GOAL_POINTS: f64 = 10.0;

/// How the model compares with CPython in one condition.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Fit {
    /// gilbench / CPython.
    pub requests_per_sec: f64,
    pub p50: f64,
    pub p99: f64,
    pub cpu_kept: Option<f64>,
    pub ctx_per_sec: f64,
    /// gilbench minus CPython, percentage points per bucket.
    pub waited_points: [f64; 4],
    /// bulk: transfer time (when both completed), MB/s and slowdown, gilbench / CPython.
    #[serde(default)]
    pub transfer: Option<f64>,
    #[serde(default)]
    pub mb_per_sec: Option<f64>,
    #[serde(default)]
    pub slowdown: Option<f64>,
    /// Within every fidelity goal.
    pub ok: bool,
    /// The goals missed, in words.
    pub missed: Vec<String>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else if a > 0.0 {
        f64::INFINITY
    } else {
        1.0
    }
}

/// gilbench against CPython, with the fidelity goals: for echo req/s and p50 within 25% and
/// every intervals-waited bucket within 10 points; for bulk MB/s within 25%, and the
/// slowdown against no CPU threads too where both sides have one.
pub fn fit(model: &Sample, cpython: &Sample) -> Fit {
    let off = |r: f64| !(1.0 - GOAL_RATIO..=1.0 + GOAL_RATIO).contains(&r);
    if let (Some(m), Some(c)) = (&model.bulk, &cpython.bulk) {
        let mb = ratio(m.mb_per_sec, c.mb_per_sec);
        let slowdown = m.slowdown.zip(c.slowdown).map(|(a, b)| ratio(a, b));
        let mut missed = Vec::new();
        if off(mb) {
            missed.push("MB/s".to_owned());
        }
        if slowdown.is_some_and(off) {
            missed.push("slowdown".to_owned());
        }
        return Fit {
            cpu_kept: model
                .cpu_kept
                .zip(cpython.cpu_kept)
                .map(|(a, b)| ratio(a, b)),
            ctx_per_sec: ratio(model.ctx_per_sec, cpython.ctx_per_sec),
            transfer: m.transfer_s.zip(c.transfer_s).map(|(a, b)| ratio(a, b)),
            mb_per_sec: Some(mb),
            slowdown,
            ok: missed.is_empty(),
            missed,
            ..Default::default()
        };
    }
    let rps = ratio(model.requests_per_sec, cpython.requests_per_sec);
    let p50 = ratio(model.p50_us, cpython.p50_us);
    let points = [0, 1, 2, 3].map(|k| (model.waited[k] - cpython.waited[k]) * 100.0);
    let mut missed = Vec::new();
    if off(rps) {
        missed.push("req/s".to_owned());
    }
    if off(p50) {
        missed.push("p50".to_owned());
    }
    if points.iter().any(|p| p.abs() > GOAL_POINTS) {
        missed.push("waited".to_owned());
    }
    Fit {
        requests_per_sec: rps,
        p50,
        p99: ratio(model.p99_us, cpython.p99_us),
        cpu_kept: match (model.cpu_kept, cpython.cpu_kept) {
            (Some(a), Some(b)) => Some(ratio(a, b)),
            _ => None,
        },
        ctx_per_sec: ratio(model.ctx_per_sec, cpython.ctx_per_sec),
        waited_points: points,
        ok: missed.is_empty(),
        missed,
        ..Default::default()
    }
}

/// One condition's outcome.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CondResult {
    pub label: String,
    pub params: serde_json::Value,
    pub cpython: Sample,
    pub gilbench: Sample,
    /// Not read back: a ratio against zero is infinite, which JSON writes as `null`;
    /// [`resummarize`] fits a condition read from a file again.
    #[serde(skip_deserializing)]
    pub fit: Fit,
    /// Every repetition, in run order.
    pub cpython_runs: Vec<Sample>,
    pub gilbench_runs: Vec<Sample>,
    /// How many pairs ran while other processes stayed within `max_other_load` (all of
    /// them when it is not checked). The medians are over these pairs when there are any.
    #[serde(default)]
    pub quiet_pairs: usize,
}

/// Recomputes every condition's medians and fit from its runs (e.g. after reading a result
/// file written by an older gilbench).
pub fn resummarize(cal: &mut Calibration) {
    let max = cal.max_other_load;
    for c in &mut cal.conditions {
        summarize(c, max);
    }
    bulk_slowdowns(cal);
}

/// Sets each bulk condition's slowdown on both sides, against the condition that differs
/// only in having no CPU threads (when the calibration has it), and fits it again.
pub(super) fn bulk_slowdowns(cal: &mut Calibration) {
    let alone_key = |c: &CondResult| {
        let mut p = c.params.clone();
        p.as_object_mut().map(|o| o.remove("cpu_threads"));
        p
    };
    let alone: Vec<(serde_json::Value, f64, f64)> = cal
        .conditions
        .iter()
        .filter(|c| c.params["cpu_threads"] == 0)
        .filter_map(|c| {
            let (py, model) = (c.cpython.bulk.as_ref()?, c.gilbench.bulk.as_ref()?);
            Some((alone_key(c), py.mb_per_sec, model.mb_per_sec))
        })
        .collect();
    for c in &mut cal.conditions {
        if c.params["cpu_threads"] == 0 {
            continue;
        }
        let key = alone_key(c);
        let Some((_, py_alone, model_alone)) = alone.iter().find(|(k, _, _)| *k == key) else {
            continue;
        };
        for (b, a) in [
            (c.cpython.bulk.as_mut(), py_alone),
            (c.gilbench.bulk.as_mut(), model_alone),
        ] {
            if let Some(b) = b {
                b.slowdown = (b.mb_per_sec > 0.0).then(|| a / b.mb_per_sec);
            }
        }
        c.fit = fit(&c.gilbench, &c.cpython);
    }
}

/// Whether other processes stayed within `max` during both runs of a pair.
fn quiet(max: Option<f64>, a: &Sample, b: &Sample) -> bool {
    max.is_none_or(|m| [a, b].iter().all(|s| s.other_load.is_none_or(|o| o <= m)))
}

/// The medians of a condition: over its quiet pairs when it has any, else over all.
pub(super) fn summarize(res: &mut CondResult, max: Option<f64>) {
    let pairs: Vec<(&Sample, &Sample)> = res.cpython_runs.iter().zip(&res.gilbench_runs).collect();
    let calm: Vec<&(&Sample, &Sample)> = pairs.iter().filter(|(a, b)| quiet(max, a, b)).collect();
    res.quiet_pairs = calm.len();
    let (py, model): (Vec<Sample>, Vec<Sample>) = if calm.is_empty() {
        (res.cpython_runs.clone(), res.gilbench_runs.clone())
    } else {
        calm.iter()
            .map(|(a, b)| ((*a).clone(), (*b).clone()))
            .unzip()
    };
    res.cpython = median_sample(&py);
    res.gilbench = median_sample(&model);
    res.fit = fit(&res.gilbench, &res.cpython);
}

/// A whole calibration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Calibration {
    pub scenario: String,
    pub python: Option<Python>,
    /// What the twin reported about the interpreter and the machine (first run).
    pub twin_python: String,
    pub machine: serde_json::Value,
    pub repeat: u32,
    /// The 1-minute load average before and after (other work on the machine skews both
    /// sides).
    pub load_average: [f64; 2],
    pub conditions: Vec<CondResult>,
    /// Set when a signal cut the calibration short.
    pub partial: bool,
    /// The most other processes may use of the machine during a run (0-1), if checked.
    #[serde(default)]
    pub max_other_load: Option<f64>,
    /// Run pairs repeated because other processes used more than that.
    #[serde(default)]
    pub retried: u32,
    /// Run pairs kept although they did, after the last retry.
    #[serde(default)]
    pub noisy_kept: u32,
    /// How much slower the interpreter runs right after a wait (None: not measured) ...
    #[serde(default)]
    pub cold_start_cpython: Option<ColdStart>,
    /// ... and the model's `call_work` (first condition's; None without one).
    #[serde(default)]
    pub cold_start_gilbench: Option<ColdStart>,
    pub notes: Vec<String>,
}

/// From the conditions without CPU threads, where a request's round trip is the client's and
/// the kernel's time plus the server's GIL-held work on its way: the `call_work` that would
/// give the model CPython's median round trip, if it differs from the one used by a
/// microsecond or more. On a request's way are one `call_work` in the threaded structure
/// (after the recv) and two in the poll loop (after the poll and after the recv).
pub fn suggest_call_work(conds: &[Condition], cal: &Calibration) -> Option<String> {
    let mut per_call = Vec::new();
    let mut used: Option<Duration> = None;
    for (c, r) in conds.iter().zip(&cal.conditions) {
        let sc = &c.scenario;
        if sc.cpu_threads != 0 || sc.rate > 0.0 || sc.connections != 1 {
            continue;
        }
        let (py, model) = (r.cpython.p50_us, r.gilbench.p50_us);
        if py <= 0.0 || model <= 0.0 {
            continue;
        }
        if used.is_some_and(|u| u != sc.call_work) {
            // The conditions vary call_work themselves: the table is the answer.
            return None;
        }
        used = Some(sc.call_work);
        let on_the_way = match sc.server {
            ServerKind::Poll => 2.0,
            ServerKind::Threaded => 1.0,
        };
        per_call.push(sc.call_work.as_secs_f64() * 1e6 + (py - model) / on_the_way);
    }
    let used = used?;
    let best = Duration::from_micros(median(per_call).max(0.0).round() as u64);
    (best.abs_diff(used) >= Duration::from_micros(1)).then(|| {
        format!(
            "the rows without CPU threads fit CPython's median round trip best with call_work = {} (this run used {}): try --set call_work={}",
            format_duration(best),
            format_duration(used),
            format_duration(best)
        )
    })
}
