//! Rows to archive types and back. Column lists live beside the functions that read them, so a
//! query and its reader cannot drift apart.

use std::ops::DerefMut;

use postkey_archive::backend::{
    action_from_sql, box_id_from_sql, date_from_sql, digest_from_sql, domain_from_sql,
    key_id_from_sql, meter_id_from_sql, registration_from_sql, sender_from_sql,
    state_version_from_sql, status_from_sql, subdomain_from_sql, subdomains_from_sql,
    time_from_sql, time_to_sql, to_i64, to_u64,
};
use postkey_archive::{
    BoxRecord, BurnedKeyId, ChainEvent, ChainHead, Component, DomainBundle, DomainProcess,
    DomainRecord, ErrorLogEntry, EventEntry, KeyIdRange, KeyRecord, KeyTimes, LoggedError,
    RecordRef, Reservation, SignedRecord, StoreError, StoredCheckpoint, StoredRecord,
    SubdomainRecord, Transcript, TranscriptId,
};
use postkey_crypto::{HpkePublicKey, VerifyingKey};
use postkey_wire::{RecordType, ResponseCode, Timestamp};
use rusqlite::types::Value;
use rusqlite::{Params, Row, Statement};

use crate::conn::Db;

/// All rows of `stmt` with `params`, each read by `read`.
pub(crate) fn all<'c, T>(
    mut stmt: impl DerefMut<Target = Statement<'c>>,
    params: impl Params,
    read: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = stmt.query(params).db()?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().db()? {
        out.push(read(row)?);
    }
    Ok(out)
}

/// The first row of `stmt` with `params`, if any.
pub(crate) fn first<'c, T>(
    mut stmt: impl DerefMut<Target = Statement<'c>>,
    params: impl Params,
    read: fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    let mut rows = stmt.query(params).db()?;
    rows.next().db()?.map(read).transpose()
}

/// A text column, borrowed from the row: the ID parsers copy what they keep, so reading a
/// column costs one allocation, not two.
fn text<'r>(row: &'r Row<'_>, i: usize) -> Result<&'r str, StoreError> {
    row.get_ref(i).db()?.as_str().map_err(|_| StoreError::Corrupt("text column"))
}

fn opt_text<'r>(row: &'r Row<'_>, i: usize) -> Result<Option<&'r str>, StoreError> {
    row.get_ref(i).db()?.as_str_or_null().map_err(|_| StoreError::Corrupt("text column"))
}

pub(crate) fn int(row: &Row<'_>, i: usize) -> Result<i64, StoreError> {
    row.get(i).db()
}

fn opt_time(row: &Row<'_>, i: usize) -> Result<Option<Timestamp>, StoreError> {
    row.get::<_, Option<i64>>(i).db()?.map(time_from_sql).transpose()
}

fn blob(row: &Row<'_>, i: usize) -> Result<Vec<u8>, StoreError> {
    row.get(i).db()
}

fn record_type(row: &Row<'_>, i: usize) -> Result<RecordType, StoreError> {
    u16::try_from(int(row, i)?).map(RecordType).map_err(|_| StoreError::Corrupt("record type"))
}

/// An optional value as a SQL value.
pub(crate) fn opt<T: ToString>(v: &Option<T>) -> Value {
    v.as_ref().map_or(Value::Null, |v| Value::Text(v.to_string()))
}

/// An optional time as a SQL value.
pub(crate) fn opt_time_sql(t: Option<Timestamp>) -> Result<Value, StoreError> {
    Ok(t.map(time_to_sql).transpose()?.map_or(Value::Null, Value::Integer))
}

/// The columns [`key`] reads, as a macro so that the hot queries are `const` strings: a lookup
/// then neither formats its SQL nor hashes a new string for the statement cache.
macro_rules! key_columns {
    () => {
        "domain, key_id, status, oak_id, steel_id, meter_id, subdomain, isn, kms_request, \
         psr_install, kms_install, meter_registration, kms_key_registration, obsolete, updated"
    };
}

pub(crate) const KEY_COLUMNS: &str = key_columns!();
/// A key by its ID: the primary key.
pub(crate) const KEY_BY_ID: &str =
    concat!("SELECT ", key_columns!(), " FROM keys WHERE domain = ?1 AND key_id = ?2");
/// A key by its ISN in a sub-domain: the unique index `keys_by_isn`.
pub(crate) const KEY_BY_ISN: &str =
    concat!("SELECT ", key_columns!(), " FROM keys WHERE subdomain = ?1 AND isn = ?2");

