//! What the host reads from the archive, and how it trusts it. The archive is the one source of
//! truth about boxes, domains and versions, but it is a database an attacker may edit: every
//! record the host acts on is checked against the trust anchors of the home (certificates,
//! process records, the Domain Key Set's certificate) or against the certified Domain Key Set
//! (bundles) before it is used.
//!
//! ```text
//!  trust anchors (home, media) ──► DKS certificate (archive) ──► domain bundles (archive)
//!                              └─► box certificates, process records (archive)
//! ```

use postkey_archive::{
    Component, ErrorLogEntry, ErrorLogQuery, InstallationRecord, SignedRecord, Store,
};
use postkey_archive_sqlite::SqliteStore;
use postkey_crypto::VerifyingKey;
use postkey_wire::{
    BoxId, Certificate, DomainBundle, DomainId, DomainKeySetCertificate, InstallationId,
    ProcessRecord, ResponseCode, StateVersion, Timestamp, TrustAnchors, Unverified, Verified,
};

use crate::{ErrorEntry, Home, HostError, Usage};

/// Opens the home's SQLite archive (the embedded default).
pub async fn open_archive(home: &Home) -> Result<SqliteStore, HostError> {
    // An initialized home whose archive is gone is damage: the archive is restored from its
    // backup, never made anew beside the home's boxes.
    if home.is_initialized() && !home.archive_path().exists() {
        return Err(missing_archive(home));
    }
    crate::home::make_dir(home.root())?;
    Ok(SqliteStore::open(home.archive_path()).await?)
}

/// Opens the home's archive for a command that only reads: nothing is created, migrated or
/// written (an auditor with read access runs it; see SECURITY.md). A home whose archive file is
/// missing is refused as a damaged home (3604).
pub async fn open_archive_read_only(home: &Home) -> Result<SqliteStore, HostError> {
    if !home.archive_path().is_file() {
        return Err(missing_archive(home));
    }
    Ok(SqliteStore::open_read_only(home.archive_path()).await?)
}

fn missing_archive(home: &Home) -> HostError {
    HostError::Missing {
        path: home.archive_path(),
        reason: "the home's archive is not there (or not a file): restore it from its backup"
            .into(),
    }
}

/// `postkey audit verify`: audits the home's archive against the home's trust anchors alone
/// (docs/audit.md). Opens nothing for writing; what does not hold is in the report.
pub async fn audit(home: &Home) -> Result<postkey_audit::Report, HostError> {
    let anchors = home.anchors()?;
    let store = open_archive_read_only(home).await?;
    Ok(postkey_audit::verify(&store, &anchors).await?)
}

/// Whether a box that could not be enabled with this code is merely not at hand (in use, or
/// not enough valid shares), not a fault of its state.
fn not_at_hand(code: ResponseCode) -> bool {
    [
        ResponseCode::BOX_IN_USE,
        ResponseCode::SHARE_QUORUM_NOT_MET,
        ResponseCode::SHARE_INVALID,
        ResponseCode::SHARE_SET_MISMATCH,
        ResponseCode::SHARE_CHECK_FAILED,
    ]
    .contains(&code)
}

