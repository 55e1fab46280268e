//! The first ceremony (protocol §7.2 item 2) and the equipping of later manufacturing boxes.

use std::collections::{BTreeMap, BTreeSet};

use postkey_crypto::{HpkeInfo, HpkeRecordType, Signer as _};
use postkey_secrets::rng::BoxRng;
use postkey_secrets::shares::ShareBody;
use postkey_secrets::{DomainKeySetSeed, HpkePrivateKey, OperationCombination, SigningKey};
use postkey_wire::{
    BoxId, BoxType, Certificate, DomainBundle, DomainId, DomainKeySetCertificate, DomainKind,
    IdRange, InstallationId, Kit, Message, ShareSetId, Timestamp, TrustAnchors, Unverified,
    Verified, codec,
};

use crate::blank::SharePolicy;
use crate::core::{Core, TypedBox};
use crate::image::KitImage;
use crate::manufacturing::{Manufacturing, ManufacturingState};
use crate::{BoxError, SecureBox};

/// What the first ceremony makes.
#[derive(Debug)]
pub struct FirstCeremony {
    /// `M00000001`, enabled.
    pub secure_box: SecureBox,
    /// Its certificate, signed with the M startup key it just made.
    pub certificate: Verified<Certificate>,
    /// The shares of its operation combination.
    pub combination_shares: Vec<Verified<ShareBody>>,
    /// The shares of the Domain Key Set.
    pub domain_key_set_shares: Vec<Verified<ShareBody>>,
    /// The `ADMIN` domain's bundle (its audit key signs the audit trail).
    pub admin_bundle: Verified<DomainBundle>,
    /// The Domain Key Set's public keys, certified with the manufacturing startup key: what the
    /// KMS computer and auditors check domain bundles against.
    pub dks_certificate: Verified<DomainKeySetCertificate>,
}

/// The first manufacturing box, in the order of protocol §7.2 item 2: the five startup keys (and so
/// the trust anchors), its identity and confidentiality keys and self-certificate, its ID, then
/// its operation combination and the Domain Key Set, each split and signed for the custodians.
/// Finally the `ADMIN` domain is created.
pub fn first_manufacturing_box(
    mut rng: BoxRng,
    combination_policy: SharePolicy,
    domain_key_set_policy: SharePolicy,
    now: Timestamp,
) -> Result<FirstCeremony, BoxError> {
    let mut startup = Vec::with_capacity(5);
    for _ in BoxType::ALL {
        startup.push(SigningKey::generate(&mut rng)?);
    }
    let anchor = |i: usize| startup.get(i).map(|k: &SigningKey| k.verifying_key());
    let anchors = match (anchor(0), anchor(1), anchor(2), anchor(3), anchor(4)) {
        (Some(manufacturing), Some(oak), Some(steel), Some(brass), Some(tin)) => {
            TrustAnchors { manufacturing, oak, steel, brass, tin }
        }
        _ => return Err(BoxError::Secret(postkey_secrets::SecretError::Malformed)),
    };
    // Its identity and confidentiality keys, and its certificate under the M startup key.
    let identity = SigningKey::generate(&mut rng)?;
    let confidentiality = HpkePrivateKey::generate(&mut rng)?;
    let id = BoxId::FIRST_MANUFACTURING;
    let cert = Certificate {
        box_id: id,
        identity: identity.verifying_key(),
        confidentiality: confidentiality.public_key(),
        issuer: id,
        issued: now,
    };
    let context = postkey_wire::Context {
        domain: DomainId::admin(),
        sender: postkey_wire::Sender::Box(id),
        meter_id: None,
        key_id: None,
        state_version: None,
        timestamp: now,
    };
    let certificate = startup
        .first()
        .map(|m| postkey_wire::sign(Message::new(context, cert), m))
        .ok_or(BoxError::Secret(postkey_secrets::SecretError::Malformed))?;
    // Only then its operation combination and the Domain Key Set (protocol §7.2 item 2).
    let combination = OperationCombination::generate(&mut rng)?;
    let domain_key_set = DomainKeySetSeed::generate(&mut rng)?;
    let ranges = BoxType::ALL
        .iter()
        .enumerate()
        .map(|(i, t)| IdRange {
            box_type: i as u8,
            first: if *t == BoxType::Manufacturing { 2 } else { 1 },
            last: BoxId::MAX_NUMBER,
        })
        .collect();
    let state = ManufacturingState {
        domain_key_set,
        startup,
        ranges,
        certified: BTreeSet::from([id]),
        pending: BTreeMap::new(),
        table_sequences: BTreeMap::new(),
        domains: BTreeSet::new(),
        created: BTreeMap::new(),
    };
    let mut installation = [0u8; 16];
    rng.fill(&mut installation)?;
    let core = Core::new(
        id,
        InstallationId(installation),
        anchors,
        (identity, confidentiality, combination),
        rng,
    );
    let mut secure_box = TypedBox { core, role: Manufacturing { state: Some(Box::new(state)) } };
    secure_box.install_certificate(certificate.clone().into())?;

    let set = |rng: &mut BoxRng| -> Result<ShareSetId, BoxError> {
        let mut b = [0u8; 16];
        rng.fill(&mut b)?;
        Ok(ShareSetId(b))
    };
    let oc_set = set(&mut secure_box.core.rng)?;
    let spec = postkey_secrets::shares::SplitSpec {
        set: oc_set,
        owner: id,
        issuer: id,
        threshold: combination_policy.threshold,
        count: combination_policy.count,
        timestamp: now,
    };
    let core = &mut secure_box.core;
    let combination_shares =
        postkey_secrets::shares::split(&core.combination, &spec, &core.identity, &mut core.rng)?;
    let dks_set = set(&mut secure_box.core.rng)?;
    let m = &mut secure_box;
    let domain_key_set_shares = m.split_domain_key_set(
        dks_set,
        domain_key_set_policy.threshold,
        domain_key_set_policy.count,
        now,
    )?;
    let admin_bundle = m.create_domain(DomainId::admin(), DomainKind::Admin, Vec::new(), now)?;
    let dks = m.domain_key_set_public()?;
    let body = DomainKeySetCertificate {
        installation: secure_box.core.installation,
        confidentiality: dks.confidentiality,
        authentication: dks.authentication,
        issuer: id,
    };
    let signer = secure_box.startup_key(BoxType::Manufacturing)?;
    let context = secure_box.core.context(DomainId::admin(), now);
    let dks_certificate = postkey_wire::sign(Message::new(context, body), signer);
    Ok(FirstCeremony {
        secure_box: SecureBox::Manufacturing(secure_box),
        certificate,
        combination_shares,
        domain_key_set_shares,
        admin_bundle,
        dks_certificate,
    })
}

