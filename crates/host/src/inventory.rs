//! Read-only views of a home: its boxes and domains, from public files only (certificates,
//! process records, bundles' public parts). No box is enabled to answer them.

use postkey_wire::BoxId;

use crate::{Home, HostError};

/// A domain process of a box.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProcessSummary {
    /// The domain.
    pub domain: String,
    /// The sub-domains served (Brass).
    pub subdomains: Vec<String>,
}

/// One box, as the home knows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BoxReport {
    /// Its ID.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub box_type: String,
    /// The domains it runs processes of.
    pub domains: Vec<String>,
    /// Its processes.
    pub processes: Vec<ProcessSummary>,
    /// The highest state version recorded.
    pub state_version: Option<u64>,
    /// The fingerprint of its identity key.
    pub identity_fingerprint: Option<String>,
    /// The manufacturing box that certified it.
    pub certified_by: Option<String>,
    /// When.
    pub certified_at: Option<String>,
}

/// Every box of the home, in ID order.
pub fn boxes(home: &Home) -> Result<Vec<BoxReport>, HostError> {
    home.store()
        .list()
        .map_err(|e| HostError::boxed("host", e))?
        .into_iter()
        .map(|id| box_report(home, id))
        .collect()
}

/// One box.
pub fn box_report(home: &Home, id: BoxId) -> Result<BoxReport, HostError> {
    if !home.store().exists(id) {
        return Err(HostError::Usage(format!(
            "no box {id} in {}: see `postkey box list`",
            home.root().display()
        )));
    }
    let anchors = home.anchors()?;
    let cert = home.store().read_certificate(id, &anchors).ok();
    let processes: Vec<ProcessSummary> = home
        .processes(id)?
        .iter()
        .map(|p| ProcessSummary {
            domain: p.body().domain.to_string(),
            subdomains: p.body().subdomains.iter().map(ToString::to_string).collect(),
        })
        .collect();
    Ok(BoxReport {
        id: id.to_string(),
        box_type: id.box_type().name().into(),
        domains: processes.iter().map(|p| p.domain.clone()).collect(),
        processes,
        state_version: home.recorded_version(id)?.map(|v| v.0),
        identity_fingerprint: cert.as_ref().map(|c| c.body().identity.fingerprint().to_string()),
        certified_by: cert.as_ref().map(|c| c.body().issuer.to_string()),
        certified_at: cert.as_ref().map(|c| c.body().issued.to_rfc3339()),
    })
}

/// A domain, from the public part of its bundle.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DomainSummary {
    /// The domain.
    pub domain: String,
    /// Its kind.
    pub kind: String,
    /// Its sub-domains.
    pub subdomains: Vec<String>,
    /// Fingerprints of its public keys.
    pub oak_auth: String,
    /// Steel authentication key fingerprint.
    pub steel_auth: String,
    /// Brass authentication key fingerprint.
    pub brass_auth: String,
}

/// Every domain of the home.
pub fn domains(home: &Home) -> Result<Vec<DomainSummary>, HostError> {
    Ok(home
        .domains()?
        .iter()
        .map(|d| {
            let b = d.claimed_body();
            DomainSummary {
                domain: b.domain.to_string(),
                kind: b.kind.name().into(),
                subdomains: b.subdomains.iter().map(ToString::to_string).collect(),
                oak_auth: b.public.oak_auth.fingerprint().to_string(),
                steel_auth: b.public.steel_auth.fingerprint().to_string(),
                brass_auth: b.public.brass_auth.fingerprint().to_string(),
            }
        })
        .collect())
}
