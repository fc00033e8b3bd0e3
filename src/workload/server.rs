//! The server side of the socket workloads, run by interpreter threads: every socket call
//! (poll, accept, recv, send) sits inside a GIL release/take, as CPython does around a
//! blocking call, and is followed by `call_work` ticks under the GIL (docs/design.md §1).
//!
//! * echo over TCP or UDP, on mio: each request of `request_bytes` costs `work_ticks` ticks
//!   under the GIL; the reply is exactly the bytes received, never more.
//! * bulk: a blocking `recv` of `recv_bytes` at a time until `bulk_bytes` have arrived.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};

use super::cpu::run_ticks;
// Re-exported where it was first defined (`workload::server::Transport`).
pub use super::kinds::Transport;
use super::{TickHasher, WorkCtx};
use crate::gil::Gil;
use crate::interp::Interp;

/// How an echo server behaves.
#[derive(Clone, Debug)]
pub struct EchoConfig {
    pub request_bytes: usize,
    pub work_ticks: u64,
    /// A peer with more than this many bytes un-echoed (TCP), or a datagram larger than
    /// this (UDP), is dropped.
    pub max_request_bytes: usize,
    pub max_connections: usize,
}

/// What a server thread did.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ServerStats {
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub accepted: u64,
    /// Peers dropped for breaking a limit (too many connections, oversized requests).
    pub dropped_peers: u64,
    /// Peers that reset or failed mid-connection.
    pub peer_errors: u64,
    /// Connections accepted only to be closed at once: the server was out of file
    /// descriptors (RLIMIT_NOFILE, or the system's limit).
    #[serde(default)]
    pub turned_away: u64,
    /// bulk: seconds from the first byte to the last, if the transfer completed.
    pub transfer_s: Option<f64>,
    /// bulk: seconds from the first byte to the end of the receive: the last byte, or the
    /// end of the run when it came first.
    #[serde(default)]
    pub receive_s: Option<f64>,
}

/// A bound, not yet serving, socket.
pub enum Listener {
    Tcp(TcpListener),
    Udp(UdpSocket),
    /// A blocking listener: bulk, and the `threaded` TCP echo server.
    Bulk(StdTcpListener),
}

impl Listener {
    /// Binds `addr` for `transport` (or a blocking TCP listener for bulk); a TCP echo
    /// listener asks for a backlog of `backlog` (the kernel caps it at somaxconn).
    pub fn bind(
        transport: Transport,
        addr: SocketAddr,
        bulk: bool,
        backlog: u32,
    ) -> io::Result<Self> {
        Ok(match (bulk, transport) {
            (true, _) => Listener::Bulk(StdTcpListener::bind(addr)?),
            (false, Transport::Tcp) => Listener::Tcp(tcp_listener(addr, backlog)?),
            (false, Transport::Udp) => Listener::Udp(UdpSocket::bind(addr)?),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr(),
            Listener::Udp(s) => s.local_addr(),
            Listener::Bulk(l) => l.local_addr(),
        }
    }
}

/// A non-blocking TCP listener on `addr` with the given backlog (mio's own `bind` asks
/// for 128, too few for a load generator that opens hundreds of connections at once while
/// a convoyed server accepts one per switch interval).
fn tcp_listener(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(backlog.min(i32::MAX as u32) as i32)?;
    s.set_nonblocking(true)?;
    Ok(TcpListener::from_std(s.into()))
}

/// One blocking-call-shaped step: the GIL is released around `f`, then `call_work` ticks run.
#[inline]
pub(super) fn call<G: Gil, R>(
    interp: &mut Interp<'_, G>,
    h: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    f: impl FnOnce() -> R,
) -> R {
    let r = interp.allow_threads(f);
    run_ticks(interp, h, ctx.call_work_ticks);
    r
}

const LISTENER: Token = Token(usize::MAX);
/// How long a poll blocks before the thread looks at the stop flag again.
const POLL_SLICE: Duration = Duration::from_millis(20);

struct Conn {
    stream: TcpStream,
    /// Bytes received but not yet echoed.
    out: Vec<u8>,
    /// Bytes of the request in progress.
    partial: usize,
    writable_interest: bool,
}

fn is_peer_error(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// An error that only means "not now" on a blocking socket with a timeout: try again.
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// One poll with the GIL released (then `call_work`); an interrupted poll is an empty one.
fn poll_released<G: Gil>(
    interp: &mut Interp<'_, G>,
    h: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    poll: &mut Poll,
    events: &mut Events,
) -> io::Result<()> {
    match call(interp, h, ctx, || poll.poll(events, Some(POLL_SLICE))) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            events.clear();
            Ok(())
        }
        r => r,
    }
}

