//! What the testbed itself costs (`cargo bench --bench gil`):
//! * uncontended take+release of every design beside parking_lot's and std's mutex;
//! * the eval-breaker check beside one 64-byte SHA-256 tick;
//! * cross-core hand-off: two threads pinned to different cores pass the GIL back and forth
//!   (a turn flag under the GIL says whose turn it is), per design, beside the same
//!   ping-pong on parking_lot's Mutex + Condvar and on a bare atomic flag (the hardware limit);
//! * recording one value in the per-thread histograms and counters, and the whole recorded
//!   take+release against the unrecorded one.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};

use gilbench::gil::{Gil, GilParams, LockKind, Release, TickGil, TimedGil, WithGil};
use gilbench::interp::{Interp, ProbeParts};
use gilbench::metrics::{new_hist, record, ThreadMetrics};
use gilbench::pin;
use gilbench::workload::TickHasher;

/// Uncontended take+release of one design.
struct TakeRelease<'a>(&'a mut Criterion);
impl WithGil for TakeRelease<'_> {
    type Out = ();
    fn run<G: Gil>(self, gil: G) {
        let mut t = gil.register();
        self.0
            .bench_function(&format!("uncontended take+release/{}", G::NAME), |b| {
                b.iter(|| {
                    gil.take(&mut t);
                    gil.release(&mut t, Release::Blocking);
                })
            });
    }
}

fn uncontended(c: &mut Criterion) {
    let p = GilParams::default();
    for k in LockKind::ALL {
        k.with_design(&p, TakeRelease(c));
    }
    let m = parking_lot::Mutex::new(0u64);
    c.bench_function("uncontended take+release/parking_lot::Mutex", |b| {
        b.iter(|| *black_box(&m).lock() += 1)
    });
    let m = std::sync::Mutex::new(0u64);
    c.bench_function("uncontended take+release/std::sync::Mutex", |b| {
        b.iter(|| *black_box(&m).lock().unwrap() += 1)
    });
}

fn tick_path(c: &mut Criterion) {
    let gil = TimedGil::new(&GilParams::default());
    let mut it = Interp::new(&gil);
    it.take();
    c.bench_function("tick/eval-breaker check (timed)", |b| b.iter(|| it.check()));
    drop(it);
    let mut h = TickHasher::new(64, 1);
    c.bench_function("tick/SHA-256 over 64 bytes", |b| b.iter(|| h.tick()));
}

/// The two cores the ping-pong threads go on (the same one twice on a 1-core machine).
fn two_cores() -> (Option<usize>, Option<usize>) {
    match pin::available_cores() {
        Some(c) if c.len() >= 2 => (Some(c[0]), Some(c[1])),
        Some(c) => (Some(c[0]), Some(c[0])),
        None => (None, None),
    }
}

/// `rounds` round trips of the GIL between two pinned threads; returns the time taken.
fn gil_ping_pong<G: Gil>(gil: &G, rounds: u64) -> Duration {
    let turn = AtomicUsize::new(0);
    let (c0, c1) = two_cores();
    std::thread::scope(|s| {
        let player = |me: usize, core: Option<usize>| {
            let (gil, turn) = (gil, &turn);
            move || {
                if let Some(c) = core {
                    pin::pin_current(c);
                }
                let mut t = gil.register();
                let mut done = 0;
                while done < rounds {
                    gil.take(&mut t);
                    // The flag is only touched under the GIL.
                    if turn.load(Ordering::Relaxed) == me {
                        turn.store(1 - me, Ordering::Relaxed);
                        done += 1;
                    }
                    gil.release(&mut t, Release::Blocking);
                }
            }
        };
        let start = Instant::now();
        let b = s.spawn(player(1, c1));
        player(0, c0)();
        b.join().unwrap();
        start.elapsed()
    })
}

fn handoff(c: &mut Criterion) {
    let mut g = c.benchmark_group("cross-core hand-off (round trip)");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    let p = GilParams::default();
    let spin = GilParams {
        spin: Duration::from_micros(50),
        ..GilParams::default()
    };
    /// The ping-pong on one design, built afresh for each sample.
    struct PingPong(u64);
    impl WithGil for PingPong {
        type Out = Duration;
        fn run<G: Gil>(self, gil: G) -> Duration {
            gil_ping_pong(&gil, self.0)
        }
    }
    for k in LockKind::ALL.into_iter().filter(|k| *k != LockKind::None) {
        g.bench_function(k.name(), |b| {
            b.iter_custom(|n| k.with_design(&p, PingPong(n)))
        });
    }
    for k in [LockKind::Fifo, LockKind::Mlfq] {
        g.bench_function(format!("{k}, spin 50us"), |b| {
            b.iter_custom(|n| k.with_design(&spin, PingPong(n)))
        });
    }
    g.bench_function("parking_lot Mutex+Condvar", |b| {
        b.iter_custom(condvar_ping_pong)
    });
    g.bench_function("bare atomic flag", |b| b.iter_custom(flag_ping_pong));
    g.finish();
}

