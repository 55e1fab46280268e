//! The Brass box: it checks installations (protocol §6.1, MI8 = MI3 + MI7 → MI9 + MI10, or
//! BAD), and with the `ADMIN` process signs the audit trail's checkpoints (protocol §6.6);
//! registers keys into the sub-domains it serves and withdraws them (protocol §6.2, §6.3);
//! verifies mailpieces' tokens and exports a month's token keys to Tin boxes (protocol §6.5).
//! Its processes hold the domain Brass keys and the keys of the sub-domains they serve.

use std::collections::BTreeMap;
use std::sync::Arc;

use postkey_crypto::{HpkeRecordType, Signer as _};
use postkey_secrets::TokenMac;
use postkey_wire::command::{
    CheckpointChain, Checkpointed, ExportTokenKeys, Registered, TokenBits, Verdicts, Verify,
    VerifyKey,
};
use postkey_wire::{
    BadKey, ChainHash, Checkpoint, DomainId, InstallConfirmed, Installed, InstalledKeyRecord,
    Maced, Mailpiece, Message, NewKeyRecord, RegisteredKey, RegistrationConfirmed,
    RegistrationRequest, ResponseCode, Sender, Timestamp, TinExport, Unverified, Verified,
    Withdrawn,
};
use subtle::ConstantTimeEq as _;

use crate::BoxError;

use crate::core::sealed::RoleState;
use crate::core::{Core, TypedBox};
use crate::image::{Blob, StateImage};
use crate::install::{brass_recipient, header_key, header_meter, key_info};
use crate::process::{BrassKeys, Processes, serving_role};
use crate::token_keys::{CheckedMr3, CheckedMr3s, DerivedFor, TokenKeys};

/// A Brass box's role: its processes, and the last checkpoint it signed of each chain.
#[derive(Debug, Default)]
pub struct Brass {
    pub(crate) processes: Processes<BrassKeys>,
    /// Sealed with the state: a checkpoint is signed only if it extends the chain's last.
    checkpoints: BTreeMap<DomainId, Unverified<Checkpoint>>,
    /// The token keys derived while verifying: memory only, never sealed.
    token_keys: TokenKeys,
    /// The MR3s whose MAC it checked while verifying, by digest: memory only.
    checked: CheckedMr3s,
}

serving_role!(Brass, BrassKeys, own_state);

impl RoleState for Brass {
    fn write_image(&self, image: &mut StateImage) {
        self.processes.write_image(image, |_| Vec::new());
        image.checkpoints = (!self.checkpoints.is_empty())
            .then(|| self.checkpoints.values().map(|c| Blob(c.as_bytes().to_vec())).collect());
    }

    fn read_image(core: &Core, image: &StateImage) -> Result<Self, BoxError> {
        let corrupt = || BoxError::Secret(postkey_secrets::SecretError::SealedStateInvalid);
        if !image.last_ended.is_empty() {
            return Err(corrupt());
        }
        let processes = Processes::read_image(core, image, |_, c| {
            if c.in_flight.is_empty() { Ok(()) } else { Err(corrupt()) }
        })?;
        let mut checkpoints = BTreeMap::new();
        for blob in image.checkpoints.iter().flatten() {
            let c = Unverified::<Checkpoint>::from_bytes(&blob.0).map_err(|_| corrupt())?;
            if checkpoints.insert(c.claimed_body().chain.clone(), c).is_some() {
                return Err(corrupt());
            }
        }
        Ok(Self {
            processes,
            checkpoints,
            token_keys: TokenKeys::default(),
            checked: CheckedMr3s::default(),
        })
    }
}

/// What a Brass process found in MI3 and MI7.
// Made once per key and moved once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum CheckOutcome {
    /// They match: MI9 for the archive and MI10 for the KDC.
    Installed {
        /// MI9.
        mi9: Verified<InstalledKeyRecord>,
        /// MI10.
        mi10: Verified<InstallConfirmed>,
    },
    /// They do not: BAD.
    Bad(Verified<BadKey>),
}

