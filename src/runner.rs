//! The runner: builds the GIL a scenario names, binds its sockets, starts and pins its
//! interpreter threads and the load generator, lets them loose together, stops them after
//! `duration` (or when a bulk transfer is done, a thread fails, or a signal arrives), joins
//! them and collects one [`RunResult`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::gil::{FifoGil, Gil, LockKind, MlfqGil, NoGil, Release, TickGil, TimedGil};
use crate::interp::{Beacon, Interp};
use crate::metrics::{
    merge, new_hist, Counters, CtxSwitches, Hist, Interval, IntervalHists, Percentiles,
    ThreadMetrics,
};
use crate::pin;
use crate::result::{CpuSummary, GilSummary, IoSummary, RunResult, ThreadResult};
use crate::scenario::{CpuWork, IoWork, Scenario};
use crate::signals;
use crate::trace::{chrome_trace, ThreadTrace, TraceBuf};
use crate::workload::loadgen::{self, LoadConfig, LoadResult};
use crate::workload::server::{self, io_reason, EchoConfig, Listener, ServerStats};
use crate::workload::{calibrate_tick_ns, cpu, TickHasher, WorkCtx};

/// Why a run did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario or options cannot run (exit status 2).
    #[error("{0}")]
    BadInput(String),
    /// The run started and failed (exit status 1).
    #[error("{0}")]
    Failed(String),
}

/// Whether the load generator runs here or somewhere else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Server threads and load generator in this process.
    Run,
    /// Server threads only, for an outside client (`gilbench serve`).
    Serve,
}

/// Runs a scenario on the design it names.
pub fn run(sc: &Scenario) -> Result<RunResult, RunError> {
    run_mode(sc, Mode::Run, &Instrument::default(), &|_| {})
}

/// Optional recording beyond the standard metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct Instrument {
    /// Record a GIL timeline, keeping the last this many events over all threads.
    pub trace_events: Option<usize>,
    /// Cut histograms into intervals of this length (for HdrHistogram interval logs).
    pub hlog_interval: Option<Duration>,
}

/// Runs a scenario in `mode`; `on_listening` is told the server addresses before the start.
pub fn run_mode(
    sc: &Scenario,
    mode: Mode,
    inst: &Instrument,
    on_listening: &dyn Fn(&[SocketAddr]),
) -> Result<RunResult, RunError> {
    sc.validate().map_err(RunError::BadInput)?;
    let p = &sc.gil_params();
    match sc.lock {
        LockKind::Tick => run_with(TickGil::new(p), sc, mode, inst, on_listening),
        LockKind::Timed => run_with(TimedGil::new(p), sc, mode, inst, on_listening),
        LockKind::Mlfq => run_with(MlfqGil::new(p), sc, mode, inst, on_listening),
        LockKind::Fifo => run_with(FifoGil::new(p), sc, mode, inst, on_listening),
        LockKind::None => run_with(NoGil::new(), sc, mode, inst, on_listening),
    }
}

/// Holds threads until every one is ready, then releases them together (or aborts them).
struct StartGate {
    state: Mutex<(usize, Option<bool>)>,
    cv: Condvar,
}

impl StartGate {
    fn new() -> Self {
        StartGate {
            state: Mutex::new((0, None)),
            cv: Condvar::new(),
        }
    }
    /// Reports ready and waits for the start; false if the run was aborted.
    fn ready_and_wait(&self) -> bool {
        let mut s = self.state.lock();
        s.0 += 1;
        self.cv.notify_all();
        while s.1.is_none() {
            self.cv.wait(&mut s);
        }
        s.1 == Some(true)
    }
    fn wait_ready(&self, n: usize) {
        let mut s = self.state.lock();
        while s.0 < n {
            self.cv.wait(&mut s);
        }
    }
    fn open(&self, go: bool) {
        self.state.lock().1 = Some(go);
        self.cv.notify_all();
    }
}

/// Sets `failed` if its thread unwinds, so the runner stops the run at once.
struct PanicFlag<'a>(&'a AtomicBool);

impl Drop for PanicFlag<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

