//! The Tin box: it verifies postal tokens at remote sites from the per-month token keys a Brass
//! process exports to it (protocol §6.5, docs/tin.md). Its processes hold no domain secret and
//! exist only for postal domains ([`crate::process::TinKeys`] refuses a delivery of any other
//! kind); what it holds are exports, each of one postal sub-domain it serves and one month.
//!
//! ```text
//!  IMPORT_TIN_EXPORT chunk ──► signed with the domain Brass key? sealed to this box? a sub-domain
//!                              served? newer than the export held for (sub-domain, month)?
//!        ──► kept with the chunks of its export; the last one in ──► the export replaces the
//!            one held, months older than the window (three) are dropped
//!  TIN_VERIFY (sub-domain, ISN, mailpieces of one month) ──► that export's token key of the ISN
//!        ──► per mailpiece 0 (good), 5001 bad, 5002 unknown meter, 5005 before registration
//! ```
//!
//! The chunks are sealed in the box's state as received and opened again when it is enabled:
//! the state a restart rebuilds is the one the imports made, in the same order.

use std::collections::{BTreeMap, HashMap};

use postkey_crypto::HpkeRecordType;
use postkey_secrets::{TokenKey, TokenMac};
use postkey_wire::command::{PieceToken, TinImported, TinVerdicts, TinVerify};
use postkey_wire::{
    BoxType, Date, Isn, Mailpiece, Period, ResponseCode, SubdomainId, TIN_EXPORT_CHUNK_KEYS,
    TIN_EXPORT_MAX_CHUNKS, Timestamp, TinExport, Unverified, Verdict, WireError, codec,
};
use subtle::ConstantTimeEq as _;

use crate::BoxError;
use crate::core::sealed::RoleState;
use crate::core::{Core, TypedBox};
use crate::image::{Blob, DroppedImage, StateImage, TinKeysImage};
use crate::process::{Processes, TinKeys, serving_role};

/// The months a Tin box takes exports of, by its clock: this month, the two before it and the
/// next. An export of an older month is refused (it could only be a replay), one of a later
/// month too (a mistyped month would otherwise push the window past today), and exports of
/// months that fell out of the window are dropped at the next import.
pub const TIN_WINDOW_MONTHS: u32 = 3;

/// The most token keys a Tin box holds, over every export it holds or is taking (replacing an
/// export needs room for both while the new one comes in).
pub const TIN_MAX_KEYS: usize = 100_000;

/// The most bytes of signed chunks a Tin box keeps, whatever they carry: its sealed state stays
/// within [`crate::MAX_SEALED_LEN`].
pub const TIN_MAX_CHUNK_BYTES: usize = 12 * 1024 * 1024;

/// The month of `now`, as [`Period::index`] counts.
fn month_of(now: Timestamp) -> u32 {
    let (y, m, _) = now.utc_date();
    (u32::try_from(y).unwrap_or(0) * 12 + u32::from(m)).saturating_sub(1)
}

/// Whether `period` is before the window of a box whose clock says `now`.
fn behind_window(period: Period, now: Timestamp) -> bool {
    period.index() + TIN_WINDOW_MONTHS <= month_of(now)
}

/// Whether `period` is in the window of a box whose clock says `now`: why not, if it is not.
pub fn in_tin_window(period: Period, now: Timestamp) -> Result<(), &'static str> {
    if behind_window(period, now) {
        Err("a month before the box's window (this month and the two before)")
    } else if period.index() > month_of(now) + 1 {
        Err("a month after next by the box's clock")
    } else {
        Ok(())
    }
}

/// A Tin box's role: its processes, of postal domains only, and the exports it holds.
pub struct Tin {
    pub(crate) processes: Processes<TinKeys>,
    exports: BTreeMap<(SubdomainId, Period), Slot>,
    /// Per sub-domain, the latest month whose export was dropped (out of the window): that
    /// month and those before it are refused for ever, whatever the clock says later.
    dropped: BTreeMap<SubdomainId, Period>,
    /// The latest time an import was taken at: the window never follows a clock set back.
    latest: Timestamp,
    /// The most token keys it holds ([`TIN_MAX_KEYS`]).
    max_keys: usize,
}

impl Default for Tin {
    fn default() -> Self {
        Self {
            processes: Processes::default(),
            exports: BTreeMap::new(),
            dropped: BTreeMap::new(),
            latest: Timestamp::from_unix_micros(0),
            max_keys: TIN_MAX_KEYS,
        }
    }
}

