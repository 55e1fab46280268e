//! Key IDs, master key records and their signed records, inside write transactions.

use postkey_archive::backend::{in_batch, no_key, time_to_sql, to_i64};
use postkey_archive::{
    Action, BurnKeyId, Cause, EventEntry, KeyFilter, KeyIdRange, KeyRecord, KeyStatus, KeyUpdate,
    NewKey, NewRecord, RecordRef, Reservation, SignedRecord, StoreError, StoredRecord, Subject,
    Transition,
};
use postkey_wire::{BoxId, DomainId, Isn, KeyId, MeterId, SubdomainId, Timestamp};
use rusqlite::types::Value;
use rusqlite::{Connection, Transaction, params, params_from_iter};

use crate::chain::Chains;
use crate::conn::Db;
use crate::rows::{self, KEY_COLUMNS};

pub(crate) fn allocate(
    tx: &Transaction<'_>,
    domain: &DomainId,
    count: u32,
) -> Result<KeyIdRange, StoreError> {
    if count == 0 {
        return Err(StoreError::Invalid("allocate at least one key ID"));
    }
    // One statement: the increment and the read are atomic, and BEGIN IMMEDIATE already holds
    // the database's write lock, so no other writer can interleave.
    let next: Option<i64> = tx
        .prepare_cached(
            "UPDATE domains SET next_key_id = next_key_id + ?2 WHERE id = ?1 RETURNING next_key_id",
        )
        .db()?
        .query_row(params![domain.as_str(), count], |r| r.get(0))
        .map(Some)
        .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
        .db()?;
    let next = next.ok_or_else(|| StoreError::NotFound(Subject::Domain(domain.clone())))?;
    let next = u64::try_from(next).map_err(|_| StoreError::Corrupt("next key ID"))?;
    let first =
        KeyId::new(next - u64::from(count)).map_err(|_| StoreError::Corrupt("next key ID"))?;
    // The append-only history names every ID that became a key or was burned: a counter set back
    // behind it (the table edited) would give an ID a second time. Refused; nothing is allocated.
    let used: Option<i64> = tx
        .prepare_cached("SELECT MAX(key_id) FROM events WHERE chain = ?1 AND key_id IS NOT NULL")
        .db()?
        .query_row([domain.as_str()], |r| r.get(0))
        .db()?;
    if used.is_some_and(|u| u >= to_i64(first.get()).unwrap_or(i64::MAX)) {
        return Err(StoreError::Corrupt("the domain's key-ID counter is behind its audit chain"));
    }
    let last = KeyId::new(next - 1).map_err(|_| StoreError::Corrupt("next key ID"))?;
    Ok(KeyIdRange { first, last })
}

