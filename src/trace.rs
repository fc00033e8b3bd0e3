//! The GIL timeline behind `--trace`: per-thread bounded event buffers, filled by the
//! interpreter threads at take/release (never per tick), written as Chrome trace-event JSON
//! that Perfetto and chrome://tracing load.
//!
//! Spans per thread: *wants GIL* (asked .. got), *holds GIL* (got .. release), *released*
//! (blocking or native work, release .. asks again); instants: *drop request* (the holder's
//! eval-breaker saw one) and *forced switch* (the holder dropped because of it).

use std::collections::VecDeque;
use std::io::Write;
use std::time::Instant;

use serde_json::{json, Value};

/// The most events `--trace-events` may keep per run: at 8 bytes each in memory, 80 MB of
/// buffers and a trace file of about 700 MB, about as much as the viewers load.
pub const MAX_EVENTS: usize = 10_000_000;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Ev {
    WantBegin,
    WantEnd,
    HoldBegin,
    HoldEnd,
    ReleasedBegin,
    ReleasedEnd,
    DropRequest,
    ForcedSwitch,
}

impl Ev {
    /// Every event, by its 3-bit code.
    const ALL: [Ev; 8] = [
        Ev::WantBegin,
        Ev::WantEnd,
        Ev::HoldBegin,
        Ev::HoldEnd,
        Ev::ReleasedBegin,
        Ev::ReleasedEnd,
        Ev::DropRequest,
        Ev::ForcedSwitch,
    ];

    fn span(self) -> Option<(&'static str, &'static str)> {
        match self {
            Ev::WantBegin => Some(("wants GIL", "B")),
            Ev::WantEnd => Some(("wants GIL", "E")),
            Ev::HoldBegin => Some(("holds GIL", "B")),
            Ev::HoldEnd => Some(("holds GIL", "E")),
            Ev::ReleasedBegin => Some(("released (I/O or native)", "B")),
            Ev::ReleasedEnd => Some(("released (I/O or native)", "E")),
            _ => None,
        }
    }
}

/// One event in 8 bytes: nanoseconds since the epoch (61 bits, 73 years) and the event's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packed(u64);

impl Packed {
    fn new(ns: u64, ev: Ev) -> Self {
        Packed(ns.min(u64::MAX >> 3) << 3 | ev as u64)
    }

    fn ns(self) -> u64 {
        self.0 >> 3
    }

    fn ev(self) -> Ev {
        Ev::ALL[(self.0 & 7) as usize]
    }
}

/// One thread's events, the newest `capacity` kept.
#[derive(Clone, Debug)]
pub struct TraceBuf {
    epoch: Instant,
    capacity: usize,
    events: VecDeque<Packed>,
    /// Events pushed out to keep the buffer bounded.
    pub dropped: u64,
}

impl TraceBuf {
    pub fn new(epoch: Instant, capacity: usize) -> Self {
        TraceBuf {
            epoch,
            capacity: capacity.max(16),
            events: VecDeque::new(),
            dropped: 0,
        }
    }

    #[inline]
    pub fn push(&mut self, at: Instant, ev: Ev) {
        let len = self.events.len();
        if len == self.capacity {
            self.events.pop_front();
            self.dropped += 1;
        } else if len == self.events.capacity() {
            // Grow by doubling, but never past the bound (a plain doubling would reserve up
            // to twice the events ever kept).
            let want = (len * 2).max(1024).min(self.capacity);
            self.events.reserve_exact(want - len);
        }
        let ns = at.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.events.push_back(Packed::new(ns, ev));
    }

    /// Bytes the buffer holds allocated.
    pub fn allocated_bytes(&self) -> usize {
        self.events.capacity() * std::mem::size_of::<Packed>()
    }

