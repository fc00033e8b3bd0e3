//! Experiments and what they leave behind: compare/sweep tables, JSON/CSV/Markdown exports
//! holding the same numbers, HdrHistogram files, plots, the GIL timeline, and `report`.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Output;
use std::sync::OnceLock;

use common::{bin, read_json, scratch, workload};

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "status {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// One short compare of two designs with every output, shared by the tests below.
fn compare() -> &'static (Output, PathBuf) {
    static RUN: OnceLock<(Output, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let d = scratch().join("compare");
        std::fs::create_dir_all(&d).unwrap();
        let p = |n: &str| d.join(n).display().to_string();
        let o = ok(bin()
            .args([
                "compare",
                &workload("convoy-echo.toml"),
                "--locks",
                "timed,none",
                "--duration",
                "400ms",
                "--set",
                "warmup=100ms",
            ])
            .args([
                "--json",
                &p("r.json"),
                "--csv",
                &p("r.csv"),
                "--markdown",
                &p("r.md"),
                "--hgrm",
                &p("hgrm"),
            ])
            .args([
                "--hlog",
                &p("r.hlog"),
                "--plot",
                &p("plots"),
                "--trace",
                &p("trace.json"),
                "--trace-events",
                "20000",
            ])
            .output()
            .unwrap());
        (o, d)
    })
}

#[test]
fn compare_prints_a_row_per_design_and_no_progress_off_a_terminal() {
    let (o, _) = compare();
    let out = String::from_utf8_lossy(&o.stdout);
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("timed") || l.starts_with("none"))
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    // The default columns (`--columns all` adds p99.9, switches, ...: tests/cli.rs).
    for col in [
        "requests/s",
        "vs alone",
        "p50",
        "p99",
        "CPU ticks/s",
        "CPU kept",
        "idle/wanted",
        "ratio",
    ] {
        assert!(out.contains(col), "column {col} missing:\n{out}");
    }
    assert!(rows[0].ends_with("1.00x"), "{out}");
    assert!(
        o.stderr.is_empty(),
        "stderr is not a terminal, yet: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn json_csv_and_markdown_hold_the_same_numbers() {
    let (_, d) = compare();
    let v = read_json(&d.join("r.json"));
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let csv = std::fs::read_to_string(d.join("r.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let md = std::fs::read_to_string(d.join("r.md")).unwrap();
    for (run, line) in runs.iter().zip(lines) {
        let row: HashMap<&str, &str> = header.iter().copied().zip(line.split(',')).collect();
        let label = run["label"].as_str().unwrap();
        assert_eq!(row["label"], label);
        let rps = run["io"]["requests_per_sec"].as_f64().unwrap();
        let p99 = run["io"]["latency_us"]["p99"].as_f64().unwrap();
        let cpu = run["cpu"]["ticks_per_sec"].as_f64().unwrap();
        assert_eq!(row["requests_per_sec"].parse::<f64>().unwrap(), rps);
        assert_eq!(row["latency_p99_us"].parse::<f64>().unwrap(), p99);
        assert_eq!(row["cpu_ticks_per_sec"].parse::<f64>().unwrap(), cpu);
        // Without a GIL there are no holder switches: absent in both, never 0.
        match run["gil"]["switches"].as_f64() {
            Some(switches) => assert_eq!(row["switches"].parse::<f64>().unwrap(), switches),
            None => {
                assert_eq!(run["lock"], "none", "{label}: switches not measured");
                assert_eq!(row["switches"], "", "{label}");
            }
        }
        let md_row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {label} |")))
            .unwrap();
        let cells: Vec<&str> = md_row.split('|').map(str::trim).collect();
        // Columns by their Markdown header (optional columns, such as the baselines', move
        // the others).
        let head: Vec<&str> = md
            .lines()
            .find(|l| l.starts_with("| ") && l.contains("requests/s"))
            .unwrap()
            .split('|')
            .map(str::trim)
            .collect();
        let cell = |name: &str| {
            let i = head.iter().position(|h| *h == name).unwrap();
            cells[i]
        };
        assert_eq!(cell("requests/s"), format!("{rps:.1}"), "{md_row}");
        assert_eq!(cell("p99 us"), format!("{p99:.1}"), "{md_row}");
        assert_eq!(cell("CPU ticks/s"), format!("{cpu:.0}"), "{md_row}");
        let switches = run["gil"]["switches"]
            .as_f64()
            .map_or("-".to_owned(), |s| format!("{s:.0}"));
        assert_eq!(cell("switches"), switches, "{md_row}");
    }
}

#[test]
fn hgrm_files_parse_and_agree_with_the_json() {
    let (_, d) = compare();
    let v = read_json(&d.join("r.json"));
    let text = std::fs::read_to_string(d.join("hgrm").join("convoy-echo_timed_0_io-latency.hgrm"))
        .unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    );
    let rows: Vec<(f64, f64, u64)> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#') && !l.contains("Value"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    // How many rows depends on how many requests the run managed (few under `timed` on a
    // busy machine); what must hold is below: monotonic, and ending at the JSON's count.
    assert!(rows.len() >= 3, "{text}");
    assert!(
        rows.windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1 && w[0].2 <= w[1].2),
        "not monotonic"
    );
    let io = &v["runs"][0]["io"];
    assert_eq!(
        rows.last().unwrap().2,
        io["latency_us"]["count"].as_u64().unwrap()
    );
    // The JSON's percentile lies between the values listed just below and at-or-above it
    // (with few samples the listed percentiles step coarsely, so a bracket, not equality).
    for (q, key) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")] {
        let want = io["latency_us"][key].as_f64().unwrap();
        let i = rows.iter().position(|r| r.1 >= q).unwrap();
        let lo = if i > 0 { rows[i - 1].0 } else { rows[0].0 };
        let hi = rows[i].0;
        assert!(
            lo * 0.99 - 0.002 <= want && want <= hi * 1.01 + 0.002,
            "{key}: json {want} outside the hgrm bracket [{lo}, {hi}]"
        );
    }
    assert!(
        text.contains("#[Mean    =")
            && text.contains("#[Max     =")
            && text.contains("#[Buckets =")
    );
}

