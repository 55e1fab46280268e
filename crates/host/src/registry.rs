//! Moves what the home keeps about boxes and domains into the archive: the box registry
//! (certificates, keys, highest state versions), domains and sub-domains with their bundles,
//! the domain-process records the KMC sends Oak with MI1, the signed ceremony transcripts and
//! the spooled error log. Idempotent: what the archive already holds is left as it is (an
//! error-log spool whose move was interrupted may be moved twice: entries are never lost).

use postkey_archive::{
    CeremonyKind, Component, ErrorLogEntry, ErrorLogQuery, NewBox, NewBundle, NewDomain,
    NewDomainProcess, NewSubdomain, NewTranscript, SignedRecord, Store,
};
use postkey_wire::{ResponseCode, Sender, Timestamp};

use crate::{ErrorEntry, Home, HostError, clock};

/// Registers every box, domain, bundle and process of `home` in `store` that it lacks.
pub async fn register_in_archive(home: &Home, store: &impl Store) -> Result<(), HostError> {
    let now = clock::now();
    let anchors = home.anchors()?;
    let admin = Sender::Box(postkey_wire::BoxId::FIRST_MANUFACTURING);
    for bundle in home.domains()? {
        let b = bundle.claimed_body();
        if store.domain(&b.domain).await?.is_none() {
            store
                .create_domain(&NewDomain { id: b.domain.clone(), time: now, actor: admin.clone() })
                .await?;
            for s in &b.subdomains {
                store
                    .add_subdomain(&NewSubdomain { id: s.clone(), time: now, actor: admin.clone() })
                    .await?;
            }
        }
        if store.latest_bundle(&b.domain).await?.is_none() {
            let bytes = home.bundle(&b.domain)?;
            let record =
                SignedRecord { record_type: postkey_wire::RecordType::DOMAIN_BUNDLE, bytes };
            let new = NewBundle {
                domain: b.domain.clone(),
                version: 1,
                created_by: postkey_wire::BoxId::FIRST_MANUFACTURING,
                bundle: record,
                time: now,
            };
            store.store_bundle(&new).await?;
        }
    }
    for id in home.store().list()? {
        let cert = home.certificate(id, &anchors)?;
        if store.box_record(id).await?.is_none() {
            let version = home.recorded_version(id)?.unwrap_or(postkey_wire::StateVersion(0));
            let new = NewBox {
                id,
                certificate: SignedRecord::from_verified(&cert),
                identity_key: cert.body().identity,
                confidentiality_key: cert.body().confidentiality,
                state_version: version,
                time: now,
                actor: Sender::Box(cert.body().issuer),
            };
            store.register_box(&new).await?;
        }
        let known: Vec<_> =
            store.domain_processes(id).await?.into_iter().map(|p| p.domain).collect();
        for process in home.processes(id)? {
            let p = process.body();
            if known.contains(&p.domain) {
                continue;
            }
            let new = NewDomainProcess {
                box_id: id,
                domain: p.domain.clone(),
                subdomains: p.subdomains.clone(),
                record: SignedRecord::from_verified(&process),
                time: now,
                actor: process.header().sender.clone(),
            };
            store.add_domain_process(&new).await?;
        }
    }
    move_transcripts(home, store).await?;
    move_error_spool(home, store).await
}

/// Copies every ceremony transcript of the home the archive lacks (compared byte for byte).
async fn move_transcripts(home: &Home, store: &impl Store) -> Result<(), HostError> {
    let kept: Vec<Vec<u8>> =
        store.transcripts(None).await?.into_iter().map(|t| t.transcript.bytes).collect();
    for t in home.transcripts()? {
        if kept.iter().any(|k| k.as_slice() == t.as_bytes()) {
            continue;
        }
        let b = t.body();
        let new = NewTranscript {
            time: t.header().timestamp,
            kind: CeremonyKind::parse(&b.ceremony)?,
            box_id: b.subject.or(Some(b.conducted_by)),
            transcript: SignedRecord::from_verified(&t),
            actor: Sender::Box(b.conducted_by),
        };
        store.store_transcript(&new).await?;
    }
    Ok(())
}

/// Moves the home's error-log spool into the archive's error log.
pub(crate) async fn move_error_spool(home: &Home, store: &impl Store) -> Result<(), HostError> {
    for e in home.take_error_spool()? {
        let entry = ErrorLogEntry {
            time: Timestamp::from_unix_micros(e.unix_micros),
            component: component(&e.component)?,
            response_code: ResponseCode(e.code),
            message: e.message,
            domain: None,
            meter_id: None,
            key_id: None,
        };
        store.log_error(&entry).await?;
    }
    home.spool_moved()
}

/// The archive's component label of a spooled component (`O00000001` → `o00000001`).
fn component(name: &str) -> Result<Component, HostError> {
    let label: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .take(64)
        .collect();
    Ok(Component::parse(if label.is_empty() { "host" } else { &label })?)
}

/// The newest `limit` entries of the archive's error log (after moving the home's spool in),
/// oldest first.
pub async fn error_log(
    home: &Home,
    store: &impl Store,
    limit: u32,
) -> Result<Vec<ErrorEntry>, HostError> {
    move_error_spool(home, store).await?;
    let mut logged = store.error_log(&ErrorLogQuery::latest(limit)).await?;
    logged.reverse();
    Ok(logged
        .into_iter()
        .map(|l| ErrorEntry {
            time: l.entry.time.to_rfc3339(),
            unix_micros: l.entry.time.unix_micros(),
            component: l.entry.component.to_string(),
            code: l.entry.response_code.0,
            message: l.entry.message,
        })
        .collect())
}
