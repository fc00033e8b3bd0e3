//! Behaviour of each GIL design, on real threads. Timing phenomena are checked as ratios
//! measured in the same test, with wide margins.

mod common;

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use gilbench::gil::DecayGil;
use gilbench::gil::{
    BfsGil, FastcondGil, FifoGil, Gil, GilParams, LockKind, MlfqGil, NoGil, OcamlGil, PypyGil,
    Release, RubyGil, TickGil, TimedGil, WithGil,
};
use gilbench::holdlog::{self, HoldLog, DEFAULT_BUDGET_EVENTS};
use gilbench::interp::{Interp, ProbeParts};
use gilbench::pin;
use gilbench::workload::TickHasher;

use common::sched::{own_tid, runnable_time_of, unless_starved};

/// A counter updated without any synchronisation of its own: only the GIL protects it.
struct Racy(UnsafeCell<u64>);
// SAFETY: deliberately unsynchronised; the tests use it only to detect whether the GIL
// excludes concurrent holders (a data race shows up as lost updates).
unsafe impl Sync for Racy {}

impl Racy {
    /// A read, a yield, and a write: any overlap between two holders loses an update.
    fn bump(&self) {
        // SAFETY: see the `Sync` impl; a racing access is exactly what the test detects.
        let v = unsafe { std::ptr::read_volatile(self.0.get()) };
        if v % 64 == 0 {
            thread::yield_now();
        }
        for _ in 0..20 {
            std::hint::spin_loop();
        }
        // SAFETY: as above.
        unsafe { std::ptr::write_volatile(self.0.get(), v + 1) };
    }
    fn get(&self) -> u64 {
        // SAFETY: called after all threads were joined.
        unsafe { *self.0.get() }
    }
}

const THREADS: usize = 4;
const ROUNDS: u64 = 20_000;

/// 4 threads bump the racy counter under the GIL, with eval-breaker checks between bumps and
/// a voluntary release every few bumps. Returns the number of lost updates.
fn lost_updates<G: Gil>(gil: G) -> u64 {
    exclusion(gil).0
}

/// As [`lost_updates`], and also the takes that the run's exclusion check (the one every
/// run reports as `overlaps`, derived from the threads' GIL event logs) found overlapping
/// another holder.
fn exclusion<G: Gil>(gil: G) -> (u64, u64) {
    let counter = Racy(UnsafeCell::new(0));
    let barrier = Barrier::new(THREADS);
    let parts = ProbeParts::new(DEFAULT_BUDGET_EVENTS);
    let probe = parts.probe();
    let logs = std::sync::Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..THREADS {
            let (gil, counter, barrier, logs) = (&gil, &counter, &barrier, &logs);
            s.spawn(move || {
                let mut it = Interp::new(gil);
                it.set_probe(probe);
                barrier.wait();
                it.take();
                for r in 0..ROUNDS {
                    counter.bump();
                    it.check();
                    if r % 7 == 0 {
                        drop(it.released());
                    }
                }
                it.release(Release::Exit);
                logs.lock().unwrap().push(it.take_log());
            });
        }
    });
    let logs = logs.into_inner().unwrap();
    let all: Vec<&HoldLog> = logs.iter().collect();
    let overlaps = holdlog::derive(&all, &parts.clock, (0, u64::MAX), &[])
        .expect("the logs fit their budget")
        .overlaps
        .iter()
        .sum();
    (THREADS as u64 * ROUNDS - counter.get(), overlaps)
}

/// No GIL that claims to be one: what the exclusion checks must catch.
struct Pretend(NoGil);

impl Gil for Pretend {
    type Thread = <NoGil as Gil>::Thread;
    const NAME: &'static str = "pretend";
    const MODELS: &'static str = "no GIL that claims to be one";
    const SOURCE: &'static str = "tests/gil_designs.rs";
    const YEAR: &'static str = "-";
    fn new(_p: &GilParams) -> Self {
        Pretend(NoGil)
    }
    fn register(&self) -> Self::Thread {
        self.0.register()
    }
    fn take(&self, t: &mut Self::Thread) {
        self.0.take(t)
    }
    fn release(&self, t: &mut Self::Thread, why: Release) {
        self.0.release(t, why)
    }
    fn check(&self, t: &mut Self::Thread) -> bool {
        self.0.check(t)
    }
}

fn fast_params() -> GilParams {
    GilParams {
        check_interval: 5,
        interval: Duration::from_micros(200),
        quanta: vec![Duration::from_micros(100), Duration::from_micros(300)],
        allotments: vec![Duration::from_millis(1), Duration::from_millis(3)],
        boost_interval: Duration::from_millis(10),
        ocaml_tick: Duration::from_micros(300),
        ruby_quantum: Duration::from_micros(200),
        ruby_tick: Duration::from_micros(100),
        bfs_rr: Duration::from_micros(200),
        decay_slice: Duration::from_micros(200),
        decay_halflife: Duration::from_millis(2),
        ..GilParams::default()
    }
}

/// Runs `f` on every design with the GIL, built from `p`, and returns (name, result).
fn on_every_design<T>(p: &GilParams, f: impl WithGil<Out = T> + Clone) -> Vec<(&'static str, T)> {
    LockKind::ALL
        .into_iter()
        .filter(|k| *k != LockKind::None)
        .map(|k| (k.name(), k.with_design(p, f.clone())))
        .collect()
}

#[derive(Clone)]
struct Exclusion;
impl WithGil for Exclusion {
    type Out = (u64, u64);
    fn run<G: Gil>(self, gil: G) -> (u64, u64) {
        exclusion(gil)
    }
}

#[test]
fn every_gil_excludes_other_holders() {
    let p = fast_params();
    let no_fs = GilParams {
        force_switching: false,
        ..fast_params()
    };
    let spin = GilParams {
        spin: Duration::from_micros(20),
        ..fast_params()
    };
    for (what, params) in [
        ("", &p),
        (", no forced switching", &no_fs),
        (", spinning waiters", &spin),
    ] {
        for (name, (lost, overlaps)) in on_every_design(params, Exclusion) {
            assert_eq!(lost, 0, "{name}{what}: lost updates");
            // The run's check from the event logs (reported as `overlaps` by every run).
            assert_eq!(overlaps, 0, "{name}{what}: overlapping holds");
        }
    }
}

#[test]
fn the_exclusion_check_detects_a_missing_gil() {
    // The same check on `none` must see lost updates, or it could not fail at all.
    assert!(
        lost_updates(NoGil) > 0,
        "no lost updates without a GIL: the check is blind"
    );
    // The run's check from the event logs (reported as `overlaps` by every run) sees it too.
    let (lost, overlaps) = exclusion(Pretend(NoGil));
    assert!(lost > 0 && overlaps > 0, "lost {lost}, overlaps {overlaps}");
}

