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
/// the same in all of them. Under loom it never spins (loom does not model time).
#[inline]
pub(crate) fn spin_until(spin: std::time::Duration, mut ready: impl FnMut() -> bool) -> bool {
    if spin.is_zero() || cfg!(loom) {
        return false;
    }
    let start = std::time::Instant::now();
    let mut i = 0u32;
    loop {
        if ready() {
            return true;
        }
        spin_hint();
        i = i.wrapping_add(1);
        if i.is_multiple_of(64) && start.elapsed() >= spin {
            return false;
        }
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
