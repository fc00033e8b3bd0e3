//! `ocaml`: OCaml 4.14's master lock (systhreads, `otherlibs/systhreads/st_posix.h` and
//! `st_stubs.c`), with the fair yield of GPR #2112 (OCaml 4.09).
//!
//! * State: a mutex over `busy` and `waiters`, and the condvar `is_free`.
//! * take: lock; while `busy` { `waiters += 1`; wait `is_free`; `waiters -= 1` }; `busy = 1`.
//!   There is no queue: a thread that returns from a blocking section and finds the lock free
//!   takes it, ahead of a waiter that was signalled but has not run yet (barging).
//! * release: `busy = 0`; unlock; then signal `is_free` (`st_masterlock_release` in 4.x:
//!   "m->busy = 0; pthread_mutex_unlock(&m->lock); pthread_cond_signal(&m->is_free);"; OCaml
//!   5 moved the signal inside the mutex). The yield signals inside: it goes on to wait.
//! * yield: if nobody waits, carry on. Otherwise, in one critical section, `busy = 0`, signal
//!   `is_free`, count itself as a waiter, and wait on `is_free` (at least once, then while
//!   `busy`). The yielder is waiting before anyone else can run, so the signal it sent goes
//!   to a thread that was already waiting: it cannot win its own yield (before GPR #2112 a
//!   yielding pair could run 10,000+ iterations before the other got in).
//! * A tick thread (a real thread outside the GIL, as in OCaml) fires every `ocaml_tick`
//!   (50 ms); at the holder's next check the tick makes it yield, only if someone waits.
//!
//! Split over gilbench's release and take: a yield is `release(Forced)` (free the lock, signal,
//! count itself a waiter) then `take` (wait). So that no signal between the two is lost, the
//! yielder remembers how many signals had been sent when it yielded and, in `take`, waits
//! until a later one was sent *and* the lock is free: the behaviour of waiting once and then
//! while `busy`, without holding the mutex across the two calls.
//!
//! The condition variable is std's (a futex), not glibc's `pthread_cond_t` as in OCaml: the
//! one property of glibc's the design relies on, that the yielder's own signal cannot wake
//! the yielder ("the POSIX spec prevents the above signal from pairing with this wait"), is
//! kept by the signal count above. Whether glibc's waiter groups change who wins a race for
//! a freed lock was not measured (`timed` uses glibc's, `src/sync/pthread.rs`).
//!
//! No waiter busy-waits unless the user sets `spin` (as for every design with waiters): then an
//! ordinary take polls for a free lock that long before it waits; the yielder's wait never
//! spins (it must wait for a signal sent after its own).
//!
//! # Fairness
//! None beyond the yield. Who gets a freed lock is up to the OS: a woken waiter, or a thread
//! that arrives (e.g. back from a blocking call) before the waiter has run. A CPU-bound holder
//! keeps the lock until the next tick finds someone waiting, so a waiter may wait up to
//! `ocaml_tick` (50 ms) per CPU-bound thread ahead of it, and an I/O thread that barges back
//! after each blocking call runs at once, while one that loses the race waits for a tick.

use std::time::Duration;

use super::ticker::Ticker;
use super::{Gil, GilParams, Release};
use crate::sync::{lock, spin_until, wait, Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar};
use crate::sync::{Mutex, MutexGuard, Ordering};

struct State {
    busy: bool,
    waiters: usize,
    /// Signals sent on `is_free`, so that a yielder can tell one sent after its own yield.
    signals: u64,
}

struct Inner {
    m: Mutex<State>,
    is_free: Condvar,
    /// `waiters`, readable without the mutex (as OCaml reads it in `Thread.yield`).
    waiters_hint: AtomicUsize,
    /// `busy`, for a spinning waiter.
    busy_hint: AtomicBool,
    /// Set by the tick thread, cleared by the holder at its next check.
    tick: AtomicBool,
    ticks: AtomicU64,
}

impl Inner {
    fn tick(&self) {
        self.ticks.fetch_add(1, Ordering::Relaxed);
        self.tick.store(true, Ordering::Relaxed);
    }
}

/// OCaml 4.14's master lock with its tick thread.
pub struct OcamlGil {
    inner: Arc<Inner>,
    /// The tick thread; dropping the GIL stops it.
    _ticker: Ticker,
    spin: Duration,
}

/// A registered thread.
pub struct OcamlThread {
    /// After a yield: the signal count the yielder saw; it waits for a later signal.
    yielded_at: Option<u64>,
    /// A yield that found nobody waiting kept the lock: the next take is a no-op.
    kept: bool,
    yields: u64,
}

impl OcamlGil {
    /// What the tick thread does when it fires (for tests and loom models, which have no
    /// real tick thread under loom).
    pub fn tick(&self) {
        self.inner.tick();
    }

    /// How many threads wait for the lock (for tests).
    pub fn waiters(&self) -> usize {
        self.inner.waiters_hint.load(Ordering::Relaxed)
    }

