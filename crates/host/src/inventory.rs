//! Read-only views of an installation: its boxes and domains, from the archive's public records
//! (certificates, process records, bundles' public parts), each checked against the trust
//! anchors or the certified Domain Key Set before it is shown. No box is enabled to answer them.

use postkey_archive::Store;
use postkey_crypto::Fingerprint;
use postkey_wire::{BoxId, BoxType, DomainId, DomainKind, SubdomainId};

use crate::archive::{self, Trust};
use crate::{HostError, ser};

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
    pub state_version: u64,
    /// The fingerprint of its identity key.
    #[serde(serialize_with = "ser::display")]
    pub identity_fingerprint: Fingerprint,
    /// The manufacturing box that certified it.
    #[serde(serialize_with = "ser::display")]
    pub certified_by: BoxId,
    /// When, RFC 3339 UTC.
    pub certified_at: String,
}

/// Every box of the installation, in ID order.
pub async fn boxes(store: &impl Store, trust: &Trust) -> Result<Vec<BoxReport>, HostError> {
    let mut out = Vec::new();
    for b in store.boxes(None).await? {
        out.push(box_report(store, trust, b.id).await?);
    }
    Ok(out)
}

/// One box.
pub async fn box_report(
    store: &impl Store,
    trust: &Trust,
    id: BoxId,
) -> Result<BoxReport, HostError> {
    let cert = archive::certificate(store, trust, id).await?;
    let processes: Vec<ProcessSummary> = archive::processes(store, trust, id)
        .await?
        .iter()
        .map(|p| ProcessSummary {
            domain: p.body().domain.clone(),
            subdomains: p.body().subdomains.clone(),
        })
        .collect();
    let c = cert.body();
    Ok(BoxReport {
        id,
        box_type: id.box_type(),
        domains: processes.iter().map(|p| p.domain.clone()).collect(),
        processes,
        state_version: store.highest_state_version(id).await?.0,
        identity_fingerprint: c.identity.fingerprint(),
        certified_by: c.issuer,
        certified_at: c.issued.to_rfc3339(),
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

/// Every domain of the installation.
pub async fn domains(store: &impl Store, trust: &Trust) -> Result<Vec<DomainSummary>, HostError> {
    let mut out = Vec::new();
    for d in store.domains().await? {
        let bundle = archive::bundle(store, trust, &d.id).await?;
        let b = bundle.body();
        out.push(DomainSummary {
            domain: b.domain.clone(),
            kind: b.kind,
            subdomains: b.subdomains.clone(),
            oak_auth: b.public.oak_auth.fingerprint(),
            steel_auth: b.public.steel_auth.fingerprint(),
            brass_auth: b.public.brass_auth.fingerprint(),
        });
    }
    Ok(out)
}
