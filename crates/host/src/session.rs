//! A command's session with the boxes it needs: each box is enabled from its shares for the
//! session's lifetime and locked (its keys zeroized) when the session ends. The session is the
//! box side of the box link: [`Session::serve`] takes a command frame for one box, decodes it,
//! runs it through the box's dispatcher, makes every change durable and answers a reply frame.
//!
//! ```text
//!  enable(id, shares) ──► self-tests, shares, unseal ──► ATTEST_STATE(nonce) ──► version ≥ recorded?
//!                                                          no: refused (rollback), logged
//!  serve(id, frame)   ──► decode (2xxx refused, logged) ──► dispatch ──► seal + write + version
//!                     ──► every refusal logged ──► reply frame
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use postkey_box::runtime::Enabled;
use postkey_box::{Host, SecureBox, Stopped};
use postkey_secrets::rng::OsEntropy;
use postkey_wire::command::{
    AttestState, BoxRequest, Command, Outcome, Response, answers_of, peek_code, reply_from_bytes,
    reply_to_bytes,
};
use postkey_wire::{
    BoxId, CommandCode, MeterId, MeterLink, Nonce, Refusal, ResponseCode, ShareRef, TrustAnchors,
};

use crate::link::MeterLinks;
use crate::{Home, HostError, Usage, clock};

/// The boxes a command has enabled. Each box has its own lock: commands to different boxes
/// run in parallel (as boxes on separate hosts would), commands to one box one at a time.
#[derive(Debug)]
pub struct Session {
    home: Home,
    anchors: TrustAnchors,
    /// Each enabled box, or `None` once it stopped: a box whose state could not be written no
    /// longer matches its sealed state on disk, so it is locked (its keys zeroized) at once and
    /// must be enabled again from what is on disk.
    boxes: BTreeMap<BoxId, Mutex<Option<Enabled>>>,
}

/// A box's lock. A panic while it was held (a meter link's, say) may have left the box changed
/// in memory and not on disk: such a box is stopped (its slot emptied, its keys zeroized), as
/// after a failed write.
fn lock(m: &Mutex<Option<Enabled>>) -> MutexGuard<'_, Option<Enabled>> {
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

    fn commit(&mut self, secure_box: &mut SecureBox) -> Result<(), HostError> {
        self.session.persist(self.id, secure_box)
    }

    fn meter_link(&mut self, meter: &MeterId) -> Option<&mut dyn MeterLink> {
        let link: &mut dyn MeterLink = self.meters.as_deref_mut()?.get_mut(meter)?;
        Some(link)
    }

    fn log(&mut self, refusal: &Refusal) {
        self.session.log(self.id, refusal);
    }
}

impl Session {
    /// A session on an initialized home.
    pub fn new(home: &Home) -> Result<Self, HostError> {
        Ok(Self { home: home.clone(), anchors: home.anchors()?, boxes: BTreeMap::new() })
    }

    /// A session on a home whose anchors are being made (the first ceremony).
    pub(crate) fn with_anchors(home: &Home, anchors: TrustAnchors) -> Self {
        Self { home: home.clone(), anchors, boxes: BTreeMap::new() }
    }

