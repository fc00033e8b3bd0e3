//! Per-thread GIL event logs, and the cross-thread figures derived from them after a run.
//!
//! A figure that needs several threads' events (holder switches, the exclusion check,
//! idle-while-wanted) used to be kept up to date during the run through shared words that
//! every take and release wrote. Those writes were the instrument's own, not the design's, and
//! they moved the hand-off races the testbed measures (docs/costs.md, "Recording moves
//! races"). Now each interpreter thread appends its own stamps (asked, got, gave up) to its
//! own log, a plain store into memory no other thread touches, and [`derive()`] merges the logs
//! once the run is over, as HdrHistogram's per-thread recorders are merged.
//!
//! The logs are bounded: a run draws chunks of [`CHUNK`] events from one [`LogBudget`] (the
//! only shared write, once per chunk: some 20,000 acquisitions). A thread that finds the
//! budget spent stops logging and says so; the derived figures are then not made at all,
//! rather than made from part of the run.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::clock::RawClock;

/// Events per chunk of a log (512 KiB).
pub const CHUNK: usize = 1 << 16;

/// Events per 4 KiB page.
const PAGE_EVENTS: usize = 4096 / std::mem::size_of::<u64>();

/// Events a run may log in all by default: 2 GiB at 8 bytes each, about 90 s of a GIL that
/// changes hands every microsecond.
pub const DEFAULT_BUDGET_EVENTS: usize = 1 << 28;

/// What happened, in the two low bits of an event. A release sorts before a take at the same
/// instant, so that a hand-off that took no measurable time is no overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Ev {
    /// The thread gave the GIL up (stamped before the design's release).
    Release = 0,
    /// The thread asked for the GIL (stamped before the design's take).
    Want = 1,
    /// The thread holds the GIL (stamped after the design's take returned).
    Hold = 2,
}

impl Ev {
    fn of(bits: u64) -> Ev {
        match bits & 3 {
            0 => Ev::Release,
            1 => Ev::Want,
            _ => Ev::Hold,
        }
    }
}

/// How many events a run may still log, shared by its threads, and chunks made ready ahead.
#[derive(Debug)]
pub struct LogBudget {
    left: AtomicUsize,
    /// Chunks allocated and with every page touched by [`LogBudget::top_up`] (the run's
    /// monitor), so that the thread starting a chunk does not take its page faults between
    /// the stamps it makes: on a VM a fresh page's first touch costs microseconds, and a fast
    /// echo thread starts a page every ~1,000 requests, enough to move its p99.
    ready: parking_lot::Mutex<Vec<Vec<u64>>>,
}

impl LogBudget {
    pub fn new(events: usize) -> Self {
        LogBudget {
            left: AtomicUsize::new(events),
            ready: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// Events not yet drawn.
    pub fn left(&self) -> usize {
        self.left.load(Ordering::Relaxed)
    }

    /// Takes one chunk from the budget, if one is left.
    fn draw(&self) -> bool {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(CHUNK)
            })
            .is_ok()
    }

    /// Keeps `chunks` chunks ready (allocated, every page touched), as far as the budget
    /// could still hand them out. Called off the GIL path: before a run's threads start, and
    /// by its monitor between naps.
    pub fn top_up(&self, chunks: usize) {
        let wanted = chunks.min(self.left() / CHUNK);
        // The chunks are made outside the lock (a thread may take one meanwhile: the next
        // top-up makes up for it).
        let missing = wanted.saturating_sub(self.ready.lock().len());
        let made: Vec<Vec<u64>> = (0..missing).map(|_| ready_chunk()).collect();
        self.ready.lock().extend(made);
    }

    /// Chunks ready now.
    pub fn ready(&self) -> usize {
        self.ready.lock().len()
    }

    /// A ready chunk, or a fresh one when none is.
    fn chunk(&self) -> Vec<u64> {
        self.ready
            .lock()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK))
    }
}