    /// Events kept.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// A finished thread's timeline.
#[derive(Clone, Debug)]
pub struct ThreadTrace {
    pub name: String,
    pub buf: TraceBuf,
}

/// A run's timeline: its threads' events, when it ended, and what it was.
#[derive(Clone, Debug)]
pub struct Timeline {
    pub threads: Vec<ThreadTrace>,
    /// When the run stopped, in ns from the epoch (the run's start, warm-up included).
    pub end_ns: u64,
    /// When the measured window began (the end of the warm-up), in ns from the epoch.
    pub measured_from_ns: u64,
    /// Scenario, design and version, for the viewer's metadata.
    pub meta: Value,
}

impl Timeline {
    pub fn dropped(&self) -> u64 {
        self.threads.iter().map(|t| t.buf.dropped).sum()
    }
}

/// How many events are written between two looks at `cancelled`.
const POLL_EVERY: usize = 1 << 14;

/// The thread id of a run's *GIL* track (above any interpreter thread's).
const GIL_TID: usize = 1_000_000;

/// Where a run's GIL was *idle while wanted*: held by nobody (free, or handed to a thread that
/// had not started running yet) while at least one thread wanted it, derived from the
/// threads' wants and holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdleSpans {
    /// From here on every thread's events are complete: the latest first event among the
    /// threads whose buffers dropped older ones (0 when none did); ns from the epoch.
    pub from_ns: u64,
    /// The end of the timeline: the run's stop or its last event, whichever is later.
    pub to_ns: u64,
    /// The spans `(start, end)` in ns, in time order, within `from_ns..to_ns`.
    pub spans: Vec<(u64, u64)>,
}

impl IdleSpans {
    /// Idle-while-wanted time within `from..to`, in ns.
    pub fn within(&self, from: u64, to: u64) -> u64 {
        self.spans
            .iter()
            .map(|&(a, b)| b.min(to).saturating_sub(a.max(from)))
            .sum()
    }

    /// Its share of `from..to` (0 for an empty window).
    pub fn share(&self, from: u64, to: u64) -> f64 {
        if to > from {
            self.within(from, to) as f64 / (to - from) as f64
        } else {
            0.0
        }
    }
}

/// Derives the idle-while-wanted spans of `threads` (a run that stopped at `end_ns`) by
/// sweeping their events in time order: a thread wants the GIL from `WantBegin` to `WantEnd`
/// and holds it from `HoldBegin` to `HoldEnd`. Events at one instant are applied together
/// (a hand-off that takes no measurable time leaves no span). A buffer that dropped its
/// oldest events may begin inside a want or a hold: its first event ends something never
/// begun, which changes nothing, and from then on its state is known. Before that it is not,
/// so spans start at [`IdleSpans::from_ns`].
/// Every few thousand events `cancelled` is asked; `None` when it said so.
pub fn idle_while_wanted(
    threads: &[ThreadTrace],
    end_ns: u64,
    cancelled: &dyn Fn() -> bool,
) -> Option<IdleSpans> {
    let from_ns = known_from_ns(threads);
    let mut sweep = Sweep {
        at: threads.iter().map(|_| SweepPos::default()).collect(),
        wanting: 0,
        holding: 0,
        seen: 0,
    };
    let mut since = None;
    let mut out = IdleSpans {
        from_ns,
        to_ns: end_ns,
        spans: Vec::new(),
    };
    let close = |out: &mut IdleSpans, a: u64, b: u64| {
        let a = a.max(from_ns);
        if b > a {
            out.spans.push((a, b));
        }
    };
    while let Some(now) = sweep.next_instant(threads) {
        sweep.apply_instant(threads, now, cancelled)?;
        out.to_ns = out.to_ns.max(now);
        match (since, sweep.holding == 0 && sweep.wanting > 0) {
            (None, true) => since = Some(now),
            (Some(a), false) => {
                close(&mut out, a, now);
                since = None;
            }
            _ => {}
        }
    }
    if let Some(a) = since {
        let to = out.to_ns;
        close(&mut out, a, to);
    }
    Some(out)
}

/// Where every thread's state is known: after the first event of the latest-starting
/// buffer that dropped events (0 when none did).
fn known_from_ns(threads: &[ThreadTrace]) -> u64 {
    threads
        .iter()
        .filter(|t| t.buf.dropped > 0)
        .filter_map(|t| t.buf.events.front())
        .map(|e| e.ns())
        .max()
        .unwrap_or(0)
}

