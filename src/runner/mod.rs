//! The runner: builds the GIL a scenario names, binds its sockets, starts and pins its
//! interpreter threads and the load generator, lets them loose together, stops them after
//! `duration` (or when a bulk transfer is done, a thread fails, or a signal arrives), joins
//! them and collects one [`RunResult`].

mod collect;
mod control;
mod thread;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread as std_thread;
use std::time::{Duration, Instant};

use crate::clock::Epoch;
use crate::gil::{Gil, WithGil};
use crate::holdlog::{self, HoldLog};
use crate::interp::Beacon;
use crate::pin;
use crate::result::RunResult;
use crate::scenario::{IoWork, Scenario, ServerKind};
use crate::signals;
use crate::units::format_duration;
use crate::workload::calibrate_tick_ns;
use crate::workload::limits;
use crate::workload::loadgen::{self, LoadConfig};
use crate::workload::server::{io_reason, Listener};
use crate::workload::Transport;

use collect::{assemble, Finished, LoadOut, Setup};
pub use control::Timing;
use control::{monitor, End, Naps, Shared, Stall};
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

/// Descriptors a run holds besides its connections and servers: the standard streams and
/// the load generator's poller and timer (a convoy-echo run holds 11 in all).
const FD_FIXED: u64 = 6;
/// Each echo server's: its listener, poller and reserve descriptor.
const FD_PER_SERVER: u64 = 3;
/// Descriptors opened for a moment, a few at a time: /proc reads, an output's temporary
/// file, the checks of the output directories.
const FD_SLACK: u64 = 16;

/// Descriptors a run needs besides its connections.
fn fd_margin(sc: &Scenario) -> u64 {
    FD_FIXED + FD_PER_SERVER * sc.io_thread_count() as u64 + FD_SLACK
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
    struct Run<'a> {
        sc: &'a Scenario,
        mode: Mode,
        inst: &'a Instrument,
        on_listening: &'a dyn Fn(&[SocketAddr]),
    }
    impl WithGil for Run<'_> {
        type Out = Result<RunResult, RunError>;
        fn run<G: Gil>(self, gil: G) -> Self::Out {
            run_with(gil, self.sc, self.mode, self.inst, self.on_listening)
        }
    }
    let run = Run {
        sc,
        mode,
        inst,
        on_listening,
    };
    sc.lock
        .try_with_design(&sc.gil_params(), run)
        .map_err(|e| RunError::Failed(cannot_spawn("the GIL's timer thread", &e)))?
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
            // bulk and the threaded TCP echo server take a blocking listener.
            let blocking = sc.io == IoWork::Bulk
                || (sc.server == ServerKind::Threaded && sc.transport == Transport::Tcp);
            Listener::bind(sc.transport, addr, blocking, sc.listen_backlog()).map_err(|e| {
                RunError::BadInput(format!("cannot listen on {addr}: {}", io_reason(&e)))
            })
        })
        .collect()
}

/// What is decided before any thread starts.
struct Plan {
    addrs: Vec<SocketAddr>,
    roles: Vec<Role>,
    pins: pin::PinPlan,
    notes: Vec<String>,
    loadgen_place: String,
    load_core: Option<usize>,
    with_load: bool,
    tick_ns: f64,
    call_work_ticks: u64,
    timing: Timing,
}

/// Binds the sockets, lays out the threads and their cores, and measures what a tick costs.
fn plan(sc: &Scenario, mode: Mode) -> Result<Plan, RunError> {
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
    let pins =
        pin::plan(&sc.pin, roles.len()).map_err(|e| RunError::BadInput(pin_error(sc, &e)))?;
    let with_load = mode == Mode::Run && sc.io != IoWork::None;
    let mut notes = pins.notes.clone();
    check_descriptors(sc, mode, &mut notes)?;
    let unpinned = sc.pin == pin::PinMode::None;
    let loadgen_place = match (with_load, pins.spare, unpinned) {
        (false, _, _) => String::new(),
        (true, Some(c), false) => format!("core {c}"),
        (true, _, true) => "unpinned".to_owned(),
        (true, None, false) => {
            notes.push("no core is free for the load generator: it runs unpinned and shares cores with GIL threads (its lateness is reported)".into());
            "unpinned, shares cores with GIL threads".to_owned()
        }
    };
    let tick_ns = calibrate_tick_ns(sc.tick_bytes);
    let call_work_ticks = if sc.call_work.is_zero() {
        0
    } else {
        (sc.call_work.as_nanos() as f64 / tick_ns).ceil() as u64
    };
    Ok(Plan {
        addrs,
        load_core: if unpinned { None } else { pins.spare },
        roles,
        pins,
        notes,
        loadgen_place,
        with_load,
        tick_ns,
        call_work_ticks,
        timing: Timing::of(sc, mode),
    })
}

