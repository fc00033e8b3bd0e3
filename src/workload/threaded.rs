//! The `threaded` server structure: blocking sockets and a thread per connection, as
//! `socketserver.ThreadingTCPServer` and most hand-written Python servers do, beside the
//! `poll` loop of [`super::server`] (`selectors`, asyncio).
//!
//! * TCP echo: the server thread accepts (blocking, GIL released); each connection gets an
//!   interpreter thread of its own that loops on a blocking `recv` and a blocking `send`,
//!   each inside a GIL release/take followed by `call_work`: two releases per request, where
//!   the poll loop has three (poll, recv, send).
//! * UDP echo: there are no connections, so one thread loops on a blocking `recvfrom` and a
//!   `sendto` (`socketserver.UDPServer`): again two releases per request.
//! * bulk under `poll`: a poll before each `recv`, two releases per `recv` (the blocking
//!   receiver of [`super::server::bulk_recv`] is the `threaded` structure).
//!
//! A blocking call here is one system call on a blocking socket, as in CPython; the socket's
//! own timeouts of [`SLICE`] only let the thread notice the end of the run, and they are
//! retried inside the same release: as the GIL sees it, it is one blocking call, and an idle
//! connection takes no GIL traffic at all. The accepting thread (and the UDP server) comes
//! back for the GIL every [`ACCEPT_POLL`] when idle, as `serve_forever` does.
//!
//! Connection threads are interpreter threads like the others (their own `Interp`, the run's
//! warm-up gate, stop flag and probe); what they measure (counters, histograms, context
//! switches) is added, and their GIL event logs go with it, to the server thread that accepted
//! them, so `echo-0` reports the whole server. What they record for the outputs (the
//! `--trace` timeline, the `--hlog` interval histograms) keeps their own names, `echo-0.cK`.

use std::io::{self, Read, Write};
use std::net::{
    TcpListener as StdTcpListener, TcpStream as StdTcpStream, UdpSocket as StdUdpSocket,
};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;

use super::cpu::run_ticks;
// Re-exported where it was first defined (`workload::threaded::ServerKind`).
pub use super::kinds::ServerKind;
use super::server::{call, EchoConfig, ServerStats};
use super::{PanicFlag, TickHasher, WorkCtx};
use crate::gil::{Gil, Release};
use crate::holdlog::HoldLog;
use crate::interp::{Extras, Interp, Probe, Recorded};
use crate::metrics::{merge, CtxSwitches, ThreadMetrics};

/// How long one `poll(2)` inside a blocking call lasts before the thread looks at the stop
/// flag again (with the GIL still released).
pub const SLICE: Duration = Duration::from_millis(20);

/// A send that makes no progress for this long means the peer does not read its echoes: it
/// is dropped (the poll loop drops it once `max_request_bytes` are pending).
pub const SEND_STALL: Duration = Duration::from_secs(1);

/// The longest an accept waits before the server thread takes the GIL again: the default
/// `poll_interval` of `socketserver`'s `serve_forever` (0.5 s). It also lets the watchdog see
/// a server thread that waits for the GIL rather than only ever "in a blocking call".
pub const ACCEPT_POLL: Duration = Duration::from_millis(500);

/// What a server needs to start interpreter threads of its own, one per connection.
pub struct Spawner<'a> {
    /// The run's clock, epoch, measured window and event-log budget (with recording).
    pub probe: Option<Probe<'a>>,
    /// The run's warm-up gate.
    pub measuring: &'a AtomicBool,
    /// Set when a connection thread panics, so that the run stops at once.
    pub failed: &'a AtomicBool,
    /// `spin = adaptive`: the run's gauge of threads on a core.
    pub spin_gauge: Option<&'a std::sync::Arc<crate::gil::SpinGauge>>,
    pub record: bool,
    pub tick_bytes: usize,
    /// The server thread's name; connection threads are called `NAME.cK`.
    pub name: &'a str,
    /// Makes the recorders a connection thread fills for the outputs (`--trace`, `--hlog`),
    /// as the run's other interpreter threads do; called once by each, as it starts.
    pub recorders: &'a (dyn Fn() -> Extras + Sync),
}

