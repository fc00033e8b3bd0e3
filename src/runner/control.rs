//! Coordination of a run's threads: the start gate, the shared flags, the monitor loop and
//! the watchdog.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::Instrument;
use crate::clock::{Epoch, RawClock};
use crate::holdlog::{LogBudget, DEFAULT_BUDGET_EVENTS};
use crate::interp::{Beacon, Probe};
use crate::scenario::{IoWork, Scenario};
use crate::signals;
pub(super) use crate::stall::{stalled_within, stopped_between, Naps, Stall};

/// Holds threads until every one is ready, then releases them together (or aborts them).
pub(super) struct StartGate {
    state: Mutex<(usize, Option<bool>)>,
    cv: Condvar,
}

impl StartGate {
    pub(super) fn new() -> Self {
        StartGate {
            state: Mutex::new((0, None)),
            cv: Condvar::new(),
        }
    }
    /// Reports ready and waits for the start; false if the run was aborted.
    pub(super) fn ready_and_wait(&self) -> bool {
        let mut s = self.state.lock();
        s.0 += 1;
        self.cv.notify_all();
        while s.1.is_none() {
            self.cv.wait(&mut s);
        }
        s.1 == Some(true)
    }
    pub(super) fn wait_ready(&self, n: usize) {
        let mut s = self.state.lock();
        while s.0 < n {
            self.cv.wait(&mut s);
        }
    }
    pub(super) fn open(&self, go: bool) {
        self.state.lock().1 = Some(go);
        self.cv.notify_all();
    }
}

pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    pub(super) failed: AtomicBool,
    /// Server threads whose work is over (a bulk transfer completed).
    pub(super) io_done: AtomicUsize,
    /// The load generator has finished (its servers may stop now).
    pub(super) load_done: AtomicBool,
    /// The load generator's measured window is over: so is the run's (it only closes its
    /// connections now, and the servers' stopping does it no harm).
    pub(super) load_window_over: std::sync::Arc<AtomicBool>,
    /// The start of the run, set just before the threads are let loose.
    pub(super) epoch: std::sync::OnceLock<Instant>,
    /// Set when the warm-up is over: from then on the threads keep what they measure.
    pub(super) measuring: AtomicBool,
    /// The instrument's clock; every interpreter thread stamps its GIL events with it.
    pub(super) clock: RawClock,
    /// The start of the run on both clocks, set just before the threads are let loose.
    pub(super) raw_epoch: std::sync::OnceLock<Epoch>,
    /// The raw reading at which `measuring` was set ([`Probe::NOT_YET`] before).
    pub(super) measure_start: AtomicU64,
    /// The raw reading at which the run was stopped ([`Probe::NOT_YET`] before).
    pub(super) stop_at: AtomicU64,
    /// What the threads' GIL event logs may hold in all.
    pub(super) log_budget: LogBudget,
    /// `spin = adaptive`: the run's gauge of interpreter threads on a core.
    pub(super) spin_gauge: Option<std::sync::Arc<crate::gil::SpinGauge>>,
    pub(super) inst: Instrument,
    /// The run records its GIL events (`record`): without, the GIL threads keep no timeline
    /// and no interval histograms of GIL wait and hold either (they would hold nothing).
    pub(super) record: bool,
    /// One per interpreter thread, for the watchdog.
    pub(super) beacons: Vec<crossbeam_utils::CachePadded<Beacon>>,
    pub(super) names: Vec<String>,
    pub(super) gate: StartGate,
    /// Timeline events each interpreter thread keeps: an equal share of `--trace-events`
    /// for every role thread and every connection thread expected.
    trace_share: usize,
    /// What is left of `--trace-events` for connection threads, which start during the run.
    trace_pool: AtomicUsize,
    /// Interpreter threads the run expects: one per name and its connection threads.
    threads: usize,
}

impl Shared {
    /// `conn_threads`: how many connection threads the run expects (the threaded server's
    /// connections), besides one thread per name.
    pub(super) fn new(
        inst: Instrument,
        names: Vec<String>,
        conn_threads: usize,
        measuring: bool,
    ) -> Self {
        let threads = (names.len() + conn_threads).max(1);
        let trace_share = inst.trace_events.map_or(0, |total| total / threads);
        Shared {
            trace_share,
            trace_pool: AtomicUsize::new(trace_share * conn_threads),
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            io_done: AtomicUsize::new(0),
            load_done: AtomicBool::new(false),
            load_window_over: Default::default(),
            epoch: std::sync::OnceLock::new(),
            measuring: AtomicBool::new(measuring),
            clock: RawClock::new(),
            raw_epoch: std::sync::OnceLock::new(),
            measure_start: AtomicU64::new(Probe::NOT_YET),
            stop_at: AtomicU64::new(Probe::NOT_YET),
            log_budget: LogBudget::new(DEFAULT_BUDGET_EVENTS),
            spin_gauge: None,
            inst,
            record: true,
            beacons: (0..names.len()).map(|_| Default::default()).collect(),
            names,
            gate: StartGate::new(),
            threads,
        }
    }
}

