use std::collections::BTreeMap;

use minicbor::{Decode, Encode};
use postkey_crypto::{HpkeInfo, HpkePublicKey, HpkeRecordType};
use postkey_secrets::rng::BoxRng;
use postkey_secrets::{HpkePrivateKey, MasterKey};
use postkey_wire::{
    Context, Date, DomainId, Isn, KeyForMeter, KeyId, Mailpiece, Message, MeterHello, MeterId,
    MeterTestTokens, RegistrationRequest, ResponseCode, Sender, SubdomainId, Timestamp, Token,
    WireError, Zip, codec,
};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Why a meter refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeterError {
    /// A message that does not decode.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// MI5 for another meter.
    #[error("the key is for meter {0}, not this one")]
    NotThisMeter(MeterId),
    /// MI5 did not open with this meter's transport key.
    #[error("the key does not open with this meter's transport key")]
    DoesNotOpen,
    /// A key for a domain whose held key is as new or newer: a meter takes a key of a domain
    /// once, and replaces it only with a newer one (the KMS orders a replacement only for a key
    /// that became `Bad`).
    #[error("this meter already holds key {held} of domain {domain}, as new or newer")]
    AlreadyInstalled {
        /// The domain.
        domain: DomainId,
        /// The key ID it holds.
        held: KeyId,
    },
    /// More domains than a meter holds (one vendor, one postal).
    #[error("this meter already holds two keys (one vendor, one postal)")]
    Full,
    /// The generator failed at manufacture.
    #[error("the meter's random number generator failed")]
    Rng,
    /// A simulator state file that does not decode.
    #[error("the meter state file is corrupt")]
    Corrupt,
    /// Registration needs both keys, one of them of the target sub-domain's domain.
    #[error("this meter holds no {0} key and another: it registers only with both of its keys")]
    NotKeyedFor(DomainId),
    /// Printing needs the registration (its ISN and postal sub-domain).
    #[error("this meter is not registered: register it (factory register) before it prints")]
    NotRegistered,
    /// The piece counter would pass its largest value.
    #[error("the piece counter has {left} counts left, fewer than the {asked} asked")]
    CounterExhausted {
        /// Counts left.
        left: u32,
        /// Counts asked.
        asked: u32,
    },
}

impl MeterError {
    /// The documented response code.
    pub fn response_code(&self) -> ResponseCode {
        match self {
            Self::Wire(e) => e.response_code(),
            Self::NotThisMeter(_) => ResponseCode::RECORD_NOT_FOR_THIS_BOX,
            Self::DoesNotOpen => ResponseCode::DECRYPTION_FAILED,
            Self::AlreadyInstalled { .. } | Self::Full => ResponseCode::RECORD_MISMATCH,
            Self::Rng => ResponseCode::RNG_FAILURE,
            Self::Corrupt => ResponseCode::PARAMETER_SYNTAX,
            Self::NotKeyedFor(_) => ResponseCode::SUBDOMAIN_MISMATCH,
            Self::NotRegistered => ResponseCode::METER_NOT_REGISTERED,
            Self::CounterExhausted { .. } => ResponseCode::PIECE_COUNTER_EXHAUSTED,
        }
    }

    /// The refusal as it crosses the meter link.
    pub fn to_refusal(&self) -> postkey_wire::Refusal {
        postkey_wire::Refusal::new(self.response_code(), self.to_string())
    }
}

/// A master key held by the meter.
pub struct InstalledKey {
    /// Its key ID.
    pub key_id: KeyId,
    key: MasterKey,
}

impl core::fmt::Debug for InstalledKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "InstalledKey({}, [redacted])", self.key_id)
    }
}

impl InstalledKey {
    /// The key, for the token formulas.
    pub fn master_key(&self) -> &MasterKey {
        &self.key
    }
}

