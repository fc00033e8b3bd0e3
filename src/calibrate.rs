//! `gilbench calibrate`: the `timed` model held against CPython on this machine, with the same
//! client.
//!
//! For each condition (the scenario with one value of every listed key), and each repetition,
//! the Python twin (`workloads/python/twin.py`, embedded in the binary and run with `python
//! -c`) and gilbench's `timed` model run the same server structure, CPU threads, switch
//! interval and pinning, one after the other, each driven by gilbench's own load generator
//! (for the twin: in this process, over loopback, placed as the runner would place it). When
//! the condition has CPU threads, each side also runs them alone (no server, a second at
//! most), for the CPU throughput kept.
//!
//! A bulk scenario (`io = "bulk"`) is calibrated on what a transfer means instead: the time
//! it took, the bytes received per second, the CPU throughput kept and the context switches
//! during it, and its slowdown against the same condition without CPU threads; both sides
//! measure the transfer whole (no warm-up), and a transfer the run's end cuts short counts
//! with the bytes it received.
//!
//! Per request, the *intervals waited* is `round(latency / interval)` of its client-side
//! round trip (0 when it did not wait for a CPU thread at all, 1 for one switch interval,
//! ...): the same client measures both sides, so the buckets are comparable whatever the
//! server does inside. The table shows each side's medians over the repetitions, their ratio
//! (gilbench / CPython), the bucket differences in percentage points, and whether the model
//! is within the fidelity goals (req/s and p50 within 25%, every bucket within 10 points).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::gil::LockKind;
use crate::metrics::{distribution, per_sec, Hist, Percentiles};
use crate::pin::{self, PinMode};
use crate::result::{CpuSummary, GilSummary, IoSummary, RunResult};
use crate::runner::{self, Instrument, Mode, RunError};
use crate::scenario::{shown, split_sweep, IoWork, Scenario, ServerKind, KEYS};
use crate::signals;
use crate::units::{format_duration, us};
use crate::workload::loadgen::{run_bulk_send, run_echo_load, LoadConfig, LoadResult};
use crate::workload::{calibrate_tick_ns, TickHasher};

/// The twin's source, run with `python -c`.
pub const TWIN: &str = include_str!("../workloads/python/twin.py");

/// The cold-start probe's source (`workloads/python/coldstart.py`), run with `python -c`.
pub const COLD_START: &str = include_str!("../workloads/python/coldstart.py");

/// How long each side sleeps before its cold step: long enough that this VM's cores have lost
/// the sleeper's cache lines (at 5 ms the slowdown still varied 2x from run to run here).
const COLD_SLEEP_MS: u32 = 20;
/// Timed steps per side and sleep.
const COLD_ROUNDS: u32 = 50;

/// How much slower a side's work runs right after a wait on this machine: medians at once and
/// right after sleeping `slept_ms`. For CPython a small pure-Python step
/// (`workloads/python/coldstart.py`); for gilbench its `call_work` of ticks (`call_work_us`).
/// Where cores lose a sleeper's cache lines, the interpreter's work after every wait grows by
/// tens of microseconds and the model's by a few, which can tip the races compared here
/// (docs/calibration.md).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ColdStart {
    pub at_once_us: f64,
    pub slept_ms: u32,
    pub after_sleep_us: f64,
    /// The model's side: the `call_work` timed (first condition's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_work_us: Option<f64>,
}

impl ColdStart {
    /// Microseconds the sleep added.
    pub fn added_us(&self) -> f64 {
        self.after_sleep_us - self.at_once_us
    }
}

/// Runs the cold-start probe in `py` (about a second).
pub fn cold_start(py: &Python) -> Result<ColdStart, String> {
    let out = output_within(
        Command::new(&py.path)
            .args(["-c", COLD_START, "--sleeps-ms"])
            .arg(format!("0,{COLD_SLEEP_MS}"))
            .arg("--rounds")
            .arg(COLD_ROUNDS.to_string())
            .stdin(Stdio::null()),
        PROBE_LIMIT,
    )?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_owned());
    }
    parse_cold_start(&String::from_utf8_lossy(&out.stdout))
}

/// The probe's two lines (`after   0.0 ms asleep: step p50    0.84 us, ...`, then the same
/// after the sleep) as a [`ColdStart`]; anything else (other sleeps, a time that is not a
/// positive number) is an error.
pub fn parse_cold_start(text: &str) -> Result<ColdStart, String> {
    let parse = |line: &str| -> Option<(f64, f64)> {
        let rest = line.trim().strip_prefix("after")?;
        let (ms, rest) = rest.split_once("ms asleep: step p50")?;
        let us = rest.split_whitespace().next()?;
        Some((ms.trim().parse().ok()?, us.parse().ok()?))
    };
    let got: Vec<(f64, f64)> = text.lines().filter_map(parse).collect();
    let time = |us: f64| us.is_finite() && us > 0.0;
    match got.as_slice() {
        [(once_ms, once), (slept, after)]
            if *once_ms == 0.0
                && *slept == f64::from(COLD_SLEEP_MS)
                && time(*once)
                && time(*after) =>
        {
            Ok(ColdStart {
                at_once_us: *once,
                slept_ms: COLD_SLEEP_MS,
                after_sleep_us: *after,
                call_work_us: None,
            })
        }
        _ => Err(format!("unexpected output {:?}", shown(text.trim()))),
    }
}

/// The same measure for the model's GIL-held work between calls, in this process: `call_work`
/// worth of ticks at once and right after sleeping as long as the probe does. None when there
/// is no `call_work`, or when a signal came (it sleeps a second in all).
pub fn model_cold_start(tick_bytes: usize, call_work: Duration) -> Option<ColdStart> {
    if call_work.is_zero() {
        return None;
    }
    let ticks =
        ((call_work.as_nanos() as f64 / calibrate_tick_ns(tick_bytes)).ceil() as u64).max(1);
    let mut h = TickHasher::new(tick_bytes, 11);
    let mut median_of = |sleep: Duration| {
        let mut v = Vec::with_capacity(COLD_ROUNDS as usize);
        for _ in 0..COLD_ROUNDS {
            if signals::caught().is_some() {
                return None;
            }
            if !sleep.is_zero() {
                std::thread::sleep(sleep);
            }
            let t = Instant::now();
            for _ in 0..ticks {
                h.tick();
            }
            v.push(t.elapsed().as_secs_f64() * 1e6);
        }
        Some(median(v))
    };
    let at_once_us = median_of(Duration::ZERO)?;
    let after_sleep_us = median_of(Duration::from_millis(u64::from(COLD_SLEEP_MS)))?;
    std::hint::black_box(h.finish());
    Some(ColdStart {
        at_once_us,
        slept_ms: COLD_SLEEP_MS,
        after_sleep_us,
        call_work_us: Some(call_work.as_secs_f64() * 1e6),
    })
}

