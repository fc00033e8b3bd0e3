//! The keys a scenario may set, each with its meaning and its setter, and the readers of
//! their values: one path for scenario files, `--set` and the dedicated flags alike.

use std::time::Duration;

use toml::Value;

use super::{CpuWork, Fault, IoWork, Scenario, Watchdog, MAX_THREADS};
use crate::gil::LockKind;
use crate::units::{format_duration, parse_duration};

pub type Setter = fn(&mut Scenario, &Value) -> Result<(), String>;

/// Every key a scenario may set: name, what it means, and its setter.
pub const KEYS: &[(&str, &str, Setter)] = &[
    (
        "name",
        "the scenario's name in reports and output file names",
        |s, v| {
            let n = text(v)?;
            if n.trim().is_empty() {
                return Err("the name is empty".into());
            }
            if n.chars().count() > MAX_NAME {
                return Err(format!("the name is longer than {MAX_NAME} characters"));
            }
            s.name = n;
            Ok(())
        },
    ),
    (
        "description",
        "one line on what the scenario shows",
        |s, v| {
            s.description = text(v)?;
            Ok(())
        },
    ),
    (
        "lock",
        "the GIL design (`gilbench locks` lists them)",
        |s, v| {
            s.lock = string(v)?.parse()?;
            Ok(())
        },
    ),
    ("duration", "how long the measured run lasts (at least 1ms)", |s, v| {
        let d = positive_duration(v)?;
        if d < MIN_DURATION {
            return Err(format!(
                "{} is too short: a run lasts at least {}",
                format_duration(d),
                format_duration(MIN_DURATION)
            ));
        }
        s.duration = d;
        Ok(())
    }),
    (
        "pin",
        "spread, single, none, or a core list like 0,1",
        |s, v| {
            s.pin = string(v)?.parse()?;
            Ok(())
        },
    ),
    ("cpu_threads", "CPU-bound interpreter threads", |s, v| {
        s.cpu_threads = count(v, 0, MAX_THREADS)? as usize;
        Ok(())
    }),
    (
        "cpu_work",
        "what CPU threads do: cpu-hash (GIL held) or hash-nogil (GIL released)",
        |s, v| {
            s.cpu_work = match string(v)?.as_str() {
                "cpu-hash" => CpuWork::CpuHash,
                "hash-nogil" => CpuWork::HashNogil,
                o => return Err(format!("'{o}' is not cpu-hash or hash-nogil")),
            };
            Ok(())
        },
    ),
    ("tick_bytes", "bytes hashed per tick", |s, v| {
        s.tick_bytes = count(v, 1, 1 << 20)? as usize;
        Ok(())
    }),
    (
        "buffer_bytes",
        "hash-nogil: bytes hashed per GIL-released call",
        |s, v| {
            s.buffer_bytes = count(v, 1, 1 << 30)? as usize;
            Ok(())
        },
    ),
    (
        "call_work",
        "GIL-held work after every blocking or native call (0us: none; at most 100ms)",
        |s, v| {
            s.call_work = duration_at_most(v, MAX_CALL_WORK)?;
            Ok(())
        },
    ),
    (
        "check_interval",
        "tick: ticks between release/re-take",
        |s, v| {
            s.gil.check_interval = count(v, 1, u32::MAX as u64)? as u32;
            Ok(())
        },
    ),
    (
        "interval",
        "timed, fifo: switch interval before a drop request; fastcond: hold time before a yield",
        |s, v| {
            s.gil.interval = positive_duration(v)?;
            Ok(())
        },
    ),
    (
        "force_switching",
        "timed, fifo: a forced dropper may not re-take before a waiter",
        |s, v| {
            s.gil.force_switching = v.as_bool().ok_or_else(|| expected("true or false", v))?;
            Ok(())
        },
    ),
    ("levels", "mlfq: number of priority levels", |s, v| {
        s.levels = Some(count(v, 1, 16)? as usize);
        Ok(())
    }),
    (
        "quanta",
        "mlfq: time quantum per level, top first, e.g. [\"1ms\",\"5ms\",\"20ms\"]",
        |s, v| {
            s.gil.quanta = duration_list(v)?;
            Ok(())
        },
    ),
    (
        "allotments",
        "mlfq: hold time per level before demotion (default 10 quanta)",
        |s, v| {
            s.gil.allotments = duration_list(v)?;
            s.allotments_set = true;
            Ok(())
        },
    ),
    (
        "boost_interval",
        "mlfq: period after which all threads return to the top level",
        |s, v| {
            s.gil.boost_interval = positive_duration(v)?;
            Ok(())
        },
    ),
    (
        "boost",
        "mlfq: who a boost returns to the top level: all (OSTEP's rule) or starved (only threads that have not held the GIL for a whole boost_interval)",
        |s, v| {
            s.gil.boost_all = match string(v)?.as_str() {
                "all" => true,
                "starved" => false,
                other => return Err(format!("expected all or starved, found '{other}'")),
            };
            Ok(())
        },
    ),
    (
        "spin",
        "every design with waiters (all but none): how long a waiter spins before it \
         blocks, once per take; 0 (default), a duration, auto (50us when every GIL thread has \
         a core of its own), or adaptive (only while the holder runs and a core is free for the \
         waiter, at most 50us: Linux's optimistic spinning); at most 1ms, and less than interval \
         (timed, fifo) or the top quantum (mlfq)",
        |s, v| {
            s.adaptive_spin = v.as_str() == Some("adaptive");
            s.spin = match v.as_str() {
                Some("auto") => None,
                Some("adaptive") => Some(crate::gil::ADAPTIVE_SPIN_BOUND),
                _ => Some(duration_at_most(v, MAX_SPIN)?),
            };
            Ok(())
        },
    ),
    (
        "ocaml_tick",
        "ocaml: period of the tick thread (50ms)",
        |s, v| {
            s.gil.ocaml_tick = timer_period(v)?;
            Ok(())
        },
    ),
    (
        "ruby_quantum",
        "ruby: running time after which the holder yields to the queue (100ms)",
        |s, v| {
            s.gil.ruby_quantum = positive_duration(v)?;
            Ok(())
        },
    ),
    (
        "ruby_tick",
        "ruby: period of the timer thread while someone waits; each tick charges this much running time (10ms)",
        |s, v| {
            s.gil.ruby_tick = timer_period(v)?;
            Ok(())
        },
    ),
    (
        "pypy_checkinterval",
        "pypy: ticks between periodic actions, each a yield if someone waits (10000)",
        |s, v| {
            s.gil.pypy_checkinterval = count(v, 1, u32::MAX as u64)? as u32;
            Ok(())
        },
    ),
    (
        "pypy_steal_timeout",
        "pypy: the stealer's timed lock before it looks at the fast word again (100us, at most 1s)",
        |s, v| {
            let d = duration_at_most(v, Duration::from_secs(1))?;
            if d.is_zero() {
                return Err("must be longer than zero".into());
            }
            s.gil.pypy_steal_timeout = d;
            Ok(())
        },
    ),
    ("bfs_rr", "bfs: the time slice rr (10ms)", |s, v| {
        s.gil.bfs_rr = positive_duration(v)?;
        Ok(())
    }),
    (
        "bfs_deadline_factor",
        "bfs: a new slice's deadline is this many slices ahead (8)",
        |s, v| {
            s.gil.bfs_deadline_factor = count(v, 1, 1000)? as u32;
            Ok(())
        },
    ),
    (
        "bfs_wait_factor",
        "bfs: waiters time out after this x rr x waiters and ask the holder to check its slice (0.55)",
        |s, v| {
            let f = v
                .as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .ok_or_else(|| expected("a number", v))?;
            if !(0.01..=100.0).contains(&f) {
                return Err(format!("{f} is not between 0.01 and 100"));
            }
            s.gil.bfs_wait_factor = f;
            Ok(())
        },
    ),
    (
        "bfs_switch_back_spin",
        "bfs: a thread chosen while the I/O releaser is more urgent spins this long so it can snatch back (12us, at most 1ms)",
        |s, v| {
            s.gil.bfs_switch_back_spin = duration_at_most(v, MAX_SPIN)?;
            Ok(())
        },
    ),
    (
        "mlfq_preempt_spin",
        "mlfq: how long a waiter that asked the holder to drop, and is next in line, waits \
         actively for the hand-off before it parks (50us; 0 never; at most 1ms): bounded by the \
         holder's next eval-breaker check, part of the design, not `spin`",
        |s, v| {
            s.gil.mlfq_preempt_spin = duration_at_most(v, MAX_SPIN)?;
            Ok(())
        },
    ),
    ("decay_slice", "decay: the slice after which a waiter that is not more urgent gets its turn (5ms)", |s, v| {
        s.gil.decay_slice = positive_duration(v)?;
        Ok(())
    }),
    (
        "decay_halflife",
        "decay: the half-life of a thread's recent GIL usage, its priority (50ms)",
        |s, v| {
            s.gil.decay_halflife = positive_duration(v)?;
            Ok(())
        },
    ),
    (
        "decay_preempt_spin",
        "decay: how long a waiter that asked a running holder to drop, and is next in line, waits \
         actively for the hand-off before it parks (50us; 0 never; at most 1ms), part of the design",
        |s, v| {
            s.gil.decay_preempt_spin = duration_at_most(v, MAX_SPIN)?;
            Ok(())
        },
    ),
    (
        "locks",
        "compare: the designs to run by default, e.g. \"tick,timed,mlfq\"",
        |s, v| {
            s.compare_locks = parse_locks(&string(v)?)?;
            Ok(())
        },
    ),
    (
        "sweep",
        "sweep: the default KEY=V1,V2,... to sweep (two or more distinct values)",
        |s, v| {
            let t = string(v)?;
            parse_sweep(&t, s)?;
            s.sweep = Some(t);
            Ok(())
        },
    ),
    ("io", "socket workload: none, echo or bulk", |s, v| {
        s.io = match string(v)?.as_str() {
            "none" => IoWork::None,
            "echo" => IoWork::Echo,
            "bulk" => IoWork::Bulk,
            o => return Err(format!("'{o}' is not none, echo or bulk")),
        };
        Ok(())
    }),
    (
        "io_threads",
        "echo: server interpreter threads (each on its own port)",
        |s, v| {
            s.io_threads = count(v, 1, MAX_THREADS)? as usize;
            Ok(())
        },
    ),
    ("transport", "echo: tcp or udp", |s, v| {
        s.transport = string(v)?.parse()?;
        Ok(())
    }),
    (
        "server",
        "echo, bulk: poll (one thread: poll, recv, send) or threaded (a thread per connection, \
         blocking recv and send)",
        |s, v| {
            s.server = string(v)?.parse()?;
            Ok(())
        },
    ),
    (
        "request_bytes",
        "echo: bytes per request (and reply)",
        |s, v| {
            s.request_bytes = count(v, 1, 1 << 20)? as usize;
            Ok(())
        },
    ),
    (
        "work_ticks",
        "echo: GIL-held ticks per request (at most 1000000)",
        |s, v| {
            s.work_ticks = count(v, 0, MAX_WORK_TICKS)?;
            Ok(())
        },
    ),
    (
        "connections",
        "load generator: connections (closed loop: requests in flight)",
        |s, v| {
            s.connections = count(v, 1, 10_000)? as usize;
            Ok(())
        },
    ),
    (
        "rate",
        "load generator: open-loop requests/s (0: closed loop)",
        |s, v| {
            let r = v
                .as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .ok_or_else(|| expected("a number", v))?;
            if !(0.0..=10_000_000.0).contains(&r) {
                return Err(format!("{r} is not between 0 and 10000000"));
            }
            s.rate = r;
            Ok(())
        },
    ),
    (
        "warmup",
        "load generator: time before recording starts (at most 60s)",
        |s, v| {
            s.warmup = duration_at_most(v, MAX_WARMUP)?;
            Ok(())
        },
    ),
    (
        "timeout",
        "load generator: a request unanswered this long has failed",
        |s, v| {
            s.timeout = positive_duration(v)?;
            Ok(())
        },
    ),
    (
        "max_request_bytes",
        "echo server: un-echoed bytes (TCP) or datagram size (UDP) before a peer is dropped",
        |s, v| {
            s.max_request_bytes = count(v, 1, 1 << 30)? as usize;
            Ok(())
        },
    ),
    (
        "max_connections",
        "echo server: connections per server thread",
        |s, v| {
            s.max_connections = count(v, 1, 100_000)? as usize;
            Ok(())
        },
    ),
    ("bulk_mib", "bulk: MiB to receive", |s, v| {
        s.bulk_mib = count(v, 1, 1 << 20)?;
        Ok(())
    }),
    ("recv_bytes", "bulk: bytes per recv", |s, v| {
        s.recv_bytes = count(v, 1, 1 << 24)? as usize;
        Ok(())
    }),
    (
        "listen",
        "server: address to listen on (default 127.0.0.1)",
        |s, v| {
            let t = string(v)?;
            s.listen = t
                .parse()
                .map_err(|_| format!("'{t}' is not an IP address"))?;
            Ok(())
        },
    ),
    (
        "port",
        "server: first port; echo servers take io_threads ports from it (0: any free port)",
        |s, v| {
            s.port = count(v, 0, 65_535)? as u16;
            Ok(())
        },
    ),
    (
        "fault",
        "fault injection in cpu-0: panic-holding-gil, panic-released, hang-holding-gil",
        |s, v| {
            s.fault = match string(v)?.as_str() {
                "none" => None,
                "panic-holding-gil" => Some(Fault::PanicHoldingGil),
                "panic-released" => Some(Fault::PanicReleased),
                "hang-holding-gil" => Some(Fault::HangHoldingGil),
                o => {
                    return Err(format!(
                        "'{o}' is not none, panic-holding-gil, panic-released or hang-holding-gil"
                    ))
                }
            };
            Ok(())
        },
    ),
    (
        "record",
        "record histograms and counters (false: the baseline for instrumentation cost)",
        |s, v| {
            s.record = v.as_bool().ok_or_else(|| expected("true or false", v))?;
            Ok(())
        },
    ),
    (
        "watchdog",
        "stop a run in which no thread progresses for this long (auto: 10 x interval + 1s; off)",
        |s, v| {
            s.watchdog = match v.as_str() {
                Some("auto") => Watchdog::Auto,
                Some("off") => Watchdog::Off,
                _ => Watchdog::After(positive_duration(v)?),
            };
            Ok(())
        },
    ),
];

