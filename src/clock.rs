//! The instrument's clock: the cheapest one whose readings agree across cores.
//!
//! Every recorded take and release reads a clock, so its cost lands inside the races the
//! testbed measures. A raw TSC read (`quanta::Clock::raw`) costs about 10 ns here against
//! 23-32 ns for `Instant::now` (docs/costs.md). The figures derived
//! after a run (holder switches, the exclusion check, idle-while-wanted) compare stamps taken
//! on different cores, so the TSC is used only where the kernel itself trusts it as its
//! clock source (`current_clocksource` is `tsc`: the kernel checked at boot that the cores'
//! counters agree); anywhere else the stamps come from `CLOCK_MONOTONIC`, which Linux keeps
//! consistent across cores.

use std::time::{Duration, Instant};

/// A clock read in raw units (TSC ticks, or nanoseconds), converted to nanoseconds only when
/// a figure is made.
#[derive(Clone, Debug)]
pub struct RawClock {
    source: Source,
}

#[derive(Clone, Debug)]
enum Source {
    /// The TSC, scaled by quanta's calibration against the monotonic clock.
    Tsc(quanta::Clock),
    /// Nanoseconds of `Instant` since `base`.
    Monotonic(Instant),
}

impl Default for RawClock {
    fn default() -> Self {
        Self::new()
    }
}

impl RawClock {
    /// The TSC where the kernel uses it as its clock source, else the monotonic clock.
    pub fn new() -> Self {
        if kernel_trusts_tsc() {
            RawClock {
                source: Source::Tsc(quanta::Clock::new()),
            }
        } else {
            Self::monotonic()
        }
    }

    /// The monotonic clock (`Instant`), whatever the machine has.
    pub fn monotonic() -> Self {
        RawClock {
            source: Source::Monotonic(Instant::now()),
        }
    }

    /// The current reading, in raw units: only differences of readings, converted by
    /// [`RawClock::nanos`], mean anything.
    #[inline]
    pub fn raw(&self) -> u64 {
        match &self.source {
            Source::Tsc(c) => c.raw(),
            Source::Monotonic(base) => base.elapsed().as_nanos() as u64,
        }
    }

    /// Nanoseconds from reading `from` to reading `to` (0 if `to` is not later).
    #[inline]
    pub fn nanos(&self, from: u64, to: u64) -> u64 {
        match &self.source {
            Source::Tsc(c) => c.delta_as_nanos(from, to),
            Source::Monotonic(_) => to.saturating_sub(from),
        }
    }

    /// [`RawClock::nanos`] as a `Duration`.
    #[inline]
    pub fn between(&self, from: u64, to: u64) -> Duration {
        Duration::from_nanos(self.nanos(from, to))
    }

    /// What the readings come from, for the result's notes.
    pub fn source(&self) -> &'static str {
        match self.source {
            Source::Tsc(_) => "tsc",
            Source::Monotonic(_) => "monotonic",
        }
    }
}

/// Whether the kernel's clock source is the TSC (so it found the cores' counters in step),
/// read once per process.
fn kernel_trusts_tsc() -> bool {
    static TRUSTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TRUSTS.get_or_init(|| {
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .is_ok_and(|s| s.trim() == "tsc")
    })
}

/// A pair of readings of the same moment on both clocks, so that raw readings can be placed
/// on the `Instant` timeline that the trace and interval logs use.
#[derive(Clone, Copy, Debug)]
pub struct Epoch {
    pub at: Instant,
    pub raw: u64,
}

impl Epoch {
    /// Now, on both clocks: the `Instant` read between two raw readings at most 2 us apart
    /// (a thread preempted between them would pair readings milliseconds apart), the raw
    /// reading their midpoint. A few tries, then the closest pair seen.
    pub fn now(clock: &RawClock) -> Self {
        let mut best: Option<(u64, Epoch)> = None;
        for _ in 0..8 {
            let a = clock.raw();
            let at = Instant::now();
            let b = clock.raw();
            let gap = clock.nanos(a, b);
            let e = Epoch {
                at,
                raw: a + (b.saturating_sub(a)) / 2,
            };
            if best.is_none_or(|(g, _)| gap < g) {
                best = Some((gap, e));
            }
            if gap <= 2_000 {
                break;
            }
        }
        best.map(|(_, e)| e).expect("at least one try")
    }

    /// The `Instant` of raw reading `raw` (the epoch itself for a reading before it).
    #[inline]
    pub fn instant(&self, clock: &RawClock, raw: u64) -> Instant {
        self.at + clock.between(self.raw, raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_convert_to_the_time_that_passed() {
        for clock in [RawClock::new(), RawClock::monotonic()] {
            let (a, t) = (clock.raw(), Instant::now());
            std::thread::sleep(Duration::from_millis(20));
            let (b, wall) = (clock.raw(), t.elapsed());
            let d = clock.between(a, b);
            // Within 2 ms of the monotonic clock's own measure of the same sleep.
            let diff = d.abs_diff(wall);
            assert!(
                diff < Duration::from_millis(2),
                "{}: {d:?} against {wall:?}",
                clock.source()
            );
            assert_eq!(clock.nanos(b, a), 0, "a reading before another is no time");
        }
    }
}
