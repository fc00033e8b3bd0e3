//! Interpreter threads: the layer between a workload and a [`Gil`].
//!
//! An [`Interp`] takes and releases the GIL with measurements around it, runs the
//! eval-breaker check between ticks (one inlined call into the design: a relaxed atomic load
//! on the fast path, a `#[cold]` drop-and-re-take on the slow path), and offers
//! [`Interp::released`]: an RAII guard that releases the GIL around blocking or native work
//! and takes it back when dropped, also while unwinding. Dropping the `Interp` itself
//! releases the GIL if it is held, so a thread that panics while holding the GIL never
//! leaves the others waiting.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::gil::{Gil, Release};
use crate::metrics::{
    record, CtxSwitches, IdleClock, Interval, IntervalHists, Occupancy, ThreadMetrics,
};
use crate::trace::{Ev, TraceBuf};

/// Optional recorders, touched only at take and release (never per tick).
#[derive(Default)]
pub struct Extras {
    /// The GIL timeline (`--trace`).
    pub trace: Option<TraceBuf>,
    /// Interval histograms of [`INTERVAL_WAIT`] and [`INTERVAL_HOLD`] (`--hlog`).
    pub intervals: Option<IntervalHists>,
}

impl Extras {
    /// Takes what was recorded, under the thread's `name`: the timeline, and the interval
    /// histograms with the last (partial) interval cut at `now`.
    pub fn finish(&mut self, name: String, now: Instant) -> Recorded {
        Recorded {
            name,
            trace: self.trace.take(),
            intervals: self
                .intervals
                .take()
                .map(|iv| iv.finish(now))
                .unwrap_or_default(),
        }
    }
}

/// What one interpreter thread recorded for the outputs (`--trace`, `--hlog`).
#[derive(Debug)]
pub struct Recorded {
    /// The thread's name, which tags its timeline and interval histograms.
    pub name: String,
    pub trace: Option<TraceBuf>,
    /// Each interval carries the GIL-wait and GIL-hold histograms, in that order.
    pub intervals: Vec<Interval>,
}

/// Index of the GIL-wait histogram in [`Extras::intervals`].
pub const INTERVAL_WAIT: usize = 0;
/// Index of the GIL-hold histogram in [`Extras::intervals`].
pub const INTERVAL_HOLD: usize = 1;

/// One interpreter thread's view of the GIL.
pub struct Interp<'a, G: Gil> {
    gil: &'a G,
    thread: G::Thread,
    /// This thread's identity for switch counting (distinct per thread of a run).
    id: usize,
    /// The last thread to take the GIL, shared by the run's threads; only touched by the
    /// holder at acquisition, never on the tick path.
    last_holder: &'a AtomicUsize,
    pub metrics: ThreadMetrics,
    pub extras: Extras,
    held: bool,
    held_since: Instant,
    recording: bool,
    beacon: Option<&'a Beacon>,
    /// What this thread last published to its beacon.
    progress: u64,
    /// The run's stop flag, so that long GIL-held work ends when the run does.
    stop: Option<&'a AtomicBool>,
    /// Set by the runner when the warm-up is over; until then nothing is kept.
    measuring: Option<&'a AtomicBool>,
    /// Whether this thread has seen `measuring` set (and reset its metrics then).
    warm: bool,
    /// When this thread started measuring, and its context switches then.
    measured_since: Instant,
    ctx_at_start: CtxSwitches,
    /// The run's GIL occupancy, for the idle-while-wanted figure, and this thread's share.
    occupancy: Option<&'a Occupancy>,
    idle: IdleClock,
}

/// What an interpreter thread publishes for the watchdog: its state, and a counter that
/// moves whenever it makes progress. Each thread writes only its own (cache-padded) beacon,
/// at take/release and every few thousand ticks.
#[derive(Default)]
pub struct Beacon {
    pub state: std::sync::atomic::AtomicU8,
    pub progress: std::sync::atomic::AtomicU64,
}

impl Beacon {
    pub const STARTING: u8 = 0;
    pub const WANTS_GIL: u8 = 1;
    pub const HOLDS_GIL: u8 = 2;
    pub const RELEASING: u8 = 3;
    pub const IN_CALL: u8 = 4;
    pub const DONE: u8 = 5;

    /// The state in words.
    pub fn describe(state: u8) -> &'static str {
        match state {
            Self::STARTING => "starting",
            Self::WANTS_GIL => "waiting for the GIL",
            Self::HOLDS_GIL => "holding the GIL",
            Self::RELEASING => "releasing the GIL (e.g. a forced switch waiting for a taker)",
            Self::IN_CALL => "in a blocking call with the GIL released",
            _ => "done",
        }
    }
}

