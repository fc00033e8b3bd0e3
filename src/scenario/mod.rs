//! Scenario files (TOML, one flat table) and the overrides that the command line applies to
//! them (`--set KEY=VALUE` and the dedicated flags). Every key goes through one setter, so a
//! value is checked the same way wherever it comes from, and every error names the key and
//! where it was written.

mod keys;

pub use keys::{cli_value, parse_locks, split_sweep, Setter, KEYS};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use toml::Value;

use crate::gil::{default_allotments, GilParams, LockKind};
use crate::pin::PinMode;
use crate::units::format_duration;
use crate::workload::server::Transport;
use std::net::IpAddr;

/// Most interpreter threads of one kind a run may have.
pub const MAX_THREADS: u64 = 1024;

/// What each CPU-bound thread does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CpuWork {
    /// Hash tick by tick with the GIL held (pure-Python-like).
    CpuHash,
    /// Hash large buffers with the GIL released around each (as hashlib does).
    HashNogil,
}

/// The socket workload, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IoWork {
    None,
    /// Echo server threads, driven by the load generator.
    Echo,
    /// One thread receiving a bulk transfer.
    Bulk,
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

/// A fully resolved scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Where the scenario came from (a file path), for messages.
    pub source: String,
    pub lock: LockKind,
    pub duration: Duration,
    pub pin: PinMode,
    pub cpu_threads: usize,
    pub cpu_work: CpuWork,
    pub tick_bytes: usize,
    pub buffer_bytes: usize,
    pub call_work: Duration,
    pub gil: GilParams,
    pub fault: Option<Fault>,
    /// fifo/mlfq spin before parking; None = auto.
    pub spin: Option<Duration>,
    pub record: bool,
    pub watchdog: Watchdog,
    /// The designs `compare` runs when `--locks` is not given.
    pub compare_locks: Vec<LockKind>,
    /// The `KEY=V1,V2,...` that `sweep` runs when no `--set` has several values.
    pub sweep: Option<String>,
    pub io: IoWork,
    pub io_threads: usize,
    pub transport: Transport,
    pub request_bytes: usize,
    pub work_ticks: u64,
    pub connections: usize,
    /// Open-loop requests/s; 0 means closed loop.
    pub rate: f64,
    pub warmup: Duration,
    pub timeout: Duration,
    pub max_request_bytes: usize,
    pub max_connections: usize,
    pub bulk_mib: u64,
    pub recv_bytes: usize,
    pub listen: IpAddr,
    pub port: u16,
    levels: Option<usize>,
    allotments_set: bool,
    /// Where each key was last set, for error messages.
    origin: BTreeMap<&'static str, String>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "scenario".into(),
            description: String::new(),
            source: "<defaults>".into(),
            lock: LockKind::Timed,
            duration: Duration::from_secs(3),
            pin: PinMode::Spread,
            cpu_threads: 1,
            cpu_work: CpuWork::CpuHash,
            tick_bytes: 64,
            buffer_bytes: 1 << 20,
            call_work: Duration::from_micros(5),
            gil: GilParams::default(),
            fault: None,
            spin: None,
            record: true,
            watchdog: Watchdog::Auto,
            compare_locks: LockKind::ALL.to_vec(),
            sweep: None,
            io: IoWork::None,
            io_threads: 1,
            transport: Transport::Tcp,
            request_bytes: 64,
            work_ticks: 1,
            connections: 1,
            rate: 0.0,
            warmup: Duration::from_millis(500),
            timeout: Duration::from_secs(1),
            max_request_bytes: 64 << 10,
            max_connections: 1024,
            bulk_mib: 10,
            recv_bytes: 8 << 10,
            listen: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            port: 0,
            levels: None,
            allotments_set: false,
            origin: BTreeMap::new(),
        }
    }
}

/// When the watchdog gives up on a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watchdog {
    /// 10 x interval + 1 s.
    Auto,
    Off,
    After(Duration),
}