impl TypedBox<Brass> {
    /// `CHECKPOINT` (protocol §6.6): signs, with the `ADMIN` audit key, that `chain` had `count`
    /// events ending in `head`, if that extends the chain's last checkpoint: as many events or
    /// more, and the same head at the same count (then that checkpoint is answered again).
    ///
    /// The last checkpoint is this box's (sealed in its state) or, if the archive keeps a later
    /// one signed with the audit key (another audit box's, or one this box signed before its
    /// state was replaced), that one. The archive's must be this box's last, or the one before
    /// (a stop came between this box sealing its last and the archive keeping it: answered as
    /// `missing`). Anything else, a chain behind the last checkpoint, or another head at its
    /// count, is an archive put back from an older copy or rewritten, and is refused (3676).
    pub(crate) fn checkpoint(
        &mut self,
        request: CheckpointChain,
        now: Timestamp,
    ) -> Result<Checkpointed, BoxError> {
        let CheckpointChain { chain, count, head, kept } = request;
        let process = self.role.processes.of(&self.core.tables, &DomainId::admin())?;
        let audit = process
            .keys
            .audit
            .as_ref()
            .ok_or_else(|| BoxError::UnknownDomain(DomainId::admin()))?;
        let refuse = |last: String, why| BoxError::CheckpointRefused {
            chain: chain.clone(),
            count,
            last,
            why,
        };
        let kept = match kept.as_slice() {
            [] => None,
            [one] => {
                let v = one.clone().verify(&audit.verifying_key())?;
                let b = v.body();
                if b.chain != chain || b.installation != self.core.installation {
                    return Err(BoxError::RecordMismatch(
                        "the kept checkpoint is of another chain or installation",
                    ));
                }
                Some(one.clone())
            }
            _ => return Err(BoxError::RecordMismatch("more than one kept checkpoint")),
        };
        let own = self.role.checkpoints.get(&chain).cloned();
        let number =
            |c: &Option<Unverified<Checkpoint>>| c.as_ref().map_or(0, |c| c.claimed_body().number);
        let digest = |c: &Option<Unverified<Checkpoint>>| {
            c.as_ref()
                .map_or(ChainHash([0; 32]), |c| ChainHash(postkey_crypto::sha256(c.as_bytes())))
        };
        let (kept_n, own_n) = (number(&kept), number(&own));
        let (last, missing) = if own_n > kept_n + 1 {
            return Err(refuse(
                format!("#{own_n}"),
                "the archive lacks checkpoints this box signed",
            ));
        } else if own_n == kept_n + 1 {
            // The archive lost none: it lacks this box's last only if that follows its own.
            if own.as_ref().map(|o| o.claimed_body().previous) != Some(digest(&kept)) {
                return Err(refuse(
                    format!("#{own_n}"),
                    "the archive's checkpoints fork from this box's",
                ));
            }
            (own.clone(), own.into_iter().collect())
        } else if own_n == kept_n
            && own.as_ref().map(Unverified::as_bytes) != kept.as_ref().map(Unverified::as_bytes)
        {
            return Err(refuse(
                format!("#{own_n}"),
                "the archive keeps another checkpoint under this box's number",
            ));
        } else {
            // The archive's is this box's last, or a later one signed with the audit key.
            (kept, Vec::new())
        };
        if let Some(last) = &last {
            let b = last.claimed_body();
            if count < b.count {
                return Err(refuse(
                    format!("#{}, {} events", b.number, b.count),
                    "the chain is behind its last checkpoint",
                ));
            }
            if count == b.count {
                return if head == b.head {
                    let adopted = self.role.checkpoints.insert(chain, last.clone());
                    if adopted.as_ref().map(Unverified::as_bytes) != Some(last.as_bytes()) {
                        self.core.changed();
                    }
                    Ok(Checkpointed { missing: Vec::new(), checkpoint: last.clone() })
                } else {
                    Err(refuse(
                        format!("#{}, {} events", b.number, b.count),
                        "another head at the last checkpoint's count",
                    ))
                };
            }
        }
        let body = Checkpoint {
            installation: self.core.installation,
            chain: chain.clone(),
            number: number(&last) + 1,
            count,
            head,
            previous: digest(&last),
            brass: self.core.id,
        };
        // Sealed before the answer leaves: the next request is held to it.
        self.core.changed();
        let context = self.core.context(DomainId::admin(), now);
        let signed: Unverified<Checkpoint> =
            postkey_wire::sign(Message::new(context, body), audit).into();
        self.role.checkpoints.insert(chain, signed.clone());
        Ok(Checkpointed { missing, checkpoint: signed })
    }

