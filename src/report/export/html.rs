//! `--html PATH`: one self-contained page (inline CSS and SVG, no script, nothing loaded
//! from anywhere, which its Content-Security-Policy enforces): how the results were made
//! (command, gilbench version, machine, date), failures, partial runs and notes first, the
//! compare/sweep table (the columns of [`COLUMNS`](crate::report::columns::COLUMNS), as the
//! text table writes them, each cell carrying its exact value), the latency and sweep plots,
//! a section per run (threads, GIL wait/hold percentiles, context switches, I/O), and a link
//! to the GIL timeline when one was written.

use std::fmt::Write;
use std::path::{Component, Path, PathBuf};

use super::{Context, Dest, Exporter, Mark, Outcome, Target};
use crate::metrics::Percentiles;
use crate::output::{resolve, write_file};
use crate::report::about::Provenance;
use crate::report::columns::{counter, measured, Column, THREAD_COLUMNS};
use crate::report::{
    caption, other_verdicts, plot, rate, shown, summary, verdicts, Stat, SummaryRow, VERDICT,
};
use crate::result::RunResult;
use crate::units::us;

/// The format.
pub struct Html;

/// The format's entry in `ALL`.
pub const FORMAT: Html = Html;

const MARK_OPEN: &str = "<!-- gilbench ";
const MARK_CLOSE: &str = " html report -->";

impl Exporter for Html {
    fn flag(&self) -> &'static str {
        "html"
    }
    fn help(&self) -> &'static str {
        "Write one self-contained HTML page to PATH: the table, plots, each run's details"
    }
    fn target(&self) -> Target {
        Target::File
    }
    fn mark(&self) -> Mark {
        Mark::Versioned {
            open: MARK_OPEN,
            close: MARK_CLOSE,
        }
    }
    fn write(&self, cx: &Context<'_>, to: &Dest) -> Result<Outcome, String> {
        let Dest::File(p) = to else {
            return Err("--html writes a file".into());
        };
        write_file(p, page(cx, p)?.as_bytes(), cx.replace())?;
        Ok(Outcome::Written)
    }
}

/// `s` escaped for HTML text and attribute values.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A relative URL from the directory of `page` to `file`.
fn href(page: &Path, file: &Path) -> String {
    let dir = resolve(page).parent().map(Path::to_path_buf).unwrap_or_default();
    let to = resolve(file);
    let from: Vec<Component> = dir.components().collect();
    let target: Vec<Component> = to.components().collect();
    let common = from
        .iter()
        .zip(&target)
        .take_while(|(a, b)| a == b)
        .count();
    let mut rel = PathBuf::new();
    for _ in common..from.len() {
        rel.push("..");
    }
    for c in &target[common..] {
        rel.push(c);
    }
    let mut o = String::new();
    for b in rel.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{b:02X}");
        }
    }
    o
}