impl Scenario {
    /// Loads and validates a scenario file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let shown = path.display().to_string();
        let text = std::fs::read(path)
            .map_err(|e| format!("cannot read scenario {shown}: {}", io_reason(&e)))?;
        let text = String::from_utf8(text)
            .map_err(|_| format!("{shown}: not a text file (invalid UTF-8)"))?;
        let mut s = Self::from_toml(&text, &shown)?;
        if s.name == "scenario" {
            s.name = path
                .file_stem()
                .map_or("scenario".into(), |n| n.to_string_lossy().into_owned());
        }
        Ok(s)
    }

    /// Parses scenario text; `source` names it in errors.
    pub fn from_toml(text: &str, source: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err(format!("{source}: the scenario file is empty"));
        }
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|sp| text[..sp.start.min(text.len())].matches('\n').count() + 1);
            let msg = e
                .message()
                .lines()
                .next()
                .unwrap_or("syntax error")
                .to_owned();
            match line {
                Some(l) => format!("{source}:{l}: malformed TOML: {msg}"),
                None => format!("{source}: malformed TOML: {msg}"),
            }
        })?;
        let mut s = Scenario {
            source: source.to_owned(),
            ..Default::default()
        };
        for (k, v) in &table {
            s.set_value(k, v, source)?;
        }
        s.finish()?;
        Ok(s)
    }

    /// Sets one key; `origin` says where the value came from (a file, `--set k=v`, a flag).
    pub fn set_value(&mut self, key: &str, v: &Value, origin: &str) -> Result<(), String> {
        let Some((k, _, set)) = KEYS.iter().find(|(k, _, _)| *k == key) else {
            return Err(format!(
                "{origin}: unknown key '{key}' (`gilbench keys` lists them)"
            ));
        };
        set(self, v).map_err(|e| format!("{origin}: key '{key}': {e}"))?;
        self.origin.insert(k, origin.to_owned());
        Ok(())
    }

    /// Applies `KEY=VALUE` from `--set`.
    pub fn set_kv(&mut self, kv: &str) -> Result<(), String> {
        let origin = format!("--set {kv}");
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("{origin}: expected KEY=VALUE"))?;
        let v = cli_value(v).map_err(|e| format!("{origin}: {e}"))?;
        self.set_value(k.trim(), &v, &origin)?;
        self.finish()
    }

    /// Applies a dedicated flag's value (e.g. `--interval 5ms` sets `interval`).
    pub fn set_flag(&mut self, key: &str, flag: &str, raw: &str) -> Result<(), String> {
        let v = cli_value(raw).map_err(|e| format!("{flag} {raw}: {e}"))?;
        let v = match (key, v) {
            // Names and durations are strings even when they look like TOML numbers.
            ("cpu_threads", v) => v,
            (_, Value::Integer(i)) => Value::String(i.to_string()),
            (_, v) => v,
        };
        self.set_value(key, &v, &format!("{flag} {raw}"))?;
        self.finish()
    }

    fn origin_of(&self, key: &str) -> String {
        self.origin
            .get(key)
            .cloned()
            .unwrap_or_else(|| self.source.clone())
    }

    /// Checks the keys against each other and fills in derived values.
    fn finish(&mut self) -> Result<(), String> {
        if let Some(levels) = self.levels {
            if self.origin.contains_key("quanta") {
                if self.gil.quanta.len() != levels {
                    return Err(format!(
                        "{}: key 'quanta' has {} entries but levels = {levels}",
                        self.origin_of("quanta"),
                        self.gil.quanta.len()
                    ));
                }
            } else {
                // Extend the default 1, 5, 20 ms by factors of 4, or cut it short.
                let mut q = GilParams::default().quanta;
                while q.len() < levels {
                    let last = *q.last().expect("defaults are non-empty");
                    q.push(last * 4);
                }
                q.truncate(levels);
                self.gil.quanta = q;
            }
        }
        if self.allotments_set {
            if self.gil.allotments.len() != self.gil.quanta.len() {
                return Err(format!(
                    "{}: key 'allotments' has {} entries but there are {} levels",
                    self.origin_of("allotments"),
                    self.gil.allotments.len(),
                    self.gil.quanta.len()
                ));
            }
        } else {
            self.gil.allotments = default_allotments(&self.gil.quanta);
        }
        Ok(())
    }

    /// Checks that the scenario can run at all (after all overrides).
    pub fn validate(&self) -> Result<(), String> {
        if self.cpu_threads == 0 && self.io == IoWork::None {
            return Err(format!(
                "{}: key 'cpu_threads' is 0 and the scenario has no I/O threads: nothing to run",
                self.origin_of("cpu_threads")
            ));
        }
        if self.io == IoWork::Echo && self.transport == Transport::Udp && self.request_bytes < 8 {
            return Err(format!(
                "{}: key 'request_bytes' must be at least 8 over UDP (requests carry a sequence number)",
                self.origin_of("request_bytes")
            ));
        }
        if self.io == IoWork::Echo && self.request_bytes > self.max_request_bytes {
            return Err(format!(
                "{}: key 'request_bytes' ({}) is larger than max_request_bytes ({})",
                self.origin_of("request_bytes"),
                self.request_bytes,
                self.max_request_bytes
            ));
        }
        if self.io == IoWork::Echo && self.transport == Transport::Tcp {
            // The load generator spreads its connections over the servers, round-robin.
            let per_server = self.connections.div_ceil(self.io_threads.max(1));
            if per_server > self.max_connections {
                return Err(format!(
                    "{}: key 'connections' ({}) is more than the echo servers take (io_threads {} x max_connections {}): raise max_connections or io_threads",
                    self.origin_of("connections"),
                    self.connections,
                    self.io_threads,
                    self.max_connections
                ));
            }
        }
        if self.io == IoWork::Bulk && self.transport == Transport::Udp {
            return Err(format!(
                "{}: key 'transport': bulk runs over tcp only",
                self.origin_of("transport")
            ));
        }
        Ok(())
    }

    /// The spin of hand-off waiters: as set, or with `auto` 50 us when threads are pinned and
    /// every GIL thread has a core of its own (a spinning waiter then takes no one's core),
    /// else none.
    pub fn effective_spin(&self) -> Duration {
        if let Some(s) = self.spin {
            return s;
        }
        let threads = self.io_thread_count() + self.cpu_threads;
        let cores = crate::pin::available_cores().map_or(1, |c| c.len());
        let own_core = match &self.pin {
            crate::pin::PinMode::Spread => threads <= cores,
            crate::pin::PinMode::List(l) => {
                let mut u = l.clone();
                u.sort_unstable();
                u.dedup();
                threads <= u.len()
            }
            _ => false,
        };
        if own_core {
            Duration::from_micros(50)
        } else {
            Duration::ZERO
        }
    }

    /// How long without progress before the watchdog stops the run, if it watches.
    pub fn watchdog_limit(&self) -> Option<Duration> {
        match self.watchdog {
            Watchdog::Auto => Some(self.gil.interval * 10 + Duration::from_secs(1)),
            Watchdog::Off => None,
            Watchdog::After(d) => Some(d),
        }
    }

    /// The GIL parameters with every `auto` resolved.
    pub fn gil_params(&self) -> GilParams {
        GilParams {
            spin: self.effective_spin(),
            ..self.gil.clone()
        }
    }

    /// The listen backlog each TCP echo server asks for: room for every connection the load
    /// generator opens at once, and for `max_connections`, at least 1024. The kernel caps it
    /// at net.core.somaxconn.
    pub fn listen_backlog(&self) -> u32 {
        let per_server = self.connections.div_ceil(self.io_threads.max(1));
        per_server.max(self.max_connections).max(1024) as u32
    }

    /// Interpreter threads serving sockets.
    pub fn io_thread_count(&self) -> usize {
        match self.io {
            IoWork::None => 0,
            IoWork::Echo => self.io_threads,
            IoWork::Bulk => 1,
        }
    }

    /// The parameters as reported in results (`params`).
    pub fn params_json(&self) -> serde_json::Value {
        let durs = |v: &[Duration]| v.iter().map(|d| format_duration(*d)).collect::<Vec<_>>();
        serde_json::json!({
            "cpu_threads": self.cpu_threads,
            "cpu_work": self.cpu_work,
            "interval_us": self.gil.interval.as_secs_f64() * 1e6,
            "duration_s": self.duration.as_secs_f64(),
            "pin": self.pin.to_string(),
            "tick_bytes": self.tick_bytes,
            "buffer_bytes": self.buffer_bytes,
            "call_work_us": self.call_work.as_secs_f64() * 1e6,
            "check_interval": self.gil.check_interval,
            "force_switching": self.gil.force_switching,
            "levels": self.gil.quanta.len(),
            "quanta": durs(&self.gil.quanta),
            "allotments": durs(&self.gil.allotments),
            "boost_interval_us": self.gil.boost_interval.as_secs_f64() * 1e6,
            "spin_us": self.effective_spin().as_secs_f64() * 1e6,
            "io": self.io,
            "io_threads": self.io_thread_count(),
            "transport": self.transport,
            "request_bytes": self.request_bytes,
            "work_ticks": self.work_ticks,
            "connections": self.connections,
            "rate": self.rate,
            "warmup_s": self.warmup.as_secs_f64(),
            "timeout_s": self.timeout.as_secs_f64(),
            "bulk_mib": self.bulk_mib,
            "recv_bytes": self.recv_bytes,
        })
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let mut s = Scenario::from_toml(
            "lock = \"mlfq\"\ncpu_threads = 2\ninterval = \"1ms\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(s.lock, LockKind::Mlfq);
        assert_eq!(s.cpu_threads, 2);
        assert_eq!(s.gil.interval, Duration::from_millis(1));
        s.set_kv("quanta=[2ms,4ms]").unwrap();
        assert_eq!(
            s.gil.quanta,
            vec![Duration::from_millis(2), Duration::from_millis(4)]
        );
        assert_eq!(
            s.gil.allotments,
            vec![Duration::from_millis(20), Duration::from_millis(40)]
        );
        s.set_kv("force_switching=false").unwrap();
        assert!(!s.gil.force_switching);
        s.set_flag("cpu_threads", "--cpu-threads", "3").unwrap();
        assert_eq!(s.cpu_threads, 3);
    }

    #[test]
    fn levels_without_quanta_extends_defaults() {
        let s = Scenario::from_toml("levels = 4\n", "t.toml").unwrap();
        assert_eq!(s.gil.quanta.len(), 4);
        assert_eq!(s.gil.quanta[3], Duration::from_millis(80));
        let e = Scenario::from_toml("levels = 2\nquanta = [\"1ms\"]\n", "t.toml").unwrap_err();
        assert!(e.contains("quanta"), "{e}");
    }

    #[test]
    fn errors_name_the_key_and_the_file() {
        for (text, key) in [
            ("bogus = 1", "bogus"),
            ("interval = 5", "interval"),
            ("interval = \"0ms\"", "interval"),
            ("cpu_threads = -1", "cpu_threads"),
            ("lock = \"gil2000\"", "lock"),
            ("check_interval = 0", "check_interval"),
        ] {
            let e = Scenario::from_toml(text, "x.toml").unwrap_err();
            assert!(e.contains("x.toml") && e.contains(key), "{text}: {e}");
            assert!(!e.contains('\n'), "multi-line error: {e}");
        }
        let e = Scenario::from_toml("a = = 1", "x.toml").unwrap_err();
        assert!(e.starts_with("x.toml:1: malformed TOML"), "{e}");
    }
}