/// A postage meter: its ID, its transport key, and the master keys it holds per domain.
pub struct Meter {
    id: MeterId,
    transport: HpkePrivateKey,
    /// Its public half, computed once when first needed: the meter greets with it at every
    /// installation (a meter read only to register never needs it).
    transport_public: std::sync::OnceLock<HpkePublicKey>,
    keys: BTreeMap<DomainId, InstalledKey>,
    /// Where it is registered, once the KMC confirmed it.
    registration: Option<PostalRegistration>,
    /// The last piece count printed (0: none yet).
    count: u32,
}

/// Where a meter is registered: what each of its indicia names (protocol §6.5).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[cbor(map)]
pub struct PostalRegistration {
    /// The postal (or `EARTH`) sub-domain.
    #[n(0)]
    pub subdomain: SubdomainId,
    /// The ISN.
    #[n(1)]
    pub isn: Isn,
}

/// One mailing as the meter's user enters it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailing {
    /// The mailing date.
    pub date: Date,
    /// The postage, in the smallest currency unit.
    pub value: u32,
    /// The origin postal code.
    pub zip: Zip,
}

/// One printed mailpiece: its fields and both tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Printed {
    /// The fields the tokens cover.
    pub mailpiece: Mailpiece,
    /// The vendor's token (the meter's key of the vendor's domain).
    pub vendor: Token,
    /// The postal token (its key of the sub-domain's domain).
    pub postal: Token,
}

impl core::fmt::Debug for Meter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Meter")
            .field("id", &self.id)
            .field("keys", &self.keys)
            .field("registration", &self.registration)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

/// The most master keys a meter holds: one vendor, one postal.
pub const MAX_KEYS: usize = 2;

impl Meter {
    /// A new meter, its transport key from `rng`.
    pub fn manufacture(id: MeterId, rng: &mut BoxRng) -> Result<Self, MeterError> {
        let transport = HpkePrivateKey::generate(rng).map_err(|_| MeterError::Rng)?;
        Ok(Self {
            id,
            transport_public: Default::default(),
            transport,
            keys: BTreeMap::new(),
            registration: None,
            count: 0,
        })
    }

    /// Its ID.
    pub fn id(&self) -> &MeterId {
        &self.id
    }

    /// The keys it holds, by domain.
    pub fn keys(&self) -> &BTreeMap<DomainId, InstalledKey> {
        &self.keys
    }

    fn context(&self, domain: DomainId, key_id: Option<KeyId>, now: Timestamp) -> Context {
        Context {
            domain,
            sender: Sender::Meter(self.id.clone()),
            meter_id: Some(self.id.clone()),
            key_id,
            state_version: None,
            timestamp: now,
        }
    }

    /// Its greeting on the meter link: the transport public key.
    pub fn hello(&self, domain: DomainId, now: Timestamp) -> Message<MeterHello> {
        Message::new(
            self.context(domain, None, now),
            MeterHello {
                transport: *self.transport_public.get_or_init(|| self.transport.public_key()),
            },
        )
    }

    /// MI5 → MI6: opens K with the transport key under the `info` binding domain, key ID and this
    /// meter, keeps it, and answers its test tokens. A key of a domain it holds a key of replaces
    /// it only if its key ID is higher (the same MI5 again, or an older one replayed, is
    /// refused); at most one vendor and one postal key, which the KMS orders ensure.
    pub fn install(
        &mut self,
        message: &Message<KeyForMeter>,
        now: Timestamp,
    ) -> Result<Message<MeterTestTokens>, MeterError> {
        let h = message.header();
        let key_id = h
            .key_id
            .ok_or(WireError::InvalidField { field: "key ID", reason: "missing from MI5" })?;
        let domain = h.domain.clone();
        match &h.meter_id {
            Some(m) if *m == self.id => {}
            Some(m) => return Err(MeterError::NotThisMeter(m.clone())),
            None => {
                return Err(WireError::InvalidField {
                    field: "meter ID",
                    reason: "missing from MI5",
                }
                .into());
            }
        }
        match self.keys.get(&domain) {
            Some(held) if held.key_id >= key_id => {
                return Err(MeterError::AlreadyInstalled { domain, held: held.key_id });
            }
            Some(_) => {}
            None if self.keys.len() >= MAX_KEYS => return Err(MeterError::Full),
            None => {}
        }
        let info =
            HpkeInfo::new(HpkeRecordType::Mi5, domain.as_str(), key_id.get(), &self.id.to_string())
                .map_err(|_| MeterError::DoesNotOpen)?;
        let key = self
            .transport
            .open_master_key(&info, &message.body().sealed)
            .map_err(|_| MeterError::DoesNotOpen)?;
        let test_tokens = key.test_tokens();
        self.keys.insert(domain.clone(), InstalledKey { key_id, key });
        Ok(Message::new(self.context(domain, Some(key_id), now), MeterTestTokens { test_tokens }))
    }

