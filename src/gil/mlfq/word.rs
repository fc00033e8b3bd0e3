//! The lock word, the fast path that bypasses the scheduler while nobody waits, and each
//! thread's own record of its uncontended holds.

use std::time::Duration;

use quanta::Clock;

use crate::sync::{AtomicU64, Ordering};

/// The lock word: the GIL is free and nobody waits (take it with one CAS).
pub(super) const FREE: u64 = 0;
/// The lock word's low bit: the scheduler decides (someone waits or a hand-off is under way);
/// take and release go through its mutex.
pub(super) const SCHED: u64 = 1;

/// The lock word of thread `id` holding the GIL through the fast path.
pub(super) fn held_by(id: usize) -> u64 {
    (id as u64 + 1) << 1
}

/// The thread holding the GIL through the fast path, if the word says so.
pub(super) fn fast_holder(word: u64) -> Option<usize> {
    (word != FREE && word & SCHED == 0).then(|| (word >> 1) as usize - 1)
}

/// `d` in `clock`'s raw units (TSC ticks, or nanoseconds where it has no TSC).
pub(super) fn raw_units(clock: &Clock, d: Duration) -> u64 {
    const PROBE: u64 = 1 << 32;
    let probe_ns = clock.delta_as_nanos(0, PROBE).max(1);
    let raw = d.as_nanos() * u128::from(PROBE) / u128::from(probe_ns);
    u64::try_from(raw).unwrap_or(u64::MAX)
}

/// A thread's uncontended holds, as raw TSC readings the scheduler converts when it folds
/// them in. Written only by the thread itself; read under the scheduler's mutex.
#[derive(Default)]
pub(super) struct FastHolds {
    /// When the current (or last) fast-path hold began.
    pub(super) start: AtomicU64,
    /// The sum of its finished fast-path holds.
    pub(super) total: AtomicU64,
    /// When its last fast-path hold ended.
    pub(super) last_release: AtomicU64,
}

impl FastHolds {
    /// Publishes the start of a hold, before the take's CAS (which releases it) so that a
    /// waiter that sees the word taken sees the start too.
    #[inline]
    pub(super) fn begin(&self, now: u64) {
        self.start.store(now, Ordering::Relaxed);
    }

    /// Adds the hold that ends at `end` to the total. Only the owner writes these cells, so
    /// reading its own values back needs no ordering; `total` is published last.
    #[inline]
    pub(super) fn end(&self, end: u64) {
        let held = end.saturating_sub(self.start.load(Ordering::Relaxed));
        self.last_release.store(end, Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed) + held;
        self.total.store(total, Ordering::Release);
    }
}