/// One thread's place in the sweep of [`idle_while_wanted`].
#[derive(Default)]
struct SweepPos {
    /// The index of its next event.
    pos: usize,
    /// The instant of its last event applied (a clock step back is held at it).
    last: u64,
    wants: bool,
    holds: bool,
}

/// The sweep of [`idle_while_wanted`]: every thread's place and how many want or hold.
struct Sweep {
    at: Vec<SweepPos>,
    wanting: usize,
    holding: usize,
    /// Events applied, for polling `cancelled` every [`POLL_EVERY`].
    seen: usize,
}

impl Sweep {
    /// The next instant with an event (a clock step back counts as no time passing).
    fn next_instant(&self, threads: &[ThreadTrace]) -> Option<u64> {
        threads
            .iter()
            .zip(&self.at)
            .filter_map(|(t, s)| t.buf.events.get(s.pos).map(|e| e.ns().max(s.last)))
            .min()
    }

    /// Applies every thread's events at `now`; `None` if `cancelled` said so meanwhile.
    fn apply_instant(
        &mut self,
        threads: &[ThreadTrace],
        now: u64,
        cancelled: &dyn Fn() -> bool,
    ) -> Option<()> {
        for (t, s) in threads.iter().zip(self.at.iter_mut()) {
            while let Some(e) = t.buf.events.get(s.pos) {
                if e.ns().max(s.last) != now {
                    break;
                }
                s.last = now;
                s.pos += 1;
                self.seen += 1;
                if self.seen.is_multiple_of(POLL_EVERY) && cancelled() {
                    return None;
                }
                let (flag, count, on) = match e.ev() {
                    Ev::WantBegin => (&mut s.wants, &mut self.wanting, true),
                    Ev::WantEnd => (&mut s.wants, &mut self.wanting, false),
                    Ev::HoldBegin => (&mut s.holds, &mut self.holding, true),
                    Ev::HoldEnd => (&mut s.holds, &mut self.holding, false),
                    _ => continue,
                };
                if *flag != on {
                    *flag = on;
                    if on {
                        *count += 1;
                    } else {
                        *count -= 1;
                    }
                }
            }
        }
        Some(())
    }
}

/// What `otherData` says of a run's idle-while-wanted track.
fn idle_meta(run: &Timeline, i: &IdleSpans) -> Value {
    let us = |ns: u64| ns as f64 / 1000.0;
    let measured_from = run.measured_from_ns.max(i.from_ns);
    let measured_to = run.end_ns.max(measured_from);
    let start = if i.from_ns > 0 {
        format!(
            "from {:.3} us, where every thread's events are complete (the latest first event among the threads whose buffers dropped older events)",
            us(i.from_ns)
        )
    } else {
        "from the run's start (no events were dropped, warm-up included)".to_owned()
    };
    json!({
        "share": i.share(i.from_ns, i.to_ns),
        "seconds": i.within(i.from_ns, i.to_ns) as f64 / 1e9,
        "window_us": [us(i.from_ns), us(i.to_ns)],
        "spans": i.spans.len(),
        "measured_share": i.share(measured_from, measured_to),
        "measured_window_us": [us(measured_from), us(measured_to)],
        "note": format!(
            "derived from the threads' wants and holds {start} to the last event; share is of that window, measured_share of its part after the warm-up up to the stop (the window of the result's gil.idle_while_wanted)"
        ),
    })
}

