//! The ceremonies of SPEC §7.2, hosted: each drives the sans-IO boxes, writes what they make
//! (sealed states, shares, bundles, process records) durably, and ends with a transcript signed
//! by the manufacturing box that conducted it.

use std::path::{Path, PathBuf};

use postkey_box::{BlankBox, SharePolicy, first_manufacturing_box};
use postkey_secrets::rng::{BoxRng, OsEntropy};
use postkey_wire::{
    BoxId, BoxType, DomainId, DomainKind, ShareRef, ShareSetId, SubdomainId, Transcript, Unverified,
};

use crate::{Home, HostError, Session, clock};

/// What `postkey init` made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InitReport {
    /// `M00000001`.
    pub id: String,
    /// The trust-anchor fingerprint operators confirm at every later initialization.
    pub anchors_fingerprint: String,
    /// The share files written to the media directory.
    pub share_files: Vec<String>,
    /// The transcript file.
    pub transcript: String,
}

fn generator(label: &str) -> Result<BoxRng, HostError> {
    let personalization = format!("postkey {label} {}", clock::now().unix_micros());
    BoxRng::instantiate(OsEntropy, personalization.as_bytes())
        .map_err(|e| HostError::boxed("host", postkey_box::BoxError::from(e)))
}

/// The first ceremony (SPEC §7.2 item 2) in `home`, its shares written to `media`.
pub fn init(home: &Home, media: &Path) -> Result<InitReport, HostError> {
    let now = clock::now();
    if home.is_initialized() {
        let e = postkey_box::BoxError::FirstCeremonyDone;
        let _ = home.log_error("host", e.response_code(), &e.to_string(), now);
        return Err(HostError::boxed("host", e));
    }
    let policy = SharePolicy::default_for(BoxType::Manufacturing);
    let mut f = first_manufacturing_box(generator("M00000001")?, policy, policy, now)
        .map_err(|e| HostError::boxed(BoxId::FIRST_MANUFACTURING, e))?;
    let id = f.secure_box.id();
    home.store().persist(&mut f.secure_box).map_err(|e| HostError::boxed(id, e))?;
    f.secure_box.take_dirty();
    home.record_version(id, f.secure_box.version())?;
    home.write_anchors(f.secure_box.anchors())?;
    let dks = f
        .secure_box
        .manufacturing()
        .and_then(|m| m.domain_key_set_public())
        .map_err(|e| HostError::boxed(id, e))?;
    home.write_domain_key_set_key(&dks.authentication)?;
    let mut share_files = Vec::new();
    for share in f.combination_shares.iter().chain(&f.domain_key_set_shares) {
        share_files.push(home.write_share(media, share)?.display().to_string());
    }
    home.write_bundle(&f.admin_bundle)?;
    let fingerprint = f.secure_box.anchors().fingerprint();
    let transcript = Transcript {
        ceremony: "first-manufacturing-box".into(),
        conducted_by: id,
        subject: None,
        domain: Some(DomainId::admin()),
        shares_presented: Vec::new(),
        anchors: fingerprint,
        shares_written: vec![set_of(&f.combination_shares), set_of(&f.domain_key_set_shares)],
        outcome: format!(
            "{id} initialized; trust anchors made; operation combination and Domain Key Set split \
             {}-of-{}; ADMIN domain created",
            policy.threshold, policy.count
        ),
    };
    let signed = f
        .secure_box
        .manufacturing()
        .and_then(|mut m| m.sign_transcript(transcript, now))
        .map_err(|e| HostError::boxed(id, e))?;
    let transcript = home.write_transcript(&signed)?;
    Ok(InitReport {
        id: id.to_string(),
        anchors_fingerprint: fingerprint.to_string(),
        share_files,
        transcript: transcript.display().to_string(),
    })
}

fn set_of(shares: &[postkey_wire::Verified<postkey_secrets::shares::ShareBody>]) -> ShareSetId {
    shares.first().map(|s| s.body().set).unwrap_or(ShareSetId([0; 16]))
}

fn sign_transcript(
    session: &mut Session,
    m: BoxId,
    transcript: Transcript,
) -> Result<PathBuf, HostError> {
    let now = clock::now();
    let signed = session.run(m, |b| b.manufacturing()?.sign_transcript(transcript, now))?;
    session.home().write_transcript(&signed)
}

