//! The requests: their bytes, sending them, reading and matching the replies, and the
//! requests past their deadline.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Instant;

use super::conns::Link;
use super::sockets::{describe, write_pending, Sock};
use super::{Gen, MAX_BACKLOG, MAX_INFLIGHT};

pub(super) struct Inflight {
    pub(super) seq: u64,
    pub(super) intended: Instant,
    /// Its deadline passed and it was counted as failed; a TCP request stays in the queue
    /// until its reply, read and dropped, has gone by.
    pub(super) expired: bool,
}

impl Inflight {
    /// Counted in the measured window (sent after the warm-up).
    pub(super) fn recorded(&self, measure_from: Instant) -> bool {
        self.intended >= measure_from
    }
}

/// Byte `i` of request `seq`: its sequence number, then a pattern derived from it.
#[inline]
pub(super) fn payload_byte(seq: u64, i: usize) -> u8 {
    if i < 8 {
        seq.to_le_bytes()[i]
    } else {
        (seq as u8).wrapping_add(i as u8)
    }
}

pub(super) fn payload(seq: u64, len: usize, out: &mut Vec<u8>) {
    out.extend((0..len).map(|i| payload_byte(seq, i)));
}

/// The reply is, byte for byte, request `seq` of `len` bytes.
pub(super) fn is_reply_to(reply: &[u8], seq: u64, len: usize) -> bool {
    reply.len() == len
        && reply
            .iter()
            .enumerate()
            .all(|(i, &b)| b == payload_byte(seq, i))
}

pub(super) fn seq_of(reply: &[u8]) -> Option<u64> {
    reply
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

impl Gen<'_> {
    pub(super) fn send(&mut self, i: usize, intended: Instant) {
        if self.conns[i].link != Link::Open {
            return;
        }
        let seq = self.seq;
        self.seq += 1;
        let len = self.cfg.request_bytes;
        let c = &mut self.conns[i];
        c.inflight.push_back(Inflight {
            seq,
            intended,
            expired: false,
        });
        let mut err = None;
        match &mut c.sock {
            Some(Sock::Tcp(t)) => {
                payload(seq, len, &mut c.tx);
                if let Err(e) = write_pending(t, &mut c.tx) {
                    err = Some(describe(c.target, &e));
                }
            }
            Some(Sock::Udp(u)) => {
                self.buf.clear();
                payload(seq, len, &mut self.buf);
                if let Err(e) = u.send(&self.buf) {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        err = Some(describe(c.target, &e));
                    }
                }
            }
            None => {}
        }
        if let Some(e) = err {
            self.replace(i, Some(e));
        } else if self.conns[i].tx.len() > MAX_BACKLOG
            || self.conns[i].inflight.len() > MAX_INFLIGHT
        {
            self.replace(i, Some(backlog_error(self.conns[i].target)));
        }
    }

    /// Reads everything connection `i` has (until the socket would block: its readiness is
    /// edge-triggered), then, in the closed loop, sends one request per reply.
    pub(super) fn receive(&mut self, i: usize) {
        let got = match &self.conns[i].sock {
            Some(Sock::Tcp(_)) => self.receive_tcp(i),
            Some(Sock::Udp(_)) => self.receive_udp(i),
            None => Ok(0),
        };
        match got {
            Err(e) => self.replace(i, Some(e)),
            Ok(done) if self.closed_loop() => {
                for _ in 0..done {
                    self.send(i, Instant::now());
                }
            }
            Ok(_) => {}
        }
    }

    /// Reads a TCP connection until it would block; returns how many replies completed.
    pub(super) fn receive_tcp(&mut self, i: usize) -> Result<u64, String> {
        let mut done = 0;
        loop {
            let c = &mut self.conns[i];
            let Some(Sock::Tcp(t)) = &mut c.sock else {
                return Ok(done);
            };
            // Read into the reusable scratch buffer, keep only what arrived.
            let n = match t.read(&mut self.rxbuf) {
                Ok(0) => return Err(format!("{}: the server closed the connection", c.target)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(done),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(describe(c.target, &e)),
            };
            c.rx.extend_from_slice(&self.rxbuf[..n]);
            done += self.take_replies(i, Instant::now())?;
        }
    }

    /// Takes the complete replies off the front of connection `i`'s received bytes, each
    /// checked against the oldest request in flight; returns how many there were.
    pub(super) fn take_replies(&mut self, i: usize, now: Instant) -> Result<u64, String> {
        let len = self.cfg.request_bytes;
        let c = &mut self.conns[i];
        let (mut consumed, mut done, mut err) = (0, 0, None);
        while c.rx.len() - consumed >= len {
            let reply = &c.rx[consumed..consumed + len];
            consumed += len;
            let Some(req) = c.inflight.pop_front() else {
                err = Some(format!("{}: a reply nobody asked for", c.target));
                break;
            };
            if !is_reply_to(reply, req.seq, len) {
                c.inflight.push_front(req);
                err = Some(format!(
                    "{}: a reply that does not match its request",
                    c.target
                ));
                break;
            }
            // Bytes, as requests, count only in the measured window; a reply after its
            // request's deadline only makes way for the next one.
            if !req.expired && req.recorded(self.win.measure_from) {
                self.res.bytes += len as u64;
                self.res.record_latency(now, now - req.intended);
            }
            done += 1;
        }
        c.rx.drain(..consumed);
        err.map_or(Ok(done), Err)
    }

    /// Reads a UDP socket until it would block; returns how many replies completed. A
    /// datagram that answers no request in flight is ignored (its request was given up on);
    /// one that does not match its request fails that request only.
    pub(super) fn receive_udp(&mut self, i: usize) -> Result<u64, String> {
        let len = self.cfg.request_bytes;
        let mut done = 0;
        loop {
            let c = &mut self.conns[i];
            let Some(Sock::Udp(u)) = &mut c.sock else {
                return Ok(done);
            };
            let n = match u.recv(&mut self.rxbuf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(done),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(describe(c.target, &e)),
            };
            let now = Instant::now();
            let reply = &self.rxbuf[..n];
            let seq = seq_of(reply);
            let Some(pos) = c.inflight.iter().position(|r| Some(r.seq) == seq) else {
                continue;
            };
            let req = c.inflight.remove(pos).expect("position is valid");
            let recorded = req.recorded(self.win.measure_from);
            if !is_reply_to(reply, req.seq, len) {
                // The datagram stands alone: the request failed, the socket is fine.
                self.res.failed += u64::from(recorded);
                self.res.wrong += u64::from(recorded);
                let msg = format!("{}: a reply that does not match its request", c.target);
                self.fail(msg);
                if self.closed_loop() {
                    self.to_send.push(i);
                }
                continue;
            }
            if recorded {
                self.res.bytes += n as u64;
                self.res.record_latency(now, now - req.intended);
            }
            done += 1;
        }
    }

    /// Writes what connection `i` could not send at once.
    pub(super) fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let mut err = None;
        if let Some(Sock::Tcp(t)) = &mut c.sock {
            if let Err(e) = write_pending(t, &mut c.tx) {
                err = Some(describe(c.target, &e));
            }
        }
        if let Some(e) = err {
            self.replace(i, Some(e));
        }
    }
}

