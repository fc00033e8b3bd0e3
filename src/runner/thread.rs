//! One interpreter thread of a run: pinning, its `Interp`, its workload, its results.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::control::Shared;
use crate::gil::{Gil, Release};
use crate::holdlog::HoldLog;
use crate::interp::{Extras, Interp, Recorded};
use crate::metrics::{IntervalHists, Percentiles, ThreadMetrics};
use crate::pin;
use crate::result::{ThreadCounters, ThreadResult};
use crate::scenario::{CpuWork, Scenario, ServerKind};
use crate::trace::TraceBuf;
use crate::workload::server::{self, io_reason, EchoConfig, Listener, ServerStats};
use crate::workload::{cpu, threaded, PanicFlag, TickHasher, WorkCtx};

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
    /// The timeline and interval histograms of GIL wait and hold (`--trace`, `--hlog`) of
    /// this thread, then of the connection threads it started, each under its own name.
    pub(super) recorded: Vec<Recorded>,
    /// The GIL event logs of this thread, then of the connection threads it started (see
    /// [`crate::holdlog`]).
    pub(super) logs: Vec<HoldLog>,
}

/// One interpreter thread, from start to finish: it registers with the GIL, waits at the
/// start gate, does its role's work and hands back what it measured.
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
    let mut interp = Interp::new(gil);
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
    join_the_run(&mut interp, shared);
    let kind = Kind::of(&role, sc);
    let worked = if started {
        match role {
            Role::Cpu { .. } => cpu_work(&mut interp, &mut hasher, &ctx, sc, seed),
            Role::Echo { listener, .. } => {
                serve_echo(&mut interp, &mut hasher, &ctx, shared, sc, listener, &name)
            }
            Role::Bulk { listener } => {
                receive_bulk(&mut interp, &mut hasher, &ctx, shared, sc, listener)
            }
        }
    } else {
        Worked::default()
    };
    finish(interp, hasher, name, pinned, kind, worked)
}

/// Once the gate opens: take the run's probe (clock, epoch, window), follow its stop flag and
/// warm-up gate, and start the recorders the outputs asked for. After the gate, because the
/// runner sets the epoch the stamps and recorders count from just before it opens it.
fn join_the_run<'a, G: Gil>(interp: &mut Interp<'a, G>, shared: &'a Shared) {
    if let Some(p) = shared.probe() {
        interp.set_probe(p);
    }
    interp.set_stop(&shared.stop);
    interp.set_warmup_gate(&shared.measuring);
    if let Some(g) = &shared.spin_gauge {
        interp.set_spin_gauge(g.clone());
    }
    interp.extras = recorders(shared, shared.role_trace_events());
}

/// The recorders the outputs asked for, counting from the run's epoch: a timeline keeping
/// `trace_events` events (`--trace`), interval histograms of GIL wait and hold (`--hlog`);
/// none in a run that does not record its GIL events (they would hold nothing, and show it
/// as measured).
fn recorders(shared: &Shared, trace_events: usize) -> Extras {
    if !shared.record {
        return Extras::default();
    }
    let epoch = shared.epoch.get().copied().unwrap_or_else(Instant::now);
    Extras {
        trace: shared
            .inst
            .trace_events
            .map(|_| TraceBuf::new(epoch, trace_events)),
        intervals: shared
            .inst
            .hlog_interval
            .map(|len| IntervalHists::new(epoch, len, 2)),
    }
}

/// A thread's role and workload, as the result names them.
struct Kind {
    role: &'static str,
    workload: String,
}

