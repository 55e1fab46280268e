//! A blank box (`X00000000`) and its initialization by Set-ID (protocol §7.2 items 1 and 3).
//!
//! ```text
//!  BlankBox::new ──offer()──► BlankOffer{nonce}  ──► manufacturing box
//!  BlankBox::accept(Set-ID) ◄── SetId{nonce, ID}   signed with the new type's startup key
//!     │  checks the signature against its trust anchor for that type, and the nonce
//!     ▼  generates identity and confidentiality keys and its operation combination
//!  Initialization { SecureBox, BoxKeys (signed by the new identity key), shares }
//! ```
//!
//! A blank box has no key and never persists: it lives for one ceremony. Accepting consumes it,
//! so an initialized box cannot be given a second ID; a refused Set-ID hands the blank box back.

use postkey_crypto::Signer as _;
use postkey_secrets::rng::BoxRng;
use postkey_secrets::shares::{ShareBody, SplitSpec};
use postkey_secrets::{HpkePrivateKey, OperationCombination, SigningKey};
use postkey_wire::{
    BlankOffer, BoxKeys, BoxType, Context, DomainId, Message, Nonce, Sender, SetId, ShareSetId,
    Timestamp, TrustAnchors, Unverified, Verified,
};

use crate::core::{Core, TypedBox};
use crate::{BoxError, SecureBox};

/// How a box's operation combination is split among custodians.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharePolicy {
    /// k: shares needed to enable the box.
    pub threshold: u8,
    /// n: shares made.
    pub count: u8,
}

impl SharePolicy {
    /// Whether the split can be made: 2 ≤ k ≤ n ≤ [`postkey_secrets::shares::MAX_SHARES`] (one
    /// share alone must never reveal the secret).
    pub fn is_valid(&self) -> bool {
        2 <= self.threshold
            && self.threshold <= self.count
            && self.count <= postkey_secrets::shares::MAX_SHARES
    }

    /// protocol §5 defaults: manufacturing boxes 2-of-3, every other box 2-of-2.
    pub fn default_for(box_type: BoxType) -> Self {
        match box_type {
            BoxType::Manufacturing => Self { threshold: 2, count: 3 },
            _ => Self { threshold: 2, count: 2 },
        }
    }
}

/// A box before initialization: trust anchors, a nonce and a generator.
pub struct BlankBox {
    anchors: TrustAnchors,
    nonce: Nonce,
    rng: BoxRng,
}

impl core::fmt::Debug for BlankBox {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BlankBox").field("nonce", &self.nonce).finish_non_exhaustive()
    }
}

/// A refused initialization.
#[derive(Debug)]
pub struct Rejected {
    /// The blank box, unchanged, when the Set-ID itself was refused; `None` when the refusal
    /// came later (the generator failed), since the blank box is spent by then.
    pub blank: Option<Box<BlankBox>>,
    /// Why.
    pub error: BoxError,
}

/// What initialization makes.
#[derive(Debug)]
pub struct Initialization {
    /// The box, enabled.
    pub secure_box: SecureBox,
    /// Its public keys, signed by its new identity key, for the manufacturing box to certify.
    pub keys: Verified<BoxKeys>,
    /// Its operation combination's shares, for the custodians.
    pub shares: Vec<Verified<ShareBody>>,
}

impl BlankBox {
    /// A blank box holding `anchors`, with a fresh nonce from its generator.
    pub fn new(anchors: TrustAnchors, mut rng: BoxRng) -> Result<Self, BoxError> {
        let mut nonce = [0u8; 32];
        rng.fill(&mut nonce)?;
        Ok(Self { anchors, nonce: Nonce(nonce), rng })
    }

    /// The fingerprint of the anchors it holds, for the operators to confirm.
    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
    }

    /// Its offer: the nonce a Set-ID must carry.
    pub fn offer(&self, now: Timestamp) -> Message<BlankOffer> {
        let context = Context {
            domain: DomainId::admin(),
            sender: Sender::BlankBox,
            meter_id: None,
            key_id: None,
            state_version: None,
            timestamp: now,
        };
        Message::new(context, BlankOffer { nonce: self.nonce, anchors: self.anchors.fingerprint() })
    }

    /// Takes the ID a Set-ID gives, if it is signed with the startup key of that ID's type and
    /// bound to this box's nonce; then generates the box's keys and operation combination and
    /// splits the latter by `policy`. A refused Set-ID hands the blank box back unchanged.
    pub fn accept(
        self,
        set_id: Unverified<SetId>,
        policy: SharePolicy,
        now: Timestamp,
    ) -> Result<Initialization, Rejected> {
        match self.check(set_id) {
            Ok(set_id) => self
                .initialize(&set_id, policy, now)
                .map_err(|error| Rejected { blank: None, error }),
            Err(error) => Err(Rejected { blank: Some(Box::new(self)), error }),
        }
    }

    fn check(&self, unverified: Unverified<SetId>) -> Result<Verified<SetId>, BoxError> {
        let box_type = unverified.claimed_body().new_id.box_type();
        let set_id = unverified.verify(self.anchors.for_type(box_type))?;
        if set_id.body().nonce != self.nonce {
            return Err(BoxError::NonceMismatch);
        }
        Ok(set_id)
    }

    fn initialize(
        mut self,
        set_id: &Verified<SetId>,
        policy: SharePolicy,
        now: Timestamp,
    ) -> Result<Initialization, BoxError> {
        let id = set_id.body().new_id;
        let identity = SigningKey::generate(&mut self.rng)?;
        let confidentiality = HpkePrivateKey::generate(&mut self.rng)?;
        let combination = OperationCombination::generate(&mut self.rng)?;
        let mut set = [0u8; 16];
        self.rng.fill(&mut set)?;
        let spec = SplitSpec {
            set: ShareSetId(set),
            owner: id,
            issuer: id,
            threshold: policy.threshold,
            count: policy.count,
            timestamp: now,
        };
        let shares = postkey_secrets::shares::split(&combination, &spec, &identity, &mut self.rng)?;
        let mut core = Core::new(
            id,
            set_id.body().installation,
            self.anchors,
            (identity, confidentiality, combination),
            self.rng,
        );
        core.changed();
        let body = BoxKeys {
            nonce: set_id.body().nonce,
            box_id: id,
            identity: core.identity.verifying_key(),
            confidentiality: core.confidentiality.public_key(),
        };
        let keys = postkey_wire::sign(
            Message::new(core.context(DomainId::admin(), now), body),
            &core.identity,
        );
        let secure_box = match id.box_type() {
            // A new manufacturing box waits for its kit.
            BoxType::Manufacturing => {
                SecureBox::Manufacturing(TypedBox { core, role: Default::default() })
            }
            BoxType::Oak => SecureBox::Oak(TypedBox { core, role: Default::default() }),
            BoxType::Steel => SecureBox::Steel(TypedBox { core, role: Default::default() }),
            BoxType::Brass => SecureBox::Brass(TypedBox { core, role: Default::default() }),
            BoxType::Tin => SecureBox::Tin(TypedBox { core, role: Default::default() }),
        };
        Ok(Initialization { secure_box, keys, shares })
    }
}