    /// MR1 (protocol §6.2): one registration request per master key, each with its
    /// registration token over this meter's product code and MSN, `isn`, the country of
    /// `subdomain` and `date`. The key of `subdomain`'s domain registers into `subdomain`; the
    /// other (the vendor's) into the sub-domain of its own domain for the same country.
    pub fn registration_requests(
        &self,
        subdomain: &SubdomainId,
        isn: &Isn,
        date: Date,
        now: Timestamp,
    ) -> Result<Vec<Message<RegistrationRequest>>, MeterError> {
        let target = subdomain.domain();
        if self.keys.len() != MAX_KEYS || !self.keys.contains_key(target) {
            return Err(MeterError::NotKeyedFor(target.clone()));
        }
        let country = subdomain.country();
        let registration = postkey_secrets::Registration { meter: &self.id, isn, country, date };
        Ok(self
            .keys
            .iter()
            .map(|(domain, key)| {
                let into = if domain == target {
                    subdomain.clone()
                } else {
                    SubdomainId::new(domain.clone(), country.clone())
                };
                let body = RegistrationRequest {
                    subdomain: into,
                    isn: isn.clone(),
                    country: country.clone(),
                    date,
                    token: key.key.registration_token(&registration),
                };
                Message::new(self.context(domain.clone(), Some(key.key_id), now), body)
            })
            .collect())
    }

    /// Where it is registered, if it is.
    pub fn registration(&self) -> Option<&PostalRegistration> {
        self.registration.as_ref()
    }

    /// The last piece count printed.
    pub fn piece_count(&self) -> u32 {
        self.count
    }

    /// Keeps what `current`, a later state of this meter, has beyond its keys: its registration
    /// and its piece counter, never set back. An image of the meter taken before (a factory
    /// run's journal, applied after a stop) brings newer keys, never an older counter.
    pub fn keep_progress_of(&mut self, current: &Meter) {
        if self.registration.is_none() {
            self.registration.clone_from(&current.registration);
        }
        self.count = self.count.max(current.count);
    }

    /// Takes the registration the KMC confirmed (both keys `Active`): from now on its indicia
    /// name this ISN and sub-domain. It must hold a key of the sub-domain's domain and another.
    pub fn set_registration(&mut self, registration: PostalRegistration) -> Result<(), MeterError> {
        let target = registration.subdomain.domain();
        if self.keys.len() != MAX_KEYS || !self.keys.contains_key(target) {
            return Err(MeterError::NotKeyedFor(target.clone()));
        }
        self.registration = Some(registration);
        Ok(())
    }

