//! Where results go: the output flags (one per format of `report::export::ALL`), checking,
//! before anything runs, that every output can be written, writing them all from one list
//! of runs, and printing to a stdout that may be gone.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use clap::builder::ArgAction;
use clap::parser::ValueSource;
use clap::{value_parser, Arg, Args};

use gilbench::output::{check_dir, check_dir_files, check_file, resolve};
use gilbench::report::about::{About, Provenance};
use gilbench::report::columns::{measured, THREAD_COLUMNS};
use gilbench::report::export::{replace, Context, Dest, Exporter, Needs, Outcome, Target, ALL};
use gilbench::report::{summary_keys, View};
use gilbench::result::RunResult;
use gilbench::signals;

use crate::Failure;

/// Where results go.
#[derive(Args, Debug, Clone, Default)]
pub struct OutputOpts {
    #[command(flatten)]
    pub formats: Formats,
    /// Events the timeline keeps, the newest, over all threads.
    #[arg(long, value_name = "N", default_value = "1000000")]
    pub trace_events: String,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Replace output files that gilbench did not write.
    #[arg(long)]
    pub force: bool,
}

impl OutputOpts {
    /// What the run must gather for the formats asked for.
    pub fn needs(&self) -> Needs {
        self.formats.0.iter().fold(Needs::default(), |a, (e, _)| {
            let n = e.needs();
            Needs {
                timeline: a.timeline || n.timeline,
                intervals: a.intervals || n.intervals,
            }
        })
    }

    /// Whether some format prints on stdout (`--csv`, `--markdown` without a path).
    pub fn prints(&self) -> bool {
        self.formats.0.iter().any(|(_, d)| *d == Dest::Stdout)
    }
}

/// Which columns the text table on stdout shows.
#[derive(Args, Debug, Clone, Default)]
pub struct TextOpts {
    /// The text table's columns: `all`, or a comma list of names (`--columns x` lists
    /// them). Default: a compact set that fits the terminal, at most 120 columns wide.
    /// The exports keep every column.
    #[arg(long, value_name = "all|A,B,..")]
    pub columns: Option<String>,
}

/// The text tables `--columns` can shape.
#[derive(Clone, Copy)]
pub enum TextTable {
    /// A run's threads (`run`, `serve`, `load`).
    Threads,
    /// The compare/sweep table.
    Summary,
}

impl TextOpts {
    /// The columns and width of the text table; bad input when `--columns` names a column
    /// the table does not have (checked before anything runs).
    pub fn view(&self, table: TextTable) -> Result<View, Failure> {
        let view = View::new(self.columns.as_deref());
        let (keys, names) = match table {
            TextTable::Threads => thread_keys(),
            TextTable::Summary => summary_keys(),
        };
        view.choice.check(&keys, &names).map_err(Failure::Input)?;
        Ok(view)
    }
}

/// Every key and name of a run's thread columns.
fn thread_keys() -> (Vec<String>, Vec<&'static str>) {
    let t = THREAD_COLUMNS.iter();
    (
        t.clone().map(|c| c.key()).collect(),
        t.map(|c| c.name).collect(),
    )
}

/// The formats asked for, in the order of `ALL`, each with where it goes.
#[derive(Clone, Default)]
pub struct Formats(pub Vec<(&'static dyn Exporter, Dest)>);

impl std::fmt::Debug for Formats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(e, d)| (e.flag(), d)))
            .finish()
    }
}

impl clap::FromArgMatches for Formats {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut v = Vec::new();
        for &e in ALL {
            if m.value_source(e.flag()) != Some(ValueSource::CommandLine) {
                continue;
            }
            let dest = match (e.target(), m.get_one::<PathBuf>(e.flag()).cloned()) {
                (Target::Dir { .. }, Some(p)) => Dest::Dir(p),
                (_, Some(p)) => Dest::File(p),
                (_, None) => Dest::Stdout,
            };
            v.push((e, dest));
        }
        Ok(Formats(v))
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for Formats {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        ALL.iter().fold(cmd, |cmd, e| {
            let a = Arg::new(e.flag())
                .long(e.flag())
                .help(e.help())
                .action(ArgAction::Set)
                .value_parser(value_parser!(PathBuf));
            cmd.arg(match e.target() {
                Target::File => a.value_name("PATH"),
                Target::FileOrStdout => a.value_name("PATH").num_args(0..=1),
                Target::Dir { .. } => a.value_name("DIR"),
            })
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// This command: its command line, when it started, the machine (fixed at the first call,
/// which `main` makes at the start).
pub fn provenance() -> &'static Provenance {
    static NOW: OnceLock<Provenance> = OnceLock::new();
    NOW.get_or_init(Provenance::now)
}

/// The first error writing stdout other than a closed pipe, reported at the end.
static STDOUT_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// Prints `text` on stdout. A closed stdout (the reader went away, e.g. `| head`) does not
/// stop gilbench: the text is dropped and the files are still written. Any other error is
/// kept for [`stdout_error`].
pub fn say(text: &str) {
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let mut first = STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| format!("cannot write to stdout: {e}"));
        }
    }
}

