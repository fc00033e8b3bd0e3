//! gilbench: interpreter-lock (GIL) designs re-created on real, pinned OS threads, running
//! real work (SHA-256, sockets), measured with HDR histograms.
//!
//! * [`gil`]: the designs behind one trait, listed once in its `designs!` registry
//!   (`gilbench locks` prints them).
//! * [`interp`]: interpreter threads: take/release with measurements, the eval-breaker
//!   check, the release guard around blocking work.
//! * [`workload`]: what the threads do.
//! * [`scenario`], [`runner`], [`result`], [`report`]: scenario files in, results out.

pub mod calibrate;
pub mod clock;
pub mod experiment;
pub mod gil;
pub mod holdlog;
pub mod input;
pub mod interp;
pub mod metrics;
pub mod output;
pub mod pin;
pub mod report;
pub mod result;
pub mod runner;
pub mod scenario;
pub mod signals;
pub mod stall;
pub mod stats;
pub(crate) mod sync;
pub mod trace;
pub mod units;
pub mod workload;
