//! Domains, the box registry, bundles, transcripts and the error log.

use deadpool_postgres::{GenericClient, Transaction};
use postkey_archive::backend::{
    check_domain_process, plan_sightings, sighting_from_sql, state_version_from_sql,
    subdomains_to_sql, time_to_sql, to_i64,
};
use postkey_archive::{
    Action, DomainRecord, ErrorLogEntry, ErrorLogQuery, EventEntry, InstallationRecord,
    LoggedError, NewBox, NewBundle, NewCheckpoint, NewDomain, NewDomainProcess, NewInstallation,
    NewSubdomain, NewTranscript, Rebaseline, RecordRef, Sighting, SignedRecord, StoreError,
    Subject, TranscriptId,
};
use postkey_wire::{BoxId, BoxType, DomainId, KeyId, Sender, StateVersion, Timestamp};
use tokio_postgres::types::ToSql;

use crate::chain::{self, Chains};
use crate::conn::Pg;
use crate::rows::{self, CHECKPOINT_COLUMNS, ERROR_COLUMNS};

/// Every `ADMIN` change locks the `ADMIN` chain head first: registrations of boxes, domains and
/// bundles are then serial across KMS computers, so their existence checks cannot race.
async fn lock_admin(tx: &Transaction<'_>) -> Result<Chains, StoreError> {
    Chains::lock(tx, [DomainId::admin()]).await
}

async fn append_admin(
    tx: &Transaction<'_>,
    mut chains: Chains,
    entry: EventEntry,
) -> Result<(), StoreError> {
    chains.append(&DomainId::admin(), entry)?;
    chains.finish(tx).await
}

fn entry(time: Timestamp, actor: &Sender, action: Action, record: Option<RecordRef>) -> EventEntry {
    EventEntry { time, actor: actor.clone(), action, key_id: None, record, note: None }
}

