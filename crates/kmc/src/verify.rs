//! Verification (protocol §6.5, docs/verification.md): for a batch of mailpieces, the KMC finds
//! both key records of each meter once, by (postal sub-domain, ISN) and then through the postal
//! record's meter; answers what the archive alone decides (an unknown meter, a key not
//! `Active`, `Obsolete`, a date before registration); asks the Brass boxes serving the keys'
//! sub-domains to recompute the rest, one `VERIFY` item per key with all its mailpieces; and
//! records the good mailpieces in the duplicate memory, durably, before it answers: a copy of a
//! good mailpiece, here or at another verifier of the archive, is `duplicate`.

use std::collections::{BTreeMap, HashMap};

use postkey_archive::{KeyRecord, KeyStatus, Sighting, Store};
use postkey_wire::command::{MAX_LIST, PieceToken, Verify};
use postkey_wire::{
    BoxId, Date, DomainId, Isn, KeyId, Maced, Mailpiece, MeterId, RecordType, RegisteredKey, Site,
    SubdomainId, Timestamp, Token, Verdict,
};

use crate::link::call;
use crate::{Boxes, Kmc, KmcError};

/// One mailpiece to verify: its fields and the two tokens printed on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceToVerify {
    /// The fields the tokens cover.
    pub mailpiece: Mailpiece,
    /// The vendor's token.
    pub vendor: Token,
    /// The postal operator's token.
    pub postal: Token,
}

/// What the verifier answers for one mailpiece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceVerdict {
    /// The vendor token's answer.
    pub vendor: Verdict,
    /// The postal token's answer.
    pub postal: Verdict,
    /// The meter the postal record names, if found.
    pub meter: Option<MeterId>,
    /// For a `duplicate`, the first sighting.
    pub first: Option<Sighting>,
}

impl PieceVerdict {
    /// Good only if both tokens are.
    pub fn is_good(&self) -> bool {
        self.vendor == Verdict::Good && self.postal == Verdict::Good
    }

    /// The one verdict of the mailpiece: `good`, or the first token's that is not (the postal
    /// token's first: it is the post's own).
    pub fn verdict(&self) -> Verdict {
        if self.postal != Verdict::Good { self.postal } else { self.vendor }
    }
}

/// The most MR3 records a verifier keeps decoded between batches.
const MAX_CACHED_MR3: usize = 1 << 17;

/// What a verifier keeps between its batches: which Brass box serves each sub-domain, and the
/// MR3 of each key it has seen, decoded. An MR3 is never changed once stored (records are
/// append-only), so keeping it is safe; a key's status, which does change, is read again for
/// every batch.
#[derive(Debug, Default)]
pub struct VerifyCache {
    brass: std::sync::Mutex<BTreeMap<SubdomainId, BoxId>>,
    roles: std::sync::Mutex<BTreeMap<DomainId, Option<crate::KeyRole>>>,
    mr3: std::sync::Mutex<HashMap<(DomainId, KeyId), Maced<RegisteredKey>>>,
}

fn held<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl VerifyCache {
    async fn role<S: Store>(
        &self,
        kmc: &Kmc<S>,
        domain: &DomainId,
    ) -> Result<Option<crate::KeyRole>, KmcError> {
        let known = held(&self.roles).get(domain).copied();
        if let Some(role) = known {
            return Ok(role);
        }
        let role = kmc.role_of(domain).await?;
        held(&self.roles).insert(domain.clone(), role);
        Ok(role)
    }

    async fn serving(&self, store: &impl Store, of: &SubdomainId) -> Result<BoxId, KmcError> {
        let known = held(&self.brass).get(of).copied();
        if let Some(id) = known {
            return Ok(id);
        }
        let id = crate::brass_serving(store, of).await?;
        held(&self.brass).insert(of.clone(), id);
        Ok(id)
    }
}

/// A batch planned against the archive ([`Kmc::plan_verification`]), to be finished by Brass and
/// the duplicate memory ([`Kmc::finish_verification`]) for the same mailpieces.
#[derive(Debug)]
pub struct VerificationPlan {
    out: Vec<PieceVerdict>,
    work: BTreeMap<(DomainId, KeyId, SubdomainId, Isn), KeyWork>,
}