/// A chunk with every page touched: one store per page faults each in (`vec![0; n]` would
/// not: calloc's pages stay untouched until first used).
fn ready_chunk() -> Vec<u64> {
    let mut chunk: Vec<u64> = Vec::with_capacity(CHUNK);
    for page in chunk.spare_capacity_mut().chunks_mut(PAGE_EVENTS) {
        page[0].write(0);
    }
    std::hint::black_box(chunk.spare_capacity_mut());
    chunk
}

/// One thread's log: raw clock readings (relative to the run's epoch reading) with the event
/// in the two low bits, in the order the thread made them.
#[derive(Debug, Default)]
pub struct HoldLog {
    full: Vec<Vec<u64>>,
    cur: Vec<u64>,
    /// The budget ran out: events after the first refused chunk are missing.
    pub overflowed: bool,
}

impl HoldLog {
    /// Appends `ev` at raw reading `raw` (already relative to the epoch).
    #[inline]
    pub fn push(&mut self, raw: u64, ev: Ev, budget: &LogBudget) {
        if self.cur.len() == self.cur.capacity() && !self.next_chunk(budget) {
            return;
        }
        self.cur.push(raw << 2 | ev as u64);
    }

    #[cold]
    #[inline(never)]
    fn next_chunk(&mut self, budget: &LogBudget) -> bool {
        if self.overflowed || !budget.draw() {
            self.overflowed = true;
            return false;
        }
        let done = std::mem::replace(&mut self.cur, budget.chunk());
        if !done.is_empty() {
            self.full.push(done);
        }
        true
    }

    /// Events logged.
    pub fn len(&self) -> usize {
        self.full.iter().map(Vec::len).sum::<usize>() + self.cur.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The events in order, as (raw reading, event).
    pub fn events(&self) -> impl Iterator<Item = (u64, Ev)> + '_ {
        self.full
            .iter()
            .flatten()
            .chain(self.cur.iter())
            .map(|&e| (e >> 2, Ev::of(e)))
    }

    /// The packed events in order.
    fn packed(&self) -> impl Iterator<Item = u64> + '_ {
        self.full.iter().flatten().chain(self.cur.iter()).copied()
    }
}

/// What the logs of a run say, over its measured window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Derived {
    /// Per log: takes in the window whose previous holder was another thread.
    pub switches: Vec<u64>,
    /// Per log: takes (warm-up included) made while another thread held the GIL.
    pub overlaps: Vec<u64>,
    /// Nanoseconds of the window in which nobody held the GIL and someone wanted it.
    pub idle_while_wanted_ns: u64,
}

/// Derives the switches, overlaps and idle-while-wanted time of `logs` (one per interpreter
/// thread, readings relative to one epoch), counting switches and idle time within the
/// measured window `from..to` (raw readings, relative to the same epoch). Idle time leaves
/// out the stretches `stopped` (nanoseconds from the epoch) in which the whole process did
/// not run: nobody held the GIL then, but nobody ran to want it either. `None` when a log
/// overflowed its budget: the figures would describe part of the run only.
pub fn derive(
    logs: &[&HoldLog],
    clock: &RawClock,
    (from, to): (u64, u64),
    stopped: &[(u64, u64)],
) -> Option<Derived> {
    if logs.iter().any(|l| l.overflowed) {
        return None;
    }
    let mut sweep = Sweep::new(logs.len(), (from, to));
    sweep.stopped = stopped.to_vec();
    let mut cursors: Vec<_> = logs.iter().map(|l| l.packed().peekable()).collect();
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(u64, usize)>> = cursors
        .iter_mut()
        .enumerate()
        .filter_map(|(i, c)| c.next().map(|e| std::cmp::Reverse((e, i))))
        .collect();
    while let Some(std::cmp::Reverse((e, i))) = heap.pop() {
        sweep.apply(i, e >> 2, Ev::of(e), clock);
        if let Some(next) = cursors[i].next() {
            heap.push(std::cmp::Reverse((next, i)));
        }
    }
    Some(sweep.finish(clock))
}