/// Longest scenario name (it becomes part of output file names).
const MAX_NAME: usize = 100;
/// Longest `call_work`: one request or native call must stay far shorter than a run.
const MAX_CALL_WORK: Duration = Duration::from_millis(100);
/// Most `work_ticks` per request (about 50 ms of hashing at the default 64 bytes a tick).
const MAX_WORK_TICKS: u64 = 1_000_000;
/// Longest `warmup`.
const MAX_WARMUP: Duration = Duration::from_secs(60);
/// Shortest and longest period of a design's timer or tick thread.
const MIN_TIMER: Duration = Duration::from_micros(10);
const MAX_TIMER: Duration = Duration::from_secs(10);
/// Longest `spin`: a spinning waiter burns a core.
const MAX_SPIN: Duration = Duration::from_millis(1);

/// Parses a comma-separated list of designs, each named once.
pub fn parse_locks(list: &str) -> Result<Vec<LockKind>, String> {
    let mut locks: Vec<LockKind> = Vec::new();
    for l in list.split(',') {
        let l: LockKind = l.trim().parse()?;
        if locks.contains(&l) {
            return Err(format!("'{l}' is named twice"));
        }
        locks.push(l);
    }
    Ok(locks)
}

/// Keys a sweep may not vary: they change nothing a run does.
const NOT_SWEEPABLE: &[&str] = &["locks", "sweep"];