const CSS: &str = r#"
:root{--fg:#1b1f24;--muted:#5b6470;--line:#d6dbe1;--bg:#fff;--soft:#f4f6f8;--accent:#1f77b4;
--bad:#b42318;--badbg:#fef3f2;--warn:#8a4b00;--warnbg:#fff7e6;--note:#24527a;--notebg:#eef5fb}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header,main,footer{max-width:1280px;margin:0 auto;padding:0 20px}
header{padding-top:20px;border-bottom:1px solid var(--line)}
h1{font-size:1.6em;margin:0 0 4px}
h1 .kind{font-weight:400;color:var(--muted);font-size:.7em}
h2{font-size:1.25em;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:1.05em;margin:18px 0 6px}
code{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--soft);padding:1px 4px;border-radius:3px;word-break:break-all}
dl.about{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:10px 0 16px}
dl.about dt{color:var(--muted)}
dl.about dd{margin:0;min-width:0}
.alert{border-left:5px solid;padding:10px 14px;margin:14px 0;border-radius:4px}
.alert strong{display:block}
.alert ul{margin:4px 0 0;padding-left:20px}
.failed{border-color:var(--bad);background:var(--badbg);color:var(--bad)}
.partial{border-color:var(--warn);background:var(--warnbg);color:var(--warn)}
.notes{border-color:var(--note);background:var(--notebg);color:var(--note)}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;border:1px solid var(--line);border-radius:4px}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;white-space:nowrap;width:100%}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:right}
thead th{background:var(--soft);font-weight:600;position:sticky;top:0}
th:first-child,td:first-child{text-align:left}
tbody th{font-weight:600;position:sticky;left:0;background:var(--bg)}
tr.failed th,tr.failed td{background:var(--badbg)}
tr.partial th,tr.partial td{background:var(--warnbg)}
tr.total th,tr.total td{font-weight:600;border-top:2px solid var(--line)}
td.none{color:var(--muted)}
.tag{display:inline-block;font-size:.75em;font-weight:600;padding:0 6px;border-radius:8px;margin-left:6px;vertical-align:1px}
.tag.failed{background:var(--bad);color:#fff}
.tag.partial{background:var(--warn);color:#fff}
.caption,.hint{color:var(--muted);margin:6px 0}
figure{margin:12px 0}
figure .plot{overflow-x:auto;-webkit-overflow-scrolling:touch}
figure svg{display:block;width:100%;min-width:560px;height:auto;max-width:1000px;border:1px solid var(--line);border-radius:4px}
figcaption{color:var(--muted);font-size:.9em}
details{border:1px solid var(--line);border-radius:4px;margin:10px 0}
details>summary{cursor:pointer;padding:8px 12px;background:var(--soft);font-weight:600}
details>summary .meta{font-weight:400;color:var(--muted);margin-left:8px}
details>.body{padding:4px 12px 12px}
dl.kv{display:flex;flex-wrap:wrap;gap:4px 18px;margin:6px 0}
dl.kv div{display:flex;gap:6px}
dl.kv dt{color:var(--muted)}
dl.kv dd{margin:0;font-variant-numeric:tabular-nums}
footer{color:var(--muted);font-size:.85em;padding-top:16px;padding-bottom:30px;border-top:1px solid var(--line);margin-top:30px}
a{color:var(--accent)}
@media (max-width:640px){body{font-size:14px}header,main,footer{padding:0 10px}header{padding-top:12px}
h1{font-size:1.3em}th,td{padding:4px 6px}dl.about{grid-template-columns:1fr}dl.about dt{margin-top:6px}}
"#;

/// What the page shows: `sweep of interval`, `compare of 5 rows`, `run on timed`.
fn kind(cx: &Context<'_>, rows: usize) -> String {
    if cx.table.is_some() {
        return format!("calibration ({rows} rows run)");
    }
    match (cx.sweep_key, cx.runs) {
        (Some(k), _) => format!("sweep of {k}"),
        (None, [one]) => format!("run on {}", one.lock),
        _ => format!("compare of {rows} rows"),
    }
}

fn about_rows(o: &mut String, p: &Provenance) {
    let _ = write!(
        o,
        "<dt>command</dt><dd><code>{}</code></dd>\
         <dt>gilbench</dt><dd>{}</dd>\
         <dt>machine</dt><dd>{}</dd>\
         <dt>date</dt><dd>{}</dd>",
        esc(&p.command_line()),
        esc(&p.gilbench),
        esc(&p.machine.line()),
        esc(&p.date)
    );
}

fn header(o: &mut String, cx: &Context<'_>, rows: usize) {
    let scenario = cx.runs.first().map_or("(no runs)", |r| r.scenario.as_str());
    let _ = write!(
        o,
        "<header><h1>{} <span class=\"kind\">{}</span></h1><dl class=\"about\">",
        esc(scenario),
        esc(&kind(cx, rows))
    );
    match &cx.about.recorded {
        Some(p) => about_rows(o, p),
        None => o.push_str(
            "<dt>command</dt><dd>not recorded (a result file from before gilbench kept it)</dd>",
        ),
    }
    if cx.about.rerendered() {
        let c = &cx.about.current;
        let _ = write!(
            o,
            "<dt>this page</dt><dd>written by <code>{}</code>, gilbench {}, {}</dd>",
            esc(&c.command_line()),
            esc(&c.gilbench),
            esc(&c.date)
        );
    }
    o.push_str("</dl></header>");
}

/// Failures, partial runs and notes, before everything else.
fn alerts(o: &mut String, runs: &[RunResult]) {
    for r in runs.iter().filter(|r| r.failure.is_some()) {
        let _ = write!(
            o,
            "<div class=\"alert failed\" role=\"alert\"><strong>Failed: {}</strong>{}",
            esc(r.row_label()),
            esc(r.failure.as_deref().unwrap_or_default())
        );
        if measured(r) {
            o.push_str("<br>What it measured is kept below, marked partial.");
        } else {
            list(o, r.notes.iter().map(String::as_str));
        }
        o.push_str("</div>");
    }
    for r in runs.iter().filter(|r| r.partial && r.failure.is_none()) {
        let _ = write!(
            o,
            "<div class=\"alert partial\" role=\"alert\"><strong>Partial: {}</strong>\
             The run was cut short (a signal, or a deadline); its numbers cover less than \
             was asked.</div>",
            esc(r.row_label())
        );
    }
    for r in runs
        .iter()
        .filter(|r| r.gil.overlaps > Some(0) && r.lock != "none")
    {
        let _ = write!(
            o,
            "<div class=\"alert failed\" role=\"alert\"><strong>Broken exclusion: {}</strong>\
             {} holds saw another thread take the GIL.</div>",
            esc(r.row_label()),
            r.gil.overlaps.unwrap_or_default()
        );
    }
    grouped_notes(o, runs);
}

/// Each note once, with the rows that have it.
fn grouped_notes(o: &mut String, runs: &[RunResult]) {
    let mut grouped: Vec<(&str, Vec<&str>)> = Vec::new();
    // (A failed run without figures lists its notes with its failure.)
    for r in runs.iter().filter(|r| r.failure.is_none() || measured(r)) {
        for n in &r.notes {
            match grouped.iter_mut().find(|(t, _)| t == n) {
                Some((_, labels)) if !labels.contains(&r.row_label()) => {
                    labels.push(r.row_label())
                }
                Some(_) => {}
                None => grouped.push((n, vec![r.row_label()])),
            }
        }
    }
    let notes: Vec<String> = grouped
        .iter()
        .map(|(n, labels)| {
            if labels.len() == summary(runs).len() && labels.len() > 1 {
                format!("every row: {n}")
            } else {
                format!("{}: {n}", labels.join(", "))
            }
        })
        .collect();
    if !notes.is_empty() {
        o.push_str("<div class=\"alert notes\"><strong>Notes</strong>");
        list(o, notes.iter().map(String::as_str));
        o.push_str("</div>");
    }
}

fn list<'a>(o: &mut String, items: impl Iterator<Item = &'a str>) {
    o.push_str("<ul>");
    for i in items {
        let _ = write!(o, "<li>{}</li>", esc(i));
    }
    o.push_str("</ul>");
}

fn stat_attrs(s: &Stat) -> String {
    if s.n > 1 {
        format!(
            " data-value=\"{}\" data-min=\"{}\" data-max=\"{}\" data-n=\"{}\"",
            s.median, s.min, s.max, s.n
        )
    } else {
        format!(" data-value=\"{}\"", s.median)
    }
}

/// A table of its own (calibrate's), before the runs' table: its caption, cells and notes as
/// the text table has them.
fn own_table(o: &mut String, t: &crate::report::table::Table) {
    o.push_str("<section id=\"calibration\"><h2>Calibration</h2>");
    for c in &t.caption {
        let _ = write!(o, "<p class=\"caption\">{}</p>", esc(c));
    }
    o.push_str("<div class=\"scroll\"><table class=\"results\"><thead><tr>");
    let shown: Vec<_> = t.shown().collect();
    for (_, name, _) in &shown {
        let _ = write!(o, "<th scope=\"col\">{}</th>", esc(name));
    }
    o.push_str("</tr></thead><tbody>");
    for row in &t.rows {
        o.push_str("<tr>");
        for (i, _, _) in &shown {
            let _ = write!(o, "<td>{}</td>", esc(&row[*i].human));
        }
        o.push_str("</tr>");
    }
    o.push_str("</tbody></table></div>");
    let mut notes: Vec<&str> = t.notes.iter().map(String::as_str).collect();
    if t.partial {
        notes.push("interrupted: the table covers the runs finished so far");
    }
    if !notes.is_empty() {
        list(o, notes.into_iter());
    }
    o.push_str("</section>");
}

/// The compare/sweep table: the text table's cells, each with its exact value.
fn results(o: &mut String, runs: &[RunResult]) {
    let rows = summary(runs);
    let cols = shown(&rows);
    o.push_str("<section id=\"results\"><h2>Results</h2>");
    if let Some(c) = caption(runs, &rows) {
        let _ = write!(o, "<p class=\"caption\">{}</p>", esc(&c));
    }
    let verdicts = verdicts(&rows);
    o.push_str("<div class=\"scroll\"><table class=\"results\"><thead><tr><th scope=\"col\">run</th>");
    for (_, c) in &cols {
        let _ = write!(o, "<th scope=\"col\">{}</th>", esc(c.name));
    }
    if verdicts.is_some() {
        let _ = write!(o, "<th scope=\"col\">{VERDICT}</th>");
    }
    o.push_str("</tr></thead><tbody>");
    for (n, row) in rows.iter().enumerate() {
        let anchor = runs
            .iter()
            .position(|r| r.row_label() == row.label)
            .unwrap_or(0);
        result_row(o, row, anchor, &cols, verdicts.as_ref().map(|v| v[n].as_str()));
    }
    o.push_str("</tbody></table></div>");
    // (The caption says how verdicts are reached.)
    let others = other_verdicts(&rows);
    if !others.is_empty() {
        list(o, others.iter().map(String::as_str));
    }
    o.push_str("</section>");
}

/// One row of the results table: its label (linking to its run's section at `anchor`), a
/// cell per shown column (`-` for a figure not measured) and its verdict, if any.
fn result_row(
    o: &mut String,
    row: &SummaryRow,
    anchor: usize,
    cols: &[(usize, &'static Column)],
    verdict: Option<&str>,
) {
    let class = if row.failed {
        " class=\"failed\""
    } else if row.partial {
        " class=\"partial\""
    } else {
        ""
    };
    let _ = write!(
        o,
        "<tr{class} data-label=\"{}\"><th scope=\"row\"><a href=\"#run-{anchor}\">{}</a>{}</th>",
        esc(&row.label),
        esc(&row.label),
        tags(row.failed, row.partial)
    );
    for &(i, c) in cols {
        match row.cells[i] {
            Some(s) => {
                let _ = write!(
                    o,
                    "<td data-col=\"{}\"{}>{}</td>",
                    c.key,
                    stat_attrs(&s),
                    esc(&s.show(c.human, "–"))
                );
            }
            None => {
                let _ = write!(o, "<td data-col=\"{}\" class=\"none\">-</td>", c.key);
            }
        }
    }
    if let Some(v) = verdict {
        let _ = write!(o, "<td data-col=\"{VERDICT}\">{}</td>", esc(v));
    }
    o.push_str("</tr>");
}

fn tags(failed: bool, partial: bool) -> &'static str {
    if failed {
        "<span class=\"tag failed\">failed</span>"
    } else if partial {
        "<span class=\"tag partial\">partial</span>"
    } else {
        ""
    }
}

/// An SVG plot for inline use: gilbench's mark line dropped.
fn inline_svg(svg: &str, label: &str) -> String {
    let body = svg.strip_prefix(plot::SVG_MARK).unwrap_or(svg).trim_start();
    body.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{}\" ", esc(label)),
        1,
    )
}

