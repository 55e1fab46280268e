//! The ceremonies of protocol §7.2, hosted: each drives the boxes through typed commands (the same
//! frames a remote box link carries), checks what they answer against the trust anchors or the
//! certified Domain Key Set, and records everything it made in the archive in one transaction:
//! boxes, domains, bundles, processes, the boxes' new state versions and the transcript signed by
//! the manufacturing box that conducted it.
//!
//! Every ceremony holds the home alone (its [`HomeLock`], exclusive) and checks what it can
//! before it asks anything of a box, so a refused ceremony changes nothing. A ceremony stopped
//! half-way (a crash, a kill) leaves nothing that stops other commands, and can be run again:
//!
//! - the first ceremony writes a journal of its files first; a later attempt removes them;
//! - a domain created but not archived is answered again by its manufacturing box, unchanged;
//! - a process installed but not archived is delivered again, and the box takes it unchanged;
//! - a box made but not archived is an orphan state file the archive does not know, which no
//!   command uses (the manufacturing box never gives its ID again).

use std::path::{Path, PathBuf};

use postkey_archive::{
    CeremonyKind, Changes, NewBox, NewBundle, NewDomain, NewDomainProcess, NewInstallation,
    NewSubdomain, NewTranscript, Store, TranscriptId,
};
use postkey_box::{BlankBox, SharePolicy, first_manufacturing_box};
use postkey_crypto::Fingerprint;
use postkey_secrets::rng::{BoxRng, OsEntropy};
use postkey_wire::command::{
    AdoptDomain, Certify, CreateDomain, Deliver, InstallCertificate, InstallKit, InstallProcess,
    IssueKit, IssueSetId, SignTranscript,
};
use postkey_wire::{
    Body, BoxId, BoxType, DomainBundle, DomainId, DomainKind, Refusal, ResponseCode, Sender,
    ShareRef, ShareSetId, SubdomainId, Transcript, Unverified, Verified,
};

use crate::archive::{Expected, Trust, signed};
use crate::lock::HomeLock;
use crate::{Home, HostError, Session, Usage, clock, ser};

fn generator(label: &str) -> Result<BoxRng, HostError> {
    let personalization = format!("postkey {label} {}", clock::now().unix_micros());
    BoxRng::instantiate(OsEntropy, personalization.as_bytes())
        .map_err(|e| HostError::Entropy(e.to_string()))
}

/// Checks a record a box answered with `key`; a failure is the box's fault, logged.
fn check<B: Body>(
    session: &Session,
    id: BoxId,
    what: &str,
    record: Unverified<B>,
    key: &postkey_crypto::VerifyingKey,
) -> Result<Verified<B>, HostError> {
    record.verify(key).map_err(|e| {
        let refusal = Refusal::new(e.response_code(), format!("{what}: {e}"));
        session.log(id, &refusal);
        HostError::refused(id, refusal)
    })
}

/// The removable-media directory a ceremony writes shares to: made 0700 if absent, refused if
/// it is not a directory, before anything else happens.
fn media_dir(media: &Path) -> Result<(), HostError> {
    crate::home::make_named_dir(media, "--media")
}

/// Enables box `id` for a ceremony or a factory run: checked against what the archive records
/// (installation, state version); the version it attests is recorded. A manufacturing box then
/// adopts every domain of the archive it does not know yet (protocol §7.2 item 5).
pub(crate) async fn enable(
    session: &mut Session,
    store: &impl Store,
    trust: &Trust,
    id: BoxId,
    shares_dir: &Path,
) -> Result<(), HostError> {
    let expected = Expected::of(store, trust, id).await?;
    let attested = session.enable(id, shares_dir, &expected)?;
    let mut changes = Changes::default();
    if id.box_type() == BoxType::Manufacturing {
        for domain in store.domains().await? {
            if !session.knows_domain(id, &domain.id) {
                let bundle = crate::archive::bundle(store, trust, &domain.id).await?;
                session.call_one(id, AdoptDomain { bundle: bundle.into() })?;
            }
        }
    }
    let now = session.version(id).unwrap_or(attested);
    if now > expected.version {
        changes.versions.push(postkey_archive::BoxVersion { box_id: id, version: now });
        store.apply(&changes).await?;
    }
    Ok(())
}

