//! A timer thread outside every GIL, as Ruby's timer thread and OCaml's tick thread are: it
//! runs a design's tick action every `period` while it is armed, sleeps while it is not, and
//! stops (and is joined) when the design that owns it is dropped, so no thread outlives a run.
//!
//! Timer threads are named `gilt-<design>`.
//!
//! Disarming does not wake the timer thread, and arming wakes it only when it sleeps for want
//! of work: re-armed while the period it is sleeping through has not ended, it ticks at the
//! end of that period, which can be at once. That is what Ruby's timer thread does, the one
//! design that disarms (Ruby 3.3+ `thread_pthread.c`): it ticks only when its 10 ms wait
//! times out, and adding a running thread to the time-sliced ones wakes it only from an
//! infinite wait (`timer_thread_wakeup_locked`: "if (vm->ractor.sched.timeslice_wait_inf)";
//! otherwise "will be wakeup..."). So a Ruby time slice can come out up to one tick short,
//! in Ruby as here.
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
        /// `armed` says whether it starts so); the error if the thread could not start (out of
        /// memory or threads).
        pub(crate) fn try_spawn(
            name: &str,
            period: Duration,
            armed: bool,
            tick: impl Fn() + Send + 'static,
        ) -> std::io::Result<Ticker> {
            let shared = Arc::new(Shared {
                ctl: Mutex::new(Ctl { armed, stop: false }),
                cv: Condvar::new(),
            });
            let s = shared.clone();
            let period = period.max(Duration::from_micros(1));
            let thread = std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(move || run(&s, period, tick))?;
            Ok(Ticker {
                shared,
                thread: Some(thread),
            })
        }

        fn ctl(&self) -> std::sync::MutexGuard<'_, Ctl> {
            self.shared.ctl.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// Starts ticking: the first tick one `period` from now if the timer was idle, at the
        /// end of the running period if it was disarmed within that period (see the module
        /// docs); a no-op when armed.
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
    pub(crate) fn try_spawn(
        _name: &str,
        _period: Duration,
        _armed: bool,
        _tick: impl Fn() + Send + 'static,
    ) -> std::io::Result<Ticker> {
        Ok(Ticker)
    }
    pub(crate) fn arm(&self) {}
    pub(crate) fn disarm(&self) {}
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Ticker;
    use crate::gil::{Gil, GilParams, LockKind, Release, WithGil};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// As Ruby's timer thread: re-armed within the period it sleeps through, the timer ticks
    /// at the end of that period (here 100 ms after the re-arm, not 400); re-armed once it
    /// has gone idle, a whole period after the re-arm.
    #[test]
    fn a_rearm_within_the_period_keeps_its_end() {
        let period = Duration::from_millis(400);
        let ticks = Arc::new(Mutex::new(Vec::new()));
        let seen = ticks.clone();
        // Not `gilt-`: `timer_threads_end_with_their_gil` counts those.
        let t = Ticker::try_spawn("tick-test", period, false, move || {
            seen.lock().unwrap().push(Instant::now());
        })
        .unwrap();
        let first_tick = |n: usize| {
            let t0 = Instant::now();
            loop {
                if let Some(&at) = ticks.lock().unwrap().get(n) {
                    return at;
                }
                assert!(t0.elapsed() < Duration::from_secs(10), "no tick {n}");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        t.arm();
        std::thread::sleep(Duration::from_millis(250));
        t.disarm();
        std::thread::sleep(Duration::from_millis(50));
        let rearmed = Instant::now();
        t.arm();
        let early = first_tick(0) - rearmed;
        t.disarm();
        // Past the end of the period that follows the tick: the timer is idle.
        std::thread::sleep(period + Duration::from_millis(200));
        let rearmed = Instant::now();
        t.arm();
        let full = first_tick(1) - rearmed;
        drop(t);
        assert!(
            early < period - Duration::from_millis(100),
            "re-armed: first tick {early:?}"
        );
        assert!(full >= period, "armed from idle: first tick after {full:?}");
    }

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
