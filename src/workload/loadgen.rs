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
//! * Requests sent during `warmup` are not recorded. A request without a reply `timeout`
//!   after it was due has failed, itself only: the others keep waiting for their own
//!   deadlines. UDP replies are matched by sequence number, so the socket stays; TCP replies
//!   come in order, so the connection stays too and the late reply, when it comes, is read
//!   and dropped. Only a closed-loop TCP connection, whose one request is all it carries, is
//!   replaced, and one whose unsent bytes pile up past [`MAX_BACKLOG`] (a server that stopped
//!   reading): requests still within their deadline on a connection that is closed or breaks
//!   are counted apart, as lost with their connection.
//! * The run lasts `warmup + duration` from its start, connecting included: every connection
//!   is opened at once, without blocking, and carries requests as soon as it is open; a
//!   connection attempt has [`CONNECT_TIMEOUT`], whatever the request timeout. The stop
//!   flag ends any phase within a poll slice.
//! * A reply counts only if it is, byte for byte, the request it answers; a socket that
//!   ends up connected to itself (a closed port in the ephemeral range) is never used.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream, UdpSocket as StdUdpSocket};
use std::os::fd::AsRawFd;
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
/// Unsent request bytes one TCP connection may hold (the server stopped reading) before it
/// is replaced, its requests lost with it: the client's memory stays bounded.
pub const MAX_BACKLOG: usize = 16 << 20;
/// Requests one connection may have in flight (expired ones included) before it is
/// replaced, likewise.
const MAX_INFLIGHT: usize = 1 << 20;

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
    /// Set when the measured window is over, before the connections close: a runner ends
    /// its own window there, not after the closing (up to 100 ms more).
    pub window_over: Option<std::sync::Arc<AtomicBool>>,
}

/// What the load generator saw.
pub struct LoadResult {
    pub requests: u64,
    /// Requests that failed: unanswered within the timeout, or counted below.
    pub failed: u64,
    /// ... of them, lost when their connection broke or was closed (a reset, a wrong reply,
    /// a backlog past [`MAX_BACKLOG`]) before their own deadline.
    pub lost: u64,
    /// ... of them, answered with a datagram that was not their reply.
    pub wrong: u64,
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
    /// Requests still waiting for a reply when the run ended (not yet past the timeout): how
    /// many, for how long, and what held them up.
    pub unanswered: Option<String>,
    /// The longest the generator's own thread went without running, beyond the waits it
    /// asked for (a busy machine).
    pub held_up: Duration,
}

impl LoadResult {
    /// Nothing measured yet; requests intended from `measure_from` on are recorded.
    fn empty(cfg: &LoadConfig, measure_from: Instant) -> Self {
        LoadResult {
            requests: 0,
            failed: 0,
            lost: 0,
            wrong: 0,
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
            unanswered: None,
            held_up: Duration::ZERO,
        }
    }

    /// How the failed requests failed: "12 requests went unanswered (timeout 1s), 3 were
    /// lost with their connection, 1 got a wrong reply" (the parts there are).
    pub fn failures(&self, timeout: Duration) -> String {
        let timed_out = self.failed - self.lost - self.wrong;
        let mut parts = Vec::new();
        if timed_out > 0 {
            parts.push(format!(
                "{timed_out} requests went unanswered (timeout {})",
                crate::units::format_duration(timeout)
            ));
        }
        if self.lost > 0 {
            parts.push(format!("{} were lost with their connection", self.lost));
        }
        if self.wrong > 0 {
            parts.push(format!("{} got a wrong reply", self.wrong));
        }
        parts.join(", ")
    }

