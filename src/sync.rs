//! The synchronisation primitives the GIL designs are built on, in one place so that
//! `RUSTFLAGS="--cfg loom"` can swap them for loom's model-checked versions.
//!
//! Under loom, `Condvar::wait_timeout` never times out (loom does not model time), so the
//! models check the designs' hand-off logic with untimed waits.

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    Arc, Condvar, Mutex, MutexGuard,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    Arc, Condvar, Mutex, MutexGuard,
};

use std::time::Duration;

/// Locks `m`, ignoring poisoning: the GIL's internal state is only ever mutated in short,
/// panic-free critical sections, so a poisoned mutex still holds consistent state, and a
/// panicking interpreter thread must never wedge the others.
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits on `cv` without a timeout, ignoring poisoning.
#[inline]
pub(crate) fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(g).unwrap_or_else(|e| e.into_inner())
}

/// Waits on `cv` for at most `dur`; returns the guard and whether the wait timed out.
#[inline]
pub(crate) fn wait_timeout<'a, T>(
    cv: &Condvar,
    g: MutexGuard<'a, T>,
    dur: Duration,
) -> (MutexGuard<'a, T>, bool) {
    let (g, res) = cv.wait_timeout(g, dur).unwrap_or_else(|e| e.into_inner());
    (g, res.timed_out())
}

/// Hint to the CPU that we are spinning; a no-op yield under loom.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Busy-waits until `ready()` or until `spin` has passed; returns whether `ready()` became
/// true. The one spin every design with waiters uses (the `spin` key), so that spinning means
/// the same in all of them. On a thread that runs with a [`SpinGauge`] (`spin = adaptive`),
/// `spin` is only the bound: it spins while the gauge says the holder is running and a core
/// is free for it. The time spent here is added to the thread's [`spun`]. Under loom it never
/// spins (loom does not model time).
#[inline]
pub(crate) fn spin_until(spin: std::time::Duration, mut ready: impl FnMut() -> bool) -> bool {
    if spin.is_zero() || cfg!(loom) {
        return false;
    }
    let start = std::time::Instant::now();
    let gauge = adaptive::current();
    if gauge.as_ref().is_some_and(|g| !g.enter()) {
        return false;
    }
    let mut i = 0u32;
    let done = loop {
        if ready() {
            break true;
        }
        spin_hint();
        i = i.wrapping_add(1);
        if i.is_multiple_of(64) {
            let gauge_says_stop = gauge.as_ref().is_some_and(|g| !g.may_go_on());
            if gauge_says_stop || start.elapsed() >= spin {
                break false;
            }
        }
    };
    if let Some(g) = &gauge {
        g.leave();
    }
    adaptive::add_spun(start.elapsed());
    done
}

pub use adaptive::SpinGauge;
pub(crate) use adaptive::{install as install_spin_gauge, spun};

/// `spin = adaptive`: Linux's optimistic mutex spinning (`mutex_optimistic_spin`: spin only
/// while the owner is on a CPU and the spinner need not give way) with what user space can
/// see instead of `owner->on_cpu`.
mod adaptive {
    use std::cell::{Cell, RefCell};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// The run's view of which interpreter threads are on a core: `holding` counts threads in
    /// GIL-held work (published by the interpreter layer after a take and after a release;
    /// a thread handed the GIL counts only once it runs), `busy` those plus the spinning
    /// waiters. A waiter spins only while `holding > 0` (the holder is running, not parked
    /// waking up, not in a blocking call) and `busy < cores` when it starts (a core is free
    /// for it: cores > runnable GIL threads, itself included). Unseen: the OS may preempt the
    /// holder, and threads doing native work with the GIL released (hash-nogil) or the load
    /// generator are not counted.
    #[derive(Debug)]
    pub struct SpinGauge {
        holding: AtomicUsize,
        busy: AtomicUsize,
        cores: usize,
    }

    impl SpinGauge {
        /// A gauge for a run whose threads may use `cores` cores.
        pub fn new(cores: usize) -> Self {
            SpinGauge {
                holding: AtomicUsize::new(0),
                busy: AtomicUsize::new(0),
                cores: cores.max(1),
            }
        }

        /// The calling thread starts GIL-held work (its take returned).
        pub fn hold_begin(&self) {
            self.busy.fetch_add(1, Ordering::Relaxed);
            self.holding.fetch_add(1, Ordering::Release);
        }

