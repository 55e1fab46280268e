//! The KMS computer (KMC): it drives key installation (protocol §6.1, MI0 to MI10) between the KDC,
//! the domain archive and the Oak, Steel and Brass boxes, and checks every box's state version
//! before anything else is asked of it (protocol §7.2 item 7).
//!
//! Start from [`Kmc`], generic over the archive's [`postkey_archive::Store`], and [`Boxes`], the
//! box links it talks through.
//!
//! Key design decision: this crate cannot name a plaintext key: it depends on neither the secrets
//! crate nor the boxes (a test reads the crate graph). It sees only signed records and sealed
//! keys, verifies each record with the domain's public keys from a bundle checked against the
//! Domain Key Set, and makes every archive change durable before the next message leaves: MI4
//! goes to Steel only after MI3 is committed as `New`.

#![forbid(unsafe_code)]

mod apply;
mod clock;
mod error;
mod install;
mod link;
mod recovery;
mod register;
mod roles;
#[cfg(feature = "testing")]
pub mod testing;
mod tin;
mod verify;
mod version;

pub use clock::{KmsClock, MAX_STEP_BACK_MICROS};
pub use error::KmcError;
pub use install::{InstallConfig, KeyOrder, KeyOutcome, OrderResult};
pub use link::{Answer, BoxRefusal, Boxes};
pub use recovery::{LineBoxes, Settled};
pub use register::{
    MeterRegistration, RegistrationOutcome, RegistrationResult, brass_serving, withdrawing_boxes,
};
pub use roles::KeyRole;
pub use tin::{MadeExport, TinPieceVerdict};
pub use verify::{PieceToVerify, PieceVerdict, VerificationPlan, VerifyCache};

use postkey_archive::Store;
use postkey_crypto::VerifyingKey;
use postkey_wire::InstallationId;

/// The KMS computer over an archive `S`.
#[derive(Debug)]
pub struct Kmc<S> {
    store: S,
    domain_key_set: VerifyingKey,
    installation: InstallationId,
    config: InstallConfig,
}

impl<S: Store> Kmc<S> {
    /// A KMC on `store` of `installation`, trusting domain bundles signed with `domain_key_set`
    /// (the Domain Key Set's authentication key, from its certificate checked against the trust
    /// anchors by the caller).
    pub fn new(
        store: S,
        domain_key_set: VerifyingKey,
        installation: InstallationId,
        config: InstallConfig,
    ) -> Self {
        Self { store, domain_key_set, installation, config }
    }

    /// The archive.
    pub fn store(&self) -> &S {
        &self.store
    }
}