/// The versions of `boxes` as the session holds them, for the archive.
pub(crate) fn versions(session: &Session, boxes: &[BoxId]) -> Vec<postkey_archive::BoxVersion> {
    boxes
        .iter()
        .filter_map(|b| {
            session.version(*b).map(|version| postkey_archive::BoxVersion { box_id: *b, version })
        })
        .collect()
}

/// Has manufacturing box `m` sign `transcript` and checks the signature with `identity`.
pub(crate) fn sign_transcript(
    session: &Session,
    m: BoxId,
    identity: &postkey_crypto::VerifyingKey,
    transcript: Transcript,
) -> Result<NewTranscript, HostError> {
    let ceremony = transcript.ceremony.clone();
    let subject = transcript.subject;
    let signed = session.call_one(m, SignTranscript { transcript })?;
    let signed = check(session, m, "transcript", signed, identity)?;
    Ok(NewTranscript {
        time: signed.header().timestamp,
        kind: CeremonyKind::parse(&ceremony)?,
        box_id: subject.or(Some(m)),
        transcript: crate::archive::signed(&signed),
        actor: Sender::Box(m),
    })
}

/// What `postkey init` made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InitReport {
    /// `M00000001`.
    #[serde(serialize_with = "ser::display")]
    pub id: BoxId,
    /// The trust-anchor fingerprint operators confirm at every later initialization.
    #[serde(serialize_with = "ser::display")]
    pub anchors_fingerprint: Fingerprint,
    /// The installation the archive and every box now belong to.
    #[serde(serialize_with = "ser::display")]
    pub installation: postkey_wire::InstallationId,
    /// The share files written to the media directory.
    pub share_files: Vec<PathBuf>,
    /// The ceremony's transcript, by its number in the archive.
    #[serde(serialize_with = "ser::display")]
    pub transcript: TranscriptId,
}

/// `postkey init`: the first ceremony in `home`, on its SQLite archive. Everything the caller
/// names is checked before the home is touched: media that cannot be made leave no home behind.
pub async fn init_home(
    home: &Home,
    wait: crate::Wait,
    media: &Path,
) -> Result<InitReport, HostError> {
    // Media outside the home are checked first; media inside it once the home is made (`init`
    // checks them again either way).
    if !media.starts_with(home.root()) {
        media_dir(media)?;
    }
    let lock = home.lock(crate::Access::Exclusive, wait)?;
    let store = crate::archive::open_archive(home).await?;
    init(&lock, &store, media).await
}

