//! The GIL designs. Each lives in its own module and implements [`Gil`], so workloads and
//! the runner never know which design they run on.
//!
//! The designs are listed once, in the `designs!` invocation below: that one line per
//! design declares its module and generates [`LockKind`] (its variants, [`LockKind::ALL`],
//! names, descriptions, parsing) and the dispatcher [`LockKind::with_design`] that builds the
//! design a scenario names and hands it to generic code (the runner, tests, benches). What a
//! design is (its name, what it models, its source and year) comes from its own `Gil` impl.
//! `gilbench locks` prints the list.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use crate::sync::SpinGauge;

/// `spin = adaptive`'s bound on one spin: about one futex wake-up on the VMs gilbench runs on
/// (30-50 us). A waiter that spins longer than parking and being woken would cost cannot save
/// more than it burns (spin for the cost of a block: the 2-competitive rule of Karlin, Li,
/// Manasse and Owicki, 1991); Linux bounds its optimistic spinning by the owner running and
/// `need_resched` instead, which user space cannot see.
pub const ADAPTIVE_SPIN_BOUND: Duration = Duration::from_micros(50);

pub(crate) mod handoff;
#[cfg(all(test, not(loom)))]
pub(crate) mod testing;
pub(crate) mod ticker;

/// Declares every design: `module::Type => Variant`. Adding a design is one new module and
/// one line here.
macro_rules! designs {
    ($($module:ident :: $ty:ident => $variant:ident,)+) => {
        $(
            pub mod $module;
            pub use $module::$ty;
        )+

        /// The designs gilbench ships, in the order `gilbench locks` lists them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum LockKind {
            $(
                #[doc = concat!("[`", stringify!($ty), "`]")]
                $variant,
            )+
        }

        impl LockKind {
            /// Every design.
            pub const ALL: [LockKind; [$(stringify!($variant)),+].len()] =
                [$(LockKind::$variant),+];

            /// What the design is, from its `Gil` impl.
            pub fn about(self) -> About {
                match self {
                    $(LockKind::$variant => About::of::<$ty>(),)+
                }
            }

            /// Builds the design with `p` and runs `w` on it.
            pub fn with_design<W: WithGil>(self, p: &GilParams, w: W) -> W::Out {
                match self {
                    $(LockKind::$variant => w.run(<$ty as Gil>::new(p)),)+
                }
            }

            /// [`LockKind::with_design`], or why the design could not be built (its timer
            /// thread could not start).
            pub fn try_with_design<W: WithGil>(
                self,
                p: &GilParams,
                w: W,
            ) -> std::io::Result<W::Out> {
                match self {
                    $(LockKind::$variant => Ok(w.run(<$ty as Gil>::try_new(p)?)),)+
                }
            }

            /// See [`Gil::SLICE_KEYS`].
            pub fn slice_keys(self) -> &'static [&'static str] {
                match self {
                    $(LockKind::$variant => <$ty as Gil>::SLICE_KEYS,)+
                }
            }

            /// See [`Gil::preemption_period`].
            pub fn preemption_period(self, p: &GilParams) -> Option<(Duration, &'static str)> {
                match self {
                    $(LockKind::$variant => <$ty as Gil>::preemption_period(p),)+
                }
            }
        }
    };
}

designs! {
    tick::TickGil => Tick,
    timed::TimedGil => Timed,
    mlfq::MlfqGil => Mlfq,
    fifo::FifoGil => Fifo,
    none::NoGil => None,
    ocaml::OcamlGil => Ocaml,
    fastcond::FastcondGil => Fastcond,
    ruby::RubyGil => Ruby,
    pypy::PypyGil => Pypy,
    bfs::BfsGil => Bfs,
    decay::DecayGil => Decay,
}

/// Code that runs on any design: what [`LockKind::with_design`] calls with the design built.
/// (A generic closure cannot be passed as a value; a type with a generic method can.)
pub trait WithGil {
    type Out;
    fn run<G: Gil>(self, gil: G) -> Self::Out;
}

/// What a design is, for `gilbench locks` and the docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct About {
    pub name: &'static str,
    pub models: &'static str,
    pub source: &'static str,
    pub year: &'static str,
}

