//! What the OS gave a test's threads, for the tests of timing phenomena: each thread's time on
//! a CPU and time runnable but kept waiting for one (`/proc/PID/task/TID/schedstat`), and its
//! context switches (`.../status`), sampled every 10 ms while a trial runs.
//!
//! A timing phenomenon (a convoy, a spinning client) shows only when its threads get the CPU
//! they want. On a busy machine they may not: [`unless_starved`] repeats a trial that failed
//! while other processes took a large share of the machine, and says so, and skips (saying
//! why) when every attempt was starved. A trial that fails on a machine left to it is a
//! failure.
//!
//! Why other processes' share and not the threads' own run-queue delay: a scenario's threads
//! also wait for each other (a convoy run has three threads wanting two cores), some 10-16% of
//! their wanted time with the machine to themselves; only what others took tells a busy
//! machine from a run that overloads itself.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One thread's share of the machine over the watched stretch.
#[derive(Clone, Debug, Default)]
pub struct ThreadUsage {
    pub pid: u32,
    pub tid: u32,
    pub name: String,
    /// Time on a CPU.
    pub ran: Duration,
    /// Time runnable but waiting for a CPU (run-queue delay).
    pub waited: Duration,
    pub voluntary: u64,
    pub involuntary: u64,
    /// Its voluntary switches since the watch began (or it was born), at each sample.
    pub voluntary_at: Vec<(Instant, u64)>,
}

impl ThreadUsage {
    /// Its voluntary switches up to `d` before it was last seen (leaving out its last stretch).
    pub fn voluntary_until_last_less(&self, d: Duration) -> u64 {
        let Some(&(last, _)) = self.voluntary_at.last() else {
            return 0;
        };
        self.voluntary_at
            .iter()
            .take_while(|(t, _)| *t + d <= last)
            .last()
            .map_or(0, |&(_, v)| v)
    }
}

/// Cumulative counters of one thread, as read at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    ran_ns: u64,
    waited_ns: u64,
    voluntary: u64,
    involuntary: u64,
}

impl Counts {
    fn read(pid: u32, tid: u32) -> Option<(String, Counts)> {
        let dir = format!("/proc/{pid}/task/{tid}");
        let sched = std::fs::read_to_string(format!("{dir}/schedstat")).ok()?;
        let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        let mut f = sched.split_whitespace().map(|v| v.parse::<u64>().ok());
        let (ran_ns, waited_ns) = (f.next()??, f.next()??);
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_owned())
        };
        let num = |key: &str| field(key).and_then(|v| v.parse().ok()).unwrap_or(0);
        let counts = Counts {
            ran_ns,
            waited_ns,
            voluntary: num("voluntary_ctxt_switches:"),
            involuntary: num("nonvoluntary_ctxt_switches:"),
        };
        Some((field("Name:").unwrap_or_default(), counts))
    }
}

/// One thread's first and last sample, and its voluntary switches at each sample.
struct Seen {
    name: String,
    first: Counts,
    last: Counts,
    voluntary_at: Vec<(Instant, u64)>,
}

/// Every thread seen, by (pid, tid).
#[derive(Default)]
struct Samples {
    seen: BTreeMap<(u32, u32), Seen>,
}

impl Samples {
    /// Samples every thread of `pids` but `skip` (the sampler itself). A thread seen for the
    /// first time counts from its first sample if it was there at the start, else from zero
    /// (it was born during the watch).
    fn sample(&mut self, pids: &[u32], skip: u32, first: bool) {
        for &pid in pids {
            let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            let tids = dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok());
            for tid in tids.filter(|&t| t != skip) {
                let Some((name, now)) = Counts::read(pid, tid) else {
                    continue;
                };
                let from = if first { now } else { Counts::default() };
                let seen = self.seen.entry((pid, tid)).or_insert(Seen {
                    name,
                    first: from,
                    last: now,
                    voluntary_at: Vec::new(),
                });
                seen.last = now;
                let v = now.voluntary.saturating_sub(seen.first.voluntary);
                seen.voluntary_at.push((Instant::now(), v));
            }
        }
    }

    fn usage(self) -> Usage {
        let threads = self
            .seen
            .into_iter()
            .map(
                |(
                    (pid, tid),
                    Seen {
                        name,
                        first: a,
                        last: b,
                        voluntary_at,
                    },
                )| ThreadUsage {
                    pid,
                    tid,
                    name,
                    ran: Duration::from_nanos(b.ran_ns.saturating_sub(a.ran_ns)),
                    waited: Duration::from_nanos(b.waited_ns.saturating_sub(a.waited_ns)),
                    voluntary: b.voluntary.saturating_sub(a.voluntary),
                    involuntary: b.involuntary.saturating_sub(a.involuntary),
                    voluntary_at,
                },
            )
            .collect();
        Usage {
            threads,
            others: None,
        }
    }
}

