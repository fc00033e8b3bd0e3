//! `mlfq`: the article's proposal, a scheduler rather than a lock: a multilevel feedback
//! queue (Arpaci-Dusseau, *Operating Systems: Three Easy Pieces*, ch. 8) deciding who holds
//! the GIL.
//!
//! * Levels 0 (top) .. `levels - 1`, each with a quantum that grows downwards (default 1, 5,
//!   20 ms) and an allotment (default 10 quanta). New threads start at the top.
//! * A thread that has held the GIL for its level's allotment in total (however many times it
//!   released it) drops one level; releasing for I/O before then keeps its level.
//! * On release the GIL is handed directly to the first waiter of the highest non-empty
//!   level: no barging, no re-acquire race.
//! * A waiter of higher priority than the holder requests a drop at once; a waiter of equal
//!   priority requests it once the holder's quantum is used up (round robin within a level); a
//!   waiter of lower priority never takes the GIL from a higher-priority holder (it would be
//!   preempted straight back): it waits until the holder blocks, sinks to its level, or a
//!   boost. Waiters keep the timer: each sleeps until the next moment a request could become
//!   due and re-evaluates.
//! * Every `boost_interval` threads return to the top level: all of them (`boost = "all"`,
//!   OSTEP's rule, the default) or only those that have not held the GIL for a whole interval
//!   (`boost = "starved"`), which bounds starvation without handing CPU-bound threads a
//!   stretch at top priority every period.
//!
//! A hand-off names the next holder at once, but a parked thread needs tens of microseconds
//! to wake. Until it runs, nobody is charged (hold time and the quantum start when the new
//! holder runs, not at the grant), and the thread that released for a blocking call may
//! *snatch* the GIL back if it asks again first (the idea of Nir Aides' BFS scheduler): an
//! I/O call that did not really block then costs no switch, and the woken thread keeps its
//! place at the head of its queue. A more urgent thread may snatch as often as it likes (it
//! would preempt the woken thread at once anyway); an equally urgent one only once before the
//! woken thread has run, so snatching cannot starve it. A drop request that a waiter had set
//! for the overtaken thread does not pass to the snatcher: the waiters look again at the new
//! holder, and only one that outranks it asks again.
//!
//! A thread preempted by a more urgent one goes back to the head of its queue and finishes
//! the quantum it had begun (as a preempted process does in an OS scheduler), so CPU-bound
//! threads that an I/O thread keeps interrupting still take turns by whole quanta.
//!
//! Hold time is charged lazily: whenever the scheduler state is touched (take, release, a
//! waiter's timer) the holder is charged for the time since it was last charged, so a thread
//! that holds the GIL for a long stretch is demoted as soon as anyone looks. The clock is
//! `quanta`'s TSC-based one, a fraction of the cost of `Instant::now` on a VM.
//!
//! While nobody waits, take and release do not touch the scheduler at all: a lock word says
//! "free", "held by thread N" or "ask the scheduler", and an uncontended take or release is
//! one compare-and-swap plus one raw TSC read (parking_lot's fast path, plus the clock).
//! Such holds are still charged, in full: each thread sums its uncontended hold time where
//! the scheduler can read it, and the scheduler folds that sum into the thread's allotment
//! the next time it deals with the thread (its next contended take, a waiter finding it
//! holding, a boost). A waiter that finds the GIL held through the fast path switches the
//! word to "ask the scheduler" and makes the holder the scheduler's holder, charged from the
//! moment its hold began.
//!
//! # Fairness
//! Priority first, FIFO within a level. Threads that hold the GIL briefly (I/O) stay at the
//! top and preempt CPU-bound threads at once; CPU-bound threads share the GIL round-robin by
//! quantum at their level. Lower levels could starve behind busy upper levels, which the
//! periodic boost bounds: a thread that waits is back at the top within `boost_interval`.
//! Snatching lets a thread returning from a blocking call overtake one that was handed the
//! GIL but is still waking; the overtaken thread is first in line at the next hand-off.
//!
//! Active waiting: none unless the user sets `spin` (as for every design), with one bounded
//! exception that is part of this design: a waiter that has just asked the holder to drop
//! (preemption, or the end of the holder's quantum) and is next in line waits actively for
//! the hand-off, which follows at the holder's next eval-breaker check, for at most
//! `mlfq_preempt_spin` (50 us, about one futex wake-up here; 0 turns it off), then parks.
//! Row labels show it when it is not the default.

mod levels;
mod slow_path;
mod word;

use std::collections::VecDeque;
use std::time::Duration;

// The scheduler charges hold time at every take and release: the TSC-based clock costs a
// fraction of `std::time::Instant::now` on the VMs gilbench runs on (see docs/costs.md).
use quanta::{Clock, Instant};

use self::levels::{Sched, ThreadSched};
use self::word::{held_by, raw_units, FastHolds, FREE};
use super::handoff::Slot;
use super::{Gil, GilParams, Release};
use crate::sync::{lock, Arc, AtomicBool, AtomicU64, Mutex, Ordering};

/// The multilevel-feedback-queue GIL scheduler.
pub struct MlfqGil {
    /// FREE, `held_by(id)` (the fast path), or with SCHED set (`held_by(id) | SCHED` after a
    /// waiter found `id` holding through the fast path): see the constants.
    word: AtomicU64,
    sched: Mutex<Sched>,
    drop_request: AtomicBool,
    /// The raw TSC clock of the fast path (the same calibration as `Instant::now`).
    clock: Clock,
    /// The raw clock reading at which the next boost falls due: a fast release past it
    /// holds the boost (the scheduler's other paths hold it whenever they run).
    boost_due: AtomicU64,
    /// `boost_interval` in raw clock units.
    boost_interval_raw: u64,
    quanta: Vec<Duration>,
    allotments: Vec<Duration>,
    boost_interval: Duration,
    /// `boost = "all"` (OSTEP's rule: every thread back to the top) or `"starved"` (only
    /// threads that have not held the GIL for a whole boost interval).
    boost_all: bool,
    spin: Duration,
    /// How long a waiter that has just asked the holder to drop, and is first in line, waits
    /// actively for the hand-off (`mlfq_preempt_spin`).
    preempt_spin: Duration,
}

