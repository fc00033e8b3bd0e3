//! `ruby`: Ruby 3.3+'s GVL (`thread_pthread.c`'s thread_sched, `thread.c`).
//!
//! * State: `running` (the holder) and a FIFO ready queue; each thread waits on its own
//!   condition variable (gilbench's hand-off slot).
//! * take: if nobody runs, run. Otherwise join the tail of the ready queue (if it was empty,
//!   the timer thread starts time-slicing the holder) and wait until made `running`.
//! * release: pop the head of the queue and make it `running` (direct hand-off). A blocking
//!   region is release + take, so the returning thread goes to the back of the queue.
//! * Time slicing: a timer thread (a real thread outside the GIL, as Ruby's) ticks every
//!   `ruby_tick` (10 ms) while someone waits, and sleeps otherwise. Each tick adds one tick to
//!   the holder's running time (checked at its next eval-breaker check); once that reaches
//!   `ruby_quantum` (100 ms, `RUBY_THREAD_TIMESLICE`) and the queue is not empty, the holder
//!   yields: hands off to the head and appends itself to the tail, in one critical section.
//!   The running time restarts when the running thread changes (`rb_ractor_thread_switch`
//!   resets it only "if (cr->threads.running_ec != th->ec)"), so a thread back from a
//!   blocking call that nobody else ran during keeps the running time it had; and after
//!   every time-slice yield, even one that kept the GIL because the queue had emptied (Ruby
//!   3.4's `rb_thread_schedule_limits` resets it unconditionally, ruby/ruby#12094).
//!
//! No waiter busy-waits unless the user sets `spin` (as for every design with waiters): then it
//! polls its hand-off slot that long before it parks.
//!
//! # Fairness
//! Strict FIFO, no barging: the GIL only ever passes to the head of the queue, and a thread
//! that asks for it while it is held queues behind everyone already there. The price is Ruby's
//! own convoy: an I/O thread lands at the back of the queue after every blocking call, so with
//! CPU-bound threads it waits up to a quantum (100 ms) per CPU-bound thread per call.

use std::collections::VecDeque;
use std::time::Duration;

use super::handoff::{Slot, Wake};
use super::ticker::Ticker;
use super::{Gil, GilParams, Release};
use crate::sync::{lock, Arc, AtomicBool, AtomicU64, AtomicUsize, Mutex, Ordering};

struct State {
    running: bool,
    /// Waiters in arrival order: (thread id, its slot).
    readyq: VecDeque<(usize, Arc<Slot>)>,
    /// The last thread to hold the GIL (`running_ec`): 0 before anyone has.
    last: usize,
    /// Thread ids handed out so far (ids start at 1).
    registered: usize,
}

struct Inner {
    m: Mutex<State>,
    /// The queue's length, for the holder's check.
    queued: AtomicUsize,
    /// The timer interrupt: set by the timer thread, cleared by the holder.
    interrupt: AtomicBool,
    ticks: AtomicU64,
}

impl Inner {
    fn tick(&self) {
        self.ticks.fetch_add(1, Ordering::Relaxed);
        self.interrupt.store(true, Ordering::Relaxed);
    }
}

/// Ruby's GVL with its timer thread.
pub struct RubyGil {
    inner: Arc<Inner>,
    /// The timer thread, armed while the queue is not empty; dropping the GIL stops it.
    timer: Ticker,
    tick: Duration,
    quantum: Duration,
    spin: Duration,
}

/// A registered thread.
pub struct RubyThread {
    id: usize,
    slot: Arc<Slot>,
    /// Running time charged by timer ticks since this thread last became the holder.
    running_time: Duration,
    /// After a yield: already queued, the next take only waits for the hand-off.
    queued: bool,
    /// A yield that found the queue empty kept the GIL: the next take is a no-op.
    kept: bool,
    yields: u64,
}

impl RubyGil {
    /// What the timer thread does when it fires (for tests and loom models).
    pub fn tick(&self) {
        self.inner.tick();
    }

