//! The runner: builds the GIL a scenario names, binds its sockets, starts and pins its
//! interpreter threads and the load generator, lets them loose together, stops them after
//! `duration` (or when a bulk transfer is done, a thread fails, or a signal arrives), joins
//! them and collects one [`RunResult`].

mod collect;
mod control;
mod thread;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread as std_thread;
use std::time::{Duration, Instant};

use crate::gil::{FifoGil, Gil, LockKind, MlfqGil, NoGil, TickGil, TimedGil};
use crate::pin;
use crate::result::RunResult;
use crate::scenario::{IoWork, Scenario};
use crate::workload::calibrate_tick_ns;
use crate::workload::limits;
use crate::workload::loadgen::{self, LoadConfig};
use crate::workload::server::{io_reason, Listener, Transport};

use collect::{assemble, Finished, LoadOut, Setup};
use control::{monitor, Shared, StartGate};
pub use thread::panic_message;
use thread::{gil_thread, Role, ThreadOut};

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

/// Descriptors a run needs besides its connections (standard streams, pollers, timers,
/// listeners, reserve descriptors, /proc reads, output files).
const FD_MARGIN: u64 = 64;

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

fn bind_listeners(sc: &Scenario) -> Result<Vec<Listener>, RunError> {
    (0..sc.io_thread_count())
        .map(|i| {
            let port = if sc.port == 0 {
                0
            } else {
                sc.port.checked_add(i as u16).unwrap_or(0)
            };
            let addr = SocketAddr::new(sc.listen, port);
            Listener::bind(
                sc.transport,
                addr,
                sc.io == IoWork::Bulk,
                sc.listen_backlog(),
            )
            .map_err(|e| RunError::BadInput(format!("cannot listen on {addr}: {}", io_reason(&e))))
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
        beacons: (0..n).map(|_| Default::default()).collect(),
        names: roles.iter().map(Role::name).collect(),
        last_holder: AtomicUsize::new(usize::MAX),
        gate: StartGate::new(),
    };
    let mut notes = plan.notes.clone();
    if mode == Mode::Run && sc.io == IoWork::Echo {
        // The load generator's sockets, and over TCP the servers' ends of them too.
        let per_conn = if sc.transport == Transport::Tcp { 2 } else { 1 };
        let needed = (sc.connections * per_conn) as u64 + FD_MARGIN;
        if let Some(limit) = limits::ensure_nofile(needed).filter(|&l| l < needed) {
            return Err(RunError::BadInput(format!(
                "connections = {}: the run needs about {needed} open file descriptors; the limit here is {limit} (ulimit -n)",
                sc.connections
            )));
        }
        let per_server = sc.connections.div_ceil(sc.io_threads.max(1));
        if let Some(cap) = limits::somaxconn()
            .filter(|&c| sc.transport == Transport::Tcp && (c as usize) < per_server)
        {
            notes.push(format!(
                "the listen backlog is capped at {cap} (net.core.somaxconn): of the {per_server} connections per server, those beyond it open only as the server accepts"
            ));
        }
    }
    if mode == Mode::Serve && sc.io == IoWork::Echo && sc.transport == Transport::Tcp {
        // Each connection is a descriptor; beyond the limit the servers turn peers away.
        let needed = (sc.io_thread_count() * sc.max_connections) as u64 + FD_MARGIN;
        if let Some(limit) = limits::ensure_nofile(needed).filter(|&l| l < needed) {
            notes.push(format!(
                "the file descriptor limit ({limit}, ulimit -n) is below the {needed} that max_connections = {} needs: connections beyond it are turned away",
                sc.max_connections
            ));
        }
    }
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

    let (outs, load, measured, wall, interrupted) = std_thread::scope(|scope| {
        let mut handles = Vec::with_capacity(n);
        let abort = |handles: Vec<std_thread::ScopedJoinHandle<'_, ThreadOut>>, msg: String| {
            shared.gate.open(false);
            for h in handles {
                let _ = h.join();
            }
            Err(RunError::Failed(msg))
        };
        for (id, role) in roles.into_iter().enumerate() {
            let (gil, shared, core) = (&gil, &shared, plan.cores[id]);
            let name = role.name();
            let spawned = std_thread::Builder::new()
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
                std_thread::Builder::new()
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
        let interrupted = monitor(&shared, sc, with_load, run_for, start);
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

    let setup = Setup {
        addrs,
        plan,
        notes,
        loadgen_place,
        tick_ns,
        call_work_ticks,
        run_for,
    };
    assemble(
        &gil,
        sc,
        mode,
        setup,
        Finished {
            outs,
            load,
            measured,
            wall,
            interrupted,
        },
    )
}