/// Reads a sweep `KEY=V1,V2,...`: a key that changes the run, at least two values, no
/// value twice, and each value one the key's setter accepts (tried on a copy of `s`).
/// Returns the key as `KEYS` spells it and the values.
pub fn parse_sweep(spec: &str, s: &Scenario) -> Result<(&'static str, Vec<String>), String> {
    let (k, vals) = split_sweep(spec)?;
    let Some((key, _, set)) = KEYS.iter().find(|(name, _, _)| *name == k) else {
        return Err(format!("'{k}' is not a key (`gilbench keys` lists them)"));
    };
    if NOT_SWEEPABLE.contains(key) {
        return Err(format!(
            "key '{key}' cannot be swept: it changes nothing in a run"
        ));
    }
    if vals.len() < 2 {
        return Err("a sweep needs at least two values".into());
    }
    // Each value as written and the scenario it makes: two spellings of one value
    // (`1ms,1000us`) make the same scenario.
    let mut seen: Vec<(&str, String)> = Vec::new();
    for raw in &vals {
        let v = cli_value(raw).map_err(|e| format!("{key}={raw}: {e}"))?;
        let mut with = s.clone();
        set(&mut with, &v).map_err(|e| format!("{key}={raw}: {e}"))?;
        let made = format!("{with:?}");
        if let Some((first, _)) = seen.iter().find(|(_, m)| *m == made) {
            return Err(if first == raw {
                format!("'{raw}' is named twice")
            } else {
                format!("'{first}' and '{raw}' are the same value, named twice")
            });
        }
        seen.push((raw, made));
    }
    Ok((key, vals))
}

