//! The HTML page (`--html`), checked in a real browser: headless Chromium loads it without a
//! console message (its Content-Security-Policy turns any load from elsewhere, any script,
//! into one), the table it renders holds the JSON's numbers and the text table's cells, and
//! a screenshot is taken (kept in the test's target directory, to look at). Without a
//! browser the browser tests say so on stderr and pass; `.ci/run` installs one.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, s, stderr, workload};

/// A fresh directory for one test, under the target directory (kept after the run).
fn dir(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("html")
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Says something on the test's stderr past libtest's capture: a skipped check is seen.
fn visible(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Headless Chromium, if installed: `$GILBENCH_CHROMIUM`, `chromium`, or
/// `chromium-headless-shell` on the PATH.
fn browser() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GILBENCH_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-headless-shell"]
        .iter()
        .find_map(|name| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
}

/// What the browser made of a page: its DOM, and the console messages it logged.
struct Loaded {
    dom: String,
    console: Vec<String>,
}

/// Runs headless Chromium on `page` with `args` (a fresh profile, no network, at most
/// 90 s).
fn chromium(browser: &Path, page: &Path, args: &[&str]) -> Output {
    let profile = tempfile::tempdir().unwrap();
    let child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let id = child.id();
    let t0 = Instant::now();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if t0.elapsed() > Duration::from_secs(90) {
            // SAFETY: kills the browser this test started, by its pid.
            unsafe { libc::kill(id as libc::pid_t, libc::SIGKILL) };
            panic!("chromium did not finish loading {} in 90 s", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    waiter.join().unwrap()
}

/// Loads `page` and returns its DOM and console messages.
fn load(browser: &Path, page: &Path) -> Loaded {
    let o = chromium(browser, page, &["--dump-dom"]);
    let console = stderr(&o)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    Loaded {
        dom: String::from_utf8_lossy(&o.stdout).into_owned(),
        console,
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// `name="value"` in a tag's attributes.
fn attr(tag: &str, name: &str) -> Option<String> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = tag[at..].find('"')?;
    Some(unescape(&tag[at..at + end]))
}

/// A cell of the rendered results table.
#[derive(Debug)]
struct Cell {
    col: String,
    value: Option<f64>,
    text: String,
}

/// The rendered results table: each row's label and cells.
fn results_table(dom: &str) -> Vec<(String, Vec<Cell>)> {
    let start = dom
        .find("<table class=\"results\">")
        .expect("a results table");
    let table = &dom[start..start + dom[start..].find("</table>").unwrap()];
    let mut rows = Vec::new();
    for tr in table.split("<tr").skip(1) {
        let head = &tr[..tr.find('>').unwrap()];
        let Some(label) = attr(head, "data-label") else {
            continue;
        };
        let mut cells = Vec::new();
        for td in tr.split("<td").skip(1) {
            let close = td.find('>').unwrap();
            let tag = &td[..close];
            let text = &td[close + 1..close + 1 + td[close + 1..].find("</td>").unwrap()];
            cells.push(Cell {
                col: attr(tag, "data-col").expect("a data-col"),
                value: attr(tag, "data-value").map(|v| v.parse().unwrap()),
                text: unescape(text),
            });
        }
        rows.push((label, cells));
    }
    rows
}

/// The text table's cells of the row labelled `label` (columns are 2+ spaces apart).
fn text_row(table: &str, label: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|l| l.starts_with(label) && l[label.len()..].starts_with("  "))
        .unwrap_or_else(|| panic!("no row {label} in\n{table}"));
    line[label.len()..]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The JSON figure a table column shows, for a run: `None` for a column this test does not
/// check, `Some(None)` for a figure the run did not measure (null in the JSON, `-` on the page).
fn figure(run: &serde_json::Value, col: &str) -> Option<Option<f64>> {
    let io = &run["io"];
    let ctx = &run["gil"]["ctx_switches"];
    Some(match col {
        "requests_per_sec" => io["requests_per_sec"].as_f64(),
        "latency_p50_us" => io["latency_us"]["p50"].as_f64(),
        "latency_p99_us" => io["latency_us"]["p99"].as_f64(),
        "latency_p999_us" => io["latency_us"]["p999"].as_f64(),
        "cpu_ticks_per_sec" => run["cpu"]["ticks_per_sec"].as_f64(),
        "switches" => run["gil"]["switches"].as_f64(),
        "forced_drops" => run["gil"]["forced_drops"].as_f64(),
        "ctx_switches" => Some(ctx["voluntary"].as_f64()? + ctx["involuntary"].as_f64()?),
        "idle_while_wanted" => run["gil"]["idle_while_wanted"].as_f64(),
        _ => return None,
    })
}

#[test]
fn the_page_loads_in_a_browser_without_console_messages_and_shows_the_json_s_numbers() {
    let Some(browser) = browser() else {
        visible(
            "SKIPPED the HTML browser test: no headless Chromium (install Debian's `chromium` \
             or set GILBENCH_CHROMIUM); .ci/run installs it",
        );
        return;
    };
    let d = dir("compare");
    the_check_sees_a_console_message(&browser, &d);
    let (json, html, text) = compare_with_a_page(&d);
    let page = load(&browser, &html);
    assert!(
        page.console.is_empty(),
        "console messages: {:#?}",
        page.console
    );
    assert!(page.dom.contains("</html>"), "no page: {}", page.dom);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let runs = v["runs"].as_array().unwrap();
    the_cells_are_the_json_s_and_the_text_table_s(&page.dom, runs, &text);
    the_page_says_how_it_was_made_and_charts_every_row(&page.dom, runs);
    a_screenshot_is_taken(&browser, &html, &d);
}

/// The check itself works: a page with a script and a load from elsewhere is caught.
fn the_check_sees_a_console_message(browser: &Path, d: &Path) {
    let canary = d.join("canary.html");
    std::fs::write(
        &canary,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'none'\"><title>c</title></head><body>\
         <img src=\"missing.png\"><script>console.error('canary')</script></body></html>",
    )
    .unwrap();
    let c = load(browser, &canary);
    assert!(
        !c.console.is_empty(),
        "{} logs no console messages on stderr: the check cannot see errors",
        browser.display()
    );
}

/// A short compare of `timed` and `none` with its JSON, timeline and page written in `d`:
/// (JSON, page, the text printed).
fn compare_with_a_page(d: &Path) -> (PathBuf, PathBuf, String) {
    let (json, html, trace) = (d.join("r.json"), d.join("r.html"), d.join("t.json"));
    let o = bin()
        .args([
            "compare",
            &workload("convoy-echo.toml"),
            "--locks",
            "timed,none",
            "--duration",
            "300ms",
            "--set",
            "warmup=100ms",
            "--json",
            s(&json),
            "--trace",
            s(&trace),
            "--trace-events",
            "20000",
            "--html",
            s(&html),
            // The page keeps every column, as the exports do; the text table shows them too.
            "--columns",
            "all",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    (json, html, String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Each results cell holds its run's JSON figure (absent where the JSON has none), and the
/// row reads as the text table's.
fn the_cells_are_the_json_s_and_the_text_table_s(
    dom: &str,
    runs: &[serde_json::Value],
    text: &str,
) {
    let rows = results_table(dom);
    assert_eq!(rows.len(), runs.len());
    let base = runs[0]["io"]["requests_per_sec"].as_f64().unwrap();
    for ((label, cells), run) in rows.iter().zip(runs) {
        assert_eq!(label, run["label"].as_str().unwrap());
        let mut checked = 0;
        for c in cells {
            if c.col == "ratio" {
                let want = run["io"]["requests_per_sec"].as_f64().unwrap() / base;
                assert!((c.value.unwrap() - want).abs() < 1e-9, "{label}: {c:?}");
            } else if let Some(want) = figure(run, &c.col) {
                assert_eq!(c.value, want, "{label}: {c:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 9, "{label}: {cells:?}");
        let texts: Vec<&str> = cells.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, text_row(text, label), "{label}");
    }
}

/// How the results were made, the plot, the timeline link; the trade-off chart names a dot
/// per row (compare runs baselines).
fn the_page_says_how_it_was_made_and_charts_every_row(dom: &str, runs: &[serde_json::Value]) {
    for want in [
        "compare",
        "convoy-echo.toml",
        env!("CARGO_PKG_VERSION"),
        "cores",
        "Linux",
        "UTC",
        "<svg role=\"img\"",
        "href=\"t.json\"",
        "ui.perfetto.dev",
        "id=\"run-1\"",
        "GIL wait p50/p99/max",
    ] {
        assert!(dom.contains(want), "the page does not show {want}");
    }
    let chart = &dom[dom.find("id=\"tradeoff\"").expect("no trade-off chart")..];
    let chart = &chart[..chart.find("</svg>").unwrap()];
    let texts: Vec<&str> = chart
        .split("</text>")
        .filter_map(|t| Some(t.rsplit_once('>')?.1.trim()))
        .collect();
    for run in runs {
        let label = run["label"].as_str().unwrap();
        assert!(
            texts.contains(&label),
            "the chart does not name {label}: {texts:?}"
        );
    }
}

fn a_screenshot_is_taken(browser: &Path, html: &Path, d: &Path) {
    let shot = d.join("report.png");
    let o = chromium(
        browser,
        html,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,2000",
        ],
    );
    let png =
        std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}): {}", stderr(&o)));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}

#[test]
fn a_sweep_with_a_failed_run_shows_the_failure_first_and_the_panels() {
    let d = dir("sweep");
    let (json, html) = (d.join("r.json"), d.join("r.html"));
    let o = bin()
        .args([
            "sweep",
            &workload("cpu-scaling.toml"),
            "--set",
            "fault=none,panic-holding-gil",
            "--duration",
            "100ms",
            "--json",
            s(&json),
            "--html",
            s(&html),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    let failed = page
        .find("class=\"alert failed\"")
        .expect("a failure alert");
    assert!(failed < page.find("id=\"results\"").unwrap());
    assert!(page.contains("panicked") && page.contains("Sweep of fault"));
    assert!(page.contains("<tr class=\"failed\" data-label=\"fault=panic-holding-gil\">"));
    // `report` writes the same page from the JSON, saying it re-renders.
    let again = d.join("again.html");
    let o = bin()
        .args(["report", s(&json), "--html", s(&again)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let again_page = std::fs::read_to_string(&again).unwrap();
    assert!(
        again_page.contains("this page") && again_page.contains("fault=none,panic-holding-gil")
    );
    if let Some(browser) = browser() {
        for p in [&html, &again] {
            let l = load(&browser, p);
            assert!(l.console.is_empty(), "{}: {:#?}", p.display(), l.console);
            assert!(l.dom.contains("Sweep of fault"));
        }
    } else {
        visible("SKIPPED loading the sweep page in a browser: no headless Chromium");
    }
}

#[test]
fn a_file_gilbench_did_not_write_is_not_replaced_by_the_page() {
    let d = dir("foreign");
    let f = d.join("index.html");
    std::fs::write(&f, "<!DOCTYPE html><p>mine</p>\n").unwrap();
    let o = bin()
        .args([
            "run",
            &workload("cpu-scaling.toml"),
            "--duration",
            "100ms",
            "--html",
            s(&f),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"));
    let ok = d.join("ok.html");
    for _ in 0..2 {
        let o = bin()
            .args([
                "run",
                &workload("cpu-scaling.toml"),
                "--duration",
                "100ms",
                "--html",
                s(&ok),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let page = std::fs::read_to_string(&ok).unwrap();
    assert_eq!(page.matches("<details").count(), 1);
    assert!(page.contains("run on timed"));
}
