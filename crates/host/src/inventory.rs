//! Read-only views of a home: its boxes and domains, from public files only (certificates,
//! process records, bundles' public parts). No box is enabled to answer them.

use postkey_crypto::Fingerprint;
use postkey_wire::{BoxId, BoxType, DomainId, DomainKind, SubdomainId};

use crate::{Home, HostError, ser};

/// A domain process of a box.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessSummary {
    /// The domain.
    #[serde(serialize_with = "ser::display")]
    pub domain: DomainId,
    /// The sub-domains served (Brass).
    #[serde(serialize_with = "ser::display_all")]
    pub subdomains: Vec<SubdomainId>,
}

/// One box, as the home knows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BoxReport {
    /// Its ID.
    #[serde(serialize_with = "ser::display")]
    pub id: BoxId,
    /// Its type.
    #[serde(rename = "type", serialize_with = "ser::display")]
    pub box_type: BoxType,
    /// The domains it runs processes of.
    #[serde(serialize_with = "ser::display_all")]
    pub domains: Vec<DomainId>,
    /// Its processes.
    pub processes: Vec<ProcessSummary>,
    /// The highest state version recorded.
    pub state_version: Option<u64>,
    /// The fingerprint of its identity key.
    #[serde(serialize_with = "ser::display_opt")]
    pub identity_fingerprint: Option<Fingerprint>,
    /// The manufacturing box that certified it.
    #[serde(serialize_with = "ser::display_opt")]
    pub certified_by: Option<BoxId>,
    /// When, RFC 3339 UTC.
    pub certified_at: Option<String>,
}

/// Every box of the home, in ID order.
pub fn boxes(home: &Home) -> Result<Vec<BoxReport>, HostError> {
    home.store().list()?.into_iter().map(|id| box_report(home, id)).collect()
}

/// One box.
pub fn box_report(home: &Home, id: BoxId) -> Result<BoxReport, HostError> {
    if !home.store().exists(id) {
        return Err(crate::Usage::UnknownBox(id).into());
    }
    let anchors = home.anchors()?;
    let cert = home.store().read_certificate(id, &anchors).ok();
    let processes: Vec<ProcessSummary> = home
        .processes(id)?
        .iter()
        .map(|p| ProcessSummary {
            domain: p.body().domain.clone(),
            subdomains: p.body().subdomains.clone(),
        })
        .collect();
    Ok(BoxReport {
        id,
        box_type: id.box_type(),
        domains: processes.iter().map(|p| p.domain.clone()).collect(),
        processes,
        state_version: home.recorded_version(id)?.map(|v| v.0),
        identity_fingerprint: cert.as_ref().map(|c| c.body().identity.fingerprint()),
        certified_by: cert.as_ref().map(|c| c.body().issuer),
        certified_at: cert.as_ref().map(|c| c.body().issued.to_rfc3339()),
    })
}

/// A domain, from the public part of its bundle.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DomainSummary {
    /// The domain.
    #[serde(serialize_with = "ser::display")]
    pub domain: DomainId,
    /// Its kind.
    #[serde(serialize_with = "kind_name")]
    pub kind: DomainKind,
    /// Its sub-domains.
    #[serde(serialize_with = "ser::display_all")]
    pub subdomains: Vec<SubdomainId>,
    /// Oak authentication key fingerprint.
    #[serde(serialize_with = "ser::display")]
    pub oak_auth: Fingerprint,
    /// Steel authentication key fingerprint.
    #[serde(serialize_with = "ser::display")]
    pub steel_auth: Fingerprint,
    /// Brass authentication key fingerprint.
    #[serde(serialize_with = "ser::display")]
    pub brass_auth: Fingerprint,
}

fn kind_name<S: serde::Serializer>(kind: &DomainKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.name())
}

/// Every domain of the home.
pub fn domains(home: &Home) -> Result<Vec<DomainSummary>, HostError> {
    Ok(home
        .domains()?
        .iter()
        .map(|d| {
            let b = d.claimed_body();
            DomainSummary {
                domain: b.domain.clone(),
                kind: b.kind,
                subdomains: b.subdomains.clone(),
                oak_auth: b.public.oak_auth.fingerprint(),
                steel_auth: b.public.steel_auth.fingerprint(),
                brass_auth: b.public.brass_auth.fingerprint(),
            }
        })
        .collect())
}
