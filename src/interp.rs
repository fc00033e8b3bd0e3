//! Interpreter threads: the layer between a workload and a [`Gil`].
//!
//! An [`Interp`] takes and releases the GIL with measurements around it, runs the
//! eval-breaker check between ticks (one inlined call into the design: a relaxed atomic load
//! on the fast path, a `#[cold]` drop-and-re-take on the slow path), and offers
//! [`Interp::released`]: an RAII guard that releases the GIL around blocking or native work
//! and takes it back when dropped, also while unwinding. Dropping the `Interp` itself
//! releases the GIL if it is held, so a thread that panics while holding the GIL never
//! leaves the others waiting.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::clock::{Epoch, RawClock};
use crate::gil::{Gil, Release, SpinGauge};
use crate::holdlog::{Ev as LogEv, HoldLog, LogBudget};
use crate::metrics::{record, CtxSwitches, Interval, IntervalHists, ThreadMetrics};
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

/// What a run gives its interpreter threads to stamp their GIL events with: the clock, the
/// epoch the stamps count from, the start of the measured window once the runner sets it,
/// and the budget of the per-thread event logs. Read-only on the take/release path: the
/// threads write only their own logs.
#[derive(Clone, Copy)]
pub struct Probe<'a> {
    pub clock: &'a RawClock,
    pub epoch: Epoch,
    /// The raw reading at which the measured window began; [`Probe::NOT_YET`] until then.
    pub measure_start: &'a AtomicU64,
    /// The raw reading at which the run was stopped (the window's end); [`Probe::NOT_YET`]
    /// until then. Holds are cut there, and takes after it are not counted.
    pub stop_at: &'a AtomicU64,
    pub budget: &'a LogBudget,
}

impl Probe<'_> {
    /// `measure_start` before the warm-up has ended.
    pub const NOT_YET: u64 = u64::MAX;
}

/// A probe's parts owned together, for interpreter threads outside a run (tests, benches):
/// the clock, an epoch of now, a measured window that begins now and has not stopped, and an
/// event budget.
pub struct ProbeParts {
    pub clock: RawClock,
    pub epoch: Epoch,
    pub measure_start: AtomicU64,
    pub stop_at: AtomicU64,
    pub budget: LogBudget,
}

impl ProbeParts {
    /// A window from now on, and a budget of `budget_events` events.
    pub fn new(budget_events: usize) -> Self {
        let clock = RawClock::new();
        let epoch = Epoch::now(&clock);
        ProbeParts {
            measure_start: AtomicU64::new(epoch.raw),
            stop_at: AtomicU64::new(Probe::NOT_YET),
            budget: LogBudget::new(budget_events),
            clock,
            epoch,
        }
    }

    /// The probe over these parts.
    pub fn probe(&self) -> Probe<'_> {
        Probe {
            clock: &self.clock,
            epoch: self.epoch,
            measure_start: &self.measure_start,
            stop_at: &self.stop_at,
            budget: &self.budget,
        }
    }
}

/// A take whose figures are written at the next release, once the GIL is given up.
#[derive(Clone, Copy, Debug)]
struct PendingTake {
    asked: u64,
    got: u64,
    /// The take after a blocking call (the re-acquire delay).
    reacquire: bool,
    /// The stamp of the forced release this take follows: its switch wait ran until `asked`.
    forced_at: Option<u64>,
}

/// A forced release whose figures wait for the take that follows it.
#[derive(Clone, Copy, Debug)]
struct DeferredRelease {
    /// The take that began the hold given up.
    pending: Option<PendingTake>,
    held_since: u64,
    /// The release's stamp.
    at: u64,
    /// The design kept the GIL through the yield (nobody to yield to): no forced drop.
    kept: bool,
}

