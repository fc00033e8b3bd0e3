//! Running a calibration: every condition, twin and model in turn, repeated, with the pairs
//! that other processes disturbed run again.

use std::time::Duration;

use super::coldstart::{cold_start, cold_start_note, model_cold_start, ColdStart};
use super::conditions::Condition;
use super::fit::{bulk_slowdowns, suggest_call_work, summarize, Calibration, CondResult};
use super::samples::{cores, model_sample, twin_sample, Sample, Usage};
use super::twin::{run_twin, twin_result, Python, TwinRun};
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
    let mut cal = Calibration {
        scenario: scenario.to_owned(),
        python: Some(py.clone()),
        machine: machine(),
        repeat: plan.repeat,
        load_average: [load_average(), f64::NAN],
        max_other_load: plan.max_other_load,
        ..Default::default()
    };
    let cold = cold_start(py);
    cal.cold_start_cpython = cold.as_ref().ok().cloned();
    cal.cold_start_gilbench = conds
        .first()
        .and_then(|c| model_cold_start(c.scenario.tick_bytes, c.scenario.call_work));
    let mut session = Session {
        py,
        plan,
        cal,
        runs: Vec::new(),
        index: 0,
        total: runs_in(conds, plan.repeat),
        progress,
    };
    for c in conds {
        session.condition(c)?;
        if session.cal.partial {
            break;
        }
    }
    (session.progress)(Step::Done);
    let Session { mut cal, runs, .. } = session;
    finish(&mut cal, conds, &cold);
    Ok(Outcome {
        calibration: cal,
        runs,
    })
}

/// How many runs the calibration of `conds` makes: a pair per repetition, and a pair alone
/// with CPU threads.
fn runs_in(conds: &[Condition], repeat: u32) -> usize {
    conds
        .iter()
        .map(|c| 2 * repeat as usize * if c.scenario.cpu_threads > 0 { 2 } else { 1 })
        .sum()
}

/// The figures drawn from the whole calibration once it ended: the bulk slowdowns, the load
/// average after, and the notes.
fn finish(cal: &mut Calibration, conds: &[Condition], cold: &Result<ColdStart, String>) {
    bulk_slowdowns(cal);
    cal.load_average[1] = load_average();
    if let Some(s) = suggest_call_work(conds, cal) {
        cal.notes.push(s);
    }
    cal.notes
        .push(cold_start_note(cold, cal.cold_start_gilbench.as_ref()));
    if conds.iter().any(|c| !c.scenario.record) {
        cal.notes.push(
            "gilbench ran without its GIL-side recording (record = false), as the twin has none: \
             that instrumentation changes the races compared here; --set record=true keeps it"
                .to_owned(),
        );
    }
}

/// A calibration under way.
struct Session<'a> {
    py: &'a Python,
    plan: &'a Plan,
    cal: Calibration,
    runs: Vec<RunResult>,
    /// Runs started so far, of `total`.
    index: usize,
    total: usize,
    progress: &'a mut dyn FnMut(Step<'_>),
}

/// One repetition's run pair with a server: each side's result and the share of the machine
/// other processes used during it.
struct Pair {
    twin: TwinRun,
    twin_other: Option<f64>,
    model: RunResult,
    model_other: Option<f64>,
}