/// Makes sure the descriptor limit holds the run's connections (raising the soft limit where
/// the hard one allows): a `run` that cannot is bad input; a `serve` that cannot turns peers
/// away, which a note says. Notes a listen backlog capped by the kernel.
fn check_descriptors(sc: &Scenario, mode: Mode, notes: &mut Vec<String>) -> Result<(), RunError> {
    if sc.io != IoWork::Echo {
        return Ok(());
    }
    if mode == Mode::Run {
        // The load generator's sockets, and over TCP the servers' ends of them too.
        let per_conn = if sc.transport == Transport::Tcp { 2 } else { 1 };
        let needed = (sc.connections * per_conn) as u64 + fd_margin(sc);
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
    } else if sc.transport == Transport::Tcp {
        // Each connection is a descriptor; beyond the limit the servers turn peers away.
        let needed = (sc.io_thread_count() * sc.max_connections) as u64 + fd_margin(sc);
        if let Some(limit) = limits::ensure_nofile(needed).filter(|&l| l < needed) {
            notes.push(format!(
                "the file descriptor limit ({limit}, ulimit -n) is below the {needed} that max_connections = {} needs: connections beyond it are turned away",
                sc.max_connections
            ));
        }
    }
    Ok(())
}

/// Refuses work that one request or one `call_work` could not finish within the run: such a
/// run would measure nothing but its own cut-off.
fn check_work_fits(sc: &Scenario, p: &Plan) -> Result<(), RunError> {
    let per_request = sc.work_ticks.saturating_add(p.call_work_ticks);
    let cost = Duration::from_nanos((per_request as f64 * p.tick_ns).min(u64::MAX as f64) as u64);
    if sc.io != IoWork::None && cost > sc.duration {
        return Err(RunError::BadInput(format!(
            "work_ticks = {} plus call_work = {} take about {} per request here ({:.0} ns a tick), longer than the run (duration = {}); shorten them or lengthen the run",
            sc.work_ticks,
            format_duration(sc.call_work),
            format_duration(cost),
            p.tick_ns,
            format_duration(sc.duration)
        )));
    }
    if sc.call_work > sc.duration {
        return Err(RunError::BadInput(format!(
            "call_work = {} is longer than the run (duration = {})",
            format_duration(sc.call_work),
            format_duration(sc.duration)
        )));
    }
    Ok(())
}

