//! Domain processes: a domain's function inside one box, keyed separately per domain
//! (SPEC §2, §5). A box receives a process's keys only through a delivery signed with the
//! startup key of its type and sealed to its own confidentiality key; each type receives only
//! the keys SPEC §5 gives it, and anything else in a delivery is refused.

use std::collections::BTreeMap;

use postkey_crypto::{HpkeInfo, HpkeRecordType};
use postkey_secrets::{HpkePrivateKey, SigningKey, SubdomainAuthKey, SubdomainConfKey};
use postkey_wire::{
    BoxId, BoxType, Delivery, DomainPublicKeys, ProcessRecord, SubdomainId, Unverified, Verified,
    codec,
};

use crate::image::KeyImage;
use crate::{BoxError, SecureBox};

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

/// The private keys of one process: exactly what SPEC §5 gives its box type.
// One per process, made once and never moved on a hot path: boxing the Brass variant buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum ProcessKeys {
    /// Oak signs MI3 and MI4.
    Oak {
        /// Domain Oak authentication key.
        oak_auth: SigningKey,
    },
    /// Steel signs MI7 and ABORTED.
    Steel {
        /// Domain Steel authentication key.
        steel_auth: SigningKey,
    },
    /// Brass opens MI3/MI9, signs MI9, MI10, BAD, MR4, exports; in `ADMIN` it signs audit
    /// checkpoints.
    Brass {
        /// Domain Brass confidentiality key.
        brass_conf: HpkePrivateKey,
        /// Domain Brass authentication key.
        brass_auth: SigningKey,
        /// The ADMIN audit key, in the `ADMIN` domain only.
        audit: Option<SigningKey>,
        /// The sub-domains it serves.
        subdomains: BTreeMap<SubdomainId, SubdomainKeys>,
    },
    /// Tin holds no domain secret: it receives token keys in exports.
    Tin,
}

impl core::fmt::Debug for ProcessKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self {
            Self::Oak { .. } => "Oak",
            Self::Steel { .. } => "Steel",
            Self::Brass { .. } => "Brass",
            Self::Tin => "Tin",
        };
        write!(f, "ProcessKeys::{name}([redacted])")
    }
}

/// One installed domain process.
#[derive(Debug)]
pub struct DomainProcess {
    /// The signed delivery it came from (kept to rebuild the process when the box is enabled).
    pub(crate) delivery: Verified<Delivery>,
    /// Its keys.
    pub(crate) keys: ProcessKeys,
    /// Oak: the last key ID processed; Steel: the last key ID seen. Durable: advanced only
    /// after the message authenticated, and sealed before the box answers.
    pub(crate) last_key_id: u64,
    /// Steel: the installations in progress, by key ID, sealed so that a crash is followed by
    /// an ABORTED record for each.
    pub(crate) in_flight: BTreeMap<postkey_wire::KeyId, InFlight>,
}

/// A Steel box's installation in progress: the key and the meter (no key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// The key being installed.
    pub key_id: postkey_wire::KeyId,
    /// The meter it is being installed into.
    pub meter_id: postkey_wire::MeterId,
    /// The Oak box that generated it.
    pub oak: BoxId,
}

impl DomainProcess {
    /// The M-signed record of this process.
    pub fn record(&self) -> &ProcessRecord {
        &self.delivery.body().process
    }

    /// The domain's public keys.
    pub fn public(&self) -> &DomainPublicKeys {
        &self.delivery.body().public
    }

    /// The sub-domains it serves (Brass).
    pub fn subdomains(&self) -> &[SubdomainId] {
        &self.delivery.body().process.subdomains
    }

    /// Its keys.
    pub fn keys(&self) -> &ProcessKeys {
        &self.keys
    }

    /// The last key ID this process processed (Oak) or saw (Steel); 0 before the first.
    pub fn last_key_id(&self) -> u64 {
        self.last_key_id
    }

    /// The installations in progress (Steel), by key ID.
    pub fn in_flight(&self) -> impl Iterator<Item = &InFlight> {
        self.in_flight.values()
    }
}

/// The HPKE `info` of a delivery to `recipient` for `domain`.
pub(crate) fn delivery_info(domain: &str, recipient: BoxId) -> Result<HpkeInfo, BoxError> {
    HpkeInfo::new(HpkeRecordType::Delivery, domain, 0, &recipient.to_string())
        .map_err(|_| BoxError::Secret(postkey_secrets::SecretError::Malformed))
}

fn seed(bytes: &[u8]) -> Result<[u8; 32], BoxError> {
    bytes.try_into().map_err(|_| BoxError::Secret(postkey_secrets::SecretError::Malformed))
}