    /// Brass, MI8 (MI3 + MI7) → MI9 + MI10, or BAD: checks Oak's and Steel's signatures with the
    /// domain's keys, that both records name the same key and boxes, opens K from MI3 and
    /// recomputes the test tokens the meter reported in MI7.
    pub(crate) fn check_install(
        &mut self,
        unverified3: Unverified<NewKeyRecord>,
        mi7: Unverified<Installed>,
        now: Timestamp,
    ) -> Result<CheckOutcome, BoxError> {
        let domain = unverified3.header().domain.clone();
        let this = self.core.id;
        let process = self.role.processes.of(&self.core.tables, &domain)?;
        let BrassKeys { brass_conf, brass_auth, .. } = &process.keys;
        let public = process.public();
        let mi3 = unverified3.verify(&public.oak_auth)?;
        let mi7 = mi7.verify(&public.steel_auth)?;
        if mi7.header().domain != domain {
            return Err(BoxError::RecordMismatch("MI3 and MI7 belong to different domains"));
        }
        let key_id = header_key(mi3.header().key_id)?;
        let meter_id = header_meter(mi7.header().meter_id.as_ref())?;
        let context = self.core.key_context(&domain, key_id, Some(meter_id), now);
        let bad = |code: ResponseCode, reason: &str| {
            let body = BadKey { brass: this, code: code.0, reason: reason.into() };
            CheckOutcome::Bad(postkey_wire::sign(Message::new(context.clone(), body), brass_auth))
        };
        if mi7.header().key_id != Some(key_id)
            || mi7.body().oak != mi3.body().oak
            || mi7.body().steel != mi3.body().steel
        {
            return Ok(bad(
                ResponseCode::RECORD_MISMATCH,
                "MI3 and MI7 name different keys or boxes",
            ));
        }
        let info = key_info(HpkeRecordType::Mi3, &domain, key_id, &brass_recipient(&domain))?;
        let Ok(key) = brass_conf.open_master_key(&info, &mi3.body().sealed) else {
            return Ok(bad(
                ResponseCode::DECRYPTION_FAILED,
                "the archive copy of the key does not open",
            ));
        };
        if !bool::from(key.test_tokens().ct_eq(&mi7.body().test_tokens)) {
            return Ok(bad(
                ResponseCode::TEST_TOKENS_MISMATCH,
                "the meter's test tokens do not match the archive copy of the key",
            ));
        }
        let sealed = key.seal_to(
            &public.brass_conf,
            &key_info(HpkeRecordType::Mi9, &domain, key_id, &brass_recipient(&domain))?,
            &mut self.core.rng,
        )?;
        drop(key);
        let mi9 = postkey_wire::sign(
            Message::new(
                context.clone(),
                InstalledKeyRecord { oak: mi3.body().oak, steel: mi3.body().steel, sealed },
            ),
            brass_auth,
        );
        let mi10 =
            postkey_wire::sign(Message::new(context, InstallConfirmed { brass: this }), brass_auth);
        Ok(CheckOutcome::Installed { mi9, mi10 })
    }