fn plots(o: &mut String, cx: &Context<'_>) -> Result<(), String> {
    let runs = cx.runs;
    if let Some(key) = cx.sweep_key {
        let svg = plot::sweep(runs, key)?;
        let _ = write!(
            o,
            "<section id=\"sweep\"><h2>Sweep of {}</h2><figure><div class=\"plot\">{}</div><figcaption>Each point is a \
             row's median; a line per design.</figcaption></figure></section>",
            esc(key),
            inline_svg(&svg, &format!("sweep of {key}"))
        );
    }
    if let Some(svg) = plot::latency_percentiles(runs)? {
        let _ = write!(
            o,
            "<section id=\"latency\"><h2>Latency distribution</h2><figure><div class=\"plot\">{}</div><figcaption>\
             Client-side request latency by percentile (first repetition of each row), both \
             axes logarithmic.</figcaption></figure></section>",
            inline_svg(&svg, "request latency by percentile")
        );
    }
    tradeoff(o, runs)
}

/// The trade-off chart, when some row has baselines.
fn tradeoff(o: &mut String, runs: &[RunResult]) -> Result<(), String> {
    if let Some(svg) = plot::tradeoff(runs)? {
        let _ = write!(
            o,
            "<section id=\"tradeoff\"><h2>Trade-off against the frontier</h2><figure><div class=\"plot\">{}</div>\
             <figcaption>Each row at its median I/O requests/s and CPU ticks/s kept vs alone, the \
             min-max over repeats as bars; the line is the frontier 1 - h·x of a GIL that wastes \
             nothing (h: the I/O threads' GIL share alone). Along it is policy (who gets the GIL), \
             below it mechanism (idle hand-offs, wake-ups).</figcaption></figure></section>",
            inline_svg(&svg, "CPU kept against I/O kept, with the frontier")
        );
    }
    Ok(())
}

