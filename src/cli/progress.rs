//! The progress bar of experiments.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use gilbench::experiment::{self, Progress, Row};
use gilbench::result::{Order, RunResult};

use crate::{instrument, Failure, OutputOpts};

/// A progress bar on stderr for experiments longer than a second, advanced by elapsed time
/// and naming the current design/value; none when stderr is not a terminal or with --quiet.
struct Bar {
    bar: indicatif::ProgressBar,
    /// (expected time of the runs before the current one, when the current one started,
    /// its expected time).
    at: std::sync::Mutex<(Duration, Instant, Duration)>,
}

impl Bar {
    fn new(total: Duration, quiet: bool) -> Option<Self> {
        if quiet || !std::io::stderr().is_terminal() || total <= Duration::from_secs(1) {
            return None;
        }
        let bar = indicatif::ProgressBar::new(total.as_millis() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {percent:>3}% {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        Some(Bar {
            bar,
            at: std::sync::Mutex::new((Duration::ZERO, Instant::now(), Duration::ZERO)),
        })
    }

    fn update(&self, p: Progress<'_>) {
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        match p {
            Progress::Start {
                index,
                total,
                label,
                repeat,
                expected,
            } => {
                let before = at.0 + at.2;
                *at = (before, Instant::now(), expected);
                let rep = if repeat > 0 {
                    format!(" (repeat {})", repeat + 1)
                } else {
                    String::new()
                };
                self.bar
                    .set_message(format!("{label}{rep} [{index}/{total}]"));
            }
            Progress::Done => self.bar.finish_and_clear(),
        }
    }

    fn tick(&self) {
        let at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        let pos = at.0 + at.1.elapsed().min(at.2);
        self.bar.set_position(pos.as_millis() as u64);
    }
}

pub fn run_rows(
    rows: Vec<Row>,
    (repeat, order): (u32, Order),
    baselines: bool,
    out: &OutputOpts,
) -> Result<Vec<RunResult>, Failure> {
    let inst = instrument(out)?;
    let total: Duration = rows
        .iter()
        .map(|r| {
            let one = experiment::expected(&r.scenario);
            if baselines && experiment::has_baselines(&r.scenario) {
                one * 3
            } else {
                one
            }
        })
        .sum::<Duration>()
        * repeat;
    let bar = Bar::new(total, out.quiet);
    let done = std::sync::atomic::AtomicBool::new(false);
    let runs = std::thread::scope(|s| {
        if let Some(b) = &bar {
            let done = &done;
            // A bar that cannot have its thread (out of memory or threads) is still updated
            // after each run; only its ticking in between is lost.
            let _ = std::thread::Builder::new()
                .name("progress".into())
                .spawn_scoped(s, move || {
                    while !done.load(std::sync::atomic::Ordering::Relaxed) {
                        b.tick();
                        std::thread::sleep(Duration::from_millis(100));
                    }
                });
        }
        let r = experiment::execute(&rows, (repeat, order), baselines, &inst, &mut |p| {
            if let Some(b) = &bar {
                b.update(p);
            }
        });
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        r
    })?;
    Ok(runs)
}
