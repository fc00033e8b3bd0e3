//! `workloads/python/observer_matrix.py`, the recorded/unrecorded matrix of issue 20: its
//! verdicts judged on known cells (`--rejudge`, nothing is run) and its bad usage. The tests
//! skip with a visible note when `python3` is not on PATH.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{err_line, python, tmp};
use gilbench::calibrate::Python;
use serde_json::{json, Value};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/python/observer_matrix.py")
}

fn matrix(py: &Python, args: &[&str]) -> Output {
    Command::new(&py.path)
        .arg(script())
        .args(args)
        .output()
        .expect("python runs")
}

/// Runs of one side of a cell: these requests/s, p50 100 us and p99 200 us each.
fn runs(rps: &[f64]) -> Value {
    rps.iter()
        .map(|r| json!({"rps": r, "p50": 100.0, "p99": 200.0}))
        .collect()
}

const STEADY: [f64; 5] = [1000.0, 1002.0, 998.0, 1003.0, 997.0];
const SLOWER: [f64; 5] = [700.0, 710.0, 690.0, 705.0, 695.0];
/// A median 13% below STEADY, but two runs above all of STEADY's: not significant.
const SCATTERED: [f64; 5] = [700.0, 1300.0, 690.0, 1200.0, 870.0];

fn cell(rec: &[f64], unrec: &[f64]) -> Value {
    json!({"rec": runs(rec), "unrec": runs(unrec), "duration": "2s"})
}

fn with_confirm(mut c: Value, rec: &[f64], unrec: &[f64]) -> Value {
    c["confirm"] = json!({"rec": runs(rec), "unrec": runs(unrec)});
    c
}

/// Each cell's verdict (the table's last column), by design name.
fn verdicts(out: &Output) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| design"))
        .map(|l| {
            let cols: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            (cols[0].to_string(), cols[cols.len() - 1].to_string())
        })
        .collect()
}

fn rejudge(py: &Python, name: &str, cells: &Value) -> Output {
    let path = tmp(name);
    std::fs::write(&path, cells.to_string()).unwrap();
    matrix(py, &["--rejudge", path.to_str().unwrap()])
}

#[test]
fn the_matrix_tells_an_effect_from_noise_and_from_too_few_requests() {
    let Some(py) = python("the_matrix_tells_an_effect_from_noise_and_from_too_few_requests") else {
        return;
    };
    let mut cells = json!({
        "alike 1 none": cell(&STEADY, &STEADY),
        "fluke 1 none": with_confirm(cell(&SLOWER, &STEADY), &STEADY, &STEADY),
        "slower 1 none": with_confirm(cell(&SLOWER, &STEADY), &SLOWER, &STEADY),
        "unsure 1 none": with_confirm(cell(&SCATTERED, &STEADY), &SCATTERED, &STEADY),
        // 5 and 10 requests/s over 2 s runs: 10-20 requests, counting noise.
        "sparse 1 none": cell(&[5.0; 5], &[10.0; 5]),
    });
    // The same rates over 20 s runs of a long pass, alike: judged on those.
    let mut long = cell(&[5.0; 5], &[10.0; 5]);
    long["long"] = json!({"runs": {"rec": runs(&[10.0; 5]), "unrec": runs(&[10.0; 5])},
                          "duration": "20s"});
    cells["sparse 2 none"] = long;
    // 60 against 80 requests/s: 120-160 requests in the cell's own 2 s runs (enough), though
    // the script's default --duration (1 s) would make them too few.
    cells["counted 1 none"] = cell(&[60.0; 5], &[80.0; 5]);

    let out = rejudge(&py, "known.json", &cells);
    let got = verdicts(&out);
    let want = [
        ("alike", "yes"),
        ("counted", "NO"),
        ("fluke", "yes (confirmed)"),
        ("slower", "NO"),
        ("sparse", "too few"),
        ("sparse", "yes (runs of 20s)"),
        ("unsure", "noise?"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(d, v)| (d.to_string(), v.to_string()))
        .collect();
    assert_eq!(got, want, "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(1), "a significant effect fails");

    // Without the significant cells, the matrix passes: noise and too few do not fail it.
    let map = cells.as_object_mut().unwrap();
    map.remove("slower 1 none");
    map.remove("counted 1 none");
    let out = rejudge(&py, "passing.json", &cells);
    assert_eq!(verdicts(&out).len(), 5);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bad_usage_is_one_line_and_exit_2() {
    let Some(py) = python("bad_usage_is_one_line_and_exit_2") else {
        return;
    };
    let not_matrix = tmp("list.json");
    std::fs::write(&not_matrix, "[1, 2]").unwrap();
    let no_lists = tmp("nolists.json");
    std::fs::write(&no_lists, r#"{"tick 1 none": {"rec": 3}}"#).unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&["--repeat", "0"], "--repeat 0"),
        (&["--repeat", "x"], "--repeat"),
        (&["--duration", "2q"], "--duration '2q'"),
        (&["--max-duration", "0s"], "--max-duration '0s'"),
        (&["--rejudge", "/nonexistent/m.json"], "/nonexistent/m.json"),
        (&["--rejudge", not_matrix.to_str().unwrap()], "not a matrix"),
        (
            &["--gilbench", "/nonexistent/gilbench"],
            "/nonexistent/gilbench",
        ),
    ];
    for (args, named) in cases {
        let out = matrix(&py, args);
        let e = err_line(&out);
        assert!(e.contains(named), "{args:?}: {e}");
        assert!(!e.contains("Traceback"), "{args:?}: {e}");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {e}");
    }
    let out = matrix(&py, &["--rejudge", no_lists.to_str().unwrap()]);
    assert!(err_line(&out).contains("no 'rec' and 'unrec' lists"));
    assert_eq!(out.status.code(), Some(2));
}
