//! A per-thread parking slot for designs that hand the GIL over directly (`fifo`, `mlfq`).
//!
//! The releaser decides who holds the GIL next *under the design's state lock* and then
//! [`Slot::grant`]s it to that thread; the woken thread does not race anyone for it.

use std::time::{Duration, Instant};

use crate::sync::{lock, spin_hint, wait, wait_timeout, AtomicU8, Condvar, Mutex, Ordering};

const IDLE: u8 = 0;
const GRANTED: u8 = 1;
const POKED: u8 = 2;

/// How a wait on a [`Slot`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The GIL was handed to this thread: it is now the holder.
    Granted,
    /// Asked to look at the shared state again (without being given the GIL).
    Poked,
    /// The timeout passed.
    TimedOut,
}

pub(crate) struct Slot {
    state: AtomicU8,
    mutex: Mutex<()>,
    cv: Condvar,
}

impl Slot {
    pub(crate) fn new() -> Self {
        Slot {
            state: AtomicU8::new(IDLE),
            mutex: Mutex::new(()),
            cv: Condvar::new(),
        }
    }

    /// Hands the GIL to this slot's thread and wakes it.
    pub(crate) fn grant(&self) {
        self.state.store(GRANTED, Ordering::Release);
        self.wake();
    }

    /// Wakes this slot's thread to re-read the shared state, unless it was granted already.
    pub(crate) fn poke(&self) {
        if self
            .state
            .compare_exchange(IDLE, POKED, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            self.wake();
        }
    }

    fn wake(&self) {
        // Taking the mutex orders this notify after the waiter's last look at `state`, so
        // the wake-up cannot fall between its check and its wait.
        let _g = lock(&self.mutex);
        self.cv.notify_one();
    }

    /// Consumes a pending grant or poke without blocking.
    pub(crate) fn try_take(&self) -> Option<Wake> {
        match self.state.swap(IDLE, Ordering::Acquire) {
            GRANTED => Some(Wake::Granted),
            POKED => Some(Wake::Poked),
            _ => None,
        }
    }

    /// Waits for a grant or a poke: spins for up to `spin` first (a thread on a core of its own
    /// then wakes in nanoseconds instead of paying a futex wake-up), then parks, for at most
    /// `timeout` if one is given.
    pub(crate) fn wait(&self, spin: Duration, timeout: Option<Duration>) -> Wake {
        if let Some(w) = self.try_take() {
            return w;
        }
        let start = Instant::now();
        if !spin.is_zero() && !cfg!(loom) {
            let mut i = 0u32;
            loop {
                if self.state.load(Ordering::Relaxed) != IDLE {
                    if let Some(w) = self.try_take() {
                        return w;
                    }
                }
                spin_hint();
                i = i.wrapping_add(1);
                if i.is_multiple_of(64) && start.elapsed() >= spin {
                    break;
                }
            }
        }
        let deadline = timeout.map(|t| start + t);
        let mut g = lock(&self.mutex);
        loop {
            if let Some(w) = self.try_take() {
                return w;
            }
            match deadline {
                None => g = wait(&self.cv, g),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Wake::TimedOut;
                    }
                    g = wait_timeout(&self.cv, g, d - now).0;
                }
            }
        }
    }
}
