//! Domains, the box registry, bundles, transcripts and the error log.

use postkey_archive::backend::{
    check_domain_process, sighting_from_sql, subdomains_to_sql, time_from_sql, time_to_sql, to_i64,
};
use postkey_archive::{
    Action, DomainRecord, ErrorLogEntry, ErrorLogQuery, EventEntry, InstallationRecord,
    LoggedError, NewBox, NewBundle, NewCheckpoint, NewDomain, NewDomainProcess, NewInstallation,
    NewSubdomain, NewTranscript, Rebaseline, RecordRef, Sighting, SignedRecord, StoreError,
    StoredCheckpoint, Subject, TranscriptId,
};
use std::collections::HashMap;

use postkey_wire::{BoxId, BoxType, DomainId, KeyId, MeterId, Site, StateVersion, Timestamp};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, params, params_from_iter};

use crate::chain::{self, Chains};
use crate::conn::Db;
use crate::rows::{self, CHECKPOINT_COLUMNS, ERROR_COLUMNS};

fn admin_event(tx: &Transaction<'_>, entry: EventEntry) -> Result<(), StoreError> {
    let mut chains = Chains::new();
    chains.append(tx, &DomainId::admin(), entry)?;
    chains.finish(tx)
}

fn exists(tx: &Transaction<'_>, sql: &str, key: &str) -> Result<bool, StoreError> {
    tx.prepare_cached(sql).db()?.exists([key]).db()
}

/// Binds the archive to its installation, once.
pub(crate) fn create_installation(
    tx: &Transaction<'_>,
    i: &NewInstallation,
) -> Result<(), StoreError> {
    if tx.prepare_cached("SELECT 1 FROM installation").db()?.exists([]).db()? {
        return Err(StoreError::Duplicate(Subject::Installation));
    }
    tx.execute(
        "INSERT INTO installation (singleton, id, anchors, dks_certificate_type, dks_certificate, \
         created) VALUES (1, ?1, ?2, ?3, ?4, ?5)",
        params![
            i.id.0.as_slice(),
            i.anchors.0.as_slice(),
            i64::from(i.dks_certificate.record_type.0),
            i.dks_certificate.bytes,
            time_to_sql(i.time)?,
        ],
    )
    .db()?;
    let record = Some(RecordRef::of(&i.dks_certificate));
    admin_event(tx, entry(i.time, &i.actor, Action::InstallationCreated, record))
}

/// The installation, if the first ceremony has run.
pub(crate) fn installation(conn: &Connection) -> Result<Option<InstallationRecord>, StoreError> {
    let stmt = conn
        .prepare_cached(
            "SELECT id, anchors, dks_certificate_type, dks_certificate, created FROM installation",
        )
        .db()?;
    rows::first(stmt, [], |r| {
        let id: Vec<u8> = r.get(0).db()?;
        let anchors: Vec<u8> = r.get(1).db()?;
        let record_type = u16::try_from(r.get::<_, i64>(2).db()?)
            .map_err(|_| StoreError::Corrupt("record type"))?;
        Ok(InstallationRecord {
            id: postkey_wire::InstallationId(
                id.try_into().map_err(|_| StoreError::Corrupt("installation ID"))?,
            ),
            anchors: postkey_crypto::Fingerprint(
                anchors.try_into().map_err(|_| StoreError::Corrupt("anchors fingerprint"))?,
            ),
            dks_certificate: SignedRecord {
                record_type: postkey_wire::RecordType(record_type),
                bytes: r.get(3).db()?,
            },
            created: postkey_archive::backend::time_from_sql(r.get(4).db()?)?,
        })
    })
}

pub(crate) fn create_domain(
    tx: &Transaction<'_>,
    d: &NewDomain,
) -> Result<DomainRecord, StoreError> {
    if d.id.is_reserved_chain() {
        return Err(StoreError::Invalid(
            "ERRORS and SIGHTS name chains of the archive, not domains",
        ));
    }
    if exists(tx, "SELECT 1 FROM domains WHERE id = ?1", d.id.as_str())? {
        return Err(StoreError::Duplicate(Subject::Domain(d.id.clone())));
    }
    tx.execute(
        "INSERT INTO domains (id, created, next_key_id) VALUES (?1, ?2, 1)",
        params![d.id.as_str(), time_to_sql(d.time)?],
    )
    .db()?;
    chain::create(tx, &d.id)?;
    admin_event(tx, entry(d.time, &d.actor, Action::DomainCreated(d.id.clone()), None))?;
    Ok(DomainRecord { id: d.id.clone(), created: d.time, next_key_id: first_key_id()? })
}

