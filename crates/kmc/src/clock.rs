//! The KMS clock (docs/installation.md, "KMS times"): the times the KMC writes into the archive
//! never go backwards, whatever the host's wall clock does.
//!
//! A run starts from the latest time the archive recorded. A wall clock behind it by at most
//! [`MAX_STEP_BACK_MICROS`] (an NTP correction, a VM resumed) is bridged: readings are clamped to
//! that time until the wall clock passes it. Further behind, the clock is wrong and the command
//! is refused (3310) before it writes anything. Within a run, no reading is earlier than the one
//! before it.

use core::sync::atomic::{AtomicU64, Ordering};

use postkey_archive::Store;
use postkey_wire::Timestamp;

use crate::{Kmc, KmcError};

/// How far behind the archive's latest time the wall clock may be at the start of a command:
/// five minutes.
pub const MAX_STEP_BACK_MICROS: u64 = 5 * 60 * 1_000_000;

/// A monotonic clock over a wall clock, never behind a floor.
pub struct KmsClock<W> {
    wall: W,
    floor: AtomicU64,
}

impl<W> core::fmt::Debug for KmsClock<W> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KmsClock").field("floor", &self.floor).finish_non_exhaustive()
    }
}

impl<W: Fn() -> Timestamp + Sync> KmsClock<W> {
    /// A clock that gives no time before `latest`; refused if `wall` reads more than
    /// [`MAX_STEP_BACK_MICROS`] before it.
    pub fn start(wall: W, latest: Timestamp) -> Result<Self, KmcError> {
        let now = wall();
        let behind_micros = latest.unix_micros().saturating_sub(now.unix_micros());
        if behind_micros > MAX_STEP_BACK_MICROS {
            return Err(KmcError::ClockWentBack { now, behind_micros });
        }
        Ok(Self { wall, floor: AtomicU64::new(latest.unix_micros()) })
    }

    /// The time: the wall clock's, or the latest time given or recorded if that is later.
    pub fn now(&self) -> Timestamp {
        let wall = (self.wall)().unix_micros();
        let before = self.floor.fetch_max(wall, Ordering::SeqCst);
        Timestamp::from_unix_micros(wall.max(before))
    }
}

impl<S: Store> Kmc<S> {
    /// The latest time any chain of the archive recorded (the Unix epoch for an empty archive).
    pub async fn latest_time(&self) -> Result<Timestamp, KmcError> {
        let mut latest = Timestamp::from_unix_micros(0);
        for head in self.store.chain_heads().await? {
            if head.count == 0 {
                continue;
            }
            let last = self.store.chain_events(&head.chain, head.count - 1, 1).await?;
            if let Some(e) = last.first() {
                latest = latest.max(e.entry.time);
            }
        }
        Ok(latest)
    }
}

#[cfg(test)]
mod tests {
    use core::sync::atomic::AtomicU64;

    use super::*;

    fn at(micros: u64) -> Timestamp {
        Timestamp::from_unix_micros(micros)
    }

    #[test]
    fn a_small_step_back_is_bridged_and_times_never_decrease() {
        let wall = AtomicU64::new(1_000_000_000);
        let read = || at(wall.load(Ordering::SeqCst));
        let clock = KmsClock::start(read, at(1_000_000_000 + MAX_STEP_BACK_MICROS)).unwrap();
        // Behind the archive by the whole bound: the archive's time, until the wall passes it.
        assert_eq!(clock.now(), at(1_000_000_000 + MAX_STEP_BACK_MICROS));
        wall.store(1_000_000_000 + MAX_STEP_BACK_MICROS + 7, Ordering::SeqCst);
        assert_eq!(clock.now(), at(1_000_000_000 + MAX_STEP_BACK_MICROS + 7));
        // A step back during the run: the last time given, never earlier.
        wall.store(5, Ordering::SeqCst);
        assert_eq!(clock.now(), at(1_000_000_000 + MAX_STEP_BACK_MICROS + 7));
    }

    #[test]
    fn a_clock_further_behind_than_the_bound_is_refused_with_3310() {
        let latest = at(10_000_000_000);
        let wall = move || at(10_000_000_000 - MAX_STEP_BACK_MICROS - 1);
        let Err(e) = KmsClock::start(wall, latest) else { panic!("a clock that far back runs") };
        assert!(matches!(e, KmcError::ClockWentBack { behind_micros, .. }
            if behind_micros == MAX_STEP_BACK_MICROS + 1));
        assert_eq!(e.response_code(), postkey_wire::ResponseCode::TIME_WENT_BACKWARDS);
    }
}
