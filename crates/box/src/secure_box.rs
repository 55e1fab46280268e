//! [`SecureBox`]: an enabled box of any type, as the runtime opens it from its sealed state. The
//! variant is the box's type; everything a type does is a method of its [`TypedBox`].

use postkey_crypto::{Signer as _, VerifyingKey};
use postkey_secrets::rng::RngAlarm;
use postkey_wire::{
    BoxId, BoxType, Certificate, ConfigTables, Delivery, DomainId, DomainPublicKeys,
    InstallationId, ProcessRecord, StateVersion, TrustAnchors, Verified,
};

use crate::core::{Core, Health, TypedBox};
use crate::{Brass, Manufacturing, Oak, Steel, Tin};

/// An initialized, enabled secure box: its operation combination reconstructed, its state
/// unsealed in memory. Dropping it (the lock) zeroizes every key it holds.
///
/// The box is sans-IO: it never reads a clock, a file or a socket. Every command takes the
/// time; randomness comes from its own generator; the runtime persists its sealed state after
/// every change ([`SecureBox::take_dirty`]) before the answer leaves.
#[derive(Debug)]
pub enum SecureBox {
    /// A manufacturing box.
    Manufacturing(TypedBox<Manufacturing>),
    /// An Oak box: generates master keys.
    Oak(TypedBox<Oak>),
    /// A Steel box: installs them into meters.
    Steel(TypedBox<Steel>),
    /// A Brass box: checks installations, registers and verifies.
    Brass(TypedBox<Brass>),
    /// A Tin box: verifies postal tokens at remote sites.
    Tin(TypedBox<Tin>),
}

/// Runs `$e` with `$b` bound to the typed box inside `$box`, whatever its type.
macro_rules! each_type {
    ($box:expr, $b:ident => $e:expr) => {
        match $box {
            $crate::SecureBox::Manufacturing($b) => $e,
            $crate::SecureBox::Oak($b) => $e,
            $crate::SecureBox::Steel($b) => $e,
            $crate::SecureBox::Brass($b) => $e,
            $crate::SecureBox::Tin($b) => $e,
        }
    };
}
pub(crate) use each_type;

impl SecureBox {
    pub(crate) fn core(&self) -> &Core {
        each_type!(self, b => &b.core)
    }

    pub(crate) fn core_mut(&mut self) -> &mut Core {
        each_type!(self, b => &mut b.core)
    }

    /// The box's ID.
    pub fn id(&self) -> BoxId {
        self.core().id
    }

    /// The box's type.
    pub fn box_type(&self) -> BoxType {
        self.core().id.box_type()
    }

    /// Its sealed-state version.
    pub fn version(&self) -> StateVersion {
        self.core().version
    }

    /// The installation it belongs to.
    pub fn installation(&self) -> InstallationId {
        self.core().installation
    }

    /// The trust anchors it checks every delivery and update against.
    pub fn anchors(&self) -> &TrustAnchors {
        &self.core().anchors
    }

    /// Its identity public key.
    pub fn identity_key(&self) -> VerifyingKey {
        self.core().identity.verifying_key()
    }

    /// Its certificate, once installed.
    pub fn certificate(&self) -> Option<&Verified<Certificate>> {
        self.core().certificate.as_ref()
    }

    /// Its configuration tables.
    pub fn tables(&self) -> &ConfigTables {
        &self.core().tables
    }

    /// The domains it knows: for a manufacturing box, those whose bundles it created or adopted;
    /// for any other box, those it runs a process of.
    pub fn domains(&self) -> Vec<DomainId> {
        each_type!(self, b => b.domains())
    }

    /// Whether it knows `domain` (see [`SecureBox::domains`]).
    pub fn knows_domain(&self, domain: &DomainId) -> bool {
        self.domains().contains(domain)
    }

    /// The delivery its process of `domain` came from, if it runs one.
    fn delivery(&self, domain: &DomainId) -> Option<&Delivery> {
        match self {
            Self::Manufacturing(_) => None,
            Self::Oak(b) => b.process(domain).map(|p| p.delivery.body()),
            Self::Steel(b) => b.process(domain).map(|p| p.delivery.body()),
            Self::Brass(b) => b.process(domain).map(|p| p.delivery.body()),
            Self::Tin(b) => b.process(domain).map(|p| p.delivery.body()),
        }
    }

    /// The signed record of its process of `domain`, if it runs one.
    pub fn process_record(&self, domain: &DomainId) -> Option<&ProcessRecord> {
        self.delivery(domain).map(|d| &d.process)
    }

    /// The public keys of `domain`, as its process here was delivered them.
    pub fn domain_public(&self, domain: &DomainId) -> Option<&DomainPublicKeys> {
        self.delivery(domain).map(|d| &d.public)
    }

    /// The Domain Key Set's public keys, for a manufacturing box that holds the set.
    pub fn domain_key_set_public(&self) -> Option<crate::DomainKeySetPublic> {
        match self {
            Self::Manufacturing(m) => m.domain_key_set_public().ok(),
            _ => None,
        }
    }

    /// Whether it may work.
    pub fn health(&self) -> Health {
        self.core().health
    }

    /// Whether the state changed since it was last persisted.
    pub fn is_dirty(&self) -> bool {
        self.core().dirty
    }

    /// Whether the state changed since the last call: the runtime then persists it before the
    /// answer leaves the box.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.core_mut().dirty)
    }

    /// The generator's alarms since the last call, for the error log.
    pub fn take_alarms(&mut self) -> Vec<RngAlarm> {
        each_type!(self, b => b.take_alarms())
    }

    /// Enters the error state as a failed self-test does: for tests of the error state.
    #[cfg(any(test, feature = "testing"))]
    pub fn enter_error_state(&mut self, primitive: &'static str) {
        self.core_mut().health = Health::Error { primitive };
    }
}