/// `postkey audit verify --boxes`: [`audit`], then each Oak and Steel box the archive records,
/// where a quorum of its shares is in `shares_dir`, is enabled and attests its state, which is
/// checked against the archive (docs/audit.md, "Boxes at hand"). The boxes' states are read,
/// never written; a box that cannot be enabled is listed as not at hand, with why.
pub async fn audit_with_boxes(
    home: &Home,
    shares_dir: &std::path::Path,
    wait: crate::Wait,
) -> Result<postkey_audit::Report, HostError> {
    use postkey_audit::BoxAnswer;
    let anchors = home.anchors()?;
    let store = open_archive_read_only(home).await?;
    let mut report = postkey_audit::verify(&store, &anchors).await?;
    let mut boxes = store.boxes(Some(postkey_wire::BoxType::Oak)).await?;
    boxes.extend(store.boxes(Some(postkey_wire::BoxType::Steel)).await?);
    let mut answers = Vec::new();
    match Trust::load(home, &store).await {
        Err(e) => {
            answers.extend(boxes.iter().map(|b| (b.id, BoxAnswer::NotAtHand(e.to_string()))));
        }
        Ok(trust) => {
            let mut session = crate::Session::new(home, wait);
            for b in &boxes {
                let expected = Expected::of(&store, &trust, b.id).await?;
                let answer = match session.enable_restored(b.id, shares_dir, &expected) {
                    Ok(a) => BoxAnswer::Attested(postkey_audit::AttestedState {
                        version: a.version,
                        last_key_ids: a.last_key_ids,
                    }),
                    // A shares directory that is no directory is the caller's mistake.
                    Err(e @ HostError::Usage(crate::Usage::InvalidArgument(_))) => return Err(e),
                    // In use by a running command, its state file gone, or no quorum of valid
                    // shares at hand: it cannot be asked.
                    Err(e @ HostError::Missing { .. }) => BoxAnswer::NotAtHand(e.to_string()),
                    Err(e) if not_at_hand(e.response_code()) => BoxAnswer::NotAtHand(e.to_string()),
                    // Another installation's state, one that does not open or does not attest:
                    // the box's state does not hold.
                    Err(e) => BoxAnswer::Refused(e.to_string()),
                };
                answers.push((b.id, answer));
            }
        }
    }
    postkey_audit::check_boxes(&store, &answers, &mut report).await?;
    Ok(report)
}

/// `postkey audit export FILE`: writes the home's archive to the new file `to`, as one consistent
/// copy an auditor carries away and checks with [`audit_export`] and the trust anchors alone
/// (docs/audit.md, "The export"). Reads the archive only; the home is left as it was.
pub async fn export_archive(home: &Home, to: &std::path::Path) -> Result<ExportReport, HostError> {
    home.anchors()?;
    crate::home::new_argument_file(to)?;
    let store = open_archive_read_only(home).await?;
    store.export_to(to).await?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| crate::home::storage("restricting", to, e))?;
    }
    let bytes = std::fs::metadata(to).map_err(|e| crate::home::storage("reading", to, e))?.len();
    let copy = SqliteStore::open_read_only(to).await?;
    let chains =
        copy.chain_heads().await?.into_iter().map(|h| (h.chain.to_string(), h.count)).collect();
    Ok(ExportReport { file: to.display().to_string(), bytes, chains })
}

/// What an export holds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportReport {
    /// The file written.
    pub file: String,
    /// Its size.
    pub bytes: u64,
    /// Each chain and its events in the export.
    pub chains: Vec<(String, u64)>,
}

/// `postkey audit verify --file EXPORT --anchors FILE`: audits an export against the trust
/// anchors given, with no home. An export or an anchors file that is not one is the caller's
/// mistake.
pub async fn audit_export(
    file: &std::path::Path,
    anchors: &std::path::Path,
) -> Result<postkey_audit::Report, HostError> {
    const MAX_ANCHORS: u64 = 4096;
    let bytes = crate::home::read_argument_file(anchors, MAX_ANCHORS)?;
    let anchors: TrustAnchors = postkey_wire::codec::from_bytes(&bytes, MAX_ANCHORS as usize)
        .map_err(|e| {
            Usage::InvalidArgument(format!("{}: not trust anchors: {e}", anchors.display()))
        })?;
    // A regular file, or the caller's mistake named once: a FIFO or a device never blocks.
    crate::home::existing_argument_file(file)?;
    let store = SqliteStore::open_read_only(file).await.map_err(|e| {
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            why = format!("{why}: {s}");
            source = s.source();
        }
        Usage::InvalidArgument(format!("{}: not an archive export: {why}", file.display()))
    })?;
    Ok(postkey_audit::verify(&store, &anchors).await?)
}

/// The bounded integrity check a command that writes the archive runs when it opens it, before
/// it changes anything (docs/audit.md, "At every open"): a damaged archive refuses the command,
/// with an error-log entry in the home's spool.
pub(crate) async fn check_at_open(home: &Home, store: &impl Store) -> Result<(), HostError> {
    let faults = postkey_audit::check_at_open(store).await?;
    let Some(first) = faults.first() else { return Ok(()) };
    let e = HostError::ArchiveDamaged { first: first.to_string(), count: faults.len() };
    Err(home.logged("host", e))
}

