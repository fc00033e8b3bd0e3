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
pub struct ThreadTrace {
    pub name: String,
    pub buf: TraceBuf,
}

/// Builds the trace-event JSON: B/E spans paired per thread (a span cut off by the bounded
/// buffer at the start is dropped; one still open at the end is closed at `end_ns`).
pub fn chrome_trace(threads: &[ThreadTrace], end_ns: u64, meta: Value) -> Value {
    let mut out = Vec::new();
    let mut dropped = 0;
    for (tid, t) in threads.iter().enumerate() {
        let tid = tid + 1;
        dropped += t.buf.dropped;
        out.push(json!({"ph": "M", "name": "thread_name", "pid": 1, "tid": tid, "args": {"name": t.name}}));
        out.push(json!({"ph": "M", "name": "thread_sort_index", "pid": 1, "tid": tid, "args": {"sort_index": tid}}));
        let mut open: Vec<&'static str> = Vec::new();
        let mut last_ns = 0u64;
        for &(ns, ev) in &t.buf.events {
            let ns = ns.max(last_ns);
            last_ns = ns;
            let ts = ns as f64 / 1000.0;
            match ev.span() {
                Some((name, "B")) => {
                    open.push(name);
                    out.push(json!({"ph": "B", "name": name, "pid": 1, "tid": tid, "ts": ts}));
                }
                Some((name, _)) => {
                    // Only close what this buffer saw open (the oldest events may be gone).
                    if open.last() == Some(&name) {
                        open.pop();
                        out.push(json!({"ph": "E", "name": name, "pid": 1, "tid": tid, "ts": ts}));
                    }
                }
                None => {
                    let name = if ev == Ev::DropRequest {
                        "drop request"
                    } else {
                        "forced switch"
                    };
                    out.push(
                        json!({"ph": "i", "s": "t", "name": name, "pid": 1, "tid": tid, "ts": ts}),
                    );
                }
            }
        }
        let end = (end_ns.max(last_ns)) as f64 / 1000.0;
        while let Some(name) = open.pop() {
            out.push(json!({"ph": "E", "name": name, "pid": 1, "tid": tid, "ts": end}));
        }
    }
    let mut meta = meta;
    meta["dropped_events"] = json!(dropped);
    if dropped > 0 {
        meta["note"] = json!(format!("{dropped} older events were dropped to keep the buffers bounded; the timeline starts late"));
    }
    json!({"traceEvents": out, "displayTimeUnit": "ns", "otherData": meta})
}