fn kv(o: &mut String, items: &[(&str, String)]) {
    o.push_str("<dl class=\"kv\">");
    for (k, v) in items {
        let _ = write!(o, "<div><dt>{}</dt><dd>{}</dd></div>", esc(k), esc(v));
    }
    o.push_str("</dl>");
}

fn pct_row(o: &mut String, name: &str, p: &Percentiles) {
    if p.count == 0 {
        let _ = write!(
            o,
            "<tr><th scope=\"row\">{}</th><td colspan=\"7\" class=\"none\">-</td></tr>",
            esc(name)
        );
        return;
    }
    let _ = write!(o, "<tr><th scope=\"row\">{}</th>", esc(name));
    for v in [p.p50, p.p90, p.p99, p.p999, p.max, p.mean] {
        let _ = write!(o, "<td data-value=\"{v}\">{}</td>", us(v));
    }
    let _ = write!(o, "<td>{}</td></tr>", p.count);
}

fn pct_table(o: &mut String, rows: &[(&str, &Percentiles)]) {
    o.push_str(
        "<div class=\"scroll\"><table class=\"pct\"><thead><tr><th scope=\"col\"></th>\
         <th scope=\"col\">p50</th><th scope=\"col\">p90</th><th scope=\"col\">p99</th>\
         <th scope=\"col\">p99.9</th><th scope=\"col\">max</th><th scope=\"col\">mean</th>\
         <th scope=\"col\">count</th></tr></thead><tbody>",
    );
    for (name, p) in rows {
        pct_row(o, name, p);
    }
    o.push_str("</tbody></table></div>");
}

