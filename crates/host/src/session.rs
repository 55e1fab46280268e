//! A command's session with the boxes it needs: each box is enabled from its shares for the
//! session's lifetime, held by this command alone (its box lock), and locked (its keys zeroized)
//! when the session ends. The session is the box side of the box link: [`Session::serve`] takes
//! a command frame for one box, decodes it, runs it through the box's dispatcher, makes every
//! change durable and answers a reply frame that carries the box's new state version.
//!
//! ```text
//!  enable(id, shares, expected) ──► box lock ──► self-tests, shares, unseal
//!      ──► ATTEST_STATE(nonce): installation = archive's? version ≥ archive's? else refused, logged
//!  serve(id, frame) ──► decode (2xxx refused, logged) ──► dispatch ──► seal + write (fail-stop)
//!      ──► every refusal logged ──► reply frame {answers, state version}
//! ```
//!
//! The session never writes the archive: its callers (the KMS computer, the ceremonies) record
//! the versions the replies carry in the same transaction as the records the commands made.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use postkey_box::runtime::Enabled;
use postkey_box::{Host, Seal, SecureBox, Stopped};
use postkey_secrets::rng::OsEntropy;
use postkey_wire::command::{
    Answered, AttestState, BoxRequest, Command, Outcome, answers_of, peek_code, reply_from_bytes,
    reply_to_bytes,
};
use postkey_wire::{
    BoxId, CommandCode, MeterId, MeterLink, Nonce, Refusal, ResponseCode, ShareRef,
    StateAttestation, StateVersion,
};

use crate::archive::Expected;
use crate::link::MeterLinks;
use crate::lock::{BoxLock, Wait};
use crate::{Home, HostError, Usage, clock};

/// What enabling does with a state older than the archive's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restored {
    /// Refused (4004) and logged: every command but the re-baseline.
    Refused,
    /// Kept enabled, for the re-baseline to judge.
    Kept,
}

/// An enabled box, and the lock that makes this command its only user.
struct Slot {
    enabled: Enabled,
    _lock: BoxLock,
}

/// The boxes a command has enabled. Each box has its own lock: commands to different boxes
/// run in parallel (as boxes on separate hosts would), commands to one box one at a time.
pub struct Session {
    home: Home,
    wait: Wait,
    /// Each enabled box, or `None` once it stopped: a box whose state could not be written no
    /// longer matches its sealed state on disk, so it is locked (its keys zeroized) at once and
    /// must be enabled again from what is on disk.
    boxes: BTreeMap<BoxId, Mutex<Option<Slot>>>,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("home", &self.home.root())
            .field("boxes", &self.boxes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A box's lock. A panic while it was held (a meter link's, say) may have left the box changed
/// in memory and not on disk: such a box is stopped (its slot emptied, its keys zeroized), as
/// after a failed write.
fn lock(m: &Mutex<Option<Slot>>) -> MutexGuard<'_, Option<Slot>> {
    match m.lock() {
        Ok(guard) => guard,
        Err(poisoned) => {
            let mut guard = poisoned.into_inner();
            *guard = None;
            guard
        }
    }
}

/// A fresh 32-byte value from the OS, for nonces and enabling contexts (never for keys: those
/// come from the box generators).
pub(crate) fn os_nonce() -> Result<[u8; 32], HostError> {
    let mut n = [0u8; 32];
    postkey_secrets::rng::EntropySource::fill(&mut OsEntropy, &mut n)
        .map_err(|e| HostError::Entropy(e.to_string()))?;
    Ok(n)
}

/// What a box gets from this host while it runs one command: durable commits, the meter links
/// of its production line, and the error log.
struct BoxHost<'a> {
    session: &'a Session,
    id: BoxId,
    meters: Option<&'a mut MeterLinks>,
}

impl Host for BoxHost<'_> {
    type Error = HostError;

    fn commit(&mut self, secure_box: &mut dyn Seal) -> Result<(), HostError> {
        self.session.persist(secure_box)
    }

    fn meter_link(&mut self, meter: &MeterId) -> Option<&mut dyn MeterLink> {
        let link: &mut dyn MeterLink = self.meters.as_deref_mut()?.get_mut(meter)?;
        Some(link)
    }

    fn meters_durable(&mut self, meters: &[MeterId]) -> Result<(), Refusal> {
        match self.meters.as_deref_mut() {
            Some(links) => links.make_durable(meters),
            None => Ok(()),
        }
    }

    fn log(&mut self, refusal: &Refusal) {
        self.session.log(self.id, refusal);
    }
}