/// What a command trusts: the home's trust anchors and, through them, the archive's installation
/// and its certified Domain Key Set. Loading it refuses an archive of another installation, one
/// whose anchors differ from the home's, and an archive with no installation (an emptied one).
#[derive(Debug, Clone)]
pub struct Trust {
    /// The trust anchors.
    pub anchors: TrustAnchors,
    /// The installation.
    pub installation: InstallationId,
    /// The Domain Key Set's public keys, as certified.
    pub dks: DomainKeySetCertificate,
}

impl Trust {
    /// Loads and checks what `home` and `store` say about the installation. A home with trust
    /// anchors whose archive holds no installation (an emptied or replaced archive) is refused:
    /// the archive is never filled again from the home.
    pub async fn load(home: &Home, store: &impl Store) -> Result<Self, HostError> {
        let anchors = home.anchors()?;
        let record = store.installation().await?.ok_or_else(|| {
            HostError::InstallationMismatch(format!(
                "{} holds an installation its archive does not know (an emptied or replaced \
                 archive): restore the archive from its backup",
                home.root().display()
            ))
        })?;
        Self::check(anchors, &record)
    }

    /// Checks an installation record against `anchors`.
    pub(crate) fn check(
        anchors: TrustAnchors,
        record: &InstallationRecord,
    ) -> Result<Self, HostError> {
        if record.anchors != anchors.fingerprint() {
            return Err(HostError::InstallationMismatch(
                "the archive was made with other trust anchors than the home's".into(),
            ));
        }
        let cert = Unverified::<DomainKeySetCertificate>::from_bytes(&record.dks_certificate.bytes)
            .and_then(|c| c.verify(&anchors.manufacturing))
            .map_err(|e| {
                HostError::InstallationMismatch(format!(
                    "the archive's Domain Key Set certificate does not verify: {e}"
                ))
            })?;
        if cert.body().installation != record.id {
            return Err(HostError::InstallationMismatch(
                "the Domain Key Set certificate names another installation".into(),
            ));
        }
        Ok(Self { anchors, installation: record.id, dks: cert.body().clone() })
    }

    /// The Domain Key Set's authentication key: domain bundles are signed with it.
    pub fn dks_key(&self) -> VerifyingKey {
        self.dks.authentication
    }
}

/// The certificate of box `id`, from the archive, checked against the trust anchors.
pub(crate) async fn certificate(
    store: &impl Store,
    trust: &Trust,
    id: BoxId,
) -> Result<Verified<Certificate>, HostError> {
    let record = store.box_record(id).await?.ok_or(Usage::UnknownBox(id))?;
    let cert = Unverified::<Certificate>::from_bytes(&record.certificate.bytes)
        .and_then(|c| c.verify(trust.anchors.for_type(id.box_type())))
        .map_err(|e| archive_corrupt(format!("the certificate of {id}: {e}")))?;
    if cert.body().box_id != id || cert.body().identity != record.identity_key {
        return Err(archive_corrupt(format!("the certificate of {id} names another box or key")));
    }
    Ok(cert)
}

/// The latest bundle of `domain`, from the archive, checked against the certified Domain Key
/// Set.
pub(crate) async fn bundle(
    store: &impl Store,
    trust: &Trust,
    domain: &DomainId,
) -> Result<Verified<DomainBundle>, HostError> {
    let record = store.latest_bundle(domain).await?.ok_or(Usage::UnknownDomain(domain.clone()))?;
    let bundle = Unverified::<DomainBundle>::from_bytes(&record.bundle.bytes)
        .and_then(|b| b.verify(&trust.dks_key()))
        .map_err(|e| archive_corrupt(format!("the bundle of {domain}: {e}")))?;
    if &bundle.body().domain != domain {
        return Err(archive_corrupt(format!("the bundle of {domain} is another domain's")));
    }
    Ok(bundle)
}

/// The domain-process records of box `id`, from the archive, checked against the trust anchors.
pub(crate) async fn processes(
    store: &impl Store,
    trust: &Trust,
    id: BoxId,
) -> Result<Vec<Verified<ProcessRecord>>, HostError> {
    let mut out = Vec::new();
    for p in store.domain_processes(id).await? {
        let record = Unverified::<ProcessRecord>::from_bytes(&p.record.bytes)
            .and_then(|r| r.verify(trust.anchors.for_type(id.box_type())))
            .map_err(|e| archive_corrupt(format!("a process record of {id}: {e}")))?;
        if record.body().box_id != id || record.body().domain != p.domain {
            return Err(archive_corrupt(format!("a process record of {id} is another's")));
        }
        out.push(record);
    }
    Ok(out)
}