fn threads(o: &mut String, r: &RunResult) {
    o.push_str("<h3>Threads</h3><div class=\"scroll\"><table class=\"threads\"><thead><tr>");
    for c in THREAD_COLUMNS {
        let _ = write!(o, "<th scope=\"col\">{}</th>", esc(c.name));
    }
    o.push_str("</tr></thead><tbody>");
    for t in &r.threads {
        o.push_str("<tr>");
        for (i, c) in THREAD_COLUMNS.iter().enumerate() {
            let tag = if i == 0 { "th scope=\"row\"" } else { "td" };
            let _ = write!(o, "<{tag}>{}</{}>", esc(&c.cell(r, t)), &tag[..2]);
        }
        o.push_str("</tr>");
    }
    o.push_str("<tr class=\"total\">");
    for (i, c) in THREAD_COLUMNS.iter().enumerate() {
        let tag = if i == 0 { "th scope=\"row\"" } else { "td" };
        let _ = write!(o, "<{tag}>{}</{}>", esc(&(c.total)(r)), &tag[..2]);
    }
    o.push_str("</tr></tbody></table></div>");
}

/// Where each run's timeline is in the trace: the process number of the viewer.
fn trace_process(runs: &[RunResult], i: usize) -> Option<usize> {
    runs[i].trace.as_ref()?;
    Some(runs[..i].iter().filter(|r| r.trace.is_some()).count() + 1)
}

/// A run's GIL figures: counters, idle while wanted, design counters, percentiles.
fn gil(o: &mut String, r: &RunResult) {
    let g = &r.gil;
    o.push_str("<h3>GIL</h3>");
    kv(
        o,
        &[
            ("acquisitions", counter(g.acquisitions)),
            ("switches", counter(g.switches)),
            ("forced drops", counter(g.forced_drops)),
            ("voluntary drops", counter(g.voluntary_drops)),
            (
                "idle while wanted",
                g.idle_while_wanted
                    .zip(g.idle_while_wanted_s)
                    .map_or("-".into(), |(share, s)| {
                        format!("{:.2}% ({})", share * 100.0, us(s * 1e6))
                    }),
            ),
            ("overlaps", counter(g.overlaps)),
            (
                "context switches (vol/inv)",
                g.ctx_switches
                    .map_or("-".into(), |c| format!("{}/{}", c.voluntary, c.involuntary)),
            ),
        ],
    );
    if !g.design.is_empty() {
        let d: Vec<(&str, String)> = g
            .design
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_string()))
            .collect();
        kv(o, &d);
    }
    pct_table(
        o,
        &[
            ("wait", &g.wait_us),
            ("hold", &g.hold_us),
            ("re-acquire", &g.reacquire_us),
            ("switch wait", &g.switch_wait_us),
        ],
    );
}

