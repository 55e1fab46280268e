//! Key IDs, master key records and their signed records, inside transactions.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::{GenericClient, Transaction};
use postkey_archive::backend::{in_batch, no_key, time_to_sql, to_i64};
use postkey_archive::{
    Action, BurnKeyId, Cause, EventEntry, KeyFilter, KeyIdRange, KeyRecord, KeyStatus, KeyUpdate,
    NewKey, NewRecord, RecordRef, Reservation, SignedRecord, StoreError, StoredRecord, Subject,
    Transition,
};
use postkey_wire::{BoxId, DomainId, Isn, KeyId, SubdomainId, Timestamp};
use tokio_postgres::types::ToSql;

use crate::bulk::{self, RecordRow};
use crate::chain::Chains;
use crate::conn::Pg;
use crate::rows::{self, KEY_COLUMNS};

pub(crate) async fn allocate(
    tx: &Transaction<'_>,
    domain: &DomainId,
    count: u32,
) -> Result<KeyIdRange, StoreError> {
    if count == 0 {
        return Err(StoreError::Invalid("allocate at least one key ID"));
    }
    // One atomic statement: the row lock it takes orders concurrent allocators, across every
    // KMS computer, and the increment is never undone by a later failure of the caller.
    let stmt = tx
        .prepare_cached(
            "UPDATE domains SET next_key_id = next_key_id + $2 WHERE id = $1 RETURNING next_key_id",
        )
        .await
        .pg()?;
    let row = tx.query_opt(&stmt, &[&domain.as_str(), &i64::from(count)]).await.pg()?;
    let row = row.ok_or_else(|| StoreError::NotFound(Subject::Domain(domain.clone())))?;
    let next: i64 = row.try_get(0).pg()?;
    let next = u64::try_from(next).map_err(|_| StoreError::Corrupt("next key ID"))?;
    let first =
        KeyId::new(next - u64::from(count)).map_err(|_| StoreError::Corrupt("next key ID"))?;
    // The append-only history names every ID that became a key or was burned: a counter set back
    // behind it (the table edited) would give an ID a second time. Refused; nothing is allocated.
    let stmt = tx
        .prepare_cached("SELECT MAX(key_id) FROM events WHERE chain = $1 AND key_id IS NOT NULL")
        .await
        .pg()?;
    let used: Option<i64> = tx.query_one(&stmt, &[&domain.as_str()]).await.pg()?.try_get(0).pg()?;
    if used.is_some_and(|u| u >= to_i64(first.get()).unwrap_or(i64::MAX)) {
        return Err(StoreError::Corrupt("the domain's key-ID counter is behind its audit chain"));
    }
    let last = KeyId::new(next - 1).map_err(|_| StoreError::Corrupt("next key ID"))?;
    Ok(KeyIdRange { first, last })
}

/// Allocates as [`allocate`] does and reserves the IDs for `holder`.
pub(crate) async fn reserve(
    tx: &Transaction<'_>,
    domain: &DomainId,
    count: u32,
    holder: BoxId,
    time: Timestamp,
) -> Result<KeyIdRange, StoreError> {
    let range = allocate(tx, domain, count).await?;
    tx.execute(
        "INSERT INTO key_id_reservations (domain, first_id, last_id, holder, time) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &domain.as_str(),
            &to_i64(range.first.get())?,
            &to_i64(range.last.get())?,
            &holder.to_string(),
            &time_to_sql(time)?,
        ],
    )
    .await
    .pg()?;
    Ok(range)
}