/// Samples this process's threads (and those of processes it is told to follow) until
/// [`Watch::finish`], and what the whole machine did meanwhile.
pub struct Watch {
    stop: Arc<AtomicBool>,
    pids: Arc<Mutex<Vec<u32>>>,
    sampler: Option<JoinHandle<Samples>>,
    machine: Option<MachineTicks>,
}

/// The machine's busy and total CPU time (`/proc/stat`), and this process's (`/proc/self/stat`,
/// which keeps the time of its ended threads), in clock ticks.
#[derive(Clone, Copy)]
struct MachineTicks {
    busy: u64,
    total: u64,
    own: u64,
}

impl MachineTicks {
    fn read() -> Option<MachineTicks> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal (guest time is within user).
        let total: u64 = cpu.iter().take(8).sum();
        let idle = cpu.get(3)? + cpu.get(4)?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may hold spaces): utime and stime are the
        // 12th and 13th.
        let after = own.rsplit_once(')')?.1;
        let f: Vec<&str> = after.split_whitespace().collect();
        let own = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some(MachineTicks {
            busy: total - idle,
            total,
            own,
        })
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

const EVERY: Duration = Duration::from_millis(10);

impl Watch {
    pub fn start() -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let pids = Arc::new(Mutex::new(vec![std::process::id()]));
        let (s, p) = (stop.clone(), pids.clone());
        let sampler = std::thread::spawn(move || {
            let me = own_tid();
            let mut samples = Samples::default();
            let mut first = true;
            loop {
                let done = s.load(Ordering::SeqCst);
                let pids = p.lock().unwrap().clone();
                samples.sample(&pids, me, first);
                first = false;
                if done {
                    return samples;
                }
                std::thread::sleep(EVERY);
            }
        });
        Watch {
            stop,
            pids,
            sampler: Some(sampler),
            machine: MachineTicks::read(),
        }
    }

    /// Also samples the threads of process `pid` (a child the trial started), from now on.
    pub fn follow(&self, pid: u32) {
        self.pids.lock().unwrap().push(pid);
    }

    pub fn finish(mut self) -> Usage {
        let machine = self.machine.zip(MachineTicks::read());
        self.stop.store(true, Ordering::SeqCst);
        let h = self.sampler.take().expect("finished once");
        let mut usage = h.join().expect("the sampler does not panic").usage();
        let me = std::process::id();
        // Followed processes' CPU time, from their threads' samples.
        let children: Duration = usage
            .threads
            .iter()
            .filter(|t| t.pid != me)
            .map(|t| t.ran)
            .sum();
        usage.others = machine.and_then(|(a, b)| {
            let total = b.total.checked_sub(a.total).filter(|&t| t > 0)? as f64;
            let ours = (b.own - a.own) as f64 + children.as_secs_f64() * clock_ticks();
            let others = b.busy.saturating_sub(a.busy) as f64 - ours;
            Some((others / total).clamp(0.0, 1.0))
        });
        usage
    }
}

/// What the watched threads got, and what other processes took.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    pub threads: Vec<ThreadUsage>,
    /// The share of the machine's CPU time (all cores) that other processes used meanwhile.
    pub others: Option<f64>,
}