impl TypedBox<Manufacturing> {
    /// A new manufacturing box takes its kit: the Domain Key Set and the startup private keys,
    /// sealed to it and signed with the M startup key, whose public halves must be exactly its
    /// trust anchors; and the box-number ranges it may allocate from.
    pub(crate) fn install_kit(&mut self, kit: Unverified<Kit>) -> Result<(), BoxError> {
        let core = &mut self.core;
        if self.role.state.is_some() {
            // A kit given twice: this box is equipped already.
            return Err(BoxError::AlreadyInitialized(core.id));
        }
        let kit = kit.verify(&core.anchors.manufacturing)?;
        let body = kit.body();
        if body.recipient != core.id {
            return Err(BoxError::NotForThisBox { addressed: body.recipient, this: core.id });
        }
        let info = HpkeInfo::new(HpkeRecordType::Kit, "ADMIN", 0, &core.id.to_string())
            .map_err(|_| BoxError::Secret(postkey_secrets::SecretError::Malformed))?;
        let plain = core.confidentiality.open(&info, &body.sealed)?;
        let image: KitImage = codec::from_bytes(plain.expose_secret(), 4096)?;
        let startup: Vec<SigningKey> =
            image.startup.iter().map(|s| SigningKey::from_bytes(s.0)).collect();
        let matches = startup.len() == 5
            && BoxType::ALL
                .iter()
                .zip(&startup)
                .all(|(t, k)| k.verifying_key() == *core.anchors.for_type(*t));
        let ranges_ok = body.ranges.len() == 5
            && body.ranges.iter().enumerate().all(|(i, r)| {
                usize::from(r.box_type) == i
                    && r.first >= 1
                    && r.first <= r.last
                    && r.last <= BoxId::MAX_NUMBER
            });
        if !matches {
            return Err(BoxError::RecordMismatch(
                "the kit's startup keys are not this box's anchors",
            ));
        }
        if !ranges_ok {
            return Err(BoxError::RecordMismatch("the kit's box-number ranges are not valid"));
        }
        let state = ManufacturingState {
            domain_key_set: DomainKeySetSeed::from_bytes(image.domain_key_set),
            startup,
            ranges: body.ranges.clone(),
            certified: BTreeSet::new(),
            pending: BTreeMap::new(),
            table_sequences: BTreeMap::new(),
            domains: BTreeSet::new(),
            created: BTreeMap::new(),
        };
        self.role.state = Some(Box::new(state));
        core.changed();
        Ok(())
    }
}
