//! Domain processes: a domain's function inside one box, keyed separately per domain
//! (protocol §2, §5). A box receives a process's keys only through a delivery signed with the
//! startup key of its type and sealed to its own confidentiality key; each type's key type
//! ([`OakKeys`], [`SteelKeys`], [`BrassKeys`], [`TinKeys`]) takes exactly the keys protocol §5
//! gives that type, and a delivery carrying anything else is refused.

use std::collections::BTreeMap;

use postkey_crypto::{HpkeInfo, HpkeRecordType};
use postkey_secrets::{HpkePrivateKey, SigningKey, SubdomainAuthKey, SubdomainConfKey};
use postkey_wire::{
    BoxId, BoxType, Delivery, DomainId, DomainKind, DomainPublicKeys, LastKeyId, ProcessRecord,
    SubdomainId, Unverified, Verified, codec,
};

use crate::core::sealed::FromImage;
use crate::core::{Core, Role, TypedBox};
use crate::image::{Blob, CounterImage, KeyImage, StateImage};
use crate::{BoxError, tables};

/// The secret keys of one sub-domain, held by the Brass processes serving it.
pub struct SubdomainKeys {
    /// AES-256: wraps K in MR3 records.
    pub conf: SubdomainConfKey,
    /// HMAC-SHA256 over MR3 records.
    pub auth: SubdomainAuthKey,
}

impl core::fmt::Debug for SubdomainKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SubdomainKeys([redacted])")
    }
}

/// The keys one box type holds for one of its processes, made only from a delivery's key image.
pub trait ProcessKeys: FromImage {
    /// The box type whose processes hold these keys.
    const TYPE: BoxType;
}

/// Oak signs MI3 and MI4.
pub struct OakKeys {
    /// Domain Oak authentication key.
    pub(crate) oak_auth: SigningKey,
}

impl OakKeys {
    /// The signing key, for tests that play a faulty Oak box.
    #[cfg(any(test, feature = "testing"))]
    pub fn signing_key(&self) -> &SigningKey {
        &self.oak_auth
    }
}

/// Steel signs MI7 and ABORTED.
pub struct SteelKeys {
    /// Domain Steel authentication key.
    pub(crate) steel_auth: SigningKey,
}

/// Brass opens MI3/MI9, signs MI9, MI10, BAD, MR4 and exports; in `ADMIN` it signs audit
/// checkpoints.
pub struct BrassKeys {
    /// Domain Brass confidentiality key.
    pub(crate) brass_conf: HpkePrivateKey,
    /// Domain Brass authentication key.
    pub(crate) brass_auth: SigningKey,
    /// The ADMIN audit key, in the `ADMIN` domain only.
    pub audit: Option<SigningKey>,
    /// The sub-domains it serves.
    pub subdomains: BTreeMap<SubdomainId, SubdomainKeys>,
}

/// Tin holds no domain secret: it receives token keys in exports, of postal domains only.
#[derive(Debug)]
pub struct TinKeys;

macro_rules! redacted_debug {
    ($($t:ty),*) => {$(
        impl core::fmt::Debug for $t {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($t), "([redacted])"))
            }
        }
    )*};
}
redacted_debug!(OakKeys, SteelKeys, BrassKeys);

fn seed(bytes: &[u8]) -> Result<[u8; 32], BoxError> {
    bytes.try_into().map_err(|_| BoxError::Secret(postkey_secrets::SecretError::Malformed))
}

/// Checks that `image` is meant for `box_type` and carries only the fields `allowed` names
/// (oak, steel, brass conf, brass auth, sub-domains, audit): an absent field must be absent.
fn only(image: &KeyImage, box_type: BoxType, allowed: [bool; 6]) -> Result<(), BoxError> {
    let index = BoxType::ALL.iter().position(|t| *t == box_type).unwrap_or(usize::MAX);
    let has = [
        !image.oak_auth.is_empty(),
        !image.steel_auth.is_empty(),
        !image.brass_conf.is_empty(),
        !image.brass_auth.is_empty(),
        !image.subdomains.is_empty(),
        !image.audit.is_empty(),
    ];
    if usize::from(image.for_type) == index && has.iter().zip(allowed).all(|(h, a)| !*h || a) {
        Ok(())
    } else {
        Err(BoxError::WrongBoxType { expected: "another", actual: box_type.name() })
    }
}

impl ProcessKeys for OakKeys {
    const TYPE: BoxType = BoxType::Oak;
}

impl FromImage for OakKeys {
    fn from_image(image: &KeyImage, _: &ProcessRecord, _: DomainKind) -> Result<Self, BoxError> {
        only(image, <Self as ProcessKeys>::TYPE, [true, false, false, false, false, false])?;
        Ok(Self { oak_auth: SigningKey::from_bytes(seed(&image.oak_auth)?) })
    }
}