/// Allocates as [`allocate`] does and reserves the IDs for `holder`.
pub(crate) fn reserve(
    tx: &Transaction<'_>,
    domain: &DomainId,
    count: u32,
    holder: BoxId,
    time: Timestamp,
) -> Result<KeyIdRange, StoreError> {
    let range = allocate(tx, domain, count)?;
    tx.prepare_cached(
        "INSERT INTO key_id_reservations (domain, first_id, last_id, holder, time) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .db()?
    .execute(params![
        domain.as_str(),
        to_i64(range.first.get())?,
        to_i64(range.last.get())?,
        holder.to_string(),
        time_to_sql(time)?
    ])
    .db()?;
    Ok(range)
}

/// Ends a reservation once every one of its IDs is a key or burned.
pub(crate) fn release(tx: &Transaction<'_>, r: &Reservation) -> Result<(), StoreError> {
    let (first, last) = (to_i64(r.range.first.get())?, to_i64(r.range.last.get())?);
    let accounted: i64 = tx
        .prepare_cached(
            "SELECT (SELECT COUNT(*) FROM keys WHERE domain = ?1 AND key_id BETWEEN ?2 AND ?3) \
                  + (SELECT COUNT(*) FROM burned_key_ids WHERE domain = ?1 AND key_id BETWEEN ?2 AND ?3)",
        )
        .db()?
        .query_row(params![r.domain.as_str(), first, last], |row| row.get(0))
        .db()?;
    if accounted != last - first + 1 {
        return Err(StoreError::Invalid("a reservation released with IDs neither keys nor burned"));
    }
    let gone = tx
        .prepare_cached(
            "DELETE FROM key_id_reservations \
             WHERE domain = ?1 AND first_id = ?2 AND last_id = ?3 AND holder = ?4",
        )
        .db()?
        .execute(params![r.domain.as_str(), first, last, r.holder.to_string()])
        .db()?;
    if gone != 1 {
        return Err(StoreError::Invalid("no such reservation"));
    }
    Ok(())
}

/// Checks that `key_id` was allocated in `domain` and is not burned.
fn check_allocated(
    tx: &Transaction<'_>,
    domain: &DomainId,
    key_id: KeyId,
) -> Result<(), StoreError> {
    let next: Option<i64> = rows::first(
        tx.prepare_cached("SELECT next_key_id FROM domains WHERE id = ?1").db()?,
        [domain.as_str()],
        |r| r.get(0).db(),
    )?;
    let next = next.ok_or_else(|| StoreError::NotFound(Subject::Domain(domain.clone())))?;
    if to_i64(key_id.get())? >= next {
        return Err(StoreError::KeyIdNotAllocated { domain: domain.clone(), key_id });
    }
    let burned = tx
        .prepare_cached("SELECT 1 FROM burned_key_ids WHERE domain = ?1 AND key_id = ?2")
        .db()?
        .exists(params![domain.as_str(), to_i64(key_id.get())?])
        .db()?;
    if burned {
        return Err(StoreError::KeyIdBurned { domain: domain.clone(), key_id });
    }
    Ok(())
}

pub(crate) fn burn(tx: &Transaction<'_>, b: &BurnKeyId) -> Result<(), StoreError> {
    let mut chains = Chains::new();
    // Lock order: the chain head first (here the database lock covers it), then the rows.
    check_allocated(tx, &b.domain, b.key_id).map_err(|e| match e {
        StoreError::KeyIdBurned { .. } => StoreError::Duplicate(Subject::BurnedKeyId {
            domain: b.domain.clone(),
            key_id: b.key_id,
        }),
        other => other,
    })?;
    if read_key(tx, &b.domain, b.key_id)?.is_some() {
        return Err(StoreError::Duplicate(Subject::Key {
            domain: b.domain.clone(),
            key_id: b.key_id,
        }));
    }
    tx.prepare_cached(
        "INSERT INTO burned_key_ids (domain, key_id, reason, time) VALUES (?1, ?2, ?3, ?4)",
    )
    .db()?
    .execute(params![b.domain.as_str(), to_i64(b.key_id.get())?, b.reason, time_to_sql(b.time)?])
    .db()?;
    let entry = EventEntry {
        time: b.time,
        actor: b.actor.clone(),
        action: Action::KeyIdBurned,
        key_id: Some(b.key_id),
        record: None,
        note: Some(b.reason.clone()),
    };
    chains.append(tx, &b.domain, entry)?;
    chains.finish(tx)
}

pub(crate) fn create_keys(
    tx: &Transaction<'_>,
    keys: &[NewKey],
) -> Result<Vec<KeyRecord>, StoreError> {
    let mut chains = Chains::new();
    let mut out = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        out.push(create_one(tx, &mut chains, k).map_err(|e| in_batch(i, keys.len(), e))?);
    }
    chains.finish(tx)?;
    Ok(out)
}