/// A run on one design: plan, start the threads, let them loose together, stop them, join
/// them, and assemble what they measured.
fn run_with<G: Gil>(
    gil: G,
    sc: &Scenario,
    mode: Mode,
    inst: &Instrument,
    on_listening: &dyn Fn(&[SocketAddr]),
) -> Result<RunResult, RunError> {
    let mut p = plan(sc, mode)?;
    check_work_fits(sc, &p)?;
    if G::EXCLUSIVE && recording_may_move_races(sc) {
        p.notes.push(RECORDING_MOVES_RACES.into());
    }
    let gil = Arc::new(gil);
    let sc_arc = Arc::new(sc.clone());
    let shared = shared_state(sc, inst, &p);
    on_listening(&p.addrs);
    let threads = spawn_all(&gil, &shared, &sc_arc, &mut p)?;
    let start = open_gate(&shared, threads.len(), &p.timing);
    let mut naps = Naps::new(start);
    let end = monitor(&shared, sc, p.with_load, &p.timing, start, &mut naps);
    let stop_raw = shared.stop_now();
    let stopped = start.elapsed();
    let mut joined = join_by_deadline(threads, &shared, &p.timing, start, &end, &mut naps);
    let wall = start.elapsed();
    if !joined.panics.is_empty() {
        return Err(RunError::Failed(format!(
            "{}; the run was stopped",
            joined.panics.join("; ")
        )));
    }
    let idle_while_wanted = derive_from_logs::<G>(
        sc,
        &shared,
        &mut joined.outs,
        (stop_raw, &naps.stalls),
        &mut p.notes,
    );
    let (measured, measured_from) = measured_window(&shared, stopped, stop_raw);
    let fin = Finished {
        outs: joined.outs,
        load: joined.load,
        measured,
        measured_from,
        wall,
        end,
        abandoned: joined.abandoned,
        given_up_by: joined.given_up_by,
        stalls: naps.stalls,
    };
    assemble(&*gil, sc, mode, p.into_setup(idle_while_wanted), fin)
}

/// What the run's threads share: the stop and warm-up flags, the instrument's clock and
/// window, the event-log budget (with every recording thread's first chunk ready), the
/// spin gauge, the watchdog's beacons and the start gate.
fn shared_state(sc: &Scenario, inst: &Instrument, p: &Plan) -> Arc<Shared> {
    let mut shared = Shared::new(
        *inst,
        p.roles.iter().map(Role::name).collect(),
        conn_threads(sc),
        p.timing.warmup.is_zero(),
    );
    shared.record = sc.record;
    shared.spin_gauge = sc
        .adaptive_spin
        .then(|| Arc::new(crate::gil::SpinGauge::new(sc.run_cores())));
    if sc.record {
        shared.log_budget.top_up(shared.ready_chunks());
    }
    Arc::new(shared)
}

/// Recording adds work (clock reads, log entries, histogram writes) to every take and release.
/// With three or more threads wanting the GIL a hand-off is a race that this much can tip,
/// and an I/O workload's client-side figures follow who wins it (docs/costs.md, "Recording":
/// "Races", and "Recording moved races" for before the logs).
fn recording_may_move_races(sc: &Scenario) -> bool {
    let io = sc.io_thread_count().max(conn_threads(sc));
    sc.record && io > 0 && sc.cpu_threads + io >= 3
}

const RECORDING_MOVES_RACES: &str = "recording (record = true) adds two or three clock reads and a few histogram writes to every GIL take and release (nothing shared); with three or more threads wanting the GIL that can tip who wins a hand-off. The recorded/unrecorded matrix of docs/costs.md (Recording) found every design within its bounds (convoy-echo, 1 and 2 CPU threads, on a 2-core machine, 2026-12-07); other conditions were not measured, and --set record=false gives the client's figures undisturbed";

/// The connection threads a run expects: the threaded TCP echo server starts one per
/// connection the load generator opens (`connections`; under `serve`, the clients expected).
fn conn_threads(sc: &Scenario) -> usize {
    let threaded_tcp = sc.server == ServerKind::Threaded && sc.transport == Transport::Tcp;
    if sc.io == IoWork::Echo && threaded_tcp {
        sc.connections
    } else {
        0
    }
}

/// Waits until every thread is at the start gate, marks the start (the epoch the recorders
/// count from and, without a warm-up, the start of the measured window) and opens the gate.
fn open_gate(shared: &Shared, threads: usize, timing: &Timing) -> Instant {
    shared.gate.wait_ready(threads);
    let epoch = Epoch::now(&shared.clock);
    let start = epoch.at;
    let _ = shared.epoch.set(start);
    let _ = shared.raw_epoch.set(epoch);
    if timing.warmup.is_zero() {
        shared.measure_start.store(epoch.raw, Ordering::Release);
    }
    shared.gate.open(true);
    start
}

