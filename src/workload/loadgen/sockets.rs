//! The client sockets: opening them, what the kernel says about them, writing what could not
//! be sent at once, and the timer that wakes the poll.

use std::io::{self, Write};
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::net::{TcpStream, UdpSocket};
use mio::Token;

use crate::workload::server::Transport;

pub(super) const TIMER: Token = Token(usize::MAX);

/// A one-shot monotonic timerfd, to wake a poll at a precise time.
pub(super) struct Timer {
    pub(super) fd: std::os::fd::RawFd,
}

impl Timer {
    pub(super) fn new() -> io::Result<Self> {
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
    pub(super) fn arm(&mut self, after: Duration) {
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
    pub(super) fn clear(&mut self) {
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

pub(super) enum Sock {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

/// The unspecified address of `target`'s family, port 0.
pub(super) fn any_port(target: SocketAddr) -> SocketAddr {
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
pub(super) fn talks_to_itself(local: SocketAddr, peer: SocketAddr) -> bool {
    local == peer
}

/// A UDP socket bound to `local` (then to any port) and connected to `target`, never one
/// that talks to itself.
pub(super) fn udp_client(target: SocketAddr, local: SocketAddr) -> io::Result<UdpSocket> {
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
pub(super) fn start_open(transport: Transport, addr: SocketAddr) -> io::Result<(Sock, bool)> {
    match transport {
        Transport::Tcp => Ok((Sock::Tcp(TcpStream::connect(addr)?), false)),
        Transport::Udp => Ok((Sock::Udp(udp_client(addr, any_port(addr))?), true)),
    }
}

/// Where a non-blocking TCP connect stands: `Ok(true)` connected, `Ok(false)` still going.
pub(super) fn connect_done(t: &TcpStream) -> io::Result<bool> {
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

pub(super) fn describe(addr: SocketAddr, e: &io::Error) -> String {
    let what = match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "no answer (timed out)".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset by peer".to_owned(),
        _ => e.to_string(),
    };
    format!("{addr}: {what}")
}

/// Like [`describe`], for a failed connect (where EAGAIN means no local port was free).
pub(super) fn describe_connect(addr: SocketAddr, e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::WouldBlock {
        format!("{addr}: no free local port")
    } else {
        describe(addr, e)
    }
}

/// Writes as much of `tx` as the socket takes now; only real errors are returned.
pub(super) fn write_pending(t: &mut TcpStream, tx: &mut Vec<u8>) -> io::Result<()> {
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

/// What the kernel says about a client socket at the end of a run: bytes received but not
/// read yet, and how many times TCP has had to send data (or the connection request) again.
#[derive(Default)]
pub(super) struct SockState {
    pub(super) unread: usize,
    pub(super) resent: u32,
}

impl SockState {
    pub(super) fn of(s: &Sock) -> Self {
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

/// Wake-ups from sleeps as precise as the kernel allows (the default slack is 50 us).
pub(super) fn set_timer_slack() {
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
