//! Human-readable rendering of results.

use std::fmt::Write;

use crate::metrics::Percentiles;
use crate::result::RunResult;

fn rate(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2}G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Microseconds, compactly.
pub fn us(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}s", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.2}ms", x / 1e3)
    } else {
        format!("{x:.1}us")
    }
}

fn pct(p: &Percentiles) -> String {
    if p.count == 0 {
        return "-".into();
    }
    format!("{}/{}/{}", us(p.p50), us(p.p99), us(p.max))
}

/// The table `gilbench run` prints for one run.
pub fn run_table(r: &RunResult) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} on {} ({:.2}s measured, pin {})",
        r.scenario,
        r.lock,
        r.measured_s,
        r.params["pin"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        o,
        "{:<8} {:<10} {:>5} {:>10} {:>8} {:>8} {:>8} {:>26} {:>26} {:>12}",
        "thread",
        "work",
        "core",
        "ticks/s",
        "acq",
        "switch",
        "forced",
        "GIL wait p50/p99/max",
        "GIL hold p50/p99/max",
        "ctx vol/inv"
    );
    for t in &r.threads {
        let core = match (t.pinned, t.core) {
            (_, Some(c)) => c.to_string(),
            _ => "?".into(),
        };
        let _ = writeln!(
            o,
            "{:<8} {:<10} {:>5} {:>10} {:>8} {:>8} {:>8} {:>26} {:>26} {:>12}",
            t.name,
            t.workload,
            core,
            rate(t.ticks_per_sec),
            t.counters.acquisitions,
            t.counters.switches,
            t.counters.forced_drops,
            pct(&t.wait_us),
            pct(&t.hold_us),
            format!(
                "{}/{}",
                t.ctx_switches.voluntary, t.ctx_switches.involuntary
            )
        );
    }
    let g = &r.gil;
    let _ = writeln!(
        o,
        "{:<8} {:<10} {:>5} {:>10} {:>8} {:>8} {:>8} {:>26} {:>26} {:>12}",
        "total",
        "",
        "",
        r.cpu.as_ref().map_or("-".into(), |c| rate(c.ticks_per_sec)),
        g.acquisitions,
        g.switches,
        g.forced_drops,
        pct(&g.wait_us),
        pct(&g.hold_us),
        format!(
            "{}/{}",
            g.ctx_switches.voluntary, g.ctx_switches.involuntary
        )
    );
    if let Some(c) = &r.cpu {
        let _ = writeln!(
            o,
            "cpu: {} threads, {} ticks/s, {}B/s hashed",
            c.threads,
            rate(c.ticks_per_sec),
            rate(c.bytes_per_sec)
        );
    }
    if let Some(io) = &r.io {
        let l = &io.latency_us;
        let _ = writeln!(
            o,
            "io: {} requests, {} req/s, latency p50 {} p90 {} p99 {} p99.9 {} max {}",
            io.requests,
            rate(io.requests_per_sec),
            us(l.p50),
            us(l.p90),
            us(l.p99),
            us(l.p999),
            us(l.max)
        );
        if let Some(t) = io.transfer_s {
            let _ = writeln!(o, "io: transfer of {}B took {t:.3}s", rate(io.bytes as f64));
        }
    }
    if !g.design.is_empty() {
        let parts: Vec<String> = g.design.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(o, "{}: {}", r.lock, parts.join(", "));
    }
    for n in &r.notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}