async fn exists(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<bool, StoreError> {
    let stmt = tx.prepare_cached(sql).await.pg()?;
    Ok(tx.query_opt(&stmt, params).await.pg()?.is_some())
}

/// Binds the archive to its installation, once.
pub(crate) async fn create_installation(
    tx: &Transaction<'_>,
    i: &NewInstallation,
) -> Result<(), StoreError> {
    let chains = lock_admin(tx).await?;
    if exists(tx, "SELECT 1 FROM installation", &[]).await? {
        return Err(StoreError::Duplicate(Subject::Installation));
    }
    tx.execute(
        "INSERT INTO installation (singleton, id, anchors, dks_certificate_type, dks_certificate, \
         created) VALUES (1, $1, $2, $3, $4, $5)",
        &[
            &i.id.0.as_slice(),
            &i.anchors.0.as_slice(),
            &i32::from(i.dks_certificate.record_type.0),
            &i.dks_certificate.bytes,
            &time_to_sql(i.time)?,
        ],
    )
    .await
    .pg()?;
    let record = Some(RecordRef::of(&i.dks_certificate));
    append_admin(tx, chains, entry(i.time, &i.actor, Action::InstallationCreated, record)).await
}

/// The installation, if the first ceremony has run.
pub(crate) async fn installation(
    c: &impl GenericClient,
) -> Result<Option<InstallationRecord>, StoreError> {
    let sql =
        "SELECT id, anchors, dks_certificate_type, dks_certificate, created FROM installation";
    let stmt = c.prepare_cached(sql).await.pg()?;
    let Some(row) = c.query_opt(&stmt, &[]).await.pg()? else { return Ok(None) };
    let id: Vec<u8> = row.try_get(0).pg()?;
    let anchors: Vec<u8> = row.try_get(1).pg()?;
    let record_type: i32 = row.try_get(2).pg()?;
    let created: i64 = row.try_get(4).pg()?;
    Ok(Some(InstallationRecord {
        id: postkey_wire::InstallationId(
            id.try_into().map_err(|_| StoreError::Corrupt("installation ID"))?,
        ),
        anchors: postkey_crypto::Fingerprint(
            anchors.try_into().map_err(|_| StoreError::Corrupt("anchors fingerprint"))?,
        ),
        dks_certificate: SignedRecord {
            record_type: postkey_wire::RecordType(
                u16::try_from(record_type).map_err(|_| StoreError::Corrupt("record type"))?,
            ),
            bytes: row.try_get(3).pg()?,
        },
        created: postkey_archive::backend::time_from_sql(created)?,
    }))
}

pub(crate) async fn create_domain(
    tx: &Transaction<'_>,
    d: &NewDomain,
) -> Result<DomainRecord, StoreError> {
    if d.id.is_reserved_chain() {
        return Err(StoreError::Invalid(
            "ERRORS and SIGHTS name chains of the archive, not domains",
        ));
    }
    let chains = lock_admin(tx).await?;
    if exists(tx, "SELECT 1 FROM domains WHERE id = $1", &[&d.id.as_str()]).await? {
        return Err(StoreError::Duplicate(Subject::Domain(d.id.clone())));
    }
    tx.execute(
        "INSERT INTO domains (id, created, next_key_id) VALUES ($1, $2, 1)",
        &[&d.id.as_str(), &time_to_sql(d.time)?],
    )
    .await
    .pg()?;
    chain::create(tx, &d.id).await?;
    append_admin(tx, chains, entry(d.time, &d.actor, Action::DomainCreated(d.id.clone()), None))
        .await?;
    let first = KeyId::new(1).map_err(|_| StoreError::Invalid("key ID 1"))?;
    Ok(DomainRecord { id: d.id.clone(), created: d.time, next_key_id: first })
}

pub(crate) async fn add_subdomain(
    tx: &Transaction<'_>,
    s: &NewSubdomain,
) -> Result<(), StoreError> {
    let chains = lock_admin(tx).await?;
    if !exists(tx, "SELECT 1 FROM domains WHERE id = $1", &[&s.id.domain().as_str()]).await? {
        return Err(StoreError::NotFound(Subject::Domain(s.id.domain().clone())));
    }
    if exists(tx, "SELECT 1 FROM subdomains WHERE id = $1", &[&s.id.to_string()]).await? {
        return Err(StoreError::Duplicate(Subject::Subdomain(s.id.clone())));
    }
    tx.execute(
        "INSERT INTO subdomains (id, domain, created) VALUES ($1, $2, $3)",
        &[&s.id.to_string(), &s.id.domain().as_str(), &time_to_sql(s.time)?],
    )
    .await
    .pg()?;
    append_admin(tx, chains, entry(s.time, &s.actor, Action::SubdomainAdded(s.id.clone()), None))
        .await
}

pub(crate) async fn register_box(tx: &Transaction<'_>, b: &NewBox) -> Result<(), StoreError> {
    let chains = lock_admin(tx).await?;
    if exists(tx, "SELECT 1 FROM boxes WHERE id = $1", &[&b.id.to_string()]).await? {
        return Err(StoreError::Duplicate(Subject::Box(b.id)));
    }
    // The append-only history names every box ever registered: a row deleted behind the store's
    // back does not free its ID.
    let registered = Action::BoxRegistered(b.id).encode();
    let sql = "SELECT 1 FROM events WHERE chain = 'ADMIN' AND action = $1";
    if exists(tx, sql, &[&registered]).await? {
        return Err(StoreError::Corrupt("the audit chain registered this box ID already"));
    }
    tx.execute(
        "INSERT INTO boxes (id, box_type, certificate_type, certificate, identity_key, \
         confidentiality_key, state_version, registered) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &b.id.to_string(),
            &b.id.box_type().letter().to_string(),
            &i64::from(b.certificate.record_type.0),
            &b.certificate.bytes,
            &b.identity_key.to_bytes().as_slice(),
            &b.confidentiality_key.to_bytes().as_slice(),
            &to_i64(b.state_version.0)?,
            &time_to_sql(b.time)?,
        ],
    )
    .await
    .pg()?;
    let cert = Some(RecordRef::of(&b.certificate));
    append_admin(tx, chains, entry(b.time, &b.actor, Action::BoxRegistered(b.id), cert)).await
}

