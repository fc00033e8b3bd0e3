//! POSIX threads' own mutex and condition variable (`pthread_mutex_t`, `pthread_cond_t`), with
//! the interface of the `sync` shim (`lock`, `wait`, `wait_timeout`), for the design that
//! models CPython's GIL: CPython builds its GIL on exactly these (`Python/condvar.h`), and
//! glibc's condition variable decides which waiter a signal wakes and when a timed wait ends
//! differently from std's futex condvar (waiter groups, a signal goes only to threads that
//! were already waiting). Under loom the shim's own types stand in (see `timed.rs`).

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// A `pthread_mutex_t` (default, non-recursive, no hand-off) guarding a `T`.
pub(crate) struct Mutex<T> {
    /// Boxed: a pthread mutex must not move once used.
    raw: Box<UnsafeCell<libc::pthread_mutex_t>>,
    data: UnsafeCell<T>,
}

// SAFETY: the data is only reached through a guard, which exists only while the pthread
// mutex is locked by the current thread; the mutex itself is made for concurrent use.
unsafe impl<T: Send> Send for Mutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Mutex<T> {}

/// Holds the mutex locked; unlocks on drop.
///
/// Neither `Send` nor `Sync`: a default pthread mutex must be unlocked by the thread that
/// locked it (POSIX leaves unlocking it from another thread undefined), so the guard may not
/// move to, or be shared with, another thread. The raw-pointer marker removes both auto
/// traits; `guard_is_not_send` below stops the build if it ever regains them.
pub(crate) struct MutexGuard<'a, T> {
    m: &'a Mutex<T>,
    _not_send: PhantomData<*const ()>,
}

/// Fails to compile if `MutexGuard` is `Send` or `Sync`: with either, both impls of
/// `AmbiguousIfEither` below apply and the call cannot pick one. (A `compile_fail` doc test
/// cannot do this: doc tests see only the public API, and the guard is `pub(crate)`, so such
/// a test would fail to compile for privacy whatever the guard's traits.)
#[allow(dead_code)]
fn guard_is_not_send() {
    trait AmbiguousIfEither<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfEither<()> for T {}
    struct IfSend;
    impl<T: ?Sized + Send> AmbiguousIfEither<IfSend> for T {}
    struct IfSync;
    impl<T: ?Sized + Sync> AmbiguousIfEither<IfSync> for T {}
    <MutexGuard<'static, ()> as AmbiguousIfEither<_>>::check();
}

impl<T> Mutex<T> {
    pub(crate) fn new(t: T) -> Self {
        Mutex {
            raw: Box::new(UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER)),
            data: UnsafeCell::new(t),
        }
    }
}

impl<T> Drop for Mutex<T> {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nobody holds or waits on it any more.
        unsafe { libc::pthread_mutex_destroy(self.raw.get()) };
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the mutex.
        unsafe { &*self.m.data.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while this thread holds the mutex, and `&mut self`
        // makes this the only reference through it.
        unsafe { &mut *self.m.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this thread locked the mutex when it made the guard.
        let rc = unsafe { libc::pthread_mutex_unlock(self.m.raw.get()) };
        debug_assert_eq!(rc, 0);
    }
}

/// Locks `m` (never poisoned: a pthread mutex has no such notion).
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // SAFETY: the mutex was initialised in `new` and lives as long as `m`.
    let rc = unsafe { libc::pthread_mutex_lock(m.raw.get()) };
    assert_eq!(rc, 0, "pthread_mutex_lock failed: {rc}");
    MutexGuard {
        m,
        _not_send: PhantomData,
    }
}

/// A `pthread_cond_t` on `CLOCK_MONOTONIC` (as CPython's, when the platform has it).
pub(crate) struct Condvar {
    raw: Box<UnsafeCell<libc::pthread_cond_t>>,
}

// SAFETY: a pthread condition variable is made to be used from many threads at once; all
// access goes through the pthread_cond_* functions.
unsafe impl Send for Condvar {}
// SAFETY: as above.
unsafe impl Sync for Condvar {}

