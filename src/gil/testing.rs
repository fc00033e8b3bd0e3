//! Helpers for the designs' unit tests on real threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Gil, Release};

/// Waits (polling every millisecond) until `cond` holds; panics with `what` after 10 s.
pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(10), "never: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A thread registered now that takes the GIL, sets `held`, and releases it for good once
/// `go` is set.
pub(crate) fn taker<G: Gil>(
    g: &Arc<G>,
    held: &Arc<AtomicBool>,
    go: &Arc<AtomicBool>,
) -> JoinHandle<()> {
    let (g, held, go) = (g.clone(), held.clone(), go.clone());
    let mut t = g.register();
    std::thread::spawn(move || {
        g.take(&mut t);
        held.store(true, Ordering::SeqCst);
        while !go.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        g.release(&mut t, Release::Exit);
    })
}

/// `n` flags, all `false`.
pub(crate) fn flags<const N: usize>() -> [Arc<AtomicBool>; N] {
    std::array::from_fn(|_| Arc::new(AtomicBool::new(false)))
}
