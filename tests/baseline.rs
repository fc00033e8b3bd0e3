//! `compare` and `sweep` set each row beside its baselines: the same row with I/O alone and
//! with CPU alone, run right after it, so that every row reads as fractions of alone.

mod common;

use common::{bin, read_json, tmp, workload};

fn compare(scenario: &str, extra: &[&str]) -> serde_json::Value {
    let json = tmp(&format!("{}.json", extra.len()));
    let o = bin()
        .arg("compare")
        .arg(workload(scenario))
        .args([
            "--locks",
            "timed,none",
            "--duration",
            "300ms",
            "--quiet",
            "--force",
        ])
        .args(["--set", "warmup=100ms", "--json"])
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    read_json(&json)
}

#[test]
fn rows_with_cpu_and_io_threads_get_baselines_by_default() {
    let v = compare("convoy-echo.toml", &[]);
    for r in v["runs"].as_array().unwrap() {
        let b = &r["baseline"];
        let alone = b["io_alone_requests_per_sec"].as_f64().unwrap();
        let cpu_alone = b["cpu_alone_ticks_per_sec"].as_f64().unwrap();
        assert!(alone > 0.0 && cpu_alone > 0.0, "{b}");
        let rps = r["io"]["requests_per_sec"].as_f64().unwrap();
        let tps = r["cpu"]["ticks_per_sec"].as_f64().unwrap();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        assert!(
            close(b["requests_vs_alone"].as_f64().unwrap(), rps / alone),
            "{b}"
        );
        assert!(
            close(b["cpu_kept"].as_f64().unwrap(), tps / cpu_alone),
            "{b}"
        );
        let p999 = r["io"]["latency_us"]["p999"].as_f64().unwrap();
        let p999_alone = b["io_alone_p999_us"].as_f64().unwrap();
        assert!(p999_alone > 0.0, "{b}");
        assert!(
            close(b["p999_vs_alone"].as_f64().unwrap(), p999 / p999_alone),
            "{b}"
        );
    }
}

#[test]
fn no_baseline_turns_them_off_and_cpu_only_scenarios_have_none() {
    let v = compare("convoy-echo.toml", &["--no-baseline"]);
    assert!(v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["baseline"].is_null()));
    let v = compare("cpu-scaling.toml", &[]);
    assert!(v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["baseline"].is_null()));
}