    /// How many threads are in the ready queue (for tests).
    pub fn queued_len(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    fn sync_len(&self, st: &State) {
        self.inner.queued.store(st.readyq.len(), Ordering::Relaxed);
    }

    /// Becomes the holder; a fresh time slice if `switched` (another thread ran last).
    fn now_running(&self, t: &mut RubyThread, switched: bool) {
        if switched {
            t.running_time = Duration::ZERO;
        }
        self.inner.interrupt.store(false, Ordering::Relaxed);
    }

    /// Waits until handed the GIL, which always comes from another thread.
    #[cold]
    fn wait_for_handoff(&self, t: &mut RubyThread) {
        let w = t.slot.wait(self.spin, None);
        debug_assert_eq!(w, Wake::Granted);
        self.now_running(t, true);
    }
}

impl Gil for RubyGil {
    type Thread = RubyThread;
    const NAME: &'static str = "ruby";
    const MODELS: &'static str = "Ruby 3.3+ GVL: FIFO ready queue with direct hand-off (a blocking call sends the thread to the back), a timer thread ticking every ruby_tick (10ms) while someone waits, yield after ruby_quantum (100ms)";
    const SOURCE: &'static str = "ruby/ruby thread_pthread.c (thread_sched), thread.c";
    const YEAR: &'static str = "2023";
    const SLICE_KEYS: &'static [&'static str] = &["ruby_quantum", "ruby_tick"];

    fn new(p: &GilParams) -> Self {
        Self::try_new(p).expect("cannot start the GVL's timer thread")
    }

