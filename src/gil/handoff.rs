//! A per-thread parking slot for designs that hand the GIL over directly (`fifo`, `mlfq`).
//!
//! The releaser decides who holds the GIL next *under the design's state lock* and then
//! [`Slot::grant`]s it to that thread; the woken thread does not race anyone for it.

use std::time::{Duration, Instant};

use crate::sync::{lock, spin_until, wait, wait_timeout, AtomicBool, Condvar, Mutex, Ordering};

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
    /// The truth: IDLE, GRANTED or POKED, changed only under this mutex, and whether the
    /// thread is parked on `cv` (only then does a signal pay for a futex wake).
    state: Mutex<(u8, bool)>,
    /// A copy of `state != IDLE` that a spinning waiter can poll without the mutex.
    signalled: AtomicBool,
    cv: Condvar,
}

impl Slot {
    pub(crate) fn new() -> Self {
        Slot {
            state: Mutex::new((IDLE, false)),
            signalled: AtomicBool::new(false),
            cv: Condvar::new(),
        }
    }

    /// Hands the GIL to this slot's thread and wakes it.
    pub(crate) fn grant(&self) {
        self.signal(GRANTED);
    }

    /// Wakes this slot's thread to re-read the shared state, unless it was granted already.
    pub(crate) fn poke(&self) {
        self.signal(POKED);
    }

    fn signal(&self, what: u8) {
        let mut st = lock(&self.state);
        if st.0 != GRANTED {
            st.0 = what;
        }
        self.signalled.store(true, Ordering::Release);
        if st.1 {
            self.cv.notify_one();
        }
    }

    fn consume(st: &mut (u8, bool), signalled: &AtomicBool) -> Option<Wake> {
        let w = match st.0 {
            GRANTED => Wake::Granted,
            POKED => Wake::Poked,
            _ => return None,
        };
        st.0 = IDLE;
        signalled.store(false, Ordering::Relaxed);
        Some(w)
    }

    /// Consumes a pending grant or poke without blocking.
    pub(crate) fn try_take(&self) -> Option<Wake> {
        Self::consume(&mut lock(&self.state), &self.signalled)
    }

    /// Waits for a grant or a poke: spins for up to `spin` first (a thread on a core of its own
    /// then wakes in nanoseconds instead of paying a futex wake-up), then parks, for at most
    /// `timeout` if one is given.
    pub(crate) fn wait(&self, spin: Duration, timeout: Option<Duration>) -> Wake {
        let start = Instant::now();
        spin_until(spin, || self.signalled.load(Ordering::Acquire));
        // loom does not model time, and a wait whose outcome depends on the real clock would
        // make its replays diverge: under loom every wait is untimed.
        let deadline = if cfg!(loom) {
            None
        } else {
            timeout.map(|t| start + t)
        };
        let mut st = lock(&self.state);
        loop {
            if let Some(w) = Self::consume(&mut st, &self.signalled) {
                return w;
            }
            st.1 = true;
            match deadline {
                None => st = wait(&self.cv, st),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        st.1 = false;
                        return Wake::TimedOut;
                    }
                    st = wait_timeout(&self.cv, st, d - now).0;
                }
            }
            st.1 = false;
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use crate::sync::Arc;

    #[test]
    fn grant_is_never_lost() {
        loom::model(|| {
            let slot = Arc::new(Slot::new());
            let s = slot.clone();
            let t = loom::thread::spawn(move || s.grant());
            assert_eq!(
                slot.wait(Duration::ZERO, Some(Duration::from_millis(5))),
                Wake::Granted
            );
            t.join().unwrap();
        });
    }
}
