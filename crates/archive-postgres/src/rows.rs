//! Rows to archive types. Column lists live beside the functions that read them, so a query and
//! its reader cannot drift apart.

use postkey_archive::backend::{
    action_from_sql, box_id_from_sql, date_from_sql, digest_from_sql, domain_from_sql,
    key_id_from_sql, meter_id_from_sql, registration_from_sql, sender_from_sql,
    state_version_from_sql, status_from_sql, subdomain_from_sql, subdomains_from_sql,
    time_from_sql, to_u64,
};
use postkey_archive::{
    BoxRecord, BurnedKeyId, CeremonyKind, ChainEvent, ChainHead, Component, DomainBundle,
    DomainProcess, DomainRecord, ErrorLogEntry, EventEntry, KeyIdRange, KeyRecord, KeyTimes,
    LoggedError, RecordRef, Reservation, SignedRecord, StoreError, StoredCheckpoint, StoredRecord,
    SubdomainRecord, Transcript, TranscriptId,
};
use postkey_crypto::{HpkePublicKey, VerifyingKey};
use postkey_wire::{DomainId, KeyId, RecordType, ResponseCode, Timestamp};
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

/// Column `i`; a type mismatch means the schema is not the one this build wrote.
fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    row.try_get(i).map_err(|_| StoreError::Corrupt("column type"))
}

fn text(row: &Row, i: usize) -> Result<String, StoreError> {
    get(row, i)
}

fn opt_text(row: &Row, i: usize) -> Result<Option<String>, StoreError> {
    get(row, i)
}

fn int(row: &Row, i: usize) -> Result<i64, StoreError> {
    get(row, i)
}

fn opt_time(row: &Row, i: usize) -> Result<Option<Timestamp>, StoreError> {
    get::<Option<i64>>(row, i)?.map(time_from_sql).transpose()
}

fn blob(row: &Row, i: usize) -> Result<Vec<u8>, StoreError> {
    get(row, i)
}

fn record_type(row: &Row, i: usize) -> Result<RecordType, StoreError> {
    u16::try_from(int(row, i)?).map(RecordType).map_err(|_| StoreError::Corrupt("record type"))
}

pub(crate) const KEY_COLUMNS: &str = "domain, key_id, status, oak_id, steel_id, meter_id, \
     subdomain, isn, kms_request, psr_install, kms_install, meter_registration, \
     kms_key_registration, obsolete, updated";

pub(crate) fn key(row: &Row) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        domain: domain_from_sql(&text(row, 0)?)?,
        key_id: key_id_from_sql(int(row, 1)?)?,
        status: status_from_sql(&text(row, 2)?)?,
        oak_id: box_id_from_sql(&text(row, 3)?)?,
        steel_id: box_id_from_sql(&text(row, 4)?)?,
        meter_id: opt_text(row, 5)?.as_deref().map(meter_id_from_sql).transpose()?,
        registration: registration_from_sql(
            opt_text(row, 6)?.as_deref(),
            opt_text(row, 7)?.as_deref(),
        )?,
        times: KeyTimes {
            kms_request: opt_time(row, 8)?,
            psr_install: opt_time(row, 9)?,
            kms_install: opt_time(row, 10)?,
            meter_registration: opt_text(row, 11)?.as_deref().map(date_from_sql).transpose()?,
            kms_key_registration: opt_time(row, 12)?,
            obsolete: opt_time(row, 13)?,
        },
        updated: time_from_sql(int(row, 14)?)?,
    })
}

pub(crate) const EVENT_COLUMNS: &str =
    "chain, seq, time, actor, action, key_id, record_type, record_digest, note, prev_hash, hash";

