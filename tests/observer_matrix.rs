//! `workloads/python/observer_matrix.py`, the recorded/unrecorded matrix of issue 20: its
//! verdicts judged on known cells (`--rejudge`, nothing is run), its exact p-value, and its
//! bad usage (bad cells and bad flags, refused before anything runs: a stand-in gilbench
//! notes any run). The tests skip with a visible note when `python3` is not on PATH.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{err_line, python, s, scratch, tmp, wait_for, workload};
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

/// Bad usage: one line on stderr naming `named`, exit 2, no traceback.
fn assert_refused(out: &Output, named: &str, case: &dyn std::fmt::Display) {
    let e = err_line(out);
    assert!(e.contains(named), "{case}: {e}");
    assert!(!e.contains("Traceback"), "{case}: {e}");
    assert_eq!(out.status.code(), Some(2), "{case}: {e}");
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
        assert_refused(&out, named, &format!("{args:?}"));
    }
    let out = matrix(&py, &["--rejudge", no_lists.to_str().unwrap()]);
    assert_refused(&out, "no 'rec' and 'unrec' lists", &"");
}

/// A one-run cell whose first recorded run has `field` set to `value` (the rest sound).
fn cell_with(field: &str, value: Value) -> Value {
    let mut c = cell(&[1000.0], &[1000.0]);
    c["rec"][0][field] = value;
    c
}

#[test]
fn bad_cells_are_one_line_naming_the_cell_and_field() {
    let Some(py) = python("bad_cells_are_one_line_naming_the_cell_and_field") else {
        return;
    };
    let sound = cell(&[1000.0], &[1000.0]);
    let with = |key: &str, value: Value| {
        let mut c = sound.clone();
        c[key] = value;
        c
    };
    let cases = [
        (
            json!({"rec": [1], "unrec": []}),
            "'c 1 none'.rec[0] is not an object",
        ),
        (json!({"rec": [{}], "unrec": [{}]}), "rec[0] has no rps"),
        (
            json!({"rec": [], "unrec": []}),
            "rec is not a non-empty list",
        ),
        (cell_with("rps", json!("a")), "rec[0].rps is \"a\""),
        (cell_with("p50", json!(-1.0)), "rec[0].p50 is -1.0"),
        (cell_with("p99", json!(true)), "rec[0].p99 is true"),
        (with("duration", json!("abc")), "duration is \"abc\""),
        (with("duration", json!("0s")), "duration is \"0s\""),
        (with("duration", json!(2)), "duration is 2"),
        (
            with("long", json!({"runs": 5})),
            "long.runs is not an object",
        ),
        (with("long", json!({})), "long.runs is not an object"),
        (
            with(
                "long",
                json!({"runs": {"rec": runs(&[1.0]), "unrec": runs(&[1.0])}}),
            ),
            "long.duration is null",
        ),
        (with("confirm", json!(7)), "confirm is not an object"),
        (
            with("confirm", json!({"rec": runs(&[1.0]), "unrec": []})),
            "confirm.unrec is not a non-empty list",
        ),
        (json!(3), "'c 1 none' is not an object"),
    ];
    for (c, named) in cases {
        let out = rejudge(&py, "bad-cell.json", &json!({ "c 1 none": c }));
        assert_refused(&out, named, &c);
    }
    // NaN is not JSON, but Python's reader takes it: refused like any other bad figure.
    let nan = tmp("nan.json");
    let text = json!({"c 1 none": cell_with("rps", json!("NAN"))}).to_string();
    std::fs::write(&nan, text.replace("\"NAN\"", "NaN")).unwrap();
    let out = matrix(&py, &["--rejudge", s(&nan)]);
    assert_refused(&out, "rec[0].rps is NaN", &"");

    let whole = [
        (json!({}), "no cells"),
        (
            json!({"c one none": sound.clone()}),
            "'c one none' is not named",
        ),
        (json!({"c 1": sound.clone()}), "'c 1' is not named"),
    ];
    for (cells, named) in whole {
        let out = rejudge(&py, "bad-matrix.json", &cells);
        assert_refused(&out, named, &cells);
    }
}

