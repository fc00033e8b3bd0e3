//! `decay`: a scheduler GIL whose priorities come from decayed recent GIL usage, the
//! time-sharing idea of 4.4BSD (McKusick, Bostic, Karels, Quarterman, *The Design and
//! Implementation of the 4.4BSD Operating System*, 1996, §4.4: `p_estcpu` grows while a
//! process runs and decays, so its priority falls with its recent CPU use and recovers as
//! that use is forgotten) and of Solaris' TS class: a second answer to the article's call for
//! a scheduler that favours short GIL holders, with no periodic boost and so no cliff.
//!
//! * Each thread has a **share**: the part of the recent past in which it held the GIL,
//!   weighted by `exp(-age / tau)` (`tau` from `decay_halflife`, 50 ms). Holding for `dt`
//!   moves it towards 1 (`share = share * k + 1 - k`, `k = exp(-dt / tau)`), anything else
//!   towards 0 (`share * k`): continuous decay instead of 4.4BSD's once-a-second steps.
//! * On release the GIL is handed directly to the waiter with the least share (first come on
//!   ties): no barging, no re-acquire race.
//! * A waiter whose share is below the holder's by more than a band (1/32 of the range, the
//!   width of one of 4.4BSD's 32 run queues over its 128 priorities) is more urgent: it asks
//!   the holder to drop at once. An equally or less urgent waiter asks at the end of the
//!   holder's slice (`decay_slice`, 5 ms), and only once its share is no higher than the
//!   holder's (a CPU-bound holder's share rises while it holds and the waiters' fall, so
//!   CPU-bound threads take turns). Waiters keep the timer: each sleeps until the moment its
//!   request could fall due, which the two exponentials give in closed form.
//! * A hand-off names the next holder at once; a parked thread needs tens of microseconds to
//!   wake, and until it runs it is not charged. A more urgent thread that asks in that window
//!   (typically the I/O thread whose "blocking" call returned at once) takes the GIL back
//!   (Nir Aides' snatching, as in `bfs` and `mlfq`); the overtaken thread keeps its share and
//!   so its place.
//!
//! While nobody waits, take and release do not touch the scheduler: a lock word says "free",
//! "held by thread N" or "ask the scheduler", and an uncontended take or release is one
//! compare-and-swap plus one raw TSC read (parking_lot's fast path). A thread sums its
//! uncontended holds in its own handle; at its next contended take the scheduler charges them
//! as a duty cycle spread over the time since it last saw the thread. A waiter that finds the
//! GIL held through the fast path makes the holder the scheduler's, charged from the start of
//! its hold (published in the thread's own cell); holds before that adoption are not charged.
//!
//! # Fairness
//! Least recent use first. A thread that holds briefly and blocks (I/O) keeps a small share
//! and preempts CPU-bound holders at once, for as long as its share stays a band below
//! theirs; CPU-bound threads share the GIL in turns of about a slice. No thread starves: a
//! waiter's share only decays while others' rise as they hold, so a waiter with the largest
//! possible share (1) against one thread that keeps the GIL busy is no more than a band above
//! it after one half-life (`tau ln 2`, 50 ms), when that thread can no longer take the GIL
//! back from it, and is then served at the next release or slice end (against `n` such
//! threads, whose shares add up to about 1, after about `tau ln(n + 1)`).
//!
//! Active waiting: none unless the user sets `spin` (as for every design), with one bounded
//! exception that is part of this design, as in `mlfq`: a waiter that has just asked a
//! running holder to drop, and is next in line, waits actively for the hand-off (which
//! follows at the holder's next eval-breaker check) for at most `decay_preempt_spin`
//! (50 us, about one futex wake-up here; 0 turns it off), then parks.

use std::time::Duration;

use quanta::{Clock, Instant};

use super::handoff::Slot;
use super::{Gil, GilParams, Release};
use crate::sync::{lock, Arc, AtomicBool, AtomicU64, Mutex, Ordering};