/// What a server's connection threads measured, beyond what was added to its own metrics.
#[derive(Debug, Default)]
pub struct ConnTotals {
    pub ctx: CtxSwitches,
    /// Each connection thread's GIL event log (see [`crate::holdlog`]).
    pub logs: Vec<HoldLog>,
    /// Each connection thread's timeline and interval histograms, under its own name, in
    /// the order the threads ended.
    pub recorded: Vec<Recorded>,
}

/// How a blocking call ended.
enum Blocked<R> {
    Done(io::Result<R>),
    /// The run stopped while the call waited.
    Stopped,
    /// No progress within its time limit.
    Stalled,
    /// Its wake-up flag was set.
    Woken,
}

/// A blocking socket call, as CPython makes one on a socket without a timeout: `op` runs on a
/// blocking socket whose own timeouts (`SO_RCVTIMEO`/`SO_SNDTIMEO` of [`SLICE`]) only let the
/// thread notice `stop`, give up after `stall`, or come back when `wake` becomes true. One
/// system call when the socket is ready, all inside the caller's release.
fn blocking<R>(
    stop: &AtomicBool,
    wake: Option<&AtomicBool>,
    stall: Option<Duration>,
    mut op: impl FnMut() -> io::Result<R>,
) -> Blocked<R> {
    let since = Instant::now();
    let woken = || wake.is_some_and(|w| w.load(Ordering::Relaxed));
    let wake_armed = !woken();
    loop {
        match op() {
            Err(e) if is_timeout(&e) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return Blocked::Done(r),
        }
        if stop.load(Ordering::Relaxed) {
            return Blocked::Stopped;
        }
        if wake_armed && woken() {
            return Blocked::Woken;
        }
        if stall.is_some_and(|s| since.elapsed() >= s) {
            return Blocked::Stalled;
        }
    }
}

/// A socket timeout (EAGAIN on a blocking socket with `SO_RCVTIMEO`/`SO_SNDTIMEO`).
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Makes `s` blocking, with [`SLICE`] as its receive and send timeouts.
fn slice_timeouts(s: &impl SliceTimeouts) -> io::Result<()> {
    s.blocking_with(SLICE)
}

trait SliceTimeouts {
    fn blocking_with(&self, t: Duration) -> io::Result<()>;
}

impl SliceTimeouts for StdTcpStream {
    fn blocking_with(&self, t: Duration) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

impl SliceTimeouts for StdUdpSocket {
    fn blocking_with(&self, t: Duration) -> io::Result<()> {
        self.set_nonblocking(false)?;
        self.set_read_timeout(Some(t))?;
        self.set_write_timeout(Some(t))
    }
}

/// Waits until `fd` is ready for `events`, then does `op` (on a non-blocking socket, so it
/// cannot block past readiness), in slices of [`SLICE`] to notice `stop`; comes back when
/// `wake` becomes true, or after `limit`. For the accepting thread.
fn polled<R>(
    fd: RawFd,
    events: libc::c_short,
    stop: &AtomicBool,
    wake: Option<&AtomicBool>,
    stall: Option<Duration>,
    mut op: impl FnMut() -> io::Result<R>,
) -> Blocked<R> {
    let since = Instant::now();
    let woken = || wake.is_some_and(|w| w.load(Ordering::Relaxed));
    let wake_armed = !woken();
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return Blocked::Done(r),
        }
        if stop.load(Ordering::Relaxed) {
            return Blocked::Stopped;
        }
        if wake_armed && woken() {
            return Blocked::Woken;
        }
        if stall.is_some_and(|s| since.elapsed() >= s) {
            return Blocked::Stalled;
        }
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack for an fd the caller keeps open.
        let rc = unsafe { libc::poll(&mut pfd, 1, SLICE.as_millis() as libc::c_int) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Blocked::Done(Err(e));
            }
        }
    }
}