fn first_key_id() -> Result<KeyId, StoreError> {
    KeyId::new(1).map_err(|_| StoreError::Invalid("key ID 1"))
}

fn entry(
    time: postkey_wire::Timestamp,
    actor: &postkey_wire::Sender,
    action: Action,
    record: Option<RecordRef>,
) -> EventEntry {
    EventEntry { time, actor: actor.clone(), action, key_id: None, record, note: None }
}

pub(crate) fn add_subdomain(tx: &Transaction<'_>, s: &NewSubdomain) -> Result<(), StoreError> {
    if !exists(tx, "SELECT 1 FROM domains WHERE id = ?1", s.id.domain().as_str())? {
        return Err(StoreError::NotFound(Subject::Domain(s.id.domain().clone())));
    }
    if exists(tx, "SELECT 1 FROM subdomains WHERE id = ?1", &s.id.to_string())? {
        return Err(StoreError::Duplicate(Subject::Subdomain(s.id.clone())));
    }
    tx.execute(
        "INSERT INTO subdomains (id, domain, created) VALUES (?1, ?2, ?3)",
        params![s.id.to_string(), s.id.domain().as_str(), time_to_sql(s.time)?],
    )
    .db()?;
    admin_event(tx, entry(s.time, &s.actor, Action::SubdomainAdded(s.id.clone()), None))
}

pub(crate) fn register_box(tx: &Transaction<'_>, b: &NewBox) -> Result<(), StoreError> {
    if exists(tx, "SELECT 1 FROM boxes WHERE id = ?1", &b.id.to_string())? {
        return Err(StoreError::Duplicate(Subject::Box(b.id)));
    }
    // The append-only history names every box ever registered: a row deleted behind the store's
    // back does not free its ID.
    let registered = Action::BoxRegistered(b.id).encode();
    if exists(tx, "SELECT 1 FROM events WHERE chain = 'ADMIN' AND action = ?1", &registered)? {
        return Err(StoreError::Corrupt("the audit chain registered this box ID already"));
    }
    tx.execute(
        "INSERT INTO boxes (id, box_type, certificate_type, certificate, identity_key, \
         confidentiality_key, state_version, registered) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            b.id.to_string(),
            b.id.box_type().letter().to_string(),
            i64::from(b.certificate.record_type.0),
            b.certificate.bytes,
            b.identity_key.to_bytes().as_slice(),
            b.confidentiality_key.to_bytes().as_slice(),
            to_i64(b.state_version.0)?,
            time_to_sql(b.time)?,
        ],
    )
    .db()?;
    let cert = Some(RecordRef::of(&b.certificate));
    admin_event(tx, entry(b.time, &b.actor, Action::BoxRegistered(b.id), cert))
}

pub(crate) fn add_domain_process(
    tx: &Transaction<'_>,
    p: &NewDomainProcess,
) -> Result<(), StoreError> {
    check_domain_process(p)?;
    if !exists(tx, "SELECT 1 FROM boxes WHERE id = ?1", &p.box_id.to_string())? {
        return Err(StoreError::NotFound(Subject::Box(p.box_id)));
    }
    if !exists(tx, "SELECT 1 FROM domains WHERE id = ?1", p.domain.as_str())? {
        return Err(StoreError::NotFound(Subject::Domain(p.domain.clone())));
    }
    for s in &p.subdomains {
        if !exists(tx, "SELECT 1 FROM subdomains WHERE id = ?1", &s.to_string())? {
            return Err(StoreError::NotFound(Subject::Subdomain(s.clone())));
        }
    }
    let dup = tx
        .prepare_cached("SELECT 1 FROM domain_processes WHERE box_id = ?1 AND domain = ?2")
        .db()?
        .exists(params![p.box_id.to_string(), p.domain.as_str()])
        .db()?;
    if dup {
        return Err(StoreError::Duplicate(Subject::DomainProcess {
            box_id: p.box_id,
            domain: p.domain.clone(),
        }));
    }
    tx.execute(
        "INSERT INTO domain_processes (box_id, domain, subdomains, record_type, record, created) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            p.box_id.to_string(),
            p.domain.as_str(),
            subdomains_to_sql(&p.subdomains),
            i64::from(p.record.record_type.0),
            p.record.bytes,
            time_to_sql(p.time)?,
        ],
    )
    .db()?;
    let action = Action::DomainProcessAdded { box_id: p.box_id, domain: p.domain.clone() };
    admin_event(tx, entry(p.time, &p.actor, action, Some(RecordRef::of(&p.record))))
}

