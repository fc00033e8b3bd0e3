//! The connections: where each stands (down, connecting, open), opening, closing and
//! replacing them, and the periodic scan for timeouts and reconnects.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::requests::Inflight;
use super::sockets::{connect_done, describe_connect, start_open, Sock};
use super::{Gen, CONNECT_TIMEOUT, RETRY_AFTER};

/// Where a connection stands.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    /// No socket: opened again from `since + RETRY_AFTER` on.
    Down {
        since: Instant,
    },
    /// A TCP connect in progress since `since`.
    Connecting {
        since: Instant,
    },
    Open,
}

pub(super) struct Conn {
    pub(super) target: SocketAddr,
    pub(super) sock: Option<Sock>,
    pub(super) link: Link,
    /// It has been open at least once.
    pub(super) ever_open: bool,
    pub(super) inflight: VecDeque<Inflight>,
    pub(super) rx: Vec<u8>,
    pub(super) tx: Vec<u8>,
}

impl Conn {
    pub(super) fn new(target: SocketAddr, since: Instant) -> Self {
        Conn {
            target,
            sock: None,
            link: Link::Down { since },
            ever_open: false,
            inflight: VecDeque::new(),
            rx: Vec::new(),
            tx: Vec::new(),
        }
    }
}

impl Gen<'_> {
    pub(super) fn set_link(&mut self, i: usize, link: Link) {
        let was_down = matches!(self.conns[i].link, Link::Down { .. });
        let is_down = matches!(link, Link::Down { .. });
        match (was_down, is_down) {
            (false, true) => self.down += 1,
            (true, false) => self.down -= 1,
            _ => {}
        }
        self.conns[i].link = link;
    }

    /// Closes connection `i` (`why` it broke, if it did): its recorded requests still within
    /// their deadline are lost with it (those past it were counted as they expired).
    pub(super) fn close(&mut self, i: usize, why: Option<String>) {
        if let Some(w) = why {
            self.fail(w);
        }
        let from = self.win.measure_from;
        let lost = self.conns[i]
            .inflight
            .iter()
            .filter(|r| !r.expired && r.recorded(from))
            .count() as u64;
        self.res.failed += lost;
        self.res.lost += lost;
        let c = &mut self.conns[i];
        c.inflight.clear();
        c.rx.clear();
        c.tx.clear();
        if let Some(mut s) = c.sock.take() {
            let _ = match &mut s {
                Sock::Tcp(t) => self.poll.registry().deregister(t),
                Sock::Udp(u) => self.poll.registry().deregister(u),
            };
        }
        self.set_link(
            i,
            Link::Down {
                since: Instant::now(),
            },
        );
    }

    /// Starts every connect at once, without waiting for any (a stop is seen every 64).
    pub(super) fn open_all(&mut self, stop: &AtomicBool) {
        for i in 0..self.conns.len() {
            if i % 64 == 0 && stop.load(Ordering::Relaxed) {
                break;
            }
            self.open(i);
        }
        self.pauses.expect_back_within(Duration::ZERO);
    }

    /// Starts opening connection `i` (which is down).
    pub(super) fn open(&mut self, i: usize) {
        let target = self.conns[i].target;
        let opened = start_open(self.cfg.transport, target).and_then(|(mut s, ready)| {
            let r = self.poll.registry();
            match &mut s {
                Sock::Tcp(t) => r.register(t, Token(i), Interest::READABLE | Interest::WRITABLE),
                Sock::Udp(u) => r.register(u, Token(i), Interest::READABLE),
            }?;
            Ok((s, ready))
        });
        match opened {
            Ok((s, ready)) => {
                self.conns[i].sock = Some(s);
                if ready {
                    self.now_open(i);
                } else {
                    self.set_link(
                        i,
                        Link::Connecting {
                            since: Instant::now(),
                        },
                    );
                }
            }
            Err(e) => self.connect_failed(i, &e),
        }
    }

    pub(super) fn connect_failed(&mut self, i: usize, e: &io::Error) {
        let msg = format!(
            "cannot connect to {}",
            describe_connect(self.conns[i].target, e)
        );
        self.connect_error.get_or_insert_with(|| msg.clone());
        self.close(i, Some(msg));
    }

    pub(super) fn now_open(&mut self, i: usize) {
        self.set_link(i, Link::Open);
        self.opened += 1;
        if !self.conns[i].ever_open {
            self.conns[i].ever_open = true;
            self.first_opens += 1;
            if self.first_opens == self.conns.len() {
                self.all_open_at = Some(Instant::now());
            }
        }
        if self.closed_loop() {
            self.to_send.push(i);
        }
    }

    /// Asks connection `i`, whose connect is in progress, where it stands.
    pub(super) fn connecting(&mut self, i: usize) {
        let Some(Sock::Tcp(t)) = &self.conns[i].sock else {
            return;
        };
        match connect_done(t) {
            Ok(true) => self.now_open(i),
            Ok(false) => {}
            Err(e) => self.connect_failed(i, &e),
        }
    }

    /// Counts a connection's outstanding requests as failed and opens a new connection.
    pub(super) fn replace(&mut self, i: usize, why: Option<String>) {
        self.close(i, why);
        self.open(i);
    }

    /// Gives up on requests older than the timeout (see [`Gen::expire`]), on connects older
    /// than [`CONNECT_TIMEOUT`], and reopens connections that have been down for
    /// [`RETRY_AFTER`]. With `recheck`, also asks every connect in progress where it stands,
    /// so none waits for ever on an edge it missed (two system calls each, hence not at
    /// every scan).
    pub(super) fn scan(&mut self, now: Instant, recheck: bool) {
        for i in 0..self.conns.len() {
            match self.conns[i].link {
                Link::Open => self.expire(i, now),
                Link::Connecting { since } => {
                    if recheck {
                        self.connecting(i);
                    }
                    if self.conns[i].link == (Link::Connecting { since })
                        && now.saturating_duration_since(since) > CONNECT_TIMEOUT
                    {
                        self.connect_failed(i, &io::ErrorKind::TimedOut.into());
                    }
                }
                Link::Down { since } => {
                    if now.saturating_duration_since(since) >= RETRY_AFTER {
                        self.open(i);
                    }
                }
            }
        }
    }
}