/// Ends a reservation once every one of its IDs is a key or burned.
pub(crate) async fn release(tx: &Transaction<'_>, r: &Reservation) -> Result<(), StoreError> {
    let (first, last) = (to_i64(r.range.first.get())?, to_i64(r.range.last.get())?);
    let accounted: i64 = tx
        .query_one(
            "SELECT (SELECT COUNT(*) FROM keys WHERE domain = $1 AND key_id BETWEEN $2 AND $3) \
                  + (SELECT COUNT(*) FROM burned_key_ids WHERE domain = $1 AND key_id BETWEEN $2 AND $3)",
            &[&r.domain.as_str(), &first, &last],
        )
        .await
        .pg()?
        .try_get(0)
        .pg()?;
    if accounted != last - first + 1 {
        return Err(StoreError::Invalid("a reservation released with IDs neither keys nor burned"));
    }
    let gone = tx
        .execute(
            "DELETE FROM key_id_reservations \
             WHERE domain = $1 AND first_id = $2 AND last_id = $3 AND holder = $4",
            &[&r.domain.as_str(), &first, &last, &r.holder.to_string()],
        )
        .await
        .pg()?;
    if gone != 1 {
        return Err(StoreError::Invalid("no such reservation"));
    }
    Ok(())
}

async fn exists(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<bool, StoreError> {
    let stmt = tx.prepare_cached(sql).await.pg()?;
    Ok(tx.query_opt(&stmt, params).await.pg()?.is_some())
}

/// Checks that `key_id` was allocated in `domain` and is not burned.
async fn check_allocated(
    tx: &Transaction<'_>,
    domain: &DomainId,
    key_id: KeyId,
) -> Result<(), StoreError> {
    let stmt = tx.prepare_cached("SELECT next_key_id FROM domains WHERE id = $1").await.pg()?;
    let row = tx.query_opt(&stmt, &[&domain.as_str()]).await.pg()?;
    let row = row.ok_or_else(|| StoreError::NotFound(Subject::Domain(domain.clone())))?;
    let next: i64 = row.try_get(0).pg()?;
    let id = to_i64(key_id.get())?;
    if id >= next {
        return Err(StoreError::KeyIdNotAllocated { domain: domain.clone(), key_id });
    }
    let sql = "SELECT 1 FROM burned_key_ids WHERE domain = $1 AND key_id = $2";
    if exists(tx, sql, &[&domain.as_str(), &id]).await? {
        return Err(StoreError::KeyIdBurned { domain: domain.clone(), key_id });
    }
    Ok(())
}

pub(crate) async fn burn(tx: &Transaction<'_>, b: &BurnKeyId) -> Result<(), StoreError> {
    // The domain's chain head first: creations and burns of its IDs are then serial.
    let mut chains = Chains::lock(tx, [b.domain.clone()]).await?;
    check_allocated(tx, &b.domain, b.key_id).await.map_err(|e| match e {
        StoreError::KeyIdBurned { .. } => StoreError::Duplicate(Subject::BurnedKeyId {
            domain: b.domain.clone(),
            key_id: b.key_id,
        }),
        other => other,
    })?;
    if read_key(tx, &b.domain, b.key_id).await?.is_some() {
        return Err(StoreError::Duplicate(Subject::Key {
            domain: b.domain.clone(),
            key_id: b.key_id,
        }));
    }
    tx.execute(
        "INSERT INTO burned_key_ids (domain, key_id, reason, time) VALUES ($1, $2, $3, $4)",
        &[&b.domain.as_str(), &to_i64(b.key_id.get())?, &b.reason, &time_to_sql(b.time)?],
    )
    .await
    .pg()?;
    let entry = EventEntry {
        time: b.time,
        actor: b.actor.clone(),
        action: Action::KeyIdBurned,
        key_id: Some(b.key_id),
        record: None,
        note: Some(b.reason.clone()),
    };
    chains.append(&b.domain, entry)?;
    chains.finish(tx).await
}

pub(crate) async fn create_keys(
    tx: &Transaction<'_>,
    keys: &[NewKey],
) -> Result<Vec<KeyRecord>, StoreError> {
    let fail = |i, e| in_batch(i, keys.len(), e);
    let mut plans = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        plans.push(k.plan().map_err(|e| fail(i, e))?);
    }
    // The domains' chain heads first: creations and burns of their IDs are then serial.
    let mut chains = Chains::lock(tx, keys.iter().map(|k| k.domain.clone())).await?;
    // Allocation only grows, so an ID below the next ID read now stays allocated.
    let mut next_ids = HashMap::new();
    for k in keys {
        if !next_ids.contains_key(&k.domain) {
            next_ids.insert(k.domain.clone(), next_key_id(tx, &k.domain).await?);
        }
    }
    let ids: Vec<(DomainId, KeyId)> = keys.iter().map(|k| (k.domain.clone(), k.key_id)).collect();
    let burned: HashSet<_> = bulk::burned(tx, &ids).await?.into_iter().collect();
    let existing = bulk::read_keys(tx, &ids).await?;
    let mut seen = HashSet::new();
    for (i, k) in keys.iter().enumerate() {
        let id = (k.domain.clone(), k.key_id);
        if to_i64(k.key_id.get())? >= next_ids.get(&k.domain).copied().unwrap_or(0) {
            return Err(fail(
                i,
                StoreError::KeyIdNotAllocated { domain: k.domain.clone(), key_id: k.key_id },
            ));
        }
        if burned.contains(&id) {
            return Err(fail(
                i,
                StoreError::KeyIdBurned { domain: k.domain.clone(), key_id: k.key_id },
            ));
        }
        if existing.contains_key(&id) || !seen.insert(id) {
            let subject = Subject::Key { domain: k.domain.clone(), key_id: k.key_id };
            return Err(fail(i, StoreError::Duplicate(subject)));
        }
    }
    let records: Vec<KeyRecord> = plans.iter().map(|(r, _)| r.clone()).collect();
    bulk::insert_keys(tx, &records).await?;
    let rows: Vec<RecordRow<'_>> = keys
        .iter()
        .map(|k| RecordRow { domain: &k.domain, key_id: k.key_id, record: &k.record, time: k.time })
        .collect();
    bulk::insert_records(tx, &rows).await?;
    for (k, (_, entry)) in keys.iter().zip(plans) {
        chains.append(&k.domain, entry)?;
    }
    chains.finish(tx).await?;
    Ok(records)
}

