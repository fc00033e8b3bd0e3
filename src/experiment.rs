//! Experiments: one scenario run once per design (`compare`), once per value of a key
//! (`sweep`, combinable with several designs), each `repeat` times, into one list of runs.

use std::time::Duration;

use crate::gil::LockKind;
use crate::output::file_part;
use crate::result::{Order, RunResult, Sequence, NOT_RUN};
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

/// The runs of an experiment of `rows` rows repeated `repeat` times, as (row, repetition),
/// in the order they run.
pub fn schedule(rows: usize, repeat: u32, order: Order) -> Vec<(usize, u32)> {
    match order {
        Order::Interleaved => (0..repeat)
            .flat_map(|r| (0..rows).map(move |i| (i, r)))
            .collect(),
        Order::Blocks => (0..rows)
            .flat_map(|i| (0..repeat).map(move |r| (i, r)))
            .collect(),
    }
}

/// The note on an experiment stopped before its end: how many runs did not run, and the rows
/// never started (none of their runs began). `done` is how many runs of `plan` began.
pub fn not_run_note(rows: &[Row], plan: &[(usize, u32)], done: usize) -> Option<String> {
    let undone = plan.len().checked_sub(done).filter(|&n| n > 0)?;
    let never: Vec<&str> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| !plan[..done].iter().any(|(j, _)| j == i))
        .map(|(_, r)| r.label.as_str())
        .collect();
    Some(format!(
        "{NOT_RUN} {undone} run{}{}",
        if undone == 1 { "" } else { "s" },
        if never.is_empty() {
            String::new()
        } else {
            format!(" (rows never started: {})", never.join(", "))
        }
    ))
}

/// Runs every row `repeat` times in `order`, each run followed by its two baselines when
/// `baselines` is set (for rows that have both CPU and I/O threads). Stops early (returning
/// what it has, the last run marked partial and naming the runs left undone) when a signal
/// arrives. When a run fails after others finished, the finished runs are kept and returned
/// with a [`failed_run`] in the failed one's place that names the failure and the runs left
/// undone: finished work is never thrown away. Only a first run that fails is an error.
pub fn execute(
    rows: &[Row],
    (repeat, order): (u32, Order),
    baselines: bool,
    inst: &Instrument,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<RunResult>, RunError> {
    let plan = schedule(rows.len(), repeat, order);
    let total = plan.len();
    let mut runs: Vec<RunResult> = Vec::with_capacity(total);
    for (index, &(i, r)) in plan.iter().enumerate() {
        let row = &rows[i];
        if signals::caught().is_some() {
            break;
        }
        progress(Progress::Start {
            index: index + 1,
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
                let undone = not_run_note(rows, &plan, index + 1);
                runs.push(failed_run(row, r, (index + 1, total, order), &e, undone));
                break;
            }
        };
        name_and_place(&mut res, row, r, (index, order));
        if baselines && has_baselines(&row.scenario) && !res.partial {
            if let Err(e) = add_baseline(row, inst, &mut res) {
                res.notes.push(format!("its baselines could not run: {e}"));
            }
        }
        // A run cut short by a signal, or one that left hung threads behind, ends the
        // experiment; one whose load generator lost every connection is kept (marked
        // partial) and the experiment goes on.
        let interrupted = (res.partial && signals::caught().is_some()) || res.failure.is_some();
        if interrupted {
            res.notes.extend(not_run_note(rows, &plan, index + 1));
        }
        runs.push(res);
        if interrupted {
            break;
        }
    }
    name_what_did_not_run(&mut runs, rows, &plan);
    progress(Progress::Done);
    Ok(runs)
}

/// Labels a run with its row and repetition, and where it fell in the experiment's order.
fn name_and_place(res: &mut RunResult, row: &Row, repeat: u32, (index, order): (usize, Order)) {
    res.label = row.label.clone();
    res.repeat = repeat;
    res.sequence = Some(Sequence {
        index: index as u32,
        order,
    });
}

/// An experiment stopped by a signal between two runs: the last run finished whole, and a
/// note on it names the runs that never began (unless one already does).
fn name_what_did_not_run(runs: &mut [RunResult], rows: &[Row], plan: &[(usize, u32)]) {
    let began = runs.len();
    if let Some(last) = runs.last_mut() {
        if !last.notes.iter().any(|n| n.starts_with(NOT_RUN)) {
            last.notes.extend(not_run_note(rows, plan, began));
        }
    }
}

/// The place of run `index` of `total` (row `row`, repetition `repeat`) that failed
/// without results (`e`), in an experiment that has some: no figures (see
/// `report::columns::measured`), marked partial, its `failure` saying what went wrong, and
/// notes naming the runs left undone (`not_run`, see [`not_run_note`]).
pub fn failed_run(
    row: &Row,
    repeat: u32,
    (index, total, order): (usize, usize, Order),
    e: &RunError,
    not_run: Option<String>,
) -> RunResult {
    let why = match e {
        RunError::BadInput(m) | RunError::Failed(m) => m,
    };
    let mut notes = vec![format!(
        "run {index} of {total} failed before it produced results; the {} before it are complete",
        index - 1
    )];
    notes.extend(not_run);
    RunResult {
        scenario: row.scenario.name.clone(),
        lock: row.scenario.lock.name().to_owned(),
        label: row.label.clone(),
        repeat,
        sequence: Some(Sequence {
            index: index as u32 - 1,
            order,
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(labels: &[&str]) -> Vec<Row> {
        labels
            .iter()
            .map(|l| Row {
                label: (*l).to_owned(),
                scenario: Scenario::default(),
            })
            .collect()
    }

    #[test]
    fn repetitions_interleave_unless_blocks_are_asked_for() {
        assert_eq!(
            schedule(3, 2, Order::Interleaved),
            [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
        );
        assert_eq!(
            schedule(3, 2, Order::Blocks),
            [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
        );
        assert_eq!(
            schedule(2, 1, Order::Interleaved),
            schedule(2, 1, Order::Blocks)
        );
    }

    #[test]
    fn a_stopped_experiment_names_the_rows_never_started() {
        let rows = rows(&["a", "b", "c"]);
        let plan = schedule(3, 2, Order::Interleaved);
        assert_eq!(
            not_run_note(&rows, &plan, 2).as_deref(),
            Some("not run: 4 runs (rows never started: c)")
        );
        // Interleaved, every row has started after the first round.
        assert_eq!(
            not_run_note(&rows, &plan, 4).as_deref(),
            Some("not run: 2 runs")
        );
        let plan = schedule(3, 2, Order::Blocks);
        assert_eq!(
            not_run_note(&rows, &plan, 3).as_deref(),
            Some("not run: 3 runs (rows never started: c)")
        );
        assert_eq!(
            not_run_note(&rows, &plan, 1).as_deref(),
            Some("not run: 5 runs (rows never started: b, c)")
        );
        assert_eq!(not_run_note(&rows, &plan, 6), None);
    }
}
