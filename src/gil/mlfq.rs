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
//! * A waiter of higher priority than the holder requests a drop at once; a waiter of equal or
//!   lower priority requests it once the holder's quantum (measured from when it took the GIL)
//!   is used up. Waiters keep the timer: each sleeps until the next moment a request could
//!   become due and re-evaluates.
//! * Every `boost_interval` all threads return to the top level.
//!
//! Hold time is charged lazily: whenever the scheduler state is touched (take, release, a
//! waiter's timer) the holder is charged for the time since it was last charged, so a thread
//! that holds the GIL for a long stretch is demoted as soon as anyone looks.
//!
//! # Fairness
//! Priority first, FIFO within a level. Threads that hold the GIL briefly (I/O) stay at the
//! top and preempt CPU-bound threads at once; CPU-bound threads share the GIL round-robin by
//! quantum at their level. Lower levels could starve behind busy upper levels, which the
//! periodic boost bounds: every thread is back at the top within `boost_interval`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::handoff::{Slot, Wake};
use super::{Gil, GilParams, Release};
use crate::sync::{lock, Arc, AtomicBool, Mutex, Ordering};

struct ThreadSched {
    level: usize,
    /// Hold time charged at the current level.
    used: Duration,
    demotions: u64,
    slot: Arc<Slot>,
    /// While queued: when this waiter will next look at the holder (None: not timed, i.e.
    /// it already requested a drop or needs no timer).
    deadline: Option<Instant>,
}

struct Sched {
    threads: Vec<ThreadSched>,
    queues: Vec<VecDeque<usize>>,
    holder: Option<usize>,
    /// When the holder took the GIL: the start of its quantum.
    since: Instant,
    /// Up to when the holder's hold time has been charged.
    charged: Instant,
    last_boost: Instant,
    boosts: u64,
    handoffs: u64,
}

/// The multilevel-feedback-queue GIL scheduler.
pub struct MlfqGil {
    sched: Mutex<Sched>,
    drop_request: AtomicBool,
    quanta: Vec<Duration>,
    allotments: Vec<Duration>,
    boost_interval: Duration,
    spin: Duration,
}

/// A registered thread: its index in the scheduler and its hand-off slot.
pub struct MlfqThread {
    id: usize,
    slot: Arc<Slot>,
}

impl Sched {
    /// Charges the holder for the time since it was last charged, demoting it through as many
    /// levels as that time covers.
    fn charge(&mut self, now: Instant, allotments: &[Duration]) {
        let Some(h) = self.holder else { return };
        let mut add = now.saturating_duration_since(self.charged);
        self.charged = now;
        let last = allotments.len() - 1;
        let t = &mut self.threads[h];
        while t.level < last {
            let room = allotments[t.level].saturating_sub(t.used);
            if add < room {
                break;
            }
            add -= room;
            t.level += 1;
            t.used = Duration::ZERO;
            t.demotions += 1;
        }
        t.used += add;
    }

    fn maybe_boost(&mut self, now: Instant, p: &MlfqGil) {
        self.charge(now, &p.allotments);
        if now.saturating_duration_since(self.last_boost) < p.boost_interval {
            return;
        }
        self.last_boost = now;
        self.boosts += 1;
        for t in &mut self.threads {
            t.level = 0;
            t.used = Duration::ZERO;
        }
        // Keep the waiters' relative order: higher levels first, FIFO within each.
        let mut all = VecDeque::new();
        for q in &mut self.queues {
            all.append(q);
        }
        self.queues[0] = all;
    }

    fn pop_best(&mut self) -> Option<usize> {
        self.queues.iter_mut().find_map(|q| q.pop_front())
    }

    fn queued(&self) -> impl Iterator<Item = usize> + '_ {
        self.queues.iter().flat_map(|q| q.iter().copied())
    }
}

impl MlfqGil {
    /// The current level of a registered thread (for tests and diagnostics).
    pub fn level_of(&self, t: &MlfqThread) -> usize {
        lock(&self.sched).threads[t.id].level
    }

    /// How many threads are queued for the GIL (for tests and diagnostics).
    pub fn queued_len(&self) -> usize {
        lock(&self.sched).queued().count()
    }

