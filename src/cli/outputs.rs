//! Writing every requested output from one list of runs; checking, before anything runs,
//! that every output can be written; printing to a stdout that may be gone.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use gilbench::output::{check_dir, check_file, ensure_dir, write_file, write_with};
use gilbench::report::{export, file_part, hgrm, plot};
use gilbench::result::RunResult;
use gilbench::signals;

use crate::{Failure, OutputOpts};

/// The first error writing stdout other than a closed pipe, reported at the end.
static STDOUT_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// Prints `text` on stdout. A closed stdout (the reader went away, e.g. `| head`) does not
/// stop gilbench: the text is dropped and the files are still written. Any other error is
/// kept for [`stdout_error`].
pub fn say(text: &str) {
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let mut first = STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| format!("cannot write to stdout: {e}"));
        }
    }
}

/// The first error writing stdout, other than a closed pipe.
pub fn stdout_error() -> Option<String> {
    STDOUT_ERROR
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Prints one line on stderr, never panicking (stderr may be a closed pipe too).
pub fn warn(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "gilbench: {line}");
}

/// Checks every output path before anything runs: each file's directory exists and takes
/// new files, an existing file is a regular file gilbench wrote (or `--force`), each
/// directory is one or can be created, and no two outputs name the same file. Bad input:
/// exit status 2.
pub fn check_outputs(out: &OutputOpts) -> Result<(), Failure> {
    let mut files: Vec<(&str, PathBuf)> = Vec::new();
    let named = [
        ("--json", out.json.as_ref()),
        ("--csv", out.csv.as_ref().and_then(Option::as_ref)),
        ("--markdown", out.markdown.as_ref().and_then(Option::as_ref)),
        ("--hlog", out.hlog.as_ref()),
        ("--trace", out.trace.as_ref()),
    ];
    for (flag, p) in named {
        if let Some(p) = p {
            let r = check_file(p, out.force).map_err(Failure::Input)?;
            files.push((flag, r));
        }
    }
    let mut dirs: Vec<(&str, PathBuf, &str)> = Vec::new();
    for (flag, p, ext) in [
        ("--hgrm", out.hgrm.as_ref(), "hgrm"),
        ("--plot", out.plot.as_ref(), "svg"),
    ] {
        if let Some(p) = p {
            let r = check_dir(p).map_err(Failure::Input)?;
            dirs.push((flag, r, ext));
        }
    }
    for (i, (a, pa)) in files.iter().enumerate() {
        if let Some((b, _)) = files[i + 1..].iter().find(|(_, pb)| pb == pa) {
            return Err(Failure::Input(format!(
                "{a} and {b} both name {}; give each output its own file",
                pa.display()
            )));
        }
        for (d, pd, ext) in &dirs {
            if pd.starts_with(pa) {
                return Err(Failure::Input(format!(
                    "{d} {} is, or is inside, the {a} file {}",
                    pd.display(),
                    pa.display()
                )));
            }
            if pa.parent() == Some(pd.as_path()) && pa.extension().is_some_and(|e| e == *ext) {
                return Err(Failure::Input(format!(
                    "{a} {} is a .{ext} file in the {d} directory, where gilbench writes its own",
                    pa.display()
                )));
            }
        }
    }
    Ok(())
}