impl Session {
    /// A session on `home`; a box another command holds is refused at once, or waited for.
    pub fn new(home: &Home, wait: Wait) -> Self {
        Self { home: home.clone(), wait, boxes: BTreeMap::new() }
    }

    /// The home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Writes a refusal by `component` to the error log. A failure to log must not hide the
    /// refusal itself, so it is dropped.
    pub(crate) fn log(&self, component: impl ToString, refusal: &Refusal) {
        let _ = self.home.log_error(
            &component.to_string(),
            refusal.code,
            &refusal.message,
            clock::now(),
        );
    }

    /// Writes the refusals of one batch to the error log with one flush.
    fn log_all(&self, component: BoxId, refusals: &[&Refusal]) {
        if refusals.is_empty() {
            return;
        }
        let now = clock::now();
        let entries: Vec<(ResponseCode, &str)> =
            refusals.iter().map(|r| (r.code, r.message.as_str())).collect();
        let _ = self.home.log_errors(&component.to_string(), &entries, now);
    }

    /// Logs `error`, found about `component`, and returns it.
    pub(crate) fn logged(&self, component: impl ToString, error: HostError) -> HostError {
        self.home.logged(&component.to_string(), error)
    }

    /// Enables box `id` from its share files in `shares_dir` and runs the state check of
    /// protocol §7.2 item 7 before anything else is asked of it: the box signs its state over a fresh
    /// nonce, and must belong to the archive's installation with a version not below the
    /// archive's (`expected`). Returns the version it attested, for the caller to record.
    pub fn enable(
        &mut self,
        id: BoxId,
        shares_dir: &Path,
        expected: &Expected,
    ) -> Result<StateVersion, HostError> {
        // Enabled already and running: nothing to do. A box that stopped is enabled again from
        // what is on disk.
        if let Some(version) = self.version(id) {
            return Ok(version);
        }
        Ok(self.enable_checked(id, shares_dir, expected, Restored::Refused)?.version)
    }

    /// Enables box `id` as [`Self::enable`] does, except that a state older than the archive's
    /// is kept enabled rather than refused: for the re-baseline ceremony, which decides on what
    /// the state attests (its version, the key IDs and box numbers it has used).
    pub(crate) fn enable_restored(
        &mut self,
        id: BoxId,
        shares_dir: &Path,
        expected: &Expected,
    ) -> Result<StateAttestation, HostError> {
        if self.version(id).is_some() {
            return Err(Usage::InvalidArgument(format!(
                "{id} is enabled already in this command: a restored state is enabled alone"
            ))
            .into());
        }
        self.enable_checked(id, shares_dir, expected, Restored::Kept)
    }

    fn enable_checked(
        &mut self,
        id: BoxId,
        shares_dir: &Path,
        expected: &Expected,
        restored: Restored,
    ) -> Result<StateAttestation, HostError> {
        if expected.certificate.body().box_id != id {
            return Err(Usage::UnknownBox(id).into());
        }
        // Each refusal below is in the error log, as the box's own refusals are.
        let box_lock = self.home.lock_box(id, self.wait).map_err(|e| self.logged(id, e))?;
        if !self.home.store().exists(id) {
            // The archive records the box (its certificate was found): its state was removed
            // from the home, which is damage, not a mistake of the caller's.
            return Err(self.logged(
                id,
                HostError::Missing {
                    path: self.home.store().state_path(id),
                    reason: format!(
                        "the archive records {id}: restore its sealed state from backup"
                    ),
                },
            ));
        }
        // Each file checked alone first: one that is not a valid share of this box (another
        // installation's, a stray, a damaged copy) is named in the error log and left out, so it
        // cannot keep a valid quorum from enabling the box.
        let identity = expected.certificate.body().identity;
        let mut shares = Vec::new();
        let files = self.home.share_files(shares_dir, id).map_err(|e| self.logged(id, e))?;
        for (name, bytes) in files {
            match postkey_secrets::shares::check_share(&bytes, &identity, id) {
                Ok(_) => shares.push(bytes),
                Err(e) => self.log(
                    id,
                    &Refusal::new(ResponseCode::SHARE_INVALID, format!("{name} left out: {e}")),
                ),
            }
        }
        if shares.is_empty() {
            let e = Usage::NoShares { box_id: id, dir: shares_dir.to_path_buf() };
            return Err(self.logged(id, e.into()));
        }
        let context =
            [id.to_string().as_bytes(), &clock::now().unix_micros().to_be_bytes(), &os_nonce()?]
                .concat();
        let enabled =
            match self.home.store().enable(&expected.certificate, &shares, OsEntropy, &context) {
                Ok(enabled) => enabled,
                Err(postkey_box::runtime::RuntimeError::Refused(e)) => {
                    let refusal = e.to_refusal();
                    self.log(id, &refusal);
                    return Err(HostError::refused(id, refusal));
                }
                Err(e) => return Err(self.logged(id, e.into())),
            };
        self.boxes.insert(id, Mutex::new(Some(Slot { enabled, _lock: box_lock })));
        match self.check_state(id, expected, restored) {
            Ok(attested) => Ok(attested),
            Err(e) => {
                self.boxes.remove(&id);
                Err(e)
            }
        }
    }

