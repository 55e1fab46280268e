//! The shared core of every box: identity, trust anchors, configuration tables, state version,
//! installed domain processes, the box generator, and the error state.

use std::collections::BTreeMap;

use postkey_crypto::{Signer as _, VerifyingKey};
use postkey_secrets::rng::{BoxRng, RngAlarm};
use postkey_secrets::{HpkePrivateKey, OperationCombination, SigningKey};
use postkey_wire::{
    BoxId, BoxType, Certificate, CommandCode, ConfigTables, Context, DomainId, InstallationId,
    LastKeyId, Message, Nonce, Sender, StateAttestation, StateVersion, TableUpdate, Timestamp,
    TrustAnchors, Unverified, Verified,
};

use crate::manufacturing::ManufacturingState;
use crate::process::DomainProcess;
use crate::{BoxError, tables};

/// Whether the box may work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Self-tests passed.
    Operational,
    /// A self-test failed: the box refuses every command but a new self-test.
    Error {
        /// The primitive whose known answer did not match.
        primitive: &'static str,
    },
}

/// What distinguishes the box types beyond the core.
pub(crate) enum Kind {
    Manufacturing(Box<ManufacturingState>),
    /// A new manufacturing box waiting for its kit (Domain Key Set and startup keys).
    AwaitingKit,
    Other,
}

/// An initialized, enabled secure box: its operation combination reconstructed, its state
/// unsealed in memory. Dropping it (the lock) zeroizes every key it holds.
///
/// The box is sans-IO: it never reads a clock, a file or a socket. Every command takes the
/// time; randomness comes from its own generator; the runtime persists its sealed state after
/// every change ([`SecureBox::take_dirty`]) before the answer leaves.
pub struct SecureBox {
    pub(crate) id: BoxId,
    /// The installation it belongs to, for life (SPEC §7.2: the archive it answers to).
    pub(crate) installation: InstallationId,
    pub(crate) anchors: TrustAnchors,
    pub(crate) identity: SigningKey,
    pub(crate) confidentiality: HpkePrivateKey,
    pub(crate) combination: OperationCombination,
    pub(crate) certificate: Option<Verified<Certificate>>,
    pub(crate) tables: ConfigTables,
    pub(crate) table_sequence: u64,
    pub(crate) version: StateVersion,
    pub(crate) rng: BoxRng,
    pub(crate) processes: BTreeMap<DomainId, DomainProcess>,
    pub(crate) kind: Kind,
    pub(crate) health: Health,
    pub(crate) dirty: bool,
    /// Steel: what the meter must answer for the installation in flight (memory only: after a
    /// crash the sealed in-flight record leads to ABORTED instead).
    pub(crate) pending_install:
        BTreeMap<(postkey_wire::DomainId, postkey_wire::KeyId), crate::install::PendingInstall>,
    /// Steel: how each installation of its last `INSTALL_KEY` batch ended (MI7 or ABORTED),
    /// sealed with the state, so that `RECOVER` answers them again to a KMC that stopped before
    /// it recorded them.
    pub(crate) last_ended: Vec<postkey_wire::command::InstallEnded>,
}

impl core::fmt::Debug for SecureBox {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SecureBox")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("domains", &self.processes.keys().collect::<Vec<_>>())
            .field("health", &self.health)
            .field("keys", &format_args!("[redacted]"))
            .finish()
    }
}

impl SecureBox {
    /// The box's ID.
    pub fn id(&self) -> BoxId {
        self.id
    }

    /// The box's type.
    pub fn box_type(&self) -> BoxType {
        self.id.box_type()
    }

    /// Its sealed-state version.
    pub fn version(&self) -> StateVersion {
        self.version
    }

    /// The installation it belongs to.
    pub fn installation(&self) -> InstallationId {
        self.installation
    }