/// The first ceremony (protocol §7.2 item 2) in `lock`'s home, recorded in `store`, its shares
/// written to `media`. Runs again after an attempt that did not finish.
pub async fn init(
    lock: &HomeLock,
    store: &impl Store,
    media: &Path,
) -> Result<InitReport, HostError> {
    let home = lock.exclusive()?;
    let now = clock::now();
    // The home's directory is made, or taken, 0700 whatever it was: it is about to hold sealed
    // box states; an auditor's read access is granted afterwards (SECURITY.md).
    {
        use std::os::unix::fs::PermissionsExt as _;
        let root = home.root();
        let subdirs = ["boxes", "media", "meters", "locks"].map(|d| root.join(d));
        for dir in std::iter::once(root.to_path_buf()).chain(subdirs) {
            // Directories the operator made beforehand too (not links: never followed).
            if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| crate::home::storage("restricting", &dir, e))?;
            }
        }
    }
    if store.installation().await?.is_some() {
        // An attempt stopped after its archive transaction: it is complete, its journal goes.
        home.journal_done()?;
        let e = HostError::from(Usage::AlreadyInitialized(home.root().to_path_buf()));
        let _ = home.log_error("host", e.response_code(), &e.to_string(), now);
        return Err(e);
    }
    media_dir(media)?;
    home.undo_unfinished_init()?;
    // Trust anchors or box states outside a journal belong to an installation this archive does
    // not know (an emptied or replaced archive): never overwritten.
    if home.has_installation_files()? {
        return Err(HostError::InstallationMismatch(format!(
            "{} holds the trust anchors or boxes of an installation its archive does not know: \
             restore the archive from its backup (init never overwrites a home)",
            home.root().display()
        )));
    }
    // Media that holds another installation's anchors or shares would mix them with this one's.
    if let Some(foreign) = crate::home::installation_file_in(media)? {
        return Err(Usage::InvalidArgument(format!(
            "{} holds {foreign}, a file of another installation: give the first ceremony empty \
             media",
            media.display()
        ))
        .into());
    }
    let policy = SharePolicy::default_for(BoxType::Manufacturing);
    let f = first_manufacturing_box(generator("M00000001")?, policy, policy, now)
        .map_err(|e| HostError::refused(BoxId::FIRST_MANUFACTURING, e.to_refusal()))?;
    let id = f.secure_box.id();
    let anchors = f.secure_box.anchors().clone();
    let installation = f.secure_box.installation();
    // The journal first: what this attempt writes is undone by the next one if it stops.
    let share_files: Vec<PathBuf> = f
        .combination_shares
        .iter()
        .chain(&f.domain_key_set_shares)
        .map(|s| media.join(crate::home::share_file_name(s)))
        .collect();
    let mut written = vec![
        home.root().join("boxes").join(format!("{id}.state")),
        home.root().join("trust-anchors.cbor"),
        media.join("trust-anchors.cbor"),
    ];
    written.extend(share_files.iter().cloned());
    home.write_journal(&written)?;
    let mut session = Session::new(home, crate::lock::Wait::No);
    let certificate = f.certificate.clone();
    session.adopt(f.secure_box, Vec::new())?;
    home.write_anchors(&anchors, media)?;
    for share in f.combination_shares.iter().chain(&f.domain_key_set_shares) {
        home.write_share(media, share)?;
    }
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
            "{id} initialized; installation {installation}; trust anchors made; operation \
             combination and Domain Key Set split {}-of-{}; ADMIN domain created",
            policy.threshold, policy.count
        ),
    };
    let transcript = sign_transcript(&session, id, &certificate.body().identity, transcript)?;
    let version = session.version(id).unwrap_or_default();
    let admin = Sender::Box(id);
    let changes = Changes {
        installation: Some(NewInstallation {
            id: installation,
            anchors: fingerprint,
            dks_certificate: signed(&f.dks_certificate),
            time: now,
            actor: admin.clone(),
        }),
        domains: vec![NewDomain { id: DomainId::admin(), time: now, actor: admin.clone() }],
        bundles: vec![NewBundle {
            domain: DomainId::admin(),
            version: 1,
            created_by: id,
            bundle: signed(&f.admin_bundle),
            time: now,
        }],
        boxes: vec![new_box(&certificate, version, now)],
        transcripts: vec![transcript],
        ..Changes::default()
    };
    let applied = store.apply(&changes).await?;
    home.journal_done()?;
    session.lock();
    Ok(InitReport {
        id,
        anchors_fingerprint: fingerprint,
        installation,
        share_files,
        transcript: applied.transcripts.first().copied().unwrap_or(TranscriptId(0)),
    })
}

fn new_box(
    certificate: &Verified<postkey_wire::Certificate>,
    version: postkey_wire::StateVersion,
    now: postkey_wire::Timestamp,
) -> NewBox {
    let c = certificate.body();
    NewBox {
        id: c.box_id,
        certificate: signed(certificate),
        identity_key: c.identity,
        confidentiality_key: c.confidentiality,
        state_version: version,
        time: now,
        actor: Sender::Box(c.issuer),
    }
}

