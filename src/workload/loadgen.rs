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
//! * The run lasts `warmup + duration` from its start, connecting included: every connection
//!   is opened at once, without blocking, and carries requests as soon as it is open; a
//!   connection attempt has [`CONNECT_TIMEOUT`], whatever the request timeout. The stop
//!   flag ends any phase within a poll slice.
//! * A reply counts only if it is, byte for byte, the request it answers; a socket that
//!   ends up connected to itself (a closed port in the ephemeral range) is never used.

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
/// How long one connection attempt may take (never past the end of the run), whatever the
/// request timeout: a SYN dropped by a full accept queue is sent again after 1 s, then 3 s.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that could not be (re)opened is tried again this long after.
const RETRY_AFTER: Duration = Duration::from_millis(100);
/// How often connects in progress are asked where they stand besides their events.
const RECHECK_CONNECTS: Duration = Duration::from_millis(250);

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
    /// Why the run ended before its window did, other than the stop flag (every
    /// connection failed): its figures cover `measured_s` only.
    pub cut_short: Option<String>,
    /// Things the reader should know (connections that never opened, slow connecting).
    pub notes: Vec<String>,
}

impl LoadResult {
    /// Why no request succeeded, in a few words, for a run with `requests == 0`.
    pub fn why_none_succeeded(&self, timeout: Duration) -> String {
        let mut why = Vec::new();
        if self.failed > 0 {
            why.push(format!(
                "{} requests went unanswered (timeout {})",
                self.failed,
                crate::units::format_duration(timeout)
            ));
        }
        if let Some(e) = &self.first_error {
            why.push(format!("{} connection errors, the first: {e}", self.errors));
        }
        if let Some(c) = &self.cut_short {
            why.push(c.clone());
        }
        if why.is_empty() {
            why.push(format!(
                "no reply arrived in the {:.2}s measured",
                self.measured_s
            ));
        }
        why.join("; ")
    }

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

/// Where a connection stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    /// No socket: opened again from `since + RETRY_AFTER` on.
    Down {
        since: Instant,
    },
    /// A TCP connect in progress since `since`.
    Connecting {
        since: Instant,
    },
    Open,
}