fn create_one(
    tx: &Transaction<'_>,
    chains: &mut Chains,
    k: &NewKey,
) -> Result<KeyRecord, StoreError> {
    let (record, entry) = k.plan()?;
    check_allocated(tx, &k.domain, k.key_id)?;
    if read_key(tx, &k.domain, k.key_id)?.is_some() {
        return Err(StoreError::Duplicate(Subject::Key {
            domain: k.domain.clone(),
            key_id: k.key_id,
        }));
    }
    let mut values = rows::key_values(&record)?;
    values.push(Value::Text(record.oak_id.to_string()));
    values.push(Value::Text(record.steel_id.to_string()));
    tx.prepare_cached(
        "INSERT INTO keys (domain, key_id, status, meter_id, subdomain, isn, kms_request, \
         psr_install, kms_install, meter_registration, kms_key_registration, obsolete, updated, \
         oak_id, steel_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )
    .db()?
    .execute(params_from_iter(values))
    .db()?;
    insert_record(tx, &k.domain, k.key_id, &k.record, k.time)?;
    chains.append(tx, &k.domain, entry)?;
    Ok(record)
}

pub(crate) fn transitions(
    tx: &Transaction<'_>,
    ts: &[Transition],
) -> Result<Vec<KeyRecord>, StoreError> {
    let mut chains = Chains::new();
    let mut out = Vec::with_capacity(ts.len());
    for (i, t) in ts.iter().enumerate() {
        out.push(transition_one(tx, &mut chains, t).map_err(|e| in_batch(i, ts.len(), e))?);
    }
    chains.finish(tx)?;
    Ok(out)
}

fn transition_one(
    tx: &Transaction<'_>,
    chains: &mut Chains,
    t: &Transition,
) -> Result<KeyRecord, StoreError> {
    // Refuse what protocol §6.4 forbids before reading anything.
    t.check()?;
    let current = read_key(tx, &t.domain, t.key_id)?.ok_or_else(|| no_key(&t.domain, t.key_id))?;
    let (next, entry) = current.apply_transition(t)?;
    // The guard is the status the caller expects, not the one just read: the database itself
    // refuses the change unless the key is in `from`.
    write_key(tx, &current, &next, t.from)?;
    if let Cause::Record(r) = &t.cause {
        insert_record(tx, &t.domain, t.key_id, r, t.time)?;
    }
    chains.append(tx, &t.domain, entry)?;
    Ok(next)
}

pub(crate) fn updates(
    tx: &Transaction<'_>,
    us: &[KeyUpdate],
) -> Result<Vec<KeyRecord>, StoreError> {
    let mut chains = Chains::new();
    let mut out = Vec::with_capacity(us.len());
    for (i, u) in us.iter().enumerate() {
        out.push(update_one(tx, &mut chains, u).map_err(|e| in_batch(i, us.len(), e))?);
    }
    chains.finish(tx)?;
    Ok(out)
}

fn update_one(
    tx: &Transaction<'_>,
    chains: &mut Chains,
    u: &KeyUpdate,
) -> Result<KeyRecord, StoreError> {
    let current = read_key(tx, &u.domain, u.key_id)?.ok_or_else(|| no_key(&u.domain, u.key_id))?;
    let (next, entry) = current.apply_update(u)?;
    write_key(tx, &current, &next, current.status)?;
    if let Some(r) = &u.record {
        insert_record(tx, &u.domain, u.key_id, r, u.time)?;
    }
    chains.append(tx, &u.domain, entry)?;
    Ok(next)
}

/// Writes `next` over `current` with a guarded update: only while the row is in status
/// `expected`. A registration is checked against its sub-domain and the ISN's uniqueness.
fn write_key(
    tx: &Transaction<'_>,
    current: &KeyRecord,
    next: &KeyRecord,
    expected: KeyStatus,
) -> Result<(), StoreError> {
    if let Some(reg) = &next.registration
        && current.registration.is_none()
    {
        check_registration(tx, &reg.subdomain, &reg.isn)?;
    }
    let mut values = rows::key_values(next)?;
    values.push(Value::Text(expected.as_str().into()));
    let n = tx
        .prepare_cached(
            "UPDATE keys SET status = ?3, meter_id = ?4, subdomain = ?5, isn = ?6, kms_request = ?7, \
             psr_install = ?8, kms_install = ?9, meter_registration = ?10, kms_key_registration = ?11, \
             obsolete = ?12, updated = ?13 WHERE domain = ?1 AND key_id = ?2 AND status = ?14",
        )
        .db()?
        .execute(params_from_iter(values))
        .db()?;
    if n != 1 {
        let actual = read_key(tx, &current.domain, current.key_id)?
            .ok_or_else(|| no_key(&current.domain, current.key_id))?;
        return Err(StoreError::StatusConflict {
            domain: current.domain.clone(),
            key_id: current.key_id,
            expected,
            actual: actual.status,
        });
    }
    Ok(())
}

fn check_registration(
    tx: &Transaction<'_>,
    subdomain: &SubdomainId,
    isn: &Isn,
) -> Result<(), StoreError> {
    let exists = tx
        .prepare_cached("SELECT 1 FROM subdomains WHERE id = ?1")
        .db()?
        .exists([subdomain.to_string()])
        .db()?;
    if !exists {
        return Err(StoreError::NotFound(Subject::Subdomain(subdomain.clone())));
    }
    if read_key_by_isn(tx, subdomain, isn)?.is_some() {
        return Err(StoreError::Duplicate(Subject::Isn {
            subdomain: subdomain.clone(),
            isn: isn.clone(),
        }));
    }
    Ok(())
}

/// Inserts a signed record unless the same bytes are already kept with the key; returns whether
/// it was new.
fn insert_record(
    tx: &Transaction<'_>,
    domain: &DomainId,
    key_id: KeyId,
    record: &SignedRecord,
    time: Timestamp,
) -> Result<bool, StoreError> {
    let n = tx
        .prepare_cached(
            "INSERT INTO records (domain, key_id, record_type, digest, bytes, stored) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (domain, key_id, digest) DO NOTHING",
        )
        .db()?
        .execute(params![
            domain.as_str(),
            to_i64(key_id.get())?,
            i64::from(record.record_type.0),
            record.digest().0.as_slice(),
            record.bytes,
            time_to_sql(time)?
        ])
        .db()?;
    Ok(n == 1)
}

pub(crate) fn store_record(tx: &Transaction<'_>, r: &NewRecord) -> Result<(), StoreError> {
    if read_key(tx, &r.domain, r.key_id)?.is_none() {
        return Err(no_key(&r.domain, r.key_id));
    }
    if insert_record(tx, &r.domain, r.key_id, &r.record, r.time)? {
        let mut chains = Chains::new();
        let entry = EventEntry {
            time: r.time,
            actor: r.actor.clone(),
            action: Action::RecordStored,
            key_id: Some(r.key_id),
            record: Some(RecordRef::of(&r.record)),
            note: None,
        };
        chains.append(tx, &r.domain, entry)?;
        chains.finish(tx)?;
    }
    Ok(())
}

pub(crate) fn records(
    conn: &Connection,
    domain: &DomainId,
    key_id: KeyId,
) -> Result<Vec<StoredRecord>, StoreError> {
    let stmt = conn
        .prepare_cached(
            "SELECT record_type, digest, bytes, stored FROM records WHERE domain = ?1 AND key_id = ?2 ORDER BY id",
        )
        .db()?;
    rows::all(stmt, params![domain.as_str(), to_i64(key_id.get())?], rows::stored_record)
}

/// The records of type `t` of `keys`, each with its key, in the order stored: one indexed
/// lookup a key with a cached statement, on one connection.
pub(crate) fn records_of_type(
    conn: &Connection,
    keys: &[(DomainId, KeyId)],
    t: postkey_wire::RecordType,
) -> Result<Vec<(DomainId, KeyId, StoredRecord)>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT record_type, digest, bytes, stored, id FROM records WHERE domain = ?1 AND key_id = ?2 AND record_type = ?3",
        )
        .db()?;
    let mut out = Vec::new();
    for (domain, key_id) in keys {
        let p = params![domain.as_str(), to_i64(key_id.get())?, i64::from(t.0)];
        let found =
            rows::all(&mut *stmt, p, |row| Ok((rows::int(row, 4)?, rows::stored_record(row)?)))?;
        out.extend(found.into_iter().map(|(id, r)| (id, domain.clone(), *key_id, r)));
    }
    out.sort_by_key(|(id, ..)| *id);
    out.dedup_by_key(|(id, ..)| *id);
    Ok(out.into_iter().map(|(_, d, k, r)| (d, k, r)).collect())
}

