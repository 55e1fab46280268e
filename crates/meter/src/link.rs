//! The meter simulator on the meter link (protocol §6.1, §12): a [`Meter`] in memory behind
//! [`postkey_wire::MeterLink`], the same trait a real meter's link implements.

use std::sync::{Arc, Mutex, MutexGuard};

use postkey_wire::{
    DomainId, KeyForMeter, Message, MeterHello, MeterLink, MeterTestTokens, Refusal, Timestamp,
};

use crate::Meter;

/// The meter simulator: a [`Meter`] in memory behind the meter link. Clones share the meter, so
/// the host that put one on the line can save the meter's state (protocol §12: a file under the
/// home, named in SECURITY.md).
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
    fn hello(&mut self, domain: &DomainId, now: Timestamp) -> Result<Message<MeterHello>, Refusal> {
        Ok(self.meter().hello(domain.clone(), now))
    }

    fn install(
        &mut self,
        mi5: &Message<KeyForMeter>,
        now: Timestamp,
    ) -> Result<Message<MeterTestTokens>, Refusal> {
        self.meter().install(mi5, now).map_err(|e| e.to_refusal())
    }
}