/// A run's I/O: what the load generator saw, latency percentiles.
fn io_section(o: &mut String, io: &crate::result::IoSummary) {
    o.push_str("<h3>I/O</h3>");
    let mut items = vec![
        ("mode", io.mode.clone()),
        ("requests", io.requests.to_string()),
        ("requests/s", rate(io.requests_per_sec)),
        ("failed", io.failed.to_string()),
    ];
    if let Some(t) = io.transfer_s {
        items.push(("transfer", format!("{t:.3}s")));
    }
    if let (Some(total), Some(false)) = (io.transfer_bytes, io.transfer_complete) {
        items.push((
            "transfer unfinished",
            format!("{} of {total} bytes received", io.bytes),
        ));
    }
    if let Some(b) = io.bytes_per_sec {
        items.push(("received/s", format!("{}B", rate(b))));
    }
    if io.mode == "open" {
        items.push(("target rate", rate(io.rate)));
        items.push(("late sends", io.late_sends.to_string()));
    }
    if io.errors > 0 {
        items.push(("errors", io.errors.to_string()));
    }
    if let Some(e) = &io.first_error {
        items.push(("first error", e.clone()));
    }
    if !io.loadgen.is_empty() {
        items.push(("load generator", io.loadgen.clone()));
    }
    kv(o, &items);
    let mut p: Vec<(&str, &Percentiles)> = vec![("latency", &io.latency_us)];
    if io.mode == "open" {
        p.push(("send lateness", &io.lateness_us));
    }
    p.push(("server re-acquire", &io.reacquire_us));
    pct_table(o, &p);
}

/// A run's CPU work.
fn cpu_section(o: &mut String, c: &crate::result::CpuSummary) {
    o.push_str("<h3>CPU</h3>");
    kv(
        o,
        &[
            ("threads", c.threads.to_string()),
            ("ticks/s", rate(c.ticks_per_sec)),
            ("hashed", format!("{}B/s", rate(c.bytes_per_sec))),
        ],
    );
}

/// A run's parameters, as the result records them.
fn params_section(o: &mut String, params: &serde_json::Map<String, serde_json::Value>) {
    o.push_str("<h3>Parameters</h3>");
    let items: Vec<(&str, String)> = params
        .iter()
        .map(|(k, v)| {
            (
                k.as_str(),
                match v {
                    serde_json::Value::String(s) => s.clone(),
                    v => v.to_string(),
                },
            )
        })
        .collect();
    kv(o, &items);
}

/// Run `i`'s section: closed unless it is the only one or failed; a run without figures
/// shows its failure and notes only.
fn run_details(o: &mut String, cx: &Context<'_>, i: usize, trace: Option<&str>) {
    let r = &cx.runs[i];
    let open = cx.runs.len() == 1 || r.failure.is_some();
    let _ = write!(
        o,
        "<details id=\"run-{i}\"{}><summary>{}{}<span class=\"meta\">{}, repeat {}, {:.2}s measured</span></summary><div class=\"body\">",
        if open { " open" } else { "" },
        esc(r.row_label()),
        tags(r.failure.is_some(), r.partial),
        esc(&r.lock),
        r.repeat + 1,
        r.measured_s
    );
    if let Some(f) = &r.failure {
        let _ = write!(
            o,
            "<div class=\"alert failed\"><strong>Failed</strong>{}</div>",
            esc(f)
        );
    }
    if !measured(r) {
        list(o, r.notes.iter().map(String::as_str));
        o.push_str("</div></details>");
        return;
    }
    if let (Some(t), Some(pid)) = (trace, trace_process(cx.runs, i)) {
        let _ = write!(
            o,
            "<p>GIL timeline: process {pid} (“{} {}”) in <a href=\"{t}\">the trace</a>.</p>",
            esc(&r.scenario),
            esc(&r.lock)
        );
    }
    threads(o, r);
    gil(o, r);
    if let Some(io) = &r.io {
        io_section(o, io);
    }
    if let Some(c) = &r.cpu {
        cpu_section(o, c);
    }
    if !r.notes.is_empty() {
        o.push_str("<h3>Notes</h3>");
        list(o, r.notes.iter().map(String::as_str));
    }
    if let Some(params) = r.params.as_object() {
        params_section(o, params);
    }
    o.push_str("</div></details>");
}