/// Serves echo over TCP until the run stops. The caller holds the GIL on entry and exit.
pub fn echo_tcp<G: Gil>(
    interp: &mut Interp<'_, G>,
    h: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    listener: TcpListener,
    cfg: &EchoConfig,
) -> io::Result<ServerStats> {
    let mut server = TcpEcho::open(listener, cfg)?;
    let mut events = Events::with_capacity(256);
    while !ctx.stop.load(Ordering::Relaxed) {
        poll_released(interp, h, ctx, &mut server.poll, &mut events)?;
        for ev in events.iter() {
            // Under a convoy every socket call can cost a switch interval: a stop is seen
            // between events, not only after a whole batch.
            if ctx.stop.load(Ordering::Relaxed) {
                break;
            }
            if ev.token() == LISTENER {
                server.backlog = true;
                continue;
            }
            server.serve_event(interp, h, ctx, ev)?;
        }
        server.accept_backlog(interp, h, ctx)?;
    }
    Ok(server.st)
}

/// One TCP echo server's state between polls.
struct TcpEcho<'c> {
    cfg: &'c EchoConfig,
    st: ServerStats,
    poll: Poll,
    listener: TcpListener,
    conns: Conns,
    buf: Vec<u8>,
    reserve: Reserve,
    /// Connections may be waiting in the backlog: set by a listener event, cleared only
    /// when `accept` says the backlog is empty. Edge-triggered polling raises no new event
    /// for connections already queued, so a drain cut short (out of descriptors) is retried
    /// at the next poll slice instead of waiting for an event that may never come.
    backlog: bool,
}

/// What reading a connection's queued bytes ended with.
enum ReadEnd {
    /// The receive queue is empty for now: echo what was read.
    Drained,
    /// The peer closed or failed: close without echoing.
    Closed,
    /// More than `max_request_bytes` wait un-echoed: drop the peer.
    Overflow,
}

impl<'c> TcpEcho<'c> {
    /// Creates the poll, registers `listener` with it, and opens the reserve descriptor.
    fn open(mut listener: TcpListener, cfg: &'c EchoConfig) -> io::Result<Self> {
        let st = ServerStats::default();
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(TcpEcho {
            cfg,
            st,
            poll,
            listener,
            conns: Conns::default(),
            buf: vec![0u8; 64 << 10],
            reserve: Reserve::open(),
            backlog: false,
        })
    }

    /// Reads what a connection's event announced, echoes it back, and closes the
    /// connection if the peer is gone, failed, or sent too much.
    fn serve_event<G: Gil>(
        &mut self,
        interp: &mut Interp<'_, G>,
        h: &mut TickHasher,
        ctx: &WorkCtx<'_>,
        ev: &mio::event::Event,
    ) -> io::Result<()> {
        let slot = ev.token().0;
        let Some(c) = self.conns.slots.get_mut(slot).and_then(Option::as_mut) else {
            return Ok(());
        };
        let end = if ev.is_readable() || ev.is_read_closed() {
            read_requests(interp, h, ctx, c, &mut self.buf, self.cfg, &mut self.st)
        } else {
            ReadEnd::Drained
        };
        let close = match end {
            ReadEnd::Drained => {
                let open = write_echo(interp, h, ctx, c, &mut self.st);
                if open {
                    set_write_interest(&self.poll, c, slot)?;
                }
                !open
            }
            ReadEnd::Closed => true,
            ReadEnd::Overflow => {
                self.st.dropped_peers += 1;
                true
            }
        };
        if close {
            self.conns.close(&self.poll, slot);
        }
        Ok(())
    }

