//! What every box type shares: the [`Core`] (identity, trust anchors, configuration tables, state
//! version, generator, error state) inside a [`TypedBox`], whose role type decides which
//! commands the box has and which keys it holds (protocol §3, §5, §7.2).

use postkey_crypto::{Signer as _, VerifyingKey};
use postkey_secrets::rng::{BoxRng, RngAlarm};
use postkey_secrets::{HpkePrivateKey, OperationCombination, SigningKey};
use postkey_wire::{
    BoxId, BoxType, Certificate, CommandCode, ConfigTables, Context, DomainId, IdRange,
    InstallationId, LastKeyId, Message, Nonce, Sender, StateAttestation, StateVersion, TableUpdate,
    Timestamp, TrustAnchors, Unverified, Verified,
};

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

/// The part of a box every type has. Its keys never leave it but as signatures and openings.
pub struct Core {
    pub(crate) id: BoxId,
    /// The installation it belongs to, for life (protocol §7.2: the archive it answers to).
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
    pub(crate) health: Health,
    pub(crate) dirty: bool,
}

impl core::fmt::Debug for Core {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Core")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("keys", &format_args!("[redacted]"))
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A new box's core, at version 0 with its type's initial tables.
    pub(crate) fn new(
        id: BoxId,
        installation: InstallationId,
        anchors: TrustAnchors,
        keys: (SigningKey, HpkePrivateKey, OperationCombination),
        rng: BoxRng,
    ) -> Self {
        let (identity, confidentiality, combination) = keys;
        Self {
            id,
            installation,
            anchors,
            identity,
            confidentiality,
            combination,
            certificate: None,
            tables: tables::initial(id.box_type()),
            table_sequence: 0,
            version: StateVersion(0),
            rng,
            health: Health::Operational,
            dirty: false,
        }
    }

    /// Marks a durable change: the next sealed state carries a higher version.
    pub(crate) fn changed(&mut self) {
        self.version = StateVersion(self.version.0 + 1);
        self.dirty = true;
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

    /// The anchor that signs what this box's type receives (deliveries, tables, certificate).
    pub(crate) fn own_anchor(&self) -> &VerifyingKey {
        self.anchors.for_type(self.id.box_type())
    }
}

/// The role of a box type: what it holds beyond the [`Core`] and what it attests. Implemented by
/// [`crate::Manufacturing`], [`crate::Oak`], [`crate::Steel`], [`crate::Brass`] and
/// [`crate::Tin`]; each adds its commands as methods of its [`TypedBox`].
pub trait Role: sealed::RoleState {
    /// The box type this role is.
    const TYPE: BoxType;

    /// The domains it knows: for a manufacturing box, those whose bundles it created or adopted;
    /// for any other, those it runs a process of.
    fn domains(&self) -> Vec<DomainId>;

    /// Each process's last key ID (counted by Oak and Steel, 0 elsewhere), for the attestation:
    /// it also lists the processes the box runs.
    fn last_key_ids(&self) -> Vec<LastKeyId> {
        Vec::new()
    }

    /// The box numbers a manufacturing box has not given yet.
    fn free_box_ids(&self) -> Vec<IdRange> {
        Vec::new()
    }
}

/// What only this crate may implement or call: how a role is sealed at rest, and how a process's
/// keys are taken from a delivery.
pub(crate) mod sealed {
    use postkey_wire::{DomainKind, ProcessRecord};

    use crate::BoxError;
    use crate::core::Core;
    use crate::image::{KeyImage, StateImage};

    /// How a role is written into, and rebuilt from, the sealed state.
    pub trait RoleState: Sized {
        /// Writes its part of the sealed state.
        fn write_image(&self, image: &mut StateImage);

        /// Rebuilds it from an opened sealed state.
        fn read_image(core: &Core, image: &StateImage) -> Result<Self, BoxError>;
    }

