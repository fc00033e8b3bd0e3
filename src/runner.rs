//! The runner: builds the GIL a scenario names, starts and pins its interpreter threads,
//! lets them loose together, stops them after `duration`, joins them and collects results.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::gil::{FifoGil, Gil, LockKind, MlfqGil, NoGil, TickGil, TimedGil};
use crate::interp::Interp;
use crate::metrics::{merge, new_hist, Counters, CtxSwitches, Percentiles, ThreadMetrics};
use crate::pin;
use crate::result::{CpuSummary, GilSummary, RunResult, ThreadResult};
use crate::scenario::{CpuWork, Scenario};
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

/// Runs a scenario on the design it names.
pub fn run(sc: &Scenario) -> Result<RunResult, RunError> {
    sc.validate().map_err(RunError::BadInput)?;
    let p = &sc.gil;
    match sc.lock {
        LockKind::Tick => run_with(TickGil::new(p), sc),
        LockKind::Timed => run_with(TimedGil::new(p), sc),
        LockKind::Mlfq => run_with(MlfqGil::new(p), sc),
        LockKind::Fifo => run_with(FifoGil::new(p), sc),
        LockKind::None => run_with(NoGil::new(), sc),
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

/// What one interpreter thread brings back.
struct ThreadOut {
    result: ThreadResult,
    metrics: ThreadMetrics,
}

struct Shared {
    stop: AtomicBool,
    failed: AtomicBool,
    last_holder: AtomicUsize,
    gate: StartGate,
}

fn run_with<G: Gil>(gil: G, sc: &Scenario) -> Result<RunResult, RunError> {
    let n = sc.cpu_threads;
    let plan =
        pin::plan(&sc.pin, n).map_err(|e| RunError::BadInput(format!("--pin {}: {e}", sc.pin)))?;
    let tick_ns = calibrate_tick_ns(sc.tick_bytes);
    let call_work_ticks = if sc.call_work.is_zero() {
        0
    } else {
        (sc.call_work.as_nanos() as f64 / tick_ns).ceil() as u64
    };
    let shared = Shared {
        stop: AtomicBool::new(false),
        failed: AtomicBool::new(false),
        last_holder: AtomicUsize::new(usize::MAX),
        gate: StartGate::new(),
    };
    let mut notes = plan.notes.clone();

    let (outs, measured, wall) = thread::scope(|scope| {
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            let (gil, shared, core) = (&gil, &shared, plan.cores[i]);
            let spawned = thread::Builder::new()
                .name(format!("cpu-{i}"))
                .spawn_scoped(scope, move || {
                    cpu_thread(gil, shared, sc, i, core, call_work_ticks)
                });
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.gate.open(false);
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(RunError::Failed(format!(
                        "cannot start thread cpu-{i}: {e}"
                    )));
                }
            }
        }
        shared.gate.wait_ready(n);
        let start = Instant::now();
        shared.gate.open(true);
        while !shared.failed.load(Ordering::SeqCst) {
            let left = sc.duration.saturating_sub(start.elapsed());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(Duration::from_millis(10)));
        }
        shared.stop.store(true, Ordering::SeqCst);
        let measured = start.elapsed();
        let mut outs = Vec::with_capacity(n);
        let mut panics = Vec::new();
        for (i, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(o) => outs.push(o),
                Err(payload) => panics.push(format!(
                    "thread cpu-{i} panicked: {}",
                    panic_message(&*payload)
                )),
            }
        }
        if !panics.is_empty() {
            return Err(RunError::Failed(format!(
                "{}; the run was stopped",
                panics.join("; ")
            )));
        }
        Ok((outs, measured, start.elapsed()))
    })?;

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
        .find(|o| plan.cores[0].is_some() && o.result.pinned.is_none())
    {
        notes.push(format!(
            "{}: the OS refused to pin it; it ran unpinned",
            t.result.name
        ));
    }
    notes.push(format!(
        "one {}-byte tick costs {:.0} ns here; call_work = {} ticks",
        sc.tick_bytes, tick_ns, call_work_ticks
    ));

    let secs = measured.as_secs_f64();
    let mut total = Counters::default();
    let mut ctx = CtxSwitches::default();
    let (mut wait, mut hold, mut reacq) = (new_hist(), new_hist(), new_hist());
    for o in &outs {
        total.add(&o.metrics.counters);
        ctx.add(o.result.ctx_switches);
        merge(&mut wait, &o.metrics.wait);
        merge(&mut hold, &o.metrics.hold);
        merge(&mut reacq, &o.metrics.reacquire);
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
    let mut params = sc.params_json();
    params["tick_ns"] = serde_json::json!((tick_ns * 10.0).round() / 10.0);
    params["call_work_ticks"] = serde_json::json!(call_work_ticks);
    Ok(RunResult {
        scenario: sc.name.clone(),
        lock: G::NAME.to_owned(),
        params,
        wall_s: wall.as_secs_f64(),
        measured_s: secs,
        cpu,
        io: None,
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
    })
}

fn cpu_thread<G: Gil>(
    gil: &G,
    shared: &Shared,
    sc: &Scenario,
    index: usize,
    core: Option<usize>,
    call_work_ticks: u64,
) -> ThreadOut {
    let _flag = PanicFlag(&shared.failed);
    let pinned = core.filter(|&c| pin::pin_current(c));
    let mut interp = Interp::new(gil, index, &shared.last_holder);
    let seed = index as u64 + 1;
    let mut hasher = TickHasher::new(sc.tick_bytes, seed);
    let ctx = WorkCtx {
        stop: &shared.stop,
        call_work_ticks,
        fault: if index == 0 { sc.fault } else { None },
    };
    let started = shared.gate.ready_and_wait();
    let cs0 = CtxSwitches::of_current_thread();
    let t0 = Instant::now();
    let mut digest = String::new();
    if started {
        match sc.cpu_work {
            CpuWork::CpuHash => cpu::cpu_hash(&mut interp, &mut hasher, &ctx),
            CpuWork::HashNogil => {
                digest = cpu::hash_nogil(&mut interp, &mut hasher, &ctx, sc.buffer_bytes, seed)
            }
        }
    }
    if interp.holds() {
        interp.release(crate::gil::Release::Exit);
    }
    let secs = t0.elapsed().as_secs_f64();
    let ctx_switches = CtxSwitches::of_current_thread().since(cs0);
    let design: BTreeMap<String, u64> = interp
        .gil_stats()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let metrics = std::mem::take(&mut interp.metrics);
    let hash_digest = hasher.finish();
    let c = &metrics.counters;
    let result = ThreadResult {
        name: format!("cpu-{index}"),
        role: "cpu".into(),
        workload: match sc.cpu_work {
            CpuWork::CpuHash => "cpu-hash".into(),
            CpuWork::HashNogil => "hash-nogil".into(),
        },
        core: crate::metrics::current_core(),
        pinned,
        counters: c.clone(),
        ticks_per_sec: if secs > 0.0 {
            c.ticks as f64 / secs
        } else {
            0.0
        },
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
    };
    ThreadOut { result, metrics }
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