impl ProcessKeys for SteelKeys {
    const TYPE: BoxType = BoxType::Steel;
}

impl FromImage for SteelKeys {
    fn from_image(image: &KeyImage, _: &ProcessRecord, _: DomainKind) -> Result<Self, BoxError> {
        only(image, <Self as ProcessKeys>::TYPE, [false, true, false, false, false, false])?;
        Ok(Self { steel_auth: SigningKey::from_bytes(seed(&image.steel_auth)?) })
    }
}

impl ProcessKeys for BrassKeys {
    const TYPE: BoxType = BoxType::Brass;
}

impl FromImage for BrassKeys {
    fn from_image(
        image: &KeyImage,
        process: &ProcessRecord,
        _: DomainKind,
    ) -> Result<Self, BoxError> {
        only(image, <Self as ProcessKeys>::TYPE, [false, false, true, true, true, true])?;
        let wrong = || BoxError::WrongBoxType { expected: "another", actual: "brass" };
        let mut served = BTreeMap::new();
        for s in &image.subdomains {
            if !process.subdomains.contains(&s.subdomain) {
                return Err(wrong());
            }
            served.insert(
                s.subdomain.clone(),
                SubdomainKeys {
                    conf: SubdomainConfKey::from_bytes(s.conf),
                    auth: SubdomainAuthKey::from_bytes(s.auth),
                },
            );
        }
        if served.len() != process.subdomains.len() {
            return Err(wrong());
        }
        let audit = if image.audit.is_empty() {
            None
        } else {
            Some(SigningKey::from_bytes(seed(&image.audit)?))
        };
        Ok(Self {
            brass_conf: HpkePrivateKey::from_bytes(seed(&image.brass_conf)?),
            brass_auth: SigningKey::from_bytes(seed(&image.brass_auth)?),
            audit,
            subdomains: served,
        })
    }
}

impl ProcessKeys for TinKeys {
    const TYPE: BoxType = BoxType::Tin;
}

impl FromImage for TinKeys {
    fn from_image(
        image: &KeyImage,
        process: &ProcessRecord,
        kind: DomainKind,
    ) -> Result<Self, BoxError> {
        only(image, <Self as ProcessKeys>::TYPE, [false; 6])?;
        // Tin verifies postal tokens only (protocol §6.5): a process of the vendor's domain, of
        // EARTH or of ADMIN would let it receive keys it must never hold.
        if kind != DomainKind::Postal {
            return Err(BoxError::DomainKindNotServed { domain: process.domain.clone(), kind });
        }
        if process.subdomains.iter().any(|s| s.domain() != &process.domain) {
            return Err(BoxError::UnknownDomain(process.domain.clone()));
        }
        Ok(Self)
    }
}

/// One installed domain process of a box whose processes hold keys `K`.
#[derive(Debug)]
pub struct DomainProcess<K> {
    /// The signed delivery it came from (kept to rebuild the process when the box is enabled).
    pub(crate) delivery: Verified<Delivery>,
    /// Its keys.
    pub(crate) keys: K,
    /// Oak: the last key ID processed; Steel: the last key ID seen. Durable: advanced only
    /// after the message authenticated, and sealed before the box answers.
    pub(crate) last_key_id: u64,
}

impl<K> DomainProcess<K> {
    /// The M-signed record of this process.
    pub fn record(&self) -> &ProcessRecord {
        &self.delivery.body().process
    }

    /// The domain's public keys.
    pub fn public(&self) -> &DomainPublicKeys {
        &self.delivery.body().public
    }

    /// The sub-domains it serves (Brass, Tin).
    pub fn subdomains(&self) -> &[SubdomainId] {
        &self.delivery.body().process.subdomains
    }

    /// Its keys.
    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// The last key ID this process processed (Oak) or saw (Steel); 0 before the first.
    pub fn last_key_id(&self) -> u64 {
        self.last_key_id
    }
}

/// The processes of one box, by domain (opaque: read them through [`TypedBox::process`]).
pub struct Processes<K>(pub(crate) BTreeMap<DomainId, DomainProcess<K>>);

impl<K> Default for Processes<K> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<K> core::fmt::Debug for Processes<K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

impl<K: ProcessKeys> Processes<K> {
    /// The process of `domain`, if the domain is in the box's table and it runs one.
    pub(crate) fn of(
        &self,
        tables: &postkey_wire::ConfigTables,
        domain: &DomainId,
    ) -> Result<&DomainProcess<K>, BoxError> {
        tables::check_domain(tables, domain)?;
        self.0.get(domain).ok_or_else(|| BoxError::UnknownDomain(domain.clone()))
    }

    pub(crate) fn domains(&self) -> Vec<DomainId> {
        self.0.keys().cloned().collect()
    }

