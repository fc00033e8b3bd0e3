//! The GIL designs. Each lives in its own module and implements [`Gil`], so workloads and
//! the runner never know which design they run on.
//!
//! | design | module | what it models |
//! |---|---|---|
//! | `tick`  | [`tick`]  | CPython 2.x: release and re-take an unfair semaphore every `check_interval` ticks |
//! | `timed` | [`timed`] | CPython 3.2+: timed condvar wait, `gil_drop_request`, forced switching |
//! | `mlfq`  | [`mlfq`]  | a multilevel feedback queue scheduler with direct hand-off |
//! | `fifo`  | [`fifo`]  | a fair FIFO hand-off lock with `timed`'s tick-check cadence |
//! | `none`  | [`none`]  | no GIL at all (free-threaded Python) |

pub mod fifo;
pub(crate) mod handoff;
pub mod mlfq;
pub mod none;
pub mod tick;
pub mod timed;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use fifo::FifoGil;
pub use mlfq::MlfqGil;
pub use none::NoGil;
pub use tick::TickGil;
pub use timed::TimedGil;

/// Why the holder gives the GIL up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Around a blocking call or native work (`Py_BEGIN_ALLOW_THREADS`).
    Blocking,
    /// At an eval-breaker check, because the design asked for it (drop request or tick count).
    Forced,
    /// The thread is finishing (or unwinding) and will not take the GIL again.
    Exit,
}

/// One interpreter-lock design.
///
/// A thread first calls [`Gil::register`] once, then alternates [`Gil::take`] and
/// [`Gil::release`]; while it holds the GIL it calls [`Gil::check`] between ticks, and when
/// that returns `true` it releases with [`Release::Forced`] and takes the GIL again.
pub trait Gil: Send + Sync + 'static {
    /// Per-thread handle (identity, hand-off slot). Owned by its thread.
    type Thread: Send;

    /// The design's name as the CLI spells it.
    const NAME: &'static str;

    /// Whether holding the GIL excludes other holders (false only for `none`).
    const EXCLUSIVE: bool = true;

    /// Registers the calling interpreter thread.
    fn register(&self) -> Self::Thread;

    /// Blocks until the calling thread holds the GIL.
    fn take(&self, t: &mut Self::Thread);

    /// Gives the GIL up. Must only be called by the holder.
    fn release(&self, t: &mut Self::Thread, why: Release);

    /// The eval-breaker check, called by the holder between ticks. Returns `true` when the
    /// holder must drop the GIL and take it again now.
    fn check(&self, t: &mut Self::Thread) -> bool;

    /// Design-specific per-thread counters (e.g. mlfq's demotions), reported per thread.
    fn thread_stats(&self, _t: &Self::Thread) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Design-specific global counters (e.g. mlfq's boosts).
    fn stats(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// The designs gilbench ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    Tick,
    Timed,
    Mlfq,
    Fifo,
    None,
}

impl LockKind {
    pub const ALL: [LockKind; 5] = [
        LockKind::Tick,
        LockKind::Timed,
        LockKind::Mlfq,
        LockKind::Fifo,
        LockKind::None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LockKind::Tick => TickGil::NAME,
            LockKind::Timed => TimedGil::NAME,
            LockKind::Mlfq => MlfqGil::NAME,
            LockKind::Fifo => FifoGil::NAME,
            LockKind::None => NoGil::NAME,
        }
    }

    /// One line for `gilbench locks`.
    pub fn summary(self) -> &'static str {
        match self {
            LockKind::Tick => "Python 2.x: every check_interval ticks release and re-take an unfair POSIX semaphore (no hand-off)",
            LockKind::Timed => "Python 3.2+: waiters time out after `interval`, set gil_drop_request; forced switching",
            LockKind::Mlfq => "multilevel feedback queue scheduler: short holders (I/O) first, direct hand-off, periodic boost",
            LockKind::Fifo => "fair FIFO lock: direct hand-off to the oldest waiter, drop requests after `interval`",
            LockKind::None => "no GIL at all (free-threaded Python): take and release are no-ops",
        }
    }
}

impl fmt::Display for LockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LockKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        LockKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = LockKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown lock '{s}' (known: {})", names.join(", "))
            })
    }
}

/// Every tunable of every design. Each design reads the fields that concern it.
#[derive(Clone, Debug, PartialEq)]
pub struct GilParams {
    /// tick: ticks between forced release/re-take (CPython 2's `sys.setcheckinterval`).
    pub check_interval: u32,
    /// timed, fifo: how long a waiter waits before it requests a drop (`sys.setswitchinterval`).
    pub interval: Duration,
    /// timed, fifo: a forced drop may not be followed by the dropper re-taking the GIL first.
    pub force_switching: bool,
    /// mlfq: time quantum per level (top level first); its length is the number of levels.
    pub quanta: Vec<Duration>,
    /// mlfq: total hold time a thread may use at a level before it drops one level.
    pub allotments: Vec<Duration>,
    /// mlfq: period after which every thread returns to the top level.
    pub boost_interval: Duration,
    /// mlfq: boost every thread (`true`, OSTEP's rule) or only threads that have not held
    /// the GIL for a whole boost interval.
    pub boost_all: bool,
    /// Every design with waiters: how long a waiter spins before it blocks (0: never). One
    /// setting, applied the same way to all, so that no design gets a busy-wait the others
    /// lack.
    pub spin: Duration,
}

impl Default for GilParams {
    fn default() -> Self {
        let quanta = vec![
            Duration::from_millis(1),
            Duration::from_millis(5),
            Duration::from_millis(20),
        ];
        GilParams {
            check_interval: 100,
            interval: Duration::from_millis(5),
            force_switching: true,
            allotments: default_allotments(&quanta),
            quanta,
            boost_interval: Duration::from_millis(100),
            boost_all: true,
            spin: Duration::ZERO,
        }
    }
}

/// The default allotment of each level: ten of its quanta.
pub fn default_allotments(quanta: &[Duration]) -> Vec<Duration> {
    quanta.iter().map(|q| *q * 10).collect()
}