#[test]
fn a_cell_without_rates_shows_one_dash() {
    let Some(py) = python("a_cell_without_rates_shows_one_dash") else {
        return;
    };
    let mut c = cell(&[1000.0], &[1000.0]);
    c["rec"][0]["rps"] = Value::Null;
    let out = rejudge(&py, "null-rps.json", &json!({ "c 1 none": c }));
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.starts_with("| c "))
        .expect("its row");
    let cols: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
    assert_eq!(cols[3], "-", "{row}");
}

/// A stand-in for gilbench: `locks` lists two designs; anything else is a run, which it
/// notes in `log` and fails.
fn fake_gilbench(log: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = tmp("fake-gilbench");
    let body = format!(
        "#!/bin/sh\nif [ \"$1\" = locks ]; then echo 'tick 2010 x'; echo 'fifo 2026 y'; exit 0; fi\n\
         echo \"$@\" >> '{}'\necho 'fake: no runs here' >&2\nexit 1\n",
        log.display()
    );
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn bad_flags_are_refused_before_anything_runs() {
    let Some(py) = python("bad_flags_are_refused_before_anything_runs") else {
        return;
    };
    let log = tmp("fake-runs.log");
    let fake = fake_gilbench(&log);
    let scenario = workload("convoy-echo.toml");
    let dir = scratch();
    let base = ["--gilbench", s(&fake), "--scenario", &scenario];
    let cases: [(&[&str], &str); 18] = [
        (&["--cpu-threads", "x"], "'x' is not a whole number"),
        (&["--cpu-threads", ""], "has an empty item"),
        (&["--cpu-threads", "-1"], "'-1' is not a whole number"),
        (&["--cpu-threads", "1,"], "has an empty item"),
        (&["--cpu-threads", "1025"], "'1025' is not a whole number"),
        (&["--cpu-threads", "\u{b2}"], "is not a whole number"),
        (&["--locks", "nosuch"], "no design 'nosuch'"),
        (&["--locks", "tick,zzz"], "no design 'zzz'"),
        (&["--pins", "bogus"], "'bogus' is not spread"),
        (&["--pins", "spread,zzz"], "'zzz' is not spread"),
        (&["--pins", "0+99999"], "core 99999 does not exist"),
        (&["--scenario", "/nonexistent.toml"], "/nonexistent.toml"),
        (&["--scenario", "/"], "--scenario /"),
        (&["--duration", "inf"], "--duration 'inf'"),
        (&["--duration", "2"], "--duration '2'"),
        (&["--long-timeout", "nan"], "--long-timeout 'nan'"),
        (&["--json", "/nonexistent/dir/x.json"], "no such directory"),
        (&["--json", s(&dir)], "not a regular file"),
    ];
    for (args, named) in cases {
        let _ = std::fs::remove_file(&log);
        let started = std::time::Instant::now();
        let out = matrix(&py, &[&base[..], args].concat());
        assert_refused(&out, named, &format!("{args:?}"));
        assert!(!log.exists(), "{args:?} ran gilbench before refusing");
        assert!(started.elapsed().as_secs() < 10, "{args:?} took long");
    }
    // A directory is not a gilbench, nor is a file that cannot be run.
    for not_bin in ["/", &scenario] {
        let out = matrix(&py, &["--gilbench", not_bin, "--scenario", &scenario]);
        assert_refused(&out, "no such executable", &not_bin);
    }
    // The real binary refuses an unknown design before any run, too.
    let out = matrix(
        &py,
        &[
            "--gilbench",
            env!("CARGO_BIN_EXE_gilbench"),
            "--scenario",
            &scenario,
            "--locks",
            "nosuch",
        ],
    );
    assert_refused(&out, "no design 'nosuch'", &"");

    // Sound flags get as far as the first run (which the stand-in fails): the checks do not
    // refuse what gilbench takes, and a core list reaches it with commas.
    let _ = std::fs::remove_file(&log);
    let good = [
        "--locks",
        "fifo",
        "--cpu-threads",
        "0",
        "--pins",
        "0",
        "--duration",
        "1.5s",
    ];
    let out = matrix(
        &py,
        &[&base[..], &good, &["--json", s(&tmp("m.json"))]].concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let ran = std::fs::read_to_string(&log).expect("the stand-in was asked to run");
    for want in [
        "sweep",
        "--locks fifo",
        "--cpu-threads 0",
        "--pin 0 ",
        "--duration 1.5s",
    ] {
        assert!(ran.contains(want), "{want}: {ran}");
    }
    let _ = std::fs::remove_file(&log);
    let out = matrix(
        &py,
        &[&base[..], &["--locks", "tick", "--pins", "0+0"]].concat(),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let ran = std::fs::read_to_string(&log).expect("the stand-in was asked to run");
    assert!(ran.contains("--pin 0,0 "), "{ran}");
}

/// The enumeration the exact p-value was computed by before: every split of the pooled
/// values, U with ties counting half. The reference for the dynamic program.
const ENUMERATED_P: &str = r#"
import itertools
def enumerated_p(a, b):
    a = [x for x in a if x is not None]
    b = [x for x in b if x is not None]
    if not a or not b:
        return 1.0
    def u(xs, ys):
        return sum((x > y) + 0.5 * (x == y) for x in xs for y in ys)
    pooled, n = a + b, len(a)
    mean = n * len(b) / 2
    seen = abs(u(a, b) - mean)
    total = extreme = 0
    for idx in itertools.combinations(range(len(pooled)), n):
        chosen = set(idx)
        xs = [pooled[i] for i in idx]
        ys = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        total += 1
        extreme += abs(u(xs, ys) - mean) >= seen - 1e-9
    return extreme / total
"#;

#[test]
fn the_exact_p_value_is_the_enumerations_and_fast() {
    let Some(py) = python("the_exact_p_value_is_the_enumerations_and_fast") else {
        return;
    };
    let check = format!(
        r#"{ENUMERATED_P}
import random, sys, time
sys.path.insert(0, {dir:?})
from observer_matrix import mann_whitney_p
rng = random.Random(20)
values = [None, 1, 2, 2.0, 3, 3.5, 700, 1000]
for case in range(500):
    n, m = rng.randint(0, 7), rng.randint(0, 7)
    pooled = [rng.choice(values) if rng.random() < 0.5 else rng.random() for _ in range(n + m)]
    a, b = pooled[:n], pooled[n:]
    got, want = mann_whitney_p(a, b), enumerated_p(a, b)
    assert got == want, (a, b, got, want)
assert mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == 2 / 252
started = time.process_time()
for shift in (0.5, 3, 30):
    p = mann_whitney_p([float(i) for i in range(20)], [i + shift for i in range(20)])
print(time.process_time() - started, p)
"#,
        dir = script().parent().unwrap().display().to_string()
    );
    let mut child = Command::new(&py.path)
        .args(["-c", &check])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    // The enumeration took 7 s for 10 a side and did not end for 12: a hang fails here.
    let done = wait_for(&mut child, Duration::from_secs(60));
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(done.is_some(), "no p-values within 60 s");
    assert!(out.status.success(), "{text}{err}");
    let mut fields = text.split_whitespace();
    let cpu: f64 = fields.next().unwrap().parse().unwrap();
    let p: f64 = fields.next().unwrap().parse().unwrap();
    // 20 a side apart: 2 of C(40, 20) splits are as extreme.
    assert_eq!(p, 2.0 / 137_846_528_820.0);
    assert!(
        cpu < 0.5,
        "three exact p-values of 20 a side took {cpu:.2} s of CPU"
    );
}