    /// `REGISTER`, MR2 (MR1 + MI9) → MR3 + MR4 (protocol §6.2): the MI9 is this domain's Brass
    /// record of the key and meter MR1 names; the sub-domain is of the key's domain and the
    /// registration's country, and served here; the token is the key's over the meter's product
    /// code and MSN, the ISN, country and date; the date is not before the key was installed
    /// (by UTC day, within the clock skew). K, opened from MI9, is wrapped under the
    /// sub-domain's confidentiality key into MR3, which its authentication key MACs; MR4 signs
    /// the same fields and MR3's digest with the domain Brass key. Nothing is sealed: a
    /// registration changes no state of the box.
    pub(crate) fn register(
        &self,
        mr1: Message<RegistrationRequest>,
        mi9: Unverified<InstalledKeyRecord>,
        now: Timestamp,
    ) -> Result<Registered, BoxError> {
        let domain = mi9.header().domain.clone();
        let this = self.core.id;
        let process = self.role.processes.of(&self.core.tables, &domain)?;
        let BrassKeys { brass_conf, brass_auth, subdomains, .. } = &process.keys;
        let mi9 = mi9.verify(&process.public().brass_auth)?;
        let key_id = header_key(mi9.header().key_id)?;
        let meter = header_meter(mi9.header().meter_id.as_ref())?;
        let h = mr1.header();
        if h.domain != domain
            || h.key_id != Some(key_id)
            || h.meter_id.as_ref() != Some(&meter)
            || h.sender != Sender::Meter(meter.clone())
        {
            return Err(BoxError::RecordMismatch("MR1 is not the request of MI9's key and meter"));
        }
        let r = mr1.body();
        if r.subdomain.domain() != &domain || r.subdomain.country() != &r.country {
            return Err(BoxError::SubdomainMismatch {
                subdomain: r.subdomain.clone(),
                domain,
                country: r.country.clone(),
            });
        }
        let sub = subdomains
            .get(&r.subdomain)
            .ok_or_else(|| BoxError::SubdomainNotServed(r.subdomain.clone()))?;
        let installed = mi9
            .header()
            .timestamp
            .unix_micros()
            .saturating_sub(postkey_wire::CLOCK_SKEW_TOLERANCE_MICROS);
        let date = (i64::from(r.date.year()), r.date.month(), r.date.day());
        if date < Timestamp::from_unix_micros(installed).utc_date() {
            return Err(BoxError::DateBeforeInstall { date: r.date });
        }
        let today = Timestamp::from_unix_micros(
            now.unix_micros().saturating_add(postkey_wire::CLOCK_SKEW_TOLERANCE_MICROS),
        );
        if date > today.utc_date() {
            return Err(BoxError::DateInFuture { date: r.date });
        }
        let info = key_info(HpkeRecordType::Mi9, &domain, key_id, &brass_recipient(&domain))?;
        let key = brass_conf.open_master_key(&info, &mi9.body().sealed)?;
        let registration = postkey_secrets::Registration {
            meter: &meter,
            isn: &r.isn,
            country: &r.country,
            date: r.date,
        };
        if !bool::from(key.registration_token(&registration).ct_eq(&r.token)) {
            return Err(BoxError::RegistrationTokenMismatch);
        }
        let wrapped = sub.conf.wrap(&key);
        drop(key);
        let context = self.core.key_context(&domain, key_id, Some(meter), now);
        let body = RegisteredKey {
            brass: this,
            subdomain: r.subdomain.clone(),
            isn: r.isn.clone(),
            country: r.country.clone(),
            date: r.date,
            wrapped,
        };
        let mr3 = Maced::new(Message::new(context.clone(), body), |bytes| sub.auth.mac(bytes));
        let confirmed = RegistrationConfirmed {
            brass: this,
            subdomain: r.subdomain.clone(),
            isn: r.isn.clone(),
            country: r.country.clone(),
            date: r.date,
            mr3: postkey_crypto::sha256(mr3.as_bytes()),
        };
        let mr4 = postkey_wire::sign(Message::new(context, confirmed), brass_auth);
        Ok(Registered { mr3, mr4: mr4.into() })
    }