    /// protocol §7.2 item 7: the box signs its state over a fresh nonce; a box of another
    /// installation, or with a version below the highest recorded (an old state restored), is
    /// refused.
    fn check_state(
        &self,
        id: BoxId,
        expected: &Expected,
        restored: Restored,
    ) -> Result<StateAttestation, HostError> {
        let nonce = Nonce(os_nonce()?);
        let attestation = self.call_one(id, AttestState { nonce })?;
        let checked = attestation.verify(&expected.certificate.body().identity).map_err(|e| {
            let refusal = Refusal::new(e.response_code(), format!("state attestation: {e}"));
            self.log(id, &refusal);
            HostError::refused(id, refusal)
        })?;
        let body = checked.body();
        if body.nonce != nonce || body.box_id != id {
            let refusal = Refusal::new(
                ResponseCode::NONCE_MISMATCH,
                "the state attestation answers another nonce or box",
            );
            self.log(id, &refusal);
            return Err(HostError::refused(id, refusal));
        }
        if body.installation != expected.installation {
            return Err(self.logged(
                id,
                HostError::InstallationMismatch(format!(
                    "{id} belongs to installation {}, the archive to {}: it is not run against \
                     this archive",
                    body.installation, expected.installation
                )),
            ));
        }
        if body.version < expected.version && restored == Restored::Refused {
            return Err(self.logged(
                id,
                HostError::Rollback {
                    box_id: id,
                    recorded: expected.version,
                    presented: body.version,
                },
            ));
        }
        Ok(body.clone())
    }

    /// The shares that enabled box `id`, by set and index.
    pub fn presented(&self, id: BoxId) -> Vec<ShareRef> {
        self.boxes
            .get(&id)
            .and_then(|e| lock(e).as_ref().map(|s| s.enabled.presented.clone()))
            .unwrap_or_default()
    }

    /// The state version of enabled box `id`, if it is enabled and running.
    pub fn version(&self, id: BoxId) -> Option<StateVersion> {
        self.boxes.get(&id).and_then(|e| lock(e).as_ref().map(|s| s.enabled.secure_box.version()))
    }

    /// One command frame for box `id`, as a box link delivers it; the reply frame. `meters` are
    /// the meter links of a Steel box's production line. Every refusal (of the frame, of the
    /// command, of an item) is written to the error log; every change of the box is durable
    /// before the reply is made, and the reply carries the box's state version.
    pub fn serve(&self, id: BoxId, frame: &[u8], meters: Option<&mut MeterLinks>) -> Vec<u8> {
        let code = peek_code(frame).unwrap_or(CommandCode(0));
        let reply = match Command::from_bytes(frame) {
            Ok(command) => self.execute(id, command, meters),
            Err(e) => {
                let refusal = Refusal::new(e.response_code(), e.to_string());
                self.log(id, &refusal);
                Err(refusal)
            }
        };
        reply_to_bytes(code, &reply)
    }

