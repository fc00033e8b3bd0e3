//! The conditions a calibration runs: every combination of the listed values, each a
//! scenario the twin can mirror.

use crate::gil::LockKind;
use crate::scenario::{shown, split_sweep, IoWork, Scenario, KEYS};
use crate::units::format_duration;

/// One condition: a label and the scenario both sides run.
#[derive(Clone, Debug)]
pub struct Condition {
    pub label: String,
    pub scenario: Scenario,
}

/// Keys the twin mirrors; any other key changes the model only (e.g. `call_work`, `spin`).
pub const MIRRORED: &[&str] = &[
    "server",
    "cpu_threads",
    "interval",
    "pin",
    "transport",
    "request_bytes",
    "connections",
    "rate",
    "warmup",
    "duration",
    "timeout",
    "io",
    "bulk_mib",
    "recv_bytes",
];

/// Checks that the twin can run `sc` as the model does.
pub fn check(sc: &Scenario) -> Result<(), String> {
    let at = |k: &str| sc.origin_of(k);
    if sc.io == IoWork::None {
        return Err(format!(
            "{}: calibrate needs a socket scenario (io = \"echo\" or \"bulk\")",
            at("io")
        ));
    }
    if sc.io_threads != 1 {
        return Err(format!(
            "{}: calibrate runs one server (io_threads = 1)",
            at("io_threads")
        ));
    }
    if sc.cpu_work != crate::scenario::CpuWork::CpuHash {
        return Err(format!(
            "{}: calibrate's CPU threads are pure-Python loops: cpu_work must be cpu-hash",
            at("cpu_work")
        ));
    }
    if !sc.listen.is_loopback() {
        return Err(format!(
            "{}: calibrate runs both servers on a loopback address, not {}",
            at("listen"),
            sc.listen
        ));
    }
    if sc.fault.is_some() {
        return Err(format!("{}: calibrate runs without faults", at("fault")));
    }
    sc.validate()
}

/// Every combination of the listed values (`KEY=V1,V2,...`, each key once), in the order
/// given, the last key varying fastest; `base` as it is when there are none. Every scenario
/// runs `timed`.
pub fn conditions(base: &Scenario, lists: &[String]) -> Result<Vec<Condition>, String> {
    let mut axes: Vec<(&'static str, Vec<String>, String)> = Vec::new();
    for spec in lists {
        let origin = shown(&format!("--set {spec}"));
        let (k, vals) = split_sweep(spec).map_err(|e| format!("{origin}: {e}"))?;
        let Some((key, _, _)) = KEYS.iter().find(|(n, _, _)| *n == k) else {
            return Err(format!(
                "{origin}: '{}' is not a key (`gilbench keys` lists them)",
                shown(k)
            ));
        };
        if *key == "lock" || *key == "locks" || *key == "sweep" {
            return Err(format!(
                "{origin}: calibrate always runs timed; '{key}' cannot vary"
            ));
        }
        if *key == "io" {
            return Err(format!(
                "{origin}: echo and bulk make different tables; calibrate one at a time"
            ));
        }
        if axes.iter().any(|(a, _, _)| a == key) {
            return Err(format!("{origin}: key '{key}' is listed twice"));
        }
        let mut seen: Vec<&String> = Vec::new();
        for v in &vals {
            if seen.contains(&v) {
                return Err(format!("{origin}: '{}' is named twice", shown(v)));
            }
            seen.push(v);
        }
        axes.push((key, vals, origin));
    }
    let mut out = vec![(base.clone(), Vec::<String>::new())];
    for (key, vals, origin) in &axes {
        let mut next = Vec::new();
        for (s, parts) in &out {
            for v in vals {
                let mut s = s.clone();
                s.set_swept(key, v, origin)?;
                let mut parts = parts.clone();
                parts.push(format!("{key}={v}"));
                next.push((s, parts));
            }
        }
        out = next;
    }
    out.into_iter()
        .map(|(mut s, parts)| {
            s.lock = LockKind::Timed;
            check(&s)?;
            Ok(Condition {
                label: label_of(&s, &parts),
                scenario: s,
            })
        })
        .collect()
}

/// The condition's label: server structure, CPU threads, interval and pinning, then any other
/// listed key.
fn label_of(s: &Scenario, parts: &[String]) -> String {
    let mut l = format!(
        "server={} cpu_threads={} interval={} pin={}",
        s.server,
        s.cpu_threads,
        format_duration(s.gil.interval),
        s.pin
    );
    for p in parts {
        let k = p.split('=').next().unwrap_or_default();
        if !["server", "cpu_threads", "interval", "pin"].contains(&k) {
            l.push(' ');
            l.push_str(p);
        }
    }
    l
}
