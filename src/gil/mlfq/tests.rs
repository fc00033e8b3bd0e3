use super::*;
use super::word::{fast_holder, SCHED};

fn params(boost_all: bool) -> GilParams {
    GilParams {
        quanta: vec![Duration::from_millis(1), Duration::from_millis(5)],
        allotments: vec![Duration::from_millis(10), Duration::from_millis(50)],
        boost_interval: Duration::from_millis(100),
        boost_all,
        ..GilParams::default()
    }
}

fn gil(boost_all: bool) -> MlfqGil {
    MlfqGil::new(&params(boost_all))
}

/// Switches the GIL, held through the fast path, to the scheduler (as a waiter arriving
/// would), so that a test can queue waiters by hand.
fn to_sched(g: &MlfqGil) -> crate::sync::MutexGuard<'_, Sched> {
    let mut s = lock(&g.sched);
    if let Some(h) = fast_holder(g.word.fetch_or(SCHED, Ordering::AcqRel)) {
        g.adopt_fast_holder(&mut s, h);
    }
    s
}

/// The scheduler, on its own clock: `a` holds, `b` waits in the queue.
fn a_holds_b_waits(g: &MlfqGil, t0: Instant) -> (usize, usize) {
    let (a, b) = (g.register().id, g.register().id);
    let mut s = lock(&g.sched);
    s.last_boost = t0;
    s.start_holding(a, t0);
    s.queues[0].push_back(b);
    (a, b)
}

/// Hold time is charged from when the new holder runs, not from the grant: a wake-up of
/// 50 ms (far past the 10 ms allotment) followed by 1 ms of holding keeps it at the top.
#[test]
fn hold_time_is_charged_from_running_not_from_the_grant() {
    let g = gil(true);
    let t0 = Instant::now();
    let (a, b) = a_holds_b_waits(&g, t0);
    let mut s = lock(&g.sched);
    // a releases at t0 + 1 ms: b is handed the GIL but has not started.
    s.charge(t0 + Duration::from_millis(1), &g.allotments);
    s.holder = s.pop_best();
    s.started = false;
    s.since = t0 + Duration::from_millis(1);
    s.charged = s.since;
    assert_eq!(s.holder, Some(b));
    // It is still waking 50 ms later: nothing is charged.
    s.charge(t0 + Duration::from_millis(51), &g.allotments);
    assert_eq!(s.threads[b].used, Duration::ZERO);
    // It runs from then on, for 1 ms.
    s.start_holding(b, t0 + Duration::from_millis(51));
    s.charge(t0 + Duration::from_millis(52), &g.allotments);
    assert_eq!(s.threads[b].used, Duration::from_millis(1));
    assert_eq!((s.threads[a].level, s.threads[b].level), (0, 0));
}

/// `boost = "starved"` returns to the top only threads that have not held the GIL for a
/// whole boost interval; `boost = "all"` returns everyone.
#[test]
fn the_boost_policy_decides_who_returns_to_the_top() {
    for boost_all in [false, true] {
        let g = gil(boost_all);
        let t0 = Instant::now();
        let (a, b) = a_holds_b_waits(&g, t0);
        let mut s = lock(&g.sched);
        for t in [a, b] {
            s.threads[t].level = 1;
        }
        s.queues[0].clear();
        s.queues[1].push_back(b);
        // a held the GIL until recently; b last held it at t0.
        s.threads[a].last_held = t0 + Duration::from_millis(90);
        s.threads[b].last_held = t0;
        s.holder = None;
        s.maybe_boost(t0 + Duration::from_millis(101), &g);
        let levels = (s.threads[a].level, s.threads[b].level);
        if boost_all {
            assert_eq!(levels, (0, 0));
        } else {
            assert_eq!(levels, (1, 0), "only the starved thread is boosted");
        }
        assert_eq!(
            s.queues[0].front(),
            Some(&b),
            "the boosted waiter is requeued"
        );
    }
}

/// A more urgent thread back from a blocking call may snatch the GIL from a woken thread
/// as often as it asks first; an equally urgent one only once before that thread has run.
#[test]
fn only_a_more_urgent_thread_snatches_twice() {
    for waiter_level in [1, 0] {
        let g = gil(true);
        let (mut h, w) = (g.register(), g.register());
        g.take(&mut h);
        {
            // `w` waits at `waiter_level` (no thread behind it: it never wakes to run).
            let mut s = to_sched(&g);
            s.threads[w.id].level = waiter_level;
            s.queues[waiter_level].push_back(w.id);
        }
        g.release(&mut h, Release::Blocking);
        g.take(&mut h);
        g.release(&mut h, Release::Blocking);
        let s = lock(&g.sched);
        assert_eq!((s.holder, s.started), (Some(w.id), false));
        assert_eq!(s.snatches, 1);
        assert_eq!(
            g.may_snatch(&s, h.id, w.id),
            waiter_level == 1,
            "waiter at level {waiter_level}"
        );
    }
}