/// The note a calibration carries about how much a wait slows each side's work down. It
/// draws the conclusion only when the interpreter's step gains far more than the model's
/// `call_work`.
pub fn cold_start_note(cpython: &Result<ColdStart, String>, model: Option<&ColdStart>) -> String {
    let model_part = match model {
        Some(m) => format!(
            "gilbench's call_work ({} us of ticks) {:+.1} us ({:.1} against {:.1} us)",
            (m.call_work_us.unwrap_or(0.0) * 100.0).round() / 100.0,
            m.added_us(),
            m.after_sleep_us,
            m.at_once_us
        ),
        None => "gilbench does no call_work".to_owned(),
    };
    let c = match cpython {
        Ok(c) => c,
        Err(e) => {
            return format!(
                "could not time the interpreter's cold start ({e}); right after \
                 {COLD_SLEEP_MS} ms asleep {model_part}"
            )
        }
    };
    let model_added = model.map_or(0.0, ColdStart::added_us).max(1.0);
    let verdict = if c.added_us() >= 5.0 && c.added_us() > 3.0 * model_added {
        "the interpreter slows down after a wait far more than the model's call_work \
         here, which can tip the hand-offs that turn on microseconds (two CPU threads, long \
         intervals; docs/calibration.md)"
    } else {
        "comparable here: this cause of misfit does not apply"
    };
    format!(
        "right after {} ms asleep, a small pure-Python step in this interpreter took {:+.1} us \
         ({:.1} against {:.2} us at once), {model_part}: {verdict}",
        c.slept_ms,
        c.added_us(),
        c.after_sleep_us,
        c.at_once_us
    )
}

/// The CSV header of a calibrate table (one line per condition and side).
pub const CSV_HEADER: &str = "condition,side,repeats,requests_per_sec,latency_p50_us,latency_p99_us,cpu_kept,ctx_switches_per_sec,waited_0,waited_1,waited_2,waited_3_plus,fit";

/// The CSV header of a calibrate table of a bulk scenario.
pub const BULK_CSV_HEADER: &str = "condition,side,repeats,transfer_s,mb_per_sec,received,cpu_kept,ctx_switches_per_sec,slowdown,unfinished,fit";

/// Fidelity goals: req/s and p50 within this factor, ...
pub const GOAL_RATIO: f64 = 0.25;
/// ... and every intervals-waited bucket within this many percentage points.
pub const GOAL_POINTS: f64 = 10.0;

/// Longest CPU-alone run (per side, per condition and repetition).
const ALONE_MAX: Duration = Duration::from_secs(1);

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

/// One condition: a label and the scenario both sides run.
#[derive(Clone, Debug)]
pub struct Condition {
    pub label: String,
    pub scenario: Scenario,
}

/// Keys the twin mirrors; any other key changes the model only (e.g. `call_work`, `spin`).
pub const MIRRORED: &[&str] = &[
    "server",
    "cpu_threads",
    "interval",
    "pin",
    "transport",
    "request_bytes",
    "connections",
    "rate",
    "warmup",
    "duration",
    "timeout",
    "io",
    "bulk_mib",
    "recv_bytes",
];

/// Checks that the twin can run `sc` as the model does.
pub fn check(sc: &Scenario) -> Result<(), String> {
    let at = |k: &str| sc.origin_of(k);
    if sc.io == IoWork::None {
        return Err(format!(
            "{}: calibrate needs a socket scenario (io = \"echo\" or \"bulk\")",
            at("io")
        ));
    }
    if sc.io_threads != 1 {
        return Err(format!(
            "{}: calibrate runs one server (io_threads = 1)",
            at("io_threads")
        ));
    }
    if sc.cpu_work != crate::scenario::CpuWork::CpuHash {
        return Err(format!(
            "{}: calibrate's CPU threads are pure-Python loops: cpu_work must be cpu-hash",
            at("cpu_work")
        ));
    }
    if !sc.listen.is_loopback() {
        return Err(format!(
            "{}: calibrate runs both servers on a loopback address, not {}",
            at("listen"),
            sc.listen
        ));
    }
    if sc.fault.is_some() {
        return Err(format!("{}: calibrate runs without faults", at("fault")));
    }
    sc.validate()
}

/// Every combination of the listed values (`KEY=V1,V2,...`, each key once), in the order
/// given, the last key varying fastest; `base` as it is when there are none. Every scenario
/// runs `timed`.
pub fn conditions(base: &Scenario, lists: &[String]) -> Result<Vec<Condition>, String> {
    let mut axes: Vec<(&'static str, Vec<String>, String)> = Vec::new();
    for spec in lists {
        let origin = shown(&format!("--set {spec}"));
        let (k, vals) = split_sweep(spec).map_err(|e| format!("{origin}: {e}"))?;
        let Some((key, _, _)) = KEYS.iter().find(|(n, _, _)| *n == k) else {
            return Err(format!(
                "{origin}: '{}' is not a key (`gilbench keys` lists them)",
                shown(k)
            ));
        };
        if *key == "lock" || *key == "locks" || *key == "sweep" {
            return Err(format!(
                "{origin}: calibrate always runs timed; '{key}' cannot vary"
            ));
        }
        if *key == "io" {
            return Err(format!(
                "{origin}: echo and bulk make different tables; calibrate one at a time"
            ));
        }
        if axes.iter().any(|(a, _, _)| a == key) {
            return Err(format!("{origin}: key '{key}' is listed twice"));
        }
        let mut seen: Vec<&String> = Vec::new();
        for v in &vals {
            if seen.contains(&v) {
                return Err(format!("{origin}: '{}' is named twice", shown(v)));
            }
            seen.push(v);
        }
        axes.push((key, vals, origin));
    }
    let mut out = vec![(base.clone(), Vec::<String>::new())];
    for (key, vals, origin) in &axes {
        let mut next = Vec::new();
        for (s, parts) in &out {
            for v in vals {
                let mut s = s.clone();
                s.set_swept(key, v, origin)?;
                let mut parts = parts.clone();
                parts.push(format!("{key}={v}"));
                next.push((s, parts));
            }
        }
        out = next;
    }
    out.into_iter()
        .map(|(mut s, parts)| {
            s.lock = LockKind::Timed;
            check(&s)?;
            Ok(Condition {
                label: label_of(&s, &parts),
                scenario: s,
            })
        })
        .collect()
}

/// The condition's label: server structure, CPU threads, interval and pinning, then any other
/// listed key.
fn label_of(s: &Scenario, parts: &[String]) -> String {
    let mut l = format!(
        "server={} cpu_threads={} interval={} pin={}",
        s.server,
        s.cpu_threads,
        format_duration(s.gil.interval),
        s.pin
    );
    for p in parts {
        let k = p.split('=').next().unwrap_or_default();
        if !["server", "cpu_threads", "interval", "pin"].contains(&k) {
            l.push(' ');
            l.push_str(p);
        }
    }
    l
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
const PROBE_LIMIT: Duration = Duration::from_secs(20);

/// Runs `cmd` to the end, as `Command::output` does, but gives up (killing it) after
/// `limit` or on a signal: a stuck interpreter must not hang calibrate.
fn output_within(cmd: &mut Command, limit: Duration) -> Result<std::process::Output, String> {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run it ({e})"))?;
    let mut child = Reap(child);
    let out = read_all(child.0.stdout.take());
    let err = read_all(child.0.stderr.take());
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
fn read_all<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut v);
        }
        v
    })
}

