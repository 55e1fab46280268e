//! The ceremonies of SPEC §7.2, hosted: each drives the boxes through typed commands (the same
//! frames a remote box link carries), checks what they answer against the trust anchors or the
//! Domain Key Set, writes it durably (sealed states, shares, bundles, process records), and ends
//! with a transcript signed by the manufacturing box that conducted it.

use std::path::{Path, PathBuf};

use postkey_box::{BlankBox, SharePolicy, first_manufacturing_box};
use postkey_crypto::Fingerprint;
use postkey_secrets::rng::{BoxRng, OsEntropy};
use postkey_wire::command::{
    AdoptDomain, Certify, CreateDomain, Deliver, InstallCertificate, InstallKit, InstallProcess,
    IssueKit, IssueSetId, SignTranscript,
};
use postkey_wire::{
    Body, BoxId, BoxType, DomainBundle, DomainId, DomainKind, Refusal, ShareRef, ShareSetId,
    SubdomainId, Transcript, TrustAnchors, Unverified, Verified,
};

use crate::{Home, HostError, Session, Usage, clock, ser};

/// What `postkey init` made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InitReport {
    /// `M00000001`.
    #[serde(serialize_with = "ser::display")]
    pub id: BoxId,
    /// The trust-anchor fingerprint operators confirm at every later initialization.
    #[serde(serialize_with = "ser::display")]
    pub anchors_fingerprint: Fingerprint,
    /// The share files written to the media directory.
    pub share_files: Vec<PathBuf>,
    /// The transcript file.
    pub transcript: PathBuf,
}

fn generator(label: &str) -> Result<BoxRng, HostError> {
    let personalization = format!("postkey {label} {}", clock::now().unix_micros());
    BoxRng::instantiate(OsEntropy, personalization.as_bytes())
        .map_err(|e| HostError::Entropy(e.to_string()))
}

/// A record a box answered that does not verify under the key it must carry: the box's fault.
fn unverified_answer(
    component: impl ToString,
    what: &str,
    e: &postkey_wire::WireError,
) -> HostError {
    HostError::refused(component, Refusal::new(e.response_code(), format!("{what}: {e}")))
}

/// Checks a record a box answered with `key`, logging a failure.
fn check<B: Body>(
    session: &Session,
    id: BoxId,
    what: &str,
    record: Unverified<B>,
    key: &postkey_crypto::VerifyingKey,
) -> Result<Verified<B>, HostError> {
    record.verify(key).map_err(|e| session.logged(id, unverified_answer(id, what, &e)))
}

/// The first ceremony (SPEC §7.2 item 2) in `home`, its shares written to `media`.
pub fn init(home: &Home, media: &Path) -> Result<InitReport, HostError> {
    let now = clock::now();
    if home.is_initialized() {
        let e = HostError::from(Usage::AlreadyInitialized(home.root().to_path_buf()));
        let _ = home.log_error("host", e.response_code(), &e.to_string(), now);
        return Err(e);
    }
    let policy = SharePolicy::default_for(BoxType::Manufacturing);
    let f = first_manufacturing_box(generator("M00000001")?, policy, policy, now)
        .map_err(|e| HostError::refused(BoxId::FIRST_MANUFACTURING, e.to_refusal()))?;
    let id = f.secure_box.id();
    let anchors = f.secure_box.anchors().clone();
    let dks = f
        .secure_box
        .domain_key_set_public()
        .ok_or_else(|| HostError::refused(id, postkey_box::BoxError::AwaitingKit.to_refusal()))?;
    let mut session = Session::with_anchors(home, anchors.clone());
    // The sealed state first, then what it vouches for.
    session.adopt(f.secure_box, Vec::new())?;
    home.write_anchors(&anchors)?;
    home.write_domain_key_set_key(&dks.authentication)?;
    let mut share_files = Vec::new();
    for share in f.combination_shares.iter().chain(&f.domain_key_set_shares) {
        share_files.push(home.write_share(media, share)?);
    }
    home.write_bundle(&f.admin_bundle)?;
    let fingerprint = anchors.fingerprint();
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
    let transcript = sign_transcript(&session, id, transcript)?;
    session.lock();
    Ok(InitReport { id, anchors_fingerprint: fingerprint, share_files, transcript })
}

fn set_of(shares: &[Verified<postkey_secrets::shares::ShareBody>]) -> ShareSetId {
    shares.first().map(|s| s.body().set).unwrap_or(ShareSetId([0; 16]))
}

/// Has manufacturing box `m` sign `transcript`, checks the signature with its certified
/// identity key, and writes it to the home.
fn sign_transcript(
    session: &Session,
    m: BoxId,
    transcript: Transcript,
) -> Result<PathBuf, HostError> {
    let signed = session.call_one(m, SignTranscript { transcript })?;
    let cert = session.home().certificate(m, session.anchors())?;
    let signed = check(session, m, "transcript", signed, &cert.body().identity)?;
    session.home().write_transcript(&signed)
}

/// What creating a domain made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DomainReport {
    /// The domain.
    #[serde(serialize_with = "ser::display")]
    pub domain: DomainId,
    /// Its kind.
    pub kind: &'static str,
    /// Its sub-domains.
    #[serde(serialize_with = "ser::display_all")]
    pub subdomains: Vec<SubdomainId>,
    /// The manufacturing boxes that know it now.
    #[serde(serialize_with = "ser::display_all")]
    pub manufacturing_boxes: Vec<BoxId>,
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
    let item = CreateDomain { domain: domain.clone(), kind, subdomains: subdomains.clone() };
    let bundle = session.call_one(m, item)?;
    let dks = session.home().domain_key_set_key()?;
    let bundle: Verified<DomainBundle> = check(session, m, "domain bundle", bundle, &dks)?;
    session.home().write_bundle(&bundle)?;
    let mut boxes = vec![m];
    let others: Vec<BoxId> = session
        .enabled()
        .filter(|id| *id != m && id.box_type() == BoxType::Manufacturing)
        .collect();
    for other in others {
        session.call_one(other, AdoptDomain { bundle: bundle.clone().into() })?;
        boxes.push(other);
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
    Ok(DomainReport { domain, kind: kind.name(), subdomains, manufacturing_boxes: boxes })
}