        /// The calling thread's GIL-held work ended (its release returned: a waiter handed
        /// the GIL sees the grant before it sees the holder gone).
        pub fn hold_end(&self) {
            self.holding.fetch_sub(1, Ordering::Release);
            self.busy.fetch_sub(1, Ordering::Relaxed);
        }

        /// A waiter asks to spin: yes if the holder runs and a core is free for it.
        pub(super) fn enter(&self) -> bool {
            let others = self.busy.fetch_add(1, Ordering::Relaxed);
            if others < self.cores && self.holding.load(Ordering::Acquire) > 0 {
                return true;
            }
            self.busy.fetch_sub(1, Ordering::Relaxed);
            false
        }

        /// Whether a spinning waiter may go on: the holder still runs and no more threads
        /// are on the run's cores than it has.
        pub(super) fn may_go_on(&self) -> bool {
            self.holding.load(Ordering::Acquire) > 0
                && self.busy.load(Ordering::Relaxed) <= self.cores
        }

        pub(super) fn leave(&self) {
            self.busy.fetch_sub(1, Ordering::Relaxed);
        }
    }

    thread_local! {
        static GAUGE: RefCell<Option<Arc<SpinGauge>>> = const { RefCell::new(None) };
        static SPUN: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    }

    /// Makes the calling thread's spins adaptive, by `gauge` (None: plain `spin`).
    pub(crate) fn install(gauge: Option<Arc<SpinGauge>>) {
        GAUGE.with(|g| *g.borrow_mut() = gauge);
    }

    pub(super) fn current() -> Option<Arc<SpinGauge>> {
        GAUGE.with(|g| g.borrow().clone())
    }

    pub(super) fn add_spun(d: Duration) {
        SPUN.with(|s| s.set(s.get() + d));
    }

    /// The time the calling thread has spent in [`super::spin_until`] since the last reset;
    /// `reset` starts it again from zero (at the end of the warm-up).
    pub(crate) fn spun(reset: bool) -> Duration {
        SPUN.with(|s| {
            if reset {
                s.replace(Duration::ZERO)
            } else {
                s.get()
            }
        })
    }
}

#[cfg(all(test, not(loom)))]
mod adaptive_tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Spins (never ready, for at most `bound`) on a thread with `gauge`; returns how long
    /// it spun, as the thread's spin counter says.
    fn spin_with(gauge: &Arc<SpinGauge>, bound: Duration) -> Duration {
        install_spin_gauge(Some(gauge.clone()));
        spun(true);
        let t0 = Instant::now();
        assert!(!spin_until(bound, || false));
        let took = t0.elapsed();
        install_spin_gauge(None);
        assert!(spun(false) <= took);
        spun(false)
    }

    /// Adaptive spins (to its bound) while the holder runs and a core is free for the waiter;
    /// it parks at once when no core is free or when nobody runs holding the GIL (a bound of
    /// 10 s: "at once" is anything far below it on a busy machine).
    #[test]
    fn adaptive_spins_only_while_the_holder_runs_and_a_core_is_free() {
        let long = Duration::from_secs(10);
        let two = Arc::new(SpinGauge::new(2));
        two.hold_begin();
        let spun_free = spin_with(&two, Duration::from_millis(20));
        assert!(spun_free >= Duration::from_millis(20), "spun {spun_free:?}");
        let one = Arc::new(SpinGauge::new(1));
        one.hold_begin();
        let spun_full = spin_with(&one, long);
        assert!(
            spun_full < Duration::from_secs(1),
            "spun {spun_full:?} with no core free"
        );
        two.hold_end();
        let spun_idle = spin_with(&two, long);
        assert!(
            spun_idle < Duration::from_secs(1),
            "spun {spun_idle:?} with no holder running"
        );
    }

    /// A spinning waiter stops as soon as the holder stops running (it released for a
    /// blocking call, or handed the GIL to a parked thread), long before its bound.
    #[test]
    fn adaptive_stops_spinning_when_the_holder_stops() {
        let g = Arc::new(SpinGauge::new(4));
        g.hold_begin();
        let g2 = g.clone();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            g2.hold_end();
        });
        let spun = spin_with(&g, Duration::from_secs(10));
        stopper.join().unwrap();
        assert!(spun >= Duration::from_millis(5), "spun only {spun:?}");
        assert!(
            spun < Duration::from_secs(5),
            "spun {spun:?} past the holder's stop"
        );
    }
}

