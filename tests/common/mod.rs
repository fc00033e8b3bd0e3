//! Helpers the integration tests share (`mod common;` in each test file that uses them).

// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

pub mod sched;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use gilbench::result::RunResult;
use gilbench::runner;
use gilbench::scenario::Scenario;

/// The gilbench binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gilbench"))
}

/// Runs gilbench with `args` and waits for it.
pub fn output(args: &[&str]) -> Output {
    bin().args(args).output().expect("gilbench runs")
}

/// A scenario file under `workloads/`.
pub fn workload_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("workloads")
        .join(name)
}

/// A scenario file under `workloads/`, as a command-line argument.
pub fn workload(name: &str) -> String {
    workload_path(name).display().to_string()
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// This test file's scratch directory, `$TMPDIR/gilbench-FILE-PID` (made if missing).
pub fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "gilbench-{}-{}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A file in this test file's scratch directory.
pub fn tmp(name: &str) -> PathBuf {
    scratch().join(name)
}

/// A JSON file, parsed.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("the file was written"))
        .expect("the file is JSON")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The error on stderr, checked to be one line and no panic of gilbench's own (Rust's
/// "panicked at"; a thread of the run that panicked is reported as "... panicked: ...").
pub fn err_line(o: &Output) -> String {
    let e = stderr(o);
    assert_eq!(e.trim_end().lines().count(), 1, "not one line: {e}");
    assert!(!e.contains("panicked at"), "{e}");
    e
}

/// One test at a time, for the tests that start servers, CPU threads and load generators or
/// measure timing: on 2 cores a test would measure its neighbours too.
pub fn one() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scenario of `workloads/` with `sets` (`KEY=VALUE`) applied.
pub fn scenario(name: &str, sets: &[&str]) -> Scenario {
    let mut s = Scenario::from_file(&workload_path(name)).unwrap();
    for kv in sets {
        s.set_kv(kv).unwrap();
    }
    s
}

/// Runs [`scenario`] in this process.
pub fn run(name: &str, sets: &[&str]) -> RunResult {
    runner::run(&scenario(name, sets)).unwrap_or_else(|e| panic!("{name} {sets:?}: {e}"))
}

/// The first line `gilbench serve` prints (`listening on ADDR...`), read from its piped
/// stdout.
pub fn first_line(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

/// The address at the end of `serve`'s first line.
pub fn addr_of(line: &str) -> String {
    line.split_whitespace().last().unwrap().to_owned()
}

/// Sends `sig` to our own child process.
pub fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: signals our own child process, whose pid we hold.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
}

/// Waits for `child` at most `limit`, killing it past that (a hang fails the test, never the
/// suite).
pub fn wait_for(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A UDP echo server at `addr` with `max_request_bytes = 512` answers a datagram of 100 bytes
/// with 100 bytes, and one of 2000 not at all.
pub fn assert_udp_never_amplifies(addr: &str) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut b = [0u8; 4096];
    s.send(&[7u8; 100]).unwrap();
    assert_eq!(s.recv(&mut b).unwrap(), 100);
    // Over the limit: no answer at all.
    s.send(&[7u8; 2000]).unwrap();
    assert!(
        s.recv(&mut b).is_err(),
        "an oversized datagram was answered"
    );
}

/// Runs [`scenario`] for `duration`, and again 3x and 9x as long while `enough` finds the run
/// too short to judge (a busy machine served it too few requests), saying so on stderr; the
/// last run is returned for the test to judge.
pub fn run_long_enough(
    name: &str,
    sets: &[&str],
    duration: Duration,
    enough: impl Fn(&RunResult) -> Result<(), String>,
) -> RunResult {
    let mut d = duration;
    loop {
        let dur = format!("duration={}ms", d.as_millis());
        let mut all = sets.to_vec();
        all.push(&dur);
        let r = run(name, &all);
        match enough(&r) {
            Err(why) if d < duration * 9 => {
                eprintln!("note: {name} {sets:?} for {d:?}: {why}; running it 3x as long");
                d *= 3;
            }
            _ => return r,
        }
    }
}

/// The interpreter, or a note and `None`. The note goes straight to the process's stderr
/// (not through the test harness's capture), so that a skip is visible in a passing run.
pub fn python(test: &str) -> Option<gilbench::calibrate::Python> {
    match gilbench::calibrate::find_python(None) {
        Ok(p) => Some(p),
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "note: {test}: SKIPPED, no usable python3 ({e})"
            );
            None
        }
    }
}
