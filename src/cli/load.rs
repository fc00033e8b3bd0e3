//! `gilbench load`: the load generator alone, against any echo server.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gilbench::metrics::Percentiles;
use gilbench::pin;
use gilbench::result::{GilSummary, IoSummary, RunResult};
use gilbench::scenario::{cli_value, Scenario};
use gilbench::signals;
use gilbench::stall::{load_running_time, note_stalls, stopped_between, Naps, Stall};
use gilbench::workload::limits;
use gilbench::workload::loadgen::{run_echo_load, LoadConfig, LoadResult};

use crate::{Failure, LoadOpts};

/// Reads each flag through the scenario key of the same meaning, so the checks and
/// messages are the ones `run` gives.
fn scenario_of(o: &LoadOpts) -> Result<Scenario, Failure> {
    let mut s = Scenario::default();
    let flags = [
        ("transport", "--transport", &o.transport),
        ("rate", "--rate", &o.rate),
        ("duration", "--duration", &o.duration),
        ("connections", "--connections", &o.connections),
        ("request_bytes", "--request-bytes", &o.request_bytes),
        ("warmup", "--warmup", &o.warmup),
        ("timeout", "--timeout", &o.timeout),
    ];
    for (key, flag, raw) in flags {
        let v = cli_value(raw).map_err(|e| Failure::Input(format!("{flag} {raw}: {e}")))?;
        let v = match (key, v) {
            ("duration" | "warmup" | "timeout" | "transport", toml::Value::Integer(i)) => {
                toml::Value::String(i.to_string())
            }
            (_, v) => v,
        };
        s.set_value(key, &v, &format!("{flag} {raw}"))
            .map_err(Failure::Input)?;
    }
    if s.transport == gilbench::workload::Transport::Udp
        && s.request_bytes > gilbench::workload::MAX_DATAGRAM
    {
        return Err(Failure::Input(format!(
            "--request-bytes {}: more than a UDP datagram can carry ({} bytes)",
            s.request_bytes,
            gilbench::workload::MAX_DATAGRAM
        )));
    }
    if s.transport == gilbench::workload::Transport::Udp && s.request_bytes < 8 {
        return Err(Failure::Input(format!(
            "--request-bytes {}: at least 8 over UDP (requests carry a sequence number)",
            s.request_bytes
        )));
    }
    Ok(s)
}

fn resolve(target: &str) -> Result<SocketAddr, Failure> {
    // `::1:7000` is an IPv6 address (`::1:7000` itself, no port) or `[::1]:7000`: the
    // resolver would take the latter silently.
    if target.matches(':').count() > 1 && !target.starts_with('[') {
        return Err(Failure::Input(format!(
            "--connect {target}: an IPv6 address with a port is written in brackets, e.g. [::1]:7000"
        )));
    }
    let mut addrs = target.to_socket_addrs().map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::InvalidInput {
            "not HOST:PORT".to_owned()
        } else {
            format!("cannot resolve ({e})")
        };
        Failure::Input(format!("--connect {target}: {why}"))
    })?;
    let addr = addrs
        .next()
        .ok_or_else(|| Failure::Input(format!("--connect {target}: the name has no address")))?;
    if addr.port() == 0 {
        return Err(Failure::Input(format!(
            "--connect {target}: port 0 is no server's port"
        )));
    }
    Ok(addr)
}

/// `--pin CORE`: a core this process may run on, or none.
fn core_of(o: &LoadOpts) -> Result<Option<usize>, Failure> {
    let Some(raw) = &o.pin else {
        return Ok(None);
    };
    let core: usize = raw
        .trim()
        .parse()
        .map_err(|_| Failure::Input(format!("--pin {raw}: not a core number")))?;
    match pin::available_cores() {
        Some(cores) if !cores.contains(&core) => {
            let list: Vec<String> = cores.iter().map(|c| c.to_string()).collect();
            Err(Failure::Input(format!(
                "--pin {raw}: this process may not run on core {core} (it may use {})",
                list.join(",")
            )))
        }
        _ => Ok(Some(core)),
    }
}