pub(crate) fn record_state_version(
    tx: &Transaction<'_>,
    box_id: BoxId,
    v: StateVersion,
) -> Result<(), StoreError> {
    // Guarded: the version only grows; the same version again is an idempotent no-op.
    let n = tx
        .prepare_cached("UPDATE boxes SET state_version = ?2 WHERE id = ?1 AND state_version <= ?2")
        .db()?
        .execute(params![box_id.to_string(), to_i64(v.0)?])
        .db()?;
    if n == 1 {
        return Ok(());
    }
    let recorded = state_version(tx, box_id)?;
    Err(StoreError::StateVersionWentBackwards { box_id, recorded, offered: v })
}

/// Sets a box's recorded version back to a restored state's, while it still records `from`.
pub(crate) fn rebaseline(tx: &Transaction<'_>, r: &Rebaseline) -> Result<(), StoreError> {
    if r.to >= r.from {
        return Err(StoreError::Invalid("a re-baseline sets a state version back"));
    }
    let n = tx
        .prepare_cached("UPDATE boxes SET state_version = ?3 WHERE id = ?1 AND state_version = ?2")
        .db()?
        .execute(params![r.box_id.to_string(), to_i64(r.from.0)?, to_i64(r.to.0)?])
        .db()?;
    if n != 1 {
        state_version(tx, r.box_id)?;
        return Err(StoreError::Mismatch("the box's recorded state version changed meanwhile"));
    }
    let action = Action::BoxRebaselined { box_id: r.box_id, from: r.from.0, to: r.to.0 };
    admin_event(tx, entry(r.time, &r.actor, action, None))
}

/// See [`postkey_archive::Store::key_ids_seen`].
pub(crate) fn key_ids_seen(
    conn: &Connection,
    box_id: BoxId,
) -> Result<Vec<(DomainId, KeyId)>, StoreError> {
    let sql = match box_id.box_type() {
        BoxType::Oak => "SELECT domain, MAX(key_id) FROM keys WHERE oak_id = ?1 GROUP BY domain",
        BoxType::Steel => {
            "SELECT domain, MAX(key_id) FROM keys WHERE steel_id = ?1 GROUP BY domain"
        }
        _ => return Ok(Vec::new()),
    };
    let mut stmt = conn.prepare_cached(sql).db()?;
    let mut rows = stmt.query([box_id.to_string()]).db()?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().db()? {
        let domain: String = r.get(0).db()?;
        out.push(postkey_archive::backend::domain_key_from_sql(&domain, r.get(1).db()?)?);
    }
    Ok(out)
}

pub(crate) fn state_version(conn: &Connection, box_id: BoxId) -> Result<StateVersion, StoreError> {
    let stmt = conn.prepare_cached("SELECT state_version FROM boxes WHERE id = ?1").db()?;
    rows::first(stmt, [box_id.to_string()], |r| {
        postkey_archive::backend::state_version_from_sql(r.get(0).db()?)
    })?
    .ok_or(StoreError::NotFound(Subject::Box(box_id)))
}