    /// Accepts waiting connections until the backlog is empty, the run stops, or accepting
    /// fails in a way worth retrying only at the next poll slice.
    fn accept_backlog<G: Gil>(
        &mut self,
        interp: &mut Interp<'_, G>,
        h: &mut TickHasher,
        ctx: &WorkCtx<'_>,
    ) -> io::Result<()> {
        while self.backlog && !ctx.stop.load(Ordering::Relaxed) {
            match call(interp, h, ctx, || self.listener.accept()) {
                Ok((s, _)) => {
                    if self.conns.live >= self.cfg.max_connections {
                        self.st.dropped_peers += 1;
                        continue; // dropping `s` closes it
                    }
                    let _ = s.set_nodelay(true);
                    self.conns.add(&self.poll, s)?;
                    self.st.accepted += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.backlog = false,
                Err(e) if is_out_of_fds(&e) => {
                    // Free the reserve descriptor, take the oldest waiting connection with
                    // it and close it at once: the peer learns it was turned away instead
                    // of waiting in a backlog that would otherwise fill for good.
                    let turned = call(interp, h, ctx, || self.reserve.turn_away(&self.listener));
                    if turned {
                        self.st.turned_away += 1;
                    } else {
                        break; // retried at the next poll slice
                    }
                }
                // Gone before it was accepted, or interrupted: the next one may be fine.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                // Out of buffers or memory, and the like: retried at the next poll slice.
                Err(_) => break,
            }
        }
        Ok(())
    }
}

/// Reads everything queued on `c` (one `recv` per GIL release), running `work_ticks` for
/// each whole request received and queueing the bytes to be echoed.
#[inline]
fn read_requests<G: Gil>(
    interp: &mut Interp<'_, G>,
    h: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    c: &mut Conn,
    buf: &mut [u8],
    cfg: &EchoConfig,
    st: &mut ServerStats,
) -> ReadEnd {
    loop {
        match call(interp, h, ctx, || c.stream.read(buf)) {
            Ok(0) => return ReadEnd::Closed,
            Ok(n) => {
                st.bytes_in += n as u64;
                c.partial += n;
                while c.partial >= cfg.request_bytes {
                    c.partial -= cfg.request_bytes;
                    st.requests += 1;
                    run_ticks(interp, h, cfg.work_ticks);
                }
                c.out.extend_from_slice(&buf[..n]);
                if c.out.len() > cfg.max_request_bytes {
                    return ReadEnd::Overflow;
                }
                // A short read emptied the receive queue; new data raises a new edge, so
                // there is no need for a read that returns EAGAIN.
                if n < buf.len() {
                    return ReadEnd::Drained;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadEnd::Drained,
            Err(_) => {
                st.peer_errors += 1;
                return ReadEnd::Closed;
            }
        }
    }
}

/// Sends what `c` has waiting until it is all gone or the send queue is full (one `send`
/// per GIL release). False if the peer failed and the connection is to be closed.
#[inline]
fn write_echo<G: Gil>(
    interp: &mut Interp<'_, G>,
    h: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    c: &mut Conn,
    st: &mut ServerStats,
) -> bool {
    while !c.out.is_empty() {
        match call(interp, h, ctx, || c.stream.write(&c.out)) {
            Ok(n) => {
                st.bytes_out += n as u64;
                c.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                st.peer_errors += 1;
                return false;
            }
        }
    }
    true
}

/// Asks for writable events only while bytes wait to be sent, so an idle connection does
/// not wake the poll; the registration changes only when that need changes.
#[inline]
fn set_write_interest(poll: &Poll, c: &mut Conn, slot: usize) -> io::Result<()> {
    let want_write = !c.out.is_empty();
    if want_write != c.writable_interest {
        let interest = if want_write {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        poll.registry()
            .reregister(&mut c.stream, Token(slot), interest)?;
        c.writable_interest = want_write;
    }
    Ok(())
}

/// The open connections of a TCP echo server, by slot; a connection's slot is its token.
#[derive(Default)]
struct Conns {
    slots: Vec<Option<Conn>>,
    /// Slots emptied by a close, reused before the table grows.
    free: Vec<usize>,
    live: usize,
}

impl Conns {
    /// Registers `s` for reads under a free slot (or a new one) and files it there.
    fn add(&mut self, poll: &Poll, mut s: TcpStream) -> io::Result<()> {
        let slot = self.free.pop().unwrap_or(self.slots.len());
        poll.registry()
            .register(&mut s, Token(slot), Interest::READABLE)?;
        let c = Conn {
            stream: s,
            out: Vec::new(),
            partial: 0,
            writable_interest: false,
        };
        if slot == self.slots.len() {
            self.slots.push(Some(c));
        } else {
            self.slots[slot] = Some(c);
        }
        self.live += 1;
        Ok(())
    }

    /// Deregisters and closes the connection in `slot`, if there is one.
    fn close(&mut self, poll: &Poll, slot: usize) {
        if let Some(mut c) = self.slots[slot].take() {
            let _ = poll.registry().deregister(&mut c.stream);
            self.free.push(slot);
            self.live -= 1;
        }
    }
}

/// `accept` failed for want of a file descriptor (this process's or the system's).
fn is_out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// A descriptor held back (on /dev/null) so that, out of descriptors, the server can still
/// accept one connection at a time to close it.
struct Reserve(Option<std::fs::File>);

impl Reserve {
    fn open() -> Self {
        Reserve(std::fs::File::open("/dev/null").ok())
    }

    /// Closes the reserve, accepts one waiting connection and closes it, and takes the
    /// reserve back. False if no connection could be turned away this way (the reserve was
    /// already gone, or another thread took the freed descriptor first).
    fn turn_away(&mut self, listener: &TcpListener) -> bool {
        if self.0.take().is_none() {
            *self = Reserve::open();
            return false;
        }
        let turned = loop {
            match listener.accept() {
                Ok(_) => break true, // the stream is dropped, so closed, here
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        *self = Reserve::open();
        turned
    }
}

/// Serves echo over UDP until the run stops: each datagram is one request, answered with
/// exactly the bytes received; datagrams over `max_request_bytes` are dropped unanswered.
pub fn echo_udp<G: Gil>(
    interp: &mut Interp<'_, G>,
    h: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    mut sock: UdpSocket,
    cfg: &EchoConfig,
) -> io::Result<ServerStats> {
    let mut st = ServerStats::default();
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(16);
    poll.registry()
        .register(&mut sock, LISTENER, Interest::READABLE)?;
    let mut buf = vec![0u8; 65_536];
    while !ctx.stop.load(Ordering::Relaxed) {
        poll_released(interp, h, ctx, &mut poll, &mut events)?;
        if events.is_empty() {
            continue;
        }
        // Edge-triggered: drain every queued datagram (unless the run is over).
        while !ctx.stop.load(Ordering::Relaxed) {
            match call(interp, h, ctx, || sock.recv_from(&mut buf)) {
                Ok((n, peer)) => {
                    st.bytes_in += n as u64;
                    if n > cfg.max_request_bytes {
                        st.dropped_peers += 1;
                        continue;
                    }
                    st.requests += 1;
                    run_ticks(interp, h, cfg.work_ticks);
                    match call(interp, h, ctx, || sock.send_to(&buf[..n], peer)) {
                        Ok(m) => st.bytes_out += m as u64,
                        Err(e) if is_peer_error(&e) => st.peer_errors += 1,
                        Err(_) => {}
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // ICMP errors from earlier sends surface here (e.g. port unreachable).
                Err(_) => st.peer_errors += 1,
            }
        }
    }
    Ok(st)
}

/// Receives one bulk transfer of `total` bytes with blocking `recv`s of `recv_bytes`, the
/// GIL released around each. Returns when the transfer is complete, the peer goes away, or
/// the run stops.
pub fn bulk_recv<G: Gil>(
    interp: &mut Interp<'_, G>,
    h: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    listener: StdTcpListener,
    total: u64,
    recv_bytes: usize,
) -> io::Result<ServerStats> {
    let mut st = ServerStats::default();
    listener.set_nonblocking(true)?;
    // Accept, looking at the stop flag every slice.
    let mut stream: StdTcpStream = loop {
        if ctx.stop.load(Ordering::Relaxed) {
            return Ok(st);
        }
        match call(interp, h, ctx, || listener.accept()) {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                interp.allow_threads(|| std::thread::sleep(Duration::from_millis(1)));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    st.accepted = 1;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = vec![0u8; recv_bytes];
    let mut first: Option<Instant> = None;
    while st.bytes_in < total && !ctx.stop.load(Ordering::Relaxed) {
        let want = ((total - st.bytes_in) as usize).min(recv_bytes);
        match call(interp, h, ctx, || stream.read(&mut buf[..want])) {
            Ok(0) => break,
            Ok(n) => {
                first.get_or_insert_with(Instant::now);
                st.bytes_in += n as u64;
                st.requests += 1;
            }
            Err(e) if is_transient(&e) => {}
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

impl ServerStats {
    pub fn add(&mut self, o: &ServerStats) {
        self.requests += o.requests;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.accepted += o.accepted;
        self.dropped_peers += o.dropped_peers;
        self.peer_errors += o.peer_errors;
        self.turned_away += o.turned_away;
        self.transfer_s = self.transfer_s.or(o.transfer_s);
        self.receive_s = self.receive_s.or(o.receive_s);
    }
}

/// Why a socket operation failed, in a few words.
pub fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::AddrInUse => "address already in use".into(),
        io::ErrorKind::AddrNotAvailable => "address not available on this machine".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections the server has not accepted yet wait in the backlog; a load generator that
    /// opens hundreds at once against a convoyed server needs room for all of them.
    #[test]
    fn the_listen_backlog_holds_hundreds_of_unaccepted_connections() {
        let n = crate::workload::limits::somaxconn().map_or(600, |c| c.min(600) as usize);
        let l = tcp_listener("127.0.0.1:0".parse().unwrap(), 1024).unwrap();
        let addr = l.local_addr().unwrap();
        let mut held = Vec::with_capacity(n);
        for i in 0..n {
            // A connect whose SYN finds the backlog full gets no answer for a second.
            match StdTcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => held.push(s),
                Err(e) => panic!("connect #{i} of {n}, none accepted: {e}"),
            }
        }
    }
}
