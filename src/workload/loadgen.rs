//! The load generator: the client side of the socket workloads, outside every GIL, on a
//! thread of its own (or in its own process via `gilbench load`, against any echo server).
//!
//! * Closed loop: each of `connections` keeps one request in flight; every round trip is
//!   recorded.
//! * Open loop at `rate` requests/s: request k is *intended* to go out at `start + k/rate`,
//!   whatever happened to earlier ones, and its latency is measured from that intended time,
//!   so a stalled server cannot hide behind a stalled client (coordinated omission corrected,
//!   as wrk2 does). The client's own lateness (actual minus intended send time) is recorded
//!   too, so server latency can be told from client lateness.
//! * Requests sent during `warmup` are not recorded; a request without a reply after
//!   `timeout` counts as failed and its connection is replaced.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};

use super::server::{is_transient, Transport};
use crate::metrics::{new_hist, record, Hist, Interval, IntervalHists};

/// A send more than this late counts as not sent on time.
pub const LATE_AFTER: Duration = Duration::from_millis(1);
/// With a core of its own, the generator spins instead of sleeping this close to a send.
const SPIN_WINDOW: Duration = Duration::from_micros(200);

#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub transport: Transport,
    /// Servers to spread the connections over (round-robin).
    pub targets: Vec<SocketAddr>,
    pub connections: usize,
    /// Requests per second for the open loop; 0 for the closed loop.
    pub rate: f64,
    pub request_bytes: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub timeout: Duration,
    /// Spin instead of sleeping: through the last stretch before each open-loop send, and
    /// while waiting for closed-loop replies (only with a core of its own).
    pub busy_wait: bool,
    /// Also cut the latency histogram into intervals of this length (`--hlog`).
    pub intervals: Option<Duration>,
}

/// What the load generator saw.
pub struct LoadResult {
    pub requests: u64,
    pub failed: u64,
    /// Open loop: sends that went out more than [`LATE_AFTER`] after their intended time.
    pub late: u64,
    pub bytes: u64,
    /// Round-trip latency (closed loop) or latency from the intended send time (open loop).
    pub latency: Hist,
    /// Actual minus intended send time (open loop).
    pub lateness: Hist,
    /// Length of the recorded window.
    pub measured_s: f64,
    /// Connection-level errors (resets, refused reconnects, corrupt replies).
    pub errors: u64,
    pub first_error: Option<String>,
    /// Latency per interval, if asked for.
    pub intervals: Vec<Interval>,
    interval_hists: Option<IntervalHists>,
}

impl LoadResult {
    fn record_latency(&mut self, now: Instant, d: Duration) {
        record(&mut self.latency, d);
        if let Some(iv) = &mut self.interval_hists {
            iv.record(now, 0, d);
        }
        self.requests += 1;
    }
}

const TIMER: Token = Token(usize::MAX);

/// A one-shot monotonic timerfd, to wake a poll at a precise time.
struct Timer {
    fd: std::os::fd::RawFd,
}

impl Timer {
    fn new() -> io::Result<Self> {
        // SAFETY: timerfd_create has no memory preconditions; the result is checked.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Timer { fd })
    }

    /// Fires once, `after` from now.
    fn arm(&mut self, after: Duration) {
        let after = after.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `fd` is our open timerfd and `spec` a valid itimerspec on the stack; the old
        // value is not asked for (null).
        unsafe { libc::timerfd_settime(self.fd, 0, &spec, std::ptr::null_mut()) };
    }

    /// Consumes an expiry so the fd stops being readable.
    fn clear(&mut self) {
        let mut n = 0u64;
        // SAFETY: reads at most 8 bytes into a live u64 from our own non-blocking timerfd.
        unsafe { libc::read(self.fd, (&mut n as *mut u64).cast(), 8) };
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // SAFETY: we own `fd` and close it exactly once.
        unsafe { libc::close(self.fd) };
    }
}

struct Inflight {
    seq: u64,
    intended: Instant,
}

enum Sock {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

struct Conn {
    target: SocketAddr,
    sock: Option<Sock>,
    inflight: VecDeque<Inflight>,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

/// Opens one client socket to `addr`; a refused or unreachable address is an error.
fn open(transport: Transport, addr: SocketAddr, timeout: Duration) -> io::Result<Sock> {
    match transport {
        Transport::Tcp => {
            let s = StdTcpStream::connect_timeout(&addr, timeout)?;
            s.set_nodelay(true)?;
            s.set_nonblocking(true)?;
            Ok(Sock::Tcp(TcpStream::from_std(s)))
        }
        Transport::Udp => {
            let local: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            }
            .parse()
            .expect("literal address");
            let s = StdUdpSocket::bind(local)?;
            s.connect(addr)?;
            s.set_nonblocking(true)?;
            Ok(Sock::Udp(UdpSocket::from_std(s)))
        }
    }
}

fn describe(addr: SocketAddr, e: &io::Error) -> String {
    let what = match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "no answer (timed out)".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".to_owned(),
        _ => e.to_string(),
    };
    format!("{addr}: {what}")
}