impl<'a, G: Gil> Interp<'a, G> {
    /// Registers a new interpreter thread with `gil`. `id` must be unique within the run and
    /// not `usize::MAX`.
    pub fn new(gil: &'a G, id: usize, last_holder: &'a AtomicUsize) -> Self {
        Interp {
            thread: gil.register(),
            gil,
            id,
            last_holder,
            metrics: ThreadMetrics::default(),
            extras: Extras::default(),
            held: false,
            held_since: Instant::now(),
            recording: true,
            beacon: None,
            progress: 0,
            stop: None,
            measuring: None,
            warm: true,
            measured_since: Instant::now(),
            ctx_at_start: CtxSwitches::of_current_thread(),
            occupancy: None,
            idle: IdleClock::default(),
        }
    }

    /// Reports this thread's wants, takes and releases to the run's `occupancy` (for the
    /// idle-while-wanted figure).
    pub fn set_occupancy(&mut self, occupancy: &'a Occupancy) {
        self.occupancy = Some(occupancy);
    }

    /// This thread's share of the idle-while-wanted sum.
    pub fn idle_clock(&self) -> IdleClock {
        self.idle
    }

    /// Makes [`Interp::stopped`] follow the run's stop flag.
    pub fn set_stop(&mut self, stop: &'a AtomicBool) {
        self.stop = Some(stop);
    }

    /// Whether the run is over (long GIL-held work checks this every few thousand ticks).
    #[inline]
    pub fn stopped(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Keeps nothing until `measuring` is set (the warm-up); the thread notices it at its next
    /// take, release or heartbeat, drops what it had recorded and starts afresh.
    pub fn set_warmup_gate(&mut self, measuring: &'a AtomicBool) {
        self.measuring = Some(measuring);
        self.warm = measuring.load(Ordering::Relaxed);
        self.begin_measuring();
    }

    /// Starts (or restarts) the measured window now: metrics, clock and context switches.
    fn begin_measuring(&mut self) {
        // A broken exclusion counts whenever it happens, warm-up or not.
        let overlaps = self.metrics.counters.overlaps;
        self.metrics = ThreadMetrics::default();
        self.metrics.counters.overlaps = overlaps;
        self.measured_since = Instant::now();
        self.ctx_at_start = CtxSwitches::of_current_thread();
    }

    #[inline]
    fn check_warmup(&mut self) {
        if !self.warm {
            self.end_warmup();
        }
    }

    #[cold]
    fn end_warmup(&mut self) {
        if self.measuring.is_some_and(|m| m.load(Ordering::Relaxed)) {
            self.warm = true;
            self.begin_measuring();
        }
    }

    /// At the thread's end: if it never saw the measured window begin (the run stopped
    /// during the warm-up, or before the thread noticed), what it kept is the warm-up's, and
    /// is dropped; its window is then empty.
    #[cold]
    pub fn drop_warmup(&mut self) {
        if !self.warm {
            self.begin_measuring();
        }
    }

    /// When this thread's measured window began (after the warm-up).
    pub fn measured_since(&self) -> Instant {
        self.measured_since
    }

    /// This thread's context switches since its measured window began.
    pub fn ctx_switches(&self) -> CtxSwitches {
        CtxSwitches::of_current_thread().since(self.ctx_at_start)
    }

    pub fn gil(&self) -> &'a G {
        self.gil
    }

    /// Whether this thread holds the GIL.
    #[inline]
    pub fn holds(&self) -> bool {
        self.held
    }

    /// Turns recording of histograms and counters on or off (on by default). Off, take and
    /// release read no clock and record nothing: the baseline for measuring what the
    /// instrumentation costs.
    pub fn set_recording(&mut self, on: bool) {
        self.recording = on;
    }

    /// Publishes this thread's state and progress to `beacon` (for the watchdog).
    pub fn set_beacon(&mut self, beacon: &'a Beacon) {
        self.beacon = Some(beacon);
    }

    /// Publishes a state change; plain stores, since only this thread writes its beacon.
    #[inline]
    fn signal(&mut self, state: u8) {
        if let Some(b) = self.beacon {
            self.progress += 1;
            b.state.store(state, Ordering::Relaxed);
            b.progress.store(self.progress, Ordering::Relaxed);
        }
    }

    /// Tells the watchdog that GIL-held work goes on (call every few thousand ticks).
    #[inline]
    pub fn heartbeat(&mut self) {
        if let Some(b) = self.beacon {
            self.progress += 1;
            b.progress.store(self.progress, Ordering::Relaxed);
        }
        self.check_warmup();
        if self.recording {
            self.metrics.cores.sample();
        }
    }