#[test]
fn the_interval_log_reads_back_with_a_tag_per_thread_and_metric() {
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let (_, d) = compare();
    let bytes = std::fs::read(d.join("r.hlog")).unwrap();
    let mut tags = std::collections::BTreeSet::new();
    let mut n = 0;
    for e in IntervalLogIterator::new(&bytes) {
        if let LogEntry::Interval(h) = e.expect("a valid interval log entry") {
            n += 1;
            tags.insert(h.tag().map(|t| t.as_str().to_owned()).unwrap_or_default());
        }
    }
    assert!(n >= 4, "{n} intervals");
    for t in [
        "timed.0.echo-0.gil-wait",
        "timed.0.cpu-0.gil-hold",
        "none.0.load.io-latency",
    ] {
        assert!(tags.contains(t), "tag {t} missing from {tags:?}");
    }
}

#[test]
fn the_trace_pairs_begin_and_end_per_thread_in_time_order() {
    let (_, d) = compare();
    let v = read_json(&d.join("trace.json"));
    let events = v["traceEvents"].as_array().unwrap();
    let mut names = std::collections::HashSet::new();
    let mut stacks: HashMap<(u64, u64), Vec<String>> = HashMap::new();
    let mut last: HashMap<(u64, u64), f64> = HashMap::new();
    let mut spans = 0;
    for e in events {
        let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap_or(0));
        match e["ph"].as_str().unwrap() {
            "M" => {
                if e["name"] == "thread_name" {
                    names.insert(e["args"]["name"].as_str().unwrap().to_owned());
                }
            }
            ph @ ("B" | "E" | "i") => {
                let ts = e["ts"].as_f64().unwrap();
                assert!(
                    ts >= *last.get(&key).unwrap_or(&0.0),
                    "time goes back in {key:?}"
                );
                last.insert(key, ts);
                let name = e["name"].as_str().unwrap().to_owned();
                let st = stacks.entry(key).or_default();
                if ph == "B" {
                    st.push(name);
                } else if ph == "E" {
                    assert_eq!(
                        st.pop().as_deref(),
                        Some(name.as_str()),
                        "unpaired E in {key:?}"
                    );
                    spans += 1;
                }
            }
            other => panic!("unexpected phase {other}"),
        }
    }
    assert!(stacks.values().all(|s| s.is_empty()), "unclosed spans");
    assert!(spans > 100);
    for n in ["echo-0", "cpu-0", "GIL idle while wanted"] {
        assert!(names.contains(n), "no thread named {n}");
    }
    // Each run's idle-while-wanted total; without dropped events, over the measured window,
    // it is the result's figure seen from the trace (clock reads apart).
    let r = read_json(&d.join("r.json"));
    for (run, t) in r["runs"]
        .as_array()
        .unwrap()
        .iter()
        .zip(v["otherData"]["runs"].as_array().unwrap())
    {
        let m = &t["idle_while_wanted"];
        if run["lock"] == "none" {
            // No GIL: nothing is ever idle while wanted, and the result says not measured.
            assert!(run["gil"]["idle_while_wanted"].is_null(), "{run}");
            continue;
        }
        let share = m["share"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&share), "{m}");
        let (got, want) = (
            m["measured_share"].as_f64().unwrap(),
            run["gil"]["idle_while_wanted"].as_f64().unwrap(),
        );
        if t["dropped_events"] == 0 {
            assert!(
                (got - want).abs() <= 0.01 + want * 0.1,
                "{got} vs {want}: {m}"
            );
        }
    }
    let kinds: std::collections::HashSet<&str> =
        events.iter().filter_map(|e| e["name"].as_str()).collect();
    for k in [
        "wants GIL",
        "holds GIL",
        "released (I/O or native)",
        "drop request",
        "forced switch",
    ] {
        assert!(kinds.contains(k), "no {k} events");
    }
}