struct Shared {
    stop: AtomicBool,
    failed: AtomicBool,
    /// Server threads whose work is over (a bulk transfer completed).
    io_done: AtomicUsize,
    /// The load generator has finished (its servers may stop now).
    load_done: AtomicBool,
    /// The start of the run, set just before the threads are let loose.
    epoch: std::sync::OnceLock<Instant>,
    inst: Instrument,
    gil_threads: usize,
    /// One per interpreter thread, for the watchdog.
    beacons: Vec<crossbeam_utils::CachePadded<Beacon>>,
    names: Vec<String>,
    last_holder: AtomicUsize,
    gate: StartGate,
}

/// The watchdog: if no interpreter thread makes progress for `limit` while none is in a
/// blocking call, the run is hung on the GIL; it says who holds it and who waits, and ends
/// the process (exit status 1) instead of hanging.
struct Watch {
    limit: Option<Duration>,
    last: u64,
    since: Instant,
}

impl Watch {
    fn new(limit: Option<Duration>) -> Self {
        Watch {
            limit,
            last: u64::MAX,
            since: Instant::now(),
        }
    }

    fn check(&mut self, shared: &Shared) {
        let Some(limit) = self.limit else { return };
        let progress: u64 = shared
            .beacons
            .iter()
            .map(|b| b.progress.load(Ordering::Relaxed))
            .sum();
        let states: Vec<u8> = shared
            .beacons
            .iter()
            .map(|b| b.state.load(Ordering::Relaxed))
            .collect();
        let now = Instant::now();
        if progress != self.last
            || states.contains(&Beacon::IN_CALL)
            || states.iter().all(|&s| s == Beacon::DONE)
        {
            self.last = progress;
            self.since = now;
            return;
        }
        if now - self.since < limit {
            return;
        }
        let holder = states
            .iter()
            .position(|&s| s == Beacon::HOLDS_GIL)
            .map(|i| shared.names[i].clone());
        let others: Vec<String> = states
            .iter()
            .enumerate()
            .filter(|(_, &s)| s != Beacon::HOLDS_GIL)
            .map(|(i, &s)| format!("{} is {}", shared.names[i], Beacon::describe(s)))
            .collect();
        let who = match holder {
            Some(h) => format!("{h} holds the GIL and has made no progress"),
            None => "no thread holds the GIL".to_owned(),
        };
        eprintln!(
            "gilbench: watchdog: no interpreter thread made progress for {:.1}s: {who}; {}; the run was stopped",
            limit.as_secs_f64(),
            if others.is_empty() { "no other threads".to_owned() } else { others.join(", ") }
        );
        std::process::exit(1);
    }
}

/// What an interpreter thread does.
enum Role {
    Cpu { index: usize },
    Echo { index: usize, listener: Listener },
    Bulk { listener: Listener },
}

impl Role {
    fn name(&self) -> String {
        match self {
            Role::Cpu { index } => format!("cpu-{index}"),
            Role::Echo { index, .. } => format!("echo-{index}"),
            Role::Bulk { .. } => "bulk-0".into(),
        }
    }
}

/// What one interpreter thread brings back.
struct ThreadOut {
    result: ThreadResult,
    metrics: ThreadMetrics,
    /// A socket error that ended the thread's work early.
    error: Option<String>,
    trace: Option<ThreadTrace>,
    /// Interval histograms of GIL wait and hold (`--hlog`).
    intervals: Vec<Interval>,
}

enum LoadOut {
    Echo(Box<Result<LoadResult, String>>),
    Bulk(Result<f64, String>),
}

fn bind_listeners(sc: &Scenario) -> Result<Vec<Listener>, RunError> {
    (0..sc.io_thread_count())
        .map(|i| {
            let port = if sc.port == 0 {
                0
            } else {
                sc.port.checked_add(i as u16).unwrap_or(0)
            };
            let addr = SocketAddr::new(sc.listen, port);
            Listener::bind(sc.transport, addr, sc.io == IoWork::Bulk).map_err(|e| {
                RunError::BadInput(format!("cannot listen on {addr}: {}", io_reason(&e)))
            })
        })
        .collect()
}