/// Writes timelines as one trace-event JSON document, each run as its own process (pid) in
/// the viewer. B/E spans are paired per thread: a span cut off by the bounded buffer at the
/// start is dropped, one still open at the end is closed at the run's end. `otherData`
/// (gilbench's version, by which gilbench recognises the file, and what was dropped) comes
/// first. Streamed into `w`, since traces run to millions of events; every few thousand
/// events `cancelled` is asked, and when it says so the write stops and returns `false`.
pub fn write_chrome_trace(
    runs: &[&Timeline],
    w: &mut dyn Write,
    cancelled: &dyn Fn() -> bool,
) -> std::io::Result<bool> {
    let mut idle = Vec::with_capacity(runs.len());
    for r in runs {
        match idle_while_wanted(&r.threads, r.end_ns, cancelled) {
            Some(i) => idle.push(i),
            None => return Ok(false),
        }
    }
    let meta = trace_meta(runs, &idle);
    write!(
        w,
        "{{\"otherData\":{meta},\"displayTimeUnit\":\"ns\",\"traceEvents\":["
    )?;
    let mut tw = TraceEvents {
        w,
        first: true,
        written: 0,
        cancelled,
    };
    for (p, run) in runs.iter().enumerate() {
        let pid = p + 1;
        let pname = format!(
            "{} {}",
            run.meta["scenario"].as_str().unwrap_or("?"),
            run.meta["lock"].as_str().unwrap_or("?")
        );
        tw.event(format_args!(
            "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{pid},\"args\":{{\"name\":{}}}}}",
            json!(pname)
        ))?;
        for (t, th) in run.threads.iter().enumerate() {
            if !tw.thread_track(pid, t + 1, th, run.end_ns)? {
                return Ok(false);
            }
        }
        if !tw.idle_track(pid, &idle[p])? {
            return Ok(false);
        }
    }
    tw.w.write_all(b"]}")?;
    Ok(true)
}

/// The trace's `otherData`: each run's metadata with its dropped events and its
/// idle-while-wanted window, and a note when events were dropped.
fn trace_meta(runs: &[&Timeline], idle: &[IdleSpans]) -> Value {
    let dropped: u64 = runs.iter().map(|r| r.dropped()).sum();
    let mut meta = json!({
        "gilbench": env!("CARGO_PKG_VERSION"),
        "runs": runs.iter().zip(idle).map(|(r, i)| {
            let mut m = r.meta.clone();
            m["dropped_events"] = json!(r.dropped());
            m["idle_while_wanted"] = idle_meta(r, i);
            m
        }).collect::<Vec<_>>(),
        "dropped_events": dropped,
    });
    if let [one] = runs {
        meta["scenario"] = one.meta["scenario"].clone();
        meta["lock"] = one.meta["lock"].clone();
    }
    if dropped > 0 {
        meta["note"] = json!(format!("{dropped} older events were dropped to keep the buffers bounded; the timelines start late, the idle-while-wanted track where every thread's events are complete"));
    }
    meta
}

/// The `traceEvents` array being written: commas between events, and a count of the
/// events written so that `cancelled` is asked every [`POLL_EVERY`].
struct TraceEvents<'w, 'c> {
    w: &'w mut dyn Write,
    first: bool,
    written: usize,
    cancelled: &'c dyn Fn() -> bool,
}

impl TraceEvents<'_, '_> {
    /// Writes one event (or several already joined by commas), after a comma if needed.
    fn event(&mut self, e: std::fmt::Arguments<'_>) -> std::io::Result<()> {
        if !self.first {
            self.w.write_all(b",")?;
        }
        self.first = false;
        self.w.write_fmt(e)
    }

    /// Counts one more event from a buffer; true if the caller is to stop.
    fn cancelled_at_next(&mut self) -> bool {
        self.written += 1;
        self.written.is_multiple_of(POLL_EVERY) && (self.cancelled)()
    }