/// The lock word: the GIL is free and nobody waits (take it with one CAS).
const FREE: u64 = 0;
/// The lock word's low bit: the scheduler decides (someone waits, or holds through it).
const SCHED: u64 = 1;

/// How much lower a waiter's share must be for it to preempt: one of 4.4BSD's 32 run queues.
const BAND: f64 = 1.0 / 32.0;

/// The lock word of thread `id` holding the GIL through the fast path.
fn held_by(id: usize) -> u64 {
    (id as u64 + 1) << 1
}

/// The thread holding the GIL through the fast path, if the word says so.
fn fast_holder(word: u64) -> Option<usize> {
    (word != FREE && word & SCHED == 0).then(|| (word >> 1) as usize - 1)
}

struct ThreadSched {
    /// Its decayed share of the GIL's recent hold time, in [0, 1], as of `stamp`.
    share: f64,
    stamp: Instant,
    /// Waits in the queue; `seq` orders equal shares first come, first served.
    queued: bool,
    seq: u64,
    slot: Arc<Slot>,
    /// When its current (or last) fast-path hold began, in raw clock units. Written only by
    /// the thread, before its take's CAS publishes it.
    fast_start: Arc<AtomicU64>,
    /// Times it asked a holder to drop at once (it was more urgent).
    preemptions: u64,
}

struct Sched {
    threads: Vec<ThreadSched>,
    /// The holder, or the thread the GIL was handed to.
    holder: Option<usize>,
    /// Whether `holder` runs (false: handed over, still waking).
    started: bool,
    /// When the holder's slice began.
    slice_start: Instant,
    seq: u64,
    handoffs: u64,
    snatches: u64,
    slice_ends: u64,
    preempt_spins: u64,
}

/// The decayed-usage GIL scheduler.
pub struct DecayGil {
    /// FREE, `held_by(id)` (the fast path), or SCHED (the scheduler's `holder` holds).
    word: AtomicU64,
    sched: Mutex<Sched>,
    drop_request: AtomicBool,
    clock: Clock,
    slice: Duration,
    /// The decay's time constant, in seconds (`decay_halflife / ln 2`).
    tau: f64,
    spin: Duration,
    preempt_spin: Duration,
}

/// A registered thread: its index in the scheduler, its hand-off slot, its uncontended holds.
pub struct DecayThread {
    id: usize,
    slot: Arc<Slot>,
    fast_start: Arc<AtomicU64>,
    /// It holds the GIL through the fast path (its release tries the fast path too).
    held_fast: bool,
    /// Its finished fast-path holds not yet charged, in raw clock units.
    unfolded: u64,
    fast_takes: u64,
}

impl Sched {
    /// Brings thread `i`'s share up to `now`: it held the GIL since its stamp if it is the
    /// running holder, else it did not. Called at every change of who holds.
    fn settle(&mut self, i: usize, now: Instant, tau: f64) {
        let held = self.started && self.holder == Some(i);
        let t = &mut self.threads[i];
        let k = (-now.saturating_duration_since(t.stamp).as_secs_f64() / tau).exp();
        t.share = t.share * k + if held { 1.0 - k } else { 0.0 };
        t.stamp = t.stamp.max(now);
    }

    fn settle_all(&mut self, now: Instant, tau: f64) {
        for i in 0..self.threads.len() {
            self.settle(i, now, tau);
        }
    }

    fn enqueue(&mut self, i: usize) {
        self.seq += 1;
        let t = &mut self.threads[i];
        t.queued = true;
        t.seq = self.seq;
    }

    /// The waiter the next hand-off goes to: least share, first come on ties (shares settled).
    fn first_in_line(&self) -> Option<usize> {
        let queued = self.threads.iter().enumerate().filter(|(_, t)| t.queued);
        queued
            .min_by(|(_, a), (_, b)| a.share.total_cmp(&b.share).then(a.seq.cmp(&b.seq)))
            .map(|(i, _)| i)
    }

