//! Scenario files (TOML, one flat table) and the overrides that the command line applies to
//! them (`--set KEY=VALUE` and the dedicated flags). Every key goes through one setter, so a
//! value is checked the same way wherever it comes from, and every error names the key and
//! where it was written.

mod keys;
mod validate;

pub use keys::{cli_value, parse_locks, parse_sweep, split_sweep, Setter, KEYS};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use toml::Value;

use crate::gil::{default_allotments, GilParams, LockKind};
use crate::pin::PinMode;
use crate::units::format_duration;
pub use crate::workload::{Fault, ServerKind, Transport};
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
    /// How long a waiter of any design spins before it blocks; None = auto. With
    /// `adaptive_spin`, the bound of an adaptive spin.
    pub spin: Option<Duration>,
    /// `spin = adaptive`: waiters spin only while the holder runs and a core is free for them.
    pub adaptive_spin: bool,
    pub record: bool,
    pub watchdog: Watchdog,
    /// The designs `compare` runs when `--locks` is not given.
    pub compare_locks: Vec<LockKind>,
    /// The `KEY=V1,V2,...` that `sweep` runs when no `--set` has several values.
    pub sweep: Option<String>,
    pub io: IoWork,
    pub io_threads: usize,
    pub transport: Transport,
    /// How the server threads are written: a poll loop or a thread per connection.
    pub server: ServerKind,
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
            spin: Some(Duration::ZERO),
            adaptive_spin: false,
            record: true,
            watchdog: Watchdog::Auto,
            compare_locks: LockKind::ALL.to_vec(),
            sweep: None,
            io: IoWork::None,
            io_threads: 1,
            transport: Transport::Tcp,
            server: ServerKind::Poll,
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

/// The largest scenario file read (a scenario is a few hundred bytes).
pub const MAX_SCENARIO_BYTES: u64 = 1 << 20;

/// A design's constant: (design, key, the value as a label shows it).
type DesignSetting = (&'static str, &'static str, fn(&GilParams) -> String);

/// The historical designs' own constants.
const HISTORICAL_SETTINGS: [DesignSetting; 13] = [
    ("ocaml", "ocaml_tick", |g| format_duration(g.ocaml_tick)),
    ("ruby", "ruby_quantum", |g| format_duration(g.ruby_quantum)),
    ("ruby", "ruby_tick", |g| format_duration(g.ruby_tick)),
    ("pypy", "pypy_checkinterval", |g| {
        g.pypy_checkinterval.to_string()
    }),
    ("pypy", "pypy_steal_timeout", |g| {
        format_duration(g.pypy_steal_timeout)
    }),
    ("fastcond", "interval", |g| format_duration(g.interval)),
    ("bfs", "bfs_rr", |g| format_duration(g.bfs_rr)),
    ("decay", "decay_slice", |g| format_duration(g.decay_slice)),
    ("decay", "decay_halflife", |g| {
        format_duration(g.decay_halflife)
    }),
    ("decay", "decay_preempt_spin", |g| {
        format_duration(g.decay_preempt_spin)
    }),
    ("bfs", "bfs_deadline_factor", |g| {
        g.bfs_deadline_factor.to_string()
    }),
    ("bfs", "bfs_wait_factor", |g| g.bfs_wait_factor.to_string()),
    ("bfs", "bfs_switch_back_spin", |g| {
        format_duration(g.bfs_switch_back_spin)
    }),
];

