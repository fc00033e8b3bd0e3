//! Experiments: one scenario run once per design (`compare`), once per value of a key
//! (`sweep`, combinable with several designs), each `repeat` times, into one list of runs.

use std::time::Duration;

use crate::gil::LockKind;
use crate::result::RunResult;
use crate::runner::{self, Instrument, Mode, RunError};
use crate::scenario::{split_sweep, Scenario};
use crate::signals;

/// One row of an experiment: its label and the scenario it runs.
#[derive(Clone, Debug)]
pub struct Row {
    pub label: String,
    pub scenario: Scenario,
}

/// Rows for `compare`: the scenario once per design.
pub fn compare_rows(base: &Scenario, locks: &[LockKind]) -> Vec<Row> {
    locks
        .iter()
        .map(|&l| {
            let mut s = base.clone();
            s.lock = l;
            Row {
                label: l.name().to_owned(),
                scenario: s,
            }
        })
        .collect()
}

/// Rows for `sweep`: the scenario once per value of `KEY=V1,V2,...`, for each design in
/// `locks` (or the scenario's own design when `locks` is empty).
pub fn sweep_rows(base: &Scenario, sweep: &str, locks: &[LockKind]) -> Result<Vec<Row>, String> {
    let (key, values) = split_sweep(sweep).map_err(|e| format!("--set {sweep}: {e}"))?;
    let designs: Vec<Option<LockKind>> = if locks.is_empty() {
        vec![None]
    } else {
        locks.iter().copied().map(Some).collect()
    };
    let mut rows = Vec::new();
    for d in &designs {
        for v in &values {
            let mut s = base.clone();
            if let Some(l) = d {
                s.lock = *l;
            }
            s.set_kv(&format!("{key}={v}"))?;
            s.validate()?;
            let label = match d {
                Some(l) if designs.len() > 1 => format!("{l} {key}={v}"),
                _ => format!("{key}={v}"),
            };
            rows.push(Row { label, scenario: s });
        }
    }
    Ok(rows)
}

/// How long one run of `sc` is expected to take (for progress).
pub fn expected(sc: &Scenario) -> Duration {
    match sc.io {
        crate::scenario::IoWork::Echo => sc.warmup + sc.duration,
        _ => sc.duration,
    }
}

/// What an experiment reports as it goes.
pub enum Progress<'a> {
    /// Run `index` of `total` (label, repetition) starts and should take about `expected`.
    Start {
        index: usize,
        total: usize,
        label: &'a str,
        repeat: u32,
        expected: Duration,
    },
    /// All runs are done.
    Done,
}

/// Runs every row `repeat` times. Stops early (returning what it has, the last run marked
/// partial) when a signal arrives.
pub fn execute(
    rows: &[Row],
    repeat: u32,
    inst: &Instrument,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<RunResult>, RunError> {
    let total = rows.len() * repeat as usize;
    let mut runs = Vec::with_capacity(total);
    let mut index = 0;
    'outer: for row in rows {
        for r in 0..repeat {
            if signals::caught().is_some() {
                break 'outer;
            }
            index += 1;
            progress(Progress::Start {
                index,
                total,
                label: &row.label,
                repeat: r,
                expected: expected(&row.scenario),
            });
            let mut res = runner::run_mode(&row.scenario, Mode::Run, inst, &|_| {})?;
            res.label = row.label.clone();
            res.repeat = r;
            // A run cut short by a signal ends the experiment; one whose load generator lost
            // every connection is kept (marked partial) and the experiment goes on.
            let interrupted = res.partial && signals::caught().is_some();
            runs.push(res);
            if interrupted {
                break 'outer;
            }
        }
    }
    progress(Progress::Done);
    Ok(runs)
}
