//! Experiments: one scenario run once per design (`compare`), once per value of a key
//! (`sweep`, combinable with several designs), each `repeat` times, into one list of runs.

use std::time::Duration;

use crate::gil::LockKind;
use crate::output::file_part;
use crate::result::RunResult;
use crate::runner::{self, Instrument, Mode, RunError};
use crate::scenario::{parse_sweep, shown, Scenario};
use crate::signals;

/// One row of an experiment: its label and the scenario it runs.
#[derive(Clone, Debug)]
pub struct Row {
    pub label: String,
    pub scenario: Scenario,
}

/// Rows for `compare`: the scenario once per design, each checked as it will run.
pub fn compare_rows(base: &Scenario, locks: &[LockKind]) -> Result<Vec<Row>, String> {
    let rows = locks
        .iter()
        .map(|&l| {
            let mut s = base.clone();
            s.lock = l;
            s.validate()?;
            Ok(Row {
                label: s.design_label(),
                scenario: s,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    distinct_labels(&rows, "--locks")?;
    Ok(rows)
}

/// Rows for `sweep`: the scenario once per value of `KEY=V1,V2,...`, for each design in
/// `locks` (or the scenario's own design when `locks` is empty). `origin` names where the
/// sweep was written (`--set KEY=V1,V2`, or the scenario file's `sweep`).
pub fn sweep_rows(
    base: &Scenario,
    sweep: &str,
    origin: &str,
    locks: &[LockKind],
) -> Result<Vec<Row>, String> {
    let (key, values) = parse_sweep(sweep, base).map_err(|e| format!("{origin}: {e}"))?;
    if key == "lock" && !locks.is_empty() {
        return Err(format!(
            "{origin}: the sweep is over 'lock' already; drop --locks or sweep another key"
        ));
    }
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
            s.set_swept(key, v, origin)?;
            s.validate()?;
            let label = match d {
                Some(l) if designs.len() > 1 => format!("{l} {key}={v}"),
                _ => format!("{key}={v}"),
            };
            rows.push(Row { label, scenario: s });
        }
    }
    distinct_labels(&rows, origin)?;
    Ok(rows)
}

/// Rows group runs in tables by label and name per-row output files after it (with every
/// character other than ASCII letters, digits, `-` and `.` written as `_`): two rows whose
/// labels agree that far would merge into one row, or overwrite each other's files.
fn distinct_labels(rows: &[Row], origin: &str) -> Result<(), String> {
    for (i, a) in rows.iter().enumerate() {
        if let Some(b) = rows[..i]
            .iter()
            .find(|b| file_part(&b.label) == file_part(&a.label))
        {
            return Err(format!(
                "{origin}: rows '{}' and '{}' would write the same output file names (labels \
                 may differ only in letters, digits, '-' and '.')",
                shown(&b.label),
                shown(&a.label)
            ));
        }
    }
    Ok(())
}

/// How long one run of `sc` is expected to take (for progress).
pub fn expected(sc: &Scenario) -> Duration {
    match sc.io {
        crate::scenario::IoWork::Echo => sc.warmup + sc.duration,
        _ => sc.duration,
    }
}

/// Whether baselines make sense for `sc`: it has both CPU and I/O threads.
pub fn has_baselines(sc: &Scenario) -> bool {
    sc.cpu_threads > 0 && sc.io != crate::scenario::IoWork::None
}

/// The two baselines of a row: its I/O threads without the CPU threads, and its CPU threads
/// without the I/O threads.
fn baseline_scenarios(sc: &Scenario) -> (Scenario, Scenario) {
    let mut io_alone = sc.clone();
    io_alone.cpu_threads = 0;
    let mut cpu_alone = sc.clone();
    cpu_alone.io = crate::scenario::IoWork::None;
    (io_alone, cpu_alone)
}

/// Runs the baselines of `row` and sets `res` beside them. A baseline cut short (a signal)
/// leaves `res` without one and marks it partial.
fn add_baseline(row: &Row, inst: &Instrument, res: &mut RunResult) -> Result<(), RunError> {
    let (io_sc, cpu_sc) = baseline_scenarios(&row.scenario);
    let io_alone = runner::run_mode(&io_sc, Mode::Run, inst, &|_| {})?;
    if io_alone.partial {
        res.partial = true;
        return Ok(());
    }
    let cpu_alone = runner::run_mode(&cpu_sc, Mode::Run, inst, &|_| {})?;
    if cpu_alone.partial {
        res.partial = true;
        return Ok(());
    }
    res.baseline = Some(crate::result::Baseline::of(res, &io_alone, &cpu_alone));
    Ok(())
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

/// Runs every row `repeat` times, each repetition followed by its two baselines when
/// `baselines` is set (for rows that have both CPU and I/O threads). Stops early (returning
/// what it has, the last run marked partial) when a signal arrives. When a run fails after
/// others finished, the finished runs are kept and returned with a [`failed_run`] in the
/// failed one's place that names the failure and the runs left undone: finished work is never
/// thrown away. Only a first run that fails is an error.
pub fn execute(
    rows: &[Row],
    repeat: u32,
    baselines: bool,
    inst: &Instrument,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<RunResult>, RunError> {
    let total = rows.len() * repeat as usize;
    let mut runs = Vec::with_capacity(total);
    let mut index = 0;
    'outer: for (i, row) in rows.iter().enumerate() {
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
            let mut res = match runner::run_mode(&row.scenario, Mode::Run, inst, &|_| {}) {
                Ok(res) => res,
                Err(e) if runs.is_empty() => {
                    progress(Progress::Done);
                    return Err(e);
                }
                Err(e) => {
                    let undone = (
                        total - index,
                        rows[i + 1..].iter().map(|r| r.label.as_str()),
                    );
                    runs.push(failed_run(row, r, (index, total), &e, undone));
                    break 'outer;
                }
            };
            res.label = row.label.clone();
            res.repeat = r;
            if baselines && has_baselines(&row.scenario) && !res.partial {
                if let Err(e) = add_baseline(row, inst, &mut res) {
                    res.notes.push(format!("its baselines could not run: {e}"));
                }
            }
            // A run cut short by a signal, or one that left hung threads behind, ends the
            // experiment; one whose load generator lost every connection is kept (marked
            // partial) and the experiment goes on.
            let interrupted = (res.partial && signals::caught().is_some()) || res.failure.is_some();
            runs.push(res);
            if interrupted {
                break 'outer;
            }
        }
    }
    progress(Progress::Done);
    Ok(runs)
}

/// The place of run `index` of `total` (row `row`, repetition `repeat`) that failed
/// without results (`e`), in an experiment that has some: no figures (see
/// `report::columns::measured`), marked partial, its `failure` saying what went wrong, and
/// notes naming the runs left undone (how many, and the rows never started).
pub fn failed_run<'a>(
    row: &Row,
    repeat: u32,
    (index, total): (usize, usize),
    e: &RunError,
    (undone, rows_left): (usize, impl Iterator<Item = &'a str>),
) -> RunResult {
    let why = match e {
        RunError::BadInput(m) | RunError::Failed(m) => m,
    };
    let mut notes = vec![format!(
        "run {index} of {total} failed before it produced results; the {} before it are complete",
        index - 1
    )];
    if undone > 0 {
        let left: Vec<&str> = rows_left.collect();
        notes.push(format!(
            "not run: {undone} run{}{}",
            if undone == 1 { "" } else { "s" },
            if left.is_empty() {
                String::new()
            } else {
                format!(" (rows {})", left.join(", "))
            }
        ));
    }
    RunResult {
        scenario: row.scenario.name.clone(),
        lock: row.scenario.lock.name().to_owned(),
        label: row.label.clone(),
        repeat,
        params: row.scenario.params_json(),
        wall_s: 0.0,
        measured_s: 0.0,
        cpu: None,
        io: None,
        gil: Default::default(),
        threads: Vec::new(),
        notes,
        partial: true,
        failure: Some(why.clone()),
        baseline: None,
        hists: Default::default(),
        intervals: Vec::new(),
        trace: None,
    }
}
