//! `bfs`: Nir Aides' BFS scheduler for CPython's GIL (`Python/bfs.c`, bpo-7946, 2010; never
//! merged): earliest virtual deadline first, with snatching and a forced-switch handshake.
//!
//! State, under one mutex: the run list of waiters in arrival order; `current`, the holder or
//! the thread designated to hold next; `prev`, the thread that just released for I/O and may
//! snatch the GIL back; the forced-switch slot; the virtual clock `python_time` (the sum of
//! run intervals, each capped at `rr`); and two flags feeding the eval breaker, `preempt` and
//! `check_depleted`. Per thread: `slice`, `deadline` (virtual), `timestamp`, its own wake-up.
//!
//! * take: if `slice <= 0`, refill `slice = rr` and set `deadline = python_time + 8 rr`. If
//!   nobody holds, take it. Else `urgent = my.deadline <= current.deadline &&
//!   current.deadline >= python_time`. Urgent while `prev` is set (the designated thread has not started yet):
//!   snatch the GIL now. Otherwise set `preempt` (urgent) or `check_depleted` (not urgent),
//!   join the run list, and wait, `0.55 rr x waiters` at a time; a wait that times out sets
//!   `check_depleted`. Chosen while `prev` is still more urgent and my own deadline has not
//!   expired: unlock, spin `bfs_switch_back_spin` (12 us) so `prev` can snatch the GIL back,
//!   relock. On success: leave the run list, hold, clear `prev`, confirm a pending forced
//!   switch, stamp `timestamp`. The flags are left alone: the `preempt` of an urgent waiter
//!   that came while the designated thread was still waking stops that thread at its first
//!   check.
//! * release: `dt = min(now - timestamp, rr)`; `python_time += dt`; `slice -= dt`; clear
//!   `preempt` and `check_depleted` ("we heard the shout"). For a blocking release
//!   `prev = me`. Choose the next thread: the first in the run list whose deadline has
//!   expired, else the one with the earliest deadline; designate it and wake it. Forced
//!   switch, on every release but a thread's last (blocking ones too, as `_bfs_yield` does):
//!   if a next thread exists and (`slice <= 0`, or its deadline expired, or
//!   `my.deadline >= its deadline`), wait until someone confirms the take-over. A blocking
//!   releaser skips the wait only when it is strictly more urgent than the next thread, its
//!   slice left and that thread's deadline not expired: exactly when it may snatch back.
//! * check: if `preempt`, or `check_depleted` and the slice is used up
//!   (`slice <= min(now - timestamp, rr)`), release and take again.
//!
//! Constants are keys: `bfs_rr` (10 ms), `bfs_deadline_factor` (8), `bfs_wait_factor`
//! (0.55), `bfs_switch_back_spin` (12 us). Wall-clock time, as the source.
//!
//! No waiter busy-waits unless the user sets `spin` (as for every design with waiters), with
//! one exception from the source, bounded: the 12 us switch-back spin of a chosen thread.
//!
//! # Fairness
//! Earliest deadline first over a virtual clock. A thread that uses its slice gets a new
//! deadline 8 slices later, so CPU-bound threads take turns of `rr`; a thread that blocks
//! before its slice is used keeps its early deadline, so an I/O thread coming back preempts a
//! CPU-bound holder at once (the convoy cure), and snatches the GIL back when its "I/O" did not
//! block before the designated thread started. A thread whose deadline has expired is served
//! ahead of earlier deadlines, first come first served, which bounds every wait. Its own
//! bounded busy-wait: the switch-back spin of `bfs_switch_back_spin` (12 us) after being
//! chosen while `prev` is more urgent.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::handoff::{Slot, Wake};
use super::{Gil, GilParams, Release};
use crate::sync::{lock, spin_hint, Arc, AtomicBool, Mutex, MutexGuard, Ordering};

type Tid = usize;

/// What the others need to know about a thread.
struct Rec {
    /// Virtual deadline, in nanoseconds of `python_time`.
    deadline: u64,
    slot: Arc<Slot>,
    /// Set by the thread that took the GIL over from this one's forced switch.
    switched: bool,
}

struct State {
    threads: Vec<Rec>,
    runlist: VecDeque<Tid>,
    /// The holder, or the thread designated to hold next.
    current: Option<Tid>,
    /// Whether `current` is running (false: designated, not started yet).
    started: bool,
    /// The thread that last released for I/O, until someone takes the GIL.
    prev: Option<Tid>,
    /// A forced releaser waiting for the take-over.
    switch: Option<Tid>,
    /// The virtual clock, in nanoseconds.
    python_time: u64,
    snatches: u64,
    switch_backs: u64,
}

/// The BFS scheduler.
pub struct BfsGil {
    st: Mutex<State>,
    preempt: AtomicBool,
    check_depleted: AtomicBool,
    rr: u64,
    deadline_factor: u64,
    wait_factor: f64,
    switch_back: Duration,
    spin: Duration,
}

/// A registered thread.
pub struct BfsThread {
    id: Tid,
    slot: Arc<Slot>,
    /// Nanoseconds left of the slice (may go negative).
    slice: i64,
    timestamp: Instant,
    /// A forced release that must wait for the take-over before the next take.
    forced_switches: u64,
}

