//! A timer thread outside every GIL, as Ruby's timer thread and OCaml's tick thread are: it
//! runs a design's tick action every `period` while it is armed, sleeps while it is not, and
//! stops (and is joined) when the design that owns it is dropped, so no thread outlives a run.
//!
//! Timer threads are named `gilt-<design>`.
//!
//! Under loom no thread is started (loom does not model time): the models call the design's
//! tick action themselves, from a loom thread, where a real timer would fire.

#[cfg(not(loom))]
pub(crate) use real::Ticker;

#[cfg(not(loom))]
mod real {
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    struct Ctl {
        armed: bool,
        stop: bool,
    }

    struct Shared {
        ctl: Mutex<Ctl>,
        cv: Condvar,
    }

    /// The handle of a running timer thread; dropping it stops and joins the thread.
    pub(crate) struct Ticker {
        shared: Arc<Shared>,
        thread: Option<JoinHandle<()>>,
    }

    impl Ticker {
        /// Starts a thread named `name` that calls `tick` every `period` while armed (and
        /// `armed` says whether it starts so).
        pub(crate) fn spawn(
            name: &str,
            period: Duration,
            armed: bool,
            tick: impl Fn() + Send + 'static,
        ) -> Ticker {
            let shared = Arc::new(Shared {
                ctl: Mutex::new(Ctl { armed, stop: false }),
                cv: Condvar::new(),
            });
            let s = shared.clone();
            let period = period.max(Duration::from_micros(1));
            let thread = std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || run(&s, period, tick))
                .expect("cannot start a GIL timer thread");
            Ticker {
                shared,
                thread: Some(thread),
            }
        }

        fn ctl(&self) -> std::sync::MutexGuard<'_, Ctl> {
            self.shared.ctl.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Starts ticking (the first tick one `period` from now); a no-op when armed.
        pub(crate) fn arm(&self) {
            let mut c = self.ctl();
            if !c.armed {
                c.armed = true;
                self.shared.cv.notify_one();
            }
        }

        /// Stops ticking until armed again.
        pub(crate) fn disarm(&self) {
            self.ctl().armed = false;
        }
    }

    fn run(s: &Shared, period: Duration, tick: impl Fn()) {
        let mut c = s.ctl.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if c.stop {
                return;
            }
            if !c.armed {
                c = s.cv.wait(c).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // Sleep one period (waking early only to stop), then tick if still armed.
            let due = Instant::now() + period;
            loop {
                let now = Instant::now();
                if c.stop || now >= due {
                    break;
                }
                c =
                    s.cv.wait_timeout(c, due - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
            }
            if c.armed && !c.stop {
                drop(c);
                tick();
                c = s.ctl.lock().unwrap_or_else(|e| e.into_inner());
            }
        }
    }

    impl Drop for Ticker {
        fn drop(&mut self) {
            self.ctl().stop = true;
            self.shared.cv.notify_one();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// Under loom: no thread; the models call the tick action where the timer would fire.
#[cfg(loom)]
pub(crate) struct Ticker;

#[cfg(loom)]
use std::time::Duration;

#[cfg(loom)]
impl Ticker {
    pub(crate) fn spawn(
        _name: &str,
        _period: Duration,
        _armed: bool,
        _tick: impl Fn() + Send + 'static,
    ) -> Ticker {
        Ticker
    }
    pub(crate) fn arm(&self) {}
    pub(crate) fn disarm(&self) {}
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::gil::{Gil, GilParams, LockKind, Release, WithGil};
    use std::time::Duration;

    /// This process's threads that are GIL timer threads.
    fn timer_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .map(|d| {
                d.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
                    .filter(|c| c.starts_with("gilt-"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Every design, used and dropped: its timer thread (if it has one) ran while the GIL lived
    /// and is gone once it is dropped.
    #[test]
    fn timer_threads_end_with_their_gil() {
        struct Use;
        impl WithGil for Use {
            type Out = usize;
            fn run<G: Gil>(self, gil: G) -> usize {
                let mut t = gil.register();
                gil.take(&mut t);
                std::thread::sleep(Duration::from_millis(2));
                gil.release(&mut t, Release::Exit);
                timer_threads()
            }
        }
        let p = GilParams {
            ocaml_tick: Duration::from_micros(100),
            ..GilParams::default()
        };
        let mut seen = 0;
        for k in LockKind::ALL {
            seen += k.with_design(&p, Use);
            // Dropped (and its timer joined) before with_design returned.
            assert_eq!(timer_threads(), 0, "{k}: a timer thread outlived its GIL");
        }
        assert!(
            seen > 0,
            "no timer thread was ever seen: the check is blind"
        );
    }
}