/// Runs `gilbench load` against an external server and returns its result (written even
/// when no request succeeded).
pub fn run(o: &LoadOpts) -> Result<RunResult, Failure> {
    let s = scenario_of(o)?;
    let addr = resolve(&o.connect)?;
    let core = core_of(o)?;
    ensure_descriptors(&s)?;
    let cfg = load_config(&s, addr);
    let t0 = Instant::now();
    let (res, pinned, stalls) = drive_load(&cfg, core, t0);
    let mut res = res.map_err(Failure::Run)?;
    // A stop of the whole process held the generator up too: the stall's note says so.
    res.leave_out_stops(|from, to| stopped_between(&stalls, from, to));
    let mut notes = run_notes(core, pinned, &res);
    let running = leave_out_stalls(&mut res, &s, &stalls, &mut notes);
    let interrupted = signals::caught().is_some();
    // A run in which no request succeeded failed, and its result (the failures, the
    // errors) is written all the same.
    let failure = (res.requests == 0 && !interrupted).then(|| {
        format!(
            "no request succeeded: {}",
            res.why_none_succeeded(s.timeout)
        )
    });
    let partial = interrupted || res.cut_short.is_some() || failure.is_some() || !stalls.is_empty();
    let pinned_core = match (core, pinned) {
        (Some(c), true) => Some(c),
        _ => None,
    };
    Ok(RunResult {
        scenario: "load".into(),
        lock: "external".into(),
        sequence: None,
        params: params_json(&s, addr, pinned_core),
        wall_s: t0.elapsed().as_secs_f64(),
        measured_s: res.measured_s,
        cpu: None,
        io: running.then(|| io_summary(&s, &res, pinned_core)),
        gil: GilSummary::default(),
        threads: Vec::new(),
        notes,
        partial,
        failure,
        baseline: None,
        label: "load".into(),
        repeat: 0,
        hists: [("io-latency".to_owned(), res.latency.clone())]
            .into_iter()
            .collect(),
        intervals: Vec::new(),
        trace: None,
    })
}

/// Leaves the time the process did not run (`stalls`, from the load's start) out of the
/// measured window, so that rates cover the time it ran, and says when it did not run.
/// Returns whether any running time is left to measure (a stop can take the whole window).
fn leave_out_stalls(
    res: &mut LoadResult,
    s: &Scenario,
    stalls: &[Stall],
    notes: &mut Vec<String>,
) -> bool {
    if stalls.is_empty() {
        return true;
    }
    let window = Duration::from_secs_f64(res.measured_s);
    let running = load_running_time(stalls, s.warmup, window, notes);
    let ran = running.unwrap_or_default();
    note_stalls(stalls, s.warmup, window, ran, notes);
    res.measured_s = ran.as_secs_f64();
    running.is_some()
}

/// The result's notes: a pin that did not take, the load generator's own notes, its
/// connection errors, and why the run was cut short.
fn run_notes(core: Option<usize>, pinned: bool, res: &LoadResult) -> Vec<String> {
    let mut notes = Vec::new();
    if let (Some(c), false) = (core, pinned) {
        notes.push(format!(
            "could not pin the load generator to core {c}: it ran unpinned and slept in its polls"
        ));
    }
    notes.extend(res.notes.iter().cloned());
    notes.extend(res.held_up_note());
    if let Some(e) = &res.first_error {
        notes.push(format!("{} connection errors, the first: {e}", res.errors));
    }
    if let Some(c) = &res.cut_short {
        notes.push(format!(
            "{c}; rates cover the {:.2}s measured",
            res.measured_s
        ));
    }
    notes
}

/// Refuses, before any connection is opened, a run that would run out of descriptors.
fn ensure_descriptors(s: &Scenario) -> Result<(), Failure> {
    // One descriptor per connection, and a few more.
    let needed = s.connections as u64 + 32;
    if let Some(limit) = limits::ensure_nofile(needed).filter(|&l| l < needed) {
        return Err(Failure::Input(format!(
            "--connections {}: needs about {needed} open file descriptors; the limit here is {limit} (ulimit -n)",
            s.connections
        )));
    }
    Ok(())
}