fn set_of(shares: &[Verified<postkey_secrets::shares::ShareBody>]) -> ShareSetId {
    shares.first().map(|s| s.body().set).unwrap_or(ShareSetId([0; 16]))
}

/// The manufacturing boxes enabled in `session`.
fn manufacturing_boxes(session: &Session) -> Vec<BoxId> {
    session.enabled().filter(|id| id.box_type() == BoxType::Manufacturing).collect()
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

/// What `postkey box manufacture` asks for.
#[derive(Debug, Clone)]
pub struct ManufactureOrder {
    /// The new box's type.
    pub box_type: BoxType,
    /// Where its share files go.
    pub media: PathBuf,
    /// How its operation combination is split.
    pub policy: SharePolicy,
    /// The anchors fingerprint the operators confirmed, if they gave one.
    pub anchors_fingerprint: Option<Fingerprint>,
    /// The domains it gets processes of.
    pub domains: Vec<DomainId>,
    /// The sub-domains its Brass or Tin processes serve.
    pub subdomains: Vec<SubdomainId>,
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
    anchors: &postkey_wire::TrustAnchors,
    confirmed: Option<Fingerprint>,
) -> Result<(), HostError> {
    if confirmed.is_none_or(|c| c == anchors.fingerprint()) {
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

/// The ceremonies after the first, run by the operators of one home: the home held (alone for
/// those that change what exists), its archive, what it trusts, and the boxes enabled so far.
#[derive(Debug)]
pub struct Ceremonies<'l, S> {
    pub(crate) lock: &'l HomeLock,
    pub(crate) store: S,
    pub(crate) trust: Trust,
    pub(crate) session: Session,
    /// Where the shares of the boxes enabled so far were, once the audit trail was checkpointed
    /// at the start (protocol §6.6): [`Ceremonies::finish`] checkpoints it again.
    checkpointed_from: Option<PathBuf>,
}

impl<'l, S: Store> Ceremonies<'l, S> {
    /// Opens the ceremonies of the home `lock` holds on its archive `store`: loads what the
    /// home trusts (refusing an archive of another installation).
    pub async fn open(lock: &'l HomeLock, store: S) -> Result<Self, HostError> {
        let trust = Trust::load(lock.home(), &store).await?;
        crate::archive::check_at_open(lock.home(), &store).await?;
        // The error log's spool joins the archive at every command that writes it (`errors`
        // only reads).
        crate::archive::move_error_spool(lock.home(), &store).await?;
        let session = Session::new(lock.home(), lock.wait());
        Ok(Self { lock, store, trust, session, checkpointed_from: None })
    }

    /// The archive.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// What the home trusts.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The boxes enabled so far.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Enables box `id` from its shares in `shares_dir` (see [`enable`]). The first time in
    /// ceremonies that hold the home alone (those that change what exists), the audit trail is
    /// checkpointed too, enabling the audit box from the same directory: an archive behind what
    /// the audit box signed stops the ceremony before it changes anything (3676).
    pub async fn enable(&mut self, id: BoxId, shares_dir: &Path) -> Result<(), HostError> {
        enable(&mut self.session, &self.store, &self.trust, id, shares_dir).await?;
        if self.checkpointed_from.is_none() && self.lock.exclusive().is_ok() {
            let start = crate::checkpoint::When::Start;
            let (session, store, trust) = (&mut self.session, &self.store, &self.trust);
            crate::checkpoint::checkpoint_all(session, store, trust, shares_dir, start).await?;
            self.checkpointed_from = Some(shares_dir.to_path_buf());
        }
        Ok(())
    }

    /// Ends the ceremonies with `outcome`: checkpointed ([`Ceremonies::finish`]) when it is a
    /// success, locked as they are when it is not.
    pub async fn end<T>(self, outcome: Result<T, HostError>) -> Result<T, HostError> {
        match outcome {
            Ok(value) => self.finish().await.map(|()| value),
            Err(e) => {
                self.close();
                Err(e)
            }
        }
    }

    /// Ends the ceremonies: checkpoints what they recorded (with the audit box, enabled from the
    /// directory the first box's shares came from), then locks every box.
    pub async fn finish(mut self) -> Result<(), HostError> {
        if let Some(dir) = self.checkpointed_from.take() {
            let (session, store, trust) = (&mut self.session, &self.store, &self.trust);
            let end = crate::checkpoint::When::End;
            crate::checkpoint::checkpoint_all(session, store, trust, &dir, end).await?;
        }
        self.session.lock();
        Ok(())
    }

    /// Checks the processes an operator asks for before any box is asked anything: each domain
    /// once and known to the archive (its bundle verified), no process of it in `target` yet,
    /// sub-domains only for a Brass or Tin box and each of one of the domains, postal domains only
    /// for a Tin box. Returns each domain with the sub-domains its process serves (Brass and Tin:
    /// those given of it, else all of it).
    pub async fn plan_processes(
        &self,
        target: Option<BoxId>,
        box_type: BoxType,
        domains: &[DomainId],
        subdomains: &[SubdomainId],
    ) -> Result<Vec<(DomainId, Vec<SubdomainId>)>, HostError> {
        let invalid = |why: String| HostError::from(Usage::InvalidArgument(why));
        let scoped = matches!(box_type, BoxType::Brass | BoxType::Tin);
        if !scoped && !subdomains.is_empty() {
            return Err(invalid(format!(
                "a {box_type} process serves no sub-domains: --subdomain is for Brass and Tin boxes"
            )));
        }
        let mut plan: Vec<(DomainId, Vec<SubdomainId>)> = Vec::new();
        for domain in domains {
            if plan.iter().any(|(d, _)| d == domain) {
                return Err(invalid(format!("--domain {domain} is given twice")));
            }
            let bundle = crate::archive::bundle(&self.store, &self.trust, domain).await?;
            if let Some(target) = target {
                let processes = self.store.domain_processes(target).await?;
                if processes.iter().any(|p| &p.domain == domain) {
                    return Err(
                        Usage::ProcessExists { box_id: target, domain: domain.clone() }.into()
                    );
                }
            }
            // A Tin box verifies postal tokens only (protocol §6.5): it never serves a vendor,
            // EARTH or ADMIN domain, and the manufacturing box would refuse the delivery.
            let kind = bundle.body().kind;
            if box_type == BoxType::Tin && kind != postkey_wire::DomainKind::Postal {
                return Err(invalid(format!(
                    "{domain} is a {} domain: a tin box serves postal domains only",
                    kind.name()
                )));
            }
            let all = &bundle.body().subdomains;
            let given: Vec<SubdomainId> =
                subdomains.iter().filter(|s| s.domain() == domain).cloned().collect();
            if let Some(unknown) = given.iter().find(|s| !all.contains(s)) {
                return Err(invalid(format!("{unknown} is not a sub-domain of {domain}")));
            }
            let served = match box_type {
                _ if !scoped => Vec::new(),
                _ if given.is_empty() => all.clone(),
                _ => given,
            };
            plan.push((domain.clone(), served));
        }
        if let Some(stray) = subdomains.iter().find(|s| !domains.contains(s.domain())) {
            return Err(invalid(format!("{stray} is of none of the domains given with --domain")));
        }
        Ok(plan)
    }

    /// `postkey box manufacture`: enables manufacturing box `m` from `shares_dir`, checks every
    /// process asked for before the box uses up an ID, manufactures the box, gives it its
    /// processes, and reports it as the archive now shows it.
    pub async fn manufacture_with_processes(
        &mut self,
        m: BoxId,
        shares_dir: &Path,
        order: &ManufactureOrder,
    ) -> Result<(ManufactureReport, crate::BoxReport), HostError> {
        self.enable(m, shares_dir).await?;
        let plan =
            self.plan_processes(None, order.box_type, &order.domains, &order.subdomains).await?;
        let confirmed = order.anchors_fingerprint;
        let report =
            self.manufacture(m, order.box_type, &order.media, order.policy, confirmed).await?;
        for (domain, subdomains) in plan {
            self.install_process(m, report.id, &domain, subdomains).await?;
        }
        let shown = crate::box_report(&self.store, &self.trust, report.id).await?;
        Ok((report, shown))
    }

    /// `postkey box install`: checks the process asked for, enables manufacturing box `m` and
    /// box `target` from `shares_dir`, and makes the process of `domain` in `target`.
    pub async fn install_one(
        &mut self,
        m: BoxId,
        target: BoxId,
        domain: &DomainId,
        subdomains: &[SubdomainId],
        shares_dir: &Path,
    ) -> Result<(), HostError> {
        let domains = [domain.clone()];
        let mut plan =
            self.plan_processes(Some(target), target.box_type(), &domains, subdomains).await?;
        let (domain, subdomains) = plan.pop().unwrap_or((domain.clone(), Vec::new()));
        self.enable(m, shares_dir).await?;
        self.enable(target, shares_dir).await?;
        self.install_process(m, target, &domain, subdomains).await
    }

    /// `postkey box self-test`: enables box `id` (power-up self-tests first) and runs its
    /// `SELF_TEST` command; whether it passed (a failure is in the error log).
    pub async fn self_test(&mut self, id: BoxId, shares_dir: &Path) -> Result<bool, HostError> {
        self.enable(id, shares_dir).await?;
        Ok(self.session.call_one(id, postkey_wire::command::SelfTest {}).is_ok())
    }

    /// Locks every box enabled: their keys are zeroized.
    pub fn close(self) {
        self.session.lock();
    }

    /// Creates a domain in manufacturing box `m` (enabled), copies it to every other
    /// manufacturing box enabled (protocol §7.2 item 5), and records it in the archive.
    pub async fn create_domain(
        &mut self,
        m: BoxId,
        domain: DomainId,
        kind: DomainKind,
        subdomains: Vec<SubdomainId>,
    ) -> Result<DomainReport, HostError> {
        self.lock.exclusive()?;
        let (store, trust, session) = (&self.store, &self.trust, &mut self.session);
        if store.domain(&domain).await?.is_some() {
            return Err(Usage::DomainExists(domain).into());
        }
        // The box refuses it too (protocol §5); said here, it is the caller's mistake, not a
        // refusal in the error log.
        if let Some(twice) = subdomains
            .iter()
            .enumerate()
            .find_map(|(i, s)| subdomains[..i].contains(s).then_some(s))
        {
            return Err(
                Usage::InvalidArgument(format!("sub-domain {twice} is listed twice")).into()
            );
        }
        let now = clock::now();
        let item = CreateDomain { domain: domain.clone(), kind, subdomains: subdomains.clone() };
        let bundle = session.call_one(m, item)?;
        let bundle: Verified<DomainBundle> =
            check(session, m, "domain bundle", bundle, &trust.dks_key())?;
        let boxes = manufacturing_boxes(session);
        for other in boxes.iter().filter(|b| **b != m) {
            session.call_one(*other, AdoptDomain { bundle: bundle.clone().into() })?;
        }
        let identity = crate::archive::certificate(store, trust, m).await?.body().identity;
        let transcript = sign_transcript(
            session,
            m,
            &identity,
            Transcript {
                ceremony: "create-domain".into(),
                conducted_by: m,
                subject: None,
                domain: Some(domain.clone()),
                shares_presented: session.presented(m),
                anchors: trust.anchors.fingerprint(),
                shares_written: Vec::new(),
                outcome: format!(
                    "domain {domain} ({}) created with {} sub-domains",
                    kind.name(),
                    subdomains.len()
                ),
            },
        )?;
        let actor = Sender::Box(m);
        let changes = Changes {
            domains: vec![NewDomain { id: domain.clone(), time: now, actor: actor.clone() }],
            subdomains: subdomains
                .iter()
                .map(|s| NewSubdomain { id: s.clone(), time: now, actor: actor.clone() })
                .collect(),
            bundles: vec![NewBundle {
                domain: domain.clone(),
                version: 1,
                created_by: m,
                bundle: signed(&bundle),
                time: now,
            }],
            versions: versions(session, &boxes),
            transcripts: vec![transcript],
            ..Changes::default()
        };
        store.apply(&changes).await?;
        Ok(DomainReport { domain, kind: kind.name(), subdomains, manufacturing_boxes: boxes })
    }

    /// Manufactures a box of `box_type` with manufacturing box `m` (protocol §7.2 item 3) and records it
    /// in the archive; the new box stays enabled. A new manufacturing box also receives its kit and
    /// adopts every domain of the archive.
    pub async fn manufacture(
        &mut self,
        m: BoxId,
        box_type: BoxType,
        media: &Path,
        policy: SharePolicy,
        confirmed: Option<Fingerprint>,
    ) -> Result<ManufactureReport, HostError> {
        self.lock.exclusive()?;
        let (store, trust, session) = (&self.store, &self.trust, &mut self.session);
        // Every check before the manufacturing box is asked anything: a refused command uses up no
        // box ID.
        if !policy.is_valid() {
            return Err(Usage::InvalidArgument(format!(
                "shares {}-of-{}: a box's shares must be k-of-n with 2 ≤ k ≤ n ≤ {}",
                policy.threshold,
                policy.count,
                postkey_secrets::shares::MAX_SHARES
            ))
            .into());
        }
        media_dir(media)?;
        let now = clock::now();
        let blank = BlankBox::new(trust.anchors.clone(), generator("blank box")?).map_err(|e| {
            let refusal = e.to_refusal();
            session.log(postkey_wire::UNINITIALIZED_BOX, &refusal);
            HostError::refused(postkey_wire::UNINITIALIZED_BOX, refusal)
        })?;
        let fingerprint = blank.anchors().fingerprint();
        // protocol §7.2 item 1: the operators confirm the fingerprint of the anchors the blank box holds.
        confirm_fingerprint(session, blank.anchors(), confirmed)?;
        let offer = blank.offer(now);
        let set_id = session.call_one(m, IssueSetId { offer, box_type })?;
        let mut init = blank.accept(set_id, policy, now).map_err(|r| {
            let refusal = r.error.to_refusal();
            session.log(postkey_wire::UNINITIALIZED_BOX, &refusal);
            HostError::refused(postkey_wire::UNINITIALIZED_BOX, refusal)
        })?;
        let id = init.secure_box.id();
        // An ID the archive knows, or a state already in the home, is given a second time: only a
        // manufacturing box restored from an older state does that. Alarm, and nothing is written.
        if store.box_record(id).await?.is_some() || session.home().store().exists(id) {
            let refusal = Refusal::new(
                ResponseCode::STATE_ROLLBACK,
                format!(
                    "alarm: {m} gave the ID {id} a second time (its state was put back); nothing \
                     was written"
                ),
            );
            session.log(m, &refusal);
            return Err(HostError::refused(m, refusal));
        }
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
        let anchor = *trust.anchors.for_type(box_type);
        let cert = check(session, m, "certificate", cert, &anchor)?;
        session.call_one(id, InstallCertificate { certificate: cert.clone().into() })?;
        if box_type == BoxType::Manufacturing {
            let kit = session.call_one(m, IssueKit { recipient: cert.clone().into() })?;
            session.call_one(id, InstallKit { kit })?;
            for domain in store.domains().await? {
                let bundle = crate::archive::bundle(store, trust, &domain.id).await?;
                session.call_one(id, AdoptDomain { bundle: bundle.into() })?;
            }
        }
        let identity = crate::archive::certificate(store, trust, m).await?.body().identity;
        let transcript = sign_transcript(
            session,
            m,
            &identity,
            Transcript {
                ceremony: "manufacture-box".into(),
                conducted_by: m,
                subject: Some(id),
                domain: None,
                shares_presented: session.presented(m),
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
        let version = session.version(id).unwrap_or_default();
        let changes = Changes {
            boxes: vec![new_box(&cert, version, now)],
            versions: versions(session, &[m]),
            transcripts: vec![transcript],
            ..Changes::default()
        };
        // Refused here, the box's ID is one the audit chain holds already: an alarm, logged.
        store.apply(&changes).await.map_err(|e| session.logged(m, e.into()))?;
        Ok(ManufactureReport { id, box_type, share_files, anchors_fingerprint: fingerprint })
    }

    /// Makes a process of `domain` in box `target` (protocol §7.2 item 4), both enabled, and records
    /// it in the archive; a Brass process serves `subdomains`.
    pub async fn install_process(
        &mut self,
        m: BoxId,
        target: BoxId,
        domain: &DomainId,
        subdomains: Vec<SubdomainId>,
    ) -> Result<(), HostError> {
        self.lock.exclusive()?;
        let (store, trust, session) = (&self.store, &self.trust, &mut self.session);
        if store.domain_processes(target).await?.iter().any(|p| &p.domain == domain) {
            return Err(Usage::ProcessExists { box_id: target, domain: domain.clone() }.into());
        }
        let now = clock::now();
        let bundle = crate::archive::bundle(store, trust, domain).await?;
        let cert = crate::archive::certificate(store, trust, target).await?;
        let item = Deliver {
            bundle: bundle.into(),
            recipient: cert.into(),
            subdomains: subdomains.clone(),
        };
        let out = session.call_one(m, item)?;
        let anchor = *trust.anchors.for_type(target.box_type());
        let record = check(session, m, "process record", out.record, &anchor)?;
        session.call_one(target, InstallProcess { delivery: out.delivery })?;
        let presented: Vec<ShareRef> =
            session.presented(m).into_iter().chain(session.presented(target)).collect();
        let identity = crate::archive::certificate(store, trust, m).await?.body().identity;
        let transcript = sign_transcript(
            session,
            m,
            &identity,
            Transcript {
                ceremony: "install-process".into(),
                conducted_by: m,
                subject: Some(target),
                domain: Some(domain.clone()),
                shares_presented: presented,
                anchors: trust.anchors.fingerprint(),
                shares_written: Vec::new(),
                outcome: format!(
                    "{} process of {domain} installed in {target}{}",
                    target.box_type().name(),
                    if subdomains.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " serving {}",
                            subdomains
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ),
            },
        )?;
        let changes = Changes {
            processes: vec![NewDomainProcess {
                box_id: target,
                domain: domain.clone(),
                subdomains,
                record: signed(&record),
                time: now,
                actor: Sender::Box(m),
            }],
            versions: versions(session, &[m, target]),
            transcripts: vec![transcript],
            ..Changes::default()
        };
        store.apply(&changes).await?;
        Ok(())
    }
}

/// Checks one share file alone (protocol §7.1): its signature under the owner's certified identity
/// key and its owner. Returns what it says.
pub async fn check_share(
    home: &Home,
    store: &impl Store,
    bytes: &[u8],
) -> Result<ShareReport, HostError> {
    let claimed = Unverified::<postkey_secrets::shares::ShareBody>::from_bytes(bytes)?;
    let owner = claimed.claimed_body().owner;
    let trust = Trust::load(home, store).await?;
    let cert = crate::archive::certificate(store, &trust, owner).await?;
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
