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
    BoxId, Date, DomainId, Isn, KeyId, Maced, Mailpiece, MeterId, Mr3Digest, RecordType,
    RegisteredKey, Site, SubdomainId, Timestamp, Token, Verdict,
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
    mr3: std::sync::Mutex<HashMap<(DomainId, KeyId), KnownMr3>>,
    /// The MR3s each Brass box answered for, by digest: sent by digest alone from then on (a
    /// box that no longer holds one says so, and gets it again).
    sent: std::sync::Mutex<std::collections::HashSet<(BoxId, Mr3Digest)>>,
}

/// An MR3 as the archive keeps it, and its digest.
#[derive(Debug, Clone)]
struct KnownMr3 {
    mr3: Maced<RegisteredKey>,
    digest: Mr3Digest,
}

/// An item sent: its mailpieces' places, its MR3, and whether the MR3 went with it.
type Sent = (Vec<Pending>, KnownMr3, bool);

/// Brass's answers for one item's mailpieces, into their places.
fn write_verdicts(
    verdicts: postkey_wire::command::Verdicts,
    part: Vec<Pending>,
    out: &mut [PieceVerdict],
) -> Result<(), KmcError> {
    if !verdicts.held || verdicts.good.len() != part.len() {
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
    Ok(())
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

    /// Box `id` answered for the MR3 of `digest`: named by digest alone from now on. Bounded as
    /// the MR3s are (all forgotten when full: each is sent whole once more).
    fn answered(&self, id: BoxId, digest: Mr3Digest) {
        let mut sent = held(&self.sent);
        if sent.len() >= MAX_CACHED_MR3 {
            sent.clear();
        }
        sent.insert((id, digest));
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
    mr3: KnownMr3,
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
    ) -> Result<HashMap<(DomainId, KeyId), KnownMr3>, KmcError> {
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
            read.insert((domain, key_id), KnownMr3 { digest: Mr3Digest::of(&mr3), mr3 });
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
        // Per box: each item, and what it was made of (to make it again with its MR3).
        let mut by_box: BTreeMap<BoxId, Vec<(Verify, Vec<Pending>, KnownMr3)>> = BTreeMap::new();
        let item =
            |k: &KnownMr3, isn: &Isn, subdomain: &SubdomainId, part: &[Pending], with| Verify {
                mr3_digest: k.digest,
                mr3: if with { vec![k.mr3.clone()] } else { Vec::new() },
                isn: isn.clone(),
                subdomain: subdomain.clone(),
                pieces: part.iter().map(|t| piece_token(&pieces[t.piece], t.postal)).collect(),
            };
        for (_, w) in work {
            let of = w.mr3.mr3.claimed_body().subdomain.clone();
            let id = cache.serving(self.store(), &of).await?;
            // An MR3 the box answered for before goes by its digest alone.
            let with = !held(&cache.sent).contains(&(id, w.mr3.digest));
            let entry = by_box.entry(id).or_default();
            // A list holds at most MAX_LIST entries: a key with more mailpieces goes in parts.
            let mut tokens = w.tokens.into_iter().peekable();
            while tokens.peek().is_some() {
                let part: Vec<Pending> = tokens.by_ref().take(MAX_LIST).collect();
                let v = item(&w.mr3, &w.isn, &w.subdomain, &part, with);
                entry.push((v, part, w.mr3.clone()));
            }
        }
        for (id, work) in by_box {
            let mut work = work.into_iter();
            loop {
                let (batch, rest): (Vec<Verify>, Vec<Sent>) = work
                    .by_ref()
                    .take(MAX_LIST)
                    .map(|(v, p, k)| {
                        let with = !v.mr3.is_empty();
                        (v, (p, k, with))
                    })
                    .unzip();
                if batch.is_empty() {
                    break;
                }
                let isns: Vec<(Isn, SubdomainId)> =
                    batch.iter().map(|v| (v.isn.clone(), v.subdomain.clone())).collect();
                let called = call(boxes, id, batch).await?;
                let mut again = Vec::new();
                let mut kept = Vec::new();
                for ((answer, (part, k, with)), (isn, subdomain)) in
                    called.answers.into_iter().zip(rest).zip(isns)
                {
                    let verdicts = answer?;
                    if !verdicts.held && !with {
                        // The box no longer holds it (restarted, or evicted): once more with it.
                        again.push(item(&k, &isn, &subdomain, &part, true));
                        kept.push((part, k));
                        continue;
                    }
                    write_verdicts(verdicts, part, out)?;
                    cache.answered(id, k.digest);
                }
                if again.is_empty() {
                    continue;
                }
                let called = call(boxes, id, again).await?;
                for (answer, (part, k)) in called.answers.into_iter().zip(kept) {
                    write_verdicts(answer?, part, out)?;
                    cache.answered(id, k.digest);
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

    /// A Brass link that answers every token good, and holds the MR3s it was sent until told
    /// to forget them (a box restarted, or its cache full); it notes, per command, how many
    /// items came and how many carried their MR3.
    #[derive(Default)]
    struct ForgetfulBrass {
        holds: std::sync::Mutex<std::collections::HashSet<Mr3Digest>>,
        calls: std::sync::Mutex<Vec<(usize, usize)>>,
    }

    impl Boxes for ForgetfulBrass {
        async fn send(
            &self,
            _: BoxId,
            command: postkey_wire::command::Command,
        ) -> Result<postkey_wire::command::Answered, postkey_wire::Refusal> {
            use postkey_wire::command::{Answered, Command, Response, Verdicts};
            let Command::Verify(items) = command else { panic!("not VERIFY") };
            let with = items.iter().filter(|i| !i.mr3.is_empty()).count();
            held(&self.calls).push((items.len(), with));
            let mut holds = held(&self.holds);
            let answers = items
                .iter()
                .map(|i| {
                    if i.mr3.is_empty() && !holds.contains(&i.mr3_digest) {
                        return Ok(Verdicts { held: false, good: vec![] });
                    }
                    holds.insert(i.mr3_digest);
                    // A token of zeros is the one bad token of these tests.
                    let good = i.pieces.iter().map(|p| p.token != Token::from_bytes([0; 8]));
                    Ok(Verdicts { held: true, good: good.collect() })
                })
                .collect();
            Ok(Answered {
                response: Response::Verify(answers),
                state_version: postkey_wire::StateVersion(1),
            })
        }
    }

    #[tokio::test]
    async fn an_mr3_goes_by_digest_once_answered_for_and_again_whole_to_a_box_that_forgot_it() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            postkey_archive_sqlite::SqliteStore::open(dir.path().join("a.db")).await.unwrap();
        // The base point of Ed25519: any valid key will do, no bundle is read here.
        let mut point = [0x66; 32];
        point[0] = 0x58;
        let dks = postkey_crypto::VerifyingKey::from_bytes(&point).unwrap();
        let kmc = Kmc::new(
            store,
            dks,
            postkey_wire::InstallationId([0; 16]),
            crate::InstallConfig::default(),
        );
        let usps = SubdomainId::parse("USPS/US").unwrap();
        let brass = BoxId::new(BoxType::Brass, 1).unwrap();
        let cache = VerifyCache::default();
        held(&cache.brass).insert(usps.clone(), brass);
        // Keys 1 and 2, of ISNs ...01 and ...02.
        let isn = |n: u64| Isn::parse(&format!("04000000{n:02}")).unwrap();
        let known = |n: u64| {
            let body = RegisteredKey {
                brass,
                subdomain: usps.clone(),
                isn: isn(n),
                country: postkey_wire::Country::parse("US").unwrap(),
                date: Date::parse("20261204").unwrap(),
                wrapped: postkey_wire::WrappedKey([7; postkey_wire::WRAPPED_KEY_LEN]),
            };
            let context = postkey_wire::Context {
                domain: DomainId::parse("USPS").unwrap(),
                sender: postkey_wire::Sender::Box(brass),
                meter_id: None,
                key_id: Some(KeyId::new(n).unwrap()),
                state_version: None,
                timestamp: Timestamp::from_unix_micros(0),
            };
            let mr3 = Maced::new(postkey_wire::Message::new(context, body), |_| [0; 32]);
            KnownMr3 { digest: Mr3Digest::of(&mr3), mr3 }
        };
        let (one, two) = (known(1), known(2));
        // Mailpiece 0 of key 1, good; 1 and 2 of key 2, bad then good.
        let piece = |n: u64, count: u32, token: [u8; 8]| {
            let mailpiece = Mailpiece {
                isn: isn(n),
                subdomain: usps.clone(),
                date: Date::parse("20261204").unwrap(),
                value: 65,
                count,
                zip: postkey_wire::Zip::normalize("06484").unwrap(),
            };
            let token = Token::from_bytes(token);
            PieceToVerify { mailpiece, vendor: token, postal: token }
        };
        let pieces = vec![piece(1, 1, [1; 8]), piece(2, 1, [0; 8]), piece(2, 2, [2; 8])];
        let work = || {
            let mut w = BTreeMap::new();
            for (k, n, places) in [(&one, 1, vec![0]), (&two, 2, vec![1, 2])] {
                w.insert(
                    (
                        DomainId::parse("USPS").unwrap(),
                        KeyId::new(n).unwrap(),
                        usps.clone(),
                        isn(n),
                    ),
                    KeyWork {
                        mr3: k.clone(),
                        subdomain: usps.clone(),
                        isn: isn(n),
                        tokens: places
                            .into_iter()
                            .map(|piece| Pending { piece, postal: true })
                            .collect(),
                    },
                );
            }
            w
        };
        let boxes = ForgetfulBrass::default();
        let verify = || async {
            let unset = PieceVerdict {
                vendor: Verdict::Good,
                postal: Verdict::Malformed,
                meter: None,
                first: None,
            };
            let mut out = vec![unset; 3];
            kmc.ask_brass(&boxes, &cache, &pieces, work(), &mut out).await.unwrap();
            out.iter().map(|v| v.postal).collect::<Vec<_>>()
        };
        let answers = [Verdict::Good, Verdict::Bad, Verdict::Good];
        assert_eq!(verify().await, answers);
        assert_eq!(verify().await, answers);
        // The box forgets key 2's MR3 only: key 2's item goes again, whole; each answer stays
        // with its own mailpiece.
        held(&boxes.holds).remove(&two.digest);
        assert_eq!(verify().await, answers);
        // Whole the first time; by digest once answered for; whole again after a "not held".
        assert_eq!(*held(&boxes.calls), [(2, 2), (2, 0), (2, 0), (1, 1)]);
    }

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