    /// `VERIFY` (protocol §6.5, docs/spec/box-protocol.md "VERIFY"): each token of each mailpiece,
    /// recomputed with the token key of its key's MR3 for the mailpiece's month and compared in
    /// constant time. Each key's MR3 comes with the item (its digest must be the one named, its
    /// MAC is checked unless an MR3 of the same bytes was checked before) or is named by its
    /// digest alone (listed `unheld`, its tokens not checked, if the box checked no MR3 of that
    /// digest). MR3 must be of a sub-domain this box serves, the postal sub-domain the
    /// mailpieces name (the postal key) or its domain's sub-domain of the same country (the
    /// vendor key), and of the ISN they name; a mailpiece's two keys name the same ISN and
    /// sub-domain. The token keys come from the cache ([`TokenKeys`]); a miss unwraps K once
    /// for the item and derives the month's key. K never leaves the box; nothing is sealed.
    pub(crate) fn verify(&self, item: Verify) -> Result<Verdicts, BoxError> {
        let Verify { keys, pieces } = item;
        // The MR3s, with one look at the cache for the item (a verifier's batch names
        // thousands of keys, and the box's threads share the cache).
        let held = self.role.checked.get_many(keys.iter().map(|k| &k.mr3_digest));
        let mut using: Vec<Option<KeyInUse<'_>>> = Vec::with_capacity(keys.len());
        let mut unheld = Vec::new();
        for (i, (k, held)) in keys.iter().zip(held).enumerate() {
            match self.known_mr3(k, held)? {
                Some(known) => using.push(Some(self.key_in_use(known, k)?)),
                None => {
                    unheld.push(i as u32);
                    using.push(None);
                }
            }
        }
        // One pass over the mailpieces: each checked (its two keys name one meter), its
        // canonical bytes written once (its two tokens cover the same bytes), its tokens to
        // check listed as (key, its month's place in `months`, mailpiece, slot), and the
        // months each key needs noted, to be found or derived after.
        let mut wanted: Vec<(usize, usize)> = Vec::new();
        let mut ids: Vec<DerivedFor> = Vec::new();
        let mut canonical = Vec::with_capacity(96);
        let mut bytes: Vec<u8> = Vec::with_capacity(pieces.len() * 48);
        let mut bounds: Vec<usize> = Vec::with_capacity(pieces.len() + 1);
        bounds.push(0);
        let mut checks: Vec<(u16, u16, u32, u8)> = Vec::with_capacity(2 * pieces.len());
        for (i, p) in pieces.as_slice().iter().enumerate() {
            let [a, b] = p.keys();
            let first = a.or(b).ok_or(BoxError::RecordMismatch("a mailpiece names no key"))?;
            // Both keys (when two) name the ISN and sub-domain of the mailpiece.
            let named =
                |i: u16| keys.get(usize::from(i)).ok_or(BoxError::RecordMismatch("no such key"));
            let (head, other) = (named(first)?, named(b.unwrap_or(first))?);
            if head.isn != other.isn || head.subdomain != other.subdomain {
                return Err(BoxError::RecordMismatch("a mailpiece's two keys name two meters"));
            }
            Mailpiece::write_canonical_head(&mut canonical, &head.isn, &head.subdomain);
            Mailpiece::write_canonical_tail(
                &mut canonical,
                p.date(),
                p.value(),
                p.count(),
                p.zip(),
            );
            bytes.extend_from_slice(&canonical);
            bounds.push(bytes.len());
            let period = p.date().period();
            for (slot, key) in [a, b].into_iter().enumerate() {
                // A key not held leaves its tokens unchecked (false, and listed `unheld`).
                let Some(k) = key else { continue };
                let Some(Some(u)) = using.get_mut(usize::from(k)) else { continue };
                let month = match u.months.position(period) {
                    Some(month) => month,
                    None => {
                        let month = u.months.push(period);
                        wanted.push((usize::from(k), month));
                        ids.push(DerivedFor { mr3: keys[usize::from(k)].mr3_digest, period });
                        month
                    }
                };
                checks.push((k, month as u16, i as u32, slot as u8));
            }
        }
        // The token keys: one look at the cache for the item, and a derivation for each it
        // lacks (`ids` beside `wanted`, in the same order).
        let found = self.role.token_keys.get_many(ids.iter());
        for ((k, month), (id, mac)) in wanted.into_iter().zip(ids.iter().zip(found)) {
            if let Some(Some(u)) = using.get_mut(k) {
                let mac = match mac {
                    Some(mac) => mac,
                    None => u.derive(self, id.period)?,
                };
                if let Some(slot) = u.months.get_mut(month) {
                    slot.1 = Some(mac);
                }
            }
        }
        // Every token key is at hand: no K stays unwrapped while the tokens are computed.
        for u in using.iter_mut().flatten() {
            u.k = None;
        }
        // A key's tokens of one month side by side: their CMACs advance together, a block of
        // each in one call of the cipher ([`TokenMac::tokens_over`]).
        let checks = by_key_and_month(checks, keys.len());
        let mut answers = vec![[false; 2]; pieces.len()];
        let (mut messages, mut tokens): (Vec<&[u8]>, Vec<postkey_wire::Token>) =
            (Vec::new(), Vec::new());
        for run in checks.chunk_by(|x, y| (x.0, x.1) == (y.0, y.1)) {
            let (k, month) = (usize::from(run[0].0), usize::from(run[0].1));
            let mac = using
                .get(k)
                .and_then(Option::as_ref)
                .and_then(|u| u.months.get(month)?.1.as_deref())
                .ok_or(BoxError::RecordMismatch("no token key"))?;
            messages.clear();
            messages.extend(run.iter().map(|c| {
                let i = c.2 as usize;
                &bytes[bounds[i]..bounds[i + 1]]
            }));
            mac.tokens_over(&messages, &mut tokens);
            for (&(_, _, i, slot), token) in run.iter().zip(&tokens) {
                let (i, slot) = (i as usize, usize::from(slot));
                answers[i][slot] = bool::from(token.ct_eq(&pieces.as_slice()[i].tokens()[slot]));
            }
        }
        let mut good = TokenBits::with_capacity(pieces.len());
        for answer in answers {
            good.push(answer);
        }
        Ok(Verdicts { unheld, good })
    }

    /// The checked MR3 a `VERIFY` key names: sent (its digest checked, its MAC checked unless
    /// an MR3 of the same bytes was checked before), or named by its digest alone (`held`, as
    /// the cache had it; `None` if the box checked none of that digest).
    fn known_mr3(
        &self,
        k: &VerifyKey,
        held: Option<Arc<CheckedMr3>>,
    ) -> Result<Option<Arc<CheckedMr3>>, BoxError> {
        match k.mr3.as_slice() {
            [] => Ok(held),
            [one] => {
                if postkey_wire::Mr3Digest::of(one) != k.mr3_digest {
                    return Err(BoxError::RecordMismatch("MR3 is not of the digest named"));
                }
                match held {
                    Some(known) => Ok(Some(known)),
                    None => self
                        .role
                        .checked
                        .get_or_derive(k.mr3_digest, || self.check_mr3(one))
                        .map(Some),
                }
            }
            _ => Err(BoxError::RecordMismatch("more than one MR3 in an item")),
        }
    }

