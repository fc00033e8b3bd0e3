//! The `threaded` server structure (a thread per connection, blocking recv and send) under
//! every design: request/response correctness, the number of GIL releases per request that
//! sets it apart from the poll loop, its caps (connections, peers that do not read), UDP,
//! bulk under both structures, and faults (panics, hangs, signals) as for `poll`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{
    addr_of, assert_udp_never_amplifies, bin, err_line, first_line, one, read_json, run,
    run_long_enough, s, signal, tmp, workload,
};
use gilbench::gil::LockKind;

/// Starts `gilbench serve` on the threaded structure; returns it with its address.
fn serve(extra: &[&str]) -> (std::process::Child, String) {
    let w = workload("convoy-echo.toml");
    let mut args = vec![
        "serve",
        &w,
        "--cpu-threads",
        "0",
        "--set",
        "server=threaded",
    ];
    if !extra.contains(&"--duration") {
        args.extend_from_slice(&["--duration", "3s"]);
    }
    args.extend_from_slice(extra);
    let mut child = bin()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = first_line(&mut child);
    assert!(
        line.starts_with("listening on"),
        "serve {args:?} printed {line:?}"
    );
    (child, addr_of(&line))
}

#[test]
fn every_design_serves_every_connection_correctly() {
    let _g = one();
    for lock in LockKind::ALL {
        let l = format!("lock={lock}");
        // 20 requests at least, in a run made longer on a machine too busy to serve them.
        let enough = |r: &gilbench::result::RunResult| {
            let n = r.io.as_ref().unwrap().requests;
            (n >= 20).then_some(()).ok_or(format!("{n} requests"))
        };
        let r = run_long_enough(
            "convoy-echo.toml",
            &[
                "server=threaded",
                "warmup=0s",
                "connections=3",
                "interval=1ms",
                "quanta=[500us,1ms,4ms]",
                // Short slices for the historical designs too: this test is about correct
                // echoes, not about their convoys (Ruby's 100 ms quantum allows 3 requests
                // in 400 ms).
                "ruby_quantum=2ms",
                "ruby_tick=1ms",
                "ocaml_tick=1ms",
                "bfs_rr=1ms",
                &l,
            ],
            Duration::from_millis(400),
            enough,
        );
        let io = r.io.as_ref().unwrap();
        // The load generator checks every reply against its request: a wrong or missing echo
        // is an error or a failure.
        assert_eq!(io.errors, 0, "{lock}: {:?}", io.first_error);
        assert_eq!(io.failed, 0, "{lock}");
        assert!(io.requests >= 20, "{lock}: {} requests", io.requests);
        assert_eq!(io.server.accepted, 3, "{lock}: a thread per connection");
        assert!(io.server.bytes_out <= io.server.bytes_in, "{lock}");
        assert!(
            io.server.requests >= io.requests,
            "{lock}: the server counted {} requests, the client {}",
            io.server.requests,
            io.requests
        );
        if lock != LockKind::None {
            assert_eq!(r.gil.overlaps, Some(0), "{lock}: a hold was broken");
        }
        // The connection threads' work is the server thread's: at least two acquisitions per
        // request (the recv that completes it, the send after it). No warm-up, so that the
        // server's counters and its request count cover the same window.
        let echo = r.threads.iter().find(|t| t.name == "echo-0").unwrap();
        assert!(
            echo.counters.acquisitions.unwrap() >= 2 * io.server.requests,
            "{lock}: {} acquisitions for {} requests",
            echo.counters.acquisitions.unwrap(),
            io.server.requests
        );
        assert!(!r.partial && r.failure.is_none(), "{lock}");
    }
}

/// Server-side GIL releases per request of a closed-loop client with one connection.
fn releases_per_request(server: &str) -> f64 {
    let s = format!("server={server}");
    // Over 100 requests, for the ratio's precision: a run made longer on a machine too busy
    // to serve them.
    let served = |r: &gilbench::result::RunResult| r.io.as_ref().unwrap().server.requests;
    let enough = |r: &gilbench::result::RunResult| {
        (served(r) > 100)
            .then_some(())
            .ok_or(format!("{} requests", served(r)))
    };
    let sets = ["cpu_threads=0", "warmup=0s", &s];
    let r = run_long_enough(
        "convoy-echo.toml",
        &sets,
        Duration::from_millis(500),
        enough,
    );
    let echo = r.threads.iter().find(|t| t.name == "echo-0").unwrap();
    let requests = served(&r);
    assert!(requests > 100, "{server}: {requests} requests");
    echo.counters.voluntary_drops.unwrap() as f64 / requests as f64
}

