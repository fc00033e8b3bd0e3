//! Every run ends on time and every figure covers only the measured window: a thread that
//! hangs past the window cannot hold the run, signals end the join phase, the warm-up is
//! left out of GIL figures, and the per-thread core and switch-wait figures are real.

mod common;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::sched::Watch;
use common::{bin, read_json, s, signal, tmp, workload};

fn run(args: &[&str]) -> (Output, Duration) {
    let t0 = Instant::now();
    let o = bin().args(args).output().expect("gilbench runs");
    (o, t0.elapsed())
}

/// A thread that hangs holding the GIL, with the watchdog off (under `none`, so that the
/// other thread goes on and finishes): the run ends at its hard
/// deadline (warm-up 0.5 s + duration 1 s + grace 2 s), says where each thread was, keeps
/// what it measured (partial) and exits 1. Before the deadline existed this never ended.
#[test]
fn a_hung_holder_cannot_outlive_the_deadline() {
    let out = tmp("hung.json");
    let (o, took) = run(&[
        "run",
        &workload("cpu-scaling.toml"),
        "--lock",
        "none",
        "--cpu-threads",
        "2",
        "--duration",
        "1s",
        "--set",
        "warmup=500ms",
        "--set",
        "fault=hang-holding-gil",
        "--set",
        "watchdog=off",
        "--quiet",
        "--json",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(took < Duration::from_millis(3500 + 1500), "took {took:?}");
    assert!(
        took >= Duration::from_millis(3400),
        "ended before its deadline: {took:?}"
    );
    assert!(
        err.contains("deadline") && err.contains("cpu-0 is holding the GIL"),
        "{err}"
    );
    let v = read_json(&out);
    let r = &v["runs"][0];
    assert_eq!(r["partial"], true);
    assert!(r["failure"].as_str().unwrap().contains("cpu-0"));
    // cpu-1 finished and is reported; the hung cpu-0 is not.
    let names: Vec<_> = r["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, vec![serde_json::json!("cpu-1")]);
}

/// A signal during the join phase (the measured window is over, a thread still hangs) ends
/// the run within a second of the signal, with the signal's exit status.
#[test]
fn a_signal_ends_the_join_phase_within_a_second() {
    let out = tmp("joined.json");
    let child = bin()
        .args([
            "run",
            &workload("cpu-scaling.toml"),
            "--duration",
            "300ms",
            "--set",
            "warmup=0s",
            "--set",
            "fault=hang-holding-gil",
            "--set",
            "watchdog=off",
            "--quiet",
            "--json",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The window ends at 0.3 s; the join phase would last until 2.3 s.
    std::thread::sleep(Duration::from_millis(1000));
    // Watched from the signal: a busy machine's delay of the main thread (which notices the
    // signal, waits out the grace and writes the outputs) is the OS's, not the run's.
    let (watch, pid) = (Watch::start(), child.id());
    watch.follow(pid);
    let t0 = Instant::now();
    signal(&child, libc::SIGTERM);
    let o = child.wait_with_output().unwrap();
    let took = t0.elapsed();
    let usage = watch.finish();
    let main = usage.of(pid).find(|t| t.tid == pid);
    let kept_waiting = main.map_or(Duration::ZERO, |t| t.waited);
    assert!(
        took.saturating_sub(kept_waiting) < Duration::from_secs(1),
        "took {took:?} from the signal to the exit ({kept_waiting:?} of it waiting for a CPU): {}",
        usage.describe()
    );
    assert_eq!(
        o.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(read_json(&out)["runs"][0]["partial"], true);
}

/// A signal in the join phase while a thread hangs: the failure says the run was
/// interrupted and its threads left behind, not that it outlived a deadline it never reached.
#[test]
fn a_signal_in_the_join_grace_says_the_threads_were_left_behind() {
    let out = tmp("join-signal.json");
    let child = bin()
        .args(["run", &workload("convoy-echo.toml"), "--duration", "300ms"])
        .args(["--set", "warmup=100ms", "--set", "fault=hang-holding-gil"])
        .args(["--set", "watchdog=off", "--quiet", "--json", s(&out)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The window ends at 0.4 s after the start; the join grace would last until 2.4 s.
    std::thread::sleep(Duration::from_millis(1200));
    signal(&child, libc::SIGINT);
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    let r = &read_json(&out)["runs"][0];
    let failure = r["failure"].as_str().unwrap();
    assert!(
        failure.contains("interrupted by SIGINT before every thread had ended")
            && failure.contains("cpu-0 is holding the GIL")
            && failure.contains("left behind"),
        "{failure}"
    );
    assert!(!failure.contains("outlived its deadline"), "{failure}");
    assert_eq!(r["partial"], true);
}

/// Runs `args` and stops the process (SIGSTOP) `at` after its start for `stop`; returns its
/// output and its JSON result.
fn stopped_run(args: &[&str], at: Duration, stop: Duration) -> (Output, serde_json::Value) {
    let out = tmp(&format!("stopped-{}.json", at.as_millis()));
    let child = bin()
        .args(args)
        .args(["--json", s(&out)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(at);
    signal(&child, libc::SIGSTOP);
    std::thread::sleep(stop);
    signal(&child, libc::SIGCONT);
    let o = child.wait_with_output().unwrap();
    let v = read_json(&out)["runs"][0].clone();
    (o, v)
}

/// A process stopped in its measured window (SIGSTOP, a debugger, a suspended VM) says so:
/// its rates cover the time it ran, the run is partial, its threads are not given up for a
/// deadline that passed while nothing ran, and the watchdog gives no verdict on it.
#[test]
fn a_stopped_process_says_so_and_its_rates_cover_the_time_it_ran() {
    let w = workload("convoy-echo.toml");
    let args = ["run", &w, "--duration", "1500ms", "--set", "warmup=200ms"];
    // A watchdog of 300 ms: the 2 s stop is far longer.
    let args: Vec<&str> = args
        .into_iter()
        .chain(["--set", "watchdog=300ms"])
        .collect();
    let (o, r) = stopped_run(&args, Duration::from_millis(1000), Duration::from_secs(2));
    assert!(r["failure"].is_null(), "{r}");
    let measured = assert_the_stop_is_said(&o, &r, 1.5);
    // Idle while wanted is over the time the process ran: the stop (2 s, longer than that
    // time) was no idle GIL (it said 100% when the stop caught a hand-off in transit).
    let gil = &r["gil"];
    let (idle_s, idle) = (
        gil["idle_while_wanted_s"].as_f64().unwrap(),
        gil["idle_while_wanted"].as_f64().unwrap(),
    );
    assert!(idle_s <= measured && idle <= 1.0, "{gil}");
    assert!((idle - idle_s / measured).abs() < 1e-6, "{gil}");
}

/// A loopback TCP echo server on a thread of this test process (a stop of the load's process
/// does not stop it); returns its address.
fn echo_server() -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut c in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut b = [0u8; 4096];
                while let Ok(n @ 1..) = c.read(&mut b) {
                    if c.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A run stopped for 2 s (`stopped_run`) says so: exit 0, partial, a note on the stop; wall
/// time holds the stop, the measured time (under `longest` seconds) and the rates do not;
/// and the load generator, stopped with the rest, does not blame a busy machine for a hold-up
/// as long as the stop. Returns the measured time.
fn assert_the_stop_is_said(o: &Output, r: &serde_json::Value, longest: f64) -> f64 {
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}{text}", stderr_of(o));
    assert_eq!(r["partial"], true, "{r}");
    let notes: Vec<&str> = r["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    let note = notes
        .iter()
        .find(|n| n.contains("the process did not run for"))
        .unwrap_or_else(|| panic!("no note on the stop: {text}"));
    assert!(note.contains("it was stopped"), "{note}");
    let (measured, wall) = (
        r["measured_s"].as_f64().unwrap(),
        r["wall_s"].as_f64().unwrap(),
    );
    assert!(wall >= 2.5, "{r}");
    assert!(
        measured < longest && measured > 0.0,
        "measured {measured}s: {note}"
    );
    let io = &r["io"];
    let requests = io["requests"].as_f64().unwrap();
    assert!(requests > 0.0, "{io}");
    assert!(
        io["requests_per_sec"].as_f64().unwrap() > requests / longest,
        "the rate covers the stop: {io}"
    );
    for n in notes {
        if let Some((_, rest)) = n.split_once("held up for up to ") {
            let ms: f64 = rest.split(' ').next().unwrap().parse().unwrap();
            assert!(ms < 1000.0, "the stop called a busy machine: {n}");
        }
    }
    measured
}

/// `gilbench load` on its own notices a stop of its process as `run` does: it says so, the
/// result is partial, and its rates cover the time it ran (it said "held up for up to
/// 1997 ms (no CPU for it: the machine is busy)", with the rate over the whole window).
#[test]
fn a_stopped_load_says_so_and_its_rates_cover_the_time_it_ran() {
    let addr = echo_server();
    let args = [
        "load",
        "--connect",
        &addr,
        "--duration",
        "1500ms",
        "--warmup",
        "200ms",
        "--timeout",
        "5s",
    ];
    let (o, r) = stopped_run(&args, Duration::from_millis(900), Duration::from_secs(2));
    // The window of 1.5 s less the 2 s stop's part in it (about 1.2 s).
    assert_the_stop_is_said(&o, &r, 1.2);
}

/// Stopped inside its warm-up for longer than the run: no running time was measured, so no
/// figure is given (it said 0 req/s, a CPU rate over 0.6 us and idle while wanted 100%).
#[test]
fn a_process_stopped_through_its_window_measures_nothing() {
    let w = workload("convoy-echo.toml");
    let args = ["run", &w, "--duration", "1s", "--set", "warmup=1s"];
    let (o, r) = stopped_run(&args, Duration::from_millis(400), Duration::from_secs(2));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(r["partial"], true, "{r}");
    assert!(text.contains("the process did not run for"), "{text}");
    if r["measured_s"].as_f64().unwrap() == 0.0 {
        assert!(r["io"].is_null() && r["cpu"].is_null(), "{r}");
        assert!(r["gil"]["idle_while_wanted"].is_null(), "{r}");
        assert!(!text.contains("0 req/s"), "{text}");
    } else if !r["io"].is_null() {
        // The load generator's window outlived the stop: then its rate is a real one.
        assert!(r["io"]["requests"].as_u64().unwrap() > 0, "{r}");
    } else {
        // The GIL threads' window began after the stop, the load generator's lay inside it.
        assert!(text.contains("no I/O figures"), "{text}");
        assert!(!text.contains("0 req/s"), "{text}");
    }
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One request's GIL-held work longer than the whole run is refused before anything runs.
#[test]
fn work_longer_than_the_run_is_bad_input() {
    for set in ["work_ticks=1000000", "call_work=100ms"] {
        let (o, took) = run(&[
            "run",
            &workload("convoy-echo.toml"),
            "--duration",
            "10ms",
            "--set",
            set,
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{set}: {err}");
        assert!(err.contains("longer than the run"), "{set}: {err}");
        assert!(took < Duration::from_secs(2), "{set}: {took:?}");
    }
}

/// The warm-up is left out of the GIL figures, not just the load generator's: the echo
/// server takes the GIL about three times per request (poll, recv, send), so with a warm-up
/// 2.5 times the measured window, counting it would put that ratio near 10.
#[test]
fn the_warmup_is_left_out_of_gil_figures() {
    let out = tmp("warm.json");
    let (o, _) = run(&[
        "run",
        &workload("convoy-echo.toml"),
        "--lock",
        "timed",
        "--cpu-threads",
        "0",
        "--duration",
        "400ms",
        "--set",
        "warmup=1s",
        "--quiet",
        "--json",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = read_json(&out);
    let r = &v["runs"][0];
    let requests = r["io"]["requests"].as_f64().unwrap();
    let acq = r["threads"][0]["acquisitions"].as_f64().unwrap();
    assert!(requests > 100.0, "{requests} requests");
    let per = acq / requests;
    assert!(
        (2.0..6.0).contains(&per),
        "{per:.1} acquisitions per request ({acq} / {requests})"
    );
    let measured = r["measured_s"].as_f64().unwrap();
    assert!(
        (0.35..0.9).contains(&measured),
        "measured {measured}s of a 0.4 s window"
    );
}

/// Pinned threads report the one core they were pinned to and no migrations; `timed`'s
/// forced switches show up as switch waits, counted apart from GIL wait and hold.
#[test]
fn cores_and_switch_waits_are_reported() {
    let out = tmp("cores.json");
    let (o, _) = run(&[
        "run",
        &workload("cpu-scaling.toml"),
        "--lock",
        "timed",
        "--cpu-threads",
        "2",
        "--interval",
        "1ms",
        "--duration",
        "300ms",
        "--pin",
        "spread",
        "--quiet",
        "--json",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = read_json(&out);
    let r = &v["runs"][0];
    for t in r["threads"].as_array().unwrap() {
        let pinned = t["pinned"].as_u64().expect("pinned");
        assert_eq!(t["cores"], serde_json::json!([pinned]), "{t}");
        assert_eq!(t["migrations"], 0, "{t}");
    }
    let forced = r["gil"]["forced_drops"].as_u64().unwrap();
    let sw = &r["gil"]["switch_wait_us"];
    // How many depends on how busy the machine is; that they are counted is what matters.
    assert!(forced > 0, "{forced} forced drops");
    assert!(sw["count"].as_u64().unwrap() >= forced, "{sw}");
    assert!(sw["max"].as_f64().unwrap() > 0.0, "{sw}");
}
