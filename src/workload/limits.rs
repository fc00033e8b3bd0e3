//! The machine's limits that decide how many connections a run can hold: open file
//! descriptors (RLIMIT_NOFILE) and the listen backlog (net.core.somaxconn).

/// This process's soft limit on open file descriptors.
pub fn nofile() -> Option<u64> {
    rlimit().map(|(soft, _)| soft)
}

fn rlimit() -> Option<(u64, u64)> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the live struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return None;
    }
    Some((l.rlim_cur, l.rlim_max))
}

/// Makes room for `needed` open file descriptors: raises the soft limit toward the hard one
/// if it is lower. Returns the soft limit in force afterwards (`None`: unknown).
pub fn ensure_nofile(needed: u64) -> Option<u64> {
    let (soft, hard) = rlimit()?;
    if soft >= needed {
        return Some(soft);
    }
    let want = needed.min(hard);
    if want > soft {
        let l = libc::rlimit {
            rlim_cur: want as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: setrlimit reads one live rlimit struct; raising the soft limit up to the
        // hard one needs no privilege and affects only this process.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) };
    }
    nofile()
}

/// The kernel's cap on a listen backlog (net.core.somaxconn), if it can be read.
pub fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}