/// What creating a domain made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DomainReport {
    /// The domain.
    pub domain: String,
    /// Its kind.
    pub kind: String,
    /// Its sub-domains.
    pub subdomains: Vec<String>,
    /// The manufacturing boxes that know it now.
    pub manufacturing_boxes: Vec<String>,
}

/// Creates a domain in manufacturing box `m` (enabled in `session`) and copies it to every other
/// manufacturing box enabled in the session (SPEC §7.2 item 5).
pub fn create_domain(
    session: &mut Session,
    m: BoxId,
    domain: DomainId,
    kind: DomainKind,
    subdomains: Vec<SubdomainId>,
) -> Result<DomainReport, HostError> {
    let now = clock::now();
    let bundle = session.run(m, |b| {
        b.manufacturing()?.create_domain(domain.clone(), kind, subdomains.clone(), now)
    })?;
    session.home().write_bundle(&bundle)?;
    let mut boxes = vec![m.to_string()];
    let others: Vec<BoxId> = session
        .enabled()
        .filter(|id| *id != m && id.box_type() == BoxType::Manufacturing)
        .collect();
    for other in others {
        session.run(other, |b| b.manufacturing()?.adopt_domain(bundle.as_bytes()))?;
        boxes.push(other.to_string());
    }
    let presented = session.presented(m);
    sign_transcript(
        session,
        m,
        Transcript {
            ceremony: "create-domain".into(),
            conducted_by: m,
            subject: None,
            domain: Some(domain.clone()),
            shares_presented: presented,
            anchors: session.anchors().fingerprint(),
            shares_written: Vec::new(),
            outcome: format!(
                "domain {domain} ({}) created with {} sub-domains",
                kind.name(),
                subdomains.len()
            ),
        },
    )?;
    Ok(DomainReport {
        domain: domain.to_string(),
        kind: kind.name().into(),
        subdomains: subdomains.iter().map(ToString::to_string).collect(),
        manufacturing_boxes: boxes,
    })
}

/// What manufacturing a box made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ManufactureReport {
    /// The new box.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub box_type: String,
    /// Its share files.
    pub share_files: Vec<String>,
    /// The anchors fingerprint the new box holds.
    pub anchors_fingerprint: String,
}

/// Manufactures a box of `box_type` with manufacturing box `m` (SPEC §7.2 item 3); the new box
/// stays enabled in the session. A new manufacturing box also receives its kit and adopts every
/// domain of the home.
pub fn manufacture(
    session: &mut Session,
    m: BoxId,
    box_type: BoxType,
    media: &Path,
    policy: SharePolicy,
    confirmed: Option<&str>,
) -> Result<ManufactureReport, HostError> {
    let now = clock::now();
    let blank = BlankBox::new(session.anchors().clone(), generator("blank box")?)
        .map_err(|e| session.refuse("X00000000", e))?;
    let fingerprint = blank.anchors().fingerprint();
    // SPEC §7.2 item 1: the operators confirm the fingerprint of the anchors the blank box holds.
    if let Some(confirmed) = confirmed {
        let normalize =
            |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
        if normalize(confirmed) != normalize(&fingerprint.to_string()) {
            let e = postkey_box::BoxError::Wire(postkey_wire::WireError::InvalidField {
                field: "trust anchors",
                reason: "the blank box holds anchors of another fingerprint than the one confirmed",
            });
            return Err(session.refuse("X00000000", e));
        }
    }
    let offer = blank.offer(now);
    let set_id = session.run(m, |b| b.manufacturing()?.issue_set_id(&offer, box_type, now))?;
    let mut init = blank
        .accept(set_id.as_bytes(), policy, now)
        .map_err(|r| session.refuse("X00000000", r.error))?;
    let id = init.secure_box.id();
    // The sealed state goes to disk before its shares exist anywhere: a crash in between leaves
    // an unusable box, never shares of a state that was lost.
    let mut share_files = Vec::new();
    let keys = init.keys.as_bytes().to_vec();
    let shares = std::mem::take(&mut init.shares);
    session.adopt(init.secure_box, Vec::new())?;
    for share in &shares {
        share_files.push(session.home().write_share(media, share)?.display().to_string());
    }
    let cert = session.run(m, |b| b.manufacturing()?.certify(&keys, now))?;
    session.run(id, |b| b.install_certificate(cert.as_bytes()))?;
    if box_type == BoxType::Manufacturing {
        let kit = session.run(m, |b| b.manufacturing()?.issue_kit(cert.as_bytes(), now))?;
        session.run(id, |b| b.install_kit(kit.as_bytes()))?;
        let bundles: Vec<Vec<u8>> = session
            .home()
            .domains()?
            .iter()
            .map(|d| session.home().bundle(&d.header().domain))
            .collect::<Result<_, _>>()?;
        for bundle in bundles {
            session.run(id, |b| b.manufacturing()?.adopt_domain(&bundle).map(|_| ()))?;
        }
    }
    let presented = session.presented(m);
    sign_transcript(
        session,
        m,
        Transcript {
            ceremony: "manufacture-box".into(),
            conducted_by: m,
            subject: Some(id),
            domain: None,
            shares_presented: presented,
            anchors: fingerprint,
            shares_written: shares.first().map(|s| vec![s.body().set]).unwrap_or_default(),
            outcome: format!(
                "{id} initialized and certified; operation combination split {}-of-{}; anchors \
                 fingerprint {} by the operators",
                policy.threshold,
                policy.count,
                if confirmed.is_some() { "confirmed" } else { "shown" }
            ),
        },
    )?;
    Ok(ManufactureReport {
        id: id.to_string(),
        box_type: box_type.name().into(),
        share_files,
        anchors_fingerprint: fingerprint.to_string(),
    })
}

