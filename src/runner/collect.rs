//! Turning what the threads and the load generator brought back into one [`RunResult`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::control::{stalled_within, stopped_between, End, Stall};
use super::thread::{design_figures, ThreadOut};
use super::{Mode, RunError};
use crate::gil::Gil;
use crate::metrics::{
    merge, new_hist, per_sec, Counters, CtxSwitches, Hist, Interval, Percentiles,
};
use crate::pin::PinPlan;
use crate::result::{CpuSummary, GilSummary, IoSummary, RunResult, ThreadCounters};
use crate::scenario::{IoWork, Scenario};
use crate::signals;
use crate::stall::{load_running_time, note_stalls};
use crate::trace::{ThreadTrace, Timeline};
use crate::workload::loadgen::LoadResult;
use crate::workload::server::ServerStats;

pub(super) enum LoadOut {
    Echo(Box<Result<LoadResult, String>>),
    Bulk(Result<f64, String>),
}

/// Less running time in the measured window than this is no window to give a rate over.
const MIN_RUNNING: Duration = Duration::from_millis(1);

/// What was decided before the threads started.
pub(super) struct Setup {
    pub(super) addrs: Vec<SocketAddr>,
    pub(super) plan: PinPlan,
    pub(super) notes: Vec<String>,
    pub(super) loadgen_place: String,
    pub(super) tick_ns: f64,
    pub(super) call_work_ticks: u64,
    /// From the start, when the run must have ended.
    pub(super) deadline: Duration,
    /// Time the GIL was free or in transit while someone waited, in the measured window
    /// (derived from the threads' event logs; `None` when not measured).
    pub(super) idle_while_wanted: Option<Duration>,
}

/// What came back from the threads.
pub(super) struct Finished {
    pub(super) outs: Vec<ThreadOut>,
    pub(super) load: Option<LoadOut>,
    /// The measured window: from the end of the warm-up to the stop.
    pub(super) measured: Duration,
    /// From the start, when the measured window began.
    pub(super) measured_from: Duration,
    pub(super) wall: Duration,
    pub(super) end: End,
    /// Threads still running at the deadline, each with where it was.
    pub(super) abandoned: Vec<String>,
    /// The signal that cut the wait for the threads short, if one did.
    pub(super) given_up_by: Option<i32>,
    /// Stretches in which the whole process did not run (stopped, or its machine suspended).
    pub(super) stalls: Vec<Stall>,
}

/// Turns what came back into the run's result: checks for a thread that failed, notes what
/// the reader should know, adds the threads' figures up, and hands the exporters the full
/// histograms, interval histograms and timeline.
pub(super) fn assemble<G: Gil>(
    gil: &G,
    sc: &Scenario,
    mode: Mode,
    mut setup: Setup,
    fin: Finished,
) -> Result<RunResult, RunError> {
    let failure = failure_of(&fin, setup.deadline);
    let running = running_time(&fin);
    let (mut outs, mut load, measured) = (fin.outs, fin.load, fin.measured);
    let interrupted = fin.end.signal();
    first_thread_error(&outs)?;
    let mut notes = setup.take_notes(sc, &outs, interrupted, running);
    let stalls = &fin.stalls;
    note_stalls(stalls, fin.measured_from, measured, running, &mut notes);
    let secs = running.as_secs_f64();
    let mut merged = Merged::of(&outs);
    let cpu = cpu_summary(&outs, secs);
    let (intervals, traces) = take_recordings(&mut outs, &mut load);
    let window = fin.measured_from..fin.measured_from + measured;
    let trace = shared_trace(traces, window, sc, G::NAME);
    let hists = full_hists(sc, &merged, &load);
    let cut_short = load_cut_short(&load);
    // A run stopped in its warm-up measured nothing: no CPU or I/O figures (not zeros).
    let io = match sc.io {
        IoWork::None => None,
        _ => io_summary(
            sc,
            mode,
            load,
            std::mem::take(&mut merged.server),
            &merged.io_reacquire,
            secs,
            setup.loadgen_place,
            interrupted.is_some(),
            stalls,
            &mut notes,
        )?,
    };
    Ok(RunResult {
        scenario: sc.name.clone(),
        lock: G::NAME.to_owned(),
        params: params(sc, &setup.addrs, setup.tick_ns, setup.call_work_ticks),
        wall_s: fin.wall.as_secs_f64(),
        measured_s: secs,
        cpu: cpu.filter(|_| secs > 0.0),
        io: io.filter(|_| secs > 0.0),
        gil: gil_summary(gil, &merged, setup.idle_while_wanted, (secs, sc.record)),
        threads: thread_results(outs, sc.record && secs > 0.0, setup.idle_while_wanted),
        notes,
        partial: interrupted.is_some() || failure.is_some() || cut_short || !stalls.is_empty(),
        failure,
        baseline: None,
        label: sc.design_label(),
        repeat: 0,
        sequence: None,
        hists,
        intervals,
        trace,
    })
}