    /// Runs a decoded command on enabled box `id`: seal and write before the response is
    /// returned; a refusal of the whole command persists nothing.
    fn execute(
        &self,
        id: BoxId,
        command: Command,
        meters: Option<&mut MeterLinks>,
    ) -> Result<Answered, Refusal> {
        let refuse = |refusal: Refusal| {
            self.log(id, &refusal);
            Err(refusal)
        };
        let locked = || {
            let e = HostError::Locked(id);
            Refusal::new(e.response_code(), e.to_string())
        };
        let Some(cell) = self.boxes.get(&id) else { return refuse(locked()) };
        let mut slot = lock(cell);
        let Some(Slot { enabled, .. }) = slot.as_mut() else { return refuse(locked()) };
        let b = &mut enabled.secure_box;
        let mut host = BoxHost { session: self, id, meters };
        // A panic inside the command (a meter link's, say) stops the box like a failed write.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            postkey_box::dispatch(b, command, clock::now(), &mut host)
        }));
        for alarm in b.take_alarms() {
            self.log(id, &Refusal::new(ResponseCode::RNG_FAILURE, format!("alarm: {alarm}")));
        }
        // Durable before the answers leave. A box whose state could not be written stops
        // (fail-stop): it is locked and its keys zeroized, so that no later answer can rest on a
        // change the disk does not hold. The error log gets the whole cause; the peer only the
        // code and what happened, never a path of this host.
        let stop = |code: ResponseCode, detail: String, what: &str| {
            self.log(id, &Refusal::new(code, detail));
            Refusal::new(code, format!("{what}; the box is stopped: enable it again"))
        };
        let durable = "the box's state could not be made durable";
        let outcome = match result {
            Err(_) => Err(stop(
                ResponseCode::BOX_ERROR_STATE,
                "the command stopped on an internal fault".into(),
                "the command stopped on an internal fault",
            )),
            // A refusal persists nothing: boxes refuse before they change anything.
            Ok(Err(Stopped::Refused(e))) => return refuse(e.to_refusal()),
            Ok(Err(Stopped::Host(e))) => Err(stop(e.response_code(), e.to_string(), durable)),
            Ok(Ok(response)) => match self.persist(b) {
                Ok(()) => Ok(Answered { response, state_version: b.version() }),
                Err(e) => Err(stop(e.response_code(), e.to_string(), durable)),
            },
        };
        let answered = match outcome {
            Ok(answered) => answered,
            Err(refusal) => {
                *slot = None;
                return Err(refusal);
            }
        };
        drop(slot);
        let refusals: Vec<&Refusal> =
            answered.response.refusals().into_iter().map(|(_, r)| r).collect();
        self.log_all(id, &refusals);
        Ok(answered)
    }

    /// Seals `b` if it changed and writes it durably.
    fn persist<B: Seal + ?Sized>(&self, b: &mut B) -> Result<(), HostError> {
        postkey_archive::metrics::durable(|| self.home.store().commit(b))?;
        Ok(())
    }

    /// Sends a batch of `R` items to enabled box `id` through the same frames a box link
    /// carries: each item's answer, or its refusal (already in the error log).
    pub fn call<R: BoxRequest>(
        &self,
        id: BoxId,
        items: Vec<R>,
    ) -> Result<Vec<Outcome<R::Answer>>, HostError> {
        let sent = items.len();
        let reply = self.serve(id, &R::batch(items).to_bytes(), None);
        let mismatch = |e: postkey_wire::WireError| {
            HostError::refused(id, Refusal::new(e.response_code(), e.to_string()))
        };
        let (_, reply) = reply_from_bytes(&reply).map_err(mismatch)?;
        let answered = reply.map_err(|refusal| HostError::refused(id, refusal))?;
        answers_of::<R>(sent, answered.response).map_err(mismatch)
    }

    /// Sends one `R` item to enabled box `id`; its refusal is an error.
    pub fn call_one<R: BoxRequest>(&self, id: BoxId, item: R) -> Result<R::Answer, HostError> {
        match self.call(id, vec![item])?.pop() {
            Some(Ok(answer)) => Ok(answer),
            Some(Err(refusal)) => Err(HostError::refused(id, refusal)),
            None => Err(HostError::refused(
                id,
                Refusal::new(ResponseCode::ANSWER_MISMATCH, "the box answered no item"),
            )),
        }
    }

    /// Takes a box made during this session (enabled as it was made): writes its first sealed
    /// state, never over another box's, and keeps it enabled for the rest of the session.
    pub(crate) fn adopt(
        &mut self,
        mut secure_box: SecureBox,
        presented: Vec<ShareRef>,
    ) -> Result<(), HostError> {
        let id = secure_box.id();
        let box_lock = self.home.lock_box(id, self.wait)?;
        self.home.store().create(&mut secure_box).map_err(|e| self.logged(id, e.into()))?;
        let slot = Slot { enabled: Enabled { secure_box, presented }, _lock: box_lock };
        self.boxes.insert(id, Mutex::new(Some(slot)));
        Ok(())
    }

    /// Whether enabled box `id` knows `domain` (a manufacturing box: created or adopted it).
    pub(crate) fn knows_domain(&self, id: BoxId, domain: &postkey_wire::DomainId) -> bool {
        self.boxes.get(&id).is_some_and(|e| {
            lock(e).as_ref().is_some_and(|s| s.enabled.secure_box.knows_domain(domain))
        })
    }

    /// The enabled boxes.
    pub fn enabled(&self) -> impl Iterator<Item = BoxId> + '_ {
        self.boxes.iter().filter(|(_, cell)| lock(cell).is_some()).map(|(id, _)| *id)
    }

    /// Locks every box: their keys are zeroized as they drop.
    pub fn lock(self) {}
}
