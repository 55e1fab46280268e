//! **Test doubles only: never give one of these to a box outside tests.** Entropy sources that
//! misbehave on purpose, a reproducible source, and fault injection into a [`BoxRng`], for this
//! crate's tests and for the tests of the crates above it (protocol §4.1: "tests inject a failing
//! source").

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::box_rng::BoxRng;
use super::drbg::HmacDrbg;
use super::source::{EntropySource, SourceError};

/// Test double: always the same byte. Trips the Repetition Count Test within six bytes.
#[derive(Debug, Clone, Copy)]
pub struct StuckSource(pub u8);

impl EntropySource for StuckSource {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), SourceError> {
        out.fill(self.0);
        Ok(())
    }
}

/// Test double: always fails. It first scribbles `0xFF` over the buffer, as a broken driver
/// might, so a generator that used the bytes of a failed call would be caught by tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct FailingSource;

impl EntropySource for FailingSource {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), SourceError> {
        out.fill(0xFF);
        Err(SourceError::Unavailable("failing test source"))
    }
}

/// Test double: one byte value with probability about 1/4 but never more than twice in a row,
/// the rest spread over the other 255 values. Trips the Adaptive Proportion Test (expected 128
/// of 512 where 20 alarm) within a few windows, and never the Repetition Count Test by the
/// favoured value. Deterministic for a given seed.
#[derive(Debug)]
pub struct BiasedSource {
    favoured: u8,
    run: u8,
    coins: HmacDrbg,
}

impl BiasedSource {
    /// A source favouring `favoured`, reproducible from `seed`.
    pub fn new(favoured: u8, seed: u64) -> Self {
        let mut entropy = [0u8; 32];
        entropy[..8].copy_from_slice(&seed.to_be_bytes());
        // Our own DRBG as the coin: this crate carries no second generator, and a test double
        // needs no more than a reproducible stream.
        let coins = HmacDrbg::instantiate_unchecked(&entropy, b"biased", b"postkey test double");
        Self { favoured, run: 0, coins }
    }
}

impl EntropySource for BiasedSource {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), SourceError> {
        for byte in out.iter_mut() {
            let mut coin = [0u8; 2];
            self.coins
                .generate(&mut coin, &[])
                .map_err(|_| SourceError::Unavailable("biased test source exhausted"))?;
            if coin[0] < 64 && self.run < 2 {
                *byte = self.favoured;
                self.run += 1;
            } else {
                // Any value but the favoured one; the slight unevenness does not matter here.
                *byte = if coin[1] == self.favoured { coin[1].wrapping_add(1) } else { coin[1] };
                self.run = 0;
            }
        }
        Ok(())
    }
}

/// Test double: a reproducible source from any seeded `rand_core` generator, e.g.
/// `SeededSource(rand_chacha::ChaCha20Rng::seed_from_u64(7))`.
pub struct SeededSource<R>(pub R);

impl<R: rand_core::Rng> EntropySource for SeededSource<R> {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), SourceError> {
        self.0.fill_bytes(out);
        Ok(())
    }
}

impl<R> core::fmt::Debug for SeededSource<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SeededSource(..)")
    }
}

/// Test double: reads from `before` until its [`SourceSwitch`] is flipped, then from `after`.
/// Lets a test seed a box from a healthy source and break the source afterwards.
#[derive(Debug)]
pub struct SwitchedSource<A, B> {
    before: A,
    after: B,
    flipped: Arc<AtomicBool>,
}

/// The handle that flips a [`SwitchedSource`].
#[derive(Debug, Clone)]
pub struct SourceSwitch(Arc<AtomicBool>);

impl SourceSwitch {
    /// From now on the source reads from its `after` source.
    pub fn flip(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl<A, B> SwitchedSource<A, B> {
    /// The source and the handle that switches it.
    pub fn new(before: A, after: B) -> (Self, SourceSwitch) {
        let flipped = Arc::new(AtomicBool::new(false));
        (Self { before, after, flipped: Arc::clone(&flipped) }, SourceSwitch(flipped))
    }
}

impl<A: EntropySource, B: EntropySource> EntropySource for SwitchedSource<A, B> {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), SourceError> {
        if self.flipped.load(Ordering::SeqCst) {
            self.after.fill(out)
        } else {
            self.before.fill(out)
        }
    }
}

/// Fault injection: the DRBG stream of `rng` fails its health test at its next use, as if its
/// output had repeated one byte six times (which HMAC output does with probability 2^-40).
pub fn inject_drbg_health_fault(rng: &mut BoxRng) {
    rng.inject_drbg_health_fault();
}

/// Fault injection: the DRBG of `rng` reaches its limit of 2^48 requests between reseeds, so
/// its next use needs a reseed from the OS source.
pub fn inject_drbg_exhaustion(rng: &mut BoxRng) {
    rng.inject_drbg_exhaustion();
}