    /// Makes `who` the holder, running from `now` (its share settled up to `now` first).
    fn start_holding(&mut self, who: usize, now: Instant, tau: f64) {
        self.settle(who, now, tau);
        self.threads[who].queued = false;
        self.holder = Some(who);
        self.started = true;
        self.slice_start = now;
    }

    fn queued_len(&self) -> usize {
        self.threads.iter().filter(|t| t.queued).count()
    }
}

impl DecayGil {
    /// Charges the caller's finished uncontended holds, as a duty cycle spread evenly over
    /// the time since the scheduler last brought its share up to date.
    fn fold(&self, s: &mut Sched, t: &mut DecayThread, now: Instant) {
        let held = self.clock.delta(0, std::mem::take(&mut t.unfolded));
        let th = &mut s.threads[t.id];
        let span = now.saturating_duration_since(th.stamp);
        let duty = if span.is_zero() {
            0.0
        } else {
            (held.as_secs_f64() / span.as_secs_f64()).min(1.0)
        };
        let k = (-span.as_secs_f64() / self.tau).exp();
        th.share = th.share * k + duty * (1.0 - k);
        th.stamp = th.stamp.max(now);
    }

    /// A waiter found thread `h` holding through the fast path (the word now says SCHED):
    /// make it the scheduler's holder, running and charged since its hold began.
    fn adopt_fast_holder(&self, s: &mut Sched, h: usize) {
        let began = self.clock.scaled(s.threads[h].fast_start.load(Ordering::Relaxed));
        s.start_holding(h, began, self.tau);
    }

    /// Whether `a` is more urgent than `b`: its share is lower by more than a band.
    fn more_urgent(s: &Sched, a: usize, b: usize) -> bool {
        s.threads[a].share + BAND < s.threads[b].share
    }

    /// Sets the drop request on behalf of waiter `me`; returns how long `me` may then wait
    /// actively for the hand-off (`decay_preempt_spin`, when the holder runs and `me` is next).
    fn ask_to_drop(&self, s: &mut Sched, me: usize) -> Duration {
        self.drop_request.store(true, Ordering::Relaxed);
        if s.started && !self.preempt_spin.is_zero() && s.first_in_line() == Some(me) {
            s.preempt_spins += 1;
            self.preempt_spin
        } else {
            Duration::ZERO
        }
    }

    /// Looks at the holder on behalf of queued waiter `me`: asks it to drop if that is due
    /// now. Returns when `me` should look again and how long it may spin first.
    fn evaluate(&self, s: &mut Sched, me: usize, now: Instant) -> (Instant, Duration) {
        s.settle_all(now, self.tau);
        let fallback = now + self.slice;
        let Some(h) = s.holder else {
            return (fallback, Duration::ZERO);
        };
        if Self::more_urgent(s, me, h) {
            s.threads[me].preemptions += 1;
            return (fallback, self.ask_to_drop(s, me));
        }
        if !s.started {
            // Its slice has not begun.
            return (fallback, Duration::ZERO);
        }
        let (mine, its) = (s.threads[me].share, s.threads[h].share);
        let slice_end = s.slice_start + self.slice;
        if now >= slice_end && mine <= its {
            // Its slice is over and we have used the GIL no more than it has lately.
            s.slice_ends += 1;
            return (fallback, self.ask_to_drop(s, me));
        }
        // While it holds and we wait, `mine * k <= 1 - (1 - its) * k` once
        // `k <= 1 / (1 + mine - its)`, and we are a band more urgent once
        // `k < (1 - BAND) / (1 + mine - its)`, with `k = exp(-t / tau)`.
        let after = |ratio: f64| {
            let t = (self.tau * ratio.ln()).max(0.0);
            now + Duration::from_secs_f64(t.min(3600.0)) + Duration::from_micros(1)
        };
        let gap = 1.0 + mine - its;
        let urgent_at = after(gap / (1.0 - BAND));
        let turn_at = slice_end.max(after(gap));
        (urgent_at.min(turn_at), Duration::ZERO)
    }