    pub(crate) fn last_key_ids(&self) -> Vec<LastKeyId> {
        self.0
            .iter()
            .map(|(domain, p)| LastKeyId { domain: domain.clone(), last: p.last_key_id })
            .collect()
    }

    /// Writes the deliveries and counters; `in_flight` gives a Steel process's installations.
    pub(crate) fn write_image(
        &self,
        image: &mut StateImage,
        in_flight: impl Fn(&DomainId) -> Vec<crate::image::InFlightImage>,
    ) {
        for (domain, p) in &self.0 {
            image.deliveries.push(Blob(p.delivery.as_bytes().to_vec()));
            image
                .counters
                .push(CounterImage { last_key_id: p.last_key_id, in_flight: in_flight(domain) });
        }
    }

    /// Rebuilds every process from its delivery, with its counter; hands each process's
    /// installations in flight to `in_flight`.
    pub(crate) fn read_image(
        core: &Core,
        image: &StateImage,
        mut in_flight: impl FnMut(&DomainId, &CounterImage) -> Result<(), BoxError>,
    ) -> Result<Self, BoxError> {
        if image.counters.len() != image.deliveries.len() {
            return Err(BoxError::Secret(postkey_secrets::SecretError::SealedStateInvalid));
        }
        let mut processes = Self::default();
        for (blob, counter) in image.deliveries.iter().zip(&image.counters) {
            let delivery =
                Unverified::<Delivery>::from_bytes(&blob.0)?.verify(core.own_anchor())?;
            let mut process = open_delivery::<K>(core, delivery)?;
            process.last_key_id = counter.last_key_id;
            let domain = process.record().domain.clone();
            in_flight(&domain, counter)?;
            processes.0.insert(domain, process);
        }
        Ok(processes)
    }
}

/// The HPKE `info` of what is sealed to one box (protocol §4): key ID 0, the box as recipient.
pub(crate) fn box_info(
    record: HpkeRecordType,
    domain: &str,
    recipient: BoxId,
) -> Result<HpkeInfo, BoxError> {
    HpkeInfo::new(record, domain, 0, &recipient.to_string())
        .map_err(|_| BoxError::Secret(postkey_secrets::SecretError::Malformed))
}

/// The HPKE `info` of a delivery to `recipient` for `domain`.
pub(crate) fn delivery_info(domain: &str, recipient: BoxId) -> Result<HpkeInfo, BoxError> {
    box_info(HpkeRecordType::Delivery, domain, recipient)
}

/// Checks the addressing of a verified delivery and opens its keys as `K`.
fn open_delivery<K: ProcessKeys>(
    core: &Core,
    delivery: Verified<Delivery>,
) -> Result<DomainProcess<K>, BoxError> {
    let body = delivery.body();
    if body.recipient != core.id || body.process.box_id != core.id {
        return Err(BoxError::NotForThisBox { addressed: body.recipient, this: core.id });
    }
    if delivery.header().domain != body.process.domain {
        return Err(BoxError::Wire(postkey_wire::WireError::InvalidField {
            field: "delivery",
            reason: "header and process name different domains",
        }));
    }
    let info = delivery_info(body.process.domain.as_str(), core.id)?;
    let plain = core.confidentiality.open(&info, &body.sealed)?;
    let image: KeyImage = codec::from_bytes(plain.expose_secret(), 16 * 1024)?;
    let keys = K::from_image(&image, &body.process, body.kind)?;
    Ok(DomainProcess { delivery, keys, last_key_id: 0 })
}

/// A role whose box runs domain processes holding keys of one type.
pub trait Serving: Role {
    /// What its processes hold.
    type Keys: ProcessKeys;

    #[doc(hidden)]
    fn processes(&self) -> &Processes<Self::Keys>;

    #[doc(hidden)]
    fn processes_mut(&mut self) -> &mut Processes<Self::Keys>;
}

impl<R: Serving> TypedBox<R> {
    /// Its process of `domain`.
    pub fn process(&self, domain: &DomainId) -> Option<&DomainProcess<R::Keys>> {
        self.role.processes().0.get(domain)
    }

    /// Its process of `domain`, which must be in its domain table.
    pub(crate) fn process_of(
        &self,
        domain: &DomainId,
    ) -> Result<&DomainProcess<R::Keys>, BoxError> {
        self.role.processes().of(&self.core.tables, domain)
    }