/// The state of a time-ordered walk over every thread's events.
struct Sweep {
    window: (u64, u64),
    /// Stretches the process did not run, in nanoseconds from the epoch.
    stopped: Vec<(u64, u64)>,
    wants: Vec<bool>,
    holds: Vec<bool>,
    wanting: usize,
    holding: usize,
    last_holder: Option<usize>,
    /// Since when the GIL has been idle while wanted, if it is.
    idle_since: Option<u64>,
    idle_ns: u64,
    out: Derived,
}

impl Sweep {
    fn new(n: usize, window: (u64, u64)) -> Self {
        Sweep {
            window,
            stopped: Vec::new(),
            wants: vec![false; n],
            holds: vec![false; n],
            wanting: 0,
            holding: 0,
            last_holder: None,
            idle_since: None,
            idle_ns: 0,
            out: Derived {
                switches: vec![0; n],
                overlaps: vec![0; n],
                idle_while_wanted_ns: 0,
            },
        }
    }

    fn in_window(&self, t: u64) -> bool {
        (self.window.0..=self.window.1).contains(&t)
    }

    fn apply(&mut self, i: usize, t: u64, ev: Ev, clock: &RawClock) {
        match ev {
            Ev::Want => {
                if !std::mem::replace(&mut self.wants[i], true) {
                    self.wanting += 1;
                }
            }
            Ev::Hold => {
                if std::mem::replace(&mut self.wants[i], false) {
                    self.wanting -= 1;
                }
                if self.holding > 0 {
                    self.out.overlaps[i] += 1;
                }
                if self.last_holder.is_some_and(|h| h != i) && self.in_window(t) {
                    self.out.switches[i] += 1;
                }
                self.last_holder = Some(i);
                if !std::mem::replace(&mut self.holds[i], true) {
                    self.holding += 1;
                }
            }
            Ev::Release => {
                if std::mem::replace(&mut self.holds[i], false) {
                    self.holding -= 1;
                }
            }
        }
        self.note_idle(t, clock);
    }

    /// Opens or closes an idle-while-wanted stretch at `t`, adding a closed one's part within
    /// the window.
    fn note_idle(&mut self, t: u64, clock: &RawClock) {
        let idle = self.holding == 0 && self.wanting > 0;
        match (self.idle_since, idle) {
            (None, true) => self.idle_since = Some(t),
            (Some(a), false) => {
                self.idle_ns += self.clipped(a, t, clock);
                self.idle_since = None;
            }
            _ => {}
        }
    }

    /// The nanoseconds of `a..b` within the window, less those the process did not run.
    fn clipped(&self, a: u64, b: u64, clock: &RawClock) -> u64 {
        let (from, to) = self.window;
        let (a, b) = (a.max(from), b.min(to));
        let (a_ns, b_ns) = (clock.nanos(0, a), clock.nanos(0, b));
        let stopped: u64 = self
            .stopped
            .iter()
            .map(|&(s, e)| e.min(b_ns).saturating_sub(s.max(a_ns)))
            .sum();
        clock.nanos(a, b).saturating_sub(stopped)
    }

    fn finish(mut self, clock: &RawClock) -> Derived {
        // Still idle while wanted when the logs end: the stretch runs to the window's end.
        if let Some(a) = self.idle_since {
            self.idle_ns += self.clipped(a, self.window.1, clock);
        }
        self.out.idle_while_wanted_ns = self.idle_ns;
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This thread's minor page faults so far.
    fn minor_faults() -> i64 {
        // SAFETY: getrusage writes only into the zeroed struct it is given.
        unsafe {
            let mut u: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut u);
            u.ru_minflt
        }
    }

    #[test]
    fn a_ready_chunk_fills_without_page_faults() {
        let budget = LogBudget::new(DEFAULT_BUDGET_EVENTS);
        let before = minor_faults();
        budget.top_up(1);
        let touching = minor_faults() - before;
        let mut l = HoldLog::default();
        let before = minor_faults();
        for t in 0..CHUNK as u64 {
            l.push(t, Ev::Hold, &budget);
        }
        let filling = minor_faults() - before;
        assert!(
            touching >= 64,
            "top_up touched its pages: {touching} faults"
        );
        assert!(filling < 8, "{filling} page faults filling a ready chunk");
    }