/// What manufacturing a box made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ManufactureReport {
    /// The new box.
    #[serde(serialize_with = "ser::display")]
    pub id: BoxId,
    /// Its type.
    #[serde(rename = "type", serialize_with = "ser::display")]
    pub box_type: BoxType,
    /// Its share files.
    pub share_files: Vec<PathBuf>,
    /// The anchors fingerprint the new box holds.
    #[serde(serialize_with = "ser::display")]
    pub anchors_fingerprint: Fingerprint,
}

fn confirm_fingerprint(
    session: &Session,
    anchors: &TrustAnchors,
    confirmed: Option<&str>,
) -> Result<(), HostError> {
    let Some(confirmed) = confirmed else { return Ok(()) };
    let normalize =
        |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
    if normalize(confirmed) == normalize(&anchors.fingerprint().to_string()) {
        return Ok(());
    }
    let e = postkey_box::BoxError::Wire(postkey_wire::WireError::InvalidField {
        field: "trust anchors",
        reason: "the blank box holds anchors of another fingerprint than the one confirmed",
    });
    let refusal = e.to_refusal();
    session.log(postkey_wire::UNINITIALIZED_BOX, &refusal);
    Err(HostError::refused(postkey_wire::UNINITIALIZED_BOX, refusal))
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
    // Checked before anything is asked of the manufacturing box: a refused command uses up no ID.
    if !policy.is_valid() {
        return Err(Usage::InvalidArgument(format!(
            "shares {}-of-{}: a box's shares must be k-of-n with 2 ≤ k ≤ n ≤ {}",
            policy.threshold,
            policy.count,
            postkey_secrets::shares::MAX_SHARES
        ))
        .into());
    }
    let now = clock::now();
    let blank = BlankBox::new(session.anchors().clone(), generator("blank box")?).map_err(|e| {
        let refusal = e.to_refusal();
        session.log(postkey_wire::UNINITIALIZED_BOX, &refusal);
        HostError::refused(postkey_wire::UNINITIALIZED_BOX, refusal)
    })?;
    let fingerprint = blank.anchors().fingerprint();
    // SPEC §7.2 item 1: the operators confirm the fingerprint of the anchors the blank box holds.
    confirm_fingerprint(session, blank.anchors(), confirmed)?;
    let offer = blank.offer(now);
    let set_id = session.call_one(m, IssueSetId { offer, box_type })?;
    let mut init = blank.accept(set_id, policy, now).map_err(|r| {
        let refusal = r.error.to_refusal();
        session.log(postkey_wire::UNINITIALIZED_BOX, &refusal);
        HostError::refused(postkey_wire::UNINITIALIZED_BOX, refusal)
    })?;
    let id = init.secure_box.id();
    // The sealed state goes to disk before its shares exist anywhere: a crash in between leaves
    // an unusable box, never shares of a state that was lost.
    let mut share_files = Vec::new();
    let keys = init.keys.clone();
    let shares = std::mem::take(&mut init.shares);
    session.adopt(init.secure_box, Vec::new())?;
    for share in &shares {
        share_files.push(session.home().write_share(media, share)?);
    }
    let cert = session.call_one(m, Certify { keys: keys.into() })?;
    let anchor = *session.anchors().for_type(box_type);
    let cert = check(session, m, "certificate", cert, &anchor)?;
    session.call_one(id, InstallCertificate { certificate: cert.clone().into() })?;
    if box_type == BoxType::Manufacturing {
        let kit = session.call_one(m, IssueKit { recipient: cert.into() })?;
        session.call_one(id, InstallKit { kit })?;
        for bundle in session.home().domains()? {
            session.call_one(id, AdoptDomain { bundle })?;
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
    Ok(ManufactureReport { id, box_type, share_files, anchors_fingerprint: fingerprint })
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
    let path = session.home().bundle_path(domain);
    let bundle = Unverified::<DomainBundle>::from_bytes(&session.home().bundle(domain)?)
        .map_err(|e| HostError::corrupt(&path, e))?;
    let cert = session.home().certificate(target, session.anchors())?;
    let item = Deliver { bundle, recipient: cert.into(), subdomains: subdomains.clone() };
    let out = session.call_one(m, item)?;
    let anchor = *session.anchors().for_type(target.box_type());
    let record = check(session, m, "process record", out.record, &anchor)?;
    session.call_one(target, InstallProcess { delivery: out.delivery })?;
    session.home().write_process(&record)?;
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
    let cert = home.certificate(owner, &anchors)?;
    let share = postkey_secrets::shares::check_share(bytes, &cert.body().identity, owner)
        .map_err(|e| HostError::refused(owner, postkey_box::BoxError::from(e).to_refusal()))?;
    let b = share.body();
    Ok(ShareReport {
        id: owner,
        purpose: b.purpose.name(),
        set: b.set,
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
    #[serde(serialize_with = "ser::display")]
    pub id: BoxId,
    /// What it protects.
    pub purpose: &'static str,
    /// Its share set.
    #[serde(serialize_with = "ser::display")]
    pub set: ShareSetId,
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