#[test]
fn timed_waiter_requests_the_drop_after_about_one_interval() {
    let interval = Duration::from_millis(40);
    let gil = TimedGil::new(&GilParams {
        interval,
        ..GilParams::default()
    });
    let mut holder = gil.register();
    gil.take(&mut holder);
    let asked = Instant::now();
    thread::scope(|s| {
        let g = &gil;
        s.spawn(move || {
            let mut w = g.register();
            g.take(&mut w);
            g.release(&mut w, Release::Exit);
        });
        while !gil.drop_requested() {
            assert!(
                asked.elapsed() < Duration::from_secs(5),
                "no drop request after 5 s"
            );
            thread::sleep(Duration::from_micros(200));
        }
        let after = asked.elapsed();
        assert!(
            after >= interval * 9 / 10,
            "drop requested after {after:?}, before the {interval:?} interval"
        );
        assert!(
            after < interval * 10,
            "drop requested only after {after:?} (interval {interval:?})"
        );
        gil.release(&mut holder, Release::Blocking);
    });
}

/// A CPU-bound holder serves drop requests at its checks while another thread keeps asking
/// for the GIL. Returns (forced drops, times the dropper re-took the GIL before the waiter).
fn timed_forced_drops(force_switching: bool) -> (u64, u64) {
    let gil = TimedGil::new(&GilParams {
        interval: Duration::from_micros(500),
        force_switching,
        ..GilParams::default()
    });
    // Log of acquisitions: 0 = holder, 1 = waiter, 2 = holder's forced drop.
    let log = Mutex::new(Vec::<u8>::new());
    let done = AtomicBool::new(false);
    let cores = pin::available_cores().unwrap_or_default();
    thread::scope(|s| {
        let (gil, log, done, cores) = (&gil, &log, &done, &cores);
        s.spawn(move || {
            if let Some(c) = cores.first() {
                pin::pin_current(*c);
            }
            let mut me = gil.register();
            let mut h = TickHasher::new(64, 1);
            gil.take(&mut me);
            let t0 = Instant::now();
            let mut drops = 0;
            while drops < 40 && t0.elapsed() < Duration::from_secs(3) {
                h.tick();
                if gil.check(&mut me) {
                    log.lock().unwrap().push(2);
                    drops += 1;
                    gil.release(&mut me, Release::Forced);
                    gil.take(&mut me);
                    log.lock().unwrap().push(0);
                }
            }
            done.store(true, Ordering::SeqCst);
            gil.release(&mut me, Release::Exit);
        });
        s.spawn(move || {
            if let Some(c) = cores.get(1) {
                pin::pin_current(*c);
            }
            let mut me = gil.register();
            while !done.load(Ordering::SeqCst) {
                gil.take(&mut me);
                log.lock().unwrap().push(1);
                gil.release(&mut me, Release::Blocking);
                thread::sleep(Duration::from_micros(100));
            }
        });
    });
    let log = log.into_inner().unwrap();
    let forced = log.iter().filter(|&&e| e == 2).count() as u64;
    let retook_first = log.windows(2).filter(|w| w[0] == 2 && w[1] == 0).count() as u64;
    (forced, retook_first)
}

#[test]
fn timed_forced_switching_keeps_the_dropper_out() {
    let (forced, retook) = timed_forced_drops(true);
    assert!(forced >= 10, "only {forced} forced drops");
    assert_eq!(
        retook, 0,
        "with forced switching the dropper re-took the GIL first {retook} of {forced} times"
    );
}

#[test]
fn timed_without_forced_switching_lets_the_dropper_back_in() {
    let (forced, retook) = timed_forced_drops(false);
    assert!(forced >= 10, "only {forced} forced drops");
    assert!(
        retook > 0,
        "without forced switching the dropper never re-took first ({forced} drops)"
    );
}