/// Runs the twin for `sc` (with its server and the load generator, or its CPU threads alone).
pub fn run_twin(py: &Python, sc: &Scenario, with_server: bool) -> Result<TwinRun, RunError> {
    let args = twin_args(sc, with_server).map_err(RunError::BadInput)?;
    let child = Command::new(&py.path)
        .arg("-c")
        .arg(TWIN)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RunError::Failed(format!("cannot start {}: {e}", py.path.display())))?;
    let mut child = Reap(child);
    let stdout = child.0.stdout.take().expect("piped");
    let mut stderr = child.0.stderr.take().expect("piped");
    let mut stdin = child.0.stdin.take();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_text = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let failed = |what: &str, child: Reap| -> RunError {
        drop(child);
        let e = err_text.join().unwrap_or_default();
        let last = e.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
        RunError::Failed(format!(
            "the Python twin {what}{}",
            if last.is_empty() {
                String::new()
            } else {
                format!(": {}", shown(last.trim()))
            }
        ))
    };
    // The twin prints its first line at once; a stuck interpreter gets 30 s, and a signal
    // ends the wait sooner.
    let started = Instant::now();
    let first = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => break l,
            Err(mpsc::RecvTimeoutError::Timeout) if started.elapsed() < Duration::from_secs(30) => {
                if signals::caught().is_some() {
                    return Err(RunError::Failed("interrupted".into()));
                }
            }
            Err(_) => return Err(failed("did not start", child)),
        }
    };
    let plan = pin::plan(&sc.pin, usize::from(with_server) + sc.cpu_threads)
        .map_err(|e| RunError::BadInput(format!("--pin {}: {e}", sc.pin)))?;
    let mut loadgen = String::new();
    let load = if with_server {
        let Some(addr) = first
            .strip_prefix("listening on ")
            .and_then(|r| r.split_whitespace().last())
            .and_then(|a| a.parse::<SocketAddr>().ok())
        else {
            return Err(failed(
                &format!("printed {:?} instead of its address", shown(&first)),
                child,
            ));
        };
        let core = if sc.pin == PinMode::None {
            None
        } else {
            plan.spare
        };
        loadgen = match (core, sc.pin == PinMode::None) {
            (Some(c), _) => format!("core {c}"),
            (None, true) => "unpinned".into(),
            (None, false) => "unpinned, shares cores with the twin's threads".into(),
        };
        let r = drive(sc, addr, core);
        drop(stdin.take()); // end of input: the client is done
        match r {
            Ok(l) => l,
            Err(e) => {
                let _ = failed("", child);
                return Err(RunError::Failed(format!(
                    "the load generator against the twin: {e}"
                )));
            }
        }
    } else {
        drop(stdin.take());
        None
    };
    if signals::caught().is_some() {
        return Err(RunError::Failed("interrupted".into()));
    }
    let wait = sc.warmup + sc.duration + sc.timeout + Duration::from_secs(15);
    let deadline = Instant::now() + wait;
    let line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok(l) if l.trim_start().starts_with('{') => break l,
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {
                if signals::caught().is_some() {
                    return Err(RunError::Failed("interrupted".into()));
                }
            }
            Err(_) => return Err(failed("ended without its result", child)),
        }
    };
    let report = parse_report(&line).map_err(RunError::Failed)?;
    drop(child);
    Ok(TwinRun {
        report,
        load,
        loadgen,
    })
}

/// gilbench's load generator against the twin at `addr`, on `core` if given: the echo load
/// (its result), or the bulk sender (nothing: the twin counts what arrived), stopped after
/// `duration` as the runner stops it.
fn drive(
    sc: &Scenario,
    addr: SocketAddr,
    core: Option<usize>,
) -> Result<Option<LoadResult>, String> {
    let stop = AtomicBool::new(false);
    if sc.io == IoWork::Bulk {
        return std::thread::scope(|s| {
            let stop = &stop;
            let send = s.spawn(move || {
                let _pinned = core.is_some_and(pin::pin_current);
                let r = run_bulk_send(addr, sc.bulk_mib << 20, stop);
                stop.store(true, Ordering::SeqCst);
                r
            });
            let t0 = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                if signals::caught().is_some() || t0.elapsed() >= sc.duration {
                    stop.store(true, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            send.join()
                .unwrap_or_else(|_| Err("the bulk sender panicked".into()))
                .map(|_| None)
        });
    }
    std::thread::scope(|s| {
        let stop = &stop;
        let load = s.spawn(move || {
            let pinned = core.is_some_and(pin::pin_current);
            let cfg = LoadConfig {
                transport: sc.transport,
                targets: vec![addr],
                connections: sc.connections,
                rate: sc.rate,
                request_bytes: sc.request_bytes,
                warmup: sc.warmup,
                duration: sc.duration,
                timeout: sc.timeout,
                busy_wait: pinned,
                intervals: None,
                window_over: None,
            };
            let r = run_echo_load(&cfg, stop);
            stop.store(true, Ordering::SeqCst);
            r
        });
        while !stop.load(Ordering::SeqCst) {
            if signals::caught().is_some() {
                stop.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        load.join()
            .unwrap_or_else(|_| Err("the load generator panicked".into()))
            .map(Some)
    })
}

/// The figures of one side in one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sample {
    pub requests_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// CPU throughput with the server under load (ticks/s or pure-Python iterations/s).
    pub cpu_per_sec: Option<f64>,
    /// The same CPU threads alone.
    pub cpu_alone_per_sec: Option<f64>,
    /// `cpu_per_sec / cpu_alone_per_sec`.
    pub cpu_kept: Option<f64>,
    /// Context switches of the GIL threads (server and CPU), per second.
    pub ctx_per_sec: f64,
    /// Shares of requests that waited 0, 1, 2, 3+ switch intervals (0-1).
    pub waited: [f64; 4],
    pub requests: u64,
    pub failed: u64,
    /// CPU time other processes used during this side's run (with a server), as a share of
    /// the machine (all usable cores), when the OS says: what skews a calibration.
    #[serde(default)]
    pub other_load: Option<f64>,
    /// A bulk transfer's figures (then the echo figures above are zero).
    #[serde(default)]
    pub bulk: Option<Bulk>,
}

/// What one side did with a bulk transfer (a run's, or the medians of a condition's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bulk {
    /// The transfer's size and the bytes received.
    pub total: u64,
    pub bytes: u64,
    /// Seconds from the first byte to the end of the receive (the last byte, or the cut).
    pub receive_s: f64,
    /// Seconds from the first byte to the last, when the transfer completed (for medians:
    /// over the runs that completed).
    pub transfer_s: Option<f64>,
    /// Megabytes (10^6 bytes) received per second of `receive_s`.
    pub mb_per_sec: f64,
    /// Runs whose transfer the end of the run cut short.
    pub unfinished: u32,
    /// For a condition with CPU threads: MB/s of the same condition without them over this
    /// one's (set on the medians, when the calibration has that condition).
    pub slowdown: Option<f64>,
}

impl Bulk {
    fn of(total: u64, bytes: u64, receive_s: Option<f64>, transfer_s: Option<f64>) -> Bulk {
        let receive_s = receive_s.unwrap_or(0.0);
        Bulk {
            total,
            bytes,
            receive_s,
            transfer_s: transfer_s.filter(|_| bytes >= total),
            mb_per_sec: per_sec(bytes as f64, receive_s) / 1e6,
            unfinished: u32::from(bytes < total),
            slowdown: None,
        }
    }

    /// The share of the transfer received.
    pub fn received(&self) -> f64 {
        self.bytes as f64 / self.total.max(1) as f64
    }
}

/// CPU time used on the whole machine and by this process and its reaped children, to tell
/// how much other processes used during a run.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    at: Instant,
    /// Busy time of every core (`/proc/stat`), seconds.
    machine_s: f64,
    /// This process and its waited-for children (`getrusage`), seconds.
    own_s: f64,
}

impl Usage {
    pub fn now() -> Option<Usage> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
        let f: Vec<u64> = cpu
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
        if f.len() < 8 {
            return None;
        }
        let busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
        // SAFETY: sysconf has no preconditions.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if tck <= 0 {
            return None;
        }
        let own = |who| {
            // SAFETY: rusage is plain old data, so all-zero is a valid value that getrusage
            // overwrites; the pointer is to a live local.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: a valid `who` and out-pointer; no other preconditions.
            if unsafe { libc::getrusage(who, &mut ru) } != 0 {
                return 0.0;
            }
            let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
            t(ru.ru_utime) + t(ru.ru_stime)
        };
        Some(Usage {
            at: Instant::now(),
            machine_s: busy as f64 / tck as f64,
            own_s: own(libc::RUSAGE_SELF) + own(libc::RUSAGE_CHILDREN),
        })
    }

    /// The share of the machine other processes used since `self`.
    pub fn others_since(self, cores: usize) -> Option<f64> {
        let now = Usage::now()?;
        let wall = now.at.duration_since(self.at).as_secs_f64() * cores.max(1) as f64;
        if wall <= 0.0 {
            return None;
        }
        let other = (now.machine_s - self.machine_s) - (now.own_s - self.own_s);
        Some((other / wall).clamp(0.0, 1.0))
    }
}