pub(crate) async fn add_domain_process(
    tx: &Transaction<'_>,
    p: &NewDomainProcess,
) -> Result<(), StoreError> {
    check_domain_process(p)?;
    let chains = lock_admin(tx).await?;
    if !exists(tx, "SELECT 1 FROM boxes WHERE id = $1", &[&p.box_id.to_string()]).await? {
        return Err(StoreError::NotFound(Subject::Box(p.box_id)));
    }
    if !exists(tx, "SELECT 1 FROM domains WHERE id = $1", &[&p.domain.as_str()]).await? {
        return Err(StoreError::NotFound(Subject::Domain(p.domain.clone())));
    }
    for s in &p.subdomains {
        if !exists(tx, "SELECT 1 FROM subdomains WHERE id = $1", &[&s.to_string()]).await? {
            return Err(StoreError::NotFound(Subject::Subdomain(s.clone())));
        }
    }
    let sql = "SELECT 1 FROM domain_processes WHERE box_id = $1 AND domain = $2";
    if exists(tx, sql, &[&p.box_id.to_string(), &p.domain.as_str()]).await? {
        return Err(StoreError::Duplicate(Subject::DomainProcess {
            box_id: p.box_id,
            domain: p.domain.clone(),
        }));
    }
    tx.execute(
        "INSERT INTO domain_processes (box_id, domain, subdomains, record_type, record, created) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &p.box_id.to_string(),
            &p.domain.as_str(),
            &subdomains_to_sql(&p.subdomains),
            &i64::from(p.record.record_type.0),
            &p.record.bytes,
            &time_to_sql(p.time)?,
        ],
    )
    .await
    .pg()?;
    let action = Action::DomainProcessAdded { box_id: p.box_id, domain: p.domain.clone() };
    append_admin(tx, chains, entry(p.time, &p.actor, action, Some(RecordRef::of(&p.record)))).await
}

pub(crate) async fn record_state_version(
    c: &impl GenericClient,
    box_id: BoxId,
    v: StateVersion,
) -> Result<(), StoreError> {
    // One guarded statement: the version only grows, whoever writes concurrently; the same
    // version again is an idempotent no-op.
    let stmt = c
        .prepare_cached("UPDATE boxes SET state_version = $2 WHERE id = $1 AND state_version <= $2")
        .await
        .pg()?;
    if c.execute(&stmt, &[&box_id.to_string(), &to_i64(v.0)?]).await.pg()? == 1 {
        return Ok(());
    }
    let recorded = state_version(c, box_id).await?;
    Err(StoreError::StateVersionWentBackwards { box_id, recorded, offered: v })
}

/// Sets a box's recorded version back to a restored state's, while it still records `from`.
pub(crate) async fn rebaseline(tx: &Transaction<'_>, r: &Rebaseline) -> Result<(), StoreError> {
    if r.to >= r.from {
        return Err(StoreError::Invalid("a re-baseline sets a state version back"));
    }
    let chains = lock_admin(tx).await?;
    let stmt = tx
        .prepare_cached("UPDATE boxes SET state_version = $3 WHERE id = $1 AND state_version = $2")
        .await
        .pg()?;
    let n = tx
        .execute(&stmt, &[&r.box_id.to_string(), &to_i64(r.from.0)?, &to_i64(r.to.0)?])
        .await
        .pg()?;
    if n != 1 {
        state_version(tx, r.box_id).await?;
        return Err(StoreError::Mismatch("the box's recorded state version changed meanwhile"));
    }
    let action = Action::BoxRebaselined { box_id: r.box_id, from: r.from.0, to: r.to.0 };
    append_admin(tx, chains, entry(r.time, &r.actor, action, None)).await
}

