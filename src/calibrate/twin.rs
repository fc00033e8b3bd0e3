//! The interpreter and the twin's process: finding a Python, running the twin
//! (`workloads/python/twin.py`) with gilbench's load generator against it, reading what it
//! reports, and a twin run as a gilbench result.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::metrics::{distribution, per_sec, Percentiles};
use crate::pin::{self, PinMode};
use crate::result::{CpuSummary, GilSummary, IoSummary, RunResult};
use crate::runner::RunError;
use crate::scenario::{shown, IoWork, Scenario};
use crate::signals;
use crate::workload::loadgen::{run_bulk_send, run_echo_load, LoadResult};

/// The twin's source, run with `python -c`.
pub const TWIN: &str = include_str!("../../workloads/python/twin.py");

/// A Python interpreter that can run the twin.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Python {
    pub path: PathBuf,
    pub implementation: String,
    pub version: String,
}

/// Finds `given`, or `python3` on PATH, and asks it what it is. Bad input when there is none
/// or it does not work.
pub fn find_python(given: Option<&Path>) -> Result<Python, String> {
    let path = match given {
        Some(p) => p.to_path_buf(),
        None => on_path("python3").ok_or_else(|| {
            "no python3 on PATH: calibrate runs the Python twin in a real interpreter; give \
             one with --python PATH"
                .to_owned()
        })?,
    };
    let probe = "import platform, sys; print(platform.python_implementation(), \
                 platform.python_version(), sys.version_info >= (3, 8))";
    let out = output_within(
        Command::new(&path).args(["-c", probe]).stdin(Stdio::null()),
        PROBE_LIMIT,
    )
    .map_err(|e| format!("--python {}: {e}", shown(&path.display().to_string())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [imp, ver, ok] if out.status.success() => {
            if *ok != "True" {
                return Err(format!(
                    "{}: Python {ver} is too old for the twin (3.8 or later)",
                    shown(&path.display().to_string())
                ));
            }
            Ok(Python {
                path,
                implementation: (*imp).to_owned(),
                version: (*ver).to_owned(),
            })
        }
        _ => Err(format!(
            "{}: not a working Python interpreter",
            shown(&path.display().to_string())
        )),
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// What the twin prints at the end (the fields calibrate reads; it prints more).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TwinReport {
    pub twin: u32,
    pub python: String,
    pub implementation: String,
    pub switchinterval_s: f64,
    pub server: TwinServer,
    pub window_s: f64,
    pub cpu: TwinCpu,
    pub ctx_switches: TwinCtx,
    #[serde(default)]
    pub machine: serde_json::Value,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TwinCpu {
    pub threads: usize,
    pub iterations: u64,
    pub iterations_per_sec: f64,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct TwinCtxPair {
    pub voluntary: u64,
    pub involuntary: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TwinCtx {
    pub cpu: TwinCtxPair,
    pub server: TwinCtxPair,
    pub total: TwinCtxPair,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TwinServer {
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub accepted: u64,
    /// bulk: the transfer's size, seconds from the first byte to the end of the receive,
    /// and to the last byte when it completed.
    #[serde(default)]
    pub transfer_bytes: Option<u64>,
    #[serde(default)]
    pub receive_s: Option<f64>,
    #[serde(default)]
    pub transfer_s: Option<f64>,
}

/// Parses the twin's result line.
pub fn parse_report(line: &str) -> Result<TwinReport, String> {
    serde_json::from_str(line)
        .map_err(|e| format!("the twin's result is not what gilbench reads ({e})"))
}

/// One twin run: its report and, with a server, what the load generator saw.
pub struct TwinRun {
    pub report: TwinReport,
    pub load: Option<LoadResult>,
    /// Where the load generator ran.
    pub loadgen: String,
}

/// The twin's command-line arguments for `sc`: a server and the load when `with_server`, the
/// CPU threads alone otherwise.
pub fn twin_args(sc: &Scenario, with_server: bool) -> Result<Vec<String>, String> {
    let secs = |d: Duration| format!("{}", d.as_secs_f64());
    let threads = usize::from(with_server) + sc.cpu_threads;
    let plan = pin::plan(&sc.pin, threads).map_err(|e| format!("--pin {}: {e}", sc.pin))?;
    let bulk = with_server && sc.io == IoWork::Bulk;
    let mut a = vec![
        "--io".to_owned(),
        match (with_server, bulk) {
            (false, _) => "none",
            (true, false) => "echo",
            (true, true) => "bulk",
        }
        .to_owned(),
        "--server".into(),
        sc.server.to_string(),
        "--transport".into(),
        sc.transport.to_string(),
        "--cpu-threads".into(),
        sc.cpu_threads.to_string(),
        "--interval".into(),
        secs(sc.gil.interval),
        "--listen".into(),
        sc.listen.to_string(),
        "--port".into(),
        "0".into(),
        "--warmup".into(),
        // A transfer is measured whole, as gilbench measures it.
        secs(if bulk { Duration::ZERO } else { sc.warmup }),
        "--duration".into(),
        secs(sc.duration),
        "--linger".into(),
        secs(sc.timeout + Duration::from_secs(5)),
        "--request-bytes".into(),
        sc.request_bytes.to_string(),
    ];
    if bulk {
        a.extend([
            "--bulk-mib".into(),
            sc.bulk_mib.to_string(),
            "--recv-bytes".into(),
            sc.recv_bytes.to_string(),
        ]);
    }
    if let Some(cores) = plan.cores.iter().copied().collect::<Option<Vec<usize>>>() {
        if !cores.is_empty() {
            a.push("--cores".into());
            a.push(
                cores
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
    }
    Ok(a)
}

/// Kills the twin if it is still running when dropped.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// How long the interpreter may take to say what it is, and to run the cold-start probe
/// (about a second): past that it is stuck, and calibrate says so instead of waiting.
pub(super) const PROBE_LIMIT: Duration = Duration::from_secs(20);

/// Runs `cmd` to the end, as `Command::output` does, but gives up (killing it) after
/// `limit` or on a signal: a stuck interpreter must not hang calibrate.
pub(super) fn output_within(
    cmd: &mut Command,
    limit: Duration,
) -> Result<std::process::Output, String> {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run it ({e})"))?;
    let mut child = Reap(child);
    let out = read_all(child.0.stdout.take())?;
    let err = read_all(child.0.stderr.take())?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if signals::caught().is_some() {
            return Err("interrupted".into());
        }
        if let Some(st) = child.0.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        if Instant::now() >= deadline {
            // Dropping `child` kills it; its pipes close, so the readers end.
            return Err(format!("it did not finish within {}s", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(std::process::Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// Reads `r` to its end in a thread of its own (a child's pipe, so that a full pipe never
/// blocks the child while its parent waits for it).
fn read_all<R: Read + Send + 'static>(
    r: Option<R>,
) -> Result<std::thread::JoinHandle<Vec<u8>>, String> {
    reader_thread(move || {
        let mut v = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut v);
        }
        v
    })
}

/// A thread that reads a child's output, or why it could not start.
fn reader_thread<T: Send + 'static>(
    read: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, String> {
    std::thread::Builder::new()
        .name("child-output".into())
        .spawn(read)
        .map_err(|e| cannot_start("a thread to read its output", &e))
}

/// Why a thread could not start: out of memory or threads, as the kernel says.
fn cannot_start(what: &str, e: &std::io::Error) -> String {
    format!("cannot start {what}: out of memory or threads ({e})")
}

/// Runs the twin for `sc` (with its server and the load generator, or its CPU threads alone).
pub fn run_twin(py: &Python, sc: &Scenario, with_server: bool) -> Result<TwinRun, RunError> {
    let args = twin_args(sc, with_server).map_err(RunError::BadInput)?;
    let (mut twin, first) = TwinProcess::spawn(py, &args)?.first_line()?;
    let plan = pin::plan(&sc.pin, usize::from(with_server) + sc.cpu_threads)
        .map_err(|e| RunError::BadInput(format!("--pin {}: {e}", sc.pin)))?;
    let (load, loadgen) = if with_server {
        let Some(addr) = listening_on(&first) else {
            let what = format!("printed {:?} instead of its address", shown(&first));
            return Err(twin.failed(&what));
        };
        let core = plan.spare.filter(|_| sc.pin != PinMode::None);
        let r = drive(sc, addr, core);
        drop(twin.stdin.take()); // end of input: the client is done
        match r {
            Ok(l) => (l, loadgen_place(sc, core)),
            Err(e) => {
                let _ = twin.failed("");
                return Err(RunError::Failed(format!(
                    "the load generator against the twin: {e}"
                )));
            }
        }
    } else {
        drop(twin.stdin.take());
        (None, String::new())
    };
    if signals::caught().is_some() {
        return Err(RunError::Failed("interrupted".into()));
    }
    let report = twin.result(sc.warmup + sc.duration + sc.timeout + Duration::from_secs(15))?;
    Ok(TwinRun {
        report,
        load,
        loadgen,
    })
}

/// The address in the twin's first line (`listening on tcp 127.0.0.1:PORT`).
fn listening_on(first: &str) -> Option<SocketAddr> {
    first
        .strip_prefix("listening on ")?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// Where the load generator runs, in words.
fn loadgen_place(sc: &Scenario, core: Option<usize>) -> String {
    match (core, sc.pin == PinMode::None) {
        (Some(c), _) => format!("core {c}"),
        (None, true) => "unpinned".into(),
        (None, false) => "unpinned, shares cores with the twin's threads".into(),
    }
}

/// The twin's process under way: its stdout as lines, its stderr read whole in a thread.
struct TwinProcess {
    child: Reap,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl TwinProcess {
    /// Starts the twin with `args`; threads read its output as it comes.
    fn spawn(py: &Python, args: &[String]) -> Result<TwinProcess, RunError> {
        let child = Command::new(&py.path)
            .arg("-c")
            .arg(TWIN)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| RunError::Failed(format!("cannot start {}: {e}", py.path.display())))?;
        let mut child = Reap(child);
        let stdout = child.0.stdout.take().expect("piped");
        let mut stderr = child.0.stderr.take().expect("piped");
        let stdin = child.0.stdin.take();
        let (tx, lines) = mpsc::channel::<String>();
        let failed = |e: String| RunError::Failed(format!("the Python twin: {e}"));
        reader_thread(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
        .map_err(failed)?;
        let stderr = reader_thread(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        })
        .map_err(failed)?;
        Ok(TwinProcess {
            child,
            stdin,
            lines,
            stderr,
        })
    }

    /// Ends the twin and says how it failed, with the last line it wrote on stderr.
    fn failed(self, what: &str) -> RunError {
        drop(self.child);
        let e = self.stderr.join().unwrap_or_default();
        let last = e.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        RunError::Failed(format!(
            "the Python twin {what}{}",
            if last.is_empty() {
                String::new()
            } else {
                format!(": {}", shown(last.trim()))
            }
        ))
    }

    /// The twin's first line. It prints it at once; a stuck interpreter gets 30 s, and a
    /// signal ends the wait sooner.
    fn first_line(self) -> Result<(TwinProcess, String), RunError> {
        let started = Instant::now();
        loop {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => return Ok((self, l)),
                Err(mpsc::RecvTimeoutError::Timeout)
                    if started.elapsed() < Duration::from_secs(30) =>
                {
                    if signals::caught().is_some() {
                        return Err(RunError::Failed("interrupted".into()));
                    }
                }
                Err(_) => return Err(self.failed("did not start")),
            }
        }
    }

    /// The twin's result: its JSON line, within `wait` (a signal ends the wait sooner).
    fn result(self, wait: Duration) -> Result<TwinReport, RunError> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok(l) if l.trim_start().starts_with('{') => {
                    return parse_report(&l).map_err(RunError::Failed)
                }
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {
                    if signals::caught().is_some() {
                        return Err(RunError::Failed("interrupted".into()));
                    }
                }
                Err(_) => return Err(self.failed("ended without its result")),
            }
        }
    }
}

/// gilbench's load generator against the twin at `addr`, on `core` if given: the echo load
/// (its result), or the bulk sender (nothing: the twin counts what arrived), stopped after
/// `duration` as the runner stops it.
fn drive(
    sc: &Scenario,
    addr: SocketAddr,
    core: Option<usize>,
) -> Result<Option<LoadResult>, String> {
    if sc.io == IoWork::Bulk {
        send_bulk(sc, addr, core).map(|()| None)
    } else {
        echo_load(sc, addr, core).map(Some)
    }
}

/// The bulk transfer to `addr`, cut at `duration` or by a signal.
fn send_bulk(sc: &Scenario, addr: SocketAddr, core: Option<usize>) -> Result<(), String> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let stop = &stop;
        let send = std::thread::Builder::new()
            .name("bulk".into())
            .spawn_scoped(s, move || {
                let _pinned = core.is_some_and(pin::pin_current);
                let r = run_bulk_send(addr, sc.bulk_mib << 20, stop);
                stop.store(true, Ordering::SeqCst);
                r
            })
            .map_err(|e| cannot_start("the bulk sender", &e))?;
        let t0 = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if signals::caught().is_some() || t0.elapsed() >= sc.duration {
                stop.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        send.join()
            .unwrap_or_else(|_| Err("the bulk sender panicked".into()))
            .map(|_| ())
    })
}

/// The echo load against `addr`, as the scenario says, stopped early by a signal.
fn echo_load(sc: &Scenario, addr: SocketAddr, core: Option<usize>) -> Result<LoadResult, String> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let stop = &stop;
        let load = std::thread::Builder::new()
            .name("load".into())
            .spawn_scoped(s, move || {
                let pinned = core.is_some_and(pin::pin_current);
                let cfg = crate::runner::echo_load_config(sc, vec![addr], pinned);
                let r = run_echo_load(&cfg, stop);
                stop.store(true, Ordering::SeqCst);
                r
            })
            .map_err(|e| cannot_start("the load generator", &e))?;
        while !stop.load(Ordering::SeqCst) {
            if signals::caught().is_some() {
                stop.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        load.join()
            .unwrap_or_else(|_| Err("the load generator panicked".into()))
    })
}

/// The client's figures of a twin run with the echo load.
fn echo_io(sc: &Scenario, t: &TwinRun) -> Option<IoSummary> {
    t.load.as_ref().map(|l| IoSummary {
        requests: l.requests,
        requests_per_sec: per_sec(l.requests as f64, l.measured_s),
        bytes: l.bytes,
        transfer_s: None,
        latency_us: Percentiles::of(&l.latency),
        latency_dist: distribution(&l.latency),
        mode: if sc.rate > 0.0 { "open" } else { "closed" }.into(),
        rate: sc.rate,
        failed: l.failed,
        late_sends: l.late,
        lateness_us: Percentiles::of(&l.lateness),
        errors: l.errors,
        first_error: l.first_error.clone(),
        loadgen: t.loadgen.clone(),
        ..Default::default()
    })
}

/// The twin server's figures of a bulk transfer (the twin counts what arrived).
fn bulk_io(t: &TwinRun) -> Option<IoSummary> {
    let (rep, srv) = (&t.report, &t.report.server);
    let total = srv.transfer_bytes?;
    Some(IoSummary {
        requests: srv.requests,
        requests_per_sec: per_sec(srv.requests as f64, rep.window_s),
        bytes: srv.bytes_in,
        transfer_s: srv.transfer_s,
        transfer_bytes: Some(total),
        transfer_complete: Some(srv.bytes_in >= total),
        bytes_per_sec: srv.receive_s.map(|s| srv.bytes_in as f64 / s.max(1e-9)),
        mode: "bulk".into(),
        loadgen: t.loadgen.clone(),
        server: crate::workload::server::ServerStats {
            requests: srv.requests,
            bytes_in: srv.bytes_in,
            accepted: srv.accepted,
            transfer_s: srv.transfer_s,
            receive_s: srv.receive_s,
            ..Default::default()
        },
        ..Default::default()
    })
}

/// A twin run as a gilbench result (lock `cpython`), for the usual outputs.
pub fn twin_result(sc: &Scenario, t: &TwinRun, label: &str, repeat: u32) -> RunResult {
    let rep = &t.report;
    let io = echo_io(sc, t).or_else(|| bulk_io(t));
    let mut params = sc.params_json();
    params["python"] = serde_json::json!(format!("{} {}", rep.implementation, rep.python));
    let tot = rep.ctx_switches.total;
    RunResult {
        scenario: sc.name.clone(),
        lock: "cpython".into(),
        label: format!("cpython {label}"),
        repeat,
        sequence: None,
        params,
        wall_s: rep.window_s,
        measured_s: rep.window_s,
        cpu: (rep.cpu.threads > 0).then_some(CpuSummary {
            threads: rep.cpu.threads,
            ticks: rep.cpu.iterations,
            ticks_per_sec: rep.cpu.iterations_per_sec,
            bytes: 0,
            bytes_per_sec: 0.0,
        }),
        io,
        gil: GilSummary {
            ctx_switches: Some(crate::metrics::CtxSwitches {
                voluntary: tot.voluntary,
                involuntary: tot.involuntary,
            }),
            ..Default::default()
        },
        threads: Vec::new(),
        notes: vec![format!(
            "the Python twin ({} {}): CPU figures are iterations of a pure-Python loop; the GIL is not instrumented",
            rep.implementation, rep.python
        )],
        partial: false,
        failure: None,
        baseline: None,
        hists: t
            .load
            .as_ref()
            .map(|l| [("io-latency".to_owned(), l.latency.clone())].into_iter().collect())
            .unwrap_or_default(),
        intervals: Vec::new(),
        trace: None,
    }
}