/// The timeline section: a link to the trace and how to open it, or how to get one.
fn timeline(o: &mut String, trace: Option<&str>, cx: &Context<'_>) {
    o.push_str("<section id=\"timeline\"><h2>GIL timeline</h2>");
    match trace {
        Some(t) => {
            let _ = write!(
                o,
                "<p><a href=\"{t}\">{}</a> holds each run's GIL timeline (wants, holds, \
                 releases, drop requests, forced switches per thread). To open it, go to \
                 <a href=\"https://ui.perfetto.dev\">ui.perfetto.dev</a> and choose “Open \
                 trace file” (the file is read in your browser, not uploaded), or load it in \
                 chrome://tracing.</p>",
                esc(t.rsplit('/').next().unwrap_or(t))
            );
        }
        None if cx.runs.iter().any(|r| r.trace.is_some()) => {
            o.push_str("<p class=\"hint\">The timeline was not written.</p>");
        }
        None if cx.about.rerendered() => o.push_str(
            "<p class=\"hint\">This page was written from a result file, which keeps no \
             timeline: the <code>--trace</code> file of the command that made it, if it was given \
             one, holds it.</p>",
        ),
        None => o.push_str(
            "<p class=\"hint\">No timeline was recorded: run with <code>--trace PATH</code> to \
             get one, linked from here.</p>",
        ),
    }
    o.push_str("</section>");
}