/// A thread preempted by a more urgent one goes back to the head of its level (ahead of
/// an equal that was already waiting) and finishes the quantum it had begun.
#[test]
fn a_preempted_thread_resumes_at_the_head_of_its_level() {
    let g = Arc::new(gil(true));
    let (mut a, b, mut e) = (g.register(), g.register(), g.register());
    g.take(&mut a);
    let t0 = Instant::now();
    {
        let mut s = to_sched(&g);
        s.threads[a.id].level = 1;
        s.threads[b.id].level = 1;
        s.queues[1].push_back(b.id);
        // `a` has used 2 ms of its 5 ms quantum.
        s.since = t0 - Duration::from_millis(2);
        s.charged = t0;
    }
    // `e`, at the top, asks for the GIL (a preemption) and holds it until `a` and `b`
    // both wait.
    let g2 = g.clone();
    let urgent = std::thread::spawn(move || {
        g2.take(&mut e);
        while g2.queued_len() < 2 {
            std::thread::yield_now();
        }
        g2.release(&mut e, Release::Exit);
    });
    while !g.check(&mut a) {
        std::thread::yield_now();
    }
    g.release(&mut a, Release::Forced);
    // `a` asks again at once and must get the GIL back before `b` (which, having no
    // thread, would keep it for ever: hence the watch from here).
    let (g3, a_id, b_id) = (g.clone(), a.id, b.id);
    std::thread::spawn(move || g3.take(&mut a));
    urgent.join().unwrap();
    let start = std::time::Instant::now();
    let holder = loop {
        let s = lock(&g.sched);
        let settled = s.holder == Some(b_id) || (s.holder == Some(a_id) && s.started);
        if settled || start.elapsed() > Duration::from_secs(5) {
            break s.holder;
        }
        drop(s);
        std::thread::yield_now();
    };
    assert_eq!(holder, Some(a_id), "b ({b_id}) got the GIL first");
    let s = lock(&g.sched);
    assert_eq!(s.queues[1].front(), Some(&b_id), "b still waits");
    let used = s.charged.saturating_duration_since(s.since);
    assert!(
        used >= Duration::from_millis(2),
        "a resumed its quantum with {used:?} of it used"
    );
}

/// A snatch drops a drop request meant for the overtaken thread: R (level 0) releases for
/// a blocking call and h (level 2) is handed the GIL; W (level 1) arrives and, more urgent
/// than h, asks for a drop; R snatches the GIL back. W does not outrank R, so R must not
/// be asked to drop.
#[test]
fn a_snatch_drops_a_request_meant_for_the_overtaken_thread() {
    // Three levels (1, 5, 20 ms quanta), no boosts.
    let g = Arc::new(MlfqGil::new(&GilParams {
        boost_interval: Duration::from_secs(1000),
        ..GilParams::default()
    }));
    let (mut r, h, mut w) = (g.register(), g.register(), g.register());
    g.take(&mut r);
    {
        let mut s = to_sched(&g);
        s.threads[h.id].level = 2;
        s.threads[w.id].level = 1;
        s.queues[2].push_back(h.id);
    }
    g.release(&mut r, Release::Blocking);
    let g2 = g.clone();
    let waiter = std::thread::spawn(move || {
        g2.take(&mut w);
        g2.release(&mut w, Release::Exit);
    });
    let t0 = std::time::Instant::now();
    while !(g.queued_len() == 1 && g.drop_request.load(Ordering::Relaxed)) {
        assert!(t0.elapsed() < Duration::from_secs(10), "W never asked for a drop");
        std::thread::yield_now();
    }
    g.take(&mut r);
    let snatched = stat(g.stats(), "snatches");
    // Time for W to look again (well within R's 10 ms allotment at the top).
    std::thread::sleep(Duration::from_millis(2));
    let asked = g.check(&mut r);
    g.release(&mut r, Release::Exit);
    waiter.join().unwrap();
    assert_eq!(snatched, 1, "R did not snatch");
    assert!(!asked, "R was asked to drop for W, which it outranks");
}

/// The fallback fast hold of the slow path (the fast holder left between the take's CAS
/// and the scheduler's look) is a fast take like any other.
#[test]
fn the_slow_paths_fast_hold_counts_as_a_fast_take() {
    let g = gil_without_boosts();
    let mut t = g.register();
    g.take_slow(&mut t);
    assert_eq!(g.word.load(Ordering::Relaxed), held_by(t.id));
    g.release(&mut t, Release::Blocking);
    assert_eq!(t.fast_takes, 1);
}

