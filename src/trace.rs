//! The GIL timeline behind `--trace`: per-thread bounded event buffers, filled by the
//! interpreter threads at take/release (never per tick), written as Chrome trace-event JSON
//! that Perfetto and chrome://tracing load.
//!
//! Spans per thread: *wants GIL* (asked .. got), *holds GIL* (got .. release), *released*
//! (blocking or native work, release .. asks again); instants: *drop request* (the holder's
//! eval-breaker saw one) and *forced switch* (the holder dropped because of it).

use std::collections::VecDeque;
use std::time::Instant;

use serde_json::{json, Value};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// One thread's events, the newest `capacity` kept.
#[derive(Clone, Debug)]
pub struct TraceBuf {
    epoch: Instant,
    capacity: usize,
    events: VecDeque<(u64, Ev)>,
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
        if self.events.len() == self.capacity {
            self.events.pop_front();
            self.dropped += 1;
        }
        let ns = at.saturating_duration_since(self.epoch).as_nanos() as u64;
        self.events.push_back((ns, ev));
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

/// Writes timelines as one trace-event JSON document, each run as its own process (pid) in
/// the viewer. B/E spans are paired per thread: a span cut off by the bounded buffer at the
/// start is dropped, one still open at the end is closed at the run's end. Written straight
/// into text, since traces run to millions of events.
pub fn chrome_trace(runs: &[&Timeline]) -> String {
    use std::fmt::Write;
    let mut o = String::with_capacity(
        runs.iter()
            .map(|r| r.threads.iter().map(|t| t.buf.events.len()).sum::<usize>())
            .sum::<usize>()
            * 72
            + 1024,
    );
    o.push_str("{\"traceEvents\":[");
    let mut first = true;
    let mut sep = |o: &mut String| {
        if !first {
            o.push(',');
        }
        first = false;
    };
    for (p, run) in runs.iter().enumerate() {
        let pid = p + 1;
        let pname = format!(
            "{} {}",
            run.meta["scenario"].as_str().unwrap_or("?"),
            run.meta["lock"].as_str().unwrap_or("?")
        );
        sep(&mut o);
        let _ = write!(
            o,
            "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{pid},\"args\":{{\"name\":{}}}}}",
            json!(pname)
        );
        for (t, th) in run.threads.iter().enumerate() {
            let tid = t + 1;
            sep(&mut o);
            let _ = write!(o, "{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"name\":{}}}}}", json!(th.name));
            sep(&mut o);
            let _ = write!(o, "{{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"sort_index\":{tid}}}}}");
            let mut open: Vec<&'static str> = Vec::new();
            let mut last_ns = 0u64;
            for &(ns, ev) in &th.buf.events {
                let ns = ns.max(last_ns);
                last_ns = ns;
                let ts = ns as f64 / 1000.0;
                match ev.span() {
                    Some((name, "B")) => {
                        open.push(name);
                        sep(&mut o);
                        let _ = write!(o, "{{\"ph\":\"B\",\"name\":\"{name}\",\"pid\":{pid},\"tid\":{tid},\"ts\":{ts}}}");
                    }
                    Some((name, _)) => {
                        // Only close what this buffer saw open (the oldest events may be gone).
                        if open.last() == Some(&name) {
                            open.pop();
                            sep(&mut o);
                            let _ = write!(o, "{{\"ph\":\"E\",\"name\":\"{name}\",\"pid\":{pid},\"tid\":{tid},\"ts\":{ts}}}");
                        }
                    }
                    None => {
                        let name = if ev == Ev::DropRequest {
                            "drop request"
                        } else {
                            "forced switch"
                        };
                        sep(&mut o);
                        let _ = write!(o, "{{\"ph\":\"i\",\"s\":\"t\",\"name\":\"{name}\",\"pid\":{pid},\"tid\":{tid},\"ts\":{ts}}}");
                    }
                }
            }
            let end = run.end_ns.max(last_ns) as f64 / 1000.0;
            while let Some(name) = open.pop() {
                sep(&mut o);
                let _ = write!(
                    o,
                    "{{\"ph\":\"E\",\"name\":\"{name}\",\"pid\":{pid},\"tid\":{tid},\"ts\":{end}}}"
                );
            }
        }
    }
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
    let _ = write!(o, "],\"displayTimeUnit\":\"ns\",\"otherData\":{meta}}}");
    o
}