/// The measured window's running time: rates cover the time the process ran, so a stall
/// within the window is left out. A stop that took the whole window (say, in the warm-up,
/// whose end the load generator keeps on its own clock) leaves too little running time for
/// any rate: nothing measured.
fn running_time(fin: &Finished) -> Duration {
    let (from, measured) = (fin.measured_from, fin.measured);
    let running = measured.saturating_sub(stalled_within(&fin.stalls, from, from + measured));
    if running < MIN_RUNNING {
        Duration::ZERO
    } else {
        running
    }
}

/// Each thread's result, its GIL counters absent where they were not measured (`recorded`
/// false) or, for switches and overlaps, not derived from the event logs (no
/// `idle_while_wanted` derived either).
fn thread_results(
    outs: Vec<ThreadOut>,
    recorded: bool,
    idle_while_wanted: Option<Duration>,
) -> Vec<crate::result::ThreadResult> {
    outs.into_iter()
        .map(|mut o| {
            let derived = idle_while_wanted.is_some();
            o.result.counters = ThreadCounters::of(&o.metrics.counters, recorded, derived);
            o.result
        })
        .collect()
}

/// A socket error that ended a thread's work early fails the run (the first one is named).
fn first_thread_error(outs: &[ThreadOut]) -> Result<(), RunError> {
    match outs
        .iter()
        .find_map(|o| o.error.as_ref().map(|e| format!("{}: {e}", o.result.name)))
    {
        Some(e) => Err(RunError::Failed(e)),
        None => Ok(()),
    }
}

impl Setup {
    /// The run's notes: the setup's own, then pinning that did not hold, what a tick costs
    /// and, for a run cut short by a signal, how much of it ran.
    fn take_notes(
        &mut self,
        sc: &Scenario,
        outs: &[ThreadOut],
        interrupted: Option<i32>,
        measured: Duration,
    ) -> Vec<String> {
        let mut notes = std::mem::take(&mut self.notes);
        note_pinning(outs, &self.plan, &mut notes);
        notes.push(format!(
            "one {}-byte tick costs {:.0} ns here; call_work = {} ticks",
            sc.tick_bytes, self.tick_ns, self.call_work_ticks
        ));
        if let Some(sig) = interrupted {
            // The measured window against the one asked for (the warm-up is no part of either).
            notes.push(format!(
                "interrupted by {}: the run measured {:.2}s of the {:.2}s asked for",
                signals::name(sig),
                measured.as_secs_f64(),
                sc.duration.as_secs_f64()
            ));
        }
        notes
    }
}