/// The keys registered under `isns`, by domain and key ID.
pub(crate) fn by_isns(
    conn: &Connection,
    isns: &[(SubdomainId, Isn)],
) -> Result<Vec<KeyRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(rows::KEY_BY_ISN).db()?;
    let mut out = Vec::new();
    for (subdomain, isn) in isns {
        let p = params![subdomain.to_string(), isn.as_str()];
        out.extend(rows::all(&mut *stmt, p, rows::key)?);
    }
    out.sort_by(|a, b| (&a.domain, a.key_id).cmp(&(&b.domain, b.key_id)));
    out.dedup_by(|a, b| (&a.domain, a.key_id) == (&b.domain, b.key_id));
    Ok(out)
}

pub(crate) fn read_key(
    conn: &Connection,
    domain: &DomainId,
    key_id: KeyId,
) -> Result<Option<KeyRecord>, StoreError> {
    let stmt = conn.prepare_cached(rows::KEY_BY_ID).db()?;
    rows::first(stmt, params![domain.as_str(), to_i64(key_id.get())?], rows::key)
}

pub(crate) fn read_key_by_isn(
    conn: &Connection,
    subdomain: &SubdomainId,
    isn: &Isn,
) -> Result<Option<KeyRecord>, StoreError> {
    let stmt = conn.prepare_cached(rows::KEY_BY_ISN).db()?;
    rows::first(stmt, params![subdomain.to_string(), isn.as_str()], rows::key)
}