fn run_with<G: Gil>(
    gil: G,
    sc: &Scenario,
    mode: Mode,
    inst: &Instrument,
    on_listening: &dyn Fn(&[SocketAddr]),
) -> Result<RunResult, RunError> {
    let listeners = bind_listeners(sc)?;
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr())
        .collect::<Result<_, _>>()
        .map_err(|e| RunError::Failed(format!("cannot read a listening address: {e}")))?;
    let mut roles: Vec<Role> = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        roles.push(match sc.io {
            IoWork::Bulk => Role::Bulk { listener },
            _ => Role::Echo { index, listener },
        });
    }
    roles.extend((0..sc.cpu_threads).map(|index| Role::Cpu { index }));
    let n = roles.len();
    let plan =
        pin::plan(&sc.pin, n).map_err(|e| RunError::BadInput(format!("--pin {}: {e}", sc.pin)))?;
    let with_load = mode == Mode::Run && sc.io != IoWork::None;
    let tick_ns = calibrate_tick_ns(sc.tick_bytes);
    let call_work_ticks = if sc.call_work.is_zero() {
        0
    } else {
        (sc.call_work.as_nanos() as f64 / tick_ns).ceil() as u64
    };
    let shared = Shared {
        stop: AtomicBool::new(false),
        failed: AtomicBool::new(false),
        io_done: AtomicUsize::new(0),
        load_done: AtomicBool::new(false),
        epoch: std::sync::OnceLock::new(),
        inst: *inst,
        gil_threads: n,
        beacons: (0..n).map(|_| Default::default()).collect(),
        names: roles.iter().map(Role::name).collect(),
        last_holder: AtomicUsize::new(usize::MAX),
        gate: StartGate::new(),
    };
    let mut notes = plan.notes.clone();
    let loadgen_place = match (with_load, plan.spare, sc.pin == pin::PinMode::None) {
        (false, _, _) => String::new(),
        (true, Some(c), false) => format!("core {c}"),
        (true, _, true) => "unpinned".to_owned(),
        (true, None, false) => {
            notes.push("no core is free for the load generator: it runs unpinned and shares cores with GIL threads (its lateness is reported)".into());
            "unpinned, shares cores with GIL threads".to_owned()
        }
    };
    let load_core = if sc.pin == pin::PinMode::None {
        None
    } else {
        plan.spare
    };
    let run_for = match (mode, sc.io) {
        (Mode::Run, IoWork::Echo) => sc.warmup + sc.duration,
        _ => sc.duration,
    };
    on_listening(&addrs);

    let (mut outs, mut load, measured, wall, interrupted) = thread::scope(|scope| {
        let mut handles = Vec::with_capacity(n);
        let abort = |handles: Vec<thread::ScopedJoinHandle<'_, ThreadOut>>, msg: String| {
            shared.gate.open(false);
            for h in handles {
                let _ = h.join();
            }
            Err(RunError::Failed(msg))
        };
        for (id, role) in roles.into_iter().enumerate() {
            let (gil, shared, core) = (&gil, &shared, plan.cores[id]);
            let name = role.name();
            let spawned = thread::Builder::new()
                .name(name.clone())
                .spawn_scoped(scope, move || {
                    gil_thread(gil, shared, sc, id, role, core, call_work_ticks)
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => return abort(handles, format!("cannot start thread {name}: {e}")),
            }
        }
        let load_handle = if with_load {
            let (shared, addrs) = (&shared, addrs.clone());
            let spawned =
                thread::Builder::new()
                    .name("load".into())
                    .spawn_scoped(scope, move || {
                        let pinned = load_core.is_some_and(pin::pin_current);
                        if !shared.gate.ready_and_wait() {
                            return LoadOut::Bulk(Err("aborted".into()));
                        }
                        struct Done<'a>(&'a AtomicBool);
                        impl Drop for Done<'_> {
                            fn drop(&mut self) {
                                self.0.store(true, Ordering::SeqCst);
                            }
                        }
                        let _done = Done(&shared.load_done);
                        match sc.io {
                            IoWork::Bulk => LoadOut::Bulk(loadgen::run_bulk_send(
                                addrs[0],
                                sc.bulk_mib << 20,
                                sc.timeout,
                                &shared.stop,
                            )),
                            _ => {
                                let cfg = LoadConfig {
                                    transport: sc.transport,
                                    targets: addrs,
                                    connections: sc.connections,
                                    rate: sc.rate,
                                    request_bytes: sc.request_bytes,
                                    warmup: sc.warmup,
                                    duration: sc.duration,
                                    timeout: sc.timeout,
                                    busy_wait: pinned,
                                    intervals: shared.inst.hlog_interval,
                                };
                                LoadOut::Echo(Box::new(loadgen::run_echo_load(&cfg, &shared.stop)))
                            }
                        }
                    });
            match spawned {
                Ok(h) => Some(h),
                Err(e) => return abort(handles, format!("cannot start the load generator: {e}")),
            }
        } else {
            None
        };
        shared.gate.wait_ready(n + usize::from(with_load));
        let start = Instant::now();
        let _ = shared.epoch.set(start);
        shared.gate.open(true);
        let mut interrupted = None;
        let mut watch = Watch::new(sc.watchdog_limit());
        while !shared.failed.load(Ordering::SeqCst) {
            watch.check(&shared);
            if let Some(sig) = signals::caught() {
                interrupted = Some(sig);
                break;
            }
            if sc.io == IoWork::Bulk && shared.io_done.load(Ordering::SeqCst) > 0 {
                break;
            }
            // With a load generator here, the servers keep serving until it has finished
            // its window, so that it never sees them go away; the grace bounds a stuck client.
            if with_load && shared.load_done.load(Ordering::SeqCst) {
                break;
            }
            let limit = if with_load && sc.io == IoWork::Echo {
                run_for + sc.timeout + Duration::from_secs(2)
            } else {
                run_for
            };
            let left = limit.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(Duration::from_millis(10)));
        }
        shared.stop.store(true, Ordering::SeqCst);
        let measured = start.elapsed();
        let mut outs = Vec::with_capacity(n);
        let mut panics = Vec::new();
        for h in handles {
            let name = h.thread().name().unwrap_or("?").to_owned();
            match h.join() {
                Ok(o) => outs.push(o),
                Err(payload) => panics.push(format!(
                    "thread {name} panicked: {}",
                    panic_message(&*payload)
                )),
            }
        }
        let load = match load_handle.map(|h| h.join()) {
            None => None,
            Some(Ok(l)) => Some(l),
            Some(Err(payload)) => {
                panics.push(format!(
                    "the load generator panicked: {}",
                    panic_message(&*payload)
                ));
                None
            }
        };
        if !panics.is_empty() {
            return Err(RunError::Failed(format!(
                "{}; the run was stopped",
                panics.join("; ")
            )));
        }
        Ok((outs, load, measured, start.elapsed(), interrupted))
    })?;

    if let Some(e) = outs
        .iter()
        .find_map(|o| o.error.as_ref().map(|e| format!("{}: {e}", o.result.name)))
    {
        return Err(RunError::Failed(e));
    }
    for o in &outs {
        if let (Some(want), Some(got)) = (o.result.pinned, o.result.core) {
            if want != got {
                notes.push(format!(
                    "{} was pinned to core {want} but ended on core {got}",
                    o.result.name
                ));
            }
        }
    }
    if let Some(t) = outs
        .iter()
        .enumerate()
        .find(|(i, o)| plan.cores[*i].is_some() && o.result.pinned.is_none())
    {
        notes.push(format!(
            "{}: the OS refused to pin it; it ran unpinned",
            t.1.result.name
        ));
    }
    notes.push(format!(
        "one {}-byte tick costs {:.0} ns here; call_work = {} ticks",
        sc.tick_bytes, tick_ns, call_work_ticks
    ));
    if let Some(sig) = interrupted {
        notes.push(format!(
            "interrupted by {}: the run covers {:.2}s of {:.2}s",
            signals::name(sig),
            measured.as_secs_f64(),
            run_for.as_secs_f64()
        ));
    }

    let secs = measured.as_secs_f64();
    let mut total = Counters::default();
    let mut ctx = CtxSwitches::default();
    let (mut wait, mut hold, mut reacq, mut io_reacq) =
        (new_hist(), new_hist(), new_hist(), new_hist());
    let mut server = ServerStats::default();
    for o in &outs {
        total.add(&o.metrics.counters);
        ctx.add(o.result.ctx_switches);
        merge(&mut wait, &o.metrics.wait);
        merge(&mut hold, &o.metrics.hold);
        merge(&mut reacq, &o.metrics.reacquire);
        if let Some(s) = &o.result.server {
            server.add(s);
            merge(&mut io_reacq, &o.metrics.reacquire);
        }
    }
    let cpu_threads: Vec<&ThreadOut> = outs.iter().filter(|o| o.result.role == "cpu").collect();
    let cpu = (!cpu_threads.is_empty()).then(|| {
        let ticks: u64 = cpu_threads.iter().map(|o| o.metrics.counters.ticks).sum();
        let bytes: u64 = cpu_threads.iter().map(|o| o.metrics.counters.bytes).sum();
        CpuSummary {
            threads: cpu_threads.len(),
            ticks,
            ticks_per_sec: ticks as f64 / secs,
            bytes,
            bytes_per_sec: bytes as f64 / secs,
        }
    });
    // Full histograms, interval histograms and the timeline, for the exporters.
    let mut hists = BTreeMap::new();
    let mut intervals: Vec<(String, Interval)> = Vec::new();
    let mut traces = Vec::new();
    for o in &mut outs {
        for iv in std::mem::take(&mut o.intervals) {
            let Interval { start, len, hists } = iv;
            let [w, h]: [crate::metrics::Hist; 2] = hists.try_into().expect("two interval metrics");
            intervals.push((
                format!("{}.gil-wait", o.result.name),
                Interval {
                    start,
                    len,
                    hists: vec![w],
                },
            ));
            intervals.push((
                format!("{}.gil-hold", o.result.name),
                Interval {
                    start,
                    len,
                    hists: vec![h],
                },
            ));
        }
        traces.extend(o.trace.take());
    }
    if let Some(LoadOut::Echo(l)) = &mut load {
        if let Ok(l) = l.as_mut() {
            hists.insert("io-latency".to_owned(), l.latency.clone());
            for iv in std::mem::take(&mut l.intervals) {
                intervals.push(("load.io-latency".to_owned(), iv));
            }
        }
    }
    intervals.sort_by_key(|(_, iv)| iv.start);
    let trace = shared_trace(&traces, measured, sc, G::NAME);
    hists.insert("gil-wait".to_owned(), wait.clone());
    hists.insert("gil-hold".to_owned(), hold.clone());
    if sc.io != IoWork::None {
        hists.insert("io-reacquire".to_owned(), io_reacq.clone());
    }
    let io = match sc.io {
        IoWork::None => None,
        _ => Some(io_summary(
            sc,
            mode,
            load,
            server,
            &io_reacq,
            secs,
            loadgen_place,
            &mut notes,
        )?),
    };
    let mut params = sc.params_json();
    params["tick_ns"] = serde_json::json!((tick_ns * 10.0).round() / 10.0);
    params["call_work_ticks"] = serde_json::json!(call_work_ticks);
    params["listen"] = serde_json::json!(addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    Ok(RunResult {
        scenario: sc.name.clone(),
        lock: G::NAME.to_owned(),
        params,
        wall_s: wall.as_secs_f64(),
        measured_s: secs,
        cpu,
        io,
        gil: GilSummary {
            acquisitions: total.acquisitions,
            switches: total.switches,
            forced_drops: total.forced_drops,
            voluntary_drops: total.voluntary_drops,
            wait_us: Percentiles::of(&wait),
            hold_us: Percentiles::of(&hold),
            reacquire_us: Percentiles::of(&reacq),
            ctx_switches: ctx,
            design: gil
                .stats()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        },
        threads: outs.into_iter().map(|o| o.result).collect(),
        notes,
        partial: interrupted.is_some(),
        label: G::NAME.to_owned(),
        repeat: 0,
        hists,
        intervals,
        trace,
    })
}

