//! The manufacturing box: the first ceremony, box initialization (Set-ID, certificates, kits
//! for new manufacturing boxes), domain creation and deliveries (protocol §7.2).

use std::collections::{BTreeMap, BTreeSet};

use postkey_crypto::{HpkeInfo, HpkePublicKey, HpkeRecordType, Signer as _, VerifyingKey};
use postkey_secrets::kdf::hkdf_sha256;
use postkey_secrets::shares::{ShareBody, SplitSpec};
use postkey_secrets::{
    DomainKeySetSeed, HpkePrivateKey, SigningKey, SubdomainAuthKey, SubdomainConfKey,
};
use postkey_wire::{
    BlankOffer, BoxId, BoxKeys, BoxType, Certificate, ConfigTables, Delivery, DomainBundle,
    DomainId, DomainKind, DomainPublicKeys, IdRange, Kit, Message, ProcessRecord, SubdomainId,
    TableUpdate, Timestamp, Transcript, Unverified, Verified, codec,
};

use crate::core::{Role, TypedBox};
use crate::image::{BUNDLE_TYPE, KeyImage, KitImage, Seed, SubdomainImage};
use crate::process::delivery_info;
use crate::{BoxError, tables};

/// How many box numbers of each type a manufacturing box hands to each new manufacturing box.
pub const DELEGATED_BLOCK: u32 = 1_000_000;

/// What only a manufacturing box holds.
pub(crate) struct ManufacturingState {
    pub(crate) domain_key_set: DomainKeySetSeed,
    /// The five startup authentication private keys, in the order of `BoxType::ALL`.
    pub(crate) startup: Vec<SigningKey>,
    /// The box numbers still free, per type (`first` is the next to allocate).
    pub(crate) ranges: Vec<IdRange>,
    pub(crate) certified: BTreeSet<BoxId>,
    /// Set-IDs issued and not yet answered: nonce → the ID given.
    pub(crate) pending: BTreeMap<[u8; 32], BoxId>,
    /// The last table-update sequence number signed per box.
    pub(crate) table_sequences: BTreeMap<BoxId, u64>,
    /// The domains whose bundles this box created or adopted.
    pub(crate) domains: BTreeSet<DomainId>,
    /// The bundles this box created, as signed: a `CREATE_DOMAIN` run again after a stop (the
    /// bundle made but never archived) answers the same bundle instead of losing the domain.
    pub(crate) created: BTreeMap<DomainId, Vec<u8>>,
}

fn type_index(t: BoxType) -> usize {
    BoxType::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

/// The Domain Key Set's key pairs, derived from its shared seed.
pub(crate) struct DomainKeySet {
    pub(crate) conf: HpkePrivateKey,
    pub(crate) auth: SigningKey,
}

impl DomainKeySet {
    pub(crate) fn derive(seed: &DomainKeySetSeed) -> Result<Self, BoxError> {
        let part = |label: &[u8]| -> Result<[u8; 32], BoxError> {
            let okm = hkdf_sha256(seed.expose_secret(), b"postkey/domain-key-set/v1", label, 32)?;
            okm.expose_secret()
                .try_into()
                .map_err(|_| BoxError::Secret(postkey_secrets::SecretError::Malformed))
        };
        Ok(Self {
            conf: HpkePrivateKey::from_bytes(part(b"confidentiality")?),
            auth: SigningKey::from_bytes(part(b"authentication")?),
        })
    }

    fn bundle_info(domain: &DomainId) -> Result<HpkeInfo, BoxError> {
        HpkeInfo::new(HpkeRecordType::Bundle, domain.as_str(), 0, "DKS")
            .map_err(|_| BoxError::Secret(postkey_secrets::SecretError::Malformed))
    }
}

/// The public half of the Domain Key Set: what every manufacturing box and auditor checks
/// domain bundles against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainKeySetPublic {
    /// Bundles are sealed to this key.
    pub confidentiality: HpkePublicKey,
    /// Bundles are signed with this key.
    pub authentication: VerifyingKey,
}