impl About {
    fn of<G: Gil>() -> About {
        About {
            name: G::NAME,
            models: G::MODELS,
            source: G::SOURCE,
            year: G::YEAR,
        }
    }
}

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
/// that returns `true` it releases with [`Release::Forced`] and takes the GIL again at once.
/// Designs whose yield is one operation (ocaml, fastcond, ruby, pypy) split it over those two
/// calls, keeping what the second half needs in the thread's handle.
pub trait Gil: Send + Sync + 'static {
    /// Per-thread handle (identity, hand-off slot). Owned by its thread.
    type Thread: Send;

    /// The design's name as the CLI spells it.
    const NAME: &'static str;

    /// What the design models and how it decides who runs, in one line.
    const MODELS: &'static str;

    /// The source it follows (file, issue, paper).
    const SOURCE: &'static str;

    /// The year of that source ("-" where gilbench could not verify one).
    const YEAR: &'static str;

    /// Whether holding the GIL excludes other holders (false only for `none`).
    const EXCLUSIVE: bool = true;

    /// Whether `release` can keep the releaser waiting on another thread (`timed`'s forced
    /// switching, `bfs`'s confirmation, a queue's lock). Where it cannot (`tick`'s
    /// `sem_post`), the instrument does not time releases: there is no switch wait to
    /// measure (the figure is absent, not near zero), and a forced release's re-take waits
    /// from the release's own stamp. One clock read and one histogram write fewer per
    /// forced cycle: the instrument's cost under `tick` (docs/costs.md).
    const RELEASE_WAITS: bool = true;

    /// The scenario keys (durations) that set this design's time slice: how long a CPU-bound
    /// holder keeps the GIL while others wait, and the period of the timer that decides it.
    /// The stress matrix runs every design with short and long slices through them. Empty for
    /// designs that slice by tick count or not at all.
    const SLICE_KEYS: &'static [&'static str] = &[];

    /// Builds the design from the scenario's parameters (each design reads the fields that
    /// concern it).
    fn new(p: &GilParams) -> Self
    where
        Self: Sized;

    /// [`Gil::new`], or the error that kept the design's own thread (a timer) from starting:
    /// out of memory or threads.
    fn try_new(p: &GilParams) -> std::io::Result<Self>
    where
        Self: Sized,
    {
        Ok(Self::new(p))
    }

    /// How long a waiter waits before *it* asks the holder to drop, and the key that sets it;
    /// None for designs whose preemption does not depend on waiters timing out. A `spin` at
    /// least this long would keep waiters spinning past the moment they should ask.
    fn preemption_period(_p: &GilParams) -> Option<(Duration, &'static str)>
    where
        Self: Sized,
    {
        None
    }

    /// Registers the calling interpreter thread.
    fn register(&self) -> Self::Thread;

    /// Blocks until the calling thread holds the GIL.
    fn take(&self, t: &mut Self::Thread);

    /// Gives the GIL up. Must only be called by the holder.
    fn release(&self, t: &mut Self::Thread, why: Release);

    /// The eval-breaker check, called by the holder between ticks. Returns `true` when the
    /// holder must drop the GIL and take it again now.
    fn check(&self, t: &mut Self::Thread) -> bool;

    /// Whether the thread's last `release(Forced)` kept the GIL: a yield that found nobody to
    /// yield to (ocaml's and ruby's yields return at once then, and the next `take` is a
    /// no-op). Such a yield is not a drop, and is not counted as one.
    fn kept(&self, _t: &Self::Thread) -> bool {
        false
    }

    /// Design-specific per-thread counters (e.g. mlfq's demotions), reported per thread.
    fn thread_stats(&self, _t: &Self::Thread) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Design-specific global counters (e.g. mlfq's boosts).
    fn stats(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

impl fmt::Display for LockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl LockKind {
    /// The design's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        self.about().name
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

impl serde::Serialize for LockKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for LockKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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
    /// ocaml: period of the tick thread (OCaml's `Thread_timeout`, 50 ms).
    pub ocaml_tick: Duration,
    /// ruby: the time slice (`RUBY_THREAD_TIMESLICE`, 100 ms).
    pub ruby_quantum: Duration,
    /// ruby: period of the timer thread while someone waits (10 ms).
    pub ruby_tick: Duration,
    /// pypy: ticks between the holder's periodic actions, at which it yields if someone waits
    /// (`sys.setcheckinterval`, 10,000).
    pub pypy_checkinterval: u32,
    /// pypy: how long the stealer's timed lock on `mutex_gil` waits before it looks at the
    /// fast word again (100 us).
    pub pypy_steal_timeout: Duration,
    /// bfs: the slice `rr` (10 ms).
    pub bfs_rr: Duration,
    /// bfs: a refilled slice's deadline is this many slices ahead of the virtual clock (8).
    pub bfs_deadline_factor: u32,
    /// bfs: a waiter wakes to set `check_depleted` every this x `rr` x waiters (0.55).
    pub bfs_wait_factor: f64,
    /// bfs: how long a thread chosen while the I/O releaser is more urgent spins so that it
    /// can snatch the GIL back (12 us).
    pub bfs_switch_back_spin: Duration,
    /// mlfq: how long a waiter that has asked the holder to drop, and is next in line, waits
    /// actively for the hand-off before it parks (50 us; 0: never). Part of the design: the
    /// hand-off follows at the holder's next eval-breaker check.
    pub mlfq_preempt_spin: Duration,
    /// decay: the slice after which a waiter that is not more urgent gets its turn (5 ms).
    pub decay_slice: Duration,
    /// decay: the half-life of a thread's recent GIL usage, its priority (50 ms).
    pub decay_halflife: Duration,
    /// decay: as `mlfq_preempt_spin`, how long a waiter that asked a running holder to drop,
    /// and is next in line, waits actively for the hand-off (50 us; 0: never).
    pub decay_preempt_spin: Duration,
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
            ocaml_tick: Duration::from_millis(50),
            ruby_quantum: Duration::from_millis(100),
            ruby_tick: Duration::from_millis(10),
            pypy_checkinterval: 10_000,
            pypy_steal_timeout: Duration::from_micros(100),
            mlfq_preempt_spin: Duration::from_micros(50),
            decay_slice: Duration::from_millis(5),
            decay_halflife: Duration::from_millis(50),
            decay_preempt_spin: Duration::from_micros(50),
            bfs_rr: Duration::from_millis(10),
            bfs_deadline_factor: 8,
            bfs_wait_factor: 0.55,
            bfs_switch_back_spin: Duration::from_micros(12),
        }
    }
}

/// The default allotment of each level: ten of its quanta.
pub fn default_allotments(quanta: &[Duration]) -> Vec<Duration> {
    quanta.iter().map(|q| *q * 10).collect()
}
