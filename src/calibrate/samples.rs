//! What one side did in one run (a [`Sample`]), from the model's result or the twin's
//! report, and the medians over repetitions.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::twin::TwinRun;
use crate::metrics::{self, per_sec, Hist, Percentiles};
use crate::pin;
use crate::result::RunResult;

/// The figures of one side in one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sample {
    pub requests_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// CPU throughput with the server under load (ticks/s or pure-Python iterations/s).
    pub cpu_per_sec: Option<f64>,
    /// The same CPU threads alone.
    pub cpu_alone_per_sec: Option<f64>,
    /// `cpu_per_sec / cpu_alone_per_sec`.
    pub cpu_kept: Option<f64>,
    /// Context switches of the GIL threads (server and CPU), per second.
    pub ctx_per_sec: f64,
    /// Shares of requests that waited 0, 1, 2, 3+ switch intervals (0-1).
    pub waited: [f64; 4],
    pub requests: u64,
    pub failed: u64,
    /// CPU time other processes used during this side's run (with a server), as a share of
    /// the machine (all usable cores), when the OS says: what skews a calibration.
    #[serde(default)]
    pub other_load: Option<f64>,
    /// A bulk transfer's figures (then the echo figures above are zero).
    #[serde(default)]
    pub bulk: Option<Bulk>,
}

/// What one side did with a bulk transfer (a run's, or the medians of a condition's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bulk {
    /// The transfer's size and the bytes received.
    pub total: u64,
    pub bytes: u64,
    /// Seconds from the first byte to the end of the receive (the last byte, or the cut).
    pub receive_s: f64,
    /// Seconds from the first byte to the last, when the transfer completed (for medians:
    /// over the runs that completed).
    pub transfer_s: Option<f64>,
    /// Megabytes (10^6 bytes) received per second of `receive_s`.
    pub mb_per_sec: f64,
    /// Runs whose transfer the end of the run cut short.
    pub unfinished: u32,
    /// For a condition with CPU threads: MB/s of the same condition without them over this
    /// one's (set on the medians, when the calibration has that condition).
    pub slowdown: Option<f64>,
}

impl Bulk {
    fn of(total: u64, bytes: u64, receive_s: Option<f64>, transfer_s: Option<f64>) -> Bulk {
        let receive_s = receive_s.unwrap_or(0.0);
        Bulk {
            total,
            bytes,
            receive_s,
            transfer_s: transfer_s.filter(|_| bytes >= total),
            mb_per_sec: per_sec(bytes as f64, receive_s) / 1e6,
            unfinished: u32::from(bytes < total),
            slowdown: None,
        }
    }

    /// The share of the transfer received.
    pub fn received(&self) -> f64 {
        self.bytes as f64 / self.total.max(1) as f64
    }
}

/// CPU time used on the whole machine and by this process and its reaped children, to tell
/// how much other processes used during a run.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    at: Instant,
    /// Busy time of every core (`/proc/stat`), seconds.
    machine_s: f64,
    /// This process and its waited-for children (`getrusage`), seconds.
    own_s: f64,
}

impl Usage {
    pub fn now() -> Option<Usage> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
        let f: Vec<u64> = cpu
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
        if f.len() < 8 {
            return None;
        }
        let busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
        // SAFETY: sysconf has no preconditions.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if tck <= 0 {
            return None;
        }
        let own = |who| {
            // SAFETY: rusage is plain old data, so all-zero is a valid value that getrusage
            // overwrites; the pointer is to a live local.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: a valid `who` and out-pointer; no other preconditions.
            if unsafe { libc::getrusage(who, &mut ru) } != 0 {
                return 0.0;
            }
            let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
            t(ru.ru_utime) + t(ru.ru_stime)
        };
        Some(Usage {
            at: Instant::now(),
            machine_s: busy as f64 / tck as f64,
            own_s: own(libc::RUSAGE_SELF) + own(libc::RUSAGE_CHILDREN),
        })
    }

    /// The share of the machine other processes used since `self`.
    pub fn others_since(self, cores: usize) -> Option<f64> {
        let now = Usage::now()?;
        let wall = now.at.duration_since(self.at).as_secs_f64() * cores.max(1) as f64;
        if wall <= 0.0 {
            return None;
        }
        let other = (now.machine_s - self.machine_s) - (now.own_s - self.own_s);
        Some((other / wall).clamp(0.0, 1.0))
    }
}

pub(super) fn cores() -> usize {
    pin::available_cores().map_or(1, |c| c.len())
}

/// Shares of `latency`'s values with `round(value / interval)` = 0, 1, 2, 3 or more.
pub fn waited(latency: &Hist, interval: Duration) -> [f64; 4] {
    let iv = interval.as_nanos().max(1) as f64;
    let mut counts = [0u64; 4];
    for v in latency.iter_recorded() {
        let k = ((latency.median_equivalent(v.value_iterated_to()) as f64 / iv).round() as usize)
            .min(3);
        counts[k] += v.count_at_value();
    }
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return [0.0; 4];
    }
    counts.map(|c| c as f64 / total as f64)
}

