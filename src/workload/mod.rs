//! The work interpreter threads do: SHA-256 hashing under or outside the GIL (`cpu`), the
//! socket servers (`server`, `threaded`), and the load generator outside every GIL
//! (`loadgen`). The plain choices a scenario makes about them ([`Transport`], [`ServerKind`],
//! [`Fault`]) are defined here, so that this layer never imports the scenario.

pub mod cpu;
mod kinds;
pub mod limits;
pub mod loadgen;
pub mod server;
pub mod threaded;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sha2::{Digest, Sha256};

pub use kinds::{Fault, ServerKind, Transport};

/// The largest UDP payload over IPv4 (65535 less the IP and UDP headers): a bigger request
/// cannot be sent at all.
pub const MAX_DATAGRAM: usize = 65_507;

/// Deterministic, incompressible-looking bytes (xorshift64*), so hashing works on real data.
pub fn make_blob(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The unit of GIL-held work: SHA-256 over the next `tick_bytes` of a private blob, fed into
/// a running hash whose digest is reported at the end (so nothing can be optimised away).
pub struct TickHasher {
    hasher: Sha256,
    blob: Vec<u8>,
    offset: usize,
    tick_bytes: usize,
}

impl TickHasher {
    pub fn new(tick_bytes: usize, seed: u64) -> Self {
        let len = (64 << 10).max(2 * tick_bytes);
        TickHasher {
            hasher: Sha256::new(),
            blob: make_blob(len, seed),
            offset: 0,
            tick_bytes,
        }
    }

    /// One tick of work.
    #[inline]
    pub fn tick(&mut self) {
        let end = self.offset + self.tick_bytes;
        self.hasher.update(&self.blob[self.offset..end]);
        self.offset = if end + self.tick_bytes > self.blob.len() {
            0
        } else {
            end
        };
    }

    pub fn tick_bytes(&self) -> usize {
        self.tick_bytes
    }

    /// The digest of everything hashed so far, as hex.
    pub fn finish(self) -> String {
        hex(&self.hasher.finalize())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Measures what one tick costs on this machine (nanoseconds), to turn `call_work` durations
/// into tick counts.
pub fn calibrate_tick_ns(tick_bytes: usize) -> f64 {
    let mut h = TickHasher::new(tick_bytes, 7);
    for _ in 0..2_000 {
        h.tick();
    }
    let n = 20_000u32;
    let t = Instant::now();
    for _ in 0..n {
        h.tick();
    }
    let per = t.elapsed().as_nanos() as f64 / f64::from(n);
    std::hint::black_box(h.finish());
    per.max(1.0)
}

/// Sets the run's `failed` flag if its thread unwinds, so the runner stops the run at once:
/// held for the whole life of every interpreter thread, the runner's and the connection
/// threads a `threaded` server starts.
pub(crate) struct PanicFlag<'a>(pub(crate) &'a AtomicBool);

impl Drop for PanicFlag<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

/// What every workload loop needs besides its GIL handle.
pub struct WorkCtx<'a> {
    /// Set by the runner when the run is over.
    pub stop: &'a AtomicBool,
    /// Ticks of GIL-held work after every blocking or native call (`call_work`).
    pub call_work_ticks: u64,
    /// A fault to inject in this thread, if any.
    pub fault: Option<Fault>,
}