/// A token the archive lets through to Brass: its place and which of the two.
#[derive(Debug)]
struct Pending {
    piece: usize,
    postal: bool,
}

/// The Brass work for one key.
#[derive(Debug)]
struct KeyWork {
    mr3: Maced<RegisteredKey>,
    subdomain: SubdomainId,
    isn: Isn,
    tokens: Vec<Pending>,
}

impl<S: Store> Kmc<S> {
    /// Verifies a batch of mailpieces at `site` (protocol §6.5): one answer per mailpiece, in
    /// order. The good ones are in the duplicate memory when this returns. An archive that
    /// cannot be read, a record that does not decode or a box that refuses fails the batch:
    /// no answer is given for a mailpiece the verifier could not check.
    pub async fn verify(
        &self,
        boxes: &impl Boxes,
        cache: &VerifyCache,
        pieces: &[PieceToVerify],
        site: &Site,
        now: Timestamp,
    ) -> Result<Vec<PieceVerdict>, KmcError> {
        let plan = self.plan_verification(cache, pieces).await?;
        self.finish_verification(boxes, cache, plan, pieces, site, now).await
    }

    /// The first half of [`Kmc::verify`], which reads the archive only: the key records of the
    /// batch, the archive's answers, and the Brass work for the rest. A verifier plans batch
    /// n + 1 while it finishes batch n.
    pub async fn plan_verification(
        &self,
        cache: &VerifyCache,
        pieces: &[PieceToVerify],
    ) -> Result<VerificationPlan, KmcError> {
        let keys = self.verification_keys(pieces, cache).await?;
        let mut out: Vec<PieceVerdict> = Vec::with_capacity(pieces.len());
        // A key's work is per sub-domain its mailpieces name: the tokens are recomputed over
        // that sub-domain, so one line naming another cannot change another's answers.
        let mut work: BTreeMap<(DomainId, KeyId, SubdomainId, Isn), KeyWork> = BTreeMap::new();
        let mr3s = self.mr3s(&keys, cache).await?;
        for (i, p) in pieces.iter().enumerate() {
            let m = &p.mailpiece;
            let Some((postal, vendor)) = keys.get(&(m.subdomain.clone(), m.isn.clone())) else {
                out.push(PieceVerdict {
                    vendor: Verdict::UnknownMeter,
                    postal: Verdict::UnknownMeter,
                    meter: None,
                    first: None,
                });
                continue;
            };
            let mut verdict = |key: Option<&KeyRecord>, is_postal: bool| match key {
                None => Verdict::UnknownMeter,
                Some(k) => match archive_verdict(k, m.date) {
                    Some(v) => v,
                    None => match mr3s.get(&(k.domain.clone(), k.key_id)) {
                        // Checked by Brass: good or bad, once it answers.
                        Some(mr3) => {
                            let at =
                                (k.domain.clone(), k.key_id, m.subdomain.clone(), m.isn.clone());
                            let w = work.entry(at).or_insert_with(|| KeyWork {
                                mr3: mr3.clone(),
                                subdomain: m.subdomain.clone(),
                                isn: m.isn.clone(),
                                tokens: Vec::new(),
                            });
                            w.tokens.push(Pending { piece: i, postal: is_postal });
                            Verdict::Good
                        }
                        None => Verdict::NotActive,
                    },
                },
            };
            let postal_verdict = verdict(Some(postal), true);
            let vendor_verdict = verdict(vendor.as_ref(), false);
            out.push(PieceVerdict {
                vendor: vendor_verdict,
                postal: postal_verdict,
                meter: postal.meter_id.clone(),
                first: None,
            });
        }
        Ok(VerificationPlan { out, work })
    }

    /// The second half of [`Kmc::verify`]: Brass recomputes the tokens of the plan, and the good
    /// mailpieces go into the duplicate memory, durably, before the answers are returned.
    pub async fn finish_verification(
        &self,
        boxes: &impl Boxes,
        cache: &VerifyCache,
        plan: VerificationPlan,
        pieces: &[PieceToVerify],
        site: &Site,
        now: Timestamp,
    ) -> Result<Vec<PieceVerdict>, KmcError> {
        let VerificationPlan { mut out, work } = plan;
        if out.len() != pieces.len() {
            return Err(KmcError::Unfinished);
        }
        self.ask_brass(boxes, cache, pieces, work, &mut out).await?;
        self.remember(&mut out, pieces, site, now).await?;
        Ok(out)
    }