/// See [`postkey_archive::Store::key_ids_seen`].
pub(crate) async fn key_ids_seen(
    c: &impl GenericClient,
    box_id: BoxId,
) -> Result<Vec<(DomainId, KeyId)>, StoreError> {
    let sql = match box_id.box_type() {
        BoxType::Oak => "SELECT domain, MAX(key_id) FROM keys WHERE oak_id = $1 GROUP BY domain",
        BoxType::Steel => {
            "SELECT domain, MAX(key_id) FROM keys WHERE steel_id = $1 GROUP BY domain"
        }
        _ => return Ok(Vec::new()),
    };
    let stmt = c.prepare_cached(sql).await.pg()?;
    let mut out = Vec::new();
    for row in c.query(&stmt, &[&box_id.to_string()]).await.pg()? {
        let domain: String = row.try_get(0).pg()?;
        out.push(postkey_archive::backend::domain_key_from_sql(&domain, row.try_get(1).pg()?)?);
    }
    Ok(out)
}

pub(crate) async fn state_version(
    c: &impl GenericClient,
    box_id: BoxId,
) -> Result<StateVersion, StoreError> {
    let stmt = c.prepare_cached("SELECT state_version FROM boxes WHERE id = $1").await.pg()?;
    let row = c.query_opt(&stmt, &[&box_id.to_string()]).await.pg()?;
    let row = row.ok_or(StoreError::NotFound(Subject::Box(box_id)))?;
    state_version_from_sql(row.try_get(0).pg()?)
}

pub(crate) async fn store_bundle(tx: &Transaction<'_>, b: &NewBundle) -> Result<(), StoreError> {
    let chains = lock_admin(tx).await?;
    if !exists(tx, "SELECT 1 FROM domains WHERE id = $1", &[&b.domain.as_str()]).await? {
        return Err(StoreError::NotFound(Subject::Domain(b.domain.clone())));
    }
    let version = i64::from(b.version);
    if exists(
        tx,
        "SELECT 1 FROM bundles WHERE domain = $1 AND version = $2",
        &[&b.domain.as_str(), &version],
    )
    .await?
    {
        return Err(StoreError::Duplicate(Subject::Bundle {
            domain: b.domain.clone(),
            version: b.version,
        }));
    }
    tx.execute(
        "INSERT INTO bundles (domain, version, created_by, record_type, bundle, stored) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &b.domain.as_str(),
            &version,
            &b.created_by.to_string(),
            &i64::from(b.bundle.record_type.0),
            &b.bundle.bytes,
            &time_to_sql(b.time)?,
        ],
    )
    .await
    .pg()?;
    let action = Action::BundleStored { domain: b.domain.clone(), version: b.version };
    let actor = Sender::Box(b.created_by);
    append_admin(tx, chains, entry(b.time, &actor, action, Some(RecordRef::of(&b.bundle)))).await
}

pub(crate) async fn store_transcript(
    tx: &Transaction<'_>,
    t: &NewTranscript,
) -> Result<TranscriptId, StoreError> {
    let chains = lock_admin(tx).await?;
    let row = tx
        .query_one(
            "INSERT INTO transcripts (time, kind, box_id, record_type, transcript) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                &time_to_sql(t.time)?,
                &t.kind.as_str(),
                &t.box_id.map(|b| b.to_string()),
                &i64::from(t.transcript.record_type.0),
                &t.transcript.bytes,
            ],
        )
        .await
        .pg()?;
    let id: i64 = row.try_get(0).pg()?;
    let id = TranscriptId(u64::try_from(id).map_err(|_| StoreError::Corrupt("transcript ID"))?);
    let rec = Some(RecordRef::of(&t.transcript));
    append_admin(tx, chains, entry(t.time, &t.actor, Action::TranscriptStored(id), rec)).await?;
    Ok(id)
}

