//! `timed`: the Python 3.2+ GIL, after CPython's `Python/ceval_gil.c`.
//!
//! State as in CPython: `locked`, `switch_number` and `last_holder` under `mutex` with the
//! condvar `cond`; a separate `switch_mutex` with `switch_cond` for forced switching; the
//! global `gil_drop_request` flag that feeds the eval-breaker; and the switch `interval`.
//!
//! * take: while the GIL is locked, do a timed wait of `interval` on `cond`; if it timed out,
//!   the GIL is still locked and no switch happened meanwhile, set `gil_drop_request`. Any
//!   wake-up restarts the full interval.
//! * drop: unlock, signal `cond`; with forced switching, if a drop request was pending, wait
//!   on `switch_cond` until another thread has taken the GIL.
//! * check: a relaxed load of `gil_drop_request`; if set, drop and take again.
//!
//! No waiter busy-waits unless the user sets `spin` (as for every design with waiters): then a
//! waiter polls for a free GIL that long before its first timed wait, which is shortened by the
//! time spun.
//!
//! The mutexes and condition variables are CPython's own kind, POSIX threads' (glibc's on
//! Linux): the mutexes never hand over to a waiter, so the races between a woken waiter and a
//! returning holder play out as in CPython, and which waiter a signal wakes, and when a timed
//! wait ends, is up to glibc's condvar as there.
//!
//! # Fairness
//! Bounded but not FIFO. A thread that asks for the GIL gets it within about one `interval`
//! of a CPU-bound holder (the drop request), and with forced switching the dropper cannot
//! re-take it first. But which waiter wins among several is up to the OS, and an I/O thread
//! that releases the GIL around every blocking call pays up to one `interval` to get it back
//! each time a CPU-bound thread is running: the convoy effect.

use std::time::Duration;

use super::{Gil, GilParams, Release};
// CPython's GIL is a pthread mutex and condition variables; the model uses the same (glibc's
// condvar wakes and times out differently from std's futex one). Under loom, the shim's.
#[cfg(not(loom))]
use crate::sync::pthread::{lock, wait, wait_timeout, Condvar, Mutex, MutexGuard};
#[cfg(loom)]
use crate::sync::{lock, wait, wait_timeout, Condvar, Mutex, MutexGuard};
use crate::sync::{spin_until, AtomicBool, AtomicUsize, Ordering};

struct State {
    locked: bool,
    switch_number: u64,
    /// Threads waiting on `cond`. Signalling only when there are any is what pthread's
    /// `cond_signal` does inside; std's condvar would make a futex call even for no one.
    waiters: usize,
}

/// The Python 3.2+ GIL.
pub struct TimedGil {
    mutex: Mutex<State>,
    cond: Condvar,
    /// Read without `mutex` by a forced dropper (under `switch_mutex`), as in CPython.
    last_holder: AtomicUsize,
    /// Guards the forced-switch hand-shake; counts the droppers waiting on `switch_cond`.
    /// A count, not a flag: with three or more threads, a dropper that leaves must not hide
    /// another that still waits (CPython signals `switch_cond` unconditionally).
    switch_mutex: Mutex<usize>,
    switch_cond: Condvar,
    drop_request: AtomicBool,
    /// A copy of `State::locked` that a spinning waiter polls without the mutex.
    locked_hint: AtomicBool,
    next_id: AtomicUsize,
    interval: Duration,
    force_switching: bool,
    /// The `spin` key (0 by default, as in CPython): how long a waiter polls for a free GIL
    /// before its timed wait.
    spin: Duration,
}

/// A registered thread: its identity for `last_holder`.
pub struct TimedThread {
    id: usize,
}

const NOBODY: usize = 0;

impl TimedGil {
    /// Whether a drop request is pending (for tests and diagnostics).
    pub fn drop_requested(&self) -> bool {
        self.drop_request.load(Ordering::Relaxed)
    }

    /// Whether `t` was the last thread to take the GIL (for tests and models).
    pub fn last_holder_is(&self, t: &TimedThread) -> bool {
        self.last_holder.load(Ordering::Relaxed) == t.id
    }

    /// Sets `gil_drop_request` as a timed-out waiter would (for tests and models).
    pub fn request_drop(&self) {
        self.drop_request.store(true, Ordering::Relaxed);
    }