/// Turns a delivery's key image into the keys of `box_type`, refusing an image meant for
/// another type or carrying any key that type must not hold.
pub(crate) fn keys_from_image(
    box_type: BoxType,
    image: &KeyImage,
    subdomains: &[SubdomainId],
) -> Result<ProcessKeys, BoxError> {
    let index = BoxType::ALL.iter().position(|t| *t == box_type).unwrap_or(usize::MAX);
    let wrong = || BoxError::WrongBoxType { expected: "another", actual: box_type.name() };
    if usize::from(image.for_type) != index {
        return Err(wrong());
    }
    let only = |present: [bool; 5]| {
        let has = [
            !image.oak_auth.is_empty(),
            !image.steel_auth.is_empty(),
            !image.brass_conf.is_empty(),
            !image.brass_auth.is_empty(),
            !image.subdomains.is_empty(),
        ];
        // Absent fields must be absent; present ones may only be those allowed.
        has.iter().zip(present).all(|(h, p)| !*h || p)
    };
    match box_type {
        BoxType::Oak if only([true, false, false, false, false]) && image.audit.is_empty() => {
            Ok(ProcessKeys::Oak { oak_auth: SigningKey::from_bytes(seed(&image.oak_auth)?) })
        }
        BoxType::Steel if only([false, true, false, false, false]) && image.audit.is_empty() => {
            Ok(ProcessKeys::Steel { steel_auth: SigningKey::from_bytes(seed(&image.steel_auth)?) })
        }
        BoxType::Brass if only([false, false, true, true, true]) => {
            let mut served = BTreeMap::new();
            for s in &image.subdomains {
                if !subdomains.contains(&s.subdomain) {
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
            if served.len() != subdomains.len() {
                return Err(wrong());
            }
            let audit = if image.audit.is_empty() {
                None
            } else {
                Some(SigningKey::from_bytes(seed(&image.audit)?))
            };
            Ok(ProcessKeys::Brass {
                brass_conf: HpkePrivateKey::from_bytes(seed(&image.brass_conf)?),
                brass_auth: SigningKey::from_bytes(seed(&image.brass_auth)?),
                audit,
                subdomains: served,
            })
        }
        BoxType::Tin if only([false; 5]) && image.audit.is_empty() => Ok(ProcessKeys::Tin),
        _ => Err(wrong()),
    }
}

impl SecureBox {
    /// Installs a domain process from a delivery: signed with the startup key of this box's
    /// type, addressed to this box, sealed to its confidentiality key, carrying exactly the keys
    /// of its type. The domain joins the domain table. A delivery of the same process again is
    /// answered without a change; one of another process of a domain that has one here is
    /// refused (a delivery never replaces a running process).
    pub(crate) fn install_process(
        &mut self,
        delivery: Unverified<Delivery>,
    ) -> Result<&DomainProcess, BoxError> {
        let delivery = delivery.verify(self.anchors.for_type(self.box_type()))?;
        let process = self.open_delivery(delivery)?;
        let domain = process.record().domain.clone();
        if let Some(existing) = self.processes.get(&domain) {
            // The same process delivered again (a ceremony run again after a stop, before the
            // archive recorded it) changes nothing; any other is refused.
            let same =
                existing.record() == process.record() && existing.public() == process.public();
            if !same {
                return Err(BoxError::DomainExists(domain));
            }
        } else {
            if !self.tables.domains.contains(&domain) {
                self.tables.domains.push(domain.clone());
            }
            self.processes.insert(domain.clone(), process);
            self.changed();
        }
        self.processes.get(&domain).ok_or(BoxError::UnknownDomain(domain))
    }

    /// Checks the addressing of a verified delivery and opens its keys.
    pub(crate) fn open_delivery(
        &self,
        delivery: Verified<Delivery>,
    ) -> Result<DomainProcess, BoxError> {
        let body = delivery.body();
        if body.recipient != self.id || body.process.box_id != self.id {
            return Err(BoxError::NotForThisBox { addressed: body.recipient, this: self.id });
        }
        if delivery.header().domain != body.process.domain {
            return Err(BoxError::Wire(postkey_wire::WireError::InvalidField {
                field: "delivery",
                reason: "header and process name different domains",
            }));
        }
        let info = delivery_info(body.process.domain.as_str(), self.id)?;
        let plain = self.confidentiality.open(&info, &body.sealed)?;
        let image: KeyImage = codec::from_bytes(plain.expose_secret(), 16 * 1024)?;
        let keys = keys_from_image(self.box_type(), &image, &body.process.subdomains)?;
        Ok(DomainProcess { delivery, keys, last_key_id: 0, in_flight: BTreeMap::new() })
    }
}
