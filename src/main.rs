//! The `gilbench` command line: flags map to a scenario and options, the runner (or an
//! experiment of several runs) runs, exporters export from one result type.

mod cli {
    pub mod calibrate;
    pub mod commands;
    pub mod load;
    pub mod oom;
    pub mod outputs;
    pub mod progress;
}

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use cli::outputs::{provenance, stdout_error, warn, OutputOpts, TextOpts};
use gilbench::gil::LockKind;
use gilbench::runner::{self, Instrument, RunError};
use gilbench::scenario::{parse_locks, shown, split_sweep, Scenario};
use gilbench::signals;

#[global_allocator]
static ALLOC: cli::oom::ExitOnOom = cli::oom::ExitOnOom;

/// Interpreter-lock (GIL) designs on real threads, measured.
#[derive(Parser, Debug)]
#[command(name = "gilbench", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the GIL designs, one line each.
    Locks,
    /// List the keys a scenario file or --set may set.
    Keys,
    /// Run a scenario once and print what happened.
    Run {
        /// The scenario file (TOML), e.g. workloads/cpu-scaling.toml.
        scenario: PathBuf,
        #[command(flatten)]
        opts: RunOpts,
        #[command(flatten)]
        text: TextOpts,
        #[command(flatten)]
        out: OutputOpts,
    },
    /// Run a scenario once per design (`--locks`, default: the scenario's `locks`) and
    /// print one table.
    Compare(ExperimentArgs),
    /// Run a scenario once per value of a key (`--set KEY=V1,V2,...`, default: the
    /// scenario's `sweep`), for each design of `--locks` if given, and print one table.
    Sweep(ExperimentArgs),
    /// Re-render tables, exports and plots from a saved result JSON, without running.
    Report {
        /// A result file written with --json.
        result: PathBuf,
        #[command(flatten)]
        text: TextOpts,
        #[command(flatten)]
        out: OutputOpts,
    },
    /// Run only the server side of a socket scenario, for an outside client; runs until
    /// `duration` or Ctrl-C, then prints (and writes) its GIL metrics.
    Serve {
        /// The scenario file (TOML), e.g. workloads/convoy-echo.toml.
        scenario: PathBuf,
        /// Address to listen on: IP or IP:PORT (default 127.0.0.1 on a free port).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        #[command(flatten)]
        opts: RunOpts,
        #[command(flatten)]
        text: TextOpts,
        #[command(flatten)]
        out: OutputOpts,
    },
    /// Run only the load generator against any echo server.
    Load(LoadOpts),
    /// Hold the `timed` model against CPython: run the Python twin and gilbench on the same
    /// conditions, in turn, with the same client, and print one table.
    Calibrate(cli::calibrate::CalibrateArgs),
}

/// What `compare` and `sweep` take.
#[derive(Args, Debug)]
struct ExperimentArgs {
    /// The scenario file (TOML).
    scenario: PathBuf,
    /// The designs, e.g. tick,timed,mlfq (`gilbench locks` lists them).
    #[arg(long, value_name = "A,B,..")]
    locks: Option<String>,
    /// Run each row N times; the table shows the median and the min-max spread.
    #[arg(long, value_name = "N", default_value = "1")]
    repeat: String,
    /// The order of repeated runs: `interleaved` (A B C A B C ..., each with its baselines)
    /// or `blocks` (A A B B C C ...).
    #[arg(long, value_name = "ORDER", default_value = "interleaved",
          value_parser = ["interleaved", "blocks"])]
    order: String,
    /// Also run each row with I/O alone and with CPU alone, and show it against them (the
    /// default for scenarios with both CPU and I/O threads).
    #[arg(long, conflicts_with = "no_baseline")]
    baseline: bool,
    /// No baseline runs.
    #[arg(long)]
    no_baseline: bool,
    #[command(flatten)]
    opts: RunOpts,
    #[command(flatten)]
    text: TextOpts,
    #[command(flatten)]
    out: OutputOpts,
}

