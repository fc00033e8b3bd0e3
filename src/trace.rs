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
    pub end_ns: u64,
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
    let dropped: u64 = runs.iter().map(|r| r.dropped()).sum();
    let mut meta = json!({
        "gilbench": env!("CARGO_PKG_VERSION"),
        "runs": runs.iter().map(|r| { let mut m = r.meta.clone(); m["dropped_events"] = json!(r.dropped()); m }).collect::<Vec<_>>(),
        "dropped_events": dropped,
    });
    if let [one] = runs {
        meta["scenario"] = one.meta["scenario"].clone();
        meta["lock"] = one.meta["lock"].clone();
    }
    if dropped > 0 {
        meta["note"] = json!(format!("{dropped} older events were dropped to keep the buffers bounded; the timelines start late"));
    }
    write!(
        w,
        "{{\"otherData\":{meta},\"displayTimeUnit\":\"ns\",\"traceEvents\":["
    )?;
    let mut first = true;
    let mut sep = |w: &mut dyn Write| -> std::io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        first = false;
        Ok(())
    };
    let mut written = 0usize;
    for (p, run) in runs.iter().enumerate() {
        let pid = p + 1;
        let pname = format!(
            "{} {}",
            run.meta["scenario"].as_str().unwrap_or("?"),
            run.meta["lock"].as_str().unwrap_or("?")
        );
        sep(w)?;
        write!(
            w,
            "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{pid},\"args\":{{\"name\":{}}}}}",
            json!(pname)
        )?;
        for (t, th) in run.threads.iter().enumerate() {
            let tid = t + 1;
            sep(w)?;
            write!(w, "{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":{}}}}}", json!(th.name))?;
            sep(w)?;
            write!(w, "{{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"sort_index\":{tid}}}}}")?;
            let mut open: Vec<&'static str> = Vec::new();
            let mut last_ns = 0u64;
            for &e in &th.buf.events {
                written += 1;
                if written.is_multiple_of(POLL_EVERY) && cancelled() {
                    return Ok(false);
                }
                let ns = e.ns().max(last_ns);
                last_ns = ns;
                let ts = ns as f64 / 1000.0;
                match e.ev().span() {
                    Some((name, "B")) => {
                        open.push(name);
                        sep(w)?;
                        write!(w, "{{\"ph\":\"B\",\"name\":\"{name}\",\"pid\":{pid},\"tid\":{tid},\"ts\":{ts}}}")?;
                    }
                    Some((name, _)) => {
                        // Only close what this buffer saw open (the oldest events may be gone).
                        if open.last() == Some(&name) {
                            open.pop();
                            sep(w)?;
                            write!(w, "{{\"ph\":\"E\",\"name\":\"{name}\",\"pid\":{pid},\"tid\":{tid},\"ts\":{ts}}}")?;
                        }
                    }
                    None => {
                        let name = if e.ev() == Ev::DropRequest {
                            "drop request"
                        } else {
                            "forced switch"
                        };
                        sep(w)?;
                        write!(w, "{{\"ph\":\"i\",\"s\":\"t\",\"name\":\"{name}\",\"pid\":{pid},\"tid\":{tid},\"ts\":{ts}}}")?;
                    }
                }
            }
            let end = run.end_ns.max(last_ns) as f64 / 1000.0;
            while let Some(name) = open.pop() {
                sep(w)?;
                write!(
                    w,
                    "{{\"ph\":\"E\",\"name\":\"{name}\",\"pid\":{pid},\"tid\":{tid},\"ts\":{end}}}"
                )?;
            }
        }
    }
    w.write_all(b"]}")?;
    Ok(true)
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
            meta: json!({"scenario": "s", "lock": "timed"}),
        }
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
