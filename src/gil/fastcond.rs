//! `fastcond`: the fair-yield GIL of kristjanvalur/fastcond (`fastcond/gil.c`), by the author
//! of bpo-8299: a mutex, one condition variable whose wake-ups cannot be stolen by newcomers,
//! and the state `held`, `last_owner`, `waiting`.
//!
//! * take (greedy, fastcond's default): wait while `held`; then `held = 1`,
//!   `last_owner = me`. A thread that arrives while the GIL is free takes it, even if others
//!   wait.
//! * release: `held = 0`; signal if someone waits.
//! * yield (fair): in one critical section release, then wait while `held` or (others wait and
//!   I was the last owner). So the yielder gets back in only after a waiter has had the GIL,
//!   or when nobody else wants it.
//! * fastcond has no timer (the caller decides when to yield); gilbench's holder yields once it
//!   has held the GIL for `interval` (default 5 ms) while someone waits, reading the clock every
//!   16th check of a contended hold (no clock read while nobody waits).
//!
//! fastcond builds its condition variable from semaphores with counters so that a thread that
//! starts waiting after a signal cannot consume it: the wake-up goes to a thread that was
//! already waiting. std's condition variable on Linux has that property too (a futex with a
//! sequence number: a waiter that reads the sequence after a signal sleeps through it), and so
//! does loom's model of it. Without it a yielder, which signals and then waits, could swallow
//! its own signal and leave the waiter asleep.
//!
//! Split over gilbench's release and take, the yield is `release(Forced)` (free, signal) then
//! `take` (the fair wait). Its condition is read from the shared state under the mutex, so it
//! holds across the gap: until the signalled waiter has taken the GIL, it still counts in
//! `waiting` and the yielder is still `last_owner`.
//!
//! No waiter busy-waits unless the user sets `spin` (as for every design with waiters): then a
//! greedy take polls for a free GIL that long before it waits; the fair wait of a yield never
//! spins (it waits for another thread to run first).
//!
//! # Fairness
//! Fair at yields, greedy at takes. A CPU-bound holder hands the GIL to a waiter every
//! `interval` and cannot take it straight back; but a thread coming back from a blocking call
//! takes a free GIL ahead of waiters that have not run yet, and which waiter a signal wakes is
//! up to the OS (the longest-waiting on Linux futexes).

use std::time::{Duration, Instant};

use super::{Gil, GilParams, Release};
use crate::sync::{lock, spin_until, wait, AtomicBool, AtomicUsize, Condvar, Mutex, Ordering};

/// A contended holder reads the clock at every this many checks.
const CLOCK_EVERY: u32 = if cfg!(loom) { 1 } else { 16 };

struct State {
    held: bool,
    last_owner: usize,
    waiting: usize,
}

/// The fair-yield GIL.
pub struct FastcondGil {
    m: Mutex<State>,
    cond: Condvar,
    /// `waiting`, readable at the holder's check without the mutex.
    waiting_hint: AtomicUsize,
    /// `held`, for a spinning waiter.
    held_hint: AtomicBool,
    next_id: AtomicUsize,
    interval: Duration,
    spin: Duration,
}

/// A registered thread.
pub struct FastcondThread {
    id: usize,
    /// When this thread's current hold is due to yield.
    due: Instant,
    checks: u32,
    /// Between the two halves of a yield.
    yielding: bool,
    yields: u64,
}

impl FastcondGil {
    /// How many threads wait (for tests).
    pub fn waiting(&self) -> usize {
        self.waiting_hint.load(Ordering::Relaxed)
    }

    fn set_held(&self, st: &mut State, held: bool) {
        st.held = held;
        self.held_hint.store(held, Ordering::Relaxed);
    }

    fn wait_once<'a>(
        &'a self,
        mut st: crate::sync::MutexGuard<'a, State>,
    ) -> crate::sync::MutexGuard<'a, State> {
        st.waiting += 1;
        self.waiting_hint.store(st.waiting, Ordering::Relaxed);
        st = wait(&self.cond, st);
        st.waiting -= 1;
        self.waiting_hint.store(st.waiting, Ordering::Relaxed);
        st
    }

    fn free(&self, st: &mut State) {
        self.set_held(st, false);
        if st.waiting > 0 {
            self.cond.notify_one();
        }
    }
}

impl Gil for FastcondGil {
    type Thread = FastcondThread;
    const NAME: &'static str = "fastcond";
    const MODELS: &'static str = "a fair-yield GIL over a condvar whose wake-ups newcomers cannot steal: greedy take, fair yield (the yielder waits until a waiter has run), yield every interval (5ms)";
    const SOURCE: &'static str = "kristjanvalur/fastcond fastcond/gil.c (cf. bpo-8299)";
    const YEAR: &'static str = "2025";
    const SLICE_KEYS: &'static [&'static str] = &["interval"];

    fn new(p: &GilParams) -> Self {
        FastcondGil {
            m: Mutex::new(State {
                held: false,
                last_owner: 0,
                waiting: 0,
            }),
            cond: Condvar::new(),
            waiting_hint: AtomicUsize::new(0),
            held_hint: AtomicBool::new(false),
            next_id: AtomicUsize::new(1),
            interval: p.interval,
            spin: p.spin,
        }
    }

    fn register(&self) -> FastcondThread {
        FastcondThread {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            due: Instant::now(),
            checks: 0,
            yielding: false,
            yields: 0,
        }
    }

    fn take(&self, t: &mut FastcondThread) {
        let mut st = lock(&self.m);
        if std::mem::take(&mut t.yielding) {
            // The fair wait: not while I was the last owner and others wait.
            while st.held || (st.waiting > 0 && st.last_owner == t.id) {
                st = self.wait_once(st);
            }
        } else if st.held {
            if !self.spin.is_zero() {
                drop(st);
                spin_until(self.spin, || !self.held_hint.load(Ordering::Relaxed));
                st = lock(&self.m);
            }
            while st.held {
                st = self.wait_once(st);
            }
        }
        self.set_held(&mut st, true);
        st.last_owner = t.id;
        drop(st);
        t.due = Instant::now() + self.interval;
        t.checks = 0;
    }

    fn release(&self, t: &mut FastcondThread, why: Release) {
        let mut st = lock(&self.m);
        self.free(&mut st);
        if why == Release::Forced {
            t.yielding = true;
            t.yields += 1;
        }
    }

    /// Yield once the hold has lasted `interval` and someone waits.
    #[inline(always)]
    fn check(&self, t: &mut FastcondThread) -> bool {
        if self.waiting_hint.load(Ordering::Relaxed) == 0 {
            return false;
        }
        t.checks = t.checks.wrapping_add(1);
        t.checks.is_multiple_of(CLOCK_EVERY) && Instant::now() >= t.due
    }

    fn thread_stats(&self, t: &FastcondThread) -> Vec<(&'static str, u64)> {
        vec![("yields", t.yields)]
    }
}