/// Writes as much of `tx` as the socket takes now; only real errors are returned.
fn write_pending(t: &mut TcpStream, tx: &mut Vec<u8>) -> io::Result<()> {
    while !tx.is_empty() {
        match t.write(tx) {
            Ok(n) => {
                tx.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn payload(seq: u64, len: usize, out: &mut Vec<u8>) {
    let start = out.len();
    out.resize(start + len, 0);
    let p = &mut out[start..];
    let tag = seq.to_le_bytes();
    for (i, b) in p.iter_mut().enumerate() {
        *b = if i < 8 {
            tag[i]
        } else {
            (seq as u8).wrapping_add(i as u8)
        };
    }
}

fn seq_of(reply: &[u8]) -> Option<u64> {
    reply
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

struct Gen<'a> {
    cfg: &'a LoadConfig,
    poll: Poll,
    conns: Vec<Conn>,
    seq: u64,
    measure_from: Instant,
    res: LoadResult,
    /// Scratch space for building a UDP request.
    buf: Vec<u8>,
    /// Scratch space for receiving, allocated once (zeroing 64 KiB per read would add
    /// microseconds to every measured round trip).
    rxbuf: Vec<u8>,
}

impl Gen<'_> {
    fn fail(&mut self, msg: String) {
        self.res.errors += 1;
        self.res.first_error.get_or_insert(msg);
    }

    /// Counts a connection's outstanding requests as failed and opens a new connection.
    fn replace(&mut self, i: usize, why: Option<String>) {
        if let Some(w) = why {
            self.fail(w);
        }
        let recorded = self.conns[i]
            .inflight
            .iter()
            .filter(|r| r.intended >= self.measure_from)
            .count();
        self.res.failed += recorded as u64;
        let c = &mut self.conns[i];
        c.inflight.clear();
        c.rx.clear();
        c.tx.clear();
        if let Some(mut s) = c.sock.take() {
            let _ = match &mut s {
                Sock::Tcp(t) => self.poll.registry().deregister(t),
                Sock::Udp(u) => self.poll.registry().deregister(u),
            };
        }
        let target = c.target;
        match open(self.cfg.transport, target, self.cfg.timeout).and_then(|mut s| {
            self.register(&mut s, i)?;
            Ok(s)
        }) {
            Ok(s) => self.conns[i].sock = Some(s),
            Err(e) => self.fail(format!("reconnect to {}", describe(target, &e))),
        }
    }

    fn register(&self, s: &mut Sock, i: usize) -> io::Result<()> {
        let r = self.poll.registry();
        match s {
            Sock::Tcp(t) => r.register(t, Token(i), Interest::READABLE | Interest::WRITABLE),
            Sock::Udp(u) => r.register(u, Token(i), Interest::READABLE),
        }
    }

    fn send(&mut self, i: usize, intended: Instant) {
        let seq = self.seq;
        self.seq += 1;
        let len = self.cfg.request_bytes;
        let c = &mut self.conns[i];
        c.inflight.push_back(Inflight { seq, intended });
        let mut err = None;
        match &mut c.sock {
            Some(Sock::Tcp(t)) => {
                payload(seq, len, &mut c.tx);
                if let Err(e) = write_pending(t, &mut c.tx) {
                    err = Some(describe(c.target, &e));
                }
            }
            Some(Sock::Udp(u)) => {
                self.buf.clear();
                payload(seq, len, &mut self.buf);
                if let Err(e) = u.send(&self.buf) {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        err = Some(describe(c.target, &e));
                    }
                }
            }
            None => {}
        }
        if let Some(e) = err {
            self.replace(i, Some(e));
        }
    }

    /// Reads what connection `i` has; returns how many replies completed.
    fn receive(&mut self, i: usize, closed_loop: bool) -> u64 {
        let mut done = 0;
        let len = self.cfg.request_bytes;
        let mut err = None;
        loop {
            let now;
            let c = &mut self.conns[i];
            match &mut c.sock {
                Some(Sock::Tcp(t)) => {
                    // Read into the reusable scratch buffer, keep only what arrived.
                    let n = match t.read(&mut self.rxbuf) {
                        Ok(0) => {
                            err = Some(format!("{}: the server closed the connection", c.target));
                            break;
                        }
                        Ok(n) => n,
                        Err(e) => {
                            if e.kind() == io::ErrorKind::WouldBlock {
                                break;
                            }
                            if e.kind() != io::ErrorKind::Interrupted {
                                err = Some(describe(c.target, &e));
                                break;
                            }
                            continue;
                        }
                    };
                    c.rx.extend_from_slice(&self.rxbuf[..n]);
                    now = Instant::now();
                    let mut consumed = 0;
                    while c.rx.len() - consumed >= len {
                        let reply = &c.rx[consumed..consumed + len];
                        consumed += len;
                        let Some(req) = c.inflight.pop_front() else {
                            err = Some(format!("{}: a reply nobody asked for", c.target));
                            break;
                        };
                        if len >= 8 && seq_of(reply) != Some(req.seq) {
                            err = Some(format!(
                                "{}: a reply that does not match its request",
                                c.target
                            ));
                            break;
                        }
                        self.res.bytes += len as u64;
                        if req.intended >= self.measure_from {
                            self.res.record_latency(now, now - req.intended);
                        }
                        done += 1;
                    }
                    c.rx.drain(..consumed);
                    if err.is_some() {
                        break;
                    }
                }
                Some(Sock::Udp(u)) => {
                    let n = match u.recv(&mut self.rxbuf) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            err = Some(describe(c.target, &e));
                            break;
                        }
                    };
                    now = Instant::now();
                    let seq = seq_of(&self.rxbuf[..n]);
                    // Replies to requests already given up on are ignored.
                    if let Some(pos) = c.inflight.iter().position(|r| Some(r.seq) == seq) {
                        let req = c.inflight.remove(pos).expect("position is valid");
                        self.res.bytes += n as u64;
                        if req.intended >= self.measure_from {
                            self.res.record_latency(now, now - req.intended);
                        }
                        done += 1;
                    }
                }
                None => break,
            }
        }
        if let Some(e) = err {
            self.replace(i, Some(e));
            if closed_loop && self.conns[i].sock.is_some() {
                self.send(i, Instant::now());
            }
            return done;
        }
        if closed_loop {
            for _ in 0..done {
                self.send(i, Instant::now());
            }
        }
        done
    }

    fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let mut err = None;
        if let Some(Sock::Tcp(t)) = &mut c.sock {
            if let Err(e) = write_pending(t, &mut c.tx) {
                err = Some(describe(c.target, &e));
            }
        }
        if let Some(e) = err {
            self.replace(i, Some(e));
        }
    }
}