/// Derives from the threads' GIL event logs what needs several threads' events: each
/// thread's holder switches and overlapping takes (written into its counters), and the time
/// the GIL was free or in transit while someone wanted it in the measured window, which ended
/// at raw reading `stop_raw`, less the `stalls` (the process did not run: nobody was idle,
/// nobody wanted). `None` where nothing was logged (not recording, a design without
/// exclusion, a run stopped in its warm-up) or a log overflowed its budget (a note says so).
fn derive_from_logs<G: Gil>(
    sc: &Scenario,
    shared: &Shared,
    outs: &mut [ThreadOut],
    (stop_raw, stalls): (u64, &[Stall]),
    notes: &mut Vec<String>,
) -> Option<Duration> {
    let logs: Vec<Vec<HoldLog>> = outs
        .iter_mut()
        .map(|o| std::mem::take(&mut o.logs))
        .collect();
    if !(G::EXCLUSIVE && sc.record) {
        return None;
    }
    let (epoch, from) = (shared.raw_epoch.get()?.raw, shared.measure_start_raw()?);
    let all: Vec<&HoldLog> = logs.iter().flatten().collect();
    let window = (from.saturating_sub(epoch), stop_raw.saturating_sub(epoch));
    // Stall times are from the start, the epoch's instant.
    let ns = |d: Duration| d.as_nanos().min(u64::MAX as u128) as u64;
    let stopped: Vec<(u64, u64)> = stalls
        .iter()
        .map(|s| (ns(s.at), ns(s.at + s.len)))
        .collect();
    let Some(d) = holdlog::derive(&all, &shared.clock, window, &stopped) else {
        notes.push(LOGS_FULL.into());
        return None;
    };
    let mut at = 0;
    for (o, l) in outs.iter_mut().zip(&logs) {
        let c = &mut o.metrics.counters;
        c.switches = d.switches[at..at + l.len()].iter().sum();
        c.overlaps = d.overlaps[at..at + l.len()].iter().sum();
        o.result.counters.switches = Some(c.switches);
        o.result.counters.overlaps = Some(c.overlaps);
        at += l.len();
    }
    Some(Duration::from_nanos(d.idle_while_wanted_ns))
}

const LOGS_FULL: &str = "the GIL event logs outgrew their budget: holder switches, the exclusion check and idle-while-wanted were not derived";

/// The measured window: from the end of the warm-up (the start, if there was none) to the
/// stop (at raw reading `stop_raw`, `stopped` after the start); and when it began, after the
/// start.
fn measured_window(shared: &Shared, stopped: Duration, stop_raw: u64) -> (Duration, Duration) {
    // A run stopped during its warm-up measured nothing: an empty window at the stop.
    let (Some(from), Some(epoch)) = (shared.measure_start_raw(), shared.raw_epoch.get()) else {
        return (Duration::ZERO, stopped);
    };
    // On the instrument's clock, as the threads cut their holds and waits.
    let c = &shared.clock;
    (c.between(from, stop_raw), c.between(epoch.raw, from))
}

impl Plan {
    /// What the result keeps of the plan, with the idle-while-wanted time measured since.
    fn into_setup(self, idle_while_wanted: Option<Duration>) -> Setup {
        Setup {
            addrs: self.addrs,
            plan: self.pins,
            notes: self.notes,
            loadgen_place: self.loadgen_place,
            tick_ns: self.tick_ns,
            call_work_ticks: self.call_work_ticks,
            deadline: self.timing.deadline(),
            idle_while_wanted,
        }
    }
}

/// A started thread of the run: an interpreter thread or the load generator.
enum Started {
    Gil(std_thread::JoinHandle<ThreadOut>),
    Load(std_thread::JoinHandle<LoadOut>),
}

impl Started {
    fn is_finished(&self) -> bool {
        match self {
            Started::Gil(h) => h.is_finished(),
            Started::Load(h) => h.is_finished(),
        }
    }
    fn name(&self) -> String {
        let t = match self {
            Started::Gil(h) => h.thread(),
            Started::Load(h) => h.thread(),
        };
        t.name().unwrap_or("?").to_owned()
    }
}