#[test]
fn tick_holder_usually_retakes_on_two_cores() {
    let Some(cores) = pin::available_cores().filter(|c| c.len() >= 2) else {
        eprintln!("note: fewer than 2 usable cores; the multicore starvation check does not apply");
        return;
    };
    let gil = TickGil::new(&GilParams::default());
    let last = AtomicUsize::new(usize::MAX);
    let stop = AtomicBool::new(false);
    // Per thread: (periodic drops, of which the same thread got the GIL straight back).
    let retakes = AtomicU64::new(0);
    let switches = AtomicU64::new(0);
    thread::scope(|s| {
        for (i, &core) in cores.iter().take(2).enumerate() {
            let (gil, last, stop, retakes, switches) = (&gil, &last, &stop, &retakes, &switches);
            s.spawn(move || {
                pin::pin_current(core);
                let mut me = ();
                let mut h = TickHasher::new(64, i as u64);
                gil.take(&mut me);
                last.store(i, Ordering::Relaxed);
                while !stop.load(Ordering::Relaxed) {
                    h.tick();
                    if gil.check(&mut me) {
                        gil.release(&mut me, Release::Forced);
                        gil.take(&mut me);
                        if last.swap(i, Ordering::Relaxed) == i {
                            retakes.fetch_add(1, Ordering::Relaxed);
                        } else {
                            switches.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                gil.release(&mut me, Release::Exit);
            });
        }
        thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
    });
    let (r, sw) = (retakes.into_inner(), switches.into_inner());
    assert!(r > 100, "only {r} periodic re-takes");
    assert!(
        sw * 5 < r,
        "the waiter got the GIL {sw} times against {r} re-takes by the releaser"
    );
}

fn mlfq(quanta: &[u64], allot: &[u64], boost_ms: u64) -> MlfqGil {
    MlfqGil::new(&GilParams {
        quanta: quanta.iter().map(|&m| Duration::from_millis(m)).collect(),
        allotments: allot.iter().map(|&m| Duration::from_millis(m)).collect(),
        boost_interval: Duration::from_millis(boost_ms),
        ..GilParams::default()
    })
}

fn hold<G: Gil>(gil: &G, t: &mut G::Thread, d: Duration) {
    gil.take(t);
    let end = Instant::now() + d;
    while Instant::now() < end {
        std::hint::spin_loop();
    }
    gil.release(t, Release::Blocking);
}

#[test]
fn mlfq_demotes_after_the_allotment_and_keeps_short_holders_up() {
    // Level 1's allotment is far above what the holds below take, so that a hold stretched by
    // preemption on a busy machine cannot sink the thread two levels.
    let gil = mlfq(&[1, 5, 20], &[10, 500, 2000], 100_000);
    let mut cpu = gil.register();
    let mut io = gil.register();
    // 15 ms in three holds: past level 0's 10 ms allotment, far within level 1's 500 ms.
    for _ in 0..3 {
        hold(&gil, &mut cpu, Duration::from_millis(5));
    }
    assert_eq!(gil.level_of(&cpu), 1);
    // 50 short holds of 20 us: 1 ms in all, well within the allotment.
    for _ in 0..50 {
        hold(&gil, &mut io, Duration::from_micros(20));
    }
    assert_eq!(gil.level_of(&io), 0);
    let stats: std::collections::HashMap<_, _> = gil.thread_stats(&cpu).into_iter().collect();
    assert_eq!(stats["demotions"], 1);
}

#[test]
fn mlfq_boost_returns_everyone_to_the_top() {
    // Level 1's allotment is far above the 20 ms hold, so that a hold stretched by preemption
    // on a busy machine (seen: past 55 ms) cannot sink the thread two levels.
    let gil = mlfq(&[1, 5, 20], &[5, 500, 2000], 150);
    let mut cpu = gil.register();
    hold(&gil, &mut cpu, Duration::from_millis(20));
    assert_eq!(gil.level_of(&cpu), 1);
    thread::sleep(Duration::from_millis(200));
    hold(&gil, &mut cpu, Duration::from_micros(10));
    assert_eq!(gil.level_of(&cpu), 0, "no boost after the boost interval");
    let stats: std::collections::HashMap<_, _> = gil.stats().into_iter().collect();
    assert!(stats["boosts"] >= 1);
}

/// Queues `n` waiters one after the other behind a holder, releases, and returns the order in
/// which they got the GIL.
fn handoff_order<G: Gil>(gil: &G, queued: impl Fn() -> usize, n: usize) -> Vec<usize> {
    let order = Mutex::new(Vec::new());
    let mut holder = gil.register();
    gil.take(&mut holder);
    thread::scope(|s| {
        for i in 0..n {
            let order = &order;
            s.spawn(move || {
                let mut me = gil.register();
                gil.take(&mut me);
                order.lock().unwrap().push(i);
                gil.release(&mut me, Release::Blocking);
            });
            let t0 = Instant::now();
            while queued() < i + 1 {
                assert!(
                    t0.elapsed() < Duration::from_secs(5),
                    "waiter {i} never queued"
                );
                thread::sleep(Duration::from_micros(100));
            }
        }
        gil.release(&mut holder, Release::Blocking);
    });
    order.into_inner().unwrap()
}

#[test]
fn mlfq_and_fifo_serve_a_level_in_fifo_order() {
    let gil = mlfq(&[10_000, 20_000], &[100_000, 200_000], 100_000);
    assert_eq!(
        handoff_order(&gil, || gil.queued_len(), 5),
        vec![0, 1, 2, 3, 4]
    );
    let gil = FifoGil::new(&GilParams {
        interval: Duration::from_secs(60),
        ..GilParams::default()
    });
    assert_eq!(
        handoff_order(&gil, || gil.queued_len(), 5),
        vec![0, 1, 2, 3, 4]
    );
}

#[test]
fn mlfq_higher_priority_waiter_preempts_at_once() {
    // Level 1's quantum is 60 s: only priority can make the holder drop.
    let gil = mlfq(&[1, 60_000], &[5, 600_000], 600_000);
    let mut cpu = gil.register();
    hold(&gil, &mut cpu, Duration::from_millis(10));
    assert_eq!(gil.level_of(&cpu), 1);
    gil.take(&mut cpu);
    let got_it = AtomicBool::new(false);
    let waited = thread::scope(|s| {
        let (g, got_it) = (&gil, &got_it);
        let h = s.spawn(move || {
            let mut io = g.register();
            let t0 = Instant::now();
            g.take(&mut io);
            let w = t0.elapsed();
            got_it.store(true, Ordering::SeqCst);
            g.release(&mut io, Release::Blocking);
            w
        });
        let t0 = Instant::now();
        // The CPU-bound holder runs its eval-breaker checks until it is told to drop.
        while !gil.check(&mut cpu) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no drop request after 10 s"
            );
            std::hint::spin_loop();
        }
        gil.release(&mut cpu, Release::Forced);
        h.join().unwrap()
    });
    assert!(got_it.load(Ordering::SeqCst));
    assert!(
        waited < Duration::from_secs(1),
        "the level-0 waiter waited {waited:?} behind a level-1 holder"
    );
}

/// The releaser (releasing with `why`) tries to take the GIL straight back while a waiter is
/// queued. Returns how often the releaser got it first.
fn barging<G: Gil>(gil: &G, why: Release, queued: impl Fn() -> usize) -> usize {
    let log = Mutex::new(Vec::new());
    let mut holder = gil.register();
    let mut barged = 0;
    for _ in 0..50 {
        log.lock().unwrap().clear();
        gil.take(&mut holder);
        thread::scope(|s| {
            let log = &log;
            s.spawn(move || {
                let mut me = gil.register();
                gil.take(&mut me);
                log.lock().unwrap().push("waiter");
                gil.release(&mut me, Release::Blocking);
            });
            while queued() < 1 {
                thread::yield_now();
            }
            gil.release(&mut holder, why);
            gil.take(&mut holder);
            log.lock().unwrap().push("releaser");
            gil.release(&mut holder, Release::Blocking);
        });
        if log.lock().unwrap().first() == Some(&"releaser") {
            barged += 1;
        }
    }
    barged
}

/// After a forced drop the GIL goes straight to the waiter: the dropper never gets back in
/// first.
#[test]
fn mlfq_and_fifo_hand_off_directly() {
    let gil = mlfq(&[10_000, 20_000], &[100_000, 200_000], 100_000);
    assert_eq!(
        barging(&gil, Release::Forced, || gil.queued_len()),
        0,
        "mlfq"
    );
    let gil = FifoGil::new(&GilParams {
        interval: Duration::from_secs(60),
        ..GilParams::default()
    });
    assert_eq!(
        barging(&gil, Release::Forced, || gil.queued_len()),
        0,
        "fifo"
    );
    assert_eq!(
        barging(&gil, Release::Blocking, || gil.queued_len()),
        0,
        "fifo"
    );
}

/// mlfq's snatch-back: a thread back from a blocking call before the thread it handed the GIL
/// to has started running takes it back (that thread, parked, needs tens of microseconds to
/// wake; the releaser asks again at once). Every time the releaser got in first is a snatch
/// the scheduler counted, and the waiter is never lost: it always gets the GIL after.
#[test]
fn mlfq_snatches_back_after_a_blocking_call() {
    let gil = mlfq(&[10_000, 20_000], &[100_000, 200_000], 100_000);
    let first = barging(&gil, Release::Blocking, || gil.queued_len());
    let stats: std::collections::HashMap<_, _> = gil.stats().into_iter().collect();
    assert_eq!(stats["snatches"], first as u64);
    assert!(
        first >= 25,
        "the releaser snatched back only {first} of 50 times"
    );
}

#[derive(Clone)]
struct PanicsRelease;
impl WithGil for PanicsRelease {
    type Out = ();
    fn run<G: Gil>(self, gil: G) {
        let gil = Arc::new(gil);
        let g = gil.clone();
        let r = thread::spawn(move || {
            let mut it = Interp::new(&*g);
            it.take();
            panic!("boom while holding the GIL");
        })
        .join();
        assert!(r.is_err());
        let g = gil.clone();
        let r = thread::spawn(move || {
            let mut it = Interp::new(&*g);
            it.take();
            it.allow_threads(|| panic!("boom with the GIL released"));
        })
        .join();
        assert!(r.is_err());
        // Both panicking threads gave the GIL back: a third thread gets it.
        let mut it = Interp::new(&*gil);
        it.take();
        assert!(it.holds());
    }
}

#[test]
fn a_thread_that_panics_holding_the_gil_releases_it() {
    on_every_design(&fast_params(), PanicsRelease);
}

use gilbench::metrics::thread_cpu_time as thread_cpu;

/// The CPU time a waiter burns while a holder keeps the GIL for `hold` (sleeping, so the
/// holder itself uses no CPU and the waiter has a core of its own), and the time it was
/// runnable meanwhile, on a CPU or waiting for one, read by the holder just before it lets go
/// (a spinner is runnable through its spin however little of a core a busy machine gives it;
/// a blocked waiter is not). Where that cannot be read, its CPU time stands for it.
fn waiter_cpu<G: Gil>(gil: G, hold: Duration) -> (Duration, Duration) {
    let barrier = Barrier::new(2);
    let (tx, rx) = std::sync::mpsc::channel::<(u32, Duration)>();
    let runnable = Mutex::new(None);
    let used = thread::scope(|s| {
        let (gil, barrier, runnable) = (&gil, &barrier, &runnable);
        s.spawn(move || {
            let mut me = gil.register();
            gil.take(&mut me);
            barrier.wait();
            let (tid, from) = rx.recv().unwrap();
            thread::sleep(hold);
            *runnable.lock().unwrap() = runnable_time_of(tid).map(|t| t.saturating_sub(from));
            gil.release(&mut me, Release::Exit);
        });
        let waiter = s.spawn(move || {
            let mut me = gil.register();
            barrier.wait();
            let tid = own_tid();
            tx.send((tid, runnable_time_of(tid).unwrap_or_default()))
                .unwrap();
            let t0 = thread_cpu();
            gil.take(&mut me);
            let used = thread_cpu() - t0;
            gil.release(&mut me, Release::Exit);
            used
        });
        waiter.join().unwrap()
    });
    (used, runnable.into_inner().unwrap().unwrap_or(used))
}

/// `spin` means the same for every design with waiters: with the default of 0 no waiter
/// busy-waits (its CPU time while waiting 150 ms is a small fraction of that), and a `spin`
/// set by the user makes every one of them spin about that long before it blocks.
#[test]
fn spin_is_symmetric_and_off_by_default() {
    let hold = Duration::from_millis(150);
    let spin = Duration::from_millis(60);
    assert_eq!(
        GilParams::default().spin,
        Duration::ZERO,
        "spin must be off by default"
    );
    // PyPy's stealer is a loop of timed waits of pypy_steal_timeout (100 us: some 10% of a
    // core in wake-ups, its source's own cost, see pypy.rs); at 1 ms it stays out of the way
    // of what this test measures, `spin`.
    let off = GilParams {
        pypy_steal_timeout: Duration::from_millis(1),
        ..GilParams::default()
    };
    let on = GilParams {
        spin,
        ..off.clone()
    };
    #[derive(Clone)]
    struct WaiterCpu(Duration);
    impl WithGil for WaiterCpu {
        type Out = (Duration, Duration);
        fn run<G: Gil>(self, gil: G) -> (Duration, Duration) {
            waiter_cpu(gil, self.0)
        }
    }
    for kind in LockKind::ALL.into_iter().filter(|k| *k != LockKind::None) {
        let name = kind.name();
        // A waiter that wakes often (PyPy's stealer, every 1 ms) is runnable much of the
        // time on a busy machine too: there spinning can hide, which `unless_starved` judges.
        unless_starved(
            &format!("spin_is_symmetric_and_off_by_default ({name})"),
            |_| {
                let (idle, idle_runnable) = kind.with_design(&off, WaiterCpu(hold));
                let (spun, spun_runnable) = kind.with_design(&on, WaiterCpu(hold));
                eprintln!("{name}: waiter CPU {idle:?} (runnable {idle_runnable:?}) without spin, {spun:?} (runnable {spun_runnable:?}) with spin = {spin:?}");
                assert!(
                    idle < Duration::from_millis(15),
                    "{name} busy-waits without spin: {idle:?}"
                );
                assert!(
                    spun < spin * 2,
                    "{name} spun past its spin (once per take): {spun:?}"
                );
                // A spinner is runnable all through its spin, whatever share of a core a busy
                // machine gives it (its CPU time alone fell below a quarter of the spin there).
                if spun_runnable < idle_runnable + spin / 2 {
                    return Err(format!("{name} did not spin for spin = {spin:?}: runnable {spun_runnable:?} (without spin {idle_runnable:?}), CPU {spun:?}"));
                }
                Ok(())
            },
        );
    }
}

/// How long `low` waits for the GIL while another thread saturates it with 50 us holds and
/// blocking releases, asking again at once (faster than a parked thread wakes).
fn wait_under_saturation<G: Gil>(gil: &G, low: &mut G::Thread) -> Duration {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let stop = &stop;
        s.spawn(move || {
            let mut high = gil.register();
            while !stop.load(Ordering::Relaxed) {
                hold(gil, &mut high, Duration::from_micros(50));
            }
        });
        thread::sleep(Duration::from_millis(5));
        let t0 = Instant::now();
        gil.take(low);
        let waited = t0.elapsed();
        gil.release(low, Release::Exit);
        stop.store(true, Ordering::Relaxed);
        waited
    })
}