    #[cold]
    fn take_slow(&self, t: &mut DecayThread) {
        let mut s = lock(&self.sched);
        let word = self.word.fetch_or(SCHED, Ordering::AcqRel);
        let now = self.clock.now();
        self.fold(&mut s, t, now);
        if let Some(h) = fast_holder(word) {
            self.adopt_fast_holder(&mut s, h);
        }
        s.settle_all(now, self.tau);
        let me = t.id;
        match s.holder {
            // Free (the word said FREE, or its fast holder left before we set SCHED): hold
            // through the scheduler; the release returns the word to FREE if nobody waits.
            None => return s.start_holding(me, now, self.tau),
            Some(h) if !s.started && Self::more_urgent(&s, me, h) => {
                // Handed to a thread still waking, which we would preempt at once: take it
                // back; it stays first in line by its share (its grant makes it look again).
                s.threads[h].queued = true;
                s.snatches += 1;
                s.start_holding(me, now, self.tau);
                return;
            }
            Some(_) => {}
        }
        s.enqueue(me);
        let (next_look, preempt_spin) = self.evaluate(&mut s, me, now);
        drop(s);
        // Spin once per take, before the first park, as every design spins (`spin`), or
        // longer when this take asked a running holder to drop.
        self.wait_for_handoff(t, next_look, self.spin.max(preempt_spin));
    }

    #[cold]
    fn wait_for_handoff(&self, t: &DecayThread, mut next_look: Instant, mut spin: Duration) {
        loop {
            let timeout = next_look.saturating_duration_since(self.clock.now());
            // A grant is only a hint (the GIL may have been snatched back since): every
            // wake-up looks at the scheduler's state.
            let _ = t.slot.wait(spin, Some(timeout));
            let mut s = lock(&self.sched);
            let now = self.clock.now();
            if s.holder == Some(t.id) {
                // Consume a grant that arrived after the wake-up; the slice and the charging
                // begin now, not at the grant.
                let _ = t.slot.try_take();
                s.start_holding(t.id, now, self.tau);
                return;
            }
            (next_look, spin) = self.evaluate(&mut s, t.id, now);
        }
    }

    #[cold]
    fn release_slow(&self, t: &mut DecayThread, _why: Release) {
        let mut s = lock(&self.sched);
        let now = self.clock.now();
        // Uncontended holds before a waiter adopted this thread are not charged.
        t.unfolded = 0;
        assert_eq!(s.holder, Some(t.id), "decay: a release by a thread that does not hold");
        s.settle_all(now, self.tau);
        s.holder = None;
        self.drop_request.store(false, Ordering::Relaxed);
        let Some(next) = s.first_in_line() else {
            // Nobody waits: back to the fast path.
            self.word.store(FREE, Ordering::Release);
            return;
        };
        s.threads[next].queued = false;
        s.holder = Some(next);
        s.started = false;
        s.handoffs += 1;
        s.threads[next].slot.grant();
    }

    /// How many threads are queued for the GIL (for tests and diagnostics).
    pub fn queued_len(&self) -> usize {
        lock(&self.sched).queued_len()
    }

    /// A registered thread's share of the GIL's recent hold time, as of now, with its
    /// finished uncontended holds charged (for tests and diagnostics).
    pub fn share(&self, t: &mut DecayThread) -> f64 {
        let mut s = lock(&self.sched);
        let now = self.clock.now();
        self.fold(&mut s, t, now);
        s.settle(t.id, now, self.tau);
        s.threads[t.id].share
    }

    /// Sets a registered thread's share, as if it had held the GIL that much of the recent
    /// past (for tests: it sets up who is more urgent without holding for real).
    #[doc(hidden)]
    pub fn set_share_for_test(&self, t: &DecayThread, share: f64) {
        let mut s = lock(&self.sched);
        let now = self.clock.now();
        s.settle(t.id, now, self.tau);
        s.threads[t.id].share = share.clamp(0.0, 1.0);
    }
}

