//! The design's slow path: taking and releasing the GIL through the scheduler, and what a
//! waiter does meanwhile (deciding when to ask the holder to drop, waiting for its hand-off).

use std::time::Duration;

use quanta::Instant;

use super::levels::Sched;
use super::word::{fast_holder, held_by, FREE, SCHED};
use super::{MlfqGil, MlfqThread};
use crate::gil::Release;
use crate::sync::{lock, Ordering};

impl MlfqGil {
    /// Whether `me`, asking for the GIL, may take it back from `holder`: `me` released it for
    /// a blocking call, `holder` was handed it and has not started running yet, and `me` is
    /// more urgent (a higher level: it would preempt `holder` at once anyway, so snatching
    /// only saves the wake-up in between), or equally urgent and `holder` has not been
    /// overtaken before (the bound that keeps snatching from starving an equal).
    pub(super) fn may_snatch(&self, s: &Sched, me: usize, holder: usize) -> bool {
        let (ml, hl) = (s.threads[me].level, s.threads[holder].level);
        !s.started && s.prev == Some(me) && (ml < hl || (ml == hl && !s.threads[holder].snatched))
    }

    /// Looks at the holder on behalf of queued waiter `me`: sets the drop request if one is
    /// due now, otherwise returns when it will next be due.
    pub(super) fn evaluate(&self, s: &mut Sched, me: usize, now: Instant) -> Option<Instant> {
        s.maybe_boost(now, self);
        let h = s.holder?;
        let (hl, ml) = (s.threads[h].level, s.threads[me].level);
        if ml < hl {
            // Higher priority than the holder: preempt at once.
            s.priority_preempt = true;
            self.drop_request.store(true, Ordering::Relaxed);
            return None;
        }
        if !s.started {
            // The holder has not started yet: its quantum has not begun.
            return Some(now + self.quanta[hl]);
        }
        // Until the holder sinks below this waiter's level: the rest of its allotment.
        let sinks = if hl + 1 < self.quanta.len() {
            Some(now + self.allotments[hl].saturating_sub(s.threads[h].used))
        } else {
            None
        };
        if ml > hl {
            // Lower priority: never take the GIL from a higher-priority holder (it would be
            // preempted straight back); look again when it sinks (or at the next boost).
            let boost = s.last_boost + self.boost_interval;
            return Some(sinks.map_or(boost, |t| t.min(boost)));
        }
        // Equal priority: round robin by quantum.
        let quantum_end = s.since + self.quanta[hl];
        if now >= quantum_end {
            self.drop_request.store(true, Ordering::Relaxed);
            return None;
        }
        Some(sinks.map_or(quantum_end, |t| t.min(quantum_end)))
    }

    /// How long waiter `me` waits actively before it parks: after asking the holder to drop
    /// while first in line, the hand-off follows at the holder's next eval-breaker check, far
    /// sooner than a parked thread would wake, so it waits for it (at most `preempt_spin`).
    pub(super) fn preempt_spin(
        &self,
        s: &mut Sched,
        me: usize,
        deadline: Option<Instant>,
    ) -> Duration {
        let asked = deadline.is_none() && self.drop_request.load(Ordering::Relaxed);
        if asked && !self.preempt_spin.is_zero() && s.first_in_line() == Some(me) {
            s.preempt_spins += 1;
            self.preempt_spin
        } else {
            Duration::ZERO
        }
    }