    /// A held MR3 ready for the mailpieces a `VERIFY` key names: of their ISN, of their postal
    /// sub-domain or of its country's sub-domain of the MR3's own domain, served here.
    fn key_in_use(&self, known: Arc<CheckedMr3>, k: &VerifyKey) -> Result<KeyInUse<'_>, BoxError> {
        let CheckedMr3 { domain, subdomain: of, isn: of_isn, .. } = &*known;
        let process = self.role.processes.of(&self.core.tables, domain)?;
        if of_isn != &k.isn {
            return Err(BoxError::RecordMismatch("MR3 is of another ISN than the mailpieces"));
        }
        let postal = of == &k.subdomain;
        let vendor = of.domain() != k.subdomain.domain() && of.country() == k.subdomain.country();
        if !(postal || vendor) {
            return Err(BoxError::SubdomainMismatch {
                subdomain: of.clone(),
                domain: domain.clone(),
                country: k.subdomain.country().clone(),
            });
        }
        let sub = process
            .keys
            .subdomains
            .get(of)
            .ok_or_else(|| BoxError::SubdomainNotServed(of.clone()))?;
        Ok(KeyInUse {
            digest: k.mr3_digest,
            known,
            conf: &sub.conf,
            k: None,
            months: Months::default(),
        })
    }

    /// Checks an MR3 sent in a `VERIFY` item: of a domain this box runs, of a sub-domain it
    /// serves of that domain, its MAC under the sub-domain's authentication key. What it holds.
    fn check_mr3(
        &self,
        mr3: &Maced<RegisteredKey>,
    ) -> Result<std::sync::Arc<CheckedMr3>, BoxError> {
        let domain = mr3.header().domain.clone();
        let key_id = header_key(mr3.header().key_id)?;
        let process = self.role.processes.of(&self.core.tables, &domain)?;
        let claimed = mr3.claimed_body();
        if claimed.subdomain.domain() != &domain {
            return Err(BoxError::SubdomainMismatch {
                subdomain: claimed.subdomain.clone(),
                domain,
                country: claimed.country.clone(),
            });
        }
        let sub = process
            .keys
            .subdomains
            .get(&claimed.subdomain)
            .ok_or_else(|| BoxError::SubdomainNotServed(claimed.subdomain.clone()))?;
        sub.auth.verify(mr3.message_bytes(), mr3.tag())?;
        Ok(std::sync::Arc::new(CheckedMr3 {
            domain,
            key_id,
            subdomain: claimed.subdomain.clone(),
            isn: claimed.isn.clone(),
            wrapped: claimed.wrapped,
        }))
    }

    /// `EXPORT_TOKEN_KEYS` (protocol §6.5, docs/tin.md): one chunk of a Tin export. The
    /// sub-domain is one this box serves of a postal domain (never the vendor's, never EARTH);
    /// the Tin box is certified (Tin startup key) and the manufacturing box made it a process of
    /// the domain that serves the sub-domain. Each MR3 is of the sub-domain, its MAC checks, one
    /// per ISN; K is unwrapped, the month's token key derived and K dropped. The token keys are
    /// sealed to the Tin box's confidentiality key and the chunk signed with the domain Brass
    /// key. Which meters are `Active` is the KMC's to say, as for `VERIFY`.
    pub(crate) fn export_token_keys(
        &mut self,
        item: ExportTokenKeys,
        now: Timestamp,
    ) -> Result<Verified<TinExport>, BoxError> {
        let ExportTokenKeys {
            tin,
            process: tin_process,
            subdomain,
            period,
            as_of,
            chunk,
            chunks,
            mr3s,
        } = item;
        let domain = subdomain.domain().clone();
        let process = self.role.processes.of(&self.core.tables, &domain)?;
        let kind = process.delivery.body().kind;
        if kind != postkey_wire::DomainKind::Postal {
            return Err(BoxError::DomainKindNotServed { domain, kind });
        }
        let sub = process
            .keys
            .subdomains
            .get(&subdomain)
            .ok_or_else(|| BoxError::SubdomainNotServed(subdomain.clone()))?;
        let tin_anchor = self.core.anchors.for_type(postkey_wire::BoxType::Tin);
        let cert = tin.verify(tin_anchor)?;
        let tin_id = cert.body().box_id;
        if tin_id.box_type() != postkey_wire::BoxType::Tin {
            return Err(BoxError::WrongBoxType {
                expected: "tin",
                actual: tin_id.box_type().name(),
            });
        }
        let tin_process = tin_process.verify(tin_anchor)?;
        let p = tin_process.body();
        if p.box_id != tin_id || p.domain != domain || !p.subdomains.contains(&subdomain) {
            return Err(BoxError::RecordMismatch(
                "the Tin box runs no process of the domain serving the sub-domain",
            ));
        }
        let invalid = |reason| {
            BoxError::Wire(postkey_wire::WireError::InvalidField { field: "export", reason })
        };
        if chunks == 0 || chunks > postkey_wire::TIN_EXPORT_MAX_CHUNKS || chunk >= chunks {
            return Err(invalid("chunk out of bounds"));
        }
        if mr3s.len() > postkey_wire::TIN_EXPORT_CHUNK_KEYS {
            return Err(invalid("too many keys in one chunk"));
        }
        if mr3s.is_empty() && chunks > 1 {
            return Err(invalid("an empty chunk of an export of several"));
        }
        // Only a month a Tin box would take (this one, the two before, the next), of a time
        // not after this box's clock.
        let stale =
            |why| BoxError::TinExportStale { subdomain: subdomain.clone(), period, as_of, why };
        let latest = now.unix_micros().saturating_add(postkey_wire::CLOCK_SKEW_TOLERANCE_MICROS);
        if as_of.unix_micros() > latest {
            return Err(stale("an export of a time after this box's clock"));
        }
        crate::tin::in_tin_window(period, now).map_err(stale)?;
        let mut image = crate::image::TinKeysImage { keys: Vec::with_capacity(mr3s.len()) };
        let mut isns = std::collections::BTreeSet::new();
        for mr3 in &mr3s {
            let claimed = mr3.claimed_body();
            if mr3.header().domain != domain || claimed.subdomain != subdomain {
                return Err(BoxError::RecordMismatch("an MR3 of another sub-domain"));
            }
            if !isns.insert(claimed.isn.clone()) {
                return Err(BoxError::RecordMismatch("two MR3s of one ISN"));
            }
            let key_id = header_key(mr3.header().key_id)?;
            sub.auth.verify(mr3.message_bytes(), mr3.tag())?;
            let key = sub.conf.unwrap(&claimed.wrapped.0)?;
            let token_key = key.token_key(&domain, &claimed.isn, period);
            drop(key);
            let (y, m, d) = mr3.header().timestamp.utc_date();
            let registered = postkey_wire::Date::new(y as u16, m, d)?;
            image.keys.push(crate::image::TinKeyImage {
                isn: claimed.isn.clone(),
                key_id,
                registered,
                token_key: *token_key.expose_secret(),
            });
        }
        let plain = postkey_wire::codec::to_secret_bytes(&image, 16 * 1024);
        drop(image);
        let info = crate::process::box_info(HpkeRecordType::TinExport, domain.as_str(), tin_id)?;
        let sealed = postkey_secrets::seal_secret(
            &cert.body().confidentiality,
            &info,
            &plain,
            &mut self.core.rng,
        )?;
        let body = TinExport {
            brass: self.core.id,
            tin: tin_id,
            subdomain,
            period,
            as_of,
            chunk,
            chunks,
            keys: mr3s.len() as u32,
            sealed,
        };
        let context = self.core.context(domain, now);
        Ok(postkey_wire::sign(Message::new(context, body), &process.keys.brass_auth))
    }

    /// `WITHDRAW` (protocol §6.3): signs, with the domain Brass key, that the key and meter
    /// MI9 names are out of service. The KMC records both of the meter's keys `Obsolete` from
    /// the two domains' records, or neither.
    pub(crate) fn withdraw(
        &mut self,
        mi9: Unverified<InstalledKeyRecord>,
        reason: String,
        now: Timestamp,
    ) -> Result<Verified<Withdrawn>, BoxError> {
        let domain = mi9.header().domain.clone();
        let process = self.role.processes.of(&self.core.tables, &domain)?;
        let mi9 = mi9.verify(&process.public().brass_auth)?;
        let key_id = header_key(mi9.header().key_id)?;
        let meter = header_meter(mi9.header().meter_id.as_ref())?;
        postkey_wire::check_reason(&reason)?;
        let context = self.core.key_context(&domain, key_id, Some(meter), now);
        Ok(postkey_wire::sign(
            Message::new(context, Withdrawn { brass: self.core.id, reason }),
            &process.keys.brass_auth,
        ))
    }
}