/// mlfq's snatch-back cannot starve a waiter: with both threads at the top level (the boost
/// resets the saturating thread's allotment before it is used up, so it never sinks), every
/// hand-off to the waiter would be snatched back if snatching had no bound.
#[test]
fn mlfq_snatching_cannot_starve_a_waiter() {
    // A bound on a wait holds as long as the OS runs the threads: `unless_starved` judges.
    unless_starved("mlfq_snatching_cannot_starve_a_waiter", |_| {
        let gil = MlfqGil::new(&GilParams {
            quanta: vec![Duration::from_millis(1), Duration::from_millis(5)],
            allotments: vec![Duration::from_millis(40), Duration::from_secs(10)],
            boost_interval: Duration::from_millis(30),
            ..GilParams::default()
        });
        let mut low = gil.register();
        let waited = wait_under_saturation(&gil, &mut low);
        if waited >= Duration::from_millis(100) {
            return Err(format!("the waiter waited {waited:?}"));
        }
        Ok(())
    });
}

/// mlfq's starvation bound: a thread at the bottom level still gets the GIL while a
/// higher-level thread saturates it, within about two boost intervals (with `boost =
/// "starved"` it is lifted once it has not held the GIL for a whole interval).
#[test]
fn mlfq_bottom_level_thread_gets_the_gil_under_a_saturating_load() {
    let gil = MlfqGil::new(&GilParams {
        quanta: vec![Duration::from_millis(1), Duration::from_millis(5)],
        allotments: vec![Duration::from_millis(40), Duration::from_secs(10)],
        boost_interval: Duration::from_millis(60),
        boost_all: false,
        ..GilParams::default()
    });
    let mut low = gil.register();
    // 45 ms of holding sinks it below the top level (before the first boost is due).
    hold(&gil, &mut low, Duration::from_millis(45));
    assert_eq!(gil.level_of(&low), 1);
    let waited = wait_under_saturation(&gil, &mut low);
    assert!(
        waited < Duration::from_millis(250),
        "the bottom-level thread waited {waited:?}"
    );
}
// ---- The historical designs (docs/history-sources.md): the behaviour each is known for. ----
/// The shared spin a waiter burnt (its `spin_wait_us`) with `spin = adaptive` on a run of
/// `cores` cores, while the holder runs (busy in GIL-held work) for 20 ms.
fn adaptive_spin_of_a_waiter(cores: usize) -> u64 {
    let gil = FifoGil::new(&GilParams {
        spin: gilbench::gil::ADAPTIVE_SPIN_BOUND,
        interval: Duration::from_secs(60),
        ..GilParams::default()
    });
    let gauge = Arc::new(gilbench::gil::SpinGauge::new(cores));
    let barrier = Barrier::new(2);
    let interp = || {
        let mut it = Interp::new(&gil);
        it.set_spin_gauge(gauge.clone());
        it
    };
    thread::scope(|s| {
        s.spawn(|| {
            let mut it = interp();
            it.take();
            barrier.wait();
            let end = Instant::now() + Duration::from_millis(20);
            while Instant::now() < end {
                std::hint::spin_loop();
            }
            it.release(Release::Exit);
        });
        let waiter = s.spawn(|| {
            let mut it = interp();
            barrier.wait();
            it.take();
            it.release(Release::Exit);
            let stats: std::collections::HashMap<_, _> = it.gil_stats().into_iter().collect();
            stats["spin_wait_us"]
        });
        waiter.join().unwrap()
    })
}