pub(crate) fn store_bundle(tx: &Transaction<'_>, b: &NewBundle) -> Result<(), StoreError> {
    if !exists(tx, "SELECT 1 FROM domains WHERE id = ?1", b.domain.as_str())? {
        return Err(StoreError::NotFound(Subject::Domain(b.domain.clone())));
    }
    let dup = tx
        .prepare_cached("SELECT 1 FROM bundles WHERE domain = ?1 AND version = ?2")
        .db()?
        .exists(params![b.domain.as_str(), b.version])
        .db()?;
    if dup {
        return Err(StoreError::Duplicate(Subject::Bundle {
            domain: b.domain.clone(),
            version: b.version,
        }));
    }
    tx.execute(
        "INSERT INTO bundles (domain, version, created_by, record_type, bundle, stored) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            b.domain.as_str(),
            b.version,
            b.created_by.to_string(),
            i64::from(b.bundle.record_type.0),
            b.bundle.bytes,
            time_to_sql(b.time)?,
        ],
    )
    .db()?;
    let action = Action::BundleStored { domain: b.domain.clone(), version: b.version };
    let actor = postkey_wire::Sender::Box(b.created_by);
    admin_event(tx, entry(b.time, &actor, action, Some(RecordRef::of(&b.bundle))))
}

pub(crate) fn store_transcript(
    tx: &Transaction<'_>,
    t: &NewTranscript,
) -> Result<TranscriptId, StoreError> {
    let id: i64 = tx
        .query_row(
            "INSERT INTO transcripts (time, kind, box_id, record_type, transcript) \
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
            params![
                time_to_sql(t.time)?,
                t.kind.as_str(),
                t.box_id.map(|b| b.to_string()),
                i64::from(t.transcript.record_type.0),
                t.transcript.bytes,
            ],
            |r| r.get(0),
        )
        .db()?;
    let id = TranscriptId(u64::try_from(id).map_err(|_| StoreError::Corrupt("transcript ID"))?);
    let rec = Some(RecordRef::of(&t.transcript));
    admin_event(tx, entry(t.time, &t.actor, Action::TranscriptStored(id), rec))?;
    Ok(id)
}

/// Keeps a checkpoint: the next number of its chain, no fewer events than the last.
pub(crate) fn store_checkpoint(tx: &Transaction<'_>, c: &NewCheckpoint) -> Result<(), StoreError> {
    if !exists(tx, "SELECT 1 FROM chains WHERE chain = ?1", c.chain.as_str())? {
        return Err(StoreError::NotFound(Subject::Chain(c.chain.clone())));
    }
    c.follows(latest_checkpoint(tx, &c.chain)?.as_ref())?;
    tx.execute(
        "INSERT INTO checkpoints (chain, number, count, head, record_type, record, time) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            c.chain.as_str(),
            to_i64(c.number)?,
            to_i64(c.count)?,
            c.head.0.as_slice(),
            i64::from(c.record.record_type.0),
            c.record.bytes,
            time_to_sql(c.time)?,
        ],
    )
    .db()?;
    let action = Action::CheckpointStored { chain: c.chain.clone(), number: c.number };
    admin_event(tx, entry(c.time, &c.actor, action, Some(RecordRef::of(&c.record))))
}

/// Up to `limit` checkpoints of `chain` numbered above `after`.
pub(crate) fn checkpoints(
    c: &Connection,
    chain: &DomainId,
    after: u64,
    limit: u32,
) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let sql = format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE chain = ?1 AND number > ?2 \
         ORDER BY number LIMIT ?3"
    );
    rows::all(
        c.prepare_cached(&sql).db()?,
        params![chain.as_str(), to_i64(after)?, i64::from(limit)],
        rows::checkpoint,
    )
}

/// The newest checkpoint of `chain`.
pub(crate) fn latest_checkpoint(
    c: &Connection,
    chain: &DomainId,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let sql = format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE chain = ?1 ORDER BY number DESC LIMIT 1"
    );
    rows::first(c.prepare_cached(&sql).db()?, [chain.as_str()], rows::checkpoint)
}