/// Splits `KEY=V1,V2,...` at top-level commas (commas inside `[...]` belong to a value).
pub fn split_sweep(kv: &str) -> Result<(&str, Vec<String>), String> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| format!("'{kv}' is not KEY=V1,V2,..."))?;
    let mut vals = Vec::new();
    let (mut depth, mut cur) = (0i32, String::new());
    for c in v.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                vals.push(std::mem::take(&mut cur).trim().to_owned());
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    vals.push(cur.trim().to_owned());
    if vals.iter().any(String::is_empty) {
        return Err(format!("'{kv}' has an empty value"));
    }
    Ok((k.trim(), vals))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

fn expected(what: &str, v: &Value) -> String {
    format!("expected {what}, found {}", type_name(v))
}

fn string(v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| expected("a string", v))
}

/// A string that is shown on a terminal and in reports: one line, no control characters.
fn text(v: &Value) -> Result<String, String> {
    let t = string(v)?;
    if let Some(c) = t.chars().find(|c| c.is_control()) {
        return Err(format!(
            "'{}' contains the control character {}",
            super::shown(&t),
            c.escape_unicode()
        ));
    }
    Ok(t)
}

fn count(v: &Value, min: u64, max: u64) -> Result<u64, String> {
    // A number too large for TOML's integers reaches here as the string it was written as.
    if let Some(digits) = v
        .as_str()
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("{digits} is too large (at most {max})"));
    }
    let n = v
        .as_integer()
        .ok_or_else(|| expected("a whole number", v))?;
    if n < min as i64 {
        return Err(format!("{n} is too small (at least {min})"));
    }
    if n as u64 > max {
        return Err(format!("{n} is too large (at most {max})"));
    }
    Ok(n as u64)
}