/// Keeps a checkpoint: the next number of its chain, no fewer events than the last. The
/// `ADMIN` chain's head is locked first, so two KMS computers cannot store the same number.
pub(crate) async fn store_checkpoint(
    tx: &Transaction<'_>,
    c: &NewCheckpoint,
) -> Result<(), StoreError> {
    let chains = lock_admin(tx).await?;
    if !exists(tx, "SELECT 1 FROM chains WHERE chain = $1", &[&c.chain.as_str()]).await? {
        return Err(StoreError::NotFound(Subject::Chain(c.chain.clone())));
    }
    let sql = format!(
        "SELECT {CHECKPOINT_COLUMNS} FROM checkpoints WHERE chain = $1 ORDER BY number DESC LIMIT 1"
    );
    let last = tx.query_opt(&sql, &[&c.chain.as_str()]).await.pg()?;
    c.follows(last.as_ref().map(rows::checkpoint).transpose()?.as_ref())?;
    tx.execute(
        "INSERT INTO checkpoints (chain, number, count, head, record_type, record, time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &c.chain.as_str(),
            &to_i64(c.number)?,
            &to_i64(c.count)?,
            &c.head.0.as_slice(),
            &i64::from(c.record.record_type.0),
            &c.record.bytes,
            &time_to_sql(c.time)?,
        ],
    )
    .await
    .pg()?;
    let action = Action::CheckpointStored { chain: c.chain.clone(), number: c.number };
    append_admin(tx, chains, entry(c.time, &c.actor, action, Some(RecordRef::of(&c.record)))).await
}

