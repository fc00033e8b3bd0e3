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

use std::collections::VecDeque;
use std::time::Duration;

// The scheduler charges hold time at every take and release: the TSC-based clock costs a
// fraction of `std::time::Instant::now` on the VMs gilbench runs on (see docs/costs.md).
use quanta::{Clock, Instant};

use super::handoff::Slot;
use super::{Gil, GilParams, Release};
use crate::sync::{lock, Arc, AtomicBool, AtomicU64, Mutex, Ordering};

/// The lock word: the GIL is free and nobody waits (take it with one CAS).
const FREE: u64 = 0;
/// The lock word's low bit: the scheduler decides (someone waits or a hand-off is under way);
/// take and release go through its mutex.
const SCHED: u64 = 1;

/// The lock word of thread `id` holding the GIL through the fast path.
fn held_by(id: usize) -> u64 {
    (id as u64 + 1) << 1
}

/// The thread holding the GIL through the fast path, if the word says so.
fn fast_holder(word: u64) -> Option<usize> {
    (word != FREE && word & SCHED == 0).then(|| (word >> 1) as usize - 1)
}

/// `d` in `clock`'s raw units (TSC ticks, or nanoseconds where it has no TSC).
fn raw_units(clock: &Clock, d: Duration) -> u64 {
    const PROBE: u64 = 1 << 32;
    let probe_ns = clock.delta_as_nanos(0, PROBE).max(1);
    let raw = d.as_nanos() * u128::from(PROBE) / u128::from(probe_ns);
    u64::try_from(raw).unwrap_or(u64::MAX)
}

/// A thread's uncontended holds, as raw TSC readings the scheduler converts when it folds
/// them in. Written only by the thread itself; read under the scheduler's mutex.
#[derive(Default)]
struct FastHolds {
    /// When the current (or last) fast-path hold began.
    start: AtomicU64,
    /// The sum of its finished fast-path holds.
    total: AtomicU64,
    /// When its last fast-path hold ended.
    last_release: AtomicU64,
}

impl FastHolds {
    /// Publishes the start of a hold, before the take's CAS (which releases it) so that a
    /// waiter that sees the word taken sees the start too.
    #[inline]
    fn begin(&self, now: u64) {
        self.start.store(now, Ordering::Relaxed);
    }

    /// Adds the hold that ends at `end` to the total. Only the owner writes these cells, so
    /// reading its own values back needs no ordering; `total` is published last.
    #[inline]
    fn end(&self, end: u64) {
        let held = end.saturating_sub(self.start.load(Ordering::Relaxed));
        self.last_release.store(end, Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed) + held;
        self.total.store(total, Ordering::Release);
    }
}

struct ThreadSched {
    level: usize,
    /// Hold time charged at the current level.
    used: Duration,
    demotions: u64,
    slot: Arc<Slot>,
    fast: Arc<FastHolds>,
    /// How much of `fast.total` has been charged.
    folded: u64,
    /// While queued: when this waiter will next look at the holder (None: not timed, i.e.
    /// it already requested a drop or needs no timer).
    deadline: Option<Instant>,
    /// When it last held the GIL (for `boost = "starved"`).
    last_held: Instant,
    /// It was handed the GIL and then overtaken by a snatch of an equally urgent thread:
    /// until it has run, no equally urgent thread can overtake it again (so a thread that
    /// blocks briefly and often cannot starve it).
    snatched: bool,
    /// Preempted by a more urgent waiter: the level it was at and the part of its quantum it
    /// had used. It goes back to the head of its queue and finishes that quantum, as a
    /// preempted process does in an OS scheduler, instead of losing its turn to the next
    /// thread of its level.
    resume: Option<(usize, Duration)>,
}

struct Sched {
    threads: Vec<ThreadSched>,
    queues: Vec<VecDeque<usize>>,
    holder: Option<usize>,
    /// Whether the holder has started running. A hand-off names the next holder at once, but
    /// a parked thread takes tens of microseconds to wake: until it does, nobody is charged,
    /// and the thread that released for a blocking call may snatch the GIL back.
    started: bool,
    /// The thread that last released for a blocking call, while the thread it handed the GIL
    /// to has not started: it may snatch the GIL back (as in Nir Aides' BFS scheduler).
    prev: Option<usize>,
    snatches: u64,
    /// The drop request was set by a waiter more urgent than the holder (a preemption, not
    /// the end of a quantum).
    priority_preempt: bool,
    preempt_spins: u64,
    /// When the holder started running: the start of its quantum.
    since: Instant,
    /// Up to when the holder's hold time has been charged.
    charged: Instant,
    last_boost: Instant,
    boosts: u64,
    handoffs: u64,
}

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