/// Serves echo over TCP with a thread per connection until the run stops. The caller holds
/// the GIL on entry and exit.
pub fn echo_tcp_threaded<G: Gil>(
    interp: &mut Interp<'_, G>,
    h: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    listener: StdTcpListener,
    cfg: &EchoConfig,
    sp: &Spawner<'_>,
) -> io::Result<(ServerStats, ConnTotals)> {
    listener.set_nonblocking(true)?;
    let conns = Conns {
        gil: interp.gil(),
        sp,
        ctx,
        cfg,
        live: AtomicUsize::new(0),
    };
    let mut tally = Tally::default();
    std::thread::scope(|scope| {
        let mut handlers = Vec::new();
        while tally.panicked.is_none() {
            // Collect the threads of closed connections as we go.
            handlers = tally.reap(interp, handlers);
            let stream = match accept_one(interp, h, ctx, &listener, sp.measuring) {
                Accepted::Stop => break,
                Accepted::Retry => continue,
                Accepted::Conn(s) => s,
            };
            let Some(stream) = conns.admit(stream, &mut tally.st) else {
                continue; // dropping `stream` closes it
            };
            if let Some(hd) = spawn_conn(scope, &conns, stream, &mut tally.st) {
                handlers.push(hd);
            }
        }
        tally.join_rest(interp, handlers);
    });
    if let Some(payload) = tally.panicked {
        // The server thread fails with the connection thread's message.
        std::panic::resume_unwind(payload);
    }
    Ok((tally.st, tally.totals))
}

/// What the connection threads of one TCP server share: the server's lock, run and
/// configuration, and how many of them are serving a connection.
struct Conns<'a, G> {
    gil: &'a G,
    sp: &'a Spawner<'a>,
    ctx: &'a WorkCtx<'a>,
    cfg: &'a EchoConfig,
    live: AtomicUsize,
}

impl<G> Conns<'_, G> {
    /// Takes on an accepted connection, or drops it (which closes it): over
    /// `max_connections`, or when it cannot be made blocking with the [`SLICE`] timeouts.
    fn admit(&self, stream: StdTcpStream, st: &mut ServerStats) -> Option<StdTcpStream> {
        if self.live.load(Ordering::SeqCst) >= self.cfg.max_connections {
            st.dropped_peers += 1;
            return None;
        }
        let _ = stream.set_nodelay(true);
        if slice_timeouts(&stream).is_err() {
            st.peer_errors += 1;
            return None;
        }
        Some(stream)
    }
}

/// What the accepting thread does after one accept.
enum Accepted {
    /// The run stopped.
    Stop,
    /// Nothing to serve this time: accept again.
    Retry,
    Conn(StdTcpStream),
}

/// One accept, GIL released. Failures that leave the listener usable are retried.
fn accept_one<G: Gil>(
    interp: &mut Interp<'_, G>,
    h: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    listener: &StdTcpListener,
    measuring: &AtomicBool,
) -> Accepted {
    let fd = listener.as_raw_fd();
    // As `serve_forever` does, the accept waits at most `ACCEPT_POLL` before the thread takes
    // the GIL again; it also comes back once when the warm-up ends, so that this thread
    // starts its measured window on time.
    let r = call(interp, h, ctx, || {
        let wake = Some(measuring);
        let limit = Some(ACCEPT_POLL);
        polled(fd, libc::POLLIN, ctx.stop, wake, limit, || {
            listener.accept()
        })
    });
    match r {
        Blocked::Stopped => Accepted::Stop,
        Blocked::Woken | Blocked::Stalled => Accepted::Retry,
        Blocked::Done(Ok((s, _))) => Accepted::Conn(s),
        // Gone before it was accepted: the next one may be fine.
        Blocked::Done(Err(e)) if e.kind() == io::ErrorKind::ConnectionAborted => Accepted::Retry,
        // Out of descriptors or memory and the like: wait a slice (GIL released) and try
        // again; the listener stays usable.
        Blocked::Done(Err(_)) => {
            interp.allow_threads(|| std::thread::sleep(SLICE));
            Accepted::Retry
        }
    }
}

type ConnHandle<'scope> = std::thread::ScopedJoinHandle<'scope, ConnOut>;