/// A manufacturing box's role: once it has its kit (the first box makes its own), the Domain Key
/// Set, the startup keys and its bookkeeping. It runs no domain process.
#[derive(Default)]
pub struct Manufacturing {
    /// `None` while a new manufacturing box waits for its kit.
    pub(crate) state: Option<Box<ManufacturingState>>,
}

impl core::fmt::Debug for Manufacturing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Manufacturing")
            .field("equipped", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl Manufacturing {
    /// Its state, once it has its kit.
    pub(crate) fn held(&self) -> Result<&ManufacturingState, BoxError> {
        self.state.as_deref().ok_or(BoxError::AwaitingKit)
    }

    pub(crate) fn held_mut(&mut self) -> Result<&mut ManufacturingState, BoxError> {
        self.state.as_deref_mut().ok_or(BoxError::AwaitingKit)
    }
}

impl Role for Manufacturing {
    const TYPE: BoxType = BoxType::Manufacturing;

    fn domains(&self) -> Vec<DomainId> {
        self.state.as_ref().map(|m| m.domains.iter().cloned().collect()).unwrap_or_default()
    }

    fn free_box_ids(&self) -> Vec<IdRange> {
        self.state.as_ref().map(|m| m.ranges.clone()).unwrap_or_default()
    }
}

/// What [`TypedBox::<Manufacturing>::deliver`] makes.
#[derive(Debug)]
pub struct DeliveryOutput {
    /// The keys, sealed to the box and signed with its type's startup key.
    pub delivery: Verified<Delivery>,
    /// The record that the box runs the process, for the KMC and the domain's other boxes.
    pub record: Verified<ProcessRecord>,
}

impl TypedBox<Manufacturing> {
    pub(crate) fn startup_key(&self, t: BoxType) -> Result<&SigningKey, BoxError> {
        self.role
            .held()?
            .startup
            .get(type_index(t))
            .ok_or(BoxError::Secret(postkey_secrets::SecretError::Malformed))
    }

    fn domain_key_set(&self) -> Result<DomainKeySet, BoxError> {
        DomainKeySet::derive(&self.role.held()?.domain_key_set)
    }

    /// The Domain Key Set's public keys.
    pub fn domain_key_set_public(&self) -> Result<DomainKeySetPublic, BoxError> {
        let dks = self.domain_key_set()?;
        Ok(DomainKeySetPublic {
            confidentiality: dks.conf.public_key(),
            authentication: dks.auth.verifying_key(),
        })
    }

    /// Set-ID (protocol §7.2 item 3): the next ID of `box_type` from this box's own range, bound to
    /// the blank box's nonce and signed with the type's startup key.
    pub(crate) fn issue_set_id(
        &mut self,
        offer: &Message<BlankOffer>,
        box_type: BoxType,
        now: Timestamp,
    ) -> Result<Verified<postkey_wire::SetId>, BoxError> {
        if offer.body().anchors != self.core.anchors.fingerprint() {
            return Err(BoxError::Wire(postkey_wire::WireError::InvalidField {
                field: "blank offer",
                reason: "the blank box holds other trust anchors",
            }));
        }
        let state = self.role.held_mut()?;
        let range = state
            .ranges
            .get_mut(type_index(box_type))
            .ok_or(BoxError::IdRangeExhausted(box_type.name()))?;
        if range.first > range.last {
            return Err(BoxError::IdRangeExhausted(box_type.name()));
        }
        let new_id = BoxId::new(box_type, range.first)?;
        range.first += 1;
        state.pending.insert(offer.body().nonce.0, new_id);
        let body = postkey_wire::SetId {
            nonce: offer.body().nonce,
            new_id,
            issuer: self.core.id,
            installation: self.core.installation,
        };
        let message = Message::new(self.core.context(DomainId::admin(), now), body);
        let signed = postkey_wire::sign(message, self.startup_key(box_type)?);
        self.core.changed();
        Ok(signed)
    }

    /// Certifies a new box's keys: the answer to a Set-ID this box issued, signed by the new
    /// box's own identity key. Each ID is certified once.
    pub(crate) fn certify(
        &mut self,
        unverified: Unverified<BoxKeys>,
        now: Timestamp,
    ) -> Result<Verified<Certificate>, BoxError> {
        let identity = unverified.header().sender.clone();
        let claimed = unverified.claimed_body().identity;
        let keys = unverified.verify(&claimed)?;
        let body = keys.body();
        if identity != postkey_wire::Sender::Box(body.box_id) {
            return Err(BoxError::NonceMismatch);
        }
        let state = self.role.held_mut()?;
        if state.certified.contains(&body.box_id) {
            return Err(BoxError::AlreadyCertified(body.box_id));
        }
        match state.pending.get(&body.nonce.0) {
            Some(id) if *id == body.box_id => {}
            _ => return Err(BoxError::NonceMismatch),
        }
        state.pending.remove(&body.nonce.0);
        state.certified.insert(body.box_id);
        let cert = Certificate {
            box_id: body.box_id,
            identity: body.identity,
            confidentiality: body.confidentiality,
            issuer: self.core.id,
            issued: now,
        };
        let message = Message::new(self.core.context(DomainId::admin(), now), cert);
        let signed = postkey_wire::sign(message, self.startup_key(body.box_id.box_type())?);
        self.core.changed();
        Ok(signed)
    }

    /// Creates a security domain in the ADMIN domain: generates every key of protocol §5 for it and
    /// its sub-domains, and returns its bundle, sealed to and signed with the Domain Key Set.
    pub(crate) fn create_domain(
        &mut self,
        domain: DomainId,
        kind: DomainKind,
        subdomains: Vec<SubdomainId>,
        now: Timestamp,
    ) -> Result<Verified<DomainBundle>, BoxError> {
        if self.role.held()?.domains.contains(&domain) {
            // Run again after a stop: the same domain asked for the same way gets the bundle
            // this box made, so a bundle made but never archived is not lost.
            return self.created_bundle(&domain, kind, &subdomains);
        }
        if domain.is_admin() != (kind == DomainKind::Admin) {
            return Err(BoxError::Wire(postkey_wire::WireError::InvalidField {
                field: "domain",
                reason: "only ADMIN is the administration domain",
            }));
        }
        if domain.is_reserved_chain() {
            return Err(BoxError::Wire(postkey_wire::WireError::InvalidField {
                field: "domain",
                reason: "ERRORS and SIGHTS name chains of the archive, not domains",
            }));
        }
        if subdomains.iter().collect::<BTreeSet<_>>().len() != subdomains.len() {
            return Err(BoxError::Wire(postkey_wire::WireError::InvalidField {
                field: "sub-domains",
                reason: "a sub-domain is listed twice",
            }));
        }
        if subdomains.iter().any(|s| s.domain() != &domain)
            || (subdomains.is_empty() && kind != DomainKind::Admin)
        {
            return Err(BoxError::Wire(postkey_wire::WireError::InvalidField {
                field: "sub-domains",
                reason: "every domain has at least one sub-domain, each of its own domain",
            }));
        }
        let rng = &mut self.core.rng;
        let oak_auth = SigningKey::generate(rng)?;
        let steel_auth = SigningKey::generate(rng)?;
        let brass_conf = HpkePrivateKey::generate(rng)?;
        let brass_auth = SigningKey::generate(rng)?;
        let audit = if kind == DomainKind::Admin { Some(SigningKey::generate(rng)?) } else { None };
        let mut sub_images = Vec::with_capacity(subdomains.len());
        for s in &subdomains {
            let conf = SubdomainConfKey::generate(rng)?;
            let auth = SubdomainAuthKey::generate(rng)?;
            sub_images.push(SubdomainImage {
                subdomain: s.clone(),
                conf: *conf.expose_secret(),
                auth: *auth.expose_secret(),
            });
        }
        let public = DomainPublicKeys {
            oak_auth: oak_auth.verifying_key(),
            steel_auth: steel_auth.verifying_key(),
            brass_conf: brass_conf.public_key(),
            brass_auth: brass_auth.verifying_key(),
            audit: audit.as_ref().map(|a| a.verifying_key()),
        };
        let image = KeyImage {
            for_type: BUNDLE_TYPE,
            oak_auth: oak_auth.expose_secret().to_vec(),
            steel_auth: steel_auth.expose_secret().to_vec(),
            brass_conf: brass_conf.expose_secret().to_vec(),
            brass_auth: brass_auth.expose_secret().to_vec(),
            audit: audit.as_ref().map(|a| a.expose_secret().to_vec()).unwrap_or_default(),
            subdomains: sub_images,
        };
        let dks = self.domain_key_set()?;
        let plain = codec::to_secret_bytes(&image, 4096);
        let sealed = postkey_secrets::seal_secret(
            &dks.conf.public_key(),
            &DomainKeySet::bundle_info(&domain)?,
            &plain,
            &mut self.core.rng,
        )?;
        let body = DomainBundle { domain: domain.clone(), kind, subdomains, public, sealed };
        let signed = postkey_wire::sign(
            Message::new(self.core.context(domain.clone(), now), body),
            &dks.auth,
        );
        let state = self.role.held_mut()?;
        state.domains.insert(domain.clone());
        state.created.insert(domain.clone(), signed.as_bytes().to_vec());
        if !self.core.tables.domains.contains(&domain) {
            self.core.tables.domains.push(domain);
        }
        self.core.changed();
        Ok(signed)
    }

    /// The bundle this box created for `domain`, if it was created with `kind` and `subdomains`;
    /// any other request for an existing domain is refused.
    fn created_bundle(
        &self,
        domain: &DomainId,
        kind: DomainKind,
        subdomains: &[SubdomainId],
    ) -> Result<Verified<DomainBundle>, BoxError> {
        let exists = || BoxError::DomainExists(domain.clone());
        let bytes = self.role.held()?.created.get(domain).ok_or_else(exists)?;
        let bundle = self.check_bundle(Unverified::from_bytes(bytes)?)?;
        if bundle.body().kind != kind || bundle.body().subdomains != subdomains {
            return Err(exists());
        }
        Ok(bundle)
    }

    /// Checks a domain bundle against the Domain Key Set.
    pub(crate) fn check_bundle(
        &self,
        bundle: Unverified<DomainBundle>,
    ) -> Result<Verified<DomainBundle>, BoxError> {
        let dks = self.domain_key_set()?;
        Ok(bundle.verify(&dks.auth.verifying_key())?)
    }

    /// Adopts a domain created by another manufacturing box (protocol §7.2 item 5): its bundle,
    /// checked against the shared Domain Key Set, puts the domain in this box's table.
    pub(crate) fn adopt_domain(
        &mut self,
        bundle: Unverified<DomainBundle>,
    ) -> Result<DomainId, BoxError> {
        let bundle = self.check_bundle(bundle)?;
        let domain = bundle.body().domain.clone();
        // A domain known already is adopted again unchanged: a ceremony run again after a stop
        // copies its domains once more.
        if !self.role.held_mut()?.domains.insert(domain.clone()) {
            return Ok(domain);
        }
        if !self.core.tables.domains.contains(&domain) {
            self.core.tables.domains.push(domain.clone());
        }
        self.core.changed();
        Ok(domain)
    }

    /// Makes a domain process in another box (protocol §7.2 item 4): the keys its type needs of the
    /// domain's bundle, sealed to the box's certified confidentiality key, signed with the startup
    /// key of its type. A Brass process gets the keys of exactly the sub-domains it serves.
    pub(crate) fn deliver(
        &mut self,
        bundle: Unverified<DomainBundle>,
        cert: Unverified<Certificate>,
        subdomains: Vec<SubdomainId>,
        now: Timestamp,
    ) -> Result<DeliveryOutput, BoxError> {
        let bundle = self.check_bundle(bundle)?;
        let domain = bundle.body().domain.clone();
        tables::check_domain(&self.core.tables, &domain)?;
        if !self.role.held()?.domains.contains(&domain) {
            return Err(BoxError::UnknownDomain(domain));
        }
        let target_type = cert.claimed_body().box_id.box_type();
        let cert = cert.verify(self.core.anchors.for_type(target_type))?;
        let target = cert.body().box_id;
        if target_type == BoxType::Manufacturing {
            return Err(BoxError::WrongBoxType {
                expected: "oak, steel, brass or tin",
                actual: "manufacturing",
            });
        }
        // Brass serves sub-domains with their keys; Tin serves postal domains only, and may be
        // scoped to some of their sub-domains (protocol §6.5); the others serve no sub-domain.
        let kind = bundle.body().kind;
        if target_type == BoxType::Tin && kind != DomainKind::Postal {
            return Err(BoxError::DomainKindNotServed { domain, kind });
        }
        if !matches!(target_type, BoxType::Brass | BoxType::Tin) && !subdomains.is_empty() {
            return Err(BoxError::WrongBoxType { expected: "brass", actual: target_type.name() });
        }
        if subdomains.iter().any(|s| !bundle.body().subdomains.contains(s)) {
            return Err(BoxError::UnknownDomain(domain));
        }
        if subdomains.iter().collect::<BTreeSet<_>>().len() != subdomains.len() {
            return Err(BoxError::Wire(postkey_wire::WireError::InvalidField {
                field: "sub-domains",
                reason: "a sub-domain is listed twice",
            }));
        }
        let dks = self.domain_key_set()?;
        let plain = dks.conf.open(&DomainKeySet::bundle_info(&domain)?, &bundle.body().sealed)?;
        let all: KeyImage = codec::from_bytes(plain.expose_secret(), 16 * 1024)?;
        let mut image = KeyImage::default();
        image.for_type = type_index(target_type) as u8;
        match target_type {
            BoxType::Oak => image.oak_auth = all.oak_auth.clone(),
            BoxType::Steel => image.steel_auth = all.steel_auth.clone(),
            BoxType::Brass => {
                image.brass_conf = all.brass_conf.clone();
                image.brass_auth = all.brass_auth.clone();
                image.audit = all.audit.clone();
                image.subdomains = all
                    .subdomains
                    .iter()
                    .filter(|s| subdomains.contains(&s.subdomain))
                    .map(|s| SubdomainImage {
                        subdomain: s.subdomain.clone(),
                        conf: s.conf,
                        auth: s.auth,
                    })
                    .collect();
            }
            BoxType::Tin | BoxType::Manufacturing => {}
        }
        let plain = codec::to_secret_bytes(&image, 4096);
        let sealed = postkey_secrets::seal_secret(
            &cert.body().confidentiality,
            &delivery_info(domain.as_str(), target)?,
            &plain,
            &mut self.core.rng,
        )?;
        let process = ProcessRecord { box_id: target, domain: domain.clone(), subdomains };
        let startup = self.startup_key(target_type)?;
        let record = postkey_wire::sign(
            Message::new(self.core.context(domain.clone(), now), process.clone()),
            startup,
        );
        let public = bundle.body().public.clone();
        let body = Delivery { recipient: target, process, public, sealed, kind };
        let delivery =
            postkey_wire::sign(Message::new(self.core.context(domain, now), body), startup);
        Ok(DeliveryOutput { delivery, record })
    }

    /// Signs a configuration-table update for `recipient`, with the next sequence number.
    pub(crate) fn sign_tables(
        &mut self,
        recipient: BoxId,
        tables: ConfigTables,
        now: Timestamp,
    ) -> Result<Verified<TableUpdate>, BoxError> {
        let state = self.role.held_mut()?;
        let sequence = state.table_sequences.get(&recipient).copied().unwrap_or(0) + 1;
        state.table_sequences.insert(recipient, sequence);
        let body = TableUpdate { recipient, sequence, tables };
        let signed = postkey_wire::sign(
            Message::new(self.core.context(DomainId::admin(), now), body),
            self.startup_key(recipient.box_type())?,
        );
        self.core.changed();
        Ok(signed)
    }

    /// Equips a new manufacturing box (protocol §7.2 item 3): the Domain Key Set and the startup
    /// private keys sealed to it, and a block of box numbers of every type from this box's range.
    pub(crate) fn issue_kit(
        &mut self,
        recipient: Unverified<Certificate>,
        now: Timestamp,
    ) -> Result<Verified<Kit>, BoxError> {
        let cert = recipient.verify(&self.core.anchors.manufacturing)?;
        let target = cert.body().box_id;
        if target.box_type() != BoxType::Manufacturing {
            return Err(BoxError::WrongBoxType {
                expected: "manufacturing",
                actual: target.box_type().name(),
            });
        }
        let state = self.role.held_mut()?;
        // Every range must have a block to give before any is shrunk: a refusal changes nothing.
        if state
            .ranges
            .iter()
            .any(|r| r.last.saturating_sub(r.first).saturating_add(1) <= DELEGATED_BLOCK)
        {
            return Err(BoxError::IdRangeExhausted("any"));
        }
        let mut ranges = Vec::with_capacity(5);
        for r in &mut state.ranges {
            // Hand over the top of the range, keeping this box's next numbers contiguous.
            let first = r.last - DELEGATED_BLOCK + 1;
            ranges.push(IdRange { box_type: r.box_type, first, last: r.last });
            r.last = first - 1;
        }
        let image = KitImage {
            domain_key_set: *state.domain_key_set.expose_secret(),
            startup: state.startup.iter().map(|k| Seed(*k.expose_secret())).collect(),
        };
        let plain = codec::to_secret_bytes(&image, 4096);
        let info = crate::process::box_info(HpkeRecordType::Kit, "ADMIN", target)?;
        let sealed = postkey_secrets::seal_secret(
            &cert.body().confidentiality,
            &info,
            &plain,
            &mut self.core.rng,
        )?;
        let body = Kit { recipient: target, ranges, sealed };
        let signed = postkey_wire::sign(
            Message::new(self.core.context(DomainId::admin(), now), body),
            self.startup_key(BoxType::Manufacturing)?,
        );
        self.core.changed();
        Ok(signed)
    }

    /// Signs a ceremony transcript with this box's identity key.
    pub(crate) fn sign_transcript(
        &mut self,
        transcript: Transcript,
        now: Timestamp,
    ) -> Result<Verified<Transcript>, BoxError> {
        Ok(postkey_wire::sign(
            Message::new(self.core.context(DomainId::admin(), now), transcript),
            &self.core.identity,
        ))
    }

    /// Splits the Domain Key Set among custodians (k-of-n), shares signed by this box; only the
    /// first ceremony does this.
    pub(crate) fn split_domain_key_set(
        &mut self,
        set: postkey_wire::ShareSetId,
        threshold: u8,
        count: u8,
        now: Timestamp,
    ) -> Result<Vec<Verified<ShareBody>>, BoxError> {
        let spec = SplitSpec {
            set,
            owner: self.core.id,
            issuer: self.core.id,
            threshold,
            count,
            timestamp: now,
        };
        let state = self.role.held()?;
        Ok(postkey_secrets::shares::split(
            &state.domain_key_set,
            &spec,
            &self.core.identity,
            &mut self.core.rng,
        )?)
    }
}