pub(crate) use semaphore::Semaphore;

/// POSIX threads' mutex and condition variable, for `timed` (CPython's own primitives).
#[cfg(not(loom))]
pub(crate) mod pthread;

/// A binary semaphore with no queue and no fairness, as CPython 2.7 used for its GIL.
#[cfg(not(loom))]
mod semaphore {
    use std::cell::UnsafeCell;

    /// A POSIX unnamed semaphore (`sem_t`) behind a `Box`, so its address never moves.
    ///
    /// `sem_wait`/`sem_post` on glibc are a futex with no hand-off: `sem_post` increments
    /// the count and wakes one sleeper, and whichever thread decrements the count first
    /// wins, which on multicore is usually the thread that just posted.
    pub(crate) struct Semaphore {
        sem: Box<UnsafeCell<libc::sem_t>>,
    }

    // SAFETY: a sem_t is designed to be operated on concurrently from many threads; all
    // access goes through the sem_* functions, which synchronise internally.
    unsafe impl Send for Semaphore {}
    // SAFETY: as above, sem_wait/sem_post are thread-safe on a shared sem_t.
    unsafe impl Sync for Semaphore {}

    impl Semaphore {
        pub(crate) fn new(initial: u32) -> Self {
            // SAFETY: sem_t is plain old data; an all-zero value is a valid placeholder
            // that sem_init overwrites before any other use.
            let sem = Box::new(UnsafeCell::new(unsafe {
                std::mem::zeroed::<libc::sem_t>()
            }));
            // SAFETY: the pointer is valid, aligned and exclusively ours; pshared = 0
            // (shared between threads of this process only).
            let rc = unsafe { libc::sem_init(sem.get(), 0, initial) };
            assert_eq!(
                rc,
                0,
                "sem_init failed: {}",
                std::io::Error::last_os_error()
            );
            Semaphore { sem }
        }

        /// Decrements the count, blocking while it is zero (retrying on EINTR).
        #[inline]
        pub(crate) fn wait(&self) {
            loop {
                // SAFETY: the semaphore was initialised in `new` and lives until drop.
                if unsafe { libc::sem_wait(self.sem.get()) } == 0 {
                    return;
                }
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EINTR) {
                    panic!("sem_wait failed: {err}");
                }
            }
        }

        /// Decrements the count if it is above zero, without blocking; whether it did.
        #[inline]
        pub(crate) fn try_wait(&self) -> bool {
            // SAFETY: the semaphore was initialised in `new` and lives until drop.
            unsafe { libc::sem_trywait(self.sem.get()) == 0 }
        }

        /// Increments the count and wakes one waiter, if any; no hand-off.
        #[inline]
        pub(crate) fn post(&self) {
            // SAFETY: the semaphore was initialised in `new` and lives until drop.
            let rc = unsafe { libc::sem_post(self.sem.get()) };
            debug_assert_eq!(rc, 0);
        }
    }

    impl Drop for Semaphore {
        fn drop(&mut self) {
            // SAFETY: we have exclusive access (`&mut self`), so no thread is blocked on it.
            unsafe { libc::sem_destroy(self.sem.get()) };
        }
    }
}

/// Under loom: the same unfair semaphore as a counter under a mutex with a condvar (no
/// queue, no hand-off), which loom can model.
#[cfg(loom)]
mod semaphore {
    use super::{lock, wait, Condvar, Mutex};

    pub(crate) struct Semaphore {
        count: Mutex<u32>,
        cv: Condvar,
    }

    impl Semaphore {
        pub(crate) fn new(initial: u32) -> Self {
            Semaphore {
                count: Mutex::new(initial),
                cv: Condvar::new(),
            }
        }
        pub(crate) fn wait(&self) {
            let mut c = lock(&self.count);
            while *c == 0 {
                c = wait(&self.cv, c);
            }
            *c -= 1;
        }
        pub(crate) fn post(&self) {
            *lock(&self.count) += 1;
            self.cv.notify_one();
        }
        pub(crate) fn try_wait(&self) -> bool {
            let mut c = lock(&self.count);
            if *c == 0 {
                return false;
            }
            *c -= 1;
            true
        }
    }
}