    /// Waits while the GIL is locked: first spins for `spin` (when set), then timed waits of
    /// `interval`. The first timed wait is shortened by the time spun, so that the drop
    /// request still falls due one interval after the thread asked.
    #[cold]
    fn wait_while_locked<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
    ) -> MutexGuard<'a, State> {
        let mut first = self.interval;
        if !self.spin.is_zero() {
            drop(st);
            let t0 = std::time::Instant::now();
            spin_until(self.spin, || !self.locked_hint.load(Ordering::Relaxed));
            first = self
                .interval
                .saturating_sub(t0.elapsed())
                .max(Duration::from_micros(1));
            st = lock(&self.mutex);
            if !st.locked {
                return st;
            }
        }
        st.waiters += 1;
        while st.locked {
            let saved = st.switch_number;
            let wait_for = std::mem::replace(&mut first, self.interval);
            let (g, timed_out) = wait_timeout(&self.cond, st, wait_for);
            st = g;
            if timed_out && st.locked && st.switch_number == saved {
                self.drop_request.store(true, Ordering::Relaxed);
            }
        }
        st.waiters -= 1;
        st
    }
}

impl Gil for TimedGil {
    type Thread = TimedThread;
    const NAME: &'static str = "timed";
    const MODELS: &'static str = "CPython 3.2+: waiters time out after interval and set gil_drop_request; forced switching";
    const SOURCE: &'static str = "CPython Python/ceval_gil.c (new GIL of 3.2)";
    const YEAR: &'static str = "2011";
    const SLICE_KEYS: &'static [&'static str] = &["interval"];

    fn new(p: &GilParams) -> Self {
        TimedGil {
            mutex: Mutex::new(State {
                locked: false,
                switch_number: 0,
                waiters: 0,
            }),
            cond: Condvar::new(),
            last_holder: AtomicUsize::new(NOBODY),
            switch_mutex: Mutex::new(0),
            switch_cond: Condvar::new(),
            drop_request: AtomicBool::new(false),
            locked_hint: AtomicBool::new(false),
            next_id: AtomicUsize::new(1),
            interval: p.interval.max(Duration::from_micros(1)),
            force_switching: p.force_switching,
            spin: p.spin,
        }
    }

    fn preemption_period(p: &GilParams) -> Option<(Duration, &'static str)> {
        Some((p.interval, "interval"))
    }

    fn register(&self) -> TimedThread {
        TimedThread {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn take(&self, t: &mut TimedThread) {
        let mut st = lock(&self.mutex);
        if st.locked {
            st = self.wait_while_locked(st);
        }
        // _ready:
        let sw = lock(&self.switch_mutex);
        st.locked = true;
        self.locked_hint.store(true, Ordering::Relaxed);
        if self.last_holder.load(Ordering::Relaxed) != t.id {
            self.last_holder.store(t.id, Ordering::Relaxed);
            st.switch_number += 1;
        }
        if *sw > 0 {
            // Every waiting dropper's condition (`last_holder` moved) holds now: wake all.
            self.switch_cond.notify_all();
        }
        drop(sw);
        if self.drop_request.load(Ordering::Relaxed) {
            self.drop_request.store(false, Ordering::Relaxed);
        }
        drop(st);
    }

    fn release(&self, t: &mut TimedThread, why: Release) {
        {
            let mut st = lock(&self.mutex);
            st.locked = false;
            self.locked_hint.store(false, Ordering::Relaxed);
            if st.waiters > 0 {
                self.cond.notify_one();
            }
        }
        if self.force_switching && why != Release::Exit && self.drop_request.load(Ordering::Relaxed)
        {
            let mut sw = lock(&self.switch_mutex);
            if self.last_holder.load(Ordering::Relaxed) == t.id {
                self.drop_request.store(false, Ordering::Relaxed);
                // Not switched yet: block until another thread really holds the GIL.
                *sw += 1;
                while self.last_holder.load(Ordering::Relaxed) == t.id {
                    sw = wait(&self.switch_cond, sw);
                }
                *sw -= 1;
            }
        }
    }

    #[inline(always)]
    fn check(&self, _t: &mut TimedThread) -> bool {
        self.drop_request.load(Ordering::Relaxed)
    }
}