impl Session<'_> {
    /// Says that a run of `side` starts.
    fn step(&mut self, side: &str, c: &Condition, repeat: u32, sc: &Scenario) {
        self.index += 1;
        (self.progress)(Step::Start {
            index: self.index,
            total: self.total,
            side,
            label: &c.label,
            repeat,
            expected: sc.warmup + sc.duration,
        });
    }

    /// Every repetition of condition `c`; the condition joins the calibration with the
    /// repetitions that finished (none: it does not).
    fn condition(&mut self, c: &Condition) -> Result<(), RunError> {
        let mut res = CondResult {
            label: c.label.clone(),
            params: c.scenario.params_json(),
            ..Default::default()
        };
        for r in 0..self.plan.repeat {
            if signals::caught().is_some() {
                self.cal.partial = true;
                break;
            }
            self.repetition(c, r, &mut res)?;
            if self.cal.partial {
                break;
            }
        }
        if !res.cpython_runs.is_empty() {
            summarize(&mut res, self.plan.max_other_load);
            self.cal.conditions.push(res);
        }
        Ok(())
    }

    /// Repetition `r` of `c`: the pair, then each side's CPU threads alone; their samples go
    /// to `res`, their results to the runs.
    fn repetition(&mut self, c: &Condition, r: u32, res: &mut CondResult) -> Result<(), RunError> {
        let sc = &c.scenario;
        let Some(pair) = self.pair(c, r)? else {
            return Ok(());
        };
        let (twin_alone, model_alone) = if sc.cpu_threads > 0 && !self.cal.partial {
            self.alone(c, r)?
        } else {
            (None, None)
        };
        let interval = sc.gil.interval;
        res.cpython_runs.push(Sample {
            other_load: pair.twin_other,
            ..twin_sample(&pair.twin, twin_alone.as_ref(), interval)
        });
        res.gilbench_runs.push(Sample {
            other_load: pair.model_other,
            ..model_sample(&pair.model, model_alone.as_ref(), interval)
        });
        let mut model = pair.model;
        model.label = format!("gilbench {}", c.label);
        model.repeat = r;
        self.runs.push(twin_result(sc, &pair.twin, &c.label, r));
        self.runs.push(model);
        Ok(())
    }

    /// The pair with a server, run again while other processes used more of the machine
    /// than allowed (at most `retries` times; then kept and counted). None when a signal
    /// stopped the twin.
    fn pair(&mut self, c: &Condition, r: u32) -> Result<Option<Pair>, RunError> {
        let mut attempt = 0;
        loop {
            let Some(pair) = self.pair_once(c, r)? else {
                self.cal.partial = true;
                return Ok(None);
            };
            self.cal.partial |= pair.model.partial;
            let noisy = self.plan.max_other_load.is_some_and(|max| {
                [pair.twin_other, pair.model_other]
                    .iter()
                    .any(|o| o.is_some_and(|o| o > max))
            });
            if !noisy || self.cal.partial {
                return Ok(Some(pair));
            }
            if attempt == self.plan.retries {
                self.cal.noisy_kept += 1;
                return Ok(Some(pair));
            }
            attempt += 1;
            self.cal.retried += 1;
        }
    }

    /// The twin, then the model, each with the share of the machine others used meanwhile.
    /// None when a signal stopped the twin.
    fn pair_once(&mut self, c: &Condition, r: u32) -> Result<Option<Pair>, RunError> {
        let sc = &c.scenario;
        self.step("cpython", c, r, sc);
        let before = Usage::now();
        let twin = run_twin(self.py, sc, true);
        let twin_other = before.and_then(|b| b.others_since(cores()));
        let twin = match twin {
            Ok(t) => t,
            Err(_) if signals::caught().is_some() => return Ok(None),
            Err(e) => return Err(e),
        };
        if self.cal.twin_python.is_empty() {
            let rep = &twin.report;
            self.cal.twin_python = format!("{} {}", rep.implementation, rep.python);
            self.cal.machine["twin"] = rep.machine.clone();
        }
        self.step("gilbench", c, r, sc);
        let before = Usage::now();
        let model = runner::run_mode(sc, Mode::Run, &Instrument::default(), &|_| {})?;
        let model_other = before.and_then(|b| b.others_since(cores()));
        Ok(Some(Pair {
            twin,
            twin_other,
            model,
            model_other,
        }))
    }

    /// Each side's CPU threads alone (the model's only when the twin's finished).
    fn alone(
        &mut self,
        c: &Condition,
        r: u32,
    ) -> Result<(Option<TwinRun>, Option<RunResult>), RunError> {
        let a = alone_of(&c.scenario);
        self.step("cpython alone", c, r, &a);
        let twin = match run_twin(self.py, &a, false) {
            Ok(t) => t,
            Err(_) if signals::caught().is_some() => {
                self.cal.partial = true;
                return Ok((None, None));
            }
            Err(e) => return Err(e),
        };
        self.step("gilbench alone", c, r, &a);
        let model = runner::run_mode(&a, Mode::Run, &Instrument::default(), &|_| {})?;
        self.cal.partial |= model.partial;
        Ok((Some(twin), Some(model)))
    }
}
