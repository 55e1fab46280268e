//! The postkey home: the box host's own files (sealed box states, certificates, domain bundles
//! and process records the boxes need when they are enabled, the highest state version of each
//! box) and the spool of what the KMC keeps in the archive: ceremony transcripts and the error
//! log are written here first, durably, and moved into the archive whenever the KMC opens it
//! ([`crate::register_in_archive`]).
//!
//! ```text
//!  <home>/trust-anchors.cbor     the five startup public keys (also on the media)
//!  <home>/archive.db             the SQLite archive (embedded default)
//!  <home>/boxes/<ID>.state       sealed box states        <ID>.cert  certificates
//!  <home>/boxes/<ID>.<DOMAIN>.process   signed domain-process records
//!  <home>/versions/<ID>          the highest state version recorded for a box
//!  <home>/domains/<DOMAIN>.bundle       domain key bundles (sealed and signed)
//!  <home>/transcripts/NNNN-<ceremony>.transcript   signed ceremony transcripts (kept; copied
//!                                into the archive once)
//!  <home>/errors.log             the error-log spool, one JSON object per line (moved into the
//!                                archive, then removed)
//!  <home>/media/                 share files (simulation only: SECURITY.md)
//! ```

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use postkey_box::runtime::{BoxStore, StorageError, write_atomic};
use postkey_secrets::shares::ShareBody;
use postkey_wire::{
    BoxId, DomainBundle, DomainId, ProcessRecord, ResponseCode, SharePurpose, StateVersion,
    Timestamp, TrustAnchors, Unverified, Verified, codec,
};

use crate::{HostError, Usage};

/// One line of the error log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorEntry {
    /// When, RFC 3339 UTC.
    pub time: String,
    /// When, microseconds since the Unix epoch (what the archive keeps).
    #[serde(default)]
    pub unix_micros: u64,
    /// The component that refused: a box ID or `host`.
    pub component: String,
    /// The four-digit response code.
    pub code: u16,
    /// What happened.
    pub message: String,
}

/// A postkey home directory.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

fn storage(what: &'static str, path: &Path, source: std::io::Error) -> HostError {
    HostError::Storage(StorageError { what, path: path.to_path_buf(), source })
}

fn read(path: &Path) -> Result<Vec<u8>, HostError> {
    fs::read(path).map_err(|e| storage("reading", path, e))
}

impl Home {
    /// The home at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The default removable-media directory of the simulation.
    pub fn media_dir(&self) -> PathBuf {
        self.root.join("media")
    }

    /// The sealed box states.
    pub fn store(&self) -> BoxStore {
        BoxStore::new(self.root.join("boxes"))
    }

    fn anchors_path(&self) -> PathBuf {
        self.root.join("trust-anchors.cbor")
    }

    /// Whether the first ceremony ran here.
    pub fn is_initialized(&self) -> bool {
        self.anchors_path().exists() || self.store().exists(BoxId::FIRST_MANUFACTURING)
    }

    /// The trust anchors.
    pub fn anchors(&self) -> Result<TrustAnchors, HostError> {
        let path = self.anchors_path();
        if !path.exists() {
            return Err(Usage::NotInitialized(self.root.clone()).into());
        }
        codec::from_bytes(&read(&path)?, 4096).map_err(|e| HostError::corrupt(&path, e))
    }

    pub(crate) fn write_anchors(&self, anchors: &TrustAnchors) -> Result<(), HostError> {
        let bytes = codec::to_bytes(anchors);
        write_atomic(&self.anchors_path(), &bytes, 0o644)?;
        Ok(write_atomic(&self.media_dir().join("trust-anchors.cbor"), &bytes, 0o644)?)
    }

    fn dks_path(&self) -> PathBuf {
        self.root.join("domain-key-set.key")
    }

    pub(crate) fn write_domain_key_set_key(
        &self,
        key: &postkey_crypto::VerifyingKey,
    ) -> Result<(), HostError> {
        Ok(write_atomic(&self.dks_path(), &key.to_bytes(), 0o644)?)
    }

