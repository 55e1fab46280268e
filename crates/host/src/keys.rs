//! Read views of master key records for the CLI: lists and one key's status, times and history.
//! They show what the archive knows, which is never a key itself.

use postkey_archive::{KeyFilter, KeyRecord, Store};
use postkey_wire::{DomainId, KeyId, MeterId, Timestamp};

use crate::{HostError, Usage};

/// One key in a list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyEntry {
    /// The key's domain.
    pub domain: String,
    /// Its ID.
    pub key_id: u64,
    /// Its status.
    pub status: String,
    /// The meter's product code, once installed.
    pub product_code: Option<String>,
    /// The meter's MSN, once installed.
    pub msn: Option<String>,
    /// Its sub-domain, once registered.
    pub subdomain: Option<String>,
    /// Its ISN, once registered.
    pub isn: Option<String>,
    /// The Oak box that generated it.
    pub oak: String,
    /// The Steel box it was for.
    pub steel: String,
}

fn entry(k: &KeyRecord) -> KeyEntry {
    KeyEntry {
        domain: k.domain.to_string(),
        key_id: k.key_id.get(),
        status: k.status.to_string(),
        product_code: k.meter_id.as_ref().map(|m| m.product_code().to_string()),
        msn: k.meter_id.as_ref().map(|m| m.msn().to_string()),
        subdomain: k.registration.as_ref().map(|r| r.subdomain.to_string()),
        isn: k.registration.as_ref().map(|r| r.isn.to_string()),
        oak: k.oak_id.to_string(),
        steel: k.steel_id.to_string(),
    }
}

/// The keys of `domain`, or of every domain, in key-ID order.
pub async fn list_keys(
    store: &impl Store,
    domain: Option<&DomainId>,
) -> Result<Vec<KeyEntry>, HostError> {
    let domains: Vec<DomainId> = match domain {
        // A domain the archive does not hold is the caller's mistake, not an empty list.
        Some(d) if store.domain(d).await?.is_none() => {
            return Err(Usage::UnknownDomain(d.clone()).into());
        }
        Some(d) => vec![d.clone()],
        None => store.domains().await?.into_iter().map(|d| d.id).collect(),
    };
    let mut out = Vec::new();
    for d in domains {
        let mut after = None;
        loop {
            let page =
                store.keys(&KeyFilter { after, ..KeyFilter::domain(d.clone(), 1000) }).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key_id);
            out.extend(page.iter().map(entry));
        }
    }
    Ok(out)
}

/// One event of a key's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryEntry {
    /// Its position in the domain's chain.
    pub seq: u64,
    /// When.
    pub time: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// The type of the signed record that caused it, if any.
    pub record: Option<String>,
    /// The SHA-256 of that record's bytes as the archive keeps them (hex), which `postkey audit
    /// verify` checks against the bytes.
    pub record_digest: Option<String>,
    /// Details.
    pub note: Option<String>,
}

/// A key's status, six times and history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyDetail {
    /// The key.
    #[serde(flatten)]
    pub key: KeyEntry,
    /// The six times of protocol §6.6 (RFC 3339 UTC; the registration date as `YYYYMMDD`).
    pub times: serde_json::Value,
    /// Its history, oldest first.
    pub history: Vec<HistoryEntry>,
}

fn time(t: Option<Timestamp>) -> serde_json::Value {
    t.map(|t| serde_json::Value::String(t.to_rfc3339())).unwrap_or(serde_json::Value::Null)
}

/// One key.
pub async fn show_key(
    store: &impl Store,
    domain: &DomainId,
    key_id: KeyId,
) -> Result<KeyDetail, HostError> {
    if store.domain(domain).await?.is_none() {
        return Err(Usage::UnknownDomain(domain.clone()).into());
    }
    let k = store
        .key(domain, key_id)
        .await?
        .ok_or_else(|| crate::Usage::UnknownKey { domain: domain.clone(), key_id })?;
    detail(store, &k).await
}

/// Every key the archive holds for `meter`, whatever its domain or status, by domain and key
/// ID; a meter the archive holds no key of is the caller's mistake.
pub async fn show_meter_keys(
    store: &impl Store,
    meter: &MeterId,
) -> Result<Vec<KeyDetail>, HostError> {
    let keys = store.keys_of_meters(core::slice::from_ref(meter)).await?;
    if keys.is_empty() {
        return Err(Usage::NoKeysOfMeter(meter.clone()).into());
    }
    let mut out = Vec::with_capacity(keys.len());
    for k in &keys {
        out.push(detail(store, k).await?);
    }
    Ok(out)
}

/// A key's status, six times and history (each event with its actor and the digest of the
/// record that caused it).
async fn detail(store: &impl Store, k: &KeyRecord) -> Result<KeyDetail, HostError> {
    let t = &k.times;
    let times = serde_json::json!({
        "kms_request": time(t.kms_request),
        "psr_install": time(t.psr_install),
        "kms_install": time(t.kms_install),
        "meter_registration": t.meter_registration.map(|d| d.to_string()),
        "kms_key_registration": time(t.kms_key_registration),
        "obsolete": time(t.obsolete),
    });
    let history = store
        .key_history(&k.domain, k.key_id)
        .await?
        .into_iter()
        .map(|e| HistoryEntry {
            seq: e.seq,
            time: e.entry.time.to_rfc3339(),
            actor: e.entry.actor.to_string(),
            action: e.entry.action.encode(),
            record: e.entry.record.as_ref().map(|r| r.record_type.to_string()),
            record_digest: e.entry.record.as_ref().map(|r| r.digest.to_string()),
            note: e.entry.note.clone(),
        })
        .collect();
    Ok(KeyDetail { key: entry(k), times, history })
}