fn cores() -> usize {
    pin::available_cores().map_or(1, |c| c.len())
}

/// Shares of `latency`'s values with `round(value / interval)` = 0, 1, 2, 3 or more.
pub fn waited(latency: &Hist, interval: Duration) -> [f64; 4] {
    let iv = interval.as_nanos().max(1) as f64;
    let mut counts = [0u64; 4];
    for v in latency.iter_recorded() {
        let k = ((latency.median_equivalent(v.value_iterated_to()) as f64 / iv).round() as usize)
            .min(3);
        counts[k] += v.count_at_value();
    }
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return [0.0; 4];
    }
    counts.map(|c| c as f64 / total as f64)
}

fn kept(with: Option<f64>, alone: Option<f64>) -> Option<f64> {
    match (with, alone) {
        (Some(w), Some(a)) if a > 0.0 => Some(w / a),
        _ => None,
    }
}

/// The model's figures from its run (and its CPU-alone run).
pub fn model_sample(r: &RunResult, alone: Option<&RunResult>, interval: Duration) -> Sample {
    let io = r.io.clone().unwrap_or_default();
    let cpu = r.cpu.as_ref().map(|c| c.ticks_per_sec);
    let cpu_alone = alone.and_then(|a| a.cpu.as_ref()).map(|c| c.ticks_per_sec);
    let ctx = r.gil.ctx_switches.unwrap_or_default();
    Sample {
        requests_per_sec: io.requests_per_sec,
        p50_us: io.latency_us.p50,
        p99_us: io.latency_us.p99,
        cpu_per_sec: cpu,
        cpu_alone_per_sec: cpu_alone,
        cpu_kept: kept(cpu, cpu_alone),
        ctx_per_sec: per_sec((ctx.voluntary + ctx.involuntary) as f64, r.measured_s),
        waited: r
            .hists
            .get("io-latency")
            .map_or([0.0; 4], |h| waited(h, interval)),
        requests: io.requests,
        failed: io.failed,
        other_load: None,
        bulk: (io.mode == "bulk").then(|| {
            Bulk::of(
                io.transfer_bytes.unwrap_or(io.bytes),
                io.bytes,
                io.server.receive_s,
                io.transfer_s,
            )
        }),
    }
}

/// The twin's figures from its run (and its CPU-alone run).
pub fn twin_sample(t: &TwinRun, alone: Option<&TwinRun>, interval: Duration) -> Sample {
    let rep = &t.report;
    let cpu = (rep.cpu.threads > 0).then_some(rep.cpu.iterations_per_sec);
    let cpu_alone = alone
        .filter(|a| a.report.cpu.threads > 0)
        .map(|a| a.report.cpu.iterations_per_sec);
    let tot = rep.ctx_switches.total;
    let mut s = Sample {
        cpu_per_sec: cpu,
        cpu_alone_per_sec: cpu_alone,
        cpu_kept: kept(cpu, cpu_alone),
        ctx_per_sec: per_sec((tot.voluntary + tot.involuntary) as f64, rep.window_s),
        ..Default::default()
    };
    let srv = &rep.server;
    if let Some(total) = srv.transfer_bytes {
        s.bulk = Some(Bulk::of(total, srv.bytes_in, srv.receive_s, srv.transfer_s));
    }
    if let Some(l) = &t.load {
        let p = Percentiles::of(&l.latency);
        s.requests_per_sec = per_sec(l.requests as f64, l.measured_s);
        s.p50_us = p.p50;
        s.p99_us = p.p99;
        s.waited = waited(&l.latency, interval);
        s.requests = l.requests;
        s.failed = l.failed;
    }
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The cell-by-cell median of `samples`.
pub fn median_sample(samples: &[Sample]) -> Sample {
    let m = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    let mo = |f: &dyn Fn(&Sample) -> Option<f64>| {
        let v: Vec<f64> = samples.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median(v))
    };
    Sample {
        requests_per_sec: m(&|s| s.requests_per_sec),
        p50_us: m(&|s| s.p50_us),
        p99_us: m(&|s| s.p99_us),
        cpu_per_sec: mo(&|s| s.cpu_per_sec),
        cpu_alone_per_sec: mo(&|s| s.cpu_alone_per_sec),
        cpu_kept: mo(&|s| s.cpu_kept),
        ctx_per_sec: m(&|s| s.ctx_per_sec),
        waited: [0, 1, 2, 3].map(|k| m(&|s| s.waited[k])),
        requests: samples.iter().map(|s| s.requests).sum(),
        failed: samples.iter().map(|s| s.failed).sum(),
        other_load: mo(&|s| s.other_load),
        bulk: median_bulk(samples.iter().filter_map(|s| s.bulk.as_ref())),
    }
}

/// The cell-by-cell median of bulk figures (the transfer time over the runs that completed).
fn median_bulk<'a>(runs: impl Iterator<Item = &'a Bulk>) -> Option<Bulk> {
    let runs: Vec<&Bulk> = runs.collect();
    let first = runs.first()?;
    let m = |f: &dyn Fn(&Bulk) -> f64| median(runs.iter().map(|b| f(b)).collect());
    let done: Vec<f64> = runs.iter().filter_map(|b| b.transfer_s).collect();
    Some(Bulk {
        total: first.total,
        bytes: m(&|b| b.bytes as f64).round() as u64,
        receive_s: m(&|b| b.receive_s),
        transfer_s: (!done.is_empty()).then(|| median(done)),
        mb_per_sec: m(&|b| b.mb_per_sec),
        unfinished: runs.iter().map(|b| b.unfinished).sum(),
        slowdown: None,
    })
}