pub(crate) fn event(row: &Row) -> Result<ChainEvent, StoreError> {
    let record = match get::<Option<i64>>(row, 6)? {
        None => None,
        Some(_) => Some(RecordRef {
            record_type: record_type(row, 6)?,
            digest: digest_from_sql(&blob(row, 7)?)?,
        }),
    };
    Ok(ChainEvent {
        chain: domain_from_sql(&text(row, 0)?)?,
        seq: to_u64(int(row, 1)?, "event sequence number")?,
        prev_hash: digest_from_sql(&blob(row, 9)?)?,
        hash: digest_from_sql(&blob(row, 10)?)?,
        entry: EventEntry {
            time: time_from_sql(int(row, 2)?)?,
            actor: sender_from_sql(&text(row, 3)?)?,
            action: action_from_sql(&text(row, 4)?)?,
            key_id: get::<Option<i64>>(row, 5)?.map(key_id_from_sql).transpose()?,
            record,
            note: opt_text(row, 8)?,
        },
    })
}

pub(crate) fn head(row: &Row) -> Result<ChainHead, StoreError> {
    Ok(ChainHead {
        chain: domain_from_sql(&text(row, 0)?)?,
        count: to_u64(int(row, 1)?, "chain count")?,
        head_hash: digest_from_sql(&blob(row, 2)?)?,
    })
}

pub(crate) const DOMAIN_COLUMNS: &str = "id, created, next_key_id";

pub(crate) fn domain(row: &Row) -> Result<DomainRecord, StoreError> {
    Ok(DomainRecord {
        id: domain_from_sql(&text(row, 0)?)?,
        created: time_from_sql(int(row, 1)?)?,
        next_key_id: key_id_from_sql(int(row, 2)?)?,
    })
}

pub(crate) fn subdomain(row: &Row) -> Result<SubdomainRecord, StoreError> {
    Ok(SubdomainRecord {
        id: subdomain_from_sql(&text(row, 0)?)?,
        created: time_from_sql(int(row, 1)?)?,
    })
}

pub(crate) const BOX_COLUMNS: &str = "id, certificate_type, certificate, identity_key, confidentiality_key, state_version, registered";

pub(crate) fn box_record(row: &Row) -> Result<BoxRecord, StoreError> {
    let key32 = |i| -> Result<[u8; 32], StoreError> {
        blob(row, i)?.try_into().map_err(|_| StoreError::Corrupt("public key"))
    };
    Ok(BoxRecord {
        id: box_id_from_sql(&text(row, 0)?)?,
        certificate: SignedRecord { record_type: record_type(row, 1)?, bytes: blob(row, 2)? },
        identity_key: VerifyingKey::from_bytes(&key32(3)?)
            .map_err(|_| StoreError::Corrupt("identity key"))?,
        confidentiality_key: HpkePublicKey::from_bytes(key32(4)?),
        state_version: state_version_from_sql(int(row, 5)?)?,
        registered: time_from_sql(int(row, 6)?)?,
    })
}

pub(crate) const PROCESS_COLUMNS: &str = "box_id, domain, subdomains, record_type, record, created";

pub(crate) fn domain_process(row: &Row) -> Result<DomainProcess, StoreError> {
    Ok(DomainProcess {
        box_id: box_id_from_sql(&text(row, 0)?)?,
        domain: domain_from_sql(&text(row, 1)?)?,
        subdomains: subdomains_from_sql(&text(row, 2)?)?,
        record: SignedRecord { record_type: record_type(row, 3)?, bytes: blob(row, 4)? },
        created: time_from_sql(int(row, 5)?)?,
    })
}

pub(crate) const BUNDLE_COLUMNS: &str = "domain, version, created_by, record_type, bundle, stored";

pub(crate) fn bundle(row: &Row) -> Result<DomainBundle, StoreError> {
    Ok(DomainBundle {
        domain: domain_from_sql(&text(row, 0)?)?,
        version: u32::try_from(int(row, 1)?).map_err(|_| StoreError::Corrupt("bundle version"))?,
        created_by: box_id_from_sql(&text(row, 2)?)?,
        bundle: SignedRecord { record_type: record_type(row, 3)?, bytes: blob(row, 4)? },
        stored: time_from_sql(int(row, 5)?)?,
    })
}

pub(crate) fn burned(row: &Row) -> Result<BurnedKeyId, StoreError> {
    Ok(BurnedKeyId {
        domain: domain_from_sql(&text(row, 0)?)?,
        key_id: key_id_from_sql(int(row, 1)?)?,
        reason: text(row, 2)?,
        time: time_from_sql(int(row, 3)?)?,
    })
}