fn stat(stats: Vec<(&'static str, u64)>, name: &str) -> u64 {
    stats.into_iter().find(|(k, _)| *k == name).unwrap().1
}

/// `gil(true)` without boosts (a boost would reset the levels a test looks at).
fn gil_without_boosts() -> MlfqGil {
    MlfqGil::new(&GilParams {
        boost_interval: Duration::from_secs(1000),
        ..params(true)
    })
}

/// Uncontended take and release go through the lock word alone: the scheduler sees no
/// holder and no hand-off, and the word is free again after the release.
#[test]
fn an_uncontended_take_and_release_bypass_the_scheduler() {
    let g = gil_without_boosts();
    let mut t = g.register();
    for _ in 0..3 {
        g.take(&mut t);
        assert_eq!(g.word.load(Ordering::Relaxed), held_by(t.id));
        assert_eq!(lock(&g.sched).holder, None);
        g.release(&mut t, Release::Blocking);
        assert_eq!(g.word.load(Ordering::Relaxed), FREE);
    }
    assert_eq!(t.fast_takes, 3, "every take took the fast path");
    assert_eq!(stat(g.stats(), "handoffs"), 0);
}

fn spin_for(d: Duration) {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        std::hint::spin_loop();
    }
}

/// Uncontended holds count against the allotment like any other: 12 ms held in short
/// fast-path holds sinks a thread below the 10 ms top level.
#[test]
fn uncontended_holds_are_charged() {
    let g = gil_without_boosts();
    let mut t = g.register();
    for _ in 0..12 {
        g.take(&mut t);
        spin_for(Duration::from_millis(1));
        g.release(&mut t, Release::Blocking);
    }
    assert_eq!(t.fast_takes, 12);
    assert_eq!(g.level_of(&t), 1);
}

/// A boost falls due while nobody waits: the first fast release after it holds it, as
/// the scheduler's own paths would.
#[test]
fn a_boost_falls_due_without_waiters() {
    let g = MlfqGil::new(&GilParams {
        boost_interval: Duration::from_millis(200),
        ..params(true)
    });
    let mut t = g.register();
    g.take(&mut t);
    spin_for(Duration::from_millis(20));
    g.release(&mut t, Release::Blocking);
    std::thread::sleep(Duration::from_millis(250));
    g.take(&mut t);
    g.release(&mut t, Release::Blocking);
    assert_eq!(t.fast_takes, 2);
    let s = lock(&g.sched);
    assert!(s.boosts >= 1, "no boost was held");
    assert_eq!(s.threads[t.id].level, 0, "the boost returned it to the top");
}

/// A waiter that finds the GIL held through the fast path makes the holder the
/// scheduler's, charged from the start of its hold: a holder that has held for 15 ms
/// (past the 10 ms top allotment) is at level 1 at once (charged from the waiter's
/// arrival instead, it would still be at the top).
#[test]
fn a_waiter_adopts_a_fast_holder_charged_from_the_start_of_its_hold() {
    let g = gil_without_boosts();
    let (mut a, mut b) = (g.register(), g.register());
    g.take(&mut a);
    spin_for(Duration::from_millis(15));
    let (word, level, asked) = std::thread::scope(|sc| {
        let g = &g;
        sc.spawn(move || {
            g.take(&mut b);
            g.release(&mut b, Release::Blocking);
        });
        let t0 = std::time::Instant::now();
        while g.queued_len() == 0 && t0.elapsed() < Duration::from_secs(10) {
            std::thread::yield_now();
        }
        let seen = (g.word.load(Ordering::Relaxed), g.level_of(&a), g.check(&mut a));
        // Release before asserting, so that a failure cannot leave `b` parked.
        g.release(&mut a, Release::Forced);
        seen
    });
    assert_eq!(word & SCHED, SCHED, "the waiter switched the word to the scheduler");
    assert_eq!(level, 1, "the holder was charged from the start of its hold");
    assert!(asked, "the waiter at the top asked for a drop");
    // Both done, nobody waits: the word is free for the fast path again.
    assert_eq!(g.word.load(Ordering::Relaxed), FREE);
    assert_eq!(stat(g.stats(), "handoffs"), 1);
}

/// The one active wait of mlfq's own (after asking the holder to drop, while first in
/// line) is bounded by `mlfq_preempt_spin`: a waiter that preempts a holder that never
/// checks (it sleeps) burns about that much CPU, then parks.
#[test]
fn the_preempt_spin_is_bounded() {
    for (spin, at_most) in [
        (Duration::ZERO, Duration::from_millis(3)),
        (Duration::from_millis(20), Duration::from_millis(35)),
    ] {
        let g = Arc::new(MlfqGil::new(&GilParams {
            mlfq_preempt_spin: spin,
            ..GilParams::default()
        }));
        let (mut holder, mut waiter) = (g.register(), g.register());
        g.take(&mut holder);
        lock(&g.sched).threads[holder.id].level = 2;
        let g2 = g.clone();
        let w = std::thread::spawn(move || {
            let t0 = crate::metrics::thread_cpu_time();
            g2.take(&mut waiter);
            let used = crate::metrics::thread_cpu_time() - t0;
            g2.release(&mut waiter, Release::Exit);
            used
        });
        std::thread::sleep(Duration::from_millis(150));
        assert!(g.check(&mut holder), "the waiter asked for a drop");
        g.release(&mut holder, Release::Exit);
        let used = w.join().unwrap();
        assert!(used < at_most, "spin {spin:?}: the waiter used {used:?} of CPU");
        if !spin.is_zero() {
            assert!(used >= spin / 4, "spin {spin:?}: it did not spin ({used:?})");
        }
    }
}