/// Notes a thread that ended on another core than it was pinned to, and the first that the
/// OS refused to pin.
fn note_pinning(outs: &[ThreadOut], plan: &PinPlan, notes: &mut Vec<String>) {
    for o in outs {
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
}

/// Every thread's figures added up.
struct Merged {
    total: Counters,
    ctx: CtxSwitches,
    wait: Hist,
    hold: Hist,
    reacquire: Hist,
    switch_wait: Hist,
    /// Reacquisitions of the server threads only (the I/O figure).
    io_reacquire: Hist,
    server: ServerStats,
}

impl Merged {
    fn of(outs: &[ThreadOut]) -> Self {
        let mut m = Merged {
            total: Counters::default(),
            ctx: CtxSwitches::default(),
            wait: new_hist(),
            hold: new_hist(),
            reacquire: new_hist(),
            switch_wait: new_hist(),
            io_reacquire: new_hist(),
            server: ServerStats::default(),
        };
        for o in outs {
            m.total.add(&o.metrics.counters);
            m.ctx.add(o.result.ctx_switches);
            merge(&mut m.wait, &o.metrics.wait);
            merge(&mut m.hold, &o.metrics.hold);
            merge(&mut m.reacquire, &o.metrics.reacquire);
            merge(&mut m.switch_wait, &o.metrics.switch_wait);
            if let Some(s) = &o.result.server {
                m.server.add(s);
                merge(&mut m.io_reacquire, &o.metrics.reacquire);
            }
        }
        m
    }
}

/// The CPU threads' work, if the run had any.
fn cpu_summary(outs: &[ThreadOut], secs: f64) -> Option<CpuSummary> {
    let cpu_threads: Vec<&ThreadOut> = outs.iter().filter(|o| o.result.role == "cpu").collect();
    (!cpu_threads.is_empty()).then(|| {
        let ticks: u64 = cpu_threads.iter().map(|o| o.metrics.counters.ticks).sum();
        let bytes: u64 = cpu_threads.iter().map(|o| o.metrics.counters.bytes).sum();
        CpuSummary {
            threads: cpu_threads.len(),
            ticks,
            ticks_per_sec: per_sec(ticks as f64, secs),
            bytes,
            bytes_per_sec: per_sec(bytes as f64, secs),
        }
    })
}

/// Takes the interval histograms (tagged `thread.metric`, in time order) and the timelines
/// the threads (connection threads under their own names, after their server's) and the
/// load generator recorded, for the exporters (`--hlog`, `--trace`).
fn take_recordings(
    outs: &mut [ThreadOut],
    load: &mut Option<LoadOut>,
) -> (Vec<(String, Interval)>, Vec<ThreadTrace>) {
    let mut intervals: Vec<(String, Interval)> = Vec::new();
    let mut traces = Vec::new();
    for rec in outs
        .iter_mut()
        .flat_map(|o| std::mem::take(&mut o.recorded))
    {
        // Each interval carries the thread's wait and hold histograms, in that order.
        for Interval { start, len, hists } in rec.intervals {
            for (metric, h) in ["gil-wait", "gil-hold"].into_iter().zip(hists) {
                let tag = format!("{}.{metric}", rec.name);
                intervals.push((
                    tag,
                    Interval {
                        start,
                        len,
                        hists: vec![h],
                    },
                ));
            }
        }
        if let Some(buf) = rec.trace {
            traces.push(ThreadTrace {
                name: rec.name,
                buf,
            });
        }
    }
    if let Some(LoadOut::Echo(l)) = load {
        if let Ok(l) = l.as_mut() {
            for iv in std::mem::take(&mut l.intervals) {
                intervals.push(("load.io-latency".to_owned(), iv));
            }
        }
    }
    intervals.sort_by_key(|(_, iv)| iv.start);
    (intervals, traces)
}

/// The run's full histograms by name, for the exporters (`--hgrm`).
fn full_hists(sc: &Scenario, m: &Merged, load: &Option<LoadOut>) -> BTreeMap<String, Hist> {
    let mut hists = BTreeMap::new();
    if let Some(LoadOut::Echo(l)) = load {
        if let Ok(l) = l.as_ref() {
            hists.insert("io-latency".to_owned(), l.latency.clone());
        }
    }
    hists.insert("gil-wait".to_owned(), m.wait.clone());
    hists.insert("gil-hold".to_owned(), m.hold.clone());
    hists.insert("gil-switch-wait".to_owned(), m.switch_wait.clone());
    if sc.io != IoWork::None {
        hists.insert("io-reacquire".to_owned(), m.io_reacquire.clone());
    }
    hists
}

/// The scenario's parameters, with what this run measured and bound.
fn params(sc: &Scenario, addrs: &[SocketAddr], tick_ns: f64, call_work_ticks: u64) -> Value {
    let mut params = sc.params_json();
    params["tick_ns"] = serde_json::json!((tick_ns * 10.0).round() / 10.0);
    params["call_work_ticks"] = serde_json::json!(call_work_ticks);
    params["listen"] = serde_json::json!(addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    params
}

/// The GIL side of the run: its counters only when they were recorded (`record`) over a
/// measured window, and the figures derived from the threads' logs after the run (holder
/// switches, overlaps, idle-while-wanted) only when they were (`idle_while_wanted` is
/// `Some`); absent otherwise.
fn gil_summary<G: Gil>(
    gil: &G,
    m: &Merged,
    idle_while_wanted: Option<Duration>,
    (secs, recorded): (f64, bool),
) -> GilSummary {
    let rec = |x: u64| (recorded && secs > 0.0).then_some(x);
    let derived = |x: u64| idle_while_wanted.and(rec(x));
    let idle = idle_while_wanted
        .filter(|_| recorded && secs > 0.0)
        .map(|d| d.as_secs_f64());
    GilSummary {
        acquisitions: rec(m.total.acquisitions),
        switches: derived(m.total.switches),
        forced_drops: rec(m.total.forced_drops),
        voluntary_drops: rec(m.total.voluntary_drops),
        overlaps: derived(m.total.overlaps),
        idle_while_wanted_s: idle,
        idle_while_wanted: idle.map(|i| (i / secs).min(1.0)),
        wait_us: Percentiles::of(&m.wait),
        hold_us: Percentiles::of(&m.hold),
        reacquire_us: Percentiles::of(&m.reacquire),
        switch_wait_us: Percentiles::of(&m.switch_wait),
        ctx_switches: (secs > 0.0).then_some(m.ctx),
        design: design_figures(gil.stats()),
    }
}

/// Whether the load generator ended before its window did (every connection failed).
fn load_cut_short(load: &Option<LoadOut>) -> bool {
    match load {
        Some(LoadOut::Echo(r)) => r.as_ref().as_ref().is_ok_and(|l| l.cut_short.is_some()),
        _ => false,
    }
}

/// Why a run that has results failed: the watchdog found it hung, a signal ended it before
/// its threads did, or threads outlived its deadline (they are named with where they were).
fn failure_of(fin: &Finished, deadline: Duration) -> Option<String> {
    let abandoned = &fin.abandoned;
    let left = if abandoned.is_empty() {
        String::new()
    } else {
        format!(
            "; still running when it was given up: {}",
            abandoned.join(", ")
        )
    };
    match (&fin.end, fin.given_up_by) {
        (End::Hung(diagnosis), _) => Some(format!("{diagnosis}{left}; the run was stopped")),
        _ if abandoned.is_empty() => None,
        (_, Some(sig)) => Some(format!(
            "interrupted by {} before every thread had ended{left}; they were left behind after {:.1}s (the deadline was {:.1}s)",
            signals::name(sig),
            fin.wall.as_secs_f64(),
            deadline.as_secs_f64()
        )),
        _ => Some(format!(
            "the run outlived its deadline ({:.1}s: warm-up, duration and grace){left}; the run was stopped",
            deadline.as_secs_f64()
        )),
    }
}

/// The timeline of a run, if one was recorded (times from the run's start).
fn shared_trace(
    traces: Vec<ThreadTrace>,
    window: std::ops::Range<Duration>,
    sc: &Scenario,
    lock: &str,
) -> Option<Timeline> {
    if traces.is_empty() {
        return None;
    }
    let meta = serde_json::json!({"scenario": sc.name, "lock": lock});
    Some(Timeline {
        threads: traces,
        end_ns: window.end.as_nanos() as u64,
        measured_from_ns: window.start.as_nanos() as u64,
        meta,
    })
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
    interrupted: bool,
    stalls: &[Stall],
    notes: &mut Vec<String>,
) -> Result<Option<IoSummary>, RunError> {
    let mut io = IoSummary {
        reacquire_us: Percentiles::of(reacq),
        loadgen,
        ..Default::default()
    };
    match load {
        Some(LoadOut::Echo(r)) => {
            let mut l = (*r).map_err(RunError::Failed)?;
            // A stop of the whole process held the generator up too: the stall's note says so.
            l.leave_out_stops(|from, to| stopped_between(stalls, from, to));
            // The GIL threads' window (begun after a stop in the warm-up) may have had
            // running time where the load generator's had none.
            let window = Duration::from_secs_f64(l.measured_s);
            let Some(running) = load_running_time(stalls, sc.warmup, window, notes) else {
                return Ok(None);
            };
            l.measured_s = running.as_secs_f64();
            echo_figures(&mut io, &l, sc, interrupted, notes);
        }
        Some(LoadOut::Bulk(r)) => {
            let client_s = r.map_err(RunError::Failed)?;
            bulk_figures(&mut io, &server, sc, (secs, client_s), notes);
        }
        None if mode == Mode::Serve => serve_figures(&mut io, &server, sc, secs, notes),
        None => {}
    }
    note_server_limits(&server, notes);
    io.server = server;
    Ok(Some(io))
}

/// A bulk transfer's figures, as the server received it over `secs` (the sender ran
/// `client_s`), and a note if it did not finish.
fn bulk_figures(
    io: &mut IoSummary,
    server: &ServerStats,
    sc: &Scenario,
    (secs, client_s): (f64, f64),
    notes: &mut Vec<String>,
) {
    io.mode = "bulk".into();
    io.requests = server.requests;
    // Receives per second of receiving, as the bytes' rate: the measured window outlasts a
    // finished transfer by up to the monitor's nap (10 ms), which is most of a short one.
    let receiving = server.receive_s.unwrap_or(secs);
    io.requests_per_sec = per_sec(server.requests as f64, receiving);
    io.bytes = server.bytes_in;
    io.transfer_s = server.transfer_s;
    io.transfer_bytes = Some(sc.bulk_mib << 20);
    io.transfer_complete = Some(io.transfer_s.is_some());
    io.bytes_per_sec = server
        .receive_s
        .map(|s| server.bytes_in as f64 / s.max(1e-9));
    if io.transfer_s.is_none() {
        notes.push(format!(
            "unfinished bulk transfer: {} of {} bytes ({:.1}%) received when the run ended after {:.2}s (the sender had run {client_s:.2}s); rates cover the time measured",
            server.bytes_in,
            sc.bulk_mib << 20,
            server.bytes_in as f64 * 100.0 / (sc.bulk_mib << 20) as f64,
            secs
        ));
    }
}

/// `serve`'s figures: what the servers answered in full over `secs`.
fn serve_figures(
    io: &mut IoSummary,
    server: &ServerStats,
    sc: &Scenario,
    secs: f64,
    notes: &mut Vec<String>,
) {
    io.mode = "serve".into();
    // Requests answered in full: a peer dropped or reset before its echo had its bytes
    // counted in, not answered.
    let answered = if sc.io == IoWork::Echo {
        (server.bytes_out / sc.request_bytes.max(1) as u64).min(server.requests)
    } else {
        server.requests
    };
    if answered < server.requests {
        notes.push(format!(
            "the server received {} requests and answered {answered}: the rest came from peers that were dropped, reset or gone before their echo",
            server.requests
        ));
    }
    io.requests = answered;
    io.requests_per_sec = per_sec(answered as f64, secs);
    io.bytes = server.bytes_in + server.bytes_out;
    io.transfer_s = server.transfer_s;
}

/// The echo load's figures, as the load generator measured them, and its notes.
fn echo_figures(
    io: &mut IoSummary,
    l: &LoadResult,
    sc: &Scenario,
    interrupted: bool,
    notes: &mut Vec<String>,
) {
    io.mode = if sc.rate > 0.0 {
        "open".into()
    } else {
        "closed".into()
    };
    io.rate = sc.rate;
    io.requests = l.requests;
    io.requests_per_sec = per_sec(l.requests as f64, l.measured_s);
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
    io.first_error = l.first_error.clone();
    notes.extend(l.notes.iter().map(|n| format!("load generator: {n}")));
    notes.extend(l.held_up_note().map(|n| format!("load generator: {n}")));
    if let Some(c) = &l.cut_short {
        notes.push(format!(
            "load generator: {c}; rates cover the {:.2}s measured",
            l.measured_s
        ));
    }
    if l.requests == 0 && !interrupted {
        notes.push(format!(
            "load generator: no request succeeded: {}",
            l.why_none_succeeded(sc.timeout)
        ));
    }
}

/// Peers the servers dropped or turned away.
fn note_server_limits(server: &ServerStats, notes: &mut Vec<String>) {
    if server.dropped_peers > 0 {
        notes.push(format!(
            "the server dropped {} peers that broke its limits",
            server.dropped_peers
        ));
    }
    if server.peer_errors > 0 {
        notes.push(format!(
            "the server saw {} peer errors (connections reset or broken by their clients)",
            server.peer_errors
        ));
    }
    if server.turned_away > 0 {
        notes.push(format!(
            "the server turned away {} connections: it was out of file descriptors{}",
            server.turned_away,
            crate::workload::limits::nofile()
                .map(|l| format!(" (limit {l}, ulimit -n)"))
                .unwrap_or_default()
        ));
    }
}
