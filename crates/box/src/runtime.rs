//! The thin runtime around a sans-IO box: sealed state files written atomically and durably,
//! enabling from custodians' shares (power-up self-tests first), and process hardening.
//!
//! ```text
//!  share files ──check each (signature, owner)──► combine (≥ k, check value)
//!                                                     │ operation combination
//!  <dir>/<ID>.state ──SealedState──► SecureBox::unseal ▼ ──► enabled SecureBox
//!                                                     every change: seal ──► write_atomic
//! ```
//!
//! The box stays enabled for the lifetime of the value that holds it; dropping it locks the
//! box and zeroizes every key it held.

use std::fs;
use std::path::PathBuf;

use postkey_crypto::VerifyingKey;
use postkey_secrets::OperationCombination;
use postkey_secrets::rng::EntropySource;
use postkey_secrets::shares::{self, ShareBody};
use postkey_wire::{BoxId, Certificate, ShareRef, StateVersion, Verified};

use postkey_durable::{
    FileError, ReadError, create_durable, file_error, read_bounded, write_atomic,
};

use crate::{BoxError, Seal, SealedState, SecureBox};

/// Why the runtime could not enable, read or persist a box: its store failed, or the box (its
/// self-tests, shares, sealed state or certificate) refused.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The store's files failed.
    #[error(transparent)]
    Storage(#[from] FileError),
    /// The box refused: a self-test failed, a share or the sealed state does not check.
    #[error(transparent)]
    Refused(#[from] BoxError),
}

impl RuntimeError {
    /// The documented response code.
    pub fn response_code(&self) -> postkey_wire::ResponseCode {
        match self {
            Self::Storage(_) => postkey_wire::ResponseCode::STORAGE_FAILED,
            Self::Refused(e) => e.response_code(),
        }
    }
}

impl From<postkey_wire::WireError> for RuntimeError {
    fn from(e: postkey_wire::WireError) -> Self {
        Self::Refused(e.into())
    }
}

impl From<postkey_secrets::shares::ShareError> for RuntimeError {
    fn from(e: postkey_secrets::shares::ShareError) -> Self {
        Self::Refused(e.into())
    }
}

/// Refuses core dumps of this process (protocol §7.2 item 8): not dumpable, core size 0. Call it
/// before any box is enabled.
pub fn harden_process() -> std::io::Result<()> {
    use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};
    set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    setrlimit(Resource::Core, Rlimit { current: Some(0), maximum: Some(0) })?;
    Ok(())
}

/// Where sealed box states live: `<dir>/<ID>.state`. A box's certificate and everything else
/// public about it is kept by the archive.
#[derive(Debug, Clone)]
pub struct BoxStore {
    dir: PathBuf,
}

impl BoxStore {
    /// The store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Where a box's sealed state is kept.
    pub fn state_path(&self, id: BoxId) -> PathBuf {
        self.dir.join(format!("{id}.state"))
    }

    /// Whether a box's state exists.
    pub fn exists(&self, id: BoxId) -> bool {
        self.state_path(id).exists()
    }

    /// Every box with a sealed state here, in ID order.
    pub fn list(&self) -> Result<Vec<BoxId>, FileError> {
        let mut ids = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(file_error("reading", &self.dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| file_error("reading", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".state").and_then(|s| BoxId::parse(s).ok()) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Seals `secure_box` and writes its state atomically and durably.
    pub fn persist<B: Seal + ?Sized>(
        &self,
        secure_box: &mut B,
    ) -> Result<StateVersion, RuntimeError> {
        let sealed = secure_box.seal()?;
        write_atomic(&self.state_path(sealed.box_id), &sealed.to_bytes(), 0o600)?;
        Ok(sealed.version)
    }

    /// Writes a new box's first sealed state, only if no state of that ID exists: a box made
    /// again under an ID already in use (a manufacturing box restored to an older state) never
    /// overwrites the box that holds it.
    pub fn create<B: Seal + ?Sized>(
        &self,
        secure_box: &mut B,
    ) -> Result<StateVersion, RuntimeError> {
        let sealed = secure_box.seal()?;
        create_durable(&self.state_path(sealed.box_id), &sealed.to_bytes(), 0o600)?;
        secure_box.take_dirty();
        Ok(sealed.version)
    }

    /// Persists `secure_box` if it changed since the last persist: call it after every command
    /// and before its answer leaves. Says whether it wrote; a box whose write failed stays marked
    /// changed.
    pub fn commit<B: Seal + ?Sized>(&self, secure_box: &mut B) -> Result<bool, RuntimeError> {
        if !secure_box.is_dirty() {
            return Ok(false);
        }
        self.persist(secure_box)?;
        secure_box.take_dirty();
        Ok(true)
    }

    /// A box's sealed state.
    pub fn read_state(&self, id: BoxId) -> Result<SealedState, RuntimeError> {
        let path = self.state_path(id);
        let bytes = read_bounded(&path, crate::MAX_SEALED_LEN as u64).map_err(|e| match e {
            ReadError::Storage(s) => RuntimeError::Storage(s),
            // Something that is no file at all is not a state that was altered.
            ReadError::NotAFile(_) => RuntimeError::Storage(file_error(
                "reading",
                &path,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            )),
            ReadError::TooLarge { .. } => {
                BoxError::Secret(postkey_secrets::SecretError::SealedStateInvalid).into()
            }
        })?;
        let sealed = SealedState::from_bytes(&bytes)?;
        if sealed.box_id != id {
            return Err(BoxError::NotForThisBox { addressed: sealed.box_id, this: id }.into());
        }
        Ok(sealed)
    }

    /// Enables the box `cert` certifies (the caller checked the certificate against the trust
    /// anchors) from share files: power-up self-tests first, then each share checked alone
    /// against the box's certified identity key, then at least k distinct shares of one
    /// set recombined into the operation combination, which must open the sealed state.
    pub fn enable(
        &self,
        cert: &Verified<Certificate>,
        share_files: &[Vec<u8>],
        os: impl EntropySource + Send + Sync + 'static,
        enable_context: &[u8],
    ) -> Result<Enabled, RuntimeError> {
        postkey_secrets::selftest::power_up().map_err(BoxError::from)?;
        let id = cert.body().box_id;
        let (combination, presented) = recombine(id, &cert.body().identity, share_files)?;
        let sealed = self.read_state(id)?;
        let secure_box = SecureBox::unseal(&sealed, combination, os, enable_context)
            .map_err(RuntimeError::Refused)?;
        Ok(Enabled { secure_box, presented })
    }
}

/// Checks share files of box `id` against its identity key and recombines them.
fn recombine(
    id: BoxId,
    identity: &VerifyingKey,
    share_files: &[Vec<u8>],
) -> Result<(OperationCombination, Vec<ShareRef>), BoxError> {
    let checked: Vec<Verified<ShareBody>> = share_files
        .iter()
        .map(|f| shares::check_share(f, identity, id))
        .collect::<Result<_, _>>()?;
    let presented =
        checked.iter().map(|s| ShareRef { set: s.body().set, index: s.body().index }).collect();
    Ok((shares::combine(&checked)?, presented))
}

/// An enabled box and the shares that enabled it (by set and index, for the transcript).
#[derive(Debug)]
pub struct Enabled {
    /// The box.
    pub secure_box: SecureBox,
    /// The shares presented.
    pub presented: Vec<ShareRef>,
}