/// How the model compares with CPython in one condition.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Fit {
    /// gilbench / CPython.
    pub requests_per_sec: f64,
    pub p50: f64,
    pub p99: f64,
    pub cpu_kept: Option<f64>,
    pub ctx_per_sec: f64,
    /// gilbench minus CPython, percentage points per bucket.
    pub waited_points: [f64; 4],
    /// bulk: transfer time (when both completed), MB/s and slowdown, gilbench / CPython.
    #[serde(default)]
    pub transfer: Option<f64>,
    #[serde(default)]
    pub mb_per_sec: Option<f64>,
    #[serde(default)]
    pub slowdown: Option<f64>,
    /// Within every fidelity goal.
    pub ok: bool,
    /// The goals missed, in words.
    pub missed: Vec<String>,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else if a > 0.0 {
        f64::INFINITY
    } else {
        1.0
    }
}

/// gilbench against CPython, with the fidelity goals: for echo req/s and p50 within 25% and
/// every intervals-waited bucket within 10 points; for bulk MB/s within 25%, and the
/// slowdown against no CPU threads too where both sides have one.
pub fn fit(model: &Sample, cpython: &Sample) -> Fit {
    let off = |r: f64| !(1.0 - GOAL_RATIO..=1.0 + GOAL_RATIO).contains(&r);
    if let (Some(m), Some(c)) = (&model.bulk, &cpython.bulk) {
        let mb = ratio(m.mb_per_sec, c.mb_per_sec);
        let slowdown = m.slowdown.zip(c.slowdown).map(|(a, b)| ratio(a, b));
        let mut missed = Vec::new();
        if off(mb) {
            missed.push("MB/s".to_owned());
        }
        if slowdown.is_some_and(off) {
            missed.push("slowdown".to_owned());
        }
        return Fit {
            cpu_kept: model
                .cpu_kept
                .zip(cpython.cpu_kept)
                .map(|(a, b)| ratio(a, b)),
            ctx_per_sec: ratio(model.ctx_per_sec, cpython.ctx_per_sec),
            transfer: m.transfer_s.zip(c.transfer_s).map(|(a, b)| ratio(a, b)),
            mb_per_sec: Some(mb),
            slowdown,
            ok: missed.is_empty(),
            missed,
            ..Default::default()
        };
    }
    let rps = ratio(model.requests_per_sec, cpython.requests_per_sec);
    let p50 = ratio(model.p50_us, cpython.p50_us);
    let points = [0, 1, 2, 3].map(|k| (model.waited[k] - cpython.waited[k]) * 100.0);
    let mut missed = Vec::new();
    if off(rps) {
        missed.push("req/s".to_owned());
    }
    if off(p50) {
        missed.push("p50".to_owned());
    }
    if points.iter().any(|p| p.abs() > GOAL_POINTS) {
        missed.push("waited".to_owned());
    }
    Fit {
        requests_per_sec: rps,
        p50,
        p99: ratio(model.p99_us, cpython.p99_us),
        cpu_kept: match (model.cpu_kept, cpython.cpu_kept) {
            (Some(a), Some(b)) => Some(ratio(a, b)),
            _ => None,
        },
        ctx_per_sec: ratio(model.ctx_per_sec, cpython.ctx_per_sec),
        waited_points: points,
        ok: missed.is_empty(),
        missed,
        ..Default::default()
    }
}

/// One condition's outcome.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CondResult {
    pub label: String,
    pub params: serde_json::Value,
    pub cpython: Sample,
    pub gilbench: Sample,
    /// Not read back: a ratio against zero is infinite, which JSON writes as `null`;
    /// [`resummarize`] fits a condition read from a file again.
    #[serde(skip_deserializing)]
    pub fit: Fit,
    /// Every repetition, in run order.
    pub cpython_runs: Vec<Sample>,
    pub gilbench_runs: Vec<Sample>,
    /// How many pairs ran while other processes stayed within `max_other_load` (all of
    /// them when it is not checked). The medians are over these pairs when there are any.
    #[serde(default)]
    pub quiet_pairs: usize,
}

/// Recomputes every condition's medians and fit from its runs (e.g. after reading a result
/// file written by an older gilbench).
pub fn resummarize(cal: &mut Calibration) {
    let max = cal.max_other_load;
    for c in &mut cal.conditions {
        summarize(c, max);
    }
    bulk_slowdowns(cal);
}

/// Sets each bulk condition's slowdown on both sides, against the condition that differs
/// only in having no CPU threads (when the calibration has it), and fits it again.
fn bulk_slowdowns(cal: &mut Calibration) {
    let alone_key = |c: &CondResult| {
        let mut p = c.params.clone();
        p.as_object_mut().map(|o| o.remove("cpu_threads"));
        p
    };
    let alone: Vec<(serde_json::Value, f64, f64)> = cal
        .conditions
        .iter()
        .filter(|c| c.params["cpu_threads"] == 0)
        .filter_map(|c| {
            let (py, model) = (c.cpython.bulk.as_ref()?, c.gilbench.bulk.as_ref()?);
            Some((alone_key(c), py.mb_per_sec, model.mb_per_sec))
        })
        .collect();
    for c in &mut cal.conditions {
        if c.params["cpu_threads"] == 0 {
            continue;
        }
        let key = alone_key(c);
        let Some((_, py_alone, model_alone)) = alone.iter().find(|(k, _, _)| *k == key) else {
            continue;
        };
        for (b, a) in [
            (c.cpython.bulk.as_mut(), py_alone),
            (c.gilbench.bulk.as_mut(), model_alone),
        ] {
            if let Some(b) = b {
                b.slowdown = (b.mb_per_sec > 0.0).then(|| a / b.mb_per_sec);
            }
        }
        c.fit = fit(&c.gilbench, &c.cpython);
    }
}

/// Whether other processes stayed within `max` during both runs of a pair.
fn quiet(max: Option<f64>, a: &Sample, b: &Sample) -> bool {
    max.is_none_or(|m| [a, b].iter().all(|s| s.other_load.is_none_or(|o| o <= m)))
}

/// The medians of a condition: over its quiet pairs when it has any, else over all.
fn summarize(res: &mut CondResult, max: Option<f64>) {
    let pairs: Vec<(&Sample, &Sample)> = res.cpython_runs.iter().zip(&res.gilbench_runs).collect();
    let calm: Vec<&(&Sample, &Sample)> = pairs.iter().filter(|(a, b)| quiet(max, a, b)).collect();
    res.quiet_pairs = calm.len();
    let (py, model): (Vec<Sample>, Vec<Sample>) = if calm.is_empty() {
        (res.cpython_runs.clone(), res.gilbench_runs.clone())
    } else {
        calm.iter()
            .map(|(a, b)| ((*a).clone(), (*b).clone()))
            .unzip()
    };
    res.cpython = median_sample(&py);
    res.gilbench = median_sample(&model);
    res.fit = fit(&res.gilbench, &res.cpython);
}

/// A whole calibration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Calibration {
    pub scenario: String,
    pub python: Option<Python>,
    /// What the twin reported about the interpreter and the machine (first run).
    pub twin_python: String,
    pub machine: serde_json::Value,
    pub repeat: u32,
    /// The 1-minute load average before and after (other work on the machine skews both
    /// sides).
    pub load_average: [f64; 2],
    pub conditions: Vec<CondResult>,
    /// Set when a signal cut the calibration short.
    pub partial: bool,
    /// The most other processes may use of the machine during a run (0-1), if checked.
    #[serde(default)]
    pub max_other_load: Option<f64>,
    /// Run pairs repeated because other processes used more than that.
    #[serde(default)]
    pub retried: u32,
    /// Run pairs kept although they did, after the last retry.
    #[serde(default)]
    pub noisy_kept: u32,
    /// How much slower the interpreter runs right after a wait (None: not measured) ...
    #[serde(default)]
    pub cold_start_cpython: Option<ColdStart>,
    /// ... and the model's `call_work` (first condition's; None without one).
    #[serde(default)]
    pub cold_start_gilbench: Option<ColdStart>,
    pub notes: Vec<String>,
}