/// The reference round trip through a parking_lot mutex and condition variable: `rounds`
/// turns each way between two threads on two cores.
fn condvar_ping_pong(rounds: u64) -> Duration {
    let m = parking_lot::Mutex::new(0usize);
    let cv = parking_lot::Condvar::new();
    let (c0, c1) = two_cores();
    std::thread::scope(|s| {
        let player = |me: usize, core: Option<usize>| {
            let (m, cv) = (&m, &cv);
            move || {
                if let Some(c) = core {
                    pin::pin_current(c);
                }
                for _ in 0..rounds {
                    let mut t = m.lock();
                    while *t != me {
                        cv.wait(&mut t);
                    }
                    *t = 1 - me;
                    cv.notify_one();
                }
            }
        };
        let start = Instant::now();
        let h = s.spawn(player(1, c1));
        player(0, c0)();
        h.join().unwrap();
        start.elapsed()
    })
}

/// The floor: the same round trip through one atomic flag, both threads spinning.
fn flag_ping_pong(rounds: u64) -> Duration {
    let flag = AtomicUsize::new(0);
    let (c0, c1) = two_cores();
    std::thread::scope(|s| {
        let player = |me: usize, core: Option<usize>| {
            let flag = &flag;
            move || {
                if let Some(c) = core {
                    pin::pin_current(c);
                }
                for _ in 0..rounds {
                    while flag.load(Ordering::Acquire) != me {
                        std::hint::spin_loop();
                    }
                    flag.store(1 - me, Ordering::Release);
                }
            }
        };
        let start = Instant::now();
        let h = s.spawn(player(1, c1));
        player(0, c0)();
        h.join().unwrap();
        start.elapsed()
    })
}

fn recording(c: &mut Criterion) {
    let mut h = new_hist();
    let mut x = 1u64;
    c.bench_function("record/one histogram value", |b| {
        b.iter(|| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            record(&mut h, Duration::from_nanos(x >> 40));
        })
    });
    let mut m = ThreadMetrics::default();
    c.bench_function("record/acquisition (wait + hold + 2 counters)", |b| {
        b.iter(|| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let d = Duration::from_nanos(x >> 40);
            record(&mut m.wait, d);
            record(&mut m.hold, d);
            m.counters.acquisitions += 1;
            m.counters.switches += 1;
        })
    });
    c.bench_function("record/clock read (Instant::now)", |b| {
        b.iter(|| black_box(Instant::now()))
    });
    // The raw TSC read that mlfq's fast path pays once on each side of an uncontended hold.
    let clock = quanta::Clock::new();
    c.bench_function("record/raw TSC read (quanta::Clock::raw)", |b| {
        b.iter(|| black_box(clock.raw()))
    });
    c.bench_function("record/core sample (sched_getcpu)", |b| {
        b.iter(|| black_box(gilbench::metrics::current_core()))
    });
}

/// The whole instrument per GIL cycle: `Interp`'s take+release under `tick` (uncontended),
/// recorded with a run's probe (stamps, event log, histograms, counters, core sample) and
/// unrecorded. Their difference over the ticks between two of `tick`'s re-takes (100) is the
/// share of single-thread ticks/s the instrument costs.
fn instrument(c: &mut Criterion) {
    let gil = TickGil::new(&GilParams::default());
    // Unbounded: the bench drops its logs as it goes but never gives the budget back.
    let parts = ProbeParts::new(usize::MAX);
    let probe = parts.probe();
    for recorded in [true, false] {
        let mut it = Interp::new(&gil);
        it.set_probe(probe);
        it.set_recording(recorded);
        let name = if recorded { "recorded" } else { "unrecorded" };
        let mut n = 0u32;
        c.bench_function(&format!("record/Interp take+release, {name} (tick)"), |b| {
            b.iter(|| {
                it.take();
                it.release(Release::Forced);
                // Keep the log (and its budget) bounded, as a chunk at a time, like a run.
                n = n.wrapping_add(1);
                if n.is_multiple_of(1 << 20) {
                    drop(it.take_log());
                }
            })
        });
    }
}

criterion_group!(
    benches,
    uncontended,
    tick_path,
    handoff,
    recording,
    instrument
);
criterion_main!(benches);