/// `spin = adaptive` through the interpreter layer: a waiter spins (up to its 50 us bound)
/// while the holder runs and a core is free for it, and not at all on a run of one core.
#[test]
fn adaptive_spin_spins_with_a_free_core_and_parks_without() {
    let free = adaptive_spin_of_a_waiter(2);
    assert!(free >= 40, "spun {free} us with a core free");
    let full = adaptive_spin_of_a_waiter(1);
    assert!(full < 10, "spun {full} us with no core free");
}

// ---- decay: least recent GIL usage first (4.4BSD). ----

/// A decay GIL with slices and a half-life of `secs` seconds (shares set by hand stay put
/// for the length of a test).
fn decay(secs: u64) -> DecayGil {
    DecayGil::new(&GilParams {
        decay_slice: Duration::from_secs(secs),
        decay_halflife: Duration::from_secs(secs),
        ..GilParams::default()
    })
}

/// Waiters with the recent shares `shares` queue in that order behind a holder with share
/// 0.9; returns the order in which they got the GIL.
fn decay_handoff_order(shares: &[f64]) -> Vec<usize> {
    let gil = decay(600);
    let order = Mutex::new(Vec::new());
    let mut holder = gil.register();
    gil.take(&mut holder);
    gil.set_share_for_test(&holder, 0.9);
    thread::scope(|s| {
        for (i, share) in shares.iter().enumerate() {
            let mut me = gil.register();
            gil.set_share_for_test(&me, *share);
            let (gil, order) = (&gil, &order);
            s.spawn(move || {
                gil.take(&mut me);
                order.lock().unwrap().push(i);
                gil.release(&mut me, Release::Exit);
            });
            let t0 = Instant::now();
            while gil.queued_len() < i + 1 {
                assert!(
                    t0.elapsed() < Duration::from_secs(5),
                    "waiter {i} never queued"
                );
                thread::sleep(Duration::from_micros(100));
            }
        }
        gil.release(&mut holder, Release::Exit);
    });
    order.into_inner().unwrap()
}

/// The GIL goes to the waiter with the least recent share, whatever the order in which they
/// asked (FIFO would give 0, 1, 2, 3, 4); equal shares are served first come first.
#[test]
fn decay_hands_off_by_least_recent_share() {
    let shares = [0.5, 0.1, 0.4, 0.2, 0.3];
    assert_eq!(decay_handoff_order(&shares), vec![1, 3, 4, 2, 0]);
    assert_eq!(decay_handoff_order(&[0.2, 0.2, 0.2]), vec![0, 1, 2]);
}

/// How long a holder with share `holder_share` runs its eval-breaker checks (at most
/// `limit`) before a waiter with `waiter_share` makes it drop (slices of 600 s: only urgency
/// can).
fn decay_preemption_after(
    holder_share: f64,
    waiter_share: f64,
    limit: Duration,
) -> Option<Duration> {
    let gil = decay(600);
    let (mut cpu, mut io) = (gil.register(), gil.register());
    gil.take(&mut cpu);
    gil.set_share_for_test(&cpu, holder_share);
    gil.set_share_for_test(&io, waiter_share);
    thread::scope(|s| {
        let g = &gil;
        s.spawn(move || {
            g.take(&mut io);
            g.release(&mut io, Release::Exit);
        });
        while gil.queued_len() == 0 {
            thread::yield_now();
        }
        let asked = checks_until_yield(&gil, &mut cpu, limit);
        gil.release(&mut cpu, Release::Forced);
        asked
    })
}

/// A waiter whose share is a band (1/32) below the holder's asks it to drop at once; one
/// within the band waits for the end of the slice (600 s here).
#[test]
fn decay_a_more_urgent_waiter_preempts_at_once_an_equal_one_waits() {
    let urgent = decay_preemption_after(0.5, 0.4, Duration::from_secs(10));
    assert!(
        urgent.is_some_and(|d| d < Duration::from_secs(1)),
        "the more urgent waiter did not preempt: {urgent:?}"
    );
    let equal = decay_preemption_after(0.5, 0.49, Duration::from_millis(300));
    assert_eq!(
        equal, None,
        "a waiter within the band preempted before the slice end"
    );
}

/// decay's starvation bound: a thread that has just held the GIL for 300 ms (share near 1,
/// the bottom priority) waits while another thread saturates the GIL with short holds. Its
/// share halves every 50 ms while the other's rises towards 1, so within about one half-life
/// the other can no longer take the GIL back from it, and it gets the GIL at a release: well
/// within 250 ms on a busy machine (without the decay it would never get it).
#[test]
fn decay_bottom_priority_thread_gets_the_gil_under_a_saturating_load() {
    let gil = DecayGil::new(&GilParams::default());
    let mut low = gil.register();
    gil.take(&mut low);
    gil.set_share_for_test(&low, 1.0);
    gil.release(&mut low, Release::Blocking);
    assert!(gil.share(&mut low) > 0.9);
    let waited = wait_under_saturation(&gil, &mut low);
    assert!(
        waited < Duration::from_millis(250),
        "the bottom-priority thread waited {waited:?}"
    );
}

// ---- The historical designs (HISTORY.md): the behaviour each is known for. ----

/// A holder runs eval-breaker checks (with a tick of work between them) until `check` says
/// yield or `limit` passes; returns how long that took, or None.
fn checks_until_yield<G: Gil>(gil: &G, t: &mut G::Thread, limit: Duration) -> Option<Duration> {
    let mut h = TickHasher::new(64, 7);
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        h.tick();
        if gil.check(t) {
            return Some(t0.elapsed());
        }
    }
    None
}

/// The holder (holding the GIL) runs checks until a yield while another thread waits
/// (`waiting` says when it does); then `after` looks at the GIL, the holder leaves and the
/// waiter gets in. Returns how long the checks took after the waiter was seen, or None.
fn with_a_waiter<G: Gil>(
    gil: &G,
    holder: &mut G::Thread,
    waiting: impl Fn(&G) -> bool,
    after: impl FnOnce(&G),
) -> Option<Duration> {
    thread::scope(|s| {
        s.spawn(move || {
            let mut w = gil.register();
            gil.take(&mut w);
            gil.release(&mut w, Release::Exit);
        });
        while !waiting(gil) {
            thread::yield_now();
        }
        let r = checks_until_yield(gil, holder, Duration::from_secs(5));
        after(gil);
        gil.release(holder, Release::Exit);
        r
    })
}