/// Starts the interpreter thread of the server's next connection, counted in `live` until it
/// ends. A connection the system gives no thread is dropped.
fn spawn_conn<'scope, 'env, G: Gil>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    conns: &'env Conns<'env, G>,
    stream: StdTcpStream,
    st: &mut ServerStats,
) -> Option<ConnHandle<'scope>> {
    let k = st.accepted;
    st.accepted += 1;
    conns.live.fetch_add(1, Ordering::SeqCst);
    let name = format!("{}.c{k}", conns.sp.name);
    let spawned = std::thread::Builder::new()
        .name(name.clone())
        .spawn_scoped(scope, move || {
            let out = serve_conn(conns, &stream, k, name);
            conns.live.fetch_sub(1, Ordering::SeqCst);
            out
        });
    match spawned {
        Ok(hd) => Some(hd),
        Err(_) => {
            conns.live.fetch_sub(1, Ordering::SeqCst);
            st.dropped_peers += 1;
            None
        }
    }
}

type Payload = Box<dyn std::any::Any + Send>;

/// What a TCP server adds up from its connection threads as they end.
#[derive(Default)]
struct Tally {
    st: ServerStats,
    totals: ConnTotals,
    /// The first connection thread that panicked: kept, to take the server thread down with
    /// its message once every other connection thread has been joined.
    panicked: Option<Payload>,
}

impl Tally {
    /// Joins the connection threads that have ended; returns the others.
    fn reap<'scope, G: Gil>(
        &mut self,
        interp: &mut Interp<'_, G>,
        handlers: Vec<ConnHandle<'scope>>,
    ) -> Vec<ConnHandle<'scope>> {
        let (done, running): (Vec<_>, Vec<_>) =
            handlers.into_iter().partition(|hd| hd.is_finished());
        for hd in done {
            self.absorb(interp, hd.join());
        }
        running
    }

    /// Joins every connection thread still running.
    fn join_rest<G: Gil>(&mut self, interp: &mut Interp<'_, G>, handlers: Vec<ConnHandle<'_>>) {
        // The run is over (or a connection thread panicked, which stops it): every connection
        // thread sees the stop flag within a slice. Joined with the GIL released, as a
        // connection thread may need it to finish.
        let rest: Vec<_> =
            interp.allow_threads(|| handlers.into_iter().map(|hd| hd.join()).collect());
        for r in rest {
            self.absorb(interp, r);
        }
    }

    /// Adds a finished connection thread's figures to its server thread, or keeps its panic.
    fn absorb<G: Gil>(&mut self, interp: &mut Interp<'_, G>, r: Result<ConnOut, Payload>) {
        let out = match r {
            Ok(o) => o,
            Err(payload) => {
                self.panicked.get_or_insert(payload);
                return;
            }
        };
        self.st.add(&ServerStats {
            accepted: 0,
            ..out.stats
        });
        let m = &mut interp.metrics;
        m.counters.add(&out.metrics.counters);
        merge(&mut m.wait, &out.metrics.wait);
        merge(&mut m.hold, &out.metrics.hold);
        merge(&mut m.reacquire, &out.metrics.reacquire);
        merge(&mut m.switch_wait, &out.metrics.switch_wait);
        self.totals.ctx.add(out.ctx);
        self.totals.logs.push(out.log);
        self.totals.recorded.push(out.recorded);
    }
}

/// What one connection thread brings back.
struct ConnOut {
    stats: ServerStats,
    metrics: ThreadMetrics,
    ctx: CtxSwitches,
    log: HoldLog,
    recorded: Recorded,
}

/// One connection's interpreter thread: blocking recv, the request's work, blocking send,
/// until the peer closes, breaks a limit, or the run stops.
fn serve_conn<G: Gil>(
    conns: &Conns<'_, G>,
    stream: &StdTcpStream,
    k: u64,
    name: String,
) -> ConnOut {
    let (sp, ctx, cfg) = (conns.sp, conns.ctx, conns.cfg);
    let _flag = PanicFlag(sp.failed);
    let mut conn = Serving {
        interp: conn_interp(conns),
        h: TickHasher::new(sp.tick_bytes, 0x5eed ^ k),
        st: ServerStats::default(),
        ctx,
        stream,
    };
    // Never more un-echoed bytes in hand than `max_request_bytes`.
    let mut buf = vec![0u8; cfg.max_request_bytes.clamp(1, 64 << 10)];
    let mut partial = 0usize;
    // A new Python thread starts by taking the GIL.
    conn.interp.take();
    while !ctx.stop.load(Ordering::Relaxed) {
        let Some(n) = conn.recv(&mut buf) else {
            break;
        };
        partial = conn.run_requests(cfg, partial + n);
        if !conn.send_all(&buf[..n]) {
            break;
        }
    }
    let mut interp = conn.interp;
    interp.release(Release::Exit);
    ConnOut {
        stats: conn.st,
        ctx: interp.ctx_switches(),
        log: interp.take_log(),
        metrics: std::mem::take(&mut interp.metrics),
        recorded: interp.finish_extras(name),
    }
}

