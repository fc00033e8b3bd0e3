//! Per-thread measurements: HDR histograms (nanosecond values, 3 significant digits) and
//! plain counters, owned by their thread (nothing shared on the hot path) and merged at the
//! end of a run; context switches from `getrusage(RUSAGE_THREAD)`.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A histogram of nanoseconds.
pub type Hist = Histogram<u64>;

/// Highest trackable value: one hour in nanoseconds. Larger values saturate.
const MAX_NS: u64 = 3_600_000_000_000;

/// A fresh nanosecond histogram with 3 significant digits.
pub fn new_hist() -> Hist {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("static histogram bounds are valid")
}

/// Records `d` in nanoseconds, saturating at one hour.
#[inline]
pub fn record(h: &mut Hist, d: Duration) {
    h.saturating_record(u64::try_from(d.as_nanos()).unwrap_or(MAX_NS));
}

/// Merges `src` into `dst` (both share the same bounds, so this cannot fail).
pub fn merge(dst: &mut Hist, src: &Hist) {
    dst.add(src)
        .expect("histograms with equal bounds always merge");
}

/// A histogram summary in the result format: `null` when the histogram holds nothing (no
/// figure was measured), read back as an empty one (`#[serde(with = ...)]`).
pub mod absent_if_empty {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Percentiles;

    pub fn serialize<S: Serializer>(p: &Percentiles, s: S) -> Result<S::Ok, S::Error> {
        if p.count == 0 {
            s.serialize_none()
        } else {
            p.serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Percentiles, D::Error> {
        Ok(Option::<Percentiles>::deserialize(d)?.unwrap_or_default())
    }
}

/// The summary of a histogram that the result format carries, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
    /// How many values the histogram holds.
    pub count: u64,
}

fn us(ns: f64) -> f64 {
    (ns / 1000.0 * 1000.0).round() / 1000.0
}

impl Percentiles {
    pub fn of(h: &Hist) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        let q = |p: f64| us(h.value_at_quantile(p) as f64);
        Percentiles {
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: us(h.max() as f64),
            mean: us(h.mean()),
            count: h.len(),
        }
    }
}

/// The distribution as [percentile, microseconds] points (5 per halving of the tail), as
/// HdrHistogram's percentile output lists them.
pub fn distribution(h: &Hist) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5)
        .map(|v| {
            [
                v.quantile_iterated_to() * 100.0,
                us(v.value_iterated_to() as f64),
            ]
        })
        .collect()
}

/// The median of `v` (the mean of the middle two for an even count); None when empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// `n` per second of `secs`: 0 for no time (an empty window counted nothing, at no rate).
pub fn per_sec(n: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        n / secs
    } else {
        0.0
    }
}

/// Event counters of one interpreter thread.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Times the thread took the GIL.
    pub acquisitions: u64,
    /// Acquisitions at which the previous holder was another thread.
    pub switches: u64,
    /// Drops made at the eval-breaker check because the design asked for them.
    pub forced_drops: u64,
    /// Drops around blocking calls or native work.
    pub voluntary_drops: u64,
    /// Ticks of GIL-held work.
    pub ticks: u64,
    /// Bytes hashed (CPU work) or moved (I/O).
    pub bytes: u64,
    /// Holds during which another thread took the GIL too: a broken exclusion (must be 0
    /// for every design but `none`).
    #[serde(default)]
    pub overlaps: u64,
}

impl Counters {
    pub fn add(&mut self, o: &Counters) {
        self.acquisitions += o.acquisitions;
        self.switches += o.switches;
        self.forced_drops += o.forced_drops;
        self.voluntary_drops += o.voluntary_drops;
        self.ticks += o.ticks;
        self.bytes += o.bytes;
        self.overlaps += o.overlaps;
    }
}

/// Everything one interpreter thread measures about the GIL.
pub struct ThreadMetrics {
    pub counters: Counters,
    /// Time from asking for the GIL to holding it.
    pub wait: Hist,
    /// Time from taking the GIL to giving it up.
    pub hold: Hist,
    /// GIL wait right after a blocking call (the re-acquire delay).
    pub reacquire: Hist,
    /// Time spent inside a release before the thread may go on: `timed`'s forced-switch wait
    /// (blocked until another thread holds the GIL); near zero for designs whose release
    /// rarely waits, and not timed for those whose release cannot (`Gil::RELEASE_WAITS`).
    /// Counted as neither wait nor hold.
    pub switch_wait: Hist,
    /// The cores the thread was seen on.
    pub cores: CoreTrack,
}

impl Default for ThreadMetrics {
    fn default() -> Self {
        ThreadMetrics {
            counters: Counters::default(),
            wait: new_hist(),
            hold: new_hist(),
            reacquire: new_hist(),
            switch_wait: new_hist(),
            cores: CoreTrack::default(),
        }
    }
}

