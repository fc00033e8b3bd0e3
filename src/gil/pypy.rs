//! `pypy`: PyPy's GIL (`rpython/translator/c/src/thread_gil.c`).
//!
//! The GIL is two locks, held together:
//! * `fastgil`, one word: 0 when free, else the holder's id;
//! * `mutex_gil`, a lock (flag, mutex, condvar) that stays locked while anyone holds the GIL;
//!   only a yield unlocks it.
//!
//! * release around an external call: store 0 into `fastgil`. That single store is the whole
//!   release: no wake-up, no system call.
//! * take, fast path: compare-and-swap `fastgil` 0 -> me (also no system call).
//! * take, slow path: count self as waiting; poll a bounded, randomised number of times
//!   (40-400), pausing the CPU and retrying the CAS, and stop polling as soon as the count of
//!   waiting threads moves (someone entered or left the slow path). A poll that wins the CAS
//!   does not keep the GIL: "wake up the stealer thread now and go to the waiting queue
//!   anyway, for fairness" (`thread_gil.c`) — it unlocks `mutex_gil`, so the stealer's timed
//!   lock gets the GIL, and queues behind it (with nobody else waiting it falls through and
//!   relocks `mutex_gil` itself). Then lock `mutex_gil_stealer` (the thread
//!   that holds it is *the* stealer; the others queue there: FIFO here, as PyPy means it to
//!   be roughly) and loop: if `fastgil` is 0 try the CAS, else try to lock `mutex_gil` for
//!   `pypy_steal_timeout` (100 us); if that succeeds the holder has yielded, and the stealer
//!   sets `fastgil` to itself. Then stop counting as waiting and unlock the stealer mutex.
//! * yield: every `pypy_checkinterval` ticks (10,000), if someone waits, unlock `mutex_gil`
//!   while leaving `fastgil` set to the holder (so every CAS fails), and take again through
//!   the slow path: the stealer's timed lock succeeds and the yielder queues behind it.
//!
//! So a waiting thread notices a released GIL by polling: it steals a `fastgil` that nobody
//! re-took within about one `pypy_steal_timeout` of the release. A thread that releases around
//! a call and returns before then takes it straight back with one CAS (barging).
//!
//! The bounded polling is PyPy's own busy-wait (a few microseconds at most); the `spin` key
//! adds, as for every design with waiters, up to `spin` of polling after it (0 by default),
//! under the same rules: it stops when the waiting count moves, and a win is handed on.
//! The stealer's loop is a sequence of timed waits, not a busy-wait, but it wakes every
//! `pypy_steal_timeout`: at 100 us that costs the waiting stealer about a tenth of a core
//! (measured here: 16 ms of CPU in 150 ms of waiting), PyPy's own price for a release that
//! wakes nobody. Only the stealer pays it; the other waiters sleep in the stealer queue.
//! Under loom (which does not model time) each timed lock is one attempt: a timeout that
//! expired at once.
//!
//! # Fairness
//! Little. A free GIL goes to whoever CASes first: a thread returning from an external call
//! usually beats the stealer, which only looks every `pypy_steal_timeout`; the stealer mutex
//! orders the waiters (FIFO here). Only the take's first CAS barges, though: a thread that
//! found the GIL held and wins it while polling hands it to the waiting stealer. The yield is the one fair step: it keeps `fastgil` set, so
//! the stealer, already waiting on `mutex_gil`, gets the GIL, and the yielder queues behind it.
//! A CPU-bound holder thus hands over every `pypy_checkinterval` ticks (about half a
//! millisecond of hashing here) while someone waits. Its own busy-waits, both from the source
//! and bounded: the 40-400 polls before the stealer queue, and the stealer's wake-up every
//! `pypy_steal_timeout`.

use std::collections::VecDeque;
use std::time::Duration;

use super::handoff::{Slot, Wake};
use super::{Gil, GilParams, Release};
use crate::sync::{lock, spin_hint, spin_until, Arc, AtomicUsize, Condvar, Mutex, Ordering};