    /// Both key records of each meter the batch names: the postal one by (sub-domain, ISN),
    /// the vendor one through the postal record's meter (its key of another domain registered
    /// in the same country). Two reads for the batch.
    async fn verification_keys(
        &self,
        pieces: &[PieceToVerify],
        cache: &VerifyCache,
    ) -> Result<HashMap<(SubdomainId, Isn), (KeyRecord, Option<KeyRecord>)>, KmcError> {
        let mut pairs: Vec<(SubdomainId, Isn)> = pieces
            .iter()
            .map(|p| (p.mailpiece.subdomain.clone(), p.mailpiece.isn.clone()))
            .collect();
        pairs.sort();
        pairs.dedup();
        let mut postal: HashMap<(SubdomainId, Isn), KeyRecord> = HashMap::new();
        for k in self.store().keys_by_isns(&pairs).await? {
            let Some(r) = &k.registration else { continue };
            // Only a postal or EARTH key names the postal sub-domain of a mailpiece: a vendor
            // sub-domain named there finds no meter.
            if cache.role(self, &k.domain).await? != Some(crate::KeyRole::Postal) {
                continue;
            }
            let pair = (r.subdomain.clone(), r.isn.clone());
            // Should an ISN have served two keys (one withdrawn), the live one answers.
            match postal.get(&pair) {
                Some(held) if rank(held) >= rank(&k) => {}
                _ => {
                    postal.insert(pair, k);
                }
            }
        }
        let mut meters: Vec<MeterId> = postal.values().filter_map(|k| k.meter_id.clone()).collect();
        meters.sort();
        meters.dedup();
        let mut of_meter: HashMap<MeterId, Vec<KeyRecord>> = HashMap::new();
        for k in self.store().keys_of_meters(&meters).await? {
            if let Some(m) = &k.meter_id {
                of_meter.entry(m.clone()).or_default().push(k);
            }
        }
        Ok(postal
            .into_iter()
            .map(|(pair, p)| {
                let country = pair.0.country();
                let other = p.meter_id.as_ref().and_then(|m| {
                    of_meter
                        .get(m)?
                        .iter()
                        .filter(|k| k.domain != p.domain)
                        .filter(|k| {
                            k.registration.as_ref().is_none_or(|r| r.subdomain.country() == country)
                        })
                        .max_by_key(|k| rank(k))
                        .cloned()
                });
                (pair, (p, other))
            })
            .collect())
    }