/// A CPU-bound holder and a thread that keeps coming back for the GIL (take, release, sleep
/// 100 us: a short blocking call) share it; the holder yields whenever its `check` says so.
/// Returns (yields, times the yielder got the GIL back before the other thread).
fn yields_won_by_the_yielder<G: Gil>(gil: &G, wanted: usize) -> (u64, u64) {
    // Log: 0 = holder took back, 1 = the other thread took, 2 = the holder yielded.
    let log = Mutex::new(Vec::<u8>::new());
    let done = AtomicBool::new(false);
    let cores = pin::available_cores().unwrap_or_default();
    thread::scope(|s| {
        let (log, done, cores) = (&log, &done, &cores);
        s.spawn(move || {
            if let Some(c) = cores.first() {
                pin::pin_current(*c);
            }
            let mut me = gil.register();
            let mut h = TickHasher::new(64, 1);
            gil.take(&mut me);
            let t0 = Instant::now();
            let mut yields = 0;
            while yields < wanted && t0.elapsed() < Duration::from_secs(5) {
                h.tick();
                if gil.check(&mut me) {
                    log.lock().unwrap().push(2);
                    yields += 1;
                    gil.release(&mut me, Release::Forced);
                    gil.take(&mut me);
                    log.lock().unwrap().push(0);
                }
            }
            done.store(true, Ordering::SeqCst);
            gil.release(&mut me, Release::Exit);
        });
        s.spawn(move || {
            if let Some(c) = cores.get(1) {
                pin::pin_current(*c);
            }
            let mut me = gil.register();
            while !done.load(Ordering::SeqCst) {
                gil.take(&mut me);
                log.lock().unwrap().push(1);
                gil.release(&mut me, Release::Blocking);
                thread::sleep(Duration::from_micros(100));
            }
        });
    });
    let log = log.into_inner().unwrap();
    let yields = log.iter().filter(|&&e| e == 2).count() as u64;
    let won = log.windows(2).filter(|w| w[0] == 2 && w[1] == 0).count() as u64;
    (yields, won)
}

fn ocaml(tick: Duration) -> OcamlGil {
    OcamlGil::new(&GilParams {
        ocaml_tick: tick,
        ..GilParams::default()
    })
}

/// OCaml: the tick thread fires whether or not anyone waits, but the holder yields at a tick
/// only when someone waits. (Yielding at every tick, or never, fails.)
#[test]
fn ocaml_tick_makes_the_holder_yield_only_when_someone_waits() {
    unless_starved(
        "ocaml_tick_makes_the_holder_yield_only_when_someone_waits",
        |_| {
            let tick = Duration::from_millis(5);
            let gil = ocaml(tick);
            let mut holder = gil.register();
            gil.take(&mut holder);
            // Alone: ticks fire, no yield.
            assert_eq!(
                checks_until_yield(&gil, &mut holder, tick * 20),
                None,
                "yielded with nobody waiting"
            );
            let ticks: std::collections::HashMap<_, _> = gil.stats().into_iter().collect();
            // (Judged only after the scope: a failure inside it would leave the waiter waiting
            // for a GIL the holder never gives up.)
            let after = with_a_waiter(&gil, &mut holder, |g| g.waiters() > 0, |_| {})
                .expect("no yield with a waiter in 5 s");
            // The tick thread's wake-ups and the holder's checks are the OS's to schedule: on a
            // busy machine they come late, which `unless_starved` judges.
            if ticks["ticks"] < 5 {
                return Err(format!("the tick thread fired {} times", ticks["ticks"]));
            }
            if after >= tick * 10 {
                return Err(format!("yielded only after {after:?} (tick {tick:?})"));
            }
            Ok(())
        },
    );
}

/// OCaml: a yielder counts itself as a waiter before the lock is free, so the thread it
/// signalled gets in first, every time (GPR #2112). A plain release + take (the pre-#2112
/// yield) lets the yielder, still running, re-take first most times on two cores.
#[test]
fn ocaml_yielder_never_wins_its_own_yield() {
    let gil = ocaml(Duration::from_millis(1));
    let (yields, won) = yields_won_by_the_yielder(&gil, 30);
    assert!(yields >= 10, "only {yields} yields");
    assert_eq!(won, 0, "the yielder re-took first {won} of {yields} times");
}

/// OCaml: no queue. A thread that releases around a blocking call that returns at once and
/// takes the lock again gets it before a waiter that was already there, at least sometimes
/// (the waiter must first be woken). `fifo` (direct hand-off) never lets it.
#[test]
fn ocaml_returning_thread_may_barge() {
    let gil = ocaml(Duration::from_secs(10));
    let barged = barging(&gil, Release::Blocking, || gil.waiters());
    assert!(barged > 0, "the returning thread never barged in 50 tries");
}

fn fastcond(interval: Duration) -> FastcondGil {
    FastcondGil::new(&GilParams {
        interval,
        ..GilParams::default()
    })
}

/// fastcond: the fair yield. The yielder waits while it was the last owner and others wait,
/// so the waiter gets in first every time; a greedy yield (release + take) lets the
/// yielder, still running, re-take first most times on two cores.
#[test]
fn fastcond_yielder_does_not_retake_before_a_waiter() {
    let gil = fastcond(Duration::from_millis(1));
    let (yields, won) = yields_won_by_the_yielder(&gil, 30);
    assert!(yields >= 10, "only {yields} yields");
    assert_eq!(won, 0, "the yielder re-took first {won} of {yields} times");
}

/// fastcond: the holder yields once it has held the GIL for `interval` while someone waits,
/// not before, and never while nobody waits.
#[test]
fn fastcond_yields_after_interval_only_when_someone_waits() {
    unless_starved(
        "fastcond_yields_after_interval_only_when_someone_waits",
        |_| fastcond_yield_after(Duration::from_millis(20)),
    );
}

/// fastcond's yield with a waiter, `interval` into a hold; or why it came too late.
fn fastcond_yield_after(interval: Duration) -> Result<(), String> {
    let gil = fastcond(interval);
    let mut holder = gil.register();
    gil.take(&mut holder);
    assert_eq!(
        checks_until_yield(&gil, &mut holder, interval * 3),
        None,
        "yielded with nobody waiting"
    );
    gil.release(&mut holder, Release::Blocking);
    gil.take(&mut holder);
    let t0 = Instant::now();
    with_a_waiter(&gil, &mut holder, |g| g.waiting() > 0, |_| {})
        .expect("no yield with a waiter in 5 s");
    let after = t0.elapsed();
    assert!(
        after >= interval,
        "yielded {after:?} into the hold (interval {interval:?})"
    );
    // Not much later, as long as the OS runs the holder's checks: `unless_starved` judges.
    if after >= interval * 5 {
        return Err(format!(
            "yielded only {after:?} into the hold (interval {interval:?})"
        ));
    }
    Ok(())
}