const FREE: usize = 0;
/// Bounds of PyPy's randomised polling before the stealer mutex.
const POLLS: (u32, u32) = if cfg!(loom) { (1, 1) } else { (40, 400) };

/// `mutex_gil`: a lock with a timed acquire (a flag and the waiters on it, under a mutex).
struct TimedLock {
    m: Mutex<(bool, usize)>,
    cv: Condvar,
}

impl TimedLock {
    fn new(locked: bool) -> Self {
        TimedLock {
            m: Mutex::new((locked, 0)),
            cv: Condvar::new(),
        }
    }

    /// Tries to lock within `timeout`; whether it did.
    fn lock_timeout(&self, timeout: Duration) -> bool {
        let mut g = lock(&self.m);
        if !g.0 {
            g.0 = true;
            return true;
        }
        if cfg!(loom) {
            // One attempt: the timeout expired.
            drop(g);
            #[cfg(loom)]
            loom::thread::yield_now();
            return false;
        }
        let deadline = std::time::Instant::now() + timeout;
        g.1 += 1;
        while g.0 {
            let now = std::time::Instant::now();
            if now >= deadline {
                g.1 -= 1;
                return false;
            }
            g = crate::sync::wait_timeout(&self.cv, g, deadline - now).0;
        }
        g.1 -= 1;
        g.0 = true;
        true
    }

    fn unlock(&self) {
        let mut g = lock(&self.m);
        g.0 = false;
        if g.1 > 0 {
            self.cv.notify_one();
        }
    }
}

/// `mutex_gil_stealer`: the queue of would-be stealers, in arrival order (PyPy means it to be
/// roughly FIFO; a lock that let a thread that just yielded barge back in front of the
/// waiters would starve them). Unlocking hands it to the next waiter directly.
struct StealerQueue {
    m: Mutex<(bool, VecDeque<Arc<Slot>>)>,
}

impl StealerQueue {
    fn lock(&self, me: &Arc<Slot>) {
        let mut g = lock(&self.m);
        if !g.0 {
            g.0 = true;
            return;
        }
        g.1.push_back(me.clone());
        drop(g);
        while me.wait(Duration::ZERO, None) != Wake::Granted {}
    }

    fn unlock(&self) {
        let mut g = lock(&self.m);
        match g.1.pop_front() {
            Some(next) => next.grant(),
            None => g.0 = false,
        }
    }
}

/// PyPy's GIL.
pub struct PypyGil {
    fastgil: AtomicUsize,
    mutex_gil: TimedLock,
    mutex_gil_stealer: StealerQueue,
    /// `rpy_waiting_threads`.
    waiting: AtomicUsize,
    /// The holder's countdown to its next periodic action (touched by the holder only).
    ticker: AtomicUsize,
    checkinterval: usize,
    steal_timeout: Duration,
    spin: Duration,
    next_id: AtomicUsize,
}

/// A registered thread.
pub struct PypyThread {
    id: usize,
    /// Where this thread waits in the stealer queue.
    slot: Arc<Slot>,
    /// After a yield: `mutex_gil` is unlocked and `fastgil` still names us.
    yielded: bool,
    rng: u32,
    yields: u64,
    /// Takes through `mutex_gil` (after a yield, or after an early-poll winner unlocked it).
    steals: u64,
    /// Early polls that won the fast word (and unlocked `mutex_gil` for fairness).
    early_wins: u64,
}