/// One interpreter thread's view of the GIL.
pub struct Interp<'a, G: Gil> {
    gil: &'a G,
    thread: G::Thread,
    clock: RawClock,
    /// The epoch of the stamps (the run's, with a probe).
    epoch: Epoch,
    probe: Option<Probe<'a>>,
    /// This thread's GIL events, for the figures derived after the run (with a probe only).
    log: HoldLog,
    pub metrics: ThreadMetrics,
    pub extras: Extras,
    held: bool,
    /// The raw stamp at which the current hold began.
    held_since: u64,
    pending: Option<PendingTake>,
    /// A drop request seen at this raw stamp, for the timeline of the release it causes.
    drop_request_at: Option<u64>,
    /// The stamp of a forced release whose re-take has not begun yet.
    forced_at: Option<u64>,
    /// A forced release whose figures are written once the re-take holds the GIL.
    deferred: Option<DeferredRelease>,
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
    /// The raw stamp where the measured window begins: holds and waits are cut there.
    window_from: u64,
    ctx_at_start: CtxSwitches,
    /// `spin = adaptive`: the run's gauge of threads on a core, told of every hold.
    spin_gauge: Option<std::sync::Arc<SpinGauge>>,
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
    /// Registers a new interpreter thread with `gil`.
    pub fn new(gil: &'a G) -> Self {
        let clock = RawClock::new();
        Interp {
            thread: gil.register(),
            gil,
            epoch: Epoch::now(&clock),
            held_since: clock.raw(),
            clock,
            probe: None,
            log: HoldLog::default(),
            metrics: ThreadMetrics::default(),
            extras: Extras::default(),
            held: false,
            pending: None,
            drop_request_at: None,
            forced_at: None,
            deferred: None,
            recording: true,
            beacon: None,
            progress: 0,
            stop: None,
            measuring: None,
            warm: true,
            measured_since: Instant::now(),
            window_from: 0,
            ctx_at_start: CtxSwitches::of_current_thread(),
            spin_gauge: None,
        }
    }

    /// Makes this thread's spins adaptive (`spin = adaptive`): it tells `gauge` when it holds
    /// the GIL, and its waits spin only while the gauge says the holder runs and a core is
    /// free. Call on the thread itself.
    pub fn set_spin_gauge(&mut self, gauge: std::sync::Arc<SpinGauge>) {
        crate::sync::install_spin_gauge(Some(gauge.clone()));
        self.spin_gauge = Some(gauge);
    }

    /// The GIL is held from now on (after a take returned).
    #[inline]
    fn holding(&mut self) {
        self.held = true;
        if let Some(g) = &self.spin_gauge {
            g.hold_begin();
        }
    }

    /// Stamps this thread's GIL events with the run's clock and epoch and logs them (for an
    /// exclusive design: holder switches, the exclusion check and idle-while-wanted are
    /// derived from the logs after the run, see [`crate::holdlog`]).
    pub fn set_probe(&mut self, probe: Probe<'a>) {
        self.clock = probe.clock.clone();
        self.epoch = probe.epoch;
        self.held_since = self.clock.raw();
        self.probe = G::EXCLUSIVE.then_some(probe);
    }

    /// This thread's GIL event log (empty without a probe, or not recording).
    pub fn take_log(&mut self) -> HoldLog {
        std::mem::take(&mut self.log)
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

    /// Starts (or restarts) the measured window: metrics, clock and context switches. Holds
    /// and waits under way are cut at the window's start (the runner's, with a probe).
    fn begin_measuring(&mut self) {
        self.metrics = ThreadMetrics::default();
        self.measured_since = Instant::now();
        self.window_from = match self.probe {
            Some(p) => match p.measure_start.load(Ordering::Acquire) {
                Probe::NOT_YET => self.clock.raw(),
                at => at,
            },
            None => self.clock.raw(),
        };
        self.ctx_at_start = CtxSwitches::of_current_thread();
        crate::sync::spun(true);
    }

    #[inline]
    fn check_warmup(&mut self) {
        if !self.warm {
            self.end_warmup();
        }
    }

    #[cold]
    fn end_warmup(&mut self) {
        if self.measuring.is_some_and(|m| m.load(Ordering::Acquire)) {
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

    /// Turns recording of histograms, counters and the event log on or off (on by default).
    /// Off, take and release read no clock and record nothing: the baseline for measuring
    /// what the instrumentation costs, and its figures are absent from the result.
    pub fn set_recording(&mut self, on: bool) {
        self.recording = on;
    }

    /// Whether this thread records its GIL figures.
    pub fn recording(&self) -> bool {
        self.recording
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

    /// Appends an event to this thread's log (with a probe; nothing shared is written but
    /// a fresh chunk's budget).
    #[inline]
    fn log(&mut self, raw: u64, ev: LogEv) {
        if let Some(p) = &self.probe {
            self.log.push(raw.saturating_sub(p.epoch.raw), ev, p.budget);
        }
    }

    /// Takes the GIL (blocking).
    pub fn take(&mut self) {
        self.take_as(false);
    }

    /// Takes the GIL; recording, only the two stamps and the thread's own log entries are
    /// written now: the figures wait for the release, after the GIL is given up.
    fn take_as(&mut self, reacquire: bool) {
        debug_assert!(!self.holds(), "take while holding the GIL");
        self.signal(Beacon::WANTS_GIL);
        if !self.recording {
            self.gil.take(&mut self.thread);
            self.holding();
            self.signal(Beacon::HOLDS_GIL);
            return;
        }
        let forced_at = self.forced_at.take();
        // A release that cannot wait has no switch wait to time: the re-take after a forced
        // one waits from the release's stamp (one clock read fewer per forced cycle).
        let asked = match forced_at {
            Some(at) if !G::RELEASE_WAITS => at,
            _ => self.clock.raw(),
        };
        self.gil.take(&mut self.thread);
        let got = self.clock.raw();
        self.holding();
        self.signal(Beacon::HOLDS_GIL);
        self.log(asked, LogEv::Want);
        self.log(got, LogEv::Hold);
        self.held_since = got;
        self.pending = Some(PendingTake {
            asked,
            got,
            reacquire,
            forced_at,
        });
        self.record_deferred();
    }

    /// Gives the GIL up.
    pub fn release(&mut self, why: Release) {
        if !self.held {
            debug_assert!(false, "release without holding the GIL");
            return;
        }
        self.held = false;
        self.check_warmup();
        if !self.recording {
            self.signal(Beacon::RELEASING);
            self.gil.release(&mut self.thread, why);
        } else {
            self.release_recorded(why);
        }
        // After the release: a waiter spinning for a hand-off sees it before the holder gone.
        if let Some(g) = &self.spin_gauge {
            g.hold_end();
        }
        self.signal(match why {
            Release::Blocking => Beacon::IN_CALL,
            Release::Forced => Beacon::WANTS_GIL,
            Release::Exit => Beacon::DONE,
        });
    }

    /// The recorded release: only the time stamp and the thread's own log entry come before
    /// the GIL is given up (a hand-off is a race that a few hundred nanoseconds can tip); the
    /// take's and the hold's figures are written once it is gone, and, after a forced release,
    /// once the re-take holds it again (neither moves the releaser's place in a race).
    fn release_recorded(&mut self, why: Release) {
        let at = self.clock.raw();
        self.log(at, LogEv::Release);
        self.signal(Beacon::RELEASING);
        self.gil.release(&mut self.thread, why);
        let (pending, held_since) = (self.pending.take(), self.held_since);
        match why {
            // A forced release is followed at once by a take: its figures wait until that
            // take holds the GIL, so that nothing delays the releaser's return to the race
            // for it (a hundred nanoseconds there tipped `tick`'s re-take races). The take's
            // first stamp ends the switch wait.
            Release::Forced => {
                self.forced_at = Some(at);
                self.deferred = Some(DeferredRelease {
                    pending,
                    held_since,
                    at,
                    // Asked now: the re-take may change what the design says.
                    kept: self.gil.kept(&self.thread),
                });
            }
            // A blocking release is followed by the thread's own call, not by a take.
            _ => {
                let back = (G::RELEASE_WAITS && why == Release::Blocking).then(|| self.clock.raw());
                self.record_take(pending);
                self.record_hold(held_since, at, why, back);
            }
        }
    }

    /// Writes the figures of a forced release, once the take after it holds the GIL.
    fn record_deferred(&mut self) {
        if let Some(d) = self.deferred.take() {
            self.record_take(d.pending);
            let why = if d.kept {
                Release::Exit // a kept yield counts as no drop of either kind
            } else {
                Release::Forced
            };
            self.record_hold(d.held_since, d.at, why, None);
        }
    }

    /// Writes the figures of the take that began the hold now given up: its wait (and
    /// re-acquire delay) and acquisition, if it fell in the measured window; a wait that
    /// began in the warm-up is cut at the window's start.
    fn record_take(&mut self, pending: Option<PendingTake>) {
        let Some(p) = pending else { return };
        self.trace_take(p);
        // The switch wait belongs to the forced release it followed, and counts with it.
        let timed = p
            .forced_at
            .filter(|&at| G::RELEASE_WAITS && self.in_window(at));
        if let Some(at) = timed {
            record(
                &mut self.metrics.switch_wait,
                self.clock.between(at, p.asked),
            );
        }
        if !self.in_window(p.got) {
            return;
        }
        let waited = self.clock.between(p.asked.max(self.window_from), p.got);
        let m = &mut self.metrics;
        record(&mut m.wait, waited);
        if p.reacquire {
            record(&mut m.reacquire, waited);
        }
        m.counters.acquisitions += 1;
        if self.extras.intervals.is_some() {
            let now = self.epoch.instant(&self.clock, p.got);
            if let Some(iv) = &mut self.extras.intervals {
                iv.record(now, INTERVAL_WAIT, waited);
            }
        }
    }

    /// Writes the figures of a hold from raw stamp `held_since` given up at `at` (the part
    /// in the measured window), the time the release itself took (until `back`) and the
    /// release's counter.
    fn record_hold(&mut self, held_since: u64, at: u64, why: Release, back: Option<u64>) {
        let (from, to) = (held_since.max(self.window_from), at.min(self.window_to()));
        let held = self.clock.between(from, to);
        let in_window = self.in_window(at);
        let m = &mut self.metrics;
        // A hold wholly outside the window (begun after the stop) is no figure, not a zero.
        if to > from {
            record(&mut m.hold, held);
        }
        m.cores.sample_now_and_then();
        if self.extras.intervals.is_some() || self.extras.trace.is_some() {
            self.extras_of_release(at, why, held);
        }
        if !in_window {
            return;
        }
        let m = &mut self.metrics;
        if let Some(back) = back {
            record(&mut m.switch_wait, self.clock.between(at, back));
        }
        match why {
            Release::Forced => m.counters.forced_drops += 1,
            Release::Blocking => m.counters.voluntary_drops += 1,
            Release::Exit => {}
        }
    }

    /// The interval histogram and timeline entries of a take, at release.
    fn trace_take(&mut self, p: PendingTake) {
        if self.extras.trace.is_none() {
            return;
        }
        let (asked, got) = (self.instant(p.asked), self.instant(p.got));
        if let Some(t) = &mut self.extras.trace {
            t.push(asked, Ev::WantBegin);
            t.push(got, Ev::WantEnd);
            t.push(got, Ev::HoldBegin);
        }
    }

    #[cold]
    fn extras_of_release(&mut self, at: u64, why: Release, held: Duration) {
        let (now, request) = (
            self.instant(at),
            self.drop_request_at.take().map(|r| self.instant(r)),
        );
        if let Some(iv) = &mut self.extras.intervals {
            iv.record(now, INTERVAL_HOLD, held);
        }
        if let Some(t) = &mut self.extras.trace {
            if let Some(r) = request {
                t.push(r, Ev::DropRequest);
            }
            t.push(now, Ev::HoldEnd);
            match why {
                Release::Blocking => t.push(now, Ev::ReleasedBegin),
                Release::Forced => t.push(now, Ev::ForcedSwitch),
                Release::Exit => {}
            }
        }
    }

    /// The raw stamp where the measured window ends: the run's stop, once there is one.
    #[inline]
    fn window_to(&self) -> u64 {
        self.probe
            .map_or(Probe::NOT_YET, |p| p.stop_at.load(Ordering::Relaxed))
    }

    /// Whether raw stamp `at` falls in the measured window.
    #[inline]
    fn in_window(&self, at: u64) -> bool {
        at >= self.window_from && at <= self.window_to()
    }

    /// The `Instant` of a raw stamp, on the run's timeline.
    fn instant(&self, raw: u64) -> Instant {
        self.epoch.instant(&self.clock, raw)
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
        if self.extras.trace.is_some() {
            self.drop_request_at = Some(self.clock.raw());
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
    /// With them, `spin_wait_us`: the time this thread spent in the shared spin (the `spin`
    /// key's, and mlfq's and decay's preempt waits, which use it) in its measured window, the
    /// CPU it burnt spinning. Call on the thread itself.
    pub fn gil_stats(&self) -> Vec<(&'static str, u64)> {
        let mut stats = self.gil.thread_stats(&self.thread);
        let spun = crate::sync::spun(false).as_micros();
        stats.push(("spin_wait_us", u64::try_from(spun).unwrap_or(u64::MAX)));
        stats
    }

    /// Closes the recorders at the thread's end: the timeline, and the interval histograms
    /// with the last (partial) interval cut now.
    pub fn finish_extras(&mut self, name: String) -> Recorded {
        let now = self.instant(self.clock.raw());
        self.extras.finish(name, now)
    }
}

impl<G: Gil> Drop for Interp<'_, G> {
    fn drop(&mut self) {
        if self.holds() {
            self.release(Release::Exit);
        }
        if self.spin_gauge.is_some() {
            crate::sync::install_spin_gauge(None);
        }
    }
}

/// The GIL is released while this guard lives; dropping it takes the GIL back.
pub struct Released<'i, 'a, G: Gil> {
    interp: &'i mut Interp<'a, G>,
}

impl<G: Gil> Drop for Released<'_, '_, G> {
    fn drop(&mut self) {
        let i = &mut *self.interp;
        if i.extras.trace.is_some() {
            let now = i.instant(i.clock.raw());
            if let Some(t) = &mut i.extras.trace {
                t.push(now, Ev::ReleasedEnd);
            }
        }
        i.take_as(true);
    }
}