/// The first error writing stdout, other than a closed pipe.
pub fn stdout_error() -> Option<String> {
    STDOUT_ERROR
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Prints one line on stderr, never panicking (stderr may be a closed pipe too).
pub fn warn(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "gilbench: {line}");
}

/// Checks every output path before anything runs: each file's directory exists and takes
/// new files, an existing file is a regular file gilbench wrote (or `--force`), each
/// directory is one or can be created, and no two outputs name the same file. Bad input:
/// exit status 2.
pub fn check_outputs(out: &OutputOpts) -> Result<(), Failure> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut dirs: Vec<(String, PathBuf, &str)> = Vec::new();
    let may_replace = replace(out.force);
    for (e, dest) in &out.formats.0 {
        let flag = format!("--{}", e.flag());
        match (dest, e.target()) {
            (Dest::File(p), _) => {
                files.push((flag, check_file(p, may_replace).map_err(Failure::Input)?));
            }
            (Dest::Dir(p), Target::Dir { ext }) => {
                let dir = check_dir(p).map_err(Failure::Input)?;
                check_dir_files(p, ext, may_replace)
                    .map_err(|m| Failure::Input(format!("{flag} {}: {m}", p.display())))?;
                dirs.push((flag, dir, ext));
            }
            _ => {}
        }
    }
    for (i, (a, pa)) in files.iter().enumerate() {
        if let Some((b, _)) = files[i + 1..].iter().find(|(_, pb)| pb == pa) {
            return Err(Failure::Input(format!(
                "{a} and {b} both name {}; give each output its own file",
                pa.display()
            )));
        }
        for (d, pd, ext) in &dirs {
            if pd.starts_with(pa) {
                return Err(Failure::Input(format!(
                    "{d} {} is, or is inside, the {a} file {}",
                    pd.display(),
                    pa.display()
                )));
            }
            if pa.parent() == Some(pd.as_path()) && pa.extension().is_some_and(|e| e == *ext) {
                return Err(Failure::Input(format!(
                    "{a} {} is a .{ext} file in the {d} directory, where gilbench writes its own",
                    pa.display()
                )));
            }
        }
    }
    Ok(())
}

/// No output may be the input file (`report r.json --csv r.json`): it would replace what
/// it was made from.
pub fn check_apart(out: &OutputOpts, input: &Path) -> Result<(), Failure> {
    let input_at = resolve(input);
    for (e, dest) in &out.formats.0 {
        if let Some(p) = dest.path().filter(|p| resolve(p) == input_at) {
            return Err(Failure::Input(format!(
                "--{} {} is the input file; an output never replaces its input",
                e.flag(),
                p.display()
            )));
        }
    }
    Ok(())
}

/// Writes every requested output for `runs`, each format in turn; one that fails does not
/// stop the others (the first error is returned). A signal that abandons the trace ends the
/// process once the others are written.
pub fn write_outputs(
    runs: &[RunResult],
    out: &OutputOpts,
    sweep_key: Option<&str>,
    about: &About,
) -> Result<(), Failure> {
    write_outputs_with(runs, out, sweep_key, about, None)
}

