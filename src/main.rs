//! The `gilbench` command line: flags map to a scenario, the runner runs, exporters export.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use gilbench::gil::LockKind;
use gilbench::report;
use gilbench::result::ResultFile;
use gilbench::runner::{self, Mode, RunError};
use gilbench::scenario::IoWork;
use gilbench::scenario::{Scenario, KEYS};
use gilbench::signals;
use std::net::{IpAddr, SocketAddr};

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
    },
    /// Run only the load generator against any echo server.
    Load(LoadOpts),
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
    /// Write the result as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
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
            finish(vec![r], &opts.json)?;
        }
        Command::Serve {
            scenario,
            listen,
            opts,
        } => {
            let mut sc = load_scenario(&scenario, &opts)?;
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
                    let _ = writeln!(
                        o,
                        "listening on {} {a}",
                        if sc.io == IoWork::Bulk {
                            "tcp (bulk)".to_owned()
                        } else {
                            sc.transport.to_string()
                        }
                    );
                }
                let _ = o.flush();
            };
            drop(out);
            let r = runner::run_mode(&sc, Mode::Serve, &announce)?;
            print!("{}", report::run_table(&r));
            finish(vec![r], &opts.json)?;
        }
        Command::Load(o) => {
            drop(out);
            let r = load::run(&o)?;
            print!("{}", report::run_table(&r));
            finish(vec![r], &o.json)?;
        }
    }
    Ok(())
}

/// Writes the outputs; then, if a signal cut the run short, exits with 128 + its number.
fn finish(runs: Vec<gilbench::result::RunResult>, json: &Option<PathBuf>) -> Result<(), Failure> {
    let partial = runs.iter().any(|r| r.partial);
    if let Some(p) = json {
        write_json(p, &ResultFile::new(runs))?;
    }
    if partial {
        if let Some(sig) = signals::caught() {
            let _ = std::io::stdout().flush();
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
        })
    }
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
