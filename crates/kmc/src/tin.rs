//! Tin exports and offline verification (protocol §6.5, docs/tin.md).
//!
//! ```text
//!  archive: Active keys of the postal sub-domain, their MR3s ──► Brass serving it,
//!      EXPORT_TOKEN_KEYS, chunks of TIN_EXPORT_CHUNK_KEYS ──► TINEXPORT chunks (the export)
//!  export ──IMPORT_TIN_EXPORT──► Tin box (its new state version recorded)
//!  mailpieces ──grouped by (sub-domain, ISN, month)──► TIN_VERIFY ──► postal verdicts
//! ```
//!
//! The KMC decides which meters an export covers (their keys `Active` when it read the
//! archive, the export's time); Brass derives and seals the keys; the Tin box alone opens them.
//! Verification at a Tin box reads no archive.

use std::collections::BTreeMap;

use postkey_archive::{Changes, KeyFilter, KeyStatus, Store};
use postkey_wire::command::{
    ExportTokenKeys, ImportTinExport, MAX_LIST, PieceToken, TinImported, TinVerify,
};
use postkey_wire::{
    BoxId, Certificate, DomainId, Isn, KeyId, Maced, Period, ProcessRecord, RecordType, Refusal,
    RegisteredKey, SubdomainId, TIN_EXPORT_CHUNK_KEYS, TIN_EXPORT_MAX_CHUNKS, Timestamp, TinExport,
    Unverified, Verdict,
};

use crate::link::call;
use crate::verify::PieceToVerify;
use crate::{Boxes, Kmc, KmcError};

/// Chunks per `EXPORT_TOKEN_KEYS` or `IMPORT_TIN_EXPORT` command: a frame of a few megabytes.
const CHUNKS_PER_COMMAND: usize = 32;

/// What a Tin box may answer for a postal token.
const TIN_VERDICTS: [Verdict; 4] =
    [Verdict::Good, Verdict::Bad, Verdict::UnknownMeter, Verdict::DateBeforeRegistration];

/// An export the KMC had Brass make.
#[derive(Debug, Clone)]
pub struct MadeExport {
    /// Its chunks, in order, as Brass signed them.
    pub chunks: Vec<Unverified<TinExport>>,
    /// The meters it covers.
    pub keys: usize,
    /// The Brass box that made it.
    pub brass: BoxId,
}

/// What a Tin box answered for one mailpiece's postal token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinPieceVerdict {
    /// `good`, `bad`, `unknown-meter`, `date-before-registration`, or `not-exported` (the box
    /// holds no export of the mailpiece's sub-domain and month).
    pub verdict: Verdict,
    /// The time of the export that answered: the meters as of then.
    pub as_of: Option<Timestamp>,
    /// Why the box could not answer (`not-exported`).
    pub refusal: Option<Refusal>,
}