/// Makes a process of `domain` in box `target` (SPEC §7.2 item 4), both enabled in `session`;
/// a Brass process serves `subdomains`.
pub fn install_process(
    session: &mut Session,
    m: BoxId,
    target: BoxId,
    domain: &DomainId,
    subdomains: Vec<SubdomainId>,
) -> Result<(), HostError> {
    let now = clock::now();
    let bundle = session.home().bundle(domain)?;
    let cert = session
        .home()
        .store()
        .read_certificate(target, session.anchors())
        .map_err(|e| session.refuse(target, e))?;
    let out = session.run(m, |b| {
        b.manufacturing()?.deliver(&bundle, cert.as_bytes(), subdomains.clone(), now)
    })?;
    session.run(target, |b| b.install_process(out.delivery.as_bytes()).map(|_| ()))?;
    session.home().write_process(&out.record)?;
    let presented: Vec<ShareRef> =
        session.presented(m).into_iter().chain(session.presented(target)).collect();
    sign_transcript(
        session,
        m,
        Transcript {
            ceremony: "install-process".into(),
            conducted_by: m,
            subject: Some(target),
            domain: Some(domain.clone()),
            shares_presented: presented,
            anchors: session.anchors().fingerprint(),
            shares_written: Vec::new(),
            outcome: format!(
                "{} process of {domain} installed in {target}{}",
                target.box_type().name(),
                if subdomains.is_empty() {
                    String::new()
                } else {
                    format!(
                        " serving {}",
                        subdomains.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    )
                }
            ),
        },
    )?;
    Ok(())
}

/// Checks one share file alone (SPEC §7.1): its signature under the owner's certified identity
/// key and its owner. Returns what it says.
pub fn check_share(home: &Home, bytes: &[u8]) -> Result<ShareReport, HostError> {
    let claimed = Unverified::<postkey_secrets::shares::ShareBody>::from_bytes(bytes)?;
    let owner = claimed.claimed_body().owner;
    let anchors = home.anchors()?;
    let cert =
        home.store().read_certificate(owner, &anchors).map_err(|e| HostError::boxed(owner, e))?;
    let share = postkey_secrets::shares::check_share(bytes, &cert.body().identity, owner)
        .map_err(|e| HostError::boxed(owner, postkey_box::BoxError::from(e)))?;
    let b = share.body();
    Ok(ShareReport {
        id: owner.to_string(),
        purpose: b.purpose.name().into(),
        set: b.set.to_string(),
        index: b.index,
        threshold: b.threshold,
        count: b.count,
        signed_by: share.header().sender.to_string(),
        valid: true,
    })
}

/// What a share file says, once checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShareReport {
    /// The box it belongs to.
    pub id: String,
    /// What it protects.
    pub purpose: String,
    /// Its share set.
    pub set: String,
    /// Its index.
    pub index: u8,
    /// k.
    pub threshold: u8,
    /// n.
    pub count: u8,
    /// The box that signed it.
    pub signed_by: String,
    /// Whether its signature and owner checked out.
    pub valid: bool,
}
