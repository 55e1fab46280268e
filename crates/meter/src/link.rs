//! The meter link: the direct channel between a Steel box and the meter on the secured production
//! line (SPEC §6.1). The PSR orchestrates the installation but does not carry this channel; a
//! real meter and the simulator sit behind the same trait.

use std::sync::{Arc, Mutex, MutexGuard};

use postkey_wire::{DomainId, Timestamp};

use crate::{Meter, MeterError};

/// The meter side of the meter link, as the Steel box's host drives it.
pub trait MeterLink {
    /// The meter's greeting (its transport key) for an installation of `domain`.
    fn hello(&mut self, domain: &DomainId, now: Timestamp) -> Result<Vec<u8>, MeterError>;
    /// Delivers MI5 and returns the meter's MI6.
    fn install(&mut self, mi5: &[u8], now: Timestamp) -> Result<Vec<u8>, MeterError>;
}

/// The meter simulator: a [`Meter`] in memory behind the meter link. Clones share the meter, so
/// the host that put one on the line can save the meter's state (SPEC §12: a file under the
/// home, named in SECURITY.md) after the installation.
#[derive(Debug, Clone)]
pub struct SimulatedMeter {
    meter: Arc<Mutex<Meter>>,
}

impl SimulatedMeter {
    /// A simulator around `meter`.
    pub fn new(meter: Meter) -> Self {
        Self { meter: Arc::new(Mutex::new(meter)) }
    }

    /// The simulated meter. A panic elsewhere cannot leave a meter half-installed (each
    /// installation is one assignment), so a poisoned lock is taken as it is.
    pub fn meter(&self) -> MutexGuard<'_, Meter> {
        self.meter.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl MeterLink for SimulatedMeter {
    fn hello(&mut self, domain: &DomainId, now: Timestamp) -> Result<Vec<u8>, MeterError> {
        Ok(self.meter().hello(domain.clone(), now).to_bytes())
    }

    fn install(&mut self, mi5: &[u8], now: Timestamp) -> Result<Vec<u8>, MeterError> {
        Ok(self.meter().install(mi5, now)?.to_bytes())
    }
}
