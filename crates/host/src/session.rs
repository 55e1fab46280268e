//! A command's session with the boxes it needs: each box is enabled from its shares for the
//! session's lifetime and locked (its keys zeroized) when the session ends.
//!
//! ```text
//!  enable(id, shares) ──► self-tests, shares, unseal ──► attest(nonce) ──► version ≥ recorded?
//!                                                          no: refused (rollback), logged
//!  run(id, command)   ──► box answers ──► state changed? seal + write + record version
//!                                      ──► refused? error log entry, state unchanged
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use postkey_box::runtime::Enabled;
use postkey_box::{BoxError, SecureBox};
use postkey_secrets::rng::OsEntropy;
use postkey_wire::{BoxId, Nonce, ResponseCode, ShareRef, TrustAnchors};

use crate::{Home, HostError, clock};

/// The boxes a command has enabled. Each box has its own lock: commands to different boxes
/// run in parallel (as boxes on separate hosts would), commands to one box one at a time.
#[derive(Debug)]
pub struct Session {
    home: Home,
    anchors: TrustAnchors,
    boxes: BTreeMap<BoxId, Mutex<Enabled>>,
}

/// A box's lock. A panic inside a command cannot leave a half-changed state that is then
/// sealed: a command changes the box only after every check, and nothing is written unless
/// the command returned.
fn lock(m: &Mutex<Enabled>) -> MutexGuard<'_, Enabled> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A fresh 32-byte value from the OS, for nonces and enabling contexts (never for keys: those
/// come from the box generators).
fn os_nonce() -> Result<[u8; 32], HostError> {
    let mut n = [0u8; 32];
    postkey_secrets::rng::EntropySource::fill(&mut OsEntropy, &mut n)
        .map_err(|e| HostError::Usage(format!("the OS entropy source failed: {e}")))?;
    Ok(n)
}

impl Session {
    /// A session on an initialized home.
    pub fn new(home: &Home) -> Result<Self, HostError> {
        Ok(Self { home: home.clone(), anchors: home.anchors()?, boxes: BTreeMap::new() })
    }

