//! How much slower each side's work runs right after a wait: the interpreter's probe
//! (`workloads/python/coldstart.py`) and the model's `call_work` timed the same way.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::samples::median;
use super::twin::{output_within, Python, PROBE_LIMIT};
use crate::scenario::shown;
use crate::signals;
use crate::workload::{calibrate_tick_ns, TickHasher};

/// The cold-start probe's source (`workloads/python/coldstart.py`), run with `python -c`.
pub const COLD_START: &str = include_str!("../../workloads/python/coldstart.py");

/// How long each side sleeps before its cold step: long enough that this VM's cores have lost
/// the sleeper's cache lines (at 5 ms the slowdown still varied 2x from run to run here).
const COLD_SLEEP_MS: u32 = 20;
/// Timed steps per side and sleep.
const COLD_ROUNDS: u32 = 50;

/// How much slower a side's work runs right after a wait on this machine: medians at once and
/// right after sleeping `slept_ms`. For CPython a small pure-Python step
/// (`workloads/python/coldstart.py`); for gilbench its `call_work` of ticks (`call_work_us`).
/// Where cores lose a sleeper's cache lines, the interpreter's work after every wait grows by
/// tens of microseconds and the model's by a few, which can tip the races compared here
/// (docs/calibration.md).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ColdStart {
    pub at_once_us: f64,
    pub slept_ms: u32,
    pub after_sleep_us: f64,
    /// The model's side: the `call_work` timed (first condition's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_work_us: Option<f64>,
}

impl ColdStart {
    /// Microseconds the sleep added.
    pub fn added_us(&self) -> f64 {
        self.after_sleep_us - self.at_once_us
    }
}

/// Runs the cold-start probe in `py` (about a second).
pub fn cold_start(py: &Python) -> Result<ColdStart, String> {
    let out = output_within(
        Command::new(&py.path)
            .args(["-c", COLD_START, "--sleeps-ms"])
            .arg(format!("0,{COLD_SLEEP_MS}"))
            .arg("--rounds")
            .arg(COLD_ROUNDS.to_string())
            .stdin(Stdio::null()),
        PROBE_LIMIT,
    )?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_owned());
    }
    parse_cold_start(&String::from_utf8_lossy(&out.stdout))
}

/// The probe's two lines (`after   0.0 ms asleep: step p50    0.84 us, ...`, then the same
/// after the sleep) as a [`ColdStart`]; anything else (other sleeps, a time that is not a
/// positive number) is an error.
pub fn parse_cold_start(text: &str) -> Result<ColdStart, String> {
    let parse = |line: &str| -> Option<(f64, f64)> {
        let rest = line.trim().strip_prefix("after")?;
        let (ms, rest) = rest.split_once("ms asleep: step p50")?;
        let us = rest.split_whitespace().next()?;
        Some((ms.trim().parse().ok()?, us.parse().ok()?))
    };
    let got: Vec<(f64, f64)> = text.lines().filter_map(parse).collect();
    let time = |us: f64| us.is_finite() && us > 0.0;
    match got.as_slice() {
        [(once_ms, once), (slept, after)]
            if *once_ms == 0.0
                && *slept == f64::from(COLD_SLEEP_MS)
                && time(*once)
                && time(*after) =>
        {
            Ok(ColdStart {
                at_once_us: *once,
                slept_ms: COLD_SLEEP_MS,
                after_sleep_us: *after,
                call_work_us: None,
            })
        }
        _ => Err(format!("unexpected output {:?}", shown(text.trim()))),
    }
}

/// The same measure for the model's GIL-held work between calls, in this process: `call_work`
/// worth of ticks at once and right after sleeping as long as the probe does. None when there
/// is no `call_work`, or when a signal came (it sleeps a second in all).
pub fn model_cold_start(tick_bytes: usize, call_work: Duration) -> Option<ColdStart> {
    if call_work.is_zero() {
        return None;
    }
    let ticks =
        ((call_work.as_nanos() as f64 / calibrate_tick_ns(tick_bytes)).ceil() as u64).max(1);
    let mut h = TickHasher::new(tick_bytes, 11);
    let mut median_of = |sleep: Duration| {
        let mut v = Vec::with_capacity(COLD_ROUNDS as usize);
        for _ in 0..COLD_ROUNDS {
            if signals::caught().is_some() {
                return None;
            }
            if !sleep.is_zero() {
                std::thread::sleep(sleep);
            }
            let t = Instant::now();
            for _ in 0..ticks {
                h.tick();
            }
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Some(median(v))
    };
    let at_once_us = median_of(Duration::ZERO)?;
    let after_sleep_us = median_of(Duration::from_millis(u64::from(COLD_SLEEP_MS)))?;
    std::hint::black_box(h.finish());
    Some(ColdStart {
        at_once_us,
        slept_ms: COLD_SLEEP_MS,
        after_sleep_us,
        call_work_us: Some(call_work.as_secs_f64() * 1e6),
    })
}

/// The note a calibration carries about how much a wait slows each side's work down. It
/// draws the conclusion only when the interpreter's step gains far more than the model's
/// `call_work`.
pub fn cold_start_note(cpython: &Result<ColdStart, String>, model: Option<&ColdStart>) -> String {
    let model_part = match model {
        Some(m) => format!(
            "gilbench's call_work ({} us of ticks) {:+.1} us ({:.1} against {:.1} us)",
            (m.call_work_us.unwrap_or(0.0) * 100.0).round() / 100.0,
            m.added_us(),
            m.after_sleep_us,
            m.at_once_us
        ),
        None => "gilbench does no call_work".to_owned(),
    };
    let c = match cpython {
        Ok(c) => c,
        Err(e) => {
            return format!(
                "could not time the interpreter's cold start ({e}); right after \
                 {COLD_SLEEP_MS} ms asleep {model_part}"
            )
        }
    };
    let model_added = model.map_or(0.0, ColdStart::added_us).max(1.0);
    let verdict = if c.added_us() >= 5.0 && c.added_us() > 3.0 * model_added {
        "the interpreter slows down after a wait far more than the model's call_work \
         here, which can tip the hand-offs that turn on microseconds (two CPU threads, long \
         intervals; docs/calibration.md)"
    } else {
        "comparable here: this cause of misfit does not apply"
    };
    format!(
        "right after {} ms asleep, a small pure-Python step in this interpreter took {:+.1} us \
         ({:.1} against {:.2} us at once), {model_part}: {verdict}",
        c.slept_ms,
        c.added_us(),
        c.after_sleep_us,
        c.at_once_us
    )
}
