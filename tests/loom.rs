//! loom models of each design's take/release hand-off, with untimed waits (loom does not
//! model time, so `wait_timeout` never times out). Run with:
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom`
//!
//! Every design but `none` has a model with three threads; `none` has no lock, so nothing to
//! exclude, hand over or lose (its threads share no state through the GIL).
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use loom::sync::atomic::{AtomicBool, Ordering};

use gilbench::gil::DecayGil;
use gilbench::gil::{
    BfsGil, FastcondGil, FifoGil, Gil, GilParams, MlfqGil, OcamlGil, PypyGil, Release, RubyGil,
    TickGil, TimedGil,
};

/// `n` threads each take the GIL `rounds` times (running `before` ahead of every take, e.g.
/// timed's drop request), update an unsynchronised cell under it, and release it; loom
/// checks every interleaving, up to `bound` preemptions (None: `LOOM_MAX_PREEMPTIONS`), for
/// a data race on the cell (mutual exclusion), a deadlock or a lost wake-up (a thread left
/// parked).
fn model<G: Gil>(
    n: u32,
    rounds: u32,
    bound: Option<usize>,
    make: fn() -> G,
    before: fn(&G),
    why: Release,
) {
    let mut b = loom::model::Builder::new();
    if bound.is_some() {
        b.preemption_bound = bound;
    }
    b.check(move || {
        let gil = Arc::new(make());
        let cell = Arc::new(UnsafeCell::new(0u32));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (gil, cell) = (gil.clone(), cell.clone());
                thread::spawn(move || {
                    let mut me = gil.register();
                    for _ in 0..rounds {
                        before(&gil);
                        gil.take(&mut me);
                        // SAFETY: loom reports any concurrent access here as a failure; the
                        // GIL is what must prevent it.
                        cell.with_mut(|v| unsafe { *v += 1 });
                        gil.release(&mut me, why);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // SAFETY: every thread was joined.
        assert_eq!(cell.with(|v| unsafe { *v }), n * rounds);
    });
}

/// `n` threads take and release once each. Three threads exercise the hand-off queues (FIFO
/// order, mlfq's pokes) and are explored with a preemption bound of 1 to stay quick.
fn holders<G: Gil>(n: u32, make: fn() -> G, why: Release) {
    model(n, 1, (n > 2).then_some(1), make, |_| {}, why);
}

fn two_holders<G: Gil>(make: fn() -> G, why: Release) {
    holders(2, make, why);
}

fn params() -> GilParams {
    GilParams::default()
}

#[test]
fn tick_two_holders() {
    two_holders(|| TickGil::new(&params()), Release::Blocking);
}

#[test]
fn timed_two_holders() {
    two_holders(|| TimedGil::new(&params()), Release::Blocking);
}

#[test]
fn fifo_two_holders() {
    two_holders(|| FifoGil::new(&params()), Release::Blocking);
}

#[test]
fn fifo_two_holders_forced_without_switching() {
    two_holders(
        || {
            FifoGil::new(&GilParams {
                force_switching: false,
                ..params()
            })
        },
        Release::Forced,
    );
}

#[test]
fn mlfq_two_holders() {
    two_holders(|| MlfqGil::new(&params()), Release::Blocking);
}

/// timed's forced switching: the holder serves a drop request (as a timed-out waiter would
/// set it) and must block until the other thread has taken the GIL, in every interleaving,
/// without deadlocking.
#[test]
fn timed_forced_switch_waits_for_the_waiter() {
    loom::model(|| {
        let gil = Arc::new(TimedGil::new(&params()));
        let mut holder = gil.register();
        gil.take(&mut holder);
        let g = gil.clone();
        let waiter = thread::spawn(move || {
            let mut me = g.register();
            g.take(&mut me);
            g.release(&mut me, Release::Blocking);
        });
        gil.request_drop();
        gil.release(&mut holder, Release::Forced);
        // Forced switching returned only once another thread had taken the GIL.
        assert!(!gil.last_holder_is(&holder));
        waiter.join().unwrap();
    });
}

#[test]
fn mlfq_three_holders() {
    holders(3, || MlfqGil::new(&params()), Release::Blocking);
}

/// mlfq's lock word: three threads take and release twice each, so that takes and releases
/// race between the fast path (one CAS on the word while nobody waits) and the scheduler
/// (once someone waits): a waiter adopting a fast holder, a holder whose fast release fails
/// and hands over, the last release returning the word to free. In every interleaving:
/// mutual exclusion, no deadlock, no thread left parked.
#[test]
fn mlfq_fast_path_three_threads_two_rounds() {
    model(3, 2, Some(2), mlfq_untimed, |_| {}, Release::Blocking);
}

/// mlfq with periods far beyond a model's run: no branch may depend on the real clock (loom
/// replays each interleaving and needs the same choices every time).
fn mlfq_untimed() -> MlfqGil {
    let long = std::time::Duration::from_secs(1000);
    MlfqGil::new(&GilParams {
        quanta: vec![long, long],
        allotments: vec![long, long],
        boost_interval: long,
        ..params()
    })
}

/// tick with three threads, each dropping as at a check-interval (the unfair semaphore's post
/// and a fresh wait): no lost wake-up of a third thread parked on the semaphore.
#[test]
fn tick_three_holders() {
    holders(3, || TickGil::new(&params()), Release::Forced);
}

#[test]
fn fifo_three_holders() {
    holders(3, || FifoGil::new(&params()), Release::Blocking);
}

/// timed's forced switch with three threads: each sets the drop request before it takes (as a
/// waiter that timed out would), so a releasing holder must wait until another thread has
/// taken the GIL, and two droppers can be waiting at once. A dropper that leaves the wait must
/// not hide the one still waiting from the next taker (the lost wake-up of a single "a dropper
/// waits" flag), and each forced wait ends only once someone else holds the GIL.
#[test]
fn timed_two_droppers_three_threads() {
    model(
        3,
        1,
        Some(2),
        || TimedGil::new(&params()),
        |g| g.request_drop(),
        Release::Blocking,
    );
}

#[test]
fn timed_three_holders() {
    holders(3, || TimedGil::new(&params()), Release::Blocking);
}

/// mlfq's snatch-back: one thread releases for a blocking call and asks again at once while
/// two others wait, so it may take the GIL back from a thread that was handed it but has not
/// started (and then drops the drop request a waiter had set for that thread). In every
/// interleaving: mutual exclusion, no deadlock, and the snatched thread is not lost (it still
/// gets the GIL).
#[test]
fn mlfq_snatch_back_three_threads() {
    call_and_return_three_threads(mlfq_untimed);
}

/// A yield while another thread waits: the holder's check says yield (after `prepare`, e.g. a
/// tick), it releases with `Release::Forced` and takes again. In every interleaving: mutual
/// exclusion, no deadlock or lost wake-up, and, once the waiter is known to wait, the yielder
/// gets the GIL back only after the waiter has had it (it never wins its own yield).
fn yield_to_waiter<G: Gil>(make: fn() -> G, waiting: fn(&G) -> bool, prepare: fn(&G)) {
    yield_model(make, waiting, prepare, true);
}

/// As [`yield_to_waiter`]; `fair` says whether the yielder must never win its own yield.
fn yield_model<G: Gil>(make: fn() -> G, waiting: fn(&G) -> bool, prepare: fn(&G), fair: bool) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(move || {
        let gil = Arc::new(make());
        let had_it = Arc::new(AtomicBool::new(false));
        let mut me = gil.register();
        gil.take(&mut me);
        let (g, h) = (gil.clone(), had_it.clone());
        let waiter = thread::spawn(move || {
            let mut w = g.register();
            g.take(&mut w);
            h.store(true, Ordering::Relaxed);
            g.release(&mut w, Release::Blocking);
        });
        while !waiting(&gil) {
            thread::yield_now();
        }
        prepare(&gil);
        assert!(gil.check(&mut me), "no yield with a waiter");
        gil.release(&mut me, Release::Forced);
        gil.take(&mut me);
        assert!(
            !fair || had_it.load(Ordering::Relaxed),
            "the yielder won its own yield"
        );
        gil.release(&mut me, Release::Blocking);
        waiter.join().unwrap();
    });
}

#[test]
fn ocaml_two_holders() {
    two_holders(|| OcamlGil::new(&params()), Release::Blocking);
}

#[test]
fn ocaml_three_holders() {
    holders(3, || OcamlGil::new(&params()), Release::Blocking);
}

#[test]
fn ocaml_yield_goes_to_the_waiter() {
    yield_to_waiter(
        || OcamlGil::new(&params()),
        |g| g.waiters() > 0,
        OcamlGil::tick,
    );
}

#[test]
fn fastcond_two_holders() {
    two_holders(|| FastcondGil::new(&params()), Release::Blocking);
}

#[test]
fn fastcond_three_holders() {
    holders(3, || FastcondGil::new(&params()), Release::Blocking);
}

#[test]
fn fastcond_yield_goes_to_the_waiter() {
    yield_to_waiter(
        || {
            FastcondGil::new(&GilParams {
                interval: std::time::Duration::ZERO,
                ..params()
            })
        },
        |g| g.waiting() > 0,
        |_| {},
    );
}

#[test]
fn ruby_two_holders() {
    two_holders(|| RubyGil::new(&params()), Release::Blocking);
}

#[test]
fn ruby_three_holders() {
    holders(3, || RubyGil::new(&params()), Release::Blocking);
}

#[test]
fn ruby_yield_goes_to_the_waiter() {
    yield_to_waiter(
        || {
            // One tick uses up the quantum.
            RubyGil::new(&GilParams {
                ruby_quantum: std::time::Duration::from_millis(10),
                ruby_tick: std::time::Duration::from_millis(10),
                ..params()
            })
        },
        |g| g.queued_len() > 0,
        RubyGil::tick,
    );
}

fn pypy_params() -> GilParams {
    GilParams {
        pypy_checkinterval: 1,
        ..params()
    }
}

#[test]
fn pypy_two_holders() {
    two_holders(|| PypyGil::new(&pypy_params()), Release::Blocking);
}

#[test]
fn pypy_three_holders() {
    holders(3, || PypyGil::new(&pypy_params()), Release::Blocking);
}

/// PyPy's yield leaves the fast word set and unlocks `mutex_gil` for the stealer. The yielder
/// may still win its own yield when the waiter is not yet the stealer (a race PyPy has), so
/// the model checks exclusion and progress, not who wins.
#[test]
fn pypy_yield() {
    yield_model(
        || PypyGil::new(&pypy_params()),
        |g| g.waiting() > 0,
        |_| {},
        false,
    );
}

fn bfs_params() -> GilParams {
    GilParams {
        // A slice used up at the first check, so the model's yield is due.
        bfs_rr: std::time::Duration::from_nanos(1),
        ..params()
    }
}

#[test]
fn bfs_two_holders() {
    two_holders(|| BfsGil::new(&bfs_params()), Release::Blocking);
}

#[test]
fn bfs_three_holders() {
    holders(3, || BfsGil::new(&bfs_params()), Release::Blocking);
}

/// BFS's forced switch: the yielder whose slice is used up waits until the waiter has taken
/// over, so it never wins its own yield.
#[test]
fn bfs_yield_goes_to_the_waiter() {
    yield_to_waiter(
        || BfsGil::new(&bfs_params()),
        |g| g.queued_len() > 0,
        |_| {},
    );
}

/// The holder releases for a call, two others wait, and the holder takes again at once: a
/// thread that wins the fast word while polling hands the GIL to the stealer (PyPy's
/// fairness unlock of `mutex_gil`) and queues behind it. In every interleaving: mutual
/// exclusion (the fast word and `mutex_gil` are never both free), no deadlock, nobody left
/// parked.
#[test]
fn pypy_early_poll_hands_on_three_threads() {
    call_and_return_three_threads(|| PypyGil::new(&pypy_params()));
}

/// BFS with every slice spent at once: every release that has a successor, blocking ones
/// included, waits for the switch, and the eval-breaker flags are cleared at release (not at
/// take), so a preempt set while the designated thread was waking reaches it. Three threads,
/// one of which releases for a call and takes again at once (so it may snatch).
#[test]
fn bfs_release_side_flags_three_threads() {
    call_and_return_three_threads(|| BfsGil::new(&bfs_params()));
}

/// Three threads: one holds, releases for a call, takes again at once (yielding at its check
/// if the design says so) and leaves; two others take, yield at their check if asked, and
/// leave. Checks mutual exclusion, no deadlock, no lost wake-up, every take served.
fn call_and_return_three_threads<G: Gil>(make: fn() -> G) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(1);
    b.check(move || {
        let gil = Arc::new(make());
        let cell = Arc::new(UnsafeCell::new(0u32));
        let bump = |cell: &UnsafeCell<u32>| {
            // SAFETY: loom reports any concurrent access here as a failure.
            cell.with_mut(|v| unsafe { *v += 1 })
        };
        let mut me = gil.register();
        gil.take(&mut me);
        let others: Vec<_> = (0..2)
            .map(|_| {
                let (gil, cell) = (gil.clone(), cell.clone());
                thread::spawn(move || {
                    let mut w = gil.register();
                    gil.take(&mut w);
                    bump(&cell);
                    if gil.check(&mut w) {
                        gil.release(&mut w, Release::Forced);
                        gil.take(&mut w);
                    }
                    gil.release(&mut w, Release::Exit);
                })
            })
            .collect();
        bump(&cell);
        gil.release(&mut me, Release::Blocking);
        gil.take(&mut me);
        bump(&cell);
        gil.release(&mut me, Release::Exit);
        for h in others {
            h.join().unwrap();
        }
        // SAFETY: every thread was joined.
        assert_eq!(cell.with(|v| unsafe { *v }), 4);
    });
}

/// decay with slices far beyond the model's run (its clock stands still under loom anyway).
fn decay() -> DecayGil {
    DecayGil::new(&GilParams {
        decay_slice: std::time::Duration::from_secs(1000),
        ..params()
    })
}

#[test]
fn decay_three_holders() {
    holders(3, decay, Release::Blocking);
}

/// decay's lock word, as mlfq's: three threads take and release twice each, racing between
/// the fast path and the scheduler (adoption of a fast holder, a failed fast release that
/// hands over, the last release returning the word to free).
#[test]
fn decay_fast_path_three_threads_two_rounds() {
    model(3, 2, Some(2), decay, |_| {}, Release::Blocking);
}

/// A preemption with three threads: `a` holds (share 0.8), `low` (0.6) waits, and `urgent`
/// (0: more urgent than `a` by far more than a band) asks `a` to drop; `a`, at its check,
/// releases (forced) and asks again at once. In every interleaving: mutual exclusion, no
/// deadlock or lost wake-up, everyone gets the GIL.
#[test]
fn decay_preemption_three_threads() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let gil = Arc::new(decay());
        let cell = Arc::new(UnsafeCell::new(0u32));
        let bump = |cell: &UnsafeCell<u32>| {
            // SAFETY: loom reports any concurrent access here as a failure.
            cell.with_mut(|v| unsafe { *v += 1 })
        };
        let (mut a, low, urgent) = (gil.register(), gil.register(), gil.register());
        gil.take(&mut a);
        gil.set_share_for_test(&a, 0.8);
        gil.set_share_for_test(&low, 0.6);
        let spawn = |mut t| {
            let (gil, cell) = (gil.clone(), cell.clone());
            thread::spawn(move || {
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