    /// Why no request succeeded, in a few words, for a run with `requests == 0`.
    pub fn why_none_succeeded(&self, timeout: Duration) -> String {
        let mut why = Vec::new();
        if self.failed > 0 {
            why.push(self.failures(timeout));
        }
        if let Some(e) = &self.first_error {
            why.push(format!("{} connection errors, the first: {e}", self.errors));
        }
        if let Some(c) = &self.cut_short {
            why.push(c.clone());
        }
        if let Some(u) = &self.unanswered {
            why.push(u.clone());
        }
        if self.held_up >= HELD_UP_NOTE {
            why.push(format!("the load generator was {}", held_up(self.held_up)));
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
    /// Its deadline passed and it was counted as failed; a TCP request stays in the queue
    /// until its reply, read and dropped, has gone by.
    expired: bool,
}

impl Inflight {
    /// Counted in the measured window (sent after the warm-up).
    fn recorded(&self, measure_from: Instant) -> bool {
        self.intended >= measure_from
    }
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

/// What the kernel says about a client socket at the end of a run: bytes received but not
/// read yet, and how many times TCP has had to send data (or the connection request) again.
#[derive(Default)]
struct SockState {
    unread: usize,
    resent: u32,
}

impl SockState {
    fn of(s: &Sock) -> Self {
        let fd = match s {
            Sock::Tcp(t) => t.as_raw_fd(),
            Sock::Udp(u) => u.as_raw_fd(),
        };
        let mut unread: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int into the live local it is given; `fd` stays open
        // while `s` is borrowed.
        if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut unread) } != 0 {
            unread = 0;
        }
        let mut st = SockState {
            unread: usize::try_from(unread).unwrap_or(0),
            resent: 0,
        };
        if let Sock::Tcp(_) = s {
            // SAFETY: tcp_info is plain integers, for which all-zero bytes are valid.
            let mut ti: libc::tcp_info = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
            // SAFETY: getsockopt writes at most `len` bytes into the live `ti` and stores the
            // length it wrote in `len`; `fd` stays open while `s` is borrowed.
            let r = unsafe {
                libc::getsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_INFO,
                    (&mut ti as *mut libc::tcp_info).cast(),
                    &mut len,
                )
            };
            if r == 0 {
                st.resent = ti.tcpi_total_retrans;
            }
        }
        st
    }
}

/// The run's clock: it starts with the generator and lasts `warmup + duration`, connecting
/// included.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    /// Requests intended from here on are recorded: the warm-up is over.
    measure_from: Instant,
    end: Instant,
}

/// Open loop: request k is due at `start + k * period`, whatever happened to earlier ones;
/// the open connections take turns.
#[derive(Clone, Copy)]
struct Pacer {
    period: Duration,
    next_send: Instant,
    /// The connection to try first for the next request.
    rr: usize,
}

/// How long the generator's own thread was held up: back at the top of its loop later than
/// the wait it asked for. On a busy machine it can get no CPU for tens of milliseconds, and
/// what it could not send or read meanwhile is missing from its figures.
struct Pauses {
    /// When the thread should be back at the top of its loop at the latest.
    back_by: Instant,
    longest: Duration,
}

impl Pauses {
    fn expect_back_within(&mut self, wait: Duration) {
        self.back_by = Instant::now() + wait;
    }

    fn back(&mut self, now: Instant) {
        self.longest = self
            .longest
            .max(now.saturating_duration_since(self.back_by));
    }
}

/// Held up this long at a time, the generator says so in its result.
pub const HELD_UP_NOTE: Duration = Duration::from_millis(50);
/// How often connections are scanned for timeouts, connects too old and reconnects due.
const SCAN_EVERY: Duration = Duration::from_millis(5);

struct Gen<'a> {
    cfg: &'a LoadConfig,
    poll: Poll,
    events: Events,
    /// Wakes the poll at the next open-loop send.
    timer: Timer,
    conns: Vec<Conn>,
    win: Window,
    /// Open loop only.
    pacer: Option<Pacer>,
    seq: u64,
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
    last_scan: Instant,
    last_recheck: Instant,
    pauses: Pauses,
}

impl Conn {
    fn new(target: SocketAddr, since: Instant) -> Self {
        Conn {
            target,
            sock: None,
            link: Link::Down { since },
            ever_open: false,
            inflight: VecDeque::new(),
            rx: Vec::new(),
            tx: Vec::new(),
        }
    }
}