async fn next_key_id(tx: &Transaction<'_>, domain: &DomainId) -> Result<i64, StoreError> {
    let stmt = tx.prepare_cached("SELECT next_key_id FROM domains WHERE id = $1").await.pg()?;
    let row = tx.query_opt(&stmt, &[&domain.as_str()]).await.pg()?;
    let row = row.ok_or_else(|| StoreError::NotFound(Subject::Domain(domain.clone())))?;
    row.try_get(0).pg()
}

pub(crate) async fn transitions(
    tx: &Transaction<'_>,
    ts: &[Transition],
) -> Result<Vec<KeyRecord>, StoreError> {
    // Refuse what protocol §6.4 forbids before locking anything.
    for (i, t) in ts.iter().enumerate() {
        t.check().map_err(|e| in_batch(i, ts.len(), e))?;
    }
    let ids = ts.iter().map(|t| (t.domain.clone(), t.key_id)).collect();
    apply_batch(tx, ids, |i, key| {
        let t = &ts[i];
        let (next, entry) = key.apply_transition(t)?;
        let record = match &t.cause {
            Cause::Record(r) => {
                Some(RecordRow { domain: &t.domain, key_id: t.key_id, record: r, time: t.time })
            }
            Cause::Reason(_) => None,
        };
        // The guard is the transition's `from`, not the status just read, so that the database
        // itself refuses a change from any other status.
        Ok(Change { next, entry, expected: t.from, record })
    })
    .await
}

pub(crate) async fn updates(
    tx: &Transaction<'_>,
    us: &[KeyUpdate],
) -> Result<Vec<KeyRecord>, StoreError> {
    let ids = us.iter().map(|u| (u.domain.clone(), u.key_id)).collect();
    apply_batch(tx, ids, |i, key| {
        let u = &us[i];
        let (next, entry) = key.apply_update(u)?;
        let record = u.record.as_ref().map(|r| RecordRow {
            domain: &u.domain,
            key_id: u.key_id,
            record: r,
            time: u.time,
        });
        // Guarded like a transition: the row changes only while its status is the one read.
        Ok(Change { next, entry, expected: key.status, record })
    })
    .await
}

