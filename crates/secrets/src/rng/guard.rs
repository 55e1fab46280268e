//! The bridge from our fallible generator to the infallible `rand_core` 0.10 traits that HPKE,
//! Ed25519 and Shamir splitting require.

use rand_core::{Infallible, TryCryptoRng, TryRng};
use zeroize::Zeroize;

use super::box_rng::BoxRng;
use super::error::RngError;

/// A [`BoxRng`] lent to a library that wants an infallible `rand_core::CryptoRng`.
///
/// A library cannot be told that randomness failed, so on the first failure this guard
/// zero-fills every later request and latches the error. **Contract:** the caller MUST call
/// [`finish`](Self::finish)`?` after the library returns and, if it errs, discard everything the
/// library produced (it was made from zeros). [`BoxRng::with_guard`] enforces this; prefer it.
///
/// Zeros could make a library that rejection-samples non-zero values loop; those this crate
/// lends the guard to (X25519/HPKE, Ed25519, GF(256) Shamir) draw fixed-size bytes and do not.
pub struct GuardedRng<'a> {
    rng: &'a mut BoxRng,
    failure: Option<RngError>,
}

impl<'a> GuardedRng<'a> {
    pub(super) fn new(rng: &'a mut BoxRng) -> Self {
        Self { rng, failure: None }
    }

    /// Ends the loan: `Err` if the generator failed at any point, in which case everything
    /// made with this guard must be discarded.
    #[must_use = "a failed generator means the library's output must be discarded"]
    pub fn finish(self) -> Result<(), RngError> {
        match self.failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn fill(&mut self, dst: &mut [u8]) {
        if self.failure.is_some() {
            dst.zeroize();
        } else if let Err(e) = self.rng.fill(dst) {
            // `BoxRng::fill` zeroes on failure; zero again so the guard's promise stands alone.
            dst.zeroize();
            self.failure = Some(e);
        }
    }
}

impl TryRng for GuardedRng<'_> {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0u8; 4];
        self.fill(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0u8; 8];
        self.fill(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.fill(dst);
        Ok(())
    }
}

impl TryCryptoRng for GuardedRng<'_> {}

impl core::fmt::Debug for GuardedRng<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GuardedRng")
            .field("rng", &self.rng)
            .field("failed", &self.failure.is_some())
            .finish()
    }
}
