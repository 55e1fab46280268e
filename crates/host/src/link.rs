//! The embedded box link: the KMC's [`Boxes`] over the boxes a [`Session`] has enabled. Each
//! command is encoded into the frame a remote box link carries, served by the session (decode,
//! dispatch, durable commit) and its reply decoded, so the embedded default runs the same codec
//! and the same checks as boxes on other hosts will.
//!
//! For `INSTALL_KEY` the Steel box's dispatcher drives the meter link itself; the meters on the
//! line are this link's, handed to the session for that command. The KMC (in the PSR role)
//! orders the installation but never carries MI5 or MI6.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use postkey_kmc::Boxes;
use postkey_wire::command::{Answered, Command, reply_from_bytes};
use postkey_wire::{BoxId, MeterId, MeterLink, Refusal, ResponseCode};

use crate::Session;

/// How the meters on a line make the keys they received durable, a batch at a time.
pub type MeterStorage = Box<dyn FnMut(&[MeterId]) -> Result<(), Refusal> + Send>;

/// The meters connected to this host's Steel boxes, by ID, and how they keep their keys.
#[derive(Default)]
pub struct MeterLinks {
    links: BTreeMap<MeterId, Box<dyn MeterLink + Send>>,
    storage: Option<MeterStorage>,
}

impl core::fmt::Debug for MeterLinks {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MeterLinks")
            .field("meters", &self.links.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl MeterLinks {
    /// Connects a meter.
    pub fn connect(&mut self, id: MeterId, link: Box<dyn MeterLink + Send>) {
        self.links.insert(id, link);
    }

    /// Disconnects a meter, handing its link back.
    pub fn disconnect(&mut self, id: &MeterId) -> Option<Box<dyn MeterLink + Send>> {
        self.links.remove(id)
    }

    /// How the meters make their keys durable (the simulator: their files under the home). A
    /// line without it keeps its meters in memory only (tests that drive the link alone).
    pub fn keep_with(&mut self, storage: MeterStorage) {
        self.storage = Some(storage);
    }

    /// Drops the meters' storage (the run that set it is over).
    pub fn forget_storage(&mut self) {
        self.storage = None;
    }

    /// Makes the keys `meters` received durable (see `postkey_box::Host::meters_durable`).
    pub(crate) fn make_durable(&mut self, meters: &[MeterId]) -> Result<(), Refusal> {
        match self.storage.as_mut() {
            Some(storage) => storage(meters),
            None => Ok(()),
        }
    }

    /// The link to meter `id`, if it is connected.
    pub(crate) fn get_mut(
        &mut self,
        id: &MeterId,
    ) -> Option<&mut (dyn MeterLink + Send + 'static)> {
        self.links.get_mut(id).map(|l| &mut **l)
    }
}

/// A session's boxes and the meters on the line, as the KMC reaches them. Cheap to clone: clones
/// share the session. Each call runs on a blocking thread, so the KMC's stages keep Oak, Steel
/// and Brass busy at the same time.
#[derive(Debug, Clone)]
pub struct EmbeddedBoxes {
    session: Arc<Session>,
    meters: Arc<Mutex<MeterLinks>>,
}

impl EmbeddedBoxes {
    /// The link to `session`'s boxes, with `meters` on the Steel boxes' meter links.
    pub fn new(session: Session, meters: MeterLinks) -> Self {
        Self { session: Arc::new(session), meters: Arc::new(Mutex::new(meters)) }
    }

    /// The session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The meters on the line. A panic while installing cannot leave a meter half-installed
    /// (each installation is one assignment), so a poisoned lock is taken as it is.
    pub fn meters(&self) -> MutexGuard<'_, MeterLinks> {
        self.meters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the link and hands the session back, if no clone is left.
    pub fn into_session(self) -> Option<Session> {
        Arc::try_unwrap(self.session).ok()
    }

    /// One frame to box `id` and its reply frame, on this thread.
    fn exchange(&self, id: BoxId, frame: &[u8]) -> Vec<u8> {
        if frame_wants_meters(frame) {
            let mut meters = self.meters();
            self.session.serve(id, frame, Some(&mut meters))
        } else {
            self.session.serve(id, frame, None)
        }
    }
}

/// Only `INSTALL_KEY` reaches the meter link; other commands leave the meters to others.
fn frame_wants_meters(frame: &[u8]) -> bool {
    postkey_wire::command::peek_code(frame) == Some(postkey_wire::CommandCode::INSTALL_KEY)
}

impl Boxes for EmbeddedBoxes {
    fn send(
        &self,
        id: BoxId,
        command: Command,
    ) -> impl Future<Output = Result<Answered, Refusal>> + Send {
        let link = self.clone();
        async move {
            let sent = command.code();
            let frame = command.to_bytes();
            let reply = tokio::task::spawn_blocking(move || link.exchange(id, &frame))
                .await
                .map_err(|e| {
                    Refusal::new(
                        ResponseCode::STORAGE_FAILED,
                        format!("the box's host thread failed: {e}"),
                    )
                })?;
            let (code, reply) = reply_from_bytes(&reply)
                .map_err(|e| Refusal::new(e.response_code(), e.to_string()))?;
            if code != sent {
                return Err(Refusal::new(
                    ResponseCode::ANSWER_MISMATCH,
                    format!("sent {sent}, the reply answers {code}"),
                ));
            }
            reply
        }
    }
}