/// The token checks of an item (key, month's place, mailpiece, slot) grouped by key and month:
/// a counting sort by key (an item has at most `MAX_LIST` keys; a comparison sort of 8,192
/// checks was a twentieth of the batched path), then a key's checks by month where it has
/// mailpieces of more than one.
fn by_key_and_month(checks: Vec<(u16, u16, u32, u8)>, keys: usize) -> Vec<(u16, u16, u32, u8)> {
    let mut start = vec![0usize; keys + 1];
    for c in &checks {
        start[usize::from(c.0) + 1] += 1;
    }
    for k in 0..keys {
        start[k + 1] += start[k];
    }
    let mut next = start.clone();
    let mut sorted = vec![(0, 0, 0, 0); checks.len()];
    for c in checks {
        let at = &mut next[usize::from(c.0)];
        sorted[*at] = c;
        *at += 1;
    }
    for w in start.windows(2) {
        let run = &mut sorted[w[0]..w[1]];
        if run.windows(2).any(|p| p[0].1 != p[1].1) {
            run.sort_unstable();
        }
    }
    sorted
}

/// A key of one `VERIFY` item, held: the token keys of the months its mailpieces name, found
/// in the cache or derived (K unwrapped at most once for the item, and dropped with it).
struct KeyInUse<'a> {
    digest: postkey_wire::Mr3Digest,
    known: Arc<CheckedMr3>,
    conf: &'a postkey_secrets::SubdomainConfKey,
    k: Option<postkey_secrets::MasterKey>,
    months: Months,
}

