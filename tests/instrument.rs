//! The instrument stays out of the races it measures: on the take/release path it writes
//! nothing shared beyond what the design itself writes (DESIGN.md §4, issue 20). Two guards:
//! what the recorded path does to the shared state it is given, and what the source of that
//! path is allowed to contain.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;

use gilbench::gil::{FifoGil, Gil, GilParams, Release, TickGil};
use gilbench::holdlog::{HoldLog, CHUNK};
use gilbench::interp::{Beacon, Interp, ProbeParts};

const THREADS: usize = 3;
const ROUNDS: usize = 30_000;

/// Three recording threads take and release `gil` many times (eval-breaker checks, blocking
/// releases); returns their logs and what the shared budget has left of `budget_events`.
fn hammer<G: Gil>(gil: &G, budget_events: usize) -> (Vec<HoldLog>, u64, u64, usize) {
    let parts = ProbeParts::new(budget_events);
    let (stop, measuring) = (AtomicBool::new(false), AtomicBool::new(true));
    let beacons: Vec<Beacon> = (0..THREADS).map(|_| Beacon::default()).collect();
    let probe = parts.probe();
    let barrier = Barrier::new(THREADS);
    let logs = std::sync::Mutex::new(Vec::new());
    thread::scope(|s| {
        for b in &beacons {
            let (barrier, logs, stop, measuring) = (&barrier, &logs, &stop, &measuring);
            s.spawn(move || {
                let mut it = Interp::new(gil);
                it.set_probe(probe);
                it.set_beacon(b);
                it.set_stop(stop);
                it.set_warmup_gate(measuring);
                barrier.wait();
                it.take();
                for r in 0..ROUNDS {
                    it.check();
                    if r % 3 == 0 {
                        drop(it.released());
                    }
                }
                it.release(Release::Exit);
                logs.lock().unwrap().push(it.take_log());
            });
        }
    });
    let left = parts.budget.left();
    assert!(!stop.load(Ordering::Relaxed) && measuring.load(Ordering::Relaxed));
    (
        logs.into_inner().unwrap(),
        parts.measure_start.load(Ordering::Relaxed),
        parts.epoch.raw,
        left,
    )
}

#[test]
fn recording_writes_only_each_threads_own_log_and_a_budget_per_chunk() {
    for (name, logs, start, epoch, left, total) in [
        {
            let g = TickGil::new(&GilParams::default());
            let total = 1 << 24;
            let (l, s, e, left) = hammer(&g, total);
            ("tick", l, s, e, left, total)
        },
        {
            let g = FifoGil::new(&GilParams::default());
            let total = 1 << 24;
            let (l, s, e, left) = hammer(&g, total);
            ("fifo", l, s, e, left, total)
        },
    ] {
        assert_eq!(
            start, epoch,
            "{name}: the window's start is read, never written"
        );
        let events: usize = logs.iter().map(HoldLog::len).sum();
        // Three events per take (asked, got, gave up), each thread's in its own log.
        assert!(
            events >= THREADS * ROUNDS / 3 * 3,
            "{name}: {events} events"
        );
        // The budget moves by whole chunks, one per chunk a thread filled: a shared write
        // every CHUNK events at most, never per take or release.
        let drawn = total - left;
        let chunks: usize = logs.iter().map(|l| l.len().div_ceil(CHUNK)).sum();
        assert_eq!(
            drawn,
            chunks * CHUNK,
            "{name}: the budget was drawn {drawn} for {chunks} chunks"
        );
    }
}

/// The functions a recorded take or release runs through, in `src/interp.rs`.
const HOT_PATH: &[&str] = &[
    "fn take_as(",
    "fn release(",
    "fn release_recorded(",
    "fn record_take(",
    "fn record_hold(",
    "fn record_deferred(",
    "fn log(",
    "fn check(",
    "fn yield_gil(",
];

/// Atomic writes: a store, a read-modify-write, a compare-and-swap.
const ATOMIC_WRITES: &[&str] = &[
    ".store(",
    ".swap(",
    "fetch_add",
    "fetch_sub",
    "fetch_update",
    "fetch_or",
    "fetch_and",
    "compare_exchange",
];

/// The body of `func` in `src`: from its signature to the closing brace at its indentation.
fn body<'a>(src: &'a str, func: &str) -> &'a str {
    let start = src
        .find(func)
        .unwrap_or_else(|| panic!("src/interp.rs has no `{func}`"));
    let end = src[start..]
        .find("\n    }\n")
        .map_or(src.len(), |e| start + e);
    &src[start..end]
}