#[test]
fn threaded_releases_twice_per_request_and_poll_three_times() {
    let _g = one();
    let threaded = releases_per_request("threaded");
    let poll = releases_per_request("poll");
    eprintln!("GIL releases per request: threaded {threaded:.3}, poll {poll:.3}");
    assert!(
        (1.95..2.1).contains(&threaded),
        "threaded: {threaded:.3} releases per request"
    );
    assert!(
        (2.95..3.1).contains(&poll),
        "poll: {poll:.3} releases per request"
    );
}

#[test]
fn echoes_exactly_what_arrives_however_it_is_split() {
    let _g = one();
    let (child, addr) = serve(&["--set", "request_bytes=10"]);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let msg: Vec<u8> = (0..250u32).map(|i| (i * 7) as u8).collect();
    // Uneven pieces, with pauses so that they arrive as separate segments.
    for piece in msg.chunks(37) {
        s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
    // Nothing more than was sent.
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut extra = [0u8; 16];
    assert!(matches!(s.read(&mut extra), Err(_) | Ok(0)));
    drop(s);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn connections_over_the_cap_are_closed_and_the_others_served() {
    let _g = one();
    let (child, addr) = serve(&["--set", "max_connections=2"]);
    let mut kept: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Let the server accept the first two before the third arrives.
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(&addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let _ = third.write_all(&[1u8; 64]);
    let mut b = [0u8; 64];
    assert!(
        matches!(third.read(&mut b), Ok(0) | Err(_)),
        "the connection over the cap was served"
    );
    for s in &mut kept {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(&[9u8; 64]).unwrap();
        s.read_exact(&mut b).unwrap();
        assert_eq!(b, [9u8; 64]);
    }
    drop(kept);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dropped 1 peers"), "{text}");
}

#[test]
fn a_peer_that_never_reads_is_dropped_and_the_others_served() {
    let _g = one();
    let (child, addr) = serve(&["--duration", "4s", "--set", "max_request_bytes=4096"]);
    let mut flood = TcpStream::connect(&addr).unwrap();
    flood
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let junk = vec![0xAAu8; 64 << 10];
    let t0 = Instant::now();
    // Write until the server stops taking bytes (it cannot echo them: we never read).
    while t0.elapsed() < Duration::from_secs(3) && flood.write_all(&junk).is_ok() {}
    // Meanwhile another peer is served.
    let mut ok = TcpStream::connect(&addr).unwrap();
    ok.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    ok.write_all(&[5u8; 64]).unwrap();
    let mut b = [0u8; 64];
    ok.read_exact(&mut b).unwrap();
    assert_eq!(b, [5u8; 64]);
    drop((flood, ok));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dropped 1 peers"), "{text}");
}

#[test]
fn udp_threaded_answers_and_never_amplifies() {
    let _g = one();
    let r = run(
        "convoy-echo.toml",
        &[
            "server=threaded",
            "transport=udp",
            "cpu_threads=1",
            "duration=500ms",
            "warmup=100ms",
        ],
    );
    let io = r.io.unwrap();
    assert!(io.requests > 20, "{} UDP requests", io.requests);
    assert_eq!(io.errors, 0);
    assert!(io.server.bytes_out <= io.server.bytes_in);
    let (child, addr) = serve(&[
        "--duration",
        "1500ms",
        "--set",
        "transport=udp",
        "--set",
        "max_request_bytes=512",
    ]);
    assert_udp_never_amplifies(&addr);
    child.wait_with_output().unwrap();
}

#[test]
fn bulk_completes_under_both_structures_and_poll_releases_twice_per_recv() {
    let _g = one();
    let mut per_recv = Vec::new();
    for server in ["poll", "threaded"] {
        let s = format!("server={server}");
        let r = run("convoy-bulk.toml", &["cpu_threads=0", "bulk_mib=2", &s]);
        let io = r.io.as_ref().unwrap();
        assert!(
            io.transfer_s.is_some(),
            "{server}: the transfer did not complete"
        );
        assert_eq!(io.server.bytes_in, 2 << 20, "{server}");
        let bulk = r.threads.iter().find(|t| t.name == "bulk-0").unwrap();
        per_recv.push(bulk.counters.voluntary_drops.unwrap() as f64 / io.server.requests as f64);
    }
    eprintln!(
        "bulk releases per recv: poll {:.2}, threaded {:.2}",
        per_recv[0], per_recv[1]
    );
    assert!(
        (1.9..2.3).contains(&per_recv[0]),
        "poll: {:.2}",
        per_recv[0]
    );
    assert!(
        (0.9..1.3).contains(&per_recv[1]),
        "threaded: {:.2}",
        per_recv[1]
    );
}

#[test]
fn faults_end_a_threaded_run_as_they_end_a_poll_run() {
    let _g = one();
    let w = workload("convoy-echo.toml");
    let w = w.as_str();
    // A CPU thread that panics holding the GIL: one line, exit 1, on time.
    let t0 = Instant::now();
    let o = bin()
        .args([
            "run",
            w,
            "--duration",
            "5s",
            "--set",
            "server=threaded",
            "--set",
            "fault=panic-holding-gil",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(err_line(&o).contains("injected fault"));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    // A CPU thread that hangs holding the GIL: the watchdog names it.
    let o = bin()
        .args([
            "run",
            w,
            "--duration",
            "30s",
            "--set",
            "server=threaded",
            "--set",
            "fault=hang-holding-gil",
            "--set",
            "watchdog=1s",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = err_line(&o);
    assert!(
        e.contains("watchdog") && e.contains("cpu-0 holds the GIL"),
        "{e}"
    );
}

#[test]
fn ctrl_c_stops_a_threaded_server_with_open_connections() {
    let _g = one();
    let (child, addr) = serve(&["--duration", "60s"]);
    // An idle connection: its thread sits in a blocking recv.
    let _idle = TcpStream::connect(&addr).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(out.status.code(), Some(130));
}

#[test]
fn the_server_key_is_checked() {
    let w = workload("convoy-echo.toml");
    let o = bin()
        .args(["run", &w, "--set", "server=forked"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = err_line(&o);
    assert!(
        e.contains("'server'") && e.contains("poll or threaded"),
        "{e}"
    );
    let o = bin().arg("keys").output().unwrap();
    let keys = String::from_utf8_lossy(&o.stdout);
    assert!(keys.lines().any(|l| l.starts_with("server ")), "{keys}");
}

/// Connection threads are interpreter threads like the others: each one's GIL timeline
/// (`--trace`) and interval histograms (`--hlog`) are written under its own name, beside the
/// accepting thread's and the CPU thread's.
#[test]
fn connection_threads_appear_in_the_timeline_and_the_interval_log() {
    let _g = one();
    let (trace, hlog) = (tmp("conns.trace.json"), tmp("conns.hlog"));
    let w = workload("convoy-echo.toml");
    let o = bin()
        .args([
            "run",
            &w,
            "--set",
            "server=threaded",
            "--set",
            "connections=2",
        ])
        .args(["--duration", "1s", "--quiet", "--force"])
        .args(["--trace", s(&trace), "--hlog", s(&hlog)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = read_json(&trace);
    let events = t["traceEvents"].as_array().unwrap();
    let tid_of = |name: &str| {
        events
            .iter()
            .find(|e| e["name"] == "thread_name" && e["args"]["name"] == name)
            .map(|e| e["tid"].clone())
    };
    let log = std::fs::read_to_string(&hlog).unwrap();
    for name in ["echo-0", "echo-0.c0", "echo-0.c1", "cpu-0"] {
        let tid = tid_of(name).unwrap_or_else(|| panic!("{name} is not in the timeline"));
        assert!(
            events
                .iter()
                .any(|e| e["tid"] == tid && e["ph"] == "B" && e["name"] == "holds GIL"),
            "{name} never holds the GIL in the timeline"
        );
        for metric in ["gil-wait", "gil-hold"] {
            let tag = format!("Tag={name}.{metric},");
            assert!(log.contains(&tag), "{tag} is not in the interval log");
        }
    }
    // With every GIL thread traced, the idle-while-wanted track is derived.
    let idle = &t["otherData"]["runs"][0]["idle_while_wanted"];
    assert!(idle["measured_share"].is_number(), "{idle}");
}
