//! Whole batches in a few statements: rows travel as arrays and `unnest` turns them back into
//! rows, so a batch of ten thousand keys costs the same handful of round trips as a batch of
//! one. (Round trips, not SQL work, are what a batch would otherwise pay for per row.) Reads
//! look each key up through a `LATERAL` subquery that the planner may not flatten (`OFFSET 0`):
//! statements are prepared once, and a plan made while a table was small must not become a scan
//! of it, once per batch, when it is large.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use postkey_archive::backend::{time_to_sql, to_i64};
use postkey_archive::{ChainEvent, KeyRecord, KeyStatus, SignedRecord, StoreError};
use postkey_wire::{DomainId, KeyId, Timestamp};

use crate::conn::Pg;
use crate::rows::{self, KEY_COLUMNS};

/// Key records as columns: one array per column.
#[derive(Default)]
struct KeyArrays {
    domain: Vec<String>,
    key_id: Vec<i64>,
    status: Vec<&'static str>,
    oak_id: Vec<String>,
    steel_id: Vec<String>,
    meter_id: Vec<Option<String>>,
    subdomain: Vec<Option<String>>,
    isn: Vec<Option<String>>,
    kms_request: Vec<Option<i64>>,
    psr_install: Vec<Option<i64>>,
    kms_install: Vec<Option<i64>>,
    meter_registration: Vec<Option<String>>,
    kms_key_registration: Vec<Option<i64>>,
    obsolete: Vec<Option<i64>>,
    updated: Vec<i64>,
}

fn opt_time(t: Option<Timestamp>) -> Result<Option<i64>, StoreError> {
    t.map(time_to_sql).transpose()
}

impl KeyArrays {
    fn of<'a>(keys: impl IntoIterator<Item = &'a KeyRecord>) -> Result<Self, StoreError> {
        let mut a = Self::default();
        for k in keys {
            let t = &k.times;
            a.domain.push(k.domain.to_string());
            a.key_id.push(to_i64(k.key_id.get())?);
            a.status.push(k.status.as_str());
            a.oak_id.push(k.oak_id.to_string());
            a.steel_id.push(k.steel_id.to_string());
            a.meter_id.push(k.meter_id.as_ref().map(ToString::to_string));
            a.subdomain.push(k.registration.as_ref().map(|r| r.subdomain.to_string()));
            a.isn.push(k.registration.as_ref().map(|r| r.isn.to_string()));
            a.kms_request.push(opt_time(t.kms_request)?);
            a.psr_install.push(opt_time(t.psr_install)?);
            a.kms_install.push(opt_time(t.kms_install)?);
            a.meter_registration.push(t.meter_registration.map(|d| d.to_string()));
            a.kms_key_registration.push(opt_time(t.kms_key_registration)?);
            a.obsolete.push(opt_time(t.obsolete)?);
            a.updated.push(time_to_sql(k.updated)?);
        }
        Ok(a)
    }
}

/// The unnest of [`KeyArrays`] in the order of [`KEY_COLUMNS`], as `$1` to `$15`.
const UNNEST_KEYS: &str = "unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], \
     $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::text[], \
     $13::int8[], $14::int8[], $15::int8[])";

/// Inserts new key records.
pub(crate) async fn insert_keys(
    tx: &Transaction<'_>,
    keys: &[KeyRecord],
) -> Result<(), StoreError> {
    let a = KeyArrays::of(keys)?;
    let sql = format!("INSERT INTO keys ({KEY_COLUMNS}) SELECT * FROM {UNNEST_KEYS}");
    let stmt = tx.prepare_cached(&sql).await.pg()?;
    tx.execute(
        &stmt,
        &[
            &a.domain,
            &a.key_id,
            &a.status,
            &a.oak_id,
            &a.steel_id,
            &a.meter_id,
            &a.subdomain,
            &a.isn,
            &a.kms_request,
            &a.psr_install,
            &a.kms_install,
            &a.meter_registration,
            &a.kms_key_registration,
            &a.obsolete,
            &a.updated,
        ],
    )
    .await
    .pg()?;
    Ok(())
}