    /// The home.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The trust anchors.
    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
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
        self.log(component, &Refusal::new(error.response_code(), error.to_string()));
        error
    }

    /// Enables box `id` from its share files in `shares_dir`, then runs the state-version check
    /// of SPEC §7.2 item 7 before anything else is asked of it.
    pub fn enable(&mut self, id: BoxId, shares_dir: &Path) -> Result<(), HostError> {
        // Enabled already and running: nothing to do. A box that stopped is enabled again from
        // what is on disk.
        if self.boxes.get(&id).is_some_and(|cell| lock(cell).is_some()) {
            return Ok(());
        }
        if !self.home.store().exists(id) {
            return Err(Usage::UnknownBox(id).into());
        }
        let shares = self.home.share_files(shares_dir, id)?;
        if shares.is_empty() {
            return Err(Usage::NoShares { box_id: id, dir: shares_dir.to_path_buf() }.into());
        }
        let context =
            [id.to_string().as_bytes(), &clock::now().unix_micros().to_be_bytes(), &os_nonce()?]
                .concat();
        let enabled =
            match self.home.store().enable(id, &self.anchors, &shares, OsEntropy, &context) {
                Ok(enabled) => enabled,
                Err(postkey_box::runtime::RuntimeError::Refused(e)) => {
                    let refusal = e.to_refusal();
                    self.log(id, &refusal);
                    return Err(HostError::refused(id, refusal));
                }
                Err(e) => return Err(self.logged(id, e.into())),
            };
        self.boxes.insert(id, Mutex::new(Some(enabled)));
        if let Err(e) = self.check_version(id) {
            self.boxes.remove(&id);
            return Err(e);
        }
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
            let knows = self.boxes.get(&id).is_some_and(|e| {
                lock(e).as_ref().is_some_and(|e| e.secure_box.knows_domain(&domain))
            });
            if !knows {
                self.call_one(id, postkey_wire::command::AdoptDomain { bundle })?;
            }
        }
        Ok(())
    }

    /// SPEC §7.2 item 7: the box signs its state version over a fresh nonce; a version below the
    /// highest recorded means an old state was restored, and the box is refused.
    fn check_version(&self, id: BoxId) -> Result<(), HostError> {
        let nonce = Nonce(os_nonce()?);
        let attestation = self.call_one(id, AttestState { nonce })?;
        let cert = self.home.certificate(id, &self.anchors)?;
        let checked = attestation.verify(&cert.body().identity).map_err(|e| {
            let refusal = Refusal::new(e.response_code(), format!("state attestation: {e}"));
            self.log(id, &refusal);
            HostError::refused(id, refusal)
        })?;
        if checked.body().nonce != nonce || checked.body().box_id != id {
            let refusal = Refusal::new(
                ResponseCode::NONCE_MISMATCH,
                "the state attestation answers another nonce or box",
            );
            self.log(id, &refusal);
            return Err(HostError::refused(id, refusal));
        }
        self.home.record_version(id, checked.body().version).map_err(|e| self.logged(id, e))
    }

    /// The shares that enabled box `id`, by set and index.
    pub fn presented(&self, id: BoxId) -> Vec<ShareRef> {
        self.boxes
            .get(&id)
            .and_then(|e| lock(e).as_ref().map(|e| e.presented.clone()))
            .unwrap_or_default()
    }

    /// One command frame for box `id`, as a box link delivers it; the reply frame. `meters` are
    /// the meter links of a Steel box's production line. Every refusal (of the frame, of the
    /// command, of an item) is written to the error log; every change of the box is durable
    /// before the reply is made.
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

    /// Runs a decoded command on enabled box `id`: seal, write and record the version before the
    /// response is returned; a refusal of the whole command persists nothing.
    fn execute(
        &self,
        id: BoxId,
        command: Command,
        meters: Option<&mut MeterLinks>,
    ) -> Result<Response, Refusal> {
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
        let Some(enabled) = slot.as_mut() else { return refuse(locked()) };
        let b = &mut enabled.secure_box;
        let mut host = BoxHost { session: self, id, meters };
        // A panic inside the command (a meter link's, say) stops the box like a failed write.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            postkey_box::dispatch(b, command, clock::now(), &mut host)
        }));
        for alarm in b.take_alarms() {
            self.log(id, &Refusal::new(ResponseCode::RNG_FAILURE, format!("alarm: {alarm}")));
        }
        // Durable before the answers leave: seal, write, record the version. A box whose state
        // could not be written stops (fail-stop): it is locked and its keys zeroized, so that no
        // later answer can rest on a change the disk does not hold. The error log gets the whole
        // cause; the peer only the code and what happened, never a path of this host.
        let stop = |code: ResponseCode, detail: String, what: &str| {
            self.log(id, &Refusal::new(code, detail));
            Refusal::new(code, format!("{what}; the box is stopped: enable it again"))
        };
        let outcome = match result {
            Err(_) => Err(stop(
                ResponseCode::BOX_ERROR_STATE,
                "the command stopped on an internal fault".into(),
                "the command stopped on an internal fault",
            )),
            // A refusal persists nothing: boxes refuse before they change anything.
            Ok(Err(Stopped::Refused(e))) => return refuse(e.to_refusal()),
            Ok(Err(Stopped::Host(e))) => Err(stop(
                e.response_code(),
                e.to_string(),
                "the box's state could not be made durable",
            )),
            Ok(Ok(response)) => match self.persist(id, b) {
                Ok(()) => Ok(response),
                Err(e) => Err(stop(
                    e.response_code(),
                    e.to_string(),
                    "the box's state could not be made durable",
                )),
            },
        };
        let response = match outcome {
            Ok(response) => response,
            Err(refusal) => {
                *slot = None;
                return Err(refusal);
            }
        };
        drop(slot);
        let refusals: Vec<&Refusal> = response.refusals().into_iter().map(|(_, r)| r).collect();
        self.log_all(id, &refusals);
        Ok(response)
    }

    /// Seals `b` if it changed, writes it durably and records its new version.
    fn persist(&self, id: BoxId, b: &mut SecureBox) -> Result<(), HostError> {
        let wrote = postkey_archive::metrics::durable(|| self.home.store().commit(b))?;
        if !wrote {
            return Ok(());
        }
        let version = b.version();
        postkey_archive::metrics::durable(|| self.home.record_version(id, version))
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
        let response = reply.map_err(|refusal| HostError::refused(id, refusal))?;
        answers_of::<R>(sent, response).map_err(mismatch)
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

    /// Takes a box made during this session (already enabled): persists it, records its version
    /// and keeps it enabled for the rest of the session.
    pub(crate) fn adopt(
        &mut self,
        mut secure_box: SecureBox,
        presented: Vec<ShareRef>,
    ) -> Result<(), HostError> {
        let id = secure_box.id();
        self.home.store().persist(&mut secure_box).map_err(|e| self.logged(id, e.into()))?;
        secure_box.take_dirty();
        self.home.record_version(id, secure_box.version())?;
        self.boxes.insert(id, Mutex::new(Some(Enabled { secure_box, presented })));
        Ok(())
    }

    /// The enabled boxes.
    pub fn enabled(&self) -> impl Iterator<Item = BoxId> + '_ {
        self.boxes.iter().filter(|(_, cell)| lock(cell).is_some()).map(|(id, _)| *id)
    }

    /// Locks every box: their keys are zeroized as they drop.
    pub fn lock(self) {}
}
