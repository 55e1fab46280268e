//! The box generator: the OS stream XOR the DRBG stream, each health-tested, degrading to one
//! stream with an alarm and refusing when both have failed.

use zeroize::{Zeroize, Zeroizing};

use super::drbg::{DrbgState, HmacDrbg};
use super::error::{HealthTest, RngAlarm, RngError};
use super::guard::GuardedRng;
use super::health::HealthMonitor;
use super::source::{EntropySource, SourceError};

/// Bytes per step of [`BoxRng::fill`]: the largest DRBG request.
const CHUNK: usize = 1 << 16;
/// Entropy input for instantiation and each reseed: the 256-bit security strength.
const ENTROPY_LEN: usize = 32;
/// The instantiation nonce: half the security strength (SP 800-90A §8.6.7).
const NONCE_LEN: usize = 16;

/// The random number generator of one box (protocol §4.1). Its output is the OS entropy stream XOR
/// an HMAC_DRBG stream; each stream has its own health monitor.
///
/// - A failed OS stream (source error or health alarm) is dropped: output is the DRBG alone.
/// - A failed DRBG stream (health alarm, or a reseed the OS could not give) is dropped: output
///   is the OS stream alone.
/// - Each such failure queues one [`RngAlarm`] for the error log ([`take_alarms`](Self::take_alarms))
///   and latches until the box is re-enabled, which builds a new `BoxRng` with
///   [`restore`](Self::restore).
/// - Both failed: [`fill`](Self::fill) zeroes its buffer and returns
///   [`RngError::BothSourcesFailed`].
pub struct BoxRng {
    os: OsStream,
    drbg: HmacDrbg,
    drbg_health: HealthMonitor,
    drbg_failed: bool,
    alarms: Vec<RngAlarm>,
}

impl BoxRng {
    /// At box initialization: seeds a new DRBG from the OS source (32 bytes of entropy and a
    /// 16-byte nonce, both health-tested). `personalization` should make this box's
    /// instantiation unique even if the OS source were weak, e.g. the box ID and the time.
    pub fn instantiate(
        os: impl EntropySource + Send + Sync + 'static,
        personalization: &[u8],
    ) -> Result<Self, RngError> {
        let mut os = OsStream::new(Box::new(os));
        let mut seed = Zeroizing::new([0u8; ENTROPY_LEN + NONCE_LEN]);
        // No box exists yet to log an alarm: the error itself reports the failure.
        os.draw(&mut seed[..], &mut Vec::new()).map_err(OsFailure::seed_error)?;
        let (entropy, nonce) = seed.split_at(ENTROPY_LEN);
        let drbg = HmacDrbg::instantiate(entropy, nonce, personalization)?;
        Ok(Self::assemble(os, drbg))
    }

    /// When the box is enabled: resumes the DRBG from the sealed state and reseeds it from the
    /// OS source at once, so a state restored twice never replays its stream.
    ///
    /// `enable_context` must be unique to this enabling (the runtime passes the box ID, the new
    /// state version and the time). It goes into the reseed as additional input; and if the OS
    /// source has failed, the box goes on with the DRBG alone (protocol §4.1) with an alarm queued,
    /// and the context alone moves the DRBG off the sealed state, so that two enablings of one
    /// restored state still never share a stream. An empty context is refused in that case.
    pub fn restore(
        state: DrbgState,
        os: impl EntropySource + Send + Sync + 'static,
        enable_context: &[u8],
    ) -> Result<Self, RngError> {
        let mut rng = Self::assemble(OsStream::new(Box::new(os)), HmacDrbg::from_state(state));
        if rng.reseed(enable_context).is_err() {
            if enable_context.is_empty() {
                return Err(RngError::EnableContextMissing);
            }
            rng.drbg.mix(enable_context)?;
        }
        Ok(rng)
    }

    /// The DRBG's working state, to be written into the sealed state. Export it after the
    /// last use before sealing, so the next [`restore`](Self::restore) starts beyond it.
    pub fn state(&self) -> DrbgState {
        self.drbg.state()
    }

    /// Reseeds the DRBG with 32 fresh bytes of the OS stream and optional additional input.
    /// Fails, leaving the DRBG as it was, if the OS stream has failed.
    pub fn reseed(&mut self, additional: &[u8]) -> Result<(), RngError> {
        let mut entropy = Zeroizing::new([0u8; ENTROPY_LEN]);
        self.os.draw(&mut entropy[..], &mut self.alarms).map_err(OsFailure::seed_error)?;
        self.drbg.reseed(&entropy[..], additional)
    }

    /// Fills `out` with random bytes: OS XOR DRBG, or the one healthy stream with an alarm.
    /// If both streams have failed, `out` is zeroed and the box must not make keys.
    pub fn fill(&mut self, out: &mut [u8]) -> Result<(), RngError> {
        if self.os.failure.is_some() && self.drbg_failed {
            out.zeroize();
            return Err(RngError::BothSourcesFailed);
        }
        let len = out.len();
        let mut os_bytes = Zeroizing::new(vec![0u8; len.min(CHUNK)]);
        for start in (0..len).step_by(CHUNK) {
            let chunk = &mut out[start..(start + CHUNK).min(len)];
            let os_part = &mut os_bytes[..chunk.len()];
            let os_ok = self.os.draw(os_part, &mut self.alarms).is_ok();
            let drbg_ok = self.draw_drbg(chunk);
            match (os_ok, drbg_ok) {
                (true, true) => chunk.iter_mut().zip(os_part.iter()).for_each(|(o, s)| *o ^= s),
                (true, false) => chunk.copy_from_slice(os_part),
                // `chunk` already holds the DRBG stream, and nothing of the dead source.
                (false, true) => {}
                (false, false) => {
                    // Earlier chunks are not usable alone either: the caller gets nothing.
                    out.zeroize();
                    return Err(RngError::BothSourcesFailed);
                }
            }
        }
        Ok(())
    }

