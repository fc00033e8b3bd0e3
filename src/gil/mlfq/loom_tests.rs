use super::*;
use loom::cell::UnsafeCell;

/// A preemption with three threads: `a` holds at level 1, `b` waits at level 1 and `e`
/// arrives at the top and asks `a` to drop; `a`, at its check, releases (forced) and asks
/// again at once, going back to the head of its level. In every interleaving: mutual
/// exclusion, no deadlock or lost wake-up, everyone gets the GIL.
#[test]
fn mlfq_preemption_three_threads() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        // Periods far beyond the model's run: no branch may depend on the real clock
        // (loom replays each interleaving and needs the same choices every time).
        let long = Duration::from_secs(1000);
        let gil = Arc::new(MlfqGil::new(&GilParams {
            quanta: vec![long, long],
            allotments: vec![long, long],
            boost_interval: long,
            ..GilParams::default()
        }));
        let cell = Arc::new(UnsafeCell::new(0u32));
        let bump = |cell: &UnsafeCell<u32>| {
            // SAFETY: loom reports any concurrent access here as a failure.
            cell.with_mut(|v| unsafe { *v += 1 })
        };
        let (mut a, low, urgent) = (gil.register(), gil.register(), gil.register());
        gil.take(&mut a);
        {
            let mut s = lock(&gil.sched);
            s.threads[a.id].level = 1;
            s.threads[low.id].level = 1;
        }
        let spawn = |mut t: MlfqThread| {
            let (gil, cell) = (gil.clone(), cell.clone());
            loom::thread::spawn(move || {
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