/// The cores a thread was seen running on (sampled at every eighth release and every
/// heartbeat) and how often consecutive samples differed (migrations).
#[derive(Clone, Debug, Default)]
pub struct CoreTrack {
    seen: std::collections::BTreeSet<usize>,
    last: Option<usize>,
    /// Releases until the next sample.
    skip: u8,
    /// Samples that found the thread on another core than the sample before.
    pub migrations: u64,
}

impl CoreTrack {
    /// Samples the calling thread's core (one `sched_getcpu`, a vDSO call).
    #[inline]
    pub fn sample(&mut self) {
        let Some(c) = current_core() else { return };
        if self.last != Some(c) {
            self.note(c);
        }
    }

    /// Samples at every eighth call (the first included): a core sample costs about as much
    /// as a clock read, and a thread that releases the GIL tens of thousands of times a
    /// second moves between cores far less often.
    #[inline]
    pub fn sample_now_and_then(&mut self) {
        if self.skip == 0 {
            self.skip = 7;
            self.sample();
        } else {
            self.skip -= 1;
        }
    }

    #[cold]
    fn note(&mut self, c: usize) {
        if self.last.is_some() {
            self.migrations += 1;
        }
        self.last = Some(c);
        self.seen.insert(c);
    }

    /// Whether any sample was taken.
    pub fn sampled(&self) -> bool {
        self.last.is_some()
    }

    /// The cores seen, ascending.
    pub fn cores(&self) -> Vec<usize> {
        self.seen.iter().copied().collect()
    }
}

/// Voluntary and involuntary context switches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtxSwitches {
    pub voluntary: u64,
    pub involuntary: u64,
}

impl CtxSwitches {
    /// The calling thread's context switches so far (`getrusage(RUSAGE_THREAD)`).
    pub fn of_current_thread() -> Self {
        // SAFETY: rusage is plain old data, so all-zero is a valid value that getrusage
        // overwrites; the pointer is to a live local.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: RUSAGE_THREAD with a valid out-pointer has no other preconditions.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
        if rc != 0 {
            return CtxSwitches::default();
        }
        CtxSwitches {
            voluntary: ru.ru_nvcsw as u64,
            involuntary: ru.ru_nivcsw as u64,
        }
    }

    pub fn since(self, earlier: CtxSwitches) -> Self {
        CtxSwitches {
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }

    pub fn add(&mut self, o: CtxSwitches) {
        self.voluntary += o.voluntary;
        self.involuntary += o.involuntary;
    }
}

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer to a live local; CLOCK_THREAD_CPUTIME_ID needs nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The core the calling thread is running on right now, if the OS says.
pub fn current_core() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    usize::try_from(c).ok()
}

/// One fixed-length interval of several histograms (for HdrHistogram interval logs).
#[derive(Clone, Debug)]
pub struct Interval {
    /// Start, from the run's start.
    pub start: Duration,
    pub len: Duration,
    pub hists: Vec<Hist>,
}

/// Histograms cut into fixed intervals as values are recorded (a cut costs one comparison
/// per recorded value; nothing per tick).
pub struct IntervalHists {
    len: Duration,
    epoch: std::time::Instant,
    cur_start: std::time::Instant,
    cur: Vec<Hist>,
    done: Vec<Interval>,
}

impl IntervalHists {
    /// `n` histograms cut every `len`, timed from `epoch`.
    pub fn new(epoch: std::time::Instant, len: Duration, n: usize) -> Self {
        IntervalHists {
            len,
            epoch,
            cur_start: epoch,
            cur: (0..n).map(|_| new_hist()).collect(),
            done: Vec::new(),
        }
    }

    #[inline]
    pub fn record(&mut self, now: std::time::Instant, which: usize, d: Duration) {
        if now >= self.cur_start + self.len {
            self.rotate(now);
        }
        record(&mut self.cur[which], d);
    }

    #[cold]
    fn rotate(&mut self, now: std::time::Instant) {
        while now >= self.cur_start + self.len {
            let fresh = (0..self.cur.len()).map(|_| new_hist()).collect();
            let hists = std::mem::replace(&mut self.cur, fresh);
            self.done.push(Interval {
                start: self.cur_start.saturating_duration_since(self.epoch),
                len: self.len,
                hists,
            });
            self.cur_start += self.len;
        }
    }

    /// Closes the current interval at `now` and returns all of them.
    pub fn finish(mut self, now: std::time::Instant) -> Vec<Interval> {
        self.rotate(now);
        let len = now.saturating_duration_since(self.cur_start);
        if !len.is_zero() {
            self.done.push(Interval {
                start: self.cur_start.saturating_duration_since(self.epoch),
                len,
                hists: self.cur,
            });
        }
        self.done
    }
}