/// Options that override the scenario file.
#[derive(Args, Debug, Clone, Default)]
struct RunOpts {
    /// The GIL design (`gilbench locks` lists them).
    #[arg(long, value_name = "NAME")]
    lock: Option<String>,
    /// CPU-bound interpreter threads.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    cpu_threads: Option<String>,
    /// Switch interval of timed, fifo and fastcond (e.g. 5ms).
    #[arg(long, value_name = "DURATION")]
    interval: Option<String>,
    /// How long the measured run lasts (e.g. 3s).
    #[arg(long, value_name = "DURATION")]
    duration: Option<String>,
    /// Thread placement: spread, single, none, or a core list like 0,1.
    #[arg(long, value_name = "MODE")]
    pin: Option<String>,
    /// Set any scenario key (`gilbench keys` lists them); repeatable. For `sweep`, one of
    /// them takes several values: KEY=V1,V2,...
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// `gilbench load` options.
#[derive(Args, Debug, Clone)]
struct LoadOpts {
    /// The echo server, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    connect: String,
    /// tcp or udp.
    #[arg(long, default_value = "tcp")]
    transport: String,
    /// Open-loop requests/s (0: closed loop).
    #[arg(long, default_value = "0")]
    rate: String,
    /// Measured time (after the warm-up).
    #[arg(long, default_value = "3s")]
    duration: String,
    /// Connections (closed loop: requests in flight).
    #[arg(long, default_value = "1")]
    connections: String,
    /// Bytes per request.
    #[arg(long, default_value = "64")]
    request_bytes: String,
    /// Time before recording starts.
    #[arg(long, default_value = "500ms")]
    warmup: String,
    /// A request unanswered this long has failed.
    #[arg(long, default_value = "1s")]
    timeout: String,
    /// Pin the load generator to this core, where it spins instead of sleeping while it
    /// waits for replies (closed loop) or for the last stretch before each send (open
    /// loop), as the pinned load generator of `run` and `calibrate` does, so that its own
    /// wake-up latency stays out of the round trip. Unpinned, it sleeps in its polls.
    #[arg(long, value_name = "CORE")]
    pin: Option<String>,
    #[command(flatten)]
    text: TextOpts,
    #[command(flatten)]
    out: OutputOpts,
}

/// How a command failed.
enum Failure {
    /// Bad input: exit status 2.
    Input(String),
    /// A run or an output failed: exit status 1.
    Run(String),
}

impl From<RunError> for Failure {
    fn from(e: RunError) -> Self {
        match e {
            RunError::BadInput(m) => Failure::Input(m),
            RunError::Failed(m) => Failure::Run(m),
        }
    }
}

/// A sweep to run: `KEY=V1,V2,...` and where it was written.
struct SweepSpec {
    spec: String,
    key: String,
    origin: String,
}

impl SweepSpec {
    /// The error for a single value given for the swept key.
    fn swept(&self, given: &str) -> Failure {
        Failure::Input(format!(
            "{}: key '{}' is being swept by {}; give the values in the sweep (--set {}=V1,V2,...), or use `gilbench run` for one value",
            shown(given),
            self.key,
            self.origin,
            self.key
        ))
    }
}

/// Loads the scenario and applies `--set` and the flags, in that order. In a sweep, the
/// swept key takes its values from the sweep only: another value for it is an error.
fn load_scenario(path: &Path, o: &RunOpts, sweep: Option<&SweepSpec>) -> Result<Scenario, Failure> {
    let mut s = Scenario::from_file(path).map_err(Failure::Input)?;
    for kv in &o.set {
        let Some(sw) = sweep else {
            s.set_kv(kv).map_err(Failure::Input)?;
            continue;
        };
        if *kv == sw.spec {
            continue;
        }
        s.set_kv(kv).map_err(Failure::Input)?;
        if kv.split_once('=').is_some_and(|(k, _)| k.trim() == sw.key) {
            return Err(sw.swept(&format!("--set {kv}")));
        }
    }
    let flags = [
        ("lock", "--lock", &o.lock),
        ("cpu_threads", "--cpu-threads", &o.cpu_threads),
        ("interval", "--interval", &o.interval),
        ("duration", "--duration", &o.duration),
        ("pin", "--pin", &o.pin),
    ];
    for (key, flag, val) in flags {
        if let Some(v) = val {
            s.set_flag(key, flag, v).map_err(Failure::Input)?;
            if let Some(sw) = sweep.filter(|sw| sw.key == key) {
                return Err(sw.swept(&format!("{flag} {v}")));
            }
        }
    }
    s.validate().map_err(Failure::Input)?;
    Ok(s)
}

fn positive(flag: &str, raw: &str, max: u64) -> Result<u64, Failure> {
    match raw.trim().parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(Failure::Input(format!(
            "{flag} {raw}: expected a whole number from 1 to {max}"
        ))),
    }
}