/// One change of a batch: the key after it, its chain event, the status its guarded update
/// expects, and the signed record it keeps.
struct Change<'a> {
    next: KeyRecord,
    entry: EventEntry,
    expected: KeyStatus,
    record: Option<RecordRow<'a>>,
}

/// Applies a batch of changes to keys in one transaction: the chains of their domains locked
/// once, the keys read in bulk, each change made on the key as the batch left it (a
/// registration checked against its sub-domain and every ISN, in the archive and in the batch),
/// then one guarded bulk update, one bulk insert of records and the chain heads.
async fn apply_batch<'a>(
    tx: &Transaction<'_>,
    ids: Vec<(DomainId, KeyId)>,
    mut change: impl FnMut(usize, &KeyRecord) -> Result<Change<'a>, StoreError>,
) -> Result<Vec<KeyRecord>, StoreError> {
    let fail = |i, e| in_batch(i, ids.len(), e);
    let mut chains = Chains::lock(tx, ids.iter().map(|(d, _)| d.clone())).await?;
    let mut current = bulk::read_keys(tx, &ids).await?;
    let mut expected: HashMap<(DomainId, KeyId), KeyStatus> = HashMap::new();
    let mut out = Vec::with_capacity(ids.len());
    let mut records = Vec::new();
    let mut isns = HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        let key = current.get(id).ok_or_else(|| fail(i, no_key(&id.0, id.1)))?;
        let c = change(i, key).map_err(|e| fail(i, e))?;
        if let Some(reg) = &c.next.registration
            && key.registration.is_none()
        {
            let taken = !isns.insert((reg.subdomain.clone(), reg.isn.clone()));
            let check = if taken {
                Err(StoreError::Duplicate(Subject::Isn {
                    subdomain: reg.subdomain.clone(),
                    isn: reg.isn.clone(),
                }))
            } else {
                check_registration(tx, &reg.subdomain, &reg.isn).await
            };
            check.map_err(|e| fail(i, e))?;
        }
        records.extend(c.record);
        chains.append(&id.0, c.entry)?;
        expected.entry(id.clone()).or_insert(c.expected);
        out.push(c.next.clone());
        current.insert(id.clone(), c.next);
    }
    let changes: Vec<(&KeyRecord, KeyStatus)> = expected
        .iter()
        .filter_map(|(id, from)| current.get(id).map(|after| (after, *from)))
        .collect();
    if bulk::update_keys(tx, &changes).await? != changes.len() as u64 {
        // The key was read in its expected status under the chain lock, so only a writer that
        // bypassed the lock could get here.
        let (key, expected) = changes
            .first()
            .map(|(k, s)| ((*k).clone(), *s))
            .ok_or(StoreError::Invalid("empty batch"))?;
        let actual = read_key(tx, &key.domain, key.key_id).await?.map_or(expected, |k| k.status);
        return Err(StoreError::StatusConflict {
            domain: key.domain,
            key_id: key.key_id,
            expected,
            actual,
        });
    }
    bulk::insert_records(tx, &records).await?;
    chains.finish(tx).await?;
    Ok(out)
}

async fn check_registration(
    tx: &Transaction<'_>,
    subdomain: &SubdomainId,
    isn: &Isn,
) -> Result<(), StoreError> {
    if !exists(tx, "SELECT 1 FROM subdomains WHERE id = $1", &[&subdomain.to_string()]).await? {
        return Err(StoreError::NotFound(Subject::Subdomain(subdomain.clone())));
    }
    if read_key_by_isn(tx, subdomain, isn).await?.is_some() {
        return Err(StoreError::Duplicate(Subject::Isn {
            subdomain: subdomain.clone(),
            isn: isn.clone(),
        }));
    }
    Ok(())
}