/// Logs `e` with its event in the error log's chain, unless its origin is logged already;
/// whether it was written.
pub(crate) fn log_error(tx: &Transaction<'_>, e: &ErrorLogEntry) -> Result<bool, StoreError> {
    if let Some(origin) = &e.origin
        && exists(tx, "SELECT 1 FROM error_log WHERE origin = ?1", origin)?
    {
        return Ok(false);
    }
    let mut chains = Chains::new();
    let event = chains.append(tx, &DomainId::error_log(), e.event())?;
    chains.finish(tx)?;
    tx.prepare_cached(
        "INSERT INTO error_log \
         (time, component, response_code, message, domain, meter_id, key_id, origin, seq) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .db()?
    .execute(params![
        time_to_sql(e.time)?,
        e.component.as_str(),
        e.response_code.0,
        e.message,
        e.domain.as_ref().map(DomainId::as_str),
        e.meter_id.as_ref().map(ToString::to_string),
        e.key_id.map(|k| to_i64(k.get())).transpose()?,
        e.origin,
        to_i64(event.seq)?,
    ])
    .db()?;
    Ok(true)
}

/// Up to `limit` entries numbered above `after`, oldest first.
pub(crate) fn errors_in_order(
    conn: &Connection,
    after: u64,
    limit: u32,
) -> Result<Vec<LoggedError>, StoreError> {
    let sql = format!("SELECT {ERROR_COLUMNS} FROM error_log WHERE id > ?1 ORDER BY id LIMIT ?2");
    rows::all(conn.prepare_cached(&sql).db()?, params![to_i64(after)?, limit], rows::logged_error)
}

pub(crate) fn error_log(
    conn: &Connection,
    q: &ErrorLogQuery,
) -> Result<Vec<LoggedError>, StoreError> {
    let mut sql = format!("SELECT {ERROR_COLUMNS} FROM error_log WHERE 1 = 1");
    let mut values = Vec::new();
    if let Some(t) = q.since {
        values.push(Value::Integer(time_to_sql(t)?));
        sql.push_str(&format!(" AND time >= ?{}", values.len()));
    }
    if let Some(d) = &q.domain {
        values.push(Value::Text(d.to_string()));
        sql.push_str(&format!(" AND domain = ?{}", values.len()));
    }
    if let Some(c) = q.response_code {
        values.push(Value::Integer(i64::from(c.0)));
        sql.push_str(&format!(" AND response_code = ?{}", values.len()));
    }
    values.push(Value::Integer(i64::from(q.limit)));
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", values.len()));
    let mut stmt = conn.prepare(&sql).db()?;
    rows::all(&mut stmt, params_from_iter(values), rows::logged_error)
}

/// Each sighting recorded if its (meter, piece count) is new, else the first one recorded; the
/// added ones with their event of the `SIGHTS` chain. The write transaction is the only writer,
/// so the event's position and the batch's stamp numbers are known before the rows that name
/// them go in: each row is inserted at once, only a row the unique key refused is read, and the
/// stamps some added row names are written last (schema version 8: the references are checked
/// at commit).
pub(crate) fn record_sightings(
    tx: &Transaction<'_>,
    sightings: &[Sighting],
) -> Result<Vec<Option<Sighting>>, StoreError> {
    let chain = DomainId::sightings();
    let count: i64 = tx
        .prepare_cached("SELECT count FROM chains WHERE chain = ?1")
        .db()?
        .query_row([chain.as_str()], |r| r.get(0))
        .db()?;
    let seq = count + 1;
    // The batch's stamps (time, site), numbered from the next free number; a batch of one
    // verifier has one.
    let next_stamp: i64 = tx
        .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM sighting_stamps")
        .db()?
        .query_row([], |r| r.get(0))
        .db()?;
    let mut stamps: Vec<(Timestamp, &Site)> = Vec::new();
    let mut numbered: HashMap<(Timestamp, &Site), usize> = HashMap::new();
    let stamp_of: Vec<usize> = sightings
        .iter()
        .map(|s| {
            *numbered.entry((s.time, &s.site)).or_insert_with(|| {
                stamps.push((s.time, &s.site));
                stamps.len() - 1
            })
        })
        .collect();
    // In key order (the meter, then the count; a copy within the batch after the first): each
    // insert lands next to the last in the table (meters are numbered in the order first
    // seen, which for the meters of one batch is this order), instead of on a page of its own
    // somewhere in a table of millions of rows.
    let mut order: Vec<usize> = (0..sightings.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let (x, y) = (&sightings[a], &sightings[b]);
        (&x.meter, x.count, a).cmp(&(&y.meter, y.count, b))
    });
    let numbers = meter_numbers(tx, order.iter().map(|&i| &sightings[i].meter))?;
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO sightings (meter, piece_count, stamp) VALUES (?1, ?2, ?3) \
             ON CONFLICT DO NOTHING",
        )
        .db()?;
    let mut first = tx
        .prepare_cached(
            "SELECT s.stamp, t.first_seen, t.site FROM sightings s \
             LEFT JOIN sighting_stamps t ON t.id = s.stamp \
             WHERE s.meter = ?1 AND s.piece_count = ?2",
        )
        .db()?;
    let mut added = Vec::new();
    let mut used = vec![false; stamps.len()];
    let mut answers = vec![None; sightings.len()];
    for (i, meter) in order.into_iter().zip(numbers) {
        let s = &sightings[i];
        let count = s.count;
        let stamp = next_stamp + stamp_of[i] as i64;
        if insert.execute(params![meter, count, stamp]).db()? == 1 {
            used[stamp_of[i]] = true;
            added.push(s);
            continue;
        }
        let (stamp, time, site): (i64, Option<i64>, Option<String>) = first
            .query_row(params![meter, count], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .db()?;
        answers[i] = Some(match (time, site) {
            // The meter and count are the row's own: only the stamp's columns are read back.
            (Some(time), Some(site)) => Sighting {
                meter: s.meter.clone(),
                count,
                time: time_from_sql(time)?,
                site: Site::parse(&site).map_err(|_| StoreError::Corrupt("site"))?,
            },
            // Seen first earlier in this batch, under a stamp not yet written.
            _ => {
                let (time, site) = usize::try_from(stamp - next_stamp)
                    .ok()
                    .and_then(|at| stamps.get(at))
                    .ok_or(StoreError::Corrupt("a sighting names no stamp"))?;
                Sighting { meter: s.meter.clone(), count, time: *time, site: (*site).clone() }
            }
        });
    }
    if added.is_empty() {
        return Ok(answers);
    }
    let mut stamp = tx
        .prepare_cached(
            "INSERT INTO sighting_stamps (id, seq, first_seen, site) VALUES (?1, ?2, ?3, ?4)",
        )
        .db()?;
    for (at, (time, site)) in stamps.iter().enumerate() {
        if used[at] {
            stamp
                .execute(params![next_stamp + at as i64, seq, time_to_sql(*time)?, site.as_str()])
                .db()?;
        }
    }
    let mut chains = Chains::new();
    let event = chains.append(tx, &chain, Sighting::batch_event(added.iter().copied()))?;
    chains.finish(tx)?;
    if to_i64(event.seq)? != seq {
        return Err(StoreError::Corrupt("the SIGHTS chain moved inside its transaction"));
    }
    Ok(answers)
}

