//! `fifo`: a fair lock that hands the GIL directly to the oldest waiter, with `timed`'s
//! tick-check cadence (a waiter that has waited one `interval` without the holder changing
//! sets a drop request; the holder drops at its next check and queues behind the waiters).
//!
//! With `force_switching = false`, a drop served at the check does *not* hand over: the lock
//! is left free, the oldest waiter is woken to compete for it, and the dropper may barge
//! straight back in, as `timed` without forced switching.
//!
//! The lock word has a parking_lot-style fast path: uncontended take and release are one
//! compare-and-swap each; the queue (under a mutex) is touched only while someone waits,
//! which the `QUEUED` bit says.
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
use crate::sync::{lock, Arc, AtomicBool, AtomicU8, Mutex, MutexGuard, Ordering};

/// The GIL is held.
const LOCKED: u8 = 1;
/// The queue is not empty: take and release must go through the mutex. Kept equal to
/// `!queue.is_empty()` whenever the mutex is free.
const QUEUED: u8 = 2;

struct State {
    /// Incremented every time the GIL changes hands through the queue, so a timed-out waiter
    /// can tell whether the holder it timed out on is still the same. (The fast path cannot
    /// change hands while anyone is queued.)
    handoffs: u64,
    queue: VecDeque<Arc<Slot>>,
}

/// The fair FIFO hand-off lock.
pub struct FifoGil {
    word: AtomicU8,
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
    /// How many threads are queued for the GIL (for tests and diagnostics).
    pub fn queued_len(&self) -> usize {
        lock(&self.state).queue.len()
    }

    /// Makes the `QUEUED` bit match the queue again (under the mutex).
    fn sync_queued(&self, st: &State) {
        if st.queue.is_empty() {
            self.word.fetch_and(!QUEUED, Ordering::AcqRel);
        } else {
            self.word.fetch_or(QUEUED, Ordering::AcqRel);
        }
    }

    /// Takes the GIL if it is free (under the mutex).
    fn try_lock(&self, st: &mut State) -> bool {
        let w = self.word.load(Ordering::Relaxed);
        if w & LOCKED == 0
            && self
                .word
                .compare_exchange(w, w | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            st.handoffs += 1;
            self.drop_request.store(false, Ordering::Relaxed);
            return true;
        }
        false
    }

    #[cold]
    fn take_slow(&self, t: &FifoThread) {
        let mut st: MutexGuard<'_, State> = lock(&self.state);
        if (st.queue.is_empty() || !self.force_switching) && self.try_lock(&mut st) {
            return;
        }
        st.queue.push_back(t.slot.clone());
        // Setting QUEUED sends every later release through the mutex. If the holder slipped
        // out through the fast path before that, the GIL is free and nobody will hand it to
        // us: take it ourselves.
        let before = self.word.fetch_or(QUEUED, Ordering::AcqRel);
        if before & LOCKED == 0 && self.try_lock(&mut st) {
            st.queue.retain(|s| !Arc::ptr_eq(s, &t.slot));
            self.sync_queued(&st);
            return;
        }
        let seen = st.handoffs;
        drop(st);
        self.wait_for_handoff(t, seen);
    }

    #[cold]
    fn wait_for_handoff(&self, t: &FifoThread, mut seen: u64) {
        // Spin once per take, before the first park, as every design spins.
        let mut spin = self.spin;
        loop {
            match t.slot.wait(std::mem::take(&mut spin), Some(self.interval)) {
                Wake::Granted => return,
                Wake::Poked => {
                    let mut st = lock(&self.state);
                    if self.try_lock(&mut st) {
                        st.queue.retain(|s| !Arc::ptr_eq(s, &t.slot));
                        self.sync_queued(&st);
                        return;
                    }
                    seen = st.handoffs;
                }
                Wake::TimedOut => {
                    let st = lock(&self.state);
                    if self.word.load(Ordering::Relaxed) & LOCKED != 0 && st.handoffs == seen {
                        self.drop_request.store(true, Ordering::Relaxed);
                    }
                    seen = st.handoffs;
                }
            }
        }
    }

    #[cold]
    fn release_slow(&self, why: Release) {
        let mut st = lock(&self.state);
        if why == Release::Forced && !self.force_switching {
            self.word.fetch_and(!LOCKED, Ordering::Release);
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
                self.sync_queued(&st);
                next.grant();
            }
            None => {
                self.word.fetch_and(!LOCKED, Ordering::Release);
            }
        }
    }
}

impl Gil for FifoGil {
    type Thread = FifoThread;
    const NAME: &'static str = "fifo";
    const MODELS: &'static str = "a fair baseline: direct FIFO hand-off to the oldest waiter, drop requests after interval";
    const SOURCE: &'static str = "gilbench (docs/design.md §2)";
    const YEAR: &'static str = "2026";
    const SLICE_KEYS: &'static [&'static str] = &["interval"];

    fn new(p: &GilParams) -> Self {
        FifoGil {
            word: AtomicU8::new(0),
            state: Mutex::new(State {
                handoffs: 0,
                queue: VecDeque::new(),
            }),
            drop_request: AtomicBool::new(false),
            interval: p.interval.max(Duration::from_micros(1)),
            force_switching: p.force_switching,
            spin: p.spin,
        }
    }

    fn preemption_period(p: &GilParams) -> Option<(Duration, &'static str)> {
        Some((p.interval, "interval"))
    }

    fn register(&self) -> FifoThread {
        FifoThread {
            slot: Arc::new(Slot::new()),
        }
    }

    #[inline]
    fn take(&self, t: &mut FifoThread) {
        if self
            .word
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.take_slow(t);
        }
    }

    #[inline]
    fn release(&self, _t: &mut FifoThread, why: Release) {
        if self
            .word
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.release_slow(why);
        }
    }

    #[inline(always)]
    fn check(&self, _t: &mut FifoThread) -> bool {
        self.drop_request.load(Ordering::Relaxed)
    }
}