/// [`write_outputs`], with a table of its own (calibrate's) for the formats that write a
/// table.
pub fn write_outputs_with(
    runs: &[RunResult],
    out: &OutputOpts,
    sweep_key: Option<&str>,
    about: &About,
    table: Option<&gilbench::report::table::Table>,
) -> Result<(), Failure> {
    let mut written: Vec<(&'static str, PathBuf)> = Vec::new();
    let mut abandoned: Option<(i32, &Path)> = None;
    let mut first_error = None;
    for (e, to) in &out.formats.0 {
        let cx = Context {
            runs,
            sweep_key,
            table,
            force: out.force,
            about,
            written: &written,
            say: &say,
            note: &warn,
        };
        match e.write(&cx, to) {
            Ok(Outcome::Written) => {
                if let Some(p) = to.path() {
                    written.push((e.flag(), p.to_owned()));
                }
            }
            Ok(Outcome::Abandoned) => {
                if let (Some(sig), Some(p)) = (signals::caught(), to.path()) {
                    abandoned.get_or_insert((sig, p));
                }
            }
            Ok(Outcome::Printed | Outcome::Nothing) => {}
            Err(m) => {
                first_error.get_or_insert(m);
            }
        }
    }
    if let Some((sig, p)) = abandoned {
        let _ = std::io::stdout().flush();
        if let Some(m) = &first_error {
            warn(m);
        }
        warn(&format!(
            "interrupted by {} while writing {}, which was not written; the other outputs were",
            signals::name(sig),
            p.display()
        ));
        std::process::exit(i32::from(signals::exit_status(sig)));
    }
    first_error.map_or(Ok(()), |m| Err(Failure::Run(m)))
}

/// Writes the outputs; then, if a signal cut the run short, exits with 128 + its number.
pub fn finish(
    runs: &[RunResult],
    out: &OutputOpts,
    sweep_key: Option<&str>,
) -> Result<(), Failure> {
    let about = About::fresh(provenance().clone());
    if let Some(sig) = signals::caught().filter(|_| !runs.iter().any(|r| r.measured_s > 0.0)) {
        write_only_new(runs, out, sweep_key, &about, sig);
    }
    write_outputs(runs, out, sweep_key, &about)?;
    if runs.iter().any(|r| r.partial) || runs.is_empty() {
        exit_if_interrupted();
    }
    if let Some(r) = runs.iter().find(|r| r.failure.is_some()) {
        let f = r.failure.as_deref().unwrap_or_default();
        return Err(Failure::Run(if measured(r) {
            format!("{f}; what it measured was kept (marked partial)")
        } else {
            let kept = runs.iter().filter(|r| measured(r)).count();
            format!(
                "{}: {f}; the {kept} run{} finished before it {} kept (marked partial)",
                r.row_label(),
                if kept == 1 { "" } else { "s" },
                if kept == 1 { "was" } else { "were" }
            )
        }));
    }
    Ok(())
}

/// The runs were stopped by `sig` before any measured anything (all in their warm-up or
/// before): a run that measured nothing replaces nothing. The outputs that name no existing
/// file or directory are written (they say nothing was measured); the existing ones are kept
/// as they were. Says so in one line and exits with the signal's status.
fn write_only_new(
    runs: &[RunResult],
    out: &OutputOpts,
    sweep_key: Option<&str>,
    about: &About,
    sig: i32,
) -> ! {
    let (kept, new): (Vec<_>, Vec<_>) = out
        .formats
        .0
        .iter()
        .cloned()
        .partition(|(_, d)| d.path().is_some_and(|p| p.symlink_metadata().is_ok()));
    let new = OutputOpts {
        formats: Formats(new),
        ..out.clone()
    };
    let wrote = write_outputs(runs, &new, sweep_key, about);
    let _ = std::io::stdout().flush();
    if let Err(Failure::Run(m) | Failure::Input(m)) = wrote {
        warn(&m);
    }
    let kept: Vec<String> = kept
        .iter()
        .filter_map(|(_, d)| d.path().map(|p| p.display().to_string()))
        .collect();
    let kept = if kept.is_empty() {
        String::new()
    } else {
        format!("; the existing {} kept as they were", kept.join(", "))
    };
    warn(&format!(
        "interrupted by {} before anything was measured{kept}",
        signals::name(sig)
    ));
    std::process::exit(i32::from(signals::exit_status(sig)));
}

/// A signal that stopped the runs before any measured anything: no output is written, so
/// none replaces an existing file with an empty one; says so and exits with the signal's
/// status (calibrate, whose result with no pair is no result at all).
pub fn exit_if_nothing_measured(runs: &[RunResult]) {
    let Some(sig) = signals::caught() else {
        return;
    };
    if runs.iter().any(|r| r.measured_s > 0.0) {
        return;
    }
    let _ = std::io::stdout().flush();
    warn(&format!(
        "interrupted by {} before anything was measured; no output was written",
        signals::name(sig)
    ));
    std::process::exit(i32::from(signals::exit_status(sig)));
}

/// Before any run: a signal that came says so and exits with the signal's status.
pub fn exit_if_interrupted_before_running() {
    if let Some(sig) = signals::caught() {
        warn(&format!(
            "interrupted by {} before any run",
            signals::name(sig)
        ));
        std::process::exit(i32::from(signals::exit_status(sig)));
    }
}

/// After a run a signal cut short, whose results were written: says so and exits with the
/// signal's status (130 for SIGINT, 143 for SIGTERM, ...). Returns when no signal came.
pub fn exit_if_interrupted() {
    if let Some(sig) = signals::caught() {
        let _ = std::io::stdout().flush();
        warn(&format!(
            "interrupted by {}; the results gathered so far were written",
            signals::name(sig)
        ));
        std::process::exit(i32::from(signals::exit_status(sig)));
    }
}