/// A connection thread's interpreter, set up as the run's other interpreter threads are:
/// probe, recording, stop flag, warm-up gate, output recorders.
fn conn_interp<'a, G: Gil>(conns: &Conns<'a, G>) -> Interp<'a, G> {
    let sp = conns.sp;
    let mut interp = Interp::new(conns.gil);
    if let Some(p) = sp.probe {
        interp.set_probe(p);
    }
    interp.set_recording(sp.record);
    interp.set_stop(conns.ctx.stop);
    interp.set_warmup_gate(sp.measuring);
    if let Some(g) = sp.spin_gauge {
        interp.set_spin_gauge(g.clone());
    }
    interp.extras = (sp.recorders)();
    interp
}

/// A connection thread while it serves its connection.
struct Serving<'a, 's, G: Gil> {
    interp: Interp<'a, G>,
    h: TickHasher,
    /// This connection's figures, added to the server thread's when it ends.
    st: ServerStats,
    ctx: &'a WorkCtx<'a>,
    stream: &'s StdTcpStream,
}

impl<G: Gil> Serving<'_, '_, G> {
    /// One blocking `recv` into `buf`: how many bytes came, or `None` when the connection is
    /// over (the peer closed it or failed, or the run stopped).
    fn recv(&mut self, buf: &mut [u8]) -> Option<usize> {
        let (stop, stream) = (self.ctx.stop, self.stream);
        let r = call(&mut self.interp, &mut self.h, self.ctx, || {
            blocking(stop, None, None, || {
                let mut s = stream;
                s.read(buf)
            })
        });
        match r {
            Blocked::Done(Ok(0)) | Blocked::Stopped | Blocked::Stalled | Blocked::Woken => None,
            Blocked::Done(Ok(n)) => {
                self.st.bytes_in += n as u64;
                Some(n)
            }
            Blocked::Done(Err(_)) => {
                self.st.peer_errors += 1;
                None
            }
        }
    }

    /// Does the work of each whole request (`request_bytes`) in `pending` bytes; returns the
    /// bytes of the request not yet complete.
    fn run_requests(&mut self, cfg: &EchoConfig, mut pending: usize) -> usize {
        while pending >= cfg.request_bytes {
            pending -= cfg.request_bytes;
            self.st.requests += 1;
            run_ticks(&mut self.interp, &mut self.h, cfg.work_ticks);
        }
        pending
    }

    /// `sendall`: one blocking send per chunk the socket takes. False when the connection is
    /// over: the peer stopped reading for [`SEND_STALL`] or failed, or the run stopped.
    fn send_all(&mut self, data: &[u8]) -> bool {
        let (stop, stream) = (self.ctx.stop, self.stream);
        let mut sent = 0;
        while sent < data.len() {
            let r = call(&mut self.interp, &mut self.h, self.ctx, || {
                blocking(stop, None, Some(SEND_STALL), || {
                    let mut s = stream;
                    s.write(&data[sent..])
                })
            });
            match r {
                Blocked::Done(Ok(m)) => {
                    sent += m;
                    self.st.bytes_out += m as u64;
                }
                Blocked::Stopped | Blocked::Woken => return false,
                Blocked::Stalled => {
                    self.st.dropped_peers += 1;
                    return false;
                }
                Blocked::Done(Err(_)) => {
                    self.st.peer_errors += 1;
                    return false;
                }
            }
        }
        true
    }
}