pub(crate) fn key(row: &Row<'_>) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        domain: domain_from_sql(text(row, 0)?)?,
        key_id: key_id_from_sql(int(row, 1)?)?,
        status: status_from_sql(text(row, 2)?)?,
        oak_id: box_id_from_sql(text(row, 3)?)?,
        steel_id: box_id_from_sql(text(row, 4)?)?,
        meter_id: opt_text(row, 5)?.map(meter_id_from_sql).transpose()?,
        registration: registration_from_sql(opt_text(row, 6)?, opt_text(row, 7)?)?,
        times: KeyTimes {
            kms_request: opt_time(row, 8)?,
            psr_install: opt_time(row, 9)?,
            kms_install: opt_time(row, 10)?,
            meter_registration: opt_text(row, 11)?.map(date_from_sql).transpose()?,
            kms_key_registration: opt_time(row, 12)?,
            obsolete: opt_time(row, 13)?,
        },
        updated: time_from_sql(int(row, 14)?)?,
    })
}

/// The values of every mutable key column, in the order of `UPDATE_KEY`'s `?3` to `?13`.
pub(crate) fn key_values(k: &KeyRecord) -> Result<Vec<Value>, StoreError> {
    let t = &k.times;
    Ok(vec![
        Value::Text(k.domain.to_string()),
        Value::Integer(to_i64(k.key_id.get())?),
        Value::Text(k.status.as_str().into()),
        opt(&k.meter_id),
        opt(&k.registration.as_ref().map(|r| r.subdomain.clone())),
        opt(&k.registration.as_ref().map(|r| r.isn.clone())),
        opt_time_sql(t.kms_request)?,
        opt_time_sql(t.psr_install)?,
        opt_time_sql(t.kms_install)?,
        opt(&t.meter_registration),
        opt_time_sql(t.kms_key_registration)?,
        opt_time_sql(t.obsolete)?,
        Value::Integer(time_to_sql(k.updated)?),
    ])
}

pub(crate) const EVENT_COLUMNS: &str =
    "chain, seq, time, actor, action, key_id, record_type, record_digest, note, prev_hash, hash";

pub(crate) fn event(row: &Row<'_>) -> Result<ChainEvent, StoreError> {
    let record = match row.get::<_, Option<i64>>(6).db()? {
        None => None,
        Some(_) => Some(RecordRef {
            record_type: record_type(row, 6)?,
            digest: digest_from_sql(&blob(row, 7)?)?,
        }),
    };
    Ok(ChainEvent {
        chain: domain_from_sql(text(row, 0)?)?,
        seq: to_u64(int(row, 1)?, "event sequence number")?,
        prev_hash: digest_from_sql(&blob(row, 9)?)?,
        hash: digest_from_sql(&blob(row, 10)?)?,
        entry: EventEntry {
            time: time_from_sql(int(row, 2)?)?,
            actor: sender_from_sql(text(row, 3)?)?,
            action: action_from_sql(text(row, 4)?)?,
            key_id: row.get::<_, Option<i64>>(5).db()?.map(key_id_from_sql).transpose()?,
            record,
            note: opt_text(row, 8)?.map(str::to_owned),
        },
    })
}

pub(crate) fn head(row: &Row<'_>) -> Result<ChainHead, StoreError> {
    Ok(ChainHead {
        chain: domain_from_sql(text(row, 0)?)?,
        count: to_u64(int(row, 1)?, "chain count")?,
        head_hash: digest_from_sql(&blob(row, 2)?)?,
    })
}

pub(crate) const DOMAIN_COLUMNS: &str = "id, created, next_key_id";

pub(crate) fn domain(row: &Row<'_>) -> Result<DomainRecord, StoreError> {
    Ok(DomainRecord {
        id: domain_from_sql(text(row, 0)?)?,
        created: time_from_sql(int(row, 1)?)?,
        next_key_id: key_id_from_sql(int(row, 2)?)?,
    })
}

pub(crate) fn subdomain(row: &Row<'_>) -> Result<SubdomainRecord, StoreError> {
    Ok(SubdomainRecord {
        id: subdomain_from_sql(text(row, 0)?)?,
        created: time_from_sql(int(row, 1)?)?,
    })
}

pub(crate) const BOX_COLUMNS: &str = "id, certificate_type, certificate, identity_key, confidentiality_key, state_version, registered";

pub(crate) fn box_record(row: &Row<'_>) -> Result<BoxRecord, StoreError> {
    let key32 = |i| -> Result<[u8; 32], StoreError> {
        blob(row, i)?.try_into().map_err(|_| StoreError::Corrupt("public key"))
    };
    Ok(BoxRecord {
        id: box_id_from_sql(text(row, 0)?)?,
        certificate: SignedRecord { record_type: record_type(row, 1)?, bytes: blob(row, 2)? },
        identity_key: VerifyingKey::from_bytes(&key32(3)?)
            .map_err(|_| StoreError::Corrupt("identity key"))?,
        confidentiality_key: HpkePublicKey::from_bytes(key32(4)?),
        state_version: state_version_from_sql(int(row, 5)?)?,
        registered: time_from_sql(int(row, 6)?)?,
    })
}