impl<'a> Gen<'a> {
    /// A generator whose window starts now, every connection still down.
    fn new(cfg: &'a LoadConfig) -> Result<Self, String> {
        let poll = Poll::new().map_err(|e| format!("cannot create a poller: {e}"))?;
        let start = Instant::now();
        let measure_from = start + cfg.warmup;
        let win = Window {
            start,
            measure_from,
            end: measure_from + cfg.duration,
        };
        let timer = Timer::new().map_err(|e| format!("cannot create a timer: {e}"))?;
        poll.registry()
            .register(
                &mut mio::unix::SourceFd(&timer.fd),
                TIMER,
                Interest::READABLE,
            )
            .map_err(|e| format!("cannot poll a timer: {e}"))?;
        let pacer = (cfg.rate > 0.0).then(|| Pacer {
            period: Duration::from_secs_f64(1.0 / cfg.rate),
            next_send: start,
            rr: 0,
        });
        Ok(Gen {
            cfg,
            poll,
            events: Events::with_capacity(256),
            timer,
            conns: (0..cfg.connections)
                .map(|i| Conn::new(cfg.targets[i % cfg.targets.len()], start))
                .collect(),
            win,
            pacer,
            seq: 0,
            res: LoadResult::empty(cfg, measure_from),
            down: cfg.connections,
            opened: 0,
            all_open_at: None,
            first_opens: 0,
            connect_error: None,
            to_send: Vec::new(),
            buf: Vec::with_capacity(65_536),
            rxbuf: vec![0u8; 65_536],
            last_scan: start,
            last_recheck: start,
            pauses: Pauses {
                back_by: start,
                longest: Duration::ZERO,
            },
        })
    }

    fn closed_loop(&self) -> bool {
        self.pacer.is_none()
    }

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