fn instrument(out: &OutputOpts) -> Result<Instrument, Failure> {
    Ok(Instrument {
        trace_events: if out.needs().timeline {
            Some(positive(
                "--trace-events",
                &out.trace_events,
                gilbench::trace::MAX_EVENTS as u64,
            )? as usize)
        } else {
            None
        },
        hlog_interval: out.needs().intervals.then_some(Duration::from_secs(1)),
    })
}

/// `--order` (clap checked the value).
fn order_arg(order: &str) -> gilbench::result::Order {
    match order {
        "blocks" => gilbench::result::Order::Blocks,
        _ => gilbench::result::Order::Interleaved,
    }
}

/// `--locks a,b,c`, if given.
fn locks_arg(locks: &Option<String>) -> Result<Option<Vec<LockKind>>, Failure> {
    locks
        .as_deref()
        .map(|l| parse_locks(l).map_err(|e| Failure::Input(shown(&format!("--locks {l}: {e}")))))
        .transpose()
}

/// `--listen IP` or `--listen IP:PORT`.
fn apply_listen(sc: &mut Scenario, l: &str) -> Result<(), Failure> {
    let bad = || {
        Failure::Input(format!(
            "--listen {l}: not an address like 127.0.0.1 or 127.0.0.1:7000"
        ))
    };
    let (ip, port) = match l.parse::<SocketAddr>() {
        Ok(a) => (a.ip(), a.port()),
        Err(_) => (
            l.trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .map_err(|_| bad())?,
            0,
        ),
    };
    sc.listen = ip;
    sc.port = port;
    Ok(())
}