/// Serves echo over UDP with blocking `recvfrom` and `sendto` in one thread until the run
/// stops: two releases per datagram. Datagrams over `max_request_bytes` are dropped
/// unanswered.
pub fn echo_udp_threaded<G: Gil>(
    interp: &mut Interp<'_, G>,
    h: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    sock: UdpSocket,
    cfg: &EchoConfig,
    sp_measuring: &AtomicBool,
) -> io::Result<ServerStats> {
    let mut st = ServerStats::default();
    let mut buf = vec![0u8; 65_536];
    // SAFETY: `into_raw_fd` gives up mio's ownership of the open socket, so the std socket
    // is its only owner and closes it once.
    let sock = unsafe { StdUdpSocket::from_raw_fd(sock.into_raw_fd()) };
    slice_timeouts(&sock)?;
    loop {
        // Idle, it takes the GIL again every `ACCEPT_POLL`, as the accepting thread does.
        let r = call(interp, h, ctx, || {
            let wake = Some(sp_measuring);
            blocking(ctx.stop, wake, Some(ACCEPT_POLL), || {
                sock.recv_from(&mut buf)
            })
        });
        let (n, peer) = match r {
            Blocked::Stopped => break,
            Blocked::Stalled | Blocked::Woken => continue,
            Blocked::Done(Ok(x)) => x,
            // ICMP errors from earlier sends surface here (e.g. port unreachable).
            Blocked::Done(Err(_)) => {
                st.peer_errors += 1;
                continue;
            }
        };
        st.bytes_in += n as u64;
        if n > cfg.max_request_bytes {
            st.dropped_peers += 1;
            continue;
        }
        st.requests += 1;
        run_ticks(interp, h, cfg.work_ticks);
        let r = call(interp, h, ctx, || {
            blocking(ctx.stop, None, Some(SEND_STALL), || {
                sock.send_to(&buf[..n], peer)
            })
        });
        match r {
            Blocked::Done(Ok(m)) => st.bytes_out += m as u64,
            Blocked::Done(Err(_)) | Blocked::Stalled => st.peer_errors += 1,
            Blocked::Stopped | Blocked::Woken => break,
        }
    }
    Ok(st)
}

/// Waits (GIL released by the caller) until `fd` is ready for `events`; false if the run
/// stopped first. The `poll` of a poll loop.
fn wait_ready(fd: RawFd, events: libc::c_short, stop: &AtomicBool) -> io::Result<bool> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack for an fd the caller keeps open.
        let rc = unsafe { libc::poll(&mut pfd, 1, SLICE.as_millis() as libc::c_int) };
        if rc > 0 {
            return Ok(true);
        }
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// bulk under `poll`: receives one transfer of `total` bytes as a poll loop does, a poll
/// (GIL released) before each `recv` of `recv_bytes` (GIL released): two releases per `recv`
/// where the blocking receiver has one. Returns when the transfer is complete, the peer goes
/// away, or the run stops.
pub fn bulk_recv_poll<G: Gil>(
    interp: &mut Interp<'_, G>,
    h: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    listener: StdTcpListener,
    total: u64,
    recv_bytes: usize,
) -> io::Result<ServerStats> {
    let mut st = ServerStats::default();
    listener.set_nonblocking(true)?;
    let lfd = listener.as_raw_fd();
    let mut stream = loop {
        if !call(interp, h, ctx, || wait_ready(lfd, libc::POLLIN, ctx.stop))? {
            return Ok(st);
        }
        match call(interp, h, ctx, || listener.accept()) {
            Ok((s, _)) => break s,
            Err(e) if super::server::is_transient(&e) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) => return Err(e),
        }
    };
    st.accepted = 1;
    stream.set_nonblocking(true)?;
    let fd = stream.as_raw_fd();
    let mut buf = vec![0u8; recv_bytes];
    let mut first: Option<Instant> = None;
    while st.bytes_in < total {
        if !call(interp, h, ctx, || wait_ready(fd, libc::POLLIN, ctx.stop))? {
            break;
        }
        let want = ((total - st.bytes_in) as usize).min(recv_bytes);
        match call(interp, h, ctx, || stream.read(&mut buf[..want])) {
            Ok(0) => break,
            Ok(n) => {
                first.get_or_insert_with(Instant::now);
                st.bytes_in += n as u64;
                st.requests += 1;
            }
            Err(e) if super::server::is_transient(&e) => {}
            Err(_) => {
                st.peer_errors += 1;
                break;
            }
        }
    }
    st.receive_s = first.map(|f| f.elapsed().as_secs_f64());
    if st.bytes_in >= total {
        st.transfer_s = st.receive_s;
    }
    Ok(st)
}
