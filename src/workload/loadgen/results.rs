//! What a run measured: the result, and the end of a run that fills it in (the last look at
//! connects in progress, requests still unanswered, the notes for the reader).

use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::conns::Link;
use super::requests::Inflight;
use super::sockets::{Sock, SockState};
use super::{Ending, Gen, LoadConfig, HELD_UP_NOTE};
use crate::metrics::{new_hist, record, Hist, Interval, IntervalHists};
use crate::workload::server::Transport;

/// What the load generator saw.
pub struct LoadResult {
    pub requests: u64,
    /// Requests that failed: unanswered within the timeout, or counted below.
    pub failed: u64,
    /// ... of them, lost when their connection broke or was closed (a reset, a wrong reply,
    /// a backlog past [`MAX_BACKLOG`](super::MAX_BACKLOG)) before their own deadline.
    pub lost: u64,
    /// ... of them, answered with a datagram that was not their reply.
    pub wrong: u64,
    /// Open loop: sends that went out more than [`LATE_AFTER`](super::LATE_AFTER) after their
    /// intended time.
    pub late: u64,
    pub bytes: u64,
    /// Round-trip latency (closed loop) or latency from the intended send time (open loop).
    pub latency: Hist,
    /// Actual minus intended send time (open loop).
    pub lateness: Hist,
    /// Length of the recorded window.
    pub measured_s: f64,
    /// Connection-level errors (resets, refused reconnects, corrupt replies).
    pub errors: u64,
    pub first_error: Option<String>,
    /// Latency per interval, if asked for.
    pub intervals: Vec<Interval>,
    interval_hists: Option<IntervalHists>,
    /// Why the run ended before its window did, other than the stop flag (every
    /// connection failed): its figures cover `measured_s` only.
    pub cut_short: Option<String>,
    /// Things the reader should know (connections that never opened, slow connecting).
    pub notes: Vec<String>,
    /// Requests still waiting for a reply when the run ended (not yet past the timeout): how
    /// many, for how long, and what held them up.
    pub unanswered: Option<String>,
    /// The longest the generator's own thread went without running, beyond the waits it
    /// asked for (a busy machine).
    pub held_up: Duration,
    /// Its hold-ups of [`HELD_UP_NOTE`] or more: when each began, how long it lasted.
    pub hold_ups: Vec<(Instant, Duration)>,
}

impl LoadResult {
    /// Nothing measured yet; requests intended from `measure_from` on are recorded.
    pub(super) fn empty(cfg: &LoadConfig, measure_from: Instant) -> Self {
        LoadResult {
            requests: 0,
            failed: 0,
            lost: 0,
            wrong: 0,
            late: 0,
            bytes: 0,
            latency: new_hist(),
            lateness: new_hist(),
            measured_s: 0.0,
            errors: 0,
            first_error: None,
            intervals: Vec::new(),
            interval_hists: cfg
                .intervals
                .map(|len| IntervalHists::new(measure_from, len, 1)),
            cut_short: None,
            notes: Vec::new(),
            unanswered: None,
            held_up: Duration::ZERO,
            hold_ups: Vec::new(),
        }
    }

    /// The note on the generator's longest hold-up, if it was long enough to matter and the
    /// run has figures it thinned (without any, `why_none_succeeded` names it).
    pub fn held_up_note(&self) -> Option<String> {
        (self.held_up >= HELD_UP_NOTE && self.requests > 0).then(|| {
            format!(
                "the load generator was {}; what it could not send or read meanwhile is missing from its figures",
                held_up(self.held_up)
            )
        })
    }

    /// Leaves out of the hold-ups the time `stopped(from, to)` says the whole process was
    /// stopped (SIGSTOP, a suspended machine): not a busy machine's doing, and said apart.
    pub fn leave_out_stops(&mut self, stopped: impl Fn(Instant, Instant) -> Duration) {
        for (at, len) in &mut self.hold_ups {
            *len = len.saturating_sub(stopped(*at, *at + *len));
        }
        if !self.hold_ups.is_empty() {
            self.held_up = self
                .hold_ups
                .iter()
                .map(|&(_, len)| len)
                .max()
                .unwrap_or_default();
        }
    }

    /// How the failed requests failed: "12 requests went unanswered (timeout 1s), 3 were
    /// lost with their connection, 1 got a wrong reply" (the parts there are).
    pub fn failures(&self, timeout: Duration) -> String {
        let timed_out = self.failed - self.lost - self.wrong;
        let mut parts = Vec::new();
        if timed_out > 0 {
            parts.push(format!(
                "{timed_out} requests went unanswered (timeout {})",
                crate::units::format_duration(timeout)
            ));
        }
        if self.lost > 0 {
            parts.push(format!("{} were lost with their connection", self.lost));
        }
        if self.wrong > 0 {
            parts.push(format!("{} got a wrong reply", self.wrong));
        }
        parts.join(", ")
    }