    /// The alarms raised since the last call, oldest first, for the box's error log.
    pub fn take_alarms(&mut self) -> Vec<RngAlarm> {
        std::mem::take(&mut self.alarms)
    }

    /// Lends the generator to a library as an infallible `rand_core::CryptoRng`. The caller
    /// must call [`GuardedRng::finish`] and discard what the library produced if it fails;
    /// prefer [`with_guard`](Self::with_guard), which does both.
    pub fn guard(&mut self) -> GuardedRng<'_> {
        GuardedRng::new(self)
    }

    /// Runs `f` with the generator as an infallible `rand_core::CryptoRng` and returns its
    /// result only if the generator never failed meanwhile; otherwise the result is dropped.
    pub fn with_guard<T>(
        &mut self,
        f: impl FnOnce(&mut GuardedRng<'_>) -> T,
    ) -> Result<T, RngError> {
        let mut guard = self.guard();
        let made = f(&mut guard);
        guard.finish()?;
        Ok(made)
    }

    /// Fault injection for [`testing`](super::testing): the DRBG stream's monitor alarms at its
    /// next use, as if its output had repeated one byte six times.
    #[cfg(any(test, feature = "testing"))]
    pub(super) fn inject_drbg_health_fault(&mut self) {
        self.drbg_health.fail(HealthTest::RepetitionCount);
    }

    /// Fault injection for [`testing`](super::testing): the DRBG reaches its reseed limit.
    #[cfg(any(test, feature = "testing"))]
    pub(super) fn inject_drbg_exhaustion(&mut self) {
        self.drbg.exhaust();
    }

    fn assemble(os: OsStream, drbg: HmacDrbg) -> Self {
        Self { os, drbg, drbg_health: HealthMonitor::new(), drbg_failed: false, alarms: Vec::new() }
    }

    /// Fills `out` with the DRBG stream, reseeding from the OS when the DRBG asks for it.
    /// Returns false, with `out` zeroed, if the DRBG stream has failed (now or earlier).
    fn draw_drbg(&mut self, out: &mut [u8]) -> bool {
        if self.drbg_failed {
            out.zeroize();
            return false;
        }
        let generated = match self.drbg.generate(out, &[]) {
            Err(RngError::ReseedRequired) => {
                self.reseed(&[]).and_then(|()| self.drbg.generate(out, &[]))
            }
            other => other,
        };
        let alarm = match generated {
            Err(e) => RngAlarm::DrbgFailed(e),
            Ok(()) => match self.drbg_health.feed(out) {
                Ok(()) => return true,
                Err(test) => RngAlarm::DrbgHealthFailed(test),
            },
        };
        out.zeroize();
        self.drbg_failed = true;
        self.alarms.push(alarm);
        false
    }
}

impl core::fmt::Debug for BoxRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BoxRng")
            .field("drbg", &format_args!("[redacted]"))
            .field("os_failed", &self.os.failure.is_some())
            .field("drbg_failed", &self.drbg_failed)
            .field("pending_alarms", &self.alarms.len())
            .finish()
    }
}

/// Why the OS stream was dropped.
#[derive(Clone, Copy)]
enum OsFailure {
    Source(SourceError),
    Health(HealthTest),
}

impl OsFailure {
    fn alarm(self) -> RngAlarm {
        match self {
            Self::Source(e) => RngAlarm::OsSourceFailed(e),
            Self::Health(test) => RngAlarm::OsHealthFailed(test),
        }
    }

    fn seed_error(self) -> RngError {
        match self {
            Self::Source(e) => RngError::SeedSourceFailed(e),
            Self::Health(test) => RngError::SeedSourceUnhealthy(test),
        }
    }
}

/// The OS source with its monitor. Every byte drawn, seed material included, is tested.
struct OsStream {
    source: Box<dyn EntropySource + Send + Sync>,
    health: HealthMonitor,
    failure: Option<OsFailure>,
}

impl OsStream {
    fn new(source: Box<dyn EntropySource + Send + Sync>) -> Self {
        Self { source, health: HealthMonitor::new(), failure: None }
    }

    /// Fills `buf` with tested OS bytes. On failure, now or latched, `buf` is zeroed (so
    /// whatever a failing source scribbled is never used), and the first failure queues an alarm.
    fn draw(&mut self, buf: &mut [u8], alarms: &mut Vec<RngAlarm>) -> Result<(), OsFailure> {
        let failure = match self.failure {
            Some(failure) => failure,
            None => {
                let tested = match self.source.fill(buf) {
                    Err(e) => Err(OsFailure::Source(e)),
                    Ok(()) => self.health.feed(buf).map_err(OsFailure::Health),
                };
                let Err(failure) = tested else { return Ok(()) };
                self.failure = Some(failure);
                alarms.push(failure.alarm());
                failure
            }
        };
        buf.zeroize();
        Err(failure)
    }
}