/// Writes each record over its row with a guarded update: a row changes only while its status
/// is still the `expected` one given beside it. Returns how many rows changed.
pub(crate) async fn update_keys(
    tx: &Transaction<'_>,
    changes: &[(&KeyRecord, KeyStatus)],
) -> Result<u64, StoreError> {
    let a = KeyArrays::of(changes.iter().map(|(k, _)| *k))?;
    let expected: Vec<&str> = changes.iter().map(|(_, s)| s.as_str()).collect();
    let sql = format!(
        "UPDATE keys AS k SET status = v.status, meter_id = v.meter_id, subdomain = v.subdomain, \
         isn = v.isn, kms_request = v.kms_request, psr_install = v.psr_install, \
         kms_install = v.kms_install, meter_registration = v.meter_registration, \
         kms_key_registration = v.kms_key_registration, obsolete = v.obsolete, updated = v.updated \
         FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], \
              $7::text[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::text[], \
              $13::int8[], $14::int8[], $15::int8[], $16::text[]) AS v({KEY_COLUMNS}, expected) \
         WHERE k.domain = v.domain AND k.key_id = v.key_id AND k.status = v.expected"
    );
    let stmt = tx.prepare_cached(&sql).await.pg()?;
    tx.execute(
        &stmt,
        &[
            &a.domain,
            &a.key_id,
            &a.status,
            &a.oak_id,
            &a.steel_id,
            &a.meter_id,
            &a.subdomain,
            &a.isn,
            &a.kms_request,
            &a.psr_install,
            &a.kms_install,
            &a.meter_registration,
            &a.kms_key_registration,
            &a.obsolete,
            &a.updated,
            &expected,
        ],
    )
    .await
    .pg()
}

/// The key records of `ids` that exist.
pub(crate) async fn read_keys(
    tx: &Transaction<'_>,
    ids: &[(DomainId, KeyId)],
) -> Result<HashMap<(DomainId, KeyId), KeyRecord>, StoreError> {
    let domains: Vec<&str> = ids.iter().map(|(d, _)| d.as_str()).collect();
    let key_ids = ids.iter().map(|(_, k)| to_i64(k.get())).collect::<Result<Vec<_>, _>>()?;
    let sql = format!(
        "SELECT k.* FROM unnest($1::text[], $2::int8[]) AS v(domain, key_id) \
         CROSS JOIN LATERAL (SELECT {KEY_COLUMNS} FROM keys \
             WHERE keys.domain = v.domain AND keys.key_id = v.key_id OFFSET 0) AS k"
    );
    let stmt = tx.prepare_cached(&sql).await.pg()?;
    let rows = tx.query(&stmt, &[&domains, &key_ids]).await.pg()?;
    rows.iter().map(|r| rows::key(r).map(|k| ((k.domain.clone(), k.key_id), k))).collect()
}

/// The IDs among `ids` that are burned.
pub(crate) async fn burned(
    tx: &Transaction<'_>,
    ids: &[(DomainId, KeyId)],
) -> Result<Vec<(DomainId, KeyId)>, StoreError> {
    let domains: Vec<&str> = ids.iter().map(|(d, _)| d.as_str()).collect();
    let key_ids = ids.iter().map(|(_, k)| to_i64(k.get())).collect::<Result<Vec<_>, _>>()?;
    let stmt = tx
        .prepare_cached(
            "SELECT b.domain, b.key_id FROM unnest($1::text[], $2::int8[]) AS v(domain, key_id) \
             CROSS JOIN LATERAL (SELECT domain, key_id FROM burned_key_ids \
                 WHERE burned_key_ids.domain = v.domain AND burned_key_ids.key_id = v.key_id \
                 OFFSET 0) AS b",
        )
        .await
        .pg()?;
    let rows = tx.query(&stmt, &[&domains, &key_ids]).await.pg()?;
    rows.iter()
        .map(|r| {
            let d: String = r.try_get(0).pg()?;
            let k: i64 = r.try_get(1).pg()?;
            Ok((
                postkey_archive::backend::domain_from_sql(&d)?,
                postkey_archive::backend::key_id_from_sql(k)?,
            ))
        })
        .collect()
}

