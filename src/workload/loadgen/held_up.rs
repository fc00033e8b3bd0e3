//! The end of a run on a busy machine, where the generator's own thread can go without a CPU
//! for longer than a short run: modelled by a sleep between the steps of its loop.

use super::*;
use std::io::{Read, Write};
use std::net::TcpListener as StdTcpListener;

fn cfg(target: SocketAddr, duration: Duration) -> LoadConfig {
    LoadConfig {
        transport: Transport::Tcp,
        targets: vec![target],
        connections: 1,
        rate: 0.0,
        request_bytes: 16,
        warmup: Duration::ZERO,
        duration,
        timeout: Duration::from_secs(5),
        busy_wait: false,
        intervals: None,
        window_over: None,
    }
}

/// The generator opens its connection, then gets no CPU until its window is over. The
/// connect completed meanwhile (the kernel answers it: the listener has room): the run
/// must not call that a failed connect, and must say it was held up.
#[test]
fn a_connect_that_completed_while_the_generator_was_held_up_is_not_a_failure() {
    let l = StdTcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = cfg(l.local_addr().unwrap(), Duration::from_millis(100));
    let stop = AtomicBool::new(false);
    let mut g = Gen::new(&cfg).unwrap();
    g.open_all(&stop);
    std::thread::sleep(Duration::from_millis(200));
    let ending = g.drive(&stop).unwrap();
    assert_eq!(
        ending,
        Ending::Window,
        "its first turn finds the window over"
    );
    let r = g
        .finish(ending)
        .expect("the connection was open: no connect failure");
    assert_eq!(r.requests, 0);
    assert!(r.held_up >= Duration::from_millis(150), "{:?}", r.held_up);
    let why = r.why_none_succeeded(cfg.timeout);
    assert!(why.contains("held up for up to"), "{why}");
}

/// A reply that reached the socket while the generator was held up is told apart from a
/// server that did not answer.
#[test]
fn a_reply_the_generator_was_too_held_up_to_read_is_named() {
    let l = StdTcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = cfg(l.local_addr().unwrap(), Duration::from_millis(400));
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut b = [0u8; 16];
        s.read_exact(&mut b).unwrap();
        // Later than the generator's next poll returns, sooner than it is back.
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(&b).unwrap();
        // Keep the connection until the client closes it.
        let _ = s.read(&mut b);
    });
    let stop = AtomicBool::new(false);
    let mut g = Gen::new(&cfg).unwrap();
    g.open_all(&stop);
    while g.seq == 0 {
        assert_eq!(g.step(&stop).unwrap(), None, "the request went out in time");
    }
    std::thread::sleep(Duration::from_millis(450));
    let ending = g.drive(&stop).unwrap();
    let r = g.finish(ending).unwrap();
    assert_eq!((r.requests, r.failed), (0, 0));
    let why = r.why_none_succeeded(cfg.timeout);
    assert!(
        why.contains("1 request still waited for a reply")
            && why.contains("replies had arrived that the load generator had not read")
            && why.contains("the load generator was held up for up to"),
        "{why}"
    );
    server.join().unwrap();
}