/// Starts every interpreter thread and the load generator; they wait at the start gate.
/// The threads own what they use (`Arc`s), so that a run past its deadline can leave a hung
/// thread behind instead of hanging with it.
fn spawn_all<G: Gil>(
    gil: &Arc<G>,
    shared: &Arc<Shared>,
    sc: &Arc<Scenario>,
    p: &mut Plan,
) -> Result<Vec<Started>, RunError> {
    let mut started = Vec::new();
    let abort = |started: Vec<Started>, msg: String| {
        shared.gate.open(false);
        for s in started {
            let _ = match s {
                Started::Gil(h) => h.join().map(|_| ()),
                Started::Load(h) => h.join().map(|_| ()),
            };
        }
        Err(RunError::Failed(msg))
    };
    let call_work_ticks = p.call_work_ticks;
    for (id, role) in std::mem::take(&mut p.roles).into_iter().enumerate() {
        let (gil, shared, sc, core) = (gil.clone(), shared.clone(), sc.clone(), p.pins.cores[id]);
        let name = role.name();
        let spawned = std_thread::Builder::new()
            .name(name.clone())
            .spawn(move || gil_thread(&*gil, &shared, &sc, id, role, core, call_work_ticks));
        match spawned {
            Ok(h) => started.push(Started::Gil(h)),
            Err(e) => return abort(started, cannot_spawn(&format!("thread {name}"), &e)),
        }
    }
    if p.with_load {
        let (shared, sc, addrs, core) = (shared.clone(), sc.clone(), p.addrs.clone(), p.load_core);
        let spawned = std_thread::Builder::new()
            .name("load".into())
            .spawn(move || load_thread(&shared, &sc, addrs, core));
        match spawned {
            Ok(h) => started.push(Started::Load(h)),
            Err(e) => return abort(started, cannot_spawn("the load generator", &e)),
        }
    }
    Ok(started)
}

/// Why a thread could not start. The kernel says EAGAIN (or ENOMEM) when a thread's stack
/// cannot be mapped under the address-space limit as well as at the thread limit.
fn cannot_spawn(what: &str, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::ENOMEM) => format!(
            "cannot start {what}: out of memory or threads ({e}): the address-space limit (ulimit -v) or the thread limit (ulimit -u) is too low for this run"
        ),
        _ => format!("cannot start {what}: {e}"),
    }
}

/// The load generator's thread: outside every GIL, on its own core when one is free.
fn load_thread(
    shared: &Shared,
    sc: &Scenario,
    addrs: Vec<SocketAddr>,
    core: Option<usize>,
) -> LoadOut {
    let pinned = core.is_some_and(pin::pin_current);
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
                intervals: shared.inst.hlog_interval,
                window_over: Some(shared.load_window_over.clone()),
                ..echo_load_config(sc, addrs, pinned)
            };
            LoadOut::Echo(Box::new(loadgen::run_echo_load(&cfg, &shared.stop)))
        }
    }
}

/// The echo load a scenario asks for, against `targets`, busy-waiting between sends when
/// the load generator has a core of its own (`pinned`); no interval log, no window flag.
pub(crate) fn echo_load_config(
    sc: &Scenario,
    targets: Vec<SocketAddr>,
    pinned: bool,
) -> LoadConfig {
    LoadConfig {
        transport: sc.transport,
        targets,
        connections: sc.connections,
        rate: sc.rate,
        request_bytes: sc.request_bytes,
        warmup: sc.warmup,
        duration: sc.duration,
        timeout: sc.timeout,
        busy_wait: pinned,
        intervals: None,
        window_over: None,
    }
}

/// What came back from the threads by the deadline.
struct Joined {
    outs: Vec<ThreadOut>,
    load: Option<LoadOut>,
    panics: Vec<String>,
    /// Threads still running at the deadline, each with where it was.
    abandoned: Vec<String>,
    /// The signal that cut the wait for them short, if one did (in the run or the join).
    given_up_by: Option<i32>,
}

/// How long the threads still running get to end after a signal: what is left of the second
/// a Ctrl-C may take (the naps that notice it, the result's assembly and outputs) fits after it.
const SIGNAL_GRACE: Duration = Duration::from_millis(800);