#[test]
fn the_take_and_release_path_makes_no_atomic_write_of_its_own() {
    let src = include_str!("../src/interp.rs");
    for f in HOT_PATH {
        let b = body(src, f);
        for w in ATOMIC_WRITES {
            assert!(
                !b.contains(w),
                "`{f}` in src/interp.rs makes an atomic write ({w}): the instrument may write only \
                 the thread's own memory on the take/release path; derive cross-thread figures \
                 after the run (src/holdlog.rs)"
            );
        }
    }
    // The one shared write the logs make, a chunk from the budget, is on the cold path.
    let log = include_str!("../src/holdlog.rs");
    let push = body(log, "pub fn push(");
    assert!(ATOMIC_WRITES.iter().all(|w| !push.contains(w)), "{push}");
    assert!(
        log.contains("#[cold]\n    #[inline(never)]\n    fn next_chunk("),
        "the budget is drawn in a cold, out-of-line function"
    );
}

#[test]
fn the_source_guard_sees_a_shared_write() {
    // The guard must be able to fail: a body with a shared counter bump is caught.
    let bad = "    fn take_as(&mut self) {\n        self.shared.fetch_add(1, Relaxed);\n    }\n";
    let b = body(bad, "fn take_as(");
    assert!(ATOMIC_WRITES.iter().any(|w| b.contains(w)));
}

mod common;

#[test]
fn a_hold_that_began_in_the_warmup_counts_only_its_part_in_the_window() {
    // A lone CPU thread never releases: its one hold spans the warm-up (500 ms) and the
    // 200 ms window. Only the window's part is its hold; its take was in the warm-up, so it
    // made no acquisition in the window.
    let _one = common::one();
    for lock in ["timed", "tick", "fifo", "mlfq", "bfs"] {
        let r = common::run(
            "cpu-scaling.toml",
            &[
                &format!("lock={lock}"),
                "cpu_threads=1",
                "duration=200ms",
                "warmup=500ms",
            ],
        );
        let window_us = r.measured_s * 1e6;
        let hold = &r.gil.hold_us;
        assert!(
            hold.max <= window_us * 1.01 + 1000.0,
            "{lock}: a hold of {}us in a {window_us}us window",
            hold.max
        );
        if lock == "timed" || lock == "fifo" {
            // Alone, these never drop: the one hold covers the window.
            assert_eq!(
                r.gil.acquisitions,
                Some(0),
                "{lock}: the take was in the warm-up"
            );
            assert!(hold.max >= window_us * 0.5, "{lock}: {}us", hold.max);
        }
    }
}

/// A lone recording thread's `cycles` forced drops and re-takes, and `calls` blocking
/// releases, under `gil`: its metrics.
fn lone_cycles<G: Gil>(gil: &G, cycles: usize, calls: usize) -> gilbench::metrics::ThreadMetrics {
    let parts = ProbeParts::new(1 << 20);
    let mut it = Interp::new(gil);
    it.set_probe(parts.probe());
    it.take();
    for _ in 0..cycles {
        it.release(Release::Forced);
        it.take();
    }
    for _ in 0..calls {
        drop(it.released());
    }
    it.release(Release::Exit);
    std::mem::take(&mut it.metrics)
}

/// Where a design's release cannot wait (`Gil::RELEASE_WAITS`, tick's `sem_post`), releases
/// are not timed: no switch-wait figure (absent, not near zero), while every take's wait and
/// hold are still recorded; a design whose release can wait keeps one sample per forced and
/// per blocking release.
#[test]
fn releases_are_timed_only_where_they_can_wait() {
    let (cycles, calls) = (500, 200);
    let tick = lone_cycles(&TickGil::new(&GilParams::default()), cycles, calls);
    const { assert!(!TickGil::RELEASE_WAITS) };
    assert_eq!(tick.switch_wait.len(), 0, "tick timed its releases");
    assert_eq!(tick.counters.forced_drops, cycles as u64);
    let takes = (cycles + calls) as u64 + 1;
    assert_eq!(tick.counters.acquisitions, takes);
    assert_eq!(tick.wait.len(), takes);
    assert_eq!(tick.hold.len(), takes);
    let fifo = lone_cycles(&FifoGil::new(&GilParams::default()), cycles, calls);
    const { assert!(FifoGil::RELEASE_WAITS) };
    assert_eq!(fifo.switch_wait.len(), (cycles + calls) as u64);
    assert_eq!(fifo.wait.len(), takes);
}