/// Every key of `meters`, by domain and key ID.
pub(crate) fn of_meters(
    conn: &Connection,
    meters: &[MeterId],
) -> Result<Vec<KeyRecord>, StoreError> {
    let mut out = Vec::new();
    // Well inside SQLite's limit on parameters per statement.
    for chunk in meters.chunks(500) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE meter_id IN ({marks})");
        let mut stmt = conn.prepare(&sql).db()?;
        let ids = chunk.iter().map(|m| Value::Text(m.to_string()));
        out.extend(rows::all(&mut stmt, params_from_iter(ids), rows::key)?);
    }
    out.sort_by(|a, b| (&a.domain, a.key_id).cmp(&(&b.domain, b.key_id)));
    out.dedup_by(|a, b| (&a.domain, a.key_id) == (&b.domain, b.key_id));
    Ok(out)
}

pub(crate) fn list(conn: &Connection, f: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
    let mut sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE domain = ?1");
    let mut values = vec![Value::Text(f.domain.to_string())];
    let mut and = |cond: &str, v: Value| {
        values.push(v);
        sql.push_str(&format!(" AND {cond} ?{}", values.len()));
    };
    if let Some(s) = f.status {
        and("status =", Value::Text(s.as_str().into()));
    }
    if let Some(m) = &f.meter_id {
        and("meter_id =", Value::Text(m.to_string()));
    }
    if let Some(t) = f.requested_before {
        and("kms_request <", Value::Integer(time_to_sql(t)?));
    }
    if let Some(k) = f.after {
        and("key_id >", Value::Integer(to_i64(k.get())?));
    }
    values.push(Value::Integer(i64::from(f.limit)));
    sql.push_str(&format!(" ORDER BY key_id LIMIT ?{}", values.len()));
    let mut stmt = conn.prepare(&sql).db()?;
    rows::all(&mut stmt, params_from_iter(values), rows::key)
}