    #[test]
    fn chunks_made_ready_ahead_are_used_first_and_bounded_by_the_budget() {
        let budget = LogBudget::new(3 * CHUNK);
        budget.top_up(5);
        assert_eq!(budget.ready(), 3, "no more than the budget could hand out");
        let mut l = HoldLog::default();
        l.push(1, Ev::Want, &budget);
        assert_eq!(
            budget.ready(),
            2,
            "the first chunk came from the ready ones"
        );
        assert_eq!(l.cur.capacity(), CHUNK);
        budget.top_up(5);
        assert_eq!(budget.ready(), 2, "two chunks are left in the budget");
    }

    /// A log from (raw nanoseconds, event) pairs, on the monotonic clock (raw units are ns).
    fn log(events: &[(u64, Ev)]) -> HoldLog {
        let budget = LogBudget::new(DEFAULT_BUDGET_EVENTS);
        let mut l = HoldLog::default();
        for &(t, e) in events {
            l.push(t, e, &budget);
        }
        l
    }

    use Ev::*;

    #[test]
    fn switches_overlaps_and_idle_come_from_the_merged_logs() {
        let clock = RawClock::monotonic();
        // a holds 10..100, releases; b asked at 50, gets it at 130 (idle 100..130);
        // a asks at 110, gets it at 200 after b released at 190 (idle 190..200).
        let a = log(&[
            (5, Want),
            (10, Hold),
            (100, Release),
            (110, Want),
            (200, Hold),
        ]);
        let b = log(&[(50, Want), (130, Hold), (190, Release)]);
        let d = derive(&[&a, &b], &clock, (0, 1000), &[]).unwrap();
        assert_eq!(d.switches, vec![1, 1]);
        assert_eq!(d.overlaps, vec![0, 0]);
        // 5..10 (a asked, nobody held) + 100..130 + 190..200.
        assert_eq!(d.idle_while_wanted_ns, 5 + 30 + 10);
        // Only the part within the window counts, and only switches inside it.
        let d = derive(&[&a, &b], &clock, (120, 195), &[]).unwrap();
        assert_eq!(d.switches, vec![0, 1]);
        assert_eq!(d.idle_while_wanted_ns, 10 + 5);
        // The process stopped 110..125 and 195..198: 100..130 counts 15 of its 30 ns,
        // 190..200 7 of its 10.
        let d = derive(&[&a, &b], &clock, (0, 1000), &[(110, 125), (195, 198)]).unwrap();
        assert_eq!(d.idle_while_wanted_ns, 5 + 15 + 7);
    }

    #[test]
    fn a_take_while_another_holds_is_an_overlap_and_a_same_instant_hand_off_is_not() {
        let clock = RawClock::monotonic();
        let a = log(&[(1, Want), (1, Hold), (50, Release)]);
        let b = log(&[
            (10, Want),
            (20, Hold),
            (30, Release),
            (40, Want),
            (50, Hold),
        ]);
        let d = derive(&[&a, &b], &clock, (0, 100), &[]).unwrap();
        assert_eq!(d.overlaps, vec![0, 1], "b's take at 20 while a held 1..50");
        assert_eq!(d.idle_while_wanted_ns, 0);
    }

    #[test]
    fn an_overflowed_log_derives_nothing() {
        let clock = RawClock::monotonic();
        let budget = LogBudget::new(CHUNK);
        let mut l = HoldLog::default();
        for t in 0..(CHUNK as u64 + 10) {
            l.push(t, if t % 2 == 0 { Want } else { Hold }, &budget);
        }
        assert!(l.overflowed);
        assert_eq!(l.len(), CHUNK);
        assert_eq!(derive(&[&l], &clock, (0, u64::MAX), &[]), None);
    }
}