impl<S: Store> Kmc<S> {
    /// Has the Brass box serving `subdomain` export the token keys of `period` of every meter
    /// whose key of that sub-domain is `Active` now (`as_of`, the KMS time), sealed to Tin box
    /// `tin`, which must run a process of the domain serving the sub-domain.
    pub async fn export_token_keys(
        &self,
        boxes: &impl Boxes,
        tin: BoxId,
        subdomain: &SubdomainId,
        period: Period,
        as_of: Timestamp,
    ) -> Result<MadeExport, KmcError> {
        let domain = subdomain.domain().clone();
        let (certificate, process) = self.tin_papers(tin, &domain).await?;
        let brass = crate::brass_serving(self.store(), subdomain).await?;
        let keys = self.active_keys(&domain, subdomain).await?;
        let mut mr3s = Vec::with_capacity(keys.len());
        for batch in keys.chunks(MAX_LIST) {
            let mut found = BTreeMap::new();
            for (d, key_id, stored) in self.store().records_of_type(batch, RecordType::MR3).await? {
                let mr3 =
                    Maced::<RegisteredKey>::from_bytes(&stored.record.bytes).map_err(|_| {
                        KmcError::ArchivedRecord(d.clone(), key_id, "its MR3 does not decode")
                    })?;
                if &mr3.claimed_body().subdomain != subdomain {
                    let why = "its MR3 is of another sub-domain";
                    return Err(KmcError::ArchivedRecord(d, key_id, why));
                }
                // The newest, should there be more than one.
                found.insert(key_id, mr3);
            }
            // Every Active key of the sub-domain is in the export, or the export is not made:
            // a meter left out would be `unknown-meter` at the site with nothing said here.
            for (d, key_id) in batch {
                mr3s.push(found.remove(key_id).ok_or_else(|| {
                    KmcError::ArchivedRecord(d.clone(), *key_id, "an Active key without its MR3")
                })?);
            }
        }
        let chunks = mr3s.len().div_ceil(TIN_EXPORT_CHUNK_KEYS).max(1);
        if chunks > TIN_EXPORT_MAX_CHUNKS as usize {
            return Err(KmcError::ExportTooLarge { keys: mr3s.len() });
        }
        let mut items: Vec<ExportTokenKeys> = Vec::with_capacity(chunks);
        let mut pieces = mr3s.chunks(TIN_EXPORT_CHUNK_KEYS).map(<[_]>::to_vec);
        for chunk in 0..chunks {
            items.push(ExportTokenKeys {
                tin: certificate.clone(),
                process: process.clone(),
                subdomain: subdomain.clone(),
                period,
                as_of,
                chunk: chunk as u32,
                chunks: chunks as u32,
                mr3s: pieces.next().unwrap_or_default(),
            });
        }
        let mut out = Vec::with_capacity(chunks);
        let mut versions = Vec::new();
        let mut rest = items.into_iter().peekable();
        while rest.peek().is_some() {
            let batch: Vec<ExportTokenKeys> = rest.by_ref().take(CHUNKS_PER_COMMAND).collect();
            let called = call(boxes, brass, batch).await?;
            versions.push(called.version);
            for answer in called.answers {
                let made = answer?;
                let b = made.claimed_body();
                let sent = mr3s.len().saturating_sub(out.len() * TIN_EXPORT_CHUNK_KEYS);
                if b.tin != tin
                    || b.brass != brass
                    || &b.subdomain != subdomain
                    || b.period != period
                    || b.as_of != as_of
                    || b.chunk as usize != out.len()
                    || b.chunks as usize != chunks
                    || b.keys as usize != sent.min(TIN_EXPORT_CHUNK_KEYS)
                {
                    return Err(KmcError::WrongAnswer { box_id: brass });
                }
                out.push(made);
            }
        }
        self.store().apply(&Changes { versions, ..Changes::default() }).await?;
        Ok(MadeExport { chunks: out, keys: mr3s.len(), brass })
    }

