//! CPU accounting of durable commits, for the benchmarks only: the CPU a thread spends making
//! something durable (the archive's commits; a host's box-state and meter writes), read from its
//! thread CPU clock and summed over the process, so that a benchmark can report CPU per
//! operation without the durable commit as well as with it.
//!
//! Compiled in only with the `metrics` feature (the `postkey` binary's `bench` feature turns it
//! on); without it [`durable`] is the write itself, with no clock read and no shared counter.

#[cfg(feature = "metrics")]
mod counting {
    use std::sync::atomic::{AtomicU64, Ordering};

    use rustix::time::{ClockId, Timespec, clock_gettime};

    static DURABLE_CPU_NANOS: AtomicU64 = AtomicU64::new(0);

    fn nanos(t: Timespec) -> u64 {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
    }

    /// Runs a durable write and adds the CPU time this thread spent in it (user and kernel:
    /// writing, syncing, renaming) to the process's count. Only for work done on the calling
    /// thread: not around an `await`.
    pub fn durable<T>(write: impl FnOnce() -> T) -> T {
        let start = nanos(clock_gettime(ClockId::ThreadCPUTime));
        let out = write();
        let spent = nanos(clock_gettime(ClockId::ThreadCPUTime)).saturating_sub(start);
        DURABLE_CPU_NANOS.fetch_add(spent, Ordering::Relaxed);
        out
    }

    /// The CPU time spent in [`durable`] so far, by every thread, in seconds.
    pub fn durable_cpu_seconds() -> f64 {
        DURABLE_CPU_NANOS.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// This process's CPU time (user and system, every thread), in seconds.
    pub fn process_cpu_seconds() -> f64 {
        nanos(clock_gettime(ClockId::ProcessCPUTime)) as f64 / 1e9
    }
}

#[cfg(feature = "metrics")]
pub use counting::{durable, durable_cpu_seconds, process_cpu_seconds};

/// Runs a durable write (counted only in a build with the `metrics` feature).
#[cfg(not(feature = "metrics"))]
#[inline(always)]
pub fn durable<T>(write: impl FnOnce() -> T) -> T {
    write()
}