impl Shared {
    /// Ends the warm-up: the window starts now (the stamp first, so that a thread that sees
    /// `measuring` finds it).
    pub(super) fn start_measuring(&self) {
        self.measure_start
            .store(self.clock.raw(), Ordering::Release);
        self.measuring.store(true, Ordering::SeqCst);
    }

    /// Event-log chunks to keep ready ahead of the recording threads: one per thread that
    /// may log (each starts a chunk at its first take, and the fastest every few hundred
    /// milliseconds).
    pub(super) fn ready_chunks(&self) -> usize {
        self.threads
    }

    /// Stops the run: the window ends now (the stamp first, so that a thread that sees the
    /// stop flag finds it). Returns the stamp.
    pub(super) fn stop_now(&self) -> u64 {
        let at = self.clock.raw();
        self.stop_at.store(at, Ordering::Release);
        self.stop.store(true, Ordering::SeqCst);
        at
    }

    /// The raw reading at which the measured window began, if it did.
    pub(super) fn measure_start_raw(&self) -> Option<u64> {
        match self.measure_start.load(Ordering::Acquire) {
            Probe::NOT_YET => None,
            at => Some(at),
        }
    }

    /// What the interpreter threads stamp their GIL events with (once the epoch is set).
    pub(super) fn probe(&self) -> Option<Probe<'_>> {
        self.raw_epoch.get().map(|&epoch| Probe {
            clock: &self.clock,
            epoch,
            measure_start: &self.measure_start,
            stop_at: &self.stop_at,
            budget: &self.log_budget,
        })
    }

    /// Timeline events a role thread keeps.
    pub(super) fn role_trace_events(&self) -> usize {
        self.trace_share
    }

    /// Timeline events a connection thread keeps, taken from what is left for them: a share
    /// while the expected connections last, none past them (the timeline then keeps only its
    /// floor of a few events for the thread), so that the run stays within `--trace-events`
    /// but for those floors.
    pub(super) fn conn_trace_events(&self) -> usize {
        let share = self.trace_share;
        let take = |left: usize| Some(left - left.min(share));
        match self
            .trace_pool
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, take)
        {
            Ok(left) | Err(left) => left.min(share),
        }
    }
}

/// The time line of a run: warm-up, measured window, and the hard deadline past which no
/// run may go, whatever its threads do.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Not measured (zero for a bulk transfer, which is measured whole).
    pub warmup: Duration,
    /// Warm-up plus the measured window.
    pub run_for: Duration,
    /// Time after `run_for` to drain, stop and join: 2 s or 10 x interval, the larger.
    pub grace: Duration,
}

impl Timing {
    pub fn of(sc: &Scenario, _mode: super::Mode) -> Self {
        let warmup = if sc.io == IoWork::Bulk {
            Duration::ZERO
        } else {
            sc.warmup
        };
        Timing {
            warmup,
            run_for: warmup + sc.duration,
            grace: (sc.gil.interval * 10).max(Duration::from_secs(2)),
        }
    }

    /// From the start, the latest moment the run may end.
    pub fn deadline(&self) -> Duration {
        self.run_for + self.grace
    }
}

/// Why the monitor let the run go.
pub(super) enum End {
    /// Its time was up, or its work (a bulk transfer, the load generator) was done.
    Done,
    /// A signal asked the process to stop.
    Signal(i32),
    /// The watchdog found no thread progressing: the diagnosis.
    Hung(String),
    /// A thread panicked.
    Failed,
}

impl End {
    /// The signal that stopped the run, if one did.
    pub(super) fn signal(&self) -> Option<i32> {
        match self {
            End::Signal(sig) => Some(*sig),
            _ => None,
        }
    }
}

/// The watchdog: if no interpreter thread makes progress for `limit` while none is in a
/// blocking call, the run is hung on the GIL; it says who holds it and who waits.
struct Watch {
    limit: Option<Duration>,
    last: u64,
    since: Instant,
}

impl Watch {
    fn new(limit: Option<Duration>) -> Self {
        Watch {
            limit,
            last: u64::MAX,
            since: Instant::now(),
        }
    }

    /// Starts watching afresh: after a stall of the whole process, no thread could have
    /// progressed, and that is no verdict on the GIL.
    fn restart(&mut self) {
        self.last = u64::MAX;
        self.since = Instant::now();
    }