/// Drives echo servers until `warmup + duration` has passed or `stop` is set. Fails only if
/// no connection can be opened at all.
pub fn run_echo_load(cfg: &LoadConfig, stop: &AtomicBool) -> Result<LoadResult, String> {
    let poll = Poll::new().map_err(|e| format!("cannot create a poller: {e}"))?;
    let mut conns = Vec::with_capacity(cfg.connections);
    for i in 0..cfg.connections {
        let target = cfg.targets[i % cfg.targets.len()];
        let mut s = open(cfg.transport, target, cfg.timeout)
            .map_err(|e| format!("cannot connect to {}", describe(target, &e)))?;
        let r = poll.registry();
        match &mut s {
            Sock::Tcp(t) => r.register(t, Token(i), Interest::READABLE | Interest::WRITABLE),
            Sock::Udp(u) => r.register(u, Token(i), Interest::READABLE),
        }
        .map_err(|e| format!("cannot poll a socket: {e}"))?;
        conns.push(Conn {
            target,
            sock: Some(s),
            inflight: VecDeque::new(),
            rx: Vec::new(),
            tx: Vec::new(),
        });
    }
    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let mut g = Gen {
        cfg,
        poll,
        conns,
        seq: 0,
        measure_from,
        res: LoadResult {
            requests: 0,
            failed: 0,
            late: 0,
            bytes: 0,
            latency: new_hist(),
            lateness: new_hist(),
            measured_s: 0.0,
            errors: 0,
            first_error: None,
            intervals: Vec::new(),
            interval_hists: cfg
                .intervals
                .map(|len| IntervalHists::new(measure_from, len, 1)),
        },
        buf: Vec::with_capacity(65_536),
        rxbuf: vec![0u8; 65_536],
    };
    let closed = cfg.rate <= 0.0;
    let period = if closed {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(1.0 / cfg.rate)
    };
    let mut next_send = start;
    let mut rr = 0usize;
    if closed {
        for i in 0..g.conns.len() {
            g.send(i, Instant::now());
        }
    }
    let mut events = Events::with_capacity(256);
    let mut last_timeout_scan = start;
    let mut timer = Timer::new().map_err(|e| format!("cannot create a timer: {e}"))?;
    g.poll
        .registry()
        .register(
            &mut mio::unix::SourceFd(&timer.fd),
            TIMER,
            Interest::READABLE,
        )
        .map_err(|e| format!("cannot poll a timer: {e}"))?;
    // Wake-ups from sleeps as precise as the kernel allows (the default slack is 50 us).
    // SAFETY: PR_SET_TIMERSLACK only changes this thread's timer slack; no pointers involved.
    unsafe {
        libc::prctl(
            libc::PR_SET_TIMERSLACK,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
    }
    loop {
        let now = Instant::now();
        if now >= end || stop.load(Ordering::Relaxed) {
            break;
        }
        if !closed {
            while next_send <= now {
                let n = g.conns.len();
                let Some(i) = (0..n)
                    .map(|k| (rr + k) % n)
                    .find(|&i| g.conns[i].sock.is_some())
                else {
                    break;
                };
                rr = i + 1;
                let sent = Instant::now();
                g.send(i, next_send);
                let late = sent.saturating_duration_since(next_send);
                if next_send >= measure_from {
                    record(&mut g.res.lateness, late);
                    if late > LATE_AFTER {
                        g.res.late += 1;
                    }
                }
                next_send += period;
            }
        }
        // Give up on requests older than the timeout (scanned every few ms).
        if now.duration_since(last_timeout_scan) >= Duration::from_millis(5) {
            last_timeout_scan = now;
            for i in 0..g.conns.len() {
                let stale = g.conns[i]
                    .inflight
                    .front()
                    .is_some_and(|r| now.saturating_duration_since(r.intended) > cfg.timeout);
                if stale || (g.conns[i].sock.is_none() && closed) {
                    g.replace(i, None);
                    if closed && g.conns[i].sock.is_some() {
                        g.send(i, Instant::now());
                    }
                }
            }
        }
        if g.conns.iter().all(|c| c.sock.is_none()) {
            break;
        }
        let wait = if closed {
            // With a core of its own the client polls without sleeping, so its own wake-up
            // latency stays out of the round trip.
            if cfg.busy_wait {
                Duration::ZERO
            } else {
                Duration::from_millis(5)
            }
        } else {
            let until = next_send.saturating_duration_since(Instant::now());
            let sleep = if cfg.busy_wait {
                until.saturating_sub(SPIN_WINDOW)
            } else {
                until
            };
            if sleep.is_zero() {
                Duration::ZERO
            } else {
                // epoll's timeout counts whole milliseconds; a timerfd wakes the poll at the
                // intended send time to the microsecond.
                timer.arm(sleep);
                Duration::from_millis(50)
            }
        };
        if let Err(e) = g.poll.poll(&mut events, Some(wait)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(format!("poll failed: {e}"));
            }
        }
        let ready: Vec<(usize, bool, bool)> = events
            .iter()
            .map(|e| {
                (
                    e.token().0,
                    e.is_readable() || e.is_read_closed() || e.is_error(),
                    e.is_writable(),
                )
            })
            .collect();
        for (i, readable, writable) in ready {
            if i == TIMER.0 {
                timer.clear();
                continue;
            }
            if i >= g.conns.len() {
                continue;
            }
            if writable {
                g.flush(i);
            }
            if readable {
                g.receive(i, closed);
            }
        }
    }
    let finished = Instant::now().min(end);
    g.res.measured_s = finished
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    // Whatever is still outstanding at the end and older than the timeout has failed.
    let now = Instant::now();
    for c in &g.conns {
        g.res.failed += c
            .inflight
            .iter()
            .filter(|r| {
                r.intended >= measure_from
                    && now.saturating_duration_since(r.intended) > cfg.timeout
            })
            .count() as u64;
    }
    if let Some(iv) = g.res.interval_hists.take() {
        g.res.intervals = iv.finish(finished);
    }
    g.close_politely();
    Ok(g.res)
}