/// fastcond: takes are greedy. A thread back from a blocking call that returned at once takes
/// the free GIL before a waiter that was there first, at least sometimes.
#[test]
fn fastcond_take_is_greedy() {
    let gil = fastcond(Duration::from_secs(60));
    assert!(
        barging(&gil, Release::Blocking, || gil.waiting()) > 0,
        "the returning thread never barged in 50 tries"
    );
}

fn ruby(quantum: Duration, tick: Duration) -> RubyGil {
    RubyGil::new(&GilParams {
        ruby_quantum: quantum,
        ruby_tick: tick,
        ..GilParams::default()
    })
}

/// Ruby: a thread back from a blocking call (release + take) goes to the back of the ready
/// queue, behind the waiters already there, every time. A lock that lets the returning
/// thread barge (ocaml, fastcond, timed, tick) puts it first, at least sometimes.
#[test]
fn ruby_returning_thread_queues_behind_the_waiters() {
    let gil = ruby(Duration::from_secs(60), Duration::from_secs(1));
    for round in 0..20 {
        let order = Mutex::new(Vec::new());
        let mut me = gil.register();
        gil.take(&mut me);
        thread::scope(|s| {
            for i in 0..2 {
                let (g, order) = (&gil, &order);
                s.spawn(move || {
                    let mut w = g.register();
                    g.take(&mut w);
                    order.lock().unwrap().push(i);
                    g.release(&mut w, Release::Blocking);
                });
                while gil.queued_len() < i + 1 {
                    thread::yield_now();
                }
            }
            // A blocking call that returns at once.
            gil.release(&mut me, Release::Blocking);
            gil.take(&mut me);
            order.lock().unwrap().push(9);
            gil.release(&mut me, Release::Exit);
        });
        assert_eq!(
            order.into_inner().unwrap(),
            vec![0, 1, 9],
            "round {round}: the returning thread did not queue behind the waiters"
        );
    }
}

/// Ruby: the timer ticks only while someone waits, and a CPU-bound holder yields once its
/// running time reaches the quantum: not at the first tick, not never.
#[test]
fn ruby_holder_yields_after_its_quantum_not_before() {
    unless_starved("ruby_holder_yields_after_its_quantum_not_before", |_| {
        let (quantum, tick) = (Duration::from_millis(60), Duration::from_millis(5));
        let gil = ruby(quantum, tick);
        let ticks = |g: &RubyGil| -> u64 {
            g.stats()
                .into_iter()
                .find(|(k, _)| *k == "ticks")
                .unwrap()
                .1
        };
        let mut holder = gil.register();
        gil.take(&mut holder);
        assert_eq!(
            checks_until_yield(&gil, &mut holder, quantum * 2),
            None,
            "yielded with nobody waiting"
        );
        assert_eq!(ticks(&gil), 0, "the timer ticked while nobody waited");
        let mut ticked = 0;
        let after = with_a_waiter(
            &gil,
            &mut holder,
            |g| g.queued_len() > 0,
            |g| ticked = ticks(g),
        )
        .expect("no yield with a waiter in 5 s");
        // Never early, however busy the machine.
        assert!(
            after >= quantum * 9 / 10,
            "yielded after {after:?}, before the {quantum:?} quantum"
        );
        // Not much late, and on ticks: as long as the OS runs the timer thread and the holder.
        if after >= quantum * 4 {
            return Err(format!("yielded only after {after:?}"));
        }
        if ticked < 10 {
            return Err(format!("{ticked} ticks"));
        }
        Ok(())
    });
}

/// Ruby: the yielder hands off to the head of the queue and waits at the tail.
#[test]
fn ruby_yielder_goes_to_the_back() {
    let gil = ruby(Duration::from_millis(1), Duration::from_micros(500));
    let (yields, won) = yields_won_by_the_yielder(&gil, 30);
    assert!(yields >= 10, "only {yields} yields");
    assert_eq!(won, 0, "the yielder re-took first {won} of {yields} times");
}

/// System calls `f` makes, counted in a forked child under a seccomp filter that traps every
/// system call but the two the counting needs (`rt_sigreturn`, `exit_group`) into a SIGSYS
/// handler. `f` must not allocate (the child of a threaded parent runs only `f`).
fn syscalls_in(f: impl FnOnce()) -> u32 {
    use std::sync::atomic::AtomicU32;
    static TRAPPED: AtomicU32 = AtomicU32::new(0);
    extern "C" fn on_sigsys(_: libc::c_int) {
        TRAPPED.fetch_add(1, Ordering::Relaxed);
    }
    // Classic BPF: load the syscall number; allow rt_sigreturn and exit_group; trap the rest.
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    const ALLOW: u32 = 0x7fff_0000;
    const TRAP: u32 = 0x0003_0000;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let filter = [
        op(LD_W_ABS, 0, 0, 0),
        op(JEQ_K, 0, 1, libc::SYS_rt_sigreturn as u32),
        op(RET_K, 0, 0, ALLOW),
        op(JEQ_K, 0, 1, libc::SYS_exit_group as u32),
        op(RET_K, 0, 0, ALLOW),
        op(RET_K, 0, 0, TRAP),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: fork in a threaded process: the child only installs a signal handler and the
    // filter (plain system calls, no allocation), runs `f` (which must not allocate) and
    // leaves with exit_group, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: in the child; a zeroed sigaction with a valid handler address, and a
        // filter program that outlives the prctl call.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigsys as extern "C" fn(libc::c_int) as usize;
            libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut());
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog) != 0 {
                libc::syscall(libc::SYS_exit_group, 255);
            }
        }
        f();
        let n = TRAPPED.load(Ordering::Relaxed).min(200);
        // SAFETY: ends the child at once; allowed by the filter.
        unsafe { libc::syscall(libc::SYS_exit_group, n as libc::c_long) };
        unreachable!();
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status),
        "the child died: status {status:#x}"
    );
    let code = libc::WEXITSTATUS(status) as u32;
    assert_ne!(code, 255, "seccomp is not available");
    code
}

fn pypy(checkinterval: u32, steal_timeout: Duration) -> PypyGil {
    PypyGil::new(&GilParams {
        pypy_checkinterval: checkinterval,
        pypy_steal_timeout: steal_timeout,
        ..GilParams::default()
    })
}

/// PyPy: release around an external call is one store and an uncontended take one CAS: a
/// thousand of each make no system call. (The counter does see one: a `getpid` does.)
#[test]
fn pypy_uncontended_release_and_take_make_no_system_call() {
    let gil = pypy(10_000, Duration::from_micros(100));
    let mut t = gil.register();
    gil.take(&mut t);
    let n = syscalls_in(|| {
        for _ in 0..1000 {
            gil.release(&mut t, Release::Blocking);
            gil.take(&mut t);
        }
    });
    assert_eq!(n, 0, "{n} system calls in 1000 release+take");
    // SAFETY: getpid has no preconditions.
    let control = syscalls_in(|| unsafe {
        libc::syscall(libc::SYS_getpid);
    });
    assert_eq!(control, 1, "the counter missed a system call");
}