    /// The diagnosis, once the run has been stuck for `limit`.
    fn check(&mut self, shared: &Shared) -> Option<String> {
        let limit = self.limit?;
        let progress: u64 = shared
            .beacons
            .iter()
            .map(|b| b.progress.load(Ordering::Relaxed))
            .sum();
        let states: Vec<u8> = shared
            .beacons
            .iter()
            .map(|b| b.state.load(Ordering::Relaxed))
            .collect();
        let now = Instant::now();
        if progress != self.last
            || states.contains(&Beacon::IN_CALL)
            || states.iter().all(|&s| s == Beacon::DONE)
        {
            self.last = progress;
            self.since = now;
            return None;
        }
        if now - self.since < limit {
            return None;
        }
        Some(format!(
            "watchdog: no interpreter thread made progress for {:.1}s: {}",
            limit.as_secs_f64(),
            who_holds(shared)
        ))
    }
}

/// Who holds the GIL and where every other interpreter thread is, from their beacons.
pub(super) fn who_holds(shared: &Shared) -> String {
    let states: Vec<u8> = shared
        .beacons
        .iter()
        .map(|b| b.state.load(Ordering::Relaxed))
        .collect();
    let holder = states
        .iter()
        .position(|&s| s == Beacon::HOLDS_GIL)
        .map(|i| shared.names[i].clone());
    let others: Vec<String> = states
        .iter()
        .enumerate()
        .filter(|(_, &s)| s != Beacon::HOLDS_GIL)
        .map(|(i, &s)| format!("{} is {}", shared.names[i], Beacon::describe(s)))
        .collect();
    let who = match holder {
        Some(h) => format!("{h} holds the GIL"),
        None => "no thread holds the GIL".to_owned(),
    };
    if others.is_empty() {
        format!("{who}; no other threads")
    } else {
        format!("{who}; {}", others.join(", "))
    }
}

/// Waits out the run: until `run_for` has passed (or the load generator has finished, or a
/// bulk transfer is done), a thread failed, a signal came, or the watchdog found the run hung.
/// Ends the warm-up on time meanwhile.
pub(super) fn monitor(
    shared: &Shared,
    sc: &Scenario,
    with_load: bool,
    timing: &Timing,
    start: Instant,
    naps: &mut Naps,
) -> End {
    let mut watch = Watch::new(sc.watchdog_limit());
    // With a load generator here, the servers keep serving until it has finished its
    // window, so that it never sees them go away; half the grace bounds a stuck client.
    let limit = if with_load && sc.io == IoWork::Echo {
        timing.run_for + timing.grace / 2
    } else {
        timing.run_for
    };
    loop {
        if shared.failed.load(Ordering::SeqCst) {
            return End::Failed;
        }
        if let Some(diagnosis) = watch.check(shared) {
            return End::Hung(diagnosis);
        }
        if let Some(sig) = signals::caught() {
            return End::Signal(sig);
        }
        let elapsed = start.elapsed();
        if !shared.measuring.load(Ordering::Relaxed) && elapsed >= timing.warmup {
            shared.start_measuring();
        }
        if sc.io == IoWork::Bulk && shared.io_done.load(Ordering::SeqCst) > 0 {
            return End::Done;
        }
        if with_load
            && (shared.load_done.load(Ordering::SeqCst)
                || shared.load_window_over.load(Ordering::SeqCst))
        {
            return End::Done;
        }
        let left = limit.saturating_sub(elapsed);
        if left.is_zero() {
            return End::Done;
        }
        let to_warm = timing.warmup.saturating_sub(elapsed);
        let nap = if to_warm.is_zero() {
            left
        } else {
            left.min(to_warm)
        };
        if sc.record {
            shared.log_budget.top_up(shared.ready_chunks());
        }
        if naps.nap(nap.min(Duration::from_millis(10))).is_some() {
            watch.restart();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_threads_take_equal_shares_of_the_timeline_and_never_more_than_it() {
        let inst = Instrument {
            trace_events: Some(1000),
            hlog_interval: None,
        };
        let names = || vec!["echo-0".to_owned(), "cpu-0".to_owned()];
        let s = Shared::new(inst, names(), 4, true);
        assert_eq!(s.role_trace_events(), 1000 / 6);
        let conns: Vec<usize> = (0..6).map(|_| s.conn_trace_events()).collect();
        assert_eq!(conns, [166, 166, 166, 166, 0, 0]);
        // Without connection threads, the role threads share it all, as before.
        let s = Shared::new(inst, names(), 0, true);
        assert_eq!(s.role_trace_events(), 500);
        assert_eq!(s.conn_trace_events(), 0);
    }
}
