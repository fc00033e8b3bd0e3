//! The `gilbench` command line: flags map to a scenario and options, the runner (or an
//! experiment of several runs) runs, exporters export from one result type.

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use clap::{Args, Parser, Subcommand};

use gilbench::experiment::{self, Progress, Row};
use gilbench::gil::LockKind;
use gilbench::output::{ensure_dir, write_file};
use gilbench::report::{self, export, hgrm, plot};
use gilbench::result::{ResultFile, RunResult};
use gilbench::runner::{self, Instrument, Mode, RunError};
use gilbench::scenario::{parse_locks, split_sweep, IoWork, Scenario, KEYS};
use gilbench::signals;

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
        out: OutputOpts,
    },
    /// Run only the load generator against any echo server.
    Load(LoadOpts),
}

/// What `compare` and `sweep` take.
#[derive(Args, Debug)]
struct ExperimentArgs {
    /// The scenario file (TOML).
    scenario: PathBuf,
    /// The designs, e.g. tick,timed,mlfq,fifo,none.
    #[arg(long, value_name = "A,B,..")]
    locks: Option<String>,
    /// Run each row N times; the table shows the median and the min-max spread.
    #[arg(long, value_name = "N", default_value = "1")]
    repeat: String,
    #[command(flatten)]
    opts: RunOpts,
    #[command(flatten)]
    out: OutputOpts,
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
    /// Set any scenario key (`gilbench keys` lists them); repeatable. For `sweep`, one of
    /// them takes several values: KEY=V1,V2,...
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

/// Where results go.
#[derive(Args, Debug, Clone, Default)]
struct OutputOpts {
    /// Write the result as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write a CSV line per run to PATH (or print it, without PATH).
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    csv: Option<Option<PathBuf>>,
    /// Write the table as Markdown to PATH (or print it, without PATH).
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    markdown: Option<Option<PathBuf>>,
    /// Write an HdrHistogram percentile file (.hgrm) per run and metric into DIR.
    #[arg(long, value_name = "DIR")]
    hgrm: Option<PathBuf>,
    /// Write an HdrHistogram interval log (1 s intervals, a tag per thread and metric).
    #[arg(long, value_name = "PATH")]
    hlog: Option<PathBuf>,
    /// Write SVG plots into DIR.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Write the GIL timeline as Chrome trace-event JSON (Perfetto, chrome://tracing).
    #[arg(long, value_name = "PATH")]
    trace: Option<PathBuf>,
    /// Events the timeline keeps, the newest, over all threads.
    #[arg(long, value_name = "N", default_value = "1000000")]
    trace_events: String,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Replace output files that gilbench did not write.
    #[arg(long)]
    force: bool,
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

fn load_scenario(path: &Path, o: &RunOpts, sweep_key: Option<&str>) -> Result<Scenario, Failure> {
    let mut s = Scenario::from_file(path).map_err(Failure::Input)?;
    for kv in &o.set {
        if sweep_key.is_some_and(|k| kv.split_once('=').is_some_and(|(key, _)| key.trim() == k)) {
            continue;
        }
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
        trace_events: match &out.trace {
            Some(_) => Some(positive("--trace-events", &out.trace_events, 1 << 30)? as usize),
            None => None,
        },
        hlog_interval: out.hlog.as_ref().map(|_| Duration::from_secs(1)),
    })
}

/// A progress bar on stderr for experiments longer than a second, advanced by elapsed time
/// and naming the current design/value; none when stderr is not a terminal or with --quiet.
struct Bar {
    bar: indicatif::ProgressBar,
    /// (expected time of the runs before the current one, when the current one started,
    /// its expected time).
    at: std::sync::Mutex<(Duration, Instant, Duration)>,
}

impl Bar {
    fn new(total: Duration, quiet: bool) -> Option<Self> {
        if quiet || !std::io::stderr().is_terminal() || total <= Duration::from_secs(1) {
            return None;
        }
        let bar = indicatif::ProgressBar::new(total.as_millis() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {percent:>3}% {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Some(Bar {
            bar,
            at: std::sync::Mutex::new((Duration::ZERO, Instant::now(), Duration::ZERO)),
        })
    }

    fn update(&self, p: Progress<'_>) {
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        match p {
            Progress::Start {
                index,
                total,
                label,
                repeat,
                expected,
            } => {
                let before = at.0 + at.2;
                *at = (before, Instant::now(), expected);
                let rep = if repeat > 0 {
                    format!(" (repeat {})", repeat + 1)
                } else {
                    String::new()
                };
                self.bar
                    .set_message(format!("{label}{rep} [{index}/{total}]"));
            }
            Progress::Done => self.bar.finish_and_clear(),
        }
    }

    fn tick(&self) {
        let at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        let pos = at.0 + at.1.elapsed().min(at.2);
        self.bar.set_position(pos.as_millis() as u64);
    }
}

fn run_rows(rows: Vec<Row>, repeat: u32, out: &OutputOpts) -> Result<Vec<RunResult>, Failure> {
    let inst = instrument(out)?;
    let total: Duration = rows
        .iter()
        .map(|r| experiment::expected(&r.scenario))
        .sum::<Duration>()
        * repeat;
    let bar = Bar::new(total, out.quiet);
    let done = std::sync::atomic::AtomicBool::new(false);
    let runs = std::thread::scope(|s| {
        if let Some(b) = &bar {
            let done = &done;
            s.spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    b.tick();
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        let r = experiment::execute(&rows, repeat, &inst, &mut |p| {
            if let Some(b) = &bar {
                b.update(p);
            }
        });
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    })?;
    Ok(runs)
}

/// Writes every requested output for `runs`.
fn write_outputs(
    runs: &[RunResult],
    out: &OutputOpts,
    sweep_key: Option<&str>,
) -> Result<(), Failure> {
    let fail = Failure::Run;
    if let Some(p) = &out.json {
        write_file(p, export::json(runs.to_vec()).as_bytes(), out.force).map_err(fail)?;
    }
    match &out.csv {
        Some(Some(p)) => {
            write_file(p, export::csv(runs).as_bytes(), out.force).map_err(Failure::Run)?
        }
        Some(None) => print!("{}", export::csv(runs)),
        None => {}
    }
    match &out.markdown {
        Some(Some(p)) => {
            write_file(p, export::markdown(runs).as_bytes(), out.force).map_err(Failure::Run)?
        }
        Some(None) => print!("{}", export::markdown(runs)),
        None => {}
    }
    if let Some(dir) = &out.hgrm {
        ensure_dir(dir).map_err(Failure::Run)?;
        let mut written = 0;
        for r in runs {
            for (metric, h) in &r.hists {
                let name = format!(
                    "{}_{}_{}_{}.hgrm",
                    file_part(&r.scenario),
                    file_part(if r.label.is_empty() {
                        &r.lock
                    } else {
                        &r.label
                    }),
                    r.repeat,
                    metric
                );
                write_file(&dir.join(name), hgrm::hgrm(h).as_bytes(), out.force)
                    .map_err(Failure::Run)?;
                written += 1;
            }
        }
        if written == 0 {
            eprintln!("gilbench: note: no histograms to write to {} (results loaded from JSON keep only percentiles)", dir.display());
        }
    }
    if let Some(p) = &out.hlog {
        let mut series = Vec::new();
        for r in runs {
            let prefix = if runs.len() > 1 {
                format!(
                    "{}.{}.",
                    file_part(if r.label.is_empty() {
                        &r.lock
                    } else {
                        &r.label
                    }),
                    r.repeat
                )
            } else {
                String::new()
            };
            series.extend(
                r.intervals
                    .iter()
                    .map(|(t, iv)| (format!("{prefix}{t}"), iv.clone())),
            );
        }
        let start =
            SystemTime::now() - Duration::from_secs_f64(runs.iter().map(|r| r.wall_s).sum::<f64>());
        let bytes = hgrm::hlog(&series, start).map_err(Failure::Run)?;
        write_file(p, &bytes, out.force).map_err(Failure::Run)?;
    }
    if let Some(p) = &out.trace {
        let traces: Vec<&serde_json::Value> =
            runs.iter().filter_map(|r| r.trace.as_ref()).collect();
        let doc = match traces.as_slice() {
            [] => None,
            [one] => Some((*one).clone()),
            many => Some(merge_traces(many)),
        };
        if let Some(doc) = doc {
            write_file(p, doc.to_string().as_bytes(), out.force).map_err(Failure::Run)?;
        } else {
            eprintln!("gilbench: note: no timeline to write to {} (results loaded from JSON keep no timeline)", p.display());
        }
    }
    if let Some(dir) = &out.plot {
        ensure_dir(dir).map_err(Failure::Run)?;
        let scen = file_part(&runs.first().map_or(String::new(), |r| r.scenario.clone()));
        if let Some(key) = sweep_key {
            let svg = plot::sweep(runs, key).map_err(Failure::Run)?;
            let name = format!("{scen}_sweep_{}.svg", file_part(key));
            write_file(&dir.join(name), svg.as_bytes(), out.force).map_err(Failure::Run)?;
        }
        if let Some(svg) = plot::latency_percentiles(runs).map_err(Failure::Run)? {
            write_file(
                &dir.join(format!("{scen}_latency.svg")),
                svg.as_bytes(),
                out.force,
            )
            .map_err(Failure::Run)?;
        } else if sweep_key.is_none() {
            eprintln!("gilbench: note: no client-side latency to plot (a CPU-only scenario)");
        }
    }
    Ok(())
}

/// Several runs' timelines side by side: each run becomes its own process in the viewer.
fn merge_traces(traces: &[&serde_json::Value]) -> serde_json::Value {
    let mut events = Vec::new();
    let mut runs = Vec::new();
    for (i, t) in traces.iter().enumerate() {
        let pid = i + 1;
        let meta = &t["otherData"];
        let name = format!(
            "{} {}",
            meta["scenario"].as_str().unwrap_or("?"),
            meta["lock"].as_str().unwrap_or("?")
        );
        events.push(serde_json::json!({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": name}}));
        for e in t["traceEvents"].as_array().into_iter().flatten() {
            let mut e = e.clone();
            e["pid"] = serde_json::json!(pid);
            events.push(e);
        }
        runs.push(meta.clone());
    }
    serde_json::json!({"traceEvents": events, "displayTimeUnit": "ns", "otherData": {"gilbench": env!("CARGO_PKG_VERSION"), "runs": runs}})
}

fn file_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes the outputs; then, if a signal cut the run short, exits with 128 + its number.
fn finish(runs: &[RunResult], out: &OutputOpts, sweep_key: Option<&str>) -> Result<(), Failure> {
    write_outputs(runs, out, sweep_key)?;
    if runs.iter().any(|r| r.partial) || runs.is_empty() {
        if let Some(sig) = signals::caught() {
            let _ = std::io::stdout().flush();
            eprintln!(
                "gilbench: interrupted by {}; the results gathered so far were written",
                signals::name(sig)
            );
            std::process::exit(i32::from(signals::exit_status(sig)));
        }
    }
    Ok(())
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
fn sweep_spec(o: &RunOpts, path: &Path) -> Result<Option<String>, Failure> {
    let mut multi = Vec::new();
    for kv in &o.set {
        if let Ok((_, vals)) = split_sweep(kv) {
            if vals.len() > 1 {
                multi.push(kv.clone());
            }
        }
    }
    match multi.len() {
        0 => Ok(Scenario::from_file(path).map_err(Failure::Input)?.sweep),
        1 => Ok(Some(multi.remove(0))),
        _ => Err(Failure::Input(format!(
            "--set: only one key can be swept at a time ({})",
            multi.join(", ")
        ))),
    }
}

fn real_main(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Locks => {
            for k in LockKind::ALL {
                println!("{:<6} {}", k.name(), k.summary());
            }
        }
        Command::Keys => {
            for (k, help, _) in KEYS {
                println!("{k:<18} {help}");
            }
        }
        Command::Run {
            scenario,
            opts,
            out,
        } => {
            let sc = load_scenario(&scenario, &opts, None)?;
            let r = runner::run_mode(&sc, Mode::Run, &instrument(&out)?, &|_| {})?;
            print!("{}", report::run_table(&r));
            finish(&[r], &out, None)?;
        }
        Command::Compare(ExperimentArgs {
            scenario,
            locks,
            repeat,
            opts,
            out,
        }) => {
            let sc = load_scenario(&scenario, &opts, None)?;
            let repeat = positive("--repeat", &repeat, 1000)? as u32;
            let locks = match &locks {
                Some(l) => {
                    parse_locks(l).map_err(|e| Failure::Input(format!("--locks {l}: {e}")))?
                }
                None => sc.compare_locks.clone(),
            };
            let runs = run_rows(experiment::compare_rows(&sc, &locks), repeat, &out)?;
            print!("{}", report::summary_text(&runs));
            finish(&runs, &out, None)?;
        }
        Command::Sweep(ExperimentArgs {
            scenario,
            locks,
            repeat,
            opts,
            out,
        }) => {
            let Some(spec) = sweep_spec(&opts, &scenario)? else {
                return Err(Failure::Input(format!(
                    "{}: nothing to sweep: give --set KEY=V1,V2,... (or a `sweep` key in the scenario)",
                    scenario.display()
                )));
            };
            let key = split_sweep(&spec).map_err(Failure::Input)?.0.to_owned();
            let sc = load_scenario(&scenario, &opts, Some(&key))?;
            let repeat = positive("--repeat", &repeat, 1000)? as u32;
            let locks = match &locks {
                Some(l) => {
                    parse_locks(l).map_err(|e| Failure::Input(format!("--locks {l}: {e}")))?
                }
                None => Vec::new(),
            };
            let rows = experiment::sweep_rows(&sc, &spec, &locks).map_err(Failure::Input)?;
            let runs = run_rows(rows, repeat, &out)?;
            print!("{}", report::summary_text(&runs));
            finish(&runs, &out, Some(&key))?;
        }
        Command::Report { result, out } => {
            let text = std::fs::read_to_string(&result)
                .map_err(|e| Failure::Input(format!("cannot read {}: {e}", result.display())))?;
            let file: ResultFile = serde_json::from_str(&text).map_err(|e| {
                Failure::Input(format!("{}: not a gilbench result ({e})", result.display()))
            })?;
            if file.runs.is_empty() {
                return Err(Failure::Input(format!(
                    "{}: the result holds no runs",
                    result.display()
                )));
            }
            if out.csv == Some(None) || out.markdown == Some(None) {
                // The export printed on stdout replaces the table.
            } else if file.runs.len() == 1 && file.runs[0].label == file.runs[0].lock {
                print!("{}", report::run_table(&file.runs[0]));
            } else {
                print!("{}", report::summary_text(&file.runs));
            }
            let sweep_key = file.runs.iter().find_map(|r| {
                r.label
                    .rsplit_once(' ')
                    .map_or(r.label.as_str(), |(_, kv)| kv)
                    .split_once('=')
                    .map(|(k, _)| k.to_owned())
            });
            write_outputs(&file.runs, &out, sweep_key.as_deref())?;
        }
        Command::Serve {
            scenario,
            listen,
            opts,
            out,
        } => {
            let mut sc = load_scenario(&scenario, &opts, None)?;
            if let Some(l) = &listen {
                apply_listen(&mut sc, l)?;
            }
            if sc.io == IoWork::None {
                return Err(Failure::Input(format!(
                    "{}: serve needs a socket scenario (io = \"echo\" or \"bulk\")",
                    scenario.display()
                )));
            }
            let announce = |addrs: &[SocketAddr]| {
                let mut o = std::io::stdout().lock();
                for a in addrs {
                    let kind = if sc.io == IoWork::Bulk {
                        "tcp (bulk)".to_owned()
                    } else {
                        sc.transport.to_string()
                    };
                    let _ = writeln!(o, "listening on {kind} {a}");
                }
                let _ = o.flush();
            };
            let r = runner::run_mode(&sc, Mode::Serve, &instrument(&out)?, &announce)?;
            print!("{}", report::run_table(&r));
            finish(&[r], &out, None)?;
        }
        Command::Load(o) => {
            let r = load::run(&o)?;
            print!("{}", report::run_table(&r));
            finish(&[r], &o.out, None)?;
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
    signals::install();
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

mod load {
    //! `gilbench load`: the load generator alone, against any echo server.

    use std::net::{SocketAddr, ToSocketAddrs};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use gilbench::metrics::Percentiles;
    use gilbench::result::{GilSummary, IoSummary, RunResult};
    use gilbench::scenario::{cli_value, Scenario};
    use gilbench::signals;
    use gilbench::workload::loadgen::{run_echo_load, LoadConfig};

    use super::{Failure, LoadOpts};

    /// Reads each flag through the scenario key of the same meaning, so the checks and
    /// messages are the ones `run` gives.
    fn scenario_of(o: &LoadOpts) -> Result<Scenario, Failure> {
        let mut s = Scenario::default();
        let flags = [
            ("transport", "--transport", &o.transport),
            ("rate", "--rate", &o.rate),
            ("duration", "--duration", &o.duration),
            ("connections", "--connections", &o.connections),
            ("request_bytes", "--request-bytes", &o.request_bytes),
            ("warmup", "--warmup", &o.warmup),
            ("timeout", "--timeout", &o.timeout),
        ];
        for (key, flag, raw) in flags {
            let v = cli_value(raw).map_err(|e| Failure::Input(format!("{flag} {raw}: {e}")))?;
            let v = match (key, v) {
                ("duration" | "warmup" | "timeout" | "transport", toml::Value::Integer(i)) => {
                    toml::Value::String(i.to_string())
                }
                (_, v) => v,
            };
            s.set_value(key, &v, &format!("{flag} {raw}"))
                .map_err(Failure::Input)?;
        }
        if s.transport == gilbench::workload::server::Transport::Udp && s.request_bytes < 8 {
            return Err(Failure::Input(format!(
                "--request-bytes {}: at least 8 over UDP (requests carry a sequence number)",
                s.request_bytes
            )));
        }
        Ok(s)
    }

    fn resolve(target: &str) -> Result<SocketAddr, Failure> {
        let mut addrs = target.to_socket_addrs().map_err(|e| {
            let why = if e.kind() == std::io::ErrorKind::InvalidInput {
                "not HOST:PORT".to_owned()
            } else {
                format!("cannot resolve ({e})")
            };
            Failure::Input(format!("--connect {target}: {why}"))
        })?;
        addrs
            .next()
            .ok_or_else(|| Failure::Input(format!("--connect {target}: the name has no address")))
    }

    pub fn run(o: &LoadOpts) -> Result<RunResult, Failure> {
        let s = scenario_of(o)?;
        let addr = resolve(&o.connect)?;
        let cfg = LoadConfig {
            transport: s.transport,
            targets: vec![addr],
            connections: s.connections,
            rate: s.rate,
            request_bytes: s.request_bytes,
            warmup: s.warmup,
            duration: s.duration,
            timeout: s.timeout,
            busy_wait: false,
            intervals: None,
        };
        let stop = AtomicBool::new(false);
        let t0 = Instant::now();
        let res = std::thread::scope(|scope| {
            let stop = &stop;
            let watcher = scope.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    if signals::caught().is_some() {
                        stop.store(true, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
            let r = run_echo_load(&cfg, stop);
            stop.store(true, Ordering::SeqCst);
            let _ = watcher.join();
            r
        })
        .map_err(Failure::Run)?;
        let mut notes = Vec::new();
        if let Some(e) = &res.first_error {
            notes.push(format!("{} connection errors, the first: {e}", res.errors));
        }
        let partial = signals::caught().is_some();
        Ok(RunResult {
            scenario: "load".into(),
            lock: "external".into(),
            params: serde_json::json!({
                "connect": addr.to_string(),
                "transport": s.transport,
                "connections": s.connections,
                "rate": s.rate,
                "request_bytes": s.request_bytes,
                "duration_s": s.duration.as_secs_f64(),
                "warmup_s": s.warmup.as_secs_f64(),
                "timeout_s": s.timeout.as_secs_f64(),
                "pin": "none",
            }),
            wall_s: t0.elapsed().as_secs_f64(),
            measured_s: res.measured_s,
            cpu: None,
            io: Some(IoSummary {
                requests: res.requests,
                requests_per_sec: if res.measured_s > 0.0 {
                    res.requests as f64 / res.measured_s
                } else {
                    0.0
                },
                bytes: res.bytes,
                transfer_s: None,
                latency_us: Percentiles::of(&res.latency),
                latency_dist: gilbench::metrics::distribution(&res.latency),
                mode: if s.rate > 0.0 {
                    "open".into()
                } else {
                    "closed".into()
                },
                rate: s.rate,
                failed: res.failed,
                late_sends: res.late,
                lateness_us: Percentiles::of(&res.lateness),
                errors: res.errors,
                first_error: res.first_error,
                loadgen: "this process, unpinned".into(),
                ..Default::default()
            }),
            gil: GilSummary::default(),
            threads: Vec::new(),
            notes,
            partial,
            label: "load".into(),
            repeat: 0,
            hists: [("io-latency".to_owned(), res.latency.clone())]
                .into_iter()
                .collect(),
            intervals: Vec::new(),
            trace: None,
        })
    }
}