    /// Looks at the holder on behalf of queued waiter `me`: sets the drop request if one is
    /// due now, otherwise returns when it will next be due.
    fn evaluate(&self, s: &mut Sched, me: usize, now: Instant) -> Option<Instant> {
        s.maybe_boost(now, self);
        let h = s.holder?;
        let (hl, ml) = (s.threads[h].level, s.threads[me].level);
        let quantum_end = s.since + self.quanta[hl];
        if ml < hl || now >= quantum_end {
            self.drop_request.store(true, Ordering::Relaxed);
            return None;
        }
        let mut due = quantum_end;
        if ml == hl && hl + 1 < self.quanta.len() {
            // The holder drops below us once its allotment is used up.
            let left = self.allotments[hl].saturating_sub(s.threads[h].used);
            due = due.min(now + left);
        }
        Some(due)
    }

    #[cold]
    fn wait_for_handoff(&self, t: &MlfqThread, mut deadline: Option<Instant>) {
        // Spin once per take, before the first park, as every design spins.
        let mut spin = self.spin;
        loop {
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if t.slot.wait(std::mem::take(&mut spin), timeout) == Wake::Granted {
                return;
            }
            let mut s = lock(&self.sched);
            if s.holder == Some(t.id) {
                // Granted between the wake-up and taking the lock; consume the grant.
                let _ = t.slot.try_take();
                return;
            }
            let now = Instant::now();
            deadline = self.evaluate(&mut s, t.id, now);
            s.threads[t.id].deadline = deadline;
        }
    }
}

impl Gil for MlfqGil {
    type Thread = MlfqThread;
    const NAME: &'static str = "mlfq";
    const MODELS: &'static str = "multilevel feedback queue scheduler: short holders (I/O) first, direct hand-off, periodic boost";
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
        MlfqGil {
            sched: Mutex::new(Sched {
                threads: Vec::new(),
                queues: (0..levels).map(|_| VecDeque::new()).collect(),
                holder: None,
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
            spin: p.spin,
        }
    }

    fn preemption_period(p: &GilParams) -> Option<(Duration, &'static str)> {
        Some((p.quanta[0], "quanta"))
    }

    fn register(&self) -> MlfqThread {
        let mut s = lock(&self.sched);
        let slot = Arc::new(Slot::new());
        s.threads.push(ThreadSched {
            level: 0,
            used: Duration::ZERO,
            demotions: 0,
            slot: slot.clone(),
            deadline: None,
        });
        MlfqThread {
            id: s.threads.len() - 1,
            slot,
        }
    }

    fn take(&self, t: &mut MlfqThread) {
        let mut s = lock(&self.sched);
        let now = Instant::now();
        s.maybe_boost(now, self);
        if s.holder.is_none() {
            s.holder = Some(t.id);
            s.since = now;
            s.charged = now;
            return;
        }
        let level = s.threads[t.id].level;
        s.queues[level].push_back(t.id);
        let deadline = self.evaluate(&mut s, t.id, now);
        s.threads[t.id].deadline = deadline;
        drop(s);
        self.wait_for_handoff(t, deadline);
    }

    fn release(&self, t: &mut MlfqThread, _why: Release) {
        let mut s = lock(&self.sched);
        let now = Instant::now();
        s.maybe_boost(now, self);
        debug_assert_eq!(s.holder, Some(t.id));
        s.holder = None;
        self.drop_request.store(false, Ordering::Relaxed);
        let Some(next) = s.pop_best() else { return };
        s.holder = Some(next);
        s.since = now;
        s.charged = now;
        s.handoffs += 1;
        s.threads[next].deadline = None;
        s.threads[next].slot.grant();
        // Waiters timed their next look on the previous holder; those that would look later
        // than the new holder's quantum allows (or not at all) must look again now.
        let due = now + self.quanta[s.threads[next].level];
        for &w in s.queues.iter().flatten() {
            let t = &s.threads[w];
            if t.deadline.is_none_or(|d| d > due) {
                t.slot.poke();
            }
        }
    }

    #[inline(always)]
    fn check(&self, _t: &mut MlfqThread) -> bool {
        self.drop_request.load(Ordering::Relaxed)
    }

    fn thread_stats(&self, t: &MlfqThread) -> Vec<(&'static str, u64)> {
        let s = lock(&self.sched);
        let th = &s.threads[t.id];
        vec![("level", th.level as u64), ("demotions", th.demotions)]
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        let s = lock(&self.sched);
        vec![("boosts", s.boosts), ("handoffs", s.handoffs)]
    }
}