    /// The Domain Key Set's authentication (public) key, written by the first ceremony: domain
    /// bundles are signed with it.
    pub fn domain_key_set_key(&self) -> Result<postkey_crypto::VerifyingKey, HostError> {
        let path = self.dks_path();
        let bytes: [u8; 32] =
            read(&path)?.try_into().map_err(|_| HostError::corrupt(&path, "not 32 bytes"))?;
        postkey_crypto::VerifyingKey::from_bytes(&bytes)
            .map_err(|_| HostError::corrupt(&path, "not an Ed25519 public key"))
    }

    fn meters_dir(&self) -> PathBuf {
        self.root.join("meters")
    }

    fn meter_path(&self, id: &postkey_wire::MeterId) -> PathBuf {
        self.meters_dir().join(format!("{id}.meter"))
    }

    /// Writes a simulated meter's state (SPEC §12: the simulator keeps its keys in a file under
    /// the home, mode 0600; a real meter keeps them in its secure element).
    pub fn save_meter(&self, meter: &postkey_meter::Meter) -> Result<(), HostError> {
        Ok(write_atomic(&self.meter_path(meter.id()), &meter.to_simulator_file(), 0o600)?)
    }

    /// Saves simulated meters' states, all durable together (two flushes for the lot).
    pub fn save_meters(&self, meters: &[&postkey_meter::Meter]) -> Result<(), HostError> {
        let images: Vec<(String, zeroize::Zeroizing<Vec<u8>>)> = meters
            .iter()
            .map(|m| {
                let path = self.meter_path(m.id());
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                (name.unwrap_or_default(), m.to_simulator_file())
            })
            .collect();
        let files: Vec<(String, &[u8])> =
            images.iter().map(|(n, b)| (n.clone(), b.as_slice())).collect();
        Ok(postkey_box::runtime::write_atomic_many(&self.meters_dir(), &files, 0o600)?)
    }

    /// A simulated meter's state.
    pub fn load_meter(
        &self,
        id: &postkey_wire::MeterId,
    ) -> Result<postkey_meter::Meter, HostError> {
        let path = self.meter_path(id);
        if !path.exists() {
            return Err(Usage::UnknownMeter(id.clone()).into());
        }
        let bytes = zeroize::Zeroizing::new(read(&path)?);
        postkey_meter::Meter::from_simulator_file(&bytes).map_err(|e| HostError::corrupt(&path, e))
    }

    fn version_path(&self, id: BoxId) -> PathBuf {
        self.root.join("versions").join(id.to_string())
    }

    /// The highest state version recorded for `id`.
    pub fn recorded_version(&self, id: BoxId) -> Result<Option<StateVersion>, HostError> {
        let path = self.version_path(id);
        if !path.exists() {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&read(&path)?).trim().to_owned();
        text.parse()
            .map(|v| Some(StateVersion(v)))
            .map_err(|_| HostError::corrupt(&path, "not a version number"))
    }

    /// Records `version` as the highest seen for `id`; a lower one is refused.
    pub(crate) fn record_version(&self, id: BoxId, version: StateVersion) -> Result<(), HostError> {
        if let Some(recorded) = self.recorded_version(id)?
            && version < recorded
        {
            return Err(HostError::Rollback { box_id: id, recorded, presented: version });
        }
        Ok(write_atomic(&self.version_path(id), version.0.to_string().as_bytes(), 0o644)?)
    }

    /// Appends a line to the error log, durably.
    pub fn log_error(
        &self,
        component: &str,
        code: ResponseCode,
        message: &str,
        now: Timestamp,
    ) -> Result<(), HostError> {
        self.log_errors(component, &[(code, message)], now)
    }

