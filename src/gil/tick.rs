//! `tick`: the Python 2.x GIL.
//!
//! The GIL is an unfair binary semaphore (CPython 2.7 on Linux: a POSIX `sem_t`). A global
//! ticker counts down one per tick; when it runs out (every `check_interval` ticks, default
//! 100) the holder releases the semaphore and at once takes it again, giving other threads
//! "a chance" that depends on the OS alone.
//!
//! # Fairness
//! None. There is no queue and no hand-off: `sem_post` only increments the count and wakes a
//! sleeper, and whichever thread decrements it first wins. On one core the woken waiter often
//! gets in, because the releaser is preempted; on several cores the releaser, still running,
//! almost always re-takes the semaphore before the waiter has even woken up, so I/O threads
//! starve behind a CPU-bound thread. This design must not be built on a lock with hidden
//! fairness (parking_lot's mutex hands off after ~0.5 ms of waiting), which would hide this.
//! No waiter busy-waits unless the user sets `spin`, which then retries `sem_trywait` for that
//! long before blocking, as every design with waiters spins for `spin`.

use std::time::Duration;

use super::{Gil, GilParams, Release};
use crate::sync::{spin_until, AtomicUsize, Ordering, Semaphore};

/// The Python 2.x GIL.
pub struct TickGil {
    sem: Semaphore,
    /// CPython 2's `_Py_Ticker`: global, touched only by the holder, so a relaxed load and a
    /// relaxed store (no read-modify-write) suffice.
    ticker: AtomicUsize,
    check_interval: usize,
    /// The `spin` key: how long a waiter retries `sem_trywait` before it blocks (0 by default,
    /// as in CPython 2).
    spin: Duration,
}

impl Gil for TickGil {
    type Thread = ();
    const NAME: &'static str = "tick";
    /// `sem_post` never waits (nor, in CPython 2.7, did the release around it).
    const RELEASE_WAITS: bool = false;
    const MODELS: &'static str = "CPython 2.x: every check_interval ticks the holder releases and re-takes an unfair POSIX semaphore (no hand-off)";
    const SOURCE: &'static str = "CPython 2.7 Python/ceval.c, Python/thread_pthread.h";
    const YEAR: &'static str = "2010";

    fn new(p: &GilParams) -> Self {
        let check_interval = p.check_interval.max(1) as usize;
        TickGil {
            sem: Semaphore::new(1),
            ticker: AtomicUsize::new(check_interval),
            check_interval,
            spin: p.spin,
        }
    }

    fn register(&self) {}

    #[inline]
    fn take(&self, _t: &mut ()) {
        if self.spin.is_zero() || !spin_until(self.spin, || self.sem.try_wait()) {
            self.sem.wait();
        }
    }

    #[inline]
    fn release(&self, _t: &mut (), _why: Release) {
        self.sem.post();
    }

    /// `if (--_Py_Ticker < 0) { _Py_Ticker = _Py_CheckInterval; release; acquire; }`
    #[inline(always)]
    fn check(&self, _t: &mut ()) -> bool {
        let n = self.ticker.load(Ordering::Relaxed);
        if n > 1 {
            self.ticker.store(n - 1, Ordering::Relaxed);
            false
        } else {
            self.ticker.store(self.check_interval, Ordering::Relaxed);
            true
        }
    }
}
