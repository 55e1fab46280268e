//! Helpers for backend implementations: how values are written as SQL columns and read back.
//!
//! Both backends store the same column forms, so that a database can be moved between them and
//! the chain hashes, computed from the values, mean the same thing: IDs as their text, times as
//! Unix microseconds in a signed 64-bit integer, statuses and actions as their canonical text.
//! Reading a column that does not parse is [`StoreError::Corrupt`], never a panic.

use postkey_wire::{
    BoxId, Date, DomainId, Isn, KeyId, MeterId, Role, Sender, StateVersion, SubdomainId, Timestamp,
    UNINITIALIZED_BOX,
};

use crate::{
    Action, Digest, KeyStatus, NewDomainProcess, Registration, Sighting, StoreError, Subject,
};

/// A `u64` as a SQL `BIGINT`; values past `i64::MAX` cannot be stored and are refused.
pub fn to_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::Invalid("number too large for the archive"))
}

/// A stored `BIGINT` as the `u64` it was written from.
pub fn to_u64(n: i64, what: &'static str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(what))
}

/// A time as stored.
pub fn time_to_sql(t: Timestamp) -> Result<i64, StoreError> {
    to_i64(t.unix_micros())
}

/// A stored time.
pub fn time_from_sql(n: i64) -> Result<Timestamp, StoreError> {
    to_u64(n, "time").map(Timestamp::from_unix_micros)
}

/// A stored key ID.
pub fn key_id_from_sql(n: i64) -> Result<KeyId, StoreError> {
    KeyId::new(to_u64(n, "key ID")?).map_err(|_| StoreError::Corrupt("key ID"))
}

/// A stored state version.
pub fn state_version_from_sql(n: i64) -> Result<StateVersion, StoreError> {
    to_u64(n, "state version").map(StateVersion)
}

/// A row of `key_ids_seen`: a stored domain and the highest key ID of it.
pub fn domain_key_from_sql(domain: &str, key: i64) -> Result<(DomainId, KeyId), StoreError> {
    let domain = parse(domain, "domain", DomainId::parse)?;
    let key = KeyId::new(to_u64(key, "key ID")?).map_err(|_| StoreError::Corrupt("key ID"))?;
    Ok((domain, key))
}

/// Parses a stored text column with `parse`, or reports it corrupt.
pub fn parse<T, E>(
    s: &str,
    what: &'static str,
    parse: fn(&str) -> Result<T, E>,
) -> Result<T, StoreError> {
    parse(s).map_err(|_| StoreError::Corrupt(what))
}

/// A stored domain ID.
pub fn domain_from_sql(s: &str) -> Result<DomainId, StoreError> {
    parse(s, "domain ID", DomainId::parse)
}

/// A stored sub-domain ID.
pub fn subdomain_from_sql(s: &str) -> Result<SubdomainId, StoreError> {
    parse(s, "sub-domain", SubdomainId::parse)
}

/// A stored box ID.
pub fn box_id_from_sql(s: &str) -> Result<BoxId, StoreError> {
    parse(s, "box ID", BoxId::parse)
}

/// A stored meter ID.
pub fn meter_id_from_sql(s: &str) -> Result<MeterId, StoreError> {
    parse(s, "meter ID", MeterId::parse)
}

/// A stored date.
pub fn date_from_sql(s: &str) -> Result<Date, StoreError> {
    parse(s, "date", Date::parse)
}

/// A stored registration: sub-domain and ISN are both present or both absent.
pub fn registration_from_sql(
    subdomain: Option<&str>,
    isn: Option<&str>,
) -> Result<Option<Registration>, StoreError> {
    match (subdomain, isn) {
        (None, None) => Ok(None),
        (Some(s), Some(i)) => Ok(Some(Registration {
            subdomain: subdomain_from_sql(s)?,
            isn: parse(i, "ISN", Isn::parse)?,
        })),
        _ => Err(StoreError::Corrupt("registration")),
    }
}

/// A stored status.
pub fn status_from_sql(s: &str) -> Result<KeyStatus, StoreError> {
    KeyStatus::parse(s).ok_or(StoreError::Corrupt("key status"))
}

