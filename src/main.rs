//! The `gilbench` command line: flags map to a scenario, the runner runs, exporters export.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use gilbench::gil::LockKind;
use gilbench::report;
use gilbench::result::ResultFile;
use gilbench::runner::{self, RunError};
use gilbench::scenario::{Scenario, KEYS};

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
    },
}

/// Options that override the scenario file.
#[derive(Args, Debug, Clone, Default)]
struct RunOpts {
    /// The GIL design: tick, timed, mlfq, fifo, none.
    #[arg(long, value_name = "NAME")]
    lock: Option<String>,
    /// CPU-bound interpreter threads.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    cpu_threads: Option<String>,
    /// Switch interval of timed and fifo (e.g. 5ms).
    #[arg(long, value_name = "DURATION")]
    interval: Option<String>,
    /// How long the measured run lasts (e.g. 3s).
    #[arg(long, value_name = "DURATION")]
    duration: Option<String>,
    /// Thread placement: spread, single, none, or a core list like 0,1.
    #[arg(long, value_name = "MODE")]
    pin: Option<String>,
    /// Set any scenario key (`gilbench keys` lists them); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Write the result as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
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

fn load_scenario(path: &Path, o: &RunOpts) -> Result<Scenario, Failure> {
    let mut s = Scenario::from_file(path).map_err(Failure::Input)?;
    for kv in &o.set {
        s.set_kv(kv).map_err(Failure::Input)?;
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
        }
    }
    s.validate().map_err(Failure::Input)?;
    Ok(s)
}

fn write_json(path: &Path, file: &ResultFile) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(file)
        .map_err(|e| Failure::Run(format!("cannot encode results: {e}")))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| Failure::Run(format!("cannot write {}: {e}", path.display())))
}

fn real_main(cli: Cli) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Locks => {
            for k in LockKind::ALL {
                let _ = writeln!(out, "{:<6} {}", k.name(), k.summary());
            }
        }
        Command::Keys => {
            for (k, help, _) in KEYS {
                let _ = writeln!(out, "{k:<16} {help}");
            }
        }
        Command::Run { scenario, opts } => {
            let sc = load_scenario(&scenario, &opts)?;
            let r = runner::run(&sc)?;
            let _ = write!(out, "{}", report::run_table(&r));
            if let Some(p) = &opts.json {
                write_json(p, &ResultFile::new(vec![r]))?;
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // Worker threads' panics are reported by the runner as one line; anything else is a bug,
    // reported in one line too.
    std::panic::set_hook(Box::new(|info| {
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        if name == "main" {
            let msg = runner::panic_message(info.payload());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            eprintln!("gilbench: internal error{at}: {msg}");
        }
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
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
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("bad command line");
            eprintln!("gilbench: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    match real_main(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(m)) => {
            eprintln!("gilbench: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Run(m)) => {
            eprintln!("gilbench: {m}");
            ExitCode::from(1)
        }
    }
}