/// Logs `e` with its event in the error log's chain, unless its origin is logged already;
/// whether it was written. The chain's head is locked first, so entries are chained in order
/// across KMS computers.
pub(crate) async fn log_error(tx: &Transaction<'_>, e: &ErrorLogEntry) -> Result<bool, StoreError> {
    let mut chains = Chains::lock(tx, [DomainId::error_log()]).await?;
    if let Some(origin) = &e.origin
        && exists(tx, "SELECT 1 FROM error_log WHERE origin = $1", &[origin]).await?
    {
        return Ok(false);
    }
    let seq = chains.append(&DomainId::error_log(), e.event())?;
    chains.finish(tx).await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO error_log \
             (time, component, response_code, message, domain, meter_id, key_id, origin, seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await
        .pg()?;
    tx.execute(
        &stmt,
        &[
            &time_to_sql(e.time)?,
            &e.component.as_str(),
            &i64::from(e.response_code.0),
            &e.message,
            &e.domain.as_ref().map(DomainId::as_str),
            &e.meter_id.as_ref().map(ToString::to_string),
            &e.key_id.map(|k| to_i64(k.get())).transpose()?,
            &e.origin,
            &to_i64(seq)?,
        ],
    )
    .await
    .pg()?;
    Ok(true)
}

/// Logs each of `entries` whose origin is not logged yet; how many were written.
pub(crate) async fn log_errors(
    c: &Transaction<'_>,
    entries: &[ErrorLogEntry],
) -> Result<u64, StoreError> {
    let mut written = 0;
    for e in entries {
        written += u64::from(log_error(c, e).await?);
    }
    Ok(written)
}

/// Up to `limit` entries numbered above `after`, oldest first.
pub(crate) async fn errors_in_order(
    c: &impl GenericClient,
    after: u64,
    limit: u32,
) -> Result<Vec<LoggedError>, StoreError> {
    let sql = format!("SELECT {ERROR_COLUMNS} FROM error_log WHERE id > $1 ORDER BY id LIMIT $2");
    let stmt = c.prepare_cached(&sql).await.pg()?;
    let rows = c.query(&stmt, &[&to_i64(after)?, &i64::from(limit)]).await.pg()?;
    rows::all(&rows, rows::logged_error)
}

pub(crate) async fn error_log(
    c: &impl GenericClient,
    q: &ErrorLogQuery,
) -> Result<Vec<LoggedError>, StoreError> {
    let sql = format!(
        "SELECT {ERROR_COLUMNS} FROM error_log WHERE ($1::BIGINT IS NULL OR time >= $1) \
         AND ($2::TEXT IS NULL OR domain = $2) AND ($3::BIGINT IS NULL OR response_code = $3) \
         ORDER BY id DESC LIMIT $4"
    );
    let since = q.since.map(time_to_sql).transpose()?;
    let domain = q.domain.as_ref().map(DomainId::as_str);
    let code = q.response_code.map(|c| i64::from(c.0));
    let stmt = c.prepare_cached(&sql).await.pg()?;
    let rows = c.query(&stmt, &[&since, &domain, &code, &i64::from(q.limit)]).await.pg()?;
    rows::all(&rows, rows::logged_error)
}

/// Each sighting recorded if its (meter, piece count) is new, else the first one recorded. The
/// `SIGHTS` chain's head is locked first, so verifiers of one archive record their batches one
/// after the other: one read of the pairs held, one insert of those added, one event.
pub(crate) async fn record_sightings(
    tx: &Transaction<'_>,
    sightings: &[Sighting],
) -> Result<Vec<Option<Sighting>>, StoreError> {
    let mut chains = Chains::lock(tx, [DomainId::sightings()]).await?;
    let meters: Vec<String> = sightings.iter().map(|s| s.meter.to_string()).collect();
    let counts: Vec<i64> = sightings.iter().map(|s| i64::from(s.count)).collect();
    let select = tx
        .prepare_cached(
            "SELECT meter, piece_count, first_seen, site FROM sightings \
             WHERE (meter, piece_count) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))",
        )
        .await
        .pg()?;
    let mut held = std::collections::HashMap::new();
    for row in tx.query(&select, &[&meters, &counts]).await.pg()? {
        let meter: String = row.try_get(0).pg()?;
        let count: i64 = row.try_get(1).pg()?;
        let time: i64 = row.try_get(2).pg()?;
        let site: String = row.try_get(3).pg()?;
        let s = sighting_from_sql(&meter, count, time, &site)?;
        held.insert((s.meter.clone(), s.count), s);
    }
    let (added, answers) = plan_sightings(sightings, &held);
    if added.is_empty() {
        return Ok(answers);
    }
    let seq = to_i64(chains.append(&DomainId::sightings(), Sighting::batch_event(&added))?)?;
    chains.finish(tx).await?;
    let meters: Vec<String> = added.iter().map(|s| s.meter.to_string()).collect();
    let counts: Vec<i64> = added.iter().map(|s| i64::from(s.count)).collect();
    let times = added.iter().map(|s| time_to_sql(s.time)).collect::<Result<Vec<i64>, _>>()?;
    let sites: Vec<&str> = added.iter().map(|s| s.site.as_str()).collect();
    let insert = tx
        .prepare_cached(
            "INSERT INTO sightings (meter, piece_count, first_seen, site, seq) \
             SELECT m, c, t, s, $5 FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) \
             AS u(m, c, t, s)",
        )
        .await
        .pg()?;
    tx.execute(&insert, &[&meters, &counts, &times, &sites, &seq]).await.pg()?;
    Ok(answers)
}

/// The sightings event `seq` of the `SIGHTS` chain added, in (meter, count) order.
pub(crate) async fn sightings_of_event(
    c: &impl GenericClient,
    seq: u64,
) -> Result<Vec<Sighting>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT meter, piece_count, first_seen, site FROM sightings WHERE seq = $1 \
             ORDER BY meter COLLATE \"C\", piece_count",
        )
        .await
        .pg()?;
    let mut out = Vec::new();
    for row in c.query(&stmt, &[&to_i64(seq)?]).await.pg()? {
        let meter: String = row.try_get(0).pg()?;
        let count: i64 = row.try_get(1).pg()?;
        let time: i64 = row.try_get(2).pg()?;
        let site: String = row.try_get(3).pg()?;
        out.push(sighting_from_sql(&meter, count, time, &site)?);
    }
    Ok(out)
}