    /// Appends lines to the error log, durably, with one flush for all of them.
    pub fn log_errors(
        &self,
        component: &str,
        entries: &[(ResponseCode, &str)],
        now: Timestamp,
    ) -> Result<(), HostError> {
        let mut text = String::new();
        for (code, message) in entries {
            let entry = ErrorEntry {
                time: now.to_rfc3339(),
                unix_micros: now.unix_micros(),
                component: component.to_owned(),
                code: code.0,
                message: (*message).to_owned(),
            };
            // Serializing a struct of strings and numbers cannot fail.
            text.push_str(&serde_json::to_string(&entry).unwrap_or_default());
            text.push('\n');
        }
        let path = self.root.join("errors.log");
        fs::create_dir_all(&self.root).map_err(|e| storage("creating", &self.root, e))?;
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| storage("opening", &path, e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| storage("writing", &path, e))
    }

    /// The error-log entries spooled here and not yet moved into the archive, oldest first.
    pub fn spooled_errors(&self) -> Result<Vec<ErrorEntry>, HostError> {
        let mut entries = read_spool(&self.root.join(INGESTING))?;
        entries.extend(read_spool(&self.root.join("errors.log"))?);
        Ok(entries)
    }

    /// Takes the error-log spool for moving into the archive: a spool left by an interrupted
    /// move first (its entries may be moved twice, never lost), else the current one, renamed
    /// so that entries logged meanwhile start a new spool. Call [`Self::spool_moved`] once the
    /// archive holds them.
    pub(crate) fn take_error_spool(&self) -> Result<Vec<ErrorEntry>, HostError> {
        let taken = self.root.join(INGESTING);
        let current = self.root.join("errors.log");
        if !taken.exists() && current.exists() {
            fs::rename(&current, &taken).map_err(|e| storage("renaming", &current, e))?;
        }
        read_spool(&taken)
    }

    /// The spool taken by [`Self::take_error_spool`] is in the archive: removed.
    pub(crate) fn spool_moved(&self) -> Result<(), HostError> {
        let taken = self.root.join(INGESTING);
        match fs::remove_file(&taken) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(storage("removing", &taken, e)),
        }
    }

    /// The signed ceremony transcripts written here, in the order written.
    pub(crate) fn transcripts(&self) -> Result<Vec<Verified<postkey_wire::Transcript>>, HostError> {
        let dir = self.root.join("transcripts");
        let mut paths: Vec<PathBuf> = match fs::read_dir(&dir) {
            Ok(d) => d.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(storage("reading", &dir, e)),
        };
        paths.retain(|p| p.extension().is_some_and(|x| x == "transcript"));
        paths.sort();
        let anchors = self.anchors()?;
        paths
            .iter()
            .map(|p| {
                // Signed by the identity key of the box that conducted the ceremony.
                let t = Unverified::<postkey_wire::Transcript>::from_bytes(&read(p)?)
                    .map_err(|e| HostError::corrupt(p, e))?;
                let signer = t.claimed_body().conducted_by;
                let cert = self.certificate(signer, &anchors)?;
                t.verify(&cert.body().identity).map_err(|e| HostError::corrupt(p, e))
            })
            .collect()
    }
}

/// The error-log spool being moved into the archive.
const INGESTING: &str = "errors.log.moving";

fn read_spool(path: &Path) -> Result<Vec<ErrorEntry>, HostError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = String::from_utf8_lossy(&read(path)?).into_owned();
    text.lines().map(|l| serde_json::from_str(l).map_err(|e| HostError::corrupt(path, e))).collect()
}

impl Home {
    /// Writes a share file to `media` (mode 0600) and returns its path.
    pub(crate) fn write_share(
        &self,
        media: &Path,
        share: &Verified<ShareBody>,
    ) -> Result<PathBuf, HostError> {
        let b = share.body();
        let set = b.set.to_string();
        let name = format!(
            "{}-{}-{}-{}of{}.share",
            b.owner,
            b.purpose.name(),
            &set[..8],
            b.index,
            b.count
        );
        let path = media.join(name);
        write_atomic(&path, share.as_bytes(), 0o600)?;
        Ok(path)
    }

