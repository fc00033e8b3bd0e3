//! `gilbench calibrate`: the twin and the `timed` model on the same conditions, one table.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;

use gilbench::calibrate::{self, Step};
use gilbench::scenario::{shown, split_sweep, Scenario};

use gilbench::report::about::About;

use super::outputs::{check_outputs, say, write_outputs_with, OutputOpts};
use crate::{load_scenario, positive, Failure, RunOpts};

/// `gilbench calibrate` options.
#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// The scenario file (TOML), a socket scenario such as workloads/convoy-echo.toml or
    /// workloads/convoy-bulk.toml.
    scenario: PathBuf,
    /// The Python interpreter that runs the twin (default: python3 on PATH).
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
    /// Run each condition N times on each side, in turn; the table shows medians.
    #[arg(long, value_name = "N", default_value = "1")]
    repeat: String,
    /// Run a CPython/gilbench pair again (at most 3 times) when other processes used more
    /// than this percentage of the machine during it; `off` keeps every pair.
    #[arg(long, value_name = "PERCENT", default_value = "10")]
    max_other_load: String,
    /// Options as for `run`; `--set KEY=V1,V2,...` (any number of keys) runs every
    /// combination of the values.
    #[command(flatten)]
    opts: RunOpts,
    #[command(flatten)]
    out: OutputOpts,
}

/// Flags whose values may be lists (`--interval 1ms,5ms`); `--pin 0,1` is a core list.
const LIST_FLAGS: [(&str, &str); 3] = [
    ("cpu_threads", "--cpu-threads"),
    ("interval", "--interval"),
    ("duration", "--duration"),
];

pub fn run(a: &CalibrateArgs) -> Result<(), Failure> {
    if a.out
        .formats
        .0
        .iter()
        .any(|(e, _)| matches!(e.flag(), "trace" | "hlog"))
    {
        return Err(Failure::Input(
            "calibrate writes --json, --csv, --markdown, --plot, --hgrm and --html; --trace and --hlog belong to run, compare and sweep".into(),
        ));
    }
    check_outputs(&a.out)?;
    let (base, lists) = base_and_lists(a)?;
    let plan = calibrate::Plan {
        repeat: positive("--repeat", &a.repeat, 1000)? as u32,
        max_other_load: max_other_load(&a.max_other_load)?,
        retries: 3,
    };
    let conds = calibrate::conditions(&base, &lists).map_err(Failure::Input)?;
    let py = calibrate::find_python(a.python.as_deref()).map_err(|e| {
        // A Ctrl-C while the interpreter answers is no fault of the interpreter.
        crate::cli::outputs::exit_if_interrupted_before_running();
        Failure::Input(e)
    })?;
    let show = !a.out.quiet && std::io::stderr().is_terminal();
    let mut progress = |s: Step<'_>| {
        if show {
            print_step(s);
        }
    };
    let outcome = calibrate::execute(&py, &base.name, &conds, &plan, &mut progress)?;
    super::outputs::exit_if_nothing_measured(&outcome.runs);
    write_all(
        &outcome,
        &a.out,
        &About::fresh(super::outputs::provenance().clone()),
    )?;
    if outcome.calibration.partial {
        super::outputs::exit_if_interrupted();
    }
    Ok(())
}

/// The scenario every condition starts from (single values applied, lock `timed`) and the
/// lists (`KEY=V1,V2,...`) that make the conditions.
fn base_and_lists(a: &CalibrateArgs) -> Result<(Scenario, Vec<String>), Failure> {
    let mut opts = a.opts.clone();
    if let Some(l) = &opts.lock {
        if l.trim() != "timed" {
            return Err(Failure::Input(shown(&format!(
                "--lock {l}: calibrate holds the timed model against CPython; it runs timed only"
            ))));
        }
    }
    let (singles, lists) = split_lists(&mut opts)?;
    let record_set = singles.iter().chain(&lists).any(|kv| {
        kv.split_once('=')
            .is_some_and(|(k, _)| k.trim() == "record")
    });
    opts.set = singles;
    let mut base = load_scenario(&a.scenario, &opts, None)?;
    base.lock = gilbench::gil::LockKind::Timed;
    if !record_set {
        // The twin's interpreter threads carry no instrumentation, and the model's GIL-side
        // recording (clock reads, histograms, the idle-while-wanted word at every take and
        // release) changes the very races compared here (measured: two CPU threads, 62
        // against 28 requests/s). Calibrate's figures all come from the client, the kernel
        // and the tick counters, so the model runs without it unless the user asks.
        base.record = false;
    }
    Ok((base, lists))
}

