//! SIGINT/SIGTERM/SIGHUP: a run stops early (within a second, whatever phase it is in),
//! keeps what it measured (marked partial), and the process exits 130 / 143 / 129 after
//! writing its outputs. A second signal ends the process at once, with 128 + that signal.
//!
//! The handlers are registered through `signal-hook` (its registry chains them with any
//! other handler and keeps `SA_RESTART`). Each is one atomic swap rather than `signal-hook`'s
//! ready-made flag actions: a "shutdown if armed" action followed by an "arm" action leaves a
//! window where two signals handled at once on two threads (the handlers do not mask each
//! other) both find the shutdown unarmed and the process ignores the second; a swap lets
//! exactly one of them be the first.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::low_level;

/// The signals that stop a run.
const STOPPING: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// The first signal caught (0: none yet).
static CAUGHT: AtomicI32 = AtomicI32::new(0);

/// Installs the handlers (idempotent). A handler that cannot be installed is reported on
/// stderr; that signal then keeps its default action (it ends the process at once).
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for sig in STOPPING {
            if let Err(e) = register(sig) {
                eprintln!("gilbench: warning: cannot catch {}: {e}", name(sig));
            }
        }
    });
}

fn register(sig: i32) -> std::io::Result<()> {
    let status = i32::from(exit_status(sig));
    let on_signal = move || {
        if CAUGHT.swap(sig, Ordering::SeqCst) != 0 {
            low_level::exit(status);
        }
    };
    // SAFETY: the action only performs an atomic swap and possibly `_exit` (through
    // `low_level::exit`), both async-signal-safe: it neither allocates nor takes a lock.
    unsafe { low_level::register(sig, on_signal) }?;
    Ok(())
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
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