    /// The operation-combination share files of `id` found in `dir`.
    pub fn share_files(&self, dir: &Path, id: BoxId) -> Result<Vec<Vec<u8>>, HostError> {
        let prefix = format!("{id}-{}-", SharePurpose::OperationCombination.name());
        let mut files = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Usage::NoShares { box_id: id, dir: dir.to_path_buf() }.into());
            }
            Err(e) => return Err(storage("reading", dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| storage("reading", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with(".share") {
                files.push((name, read(&entry.path())?));
            }
        }
        files.sort();
        Ok(files.into_iter().map(|(_, b)| b).collect())
    }

    pub(crate) fn bundle_path(&self, domain: &DomainId) -> PathBuf {
        self.root.join("domains").join(format!("{domain}.bundle"))
    }

    pub(crate) fn write_bundle(&self, bundle: &Verified<DomainBundle>) -> Result<(), HostError> {
        Ok(write_atomic(&self.bundle_path(&bundle.body().domain), bundle.as_bytes(), 0o644)?)
    }

    /// A domain's bundle file (sealed and signed; checked by the manufacturing box that uses it).
    pub fn bundle(&self, domain: &DomainId) -> Result<Vec<u8>, HostError> {
        let path = self.bundle_path(domain);
        if !path.exists() {
            return Err(Usage::UnknownDomain(domain.clone()).into());
        }
        read(&path)
    }

    /// Every domain with a bundle here, decoded (not verified: the Domain Key Set's public key
    /// is checked by a manufacturing box when the bundle is used).
    pub fn domains(&self) -> Result<Vec<Unverified<DomainBundle>>, HostError> {
        let dir = self.root.join("domains");
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&dir) else { return Ok(out) };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "bundle")) {
            out.push(
                Unverified::<DomainBundle>::from_bytes(&read(&path)?)
                    .map_err(|e| HostError::corrupt(&path, e))?,
            );
        }
        Ok(out)
    }

    pub(crate) fn write_process(&self, record: &Verified<ProcessRecord>) -> Result<(), HostError> {
        let b = record.body();
        let path = self.root.join("boxes").join(format!("{}.{}.process", b.box_id, b.domain));
        Ok(write_atomic(&path, record.as_bytes(), 0o644)?)
    }

    /// The domain-process records of box `id`, checked against the trust anchors.
    pub fn processes(&self, id: BoxId) -> Result<Vec<Verified<ProcessRecord>>, HostError> {
        let anchors = self.anchors()?;
        let dir = self.root.join("boxes");
        let prefix = format!("{id}.");
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&dir) else { return Ok(out) };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                    && p.extension().is_some_and(|e| e == "process")
            })
            .collect();
        paths.sort();
        for path in paths {
            let record = Unverified::<ProcessRecord>::from_bytes(&read(&path)?)
                .and_then(|r| r.verify(anchors.for_type(id.box_type())))
                .map_err(|e| HostError::corrupt(&path, e))?;
            out.push(record);
        }
        Ok(out)
    }

    pub(crate) fn write_transcript(
        &self,
        transcript: &Verified<postkey_wire::Transcript>,
    ) -> Result<PathBuf, HostError> {
        let dir = self.root.join("transcripts");
        let n = fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0) + 1;
        let path = dir.join(format!("{n:04}-{}.transcript", transcript.body().ceremony));
        write_atomic(&path, transcript.as_bytes(), 0o644)?;
        Ok(path)
    }
}

impl Home {
    /// The certificate of box `id`, checked against `anchors`: a box the home does not hold is
    /// the caller's mistake; a certificate that does not verify is a corrupt home.
    pub fn certificate(
        &self,
        id: BoxId,
        anchors: &TrustAnchors,
    ) -> Result<Verified<postkey_wire::Certificate>, HostError> {
        if !self.store().exists(id) {
            return Err(Usage::UnknownBox(id).into());
        }
        self.store().read_certificate(id, anchors).map_err(|e| match e {
            postkey_box::runtime::RuntimeError::Storage(s) => HostError::Storage(s),
            postkey_box::runtime::RuntimeError::Refused(r) => {
                HostError::corrupt(&self.root.join("boxes").join(format!("{id}.cert")), r)
            }
        })
    }
}
