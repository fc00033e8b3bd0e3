//! One function per subcommand: what `gilbench <command>` does once clap has read its
//! flags. Each checks its input before it runs anything (bad input exits 2 untouched),
//! then runs, prints the text table unless an export takes stdout, and writes the outputs.

use std::net::SocketAddr;
use std::path::Path;

use gilbench::experiment;
use gilbench::gil::LockKind;
use gilbench::report;
use gilbench::report::about::About;
use gilbench::report::export;
use gilbench::report::View;
use gilbench::result::{ResultFile, RunResult};
use gilbench::runner::{self, Mode};
use gilbench::scenario::{shown, IoWork, KEYS};

use super::outputs::{
    check_apart, check_outputs, finish, provenance, say, write_outputs, OutputOpts, TextOpts,
    TextTable,
};
use super::progress::run_rows;
use crate::{
    apply_listen, instrument, load_scenario, locks_arg, order_arg, positive, read_result,
    sweep_spec, ExperimentArgs, Failure, LoadOpts, RunOpts,
};

/// `gilbench locks`: one line per design.
pub fn locks() {
    for k in LockKind::ALL {
        let a = k.about();
        say(&format!(
            "{:<8} {:<4}  {}  [{}]\n",
            a.name, a.year, a.models, a.source
        ));
    }
}

/// `gilbench keys`: one line per scenario key.
pub fn keys() {
    for (k, help, _) in KEYS {
        say(&format!("{k:<18} {help}\n"));
    }
}

/// The checks every command that reads a scenario makes first, in this order (so a
/// command line with several faults names the same one as before): the table's columns,
/// outputs that would overwrite the input, then the outputs themselves.
fn check_text_and_outputs(
    text: &TextOpts,
    table: TextTable,
    out: &OutputOpts,
    input: &Path,
) -> Result<View, Failure> {
    let view = text.view(table)?;
    check_apart(out, input)?;
    check_outputs(out)?;
    Ok(view)
}

/// Prints one run's thread table, unless an export printed on stdout (--csv,
/// --markdown) replaces it, then writes the outputs.
fn show_run(r: RunResult, view: &View, out: &OutputOpts) -> Result<(), Failure> {
    if !out.prints() {
        say(&report::run_table_in(&r, view));
    }
    finish(&[r], out, None)
}

/// Prints the compare/sweep table, unless an export printed on stdout replaces it, then
/// writes the outputs (`sweep_key` names the swept key for the plots).
fn show_rows(
    runs: &[RunResult],
    view: &View,
    out: &OutputOpts,
    sweep_key: Option<&str>,
) -> Result<(), Failure> {
    if !out.prints() {
        say(&report::summary_text_in(runs, view));
    }
    finish(runs, out, sweep_key)
}

/// `gilbench run`: the scenario once.
pub fn run(
    scenario: &Path,
    opts: &RunOpts,
    text: &TextOpts,
    out: &OutputOpts,
) -> Result<(), Failure> {
    let view = check_text_and_outputs(text, TextTable::Threads, out, scenario)?;
    let sc = load_scenario(scenario, opts, None)?;
    let r = runner::run_mode(&sc, Mode::Run, &instrument(out)?, &|_| {})?;
    show_run(r, &view, out)
}

/// `gilbench compare`: the scenario once per design of `--locks` (or its `locks`).
pub fn compare(a: &ExperimentArgs) -> Result<(), Failure> {
    let view = check_text_and_outputs(&a.text, TextTable::Summary, &a.out, &a.scenario)?;
    if let Some(l) = &a.opts.lock {
        return Err(Failure::Input(shown(&format!(
            "--lock {l}: compare runs each design of --locks (or the scenario's `locks`), not one; give them with --locks"
        ))));
    }
    let sc = load_scenario(&a.scenario, &a.opts, None)?;
    let repeat = positive("--repeat", &a.repeat, 1000)? as u32;
    let locks = locks_arg(&a.locks)?.unwrap_or_else(|| sc.compare_locks.clone());
    let rows = experiment::compare_rows(&sc, &locks).map_err(Failure::Input)?;
    let runs = run_rows(rows, (repeat, order_arg(&a.order)), !a.no_baseline, &a.out)?;
    show_rows(&runs, &view, &a.out, None)
}

/// `gilbench sweep`: the scenario once per value of the swept key (per design of
/// `--locks`, if given).
pub fn sweep(a: &ExperimentArgs) -> Result<(), Failure> {
    let view = check_text_and_outputs(&a.text, TextTable::Summary, &a.out, &a.scenario)?;
    let Some(sweep) = sweep_spec(&a.opts, &a.scenario)? else {
        return Err(Failure::Input(format!(
            "{}: nothing to sweep: give --set KEY=V1,V2,... (or a `sweep` key in the scenario)",
            a.scenario.display()
        )));
    };
    if let (Some(l), Some(ls)) = (&a.opts.lock, &a.locks) {
        return Err(Failure::Input(shown(&format!(
            "--lock {l} and --locks {ls}: the sweep runs each design of --locks; give one or the other"
        ))));
    }
    let sc = load_scenario(&a.scenario, &a.opts, Some(&sweep))?;
    let repeat = positive("--repeat", &a.repeat, 1000)? as u32;
    let locks = locks_arg(&a.locks)?.unwrap_or_default();
    let rows =
        experiment::sweep_rows(&sc, &sweep.spec, &sweep.origin, &locks).map_err(Failure::Input)?;
    let runs = run_rows(rows, (repeat, order_arg(&a.order)), !a.no_baseline, &a.out)?;
    show_rows(&runs, &view, &a.out, Some(&sweep.key))
}