    /// Installs a domain process from a delivery: signed with the startup key of this box's
    /// type, addressed to this box, sealed to its confidentiality key, carrying exactly the keys
    /// of its type. The domain joins the domain table. A delivery of the same process again is
    /// answered without a change; one of another process of a domain that has one here is
    /// refused (a delivery never replaces a running process).
    pub(crate) fn install_process(
        &mut self,
        delivery: Unverified<Delivery>,
    ) -> Result<(), BoxError> {
        let delivery = delivery.verify(self.core.own_anchor())?;
        let process = open_delivery::<R::Keys>(&self.core, delivery)?;
        let domain = process.record().domain.clone();
        if let Some(existing) = self.role.processes().0.get(&domain) {
            // The same process delivered again (a ceremony run again after a stop, before the
            // archive recorded it) changes nothing; any other is refused.
            let same =
                existing.record() == process.record() && existing.public() == process.public();
            return if same { Ok(()) } else { Err(BoxError::DomainExists(domain)) };
        }
        if !self.core.tables.domains.contains(&domain) {
            self.core.tables.domains.push(domain.clone());
        }
        self.role.processes_mut().0.insert(domain, process);
        self.core.changed();
        Ok(())
    }
}

/// Implements [`Role`] and [`Serving`] for a role whose only state is its processes.
macro_rules! serving_role {
    // A role whose state is its processes alone.
    ($role:ty, $keys:ty) => {
        $crate::process::serving_role!($role, $keys, own_state);

        impl $crate::core::sealed::RoleState for $role {
            fn write_image(&self, image: &mut $crate::image::StateImage) {
                self.processes.write_image(image, |_| Vec::new());
            }

            fn read_image(
                core: &$crate::core::Core,
                image: &$crate::image::StateImage,
            ) -> Result<Self, $crate::BoxError> {
                let corrupt =
                    || $crate::BoxError::Secret(postkey_secrets::SecretError::SealedStateInvalid);
                if !image.last_ended.is_empty() || image.checkpoints.is_some() {
                    return Err(corrupt());
                }
                let processes = $crate::process::Processes::read_image(core, image, |_, c| {
                    if c.in_flight.is_empty() { Ok(()) } else { Err(corrupt()) }
                })?;
                Ok(Self { processes })
            }
        }
    };
    // A role that seals more than its processes: it writes its own `RoleState`.
    ($role:ty, $keys:ty, own_state) => {
        impl $crate::core::Role for $role {
            const TYPE: postkey_wire::BoxType = <$keys as $crate::process::ProcessKeys>::TYPE;

            fn domains(&self) -> Vec<postkey_wire::DomainId> {
                self.processes.domains()
            }

            fn last_key_ids(&self) -> Vec<postkey_wire::LastKeyId> {
                self.processes.last_key_ids()
            }
        }

        impl $crate::process::Serving for $role {
            type Keys = $keys;

            fn processes(&self) -> &$crate::process::Processes<$keys> {
                &self.processes
            }

            fn processes_mut(&mut self) -> &mut $crate::process::Processes<$keys> {
                &mut self.processes
            }
        }
    };
}
pub(crate) use serving_role;

#[cfg(test)]
mod tests {
    use super::*;

    fn record(domain: &str, subdomains: &[&str]) -> ProcessRecord {
        ProcessRecord {
            box_id: BoxId::parse("T00000001").unwrap(),
            domain: DomainId::parse(domain).unwrap(),
            subdomains: subdomains.iter().map(|s| SubdomainId::parse(s).unwrap()).collect(),
        }
    }

    fn tin_image() -> KeyImage {
        let mut image = KeyImage::default();
        image.for_type = 4;
        image
    }

    /// A Tin box refuses a process of any domain but a postal one, whoever signed the delivery:
    /// it must never be in a position to receive vendor or Earth token keys.
    #[test]
    fn tin_processes_are_of_postal_domains_and_their_subdomains_only() {
        let usps = record("USPS", &["USPS/US"]);
        assert!(TinKeys::from_image(&tin_image(), &usps, DomainKind::Postal).is_ok());
        for kind in [DomainKind::Vendor, DomainKind::Earth, DomainKind::Admin] {
            let refused = TinKeys::from_image(&tin_image(), &usps, kind).unwrap_err();
            assert_eq!(refused.response_code(), postkey_wire::ResponseCode::DOMAIN_KIND_NOT_SERVED);
        }
        let foreign = record("USPS", &["UKRM/GB"]);
        assert!(TinKeys::from_image(&tin_image(), &foreign, DomainKind::Postal).is_err());
        // A Tin image that carries any key is refused as well.
        let mut keyed = tin_image();
        keyed.oak_auth = vec![7; 32];
        assert!(TinKeys::from_image(&keyed, &usps, DomainKind::Postal).is_err());
    }

    /// Each type's keys are taken only from an image meant for that type.
    #[test]
    fn an_image_for_another_type_is_refused() {
        let mut oak = KeyImage::default();
        oak.for_type = 1;
        oak.oak_auth = vec![1; 32];
        let usps = record("USPS", &[]);
        assert!(OakKeys::from_image(&oak, &usps, DomainKind::Postal).is_ok());
        assert!(SteelKeys::from_image(&oak, &usps, DomainKind::Postal).is_err());
        assert!(TinKeys::from_image(&oak, &usps, DomainKind::Postal).is_err());
    }
}