/// The sweep a command asks for: a `--set` with several values, or the scenario's `sweep`.
fn sweep_spec(o: &RunOpts, path: &Path) -> Result<Option<SweepSpec>, Failure> {
    let mut multi = Vec::new();
    for kv in &o.set {
        match split_sweep(kv) {
            Ok((k, vals)) if vals.len() > 1 => multi.push((kv.clone(), k.to_owned())),
            Ok(_) => {}
            // A list with a hole (`--set cpu_threads=1,,2`); other malformed `--set`s are
            // reported as they are applied.
            Err(e) if kv.contains(',') => {
                return Err(Failure::Input(format!(
                    "{}: {e}",
                    shown(&format!("--set {kv}"))
                )))
            }
            Err(_) => {}
        }
    }
    match multi.len() {
        0 => {
            let sc = Scenario::from_file(path).map_err(Failure::Input)?;
            Ok(sc.sweep.as_ref().map(|spec| SweepSpec {
                key: split_sweep(spec).map_or(String::new(), |(k, _)| k.to_owned()),
                origin: format!("{} (sweep = \"{spec}\")", sc.origin_of("sweep")),
                spec: spec.clone(),
            }))
        }
        1 => {
            let (spec, key) = multi.remove(0);
            Ok(Some(SweepSpec {
                origin: shown(&format!("--set {spec}")),
                spec,
                key,
            }))
        }
        _ => Err(Failure::Input(shown(&format!(
            "--set: only one key can be swept at a time ({})",
            multi
                .iter()
                .map(|(kv, _)| kv.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))),
    }
}

/// The largest result file `report` reads.
const MAX_RESULT_BYTES: u64 = 1 << 30;

/// The text of the result file `report` was given (a regular file, UTF-8, at most
/// [`MAX_RESULT_BYTES`]).
fn read_result(path: &Path) -> Result<String, Failure> {
    let bytes = gilbench::input::read_regular(path, MAX_RESULT_BYTES).map_err(|e| {
        Failure::Input(format!(
            "cannot read {}: {}",
            path.display(),
            e.reason(MAX_RESULT_BYTES)
        ))
    })?;
    String::from_utf8(bytes).map_err(|_| {
        Failure::Input(format!(
            "{}: not a gilbench result (not UTF-8 text)",
            path.display()
        ))
    })
}

/// Runs the command clap read; each subcommand's steps are in [`cli::commands`].
fn real_main(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Locks => cli::commands::locks(),
        Command::Keys => cli::commands::keys(),
        Command::Run {
            scenario,
            opts,
            text,
            out,
        } => cli::commands::run(&scenario, &opts, &text, &out)?,
        Command::Compare(a) => cli::commands::compare(&a)?,
        Command::Sweep(a) => cli::commands::sweep(&a)?,
        Command::Report { result, text, out } => cli::commands::report(&result, &text, &out)?,
        Command::Serve {
            scenario,
            listen,
            opts,
            text,
            out,
        } => cli::commands::serve(&scenario, listen.as_deref(), &opts, &text, &out)?,
        Command::Calibrate(a) => cli::calibrate::run(&a)?,
        Command::Load(o) => cli::commands::load(&o)?,
    }
    Ok(())
}

/// Worker threads' panics are reported by the runner as one line; anything else is a bug,
/// reported in one line too. A thread that could not start for want of memory, which the
/// standard library reports by a panic that cannot unwind, ends the process in one line.
fn report_main_thread_panics_in_one_line() {
    std::panic::set_hook(Box::new(|info| {
        cli::oom::exit_if_no_signal_stack(info.payload_as_str().unwrap_or_default());
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        if name == "main" {
            let msg = runner::panic_message(info.payload());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            warn(&format!("internal error{at}: {msg}"));
        }
    }));
}

/// The command line read, or the exit status when there is nothing to run: `--help` and
/// `--version` succeed (help for a missing subcommand is exit 2); any other clap error
/// is one line (its first, without clap's `error: `), exit 2.
fn parse_command_line() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        use clap::error::ErrorKind::*;
        if matches!(
            e.kind(),
            DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
        ) {
            let _ = e.print();
            return if e.kind() == DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
        warn(&one_line(&e.render().to_string()));
        ExitCode::from(2)
    })
}

/// A clap error as one line: its first paragraph (clap puts what is missing, or the values
/// an option takes, on the lines after the first), joined, without clap's `error: `; the
/// usage and tips after it are left out.
fn one_line(rendered: &str) -> String {
    let first: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    match first.join(" ") {
        s if s.is_empty() => "bad command line".to_owned(),
        s => s.trim_start_matches("error: ").to_owned(),
    }
}

/// The exit status of a finished command, its error (if any) printed: 0, 1 for a failed
/// run or output, 2 for bad input.
fn exit_status(outcome: Result<(), Failure>) -> ExitCode {
    match outcome {
        // A closed stdout is no failure (the files were written); any other error writing
        // it is, reported after the files were written.
        Ok(()) => match stdout_error() {
            None => ExitCode::SUCCESS,
            Some(m) => {
                warn(&m);
                ExitCode::from(1)
            }
        },
        // A signal that stopped the command (e.g. while it read its input) gives the exit
        // status, not what it left unfinished.
        Err(Failure::Input(m)) if signals::caught().is_some() => {
            warn(&m);
            ExitCode::from(signals::exit_status(signals::caught().unwrap_or(0)))
        }
        Err(Failure::Input(m)) => {
            warn(&m);
            ExitCode::from(2)
        }
        Err(Failure::Run(m)) => {
            warn(&m);
            ExitCode::from(1)
        }
    }
}

fn main() -> ExitCode {
    report_main_thread_panics_in_one_line();
    signals::install();
    // Fixed now, before anything runs: the outputs record when the command started.
    provenance();
    match parse_command_line() {
        Ok(cli) => exit_status(real_main(cli)),
        Err(code) => code,
    }
}