    /// Closes connection `i` (`why` it broke, if it did): its recorded requests still within
    /// their deadline are lost with it (those past it were counted as they expired).
    fn close(&mut self, i: usize, why: Option<String>) {
        if let Some(w) = why {
            self.fail(w);
        }
        let from = self.win.measure_from;
        let lost = self.conns[i]
            .inflight
            .iter()
            .filter(|r| !r.expired && r.recorded(from))
            .count() as u64;
        self.res.failed += lost;
        self.res.lost += lost;
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

    /// Starts every connect at once, without waiting for any (a stop is seen every 64).
    fn open_all(&mut self, stop: &AtomicBool) {
        for i in 0..self.conns.len() {
            if i % 64 == 0 && stop.load(Ordering::Relaxed) {
                break;
            }
            self.open(i);
        }
        self.pauses.expect_back_within(Duration::ZERO);
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
        if self.closed_loop() {
            self.to_send.push(i);
        }
    }

    /// Asks connection `i`, whose connect is in progress, where it stands.
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
        c.inflight.push_back(Inflight {
            seq,
            intended,
            expired: false,
        });
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
        } else if self.conns[i].tx.len() > MAX_BACKLOG
            || self.conns[i].inflight.len() > MAX_INFLIGHT
        {
            self.replace(i, Some(backlog_error(self.conns[i].target)));
        }
    }

    /// Reads everything connection `i` has (until the socket would block: its readiness is
    /// edge-triggered), then, in the closed loop, sends one request per reply.
    fn receive(&mut self, i: usize) {
        let got = match &self.conns[i].sock {
            Some(Sock::Tcp(_)) => self.receive_tcp(i),
            Some(Sock::Udp(_)) => self.receive_udp(i),
            None => Ok(0),
        };
        match got {
            Err(e) => self.replace(i, Some(e)),
            Ok(done) if self.closed_loop() => {
                for _ in 0..done {
                    self.send(i, Instant::now());
                }
            }
            Ok(_) => {}
        }
    }

    /// Reads a TCP connection until it would block; returns how many replies completed.
    fn receive_tcp(&mut self, i: usize) -> Result<u64, String> {
        let mut done = 0;
        loop {
            let c = &mut self.conns[i];
            let Some(Sock::Tcp(t)) = &mut c.sock else {
                return Ok(done);
            };
            // Read into the reusable scratch buffer, keep only what arrived.
            let n = match t.read(&mut self.rxbuf) {
                Ok(0) => return Err(format!("{}: the server closed the connection", c.target)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(done),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(describe(c.target, &e)),
            };
            c.rx.extend_from_slice(&self.rxbuf[..n]);
            done += self.take_replies(i, Instant::now())?;
        }
    }

    /// Takes the complete replies off the front of connection `i`'s received bytes, each
    /// checked against the oldest request in flight; returns how many there were.
    fn take_replies(&mut self, i: usize, now: Instant) -> Result<u64, String> {
        let len = self.cfg.request_bytes;
        let c = &mut self.conns[i];
        let (mut consumed, mut done, mut err) = (0, 0, None);
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
            // Bytes, as requests, count only in the measured window; a reply after its
            // request's deadline only makes way for the next one.
            if !req.expired && req.recorded(self.win.measure_from) {
                self.res.bytes += len as u64;
                self.res.record_latency(now, now - req.intended);
            }
            done += 1;
        }
        c.rx.drain(..consumed);
        err.map_or(Ok(done), Err)
    }

    /// Reads a UDP socket until it would block; returns how many replies completed. A
    /// datagram that answers no request in flight is ignored (its request was given up on);
    /// one that does not match its request fails that request only.
    fn receive_udp(&mut self, i: usize) -> Result<u64, String> {
        let len = self.cfg.request_bytes;
        let mut done = 0;
        loop {
            let c = &mut self.conns[i];
            let Some(Sock::Udp(u)) = &mut c.sock else {
                return Ok(done);
            };
            let n = match u.recv(&mut self.rxbuf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(done),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(describe(c.target, &e)),
            };
            let now = Instant::now();
            let reply = &self.rxbuf[..n];
            let seq = seq_of(reply);
            let Some(pos) = c.inflight.iter().position(|r| Some(r.seq) == seq) else {
                continue;
            };
            let req = c.inflight.remove(pos).expect("position is valid");
            let recorded = req.recorded(self.win.measure_from);
            if !is_reply_to(reply, req.seq, len) {
                // The datagram stands alone: the request failed, the socket is fine.
                self.res.failed += u64::from(recorded);
                self.res.wrong += u64::from(recorded);
                let msg = format!("{}: a reply that does not match its request", c.target);
                self.fail(msg);
                if self.closed_loop() {
                    self.to_send.push(i);
                }
                continue;
            }
            if recorded {
                self.res.bytes += n as u64;
                self.res.record_latency(now, now - req.intended);
            }
            done += 1;
        }
    }

    /// Writes what connection `i` could not send at once.
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

    /// Gives up on requests older than the timeout (see [`Gen::expire`]), on connects older
    /// than [`CONNECT_TIMEOUT`], and reopens connections that have been down for
    /// [`RETRY_AFTER`]. With `recheck`, also asks every connect in progress where it stands,
    /// so none waits for ever on an edge it missed (two system calls each, hence not at
    /// every scan).
    fn scan(&mut self, now: Instant, recheck: bool) {
        for i in 0..self.conns.len() {
            match self.conns[i].link {
                Link::Open => self.expire(i, now),
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

/// Requests past their deadline.
impl Gen<'_> {
    /// Counts the requests of connection `i` whose deadline has passed as failed, each once.
    /// A UDP request leaves the queue (a late datagram answers nothing and is ignored); a TCP
    /// one stays, expired, for its reply to be read and dropped in turn. The closed loop
    /// then needs a new request: on UDP it is sent at once; a TCP connection, whose only
    /// request has expired, is replaced (nothing else is lost with it).
    fn expire(&mut self, i: usize, now: Instant) {
        let (timeout, from) = (self.cfg.timeout, self.win.measure_from);
        let closed_loop = self.closed_loop();
        let c = &mut self.conns[i];
        let mut expired = 0;
        for r in c.inflight.iter_mut().filter(|r| !r.expired) {
            // Requests go out in the order they were due: the rest are younger.
            if now.saturating_duration_since(r.intended) <= timeout {
                break;
            }
            r.expired = true;
            expired += 1;
            self.res.failed += u64::from(r.recorded(from));
        }
        if expired == 0 {
            return;
        }
        match c.sock {
            Some(Sock::Udp(_)) => {
                c.inflight.retain(|r| !r.expired);
                if closed_loop {
                    self.to_send.push(i);
                }
            }
            _ if closed_loop => self.replace(i, None),
            _ => {}
        }
    }
}

/// The error for a connection whose server stopped reading or answering.
fn backlog_error(target: SocketAddr) -> String {
    format!(
        "{target}: the server stopped reading or answering (over {} MiB of requests unsent or {MAX_INFLIGHT} unanswered); connection replaced",
        MAX_BACKLOG >> 20
    )
}

/// How a load run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    let mut g = Gen::new(cfg)?;
    g.open_all(stop);
    let ending = g.drive(stop)?;
    g.finish(ending)
}

/// Wake-ups from sleeps as precise as the kernel allows (the default slack is 50 us).
fn set_timer_slack() {
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
}

/// The loop: what is due, then a poll and the events it reports.
impl Gen<'_> {
    /// Turns the loop until the window is over, `stop` is set or every connection is down.
    fn drive(&mut self, stop: &AtomicBool) -> Result<Ending, String> {
        set_timer_slack();
        loop {
            if let Some(ending) = self.step(stop)? {
                return Ok(ending);
            }
        }
    }

    /// One turn: the sends that are due, the periodic scan, first requests on connections
    /// that just opened, then one poll and its events. `Some` when the run is over.
    fn step(&mut self, stop: &AtomicBool) -> Result<Option<Ending>, String> {
        let now = Instant::now();
        self.pauses.back(now);
        if now >= self.win.end {
            return Ok(Some(Ending::Window));
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(Some(Ending::Stopped));
        }
        self.send_due(now);
        if now.duration_since(self.last_scan) >= SCAN_EVERY {
            self.last_scan = now;
            let recheck = now.duration_since(self.last_recheck) >= RECHECK_CONNECTS;
            if recheck {
                self.last_recheck = now;
            }
            self.scan(now, recheck);
        }
        self.send_first_requests();
        if self.down == self.conns.len() {
            return Ok(Some(Ending::AllDown));
        }
        let (timeout, back_within) = self.wait();
        self.pauses.expect_back_within(back_within);
        self.poll_events(timeout)?;
        Ok(None)
    }

    /// Open loop: sends every request that is due, each on the next open connection in
    /// turn, and records how late it went out.
    fn send_due(&mut self, now: Instant) {
        let Some(mut p) = self.pacer else {
            return;
        };
        let n = self.conns.len();
        while p.next_send <= now {
            let Some(i) = (0..n)
                .map(|k| (p.rr + k) % n)
                .find(|&i| self.conns[i].link == Link::Open)
            else {
                break;
            };
            p.rr = i + 1;
            let sent = Instant::now();
            self.send(i, p.next_send);
            let late = sent.saturating_duration_since(p.next_send);
            if p.next_send >= self.win.measure_from {
                record(&mut self.res.lateness, late);
                if late > LATE_AFTER {
                    self.res.late += 1;
                }
            }
            p.next_send += p.period;
        }
        self.pacer = Some(p);
    }

    /// Closed loop: a first request on each connection that just opened.
    fn send_first_requests(&mut self) {
        for i in std::mem::take(&mut self.to_send) {
            if self.conns[i].link == Link::Open && self.conns[i].inflight.is_empty() {
                self.send(i, Instant::now());
            }
        }
    }

    /// How long the next poll may wait, and how soon the thread is due back: closed loop, a
    /// few milliseconds (nothing, spinning on a core of its own, so that its own wake-up
    /// latency stays out of the round trip); open loop, until the next send is due.
    fn wait(&mut self) -> (Duration, Duration) {
        let Some(p) = &self.pacer else {
            let w = if self.cfg.busy_wait {
                Duration::ZERO
            } else {
                Duration::from_millis(5)
            };
            return (w, w);
        };
        let until = p.next_send.saturating_duration_since(Instant::now());
        let sleep = if self.cfg.busy_wait {
            until.saturating_sub(SPIN_WINDOW)
        } else {
            until
        };
        if sleep.is_zero() {
            return (Duration::ZERO, Duration::ZERO);
        }
        // epoll's timeout counts whole milliseconds; a timerfd wakes the poll at the intended
        // send time to the microsecond.
        self.timer.arm(sleep);
        (Duration::from_millis(50), sleep)
    }

    /// One poll of at most `timeout`, and what it reports.
    fn poll_events(&mut self, timeout: Duration) -> Result<(), String> {
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(format!("poll failed: {e}"));
            }
        }
        let ready: Vec<(usize, bool, bool)> = self
            .events
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
                self.timer.clear();
            } else if i < self.conns.len() {
                self.on_event(i, readable, writable);
            }
        }
        Ok(())
    }

    /// Readiness of connection `i`. Events are edge-triggered: each one is acted on in full
    /// (a socket read until it would block, pending bytes written), since the same readiness
    /// is never reported again. A connect that completes on an event that also says
    /// readable is read at once.
    fn on_event(&mut self, i: usize, readable: bool, writable: bool) {
        if let Link::Connecting { .. } = self.conns[i].link {
            self.connecting(i);
        }
        if self.conns[i].link == Link::Open && writable {
            self.flush(i);
        }
        if self.conns[i].link == Link::Open && readable {
            self.receive(i);
        }
    }
}