/// The timeline of a run as trace-event JSON, if one was recorded.
fn shared_trace(
    traces: &[ThreadTrace],
    measured: Duration,
    sc: &Scenario,
    lock: &str,
) -> Option<serde_json::Value> {
    if traces.is_empty() {
        return None;
    }
    let meta = serde_json::json!({"scenario": sc.name, "lock": lock, "gilbench": env!("CARGO_PKG_VERSION")});
    Some(chrome_trace(traces, measured.as_nanos() as u64, meta))
}

#[allow(clippy::too_many_arguments)]
fn io_summary(
    sc: &Scenario,
    mode: Mode,
    load: Option<LoadOut>,
    server: ServerStats,
    reacq: &Hist,
    secs: f64,
    loadgen: String,
    notes: &mut Vec<String>,
) -> Result<IoSummary, RunError> {
    let mut io = IoSummary {
        reacquire_us: Percentiles::of(reacq),
        loadgen,
        ..Default::default()
    };
    match load {
        Some(LoadOut::Echo(r)) => {
            let l = (*r).map_err(RunError::Failed)?;
            io.mode = if sc.rate > 0.0 {
                "open".into()
            } else {
                "closed".into()
            };
            io.rate = sc.rate;
            io.requests = l.requests;
            io.requests_per_sec = if l.measured_s > 0.0 {
                l.requests as f64 / l.measured_s
            } else {
                0.0
            };
            io.bytes = l.bytes;
            io.latency_us = Percentiles::of(&l.latency);
            io.latency_dist = crate::metrics::distribution(&l.latency);
            io.failed = l.failed;
            io.late_sends = l.late;
            io.lateness_us = Percentiles::of(&l.lateness);
            io.errors = l.errors;
            if let Some(e) = &l.first_error {
                notes.push(format!(
                    "load generator: {} connection errors, the first: {e}",
                    l.errors
                ));
            }
            io.first_error = l.first_error;
        }
        Some(LoadOut::Bulk(r)) => {
            let client_s = r.map_err(RunError::Failed)?;
            io.mode = "bulk".into();
            io.requests = server.requests;
            io.requests_per_sec = server.requests as f64 / secs;
            io.bytes = server.bytes_in;
            io.transfer_s = server.transfer_s;
            if io.transfer_s.is_none() {
                notes.push(format!(
                    "the bulk transfer did not complete within {:.1}s ({} of {} MiB received; the sender had run {client_s:.1}s)",
                    sc.duration.as_secs_f64(),
                    server.bytes_in >> 20,
                    sc.bulk_mib
                ));
            }
        }
        None if mode == Mode::Serve => {
            io.mode = "serve".into();
            io.requests = server.requests;
            io.requests_per_sec = server.requests as f64 / secs;
            io.bytes = server.bytes_in + server.bytes_out;
            io.transfer_s = server.transfer_s;
        }
        None => {}
    }
    if server.dropped_peers > 0 {
        notes.push(format!(
            "the server dropped {} peers that broke its limits",
            server.dropped_peers
        ));
    }
    io.server = server;
    Ok(io)
}