pub(crate) fn domain_process(row: &Row<'_>) -> Result<DomainProcess, StoreError> {
    Ok(DomainProcess {
        box_id: box_id_from_sql(text(row, 0)?)?,
        domain: domain_from_sql(text(row, 1)?)?,
        subdomains: subdomains_from_sql(text(row, 2)?)?,
        record: SignedRecord { record_type: record_type(row, 3)?, bytes: blob(row, 4)? },
        created: time_from_sql(int(row, 5)?)?,
    })
}

pub(crate) const BUNDLE_COLUMNS: &str = "domain, version, created_by, record_type, bundle, stored";

pub(crate) fn bundle(row: &Row<'_>) -> Result<DomainBundle, StoreError> {
    Ok(DomainBundle {
        domain: domain_from_sql(text(row, 0)?)?,
        version: u32::try_from(int(row, 1)?).map_err(|_| StoreError::Corrupt("bundle version"))?,
        created_by: box_id_from_sql(text(row, 2)?)?,
        bundle: SignedRecord { record_type: record_type(row, 3)?, bytes: blob(row, 4)? },
        stored: time_from_sql(int(row, 5)?)?,
    })
}

pub(crate) fn burned(row: &Row<'_>) -> Result<BurnedKeyId, StoreError> {
    Ok(BurnedKeyId {
        domain: domain_from_sql(text(row, 0)?)?,
        key_id: key_id_from_sql(int(row, 1)?)?,
        reason: text(row, 2)?.to_owned(),
        time: time_from_sql(int(row, 3)?)?,
    })
}

pub(crate) fn reservation(row: &Row<'_>) -> Result<Reservation, StoreError> {
    Ok(Reservation {
        domain: domain_from_sql(text(row, 0)?)?,
        range: KeyIdRange {
            first: key_id_from_sql(int(row, 1)?)?,
            last: key_id_from_sql(int(row, 2)?)?,
        },
        holder: box_id_from_sql(text(row, 3)?)?,
        time: time_from_sql(int(row, 4)?)?,
    })
}

pub(crate) fn stored_record(row: &Row<'_>) -> Result<StoredRecord, StoreError> {
    Ok(StoredRecord {
        record: SignedRecord { record_type: record_type(row, 0)?, bytes: blob(row, 2)? },
        digest: digest_from_sql(&blob(row, 1)?)?,
        stored: time_from_sql(int(row, 3)?)?,
    })
}

pub(crate) const CHECKPOINT_COLUMNS: &str = "chain, number, count, head, record_type, record, time";

pub(crate) fn checkpoint(row: &Row<'_>) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        chain: domain_from_sql(text(row, 0)?)?,
        number: to_u64(int(row, 1)?, "checkpoint number")?,
        count: to_u64(int(row, 2)?, "checkpoint count")?,
        head: digest_from_sql(&blob(row, 3)?)?,
        record: SignedRecord { record_type: record_type(row, 4)?, bytes: blob(row, 5)? },
        time: time_from_sql(int(row, 6)?)?,
    })
}

pub(crate) const TRANSCRIPT_COLUMNS: &str = "id, time, kind, box_id, record_type, transcript";

pub(crate) fn transcript(row: &Row<'_>) -> Result<Transcript, StoreError> {
    Ok(Transcript {
        id: TranscriptId(to_u64(int(row, 0)?, "transcript ID")?),
        time: time_from_sql(int(row, 1)?)?,
        kind: postkey_archive::CeremonyKind::parse(text(row, 2)?)
            .map_err(|_| StoreError::Corrupt("ceremony kind"))?,
        box_id: opt_text(row, 3)?.map(box_id_from_sql).transpose()?,
        transcript: SignedRecord { record_type: record_type(row, 4)?, bytes: blob(row, 5)? },
    })
}

pub(crate) const ERROR_COLUMNS: &str =
    "id, time, component, response_code, message, domain, meter_id, key_id, origin, seq";

pub(crate) fn logged_error(row: &Row<'_>) -> Result<LoggedError, StoreError> {
    Ok(LoggedError {
        id: to_u64(int(row, 0)?, "error log ID")?,
        entry: ErrorLogEntry {
            time: time_from_sql(int(row, 1)?)?,
            component: Component::parse(text(row, 2)?)
                .map_err(|_| StoreError::Corrupt("component"))?,
            response_code: ResponseCode(
                u16::try_from(int(row, 3)?).map_err(|_| StoreError::Corrupt("response code"))?,
            ),
            message: text(row, 4)?.to_owned(),
            domain: opt_text(row, 5)?.map(domain_from_sql).transpose()?,
            meter_id: opt_text(row, 6)?.map(meter_id_from_sql).transpose()?,
            key_id: row.get::<_, Option<i64>>(7).db()?.map(key_id_from_sql).transpose()?,
            origin: opt_text(row, 8)?.map(str::to_owned),
        },
        seq: row
            .get::<_, Option<i64>>(9)
            .db()?
            .map(|s| to_u64(s, "error-log chain position"))
            .transpose()?,
    })
}