    #[cold]
    pub(super) fn take_slow(&self, t: &mut MlfqThread) {
        let mut s = lock(&self.sched);
        self.fold(&mut s, t.id);
        let word = self.word.fetch_or(SCHED, Ordering::AcqRel);
        let now = Instant::now();
        if word == FREE {
            assert!(s.holder.is_none() && s.queued().next().is_none());
            // The fast holder left between our CAS and here; nobody waits: hold through the
            // fast path (the word held SCHED only while we looked).
            t.fast.begin(self.clock.raw());
            self.word.store(held_by(t.id), Ordering::Release);
            t.held_fast = true;
            t.fast_takes += 1;
            return;
        }
        if let Some(h) = fast_holder(word) {
            self.adopt_fast_holder(&mut s, h);
        }
        s.maybe_boost(now, self);
        match s.holder {
            None => {
                s.start_holding(t.id, now);
                return;
            }
            Some(h) if self.may_snatch(&s, t.id, h) => {
                // Back from a blocking call before the thread it handed the GIL to has
                // started: take it back; that thread keeps its place at the head of its queue.
                let level = s.threads[h].level;
                s.queues[level].push_front(h);
                s.threads[h].snatched = true;
                s.snatches += 1;
                s.start_holding(t.id, now);
                // A drop request set so far was a waiter's preemption of `h` (which had not
                // started): it was meant for `h`, not for this thread, which that waiter may
                // not outrank. The waiters look again at the new holder (`h` among them).
                s.priority_preempt = false;
                self.drop_request.store(false, Ordering::Relaxed);
                self.poke_late_waiters(&s, now);
                return;
            }
            Some(_) => {}
        }
        let level = s.threads[t.id].level;
        match s.threads[t.id].resume {
            // Preempted: back to the head of its level to finish its quantum.
            Some((l, _)) if l == level => s.queues[level].push_front(t.id),
            _ => s.queues[level].push_back(t.id),
        }
        let deadline = self.evaluate(&mut s, t.id, now);
        s.threads[t.id].deadline = deadline;
        // Spin once per take, before the first park, as every design spins (`spin`), or
        // longer when this take asked the holder to drop (`mlfq_preempt_spin`).
        let spin = self.spin.max(self.preempt_spin(&mut s, t.id, deadline));
        drop(s);
        self.wait_for_handoff(t, deadline, spin);
    }

    #[cold]
    pub(super) fn release_slow(&self, t: &mut MlfqThread, why: Release) {
        let mut s = lock(&self.sched);
        let now = Instant::now();
        s.maybe_boost(now, self);
        assert_eq!(s.holder, Some(t.id), "mlfq: a release by a thread that does not hold");
        s.threads[t.id].last_held = now;
        let preempted = why == Release::Forced && s.priority_preempt && s.started;
        s.threads[t.id].resume =
            preempted.then(|| (s.threads[t.id].level, now.saturating_duration_since(s.since)));
        s.priority_preempt = false;
        s.holder = None;
        self.drop_request.store(false, Ordering::Relaxed);
        let Some(next) = s.pop_best() else {
            // Nobody waits: back to the fast path.
            self.word.store(FREE, Ordering::Release);
            return;
        };
        s.holder = Some(next);
        s.started = false;
        s.prev = (why == Release::Blocking).then_some(t.id);
        s.since = now;
        s.charged = now;
        s.handoffs += 1;
        s.threads[next].deadline = None;
        s.threads[next].slot.grant();
        self.poke_late_waiters(&s, now);
    }

    /// After a change of holder: waiters timed their next look on the previous holder; those
    /// that would look later than the new holder's quantum allows (or not at all: they had
    /// asked the previous holder to drop) must look again now.
    pub(super) fn poke_late_waiters(&self, s: &Sched, now: Instant) {
        let Some(h) = s.holder else { return };
        let due = now + self.quanta[s.threads[h].level];
        for &w in s.queues.iter().flatten() {
            let t = &s.threads[w];
            if t.deadline.is_none_or(|d| d > due) {
                t.slot.poke();
            }
        }
    }

    #[cold]
    pub(super) fn wait_for_handoff(
        &self,
        t: &MlfqThread,
        mut deadline: Option<Instant>,
        mut spin: Duration,
    ) {
        loop {
            let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            // A grant is only a hint: the GIL may have been snatched back since, so every
            // wake-up looks at the scheduler's state.
            let _ = t.slot.wait(spin, timeout);
            let mut s = lock(&self.sched);
            let now = Instant::now();
            if s.holder == Some(t.id) {
                // Consume a grant that arrived after the wake-up, and start running: the
                // quantum and the charging begin now, not at the grant.
                let _ = t.slot.try_take();
                s.start_holding(t.id, now);
                return;
            }
            deadline = self.evaluate(&mut s, t.id, now);
            s.threads[t.id].deadline = deadline;
            spin = self.preempt_spin(&mut s, t.id, deadline);
        }
    }
}