/// Requests past their deadline.
impl Gen<'_> {
    /// Counts the requests of connection `i` whose deadline has passed as failed, each once.
    /// A UDP request leaves the queue (a late datagram answers nothing and is ignored); a TCP
    /// one stays, expired, for its reply to be read and dropped in turn. The closed loop
    /// then needs a new request: on UDP it is sent at once; a TCP connection, whose only
    /// request has expired, is replaced (nothing else is lost with it).
    pub(super) fn expire(&mut self, i: usize, now: Instant) {
        let (timeout, from) = (self.cfg.timeout, self.win.measure_from);
        let closed_loop = self.closed_loop();
        let c = &mut self.conns[i];
        let mut expired = 0;
        for r in c.inflight.iter_mut().filter(|r| !r.expired) {
            // Requests go out in the order they were due: the rest are younger.
            if now.saturating_duration_since(r.intended) <= timeout {
                break;
            }
            r.expired = true;
            expired += 1;
            self.res.failed += u64::from(r.recorded(from));
        }
        if expired == 0 {
            return;
        }
        match c.sock {
            Some(Sock::Udp(_)) => {
                c.inflight.retain(|r| !r.expired);
                if closed_loop {
                    self.to_send.push(i);
                }
            }
            _ if closed_loop => self.replace(i, None),
            _ => {}
        }
    }
}

/// The error for a connection whose server stopped reading or answering.
pub(super) fn backlog_error(target: SocketAddr) -> String {
    format!(
        "{target}: the server stopped reading or answering (over {} MiB of requests unsent or {MAX_INFLIGHT} unanswered); connection replaced",
        MAX_BACKLOG >> 20
    )
}