impl Sched {
    /// Charges the holder for the time since it was last charged, demoting it through as many
    /// levels as that time covers.
    fn charge(&mut self, now: Instant, allotments: &[Duration]) {
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
    fn charge_thread(&mut self, i: usize, mut add: Duration, allotments: &[Duration]) {
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

    fn maybe_boost(&mut self, now: Instant, p: &MlfqGil) {
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
    fn start_holding(&mut self, who: usize, now: Instant) {
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

    fn pop_best(&mut self) -> Option<usize> {
        self.queues.iter_mut().find_map(|q| q.pop_front())
    }

    fn queued(&self) -> impl Iterator<Item = usize> + '_ {
        self.queues.iter().flat_map(|q| q.iter().copied())
    }

    /// The waiter the next hand-off goes to.
    fn first_in_line(&self) -> Option<usize> {
        self.queues.iter().find_map(|q| q.front().copied())
    }
}

impl MlfqGil {
    /// Charges thread `i` for the uncontended holds it finished since it was last folded in.
    fn fold(&self, s: &mut Sched, i: usize) {
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
    fn adopt_fast_holder(&self, s: &mut Sched, h: usize) {
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
    fn boost_uncontended(&self, t: &MlfqThread) {
        let mut s = lock(&self.sched);
        self.fold(&mut s, t.id);
        s.maybe_boost(Instant::now(), self);
    }

    /// The raw clock reading at which the next boost falls due, `boost_interval` from now.
    fn next_boost_raw(&self) -> u64 {
        self.clock.raw().saturating_add(self.boost_interval_raw)
    }

    /// Whether `me`, asking for the GIL, may take it back from `holder`: `me` released it for
    /// a blocking call, `holder` was handed it and has not started running yet, and `me` is
    /// more urgent (a higher level: it would preempt `holder` at once anyway, so snatching
    /// only saves the wake-up in between), or equally urgent and `holder` has not been
    /// overtaken before (the bound that keeps snatching from starving an equal).
    fn may_snatch(&self, s: &Sched, me: usize, holder: usize) -> bool {
        let (ml, hl) = (s.threads[me].level, s.threads[holder].level);
        !s.started && s.prev == Some(me) && (ml < hl || (ml == hl && !s.threads[holder].snatched))
    }

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

    /// Looks at the holder on behalf of queued waiter `me`: sets the drop request if one is
    /// due now, otherwise returns when it will next be due.
    fn evaluate(&self, s: &mut Sched, me: usize, now: Instant) -> Option<Instant> {
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
    fn preempt_spin(&self, s: &mut Sched, me: usize, deadline: Option<Instant>) -> Duration {
        let asked = deadline.is_none() && self.drop_request.load(Ordering::Relaxed);
        if asked && !self.preempt_spin.is_zero() && s.first_in_line() == Some(me) {
            s.preempt_spins += 1;
            self.preempt_spin
        } else {
            Duration::ZERO
        }
    }

    #[cold]
    fn take_slow(&self, t: &mut MlfqThread) {
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
    fn release_slow(&self, t: &mut MlfqThread, why: Release) {
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
    fn poke_late_waiters(&self, s: &Sched, now: Instant) {
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
    fn wait_for_handoff(&self, t: &MlfqThread, mut deadline: Option<Instant>, mut spin: Duration) {
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
mod tests {
    use super::*;

    fn params(boost_all: bool) -> GilParams {
        GilParams {
            quanta: vec![Duration::from_millis(1), Duration::from_millis(5)],
            allotments: vec![Duration::from_millis(10), Duration::from_millis(50)],
            boost_interval: Duration::from_millis(100),
            boost_all,
            ..GilParams::default()
        }
    }

    fn gil(boost_all: bool) -> MlfqGil {
        MlfqGil::new(&params(boost_all))
    }

    /// Switches the GIL, held through the fast path, to the scheduler (as a waiter arriving
    /// would), so that a test can queue waiters by hand.
    fn to_sched(g: &MlfqGil) -> crate::sync::MutexGuard<'_, Sched> {
        let mut s = lock(&g.sched);
        if let Some(h) = fast_holder(g.word.fetch_or(SCHED, Ordering::AcqRel)) {
            g.adopt_fast_holder(&mut s, h);
        }
        s
    }

    /// The scheduler, on its own clock: `a` holds, `b` waits in the queue.
    fn a_holds_b_waits(g: &MlfqGil, t0: Instant) -> (usize, usize) {
        let (a, b) = (g.register().id, g.register().id);
        let mut s = lock(&g.sched);
        s.last_boost = t0;
        s.start_holding(a, t0);
        s.queues[0].push_back(b);
        (a, b)
    }

    /// Hold time is charged from when the new holder runs, not from the grant: a wake-up of
    /// 50 ms (far past the 10 ms allotment) followed by 1 ms of holding keeps it at the top.
    #[test]
    fn hold_time_is_charged_from_running_not_from_the_grant() {
        let g = gil(true);
        let t0 = Instant::now();
        let (a, b) = a_holds_b_waits(&g, t0);
        let mut s = lock(&g.sched);
        // a releases at t0 + 1 ms: b is handed the GIL but has not started.
        s.charge(t0 + Duration::from_millis(1), &g.allotments);
        s.holder = s.pop_best();
        s.started = false;
        s.since = t0 + Duration::from_millis(1);
        s.charged = s.since;
        assert_eq!(s.holder, Some(b));
        // It is still waking 50 ms later: nothing is charged.
        s.charge(t0 + Duration::from_millis(51), &g.allotments);
        assert_eq!(s.threads[b].used, Duration::ZERO);
        // It runs from then on, for 1 ms.
        s.start_holding(b, t0 + Duration::from_millis(51));
        s.charge(t0 + Duration::from_millis(52), &g.allotments);
        assert_eq!(s.threads[b].used, Duration::from_millis(1));
        assert_eq!((s.threads[a].level, s.threads[b].level), (0, 0));
    }

    /// `boost = "starved"` returns to the top only threads that have not held the GIL for a
    /// whole boost interval; `boost = "all"` returns everyone.
    #[test]
    fn the_boost_policy_decides_who_returns_to_the_top() {
        for boost_all in [false, true] {
            let g = gil(boost_all);
            let t0 = Instant::now();
            let (a, b) = a_holds_b_waits(&g, t0);
            let mut s = lock(&g.sched);
            for t in [a, b] {
                s.threads[t].level = 1;
            }
            s.queues[0].clear();
            s.queues[1].push_back(b);
            // a held the GIL until recently; b last held it at t0.
            s.threads[a].last_held = t0 + Duration::from_millis(90);
            s.threads[b].last_held = t0;
            s.holder = None;
            s.maybe_boost(t0 + Duration::from_millis(101), &g);
            let levels = (s.threads[a].level, s.threads[b].level);
            if boost_all {
                assert_eq!(levels, (0, 0));
            } else {
                assert_eq!(levels, (1, 0), "only the starved thread is boosted");
            }
            assert_eq!(
                s.queues[0].front(),
                Some(&b),
                "the boosted waiter is requeued"
            );
        }
    }

    /// A more urgent thread back from a blocking call may snatch the GIL from a woken thread
    /// as often as it asks first; an equally urgent one only once before that thread has run.
    #[test]
    fn only_a_more_urgent_thread_snatches_twice() {
        for waiter_level in [1, 0] {
            let g = gil(true);
            let (mut h, w) = (g.register(), g.register());
            g.take(&mut h);
            {
                // `w` waits at `waiter_level` (no thread behind it: it never wakes to run).
                let mut s = to_sched(&g);
                s.threads[w.id].level = waiter_level;
                s.queues[waiter_level].push_back(w.id);
            }
            g.release(&mut h, Release::Blocking);
            g.take(&mut h);
            g.release(&mut h, Release::Blocking);
            let s = lock(&g.sched);
            assert_eq!((s.holder, s.started), (Some(w.id), false));
            assert_eq!(s.snatches, 1);
            assert_eq!(
                g.may_snatch(&s, h.id, w.id),
                waiter_level == 1,
                "waiter at level {waiter_level}"
            );
        }
    }

    /// A thread preempted by a more urgent one goes back to the head of its level (ahead of
    /// an equal that was already waiting) and finishes the quantum it had begun.
    #[test]
    fn a_preempted_thread_resumes_at_the_head_of_its_level() {
        let g = Arc::new(gil(true));
        let (mut a, b, mut e) = (g.register(), g.register(), g.register());
        g.take(&mut a);
        let t0 = Instant::now();
        {
            let mut s = to_sched(&g);
            s.threads[a.id].level = 1;
            s.threads[b.id].level = 1;
            s.queues[1].push_back(b.id);
            // `a` has used 2 ms of its 5 ms quantum.
            s.since = t0 - Duration::from_millis(2);
            s.charged = t0;
        }
        // `e`, at the top, asks for the GIL (a preemption) and holds it until `a` and `b`
        // both wait.
        let g2 = g.clone();
        let urgent = std::thread::spawn(move || {
            g2.take(&mut e);
            while g2.queued_len() < 2 {
                std::thread::yield_now();
            }
            g2.release(&mut e, Release::Exit);
        });
        while !g.check(&mut a) {
            std::thread::yield_now();
        }
        g.release(&mut a, Release::Forced);
        // `a` asks again at once and must get the GIL back before `b` (which, having no
        // thread, would keep it for ever: hence the watch from here).
        let (g3, a_id, b_id) = (g.clone(), a.id, b.id);
        std::thread::spawn(move || g3.take(&mut a));
        urgent.join().unwrap();
        let start = std::time::Instant::now();
        let holder = loop {
            let s = lock(&g.sched);
            let settled = s.holder == Some(b_id) || (s.holder == Some(a_id) && s.started);
            if settled || start.elapsed() > Duration::from_secs(5) {
                break s.holder;
            }
            drop(s);
            std::thread::yield_now();
        };
        assert_eq!(holder, Some(a_id), "b ({b_id}) got the GIL first");
        let s = lock(&g.sched);
        assert_eq!(s.queues[1].front(), Some(&b_id), "b still waits");
        let used = s.charged.saturating_duration_since(s.since);
        assert!(
            used >= Duration::from_millis(2),
            "a resumed its quantum with {used:?} of it used"
        );
    }

    /// A snatch drops a drop request meant for the overtaken thread: R (level 0) releases for
    /// a blocking call and h (level 2) is handed the GIL; W (level 1) arrives and, more urgent
    /// than h, asks for a drop; R snatches the GIL back. W does not outrank R, so R must not
    /// be asked to drop.
    #[test]
    fn a_snatch_drops_a_request_meant_for_the_overtaken_thread() {
        // Three levels (1, 5, 20 ms quanta), no boosts.
        let g = Arc::new(MlfqGil::new(&GilParams {
            boost_interval: Duration::from_secs(1000),
            ..GilParams::default()
        }));
        let (mut r, h, mut w) = (g.register(), g.register(), g.register());
        g.take(&mut r);
        {
            let mut s = to_sched(&g);
            s.threads[h.id].level = 2;
            s.threads[w.id].level = 1;
            s.queues[2].push_back(h.id);
        }
        g.release(&mut r, Release::Blocking);
        let g2 = g.clone();
        let waiter = std::thread::spawn(move || {
            g2.take(&mut w);
            g2.release(&mut w, Release::Exit);
        });
        let t0 = std::time::Instant::now();
        while !(g.queued_len() == 1 && g.drop_request.load(Ordering::Relaxed)) {
            assert!(t0.elapsed() < Duration::from_secs(10), "W never asked for a drop");
            std::thread::yield_now();
        }
        g.take(&mut r);
        let snatched = stat(g.stats(), "snatches");
        // Time for W to look again (well within R's 10 ms allotment at the top).
        std::thread::sleep(Duration::from_millis(2));
        let asked = g.check(&mut r);
        g.release(&mut r, Release::Exit);
        waiter.join().unwrap();
        assert_eq!(snatched, 1, "R did not snatch");
        assert!(!asked, "R was asked to drop for W, which it outranks");
    }

    /// The fallback fast hold of the slow path (the fast holder left between the take's CAS
    /// and the scheduler's look) is a fast take like any other.
    #[test]
    fn the_slow_paths_fast_hold_counts_as_a_fast_take() {
        let g = gil_without_boosts();
        let mut t = g.register();
        g.take_slow(&mut t);
        assert_eq!(g.word.load(Ordering::Relaxed), held_by(t.id));
        g.release(&mut t, Release::Blocking);
        assert_eq!(t.fast_takes, 1);
    }

    fn stat(stats: Vec<(&'static str, u64)>, name: &str) -> u64 {
        stats.into_iter().find(|(k, _)| *k == name).unwrap().1
    }

    /// `gil(true)` without boosts (a boost would reset the levels a test looks at).
    fn gil_without_boosts() -> MlfqGil {
        MlfqGil::new(&GilParams {
            boost_interval: Duration::from_secs(1000),
            ..params(true)
        })
    }

    /// Uncontended take and release go through the lock word alone: the scheduler sees no
    /// holder and no hand-off, and the word is free again after the release.
    #[test]
    fn an_uncontended_take_and_release_bypass_the_scheduler() {
        let g = gil_without_boosts();
        let mut t = g.register();
        for _ in 0..3 {
            g.take(&mut t);
            assert_eq!(g.word.load(Ordering::Relaxed), held_by(t.id));
            assert_eq!(lock(&g.sched).holder, None);
            g.release(&mut t, Release::Blocking);
            assert_eq!(g.word.load(Ordering::Relaxed), FREE);
        }
        assert_eq!(t.fast_takes, 3, "every take took the fast path");
        assert_eq!(stat(g.stats(), "handoffs"), 0);
    }

    fn spin_for(d: Duration) {
        let end = std::time::Instant::now() + d;
        while std::time::Instant::now() < end {
            std::hint::spin_loop();
        }
    }

    /// Uncontended holds count against the allotment like any other: 12 ms held in short
    /// fast-path holds sinks a thread below the 10 ms top level.
    #[test]
    fn uncontended_holds_are_charged() {
        let g = gil_without_boosts();
        let mut t = g.register();
        for _ in 0..12 {
            g.take(&mut t);
            spin_for(Duration::from_millis(1));
            g.release(&mut t, Release::Blocking);
        }
        assert_eq!(t.fast_takes, 12);
        assert_eq!(g.level_of(&t), 1);
    }

    /// A boost falls due while nobody waits: the first fast release after it holds it, as
    /// the scheduler's own paths would.
    #[test]
    fn a_boost_falls_due_without_waiters() {
        let g = MlfqGil::new(&GilParams {
            boost_interval: Duration::from_millis(200),
            ..params(true)
        });
        let mut t = g.register();
        g.take(&mut t);
        spin_for(Duration::from_millis(20));
        g.release(&mut t, Release::Blocking);
        std::thread::sleep(Duration::from_millis(250));
        g.take(&mut t);
        g.release(&mut t, Release::Blocking);
        assert_eq!(t.fast_takes, 2);
        let s = lock(&g.sched);
        assert!(s.boosts >= 1, "no boost was held");
        assert_eq!(s.threads[t.id].level, 0, "the boost returned it to the top");
    }

    /// A waiter that finds the GIL held through the fast path makes the holder the
    /// scheduler's, charged from the start of its hold: a holder that has held for 15 ms
    /// (past the 10 ms top allotment) is at level 1 at once (charged from the waiter's
    /// arrival instead, it would still be at the top).
    #[test]
    fn a_waiter_adopts_a_fast_holder_charged_from_the_start_of_its_hold() {
        let g = gil_without_boosts();
        let (mut a, mut b) = (g.register(), g.register());
        g.take(&mut a);
        spin_for(Duration::from_millis(15));
        let (word, level, asked) = std::thread::scope(|sc| {
            let g = &g;
            sc.spawn(move || {
                g.take(&mut b);
                g.release(&mut b, Release::Blocking);
            });
            let t0 = std::time::Instant::now();
            while g.queued_len() == 0 && t0.elapsed() < Duration::from_secs(10) {
                std::thread::yield_now();
            }
            let seen = (g.word.load(Ordering::Relaxed), g.level_of(&a), g.check(&mut a));
            // Release before asserting, so that a failure cannot leave `b` parked.
            g.release(&mut a, Release::Forced);
            seen
        });
        assert_eq!(word & SCHED, SCHED, "the waiter switched the word to the scheduler");
        assert_eq!(level, 1, "the holder was charged from the start of its hold");
        assert!(asked, "the waiter at the top asked for a drop");
        // Both done, nobody waits: the word is free for the fast path again.
        assert_eq!(g.word.load(Ordering::Relaxed), FREE);
        assert_eq!(stat(g.stats(), "handoffs"), 1);
    }

    /// The one active wait of mlfq's own (after asking the holder to drop, while first in
    /// line) is bounded by `mlfq_preempt_spin`: a waiter that preempts a holder that never
    /// checks (it sleeps) burns about that much CPU, then parks.
    #[test]
    fn the_preempt_spin_is_bounded() {
        for (spin, at_most) in [
            (Duration::ZERO, Duration::from_millis(3)),
            (Duration::from_millis(20), Duration::from_millis(35)),
        ] {
            let g = Arc::new(MlfqGil::new(&GilParams {
                mlfq_preempt_spin: spin,
                ..GilParams::default()
            }));
            let (mut holder, mut waiter) = (g.register(), g.register());
            g.take(&mut holder);
            lock(&g.sched).threads[holder.id].level = 2;
            let g2 = g.clone();
            let w = std::thread::spawn(move || {
                let t0 = crate::metrics::thread_cpu_time();
                g2.take(&mut waiter);
                let used = crate::metrics::thread_cpu_time() - t0;
                g2.release(&mut waiter, Release::Exit);
                used
            });
            std::thread::sleep(Duration::from_millis(150));
            assert!(g.check(&mut holder), "the waiter asked for a drop");
            g.release(&mut holder, Release::Exit);
            let used = w.join().unwrap();
            assert!(used < at_most, "spin {spin:?}: the waiter used {used:?} of CPU");
            if !spin.is_zero() {
                assert!(used >= spin / 4, "spin {spin:?}: it did not spin ({used:?})");
            }
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::cell::UnsafeCell;

    /// A preemption with three threads: `a` holds at level 1, `b` waits at level 1 and `e`
    /// arrives at the top and asks `a` to drop; `a`, at its check, releases (forced) and asks
    /// again at once, going back to the head of its level. In every interleaving: mutual
    /// exclusion, no deadlock or lost wake-up, everyone gets the GIL.
    #[test]
    fn mlfq_preemption_three_threads() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            // Periods far beyond the model's run: no branch may depend on the real clock
            // (loom replays each interleaving and needs the same choices every time).
            let long = Duration::from_secs(1000);
            let gil = Arc::new(MlfqGil::new(&GilParams {
                quanta: vec![long, long],
                allotments: vec![long, long],
                boost_interval: long,
                ..GilParams::default()
            }));
            let cell = Arc::new(UnsafeCell::new(0u32));
            let bump = |cell: &UnsafeCell<u32>| {
                // SAFETY: loom reports any concurrent access here as a failure.
                cell.with_mut(|v| unsafe { *v += 1 })
            };
            let (mut a, low, urgent) = (gil.register(), gil.register(), gil.register());
            gil.take(&mut a);
            {
                let mut s = lock(&gil.sched);
                s.threads[a.id].level = 1;
                s.threads[low.id].level = 1;
            }
            let spawn = |mut t: MlfqThread| {
                let (gil, cell) = (gil.clone(), cell.clone());
                loom::thread::spawn(move || {
                    gil.take(&mut t);
                    bump(&cell);
                    gil.release(&mut t, Release::Exit);
                })
            };
            let others = [spawn(low), spawn(urgent)];
            bump(&cell);
            if gil.check(&mut a) {
                gil.release(&mut a, Release::Forced);
                gil.take(&mut a);
                bump(&cell);
            }
            gil.release(&mut a, Release::Exit);
            for h in others {
                h.join().unwrap();
            }
            // SAFETY: every thread was joined.
            assert!(cell.with(|v| unsafe { *v }) >= 3);
        });
    }
}
