//! SIGINT/SIGTERM/SIGHUP: a run stops early (within a second, whatever phase it is in),
//! keeps what it measured (marked partial), and the process exits 130 / 143 / 129 after
//! writing its outputs. A second signal ends the process at once.

use std::sync::atomic::{AtomicI32, Ordering};

static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only an atomic swap and, for a second signal, `_exit`: both async-signal-safe.
    if CAUGHT.swap(sig, Ordering::SeqCst) != 0 {
        // SAFETY: `_exit` is async-signal-safe and ends the process without running any
        // user-space code (no destructors, no atexit handlers, no stdio flushing).
        unsafe { libc::_exit(128 + sig) };
    }
}

/// Installs the handlers (idempotent).
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `on_signal` is an `extern "C" fn(c_int)` that only performs an atomic swap
        // and possibly `_exit`, both async-signal-safe; replacing the default disposition of
        // SIGINT/SIGTERM/SIGHUP has no other effect on the process.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// The signal that asked the process to stop, if any.
pub fn caught() -> Option<i32> {
    match CAUGHT.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The exit status for a process stopped by `sig` (128 + signal number).
pub fn exit_status(sig: i32) -> u8 {
    (128 + sig).clamp(0, 255) as u8
}

/// The signal's name.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