/// PyPy: a release wakes nobody. A waiter (the stealer, in its timed lock) finds the word free
/// when its timed lock next times out: within about one `pypy_steal_timeout`, spread over it,
/// not at once. (A release that woke the waiter would average microseconds; a stealer that
/// never looked at the word would never get in.)
#[test]
fn pypy_released_word_is_stolen_within_the_steal_timeout() {
    unless_starved(
        "pypy_released_word_is_stolen_within_the_steal_timeout",
        |_| pypy_steals(Duration::from_millis(20)),
    );
}

/// Eight steals of a released word by a waiter in its timed lock; or why they came too late.
fn pypy_steals(timeout: Duration) -> Result<(), String> {
    let gil = pypy(u32::MAX, timeout);
    let mut delays = Vec::new();
    for _ in 0..8 {
        let mut holder = gil.register();
        gil.take(&mut holder);
        let released = thread::scope(|s| {
            let g = &gil;
            let w = s.spawn(move || {
                let mut me = g.register();
                g.take(&mut me);
                let got = Instant::now();
                g.release(&mut me, Release::Exit);
                got
            });
            while gil.waiting() == 0 {
                thread::yield_now();
            }
            // Let the waiter get past its polling into the stealer's timed lock.
            thread::sleep(Duration::from_millis(3));
            let released = Instant::now();
            gil.release(&mut holder, Release::Blocking);
            w.join().unwrap() - released
        });
        delays.push(released);
    }
    let mean = delays.iter().sum::<Duration>() / delays.len() as u32;
    let max = *delays.iter().max().unwrap();
    assert!(
        mean > timeout / 8,
        "stolen on average {mean:?} after the release: woken, not stolen? {delays:?}"
    );
    // As long as the OS runs the stealer when its timed lock times out.
    if max >= timeout * 3 {
        return Err(format!(
            "stolen only after {max:?} (steal timeout {timeout:?}): {delays:?}"
        ));
    }
    Ok(())
}

/// PyPy: the holder's periodic action comes every `pypy_checkinterval` ticks; it yields there
/// when someone waits, and only then. After the yield the stealer holds the GIL.
#[test]
fn pypy_holder_yields_every_checkinterval_ticks() {
    let every = 5_000u32;
    let gil = pypy(every, Duration::from_micros(100));
    let mut holder = gil.register();
    gil.take(&mut holder);
    for _ in 0..(every * 3) {
        assert!(!gil.check(&mut holder), "yielded with nobody waiting");
    }
    let done = AtomicBool::new(false);
    let counts = thread::scope(|s| {
        let (g, done) = (&gil, &done);
        s.spawn(move || {
            let mut me = g.register();
            while !done.load(Ordering::SeqCst) {
                g.take(&mut me);
                g.release(&mut me, Release::Blocking);
            }
        });
        let mut counts = Vec::new();
        for _ in 0..4 {
            while gil.waiting() == 0 {
                thread::yield_now();
            }
            let mut n = 1u32;
            while !gil.check(&mut holder) {
                n += 1;
            }
            counts.push(n);
            gil.release(&mut holder, Release::Forced);
            gil.take(&mut holder);
        }
        done.store(true, Ordering::SeqCst);
        gil.release(&mut holder, Release::Exit);
        counts
    });
    // The first count starts mid-period; every later one is a whole period.
    assert!(counts[0] <= every, "{counts:?}");
    assert!(
        counts[1..].iter().all(|&n| n == every),
        "yields not every {every} ticks: {counts:?}"
    );
}

fn bfs(rr: Duration) -> BfsGil {
    BfsGil::new(&GilParams {
        bfs_rr: rr,
        ..GilParams::default()
    })
}

/// BFS: a thread back from I/O whose deadline is earlier than the CPU-bound holder's is
/// urgent: it sets `preempt` and the holder hands over at its next check, long before its
/// slice is used up. (Without the preemption it would wait for the holder's slice, `rr`.)
#[test]
fn bfs_io_thread_with_an_earlier_deadline_preempts() {
    // The holder hands over at its next check, if the OS runs it: on a busy machine the
    // checks come late, which `unless_starved` judges.
    unless_starved("bfs_io_thread_with_an_earlier_deadline_preempts", |_| {
        let rr = Duration::from_millis(50);
        let worst = *bfs_io_waits(rr).iter().max().unwrap();
        if worst >= rr / 2 {
            return Err(format!(
                "the I/O thread waited up to {worst:?} for a CPU-bound holder (rr {rr:?})"
            ));
        }
        Ok(())
    });
}

/// Five GIL waits of an I/O thread that comes back every 2 ms to a CPU-bound holder.
fn bfs_io_waits(rr: Duration) -> Vec<Duration> {
    let gil = bfs(rr);
    let mut io = gil.register();
    let mut cpu = gil.register();
    // The I/O thread takes first (deadline python_time + 8 rr) and blocks almost at once; the
    // CPU thread then gets a later deadline.
    gil.take(&mut io);
    gil.release(&mut io, Release::Blocking);
    gil.take(&mut cpu);
    thread::scope(|s| {
        let g = &gil;
        let io_thread = s.spawn(move || {
            let mut waits = Vec::new();
            for _ in 0..5 {
                thread::sleep(Duration::from_millis(2));
                let t0 = Instant::now();
                g.take(&mut io);
                waits.push(t0.elapsed());
                g.release(&mut io, Release::Blocking);
            }
            waits
        });
        let mut h = TickHasher::new(64, 3);
        while !io_thread.is_finished() {
            h.tick();
            if gil.check(&mut cpu) {
                gil.release(&mut cpu, Release::Forced);
                gil.take(&mut cpu);
            }
        }
        gil.release(&mut cpu, Release::Exit);
        io_thread.join().unwrap()
    })
}

/// BFS: a thread that releases for I/O and comes straight back, while the thread designated
/// to run next has not started, snatches the GIL back (and the designated thread waits on).
/// Without snatching it would always queue behind the designated thread.
#[test]
fn bfs_snatches_when_the_designated_thread_has_not_started() {
    let gil = bfs(Duration::from_secs(1));
    let barged = barging(&gil, Release::Blocking, || gil.queued_len());
    assert!(barged > 0, "no snatch in 50 tries");
    assert_eq!(gil.snatches(), barged as u64);
}

/// A yield that keeps the GIL because nobody waits (ocaml's and ruby's return at once) is not
/// a forced drop: the interpreter does not count it as one.
#[test]
fn a_yield_that_keeps_the_gil_is_not_a_forced_drop() {
    struct KeptYield;
    impl WithGil for KeptYield {
        type Out = (u64, bool);
        fn run<G: Gil>(self, gil: G) -> (u64, bool) {
            let mut it = Interp::new(&gil);
            it.take();
            it.release(Release::Forced);
            it.take();
            let held = it.holds();
            it.release(Release::Exit);
            (it.metrics.counters.forced_drops, held)
        }
    }
    for k in [LockKind::Ocaml, LockKind::Ruby] {
        let (drops, held) = k.with_design(&GilParams::default(), KeptYield);
        assert!(held, "{k}");
        assert_eq!(drops, 0, "{k}: a kept yield was counted as a forced drop");
    }
}