impl Gil for DecayGil {
    type Thread = DecayThread;
    const NAME: &'static str = "decay";
    const MODELS: &'static str = "decayed-usage scheduler (4.4BSD time-sharing): least recent GIL share first (half-life 50ms), a waiter a band lower preempts at once, others at the slice end, direct hand-off, no boost; a waiter that asked the holder to drop waits actively for the hand-off (decay_preempt_spin, 50us)";
    const SOURCE: &'static str =
        "McKusick et al., The Design and Implementation of the 4.4BSD Operating System, 4.4 (p_estcpu decay); Solaris TS";
    const YEAR: &'static str = "1996";
    const SLICE_KEYS: &'static [&'static str] = &["decay_slice"];

    fn new(p: &GilParams) -> Self {
        // Under loom a clock that stands still: no branch may depend on the real clock (loom
        // replays each interleaving and needs the same choices every time).
        let clock = if cfg!(loom) {
            Clock::mock().0
        } else {
            Clock::new()
        };
        let now = clock.now();
        let halflife = p.decay_halflife.max(Duration::from_micros(10));
        DecayGil {
            word: AtomicU64::new(FREE),
            sched: Mutex::new(Sched {
                threads: Vec::new(),
                holder: None,
                started: false,
                slice_start: now,
                seq: 0,
                handoffs: 0,
                snatches: 0,
                slice_ends: 0,
                preempt_spins: 0,
            }),
            drop_request: AtomicBool::new(false),
            clock,
            slice: p.decay_slice.max(Duration::from_micros(10)),
            tau: halflife.as_secs_f64() / std::f64::consts::LN_2,
            spin: p.spin,
            preempt_spin: p.decay_preempt_spin,
        }
    }

    fn preemption_period(p: &GilParams) -> Option<(Duration, &'static str)> {
        Some((p.decay_slice, "decay_slice"))
    }

    fn register(&self) -> DecayThread {
        let mut s = lock(&self.sched);
        let (slot, fast_start) = (Arc::new(Slot::new()), Arc::new(AtomicU64::new(0)));
        let stamp = self.clock.now();
        s.threads.push(ThreadSched {
            share: 0.0,
            stamp,
            queued: false,
            seq: 0,
            slot: slot.clone(),
            fast_start: fast_start.clone(),
            preemptions: 0,
        });
        DecayThread {
            id: s.threads.len() - 1,
            slot,
            fast_start,
            held_fast: false,
            unfolded: 0,
            fast_takes: 0,
        }
    }

    #[inline]
    fn take(&self, t: &mut DecayThread) {
        // Fast path: free and nobody waits. The start is published before the CAS (which
        // releases it), so a waiter that sees the word taken sees the start too.
        t.fast_start.store(self.clock.raw(), Ordering::Relaxed);
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
    fn release(&self, t: &mut DecayThread, why: Release) {
        if std::mem::take(&mut t.held_fast)
            && self
                .word
                .compare_exchange(held_by(t.id), FREE, Ordering::Release, Ordering::Relaxed)
                .is_ok()
        {
            let start = t.fast_start.load(Ordering::Relaxed);
            t.unfolded += self.clock.raw().saturating_sub(start);
            return;
        }
        // A waiter set SCHED and made this thread the scheduler's holder (or it was one).
        self.release_slow(t, why);
    }

    #[inline(always)]
    fn check(&self, _t: &mut DecayThread) -> bool {
        self.drop_request.load(Ordering::Relaxed)
    }

    fn thread_stats(&self, t: &DecayThread) -> Vec<(&'static str, u64)> {
        let s = lock(&self.sched);
        let th = &s.threads[t.id];
        vec![
            ("preemptions", th.preemptions),
            ("fast_takes", t.fast_takes),
            ("share_pct", (th.share * 100.0).round() as u64),
        ]
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        let s = lock(&self.sched);
        vec![
            ("handoffs", s.handoffs),
            ("snatches", s.snatches),
            ("slice_ends", s.slice_ends),
            ("preempt_spins", s.preempt_spins),
        ]
    }
}