/// The months a key's mailpieces of an item name, each with its token key once found: nearly
/// always one, kept inline (a `Vec` was an allocation per key per item).
#[derive(Default)]
struct Months {
    first: Option<Month>,
    more: Vec<Month>,
}

type Month = (postkey_wire::Period, Option<Arc<TokenMac>>);

impl Months {
    fn position(&self, period: postkey_wire::Period) -> Option<usize> {
        self.first.iter().chain(&self.more).position(|(m, _)| *m == period)
    }

    /// Adds `period` (not held yet), its token key to come; its place.
    fn push(&mut self, period: postkey_wire::Period) -> usize {
        if self.first.is_none() {
            self.first = Some((period, None));
            0
        } else {
            self.more.push((period, None));
            self.more.len()
        }
    }

    fn get(&self, i: usize) -> Option<&Month> {
        match i {
            0 => self.first.as_ref(),
            _ => self.more.get(i - 1),
        }
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Month> {
        match i {
            0 => self.first.as_mut(),
            _ => self.more.get_mut(i - 1),
        }
    }
}

impl KeyInUse<'_> {
    /// The token key of `period` from the cache, or derived into it.
    fn derive(
        &mut self,
        brass: &TypedBox<Brass>,
        period: postkey_wire::Period,
    ) -> Result<Arc<TokenMac>, BoxError> {
        let id = DerivedFor { mr3: self.digest, period };
        let (known, conf, k) = (&self.known, self.conf, &mut self.k);
        brass.role.token_keys.get_or_derive(id, || {
            let key = match k.take() {
                Some(key) => key,
                None => conf.unwrap(&known.wrapped.0)?,
            };
            let mac = key.token_key(&known.domain, &known.isn, period).prepare();
            *k = Some(key);
            Ok(Arc::new(mac))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::by_key_and_month;

    #[test]
    fn token_checks_come_grouped_by_key_and_month_and_none_is_lost() {
        // (key, month, mailpiece, slot): keys out of order, key 2 with two months interleaved.
        let checks = vec![
            (2, 1, 0, 0),
            (0, 0, 0, 1),
            (2, 0, 1, 0),
            (1, 0, 2, 1),
            (2, 1, 3, 0),
            (0, 0, 4, 1),
            (2, 0, 5, 0),
        ];
        let grouped = by_key_and_month(checks.clone(), 3);
        let mut a = grouped.clone();
        let mut b = checks;
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
        // Each (key, month) is one run.
        let runs: Vec<(u16, u16)> =
            grouped.chunk_by(|x, y| (x.0, x.1) == (y.0, y.1)).map(|r| (r[0].0, r[0].1)).collect();
        assert_eq!(runs, [(0, 0), (1, 0), (2, 0), (2, 1)]);
        assert!(by_key_and_month(Vec::new(), 0).is_empty());
    }
}