impl Condvar {
    pub(crate) fn new() -> Self {
        let raw = Box::new(UnsafeCell::new(libc::PTHREAD_COND_INITIALIZER));
        // SAFETY: a zeroed attribute object is a placeholder that pthread_condattr_init
        // overwrites; every pointer is to a live local or to the boxed condvar, which
        // nobody else can see yet.
        unsafe {
            let mut attr: libc::pthread_condattr_t = std::mem::zeroed();
            assert_eq!(libc::pthread_condattr_init(&mut attr), 0);
            assert_eq!(
                libc::pthread_condattr_setclock(&mut attr, libc::CLOCK_MONOTONIC),
                0
            );
            assert_eq!(libc::pthread_cond_init(raw.get(), &attr), 0);
            libc::pthread_condattr_destroy(&mut attr);
        }
        Condvar { raw }
    }

    pub(crate) fn notify_one(&self) {
        // SAFETY: initialised in `new`, alive as long as `self`.
        unsafe { libc::pthread_cond_signal(self.raw.get()) };
    }

    pub(crate) fn notify_all(&self) {
        // SAFETY: initialised in `new`, alive as long as `self`.
        unsafe { libc::pthread_cond_broadcast(self.raw.get()) };
    }
}

impl Drop for Condvar {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: nobody waits on it any more.
        unsafe { libc::pthread_cond_destroy(self.raw.get()) };
    }
}

/// Waits on `cv`, releasing the guard's mutex meanwhile (spurious wake-ups possible, as with
/// every condition variable: callers loop on their condition).
#[inline]
pub(crate) fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    // SAFETY: this thread holds the guard's mutex, as pthread_cond_wait requires; the mutex
    // is locked again when it returns, so the guard stays valid.
    let rc = unsafe { libc::pthread_cond_wait(cv.raw.get(), g.m.raw.get()) };
    debug_assert_eq!(rc, 0);
    g
}

/// Waits on `cv` for at most `dur`; returns the guard and whether the wait timed out.
#[inline]
pub(crate) fn wait_timeout<'a, T>(
    cv: &Condvar,
    g: MutexGuard<'a, T>,
    dur: Duration,
) -> (MutexGuard<'a, T>, bool) {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer to a live local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    let nanos = now.tv_nsec as u64 + u64::from(dur.subsec_nanos());
    let secs = (now.tv_sec as u64)
        .saturating_add(dur.as_secs())
        .saturating_add(nanos / 1_000_000_000)
        .min(i64::MAX as u64 / 2);
    let deadline = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: this thread holds the guard's mutex; the condvar was made on CLOCK_MONOTONIC,
    // the clock of `deadline`; the mutex is locked again when it returns.
    let rc = unsafe { libc::pthread_cond_timedwait(cv.raw.get(), g.m.raw.get(), &deadline) };
    (g, rc == libc::ETIMEDOUT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_timed_wait_times_out_and_a_signal_wakes_a_waiter() {
        let m = Arc::new(Mutex::new(false));
        let cv = Arc::new(Condvar::new());
        let t0 = Instant::now();
        let (g, timed_out) = wait_timeout(&cv, lock(&m), Duration::from_millis(20));
        assert!(timed_out && t0.elapsed() >= Duration::from_millis(20));
        drop(g);
        let (m2, cv2) = (m.clone(), cv.clone());
        let waiter = std::thread::spawn(move || {
            let mut g = lock(&m2);
            while !*g {
                g = wait(&cv2, g);
            }
        });
        std::thread::sleep(Duration::from_millis(10));
        *lock(&m) = true;
        cv.notify_one();
        waiter.join().unwrap();
    }

    #[test]
    fn the_mutex_excludes() {
        let m = Arc::new(Mutex::new(0u64));
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        *lock(&m) += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*lock(&m), 300_000);
    }
}