/// A registered thread: its index in the scheduler and its hand-off slot.
pub struct MlfqThread {
    id: usize,
    slot: Arc<Slot>,
    fast: Arc<FastHolds>,
    /// It holds the GIL through the fast path (its release tries the fast path too).
    held_fast: bool,
    fast_takes: u64,
}

impl MlfqGil {
    /// The current level of a registered thread (for tests and diagnostics), with its
    /// uncontended holds and any boost now due accounted for.
    pub fn level_of(&self, t: &MlfqThread) -> usize {
        let mut s = lock(&self.sched);
        self.fold(&mut s, t.id);
        s.maybe_boost(Instant::now(), self);
        s.threads[t.id].level
    }

    /// How many threads are queued for the GIL (for tests and diagnostics).
    pub fn queued_len(&self) -> usize {
        lock(&self.sched).queued().count()
    }
}

impl Gil for MlfqGil {
    type Thread = MlfqThread;
    const NAME: &'static str = "mlfq";
    const MODELS: &'static str = "multilevel feedback queue scheduler: short holders (I/O) first, direct hand-off, periodic boost; a waiter that asked the holder to drop waits actively for the hand-off (mlfq_preempt_spin, 50us)";
    const SOURCE: &'static str = "the source article's proposal; Arpaci-Dusseau, OSTEP ch. 8 (MLFQ)";
    const YEAR: &'static str = "2026";

    fn new(p: &GilParams) -> Self {
        let now = Instant::now();
        let levels = p.quanta.len().max(1);
        let quanta = if p.quanta.is_empty() {
            vec![Duration::from_millis(1)]
        } else {
            p.quanta.clone()
        };
        let allotments = if p.allotments.len() == levels {
            p.allotments.clone()
        } else {
            super::default_allotments(&quanta)
        };
        let clock = Clock::new();
        let boost_interval_raw = raw_units(&clock, p.boost_interval);
        MlfqGil {
            word: AtomicU64::new(FREE),
            boost_due: AtomicU64::new(clock.raw().saturating_add(boost_interval_raw)),
            boost_interval_raw,
            clock,
            sched: Mutex::new(Sched {
                threads: Vec::new(),
                queues: (0..levels).map(|_| VecDeque::new()).collect(),
                holder: None,
                started: false,
                prev: None,
                snatches: 0,
                priority_preempt: false,
                preempt_spins: 0,
                since: now,
                charged: now,
                last_boost: now,
                boosts: 0,
                handoffs: 0,
            }),
            drop_request: AtomicBool::new(false),
            quanta,
            allotments,
            boost_interval: p.boost_interval,
            boost_all: p.boost_all,
            spin: p.spin,
            preempt_spin: p.mlfq_preempt_spin,
        }
    }

    fn preemption_period(p: &GilParams) -> Option<(Duration, &'static str)> {
        Some((p.quanta[0], "quanta"))
    }

    fn register(&self) -> MlfqThread {
        let mut s = lock(&self.sched);
        let slot = Arc::new(Slot::new());
        let fast = Arc::new(FastHolds::default());
        s.threads.push(ThreadSched {
            level: 0,
            used: Duration::ZERO,
            demotions: 0,
            slot: slot.clone(),
            fast: fast.clone(),
            folded: 0,
            deadline: None,
            last_held: Instant::now(),
            snatched: false,
            resume: None,
        });
        MlfqThread {
            id: s.threads.len() - 1,
            slot,
            fast,
            held_fast: false,
            fast_takes: 0,
        }
    }

    #[inline]
    fn take(&self, t: &mut MlfqThread) {
        // Fast path: free and nobody waits.
        t.fast.begin(self.clock.raw());
        if self
            .word
            .compare_exchange(FREE, held_by(t.id), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            t.held_fast = true;
            t.fast_takes += 1;
            return;
        }
        self.take_slow(t);
    }

    #[inline]
    fn release(&self, t: &mut MlfqThread, why: Release) {
        if std::mem::take(&mut t.held_fast)
            && self
                .word
                .compare_exchange(held_by(t.id), FREE, Ordering::Release, Ordering::Relaxed)
                .is_ok()
        {
            let end = self.clock.raw();
            t.fast.end(end);
            if end >= self.boost_due.load(Ordering::Relaxed) {
                // A boost falls due while nobody waits: hold it on time, as when the
                // scheduler is touched at every take and release.
                self.boost_uncontended(t);
            }
            return;
        }
        // A waiter set SCHED and made this thread the scheduler's holder (or it was one).
        self.release_slow(t, why);
    }

    #[inline(always)]
    fn check(&self, _t: &mut MlfqThread) -> bool {
        self.drop_request.load(Ordering::Relaxed)
    }

    fn thread_stats(&self, t: &MlfqThread) -> Vec<(&'static str, u64)> {
        let mut s = lock(&self.sched);
        self.fold(&mut s, t.id);
        let th = &s.threads[t.id];
        vec![
            ("level", th.level as u64),
            ("demotions", th.demotions),
            ("fast_takes", t.fast_takes),
        ]
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        let s = lock(&self.sched);
        vec![
            ("boosts", s.boosts),
            ("handoffs", s.handoffs),
            ("snatches", s.snatches),
            ("preempt_spins", s.preempt_spins),
        ]
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
