//! Continuous health tests of NIST SP 800-90B §4.4 on bytes, one monitor per output stream.
//!
//! Both cutoffs are derived for a false-alarm probability α = 2^-40 assuming 8 bits of
//! min-entropy per byte; `docs/rng.md` gives the derivation. A monitor latches: after its first
//! alarm it reports failure for good, because a source that failed once is not trusted again
//! until the box is re-enabled (which builds a new monitor).

use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::error::HealthTest;

/// Repetition Count Test cutoff: alarm when one byte value occurs this many times in a row.
/// C = 1 + ⌈40 / 8⌉.
pub const RCT_CUTOFF: u32 = 6;
/// Adaptive Proportion Test window, in bytes (SP 800-90B's window for non-binary samples).
pub const APT_WINDOW: u32 = 512;
/// Adaptive Proportion Test cutoff: alarm when a window's first byte occurs this many times in
/// the window, itself included.
pub const APT_CUTOFF: u32 = 20;

/// The two tests over one stream. The last byte and the window's reference byte are output
/// bytes, so the monitor is zeroized on drop and compares them in constant time.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct HealthMonitor {
    /// The previous byte, and how many times in a row it has occurred.
    rct_last: u8,
    rct_run: u32,
    /// The current window's first byte, its count so far, and the window position.
    apt_reference: u8,
    apt_count: u32,
    apt_seen: u32,
    /// The first alarm, latched.
    #[zeroize(skip)]
    failure: Option<HealthTest>,
}

impl HealthMonitor {
    pub(crate) fn new() -> Self {
        Self { rct_last: 0, rct_run: 0, apt_reference: 0, apt_count: 0, apt_seen: 0, failure: None }
    }

    /// Tests `bytes` as the continuation of the stream. Returns the latched alarm, if the
    /// stream failed now or earlier.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<(), HealthTest> {
        if let Some(test) = self.failure {
            return Err(test);
        }
        for &byte in bytes {
            if let Err(test) = self.sample(byte) {
                self.failure = Some(test);
                return Err(test);
            }
        }
        Ok(())
    }

    /// Latches a failure found outside the tests (the source reported an error).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn fail(&mut self, test: HealthTest) {
        self.failure.get_or_insert(test);
    }

    /// The latched alarm, if any.
    #[cfg(test)]
    fn failure(&self) -> Option<HealthTest> {
        self.failure
    }

    fn sample(&mut self, byte: u8) -> Result<(), HealthTest> {
        // RCT (§4.4.1). The run starts at 0, so the very first byte makes it 1 whichever
        // value `rct_last` held.
        let same = byte.ct_eq(&self.rct_last);
        self.rct_run = u32::conditional_select(&1, &(self.rct_run + 1), same);
        self.rct_last = byte;
        if self.rct_run >= RCT_CUTOFF {
            return Err(HealthTest::RepetitionCount);
        }

        // APT (§4.4.2): the window position is public, the reference byte is not.
        if self.apt_seen == 0 {
            self.apt_reference = byte;
            self.apt_count = 1;
        } else {
            self.apt_count += u32::from(byte.ct_eq(&self.apt_reference).unwrap_u8());
        }
        self.apt_seen += 1;
        if self.apt_count >= APT_CUTOFF {
            return Err(HealthTest::AdaptiveProportion);
        }
        if self.apt_seen == APT_WINDOW {
            self.apt_seen = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that never equal `avoid` and never repeat: a filler that trips neither test.
    fn filler(avoid: u8) -> impl Iterator<Item = u8> {
        (0..=255u8).cycle().filter(move |b| *b != avoid)
    }

    /// A 512-byte window whose first byte `reference` occurs `count` times, never twice in a row.
    fn window(reference: u8, count: usize) -> Vec<u8> {
        let mut others = filler(reference);
        let mut w = Vec::with_capacity(APT_WINDOW as usize);
        for i in 0..APT_WINDOW as usize {
            let pick = if i % 2 == 0 && i / 2 < count { Some(reference) } else { others.next() };
            w.push(pick.unwrap_or(0));
        }
        w
    }

    #[test]
    fn rct_passes_five_repeats() {
        let mut m = HealthMonitor::new();
        assert_eq!(m.feed(&[1, 7, 7, 7, 7, 7, 2]), Ok(()));
    }

    #[test]
    fn rct_alarms_at_six_repeats() {
        let mut m = HealthMonitor::new();
        assert_eq!(m.feed(&[1, 7, 7, 7, 7, 7, 7]), Err(HealthTest::RepetitionCount));
    }

    #[test]
    fn rct_counts_runs_across_calls() {
        let mut m = HealthMonitor::new();
        assert_eq!(m.feed(&[9, 9, 9]), Ok(()));
        assert_eq!(m.feed(&[9, 9]), Ok(()));
        assert_eq!(m.feed(&[9]), Err(HealthTest::RepetitionCount));
    }

    #[test]
    fn rct_first_byte_zero_starts_a_run_of_one() {
        // The initial `rct_last` is 0: a leading zero must not count as a repeat of it.
        let mut m = HealthMonitor::new();
        assert_eq!(m.feed(&[0, 0, 0, 0, 0, 1]), Ok(()));
    }

    #[test]
    fn apt_passes_nineteen_in_a_window() {
        let mut m = HealthMonitor::new();
        let w = window(0xA5, 19);
        assert_eq!(w.iter().filter(|b| **b == 0xA5).count(), 19);
        assert_eq!(m.feed(&w), Ok(()));
    }

    #[test]
    fn apt_alarms_at_twenty_in_a_window() {
        let mut m = HealthMonitor::new();
        assert_eq!(m.feed(&window(0xA5, 20)), Err(HealthTest::AdaptiveProportion));
    }

    #[test]
    fn apt_alarms_on_the_last_byte_of_a_window_but_not_the_next() {
        let mut w = window(0x3C, 19);
        // Move the 20th occurrence to position 511 (the window's last byte): alarm.
        let mut m = HealthMonitor::new();
        w[511] = 0x3C;
        assert_eq!(m.feed(&w), Err(HealthTest::AdaptiveProportion));
        // Put it at position 512 instead: it belongs to the next window, which starts afresh.
        let mut m = HealthMonitor::new();
        w[511] = 0x01;
        assert_eq!(m.feed(&w), Ok(()));
        assert_eq!(m.feed(&[0x3C]), Ok(()));
    }

    #[test]
    fn apt_reference_is_each_windows_first_byte() {
        // 19 of A in window one, then a window opening with B: A no longer counts.
        let mut m = HealthMonitor::new();
        assert_eq!(m.feed(&window(0x11, 19)), Ok(()));
        assert_eq!(m.feed(&window(0x22, 19)), Ok(()));
        assert_eq!(m.feed(&window(0x11, 19)), Ok(()));
    }

    #[test]
    fn failure_latches() {
        let mut m = HealthMonitor::new();
        assert!(m.feed(&[5; 6]).is_err());
        assert_eq!(m.feed(&[1, 2, 3]), Err(HealthTest::RepetitionCount));
        assert_eq!(m.failure(), Some(HealthTest::RepetitionCount));
    }
}