/// Waits for the threads to end, but never past the run's hard deadline, moved on by any
/// time the process was stopped (sooner after a signal, [`SIGNAL_GRACE`], or a hang: one more
/// second). Threads
/// still running then are left behind, each described by its beacon; the process ends after
/// writing what was measured.
fn join_by_deadline(
    threads: Vec<Started>,
    shared: &Shared,
    timing: &Timing,
    start: Instant,
    end: &End,
    naps: &mut Naps,
) -> Joined {
    let hard = |naps: &Naps| start + timing.deadline() + naps.stalled();
    let mut until = match end {
        End::Done | End::Failed => None,
        End::Signal(_) => Some(Instant::now() + SIGNAL_GRACE),
        End::Hung(_) => Some(Instant::now() + Duration::from_secs(1)),
    };
    let mut given_up_by = end.signal();
    // Progress at the start of the join phase: a thread left behind that moved since was
    // still working (deaf to the stop), one that did not was blocked.
    let progress_then: Vec<u64> = shared
        .beacons
        .iter()
        .map(|b| b.progress.load(Ordering::Relaxed))
        .collect();
    let over = |until: Option<Instant>, naps: &Naps| {
        let now = Instant::now();
        now >= hard(naps) || until.is_some_and(|u| now >= u)
    };
    while !threads.iter().all(Started::is_finished) && !over(until, naps) {
        if given_up_by.is_none() {
            if let Some(sig) = signals::caught() {
                given_up_by = Some(sig);
                until = Some(Instant::now() + SIGNAL_GRACE);
            }
        }
        if let (Some(stall), Some(u)) = (naps.nap(Duration::from_millis(2)), until.as_mut()) {
            *u += stall.len;
        }
    }
    join_finished(threads, shared, &progress_then, given_up_by)
}

/// Joins the threads that have finished, collecting what they brought back or how they
/// panicked; describes each one still running (left behind) from its beacon and whether it
/// moved since `progress_then`.
fn join_finished(
    threads: Vec<Started>,
    shared: &Shared,
    progress_then: &[u64],
    given_up_by: Option<i32>,
) -> Joined {
    let mut j = Joined {
        outs: Vec::new(),
        load: None,
        panics: Vec::new(),
        abandoned: Vec::new(),
        given_up_by,
    };
    for t in threads {
        if !t.is_finished() {
            j.abandoned
                .push(describe_unfinished(&t, shared, progress_then));
            continue;
        }
        let name = t.name();
        match t {
            Started::Gil(h) => match h.join() {
                Ok(o) => j.outs.push(o),
                Err(payload) => j.panics.push(format!(
                    "thread {name} panicked: {}",
                    panic_message(&*payload)
                )),
            },
            Started::Load(h) => match h.join() {
                Ok(l) => j.load = Some(l),
                Err(payload) => j.panics.push(format!(
                    "the load generator panicked: {}",
                    panic_message(&*payload)
                )),
            },
        }
    }
    j
}

/// One line on where an unfinished thread is, from its beacon, and whether it made progress
/// since `progress_then` (the join phase's start).
fn describe_unfinished(t: &Started, shared: &Shared, progress_then: &[u64]) -> String {
    let name = t.name();
    match shared.names.iter().position(|n| *n == name) {
        Some(i) => {
            let b = &shared.beacons[i];
            let moved = b.progress.load(Ordering::Relaxed) != progress_then[i];
            format!(
                "{name} is {} ({} since the stop)",
                Beacon::describe(b.state.load(Ordering::Relaxed)),
                if moved {
                    "still progressing"
                } else {
                    "no progress"
                }
            )
        }
        None => format!("{name} is still running"),
    }
}

/// A placement that cannot be made, named where the `pin` came from: `--pin 9999: ...`, or
/// `FILE: key 'pin' (9999): ...` for a scenario file or `--set`.
fn pin_error(sc: &Scenario, e: &str) -> String {
    let origin = sc.origin_of("pin");
    if origin.starts_with("--pin") {
        format!("{origin}: {e}")
    } else {
        format!("{origin}: key 'pin' ({}): {e}", sc.pin)
    }
}