/// Writes every requested output for `runs`.
pub fn write_outputs(
    runs: &[RunResult],
    out: &OutputOpts,
    sweep_key: Option<&str>,
) -> Result<(), Failure> {
    let fail = Failure::Run;
    if let Some(p) = &out.json {
        write_file(p, export::json(runs).as_bytes(), out.force).map_err(fail)?;
    }
    match &out.csv {
        Some(Some(p)) => {
            write_file(p, export::csv(runs).as_bytes(), out.force).map_err(Failure::Run)?
        }
        Some(None) => say(&export::csv(runs)),
        None => {}
    }
    match &out.markdown {
        Some(Some(p)) => {
            write_file(p, export::markdown(runs).as_bytes(), out.force).map_err(Failure::Run)?
        }
        Some(None) => say(&export::markdown(runs)),
        None => {}
    }
    if let Some(dir) = &out.hgrm {
        ensure_dir(dir).map_err(Failure::Run)?;
        let mut written = 0;
        for r in runs {
            for (metric, h) in &r.hists {
                let name = format!(
                    "{}_{}_{}_{}.hgrm",
                    file_part(&r.scenario),
                    file_part(r.row_label()),
                    r.repeat,
                    metric
                );
                write_file(&dir.join(name), hgrm::hgrm(h).as_bytes(), out.force)
                    .map_err(Failure::Run)?;
                written += 1;
            }
        }
        if written == 0 {
            warn(&format!("note: no histograms to write to {} (results loaded from JSON keep only percentiles)", dir.display()));
        }
    }
    if let Some(p) = &out.hlog {
        let mut series = Vec::new();
        for r in runs {
            let prefix = if runs.len() > 1 {
                format!("{}.{}.", file_part(r.row_label()), r.repeat)
            } else {
                String::new()
            };
            series.extend(
                r.intervals
                    .iter()
                    .map(|(t, iv)| (format!("{prefix}{t}"), iv.clone())),
            );
        }
        let start =
            SystemTime::now() - Duration::from_secs_f64(runs.iter().map(|r| r.wall_s).sum::<f64>());
        let bytes = hgrm::hlog(&series, start).map_err(Failure::Run)?;
        write_file(p, &bytes, out.force).map_err(Failure::Run)?;
    }
    let mut abandoned: Option<(i32, &Path)> = None;
    if let Some(p) = &out.trace {
        let timelines: Vec<&gilbench::trace::Timeline> =
            runs.iter().filter_map(|r| r.trace.as_ref()).collect();
        if timelines.is_empty() {
            warn(&format!(
                "note: no timeline to write to {} (results loaded from JSON keep no timeline)",
                p.display()
            ));
        } else {
            // The trace can take seconds to write: a signal that arrives meanwhile abandons
            // it (a signal that already cut the run short does not: what was gathered is
            // written).
            let before = signals::caught();
            let cancelled = || before.is_none() && signals::caught().is_some();
            let wrote = write_with(p, out.force, |w| {
                gilbench::trace::write_chrome_trace(&timelines, w, &cancelled)
            })
            .map_err(Failure::Run)?;
            if !wrote {
                abandoned = signals::caught().map(|sig| (sig, p.as_path()));
            }
        }
    }
    if let Some(dir) = &out.plot {
        ensure_dir(dir).map_err(Failure::Run)?;
        let scen = file_part(&runs.first().map_or(String::new(), |r| r.scenario.clone()));
        if let Some(key) = sweep_key {
            let svg = plot::sweep(runs, key).map_err(Failure::Run)?;
            let name = format!("{scen}_sweep_{}.svg", file_part(key));
            write_file(&dir.join(name), svg.as_bytes(), out.force).map_err(Failure::Run)?;
        }
        if let Some(svg) = plot::latency_percentiles(runs).map_err(Failure::Run)? {
            write_file(
                &dir.join(format!("{scen}_latency.svg")),
                svg.as_bytes(),
                out.force,
            )
            .map_err(Failure::Run)?;
        } else if sweep_key.is_none() {
            warn("note: no client-side latency to plot (a CPU-only scenario)");
        }
    }
    if let Some((sig, p)) = abandoned {
        let _ = std::io::stdout().flush();
        warn(&format!(
            "interrupted by {} while writing {}, which was not written; the other outputs were",
            signals::name(sig),
            p.display()
        ));
        std::process::exit(i32::from(signals::exit_status(sig)));
    }
    Ok(())
}

/// Writes the outputs; then, if a signal cut the run short, exits with 128 + its number.
pub fn finish(
    runs: &[RunResult],
    out: &OutputOpts,
    sweep_key: Option<&str>,
) -> Result<(), Failure> {
    write_outputs(runs, out, sweep_key)?;
    if runs.iter().any(|r| r.partial) || runs.is_empty() {
        if let Some(sig) = signals::caught() {
            let _ = std::io::stdout().flush();
            warn(&format!(
                "interrupted by {}; the results gathered so far were written",
                signals::name(sig)
            ));
            std::process::exit(i32::from(signals::exit_status(sig)));
        }
    }
    if let Some(f) = runs.iter().find_map(|r| r.failure.as_deref()) {
        return Err(Failure::Run(format!(
            "{f}; what it measured was kept (marked partial)"
        )));
    }
    Ok(())
}
