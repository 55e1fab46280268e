//! Verification (protocol §6.5, docs/verification.md): for a batch of mailpieces, the KMC finds
//! both key records of each meter (by (postal sub-domain, ISN), then through the postal record's
//! meter; kept between batches while the domain chains stand); answers what the archive alone
//! decides (an unknown meter, a key not `Active`, `Obsolete`, a date before registration); asks
//! the Brass boxes serving the keys' sub-domains to recompute the rest, in `VERIFY` items of up to
//! 4,096 packed mailpieces and keys; and records the good mailpieces in the duplicate memory,
//! durably, before it answers: a copy of a good mailpiece, here or at another verifier of the
//! archive, is `duplicate`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use postkey_archive::{ChainHead, KeyRecord, KeyStatus, Sighting, Store};
use postkey_wire::command::{MAX_LIST, Verify, VerifyKey, VerifyPiece, VerifyPieces};
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

/// The most MR3s a verifier remembers a Brass box answered for.
const MAX_CACHED_MR3: usize = 1 << 17;

/// The most meters (postal sub-domain, ISN) a verifier keeps the key records of between
/// batches, found or not: all are read again when it is full. A meter's two records and MR3s
/// take about 1.6 KB, so at most about 100 MB.
const MAX_KNOWN_METERS: usize = 1 << 16;

/// What a verifier keeps between its batches: which Brass box serves each sub-domain, the key
/// records and MR3s of the meters it has seen, and which MR3s each Brass box has checked.
#[derive(Debug, Default)]
pub struct VerifyCache {
    brass: std::sync::Mutex<BTreeMap<SubdomainId, BoxId>>,
    roles: std::sync::Mutex<BTreeMap<DomainId, Option<crate::KeyRole>>>,
    keys: std::sync::Mutex<KnownMeters>,
    /// The MR3s each Brass box answered for, by digest: sent by digest alone from then on (a
    /// box that no longer holds one says so, and gets it again).
    sent: std::sync::Mutex<std::collections::HashSet<(BoxId, Mr3Digest)>>,
}

/// The key records a verifier read, by (postal sub-domain, ISN), `None` where no meter was
/// found. They stand only while every key domain's chain in the archive has the number of
/// events and the head it had before they were read: every change of a key (created, installed, registered,
/// withdrawn, marked bad) appends an event to its domain's chain in the same transaction
/// (docs/audit.md), so any such change, by this verifier's process or any other, makes the
/// next batch read its key records again (docs/verification.md, "Speed").
#[derive(Debug, Default)]
struct KnownMeters {
    heads: Vec<ChainHead>,
    meters: HashMap<SubdomainId, HashMap<Isn, Option<Arc<MeterKeys>>>>,
    count: usize,
}

/// What [`KnownMeters::lookup`] found for each meter asked (`None`: not held, to be read).
type Found = Vec<Option<Option<Arc<MeterKeys>>>>;

impl KnownMeters {
    /// The meters held of `pairs`, in order, and those to read: none held if the domain
    /// chains stand otherwise than at `heads` (all are forgotten then).
    fn lookup(
        &mut self,
        heads: &[ChainHead],
        pairs: &[(&SubdomainId, &Isn)],
    ) -> (Found, Vec<(SubdomainId, Isn)>) {
        if self.heads != heads {
            *self = KnownMeters { heads: heads.to_vec(), ..KnownMeters::default() };
        }
        let mut missing = Vec::new();
        let found = pairs
            .iter()
            .map(|(subdomain, isn)| {
                let hit = self.meters.get(*subdomain).and_then(|m| m.get(*isn)).cloned();
                if hit.is_none() {
                    missing.push(((*subdomain).clone(), (*isn).clone()));
                }
                hit
            })
            .collect();
        (found, missing)
    }

    /// Keeps what was read after the chains were seen at `heads`, unless they have been seen
    /// otherwise since (the read may be older than what is held). Bounded: all are forgotten
    /// when full.
    fn keep(
        &mut self,
        heads: &[ChainHead],
        read: &HashMap<(SubdomainId, Isn), Option<Arc<MeterKeys>>>,
    ) {
        if self.heads != heads {
            return;
        }
        if self.count + read.len() > MAX_KNOWN_METERS {
            *self = KnownMeters { heads: heads.to_vec(), ..KnownMeters::default() };
        }
        for ((subdomain, isn), keys) in read {
            let of = self.meters.entry(subdomain.clone()).or_default();
            if of.insert(isn.clone(), keys.clone()).is_none() {
                self.count += 1;
            }
        }
    }
}