impl Kind {
    fn of(role: &Role, sc: &Scenario) -> Self {
        let (role, workload) = match role {
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
        Kind { role, workload }
    }
}

/// What a thread's work brought back besides its `Interp`'s measurements.
#[derive(Default)]
struct Worked {
    /// `hash-nogil`'s digest; empty for the others, which report their hasher's.
    digest: String,
    server: Option<ServerStats>,
    /// What the threaded server's connection threads measured beyond its own metrics.
    conns: threaded::ConnTotals,
    /// A socket error that ended the work early.
    error: Option<String>,
}

impl Worked {
    /// A server's outcome: its figures, or the socket error that ended it.
    fn served(r: std::io::Result<ServerStats>, conns: threaded::ConnTotals) -> Self {
        match r {
            Ok(s) => Worked {
                server: Some(s),
                conns,
                ..Worked::default()
            },
            Err(e) => Worked {
                conns,
                error: Some(io_reason(&e)),
                ..Worked::default()
            },
        }
    }
}

fn cpu_work<G: Gil>(
    interp: &mut Interp<'_, G>,
    hasher: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    sc: &Scenario,
    seed: u64,
) -> Worked {
    let mut worked = Worked::default();
    match sc.cpu_work {
        CpuWork::CpuHash => cpu::cpu_hash(interp, hasher, ctx),
        CpuWork::HashNogil => {
            worked.digest = cpu::hash_nogil(interp, hasher, ctx, sc.buffer_bytes, seed)
        }
    }
    worked
}

/// An echo server thread: the poll loop, or the threaded server's accepting thread (whose
/// connection threads' figures are added to it).
fn serve_echo<G: Gil>(
    interp: &mut Interp<'_, G>,
    hasher: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    shared: &Shared,
    sc: &Scenario,
    listener: Listener,
    name: &str,
) -> Worked {
    let echo = EchoConfig {
        request_bytes: sc.request_bytes,
        work_ticks: sc.work_ticks,
        max_request_bytes: sc.max_request_bytes,
        max_connections: sc.max_connections,
    };
    interp.take();
    let threaded = sc.server == ServerKind::Threaded;
    let mut conns = threaded::ConnTotals::default();
    let r = match listener {
        Listener::Tcp(l) => server::echo_tcp(interp, hasher, ctx, l, &echo),
        Listener::Udp(s) if threaded => {
            threaded::echo_udp_threaded(interp, hasher, ctx, s, &echo, &shared.measuring)
        }
        Listener::Udp(s) => server::echo_udp(interp, hasher, ctx, s, &echo),
        // The threaded TCP server: its connection threads' figures are added here.
        Listener::Bulk(l) => {
            let sp = threaded::Spawner {
                probe: shared.probe(),
                measuring: &shared.measuring,
                failed: &shared.failed,
                spin_gauge: shared.spin_gauge.as_ref(),
                record: sc.record,
                tick_bytes: sc.tick_bytes,
                name,
                recorders: &|| recorders(shared, shared.conn_trace_events()),
            };
            threaded::echo_tcp_threaded(interp, hasher, ctx, l, &echo, &sp).map(|(s, t)| {
                conns = t;
                s
            })
        }
    };
    Worked::served(r, conns)
}

/// The bulk receiver: a blocking `recv` loop (`threaded`) or a poll loop (`poll`).
fn receive_bulk<G: Gil>(
    interp: &mut Interp<'_, G>,
    hasher: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    shared: &Shared,
    sc: &Scenario,
    listener: Listener,
) -> Worked {
    interp.take();
    let Listener::Bulk(l) = listener else {
        unreachable!("bulk roles get bulk listeners")
    };
    let (total, recv) = (sc.bulk_mib << 20, sc.recv_bytes);
    let r = match sc.server {
        ServerKind::Threaded => server::bulk_recv(interp, hasher, ctx, l, total, recv),
        ServerKind::Poll => threaded::bulk_recv_poll(interp, hasher, ctx, l, total, recv),
    };
    let worked = Worked::served(r, threaded::ConnTotals::default());
    shared.io_done.fetch_add(1, Ordering::SeqCst);
    worked
}

/// Releases the GIL if the work ended holding it, and turns what the thread measured into
/// its [`ThreadOut`].
fn finish<G: Gil>(
    mut interp: Interp<'_, G>,
    hasher: TickHasher,
    name: String,
    pinned: Option<usize>,
    kind: Kind,
    mut worked: Worked,
) -> ThreadOut {
    if interp.holds() {
        interp.release(Release::Exit);
    }
    interp.drop_warmup();
    let secs = interp.measured_since().elapsed().as_secs_f64();
    let mut ctx_switches = interp.ctx_switches();
    ctx_switches.add(worked.conns.ctx);
    let design = design_figures(interp.gil_stats());
    let metrics = std::mem::take(&mut interp.metrics);
    let mut recorded = vec![interp.finish_extras(name.clone())];
    recorded.append(&mut worked.conns.recorded);
    let hash_digest = hasher.finish();
    let c = &metrics.counters;
    let mut counters = c.clone();
    if let Some(s) = &worked.server {
        counters.bytes += s.bytes_in + s.bytes_out;
    }
    let result = ThreadResult {
        name,
        role: kind.role.into(),
        workload: kind.workload,
        core: crate::metrics::current_core(),
        migrations: metrics.cores.sampled().then_some(metrics.cores.migrations),
        cores: metrics.cores.cores(),
        pinned,
        ticks_per_sec: crate::metrics::per_sec(c.ticks as f64, secs),
        // Made absent where not measured once the run is assembled (and the logs derived).
        counters: ThreadCounters::of(&counters, true, true),
        wait_us: Percentiles::of(&metrics.wait),
        hold_us: Percentiles::of(&metrics.hold),
        reacquire_us: Percentiles::of(&metrics.reacquire),
        switch_wait_us: Percentiles::of(&metrics.switch_wait),
        ctx_switches,
        design,
        digest: if worked.digest.is_empty() {
            hash_digest
        } else {
            worked.digest
        },
        server: worked.server,
    };
    let mut logs = vec![interp.take_log()];
    logs.append(&mut worked.conns.logs);
    ThreadOut {
        result,
        metrics,
        error: worked.error,
        recorded,
        logs,
    }
}

/// A design's own figures (for a thread or the whole run), keyed by name for the result.
pub(super) fn design_figures(stats: Vec<(&'static str, u64)>) -> BTreeMap<String, u64> {
    stats.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
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
