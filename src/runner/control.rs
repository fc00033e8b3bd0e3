//! Coordination of a run's threads: the start gate, the shared flags, the panic flag, the
//! monitor loop and the watchdog.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::Instrument;
use crate::interp::Beacon;
use crate::scenario::{IoWork, Scenario};
use crate::signals;

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

/// Sets `failed` if its thread unwinds, so the runner stops the run at once.
pub(super) struct PanicFlag<'a>(pub(super) &'a AtomicBool);

impl Drop for PanicFlag<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

pub(super) struct Shared {
    pub(super) stop: AtomicBool,
    pub(super) failed: AtomicBool,
    /// Server threads whose work is over (a bulk transfer completed).
    pub(super) io_done: AtomicUsize,
    /// The load generator has finished (its servers may stop now).
    pub(super) load_done: AtomicBool,
    /// The start of the run, set just before the threads are let loose.
    pub(super) epoch: std::sync::OnceLock<Instant>,
    pub(super) inst: Instrument,
    /// One per interpreter thread, for the watchdog.
    pub(super) beacons: Vec<crossbeam_utils::CachePadded<Beacon>>,
    pub(super) names: Vec<String>,
    pub(super) last_holder: AtomicUsize,
    pub(super) gate: StartGate,
}

/// The watchdog: if no interpreter thread makes progress for `limit` while none is in a
/// blocking call, the run is hung on the GIL; it says who holds it and who waits, and ends
/// the process (exit status 1) instead of hanging.
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

    fn check(&mut self, shared: &Shared) {
        let Some(limit) = self.limit else { return };
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
            return;
        }
        if now - self.since < limit {
            return;
        }
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
            Some(h) => format!("{h} holds the GIL and has made no progress"),
            None => "no thread holds the GIL".to_owned(),
        };
        eprintln!(
            "gilbench: watchdog: no interpreter thread made progress for {:.1}s: {who}; {}; the run was stopped",
            limit.as_secs_f64(),
            if others.is_empty() { "no other threads".to_owned() } else { others.join(", ") }
        );
        std::process::exit(1);
    }
}

/// Waits out the run: until `run_for` has passed (or the load generator has finished, or a
/// bulk transfer is done), a thread failed, or a signal came; watches for hangs meanwhile.
/// Returns the signal, if one ended the run.
pub(super) fn monitor(
    shared: &Shared,
    sc: &Scenario,
    with_load: bool,
    run_for: Duration,
    start: Instant,
) -> Option<i32> {
    let mut interrupted = None;
    let mut watch = Watch::new(sc.watchdog_limit());
    while !shared.failed.load(Ordering::SeqCst) {
        watch.check(shared);
        if let Some(sig) = signals::caught() {
            interrupted = Some(sig);
            break;
        }
        if sc.io == IoWork::Bulk && shared.io_done.load(Ordering::SeqCst) > 0 {
            break;
        }
        // With a load generator here, the servers keep serving until it has finished
        // its window, so that it never sees them go away; the grace bounds a stuck client.
        if with_load && shared.load_done.load(Ordering::SeqCst) {
            break;
        }
        let limit = if with_load && sc.io == IoWork::Echo {
            run_for + sc.timeout + Duration::from_secs(2)
        } else {
            run_for
        };
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        thread::sleep(left.min(Duration::from_millis(10)));
    }
    interrupted
}