    /// The trust anchors it checks every delivery and update against.
    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
    }

    /// Its identity public key.
    pub fn identity_key(&self) -> VerifyingKey {
        self.identity.verifying_key()
    }

    /// Its certificate, once installed.
    pub fn certificate(&self) -> Option<&Verified<Certificate>> {
        self.certificate.as_ref()
    }

    /// Its configuration tables.
    pub fn tables(&self) -> &ConfigTables {
        &self.tables
    }

    /// The domains it runs processes of.
    pub fn domains(&self) -> impl Iterator<Item = &DomainId> {
        self.processes.keys()
    }

    /// The installed process of `domain`.
    pub fn process(&self, domain: &DomainId) -> Option<&DomainProcess> {
        self.processes.get(domain)
    }

    /// Whether it knows `domain`: for a manufacturing box, that it created or adopted the
    /// domain's bundle; for any other box, that it runs a process of it.
    pub fn knows_domain(&self, domain: &DomainId) -> bool {
        match &self.kind {
            Kind::Manufacturing(m) => m.domains.contains(domain),
            _ => self.processes.contains_key(domain),
        }
    }

    /// The Domain Key Set's public keys, for a manufacturing box that holds the set.
    pub fn domain_key_set_public(&self) -> Option<crate::DomainKeySetPublic> {
        match &self.kind {
            Kind::Manufacturing(m) => crate::manufacturing::DomainKeySet::derive(&m.domain_key_set)
                .ok()
                .map(|dks| crate::DomainKeySetPublic {
                    confidentiality: dks.conf.public_key(),
                    authentication: dks.auth.verifying_key(),
                }),
            _ => None,
        }
    }

    /// Whether it may work.
    pub fn health(&self) -> Health {
        self.health
    }

    /// Whether the state changed since it was last persisted.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Whether the state changed since the last call: the runtime then persists it before the
    /// answer leaves the box.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The generator's alarms since the last call, for the error log.
    pub fn take_alarms(&mut self) -> Vec<RngAlarm> {
        self.rng.take_alarms()
    }

    /// Marks a durable change: the next sealed state carries a higher version.
    pub(crate) fn changed(&mut self) {
        self.version = StateVersion(self.version.0 + 1);
        self.dirty = true;
    }

    /// Every command passes here first (the dispatcher calls it): the error state refuses all
    /// but a self-test, and a command outside the command table, or one whose items carry a
    /// record type outside the record table, is refused (SPEC §8).
    pub(crate) fn admit(&self, command: CommandCode) -> Result<(), BoxError> {
        if matches!(self.health, Health::Error { .. }) && command != CommandCode::SELF_TEST {
            return Err(BoxError::ErrorState);
        }
        tables::check_command(&self.tables, command)?;
        for record in command.record_types() {
            tables::check_record(&self.tables, *record)?;
        }
        Ok(())
    }

    /// The header context of a message this box sends.
    pub(crate) fn context(&self, domain: DomainId, now: Timestamp) -> Context {
        Context {
            domain,
            sender: Sender::Box(self.id),
            meter_id: None,
            key_id: None,
            state_version: Some(self.version),
            timestamp: now,
        }
    }

    /// Runs the power-up self-tests again; a failure puts the box in its error state, a pass
    /// takes it out.
    pub(crate) fn self_test(&mut self) -> Result<(), BoxError> {
        match postkey_secrets::selftest::power_up() {
            Ok(()) => {
                self.health = Health::Operational;
                Ok(())
            }
            Err(e) => {
                self.health = Health::Error { primitive: e.primitive };
                Err(e.into())
            }
        }
    }

    /// Enters the error state as a failed self-test does; for the runtime when the self-tests
    /// it ran before enabling failed, and for tests.
    pub fn enter_error_state(&mut self, primitive: &'static str) {
        self.health = Health::Error { primitive };
    }

    /// SPEC §7.2 item 7: the state version signed over the KMC's nonce.
    /// The box numbers a manufacturing box has not given yet (none for other types).
    fn free_box_ids(&self) -> Vec<postkey_wire::IdRange> {
        match &self.kind {
            Kind::Manufacturing(m) => m.ranges.clone(),
            _ => Vec::new(),
        }
    }

    pub(crate) fn attest(&self, nonce: Nonce, now: Timestamp) -> Verified<StateAttestation> {
        let last_key_ids = self
            .processes
            .iter()
            .map(|(domain, p)| LastKeyId { domain: domain.clone(), last: p.last_key_id })
            .collect();
        let body = StateAttestation {
            nonce,
            box_id: self.id,
            version: self.version,
            installation: self.installation,
            last_key_ids,
            free_box_ids: self.free_box_ids(),
        };
        postkey_wire::sign(Message::new(self.context(DomainId::admin(), now), body), &self.identity)
    }

    /// Applies a configuration-table update signed by a manufacturing box with the startup key
    /// of this box's type, addressed to this box, newer than the last applied.
    pub(crate) fn update_tables(
        &mut self,
        update: Unverified<TableUpdate>,
    ) -> Result<(), BoxError> {
        let update = update.verify(self.anchors.for_type(self.box_type()))?;
        let body = update.body();
        if body.recipient != self.id {
            return Err(BoxError::NotForThisBox { addressed: body.recipient, this: self.id });
        }
        if body.sequence <= self.table_sequence {
            return Err(BoxError::StaleUpdate { got: body.sequence, last: self.table_sequence });
        }
        self.tables = body.tables.clone();
        self.table_sequence = body.sequence;
        self.changed();
        Ok(())
    }

    /// Installs this box's certificate, which must name this box and its keys and be signed
    /// with the startup key of its type.
    pub(crate) fn install_certificate(
        &mut self,
        certificate: Unverified<Certificate>,
    ) -> Result<(), BoxError> {
        let cert = certificate.verify(self.anchors.for_type(self.box_type()))?;
        let body = cert.body();
        if body.box_id != self.id {
            return Err(BoxError::NotForThisBox { addressed: body.box_id, this: self.id });
        }
        if body.identity != self.identity.verifying_key()
            || body.confidentiality != self.confidentiality.public_key()
        {
            return Err(BoxError::RecordMismatch(
                "the certificate names other keys than this box's",
            ));
        }
        self.certificate = Some(cert);
        self.changed();
        Ok(())
    }

    /// The typed view of a manufacturing box; any other type is refused.
    pub(crate) fn manufacturing(&mut self) -> Result<crate::Manufacturing<'_>, BoxError> {
        match self.kind {
            Kind::Manufacturing(_) => Ok(crate::Manufacturing { b: self }),
            Kind::AwaitingKit => Err(BoxError::AwaitingKit),
            Kind::Other => Err(BoxError::WrongBoxType {
                expected: "manufacturing",
                actual: self.box_type().name(),
            }),
        }
    }
}