/// The end of a run: the last look at connects in progress, the verdicts and notes.
impl Gen<'_> {
    /// What the run measured, once its loop has ended: the figures of its window, notes for
    /// the reader, or an error if no connection ever opened.
    fn finish(mut self, ending: Ending) -> Result<LoadResult, String> {
        if ending == Ending::Window {
            self.last_look();
        }
        let now = Instant::now();
        if self.opened == 0 && ending != Ending::Stopped {
            return Err(self.why_no_connection(now));
        }
        let finished = now.min(self.win.end);
        self.res.measured_s = finished
            .saturating_duration_since(self.win.measure_from)
            .as_secs_f64();
        self.note_connections(ending, now);
        self.count_unanswered(now);
        // Without a success the run says it anyway (`why_none_succeeded`).
        if self.res.requests > 0 && self.res.lost + self.res.wrong > 0 {
            let how = self.res.failures(self.cfg.timeout);
            self.res.notes.push(format!("failed requests: {how}"));
        }
        self.res.held_up = self.pauses.longest;
        if self.res.held_up >= HELD_UP_NOTE && self.res.requests > 0 {
            self.res.notes.push(format!(
                "the load generator was {}; what it could not send or read meanwhile is missing from its figures",
                held_up(self.res.held_up)
            ));
        }
        if let Some(iv) = self.res.interval_hists.take() {
            self.res.intervals = iv.finish(finished);
        }
        if let Some(over) = &self.cfg.window_over {
            over.store(true, Ordering::SeqCst);
        }
        self.close_politely();
        Ok(self.res)
    }

    /// Asks every connect still in progress where it stands. The loop ends as soon as the
    /// window is over, without a last poll: a connect that completed while the thread was
    /// held up (longer than a short run, on a busy machine) would otherwise count as failed.
    fn last_look(&mut self) {
        for i in 0..self.conns.len() {
            if let Link::Connecting { .. } = self.conns[i].link {
                self.connecting(i);
            }
        }
    }

    /// Why no connection ever opened: the first error, or else no answer in time, with what
    /// TCP says about the attempts still in progress.
    fn why_no_connection(&self, now: Instant) -> String {
        if let Some(e) = &self.connect_error {
            return e.clone();
        }
        let mut msg = format!(
            "cannot connect to {}: no answer (timed out after {:.1}s)",
            self.cfg.targets[0],
            now.duration_since(self.win.start).as_secs_f64()
        );
        let resent: u32 = self
            .conns
            .iter()
            .filter_map(|c| c.sock.as_ref())
            .map(|s| SockState::of(s).resent)
            .sum();
        if resent > 0 {
            msg.push_str(&format!(
                "; TCP resent its connection requests {} without an answer (lost, or the server's listen queue is full)",
                times(resent)
            ));
        }
        if self.pauses.longest >= HELD_UP_NOTE {
            msg.push_str(&format!(
                "; the load generator was {}",
                held_up(self.pauses.longest)
            ));
        }
        msg
    }

    /// Notes on connections: every one failed before the end, some never opened, or opening
    /// them all ate into the measured window.
    fn note_connections(&mut self, ending: Ending, now: Instant) {
        if ending == Ending::AllDown {
            self.res.cut_short = Some(format!(
                "the load run ended {:.2}s into its {:.2}s: every connection had failed",
                now.duration_since(self.win.start).as_secs_f64(),
                (self.cfg.warmup + self.cfg.duration).as_secs_f64()
            ));
        }
        let never = self.conns.iter().filter(|c| !c.ever_open).count();
        if never > 0 && ending != Ending::AllDown {
            let why = self
                .connect_error
                .clone()
                .unwrap_or_else(|| "still connecting when the run ended".to_owned());
            self.res.notes.push(format!(
                "{never} of {} connections never opened ({why})",
                self.conns.len()
            ));
        }
        if let Some(t) = self.all_open_at {
            let late = t.saturating_duration_since(self.win.measure_from);
            if late > Duration::from_millis(1) {
                self.res.notes.push(format!(
                    "opening the {} connections took {:.3}s, {:.3}s past the warm-up: the measured window began with fewer connections",
                    self.conns.len(),
                    t.duration_since(self.win.start).as_secs_f64(),
                    late.as_secs_f64()
                ));
            }
        }
    }

    /// Requests still outstanding at the end: those of the window older than the timeout
    /// have failed; the others are described in `unanswered`.
    fn count_unanswered(&mut self, now: Instant) {
        let timeout = self.cfg.timeout;
        let (mut waiting, mut oldest) = (0u64, Duration::ZERO);
        let (mut unread, mut resent, mut partial) = (false, 0u32, 0usize);
        for c in &self.conns {
            let age = |r: &Inflight| now.saturating_duration_since(r.intended);
            let waiting_on = || c.inflight.iter().filter(|r| !r.expired);
            self.res.failed += waiting_on()
                .filter(|r| r.recorded(self.win.measure_from) && age(r) > timeout)
                .count() as u64;
            let young: Vec<Duration> = waiting_on().map(age).filter(|&a| a <= timeout).collect();
            let Some(&max) = young.iter().max() else {
                continue;
            };
            waiting += young.len() as u64;
            oldest = oldest.max(max);
            partial = partial.max(c.rx.len() % self.cfg.request_bytes.max(1));
            let st = c.sock.as_ref().map(SockState::of).unwrap_or_default();
            unread |= st.unread > 0;
            resent += st.resent;
        }
        if waiting == 0 {
            return;
        }
        let why = if partial > 0 {
            format!(
                "only part of a reply had arrived ({partial} of {} bytes): the server answered short, or with something else",
                self.cfg.request_bytes
            )
        } else if unread && self.pauses.longest >= HELD_UP_NOTE {
            "replies had arrived that the load generator had not read".to_owned()
        } else if unread {
            "a reply arrived as the run ended".to_owned()
        } else if resent > 0 {
            format!("TCP had resent packets {}: some were lost", times(resent))
        } else if self.cfg.transport == Transport::Udp {
            "the server had not answered (or the datagrams were lost)".to_owned()
        } else {
            "the server had not answered".to_owned()
        };
        let said = format!(
            "{waiting} request{} still waited for a reply when the run ended, the oldest for {:.3}s (timeout {}): {why}",
            if waiting == 1 { "" } else { "s" },
            oldest.as_secs_f64(),
            crate::units::format_duration(timeout)
        );
        // Neither answered nor failed, they are in no figure. A closed loop always ends with
        // its requests in flight, one per connection; an open loop's show how far the server
        // had fallen behind. (With no request answered, the run says it anyway.)
        if self.cfg.rate > 0.0 && self.res.requests > 0 {
            self.res.notes.push(said.clone());
        }
        self.res.unanswered = Some(said);
    }

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

/// "once", "twice", "3 times".
fn times(n: u32) -> String {
    match n {
        1 => "once".into(),
        2 => "twice".into(),
        n => format!("{n} times"),
    }
}

/// "held up for up to 108 ms at a time (...)": how long the generator went without running.
fn held_up(d: Duration) -> String {
    format!(
        "held up for up to {:.0} ms at a time (no CPU for it: the machine is busy)",
        d.as_secs_f64() * 1e3
    )
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

/// The end of a run on a busy machine, where the generator's own thread can go without a CPU
/// for longer than a short run: modelled by a sleep between the steps of its loop.
#[cfg(test)]
mod held_up {
    use super::*;
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
}