/// A signed record to keep with a key.
pub(crate) struct RecordRow<'a> {
    pub(crate) domain: &'a DomainId,
    pub(crate) key_id: KeyId,
    pub(crate) record: &'a SignedRecord,
    pub(crate) time: Timestamp,
}

/// Inserts records, in order, skipping those whose bytes the key keeps already.
pub(crate) async fn insert_records(
    tx: &Transaction<'_>,
    records: &[RecordRow<'_>],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let domain: Vec<&str> = records.iter().map(|r| r.domain.as_str()).collect();
    let key_id = records.iter().map(|r| to_i64(r.key_id.get())).collect::<Result<Vec<_>, _>>()?;
    let record_type: Vec<i64> = records.iter().map(|r| i64::from(r.record.record_type.0)).collect();
    let digest: Vec<Vec<u8>> = records.iter().map(|r| r.record.digest().0.to_vec()).collect();
    let bytes: Vec<&[u8]> = records.iter().map(|r| r.record.bytes.as_slice()).collect();
    let stored = records.iter().map(|r| time_to_sql(r.time)).collect::<Result<Vec<_>, _>>()?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO records (domain, key_id, record_type, digest, bytes, stored) \
             SELECT domain, key_id, record_type, digest, bytes, stored \
             FROM unnest($1::text[], $2::int8[], $3::int8[], $4::bytea[], $5::bytea[], $6::int8[]) \
             WITH ORDINALITY AS r(domain, key_id, record_type, digest, bytes, stored, n) ORDER BY n \
             ON CONFLICT (domain, key_id, digest) DO NOTHING",
        )
        .await
        .pg()?;
    tx.execute(&stmt, &[&domain, &key_id, &record_type, &digest, &bytes, &stored]).await.pg()?;
    Ok(())
}

/// Inserts chain events.
pub(crate) async fn insert_events(
    tx: &Transaction<'_>,
    events: &[ChainEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut chain = Vec::with_capacity(events.len());
    let mut seq = Vec::with_capacity(events.len());
    let mut time = Vec::with_capacity(events.len());
    let mut actor = Vec::with_capacity(events.len());
    let mut action = Vec::with_capacity(events.len());
    let mut key_id = Vec::with_capacity(events.len());
    let mut record_type = Vec::with_capacity(events.len());
    let mut digest = Vec::with_capacity(events.len());
    let mut note = Vec::with_capacity(events.len());
    let mut prev_hash = Vec::with_capacity(events.len());
    let mut hash = Vec::with_capacity(events.len());
    for e in events {
        chain.push(e.chain.as_str());
        seq.push(to_i64(e.seq)?);
        time.push(time_to_sql(e.entry.time)?);
        actor.push(e.entry.actor.to_string());
        action.push(e.entry.action.encode());
        key_id.push(e.entry.key_id.map(|k| to_i64(k.get())).transpose()?);
        record_type.push(e.entry.record.map(|r| i64::from(r.record_type.0)));
        digest.push(e.entry.record.map(|r| r.digest.0.to_vec()));
        note.push(e.entry.note.as_deref());
        prev_hash.push(e.prev_hash.0.as_slice());
        hash.push(e.hash.0.as_slice());
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO events (chain, seq, time, actor, action, key_id, record_type, \
             record_digest, note, prev_hash, hash) SELECT * FROM unnest($1::text[], $2::int8[], \
             $3::int8[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::bytea[], $9::text[], \
             $10::bytea[], $11::bytea[])",
        )
        .await
        .pg()?;
    tx.execute(
        &stmt,
        &[
            &chain,
            &seq,
            &time,
            &actor,
            &action,
            &key_id,
            &record_type,
            &digest,
            &note,
            &prev_hash,
            &hash,
        ],
    )
    .await
    .pg()?;
    Ok(())
}