/// The 1-minute load average, if the OS says.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// This machine, as gilbench sees it.
pub fn machine() -> serde_json::Value {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    serde_json::json!({
        "cpu_model": model,
        "usable_cores": pin::available_cores().unwrap_or_default(),
        "kernel": kernel,
    })
}

/// What a calibration reports as it goes.
pub enum Step<'a> {
    /// Run `index` of `total` starts: the side ("cpython", "gilbench", "... alone"), the
    /// condition, the repetition, and how long it should take.
    Start {
        index: usize,
        total: usize,
        side: &'a str,
        label: &'a str,
        repeat: u32,
        expected: Duration,
    },
    Done,
}

/// Everything a calibration ran, for the table and the usual outputs.
pub struct Outcome {
    pub calibration: Calibration,
    /// Every run with a server, both sides, as results (CPython's with lock `cpython`).
    pub runs: Vec<RunResult>,
}

fn alone_of(sc: &Scenario) -> Scenario {
    let mut a = sc.clone();
    a.io = IoWork::None;
    a.duration = sc.duration.min(ALONE_MAX);
    a
}

/// Runs every condition `repeat` times, twin and model in turn. Stops early (returning what it
/// has, marked partial) when a signal arrives.
/// How a calibration runs.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Runs per condition and side.
    pub repeat: u32,
    /// A run pair during which other processes used more than this share of the machine
    /// (0-1) is run again, ...
    pub max_other_load: Option<f64>,
    /// ... at most this many times; then it is kept, and counted.
    pub retries: u32,
}

pub fn execute(
    py: &Python,
    scenario: &str,
    conds: &[Condition],
    plan: &Plan,
    progress: &mut dyn FnMut(Step<'_>),
) -> Result<Outcome, RunError> {
    let repeat = plan.repeat;
    let mut cal = Calibration {
        scenario: scenario.to_owned(),
        python: Some(py.clone()),
        machine: machine(),
        repeat,
        load_average: [load_average(), f64::NAN],
        max_other_load: plan.max_other_load,
        ..Default::default()
    };
    let cold = cold_start(py);
    cal.cold_start_cpython = cold.as_ref().ok().cloned();
    let model_cold = conds
        .first()
        .and_then(|c| model_cold_start(c.scenario.tick_bytes, c.scenario.call_work));
    cal.cold_start_gilbench = model_cold.clone();
    let mut runs = Vec::new();
    let per_cond: usize = 2 * repeat as usize;
    let total: usize = conds
        .iter()
        .map(|c| per_cond * if c.scenario.cpu_threads > 0 { 2 } else { 1 })
        .sum();
    let mut index = 0;
    let mut step = |side: &str, c: &Condition, r: u32, sc: &Scenario| {
        index += 1;
        progress(Step::Start {
            index,
            total,
            side,
            label: &c.label,
            repeat: r,
            expected: sc.warmup + sc.duration,
        });
    };
    'conds: for c in conds {
        let sc = &c.scenario;
        let interval = sc.gil.interval;
        let mut res = CondResult {
            label: c.label.clone(),
            params: sc.params_json(),
            ..Default::default()
        };
        for r in 0..repeat {
            if signals::caught().is_some() {
                cal.partial = true;
                break 'conds;
            }
            // The pair again while other processes used more of the machine than allowed.
            let mut attempt = 0;
            let (twin, twin_other, mut model, model_other) = loop {
                step("cpython", c, r, sc);
                let before = Usage::now();
                let twin = run_twin(py, sc, true);
                let twin_other = before.and_then(|b| b.others_since(cores()));
                let twin = match twin {
                    Ok(t) => t,
                    Err(_) if signals::caught().is_some() => {
                        cal.partial = true;
                        break 'conds;
                    }
                    Err(e) => return Err(e),
                };
                if cal.twin_python.is_empty() {
                    cal.twin_python =
                        format!("{} {}", twin.report.implementation, twin.report.python);
                    cal.machine["twin"] = twin.report.machine.clone();
                }
                step("gilbench", c, r, sc);
                let before = Usage::now();
                let model = runner::run_mode(sc, Mode::Run, &Instrument::default(), &|_| {})?;
                let model_other = before.and_then(|b| b.others_since(cores()));
                if model.partial {
                    cal.partial = true;
                }
                let noisy = plan.max_other_load.is_some_and(|max| {
                    twin_other.is_some_and(|o| o > max) || model_other.is_some_and(|o| o > max)
                });
                if !noisy || cal.partial {
                    break (twin, twin_other, model, model_other);
                }
                if attempt == plan.retries {
                    cal.noisy_kept += 1;
                    break (twin, twin_other, model, model_other);
                }
                attempt += 1;
                cal.retried += 1;
            };
            let (twin_alone, model_alone) = if sc.cpu_threads > 0 && !cal.partial {
                let a = alone_of(sc);
                step("cpython alone", c, r, &a);
                let t = match run_twin(py, &a, false) {
                    Ok(t) => Some(t),
                    Err(_) if signals::caught().is_some() => {
                        cal.partial = true;
                        None
                    }
                    Err(e) => return Err(e),
                };
                let m = if cal.partial {
                    None
                } else {
                    step("gilbench alone", c, r, &a);
                    let m = runner::run_mode(&a, Mode::Run, &Instrument::default(), &|_| {})?;
                    cal.partial |= m.partial;
                    Some(m)
                };
                (t, m)
            } else {
                (None, None)
            };
            res.cpython_runs.push(Sample {
                other_load: twin_other,
                ..twin_sample(&twin, twin_alone.as_ref(), interval)
            });
            res.gilbench_runs.push(Sample {
                other_load: model_other,
                ..model_sample(&model, model_alone.as_ref(), interval)
            });
            model.label = format!("gilbench {}", c.label);
            model.repeat = r;
            runs.push(twin_result(sc, &twin, &c.label, r));
            runs.push(model);
            if cal.partial {
                break;
            }
        }
        if res.cpython_runs.is_empty() {
            break;
        }
        summarize(&mut res, plan.max_other_load);
        cal.conditions.push(res);
        if cal.partial {
            break;
        }
    }
    progress(Step::Done);
    bulk_slowdowns(&mut cal);
    cal.load_average[1] = load_average();
    if let Some(s) = suggest_call_work(conds, &cal) {
        cal.notes.push(s);
    }
    cal.notes.push(cold_start_note(&cold, model_cold.as_ref()));
    if conds.iter().any(|c| !c.scenario.record) {
        cal.notes.push(
            "gilbench ran without its GIL-side recording (record = false), as the twin has none: \
             that instrumentation changes the races compared here; --set record=true keeps it"
                .to_owned(),
        );
    }
    Ok(Outcome {
        calibration: cal,
        runs,
    })
}