    /// One thread's track: its name and order, its spans and instants. Spans still open
    /// at the end are closed at the run's end. False if cancelled.
    fn thread_track(
        &mut self,
        pid: usize,
        tid: usize,
        th: &ThreadTrace,
        end_ns: u64,
    ) -> std::io::Result<bool> {
        self.event(format_args!("{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":{}}}}}", json!(th.name)))?;
        self.event(format_args!("{{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"sort_index\":{tid}}}}}"))?;
        let mut open: Vec<&'static str> = Vec::new();
        let mut last_ns = 0u64;
        for &e in &th.buf.events {
            if self.cancelled_at_next() {
                return Ok(false);
            }
            let ns = e.ns().max(last_ns);
            last_ns = ns;
            let ts = ns as f64 / 1000.0;
            match e.ev().span() {
                Some((name, "B")) => {
                    open.push(name);
                    self.event(format_args!("{{\"ph\":\"B\",\"name\":\"{name}\",\"pid\":{pid},\"tid\":{tid},\"ts\":{ts}}}"))?;
                }
                Some((name, _)) => {
                    // Only close what this buffer saw open (the oldest events may be gone).
                    if open.last() == Some(&name) {
                        open.pop();
                        self.event(format_args!("{{\"ph\":\"E\",\"name\":\"{name}\",\"pid\":{pid},\"tid\":{tid},\"ts\":{ts}}}"))?;
                    }
                }
                None => {
                    let name = if e.ev() == Ev::DropRequest {
                        "drop request"
                    } else {
                        "forced switch"
                    };
                    self.event(format_args!("{{\"ph\":\"i\",\"s\":\"t\",\"name\":\"{name}\",\"pid\":{pid},\"tid\":{tid},\"ts\":{ts}}}"))?;
                }
            }
        }
        let end = end_ns.max(last_ns) as f64 / 1000.0;
        while let Some(name) = open.pop() {
            self.event(format_args!(
                "{{\"ph\":\"E\",\"name\":\"{name}\",\"pid\":{pid},\"tid\":{tid},\"ts\":{end}}}"
            ))?;
        }
        Ok(true)
    }

    /// A run's idle-while-wanted track, sorted first, with a mark where it becomes
    /// complete when older events were dropped. False if cancelled.
    fn idle_track(&mut self, pid: usize, i: &IdleSpans) -> std::io::Result<bool> {
        let tid = GIL_TID;
        self.event(format_args!("{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":\"GIL idle while wanted\"}}}}"))?;
        self.event(format_args!("{{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"sort_index\":0}}}}"))?;
        if i.from_ns > 0 {
            let ts = i.from_ns as f64 / 1000.0;
            self.event(format_args!("{{\"ph\":\"i\",\"s\":\"t\",\"name\":\"complete from here (older events dropped)\",\"pid\":{pid},\"tid\":{tid},\"ts\":{ts}}}"))?;
        }
        for &(a, b) in &i.spans {
            if self.cancelled_at_next() {
                return Ok(false);
            }
            let (a, b) = (a as f64 / 1000.0, b as f64 / 1000.0);
            self.event(format_args!("{{\"ph\":\"B\",\"name\":\"idle while wanted\",\"pid\":{pid},\"tid\":{tid},\"ts\":{a}}},{{\"ph\":\"E\",\"name\":\"idle while wanted\",\"pid\":{pid},\"tid\":{tid},\"ts\":{b}}}"))?;
        }
        Ok(true)
    }
}