/// The whole page, to be written at `path`.
pub fn page(cx: &Context<'_>, path: &Path) -> Result<String, String> {
    let runs = cx.runs;
    let rows = summary(runs).len();
    let trace = cx
        .written
        .iter()
        .find(|(flag, _)| *flag == "trace")
        .map(|(_, p)| href(path, p));
    let mut o = format!("{MARK_OPEN}{}{MARK_CLOSE}\n", env!("CARGO_PKG_VERSION"));
    let title = format!(
        "{} — gilbench {}",
        runs.first().map_or("", |r| r.scenario.as_str()),
        kind(cx, rows)
    );
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; img-src data:\">\
         <meta name=\"generator\" content=\"gilbench {}\"><title>{}</title><style>{CSS}</style>\
         </head><body>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&title)
    );
    header(&mut o, cx, rows);
    o.push_str("<main>");
    alerts(&mut o, runs);
    if let Some(t) = cx.table {
        own_table(&mut o, t);
    }
    results(&mut o, runs);
    plots(&mut o, cx)?;
    o.push_str("<section id=\"runs\"><h2>Runs</h2>");
    for i in 0..runs.len() {
        run_details(&mut o, cx, i, trace.as_deref());
    }
    o.push_str("</section>");
    timeline(&mut o, trace.as_deref(), cx);
    o.push_str("</main><footer>");
    let others: Vec<String> = cx
        .written
        .iter()
        .map(|(flag, p)| {
            format!(
                "<a href=\"{}\">{}</a> (--{flag})",
                href(path, p),
                esc(&p.display().to_string())
            )
        })
        .collect();
    if !others.is_empty() {
        let _ = write!(o, "<p>Also written: {}.</p>", others.join(", "));
    }
    let _ = writeln!(
        o,
        "<p>Written by gilbench {} on {}. Latency is client-side; GIL figures cover the \
         measured window only (warm-up excluded).</p></footer></body></html>",
        env!("CARGO_PKG_VERSION"),
        esc(&cx.about.current.date)
    );
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::about::About;
    use crate::report::export::sample_run;

    fn render(runs: &[RunResult], sweep_key: Option<&str>) -> String {
        let about = About::default();
        let cx = Context {
            runs,
            table: None,
            sweep_key,
            force: false,
            about: &about,
            written: &[],
            say: &|_| {},
            note: &|_| {},
        };
        page(&cx, Path::new("/tmp/x/r.html")).unwrap()
    }

    #[test]
    fn the_page_is_self_contained_and_escapes_what_it_shows() {
        let mut b = sample_run("b <i>");
        b.partial = true;
        b.failure = Some("it <broke>".into());
        let html = render(&[sample_run("a"), b], None);
        assert!(html.starts_with("<!-- gilbench "));
        assert!(!html.contains("<script"));
        assert!(!html.contains("src="), "nothing is loaded");
        assert!(html.contains("default-src 'none'"));
        assert!(html.contains("<svg role=\"img\""));
        assert!(!html.contains("<i>") && !html.contains("<broke>") && !html.contains("<b>"));
        assert!(!html.contains("<&>"), "the scenario name, in the plots too");
        assert!(html.contains("b &lt;i&gt;"));
        assert!(html.contains("class=\"alert failed\""));
        // The failure comes before the table.
        assert!(html.find("it &lt;broke&gt;").unwrap() < html.find("id=\"results\"").unwrap());
        assert!(html.contains("data-col=\"requests_per_sec\" data-value=\"5500\">5.5k</td>"));
        assert!(html.contains("data-col=\"idle_while_wanted\" data-value=\"0.0123\">1.2%</td>"));
    }

    /// calibrate's page is titled as one and shows its own table first, escaped (it was
    /// "compare of 4 rows" without the calibration table).
    #[test]
    fn a_calibration_page_shows_its_table() {
        use crate::report::table::{Cell, Head, Table};
        let cell = |s: &str| Cell {
            human: s.into(),
            plain: s.into(),
        };
        let table = Table {
            caption: vec!["convoy-echo against CPython <3.11>".into()],
            heads: vec![
                Head {
                    name: Some("condition"),
                    key: Some("condition"),
                    numeric: false,
                },
                Head {
                    name: None,
                    key: Some("csv_only"),
                    numeric: true,
                },
            ],
            rows: vec![vec![cell("1 CPU thread"), cell("42")]],
            notes: vec!["a note".into()],
            partial: true,
            ..Table::default()
        };
        let about = About::default();
        let runs = [sample_run("a"), sample_run("b")];
        let cx = Context {
            runs: &runs,
            table: Some(&table),
            sweep_key: None,
            force: false,
            about: &about,
            written: &[],
            say: &|_| {},
            note: &|_| {},
        };
        let html = page(&cx, Path::new("/tmp/x/r.html")).unwrap();
        assert!(html.contains("gilbench calibration (2 rows run)"), "{html}");
        let own = html.find("id=\"calibration\"").expect("the table");
        assert!(own < html.find("id=\"results\"").unwrap());
        assert!(html.contains("CPython &lt;3.11&gt;") && html.contains("<td>1 CPU thread</td>"));
        assert!(!html.contains("<th scope=\"col\">csv_only</th>"), "a CSV-only column");
        assert!(html.contains("a note") && html.contains("interrupted: the table covers"));
    }

    #[test]
    fn a_page_without_runs_or_with_a_sweep_is_whole() {
        assert!(render(&[], None).trim_end().ends_with("</html>"));
        assert!(render(&[], Some("interval")).contains("Sweep of interval"));
        let runs = [sample_run("interval=1ms"), sample_run("interval=5ms")];
        let html = render(&runs, Some("interval"));
        assert_eq!(html.matches("<svg role=\"img\"").count(), 2);
    }

    #[test]
    fn the_trade_off_chart_is_there_with_baselines_only() {
        let html = render(&crate::report::plot::tradeoff::tests::three_rows(), None);
        let chart = &html[html.find("<section id=\"tradeoff\">").expect("the chart")..];
        assert!(chart.contains("aria-label=\"CPU kept against I/O kept, with the frontier\""));
        assert!(!render(&[sample_run("a")], None).contains("id=\"tradeoff\""));
    }

    #[test]
    fn links_are_relative_to_the_page() {
        let d = tempfile::tempdir().unwrap();
        let page = d.path().join("out/r.html");
        std::fs::create_dir_all(d.path().join("out")).unwrap();
        assert_eq!(href(&page, &d.path().join("out/t.json")), "t.json");
        assert_eq!(href(&page, &d.path().join("t r.json")), "../t%20r.json");
        assert_eq!(href(&page, &d.path().join("out/plots")), "plots");
    }
}