impl Scenario {
    /// Loads and validates a scenario file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let file = shown(&path.display().to_string());
        let text = crate::input::read_regular(path, MAX_SCENARIO_BYTES).map_err(|e| {
            format!(
                "cannot read scenario {file}: {}",
                e.reason(MAX_SCENARIO_BYTES)
            )
        })?;
        let text = String::from_utf8(text)
            .map_err(|_| format!("{file}: not a text file (invalid UTF-8)"))?;
        let mut s = Self::from_toml(&text, &file)?;
        if s.name == "scenario" {
            s.name = path
                .file_stem()
                .map_or("scenario".into(), |n| shown(&n.to_string_lossy()));
        }
        Ok(s)
    }

    /// Parses scenario text; `source` names it in errors.
    pub fn from_toml(text: &str, source: &str) -> Result<Self, String> {
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
        if table.is_empty() {
            return Err(format!(
                "{source}: the scenario file is empty (it sets no keys, only comments or blank lines)"
            ));
        }
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
        let origin = shown(origin);
        let Some((k, _, set)) = KEYS.iter().find(|(k, _, _)| *k == key) else {
            return Err(format!(
                "{origin}: unknown key '{}' (`gilbench keys` lists them)",
                shown(key)
            ));
        };
        set(self, v).map_err(|e| format!("{origin}: key '{key}': {}", shown(&e)))?;
        self.origin.insert(k, origin);
        Ok(())
    }

    /// Applies `KEY=VALUE` from `--set`.
    pub fn set_kv(&mut self, kv: &str) -> Result<(), String> {
        let origin = shown(&format!("--set {kv}"));
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("{origin}: expected KEY=VALUE"))?;
        let v = cli_value(v).map_err(|e| format!("{origin}: {e}"))?;
        self.set_value(k.trim(), &v, &origin)?;
        self.finish()
    }

    /// Applies a dedicated flag's value (e.g. `--interval 5ms` sets `interval`).
    pub fn set_flag(&mut self, key: &str, flag: &str, raw: &str) -> Result<(), String> {
        let v = cli_value(raw).map_err(|e| format!("{}: {e}", shown(&format!("{flag} {raw}"))))?;
        let v = match (key, v) {
            // Names and durations are strings even when they look like TOML numbers.
            ("cpu_threads", v) => v,
            (_, Value::Integer(i)) => Value::String(i.to_string()),
            (_, v) => v,
        };
        self.set_value(key, &v, &format!("{flag} {raw}"))?;
        self.finish()
    }

    /// Applies one value of a sweep (`raw` as written in `KEY=V1,V2,...`); `origin` names
    /// the sweep.
    pub fn set_swept(&mut self, key: &str, raw: &str, origin: &str) -> Result<(), String> {
        let v = cli_value(raw).map_err(|e| format!("{}: {key}={raw}: {e}", shown(origin)))?;
        self.set_value(key, &v, origin)?;
        self.finish()
    }

    /// Where `key` was last set: a file, `--set ...` or a flag.
    pub fn origin_of(&self, key: &str) -> String {
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
        self.validate_threads()?;
        self.validate_requests()?;
        self.validate_spin()?;
        self.validate_connections()
    }

    /// How long a waiter of this design waits before it requests a drop, and the key that
    /// sets it; None for designs without a timed preemption (tick preempts by tick count).
    fn preemption_period(&self) -> Option<(Duration, &'static str)> {
        self.lock.preemption_period(&self.gil)
    }

    /// The spin of every design's waiters: as set (0 by default), or with `auto` 50 us (at most
    /// half the design's preemption period) when threads are pinned and every GIL thread has a
    /// core of its own (a spinning waiter then takes no one's core), else none.
    pub fn effective_spin(&self) -> Duration {
        if let Some(s) = self.spin {
            return s;
        }
        let threads = self.io_thread_count() + self.cpu_threads;
        let cores = crate::pin::available_cores().map_or(1, |c| c.len());
        let own_core = match &self.pin {
            crate::pin::PinMode::Spread => threads <= cores,
            // A list names each core once.
            crate::pin::PinMode::List(l) => threads <= l.len(),
            _ => false,
        };
        if own_core {
            let half = self
                .preemption_period()
                .map_or(Duration::MAX, |(p, _)| p / 2);
            Duration::from_micros(50).min(half)
        } else {
            Duration::ZERO
        }
    }

    /// How many cores the run's threads may use: what `spin = adaptive` weighs the threads on
    /// a core against (the pinned list, one for `single`, else every usable core).
    pub fn run_cores(&self) -> usize {
        match &self.pin {
            crate::pin::PinMode::List(l) => l.len(),
            crate::pin::PinMode::Single => 1,
            _ => crate::pin::available_cores().map_or(1, |c| c.len()),
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

    /// The design's own parameters that differ from their defaults, as `key=value` (e.g.
    /// `spin=50us`, `interval=1ms`): they go into the row label, so that no design runs with a
    /// setting a table does not show.
    pub fn design_settings(&self) -> Vec<String> {
        let mut out = self.core_design_settings();
        out.extend(self.historical_settings());
        let name = self.lock.name();
        let spin = self.effective_spin();
        if name != "none" && self.adaptive_spin {
            out.push("spin=adaptive".to_owned());
        } else if name != "none" && !spin.is_zero() {
            out.push(format!("spin={}", format_duration(spin)));
        }
        out
    }

    /// The settings of `tick`, `timed`, `fifo` and `mlfq` that differ from their defaults.
    fn core_design_settings(&self) -> Vec<String> {
        let d = GilParams::default();
        let g = &self.gil;
        let durs = |v: &[Duration]| {
            let v: Vec<_> = v.iter().map(|x| format_duration(*x)).collect();
            format!("[{}]", v.join(","))
        };
        let mut out = Vec::new();
        let name = self.lock.name();
        let uses_interval = matches!(name, "timed" | "fifo");
        if name == "tick" && g.check_interval != d.check_interval {
            out.push(format!("check_interval={}", g.check_interval));
        }
        if uses_interval && g.interval != d.interval {
            out.push(format!("interval={}", format_duration(g.interval)));
        }
        if uses_interval && g.force_switching != d.force_switching {
            out.push(format!("force_switching={}", g.force_switching));
        }
        if name == "mlfq" {
            if g.quanta != d.quanta {
                out.push(format!("quanta={}", durs(&g.quanta)));
            }
            if g.allotments != default_allotments(&g.quanta) {
                out.push(format!("allotments={}", durs(&g.allotments)));
            }
            if g.boost_interval != d.boost_interval {
                out.push(format!(
                    "boost_interval={}",
                    format_duration(g.boost_interval)
                ));
            }
            if g.boost_all != d.boost_all {
                out.push("boost=starved".to_owned());
            }
            if g.mlfq_preempt_spin != d.mlfq_preempt_spin {
                out.push(format!(
                    "mlfq_preempt_spin={}",
                    format_duration(g.mlfq_preempt_spin)
                ));
            }
        }
        out
    }

    /// The historical designs' constants that differ from their defaults, as `key=value`.
    fn historical_settings(&self) -> Vec<String> {
        let default = GilParams::default();
        HISTORICAL_SETTINGS
            .iter()
            .filter(|(design, _, value)| {
                *design == self.lock.name() && value(&self.gil) != value(&default)
            })
            .map(|(_, key, value)| format!("{key}={}", value(&self.gil)))
            .collect()
    }

    /// The design's name followed by its [`Scenario::design_settings`]: how a run is labelled.
    pub fn design_label(&self) -> String {
        let mut parts = vec![self.lock.name().to_owned()];
        parts.extend(self.design_settings());
        parts.join(" ")
    }

    /// The parameters as reported in results (`params`).
    pub fn params_json(&self) -> serde_json::Value {
        let durs = |v: &[Duration]| v.iter().map(|d| format_duration(*d)).collect::<Vec<_>>();
        let mut params = serde_json::json!({
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
            "boost": if self.gil.boost_all { "all" } else { "starved" },
            "spin_us": self.effective_spin().as_secs_f64() * 1e6,
            "ocaml_tick": format_duration(self.gil.ocaml_tick),
            "ruby_quantum": format_duration(self.gil.ruby_quantum),
            "ruby_tick": format_duration(self.gil.ruby_tick),
            "pypy_checkinterval": self.gil.pypy_checkinterval,
            "pypy_steal_timeout": format_duration(self.gil.pypy_steal_timeout),
            "bfs_rr": format_duration(self.gil.bfs_rr),
            "bfs_deadline_factor": self.gil.bfs_deadline_factor,
            "bfs_wait_factor": self.gil.bfs_wait_factor,
            "bfs_switch_back_spin": format_duration(self.gil.bfs_switch_back_spin),
            "mlfq_preempt_spin": format_duration(self.gil.mlfq_preempt_spin),
            "io": self.io,
            "io_threads": self.io_thread_count(),
            "transport": self.transport,
            "server": self.server,
            "request_bytes": self.request_bytes,
            "work_ticks": self.work_ticks,
            "connections": self.connections,
            "rate": self.rate,
            "warmup_s": self.warmup.as_secs_f64(),
            "timeout_s": self.timeout.as_secs_f64(),
            "bulk_mib": self.bulk_mib,
            "recv_bytes": self.recv_bytes,
        });
        // Beyond what one `json!` can expand.
        let more = [
            ("spin_adaptive", serde_json::json!(self.adaptive_spin)),
            ("decay_slice", format_duration(self.gil.decay_slice).into()),
            (
                "decay_halflife",
                format_duration(self.gil.decay_halflife).into(),
            ),
            (
                "decay_preempt_spin",
                format_duration(self.gil.decay_preempt_spin).into(),
            ),
        ];
        for (k, v) in more {
            params[k] = v;
        }
        params
    }
}

/// `s` with control characters escaped (`\n`, `\u{1b}`), for one-line messages.
pub fn shown(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            o.extend(c.escape_default());
        } else {
            o.push(c);
        }
    }
    o
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

    #[test]
    fn a_file_without_keys_is_empty_whatever_its_comments() {
        for text in ["", "  \n", "# only a comment\n\n# and another\n"] {
            let e = Scenario::from_toml(text, "x.toml").unwrap_err();
            assert!(e.contains("x.toml") && e.contains("empty"), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_name_taken_from_the_file_name_is_printable() {
        let dir = std::env::temp_dir().join(format!("gilbench-scenario-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a\u{1b}[2Jb.toml");
        std::fs::write(&path, "lock = \"timed\"\n").unwrap();
        let s = Scenario::from_file(&path).unwrap();
        assert_eq!(s.name, "a\\u{1b}[2Jb");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn names_and_descriptions_are_one_printable_line() {
        for text in [
            "name = \"a\\u001b[31mb\"",
            "description = \"two\\nlines\"",
            "name = \"tab\\tbed\"",
        ] {
            let e = Scenario::from_toml(text, "x.toml").unwrap_err();
            assert!(e.contains("control character"), "{text}: {e}");
            assert!(
                !e.chars().any(char::is_control),
                "raw control character in {e:?}"
            );
        }
        let e = Scenario::from_toml("name = \" \"", "x.toml").unwrap_err();
        assert!(e.contains("'name'") && e.contains("empty"), "{e}");
        let long = format!("name = \"{}\"", "n".repeat(101));
        assert!(Scenario::from_toml(&long, "x.toml").is_err());
        let s = Scenario::from_toml("name = \"ok é\"", "x.toml").unwrap();
        assert_eq!(s.name, "ok é");
    }

    #[test]
    fn spin_is_capped_and_shorter_than_the_preemption_period() {
        let e = Scenario::from_toml("spin = \"2ms\"", "x.toml").unwrap_err();
        assert!(e.contains("'spin'") && e.contains("at most 1ms"), "{e}");
        // A flag applied after the file shortens the interval below the file's spin.
        let mut s = Scenario::from_toml("lock = \"fifo\"\nspin = \"500us\"\n", "x.toml").unwrap();
        s.validate().unwrap();
        s.set_flag("interval", "--interval", "100us").unwrap();
        let e = s.validate().unwrap_err();
        assert!(
            e.starts_with("x.toml: key 'spin'") && e.contains("--interval 100us"),
            "{e}"
        );
        // mlfq: against the top quantum.
        let mut s = Scenario::from_toml("lock = \"mlfq\"\nspin = \"500us\"\n", "x.toml").unwrap();
        s.validate().unwrap();
        s.set_kv("quanta=[400us,2ms]").unwrap();
        let e = s.validate().unwrap_err();
        assert!(e.contains("top quantum") && e.contains("quanta"), "{e}");
        // timed's waiters spin too, before their timed wait of `interval`.
        let s = Scenario::from_toml(
            "lock = \"timed\"\nspin = \"1ms\"\ninterval = \"100us\"\n",
            "x.toml",
        )
        .unwrap();
        assert!(s.validate().unwrap_err().contains("interval"));
        // tick preempts by tick count, not time: only the cap applies.
        let s = Scenario::from_toml(
            "lock = \"tick\"\nspin = \"1ms\"\ninterval = \"100us\"\n",
            "x.toml",
        )
        .unwrap();
        s.validate().unwrap();
    }

    #[test]
    fn auto_spin_stays_below_half_the_preemption_period() {
        // One thread pinned to a core of its own: auto spins.
        let text = "lock = \"fifo\"\ncpu_threads = 1\npin = \"0\"\nspin = \"auto\"\n";
        let mut s = Scenario::from_toml(text, "x.toml").unwrap();
        assert_eq!(s.effective_spin(), Duration::from_micros(50));
        s.set_kv("interval=60us").unwrap();
        s.validate().unwrap();
        assert_eq!(s.effective_spin(), Duration::from_micros(30));
        s.set_kv("lock=mlfq").unwrap();
        s.set_kv("quanta=[40us]").unwrap();
        assert_eq!(s.effective_spin(), Duration::from_micros(20));
    }

    #[test]
    fn echo_ports_must_fit_below_65536() {
        let text = "io = \"echo\"\nio_threads = 3\nport = 65533\n";
        Scenario::from_toml(text, "x.toml")
            .unwrap()
            .validate()
            .unwrap();
        let mut s = Scenario::from_toml(text, "x.toml").unwrap();
        s.set_kv("port=65534").unwrap();
        let e = s.validate().unwrap_err();
        assert!(e.contains("'port'") && e.contains("io_threads"), "{e}");
    }

    #[test]
    fn a_sweep_in_a_file_is_checked_value_by_value() {
        for (text, needle) in [
            ("sweep = \"lock=tick,zzz\"", "zzz"),
            ("sweep = \"cpu_threads=1,1\"", "'1' is named twice"),
            ("sweep = \"cpu_threads=1\"", "at least two"),
            ("sweep = \"bogus=1,2\"", "'bogus' is not a key"),
            ("sweep = \"locks=tick,timed\"", "cannot be swept"),
            ("sweep = \"spin=10us,2ms\"", "at most 1ms"),
        ] {
            let e = Scenario::from_toml(text, "x.toml").unwrap_err();
            assert!(
                e.starts_with("x.toml: key 'sweep'") && e.contains(needle),
                "{text}: {e}"
            );
        }
        let s = Scenario::from_toml("sweep = \"interval=1ms, 5ms\"", "x.toml").unwrap();
        assert_eq!(s.sweep.as_deref(), Some("interval=1ms, 5ms"));
    }

    #[test]
    fn static_bounds_on_per_request_work() {
        for (text, key) in [
            ("work_ticks = 1000001", "work_ticks"),
            ("call_work = \"101ms\"", "call_work"),
            ("warmup = \"61s\"", "warmup"),
        ] {
            let e = Scenario::from_toml(text, "x.toml").unwrap_err();
            assert!(e.contains(key) && e.contains("at most"), "{text}: {e}");
        }
        Scenario::from_toml(
            "work_ticks = 1000000\ncall_work = \"100ms\"\nwarmup = \"60s\"\n",
            "x.toml",
        )
        .unwrap();
    }

    #[test]
    fn a_design_named_twice_is_an_error() {
        let e = parse_locks("none,timed,none").unwrap_err();
        assert!(e.contains("'none' is named twice"), "{e}");
        let e = Scenario::from_toml("locks = \"tick,tick\"", "x.toml").unwrap_err();
        assert!(e.contains("'locks'") && e.contains("twice"), "{e}");
    }

    #[test]
    fn labels_show_every_design_setting_that_differs_from_its_default() {
        let mut s = Scenario::from_toml("lock = \"fifo\"\n", "x.toml").unwrap();
        assert_eq!(s.design_label(), "fifo");
        s.set_kv("spin=20us").unwrap();
        s.set_kv("interval=1ms").unwrap();
        s.set_kv("quanta=[2ms,4ms]").unwrap();
        // quanta are mlfq's, not fifo's.
        assert_eq!(s.design_label(), "fifo interval=1ms spin=20us");
        s.set_kv("lock=mlfq").unwrap();
        s.set_kv("boost=starved").unwrap();
        assert_eq!(
            s.design_label(),
            "mlfq quanta=[2ms,4ms] boost=starved spin=20us"
        );
        s.set_kv("mlfq_preempt_spin=0us").unwrap();
        assert_eq!(
            s.design_label(),
            "mlfq quanta=[2ms,4ms] boost=starved mlfq_preempt_spin=0s spin=20us"
        );
        for (design, key, shown) in [
            ("bfs", "bfs_rr=20ms", "bfs bfs_rr=20ms spin=20us"),
            (
                "ruby",
                "ruby_quantum=50ms",
                "ruby ruby_quantum=50ms spin=20us",
            ),
            (
                "ocaml",
                "ocaml_tick=10ms",
                "ocaml ocaml_tick=10ms spin=20us",
            ),
            (
                "pypy",
                "pypy_checkinterval=100",
                "pypy pypy_checkinterval=100 spin=20us",
            ),
            (
                "fastcond",
                "interval=2ms",
                "fastcond interval=2ms spin=20us",
            ),
            (
                "decay",
                "decay_halflife=20ms",
                "decay decay_halflife=20ms spin=20us",
            ),
        ] {
            s.set_kv(&format!("lock={design}")).unwrap();
            s.set_kv(key).unwrap();
            assert_eq!(s.design_label(), shown);
        }
        s.set_kv("lock=none").unwrap();
        assert_eq!(s.design_label(), "none");
    }

    /// `spin = adaptive` is a spin of its own: the label says so (not its 50 us bound), the
    /// designs get the bound, the run a gauge; another `spin` value turns it off again.
    #[test]
    fn adaptive_spin_is_labelled_and_bounded() {
        let mut s =
            Scenario::from_toml("lock = \"timed\"\nspin = \"adaptive\"\n", "x.toml").unwrap();
        assert!(s.adaptive_spin);
        assert_eq!(s.design_label(), "timed spin=adaptive");
        assert_eq!(s.gil_params().spin, crate::gil::ADAPTIVE_SPIN_BOUND);
        assert_eq!(s.params_json()["spin_adaptive"], true);
        s.set_kv("spin=20us").unwrap();
        assert!(!s.adaptive_spin);
        assert_eq!(s.design_label(), "timed spin=20us");
        assert!(s.set_kv("spin=sometimes").is_err());
    }

    #[test]
    fn the_bundled_scenarios_accept_every_design() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        for f in [
            "history",
            "convoy-echo",
            "cpu-scaling",
            "starvation",
            "convoy-bulk",
            "interval-sweep",
        ] {
            let base = Scenario::from_file(&dir.join(format!("{f}.toml"))).unwrap();
            for k in LockKind::ALL {
                let mut s = base.clone();
                s.set_kv(&format!("lock={k}")).unwrap();
                s.validate()
                    .unwrap_or_else(|e| panic!("{f} under {k}: {e}"));
            }
        }
        let h = Scenario::from_file(&dir.join("history.toml")).unwrap();
        assert_eq!(
            h.compare_locks,
            LockKind::ALL.to_vec(),
            "history runs every design"
        );
    }

    #[test]
    fn the_designs_constants_are_checked_keys_with_the_originals_defaults() {
        let d = Scenario::default().gil;
        assert_eq!(d.ocaml_tick, Duration::from_millis(50));
        assert_eq!(d.ruby_quantum, Duration::from_millis(100));
        assert_eq!(d.ruby_tick, Duration::from_millis(10));
        assert_eq!(d.pypy_checkinterval, 10_000);
        assert_eq!(d.pypy_steal_timeout, Duration::from_micros(100));
        assert_eq!(d.bfs_rr, Duration::from_millis(10));
        assert_eq!(d.bfs_deadline_factor, 8);
        assert_eq!(d.bfs_wait_factor, 0.55);
        assert_eq!(d.bfs_switch_back_spin, Duration::from_micros(12));
        for (text, key) in [
            ("ocaml_tick = \"1us\"", "ocaml_tick"),
            ("ruby_tick = \"11s\"", "ruby_tick"),
            ("ruby_quantum = \"0ms\"", "ruby_quantum"),
            ("pypy_checkinterval = 0", "pypy_checkinterval"),
            ("pypy_steal_timeout = \"2s\"", "pypy_steal_timeout"),
            ("bfs_rr = 10", "bfs_rr"),
            ("bfs_deadline_factor = 0", "bfs_deadline_factor"),
            ("bfs_wait_factor = 1000.0", "bfs_wait_factor"),
            ("bfs_switch_back_spin = \"2ms\"", "bfs_switch_back_spin"),
        ] {
            let e = Scenario::from_toml(text, "x.toml").unwrap_err();
            assert!(e.contains("x.toml") && e.contains(key), "{text}: {e}");
            assert!(!e.contains('\n'), "multi-line error: {e}");
        }
        let s = Scenario::from_toml(
            "ruby_quantum = \"20ms\"\nruby_tick = \"2ms\"\nbfs_wait_factor = 1\n",
            "x.toml",
        )
        .unwrap();
        assert_eq!(s.gil.ruby_quantum, Duration::from_millis(20));
        assert_eq!(s.gil.bfs_wait_factor, 1.0);
    }
}