    /// Prints `n` mailpieces of `mailing` (protocol §6.5): the next `n` piece counts are taken
    /// and `persist` makes the meter's state durable before any token is made, so that no
    /// count is ever printed twice, whatever stops the meter. Each mailpiece carries the
    /// vendor and postal tokens over its canonical bytes, each made with the token key of its
    /// master key for the mailing's month.
    pub fn print<E: From<MeterError>>(
        &mut self,
        mailing: &Mailing,
        n: u32,
        persist: impl FnOnce(&Self) -> Result<(), E>,
    ) -> Result<Vec<Printed>, E> {
        let registration = self.registration.clone().ok_or(MeterError::NotRegistered)?;
        let postal_domain = registration.subdomain.domain();
        let postal = self
            .keys
            .get(postal_domain)
            .ok_or_else(|| MeterError::NotKeyedFor(postal_domain.clone()))?;
        let (vendor_domain, vendor) = self
            .keys
            .iter()
            .find(|(d, _)| *d != postal_domain)
            .ok_or_else(|| MeterError::NotKeyedFor(postal_domain.clone()))?;
        let first = self.count;
        let last = first
            .checked_add(n)
            .ok_or(MeterError::CounterExhausted { left: u32::MAX - first, asked: n })?;
        let period = mailing.date.period();
        let postal_key = postal.key.token_key(postal_domain, &registration.isn, period).prepare();
        let vendor_key = vendor.key.token_key(vendor_domain, &registration.isn, period).prepare();
        self.count = last;
        if let Err(e) = persist(self) {
            // Not durable: the counts are not used, and are not taken either.
            self.count = first;
            return Err(e);
        }
        let mut canonical = Vec::with_capacity(64);
        Ok((first + 1..=last)
            .map(|count| {
                let mailpiece = Mailpiece {
                    isn: registration.isn.clone(),
                    subdomain: registration.subdomain.clone(),
                    date: mailing.date,
                    value: mailing.value,
                    count,
                    zip: mailing.zip.clone(),
                };
                Mailpiece::write_canonical(
                    &mut canonical,
                    &mailpiece.isn,
                    &mailpiece.subdomain,
                    mailpiece.date,
                    mailpiece.value,
                    mailpiece.count,
                    &mailpiece.zip,
                );
                Printed {
                    vendor: vendor_key.token_over(&canonical),
                    postal: postal_key.token_over(&canonical),
                    mailpiece,
                }
            })
            .collect())
    }

    /// The simulator's state file (protocol §12: a simulation keeps the meter's keys in a file; a real
    /// meter keeps them in its secure element).
    pub fn to_simulator_file(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let image = MeterImage {
            id: self.id.clone(),
            transport: *self.transport.expose_secret(),
            keys: self
                .keys
                .iter()
                .map(|(d, k)| KeyImage {
                    domain: d.clone(),
                    key_id: k.key_id,
                    key: *k.key.expose_secret(),
                })
                .collect(),
            registration: self.registration.clone(),
            count: self.count,
        };
        codec::to_secret_bytes(&image, 4096)
    }

    /// Reads a simulator state file.
    pub fn from_simulator_file(bytes: &[u8]) -> Result<Self, MeterError> {
        let image: MeterImage = codec::from_bytes(bytes, 4096).map_err(|_| MeterError::Corrupt)?;
        let mut keys = BTreeMap::new();
        for k in &image.keys {
            keys.insert(
                k.domain.clone(),
                InstalledKey { key_id: k.key_id, key: MasterKey::from_bytes(k.key) },
            );
        }
        let transport = HpkePrivateKey::from_bytes(image.transport);
        Ok(Self {
            id: image.id.clone(),
            transport_public: Default::default(),
            transport,
            keys,
            registration: image.registration.clone(),
            count: image.count,
        })
    }
}

#[derive(Encode, Decode, Zeroize, ZeroizeOnDrop)]
#[cbor(map)]
struct MeterImage {
    #[n(0)]
    #[zeroize(skip)]
    id: MeterId,
    #[cbor(n(1), with = "minicbor::bytes")]
    transport: [u8; 32],
    #[n(2)]
    keys: Vec<KeyImage>,
    #[n(3)]
    #[zeroize(skip)]
    registration: Option<PostalRegistration>,
    #[cbor(n(4), default)]
    count: u32,
}

#[derive(Encode, Decode, Zeroize, ZeroizeOnDrop)]
#[cbor(map)]
struct KeyImage {
    #[n(0)]
    #[zeroize(skip)]
    domain: DomainId,
    #[n(1)]
    #[zeroize(skip)]
    key_id: KeyId,
    #[cbor(n(2), with = "minicbor::bytes")]
    key: [u8; 32],
}