/// The trace-event JSON document of [`write_chrome_trace`], as one string.
pub fn chrome_trace(runs: &[&Timeline]) -> String {
    let mut out = Vec::new();
    write_chrome_trace(runs, &mut out, &|| false).expect("writing to memory cannot fail");
    String::from_utf8(out).expect("the trace is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::Duration;

    fn timeline(events: usize, capacity: usize) -> Timeline {
        let epoch = Instant::now();
        let mut buf = TraceBuf::new(epoch, capacity);
        for i in 0..events {
            let at = epoch + Duration::from_nanos(i as u64 * 1000);
            buf.push(at, Ev::ALL[i % 6]);
        }
        Timeline {
            threads: vec![ThreadTrace {
                name: "cpu-0".into(),
                buf,
            }],
            end_ns: events as u64 * 1000,
            measured_from_ns: 0,
            meta: json!({"scenario": "s", "lock": "timed"}),
        }
    }

    use Ev::{HoldBegin as HB, HoldEnd as HE, WantBegin as WB, WantEnd as WE};

    /// A thread whose events (ns from `epoch`, in order) are kept in a buffer of `capacity`.
    fn thread(epoch: Instant, capacity: usize, events: &[(u64, Ev)]) -> ThreadTrace {
        let mut buf = TraceBuf::new(epoch, capacity);
        for &(ns, ev) in events {
            buf.push(epoch + Duration::from_nanos(ns), ev);
        }
        ThreadTrace {
            name: "t".into(),
            buf,
        }
    }

    /// The idle-while-wanted spans of threads given as event lists, none dropped.
    fn idle_of(end_ns: u64, threads: &[&[(u64, Ev)]]) -> IdleSpans {
        let epoch = Instant::now();
        let t: Vec<ThreadTrace> = threads.iter().map(|e| thread(epoch, 1000, e)).collect();
        idle_while_wanted(&t, end_ns, &|| false).unwrap()
    }

    #[test]
    fn idle_while_wanted_is_free_with_a_waiter_in_two_threads() {
        // a holds until 100; b wants from 50 and gets it at 130 (in transit 100..130).
        let a: &[(u64, Ev)] = &[(0, WB), (0, WE), (0, HB), (100, HE)];
        let b: &[(u64, Ev)] = &[(50, WB), (130, WE), (130, HB), (200, HE)];
        let i = idle_of(200, &[a, b]);
        assert_eq!(i.spans, vec![(100, 130)]);
        assert_eq!((i.from_ns, i.to_ns), (0, 200));
        assert_eq!(i.within(0, 200), 30);
        assert!((i.share(0, 200) - 0.15).abs() < 1e-12);
        // The part within a later window only.
        assert_eq!(i.within(120, 200), 10);
    }

    #[test]
    fn a_hand_off_at_one_instant_and_a_free_gil_nobody_wants_are_not_idle_while_wanted() {
        let a: &[(u64, Ev)] = &[(0, WB), (0, WE), (0, HB), (100, HE), (300, WB), (300, WE)];
        let b: &[(u64, Ev)] = &[(50, WB), (100, WE), (100, HB), (150, HE)];
        // 150..300 free but unwanted; 300 a take without a wait.
        let i = idle_of(400, &[a, b]);
        assert_eq!(i.spans, vec![]);
        assert_eq!(i.within(0, 400), 0);
    }

    #[test]
    fn a_hold_that_starts_after_its_want_ended_is_idle_only_while_another_waits() {
        // b's want ends at 130 but its hold begins at 140: 130..140 nobody wants it.
        let a: &[(u64, Ev)] = &[(0, WB), (0, WE), (0, HB), (100, HE)];
        let b: &[(u64, Ev)] = &[(50, WB), (130, WE), (140, HB), (200, HE)];
        assert_eq!(idle_of(300, &[a, b]).spans, vec![(100, 130)]);
        // With c waiting all along, the gap is idle too, and so is 200..250.
        let c: &[(u64, Ev)] = &[(60, WB), (250, WE), (250, HB), (300, HE)];
        assert_eq!(idle_of(300, &[a, b, c]).spans, vec![(100, 140), (200, 250)]);
    }

    #[test]
    fn overlapping_wants_of_three_threads() {
        // a holds 0..100, wants again 140..310; b wants 10..120, holds 120..150; c wants
        // 20..160, holds 160..300.
        let a: &[(u64, Ev)] = &[
            (0, WB),
            (0, WE),
            (0, HB),
            (100, HE),
            (140, WB),
            (310, WE),
            (310, HB),
            (350, HE),
        ];
        let b: &[(u64, Ev)] = &[(10, WB), (120, WE), (120, HB), (150, HE)];
        let c: &[(u64, Ev)] = &[(20, WB), (160, WE), (160, HB), (300, HE)];
        let i = idle_of(400, &[a, b, c]);
        assert_eq!(i.spans, vec![(100, 120), (150, 160), (300, 310)]);
        assert_eq!(i.within(0, 400), 40);
        // The order of the threads does not matter.
        assert_eq!(idle_of(400, &[c, a, b]).spans, i.spans);
    }

    #[test]
    fn concurrent_holders_without_a_gil_count_as_held() {
        // Under `none` holds overlap: idle only once the last holder is gone.
        let a: &[(u64, Ev)] = &[(0, WB), (0, WE), (0, HB), (100, HE)];
        let b: &[(u64, Ev)] = &[(50, WB), (50, WE), (50, HB), (150, HE)];
        let c: &[(u64, Ev)] = &[(120, WB), (160, WE), (160, HB), (170, HE)];
        assert_eq!(idle_of(200, &[a, b, c]).spans, vec![(150, 160)]);
    }

    #[test]
    fn a_want_open_at_the_end_runs_to_the_stop_or_the_last_event() {
        let a: &[(u64, Ev)] = &[(0, WB), (0, WE), (0, HB), (100, HE), (150, WB)];
        let i = idle_of(400, &[a]);
        assert_eq!(i.spans, vec![(150, 400)]);
        // A stop recorded before the last event (0 here) ends at the last event.
        assert_eq!(idle_of(0, &[a]).spans, vec![]);
        assert_eq!(idle_of(0, &[a]).to_ns, 150);
    }

    /// Three threads whose buffers dropped events: `a` (4 cycles of want 10 ns, hold 50,
    /// released 30, then a want at 400 still open; 25 events in a buffer of 16, so its
    /// oldest 9 are gone and it starts with the HoldEnd of 160), `b` (waits from 0 to 500,
    /// holds until 600) and `c` (dropped events too, but its buffer starts earlier).
    fn threads_with_dropped_events(epoch: Instant) -> Vec<ThreadTrace> {
        let mut ev = Vec::new();
        for k in 0..4u64 {
            let t = 100 * k;
            ev.extend([
                (t, WB),
                (t + 10, WE),
                (t + 10, HB),
                (t + 60, HE),
                (t + 60, Ev::ReleasedBegin),
                (t + 90, Ev::ReleasedEnd),
            ]);
        }
        ev.push((400, WB));
        let a = thread(epoch, 16, &ev);
        assert_eq!((a.buf.dropped, a.buf.events[0].ev()), (9, HE));
        let b = thread(epoch, 16, &[(0, WB), (500, WE), (500, HB), (600, HE)]);
        let c_events: Vec<_> = (0..20).map(|k| (k * 5, Ev::ReleasedBegin)).collect();
        let c = thread(epoch, 16, &c_events);
        vec![a, b, c]
    }

    #[test]
    fn with_dropped_events_spans_start_where_every_buffer_is_complete() {
        let threads = threads_with_dropped_events(Instant::now());
        // b would look idle before 160, where a's state is unknown; after b's hold, a's
        // open want is idle until the stop at 700.
        let i = idle_while_wanted(&threads, 700, &|| false).unwrap();
        assert_eq!(i.from_ns, 160);
        assert_eq!(
            i.spans,
            vec![(160, 210), (260, 310), (360, 500), (600, 700)]
        );
        let t = Timeline {
            threads,
            end_ns: 700,
            measured_from_ns: 300,
            meta: json!({"scenario": "s", "lock": "timed"}),
        };
        let v: Value = serde_json::from_str(&chrome_trace(&[&t])).unwrap();
        let m = &v["otherData"]["runs"][0]["idle_while_wanted"];
        assert_eq!(m["window_us"], json!([0.16, 0.7]), "{m}");
        assert_eq!(m["spans"], 4);
        assert!(
            (m["seconds"].as_f64().unwrap() - 340e-9).abs() < 1e-15,
            "{m}"
        );
        assert!(
            (m["share"].as_f64().unwrap() - 340.0 / 540.0).abs() < 1e-9,
            "{m}"
        );
        // The measured window 300..700: 10 + 140 + 100 ns.
        assert!((m["measured_share"].as_f64().unwrap() - 250.0 / 400.0).abs() < 1e-9);
        assert!(m["note"].as_str().unwrap().contains("complete"), "{m}");
        assert!(v["otherData"]["note"]
            .as_str()
            .unwrap()
            .contains("idle-while-wanted"));
    }

    #[test]
    fn the_trace_has_a_gil_track_with_the_idle_spans() {
        let epoch = Instant::now();
        let a = thread(epoch, 100, &[(0, WB), (0, WE), (0, HB), (100_000, HE)]);
        let b = thread(
            epoch,
            100,
            &[(50_000, WB), (130_000, WE), (130_000, HB), (200_000, HE)],
        );
        let t = Timeline {
            threads: vec![a, b],
            end_ns: 200_000,
            measured_from_ns: 0,
            meta: json!({"scenario": "s", "lock": "timed"}),
        };
        let v: Value = serde_json::from_str(&chrome_trace(&[&t])).unwrap();
        let evs = v["traceEvents"].as_array().unwrap();
        let on_gil: Vec<&Value> = evs.iter().filter(|e| e["tid"] == GIL_TID).collect();
        assert!(on_gil
            .iter()
            .any(|e| e["name"] == "thread_name" && e["args"]["name"] == "GIL idle while wanted"));
        let spans: Vec<(&str, f64)> = on_gil
            .iter()
            .filter(|e| e["ph"] == "B" || e["ph"] == "E")
            .map(|e| (e["ph"].as_str().unwrap(), e["ts"].as_f64().unwrap()))
            .collect();
        assert_eq!(spans, vec![("B", 100.0), ("E", 130.0)]);
        let m = &v["otherData"]["runs"][0]["idle_while_wanted"];
        assert!((m["share"].as_f64().unwrap() - 0.15).abs() < 1e-9, "{m}");
        assert_eq!(m["window_us"], json!([0.0, 200.0]));
        assert!(m["note"]
            .as_str()
            .unwrap()
            .contains("no events were dropped"));
    }

    #[test]
    fn a_bound_below_the_first_allocation_is_kept() {
        let mut b = TraceBuf::new(Instant::now(), 100);
        for _ in 0..1000 {
            b.push(Instant::now(), Ev::HoldBegin);
        }
        assert_eq!(b.len(), 100);
    }

    #[test]
    fn an_event_takes_8_bytes_and_the_buffer_no_more_than_its_bound() {
        assert_eq!(std::mem::size_of::<Packed>(), 8);
        let t = timeline(150_000, 100_000);
        let buf = &t.threads[0].buf;
        assert_eq!(buf.len(), 100_000);
        assert_eq!(buf.dropped, 50_000);
        // A doubling VecDeque would hold 131072 slots of 16 bytes.
        assert!(
            buf.allocated_bytes() <= 100_000 * 8 + 4096,
            "{}",
            buf.allocated_bytes()
        );
        let p = Packed::new(123_456_789, Ev::ForcedSwitch);
        assert_eq!((p.ns(), p.ev()), (123_456_789, Ev::ForcedSwitch));
    }

    #[test]
    fn the_trace_parses_with_gilbench_s_mark_first() {
        let t = timeline(1000, 100_000);
        let text = chrome_trace(&[&t]);
        assert!(text.starts_with("{\"otherData\":{"), "{}", &text[..40]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["otherData"]["gilbench"], env!("CARGO_PKG_VERSION"));
        let evs = v["traceEvents"].as_array().unwrap();
        assert!(evs.len() > 900);
        assert_eq!(
            evs.iter().filter(|e| e["ph"] == "B").count(),
            evs.iter().filter(|e| e["ph"] == "E").count()
        );
    }

    #[test]
    fn a_long_write_stops_soon_when_cancelled() {
        let t = timeline(1_000_000, 1_000_000);
        let asked = Cell::new(0);
        let mut out = Vec::new();
        let done = write_chrome_trace(&[&t], &mut out, &|| {
            asked.set(asked.get() + 1);
            asked.get() >= 3
        })
        .unwrap();
        assert!(!done);
        assert_eq!(asked.get(), 3);
        // Stopped after about 3 x POLL_EVERY events, not 1,000,000.
        assert!(out.len() < 4 * POLL_EVERY * 100, "{}", out.len());
    }
}