    /// Takes the GIL (blocking); returns how long that took (zero when not recording).
    pub fn take(&mut self) -> Duration {
        debug_assert!(!self.holds(), "take while holding the GIL");
        self.signal(Beacon::WANTS_GIL);
        if !self.recording {
            self.gil.take(&mut self.thread);
            self.held = true;
            self.signal(Beacon::HOLDS_GIL);
            if G::EXCLUSIVE {
                self.last_holder.store(self.id, Ordering::Relaxed);
            }
            return Duration::ZERO;
        }
        let asked = Instant::now();
        if let Some(o) = self.occupancy {
            o.want(&mut self.idle, asked);
        }
        self.gil.take(&mut self.thread);
        let now = Instant::now();
        if let Some(o) = self.occupancy {
            o.acquired(&mut self.idle, now);
        }
        self.held = true;
        self.signal(Beacon::HOLDS_GIL);
        self.check_warmup();
        let waited = now - asked;
        let m = &mut self.metrics;
        m.cores.sample();
        record(&mut m.wait, waited);
        m.counters.acquisitions += 1;
        if G::EXCLUSIVE && self.last_holder.swap(self.id, Ordering::Relaxed) != self.id {
            m.counters.switches += 1;
        }
        self.held_since = now;
        if let Some(iv) = &mut self.extras.intervals {
            iv.record(now, INTERVAL_WAIT, waited);
        }
        if let Some(t) = &mut self.extras.trace {
            t.push(asked, Ev::WantBegin);
            t.push(now, Ev::WantEnd);
            t.push(now, Ev::HoldBegin);
        }
        waited
    }

    /// Gives the GIL up.
    pub fn release(&mut self, why: Release) {
        if !self.held {
            debug_assert!(false, "release without holding the GIL");
            return;
        }
        self.held = false;
        self.check_warmup();
        // The exclusion check: every take writes the taker's id, so another id here means
        // someone took the GIL while this thread held it.
        if G::EXCLUSIVE && self.last_holder.load(Ordering::Relaxed) != self.id {
            self.metrics.counters.overlaps += 1;
        }
        if !self.recording {
            self.signal(Beacon::RELEASING);
            self.gil.release(&mut self.thread, why);
        } else {
            self.release_recorded(why);
        }
        self.signal(match why {
            Release::Blocking => Beacon::IN_CALL,
            Release::Forced => Beacon::WANTS_GIL,
            Release::Exit => Beacon::DONE,
        });
    }

    /// The recorded release. Only the time stamp and the idle-while-wanted transition come
    /// before the GIL is given up: a hand-off is a race that a few hundred nanoseconds can
    /// tip (README, "What the testbed itself costs"), so the histograms, counters, interval
    /// log and timeline are written once it is gone.
    fn release_recorded(&mut self, why: Release) {
        let now = Instant::now();
        self.signal(Beacon::RELEASING);
        if let Some(o) = self.occupancy {
            o.released(&mut self.idle, now);
        }
        self.gil.release(&mut self.thread, why);
        if why != Release::Exit {
            record(&mut self.metrics.switch_wait, now.elapsed());
        }
        let held = now - self.held_since;
        record(&mut self.metrics.hold, held);
        if let Some(iv) = &mut self.extras.intervals {
            iv.record(now, INTERVAL_HOLD, held);
        }
        if let Some(t) = &mut self.extras.trace {
            t.push(now, Ev::HoldEnd);
            match why {
                Release::Blocking => t.push(now, Ev::ReleasedBegin),
                Release::Forced => t.push(now, Ev::ForcedSwitch),
                Release::Exit => {}
            }
        }
        match why {
            Release::Forced => self.metrics.counters.forced_drops += 1,
            Release::Blocking => self.metrics.counters.voluntary_drops += 1,
            Release::Exit => {}
        }
    }

    /// The eval-breaker check between two ticks.
    #[inline(always)]
    pub fn check(&mut self) {
        if self.gil.check(&mut self.thread) {
            self.yield_gil();
        }
    }

    #[cold]
    #[inline(never)]
    fn yield_gil(&mut self) {
        if let Some(t) = &mut self.extras.trace {
            t.push(Instant::now(), Ev::DropRequest);
        }
        self.release(Release::Forced);
        self.take();
    }

    /// Releases the GIL around blocking or native work; the guard takes it back when dropped
    /// and records the re-acquire delay.
    pub fn released(&mut self) -> Released<'_, 'a, G> {
        self.release(Release::Blocking);
        Released { interp: self }
    }

    /// Runs `f` with the GIL released (`Py_BEGIN_ALLOW_THREADS` ... `Py_END_ALLOW_THREADS`).
    pub fn allow_threads<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let _g = self.released();
        f()
    }

    /// Design-specific counters of this thread.
    pub fn gil_stats(&self) -> Vec<(&'static str, u64)> {
        self.gil.thread_stats(&self.thread)
    }
}

impl<G: Gil> Drop for Interp<'_, G> {
    fn drop(&mut self) {
        if self.holds() {
            self.release(Release::Exit);
        }
    }
}

/// The GIL is released while this guard lives; dropping it takes the GIL back.
pub struct Released<'i, 'a, G: Gil> {
    interp: &'i mut Interp<'a, G>,
}

impl<G: Gil> Drop for Released<'_, '_, G> {
    fn drop(&mut self) {
        if let Some(t) = &mut self.interp.extras.trace {
            t.push(Instant::now(), Ev::ReleasedEnd);
        }
        let waited = self.interp.take();
        record(&mut self.interp.metrics.reacquire, waited);
    }
}
