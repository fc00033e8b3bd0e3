//! Outputs never lose or clobber anything: gilbench replaces only regular files it wrote (by
//! content), refuses two outputs on one path and any bad output path before running (exit
//! status 2), leaves no temporary file behind when interrupted, and still writes its files
//! when stdout is a closed pipe.

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, err_line, s, signal, stderr, wait_for, workload};
use gilbench::report::export::{Target, ALL};

/// A fresh directory for one test.
fn dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("gilbench-outputs-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A 4-second run with `outputs`, expected to be refused as bad input before it runs: exit
/// status 2, one line naming `needle`, in well under the run's length.
fn assert_refused_before_running(outputs: &[&str], needle: &str) {
    let t0 = Instant::now();
    let child = bin()
        .args([
            "run",
            &workload("cpu-scaling.toml"),
            "--duration",
            "4s",
            "--quiet",
        ])
        .args(outputs)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let took = t0.elapsed();
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{outputs:?}: {:?} {err}",
        o.status
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{outputs:?}: {err}");
    assert!(
        err.starts_with("gilbench: ") && err.contains(needle),
        "{outputs:?}: {err:?} does not name {needle:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "{outputs:?}: refused after {took:?}, not before running"
    );
}

fn short_run(outputs: &[&str]) -> Output {
    bin()
        .args([
            "run",
            &workload("cpu-scaling.toml"),
            "--duration",
            "100ms",
            "--quiet",
        ])
        .args(outputs)
        .output()
        .unwrap()
}

fn no_tmp_in(d: &Path) {
    let left: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(
        left.is_empty(),
        "temporary files left in {}: {left:?}",
        d.display()
    );
}

#[test]
fn files_that_merely_mention_gilbench_are_refused_and_left_alone() {
    let d = dir("foreign");
    let cargo = d.join("Cargo.toml");
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    std::fs::write(&cargo, &manifest).unwrap();
    let readme = d.join("README.md");
    let notes = "# My notes\n\n\"gilbench\" writes \"traceEvents\"; <!-- gilbench --> #[gilbench\n";
    std::fs::write(&readme, notes).unwrap();
    // Every format that writes a file.
    for e in ALL
        .iter()
        .filter(|e| !matches!(e.target(), Target::Dir { .. }))
    {
        for p in [&cargo, &readme] {
            assert_refused_before_running(&[&format!("--{}", e.flag()), s(p)], "--force");
        }
    }
    assert_eq!(std::fs::read_to_string(&cargo).unwrap(), manifest);
    assert_eq!(std::fs::read_to_string(&readme).unwrap(), notes);
    // With --force they are replaced.
    let o = short_run(&["--json", s(&cargo), "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cargo).unwrap()).unwrap();
    assert!(v["gilbench"].is_string());
}

#[test]
fn gilbench_replaces_its_own_files_of_every_kind() {
    let d = dir("own");
    let p = |n: &str| d.join(n).display().to_string();
    // Every format, each to its own file or directory.
    let owned: Vec<String> = ALL
        .iter()
        .flat_map(|e| {
            let path = match e.target() {
                Target::Dir { .. } => p(e.flag()),
                _ => p(&format!("r.{}", e.flag())),
            };
            [format!("--{}", e.flag()), path]
        })
        .collect();
    let all: Vec<&str> = owned.iter().map(String::as_str).collect();
    let o = short_run(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = std::fs::read_to_string(d.join("r.json")).unwrap();
    let o = short_run(&all);
    assert!(o.status.success(), "second run: {}", stderr(&o));
    assert_ne!(std::fs::read_to_string(d.join("r.json")).unwrap(), first);
    // One kind over another is still gilbench's own.
    let o = short_run(&["--csv", &p("r.json"), "--json", &p("r.trace")]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Plots: a compare with latency.
    let plots = d.join("plots");
    for _ in 0..2 {
        let o = bin()
            .args([
                "run",
                &workload("convoy-echo.toml"),
                "--duration",
                "200ms",
                "--set",
                "warmup=0s",
                "--plot",
                s(&plots),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    no_tmp_in(&d);
}

#[test]
fn two_outputs_on_one_path_are_refused() {
    let d = dir("same");
    let p = d.join("p");
    assert_refused_before_running(&["--json", s(&p), "--csv", s(&p)], "both name");
    std::fs::create_dir(d.join("sub")).unwrap();
    let roundabout = d.join("sub/../p");
    assert_refused_before_running(
        &["--markdown", s(&roundabout), "--trace", s(&p)],
        "both name",
    );
    let link = d.join("link");
    std::os::unix::fs::symlink(&p, &link).unwrap();
    std::fs::write(&p, "{\"gilbench\": \"0.1.0\", \"runs\": []}").unwrap();
    assert_refused_before_running(&["--json", s(&link), "--hlog", s(&p)], "both name");
    let out = d.join("out");
    assert_refused_before_running(&["--json", s(&out), "--hgrm", s(&out)], "--hgrm");
    assert_refused_before_running(
        &["--csv", s(&out), "--plot", s(&out.join("plots"))],
        "--plot",
    );
    assert!(!out.exists());
    // A file inside an output directory is fine (unless it could be one of its files).
    std::fs::create_dir(&out).unwrap();
    let o = short_run(&["--json", s(&out.join("x.json")), "--hgrm", s(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("x.json").is_file());
    assert_refused_before_running(
        &["--json", s(&out.join("x.hgrm")), "--hgrm", s(&out)],
        ".hgrm",
    );
}

#[test]
fn anything_but_a_regular_file_is_never_replaced_even_with_force() {
    let d = dir("special");
    let fifo = d.join("fifo");
    let c = std::ffi::CString::new(s(&fifo)).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    for force in [false, true] {
        let mut args = vec!["--json", s(&fifo)];
        if force {
            args.push("--force");
        }
        // Reading a FIFO to see whose it is would hang: it must not be opened.
        let mut child = bin()
            .args(["run", &workload("cpu-scaling.toml"), "--duration", "100ms"])
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let st = wait_for(&mut child, Duration::from_secs(10));
        assert_eq!(st.and_then(|s| s.code()), Some(2), "{args:?}: {st:?}");
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
    }
    // A link to /dev/null is followed: /dev/null is refused (replacing the link would be
    // harmless, so this is asked first).
    let null_link = d.join("null.json");
    std::os::unix::fs::symlink("/dev/null", &null_link).unwrap();
    assert_refused_before_running(&["--json", s(&null_link), "--force"], "character device");
    assert!(std::fs::symlink_metadata(&null_link)
        .unwrap()
        .file_type()
        .is_symlink());
    // /dev/null itself, with a run that fails: even a gilbench that let it through would
    // write nothing (this test runs as root on some machines).
    let o = bin()
        .args([
            "run",
            &workload("cpu-scaling.toml"),
            "--duration",
            "100ms",
            "--set",
            "fault=panic-holding-gil",
            "--json",
            "/dev/null",
            "--force",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("only regular files"), "{}", stderr(&o));
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    // A directory where a file goes.
    let sub = d.join("sub");
    std::fs::create_dir(&sub).unwrap();
    assert_refused_before_running(&["--trace", s(&sub), "--force"], "directory");
    // A link to a regular file is followed, and stays a link.
    let real = d.join("real.json");
    std::fs::write(&real, "precious").unwrap();
    let link = d.join("link.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert_refused_before_running(&["--json", s(&link)], "--force");
    let o = short_run(&["--json", s(&link), "--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&real)
        .unwrap()
        .contains("\"gilbench\""));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    no_tmp_in(&d);
}

#[test]
fn bad_output_paths_are_refused_before_running() {
    let d = dir("paths");
    let file = d.join("file");
    std::fs::write(&file, "x").unwrap();
    let missing = d.join("missing").join("r.json");
    let under_file = file.join("r.json");
    let plots_under_file = file.join("plots");
    let trace = d.join("t.json");
    let slash = format!("{}/", d.join("new.json").display());
    // A user's files named like outputs in the --hgrm and --plot directories: a file, and
    // a link to one.
    let (hg, plots) = (d.join("hg"), d.join("plots"));
    std::fs::create_dir(&hg).unwrap();
    std::fs::create_dir(&plots).unwrap();
    std::fs::write(hg.join("cpu-scaling_timed_0_gil-hold.hgrm"), "mine").unwrap();
    std::os::unix::fs::symlink(&file, plots.join("cpu-scaling_latency.svg")).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--json", &slash], "ends in '/'"),
        (
            vec!["--hgrm", s(&hg)],
            "gil-hold.hgrm exists and was not written by gilbench",
        ),
        (
            vec!["--plot", s(&plots)],
            "latency.svg exists and was not written by gilbench",
        ),
        (vec!["--json", s(&missing)], "does not exist"),
        (vec!["--csv", s(&under_file)], "not a directory"),
        (vec!["--markdown", s(&d)], "directory"),
        (vec!["--json", "/dev/full"], "character device"),
        (vec!["--hgrm", s(&file)], "not a directory"),
        (vec!["--plot", s(&plots_under_file)], "not a directory"),
        (
            vec!["--trace", s(&trace), "--trace-events", "50000000"],
            "--trace-events",
        ),
    ];
    for (args, needle) in &cases {
        assert_refused_before_running(args, needle);
    }
    // A directory that takes no new files (permissions bind only non-root users).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let ro = d.join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        assert_refused_before_running(&["--json", s(&ro.join("r.json"))], "ro");
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    no_tmp_in(&d);
}

/// A pipe whose read end is already closed: writing to it fails with EPIPE.
fn closed_pipe() -> std::io::PipeWriter {
    let (r, w) = std::io::pipe().unwrap();
    drop(r);
    w
}

#[test]
fn a_closed_stdout_still_writes_the_results_and_exits_0() {
    let d = dir("epipe");
    let json = d.join("serve.json");
    // The case: `gilbench serve ... --json x.json | head -1`.
    let o = bin()
        .args([
            "serve",
            &workload("convoy-echo.toml"),
            "--duration",
            "500ms",
            "--json",
            s(&json),
        ])
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}: {}", o.status, stderr(&o));
    assert_eq!(stderr(&o), "");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["runs"][0]["io"]["mode"], "serve");
    // With stderr on the same closed pipe (`2>&1 | head -1`), and an export printed on stdout.
    let json2 = d.join("run.json");
    let w = closed_pipe();
    let mut child = bin()
        .args([
            "run",
            &workload("cpu-scaling.toml"),
            "--duration",
            "100ms",
            "--csv",
            "--markdown",
            "--json",
            s(&json2),
        ])
        .stdout(w.try_clone().unwrap())
        .stderr(w)
        .spawn()
        .unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(0), "{st:?}");
    assert!(std::fs::read_to_string(&json2)
        .unwrap()
        .contains("\"runs\""));
    let o = bin()
        .args(["report", s(&json2), "--csv", "--markdown"])
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{:?}: {}", o.status, stderr(&o));
    // A stdout that fails otherwise (a full disk) is reported, after the files: exit 1.
    let json3 = d.join("full.json");
    let o = bin()
        .args([
            "run",
            &workload("cpu-scaling.toml"),
            "--duration",
            "100ms",
            "--json",
            s(&json3),
        ])
        .stdout(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("stdout"), "{}", stderr(&o));
    assert!(json3.is_file());
}

#[test]
fn sigint_during_a_long_trace_write_stops_it_and_leaves_no_temporary_file() {
    let d = dir("sigint");
    let trace = d.join("t.json");
    let json = d.join("r.json");
    // `tick` switches often: a few seconds make a trace of a hundred MB or more.
    let mut child = bin()
        .args([
            "run",
            &workload("cpu-scaling.toml"),
            "--lock",
            "tick",
            "--duration",
            "3s",
            "--trace",
            s(&trace),
            "--trace-events",
            "10000000",
            "--json",
            s(&json),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let writing = loop {
        let tmp = std::fs::read_dir(&d).unwrap().any(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.starts_with(".t.json.") && n.ends_with(".tmp")
        });
        if tmp {
            break true;
        }
        if child.try_wait().unwrap().is_some() || t0.elapsed() > Duration::from_secs(30) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(writing, "never saw the trace being written");
    signal(&child, libc::SIGINT);
    let signalled = Instant::now();
    let st = wait_for(&mut child, Duration::from_secs(10));
    let took = signalled.elapsed();
    assert_eq!(st.and_then(|s| s.code()), Some(130), "{st:?}");
    assert!(
        took < Duration::from_secs(1),
        "stopped {took:?} after SIGINT"
    );
    no_tmp_in(&d);
    assert!(!trace.exists(), "an abandoned trace was written");
    assert!(json.is_file(), "the other outputs were not written");
}

/// A SIGINT while the run is in its warm-up (nothing measured yet) replaces no output: an
/// existing trace (a big one, recognised from its first MiB) and result stay as they were
/// (the trace was replaced by an empty one), a new output is written, and the process ends
/// within a second of the signal.
#[test]
fn sigint_before_anything_was_measured_replaces_no_output() {
    let d = dir("sigint-warmup");
    let (trace, json, md) = (d.join("t.json"), d.join("r.json"), d.join("new.md"));
    let events = "{\"ph\":\"i\",\"ts\":1},".repeat(1 << 20);
    let old_trace =
        format!("{{\"otherData\":{{\"gilbench\":\"0.1.0\"}},\"traceEvents\":[{events}{{}}]}}\n");
    std::fs::write(&trace, &old_trace).unwrap();
    let old_json = "{\"gilbench\": \"0.1.0\", \"runs\": []}\n";
    std::fs::write(&json, old_json).unwrap();
    let mut child = bin()
        .args(["run", &workload("cpu-scaling.toml"), "--duration", "1s"])
        .args(["--set", "warmup=3s", "--quiet", "--trace", s(&trace)])
        .args(["--json", s(&json), "--markdown", s(&md)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    signal(&child, libc::SIGINT);
    let signalled = Instant::now();
    let st = wait_for(&mut child, Duration::from_secs(10));
    let took = signalled.elapsed();
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        st.and_then(|s| s.code()),
        Some(130),
        "{st:?} {}",
        stderr(&o)
    );
    assert!(
        took < Duration::from_secs(1),
        "stopped {took:?} after SIGINT"
    );
    let e = err_line(&o);
    assert!(
        e.contains("before anything was measured; the existing")
            && e.contains(s(&trace))
            && e.contains(s(&json))
            && e.contains("kept as they were"),
        "{e}"
    );
    assert!(md.is_file(), "a new output is written all the same");
    assert_eq!(
        std::fs::read_to_string(&trace).unwrap().len(),
        old_trace.len()
    );
    assert_eq!(std::fs::read_to_string(&json).unwrap(), old_json);
}

#[test]
fn report_refuses_a_result_from_a_newer_gilbench() {
    let d = dir("version");
    let json = d.join("r.json");
    let o = short_run(&["--json", s(&json)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for (version, code) in [("0.1.99", 0), ("0.2.0", 2), ("1.0.0", 2), ("banana", 2)] {
        v["gilbench"] = serde_json::json!(version);
        let f = d.join(format!("{version}.json"));
        std::fs::write(&f, v.to_string()).unwrap();
        let o = bin().args(["report", s(&f)]).output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{version}: {}", stderr(&o));
        if code == 2 {
            let err = stderr(&o);
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
            assert!(err.contains(version), "{err}");
        }
    }
}

/// `--csv` or `--markdown` without a path prints the export instead of the table, so that
/// `gilbench run ... --csv > r.csv` is a CSV file.
#[test]
fn an_export_on_stdout_replaces_the_table() {
    for (flag, first) in [("--csv", "scenario,label,lock,"), ("--markdown", "<!--")] {
        let o = short_run(&[flag]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.starts_with(first), "{flag}: {out}");
        // The text table's title line ("cpu-scaling on timed (0.10s measured, pin spread)").
        assert!(
            !out.contains(" measured, pin "),
            "{flag}: the table was printed too: {out}"
        );
    }
}

/// A run without GIL-side recording shows no GIL counters, shares or re-acquire waits it
/// never measured (it printed `acq 0 switch 0 forced 0`, a re-acquire p50 of 0.0us, and
/// the JSON held a histogram of zero durations), in the table, the JSON and as no `.hgrm`.
#[test]
fn an_unrecorded_run_shows_no_gil_figures() {
    let d = dir("unrecorded");
    let json = d.join("u.json");
    let hg = d.join("hg");
    let (hlog, trace) = (d.join("u.hlog"), d.join("u-trace.json"));
    let o = bin()
        .args([
            "run",
            &workload("convoy-echo.toml"),
            "--lock",
            "tick",
            "--set",
            "record=false",
            "--set",
            "warmup=100ms",
            "--duration",
            "300ms",
            "--json",
            s(&json),
            "--hgrm",
            s(&hg),
            "--hlog",
            s(&hlog),
            "--trace",
            s(&trace),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // No GIL timeline and no GIL interval histograms: empty ones read as measured.
    assert!(!trace.exists(), "an empty timeline was written");
    assert!(
        stderr(&o).contains("no timeline to write"),
        "{}",
        stderr(&o)
    );
    let log = std::fs::read_to_string(&hlog).unwrap();
    assert!(!log.contains(".gil-"), "{log}");
    assert!(log.contains("load.io-latency"), "{log}");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!text.contains("re-acquire"), "{text}");
    assert!(text.contains("gil: not recorded"), "{text}");
    let total = text.lines().find(|l| l.starts_with("total")).unwrap();
    assert!(!total.contains(" 0 "), "{total}");
    let r = &common::read_json(&json)["runs"][0];
    for k in [
        "acquisitions",
        "switches",
        "forced_drops",
        "idle_while_wanted",
    ] {
        assert!(r["gil"][k].is_null(), "gil.{k}: {}", r["gil"]);
    }
    assert!(r["gil"]["reacquire_us"].is_null(), "{}", r["gil"]);
    assert!(r["io"]["reacquire_us"].is_null(), "{}", r["io"]);
    // Each thread's GIL counters too, in the JSON and the table's thread rows.
    for t in r["threads"].as_array().unwrap() {
        for k in [
            "acquisitions",
            "switches",
            "forced_drops",
            "voluntary_drops",
        ] {
            assert!(t[k].is_null(), "threads[].{k}: {t}");
        }
        // No core was sampled: no migrations either (they said 0).
        assert!(t["migrations"].is_null(), "{t}");
    }
    for name in ["echo-0", "cpu-0"] {
        let row = text.lines().find(|l| l.trim_start().starts_with(name));
        let row = row.unwrap_or_else(|| panic!("no row {name}: {text}"));
        // acq, switch and forced, beside GIL wait and hold: all absent.
        let absent = row.split_whitespace().filter(|c| *c == "-").count();
        assert!(absent >= 5, "{row}");
    }
    assert!(r["io"]["requests"].as_u64().unwrap() > 0);
    let files: Vec<String> = std::fs::read_dir(&hg)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files.len(), 1, "only the client's latency: {files:?}");
    assert!(files[0].ends_with("io-latency.hgrm"), "{files:?}");
}
