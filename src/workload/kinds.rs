//! The plain choices a scenario makes about the work: the transport, how a server is
//! written, and a fault to inject. They live here, in the lowest layer that acts on them, so
//! that the scenario (above) imports them from the workload and nothing in the workload, the
//! interpreter or the GIL imports the scenario.

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(Transport::Tcp),
            "udp" => Ok(Transport::Udp),
            o => Err(format!("'{o}' is not tcp or udp")),
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        })
    }
}

/// How a server is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// One thread: poll, then recv, then send (three releases per request).
    #[default]
    Poll,
    /// Blocking sockets, a thread per connection: recv, then send (two releases).
    Threaded,
}

impl std::str::FromStr for ServerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "poll" => Ok(ServerKind::Poll),
            "threaded" => Ok(ServerKind::Threaded),
            o => Err(format!("'{o}' is not poll or threaded")),
        }
    }
}

impl std::fmt::Display for ServerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServerKind::Poll => "poll",
            ServerKind::Threaded => "threaded",
        })
    }
}

/// Deliberate faults, to check that a broken thread cannot hang a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `cpu-0` panics while it holds the GIL.
    PanicHoldingGil,
    /// `cpu-0` panics inside native work, with the GIL released.
    PanicReleased,
    /// `cpu-0` stops making progress while it holds the GIL (for the watchdog).
    HangHoldingGil,
}
