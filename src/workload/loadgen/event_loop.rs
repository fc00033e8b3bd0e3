//! The loop that drives both the closed and the open loop: what is due, then a poll and the
//! events it reports.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::conns::Link;
use super::sockets::{set_timer_slack, TIMER};
use super::{Ending, Gen, LATE_AFTER, RECHECK_CONNECTS, SCAN_EVERY, SPIN_WINDOW};
use crate::metrics::record;

/// The loop: what is due, then a poll and the events it reports.
impl Gen<'_> {
    /// Turns the loop until the window is over, `stop` is set or every connection is down.
    pub(super) fn drive(&mut self, stop: &AtomicBool) -> Result<Ending, String> {
        set_timer_slack();
        loop {
            if let Some(ending) = self.step(stop)? {
                return Ok(ending);
            }
        }
    }

    /// One turn: the sends that are due, the periodic scan, first requests on connections
    /// that just opened, then one poll and its events. `Some` when the run is over.
    pub(super) fn step(&mut self, stop: &AtomicBool) -> Result<Option<Ending>, String> {
        let now = Instant::now();
        self.pauses.back(now);
        if now >= self.win.end {
            return Ok(Some(Ending::Window));
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(Some(Ending::Stopped));
        }
        self.send_due(now);
        if now.duration_since(self.last_scan) >= SCAN_EVERY {
            self.last_scan = now;
            let recheck = now.duration_since(self.last_recheck) >= RECHECK_CONNECTS;
            if recheck {
                self.last_recheck = now;
            }
            self.scan(now, recheck);
        }
        self.send_first_requests();
        if self.down == self.conns.len() {
            return Ok(Some(Ending::AllDown));
        }
        let (timeout, back_within) = self.wait();
        self.pauses.expect_back_within(back_within);
        self.poll_events(timeout)?;
        Ok(None)
    }

    /// Open loop: sends every request that is due, each on the next open connection in
    /// turn, and records how late it went out.
    pub(super) fn send_due(&mut self, now: Instant) {
        let Some(mut p) = self.pacer else {
            return;
        };
        let n = self.conns.len();
        while p.next_send <= now {
            let Some(i) = (0..n)
                .map(|k| (p.rr + k) % n)
                .find(|&i| self.conns[i].link == Link::Open)
            else {
                break;
            };
            p.rr = i + 1;
            let sent = Instant::now();
            self.send(i, p.next_send);
            let late = sent.saturating_duration_since(p.next_send);
            if p.next_send >= self.win.measure_from {
                record(&mut self.res.lateness, late);
                if late > LATE_AFTER {
                    self.res.late += 1;
                }
            }
            p.next_send += p.period;
        }
        self.pacer = Some(p);
    }

    /// Closed loop: a first request on each connection that just opened.
    pub(super) fn send_first_requests(&mut self) {
        for i in std::mem::take(&mut self.to_send) {
            if self.conns[i].link == Link::Open && self.conns[i].inflight.is_empty() {
                self.send(i, Instant::now());
            }
        }
    }

    /// How long the next poll may wait, and how soon the thread is due back: closed loop, a
    /// few milliseconds (nothing, spinning on a core of its own, so that its own wake-up
    /// latency stays out of the round trip); open loop, until the next send is due.
    pub(super) fn wait(&mut self) -> (Duration, Duration) {
        let Some(p) = &self.pacer else {
            let w = if self.cfg.busy_wait {
                Duration::ZERO
            } else {
                Duration::from_millis(5)
            };
            return (w, w);
        };
        let until = p.next_send.saturating_duration_since(Instant::now());
        let sleep = if self.cfg.busy_wait {
            until.saturating_sub(SPIN_WINDOW)
        } else {
            until
        };
        if sleep.is_zero() {
            return (Duration::ZERO, Duration::ZERO);
        }
        // epoll's timeout counts whole milliseconds; a timerfd wakes the poll at the intended
        // send time to the microsecond.
        self.timer.arm(sleep);
        (Duration::from_millis(50), sleep)
    }

    /// One poll of at most `timeout`, and what it reports.
    pub(super) fn poll_events(&mut self, timeout: Duration) -> Result<(), String> {
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(format!("poll failed: {e}"));
            }
        }
        let ready: Vec<(usize, bool, bool)> = self
            .events
            .iter()
            .map(|e| {
                (
                    e.token().0,
                    e.is_readable() || e.is_read_closed() || e.is_error(),
                    e.is_writable(),
                )
            })
            .collect();
        for (i, readable, writable) in ready {
            if i == TIMER.0 {
                self.timer.clear();
            } else if i < self.conns.len() {
                self.on_event(i, readable, writable);
            }
        }
        Ok(())
    }

    /// Readiness of connection `i`. Events are edge-triggered: each one is acted on in full
    /// (a socket read until it would block, pending bytes written), since the same readiness
    /// is never reported again. A connect that completes on an event that also says
    /// readable is read at once.
    pub(super) fn on_event(&mut self, i: usize, readable: bool, writable: bool) {
        if let Link::Connecting { .. } = self.conns[i].link {
            self.connecting(i);
        }
        if self.conns[i].link == Link::Open && writable {
            self.flush(i);
        }
        if self.conns[i].link == Link::Open && readable {
            self.receive(i);
        }
    }
}