fn gil_thread<G: Gil>(
    gil: &G,
    shared: &Shared,
    sc: &Scenario,
    id: usize,
    role: Role,
    core: Option<usize>,
    call_work_ticks: u64,
) -> ThreadOut {
    let _flag = PanicFlag(&shared.failed);
    let name = role.name();
    let pinned = core.filter(|&c| pin::pin_current(c));
    let mut interp = Interp::new(gil, id, &shared.last_holder);
    interp.set_beacon(&shared.beacons[id]);
    interp.set_recording(sc.record);
    let seed = id as u64 + 1;
    let mut hasher = TickHasher::new(sc.tick_bytes, seed);
    let ctx = WorkCtx {
        stop: &shared.stop,
        call_work_ticks,
        fault: if matches!(role, Role::Cpu { index: 0 }) {
            sc.fault
        } else {
            None
        },
    };
    let started = shared.gate.ready_and_wait();
    let epoch = shared.epoch.get().copied().unwrap_or_else(Instant::now);
    if let Some(total) = shared.inst.trace_events {
        interp.extras.trace = Some(TraceBuf::new(epoch, total / shared.gil_threads.max(1)));
    }
    if let Some(len) = shared.inst.hlog_interval {
        interp.extras.intervals = Some(IntervalHists::new(epoch, len, 2));
    }
    let cs0 = CtxSwitches::of_current_thread();
    let t0 = Instant::now();
    let mut digest = String::new();
    let mut server = None;
    let mut error = None;
    let (role_name, workload) = match &role {
        Role::Cpu { .. } => (
            "cpu",
            match sc.cpu_work {
                CpuWork::CpuHash => "cpu-hash".to_owned(),
                CpuWork::HashNogil => "hash-nogil".to_owned(),
            },
        ),
        Role::Echo { .. } => ("io", format!("echo-{}", sc.transport)),
        Role::Bulk { .. } => ("io", "bulk".to_owned()),
    };
    if started {
        let echo = EchoConfig {
            request_bytes: sc.request_bytes,
            work_ticks: sc.work_ticks,
            max_request_bytes: sc.max_request_bytes,
            max_connections: sc.max_connections,
        };
        match role {
            Role::Cpu { .. } => match sc.cpu_work {
                CpuWork::CpuHash => cpu::cpu_hash(&mut interp, &mut hasher, &ctx),
                CpuWork::HashNogil => {
                    digest = cpu::hash_nogil(&mut interp, &mut hasher, &ctx, sc.buffer_bytes, seed)
                }
            },
            Role::Echo { listener, .. } => {
                interp.take();
                let r = match listener {
                    Listener::Tcp(l) => server::echo_tcp(&mut interp, &mut hasher, &ctx, l, &echo),
                    Listener::Udp(s) => server::echo_udp(&mut interp, &mut hasher, &ctx, s, &echo),
                    Listener::Bulk(_) => unreachable!("echo roles get echo listeners"),
                };
                match r {
                    Ok(s) => server = Some(s),
                    Err(e) => error = Some(io_reason(&e)),
                }
            }
            Role::Bulk { listener } => {
                interp.take();
                let Listener::Bulk(l) = listener else {
                    unreachable!("bulk roles get bulk listeners")
                };
                match server::bulk_recv(
                    &mut interp,
                    &mut hasher,
                    &ctx,
                    l,
                    sc.bulk_mib << 20,
                    sc.recv_bytes,
                ) {
                    Ok(s) => server = Some(s),
                    Err(e) => error = Some(io_reason(&e)),
                }
                shared.io_done.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    if interp.holds() {
        interp.release(Release::Exit);
    }
    let secs = t0.elapsed().as_secs_f64();
    let ctx_switches = CtxSwitches::of_current_thread().since(cs0);
    let design: BTreeMap<String, u64> = interp
        .gil_stats()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let metrics = std::mem::take(&mut interp.metrics);
    let trace = interp.extras.trace.take().map(|buf| ThreadTrace {
        name: name.clone(),
        buf,
    });
    let intervals = interp
        .extras
        .intervals
        .take()
        .map(|iv| iv.finish(Instant::now()))
        .unwrap_or_default();
    let hash_digest = hasher.finish();
    let c = &metrics.counters;
    let mut counters = c.clone();
    if let Some(s) = &server {
        counters.bytes += s.bytes_in + s.bytes_out;
    }
    let result = ThreadResult {
        name,
        role: role_name.into(),
        workload,
        core: crate::metrics::current_core(),
        pinned,
        ticks_per_sec: if secs > 0.0 {
            c.ticks as f64 / secs
        } else {
            0.0
        },
        counters,
        wait_us: Percentiles::of(&metrics.wait),
        hold_us: Percentiles::of(&metrics.hold),
        reacquire_us: Percentiles::of(&metrics.reacquire),
        ctx_switches,
        design,
        digest: if digest.is_empty() {
            hash_digest
        } else {
            digest
        },
        server,
    };
    ThreadOut {
        result,
        metrics,
        error,
        trace,
        intervals,
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-text panic payload)".into()
    }
}