fn kept(with: Option<f64>, alone: Option<f64>) -> Option<f64> {
    match (with, alone) {
        (Some(w), Some(a)) if a > 0.0 => Some(w / a),
        _ => None,
    }
}

/// The model's figures from its run (and its CPU-alone run).
pub fn model_sample(r: &RunResult, alone: Option<&RunResult>, interval: Duration) -> Sample {
    let io = r.io.clone().unwrap_or_default();
    let cpu = r.cpu.as_ref().map(|c| c.ticks_per_sec);
    let cpu_alone = alone.and_then(|a| a.cpu.as_ref()).map(|c| c.ticks_per_sec);
    let ctx = r.gil.ctx_switches.unwrap_or_default();
    Sample {
        requests_per_sec: io.requests_per_sec,
        p50_us: io.latency_us.p50,
        p99_us: io.latency_us.p99,
        cpu_per_sec: cpu,
        cpu_alone_per_sec: cpu_alone,
        cpu_kept: kept(cpu, cpu_alone),
        ctx_per_sec: per_sec((ctx.voluntary + ctx.involuntary) as f64, r.measured_s),
        waited: r
            .hists
            .get("io-latency")
            .map_or([0.0; 4], |h| waited(h, interval)),
        requests: io.requests,
        failed: io.failed,
        other_load: None,
        bulk: (io.mode == "bulk").then(|| {
            Bulk::of(
                io.transfer_bytes.unwrap_or(io.bytes),
                io.bytes,
                io.server.receive_s,
                io.transfer_s,
            )
        }),
    }
}

/// The twin's figures from its run (and its CPU-alone run).
pub fn twin_sample(t: &TwinRun, alone: Option<&TwinRun>, interval: Duration) -> Sample {
    let rep = &t.report;
    let cpu = (rep.cpu.threads > 0).then_some(rep.cpu.iterations_per_sec);
    let cpu_alone = alone
        .filter(|a| a.report.cpu.threads > 0)
        .map(|a| a.report.cpu.iterations_per_sec);
    let tot = rep.ctx_switches.total;
    let mut s = Sample {
        cpu_per_sec: cpu,
        cpu_alone_per_sec: cpu_alone,
        cpu_kept: kept(cpu, cpu_alone),
        ctx_per_sec: per_sec((tot.voluntary + tot.involuntary) as f64, rep.window_s),
        ..Default::default()
    };
    let srv = &rep.server;
    if let Some(total) = srv.transfer_bytes {
        s.bulk = Some(Bulk::of(total, srv.bytes_in, srv.receive_s, srv.transfer_s));
    }
    if let Some(l) = &t.load {
        let p = Percentiles::of(&l.latency);
        s.requests_per_sec = per_sec(l.requests as f64, l.measured_s);
        s.p50_us = p.p50;
        s.p99_us = p.p99;
        s.waited = waited(&l.latency, interval);
        s.requests = l.requests;
        s.failed = l.failed;
    }
    s
}

/// The median of `v`; 0 when empty (a side's figure no run has).
pub(super) fn median(v: Vec<f64>) -> f64 {
    metrics::median(v).unwrap_or(0.0)
}

/// The cell-by-cell median of `samples`.
pub fn median_sample(samples: &[Sample]) -> Sample {
    let m = |f: &dyn Fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    let mo = |f: &dyn Fn(&Sample) -> Option<f64>| {
        metrics::median(samples.iter().filter_map(f).collect())
    };
    Sample {
        requests_per_sec: m(&|s| s.requests_per_sec),
        p50_us: m(&|s| s.p50_us),
        p99_us: m(&|s| s.p99_us),
        cpu_per_sec: mo(&|s| s.cpu_per_sec),
        cpu_alone_per_sec: mo(&|s| s.cpu_alone_per_sec),
        cpu_kept: mo(&|s| s.cpu_kept),
        ctx_per_sec: m(&|s| s.ctx_per_sec),
        waited: [0, 1, 2, 3].map(|k| m(&|s| s.waited[k])),
        requests: samples.iter().map(|s| s.requests).sum(),
        failed: samples.iter().map(|s| s.failed).sum(),
        other_load: mo(&|s| s.other_load),
        bulk: median_bulk(samples.iter().filter_map(|s| s.bulk.as_ref())),
    }
}

/// The cell-by-cell median of bulk figures (the transfer time over the runs that completed).
fn median_bulk<'a>(runs: impl Iterator<Item = &'a Bulk>) -> Option<Bulk> {
    let runs: Vec<&Bulk> = runs.collect();
    let first = runs.first()?;
    let m = |f: &dyn Fn(&Bulk) -> f64| median(runs.iter().map(|b| f(b)).collect());
    let done: Vec<f64> = runs.iter().filter_map(|b| b.transfer_s).collect();
    Some(Bulk {
        total: first.total,
        bytes: m(&|b| b.bytes as f64).round() as u64,
        receive_s: m(&|b| b.receive_s),
        transfer_s: metrics::median(done),
        mb_per_sec: m(&|b| b.mb_per_sec),
        unfinished: runs.iter().map(|b| b.unfinished).sum(),
        slowdown: None,
    })
}