/// A twin run as a gilbench result (lock `cpython`), for the usual outputs.
pub fn twin_result(sc: &Scenario, t: &TwinRun, label: &str, repeat: u32) -> RunResult {
    let rep = &t.report;
    let io = t.load.as_ref().map(|l| IoSummary {
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
    });
    let srv = &rep.server;
    let io = io.or_else(|| {
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
    });
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

/// From the conditions without CPU threads, where a request's round trip is the client's and
/// the kernel's time plus the server's GIL-held work on its way: the `call_work` that would
/// give the model CPython's median round trip, if it differs from the one used by a
/// microsecond or more. On a request's way are one `call_work` in the threaded structure
/// (after the recv) and two in the poll loop (after the poll and after the recv).
pub fn suggest_call_work(conds: &[Condition], cal: &Calibration) -> Option<String> {
    let mut per_call = Vec::new();
    let mut used: Option<Duration> = None;
    for (c, r) in conds.iter().zip(&cal.conditions) {
        let sc = &c.scenario;
        if sc.cpu_threads != 0 || sc.rate > 0.0 || sc.connections != 1 {
            continue;
        }
        let (py, model) = (r.cpython.p50_us, r.gilbench.p50_us);
        if py <= 0.0 || model <= 0.0 {
            continue;
        }
        if used.is_some_and(|u| u != sc.call_work) {
            // The conditions vary call_work themselves: the table is the answer.
            return None;
        }
        used = Some(sc.call_work);
        let on_the_way = match sc.server {
            ServerKind::Poll => 2.0,
            ServerKind::Threaded => 1.0,
        };
        per_call.push(sc.call_work.as_secs_f64() * 1e6 + (py - model) / on_the_way);
    }
    let used = used?;
    let best = Duration::from_micros(median(per_call).max(0.0).round() as u64);
    (best.abs_diff(used) >= Duration::from_micros(1)).then(|| {
        format!(
            "the rows without CPU threads fit CPython's median round trip best with call_work = {} (this run used {}): try --set call_work={}",
            format_duration(best),
            format_duration(used),
            format_duration(best)
        )
    })
}

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{:.0}%", x * 100.0))
}

fn times(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}x")
    } else {
        "inf".into()
    }
}

/// `median (min-max)` over the repetitions, or the median alone for one.
fn spread(
    median: f64,
    runs: &[Sample],
    of: impl Fn(&Sample) -> f64,
    show: impl Fn(f64) -> String,
) -> String {
    if runs.len() < 2 {
        return show(median);
    }
    let lo = runs.iter().map(&of).fold(f64::INFINITY, f64::min);
    let hi = runs.iter().map(&of).fold(f64::NEG_INFINITY, f64::max);
    format!("{} ({}-{})", show(median), show(lo), show(hi))
}

fn buckets(w: &[f64; 4]) -> String {
    w.iter()
        .map(|x| format!("{:.0}", x * 100.0))
        .collect::<Vec<_>>()
        .join("/")
}

fn points(p: &[f64; 4]) -> String {
    p.iter()
        .map(|x| format!("{:+.0}", x))
        .collect::<Vec<_>>()
        .join("/")
}

fn verdict(f: &Fit) -> String {
    if f.ok {
        "ok".into()
    } else {
        format!("MISS ({})", f.missed.join(", "))
    }
}

/// Whether the calibration is of a bulk scenario (its table has the transfer's columns).
pub fn is_bulk(cal: &Calibration) -> bool {
    cal.conditions
        .iter()
        .any(|c| c.cpython.bulk.is_some() || c.gilbench.bulk.is_some())
}

/// The seven figures of a side's row, echo.
fn echo_cells(s: &Sample, runs: &[Sample]) -> [String; 7] {
    [
        spread(s.requests_per_sec, runs, |x| x.requests_per_sec, rate),
        spread(s.p50_us, runs, |x| x.p50_us, us),
        us(s.p99_us),
        pct(s.cpu_kept),
        rate(s.ctx_per_sec),
        buckets(&s.waited),
        String::new(),
    ]
}

