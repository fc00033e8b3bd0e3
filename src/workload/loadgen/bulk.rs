//! The bulk-send workload: one connection writing as fast as the server reads.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::sockets::{connect_done, describe, describe_connect};
use super::CONNECT_TIMEOUT;
use crate::workload::server::is_transient;

/// Connects to `target` within [`CONNECT_TIMEOUT`]; `Ok(None)` if `stop` was set first.
pub(super) fn connect_unless_stopped(
    target: SocketAddr,
    stop: &AtomicBool,
) -> io::Result<Option<StdTcpStream>> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(4);
    let mut t = TcpStream::connect(target)?;
    poll.registry()
        .register(&mut t, Token(0), Interest::WRITABLE)?;
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    while !connect_done(&t)? {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        match poll.poll(&mut events, Some(left.min(Duration::from_millis(10)))) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
            _ => {}
        }
    }
    poll.registry().deregister(&mut t)?;
    let s = StdTcpStream::from(t);
    s.set_nonblocking(false)?;
    Ok(Some(s))
}

/// The client side of `bulk`: connects and sends `total` bytes as fast as the server takes
/// them. Returns the seconds the send took (0 if stopped before it connected).
pub fn run_bulk_send(target: SocketAddr, total: u64, stop: &AtomicBool) -> Result<f64, String> {
    let Some(mut s) = connect_unless_stopped(target, stop)
        .map_err(|e| format!("cannot connect to {}", describe_connect(target, &e)))?
    else {
        return Ok(0.0);
    };
    s.set_write_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let chunk = crate::workload::make_blob(64 << 10, 99);
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < total && !stop.load(Ordering::Relaxed) {
        let n = ((total - sent) as usize).min(chunk.len());
        match s.write(&chunk[..n]) {
            Ok(m) => sent += m as u64,
            Err(e) if is_transient(&e) => {}
            // The run ended and the receiver closed with our data unread (a reset).
            Err(_) if stop.load(Ordering::SeqCst) => break,
            Err(e) => return Err(format!("bulk send to {}", describe(target, &e))),
        }
    }
    let _ = s.flush();
    // Hold the connection open until the server has read everything (it closes first or
    // the run stops), so closing cannot reset unread data.
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut b = [0u8; 1];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if is_transient(&e) => {}
            Err(_) => break,
        }
    }
    Ok(t0.elapsed().as_secs_f64())
}