    fn set_waiters(&self, st: &mut State, n: usize) {
        st.waiters = n;
        self.inner.waiters_hint.store(n, Ordering::Relaxed);
    }

    fn set_busy(&self, st: &mut State, busy: bool) {
        st.busy = busy;
        self.inner.busy_hint.store(busy, Ordering::Relaxed);
    }

    /// Frees the lock; whether anyone waits for the signal on `is_free` (counted as sent:
    /// the caller sends it, inside the mutex or after it).
    fn free(&self, st: &mut State) -> bool {
        self.set_busy(st, false);
        let wake = st.waiters > 0;
        if wake {
            st.signals += 1;
        }
        wake
    }

    #[cold]
    fn wait_while_busy<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        if !self.spin.is_zero() {
            drop(st);
            spin_until(self.spin, || {
                !self.inner.busy_hint.load(Ordering::Relaxed)
            });
            st = lock(&self.inner.m);
        }
        while st.busy {
            let n = st.waiters + 1;
            self.set_waiters(&mut st, n);
            st = wait(&self.inner.is_free, st);
            let n = st.waiters - 1;
            self.set_waiters(&mut st, n);
        }
        st
    }

    /// The second half of a yield: wait for a signal sent after the yielder's own, then while
    /// the lock is busy; take it and stop counting as a waiter.
    #[cold]
    fn finish_yield(&self, seen: u64) {
        let mut st = lock(&self.inner.m);
        while st.signals == seen || st.busy {
            st = wait(&self.inner.is_free, st);
        }
        self.set_busy(&mut st, true);
        let n = st.waiters - 1;
        self.set_waiters(&mut st, n);
    }
}

impl Gil for OcamlGil {
    type Thread = OcamlThread;
    const NAME: &'static str = "ocaml";
    const MODELS: &'static str = "OCaml 4.14 master lock: busy/waiters/is_free, no queue (barging on return from blocking), a tick thread every ocaml_tick (50ms) makes the holder yield if someone waits; fair yield";
    const SOURCE: &'static str =
        "ocaml/ocaml otherlibs/systhreads/st_posix.h, st_stubs.c; fair yield GPR #2112";
    const YEAR: &'static str = "2022";
    const SLICE_KEYS: &'static [&'static str] = &["ocaml_tick"];

    fn new(p: &GilParams) -> Self {
        Self::try_new(p).expect("cannot start the master lock's tick thread")
    }

    fn try_new(p: &GilParams) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            m: Mutex::new(State {
                busy: false,
                waiters: 0,
                signals: 0,
            }),
            is_free: Condvar::new(),
            waiters_hint: AtomicUsize::new(0),
            busy_hint: AtomicBool::new(false),
            tick: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
        });
        let i = inner.clone();
        Ok(OcamlGil {
            _ticker: Ticker::try_spawn("gilt-ocaml", p.ocaml_tick, true, move || i.tick())?,
            inner,
            spin: p.spin,
        })
    }

    fn register(&self) -> OcamlThread {
        OcamlThread {
            yielded_at: None,
            kept: false,
            yields: 0,
        }
    }

    fn take(&self, t: &mut OcamlThread) {
        if std::mem::take(&mut t.kept) {
            return;
        }
        if let Some(seen) = t.yielded_at.take() {
            self.finish_yield(seen);
            return;
        }
        let mut st = lock(&self.inner.m);
        if st.busy {
            st = self.wait_while_busy(st);
        }
        self.set_busy(&mut st, true);
    }

    fn release(&self, t: &mut OcamlThread, why: Release) {
        let mut st = lock(&self.inner.m);
        if why != Release::Forced {
            let wake = self.free(&mut st);
            drop(st);
            if wake {
                self.inner.is_free.notify_one();
            }
            return;
        }
        // st_thread_yield: nothing to do (and no one to wake us) without waiters.
        if st.waiters == 0 {
            t.kept = true;
            return;
        }
        if self.free(&mut st) {
            self.inner.is_free.notify_one();
        }
        // Count ourselves as a waiter before anyone else can run.
        let n = st.waiters + 1;
        self.set_waiters(&mut st, n);
        t.yielded_at = Some(st.signals);
        t.yields += 1;
    }

    /// The tick's signal, handled at the poll point: yield if someone waits.
    #[inline(always)]
    fn check(&self, _t: &mut OcamlThread) -> bool {
        if !self.inner.tick.load(Ordering::Relaxed) {
            return false;
        }
        self.inner.tick.store(false, Ordering::Relaxed);
        self.inner.waiters_hint.load(Ordering::Relaxed) > 0
    }

    fn kept(&self, t: &OcamlThread) -> bool {
        t.kept
    }

    fn thread_stats(&self, t: &OcamlThread) -> Vec<(&'static str, u64)> {
        vec![("yields", t.yields)]
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        vec![("ticks", self.inner.ticks.load(Ordering::Relaxed))]
    }
}