/// A stored action.
pub fn action_from_sql(s: &str) -> Result<Action, StoreError> {
    Action::decode(s).ok_or(StoreError::Corrupt("event action"))
}

/// A stored digest.
pub fn digest_from_sql(b: &[u8]) -> Result<Digest, StoreError> {
    Digest::from_slice(b).ok_or(StoreError::Corrupt("digest"))
}

/// A stored actor: the text `Sender` displays as.
pub fn sender_from_sql(s: &str) -> Result<Sender, StoreError> {
    const ROLES: [Role; 5] = [Role::Kmc, Role::Kdc, Role::Psr, Role::DataCapture, Role::Auditor];
    if s == UNINITIALIZED_BOX {
        return Ok(Sender::BlankBox);
    }
    if let Some(m) = s.strip_prefix("METER:") {
        return meter_id_from_sql(m).map(Sender::Meter);
    }
    if let Some(role) = ROLES.into_iter().find(|r| r.name() == s) {
        return Ok(Sender::Role(role));
    }
    BoxId::parse(s).map(Sender::Box).map_err(|_| StoreError::Corrupt("actor"))
}

/// The stored form of a domain process's sub-domains: space-separated IDs.
pub fn subdomains_to_sql(subdomains: &[SubdomainId]) -> String {
    subdomains.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}

/// Sub-domains as [`subdomains_to_sql`] wrote them.
pub fn subdomains_from_sql(s: &str) -> Result<Vec<SubdomainId>, StoreError> {
    s.split_whitespace().map(subdomain_from_sql).collect()
}

/// The checks on a domain process that need no stored data: its sub-domains are of its domain.
pub fn check_domain_process(p: &NewDomainProcess) -> Result<(), StoreError> {
    if p.subdomains.iter().any(|s| s.domain() != &p.domain) {
        return Err(StoreError::Mismatch("sub-domain of another domain than the process's"));
    }
    Ok(())
}

/// The error for a key that does not exist.
pub fn no_key(domain: &DomainId, key_id: KeyId) -> StoreError {
    StoreError::NotFound(Subject::Key { domain: domain.clone(), key_id })
}

/// Wraps the error of change `index` of a batch of `len`; a batch of one reports it bare.
pub fn in_batch(index: usize, len: usize, error: StoreError) -> StoreError {
    if len == 1 { error } else { StoreError::Batch { index, error: Box::new(error) } }
}

/// What [`crate::Store::record_sightings`] does with a batch, given the first sightings the
/// archive holds of its (meter, count) pairs: the sightings to add (the first entry of each
/// pair the archive lacks), and each entry's answer (`None` for those added; else the first
/// sighting, the archive's or the batch's own).
pub fn plan_sightings(
    batch: &[Sighting],
    held: &std::collections::HashMap<(MeterId, u32), Sighting>,
) -> (Vec<Sighting>, Vec<Option<Sighting>>) {
    let mut first: std::collections::HashMap<(&MeterId, u32), &Sighting> =
        std::collections::HashMap::new();
    let mut added = Vec::new();
    let answers = batch
        .iter()
        .map(|s| {
            if let Some(h) = held.get(&(s.meter.clone(), s.count)) {
                return Some(h.clone());
            }
            match first.entry((&s.meter, s.count)) {
                std::collections::hash_map::Entry::Occupied(e) => Some((*e.get()).clone()),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(s);
                    added.push(s.clone());
                    None
                }
            }
        })
        .collect();
    (added, answers)
}

/// A stored sighting from its columns (meter, piece count, first seen, site), as both backends
/// store them.
pub fn sighting_from_sql(
    meter: &str,
    count: i64,
    time: i64,
    site: &str,
) -> Result<Sighting, StoreError> {
    Ok(Sighting {
        meter: parse(meter, "meter ID", MeterId::parse)?,
        count: u32::try_from(count).map_err(|_| StoreError::Corrupt("piece count"))?,
        time: time_from_sql(time)?,
        site: parse(site, "site", postkey_wire::Site::parse)?,
    })
}
