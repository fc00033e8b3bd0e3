//! `none`: no GIL at all, as free-threaded Python (PEP 703) promises.
//!
//! # Fairness
//! Nothing to be fair about: every thread runs whenever the OS schedules it. Take and
//! release are no-ops and the eval-breaker check always says "carry on".

use super::{Gil, GilParams, Release};

/// The absent GIL.
#[derive(Debug, Default)]
pub struct NoGil;

impl Gil for NoGil {
    type Thread = ();
    const NAME: &'static str = "none";
    /// Nothing to release.
    const RELEASE_WAITS: bool = false;
    const EXCLUSIVE: bool = false;
    const MODELS: &'static str =
        "free-threaded Python: no GIL at all, take and release are no-ops";
    const SOURCE: &'static str = "PEP 703 (CPython's free-threaded build)";
    const YEAR: &'static str = "2023";

    fn new(_p: &GilParams) -> Self {
        NoGil
    }

    fn register(&self) {}

    #[inline]
    fn take(&self, _t: &mut ()) {}

    #[inline]
    fn release(&self, _t: &mut (), _why: Release) {}

    #[inline(always)]
    fn check(&self, _t: &mut ()) -> bool {
        false
    }
}
