//! CPU-bound workloads: `cpu-hash` (ticks with the GIL held) and `hash-nogil` (large buffers
//! hashed with the GIL released, as CPython's hashlib does for inputs of 2048 bytes or more).

use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};

use super::{make_blob, Fault, TickHasher, WorkCtx};
use crate::gil::Gil;
use crate::interp::Interp;

/// Ticks after which an injected fault fires.
const FAULT_AFTER_TICKS: u64 = 20_000;

/// Ticks between two heartbeats (and stop checks) of a long stretch of GIL-held work.
const HEARTBEAT_TICKS: u64 = 4096;

/// Runs `n` ticks under the GIL with an eval-breaker check after each; a long stretch stops
/// early when the run is over, so no request or `call_work` can outlive the run.
#[inline]
pub fn run_ticks<G: Gil>(interp: &mut Interp<'_, G>, h: &mut TickHasher, n: u64) {
    for i in 1..=n {
        h.tick();
        interp.metrics.counters.ticks += 1;
        interp.check();
        if i.is_multiple_of(HEARTBEAT_TICKS) {
            interp.heartbeat();
            if interp.stopped() {
                return;
            }
        }
    }
}

/// `cpu-hash`: takes the GIL and hashes tick by tick until the run stops. Never releases the
/// GIL on its own; only the design's eval-breaker makes it drop.
pub fn cpu_hash<G: Gil>(interp: &mut Interp<'_, G>, h: &mut TickHasher, ctx: &WorkCtx<'_>) {
    interp.take();
    let mut ticks = 0u64;
    let batch_bytes = HEARTBEAT_TICKS * h.tick_bytes() as u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        h.tick();
        ticks += 1;
        interp.check();
        if ticks.is_multiple_of(HEARTBEAT_TICKS) {
            // Counted a batch at a time, before the heartbeat: the heartbeat is where the end
            // of the warm-up resets the counters.
            interp.metrics.counters.ticks += HEARTBEAT_TICKS;
            interp.metrics.counters.bytes += batch_bytes;
            interp.heartbeat();
            if ctx.fault.is_some() && ticks == FAULT_AFTER_TICKS / HEARTBEAT_TICKS * HEARTBEAT_TICKS
            {
                inject(interp, ctx.fault);
            }
        }
    }
    let rest = ticks % HEARTBEAT_TICKS;
    interp.metrics.counters.ticks += rest;
    interp.metrics.counters.bytes += rest * h.tick_bytes() as u64;
}

/// `hash-nogil`: hashes `buffer_bytes` at a time with the GIL released around each buffer,
/// followed by `call_work` ticks under the GIL. Returns the xor of all buffer digests, hex.
pub fn hash_nogil<G: Gil>(
    interp: &mut Interp<'_, G>,
    h: &mut TickHasher,
    ctx: &WorkCtx<'_>,
    buffer_bytes: usize,
    seed: u64,
) -> String {
    let buf = make_blob(buffer_bytes, seed);
    let mut acc = [0u8; 32];
    interp.take();
    let mut calls = 0u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        let d = interp.allow_threads(|| Sha256::digest(&buf));
        for (a, b) in acc.iter_mut().zip(d.iter()) {
            *a ^= b;
        }
        calls += 1;
        interp.metrics.counters.bytes += buffer_bytes as u64;
        run_ticks(interp, h, ctx.call_work_ticks);
        if ctx.fault.is_some() && calls == 3 {
            inject(interp, ctx.fault);
        }
    }
    interp.metrics.counters.bytes += interp.metrics.counters.ticks * h.tick_bytes() as u64;
    super::hex(&acc)
}

#[cold]
fn inject<G: Gil>(interp: &mut Interp<'_, G>, fault: Option<Fault>) {
    match fault {
        Some(Fault::PanicHoldingGil) => panic!("injected fault: panic while holding the GIL"),
        Some(Fault::PanicReleased) => {
            interp.allow_threads(|| panic!("injected fault: panic with the GIL released"));
        }
        Some(Fault::HangHoldingGil) => loop {
            // Holds the GIL and makes no progress, deaf to the stop flag: only the watchdog
            // can end this run.
            std::thread::sleep(std::time::Duration::from_millis(10));
        },
        None => {}
    }
}