pub(crate) fn reservation(row: &Row) -> Result<Reservation, StoreError> {
    Ok(Reservation {
        domain: domain_from_sql(&text(row, 0)?)?,
        range: KeyIdRange {
            first: key_id_from_sql(int(row, 1)?)?,
            last: key_id_from_sql(int(row, 2)?)?,
        },
        holder: box_id_from_sql(&text(row, 3)?)?,
        time: time_from_sql(int(row, 4)?)?,
    })
}

pub(crate) fn stored_record(row: &Row) -> Result<StoredRecord, StoreError> {
    Ok(StoredRecord {
        record: SignedRecord { record_type: record_type(row, 0)?, bytes: blob(row, 2)? },
        digest: digest_from_sql(&blob(row, 1)?)?,
        stored: time_from_sql(int(row, 3)?)?,
    })
}

/// A record with its key: the columns of [`stored_record`], then `domain, key_id`.
pub(crate) fn keyed_record(row: &Row) -> Result<(DomainId, KeyId, StoredRecord), StoreError> {
    let domain = domain_from_sql(&text(row, 4)?)?;
    Ok((domain, key_id_from_sql(int(row, 5)?)?, stored_record(row)?))
}

pub(crate) const CHECKPOINT_COLUMNS: &str = "chain, number, count, head, record_type, record, time";

pub(crate) fn checkpoint(row: &Row) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        chain: domain_from_sql(&text(row, 0)?)?,
        number: to_u64(int(row, 1)?, "checkpoint number")?,
        count: to_u64(int(row, 2)?, "checkpoint count")?,
        head: digest_from_sql(&blob(row, 3)?)?,
        record: SignedRecord { record_type: record_type(row, 4)?, bytes: blob(row, 5)? },
        time: time_from_sql(int(row, 6)?)?,
    })
}

pub(crate) const TRANSCRIPT_COLUMNS: &str = "id, time, kind, box_id, record_type, transcript";

pub(crate) fn transcript(row: &Row) -> Result<Transcript, StoreError> {
    Ok(Transcript {
        id: TranscriptId(to_u64(int(row, 0)?, "transcript ID")?),
        time: time_from_sql(int(row, 1)?)?,
        kind: CeremonyKind::parse(&text(row, 2)?)
            .map_err(|_| StoreError::Corrupt("ceremony kind"))?,
        box_id: opt_text(row, 3)?.as_deref().map(box_id_from_sql).transpose()?,
        transcript: SignedRecord { record_type: record_type(row, 4)?, bytes: blob(row, 5)? },
    })
}

pub(crate) const ERROR_COLUMNS: &str =
    "id, time, component, response_code, message, domain, meter_id, key_id, origin, seq";

pub(crate) fn logged_error(row: &Row) -> Result<LoggedError, StoreError> {
    Ok(LoggedError {
        id: to_u64(int(row, 0)?, "error log ID")?,
        entry: ErrorLogEntry {
            time: time_from_sql(int(row, 1)?)?,
            component: Component::parse(&text(row, 2)?)
                .map_err(|_| StoreError::Corrupt("component"))?,
            response_code: ResponseCode(
                u16::try_from(int(row, 3)?).map_err(|_| StoreError::Corrupt("response code"))?,
            ),
            message: text(row, 4)?,
            domain: opt_text(row, 5)?.as_deref().map(domain_from_sql).transpose()?,
            meter_id: opt_text(row, 6)?.as_deref().map(meter_id_from_sql).transpose()?,
            key_id: get::<Option<i64>>(row, 7)?.map(key_id_from_sql).transpose()?,
            origin: opt_text(row, 8)?,
        },
        seq: get::<Option<i64>>(row, 9)?
            .map(|s| to_u64(s, "error-log chain position"))
            .transpose()?,
    })
}

/// Reads every row with `read`.
pub(crate) fn all<T>(
    rows: &[Row],
    read: fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(read).collect()
}
