//! The meter link: the direct channel between a Steel box and the meter on the secured production
//! line (SPEC §6.1). The PSR orchestrates the installation but does not carry this channel; a
//! real meter and the simulator sit behind the same trait.

use postkey_wire::{DomainId, Timestamp};

use crate::{Meter, MeterError};

/// The meter side of the meter link, as the Steel box's host drives it.
pub trait MeterLink {
    /// The meter's greeting (its transport key) for an installation of `domain`.
    fn hello(&mut self, domain: &DomainId, now: Timestamp) -> Result<Vec<u8>, MeterError>;
    /// Delivers MI5 and returns the meter's MI6.
    fn install(&mut self, mi5: &[u8], now: Timestamp) -> Result<Vec<u8>, MeterError>;
}

/// The meter simulator: a [`Meter`] in memory behind the meter link. Its host keeps its state in
/// a file under the home (SPEC §12, a convenience of the simulation named in SECURITY.md).
#[derive(Debug)]
pub struct SimulatedMeter {
    meter: Meter,
}

impl SimulatedMeter {
    /// A simulator around `meter`.
    pub fn new(meter: Meter) -> Self {
        Self { meter }
    }

    /// The simulated meter.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Takes the meter back.
    pub fn into_meter(self) -> Meter {
        self.meter
    }
}

impl MeterLink for SimulatedMeter {
    fn hello(&mut self, domain: &DomainId, now: Timestamp) -> Result<Vec<u8>, MeterError> {
        Ok(self.meter.hello(domain.clone(), now).to_bytes())
    }

    fn install(&mut self, mi5: &[u8], now: Timestamp) -> Result<Vec<u8>, MeterError> {
        Ok(self.meter.install(mi5, now)?.to_bytes())
    }
}