/// A meter's two key records as the archive had them ([`POSTAL`], [`VENDOR`]), and the MR3 of
/// each that is `Active`.
#[derive(Debug)]
struct MeterKeys {
    keys: [Option<KeyRecord>; 2],
    mr3: [Option<Arc<KnownMr3>>; 2],
}

/// An MR3 as the archive keeps it, and its digest.
#[derive(Debug)]
struct KnownMr3 {
    mr3: Maced<RegisteredKey>,
    digest: Mr3Digest,
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

    /// Box `id` answered for the MR3s of these digests: named by digest alone from now on.
    /// Bounded (all forgotten when full: each is sent whole once more).
    fn answered(&self, id: BoxId, digests: impl Iterator<Item = Mr3Digest>) {
        let mut sent = held(&self.sent);
        for digest in digests {
            if sent.len() >= MAX_CACHED_MR3 {
                sent.clear();
            }
            sent.insert((id, digest));
        }
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
    work: BrassWork,
}

/// What Brass is to check: the keys, each once with the ISN and sub-domain its mailpieces
/// name, and per mailpiece the key of each token ([`POSTAL`], [`VENDOR`]) that only Brass
/// can answer for.
#[derive(Debug, Default)]
struct BrassWork {
    keys: Vec<KeyWork>,
    tokens: Vec<Tokens>,
}

/// A mailpiece's place in its batch and the plan's key of each of its tokens ([`POSTAL`],
/// [`VENDOR`]) that Brass is to check.
type Tokens = (usize, [Option<u32>; 2]);

/// A meter's (postal sub-domain, ISN), and its two key records ([`POSTAL`], [`VENDOR`]).
type MeterRecords = ((SubdomainId, Isn), [Option<KeyRecord>; 2]);

/// The token slots of a mailpiece in [`BrassWork`] and in a `VERIFY` mailpiece.
const POSTAL: usize = 0;
const VENDOR: usize = 1;

/// A key Brass checks tokens with: its MR3, and the ISN and sub-domain its mailpieces name.
/// The MR3's digest and sub-domain are copied out of it: the items and the choice of box read
/// them for every key, and a batch's thousands of MR3s are not in the CPU's caches.
#[derive(Debug)]
struct KeyWork {
    mr3: Arc<KnownMr3>,
    digest: Mr3Digest,
    of: SubdomainId,
    subdomain: SubdomainId,
    isn: Isn,
}

impl KeyWork {
    fn new(mr3: &Arc<KnownMr3>, subdomain: &SubdomainId, isn: &Isn) -> Self {
        Self {
            digest: mr3.digest,
            of: mr3.mr3.claimed_body().subdomain.clone(),
            mr3: Arc::clone(mr3),
            subdomain: subdomain.clone(),
            isn: isn.clone(),
        }
    }
}

/// The `VERIFY` items a Brass box is sent at most in one command: four items of at most
/// [`MAX_LIST`] mailpieces and keys each, a frame of a few megabytes even with every MR3.
const ITEMS_PER_COMMAND: usize = 4;

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
    /// n + 2 while batch n + 1 is at Brass and batch n in the duplicate memory.
    pub async fn plan_verification(
        &self,
        cache: &VerifyCache,
        pieces: &[PieceToVerify],
    ) -> Result<VerificationPlan, KmcError> {
        // The meters the batch names, each once.
        let mut pair_of: HashMap<(&SubdomainId, &Isn), usize> = HashMap::new();
        let mut pairs: Vec<(&SubdomainId, &Isn)> = Vec::new();
        let at: Vec<usize> = pieces
            .iter()
            .map(|p| {
                let pair = (&p.mailpiece.subdomain, &p.mailpiece.isn);
                *pair_of.entry(pair).or_insert_with(|| {
                    pairs.push(pair);
                    pairs.len() - 1
                })
            })
            .collect();
        let meters = self.meter_keys(&pairs, cache).await?;
        let mut out: Vec<PieceVerdict> = Vec::with_capacity(pieces.len());
        // A key's work is per sub-domain and ISN its mailpieces name: the tokens are recomputed
        // over those, so one line naming another cannot change another's answers.
        let mut work = BrassWork::default();
        let mut placed: Vec<[Option<u32>; 2]> = vec![[None; 2]; pairs.len()];
        for (i, (p, &n)) in pieces.iter().zip(&at).enumerate() {
            let m = &p.mailpiece;
            let Some(keys) = &meters[n] else {
                out.push(PieceVerdict {
                    vendor: Verdict::UnknownMeter,
                    postal: Verdict::UnknownMeter,
                    meter: None,
                    first: None,
                });
                continue;
            };
            let mut to_brass = [None; 2];
            let mut verdicts = [Verdict::UnknownMeter; 2];
            for slot in [POSTAL, VENDOR] {
                let Some(k) = &keys.keys[slot] else { continue };
                verdicts[slot] = match archive_verdict(k, m.date) {
                    Some(v) => v,
                    None => match &keys.mr3[slot] {
                        // Checked by Brass: `bad` until it answers otherwise, so that a token
                        // it never answered for can never pass.
                        Some(mr3) => {
                            let index = *placed[n][slot].get_or_insert_with(|| {
                                work.keys.push(KeyWork::new(mr3, &m.subdomain, &m.isn));
                                (work.keys.len() - 1) as u32
                            });
                            to_brass[slot] = Some(index);
                            Verdict::Bad
                        }
                        None => Verdict::NotActive,
                    },
                };
            }
            if to_brass.iter().any(Option::is_some) {
                work.tokens.push((i, to_brass));
            }
            out.push(PieceVerdict {
                vendor: verdicts[VENDOR],
                postal: verdicts[POSTAL],
                meter: keys.keys[POSTAL].as_ref().and_then(|k| k.meter_id.clone()),
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
        let mut out = self.brass_verdicts(boxes, cache, plan, pieces).await?;
        self.remember(&mut out, pieces, site, now).await?;
        Ok(out)
    }

    /// The answers of a planned batch, Brass's included, before the duplicate memory: not yet
    /// answers to give. A `good` here may still be a copy: only [`Kmc::remember`] (or
    /// [`Kmc::finish_verification`], which runs both) says so, and no answer of the batch may
    /// leave before it has. `bench verify` measures verification in memory with this alone.
    pub async fn brass_verdicts(
        &self,
        boxes: &impl Boxes,
        cache: &VerifyCache,
        plan: VerificationPlan,
        pieces: &[PieceToVerify],
    ) -> Result<Vec<PieceVerdict>, KmcError> {
        let VerificationPlan { mut out, work } = plan;
        if out.len() != pieces.len() {
            return Err(KmcError::Unfinished);
        }
        self.ask_brass(boxes, cache, pieces, work, &mut out).await?;
        Ok(out)
    }

    /// The key records of each meter `pairs` name, in order (`None`: no meter): those the
    /// cache holds while no domain chain has moved since they were read, and one read of the
    /// archive for the rest.
    async fn meter_keys(
        &self,
        pairs: &[(&SubdomainId, &Isn)],
        cache: &VerifyCache,
    ) -> Result<Vec<Option<Arc<MeterKeys>>>, KmcError> {
        // Read before the key records: a change after this read is seen by the next batch.
        let mut heads: Vec<ChainHead> = self
            .store()
            .chain_heads()
            .await?
            .into_iter()
            // `ADMIN`, `ERRORS` and `SIGHTS` hold no key's events; `ADMIN` and `SIGHTS` move with
            // every batch (its checkpoint, its sightings).
            .filter(|h| !h.chain.is_reserved_chain() && !h.chain.is_admin())
            .collect();
        // By count and head hash: a chain put back and grown again to the same count differs.
        heads.sort_by(|a, b| a.chain.cmp(&b.chain));
        let (found, missing) = held(&cache.keys).lookup(&heads, pairs);
        if missing.is_empty() {
            return Ok(found.into_iter().flatten().collect());
        }
        let mut read = self.read_meter_keys(&missing, cache).await?;
        held(&cache.keys).keep(&heads, &read);
        Ok(pairs
            .iter()
            .zip(found)
            .map(|((subdomain, isn), hit)| match hit {
                Some(keys) => keys,
                None => read.remove(&((*subdomain).clone(), (*isn).clone())).flatten(),
            })
            .collect())
    }

    /// Both key records of each meter named, from the archive: the postal one by (sub-domain,
    /// ISN), the vendor one through the postal record's meter (its key of another domain
    /// registered in the same country); and the MR3 of each that is `Active`. Three reads.
    async fn read_meter_keys(
        &self,
        pairs: &[(SubdomainId, Isn)],
        cache: &VerifyCache,
    ) -> Result<HashMap<(SubdomainId, Isn), Option<Arc<MeterKeys>>>, KmcError> {
        let mut pairs = pairs.to_vec();
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
        let both: Vec<MeterRecords> = postal
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
                (pair, [Some(p), other])
            })
            .collect();
        let active: Vec<(DomainId, KeyId)> = both
            .iter()
            .flat_map(|(_, keys)| keys.iter().flatten())
            .filter(|k| k.status == KeyStatus::Active)
            .map(|k| (k.domain.clone(), k.key_id))
            .collect();
        let mut mr3s: HashMap<(DomainId, KeyId), Arc<KnownMr3>> = HashMap::new();
        if !active.is_empty() {
            for (domain, key_id, stored) in
                self.store().records_of_type(&active, RecordType::MR3).await?
            {
                let mr3 =
                    Maced::<RegisteredKey>::from_bytes(&stored.record.bytes).map_err(|_| {
                        KmcError::ArchivedRecord(domain.clone(), key_id, "its MR3 does not decode")
                    })?;
                // The newest, should there be more than one.
                mr3s.insert(
                    (domain, key_id),
                    Arc::new(KnownMr3 { digest: Mr3Digest::of(&mr3), mr3 }),
                );
            }
        }
        let mut out: HashMap<(SubdomainId, Isn), Option<Arc<MeterKeys>>> =
            pairs.into_iter().map(|pair| (pair, None)).collect();
        for (pair, keys) in both {
            let mr3 = [POSTAL, VENDOR].map(|slot| {
                let k = keys[slot].as_ref()?;
                (k.status == KeyStatus::Active)
                    .then(|| mr3s.get(&(k.domain.clone(), k.key_id)).cloned())
                    .flatten()
            });
            out.insert(pair, Some(Arc::new(MeterKeys { keys, mr3 })));
        }
        Ok(out)
    }

    /// Sends each token to the Brass box serving its key's MR3's sub-domain, a mailpiece's two
    /// tokens together when one box serves both keys, and writes the answers (`bad` where the
    /// token is not the key's). A key whose MR3 a box answered for before goes by its digest
    /// alone; the tokens of a key the box no longer holds go once more, with its MR3.
    async fn ask_brass(
        &self,
        boxes: &impl Boxes,
        cache: &VerifyCache,
        pieces: &[PieceToVerify],
        work: BrassWork,
        out: &mut [PieceVerdict],
    ) -> Result<(), KmcError> {
        let BrassWork { keys, tokens } = work;
        // A batch's keys are of a few sub-domains: each asked of the cache once.
        let mut served: Vec<(&SubdomainId, BoxId)> = Vec::new();
        let mut box_of = Vec::with_capacity(keys.len());
        for k in &keys {
            let of = &k.of;
            let id = match served.iter().find(|(s, _)| *s == of) {
                Some(&(_, id)) => id,
                None => {
                    let id = cache.serving(self.store(), of).await?;
                    served.push((of, id));
                    id
                }
            };
            box_of.push(id);
        }
        let mut by_box: BTreeMap<BoxId, Vec<Tokens>> = BTreeMap::new();
        for (piece, slots) in tokens {
            let [postal, vendor] = slots.map(|k| k.map(|k| box_of[k as usize]));
            match (postal, vendor) {
                (Some(a), Some(b)) if a != b => {
                    by_box.entry(a).or_default().push((piece, [slots[POSTAL], None]));
                    by_box.entry(b).or_default().push((piece, [None, slots[VENDOR]]));
                }
                _ => {
                    if let Some(id) = postal.or(vendor) {
                        by_box.entry(id).or_default().push((piece, slots));
                    }
                }
            }
        }
        for (id, mut pending) in by_box {
            // A meter's mailpieces together: each key goes to as few items as it can.
            pending.sort_unstable_by_key(|&(piece, slots)| (slots, piece));
            // The keys to send whole whatever the box answered for before: those it said it
            // no longer holds. A second "not held" for an MR3 sent whole is a box's fault.
            let mut whole: Option<std::collections::HashSet<u32>> = None;
            while !pending.is_empty() {
                let items = verify_items(&keys, &pending, pieces, |of| {
                    let sent = held(&cache.sent);
                    of.iter()
                        .map(|k| {
                            whole.as_ref().is_some_and(|w| w.contains(k))
                                || !sent.contains(&(id, keys[*k as usize].digest))
                        })
                        .collect()
                })?;
                let mut again = Vec::new();
                let mut unheld_keys = std::collections::HashSet::new();
                let mut items = items.into_iter().peekable();
                while items.peek().is_some() {
                    let command: Vec<_> = items.by_ref().take(ITEMS_PER_COMMAND).collect();
                    let (sent, made): (Vec<Verify>, Vec<ItemMade>) = command.into_iter().unzip();
                    let called = call(boxes, id, sent).await?;
                    for (answer, made) in called.answers.into_iter().zip(made) {
                        let answer = answer?;
                        if answer.good.len() != made.pieces.len() {
                            return Err(KmcError::Unfinished);
                        }
                        // Ascending, each a key of the item sent by digest alone.
                        if answer.unheld.windows(2).any(|w| w[0] >= w[1]) {
                            return Err(KmcError::Unfinished);
                        }
                        let mut unheld = vec![false; made.keys.len()];
                        for &u in &answer.unheld {
                            let local = u as usize;
                            if local >= made.keys.len() || made.whole[local] {
                                return Err(KmcError::Unfinished);
                            }
                            unheld[local] = true;
                            unheld_keys.insert(made.keys[local]);
                        }
                        // Those named by digest are noted already.
                        cache.answered(
                            id,
                            made.keys
                                .iter()
                                .zip(&made.whole)
                                .filter(|(_, whole)| **whole)
                                .map(|(&k, _)| keys[k as usize].digest),
                        );
                        for (j, (piece, slots)) in made.pieces.into_iter().enumerate() {
                            let good = answer.good.get(j).ok_or(KmcError::Unfinished)?;
                            let mut retry = [None; 2];
                            for slot in [POSTAL, VENDOR] {
                                let Some(local) = slots[slot] else { continue };
                                let local = usize::from(local);
                                if unheld[local] {
                                    retry[slot] = Some(made.keys[local]);
                                    continue;
                                }
                                let v = if good[slot] { Verdict::Good } else { Verdict::Bad };
                                let at = &mut out[piece];
                                if slot == POSTAL {
                                    at.postal = v;
                                } else {
                                    at.vendor = v;
                                }
                            }
                            if retry.iter().any(Option::is_some) {
                                again.push((piece, retry));
                            }
                        }
                    }
                }
                if !again.is_empty() && whole.is_some() {
                    return Err(KmcError::Unfinished);
                }
                pending = again;
                whole = Some(unheld_keys);
            }
        }
        Ok(())
    }

    /// The good mailpieces of a batch Brass answered for ([`Kmc::brass_verdicts`]) into the
    /// duplicate memory (one transaction, durable before the answers leave); those seen before
    /// become `duplicate`, with the first sighting. The second half of
    /// [`Kmc::finish_verification`]: a verifier runs Brass on batch n + 1 while it remembers
    /// batch n, and remembers batches in order.
    pub async fn remember(
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
        let firsts = self.store().record_sightings(sightings).await?;
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

/// A `VERIFY` item as sent, and what it was made of: the plan's key of each of its keys,
/// whether each went with its MR3, and each mailpiece's place with its local key indices.
struct ItemMade {
    keys: Vec<u32>,
    whole: Vec<bool>,
    pieces: Vec<(usize, [Option<u16>; 2])>,
}

/// The `VERIFY` items for `pending` (mailpiece, plan key of each token), in order: at most
/// [`MAX_LIST`] mailpieces and keys an item, each key with its MR3 where `whole` says so.
fn verify_items(
    keys: &[KeyWork],
    pending: &[Tokens],
    pieces: &[PieceToVerify],
    whole: impl Fn(&[u32]) -> Vec<bool>,
) -> Result<Vec<(Verify, ItemMade)>, KmcError> {
    const NONE: u16 = u16::MAX;
    let mut items = Vec::new();
    // The item's index of each plan key (NONE: not in the current item).
    let mut local: Vec<u16> = vec![NONE; keys.len()];
    let mut made = ItemMade { keys: Vec::new(), whole: Vec::new(), pieces: Vec::new() };
    let mut records = Vec::new();
    let close = |made: &mut ItemMade, records: &mut Vec<VerifyPiece>, local: &mut [u16]| {
        for &k in &made.keys {
            local[k as usize] = NONE;
        }
        let mut made = core::mem::replace(
            made,
            ItemMade { keys: Vec::new(), whole: Vec::new(), pieces: Vec::new() },
        );
        made.whole = whole(&made.keys);
        let item = Verify {
            keys: made
                .keys
                .iter()
                .zip(&made.whole)
                .map(|(&k, &with)| {
                    let k = &keys[k as usize];
                    VerifyKey {
                        mr3_digest: k.digest,
                        mr3: if with { vec![k.mr3.mr3.clone()] } else { Vec::new() },
                        isn: k.isn.clone(),
                        subdomain: k.subdomain.clone(),
                    }
                })
                .collect(),
            pieces: VerifyPieces::new(core::mem::take(records))?,
        };
        Ok::<_, postkey_wire::WireError>((item, made))
    };
    for &(piece, slots) in pending {
        let fresh = slots.iter().flatten().filter(|&&k| local[k as usize] == NONE).count();
        if made.pieces.len() == MAX_LIST || made.keys.len() + fresh > MAX_LIST {
            items.push(
                close(&mut made, &mut records, &mut local).map_err(|_| KmcError::Unfinished)?,
            );
        }
        let mut at = [None; 2];
        for (slot, k) in slots.iter().enumerate() {
            let Some(k) = *k else { continue };
            let index = &mut local[k as usize];
            if *index == NONE {
                made.keys.push(k);
                *index = (made.keys.len() - 1) as u16;
            }
            at[slot] = Some(*index);
        }
        let p = &pieces[piece];
        let m = &p.mailpiece;
        // Each slot names a key of the item, at least one does: `new` refuses none of these.
        let record = VerifyPiece::new(at, m.date, m.value, m.count, &m.zip, [p.postal, p.vendor])
            .map_err(|_| KmcError::Unfinished)?;
        records.push(record);
        made.pieces.push((piece, at));
    }
    if !made.pieces.is_empty() {
        items.push(close(&mut made, &mut records, &mut local).map_err(|_| KmcError::Unfinished)?);
    }
    Ok(items)
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

    /// A Brass link that answers every token good but a token of zeros, and holds the MR3s it
    /// was sent until told to forget them (a box restarted, or its cache full); it notes, per
    /// command, how many keys came and how many carried their MR3.
    #[derive(Default)]
    struct ForgetfulBrass {
        holds: std::sync::Mutex<std::collections::HashSet<Mr3Digest>>,
        calls: std::sync::Mutex<Vec<(u32, usize, usize)>>,
    }

    impl Boxes for ForgetfulBrass {
        async fn send(
            &self,
            id: BoxId,
            command: postkey_wire::command::Command,
        ) -> Result<postkey_wire::command::Answered, postkey_wire::Refusal> {
            use postkey_wire::command::{Answered, Command, Response, TokenBits, Verdicts};
            let Command::Verify(items) = command else { panic!("not VERIFY") };
            let keys = items.iter().map(|i| i.keys.len()).sum();
            let with = items.iter().flat_map(|i| &i.keys).filter(|k| !k.mr3.is_empty()).count();
            held(&self.calls).push((id.number(), keys, with));
            let mut holds = held(&self.holds);
            let answers = items
                .iter()
                .map(|i| {
                    let mut unheld = Vec::new();
                    for (n, k) in i.keys.iter().enumerate() {
                        if k.mr3.is_empty() && !holds.contains(&k.mr3_digest) {
                            unheld.push(n as u32);
                        } else {
                            holds.insert(k.mr3_digest);
                        }
                    }
                    let mut good = TokenBits::with_capacity(i.pieces.len());
                    for p in i.pieces.as_slice() {
                        let answer = [0, 1].map(|slot| {
                            p.keys()[slot].is_some_and(|k| !unheld.contains(&u32::from(k)))
                                && p.tokens()[slot] != Token::from_bytes([0; 8])
                        });
                        good.push(answer);
                    }
                    Ok(Verdicts { unheld, good })
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
        let ve = SubdomainId::parse("VE/US").unwrap();
        let brass = BoxId::new(BoxType::Brass, 1).unwrap();
        let cache = VerifyCache::default();
        held(&cache.brass).insert(usps.clone(), brass);
        held(&cache.brass).insert(ve.clone(), brass);
        // Meters 1 and 2 (ISNs ...01 and ...02), each with a USPS key (n) and a VE key (10 + n).
        let isn = |n: u64| Isn::parse(&format!("04000000{n:02}")).unwrap();
        let known = |domain: &str, of: &SubdomainId, n: u64, key: u64| {
            let body = RegisteredKey {
                brass,
                subdomain: of.clone(),
                isn: isn(n),
                country: postkey_wire::Country::parse("US").unwrap(),
                date: Date::parse("20261204").unwrap(),
                wrapped: postkey_wire::WrappedKey([7; postkey_wire::WRAPPED_KEY_LEN]),
            };
            let context = postkey_wire::Context {
                domain: DomainId::parse(domain).unwrap(),
                sender: postkey_wire::Sender::Box(brass),
                meter_id: None,
                key_id: Some(KeyId::new(key).unwrap()),
                state_version: None,
                timestamp: Timestamp::from_unix_micros(0),
            };
            let mr3 = Maced::new(postkey_wire::Message::new(context, body), |_| [0; 32]);
            KnownMr3 { digest: Mr3Digest::of(&mr3), mr3 }
        };
        // Keys 0..4 of the plan: meter 1's USPS and VE keys, meter 2's.
        let planned = || {
            [(1, "USPS", &usps, 1), (1, "VE", &ve, 11), (2, "USPS", &usps, 2), (2, "VE", &ve, 12)]
                .into_iter()
                .map(|(n, d, of, k)| KeyWork::new(&Arc::new(known(d, of, n, k)), &usps, &isn(n)))
                .collect::<Vec<_>>()
        };
        // Mailpiece 0 of meter 1, good; 1 and 2 of meter 2: its postal token bad on 1, its
        // vendor token bad on 2; mailpiece 3 of meter 2 with its postal token only.
        let piece = |n: u64, count: u32, postal: [u8; 8], vendor: [u8; 8]| {
            let mailpiece = Mailpiece {
                isn: isn(n),
                subdomain: usps.clone(),
                date: Date::parse("20261204").unwrap(),
                value: 65,
                count,
                zip: postkey_wire::Zip::normalize("06484").unwrap(),
            };
            let (postal, vendor) = (Token::from_bytes(postal), Token::from_bytes(vendor));
            PieceToVerify { mailpiece, vendor, postal }
        };
        let pieces = vec![
            piece(1, 1, [1; 8], [1; 8]),
            piece(2, 1, [0; 8], [2; 8]),
            piece(2, 2, [2; 8], [0; 8]),
            piece(2, 3, [3; 8], [3; 8]),
        ];
        let work = || BrassWork {
            keys: planned(),
            tokens: vec![
                (0, [Some(0), Some(1)]),
                (1, [Some(2), Some(3)]),
                (2, [Some(2), Some(3)]),
                (3, [Some(2), None]),
            ],
        };
        let boxes = ForgetfulBrass::default();
        let verify = || async {
            let unset = PieceVerdict {
                vendor: Verdict::Malformed,
                postal: Verdict::Malformed,
                meter: None,
                first: None,
            };
            let mut out = vec![unset; 4];
            kmc.ask_brass(&boxes, &cache, &pieces, work(), &mut out).await.unwrap();
            out.iter().map(|v| (v.postal, v.vendor)).collect::<Vec<_>>()
        };
        use Verdict::{Bad, Good, Malformed};
        let answers = [(Good, Good), (Bad, Good), (Good, Bad), (Good, Malformed)];
        assert_eq!(verify().await, answers);
        assert_eq!(verify().await, answers);
        // The box forgets meter 2's VE key only: its tokens go again, with its MR3; each
        // answer stays with its own mailpiece and token.
        held(&boxes.holds).remove(&known("VE", &ve, 2, 12).digest);
        assert_eq!(verify().await, answers);
        // Whole the first time; by digest once answered for; whole again after a "not held",
        // that key alone.
        assert_eq!(*held(&boxes.calls), [(1, 4, 4), (1, 4, 0), (1, 4, 0), (1, 1, 1)]);

        // Should another Brass box serve VE/US, each token goes to the box of its key (the
        // vendor keys whole to the box that never had them), each answer still in its place.
        held(&cache.brass).insert(ve.clone(), BoxId::new(BoxType::Brass, 2).unwrap());
        held(&boxes.calls).clear();
        assert_eq!(verify().await, answers);
        assert_eq!(*held(&boxes.calls), [(1, 2, 0), (2, 2, 2)]);
    }

    #[test]
    fn key_records_are_kept_only_while_the_domain_chains_stand() {
        let usps = SubdomainId::parse("USPS/US").unwrap();
        let isns: Vec<Isn> =
            (1..=3).map(|n| Isn::parse(&format!("040000000{n}")).unwrap()).collect();
        let pairs: Vec<(&SubdomainId, &Isn)> = isns.iter().map(|i| (&usps, i)).collect();
        let head = |chain: &str, count: u64, hash: u8| ChainHead {
            chain: DomainId::parse(chain).unwrap(),
            count,
            head_hash: postkey_archive::Digest([hash; 32]),
        };
        let at = |n: u64| vec![head("USPS", n, n as u8), head("VE", 7, 7)];
        let read = |of: &[usize]| -> HashMap<(SubdomainId, Isn), Option<Arc<MeterKeys>>> {
            of.iter()
                .map(|&i| {
                    let keys = (i != 2)
                        .then(|| Arc::new(MeterKeys { keys: [None, None], mr3: [None, None] }));
                    ((usps.clone(), isns[i].clone()), keys)
                })
                .collect()
        };
        let held_of = |found: &Found| found.iter().map(Option::is_some).collect::<Vec<_>>();
        let mut known = KnownMeters::default();
        let (found, missing) = known.lookup(&at(1), &pairs);
        assert_eq!((held_of(&found), missing.len()), (vec![false; 3], 3));
        known.keep(&at(1), &read(&[0, 1, 2]));
        // The chains stand: all held, a meter found to be none included.
        let (found, missing) = known.lookup(&at(1), &pairs);
        assert_eq!((held_of(&found), missing.len()), (vec![true; 3], 0));
        assert!(found[2].as_ref().unwrap().is_none());
        // A key of USPS changed (a withdrawal, a registration, by any process): all read again.
        let (found, missing) = known.lookup(&at(2), &pairs);
        assert_eq!((held_of(&found), missing.len()), (vec![false; 3], 3));
        // A chain put back and grown again to the same count, another history: read again.
        known.keep(&at(2), &read(&[0]));
        let other_history = vec![head("USPS", 2, 99), head("VE", 7, 7)];
        assert_eq!(known.lookup(&other_history, &pairs).1.len(), 3);
        let (_, missing) = known.lookup(&at(2), &pairs);
        assert_eq!(missing.len(), 3);
        // What was read before the chains were seen as they now stand is not kept.
        known.keep(&at(1), &read(&[0]));
        assert_eq!(known.lookup(&at(2), &pairs).1.len(), 3);
        known.keep(&at(2), &read(&[0]));
        assert_eq!(held_of(&known.lookup(&at(2), &pairs).0), [true, false, false]);
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