/// The number of each meter of `meters` (in order, each meter's entries together), those new
/// to the duplicate memory numbered now: one look per meter.
fn meter_numbers<'a>(
    tx: &Transaction<'_>,
    meters: impl Iterator<Item = &'a MeterId>,
) -> Result<Vec<i64>, StoreError> {
    let mut get = tx.prepare_cached("SELECT id FROM sighting_meters WHERE meter = ?1").db()?;
    let mut put = tx.prepare_cached("INSERT INTO sighting_meters (meter) VALUES (?1)").db()?;
    let mut numbers = Vec::with_capacity(meters.size_hint().0);
    let mut last: Option<(&MeterId, i64)> = None;
    for meter in meters {
        let id = match last {
            Some((m, id)) if m == meter => id,
            _ => {
                let name = meter.to_string();
                match get.query_row([&name], |r| r.get(0)).optional().db()? {
                    Some(id) => id,
                    None => {
                        put.execute([&name]).db()?;
                        tx.last_insert_rowid()
                    }
                }
            }
        };
        last = Some((meter, id));
        numbers.push(id);
    }
    Ok(numbers)
}

/// The sightings event `seq` of the `SIGHTS` chain added, in (meter, count) order.
pub(crate) fn sightings_of_event(conn: &Connection, seq: u64) -> Result<Vec<Sighting>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT m.meter, s.piece_count, t.first_seen, t.site FROM sighting_stamps t \
             JOIN sightings s ON s.stamp = t.id JOIN sighting_meters m ON m.id = s.meter \
             WHERE t.seq = ?1 ORDER BY m.meter, s.piece_count",
        )
        .db()?;
    let rows = stmt
        .query_map([to_i64(seq)?], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .db()?;
    let mut out = Vec::new();
    for row in rows {
        let (meter, count, time, site) = row.db()?;
        out.push(sighting_from_sql(&meter, count, time, &site)?);
    }
    Ok(out)
}