    fn try_new(p: &GilParams) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            m: Mutex::new(State {
                running: false,
                readyq: VecDeque::new(),
                last: 0,
                registered: 0,
            }),
            queued: AtomicUsize::new(0),
            interrupt: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
        });
        let i = inner.clone();
        let timer = Ticker::try_spawn("gilt-ruby", p.ruby_tick, false, move || i.tick())?;
        Ok(RubyGil {
            inner,
            timer,
            tick: p.ruby_tick,
            quantum: p.ruby_quantum,
            spin: p.spin,
        })
    }

    fn register(&self) -> RubyThread {
        let mut st = lock(&self.inner.m);
        st.registered += 1;
        RubyThread {
            id: st.registered,
            slot: Arc::new(Slot::new()),
            running_time: Duration::ZERO,
            queued: false,
            kept: false,
            yields: 0,
        }
    }

    fn take(&self, t: &mut RubyThread) {
        if std::mem::take(&mut t.kept) {
            return;
        }
        if std::mem::take(&mut t.queued) {
            self.wait_for_handoff(t);
            return;
        }
        let mut st = lock(&self.inner.m);
        if !st.running {
            st.running = true;
            let switched = std::mem::replace(&mut st.last, t.id) != t.id;
            drop(st);
            self.now_running(t, switched);
            return;
        }
        st.readyq.push_back((t.id, t.slot.clone()));
        self.sync_len(&st);
        if st.readyq.len() == 1 {
            // Someone waits now: time-slice the holder.
            self.timer.arm();
        }
        drop(st);
        self.wait_for_handoff(t);
    }

    fn release(&self, t: &mut RubyThread, why: Release) {
        let mut st = lock(&self.inner.m);
        let Some((next_id, next)) = st.readyq.pop_front() else {
            if why == Release::Forced {
                // thread_sched_yield with an empty queue: carry on, with a fresh slice.
                t.kept = true;
                t.running_time = Duration::ZERO;
            } else {
                st.running = false;
            }
            return;
        };
        if why == Release::Forced {
            // Yield: the head runs, this thread goes to the tail.
            st.readyq.push_back((t.id, t.slot.clone()));
            t.queued = true;
            t.yields += 1;
        } else if st.readyq.is_empty() {
            self.timer.disarm();
        }
        self.sync_len(&st);
        // `running` stays set: the GIL passes to `next` without a race.
        st.last = next_id;
        next.grant();
    }

    /// The timer interrupt, handled at the check: charge one tick; yield once the quantum is
    /// used up and someone waits.
    #[inline(always)]
    fn check(&self, t: &mut RubyThread) -> bool {
        if !self.inner.interrupt.load(Ordering::Relaxed) {
            return false;
        }
        self.inner.interrupt.store(false, Ordering::Relaxed);
        t.running_time += self.tick;
        t.running_time >= self.quantum && self.inner.queued.load(Ordering::Relaxed) > 0
    }

    fn kept(&self, t: &RubyThread) -> bool {
        t.kept
    }

    fn thread_stats(&self, t: &RubyThread) -> Vec<(&'static str, u64)> {
        vec![("yields", t.yields)]
    }

    fn stats(&self) -> Vec<(&'static str, u64)> {
        vec![("ticks", self.inner.ticks.load(Ordering::Relaxed))]
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Ticks of 10 s and a 50 s quantum: the timer thread never fires during a test; the test
    /// ticks by hand.
    fn gil() -> Arc<RubyGil> {
        Arc::new(RubyGil::new(&GilParams {
            ruby_tick: Duration::from_secs(10),
            ruby_quantum: Duration::from_secs(50),
            ..GilParams::default()
        }))
    }

    /// `n` timer ticks, each handled at a check; whether the last check said yield.
    fn ticks(g: &RubyGil, t: &mut RubyThread, n: usize) -> bool {
        (0..n).fold(false, |_, _| {
            g.tick();
            g.check(t)
        })
    }

    /// A waiter `b` in the ready queue, in its own thread, which takes the GIL and releases
    /// it for good.
    fn queue_waiter(g: &Arc<RubyGil>) -> std::thread::JoinHandle<()> {
        let (g2, mut b) = (g.clone(), g.register());
        let h = std::thread::spawn(move || {
            g2.take(&mut b);
            g2.release(&mut b, Release::Exit);
        });
        let t0 = std::time::Instant::now();
        while g.queued_len() == 0 {
            assert!(t0.elapsed() < Duration::from_secs(10), "the waiter never queued");
            std::thread::yield_now();
        }
        h
    }

    /// Back from a blocking call during which nobody else ran, a thread keeps its running
    /// time: 30 s before the call, two more ticks reach the 50 s quantum.
    #[test]
    fn the_running_time_survives_a_call_nobody_else_ran_in() {
        let g = gil();
        let mut a = g.register();
        g.take(&mut a);
        assert!(!ticks(&g, &mut a, 3));
        g.release(&mut a, Release::Blocking);
        g.take(&mut a);
        let b = queue_waiter(&g);
        let yield_due = ticks(&g, &mut a, 2);
        g.release(&mut a, Release::Exit);
        b.join().unwrap();
        assert!(yield_due, "the running time restarted at the take");
    }

    /// The running time restarts when another thread ran in between.
    #[test]
    fn the_running_time_restarts_when_another_thread_ran() {
        let g = gil();
        let (mut a, mut c) = (g.register(), g.register());
        g.take(&mut a);
        assert!(!ticks(&g, &mut a, 3));
        g.release(&mut a, Release::Blocking);
        g.take(&mut c);
        g.release(&mut c, Release::Exit);
        g.take(&mut a);
        let b = queue_waiter(&g);
        let yield_due = ticks(&g, &mut a, 2);
        g.release(&mut a, Release::Exit);
        b.join().unwrap();
        assert!(!yield_due, "the running time went on across another thread's turn");
    }

    /// A time-slice yield that found the queue empty keeps the GIL with a fresh slice (Ruby
    /// 3.4 resets the running time after every such yield).
    #[test]
    fn a_yield_that_keeps_the_gil_restarts_the_slice() {
        let g = gil();
        let mut a = g.register();
        g.take(&mut a);
        assert!(!ticks(&g, &mut a, 6));
        g.release(&mut a, Release::Forced);
        assert!(g.kept(&a));
        g.take(&mut a);
        let b = queue_waiter(&g);
        let yield_due = ticks(&g, &mut a, 1);
        g.release(&mut a, Release::Exit);
        b.join().unwrap();
        assert!(!yield_due, "the kept yield did not restart the slice");
    }
}