    /// Gives every chunk of an export to Tin box `tin`, in order; its state version is recorded
    /// (an older state of the box, which would hold an export since replaced, is refused when
    /// it is next enabled). The answer to the last chunk says where the export stands.
    pub async fn import_tin_export(
        &self,
        boxes: &impl Boxes,
        tin: BoxId,
        chunks: &[Unverified<TinExport>],
    ) -> Result<Vec<TinImported>, KmcError> {
        let mut out = Vec::with_capacity(chunks.len());
        let mut versions = Vec::new();
        let mut failed = None;
        for batch in chunks.chunks(CHUNKS_PER_COMMAND) {
            let items: Vec<ImportTinExport> =
                batch.iter().map(|c| ImportTinExport { export: c.clone() }).collect();
            let called = call(boxes, tin, items).await?;
            versions.push(called.version);
            for answer in called.answers {
                match answer {
                    Ok(a) => out.push(a),
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            if failed.is_some() {
                break;
            }
        }
        // What the box took is durable in it: the archive learns its version either way.
        self.store().apply(&Changes { versions, ..Changes::default() }).await?;
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }

    /// Has Tin box `tin` verify the postal token of each mailpiece: one `TIN_VERIFY` item per
    /// sub-domain, ISN and month. Reads nothing from the archive; the vendor token and
    /// duplicates are not checked.
    pub async fn tin_verify(
        &self,
        boxes: &impl Boxes,
        tin: BoxId,
        pieces: &[PieceToVerify],
    ) -> Result<Vec<TinPieceVerdict>, KmcError> {
        let mut groups: BTreeMap<(SubdomainId, Isn, Period), Vec<usize>> = BTreeMap::new();
        for (i, p) in pieces.iter().enumerate() {
            let m = &p.mailpiece;
            groups
                .entry((m.subdomain.clone(), m.isn.clone(), m.date.period()))
                .or_default()
                .push(i);
        }
        let mut out: Vec<Option<TinPieceVerdict>> = vec![None; pieces.len()];
        // A busy meter's mailpieces of a month go in items of at most `MAX_LIST`.
        let groups: Vec<_> = groups
            .into_iter()
            .flat_map(|(k, places)| {
                places.chunks(MAX_LIST).map(|p| (k.clone(), p.to_vec())).collect::<Vec<_>>()
            })
            .collect();
        for batch in groups.chunks(MAX_LIST) {
            let items: Vec<TinVerify> = batch
                .iter()
                .map(|((subdomain, isn, _), places)| TinVerify {
                    subdomain: subdomain.clone(),
                    isn: isn.clone(),
                    pieces: places
                        .iter()
                        .map(|&i| {
                            let m = &pieces[i].mailpiece;
                            PieceToken {
                                date: m.date,
                                value: m.value,
                                count: m.count,
                                zip: m.zip.clone(),
                                token: pieces[i].postal,
                            }
                        })
                        .collect(),
                })
                .collect();
            let called = call(boxes, tin, items).await?;
            for ((_, places), answer) in batch.iter().zip(called.answers) {
                match answer {
                    Ok(a) if a.codes.len() == places.len() => {
                        for (&i, &code) in places.iter().zip(&a.codes) {
                            // Only what a Tin box may answer: it has no archive, no memory.
                            let verdict = u16::try_from(code)
                                .ok()
                                .and_then(Verdict::from_code)
                                .filter(|v| TIN_VERDICTS.contains(v))
                                .ok_or(KmcError::WrongAnswer { box_id: tin })?;
                            out[i] = Some(TinPieceVerdict {
                                verdict,
                                as_of: Some(a.as_of),
                                refusal: None,
                            });
                        }
                    }
                    Ok(_) => return Err(KmcError::WrongAnswer { box_id: tin }),
                    Err(e) => {
                        for &i in places {
                            out[i] = Some(TinPieceVerdict {
                                verdict: Verdict::NotExported,
                                as_of: None,
                                refusal: Some(e.refusal.clone()),
                            });
                        }
                    }
                }
            }
        }
        out.into_iter().map(|v| v.ok_or(KmcError::Unfinished)).collect()
    }

    /// The Tin box's certificate and its process of `domain`, as the archive keeps them.
    async fn tin_papers(
        &self,
        tin: BoxId,
        domain: &DomainId,
    ) -> Result<(Unverified<Certificate>, Unverified<ProcessRecord>), KmcError> {
        let not = || KmcError::NotCertified(tin, domain.clone());
        let record = self.store().box_record(tin).await?.ok_or_else(not)?;
        let certificate = Unverified::<Certificate>::from_bytes(&record.certificate.bytes)
            .map_err(|error| KmcError::BadAnswer { box_id: tin, error })?;
        let process = self
            .store()
            .domain_processes(tin)
            .await?
            .into_iter()
            .find(|p| &p.domain == domain)
            .ok_or_else(not)?;
        let process = Unverified::<ProcessRecord>::from_bytes(&process.record.bytes)
            .map_err(|error| KmcError::BadAnswer { box_id: tin, error })?;
        Ok((certificate, process))
    }

    /// The keys of `domain` registered into `subdomain` and `Active`, in key-ID order.
    async fn active_keys(
        &self,
        domain: &DomainId,
        subdomain: &SubdomainId,
    ) -> Result<Vec<(DomainId, KeyId)>, KmcError> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let filter = KeyFilter {
                status: Some(KeyStatus::Active),
                after,
                ..KeyFilter::domain(domain.clone(), 1000)
            };
            let page = self.store().keys(&filter).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key_id);
            out.extend(
                page.iter()
                    .filter(|k| k.registration.as_ref().is_some_and(|r| &r.subdomain == subdomain))
                    .map(|k| (k.domain.clone(), k.key_id)),
            );
        }
        Ok(out)
    }
}
