//! Noticing that the whole process did not run for a while: stopped (SIGSTOP, a debugger) or
//! its machine suspended. A monitoring thread naps and compares how late it woke with the time
//! it spent on a CPU or waiting for one; what neither explains is a stall. `run` and `load`
//! leave stalls out of their rates and say when they happened.

use std::thread;
use std::time::{Duration, Instant};

/// A stretch in which the whole process did not run: stopped (SIGSTOP, a debugger) or its
/// machine suspended.
#[derive(Clone, Copy, Debug)]
pub struct Stall {
    /// When it began, from the run's start, ...
    pub at: Duration,
    /// ... and as an instant.
    pub began: Instant,
    pub len: Duration,
}

/// The time of `stalls` that falls within `from..to` (from the run's start).
pub fn stalled_within(stalls: &[Stall], from: Duration, to: Duration) -> Duration {
    stalls
        .iter()
        .map(|s| (s.at + s.len).min(to).saturating_sub(s.at.max(from)))
        .sum()
}

/// The time of `stalls` that falls between the instants `from` and `to`.
pub fn stopped_between(stalls: &[Stall], from: Instant, to: Instant) -> Duration {
    stalls
        .iter()
        .map(|s| {
            (s.began + s.len)
                .min(to)
                .saturating_duration_since(s.began.max(from))
        })
        .sum()
}

/// The monitor's naps, timed, to notice the process being stopped: the thread woke later
/// than it asked by more than the time it was on a CPU or waiting for one meanwhile
/// (`/proc/thread-self/schedstat`). A busy machine delays the wake-up too, but as waiting
/// for a CPU; a stopped process neither runs nor waits.
pub struct Naps {
    start: Instant,
    /// This thread's scheduler statistics, if the kernel keeps them.
    sched: Option<std::fs::File>,
    woke: Instant,
    runnable: Option<Duration>,
    pub stalls: Vec<Stall>,
}

/// A wake-up this much later than asked, unexplained, is a stall; without scheduler
/// statistics only a much longer one is (a busy machine can delay a wake-up that much).
const STALL_MIN: Duration = Duration::from_millis(200);
const STALL_MIN_BLIND: Duration = Duration::from_secs(1);

impl Naps {
    /// Naps of the calling thread (it opens its own statistics), for a run started at `start`.
    pub fn new(start: Instant) -> Self {
        let sched = std::fs::File::open("/proc/thread-self/schedstat").ok();
        let mut naps = Naps {
            start,
            sched,
            woke: Instant::now(),
            runnable: None,
            stalls: Vec::new(),
        };
        naps.runnable = naps.read_runnable();
        naps
    }

    /// This thread's time on a CPU plus its time waiting for one, so far.
    fn read_runnable(&self) -> Option<Duration> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 96];
        let n = self.sched.as_ref()?.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let mut f = text.split_whitespace().map(|v| v.parse::<u64>().ok());
        Some(Duration::from_nanos(f.next()??.saturating_add(f.next()??)))
    }

    /// Sleeps `d`; returns the stall noticed since the last wake-up, if any (and keeps it).
    pub fn nap(&mut self, d: Duration) -> Option<Stall> {
        thread::sleep(d);
        let now = Instant::now();
        let runnable = self.read_runnable();
        let gap = now.saturating_duration_since(self.woke);
        let (ran_or_waited, min) = match (self.runnable, runnable) {
            (Some(a), Some(b)) => (b.saturating_sub(a), STALL_MIN),
            _ => (Duration::ZERO, STALL_MIN_BLIND),
        };
        self.woke = now;
        self.runnable = runnable;
        let unexplained = gap.saturating_sub(d).saturating_sub(ran_or_waited);
        if unexplained < min {
            return None;
        }
        let began = now.checked_sub(unexplained).unwrap_or(now);
        let stall = Stall {
            at: began.saturating_duration_since(self.start),
            began,
            len: unexplained,
        };
        self.stalls.push(stall);
        Some(stall)
    }

    /// The time the process was stalled so far.
    pub fn stalled(&self) -> Duration {
        self.stalls.iter().map(|s| s.len).sum()
    }
}

/// Says when the process did not run (stopped, or its machine suspended), and how much of
/// the measured window (from `from`, `measured` long) it ran.
pub fn note_stalls(
    stalls: &[Stall],
    from: Duration,
    measured: Duration,
    running: Duration,
    notes: &mut Vec<String>,
) {
    for s in stalls {
        let when = if s.at < from {
            "during the warm-up"
        } else if s.at < from + measured {
            "in the measured window"
        } else {
            "after the measured window"
        };
        notes.push(format!(
            "the process did not run for {:.2}s from {:.2}s after the start, {when} (it was stopped: SIGSTOP, a debugger, or a suspended machine); the run measured {:.2}s of running time, and its rates cover that (a single wait, hold or request that spanned the stop includes it)",
            s.len.as_secs_f64(),
            s.at.as_secs_f64(),
            running.as_secs_f64()
        ));
    }
}

/// A load generator's measured window (`window` long, after `warmup` from about the start)
/// less the time the process did not run; `None`, with a note, when a stop leaves it no
/// running time: the load generator keeps its window on its own clock, so a stop can take
/// all of it. Without a stop in it the window is the load generator's own.
pub fn load_running_time(
    stalls: &[Stall],
    warmup: Duration,
    window: Duration,
    notes: &mut Vec<String>,
) -> Option<Duration> {
    let stalled = stalled_within(stalls, warmup, warmup + window);
    let running = window.saturating_sub(stalled);
    if running < Duration::from_millis(1) && !stalled.is_zero() {
        notes.push(format!(
            "the load generator's measured window ({:.2}s) fell within the time the process did not run: no I/O figures",
            window.as_secs_f64()
        ));
        return None;
    }
    Some(running)
}
