//! Running a calibration: every condition, twin and model in turn, repeated, with the pairs
//! that other processes disturbed run again.

use std::time::Duration;

use super::coldstart::{cold_start, cold_start_note, model_cold_start};
use super::conditions::Condition;
use super::fit::{bulk_slowdowns, suggest_call_work, summarize, Calibration, CondResult};
use super::samples::{cores, model_sample, twin_sample, Sample, Usage};
use super::twin::{run_twin, twin_result, Python};
use crate::pin;
use crate::result::RunResult;
use crate::runner::{self, Instrument, Mode, RunError};
use crate::scenario::{IoWork, Scenario};
use crate::signals;

/// Longest CPU-alone run (per side, per condition and repetition).
const ALONE_MAX: Duration = Duration::from_secs(1);

/// The 1-minute load average, if the OS says.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// This machine, as gilbench sees it.
pub fn machine() -> serde_json::Value {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    serde_json::json!({
        "cpu_model": model,
        "usable_cores": pin::available_cores().unwrap_or_default(),
        "kernel": kernel,
    })
}

/// What a calibration reports as it goes.
pub enum Step<'a> {
    /// Run `index` of `total` starts: the side ("cpython", "gilbench", "... alone"), the
    /// condition, the repetition, and how long it should take.
    Start {
        index: usize,
        total: usize,
        side: &'a str,
        label: &'a str,
        repeat: u32,
        expected: Duration,
    },
    Done,
}

/// Everything a calibration ran, for the table and the usual outputs.
pub struct Outcome {
    pub calibration: Calibration,
    /// Every run with a server, both sides, as results (CPython's with lock `cpython`).
    pub runs: Vec<RunResult>,
}

fn alone_of(sc: &Scenario) -> Scenario {
    let mut a = sc.clone();
    a.io = IoWork::None;
    a.duration = sc.duration.min(ALONE_MAX);
    a
}

/// How a calibration runs.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Runs per condition and side.
    pub repeat: u32,
    /// A run pair during which other processes used more than this share of the machine
    /// (0-1) is run again, ...
    pub max_other_load: Option<f64>,
    /// ... at most this many times; then it is kept, and counted.
    pub retries: u32,
}

/// Runs every condition `repeat` times, twin and model in turn. Stops early (returning what it
/// has, marked partial) when a signal arrives.
pub fn execute(
    py: &Python,
    scenario: &str,
    conds: &[Condition],
    plan: &Plan,
    progress: &mut dyn FnMut(Step<'_>),
) -> Result<Outcome, RunError> {
    let repeat = plan.repeat;
    let mut cal = Calibration {
        scenario: scenario.to_owned(),
        python: Some(py.clone()),
        machine: machine(),
        repeat,
        load_average: [load_average(), f64::NAN],
        max_other_load: plan.max_other_load,
        ..Default::default()
    };
    let cold = cold_start(py);
    cal.cold_start_cpython = cold.as_ref().ok().cloned();
    let model_cold = conds
        .first()
        .and_then(|c| model_cold_start(c.scenario.tick_bytes, c.scenario.call_work));
    cal.cold_start_gilbench = model_cold.clone();
    let mut runs = Vec::new();
    let per_cond: usize = 2 * repeat as usize;
    let total: usize = conds
        .iter()
        .map(|c| per_cond * if c.scenario.cpu_threads > 0 { 2 } else { 1 })
        .sum();
    let mut index = 0;
    let mut step = |side: &str, c: &Condition, r: u32, sc: &Scenario| {
        index += 1;
        progress(Step::Start {
            index,
            total,
            side,
            label: &c.label,
            repeat: r,
            expected: sc.warmup + sc.duration,
        });
    };
    'conds: for c in conds {
        let sc = &c.scenario;
        let interval = sc.gil.interval;
        let mut res = CondResult {
            label: c.label.clone(),
            params: sc.params_json(),
            ..Default::default()
        };
        for r in 0..repeat {
            if signals::caught().is_some() {
                cal.partial = true;
                break 'conds;
            }
            // The pair again while other processes used more of the machine than allowed.
            let mut attempt = 0;
            let (twin, twin_other, mut model, model_other) = loop {
                step("cpython", c, r, sc);
                let before = Usage::now();
                let twin = run_twin(py, sc, true);
                let twin_other = before.and_then(|b| b.others_since(cores()));
                let twin = match twin {
                    Ok(t) => t,
                    Err(_) if signals::caught().is_some() => {
                        cal.partial = true;
                        break 'conds;
                    }
                    Err(e) => return Err(e),
                };
                if cal.twin_python.is_empty() {
                    cal.twin_python =
                        format!("{} {}", twin.report.implementation, twin.report.python);
                    cal.machine["twin"] = twin.report.machine.clone();
                }
                step("gilbench", c, r, sc);
                let before = Usage::now();
                let model = runner::run_mode(sc, Mode::Run, &Instrument::default(), &|_| {})?;
                let model_other = before.and_then(|b| b.others_since(cores()));
                if model.partial {
                    cal.partial = true;
                }
                let noisy = plan.max_other_load.is_some_and(|max| {
                    twin_other.is_some_and(|o| o > max) || model_other.is_some_and(|o| o > max)
                });
                if !noisy || cal.partial {
                    break (twin, twin_other, model, model_other);
                }
                if attempt == plan.retries {
                    cal.noisy_kept += 1;
                    break (twin, twin_other, model, model_other);
                }
                attempt += 1;
                cal.retried += 1;
            };
            let (twin_alone, model_alone) = if sc.cpu_threads > 0 && !cal.partial {
                let a = alone_of(sc);
                step("cpython alone", c, r, &a);
                let t = match run_twin(py, &a, false) {
                    Ok(t) => Some(t),
                    Err(_) if signals::caught().is_some() => {
                        cal.partial = true;
                        None
                    }
                    Err(e) => return Err(e),
                };
                let m = if cal.partial {
                    None
                } else {
                    step("gilbench alone", c, r, &a);
                    let m = runner::run_mode(&a, Mode::Run, &Instrument::default(), &|_| {})?;
                    cal.partial |= m.partial;
                    Some(m)
                };
                (t, m)
            } else {
                (None, None)
            };
            res.cpython_runs.push(Sample {
                other_load: twin_other,
                ..twin_sample(&twin, twin_alone.as_ref(), interval)
            });
            res.gilbench_runs.push(Sample {
                other_load: model_other,
                ..model_sample(&model, model_alone.as_ref(), interval)
            });
            model.label = format!("gilbench {}", c.label);
            model.repeat = r;
            runs.push(twin_result(sc, &twin, &c.label, r));
            runs.push(model);
            if cal.partial {
                break;
            }
        }
        if res.cpython_runs.is_empty() {
            break;
        }
        summarize(&mut res, plan.max_other_load);
        cal.conditions.push(res);
        if cal.partial {
            break;
        }
    }
    progress(Step::Done);
    bulk_slowdowns(&mut cal);
    cal.load_average[1] = load_average();
    if let Some(s) = suggest_call_work(conds, &cal) {
        cal.notes.push(s);
    }
    cal.notes.push(cold_start_note(&cold, model_cold.as_ref()));
    if conds.iter().any(|c| !c.scenario.record) {
        cal.notes.push(
            "gilbench ran without its GIL-side recording (record = false), as the twin has none: \
             that instrumentation changes the races compared here; --set record=true keeps it"
                .to_owned(),
        );
    }
    Ok(Outcome {
        calibration: cal,
        runs,
    })
}
