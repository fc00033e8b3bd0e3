//! One interpreter thread of a run: pinning, its `Interp`, its workload, its results.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::control::{PanicFlag, Shared};
use crate::gil::{Gil, Release};
use crate::interp::Interp;
use crate::metrics::{IdleClock, Interval, IntervalHists, Percentiles, ThreadMetrics};
use crate::pin;
use crate::result::ThreadResult;
use crate::scenario::{CpuWork, Scenario, ServerKind};
use crate::trace::{ThreadTrace, TraceBuf};
use crate::workload::server::{self, io_reason, EchoConfig, Listener};
use crate::workload::{cpu, threaded, TickHasher, WorkCtx};

/// What an interpreter thread does.
pub(super) enum Role {
    Cpu { index: usize },
    Echo { index: usize, listener: Listener },
    Bulk { listener: Listener },
}

impl Role {
    pub(super) fn name(&self) -> String {
        match self {
            Role::Cpu { index } => format!("cpu-{index}"),
            Role::Echo { index, .. } => format!("echo-{index}"),
            Role::Bulk { .. } => "bulk-0".into(),
        }
    }
}

/// What one interpreter thread brings back.
pub(super) struct ThreadOut {
    pub(super) result: ThreadResult,
    pub(super) metrics: ThreadMetrics,
    /// A socket error that ended the thread's work early.
    pub(super) error: Option<String>,
    pub(super) trace: Option<ThreadTrace>,
    /// Interval histograms of GIL wait and hold (`--hlog`).
    pub(super) intervals: Vec<Interval>,
    /// This thread's share of the idle-while-wanted sum.
    pub(super) idle: IdleClock,
}

pub(super) fn gil_thread<G: Gil>(
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
    interp.set_stop(&shared.stop);
    interp.set_warmup_gate(&shared.measuring);
    if G::EXCLUSIVE {
        interp.set_occupancy(&shared.occupancy);
    }
    let epoch = shared.epoch.get().copied().unwrap_or_else(Instant::now);
    if let Some(total) = shared.inst.trace_events {
        interp.extras.trace = Some(TraceBuf::new(epoch, total / shared.beacons.len().max(1)));
    }
    if let Some(len) = shared.inst.hlog_interval {
        interp.extras.intervals = Some(IntervalHists::new(epoch, len, 2));
    }
    let mut digest = String::new();
    let mut server = None;
    let mut conns = threaded::ConnTotals::default();
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
                let threaded = sc.server == ServerKind::Threaded;
                let r = match listener {
                    Listener::Tcp(l) => server::echo_tcp(&mut interp, &mut hasher, &ctx, l, &echo),
                    Listener::Udp(s) if threaded => threaded::echo_udp_threaded(
                        &mut interp,
                        &mut hasher,
                        &ctx,
                        s,
                        &echo,
                        &shared.measuring,
                    ),
                    Listener::Udp(s) => server::echo_udp(&mut interp, &mut hasher, &ctx, s, &echo),
                    // The threaded TCP server: its connection threads' figures are added here.
                    Listener::Bulk(l) => {
                        let sp = threaded::Spawner {
                            last_holder: &shared.last_holder,
                            measuring: &shared.measuring,
                            failed: &shared.failed,
                            occupancy: G::EXCLUSIVE.then_some(&shared.occupancy),
                            record: sc.record,
                            tick_bytes: sc.tick_bytes,
                            name: &name,
                        };
                        threaded::echo_tcp_threaded(&mut interp, &mut hasher, &ctx, l, &echo, &sp)
                            .map(|(s, t)| {
                                conns = t;
                                s
                            })
                    }
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
                let (total, recv) = (sc.bulk_mib << 20, sc.recv_bytes);
                let r = match sc.server {
                    ServerKind::Threaded => {
                        server::bulk_recv(&mut interp, &mut hasher, &ctx, l, total, recv)
                    }
                    ServerKind::Poll => {
                        threaded::bulk_recv_poll(&mut interp, &mut hasher, &ctx, l, total, recv)
                    }
                };
                match r {
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
    let secs = interp.measured_since().elapsed().as_secs_f64();
    let mut ctx_switches = interp.ctx_switches();
    ctx_switches.add(conns.ctx);
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
        cores: metrics.cores.cores(),
        migrations: metrics.cores.migrations,
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
        switch_wait_us: Percentiles::of(&metrics.switch_wait),
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
        idle: {
            let mut idle = interp.idle_clock();
            idle.add(conns.idle);
            idle
        },
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