fn duration(v: &Value) -> Result<Duration, String> {
    parse_duration(
        v.as_str()
            .ok_or_else(|| expected("a duration string like \"5ms\"", v))?,
    )
}

fn duration_at_most(v: &Value, max: Duration) -> Result<Duration, String> {
    let d = duration(v)?;
    if d > max {
        return Err(format!(
            "'{}' is too long (at most {})",
            v.as_str().unwrap_or_default().trim(),
            format_duration(max)
        ));
    }
    Ok(d)
}

/// The shortest run: a shorter one would measure little but its own start and stop.
const MIN_DURATION: Duration = Duration::from_millis(1);

fn positive_duration(v: &Value) -> Result<Duration, String> {
    let d = duration(v)?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

/// A timer thread's period: a thread that fires more often than every 10 us would only burn
/// a core, and one slower than 10 s never fires in a run.
fn timer_period(v: &Value) -> Result<Duration, String> {
    let d = duration(v)?;
    if d < MIN_TIMER || d > MAX_TIMER {
        return Err(format!(
            "'{}' is not between {} and {}",
            v.as_str().unwrap_or_default().trim(),
            format_duration(MIN_TIMER),
            format_duration(MAX_TIMER)
        ));
    }
    Ok(d)
}

fn duration_list(v: &Value) -> Result<Vec<Duration>, String> {
    let items: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        Value::String(s) => s
            .split(',')
            .map(|p| Value::String(p.trim().to_owned()))
            .collect(),
        _ => return Err(expected("a list of durations like [\"1ms\",\"5ms\"]", v)),
    };
    if items.is_empty() {
        return Err("the list is empty".into());
    }
    items.iter().map(positive_duration).collect()
}

/// Reads a command-line value: TOML syntax when it parses (`3`, `true`, `"x"`, `[..]`),
/// otherwise the text itself as a string (`5ms`, `timed`), and `[a,b]` as a list of strings.
pub fn cli_value(raw: &str) -> Result<Value, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err("empty value".into());
    }
    if let Ok(mut t) = format!("v = {raw}").parse::<toml::Table>() {
        if let Some(v) = t.remove("v") {
            return Ok(v);
        }
    }
    if let Some(inner) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return Ok(Value::Array(
            inner
                .split(',')
                .map(|p| Value::String(p.trim().to_owned()))
                .collect(),
        ));
    }
    Ok(Value::String(raw.to_owned()))
}