    /// How a process's keys are made from a delivery's key image.
    pub trait FromImage: Sized {
        /// Takes the keys from `image`, refusing any key this type must not hold, or a domain of
        /// a kind this type does not serve.
        fn from_image(
            image: &KeyImage,
            process: &ProcessRecord,
            kind: DomainKind,
        ) -> Result<Self, BoxError>;
    }
}

/// A box of one type: the [`Core`] and its role `R`. Only the commands of `R`'s type are methods
/// of `TypedBox<R>`, so a command a type does not have cannot be written; the dispatcher still
/// checks every command against the box's configuration tables at run time (protocol §8).
/// Dropping it (the lock) zeroizes every key it holds.
pub struct TypedBox<R> {
    pub(crate) core: Core,
    pub(crate) role: R,
}

impl<R> core::fmt::Debug for TypedBox<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TypedBox")
            .field("id", &self.core.id)
            .field("version", &self.core.version)
            .field("health", &self.core.health)
            .field("keys", &format_args!("[redacted]"))
            .finish()
    }
}

impl<R: Role> TypedBox<R> {
    /// The box's ID.
    pub fn id(&self) -> BoxId {
        self.core.id
    }

    /// The domains it knows (see [`Role::domains`]).
    pub fn domains(&self) -> Vec<DomainId> {
        self.role.domains()
    }

    /// Every command passes here first (the dispatcher calls it): the error state refuses all
    /// but a self-test, and a command outside the command table, or one whose items carry a
    /// record type outside the record table, is refused (protocol §8).
    pub(crate) fn admit(&self, command: CommandCode) -> Result<(), BoxError> {
        if matches!(self.core.health, Health::Error { .. }) && command != CommandCode::SELF_TEST {
            return Err(BoxError::ErrorState);
        }
        tables::check_command(&self.core.tables, command)?;
        for record in command.record_types() {
            tables::check_record(&self.core.tables, *record)?;
        }
        Ok(())
    }

    /// Runs the power-up self-tests again; a failure puts the box in its error state, a pass
    /// takes it out.
    pub(crate) fn self_test(&mut self) -> Result<(), BoxError> {
        match postkey_secrets::selftest::power_up() {
            Ok(()) => {
                self.core.health = Health::Operational;
                Ok(())
            }
            Err(e) => {
                self.core.health = Health::Error { primitive: e.primitive };
                Err(e.into())
            }
        }
    }

    /// Protocol §7.2 item 7: the state version, the last key IDs and (manufacturing) the free
    /// box numbers, signed over the KMC's nonce.
    pub(crate) fn attest(&self, nonce: Nonce, now: Timestamp) -> Verified<StateAttestation> {
        let body = StateAttestation {
            nonce,
            box_id: self.core.id,
            version: self.core.version,
            installation: self.core.installation,
            last_key_ids: self.role.last_key_ids(),
            free_box_ids: self.role.free_box_ids(),
        };
        postkey_wire::sign(
            Message::new(self.core.context(DomainId::admin(), now), body),
            &self.core.identity,
        )
    }

    /// Applies a configuration-table update signed by a manufacturing box with the startup key
    /// of this box's type, addressed to this box, newer than the last applied.
    pub(crate) fn update_tables(
        &mut self,
        update: Unverified<TableUpdate>,
    ) -> Result<(), BoxError> {
        let core = &mut self.core;
        let update = update.verify(core.own_anchor())?;
        let body = update.body();
        if body.recipient != core.id {
            return Err(BoxError::NotForThisBox { addressed: body.recipient, this: core.id });
        }
        if body.sequence <= core.table_sequence {
            return Err(BoxError::StaleUpdate { got: body.sequence, last: core.table_sequence });
        }
        core.tables = body.tables.clone();
        core.table_sequence = body.sequence;
        core.changed();
        Ok(())
    }

    /// Installs this box's certificate, which must name this box and its keys and be signed
    /// with the startup key of its type.
    pub(crate) fn install_certificate(
        &mut self,
        certificate: Unverified<Certificate>,
    ) -> Result<(), BoxError> {
        let core = &mut self.core;
        let cert = certificate.verify(core.own_anchor())?;
        let body = cert.body();
        if body.box_id != core.id {
            return Err(BoxError::NotForThisBox { addressed: body.box_id, this: core.id });
        }
        if body.identity != core.identity.verifying_key()
            || body.confidentiality != core.confidentiality.public_key()
        {
            return Err(BoxError::RecordMismatch(
                "the certificate names other keys than this box's",
            ));
        }
        core.certificate = Some(cert);
        core.changed();
        Ok(())
    }

    /// The generator's alarms since the last call, for the error log.
    pub(crate) fn take_alarms(&mut self) -> Vec<RngAlarm> {
        self.core.rng.take_alarms()
    }
}