/// Inserts a signed record unless the same bytes are already kept with the key; returns whether
/// it was new.
async fn insert_record(
    tx: &Transaction<'_>,
    domain: &DomainId,
    key_id: KeyId,
    record: &SignedRecord,
    time: Timestamp,
) -> Result<bool, StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO records (domain, key_id, record_type, digest, bytes, stored) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (domain, key_id, digest) DO NOTHING",
        )
        .await
        .pg()?;
    let n = tx
        .execute(
            &stmt,
            &[
                &domain.as_str(),
                &to_i64(key_id.get())?,
                &i64::from(record.record_type.0),
                &record.digest().0.as_slice(),
                &record.bytes,
                &time_to_sql(time)?,
            ],
        )
        .await
        .pg()?;
    Ok(n == 1)
}

pub(crate) async fn store_record(tx: &Transaction<'_>, r: &NewRecord) -> Result<(), StoreError> {
    let mut chains = Chains::lock(tx, [r.domain.clone()]).await?;
    if read_key(tx, &r.domain, r.key_id).await?.is_none() {
        return Err(no_key(&r.domain, r.key_id));
    }
    if insert_record(tx, &r.domain, r.key_id, &r.record, r.time).await? {
        let entry = EventEntry {
            time: r.time,
            actor: r.actor.clone(),
            action: Action::RecordStored,
            key_id: Some(r.key_id),
            record: Some(RecordRef::of(&r.record)),
            note: None,
        };
        chains.append(&r.domain, entry)?;
        chains.finish(tx).await?;
    }
    Ok(())
}

pub(crate) async fn records(
    c: &impl GenericClient,
    domain: &DomainId,
    key_id: KeyId,
) -> Result<Vec<StoredRecord>, StoreError> {
    let stmt = c
        .prepare_cached(
            "SELECT record_type, digest, bytes, stored FROM records WHERE domain = $1 AND key_id = $2 ORDER BY id",
        )
        .await
        .pg()?;
    let rows = c.query(&stmt, &[&domain.as_str(), &to_i64(key_id.get())?]).await.pg()?;
    rows::all(&rows, rows::stored_record)
}

pub(crate) async fn read_key(
    c: &impl GenericClient,
    domain: &DomainId,
    key_id: KeyId,
) -> Result<Option<KeyRecord>, StoreError> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE domain = $1 AND key_id = $2");
    let stmt = c.prepare_cached(&sql).await.pg()?;
    let row = c.query_opt(&stmt, &[&domain.as_str(), &to_i64(key_id.get())?]).await.pg()?;
    row.as_ref().map(rows::key).transpose()
}

pub(crate) async fn read_key_by_isn(
    c: &impl GenericClient,
    subdomain: &SubdomainId,
    isn: &Isn,
) -> Result<Option<KeyRecord>, StoreError> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE subdomain = $1 AND isn = $2");
    let stmt = c.prepare_cached(&sql).await.pg()?;
    let row = c.query_opt(&stmt, &[&subdomain.to_string(), &isn.as_str()]).await.pg()?;
    row.as_ref().map(rows::key).transpose()
}

pub(crate) async fn list(
    c: &impl GenericClient,
    f: &KeyFilter,
) -> Result<Vec<KeyRecord>, StoreError> {
    // Absent filters are NULL parameters, so one prepared statement serves every combination.
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM keys WHERE domain = $1 \
         AND ($2::TEXT IS NULL OR status = $2) \
         AND ($3::TEXT IS NULL OR meter_id = $3) \
         AND ($4::BIGINT IS NULL OR kms_request < $4) \
         AND ($5::BIGINT IS NULL OR key_id > $5) \
         ORDER BY key_id LIMIT $6"
    );
    let status = f.status.map(|s| s.as_str());
    let meter = f.meter_id.as_ref().map(ToString::to_string);
    let before = f.requested_before.map(time_to_sql).transpose()?;
    let after = f.after.map(|k| to_i64(k.get())).transpose()?;
    let stmt = c.prepare_cached(&sql).await.pg()?;
    let rows = c
        .query(&stmt, &[&f.domain.as_str(), &status, &meter, &before, &after, &i64::from(f.limit)])
        .await
        .pg()?;
    rows::all(&rows, rows::key)
}
