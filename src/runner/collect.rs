//! Turning what the threads and the load generator brought back into one [`RunResult`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::control::End;
use super::thread::ThreadOut;
use super::{Mode, RunError};
use crate::gil::Gil;
use crate::metrics::{merge, new_hist, Counters, CtxSwitches, Hist, Interval, Percentiles};
use crate::pin::PinPlan;
use crate::result::{CpuSummary, GilSummary, IoSummary, RunResult};
use crate::scenario::{IoWork, Scenario};
use crate::signals;
use crate::trace::{ThreadTrace, Timeline};
use crate::workload::loadgen::LoadResult;
use crate::workload::server::ServerStats;

pub(super) enum LoadOut {
    Echo(Box<Result<LoadResult, String>>),
    Bulk(Result<f64, String>),
}

/// What was decided before the threads started.
pub(super) struct Setup {
    pub(super) addrs: Vec<SocketAddr>,
    pub(super) plan: PinPlan,
    pub(super) notes: Vec<String>,
    pub(super) loadgen_place: String,
    pub(super) tick_ns: f64,
    pub(super) call_work_ticks: u64,
    pub(super) run_for: Duration,
    /// From the start, when the run must have ended.
    pub(super) deadline: Duration,
    /// Time the GIL was free or in transit while someone waited, in the measured window.
    pub(super) idle_while_wanted: Duration,
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
}

pub(super) fn assemble<G: Gil>(
    gil: &G,
    sc: &Scenario,
    mode: Mode,
    setup: Setup,
    fin: Finished,
) -> Result<RunResult, RunError> {
    let Setup {
        addrs,
        plan,
        mut notes,
        loadgen_place,
        tick_ns,
        call_work_ticks,
        run_for,
        deadline,
        idle_while_wanted,
    } = setup;
    let Finished {
        mut outs,
        mut load,
        measured,
        measured_from,
        wall,
        end,
        abandoned,
    } = fin;
    let interrupted = match end {
        End::Signal(sig) => Some(sig),
        _ => None,
    };
    let failure = failure_of(&end, &abandoned, deadline);
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
    let (mut wait, mut hold, mut reacq, mut io_reacq, mut switch_wait) =
        (new_hist(), new_hist(), new_hist(), new_hist(), new_hist());
    let mut server = ServerStats::default();
    for o in &outs {
        total.add(&o.metrics.counters);
        ctx.add(o.result.ctx_switches);
        merge(&mut wait, &o.metrics.wait);
        merge(&mut hold, &o.metrics.hold);
        merge(&mut reacq, &o.metrics.reacquire);
        merge(&mut switch_wait, &o.metrics.switch_wait);
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
        // Each interval carries the thread's wait and hold histograms, in that order.
        for Interval { start, len, hists } in std::mem::take(&mut o.intervals) {
            for (metric, h) in ["gil-wait", "gil-hold"].into_iter().zip(hists) {
                let tag = format!("{}.{metric}", o.result.name);
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
    let trace = shared_trace(traces, measured_from, measured_from + measured, sc, G::NAME);
    hists.insert("gil-wait".to_owned(), wait.clone());
    hists.insert("gil-hold".to_owned(), hold.clone());
    hists.insert("gil-switch-wait".to_owned(), switch_wait.clone());
    if sc.io != IoWork::None {
        hists.insert("io-reacquire".to_owned(), io_reacq.clone());
    }
    // The load generator ended before its window did (every connection failed).
    let cut_short = match &load {
        Some(LoadOut::Echo(r)) => r.as_ref().as_ref().is_ok_and(|l| l.cut_short.is_some()),
        _ => false,
    };
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
            interrupted.is_some(),
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
            overlaps: total.overlaps,
            idle_while_wanted_s: idle_while_wanted.as_secs_f64(),
            idle_while_wanted: if secs > 0.0 {
                (idle_while_wanted.as_secs_f64() / secs).min(1.0)
            } else {
                0.0
            },
            wait_us: Percentiles::of(&wait),
            hold_us: Percentiles::of(&hold),
            reacquire_us: Percentiles::of(&reacq),
            switch_wait_us: Percentiles::of(&switch_wait),
            ctx_switches: ctx,
            design: gil
                .stats()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        },
        threads: outs.into_iter().map(|o| o.result).collect(),
        notes,
        partial: interrupted.is_some() || failure.is_some() || cut_short,
        failure,
        baseline: None,
        label: sc.design_label(),
        repeat: 0,
        hists,
        intervals,
        trace,
    })
}

/// Why a run that has results failed: the watchdog found it hung, or threads outlived its
/// deadline (they are named with where they were).
fn failure_of(end: &End, abandoned: &[String], deadline: Duration) -> Option<String> {
    let left = if abandoned.is_empty() {
        String::new()
    } else {
        format!(
            "; still running when it was given up: {}",
            abandoned.join(", ")
        )
    };
    match end {
        End::Hung(diagnosis) => Some(format!("{diagnosis}{left}; the run was stopped")),
        _ if !abandoned.is_empty() => Some(format!(
            "the run outlived its deadline ({:.1}s: warm-up, duration and grace){left}; the run was stopped",
            deadline.as_secs_f64()
        )),
        _ => None,
    }
}

/// The timeline of a run, if one was recorded (times from the run's start).
fn shared_trace(
    traces: Vec<ThreadTrace>,
    measured_from: Duration,
    stopped: Duration,
    sc: &Scenario,
    lock: &str,
) -> Option<Timeline> {
    if traces.is_empty() {
        return None;
    }
    let meta = serde_json::json!({"scenario": sc.name, "lock": lock});
    let conn_threads = sc.io == IoWork::Echo
        && sc.transport == crate::workload::server::Transport::Tcp
        && sc.server == crate::scenario::ServerKind::Threaded;
    Some(Timeline {
        threads: traces,
        end_ns: stopped.as_nanos() as u64,
        measured_from_ns: measured_from.as_nanos() as u64,
        untraced: conn_threads.then(|| {
            "the threaded server's connection threads take the GIL and are not traced".to_owned()
        }),
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
            io.first_error = l.first_error.clone();
            notes.extend(l.notes.iter().map(|n| format!("load generator: {n}")));
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
        Some(LoadOut::Bulk(r)) => {
            let client_s = r.map_err(RunError::Failed)?;
            io.mode = "bulk".into();
            io.requests = server.requests;
            io.requests_per_sec = server.requests as f64 / secs;
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
    if server.turned_away > 0 {
        notes.push(format!(
            "the server turned away {} connections: it was out of file descriptors{}",
            server.turned_away,
            crate::workload::limits::nofile()
                .map(|l| format!(" (limit {l}, ulimit -n)"))
                .unwrap_or_default()
        ));
    }
    io.server = server;
    Ok(io)
}
