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

mod bulk;
mod conns;
mod event_loop;
mod requests;
mod results;
mod sockets;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll};

pub use self::bulk::run_bulk_send;
use self::conns::Conn;
pub use self::results::LoadResult;
use self::sockets::{Timer, TIMER};
use super::server::Transport;

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
    /// Each hold-up of [`HELD_UP_NOTE`] or more: when it began, how long it lasted (at most
    /// one per 50 ms of the run).
    long: Vec<(Instant, Duration)>,
}

impl Pauses {
    fn expect_back_within(&mut self, wait: Duration) {
        self.back_by = Instant::now() + wait;
    }

    fn back(&mut self, now: Instant) {
        let pause = now.saturating_duration_since(self.back_by);
        self.longest = self.longest.max(pause);
        if pause >= HELD_UP_NOTE {
            self.long.push((self.back_by, pause));
        }
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
                long: Vec::new(),
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

#[cfg(test)]
mod tests;

#[cfg(test)]
mod held_up;
