//! `gilbench calibrate`: the `timed` model held against CPython on this machine, with the same
//! client.
//!
//! For each condition (the scenario with one value of every listed key), and each repetition,
//! the Python twin (`workloads/python/twin.py`, embedded in the binary and run with `python
//! -c`) and gilbench's `timed` model run the same server structure, CPU threads, switch
//! interval and pinning, one after the other, each driven by gilbench's own load generator
//! (for the twin: in this process, over loopback, placed as the runner would place it). When
//! the condition has CPU threads, each side also runs them alone (no server, a second at
//! most), for the CPU throughput kept.
//!
//! A bulk scenario (`io = "bulk"`) is calibrated on what a transfer means instead: the time
//! it took, the bytes received per second, the CPU throughput kept and the context switches
//! during it, and its slowdown against the same condition without CPU threads; both sides
//! measure the transfer whole (no warm-up), and a transfer the run's end cuts short counts
//! with the bytes it received.
//!
//! Per request, the *intervals waited* is `round(latency / interval)` of its client-side
//! round trip (0 when it did not wait for a CPU thread at all, 1 for one switch interval,
//! ...): the same client measures both sides, so the buckets are comparable whatever the
//! server does inside. The table shows each side's medians over the repetitions, their ratio
//! (gilbench / CPython), the bucket differences in percentage points, and whether the model
//! is within the fidelity goals (req/s and p50 within 25%, every bucket within 10 points).

mod coldstart;
mod conditions;
mod fit;
mod run;
mod samples;
mod table;
mod twin;

pub use coldstart::{
    cold_start, cold_start_note, model_cold_start, parse_cold_start, ColdStart, COLD_START,
};
pub use conditions::{check, conditions, Condition, MIRRORED};
pub use fit::{
    fit, resummarize, suggest_call_work, Calibration, CondResult, Fit, GOAL_POINTS, GOAL_RATIO,
};
pub use run::{execute, load_average, machine, Outcome, Plan, Step};
pub use samples::{median_sample, model_sample, twin_sample, waited, Bulk, Sample, Usage};
pub use table::{csv, is_bulk, markdown, table, text, BULK_CSV_HEADER, CSV_HEADER};
pub use twin::{
    find_python, parse_report, run_twin, twin_args, twin_result, Python, TwinCpu, TwinCtx,
    TwinCtxPair, TwinReport, TwinRun, TwinServer, TWIN,
};