/// `gilbench report`: the tables and outputs of a saved result, without running.
pub fn report(result: &Path, shape: &TextOpts, out: &OutputOpts) -> Result<(), Failure> {
    check_apart(out, result)?;
    check_outputs(out)?;
    let (text, file) = read_result_file(result)?;
    let about = About {
        recorded: export::json::provenance(&text),
        current: provenance().clone(),
    };
    // A calibration result has tables of its own.
    if super::calibrate::report(&text, &file.runs, out, &about)? {
        return Ok(());
    }
    // An export printed on stdout replaces the table.
    if !out.prints() {
        say(&saved_table(&file.runs, shape)?);
    }
    let sweep_key = saved_sweep_key(&file.runs);
    write_outputs(&file.runs, out, sweep_key.as_deref(), &about)
}

/// The result file `report` was given, as text (for its recorded provenance) and read:
/// a gilbench result of this version, holding at least one run and no impossible figure.
fn read_result_file(result: &Path) -> Result<(String, ResultFile), Failure> {
    let text = read_result(result)?;
    let file: ResultFile = serde_json::from_str(&text).map_err(|e| {
        Failure::Input(format!("{}: not a gilbench result ({e})", result.display()))
    })?;
    file.check_version()
        .map_err(|e| Failure::Input(format!("{}: {e}", result.display())))?;
    if file.runs.is_empty() {
        return Err(Failure::Input(format!(
            "{}: the result holds no runs",
            result.display()
        )));
    }
    for (i, run) in file.runs.iter().enumerate() {
        if let Some(bad) = run.impossible_figure() {
            return Err(Failure::Input(format!(
                "{}: run {} ({}): {bad}, a figure that cannot be below 0",
                result.display(),
                i + 1,
                run.row_label()
            )));
        }
    }
    Ok((text, file))
}

/// The table `report` prints: a single run written by `run` (its label is its design's
/// name) shows its threads, as `run` did; anything else the compare/sweep table.
fn saved_table(runs: &[RunResult], shape: &TextOpts) -> Result<String, Failure> {
    if runs.len() == 1 && runs[0].label.split(' ').next() == Some(runs[0].lock.as_str()) {
        Ok(report::run_table_in(
            &runs[0],
            &shape.view(TextTable::Threads)?,
        ))
    } else {
        Ok(report::summary_text_in(
            runs,
            &shape.view(TextTable::Summary)?,
        ))
    }
}

/// The swept key of a saved sweep, read back from its labels (`... KEY=VALUE`): the
/// result file does not record it apart.
fn saved_sweep_key(runs: &[RunResult]) -> Option<String> {
    runs.iter().find_map(|r| {
        r.label
            .rsplit_once(' ')
            .map_or(r.label.as_str(), |(_, kv)| kv)
            .split_once('=')
            .map(|(k, _)| k.to_owned())
    })
}

/// `gilbench serve`: the server side of a socket scenario alone, for an outside client.
pub fn serve(
    scenario: &Path,
    listen: Option<&str>,
    opts: &RunOpts,
    text: &TextOpts,
    out: &OutputOpts,
) -> Result<(), Failure> {
    let view = check_text_and_outputs(text, TextTable::Threads, out, scenario)?;
    let mut sc = load_scenario(scenario, opts, None)?;
    if let Some(l) = listen {
        apply_listen(&mut sc, l)?;
    }
    if sc.io == IoWork::None {
        return Err(Failure::Input(format!(
            "{}: serve needs a socket scenario (io = \"echo\" or \"bulk\")",
            scenario.display()
        )));
    }
    // The outside client needs the address, which may be a free port chosen at bind.
    let announce = |addrs: &[SocketAddr]| {
        let kind = if sc.io == IoWork::Bulk {
            "tcp (bulk)".to_owned()
        } else {
            sc.transport.to_string()
        };
        let lines: String = addrs
            .iter()
            .map(|a| format!("listening on {kind} {a}\n"))
            .collect();
        say(&lines);
    };
    let r = runner::run_mode(&sc, Mode::Serve, &instrument(out)?, &announce)?;
    show_run(r, &view, out)
}

/// `gilbench load`: the load generator alone, against any echo server (it reads no
/// scenario file, so there is no input for the outputs to overwrite).
pub fn load(o: &LoadOpts) -> Result<(), Failure> {
    let view = o.text.view(TextTable::Threads)?;
    check_outputs(&o.out)?;
    let r = super::load::run(o)?;
    show_run(r, &view, &o.out)
}