serving_role!(Tin, TinKeys, own_state);

impl core::fmt::Debug for Tin {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tin")
            .field("processes", &self.processes)
            .field("exports", &self.exports.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What a Tin box has of one sub-domain and month: the export in use, and a newer one it is
/// taking chunk by chunk.
#[derive(Default)]
struct Slot {
    held: Option<Export>,
    pending: Option<Export>,
}

/// An export, whole or in part.
struct Export {
    as_of: Timestamp,
    chunks: u32,
    /// The chunks it has, by place, as signed.
    parts: BTreeMap<u32, Unverified<TinExport>>,
    /// Their token keys by ISN.
    keys: HashMap<Isn, HeldKey>,
}

impl Export {
    fn is_complete(&self) -> bool {
        self.parts.len() as u64 == u64::from(self.chunks)
    }

    fn report(&self, subdomain: &SubdomainId, period: Period) -> TinImported {
        TinImported {
            subdomain: subdomain.clone(),
            period,
            as_of: self.as_of,
            have: self.parts.len() as u32,
            chunks: self.chunks,
            keys: if self.is_complete() { self.keys.len() as u32 } else { 0 },
        }
    }
}

/// A meter's token key for the month, ready, and the day its key was registered.
struct HeldKey {
    registered: Date,
    mac: TokenMac,
}

/// A chunk whose signature, addressing and sealed keys checked out.
struct OpenedChunk {
    signed: Unverified<TinExport>,
    body: TinExport,
    keys: Vec<(Isn, HeldKey)>,
}

impl RoleState for Tin {
    fn write_image(&self, image: &mut StateImage) {
        self.processes.write_image(image, |_| Vec::new());
        let blobs: Vec<Blob> = self
            .exports
            .values()
            .flat_map(|s| s.held.iter().chain(&s.pending))
            .flat_map(|e| e.parts.values())
            .map(|c| Blob(c.as_bytes().to_vec()))
            .collect();
        image.tin_exports = (!blobs.is_empty()).then_some(blobs);
        image.tin_latest = (self.latest.unix_micros() > 0).then_some(self.latest.unix_micros());
        image.tin_dropped = (!self.dropped.is_empty()).then(|| {
            self.dropped
                .iter()
                .map(|(subdomain, period)| DroppedImage {
                    subdomain: subdomain.clone(),
                    period: *period,
                })
                .collect()
        });
    }

    fn read_image(core: &Core, image: &StateImage) -> Result<Self, BoxError> {
        let corrupt = || BoxError::Secret(postkey_secrets::SecretError::SealedStateInvalid);
        if !image.last_ended.is_empty() || image.checkpoints.is_some() {
            return Err(corrupt());
        }
        let processes = Processes::read_image(core, image, |_, c| {
            if c.in_flight.is_empty() { Ok(()) } else { Err(corrupt()) }
        })?;
        let mut tin = Self { processes, ..Self::default() };
        for d in image.tin_dropped.iter().flatten() {
            tin.dropped.insert(d.subdomain.clone(), d.period);
        }
        tin.latest = Timestamp::from_unix_micros(image.tin_latest.unwrap_or(0));
        // The imports again, oldest export first: the same exports held and pending.
        let mut chunks = Vec::new();
        for blob in image.tin_exports.iter().flatten() {
            let c = Unverified::<TinExport>::from_bytes(&blob.0).map_err(|_| corrupt())?;
            match open_chunk(core, &tin.processes, c) {
                Ok(c) => chunks.push(c),
                // A domain or sub-domain a table update has since taken from the box: its
                // exports are of no use any more, and the rest of the state is sound.
                Err(
                    BoxError::DomainNotInTable(_)
                    | BoxError::UnknownDomain(_)
                    | BoxError::SubdomainNotServed(_),
                ) => {}
                Err(_) => return Err(corrupt()),
            }
        }
        chunks.sort_by_key(|c| (c.body.as_of, c.body.chunk));
        for c in chunks {
            // A chunk of a month let go of is of no use any more; any other refusal means the
            // state is not what the imports made.
            if tin.dropped.get(&c.body.subdomain).is_some_and(|d| c.body.period <= *d) {
                continue;
            }
            tin.take(c, None).map_err(|_| corrupt())?;
        }
        Ok(tin)
    }
}

/// Checks a chunk (signed with its domain's Brass key, sealed to this box, of a sub-domain this
/// box serves, in bounds) and opens its token keys.
fn open_chunk(
    core: &Core,
    processes: &Processes<TinKeys>,
    signed: Unverified<TinExport>,
) -> Result<OpenedChunk, BoxError> {
    let domain = signed.header().domain.clone();
    let process = processes.of(&core.tables, &domain)?;
    let verified = signed.clone().verify(&process.public().brass_auth)?;
    let body = verified.body().clone();
    if body.tin != core.id {
        return Err(BoxError::NotForThisBox { addressed: body.tin, this: core.id });
    }
    if body.subdomain.domain() != &domain || !process.subdomains().contains(&body.subdomain) {
        return Err(BoxError::SubdomainNotServed(body.subdomain));
    }
    let invalid = |reason| BoxError::Wire(WireError::InvalidField { field: "tin export", reason });
    if body.brass.box_type() != BoxType::Brass {
        return Err(invalid("not made by a Brass box"));
    }
    if body.chunks == 0 || body.chunks > TIN_EXPORT_MAX_CHUNKS || body.chunk >= body.chunks {
        return Err(invalid("chunk out of bounds"));
    }
    if body.keys as usize > TIN_EXPORT_CHUNK_KEYS {
        return Err(invalid("too many token keys in one chunk"));
    }
    let info = crate::process::box_info(HpkeRecordType::TinExport, domain.as_str(), core.id)?;
    let plain = core.confidentiality.open(&info, &body.sealed)?;
    let image: TinKeysImage = codec::from_bytes(plain.expose_secret(), 16 * 1024)?;
    if image.keys.len() != body.keys as usize {
        return Err(invalid("the sealed keys are not as many as the chunk says"));
    }
    let mut keys = Vec::with_capacity(image.keys.len());
    for k in &image.keys {
        let key = TokenKey::from_bytes(k.token_key);
        keys.push((k.isn.clone(), HeldKey { registered: k.registered, mac: key.prepare() }));
    }
    Ok(OpenedChunk { signed, body, keys })
}

impl Tin {
    /// Takes a checked chunk: into the export being taken (or a new one, if newer), which
    /// replaces the one held once it has every chunk. What the export now stands at.
    fn take(
        &mut self,
        chunk: OpenedChunk,
        now: Option<Timestamp>,
    ) -> Result<(TinImported, bool), BoxError> {
        let OpenedChunk { signed, body, keys } = chunk;
        let stale = |why| BoxError::TinExportStale {
            subdomain: body.subdomain.clone(),
            period: body.period,
            as_of: body.as_of,
            why,
        };
        if self.dropped.get(&body.subdomain).is_some_and(|d| body.period <= *d) {
            return Err(stale("a month this box has already let go of"));
        }
        // Rebuilding the state at enable (`now` none) takes again what was taken. The window
        // follows the latest clock the box took an import at, never a clock set back.
        let now = now.map(|n| n.max(self.latest));
        if let Some(now) = now {
            in_tin_window(body.period, now).map_err(stale)?;
            let latest =
                now.unix_micros().saturating_add(postkey_wire::CLOCK_SKEW_TOLERANCE_MICROS);
            if body.as_of.unix_micros() > latest {
                return Err(stale("an export of a time after this box's clock"));
            }
        }
        let place = (body.subdomain.clone(), body.period);
        let slot = self.exports.get(&place);
        // Everything is checked before anything changes: a refused chunk changes nothing.
        if let Some(held) = slot.and_then(|s| s.held.as_ref()) {
            if body.as_of < held.as_of {
                return Err(stale("an older export than the one held"));
            }
            if body.as_of == held.as_of {
                // A chunk of the export in use, again: the same bytes change nothing.
                return match held.parts.get(&body.chunk) {
                    Some(c) if c.as_bytes() == signed.as_bytes() => {
                        Ok((held.report(&place.0, place.1), false))
                    }
                    _ => Err(stale("another export with the time of the one held")),
                };
            }
        }
        let mut isns = std::collections::HashSet::with_capacity(keys.len());
        if !keys.iter().all(|(isn, _)| isns.insert(isn)) {
            return Err(BoxError::RecordMismatch("an ISN twice in one export"));
        }
        let continuing = match slot.and_then(|s| s.pending.as_ref()) {
            Some(p) if p.as_of > body.as_of => {
                return Err(stale("an older export than the one being taken"));
            }
            Some(p) if p.as_of == body.as_of => {
                if p.chunks != body.chunks {
                    return Err(BoxError::RecordMismatch(
                        "chunks of one export disagree on their number",
                    ));
                }
                if let Some(c) = p.parts.get(&body.chunk) {
                    return if c.as_bytes() == signed.as_bytes() {
                        Ok((p.report(&place.0, place.1), false))
                    } else {
                        Err(BoxError::RecordMismatch("two chunks in one place of an export"))
                    };
                }
                if keys.iter().any(|(isn, _)| p.keys.contains_key(isn)) {
                    return Err(BoxError::RecordMismatch("an ISN twice in one export"));
                }
                true
            }
            // None yet, or an older one not finished: this newer export starts afresh.
            _ => false,
        };
        if now.is_some() {
            // What is held, less an unfinished export this chunk replaces.
            let replaced = if continuing { None } else { slot.and_then(|s| s.pending.as_ref()) };
            let all = || {
                self.exports
                    .values()
                    .flat_map(|s| s.held.iter().chain(&s.pending))
                    .filter(|e| !replaced.is_some_and(|r| std::ptr::eq(*e, r)))
            };
            let held: usize = all().map(|e| e.keys.len()).sum();
            if held + keys.len() > self.max_keys {
                return Err(BoxError::TinFull { held, max: self.max_keys, what: "token keys" });
            }
            let bytes: usize =
                all().flat_map(|e| e.parts.values()).map(|c| c.as_bytes().len()).sum();
            if bytes + signed.as_bytes().len() > TIN_MAX_CHUNK_BYTES {
                let max = TIN_MAX_CHUNK_BYTES;
                return Err(BoxError::TinFull { held: bytes, max, what: "bytes of chunks" });
            }
        }
        let slot = self.exports.entry(place.clone()).or_default();
        let mut export = match (continuing, slot.pending.take()) {
            (true, Some(p)) => p,
            _ => Export {
                as_of: body.as_of,
                chunks: body.chunks,
                parts: BTreeMap::new(),
                keys: HashMap::new(),
            },
        };
        export.parts.insert(body.chunk, signed);
        export.keys.extend(keys);
        let report = export.report(&place.0, place.1);
        if export.is_complete() {
            slot.held = Some(export);
        } else {
            slot.pending = Some(export);
        }
        // Months that fell behind the window go, and are refused from now on.
        if let Some(now) = now {
            self.latest = now;
            let gone: Vec<(SubdomainId, Period)> =
                self.exports.keys().filter(|(_, p)| behind_window(*p, now)).cloned().collect();
            for (subdomain, period) in gone {
                self.exports.remove(&(subdomain.clone(), period));
                let floor = self.dropped.entry(subdomain).or_insert(period);
                *floor = (*floor).max(period);
            }
        }
        Ok((report, true))
    }
}

impl TypedBox<Tin> {
    /// `IMPORT_TIN_EXPORT` (protocol §6.5): checks a chunk and takes it (see [`Tin::take`]).
    /// Sealed before the answer leaves, so an export once replaced stays replaced.
    pub(crate) fn import_export(
        &mut self,
        export: Unverified<TinExport>,
        now: Timestamp,
    ) -> Result<TinImported, BoxError> {
        let chunk = open_chunk(&self.core, &self.role.processes, export)?;
        let (report, changed) = self.role.take(chunk, Some(now))?;
        if changed {
            self.core.changed();
        }
        Ok(report)
    }

    /// `TIN_VERIFY` (protocol §6.5): each mailpiece's postal token recomputed with the token key
    /// the export of its sub-domain and month holds for its ISN, compared in constant time. The
    /// answer covers the postal token only, the meters as of the export's time, and no
    /// duplicates. Changes nothing.
    pub(crate) fn verify(&self, item: TinVerify, now: Timestamp) -> Result<TinVerdicts, BoxError> {
        let TinVerify { subdomain, isn, pieces } = item;
        let process = self.role.processes.of(&self.core.tables, subdomain.domain())?;
        if !process.subdomains().contains(&subdomain) {
            return Err(BoxError::SubdomainNotServed(subdomain));
        }
        let Some(period) = pieces.first().map(|p| p.date.period()) else {
            return Err(BoxError::Wire(WireError::InvalidField {
                field: "mailpieces",
                reason: "none given",
            }));
        };
        if pieces.iter().any(|p| p.date.period() != period) {
            return Err(BoxError::Wire(WireError::InvalidField {
                field: "mailpieces",
                reason: "of more than one month",
            }));
        }
        // A month out of the window is refused even before the next import drops its export.
        let held = in_tin_window(period, now.max(self.role.latest))
            .ok()
            .and_then(|()| self.role.exports.get(&(subdomain.clone(), period)))
            .and_then(|s| s.held.as_ref())
            .ok_or_else(|| BoxError::TinNotExported { subdomain: subdomain.clone(), period })?;
        let code = |v: Verdict| v.code().map_or(0, |c: ResponseCode| u32::from(c.0));
        let Some(key) = held.keys.get(&isn) else {
            return Ok(TinVerdicts {
                as_of: held.as_of,
                codes: vec![code(Verdict::UnknownMeter); pieces.len()],
            });
        };
        let mut canonical = Vec::with_capacity(64);
        let codes = pieces
            .iter()
            .map(|PieceToken { date, value, count, zip, token }| {
                if *date < key.registered {
                    return code(Verdict::DateBeforeRegistration);
                }
                Mailpiece::write_canonical(
                    &mut canonical,
                    &isn,
                    &subdomain,
                    *date,
                    *value,
                    *count,
                    zip,
                );
                let good = bool::from(key.mac.token_over(&canonical).ct_eq(token));
                code(if good { Verdict::Good } else { Verdict::Bad })
            })
            .collect();
        Ok(TinVerdicts { as_of: held.as_of, codes })
    }
}

#[cfg(test)]
mod tests {
    use postkey_crypto::HpkeCiphertext;
    use postkey_secrets::SigningKey;
    use postkey_wire::{BoxId, Context, DomainId, Message, Sender};

    use super::*;

    const NOV: &str = "202611";

    /// 2026-11-29, as the box's clock.
    fn now() -> Timestamp {
        Timestamp::from_unix_micros(1_795_977_434_000_000)
    }

    /// Chunk `chunk` of `chunks` of the export of `period` as of `as_of`, carrying `isns`
    /// (signed and sealed with nothing of worth: `take` sees only checked chunks).
    fn chunk(period: &str, as_of: u64, chunk: u32, chunks: u32, isns: &[&str]) -> OpenedChunk {
        let body = TinExport {
            brass: BoxId::parse("B00000001").unwrap(),
            tin: BoxId::parse("T00000001").unwrap(),
            subdomain: SubdomainId::parse("USPS/US").unwrap(),
            period: Period::parse(period).unwrap(),
            as_of: Timestamp::from_unix_micros(as_of),
            chunk,
            chunks,
            keys: isns.len() as u32,
            // What it seals differs with what it carries, as a real chunk's does.
            sealed: HpkeCiphertext::from_parts(
                [0; 32],
                [&[0; 16][..], isns.concat().as_bytes()].concat(),
            )
            .unwrap(),
        };
        let context = Context {
            domain: DomainId::parse("USPS").unwrap(),
            sender: Sender::Box(body.brass),
            meter_id: None,
            key_id: None,
            state_version: None,
            timestamp: now(),
        };
        let signed = postkey_wire::sign(
            Message::new(context, body.clone()),
            &SigningKey::from_bytes([3; 32]),
        );
        let keys = isns
            .iter()
            .map(|i| {
                let mac = TokenKey::from_bytes([1; 32]).prepare();
                (
                    Isn::parse(i).unwrap(),
                    HeldKey { registered: Date::parse("20261101").unwrap(), mac },
                )
            })
            .collect();
        OpenedChunk { signed: signed.into(), body, keys }
    }

    fn code(e: BoxError) -> ResponseCode {
        e.response_code()
    }

    #[test]
    fn an_export_is_in_use_only_once_whole_and_only_a_newer_one_replaces_it() {
        let mut tin = Tin::default();
        let now = Some(now());
        assert_eq!(tin.take(chunk(NOV, 10, 0, 2, &["0401"]), now).unwrap().0.keys, 0);
        let (whole, _) = tin.take(chunk(NOV, 10, 1, 2, &["0402"]), now).unwrap();
        assert_eq!((whole.have, whole.keys), (2, 2));
        // A newer export in part: the older stays in use meanwhile.
        tin.take(chunk(NOV, 20, 0, 2, &["0401"]), now).unwrap();
        let slot =
            &tin.exports[&(SubdomainId::parse("USPS/US").unwrap(), Period::parse(NOV).unwrap())];
        assert_eq!(slot.held.as_ref().map(|e| e.keys.len()), Some(2));
        // A chunk of the older one, or one older still, is a replay.
        assert_eq!(
            code(tin.take(chunk(NOV, 5, 0, 1, &[]), now).unwrap_err()),
            ResponseCode::TIN_EXPORT_STALE
        );
        // Another chunk in a place taken, or a count that disagrees: refused, nothing changed.
        assert_eq!(
            code(tin.take(chunk(NOV, 20, 0, 2, &["0409"]), now).unwrap_err()),
            ResponseCode::RECORD_MISMATCH
        );
        assert_eq!(
            code(tin.take(chunk(NOV, 20, 1, 3, &["0402"]), now).unwrap_err()),
            ResponseCode::RECORD_MISMATCH
        );
        // An ISN twice in one export.
        assert_eq!(
            code(tin.take(chunk(NOV, 20, 1, 2, &["0401"]), now).unwrap_err()),
            ResponseCode::RECORD_MISMATCH
        );
        let (done, _) = tin.take(chunk(NOV, 20, 1, 2, &["0403"]), now).unwrap();
        assert_eq!((done.as_of.unix_micros(), done.keys), (20, 2));
    }

    #[test]
    fn the_window_follows_the_clock_and_the_keys_are_bounded() {
        let mut tin = Tin { max_keys: 3, ..Tin::default() };
        let now = Some(now());
        for (month, ok) in
            [("202608", false), ("202609", true), ("202612", true), ("202701", false)]
        {
            let taken = tin.take(chunk(month, 1, 0, 1, &[]), now);
            assert_eq!(taken.is_ok(), ok, "{month}");
            if !ok {
                assert_eq!(code(taken.unwrap_err()), ResponseCode::TIN_EXPORT_STALE);
            }
        }
        tin.take(chunk(NOV, 1, 0, 1, &["0401", "0402"]), now).unwrap();
        let full = tin.take(chunk("202610", 1, 0, 1, &["0403", "0404"]), now).unwrap_err();
        assert_eq!(code(full), ResponseCode::TIN_FULL);
        // Months that fell out of the window go at the next import.
        let march = Some(Timestamp::from_unix_micros(
            super::tests::now().unix_micros() + 100 * 86_400_000_000,
        ));
        tin.take(chunk("202703", 2, 0, 1, &[]), march).unwrap();
        let months: Vec<String> = tin.exports.keys().map(|(_, p)| p.to_string()).collect();
        assert_eq!(months, ["202703"]);
        // A month let go of stays refused, even with the clock set back to it.
        let back = tin.take(chunk(NOV, 99, 0, 1, &[]), now).unwrap_err();
        assert_eq!(code(back), ResponseCode::TIN_EXPORT_STALE);
        // An export of a time after the box's clock is refused.
        let ahead = chunk("202703", u64::MAX / 2, 0, 1, &[]);
        assert_eq!(code(tin.take(ahead, march).unwrap_err()), ResponseCode::TIN_EXPORT_STALE);
    }

    #[test]
    fn a_clock_set_back_neither_moves_the_window_back_nor_locks_this_month_out() {
        let mut tin = Tin::default();
        // On the 29th of November, next month's export; then the clock is set back a month.
        tin.take(chunk("202612", 1, 0, 1, &["0401"]), Some(now())).unwrap();
        let october = Timestamp::from_unix_micros(now().unix_micros() - 40 * 86_400_000_000);
        // November is still taken (the window stays where the latest import put it) ...
        tin.take(chunk(NOV, 2, 0, 1, &["0401"]), Some(october)).unwrap();
        // ... and December was not let go of, so neither is refused for ever.
        assert!(tin.dropped.is_empty());
        // A month behind the window by the latest clock stays refused, whatever the clock says.
        let august = tin.take(chunk("202608", 3, 0, 1, &[]), Some(october)).unwrap_err();
        assert_eq!(code(august), ResponseCode::TIN_EXPORT_STALE);
    }
}
