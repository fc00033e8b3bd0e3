//! Out of memory ends in one line and exit status 1, not an abort (status 134) with Rust's
//! "memory allocation of N bytes failed": under `ulimit -v` a run with many threads can
//! run out of address space (each thread's stack, glibc's per-thread arenas). Stable Rust
//! has no hook for a failed allocation, so the allocator itself reports it: the system
//! allocator, with a check of what it returns.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// The system allocator; a failed allocation ends the process (see the module).
pub struct ExitOnOom;

/// Writes "gilbench: out of memory ..." and ends the process with status 1, without
/// allocating (the number is formatted on the stack) and without unwinding.
fn out_of_memory(size: usize) -> ! {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = size;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    exit_saying(&[
        b"gilbench: out of memory: an allocation of ",
        &digits[i..],
        b" bytes failed",
        TOO_LOW,
    ])
}

const TOO_LOW: &[u8] =
    b" (the memory or address-space limit, ulimit -v, is too low for this run)\n";

/// How the standard library's panic begins when a thread it just started cannot map its
/// signal stack (`std::sys::pal::unix::stack_overflow`). It is raised in the new thread
/// before any frame that could catch it, so it cannot unwind: the process aborts (status 134,
/// "failed to initiate panic, error 5") unless the panic hook ends it first.
const NO_SIGNAL_STACK: &str = "failed to allocate an alternative stack";

/// Ends the process as [`out_of_memory`] does when a panic (its message `msg`) is the
/// standard library's failure to map a new thread's signal stack; returns otherwise. For the
/// panic hook, which runs before the unwinding that would abort.
pub fn exit_if_no_signal_stack(msg: &str) {
    if msg.starts_with(NO_SIGNAL_STACK) {
        exit_saying(&[
            b"gilbench: out of memory: a thread could not map its signal stack",
            TOO_LOW,
        ]);
    }
}

/// Writes `parts` (one line) to stderr and ends the process with status 1, without allocating
/// and without unwinding.
fn exit_saying(parts: &[&[u8]]) -> ! {
    // Another thread that runs out too waits for the first one's exit: one line.
    static REPORTED: AtomicBool = AtomicBool::new(false);
    if REPORTED.swap(true, Ordering::SeqCst) {
        loop {
            // SAFETY: pause only suspends this thread until a signal; the first caller's
            // `_exit` ends the process meanwhile.
            unsafe { libc::pause() };
        }
    }
    for p in parts {
        // SAFETY: writes `p.len()` bytes from a live slice to stderr; no memory is allocated.
        unsafe { libc::write(2, p.as_ptr().cast(), p.len()) };
    }
    // SAFETY: `_exit` ends the process at once; it needs no memory and runs no user code.
    unsafe { libc::_exit(1) }
}

// SAFETY: every call is passed to `System` unchanged, which upholds GlobalAlloc's contract;
// a null result, instead of being returned, ends the process.
unsafe impl GlobalAlloc for ExitOnOom {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, which `System.alloc` shares.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `realloc`'s contract; `ptr` came from `System`.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            out_of_memory(new_size);
        }
        p
    }
}