    /// Why no request succeeded, in a few words, for a run with `requests == 0`.
    pub fn why_none_succeeded(&self, timeout: Duration) -> String {
        let mut why = Vec::new();
        if self.failed > 0 {
            why.push(self.failures(timeout));
        }
        if let Some(e) = &self.first_error {
            why.push(format!("{} connection errors, the first: {e}", self.errors));
        }
        if let Some(c) = &self.cut_short {
            why.push(c.clone());
        }
        if let Some(u) = &self.unanswered {
            why.push(u.clone());
        }
        if self.held_up >= HELD_UP_NOTE {
            why.push(format!("the load generator was {}", held_up(self.held_up)));
        }
        if why.is_empty() {
            why.push(format!(
                "no reply arrived in the {:.2}s measured",
                self.measured_s
            ));
        }
        why.join("; ")
    }

    pub(super) fn record_latency(&mut self, now: Instant, d: Duration) {
        record(&mut self.latency, d);
        if let Some(iv) = &mut self.interval_hists {
            iv.record(now, 0, d);
        }
        self.requests += 1;
    }
}

/// The end of a run: the last look at connects in progress, the verdicts and notes.
impl Gen<'_> {
    /// What the run measured, once its loop has ended: the figures of its window, notes for
    /// the reader, or an error if no connection ever opened.
    pub(super) fn finish(mut self, ending: Ending) -> Result<LoadResult, String> {
        if ending == Ending::Window {
            self.last_look();
        }
        let now = Instant::now();
        if self.opened == 0 && ending != Ending::Stopped {
            return Err(self.why_no_connection(now));
        }
        let finished = now.min(self.win.end);
        self.res.measured_s = finished
            .saturating_duration_since(self.win.measure_from)
            .as_secs_f64();
        self.note_connections(ending, now);
        self.count_unanswered(now);
        // Without a success the run says it anyway (`why_none_succeeded`).
        if self.res.requests > 0 && self.res.lost + self.res.wrong > 0 {
            let how = self.res.failures(self.cfg.timeout);
            self.res.notes.push(format!("failed requests: {how}"));
        }
        self.res.held_up = self.pauses.longest;
        self.res.hold_ups = std::mem::take(&mut self.pauses.long);
        if let Some(iv) = self.res.interval_hists.take() {
            self.res.intervals = iv.finish(finished);
        }
        if let Some(over) = &self.cfg.window_over {
            over.store(true, Ordering::SeqCst);
        }
        self.close_politely();
        Ok(self.res)
    }

    /// Asks every connect still in progress where it stands. The loop ends as soon as the
    /// window is over, without a last poll: a connect that completed while the thread was
    /// held up (longer than a short run, on a busy machine) would otherwise count as failed.
    pub(super) fn last_look(&mut self) {
        for i in 0..self.conns.len() {
            if let Link::Connecting { .. } = self.conns[i].link {
                self.connecting(i);
            }
        }
    }

    /// Why no connection ever opened: the first error, or else no answer in time, with what
    /// TCP says about the attempts still in progress.
    pub(super) fn why_no_connection(&self, now: Instant) -> String {
        if let Some(e) = &self.connect_error {
            return e.clone();
        }
        let mut msg = format!(
            "cannot connect to {}: no answer (timed out after {:.1}s)",
            self.cfg.targets[0],
            now.duration_since(self.win.start).as_secs_f64()
        );
        let resent: u32 = self
            .conns
            .iter()
            .filter_map(|c| c.sock.as_ref())
            .map(|s| SockState::of(s).resent)
            .sum();
        if resent > 0 {
            msg.push_str(&format!(
                "; TCP resent its connection requests {} without an answer (lost, or the server's listen queue is full)",
                times(resent)
            ));
        }
        if self.pauses.longest >= HELD_UP_NOTE {
            msg.push_str(&format!(
                "; the load generator was {}",
                held_up(self.pauses.longest)
            ));
        }
        msg
    }

    /// Notes on connections: every one failed before the end, some never opened, or opening
    /// them all ate into the measured window.
    pub(super) fn note_connections(&mut self, ending: Ending, now: Instant) {
        if ending == Ending::AllDown {
            self.res.cut_short = Some(format!(
                "the load run ended {:.2}s into its {:.2}s: every connection had failed",
                now.duration_since(self.win.start).as_secs_f64(),
                (self.cfg.warmup + self.cfg.duration).as_secs_f64()
            ));
        }
        let never = self.conns.iter().filter(|c| !c.ever_open).count();
        if never > 0 && ending != Ending::AllDown {
            let why = self
                .connect_error
                .clone()
                .unwrap_or_else(|| "still connecting when the run ended".to_owned());
            self.res.notes.push(format!(
                "{never} of {} connections never opened ({why})",
                self.conns.len()
            ));
        }
        if let Some(t) = self.all_open_at {
            let late = t.saturating_duration_since(self.win.measure_from);
            if late > Duration::from_millis(1) {
                self.res.notes.push(format!(
                    "opening the {} connections took {:.3}s, {:.3}s past the warm-up: the measured window began with fewer connections",
                    self.conns.len(),
                    t.duration_since(self.win.start).as_secs_f64(),
                    late.as_secs_f64()
                ));
            }
        }
    }

    /// Requests still outstanding at the end: those of the window older than the timeout
    /// have failed; the others are described in `unanswered`.
    pub(super) fn count_unanswered(&mut self, now: Instant) {
        let timeout = self.cfg.timeout;
        let (mut waiting, mut oldest) = (0u64, Duration::ZERO);
        let (mut unread, mut resent, mut partial) = (false, 0u32, 0usize);
        for c in &self.conns {
            let age = |r: &Inflight| now.saturating_duration_since(r.intended);
            let waiting_on = || c.inflight.iter().filter(|r| !r.expired);
            self.res.failed += waiting_on()
                .filter(|r| r.recorded(self.win.measure_from) && age(r) > timeout)
                .count() as u64;
            let young: Vec<Duration> = waiting_on().map(age).filter(|&a| a <= timeout).collect();
            let Some(&max) = young.iter().max() else {
                continue;
            };
            waiting += young.len() as u64;
            oldest = oldest.max(max);
            partial = partial.max(c.rx.len() % self.cfg.request_bytes.max(1));
            let st = c.sock.as_ref().map(SockState::of).unwrap_or_default();
            unread |= st.unread > 0;
            resent += st.resent;
        }
        if waiting == 0 {
            return;
        }
        let why = if partial > 0 {
            format!(
                "only part of a reply had arrived ({partial} of {} bytes): the server answered short, or with something else",
                self.cfg.request_bytes
            )
        } else if unread && self.pauses.longest >= HELD_UP_NOTE {
            "replies had arrived that the load generator had not read".to_owned()
        } else if unread {
            "a reply arrived as the run ended".to_owned()
        } else if resent > 0 {
            format!("TCP had resent packets {}: some were lost", times(resent))
        } else if self.cfg.transport == Transport::Udp {
            "the server had not answered (or the datagrams were lost)".to_owned()
        } else {
            "the server had not answered".to_owned()
        };
        let said = format!(
            "{waiting} request{} still waited for a reply when the run ended, the oldest for {:.3}s (timeout {}): {why}",
            if waiting == 1 { "" } else { "s" },
            oldest.as_secs_f64(),
            crate::units::format_duration(timeout)
        );
        // Neither answered nor failed, they are in no figure. A closed loop always ends with
        // its requests in flight, one per connection; an open loop's show how far the server
        // had fallen behind. (With no request answered, the run says it anyway.)
        if self.cfg.rate > 0.0 && self.res.requests > 0 {
            self.res.notes.push(said.clone());
        }
        self.res.unanswered = Some(said);
    }

    /// Half-closes every open TCP connection and reads what is still on its way (for up to
    /// 100 ms in all), so that closing does not reset a server that is still answering.
    pub(super) fn close_politely(&mut self) {
        let until = Instant::now() + Duration::from_millis(100);
        for c in &mut self.conns {
            if c.link != Link::Open {
                continue;
            }
            let Some(Sock::Tcp(t)) = &mut c.sock else {
                continue;
            };
            if t.shutdown(std::net::Shutdown::Write).is_err() {
                continue;
            }
            while Instant::now() < until {
                match t.read(&mut self.rxbuf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_micros(200))
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
    }
}

/// "once", "twice", "3 times".
pub(super) fn times(n: u32) -> String {
    match n {
        1 => "once".into(),
        2 => "twice".into(),
        n => format!("{n} times"),
    }
}

/// "held up for up to 108 ms at a time (...)": how long the generator went without running.
pub(super) fn held_up(d: Duration) -> String {
    format!(
        "held up for up to {:.0} ms at a time (no CPU for it: the machine is busy)",
        d.as_secs_f64() * 1e3
    )
}