/// The load generator's settings for one target; `busy_wait` is decided once the load
/// thread knows whether it was pinned.
fn load_config(s: &Scenario, addr: SocketAddr) -> LoadConfig {
    LoadConfig {
        transport: s.transport,
        targets: vec![addr],
        connections: s.connections,
        rate: s.rate,
        request_bytes: s.request_bytes,
        warmup: s.warmup,
        duration: s.duration,
        timeout: s.timeout,
        busy_wait: false,
        intervals: None,
        window_over: None,
    }
}

/// Runs the load on a thread of its own (pinned to `core` if asked) while this one
/// watches for a signal and for the process being stopped; returns the load's result,
/// whether the pin took, and the stalls (times from `start`).
fn drive_load(
    cfg: &LoadConfig,
    core: Option<usize>,
    start: Instant,
) -> (Result<LoadResult, String>, bool, Vec<Stall>) {
    let stop = AtomicBool::new(false);
    let mut naps = Naps::new(start);
    std::thread::scope(|scope| {
        let stop = &stop;
        // Only the load thread is pinned (this one watches for signals, elsewhere), and it
        // spins only when pinned: unpinned, spinning would take a core from the server.
        let spawned = std::thread::Builder::new()
            .name("load".into())
            .spawn_scoped(scope, move || {
                let pinned = core.is_some_and(pin::pin_current);
                let cfg = LoadConfig {
                    busy_wait: pinned,
                    ..cfg.clone()
                };
                let r = run_echo_load(&cfg, stop);
                stop.store(true, Ordering::SeqCst);
                (r, pinned)
            });
        let load = match spawned {
            Ok(h) => h,
            Err(e) => {
                let msg =
                    format!("cannot start the load generator: out of memory or threads ({e})");
                return (Err(msg), false, Vec::new());
            }
        };
        while !stop.load(Ordering::SeqCst) {
            if signals::caught().is_some() {
                stop.store(true, Ordering::SeqCst);
            }
            naps.nap(Duration::from_millis(10));
        }
        let (r, pinned) = load
            .join()
            .unwrap_or_else(|_| (Err("the load generator panicked".into()), false));
        (r, pinned, std::mem::take(&mut naps.stalls))
    })
}

/// The run's parameters as recorded in its result; `pinned_core` is the core the load thread
/// was actually pinned to.
fn params_json(s: &Scenario, addr: SocketAddr, pinned_core: Option<usize>) -> serde_json::Value {
    serde_json::json!({
        "connect": addr.to_string(),
        "transport": s.transport,
        "connections": s.connections,
        "rate": s.rate,
        "request_bytes": s.request_bytes,
        "duration_s": s.duration.as_secs_f64(),
        "warmup_s": s.warmup.as_secs_f64(),
        "timeout_s": s.timeout.as_secs_f64(),
        "pin": match pinned_core {
            Some(c) => format!("core {c}"),
            None => "none".to_owned(),
        },
    })
}

/// What the load generator measured, as the result's I/O summary.
fn io_summary(s: &Scenario, res: &LoadResult, pinned_core: Option<usize>) -> IoSummary {
    IoSummary {
        requests: res.requests,
        requests_per_sec: gilbench::metrics::per_sec(res.requests as f64, res.measured_s),
        bytes: res.bytes,
        transfer_s: None,
        latency_us: Percentiles::of(&res.latency),
        latency_dist: gilbench::metrics::distribution(&res.latency),
        mode: if s.rate > 0.0 {
            "open".into()
        } else {
            "closed".into()
        },
        rate: s.rate,
        failed: res.failed,
        late_sends: res.late,
        lateness_us: Percentiles::of(&res.lateness),
        errors: res.errors,
        first_error: res.first_error.clone(),
        loadgen: match pinned_core {
            Some(c) => format!("this process, core {c}, spinning"),
            None => "this process, unpinned".into(),
        },
        ..Default::default()
    }
}
