//! The levels and their queues, and the accounting that moves threads between them: hold
//! time charged (contended and uncontended), demotion, boosts.

use std::collections::VecDeque;
use std::time::Duration;

use quanta::Instant;

use super::word::FastHolds;
use super::{MlfqGil, MlfqThread};
use crate::sync::{lock, Arc, Ordering};
use crate::gil::handoff::Slot;

pub(super) struct ThreadSched {
    pub(super) level: usize,
    /// Hold time charged at the current level.
    pub(super) used: Duration,
    pub(super) demotions: u64,
    pub(super) slot: Arc<Slot>,
    pub(super) fast: Arc<FastHolds>,
    /// How much of `fast.total` has been charged.
    pub(super) folded: u64,
    /// While queued: when this waiter will next look at the holder (None: not timed, i.e.
    /// it already requested a drop or needs no timer).
    pub(super) deadline: Option<Instant>,
    /// When it last held the GIL (for `boost = "starved"`).
    pub(super) last_held: Instant,
    /// It was handed the GIL and then overtaken by a snatch of an equally urgent thread:
    /// until it has run, no equally urgent thread can overtake it again (so a thread that
    /// blocks briefly and often cannot starve it).
    pub(super) snatched: bool,
    /// Preempted by a more urgent waiter: the level it was at and the part of its quantum it
    /// had used. It goes back to the head of its queue and finishes that quantum, as a
    /// preempted process does in an OS scheduler, instead of losing its turn to the next
    /// thread of its level.
    pub(super) resume: Option<(usize, Duration)>,
}

pub(super) struct Sched {
    pub(super) threads: Vec<ThreadSched>,
    pub(super) queues: Vec<VecDeque<usize>>,
    pub(super) holder: Option<usize>,
    /// Whether the holder has started running. A hand-off names the next holder at once, but
    /// a parked thread takes tens of microseconds to wake: until it does, nobody is charged,
    /// and the thread that released for a blocking call may snatch the GIL back.
    pub(super) started: bool,
    /// The thread that last released for a blocking call, while the thread it handed the GIL
    /// to has not started: it may snatch the GIL back (as in Nir Aides' BFS scheduler).
    pub(super) prev: Option<usize>,
    pub(super) snatches: u64,
    /// The drop request was set by a waiter more urgent than the holder (a preemption, not
    /// the end of a quantum).
    pub(super) priority_preempt: bool,
    pub(super) preempt_spins: u64,
    /// When the holder started running: the start of its quantum.
    pub(super) since: Instant,
    /// Up to when the holder's hold time has been charged.
    pub(super) charged: Instant,
    pub(super) last_boost: Instant,
    pub(super) boosts: u64,
    pub(super) handoffs: u64,
}

impl Sched {
    /// Charges the holder for the time since it was last charged, demoting it through as many
    /// levels as that time covers.
    pub(super) fn charge(&mut self, now: Instant, allotments: &[Duration]) {
        let Some(h) = self.holder else { return };
        let add = now.saturating_duration_since(self.charged);
        self.charged = now;
        if !self.started {
            // Handed over but not running yet: its wake-up is not its hold time.
            return;
        }
        self.charge_thread(h, add, allotments);
    }

    /// Charges thread `i` for `add` of hold time at its level, demoting it through as many
    /// levels as that covers.
    pub(super) fn charge_thread(&mut self, i: usize, mut add: Duration, allotments: &[Duration]) {
        let last = allotments.len() - 1;
        let t = &mut self.threads[i];
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

    pub(super) fn maybe_boost(&mut self, now: Instant, p: &MlfqGil) {
        self.charge(now, &p.allotments);
        if now.saturating_duration_since(self.last_boost) < p.boost_interval {
            return;
        }
        self.last_boost = now;
        self.boosts += 1;
        p.boost_due.store(p.next_boost_raw(), Ordering::Relaxed);
        // Uncontended holds before the boost count before it.
        for i in 0..self.threads.len() {
            p.fold(self, i);
        }
        for (i, t) in self.threads.iter_mut().enumerate() {
            let starved = self.holder != Some(i)
                && now.saturating_duration_since(t.last_held) >= p.boost_interval;
            if p.boost_all || starved {
                t.level = 0;
                t.used = Duration::ZERO;
            }
        }
        // Requeue the waiters by their (new) levels, keeping their relative order: higher
        // levels first, FIFO within each.
        let mut all = VecDeque::new();
        for q in &mut self.queues {
            all.append(q);
        }
        for w in all {
            let level = self.threads[w].level;
            self.queues[level].push_back(w);
        }
    }

    /// Makes `who` the holder, running from `now`.
    pub(super) fn start_holding(&mut self, who: usize, now: Instant) {
        self.holder = Some(who);
        self.started = true;
        self.prev = None;
        // A preempted thread finishes the quantum it had begun.
        self.since = match self.threads[who].resume.take() {
            Some((level, used)) if level == self.threads[who].level => now - used,
            _ => now,
        };
        self.charged = now;
        self.threads[who].last_held = now;
        self.threads[who].snatched = false;
    }

    pub(super) fn pop_best(&mut self) -> Option<usize> {
        self.queues.iter_mut().find_map(|q| q.pop_front())
    }

    pub(super) fn queued(&self) -> impl Iterator<Item = usize> + '_ {
        self.queues.iter().flat_map(|q| q.iter().copied())
    }

    /// The waiter the next hand-off goes to.
    pub(super) fn first_in_line(&self) -> Option<usize> {
        self.queues.iter().find_map(|q| q.front().copied())
    }
}

impl MlfqGil {
    /// Charges thread `i` for the uncontended holds it finished since it was last folded in.
    pub(super) fn fold(&self, s: &mut Sched, i: usize) {
        let fast = &s.threads[i].fast;
        // `total` is published after `last_release`: read in the other order.
        let total = fast.total.load(Ordering::Acquire);
        let last_release = fast.last_release.load(Ordering::Relaxed);
        let add = total.saturating_sub(s.threads[i].folded);
        if add == 0 {
            return;
        }
        s.threads[i].folded = total;
        let released = self.clock.scaled(last_release);
        let t = &mut s.threads[i];
        t.last_held = t.last_held.max(released);
        // It held the GIL since any preemption: the quantum it had begun is over.
        t.resume = None;
        s.charge_thread(i, self.clock.delta(0, add), &self.allotments);
    }

    /// A waiter found thread `h` holding the GIL through the fast path (the word now says
    /// SCHED): make it the scheduler's holder, running and charged since its hold began.
    pub(super) fn adopt_fast_holder(&self, s: &mut Sched, h: usize) {
        self.fold(s, h);
        let began = self.clock.scaled(s.threads[h].fast.start.load(Ordering::Relaxed));
        s.holder = Some(h);
        s.started = true;
        s.prev = None;
        s.since = began;
        s.charged = began;
        s.threads[h].last_held = began;
        s.threads[h].resume = None;
    }

    /// Holds a boost that fell due during an uncontended stretch (the GIL is free or held
    /// through the fast path, so only the levels change).
    #[cold]
    pub(super) fn boost_uncontended(&self, t: &MlfqThread) {
        let mut s = lock(&self.sched);
        self.fold(&mut s, t.id);
        s.maybe_boost(Instant::now(), self);
    }

    /// The raw clock reading at which the next boost falls due, `boost_interval` from now.
    pub(super) fn next_boost_raw(&self) -> u64 {
        self.clock.raw().saturating_add(self.boost_interval_raw)
    }
}