impl Gen<'_> {
    /// Half-closes every TCP connection and reads what is still on its way (for up to 100 ms
    /// in all), so that closing does not reset a server that is still answering.
    fn close_politely(&mut self) {
        let until = Instant::now() + Duration::from_millis(100);
        for c in &mut self.conns {
            let Some(Sock::Tcp(t)) = &mut c.sock else {
                continue;
            };
            if t.shutdown(std::net::Shutdown::Write).is_err() {
                continue;
            }
            while Instant::now() < until {
                match t.read(&mut self.rxbuf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_micros(200))
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
    }
}

/// The client side of `bulk`: connects and sends `total` bytes as fast as the server takes
/// them. Returns the seconds the send took.
pub fn run_bulk_send(
    target: SocketAddr,
    total: u64,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<f64, String> {
    let mut s = StdTcpStream::connect_timeout(&target, timeout)
        .map_err(|e| format!("cannot connect to {}", describe(target, &e)))?;
    s.set_write_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    let chunk = super::make_blob(64 << 10, 99);
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < total && !stop.load(Ordering::Relaxed) {
        let n = ((total - sent) as usize).min(chunk.len());
        match s.write(&chunk[..n]) {
            Ok(m) => sent += m as u64,
            Err(e) if is_transient(&e) => {}
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