impl Usage {
    /// Of the time the threads wanted a CPU, the share they spent waiting for one.
    pub fn waited_share(&self) -> f64 {
        let ran: Duration = self.threads.iter().map(|t| t.ran).sum();
        let waited: Duration = self.threads.iter().map(|t| t.waited).sum();
        let wanted = (ran + waited).as_secs_f64();
        if wanted > 0.0 {
            waited.as_secs_f64() / wanted
        } else {
            0.0
        }
    }

    /// The threads of process `pid`, by name (`pid`'s own main thread has `tid == pid`).
    pub fn of(&self, pid: u32) -> impl Iterator<Item = &ThreadUsage> {
        self.threads.iter().filter(move |t| t.pid == pid)
    }

    /// Whether other processes took a large share of the machine while the threads were kept
    /// waiting for a CPU a large share of the time they wanted one: they may not have had
    /// the CPU their phenomenon needs. (Others using cores the threads left idle starve no
    /// one; threads waiting for each other on a machine left to them is the scenario's own.)
    pub fn starved(&self) -> bool {
        self.others.is_some_and(|o| o > STARVED) && self.waited_share() > STARVED_WAIT
    }

    /// One line: what others took, the waited share, and the threads kept waiting longest.
    pub fn describe(&self) -> String {
        let mut worst: Vec<&ThreadUsage> = self.threads.iter().collect();
        worst.sort_by_key(|t| std::cmp::Reverse(t.waited));
        let names: Vec<String> = worst
            .iter()
            .take(4)
            .map(|t| {
                format!(
                    "{} ran {:.0} ms, waited {:.0} ms",
                    t.name,
                    t.ran.as_secs_f64() * 1e3,
                    t.waited.as_secs_f64() * 1e3
                )
            })
            .collect();
        let others = match self.others {
            Some(o) => format!(
                "other processes used {:.0}% of the machine's CPU time",
                o * 100.0
            ),
            None => "what other processes used is unknown (no /proc/stat)".to_owned(),
        };
        format!(
            "{others}; the OS kept the threads waiting for a CPU {:.0}% of the time they wanted one ({})",
            self.waited_share() * 100.0,
            names.join("; ")
        )
    }
}

/// Above this share of the machine's CPU time taken by other processes (half a core of two),
/// and ...
pub const STARVED: f64 = 0.25;

/// ... this share of their wanted time kept waiting for a CPU, a trial's threads were starved.
/// Measured here: a convoy run's threads wait 8-16% for each other with the machine to
/// themselves; beside two busy loops, or other builds, 70-95%.
pub const STARVED_WAIT: f64 = 0.10;

/// Attempts before a starved trial is given up.
pub const ATTEMPTS: usize = 3;

/// Runs `trial` (which measures a timing phenomenon and says why it did not show) and judges
/// it by what the OS gave its threads: it passes when an attempt shows the phenomenon and fails
/// when one does not although its threads were served; an attempt that fails while the
/// machine starved its threads is repeated (at most [`ATTEMPTS`] in all, each said on stderr),
/// and when every attempt was starved the test says that it checked nothing, and why.
pub fn unless_starved(test: &str, mut trial: impl FnMut(&Watch) -> Result<(), String>) {
    for attempt in 1..=ATTEMPTS {
        let watch = Watch::start();
        let outcome = trial(&watch);
        let usage = watch.finish();
        let Err(why) = outcome else {
            eprintln!(
                "note: {test}: shown in attempt {attempt}; {}",
                usage.describe()
            );
            return;
        };
        if !usage.starved() {
            panic!("{why}; {}", usage.describe());
        }
        eprintln!(
            "note: {test}: attempt {attempt} of {ATTEMPTS} did not show it ({why}), but {}",
            usage.describe()
        );
        // A burst of other work may pass.
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "note: {test}: NOT CHECKED: the machine starved the threads in all {ATTEMPTS} attempts (other processes used more than {:.0}% of its CPU time), so the phenomenon could not show",
        STARVED * 100.0
    );
}

/// The calling thread's id.
pub fn own_tid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// Time thread `tid` of this process has been runnable so far, on a CPU or waiting for one
/// (`/proc/self/task/TID/schedstat`), if that can be read.
pub fn runnable_time_of(tid: u32) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let mut f = s.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some(Duration::from_nanos(f.next()?? + f.next()??))
}