impl BfsGil {
    /// How many threads are in the run list (for tests).
    pub fn queued_len(&self) -> usize {
        lock(&self.st).runlist.len()
    }

    /// Times a thread snatched the GIL from a designated thread that had not started.
    pub fn snatches(&self) -> u64 {
        lock(&self.st).snatches
    }

    fn deadline(s: &State, t: Tid) -> u64 {
        s.threads[t].deadline
    }

    /// The next thread: the first expired one in arrival order, else the earliest deadline.
    fn choose(s: &State) -> Option<Tid> {
        let now = s.python_time;
        if let Some(&t) = s.runlist.iter().find(|&&t| Self::deadline(s, t) < now) {
            return Some(t);
        }
        s.runlist
            .iter()
            .copied()
            .min_by_key(|&t| Self::deadline(s, t))
    }

    /// Holds the GIL from now (under the mutex).
    fn hold(&self, s: &mut State, t: &mut BfsThread) {
        s.runlist.retain(|&x| x != t.id);
        s.current = Some(t.id);
        s.started = true;
        s.prev = None;
        // The eval-breaker flags stay: `bfs_schedule` leaves them to the releaser, so an urgent
        // waiter's `preempt` set while this thread was still waking preempts it at its first
        // check.
        if let Some(r) = s.switch.take() {
            s.threads[r].switched = true;
            s.threads[r].slot.poke();
        }
        t.timestamp = Instant::now();
    }

    /// Waits in the run list until chosen and started; returns with the GIL held.
    #[cold]
    fn wait_chosen<'a>(&'a self, mut s: MutexGuard<'a, State>, t: &mut BfsThread) {
        let mut spin = self.spin;
        let mut spun_back = false;
        loop {
            if s.current.is_none() {
                break;
            }
            if s.current == Some(t.id) && !s.started {
                // Chosen. If `prev` is still more urgent, give it a moment to snatch back.
                let me = Self::deadline(&s, t.id);
                let prev_first = s.prev.is_some_and(|p| Self::deadline(&s, p) < me);
                if prev_first && me >= s.python_time && !spun_back && !self.switch_back.is_zero() {
                    spun_back = true;
                    drop(s);
                    switch_back_spin(self.switch_back);
                    s = lock(&self.st);
                    s.switch_backs += 1;
                    continue;
                }
                break;
            }
            let waiting = s.runlist.len().max(1) as f64;
            let timeout = Duration::from_nanos((self.wait_factor * self.rr as f64 * waiting) as u64)
                .max(Duration::from_micros(1));
            drop(s);
            let w = t.slot.wait(std::mem::take(&mut spin), Some(timeout));
            s = lock(&self.st);
            if w == Wake::TimedOut && s.current != Some(t.id) {
                self.check_depleted.store(true, Ordering::Relaxed);
            }
        }
        self.hold(&mut s, t);
    }
}

/// The source's bounded busy-wait after being chosen while `prev` is more urgent.
fn switch_back_spin(d: Duration) {
    if cfg!(loom) {
        spin_hint();
        return;
    }
    let t0 = Instant::now();
    while t0.elapsed() < d {
        spin_hint();
    }
}

