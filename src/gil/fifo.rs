//! `fifo`: a fair lock that hands the GIL directly to the oldest waiter, with `timed`'s
//! tick-check cadence (a waiter that has waited one `interval` without the holder changing
//! sets a drop request; the holder drops at its next check and queues behind the waiters).
//!
//! With `force_switching = false`, a drop served at the check does *not* hand over: the lock
//! is left free, the oldest waiter is woken to compete for it, and the dropper may barge
//! straight back in, as `timed` without forced switching.
//!
//! # Fairness
//! Strict FIFO: every release hands the GIL to the thread that has waited longest, and a
//! thread that asks for it while anyone is queued queues behind them (no barging), so a
//! waiter gets the GIL after at most one hold (bounded by about `interval` for CPU-bound
//! holders) of every thread ahead of it. Only forced drops with `force_switching = false`
//! give up the guarantee.

use std::collections::VecDeque;
use std::time::Duration;

use super::handoff::{Slot, Wake};
use super::{Gil, GilParams, Release};
use crate::sync::{lock, Arc, AtomicBool, Mutex, Ordering};

struct State {
    locked: bool,
    /// Incremented every time the GIL changes hands, so a timed-out waiter can tell whether
    /// the holder it timed out on is still the same.
    handoffs: u64,
    queue: VecDeque<Arc<Slot>>,
}

/// The fair FIFO hand-off lock.
pub struct FifoGil {
    state: Mutex<State>,
    drop_request: AtomicBool,
    interval: Duration,
    force_switching: bool,
    spin: Duration,
}

/// A registered thread: its hand-off slot.
pub struct FifoThread {
    slot: Arc<Slot>,
}

impl FifoGil {
    pub fn new(p: &GilParams) -> Self {
        FifoGil {
            state: Mutex::new(State {
                locked: false,
                handoffs: 0,
                queue: VecDeque::new(),
            }),
            drop_request: AtomicBool::new(false),
            interval: p.interval.max(Duration::from_micros(1)),
            force_switching: p.force_switching,
            spin: p.spin,
        }
    }

    /// How many threads are queued for the GIL (for tests and diagnostics).
    pub fn queued_len(&self) -> usize {
        lock(&self.state).queue.len()
    }

    #[cold]
    fn wait_for_handoff(&self, t: &FifoThread, mut seen: u64) {
        loop {
            match t.slot.wait(self.spin, Some(self.interval)) {
                Wake::Granted => return,
                Wake::Poked => {
                    let mut st = lock(&self.state);
                    if !st.locked {
                        st.locked = true;
                        st.handoffs += 1;
                        st.queue.retain(|s| !Arc::ptr_eq(s, &t.slot));
                        self.drop_request.store(false, Ordering::Relaxed);
                        return;
                    }
                    seen = st.handoffs;
                }
                Wake::TimedOut => {
                    let st = lock(&self.state);
                    if st.locked && st.handoffs == seen {
                        self.drop_request.store(true, Ordering::Relaxed);
                    }
                    seen = st.handoffs;
                }
            }
        }
    }
}

impl Gil for FifoGil {
    type Thread = FifoThread;
    const NAME: &'static str = "fifo";

    fn register(&self) -> FifoThread {
        FifoThread {
            slot: Arc::new(Slot::new()),
        }
    }

    #[inline]
    fn take(&self, t: &mut FifoThread) {
        let mut st = lock(&self.state);
        if !st.locked && (st.queue.is_empty() || !self.force_switching) {
            st.locked = true;
            st.handoffs += 1;
            return;
        }
        st.queue.push_back(t.slot.clone());
        let seen = st.handoffs;
        drop(st);
        self.wait_for_handoff(t, seen);
    }

    fn release(&self, _t: &mut FifoThread, why: Release) {
        let mut st = lock(&self.state);
        if why == Release::Forced && !self.force_switching {
            st.locked = false;
            self.drop_request.store(false, Ordering::Relaxed);
            if let Some(head) = st.queue.front() {
                head.poke();
            }
            return;
        }
        match st.queue.pop_front() {
            Some(next) => {
                // The GIL stays locked: ownership passes to `next` without a race.
                st.handoffs += 1;
                self.drop_request.store(false, Ordering::Relaxed);
                next.grant();
            }
            None => st.locked = false,
        }
    }

    #[inline(always)]
    fn check(&self, _t: &mut FifoThread) -> bool {
        self.drop_request.load(Ordering::Relaxed)
    }
}