struct Conn {
    target: SocketAddr,
    sock: Option<Sock>,
    link: Link,
    /// It has been open at least once.
    ever_open: bool,
    inflight: VecDeque<Inflight>,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

/// The unspecified address of `target`'s family, port 0.
fn any_port(target: SocketAddr) -> SocketAddr {
    let ip: std::net::IpAddr = if target.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    SocketAddr::new(ip, 0)
}

/// A socket whose local address is the address it sends to talks to itself: what it sends
/// comes back as if answered. The kernel can hand out such a port when the target is a closed
/// port in the ephemeral range.
fn talks_to_itself(local: SocketAddr, peer: SocketAddr) -> bool {
    local == peer
}

/// A UDP socket bound to `local` (then to any port) and connected to `target`, never one
/// that talks to itself.
fn udp_client(target: SocketAddr, local: SocketAddr) -> io::Result<UdpSocket> {
    // Sockets that landed on the target's own port, kept open until a good one is found so
    // that the kernel cannot hand that port out again meanwhile.
    let mut held = Vec::new();
    let mut bind_to = local;
    for _ in 0..8 {
        let s = StdUdpSocket::bind(bind_to)?;
        s.connect(target)?;
        if !talks_to_itself(s.local_addr()?, target) {
            s.set_nonblocking(true)?;
            return Ok(UdpSocket::from_std(s));
        }
        held.push(s);
        bind_to.set_port(0);
    }
    Err(io::Error::other(
        "every local port tried was the target's own",
    ))
}

/// Starts opening a client socket to `addr`: a UDP socket is ready at once (true), a TCP
/// connect completes later (false; see [`connect_done`]).
fn start_open(transport: Transport, addr: SocketAddr) -> io::Result<(Sock, bool)> {
    match transport {
        Transport::Tcp => Ok((Sock::Tcp(TcpStream::connect(addr)?), false)),
        Transport::Udp => Ok((Sock::Udp(udp_client(addr, any_port(addr))?), true)),
    }
}

/// Where a non-blocking TCP connect stands: `Ok(true)` connected, `Ok(false)` still going.
fn connect_done(t: &TcpStream) -> io::Result<bool> {
    if let Some(e) = t.take_error()? {
        return Err(e);
    }
    match t.peer_addr() {
        Ok(peer) => {
            if talks_to_itself(t.local_addr()?, peer) {
                return Err(io::Error::other(
                    "connected to itself (nothing listens on that port)",
                ));
            }
            let _ = t.set_nodelay(true);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(e) => Err(e),
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

/// Like [`describe`], for a failed connect (where EAGAIN means no local port was free).
fn describe_connect(addr: SocketAddr, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::WouldBlock {
        format!("{addr}: no free local port")
    } else {
        describe(addr, e)
    }
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

/// Byte `i` of request `seq`: its sequence number, then a pattern derived from it.
#[inline]
fn payload_byte(seq: u64, i: usize) -> u8 {
    if i < 8 {
        seq.to_le_bytes()[i]
    } else {
        (seq as u8).wrapping_add(i as u8)
    }
}

fn payload(seq: u64, len: usize, out: &mut Vec<u8>) {
    out.extend((0..len).map(|i| payload_byte(seq, i)));
}

/// The reply is, byte for byte, request `seq` of `len` bytes.
fn is_reply_to(reply: &[u8], seq: u64, len: usize) -> bool {
    reply.len() == len
        && reply
            .iter()
            .enumerate()
            .all(|(i, &b)| b == payload_byte(seq, i))
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
    closed_loop: bool,
    seq: u64,
    measure_from: Instant,
    res: LoadResult,
    /// Connections that are down (no socket), kept count of so the run can end at once
    /// when every one is.
    down: usize,
    /// Connections that became open, reopened ones included.
    opened: u64,
    /// When the last connection was open for the first time.
    all_open_at: Option<Instant>,
    first_opens: usize,
    /// The first failed connection attempt.
    connect_error: Option<String>,
    /// Closed loop: connections that just opened and need their first request.
    to_send: Vec<usize>,
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

    fn set_link(&mut self, i: usize, link: Link) {
        let was_down = matches!(self.conns[i].link, Link::Down { .. });
        let is_down = matches!(link, Link::Down { .. });
        match (was_down, is_down) {
            (false, true) => self.down += 1,
            (true, false) => self.down -= 1,
            _ => {}
        }
        self.conns[i].link = link;
    }

    /// Closes connection `i`, counting its outstanding recorded requests as failed.
    fn close(&mut self, i: usize, why: Option<String>) {
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
        self.set_link(
            i,
            Link::Down {
                since: Instant::now(),
            },
        );
    }

    /// Starts opening connection `i` (which is down).
    fn open(&mut self, i: usize) {
        let target = self.conns[i].target;
        let opened = start_open(self.cfg.transport, target).and_then(|(mut s, ready)| {
            let r = self.poll.registry();
            match &mut s {
                Sock::Tcp(t) => r.register(t, Token(i), Interest::READABLE | Interest::WRITABLE),
                Sock::Udp(u) => r.register(u, Token(i), Interest::READABLE),
            }?;
            Ok((s, ready))
        });
        match opened {
            Ok((s, ready)) => {
                self.conns[i].sock = Some(s);
                if ready {
                    self.now_open(i);
                } else {
                    self.set_link(
                        i,
                        Link::Connecting {
                            since: Instant::now(),
                        },
                    );
                }
            }
            Err(e) => self.connect_failed(i, &e),
        }
    }

    fn connect_failed(&mut self, i: usize, e: &io::Error) {
        let msg = format!(
            "cannot connect to {}",
            describe_connect(self.conns[i].target, e)
        );
        self.connect_error.get_or_insert_with(|| msg.clone());
        self.close(i, Some(msg));
    }

    fn now_open(&mut self, i: usize) {
        self.set_link(i, Link::Open);
        self.opened += 1;
        if !self.conns[i].ever_open {
            self.conns[i].ever_open = true;
            self.first_opens += 1;
            if self.first_opens == self.conns.len() {
                self.all_open_at = Some(Instant::now());
            }
        }
        if self.closed_loop {
            self.to_send.push(i);
        }
    }

    /// An event on a connection whose connect is in progress.
    fn connecting(&mut self, i: usize) {
        let Some(Sock::Tcp(t)) = &self.conns[i].sock else {
            return;
        };
        match connect_done(t) {
            Ok(true) => self.now_open(i),
            Ok(false) => {}
            Err(e) => self.connect_failed(i, &e),
        }
    }

    /// Counts a connection's outstanding requests as failed and opens a new connection.
    fn replace(&mut self, i: usize, why: Option<String>) {
        self.close(i, why);
        self.open(i);
    }

    fn send(&mut self, i: usize, intended: Instant) {
        if self.conns[i].link != Link::Open {
            return;
        }
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
    fn receive(&mut self, i: usize) -> u64 {
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
                        if !is_reply_to(reply, req.seq, len) {
                            c.inflight.push_front(req);
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
                    let reply = &self.rxbuf[..n];
                    let seq = seq_of(reply);
                    // Replies to requests already given up on are ignored.
                    let Some(pos) = c.inflight.iter().position(|r| Some(r.seq) == seq) else {
                        continue;
                    };
                    let req = c.inflight.remove(pos).expect("position is valid");
                    if !is_reply_to(reply, req.seq, len) {
                        // The datagram stands alone: the request failed, the socket is fine.
                        if req.intended >= self.measure_from {
                            self.res.failed += 1;
                        }
                        let msg = format!("{}: a reply that does not match its request", c.target);
                        self.fail(msg);
                        if self.closed_loop {
                            self.to_send.push(i);
                        }
                        continue;
                    }
                    self.res.bytes += n as u64;
                    if req.intended >= self.measure_from {
                        self.res.record_latency(now, now - req.intended);
                    }
                    done += 1;
                }
                None => break,
            }
        }
        if let Some(e) = err {
            self.replace(i, Some(e));
            return done;
        }
        if self.closed_loop {
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

    /// Every few milliseconds: gives up on requests older than the timeout (replacing their
    /// connection), on connects older than [`CONNECT_TIMEOUT`], and reopens connections that
    /// have been down for [`RETRY_AFTER`]. With `recheck`, also asks every connect in
    /// progress where it stands, so none waits for ever on an edge it missed (two system
    /// calls each, hence not at every scan).
    fn scan(&mut self, now: Instant, recheck: bool) {
        for i in 0..self.conns.len() {
            match self.conns[i].link {
                Link::Open => {
                    let stale = self.conns[i].inflight.front().is_some_and(|r| {
                        now.saturating_duration_since(r.intended) > self.cfg.timeout
                    });
                    if stale {
                        self.replace(i, None);
                    }
                }
                Link::Connecting { since } => {
                    if recheck {
                        self.connecting(i);
                    }
                    if self.conns[i].link == (Link::Connecting { since })
                        && now.saturating_duration_since(since) > CONNECT_TIMEOUT
                    {
                        self.connect_failed(i, &io::ErrorKind::TimedOut.into());
                    }
                }
                Link::Down { since } => {
                    if now.saturating_duration_since(since) >= RETRY_AFTER {
                        self.open(i);
                    }
                }
            }
        }
    }
}

/// How a load run ended.
#[derive(PartialEq, Eq)]
enum Ending {
    /// Its window was over.
    Window,
    /// The stop flag was set.
    Stopped,
    /// Every connection had failed.
    AllDown,
}

/// Drives echo servers for `warmup + duration` (connecting included), or until `stop` is set
/// or every connection has failed. Fails only if no connection could be opened at all (and
/// the run was not stopped).
pub fn run_echo_load(cfg: &LoadConfig, stop: &AtomicBool) -> Result<LoadResult, String> {
    let poll = Poll::new().map_err(|e| format!("cannot create a poller: {e}"))?;
    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let conns = (0..cfg.connections)
        .map(|i| Conn {
            target: cfg.targets[i % cfg.targets.len()],
            sock: None,
            link: Link::Down { since: start },
            ever_open: false,
            inflight: VecDeque::new(),
            rx: Vec::new(),
            tx: Vec::new(),
        })
        .collect();
    let closed = cfg.rate <= 0.0;
    let mut g = Gen {
        cfg,
        poll,
        conns,
        closed_loop: closed,
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
            cut_short: None,
            notes: Vec::new(),
        },
        down: cfg.connections,
        opened: 0,
        all_open_at: None,
        first_opens: 0,
        connect_error: None,
        to_send: Vec::new(),
        buf: Vec::with_capacity(65_536),
        rxbuf: vec![0u8; 65_536],
    };
    let mut timer = Timer::new().map_err(|e| format!("cannot create a timer: {e}"))?;
    g.poll
        .registry()
        .register(
            &mut mio::unix::SourceFd(&timer.fd),
            TIMER,
            Interest::READABLE,
        )
        .map_err(|e| format!("cannot poll a timer: {e}"))?;
    // Every connect at once, without waiting for any (a stop is seen every 64 of them).
    for i in 0..g.conns.len() {
        if i % 64 == 0 && stop.load(Ordering::Relaxed) {
            break;
        }
        g.open(i);
    }
    let period = if closed {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(1.0 / cfg.rate)
    };
    let mut next_send = start;
    let mut rr = 0usize;
    let mut events = Events::with_capacity(256);
    let mut last_scan = start;
    let mut last_recheck = start;
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
    let ending = loop {
        let now = Instant::now();
        if now >= end {
            break Ending::Window;
        }
        if stop.load(Ordering::Relaxed) {
            break Ending::Stopped;
        }
        if !closed {
            while next_send <= now {
                let n = g.conns.len();
                let Some(i) = (0..n)
                    .map(|k| (rr + k) % n)
                    .find(|&i| g.conns[i].link == Link::Open)
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
        if now.duration_since(last_scan) >= Duration::from_millis(5) {
            last_scan = now;
            let recheck = now.duration_since(last_recheck) >= RECHECK_CONNECTS;
            if recheck {
                last_recheck = now;
            }
            g.scan(now, recheck);
        }
        // Closed loop: a first request on each connection that just opened.
        for i in std::mem::take(&mut g.to_send) {
            if g.conns[i].link == Link::Open && g.conns[i].inflight.is_empty() {
                g.send(i, Instant::now());
            }
        }
        if g.down == g.conns.len() {
            break Ending::AllDown;
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
            match g.conns[i].link {
                Link::Connecting { .. } => g.connecting(i),
                Link::Open => {
                    if writable {
                        g.flush(i);
                    }
                    if readable && g.conns[i].link == Link::Open {
                        g.receive(i);
                    }
                }
                Link::Down { .. } => {}
            }
        }
    };
    let now = Instant::now();
    if g.opened == 0 && ending != Ending::Stopped {
        let target = cfg.targets[0];
        return Err(g.connect_error.take().unwrap_or_else(|| {
            format!(
                "cannot connect to {target}: no answer (timed out after {:.1}s)",
                now.duration_since(start).as_secs_f64()
            )
        }));
    }
    let finished = now.min(end);
    g.res.measured_s = finished
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    if ending == Ending::AllDown {
        g.res.cut_short = Some(format!(
            "the load run ended {:.2}s into its {:.2}s: every connection had failed",
            now.duration_since(start).as_secs_f64(),
            (cfg.warmup + cfg.duration).as_secs_f64()
        ));
    }
    let never = g.conns.iter().filter(|c| !c.ever_open).count();
    if never > 0 && ending != Ending::AllDown {
        let why = g
            .connect_error
            .clone()
            .unwrap_or_else(|| "still connecting when the run ended".to_owned());
        g.res.notes.push(format!(
            "{never} of {} connections never opened ({why})",
            g.conns.len()
        ));
    }
    if let Some(t) = g.all_open_at {
        let late = t.saturating_duration_since(measure_from);
        if late > Duration::from_millis(1) {
            g.res.notes.push(format!(
                "opening the {} connections took {:.3}s, {:.3}s past the warm-up: the measured window began with fewer connections",
                g.conns.len(),
                t.duration_since(start).as_secs_f64(),
                late.as_secs_f64()
            ));
        }
    }
    // Whatever is still outstanding at the end and older than the timeout has failed.
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
    /// Half-closes every open TCP connection and reads what is still on its way (for up to
    /// 100 ms in all), so that closing does not reset a server that is still answering.
    fn close_politely(&mut self) {
        let until = Instant::now() + Duration::from_millis(100);
        for c in &mut self.conns {
            if c.link != Link::Open {
                continue;
            }
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

/// Connects to `target` within [`CONNECT_TIMEOUT`]; `Ok(None)` if `stop` was set first.
fn connect_unless_stopped(
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
    let chunk = super::make_blob(64 << 10, 99);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn free_udp_port() -> SocketAddr {
        StdUdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    /// The kernel lets a UDP socket bound to a port connect to that same port, and then it
    /// answers itself: the trap the load generator must stay out of.
    #[test]
    fn a_udp_socket_on_the_target_port_would_answer_itself() {
        let target = free_udp_port();
        let s = StdUdpSocket::bind(target).unwrap();
        s.connect(target).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        s.send(b"ping").unwrap();
        let mut b = [0u8; 8];
        assert_eq!(s.recv(&mut b).unwrap(), 4, "no echo from itself");
        assert!(talks_to_itself(s.local_addr().unwrap(), target));
    }

    #[test]
    fn udp_clients_never_land_on_the_target_port() {
        let target = free_udp_port();
        // Asked to bind exactly where the target is, it must move elsewhere.
        let s = udp_client(target, target).unwrap();
        let local = s.local_addr().unwrap();
        assert_ne!(local, target);
        assert_eq!(s.peer_addr().unwrap(), target);
        let s = udp_client(target, any_port(target)).unwrap();
        assert_ne!(s.local_addr().unwrap(), target);
    }

    #[test]
    fn only_the_exact_request_bytes_are_a_reply() {
        for len in [1usize, 7, 8, 64] {
            let mut p = Vec::new();
            payload(42, len, &mut p);
            assert!(is_reply_to(&p, 42, len));
            assert!(!is_reply_to(&p, 43, len));
            let mut bad = p.clone();
            *bad.last_mut().unwrap() ^= 1;
            assert!(
                !is_reply_to(&bad, 42, len),
                "len {len}: a flipped last byte"
            );
            assert!(!is_reply_to(&p[..len - 1], 42, len));
        }
    }
}