    /// The home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The trust anchors.
    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
    }

    /// Logs a refusal by `component` and returns it as an error.
    pub(crate) fn refuse(&self, component: impl ToString, error: BoxError) -> HostError {
        let component = component.to_string();
        // A failure to log must not hide the refusal itself.
        let _ = self.home.log_error(
            &component,
            error.response_code(),
            &error.to_string(),
            clock::now(),
        );
        HostError::boxed(component, error)
    }

    /// Enables box `id` from its share files in `shares_dir`, then runs the state-version check
    /// of SPEC §7.2 item 7 before anything else is asked of it.
    pub fn enable(&mut self, id: BoxId, shares_dir: &Path) -> Result<(), HostError> {
        if self.boxes.contains_key(&id) {
            return Ok(());
        }
        let shares = self.home.share_files(shares_dir, id)?;
        if shares.is_empty() {
            return Err(HostError::Usage(format!(
                "no share files of {id} in {}: pass the directory that holds them with --shares-dir",
                shares_dir.display()
            )));
        }
        let context =
            [id.to_string().as_bytes(), &clock::now().unix_micros().to_be_bytes(), &os_nonce()?]
                .concat();
        let mut enabled = self
            .home
            .store()
            .enable(id, &self.anchors, &shares, OsEntropy, &context)
            .map_err(|e| self.refuse(id, e))?;
        self.check_version(&mut enabled.secure_box)?;
        self.boxes.insert(id, Mutex::new(enabled));
        if id.box_type() == postkey_wire::BoxType::Manufacturing {
            self.catch_up_domains(id)?;
        }
        Ok(())
    }

    /// SPEC §7.2 item 5: a domain created in one manufacturing box is copied to every other. A
    /// manufacturing box enabled here adopts every domain of the home it does not know yet.
    fn catch_up_domains(&mut self, id: BoxId) -> Result<(), HostError> {
        for bundle in self.home.domains()? {
            let domain = bundle.claimed_body().domain.clone();
            let bytes = self.home.bundle(&domain)?;
            let knows =
                self.boxes.get(&id).is_some_and(|e| lock(e).secure_box.knows_domain(&domain));
            if !knows {
                self.run(id, |b| b.manufacturing()?.adopt_domain(&bytes).map(|_| ()))?;
            }
        }
        Ok(())
    }

    /// SPEC §7.2 item 7: the box signs its state version over a fresh nonce; a version below the
    /// highest recorded means an old state was restored, and the box is refused.
    fn check_version(&self, b: &mut SecureBox) -> Result<(), HostError> {
        let id = b.id();
        let nonce = Nonce(os_nonce()?);
        let attestation = b.attest(nonce, clock::now()).map_err(|e| self.refuse(id, e))?;
        let cert = self
            .home
            .store()
            .read_certificate(id, &self.anchors)
            .map_err(|e| self.refuse(id, e))?;
        let checked = postkey_wire::Unverified::<postkey_wire::StateAttestation>::from_bytes(
            attestation.as_bytes(),
        )
        .and_then(|a| a.verify(&cert.body().identity))
        .map_err(|e| self.refuse(id, e.into()))?;
        if checked.body().nonce != nonce || checked.body().box_id != id {
            return Err(self.refuse(id, BoxError::NonceMismatch));
        }
        let presented = checked.body().version;
        if let Some(recorded) = self.home.recorded_version(id)?
            && presented < recorded
        {
            return Err(self.refuse(id, BoxError::Rollback { recorded, presented }));
        }
        self.home.record_version(id, presented)
    }

    /// The shares that enabled box `id`, by set and index.
    pub fn presented(&self, id: BoxId) -> Vec<ShareRef> {
        self.boxes.get(&id).map(|e| lock(e).presented.clone()).unwrap_or_default()
    }

    /// Runs a command on enabled box `id`. A changed state is sealed, written durably and its
    /// version recorded before the answer is returned; a refusal is written to the error log.
    pub fn run<T>(
        &self,
        id: BoxId,
        command: impl FnOnce(&mut SecureBox) -> Result<T, BoxError>,
    ) -> Result<T, HostError> {
        self.run_batch(id, |b| command(b).map(|answer| vec![Ok(answer)]))?
            .pop()
            .unwrap_or_else(|| Err(HostError::boxed(id, BoxError::Locked)))
    }

    /// Runs a batch command on enabled box `id`: each item answered on its own, one commit for
    /// all of them before any answer is returned, and one error-log entry per refused item. A
    /// refusal of the whole batch persists nothing.
    pub fn run_batch<T>(
        &self,
        id: BoxId,
        command: impl FnOnce(&mut SecureBox) -> Result<Vec<Result<T, BoxError>>, BoxError>,
    ) -> Result<Vec<Result<T, HostError>>, HostError> {
        let Some(cell) = self.boxes.get(&id) else {
            return Err(self.refuse(id, BoxError::Locked));
        };
        let mut enabled = lock(cell);
        let answer = command(&mut enabled.secure_box);
        for alarm in enabled.secure_box.take_alarms() {
            let _ = self.home.log_error(
                &id.to_string(),
                ResponseCode::RNG_FAILURE,
                &format!("alarm: {alarm}"),
                clock::now(),
            );
        }
        // A refusal persists nothing: boxes refuse before they change anything.
        let answers = answer.map_err(|e| self.refuse(id, e))?;
        // Durable before the answers leave: seal, write, record the version.
        let committed =
            postkey_archive::metrics::durable(|| self.home.store().commit(&mut enabled.secure_box));
        let version = enabled.secure_box.version();
        drop(enabled);
        committed.map_err(|e| self.refuse(id, e))?;
        postkey_archive::metrics::durable(|| self.home.record_version(id, version))?;
        Ok(answers.into_iter().map(|a| a.map_err(|e| self.refuse(id, e))).collect())
    }

    /// Takes a box made during this session (already enabled): persists it, records its version
    /// and keeps it enabled for the rest of the session.
    pub(crate) fn adopt(
        &mut self,
        mut secure_box: SecureBox,
        presented: Vec<ShareRef>,
    ) -> Result<(), HostError> {
        let id = secure_box.id();
        self.home.store().persist(&mut secure_box).map_err(|e| self.refuse(id, e))?;
        secure_box.take_dirty();
        self.home.record_version(id, secure_box.version())?;
        self.boxes.insert(id, Mutex::new(Enabled { secure_box, presented }));
        Ok(())
    }

    /// The enabled boxes.
    pub fn enabled(&self) -> impl Iterator<Item = BoxId> + '_ {
        self.boxes.keys().copied()
    }

    /// Locks every box: their keys are zeroized as they drop.
    pub fn lock(self) {}
}
