//! What the testbed itself costs: uncontended take+release of every design beside
//! parking_lot's and std's mutex, and the eval-breaker check beside one 64-byte SHA-256 tick.
//!
//! `cargo bench --bench gil`

use std::hint::black_box;
use std::sync::atomic::AtomicUsize;

use criterion::{criterion_group, criterion_main, Criterion};

use gilbench::gil::{FifoGil, Gil, GilParams, MlfqGil, NoGil, Release, TickGil, TimedGil};
use gilbench::interp::Interp;
use gilbench::workload::TickHasher;

fn take_release<G: Gil>(c: &mut Criterion, gil: G) {
    let mut t = gil.register();
    c.bench_function(&format!("uncontended take+release/{}", G::NAME), |b| {
        b.iter(|| {
            gil.take(&mut t);
            gil.release(&mut t, Release::Blocking);
        })
    });
}

fn uncontended(c: &mut Criterion) {
    let p = GilParams::default();
    take_release(c, TickGil::new(&p));
    take_release(c, TimedGil::new(&p));
    take_release(c, MlfqGil::new(&p));
    take_release(c, FifoGil::new(&p));
    take_release(c, NoGil::new());
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
    let last = AtomicUsize::new(usize::MAX);
    let mut it = Interp::new(&gil, 0, &last);
    it.take();
    c.bench_function("eval-breaker check (timed)", |b| b.iter(|| it.check()));
    drop(it);
    let mut h = TickHasher::new(64, 1);
    c.bench_function("tick: SHA-256 over 64 bytes", |b| b.iter(|| h.tick()));
}

criterion_group!(benches, uncontended, tick_path);
criterion_main!(benches);