/// `--set` values and list flags (`--interval 1ms,5ms`) split into single values, which
/// apply to every condition, and lists, which become conditions.
fn split_lists(opts: &mut RunOpts) -> Result<(Vec<String>, Vec<String>), Failure> {
    // Lists (`--set k=a,b`, `--interval 1ms,5ms`) become conditions; single values apply to
    // all of them.
    let mut lists = Vec::new();
    let mut singles = Vec::new();
    for kv in &opts.set {
        match split_sweep(kv) {
            Ok((_, vals)) if vals.len() > 1 => lists.push(kv.clone()),
            Err(e) if kv.contains(',') => {
                return Err(Failure::Input(format!(
                    "{}: {e}",
                    shown(&format!("--set {kv}"))
                )))
            }
            _ => singles.push(kv.clone()),
        }
    }
    for (key, flag) in LIST_FLAGS {
        let slot = match key {
            "cpu_threads" => &mut opts.cpu_threads,
            "interval" => &mut opts.interval,
            _ => &mut opts.duration,
        };
        if slot.as_ref().is_some_and(|v| v.contains(',')) {
            let v = slot.take().unwrap_or_default();
            if lists
                .iter()
                .any(|l| l.split('=').next().is_some_and(|k| k.trim() == key))
            {
                return Err(Failure::Input(format!(
                    "{flag} {v}: key '{key}' is listed by --set too"
                )));
            }
            lists.push(format!("{key}={v}"));
        }
    }
    for kv in &singles {
        if kv
            .split_once('=')
            .is_some_and(|(k, v)| k.trim() == "lock" && v.trim() != "timed")
        {
            return Err(Failure::Input(shown(&format!(
                "--set {kv}: calibrate holds the timed model against CPython; it runs timed only"
            ))));
        }
    }
    Ok((singles, lists))
}

/// `--max-other-load PERCENT` as a share of the machine (None: `off`).
fn max_other_load(text: &str) -> Result<Option<f64>, Failure> {
    Ok(match text.trim() {
        "off" => None,
        t => match t.trim_end_matches('%').parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Some(p / 100.0),
            _ => {
                return Err(Failure::Input(shown(&format!(
                    "--max-other-load {t}: expected a percentage from 0 to 100, or off"
                ))))
            }
        },
    })
}

/// A progress line on stderr as each run starts.
fn print_step(s: Step<'_>) {
    if let Step::Start {
        index,
        total,
        side,
        label,
        repeat,
        expected,
    } = s
    {
        let rep = if repeat > 0 {
            format!(" (repeat {})", repeat + 1)
        } else {
            String::new()
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "[{index}/{total}] {side}: {label}{rep} ({:.1}s)",
            expected.as_secs_f64()
        );
    }
}

/// Prints the table (unless an export goes to stdout instead) and writes every output
/// through the exporters: the formats that write a table (CSV, Markdown) write calibrate's,
/// the result file carries the calibration beside the runs, and every other format
/// (histograms, plots, the page) gets the runs of both sides, as for compare.
fn write_all(outcome: &calibrate::Outcome, out: &OutputOpts, about: &About) -> Result<(), Failure> {
    let table = calibrate::table(&outcome.calibration);
    if !out.prints() {
        say(&table.text());
    }
    write_outputs_with(&outcome.runs, out, None, about, Some(&table))
}

/// `gilbench report` of a calibrate result: the calibrate table again (medians recomputed)
/// and its outputs. False when `text` is not a calibrate result.
pub fn report(
    text: &str,
    runs: &[gilbench::result::RunResult],
    out: &OutputOpts,
    about: &About,
) -> Result<bool, Failure> {
    #[derive(serde::Deserialize)]
    struct File {
        calibrate: Option<calibrate::Calibration>,
    }
    let Ok(File {
        calibrate: Some(mut calibration),
    }) = serde_json::from_str::<File>(text)
    else {
        return Ok(false);
    };
    if out
        .formats
        .0
        .iter()
        .any(|(e, _)| matches!(e.flag(), "trace" | "hlog"))
    {
        return Err(Failure::Input(
            "a calibrate result has no timeline or interval log (--trace, --hlog)".into(),
        ));
    }
    calibrate::resummarize(&mut calibration);
    let outcome = calibrate::Outcome {
        calibration,
        runs: runs.to_vec(),
    };
    write_all(&outcome, out, about)?;
    Ok(true)
}
