//! The load generator fails a request only once its own deadline has passed: requests behind
//! a late one keep waiting (issue 24, item 1). Loopback servers that answer late or never.

mod common;

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gilbench::workload::loadgen::{run_echo_load, LoadConfig, LoadResult};
use gilbench::workload::Transport;

fn open_loop(transport: Transport, target: SocketAddr, rate: f64, warmup_ms: u64) -> LoadConfig {
    LoadConfig {
        transport,
        targets: vec![target],
        connections: 1,
        rate,
        request_bytes: 64,
        warmup: Duration::from_millis(warmup_ms),
        duration: Duration::from_millis(2000),
        timeout: Duration::from_secs(1),
        busy_wait: false,
        intervals: None,
        window_over: None,
    }
}

/// The count at the start of `unanswered` ("N requests still waited ...").
fn waiting(r: &LoadResult) -> u64 {
    r.unanswered
        .as_deref()
        .and_then(|u| u.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A TCP server that accepts and never reads, 1000 requests/s for 2 s after a 100 ms
/// warm-up, timeout 1 s: the requests due in the first second of the window have failed
/// (about 1000), those of the last second still wait (about 1000). Dropping the connection
/// at the first timeout counted nearly all 2000 as failed.
#[test]
fn a_server_that_never_reads_fails_only_the_requests_past_their_deadline() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = open_loop(Transport::Tcp, l.local_addr().unwrap(), 1000.0, 100);
    let server = std::thread::spawn(move || {
        let mut kept = Vec::new();
        l.set_nonblocking(true).unwrap();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(4) {
            if let Ok((s, _)) = l.accept() {
                kept.push(s);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        kept.len()
    });
    let r = run_echo_load(&cfg, &AtomicBool::new(false)).unwrap();
    assert_eq!(r.requests, 0);
    assert_eq!(r.lost, 0, "nothing was lost with a connection");
    let w = waiting(&r);
    assert!(
        (800..=1150).contains(&r.failed),
        "failed {}, waiting {w}: {:?}",
        r.failed,
        r.unanswered
    );
    assert!(
        (850..=1200).contains(&w),
        "failed {}, waiting {w}: {:?}",
        r.failed,
        r.unanswered
    );
    assert_eq!(server.join().unwrap(), 1, "one connection, never replaced");
}

/// A UDP server that answers every 20th request after 1.3 s and the others after 0.3 s;
/// 200 requests/s for 2 s, timeout 1 s. Only the slow ones due in the first second fail
/// (10); the others are answered. Replacing the socket at each timeout lost every request
/// in flight with it (about 60 each time).
#[test]
fn a_udp_request_past_its_deadline_fails_alone() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = open_loop(Transport::Udp, sock.local_addr().unwrap(), 200.0, 0);
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || late_udp_server(sock, &stop))
    };
    let r = run_echo_load(&cfg, &AtomicBool::new(false)).unwrap();
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap();
    let said = format!(
        "requests {}, failed {}, lost {}, {:?}",
        r.requests, r.failed, r.lost, r.unanswered
    );
    assert_eq!(r.lost, 0, "{said}");
    assert!((8..=13).contains(&r.failed), "{said}");
    assert!((290..=330).contains(&r.requests), "{said}");
}

/// Answers each datagram after 0.3 s, every 20th (by the sequence number in its first
/// byte) after 1.3 s.
fn late_udp_server(sock: UdpSocket, stop: &AtomicBool) {
    sock.set_read_timeout(Some(Duration::from_millis(2)))
        .unwrap();
    let (mut fast, mut slow) = (VecDeque::new(), VecDeque::new());
    let mut b = [0u8; 2048];
    while !stop.load(Ordering::SeqCst) {
        if let Ok((n, from)) = sock.recv_from(&mut b) {
            let now = Instant::now();
            let seq = u64::from_le_bytes(b[..8].try_into().unwrap());
            if seq % 20 == 0 {
                slow.push_back((now + Duration::from_millis(1300), b[..n].to_vec(), from));
            } else {
                fast.push_back((now + Duration::from_millis(300), b[..n].to_vec(), from));
            }
        }
        for q in [&mut fast, &mut slow] {
            while q.front().is_some_and(|(due, _, _)| *due <= Instant::now()) {
                let (_, data, to) = q.pop_front().unwrap();
                let _ = sock.send_to(&data, to);
            }
        }
    }
}

/// `load` against a server that never answers: no request succeeded, the run failed (exit
/// 1), and its result is written all the same, with the failures (no file was written).
#[test]
fn a_load_in_which_no_request_succeeded_still_writes_its_json() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let kept = l.accept();
        std::thread::sleep(Duration::from_millis(1500));
        drop(kept);
    });
    let json = common::tmp("none-succeeded.json");
    let _ = std::fs::remove_file(&json);
    let o = common::output(&[
        "load",
        "--connect",
        &addr,
        "--duration",
        "500ms",
        "--warmup",
        "0s",
        "--timeout",
        "100ms",
        "--json",
        common::s(&json),
    ]);
    let err = common::err_line(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no request succeeded"), "{err}");
    let v = common::read_json(&json);
    let r = &v["runs"][0];
    assert_eq!(r["io"]["requests"], 0, "{r}");
    assert!(r["io"]["failed"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["partial"], true);
    server.join().unwrap();
}