impl PypyGil {
    /// Threads in the slow path of take (for tests).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    #[inline]
    fn try_fast(&self, t: &PypyThread) -> bool {
        self.fastgil
            .compare_exchange(FREE, t.id, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// `RPyGilAcquireSlowPath`.
    #[cold]
    fn take_slow(&self, t: &mut PypyThread) {
        let entered = self.waiting.fetch_add(1, Ordering::Relaxed) + 1;
        if self.early_poll(t, entered) {
            // "We got the gil before entering the waiting queue. In case there are other
            // threads waiting for the GIL, wake up the stealer thread now and go to the
            // waiting queue anyway, for fairness." (thread_gil.c)
            t.early_wins += 1;
            self.mutex_gil.unlock();
        }
        self.mutex_gil_stealer.lock(&t.slot);
        self.steal(t);
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        self.mutex_gil_stealer.unlock();
    }

    /// PyPy's early polling before the stealer queue, bounded and randomised, then up to
    /// `spin` more of it; whether it won the fast word. It stops as soon as the number of
    /// waiting threads moves from `entered`: "if another thread left it means the GIL has been
    /// acquired by that thread; if another thread entered there is no point in running the
    /// present loop twice" (thread_gil.c).
    fn early_poll(&self, t: &mut PypyThread, entered: usize) -> bool {
        t.rng ^= t.rng << 13;
        t.rng ^= t.rng >> 17;
        t.rng ^= t.rng << 5;
        let polls = POLLS.0 + t.rng % (POLLS.1 - POLLS.0 + 1);
        let moved = || self.waiting.load(Ordering::Relaxed) != entered;
        let free_and_won = || self.fastgil.load(Ordering::Relaxed) == FREE && self.try_fast(t);
        for _ in 0..polls {
            if moved() {
                return false;
            }
            spin_hint();
            if free_and_won() {
                return true;
            }
        }
        let mut won = false;
        spin_until(self.spin, || {
            won = !moved() && free_and_won();
            won || moved()
        });
        won
    }

    /// The stealer's loop, holding `mutex_gil_stealer`: take a free fast word, else wait
    /// `steal_timeout` for `mutex_gil`, which a yield (or an early-poll winner) unlocks.
    fn steal(&self, t: &mut PypyThread) {
        loop {
            if self.fastgil.load(Ordering::Relaxed) == FREE {
                if self.try_fast(t) {
                    return;
                }
            } else if self.mutex_gil.lock_timeout(self.steal_timeout) {
                // `mutex_gil` is ours, and so is the GIL.
                self.fastgil.store(t.id, Ordering::Release);
                t.steals += 1;
                return;
            }
        }
    }
}

impl Gil for PypyGil {
    type Thread = PypyThread;
    const NAME: &'static str = "pypy";
    const MODELS: &'static str = "PyPy's GIL: one-word CAS fast path (release around a call is one store), stealers queued on a mutex poll with a 100us timed lock, yield every pypy_checkinterval (10000) ticks keeping the word set so the stealer wins";
    const SOURCE: &'static str = "pypy rpython/translator/c/src/thread_gil.c";
    const YEAR: &'static str = "-";

    fn new(p: &GilParams) -> Self {
        let checkinterval = p.pypy_checkinterval.max(1) as usize;
        PypyGil {
            fastgil: AtomicUsize::new(FREE),
            // Locked from the start: it is unlocked only between a yield and the steal.
            mutex_gil: TimedLock::new(true),
            mutex_gil_stealer: StealerQueue {
                m: Mutex::new((false, VecDeque::new())),
            },
            waiting: AtomicUsize::new(0),
            ticker: AtomicUsize::new(checkinterval),
            checkinterval,
            steal_timeout: p.pypy_steal_timeout.max(Duration::from_micros(1)),
            spin: p.spin,
            next_id: AtomicUsize::new(1),
        }
    }

    fn register(&self) -> PypyThread {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        PypyThread {
            id,
            slot: Arc::new(Slot::new()),
            yielded: false,
            rng: (id as u32).wrapping_mul(2_654_435_761) | 1,
            yields: 0,
            steals: 0,
            early_wins: 0,
        }
    }

    #[inline]
    fn take(&self, t: &mut PypyThread) {
        if std::mem::take(&mut t.yielded) || !self.try_fast(t) {
            self.take_slow(t);
        }
    }

    #[inline]
    fn release(&self, t: &mut PypyThread, why: Release) {
        if why == Release::Forced {
            // RPyGilYieldThread: keep `fastgil` = me, let the stealer have `mutex_gil`.
            t.yielded = true;
            t.yields += 1;
            self.mutex_gil.unlock();
        } else {
            self.fastgil.store(FREE, Ordering::Release);
        }
    }

    /// The periodic action: every `pypy_checkinterval` ticks, yield if someone waits.
    #[inline(always)]
    fn check(&self, _t: &mut PypyThread) -> bool {
        let n = self.ticker.load(Ordering::Relaxed);
        if n > 1 {
            self.ticker.store(n - 1, Ordering::Relaxed);
            return false;
        }
        self.ticker.store(self.checkinterval, Ordering::Relaxed);
        self.waiting.load(Ordering::Relaxed) > 0
    }

    fn thread_stats(&self, t: &PypyThread) -> Vec<(&'static str, u64)> {
        vec![
            ("yields", t.yields),
            ("steals", t.steals),
            ("early_wins", t.early_wins),
        ]
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::testing::{flags, taker, wait_until};
    use super::*;
    use std::time::Instant;

    fn gil_spinning(spin: Duration) -> Arc<PypyGil> {
        Arc::new(PypyGil::new(&GilParams {
            spin,
            ..GilParams::default()
        }))
    }

    /// Threads parked in the stealer's timed lock on `mutex_gil`.
    fn parked(g: &PypyGil) -> usize {
        lock(&g.mutex_gil.m).1
    }

    /// Holder H, stealer S parked in its timed lock, poller P still polling (a long `spin`):
    /// H releases for a call. P's poll wins the fast word, but PyPy's rule hands the GIL on
    /// "for fairness": S gets it, P queues behind.
    #[test]
    fn an_early_poll_winner_hands_the_gil_to_the_stealer() {
        let g = gil_spinning(Duration::from_millis(300));
        let mut h = g.register();
        g.take(&mut h);
        let [s_held, p_held, go] = flags();
        let s = taker(&g, &s_held, &go);
        wait_until("S parks in its timed lock", || parked(&g) > 0);
        let p = taker(&g, &p_held, &go);
        wait_until("P waits", || g.waiting() == 2);
        std::thread::sleep(Duration::from_millis(20));
        g.release(&mut h, Release::Blocking);
        wait_until("someone takes the GIL", || {
            s_held.load(Ordering::SeqCst) || p_held.load(Ordering::SeqCst)
        });
        std::thread::sleep(Duration::from_millis(20));
        let held = (s_held.load(Ordering::SeqCst), p_held.load(Ordering::SeqCst));
        go.store(true, Ordering::SeqCst);
        s.join().unwrap();
        p.join().unwrap();
        assert_eq!(held, (true, false), "(stealer, poller) holding");
    }

    /// A thread polling (a long `spin`) stops as soon as another thread enters the slow path,
    /// and goes to the stealer queue: it parks in the timed lock long before its spin is over.
    #[test]
    fn early_polling_stops_when_another_thread_arrives() {
        let g = gil_spinning(Duration::from_secs(2));
        let mut h = g.register();
        g.take(&mut h);
        let [p_held, q_held, go] = flags();
        go.store(true, Ordering::SeqCst);
        let p = taker(&g, &p_held, &go);
        wait_until("P waits", || g.waiting() == 1);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(parked(&g), 0, "P is still polling");
        let q = taker(&g, &q_held, &go);
        let t0 = Instant::now();
        wait_until("P parks", || parked(&g) > 0);
        let stopped_after = t0.elapsed();
        g.release(&mut h, Release::Blocking);
        p.join().unwrap();
        q.join().unwrap();
        assert!(
            stopped_after < Duration::from_millis(500),
            "P polled on for {stopped_after:?} after Q arrived"
        );
    }
}