fn archive_corrupt(what: String) -> HostError {
    HostError::ArchiveRecord(what)
}

/// What enabling box `id` must find: its certificate (whose identity key checks its shares and
/// its attestation), the installation it must belong to, and the highest state version the
/// archive recorded for it (protocol §7.2 item 7).
#[derive(Debug, Clone)]
pub struct Expected {
    /// The box's certificate, checked against the trust anchors.
    pub certificate: Verified<Certificate>,
    /// The installation.
    pub installation: InstallationId,
    /// The highest state version recorded.
    pub version: StateVersion,
}

impl Expected {
    /// What the archive expects of box `id`.
    pub async fn of(store: &impl Store, trust: &Trust, id: BoxId) -> Result<Self, HostError> {
        let certificate = certificate(store, trust, id).await?;
        let version = store.highest_state_version(id).await?;
        Ok(Self { certificate, installation: trust.installation, version })
    }
}

/// A signed record as the archive keeps it.
pub(crate) fn signed<B: postkey_wire::Body>(record: &Verified<B>) -> SignedRecord {
    SignedRecord::from_verified(record)
}

/// Moves the home's error-log spool into the archive's error log, a chunk per transaction. A
/// move stopped halfway is done again by the next one and logs nothing twice: each spooled line
/// has an ID the archive logs once (docs/boxes.md, "The error log").
pub(crate) async fn move_error_spool(home: &Home, store: &impl Store) -> Result<(), HostError> {
    // One mover at a time.
    let _mover = home.lock_spool_move()?;
    // Twice: a spool an interrupted move left first, then the current one.
    for _ in 0..2 {
        let Some(mut taken) = home.take_error_spool()? else { break };
        loop {
            let chunk = taken.next_chunk()?;
            if chunk.is_empty() {
                break;
            }
            let entries = chunk
                .into_iter()
                .map(|e| {
                    Ok(ErrorLogEntry {
                        time: Timestamp::from_unix_micros(e.unix_micros),
                        component: component(&e.component)?,
                        response_code: ResponseCode(e.code),
                        message: e.message,
                        domain: None,
                        meter_id: None,
                        key_id: None,
                        origin: e.id,
                    })
                })
                .collect::<Result<Vec<_>, HostError>>()?;
            store.log_errors(&entries).await?;
        }
        taken.moved()?;
    }
    Ok(())
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

/// A component label as operators read it: a box's ID (a letter and eight digits) as the box is
/// named everywhere else (`o00000001` → `O00000001`, `x00000000` for a blank box), any other
/// label as it is.
fn shown(label: &str) -> String {
    let b = label.as_bytes();
    if b.len() == 9 && b[0].is_ascii_lowercase() && b[1..].iter().all(u8::is_ascii_digit) {
        label.to_ascii_uppercase()
    } else {
        label.to_owned()
    }
}

/// The newest `limit` entries of the error log, oldest first: the archive's, and those the
/// home's spool holds still (the next command that writes the archive moves them in). Reads
/// only: an auditor with read access runs it.
pub async fn error_log(
    home: &Home,
    store: &impl Store,
    limit: u32,
) -> Result<Vec<ErrorEntry>, HostError> {
    let logged = store.error_log(&ErrorLogQuery::latest(limit)).await?;
    let mut entries: Vec<ErrorEntry> = logged
        .into_iter()
        .map(|l| ErrorEntry {
            time: l.entry.time.to_rfc3339(),
            unix_micros: l.entry.time.unix_micros(),
            component: shown(l.entry.component.as_str()),
            code: l.entry.response_code.0,
            message: l.entry.message,
            id: None,
        })
        .collect();
    for mut e in home.spooled_errors()? {
        // Shown as it will be once moved in.
        e.component = shown(component(&e.component)?.as_str());
        e.id = None;
        entries.push(e);
    }
    entries.sort_by_key(|e| e.unix_micros);
    let skip = entries.len().saturating_sub(limit as usize);
    Ok(entries.split_off(skip))
}