fn mbps(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

fn mb_of(s: &Sample) -> f64 {
    s.bulk.as_ref().map_or(0.0, |b| b.mb_per_sec)
}

/// The seven figures of a side's row, bulk.
fn bulk_cells(s: &Sample, runs: &[Sample]) -> [String; 7] {
    let b = s.bulk.clone().unwrap_or_default();
    let transfer = match (b.transfer_s, b.unfinished) {
        (None, _) => "unfinished".to_owned(),
        (Some(t), 0) => format!("{t:.3}s"),
        (Some(t), k) => format!("{t:.3}s ({k} of {} unfinished)", runs.len()),
    };
    [
        transfer,
        spread(b.mb_per_sec, runs, mb_of, mbps),
        pct(Some(b.received())),
        pct(s.cpu_kept),
        rate(s.ctx_per_sec),
        b.slowdown.map_or("-".into(), times),
        String::new(),
    ]
}

/// The rows of the table: condition, side, then the cells.
fn rows(cal: &Calibration) -> Vec<[String; 9]> {
    let py = cal.python.as_ref().map_or("CPython".to_owned(), |p| {
        format!("{} {}", p.implementation, p.version)
    });
    let bulk = is_bulk(cal);
    let mut out = Vec::new();
    for c in &cal.conditions {
        for (side, s, runs) in [
            (py.as_str(), &c.cpython, &c.cpython_runs),
            ("gilbench timed", &c.gilbench, &c.gilbench_runs),
        ] {
            let cells = if bulk {
                bulk_cells(s, runs)
            } else {
                echo_cells(s, runs)
            };
            let label = if side == py {
                c.label.clone()
            } else {
                String::new()
            };
            let [a, b, c, d, e, f, g] = cells;
            out.push([label, side.to_owned(), a, b, c, d, e, f, g]);
        }
        let f = &c.fit;
        let n = c.cpython_runs.len();
        let verdict = match (cal.max_other_load, c.quiet_pairs) {
            (Some(_), 0) => format!("{} [no quiet pair of {n}]", verdict(f)),
            (Some(_), q) if q < n => format!("{} [{q} quiet pairs of {n}]", verdict(f)),
            _ => verdict(f),
        };
        let opt = |x: Option<f64>| x.map_or("-".into(), times);
        out.push(if bulk {
            [
                String::new(),
                "ratio".into(),
                opt(f.transfer),
                opt(f.mb_per_sec),
                "-".into(),
                opt(f.cpu_kept),
                times(f.ctx_per_sec),
                opt(f.slowdown),
                verdict,
            ]
        } else {
            [
                String::new(),
                "ratio / points".into(),
                times(f.requests_per_sec),
                times(f.p50),
                times(f.p99),
                opt(f.cpu_kept),
                times(f.ctx_per_sec),
                points(&f.waited_points),
                verdict,
            ]
        });
    }
    out
}

const HEAD: [&str; 9] = [
    "condition",
    "side",
    "req/s",
    "p50",
    "p99",
    "cpu kept",
    "ctx/s",
    "waited 0/1/2/3+ %",
    "fit",
];

const BULK_HEAD: [&str; 9] = [
    "condition",
    "side",
    "transfer",
    "MB/s",
    "received",
    "cpu kept",
    "ctx/s",
    "slowdown",
    "fit",
];

/// The table's header and its right-aligned (numeric) columns.
fn head(cal: &Calibration) -> ([&'static str; 9], std::ops::RangeInclusive<usize>) {
    if is_bulk(cal) {
        (BULK_HEAD, 2..=7)
    } else {
        (HEAD, 2..=6)
    }
}

/// The header lines: what ran where.
fn header(cal: &Calibration) -> Vec<String> {
    let m = &cal.machine;
    let cores = m["usable_cores"].as_array().map_or(0, Vec::len);
    let py = cal.python.as_ref().map_or(String::new(), |p| {
        format!("{} {} ({})", p.implementation, p.version, p.path.display())
    });
    let others: Vec<f64> = cal
        .conditions
        .iter()
        .flat_map(|c| c.cpython_runs.iter().chain(&c.gilbench_runs))
        .filter_map(|s| s.other_load)
        .collect();
    let other = if others.is_empty() {
        String::new()
    } else {
        let max = others.iter().copied().fold(0.0, f64::max);
        format!(
            "; other processes used {:.0}% of the machine during a run (median; at most {:.0}%)",
            median(others) * 100.0,
            max * 100.0
        )
    };
    let mut other = other;
    if let Some(max) = cal.max_other_load {
        other.push_str(&format!(
            "; {} run pairs repeated as others used more than {:.0}%",
            cal.retried,
            max * 100.0
        ));
        if cal.noisy_kept > 0 {
            other.push_str(&format!(", {} kept so after the last try", cal.noisy_kept));
        }
    }
    let first = format!(
        "calibrate {}: gilbench timed vs {py}, on {} ({cores} cores, Linux {}){other}",
        cal.scenario,
        m["cpu_model"].as_str().unwrap_or("?"),
        m["kernel"].as_str().unwrap_or("?")
    );
    if is_bulk(cal) {
        return vec![
            first,
            format!(
                "medians of {} repeats (over the quiet pairs where some were not; min-max of all in brackets); load average {:.2} before, {:.2} after; each transfer measured whole, from its first byte to its last (or to the end of the run: unfinished, counted with what arrived); MB/s = 10^6 bytes received per second of that; cpu kept and ctx/s during the transfer; slowdown = MB/s without CPU threads / with; ratio = gilbench / CPython; goals: MB/s and slowdown within {:.0}%",
                cal.repeat,
                cal.load_average[0],
                cal.load_average[1],
                GOAL_RATIO * 100.0
            ),
        ];
    }
    vec![
        first,
        format!(
            "medians of {} repeats (over the quiet pairs where some were not; min-max of all in brackets); load average {:.2} before, {:.2} after; waited = round(latency / interval) per request; ratio = gilbench / CPython; goals: req/s and p50 within {:.0}%, waited within {:.0} points",
            cal.repeat,
            cal.load_average[0],
            cal.load_average[1],
            GOAL_RATIO * 100.0,
            GOAL_POINTS
        ),
    ]
}

/// The table for a terminal.
pub fn text(cal: &Calibration) -> String {
    let rows = rows(cal);
    let (head, numeric) = head(cal);
    let mut w = head.map(str::len);
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut o = String::new();
    for h in header(cal) {
        o.push_str(&h);
        o.push('\n');
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i] - c.chars().count();
            if numeric.contains(&i) {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            } else {
                l.push_str(c);
                if i + 1 < cells.len() {
                    l.push_str(&" ".repeat(pad));
                }
            }
            if i + 1 < cells.len() {
                l.push_str("  ");
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    o.push_str(&line(&head.map(str::to_owned)));
    for r in &rows {
        o.push_str(&line(r));
    }
    for n in &cal.notes {
        o.push_str(&format!("note: {n}\n"));
    }
    if cal.partial {
        o.push_str("note: interrupted: the table covers the runs finished so far\n");
    }
    o
}

/// The table in Markdown, with gilbench's marker first.
pub fn markdown(cal: &Calibration) -> String {
    let mut o = format!("<!-- gilbench {} -->\n", env!("CARGO_PKG_VERSION"));
    for h in header(cal) {
        o.push_str(&h);
        o.push_str("\n\n");
    }
    let (head, numeric) = head(cal);
    o.push_str(&format!("| {} |\n", head.join(" | ")));
    o.push_str(&format!(
        "|{}\n",
        head.iter()
            .enumerate()
            .map(|(i, _)| if numeric.contains(&i) {
                "---:|"
            } else {
                "---|"
            })
            .collect::<String>()
    ));
    for r in rows(cal) {
        let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
        o.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    for n in &cal.notes {
        o.push_str(&format!("\n{n}\n"));
    }
    o
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A line per condition and side (`cpython`, `gilbench`, `ratio`), raw numbers.
pub fn csv(cal: &Calibration) -> String {
    let opt = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:.4}"));
    if is_bulk(cal) {
        return bulk_csv(cal, &opt);
    }
    let mut o = format!("{CSV_HEADER}\n");
    for c in &cal.conditions {
        for (side, s) in [("cpython", &c.cpython), ("gilbench", &c.gilbench)] {
            o.push_str(&format!(
                "{},{side},{},{:.2},{:.1},{:.1},{},{:.1},{:.4},{:.4},{:.4},{:.4},\n",
                csv_field(&c.label),
                c.cpython_runs.len(),
                s.requests_per_sec,
                s.p50_us,
                s.p99_us,
                opt(s.cpu_kept),
                s.ctx_per_sec,
                s.waited[0],
                s.waited[1],
                s.waited[2],
                s.waited[3],
            ));
        }
        let f = &c.fit;
        o.push_str(&format!(
            "{},ratio,{},{:.4},{:.4},{:.4},{},{:.4},{:.2},{:.2},{:.2},{:.2},{}\n",
            csv_field(&c.label),
            c.cpython_runs.len(),
            f.requests_per_sec,
            f.p50,
            f.p99,
            opt(f.cpu_kept),
            f.ctx_per_sec,
            f.waited_points[0],
            f.waited_points[1],
            f.waited_points[2],
            f.waited_points[3],
            if f.ok { "ok" } else { "miss" }
        ));
    }
    o
}

/// The bulk table as CSV: transfer time, MB/s, share received, CPU kept, context switches
/// per second, slowdown and unfinished runs per side; the ratios and the verdict.
fn bulk_csv(cal: &Calibration, opt: &dyn Fn(Option<f64>) -> String) -> String {
    let mut o = format!("{BULK_CSV_HEADER}\n");
    for c in &cal.conditions {
        let n = c.cpython_runs.len();
        let label = csv_field(&c.label);
        for (side, s) in [("cpython", &c.cpython), ("gilbench", &c.gilbench)] {
            let b = s.bulk.clone().unwrap_or_default();
            o.push_str(&format!(
                "{label},{side},{n},{},{:.4},{:.4},{},{:.1},{},{},\n",
                opt(b.transfer_s),
                b.mb_per_sec,
                b.received(),
                opt(s.cpu_kept),
                s.ctx_per_sec,
                opt(b.slowdown),
                b.unfinished,
            ));
        }
        let f = &c.fit;
        o.push_str(&format!(
            "{label},ratio,{n},{},{},,{},{:.4},{},,{}\n",
            opt(f.transfer),
            opt(f.mb_per_sec),
            opt(f.cpu_kept),
            f.ctx_per_sec,
            opt(f.slowdown),
            if f.ok { "ok" } else { "miss" }
        ));
    }
    o
}

/// The result file: the calibration, and every run with a server (both sides) as `runs`, so
/// that `gilbench report` reads it too.
pub fn json(out: &Outcome) -> String {
    let mut v = serde_json::json!({
        "gilbench": env!("CARGO_PKG_VERSION"),
        "calibrate": out.calibration,
    });
    v["runs"] = serde_json::to_value(&out.runs).unwrap_or_default();
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}