    /// The MR3 of every key that may verify (`Active`), decoded: from the cache, and one read
    /// for the batch of those it lacks.
    async fn mr3s(
        &self,
        keys: &HashMap<(SubdomainId, Isn), (KeyRecord, Option<KeyRecord>)>,
        cache: &VerifyCache,
    ) -> Result<HashMap<(DomainId, KeyId), Maced<RegisteredKey>>, KmcError> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let cached = held(&cache.mr3);
            for k in keys.values().flat_map(|(p, v)| core::iter::once(p).chain(v)) {
                if k.status != KeyStatus::Active {
                    continue;
                }
                let id = (k.domain.clone(), k.key_id);
                match cached.get(&id) {
                    Some(mr3) => {
                        out.insert(id, mr3.clone());
                    }
                    None => missing.push(id),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let mut read = HashMap::with_capacity(missing.len());
        for (domain, key_id, stored) in
            self.store().records_of_type(&missing, RecordType::MR3).await?
        {
            let mr3 = Maced::<RegisteredKey>::from_bytes(&stored.record.bytes).map_err(|_| {
                KmcError::ArchivedRecord(domain.clone(), key_id, "its MR3 does not decode")
            })?;
            // The newest, should there be more than one.
            read.insert((domain, key_id), mr3);
        }
        let mut cached = held(&cache.mr3);
        if cached.len() + read.len() > MAX_CACHED_MR3 {
            cached.clear();
        }
        for (id, mr3) in read {
            cached.insert(id.clone(), mr3.clone());
            out.insert(id, mr3);
        }
        Ok(out)
    }

    /// Sends each key's tokens to the Brass box serving its MR3's sub-domain, and writes the
    /// answers (`bad` where the token is not the key's).
    async fn ask_brass(
        &self,
        boxes: &impl Boxes,
        cache: &VerifyCache,
        pieces: &[PieceToVerify],
        work: BTreeMap<(DomainId, KeyId, SubdomainId, Isn), KeyWork>,
        out: &mut [PieceVerdict],
    ) -> Result<(), KmcError> {
        let mut by_box: BTreeMap<BoxId, (Vec<Verify>, Vec<Vec<Pending>>)> = BTreeMap::new();
        for (_, w) in work {
            let of = w.mr3.claimed_body().subdomain.clone();
            let id = cache.serving(self.store(), &of).await?;
            let entry = by_box.entry(id).or_default();
            // A list holds at most MAX_LIST entries: a key with more mailpieces goes in parts.
            let mut tokens = w.tokens.into_iter().peekable();
            while tokens.peek().is_some() {
                let part: Vec<Pending> = tokens.by_ref().take(MAX_LIST).collect();
                let item = Verify {
                    mr3: w.mr3.clone(),
                    isn: w.isn.clone(),
                    subdomain: w.subdomain.clone(),
                    pieces: part.iter().map(|t| piece_token(&pieces[t.piece], t.postal)).collect(),
                };
                entry.0.push(item);
                entry.1.push(part);
            }
        }
        for (id, (items, places)) in by_box {
            let mut items = items.into_iter();
            let mut places = places.into_iter();
            loop {
                let batch: Vec<Verify> = items.by_ref().take(MAX_LIST).collect();
                if batch.is_empty() {
                    break;
                }
                let called = call(boxes, id, batch).await?;
                for (answer, part) in called.answers.into_iter().zip(places.by_ref()) {
                    let verdicts = answer?;
                    if verdicts.good.len() != part.len() {
                        return Err(KmcError::Unfinished);
                    }
                    for (good, t) in verdicts.good.into_iter().zip(part) {
                        let v = if good { Verdict::Good } else { Verdict::Bad };
                        let slot = &mut out[t.piece];
                        if t.postal {
                            slot.postal = v;
                        } else {
                            slot.vendor = v;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The good mailpieces into the duplicate memory (one transaction, durable before the
    /// answers leave); those seen before become `duplicate`, with the first sighting.
    async fn remember(
        &self,
        out: &mut [PieceVerdict],
        pieces: &[PieceToVerify],
        site: &Site,
        now: Timestamp,
    ) -> Result<(), KmcError> {
        let good: Vec<usize> = (0..out.len()).filter(|&i| out[i].is_good()).collect();
        let sightings: Vec<Sighting> = good
            .iter()
            .filter_map(|&i| {
                Some(Sighting {
                    meter: out[i].meter.clone()?,
                    count: pieces[i].mailpiece.count,
                    time: now,
                    site: site.clone(),
                })
            })
            .collect();
        if sightings.len() != good.len() {
            return Err(KmcError::Unfinished);
        }
        if sightings.is_empty() {
            return Ok(());
        }
        let firsts = self.store().record_sightings(&sightings).await?;
        for (i, first) in good.into_iter().zip(firsts) {
            if let Some(first) = first {
                let slot = &mut out[i];
                slot.vendor = Verdict::Duplicate;
                slot.postal = Verdict::Duplicate;
                slot.first = Some(first);
            }
        }
        Ok(())
    }
}

/// What the archive alone answers for a token of `key` mailed on `date`; `None` when only the
/// token itself can tell (the key `Active`, the date not before its registration day).
fn archive_verdict(key: &KeyRecord, date: Date) -> Option<Verdict> {
    match key.status {
        KeyStatus::Active => {}
        KeyStatus::Obsolete => return Some(Verdict::Obsolete),
        _ => return Some(Verdict::NotActive),
    }
    let Some(registered) = key.times.kms_key_registration else {
        return Some(Verdict::NotActive);
    };
    let (y, m, d) = registered.utc_date();
    if (i64::from(date.year()), date.month(), date.day()) < (y, m, d) {
        return Some(Verdict::DateBeforeRegistration);
    }
    None
}

/// Which of two records under one ISN answers: an `Active` one, else the newest.
fn rank(k: &KeyRecord) -> (bool, Option<Timestamp>, KeyId) {
    (k.status == KeyStatus::Active, k.times.kms_key_registration, k.key_id)
}

/// One key's token on a mailpiece, as `VERIFY` carries it.
fn piece_token(p: &PieceToVerify, postal: bool) -> PieceToken {
    let m = &p.mailpiece;
    PieceToken {
        date: m.date,
        value: m.value,
        count: m.count,
        zip: m.zip.clone(),
        token: if postal { p.postal } else { p.vendor },
    }
}

#[cfg(test)]
mod tests {
    use postkey_archive::KeyTimes;
    use postkey_wire::BoxType;

    use super::*;

    fn key(status: KeyStatus, registered: Option<u64>) -> KeyRecord {
        KeyRecord {
            domain: DomainId::parse("USPS").unwrap(),
            key_id: KeyId::new(1).unwrap(),
            status,
            oak_id: BoxId::new(BoxType::Oak, 1).unwrap(),
            steel_id: BoxId::new(BoxType::Steel, 1).unwrap(),
            meter_id: Some(MeterId::parse("PB1234-000001").unwrap()),
            registration: None,
            times: KeyTimes {
                kms_key_registration: registered.map(Timestamp::from_unix_micros),
                ..KeyTimes::default()
            },
            updated: Timestamp::from_unix_micros(0),
        }
    }

    /// 2026-12-04T23:59:59Z in microseconds.
    const LATE_ON_DEC_4: u64 = (20_791 * 86_400 + 86_399) * 1_000_000;

    #[test]
    fn only_an_active_key_goes_to_the_token_check() {
        let date = Date::parse("20261204").unwrap();
        let registered = Some(LATE_ON_DEC_4);
        assert_eq!(archive_verdict(&key(KeyStatus::Active, registered), date), None);
        assert_eq!(
            archive_verdict(&key(KeyStatus::Obsolete, registered), date),
            Some(Verdict::Obsolete)
        );
        for status in [KeyStatus::New, KeyStatus::Installed, KeyStatus::Bad] {
            assert_eq!(
                archive_verdict(&key(status, registered), date),
                Some(Verdict::NotActive),
                "{status:?}"
            );
        }
        // An Active key without its registration time is no key to verify with.
        assert_eq!(archive_verdict(&key(KeyStatus::Active, None), date), Some(Verdict::NotActive));
    }

    #[test]
    fn the_mailing_date_is_compared_with_the_registration_utc_day() {
        let k = key(KeyStatus::Active, Some(LATE_ON_DEC_4));
        // The same UTC day, however late the registration: good to check.
        assert_eq!(archive_verdict(&k, Date::parse("20261204").unwrap()), None);
        assert_eq!(archive_verdict(&k, Date::parse("20270101").unwrap()), None);
        assert_eq!(
            archive_verdict(&k, Date::parse("20261203").unwrap()),
            Some(Verdict::DateBeforeRegistration)
        );
        let next_day = key(KeyStatus::Active, Some(LATE_ON_DEC_4 + 1_000_000));
        assert_eq!(
            archive_verdict(&next_day, Date::parse("20261204").unwrap()),
            Some(Verdict::DateBeforeRegistration)
        );
    }

    #[test]
    fn a_mailpiece_is_good_only_if_both_tokens_are() {
        let v = |vendor, postal| PieceVerdict { vendor, postal, meter: None, first: None };
        assert!(v(Verdict::Good, Verdict::Good).is_good());
        assert!(!v(Verdict::Bad, Verdict::Good).is_good());
        assert!(!v(Verdict::Good, Verdict::Obsolete).is_good());
        assert_eq!(v(Verdict::Bad, Verdict::Good).verdict(), Verdict::Bad);
        assert_eq!(v(Verdict::Bad, Verdict::NotActive).verdict(), Verdict::NotActive);
    }
}