impl Gil for BfsGil {
    type Thread = BfsThread;
    const NAME: &'static str = "bfs";
    const MODELS: &'static str = "Nir Aides' BFS scheduler: earliest virtual deadline first (10ms slices, deadline 8 slices on), urgent waiters preempt, snatching by an I/O thread whose call did not block, forced-switch confirmation, expired deadlines served first";
    const SOURCE: &'static str = "Python/bfs.c, bpo-7946 (Nir Aides; never merged)";
    const YEAR: &'static str = "2010";
    const SLICE_KEYS: &'static [&'static str] = &["bfs_rr"];

    fn new(p: &GilParams) -> Self {
        BfsGil {
            st: Mutex::new(State {
                threads: Vec::new(),
                runlist: VecDeque::new(),
                current: None,
                started: false,
                prev: None,
                switch: None,
                python_time: 0,
                snatches: 0,
                switch_backs: 0,
            }),
            preempt: AtomicBool::new(false),
            check_depleted: AtomicBool::new(false),
            rr: p.bfs_rr.as_nanos().max(1) as u64,
            deadline_factor: u64::from(p.bfs_deadline_factor.max(1)),
            wait_factor: p.bfs_wait_factor,
            switch_back: p.bfs_switch_back_spin,
            spin: p.spin,
        }
    }

    fn register(&self) -> BfsThread {
        let slot = Arc::new(Slot::new());
        let mut s = lock(&self.st);
        s.threads.push(Rec {
            deadline: 0,
            slot: slot.clone(),
            switched: false,
        });
        BfsThread {
            id: s.threads.len() - 1,
            slot,
            slice: 0,
            timestamp: Instant::now(),
            forced_switches: 0,
        }
    }

    fn take(&self, t: &mut BfsThread) {
        let mut s = lock(&self.st);
        if t.slice <= 0 {
            t.slice = self.rr as i64;
            s.threads[t.id].deadline = s.python_time + self.deadline_factor * self.rr;
        }
        let Some(cur) = s.current else {
            self.hold(&mut s, t);
            return;
        };
        let (mine, theirs) = (Self::deadline(&s, t.id), Self::deadline(&s, cur));
        let urgent = mine <= theirs && theirs >= s.python_time;
        if urgent && s.prev.is_some() && !s.started {
            // The designated thread has not started: snatch.
            s.snatches += 1;
            self.hold(&mut s, t);
            return;
        }
        if urgent {
            self.preempt.store(true, Ordering::Relaxed);
        } else {
            self.check_depleted.store(true, Ordering::Relaxed);
        }
        s.runlist.push_back(t.id);
        self.wait_chosen(s, t);
    }

    fn release(&self, t: &mut BfsThread, why: Release) {
        let mut s = lock(&self.st);
        let dt = (t.timestamp.elapsed().as_nanos() as u64).min(self.rr);
        s.python_time += dt;
        t.slice -= dt as i64;
        // "Reset preemption flags - we heard the shout." (`_bfs_yield`)
        self.preempt.store(false, Ordering::Relaxed);
        self.check_depleted.store(false, Ordering::Relaxed);
        if why == Release::Blocking {
            s.prev = Some(t.id);
        }
        let next = Self::choose(&s);
        s.current = next;
        s.started = false;
        let Some(n) = next else { return };
        s.threads[n].slot.poke();
        let (mine, theirs) = (Self::deadline(&s, t.id), Self::deadline(&s, n));
        // On every yield, blocking ones included (not a thread's last release: `bfs_clear`
        // makes an exiting thread opaque, and an opaque thread's yield skips the wait).
        let forced = why != Release::Exit
            && s.switch.is_none()
            && (t.slice <= 0 || theirs < s.python_time || mine >= theirs);
        if !forced {
            return;
        }
        // Forced switch: wait until another thread has taken over.
        t.forced_switches += 1;
        s.switch = Some(t.id);
        s.threads[t.id].switched = false;
        while !s.threads[t.id].switched {
            drop(s);
            let _ = t.slot.wait(Duration::ZERO, None);
            s = lock(&self.st);
        }
        s.threads[t.id].switched = false;
    }

    /// `bfs_checkpoint`: the flags are one relaxed load each; the clock is read only when
    /// `check_depleted` is set.
    #[inline(always)]
    fn check(&self, t: &mut BfsThread) -> bool {
        if self.preempt.load(Ordering::Relaxed) {
            return true;
        }
        if !self.check_depleted.load(Ordering::Relaxed) {
            return false;
        }
        self.check_depleted.store(false, Ordering::Relaxed);
        let used = (t.timestamp.elapsed().as_nanos() as u64).min(self.rr);
        t.slice <= used as i64
    }

    fn thread_stats(&self, t: &BfsThread) -> Vec<(&'static str, u64)> {
        vec![("forced_switches", t.forced_switches)]
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        let s = lock(&self.st);
        vec![("snatches", s.snatches), ("switch_backs", s.switch_backs)]
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::testing::{flags, taker, wait_until};
    use super::*;

    /// `_bfs_yield` waits for the next thread on every yield: an I/O thread whose slice is
    /// spent, releasing for a blocking call with C queued, returns only once C holds.
    #[test]
    fn a_blocking_release_with_a_spent_slice_waits_for_the_next_thread() {
        let g = Arc::new(BfsGil::new(&GilParams::default()));
        let mut io = g.register();
        g.take(&mut io);
        io.slice = 0;
        let [c_held, go] = flags();
        let c = taker(&g, &c_held, &go);
        wait_until("C queues", || g.queued_len() == 1);
        let c_id = io.id + 1;
        g.release(&mut io, Release::Blocking);
        let seen = {
            let s = lock(&g.st);
            (s.current, s.started)
        };
        go.store(true, Ordering::SeqCst);
        c.join().unwrap();
        assert_eq!(io.forced_switches, 1, "the release did not wait for the switch");
        assert_eq!(seen, (Some(c_id), true), "C did not hold when the release returned");
    }

    /// `bfs.c` clears `preempt` at release, not at take: an urgent waiter C that arrives
    /// while B is designated but not started still preempts B at B's first check.
    #[test]
    fn an_urgent_waiters_preempt_survives_the_designated_threads_start() {
        let g = Arc::new(BfsGil::new(&GilParams::default()));
        let mut b = g.register();
        {
            let mut s = lock(&g.st);
            s.current = Some(b.id);
            s.started = false;
            // Far later than the deadline C gets (8 rr): C is urgent.
            s.threads[b.id].deadline = 100 * g.rr;
        }
        let [c_held, go] = flags();
        go.store(true, Ordering::SeqCst);
        let c = taker(&g, &c_held, &go);
        wait_until("C queues", || g.queued_len() == 1);
        g.hold(&mut lock(&g.st), &mut b);
        let preempted = g.check(&mut b);
        g.release(&mut b, Release::Forced);
        c.join().unwrap();
        assert!(c_held.load(Ordering::SeqCst));
        assert!(preempted, "B's first check did not see C's preempt");
    }
}