#[test]
fn plots_are_svg_naming_every_series() {
    let (_, d) = compare();
    let svg = std::fs::read_to_string(d.join("plots").join("convoy-echo_latency.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.len() > 2000);
    for s in ["timed", "none", "percentile", "99%", "99.9%", "latency"] {
        assert!(svg.contains(s), "the latency plot does not name {s}");
    }
    // The trade-off chart: a filled dot per row, named; the frontier of timed's h (none
    // has no GIL, so no frontier).
    let svg = std::fs::read_to_string(d.join("plots").join("convoy-echo_tradeoff.svg")).unwrap();
    let dots = svg
        .split("<circle")
        .skip(1)
        .filter(|c| c.contains("fill=\"#"));
    assert_eq!(dots.count(), 2, "{svg}");
    for s in [
        "\ntimed\n",
        "\nnone\n",
        "frontier 1 - h·x, h = 0.",
        "I/O requests/s kept",
    ] {
        assert!(svg.contains(s), "the trade-off chart does not name {s:?}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("r.json")).unwrap()).unwrap();
    let b = &v["runs"][0]["baseline"];
    let (h, x, y) = (
        b["io_hold_share"].as_f64().unwrap(),
        b["requests_vs_alone"].as_f64().unwrap(),
        b["cpu_kept"].as_f64().unwrap(),
    );
    assert!(h > 0.0 && h < 1.0, "{b}");
    assert!(
        (b["efficiency"].as_f64().unwrap() - y / (1.0 - h * x)).abs() < 1e-9,
        "{b}"
    );
    assert!(
        v["runs"][1]["baseline"]["efficiency"].is_null(),
        "none: no GIL"
    );
}

#[test]
fn report_reproduces_the_table_and_exports() {
    let (o, d) = compare();
    let r = ok(bin()
        .args(["report", d.join("r.json").to_str().unwrap()])
        .output()
        .unwrap());
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&o.stdout)
    );
    let md = ok(bin()
        .args(["report", d.join("r.json").to_str().unwrap(), "--markdown"])
        .output()
        .unwrap());
    assert_eq!(
        String::from_utf8_lossy(&md.stdout),
        std::fs::read_to_string(d.join("r.md")).unwrap()
    );
    let csv = ok(bin()
        .args(["report", d.join("r.json").to_str().unwrap(), "--csv"])
        .output()
        .unwrap());
    assert_eq!(
        String::from_utf8_lossy(&csv.stdout),
        std::fs::read_to_string(d.join("r.csv")).unwrap()
    );
    let plots = d.join("report-plots");
    ok(bin()
        .args([
            "report",
            d.join("r.json").to_str().unwrap(),
            "--plot",
            plots.to_str().unwrap(),
        ])
        .output()
        .unwrap());
    assert!(
        std::fs::read_to_string(plots.join("convoy-echo_latency.svg"))
            .unwrap()
            .contains("timed")
    );
}

#[test]
fn sweep_runs_a_row_per_value_and_plots_the_metrics() {
    let d = scratch().join("sweep");
    std::fs::create_dir_all(&d).unwrap();
    let p = |n: &str| d.join(n).display().to_string();
    let o = ok(bin()
        .args([
            "sweep",
            &workload("interval-sweep.toml"),
            "--set",
            "interval=1ms,5ms",
            "--locks",
            "timed,fifo",
            "--duration",
            "300ms",
        ])
        .args([
            "--set",
            "warmup=100ms",
            "--repeat",
            "2",
            "--json",
            &p("s.json"),
            "--plot",
            &p("plots"),
        ])
        .output()
        .unwrap());
    let out = String::from_utf8_lossy(&o.stdout);
    for row in [
        "timed interval=1ms",
        "timed interval=5ms",
        "fifo interval=1ms",
        "fifo interval=5ms",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row}:\n{out}"));
        // Repeated twice: median (min-max).
        assert!(line.contains('(') && line.contains('-'), "{line}");
    }
    let v = read_json(&d.join("s.json"));
    assert_eq!(v["runs"].as_array().unwrap().len(), 8);
    let svg =
        std::fs::read_to_string(d.join("plots").join("interval-sweep_sweep_interval.svg")).unwrap();
    for s in [
        "timed",
        "fifo",
        "1ms",
        "5ms",
        "requests/s",
        "CPU ticks/s",
        "context switches",
    ] {
        assert!(svg.contains(s), "the sweep plot does not name {s}");
    }
}

#[test]
fn outputs_refuse_to_clobber_foreign_files() {
    let d = scratch().join("clobber");
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("notes.json");
    std::fs::write(&f, "my precious notes").unwrap();
    let o = bin()
        .args([
            "run",
            &workload("cpu-scaling.toml"),
            "--duration",
            "100ms",
            "--json",
            f.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    // Refused before running: bad input.
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "my precious notes");
    ok(bin()
        .args([
            "run",
            &workload("cpu-scaling.toml"),
            "--duration",
            "100ms",
            "--json",
            f.to_str().unwrap(),
            "--force",
        ])
        .output()
        .unwrap());
    ok(bin()
        .args([
            "run",
            &workload("cpu-scaling.toml"),
            "--duration",
            "100ms",
            "--json",
            f.to_str().unwrap(),
        ])
        .output()
        .unwrap());
}

#[test]
fn a_failed_run_keeps_the_rows_finished_before_it() {
    let d = scratch().join("failed");
    std::fs::create_dir_all(&d).unwrap();
    let p = |n: &str| d.join(n).display().to_string();
    // The second of three rows panics; the third never runs.
    let o = bin()
        .args([
            "sweep",
            &workload("cpu-scaling.toml"),
            "--set",
            "fault=none,panic-holding-gil,panic-released",
            "--duration",
            "100ms",
            "--json",
            &p("r.json"),
            "--csv",
            &p("r.csv"),
            "--markdown",
            &p("r.md"),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("panicked") && err.contains("the 1 run finished before it was kept"),
        "{err}"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let done = out.lines().find(|l| l.starts_with("fault=none")).unwrap();
    assert!(done.contains("1.00x"), "{out}");
    assert!(
        out.contains("fault=panic-holding-gil (failed)") && out.contains("FAILED:"),
        "{out}"
    );
    assert!(
        out.contains("not run: 1 run (rows never started: fault=panic-released)"),
        "{out}"
    );
    let v = read_json(&d.join("r.json"));
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["partial"], false);
    assert!(runs[0]["cpu"]["ticks_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(runs[1]["partial"], true);
    assert!(runs[1]["failure"].as_str().unwrap().contains("panicked"));
    let csv = std::fs::read_to_string(d.join("r.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let md = std::fs::read_to_string(d.join("r.md")).unwrap();
    assert!(md.contains("(failed)") && md.contains("**Failed**"), "{md}");
    // `report` shows the same.
    let r = ok(bin()
        .args(["report", d.join("r.json").to_str().unwrap()])
        .output()
        .unwrap());
    assert_eq!(String::from_utf8_lossy(&r.stdout), out);
}

/// `--repeat` runs the rows in turn (A B A B), each run saying where it stood; `--order
/// blocks` keeps the old order (A A B B).
#[test]
fn repeated_rows_run_interleaved_unless_blocks_are_asked_for() {
    let d = scratch().join("order");
    std::fs::create_dir_all(&d).unwrap();
    for (order, labels) in [
        ("interleaved", ["tick", "none", "tick", "none"]),
        ("blocks", ["tick", "tick", "none", "none"]),
    ] {
        let f = d.join(format!("{order}.json"));
        ok(bin()
            .args([
                "compare",
                &workload("cpu-scaling.toml"),
                "--locks",
                "tick,none",
                "--repeat",
                "2",
                "--order",
                order,
                "--duration",
                "50ms",
                "--json",
                f.to_str().unwrap(),
            ])
            .output()
            .unwrap());
        let v = read_json(&f);
        let runs = v["runs"].as_array().unwrap();
        let got: Vec<&str> = runs.iter().map(|r| r["label"].as_str().unwrap()).collect();
        assert_eq!(got, labels, "{order}");
        for (i, r) in runs.iter().enumerate() {
            assert_eq!(r["sequence"]["index"], i, "{order}");
            assert_eq!(r["sequence"]["order"], order);
        }
    }
    let o = bin()
        .args([
            "compare",
            &workload("cpu-scaling.toml"),
            "--order",
            "random",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
