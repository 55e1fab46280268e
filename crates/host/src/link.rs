//! The embedded box link: the KMC's [`Boxes`] over the boxes a [`Session`] has enabled, with the
//! same messages and checks a remote box will have (SPEC §9 levels 2 and 3). Every change a
//! command makes is sealed and written before the answer is returned.
//!
//! For `INSTALL_KEY` the Steel box's host connects it to the meter over the meter link: the KMC
//! (in the PSR role) orders the installation but never carries MI5 or MI6.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use postkey_box::InstallOutcome;
use postkey_kmc::{Answer, Boxes, Refusal};
use postkey_meter::MeterLink;
use postkey_wire::{
    BoxId, CommandCode, DomainId, KeyForSteel, MeterId, Nonce, ResponseCode, Unverified,
};

use crate::{HostError, Session, clock};

/// The meters connected to this host's Steel boxes, by ID.
#[derive(Default)]
pub struct MeterLinks {
    links: BTreeMap<MeterId, Box<dyn MeterLink + Send>>,
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
}

fn refusal(id: BoxId, e: &HostError) -> Refusal {
    Refusal {
        box_id: id,
        code: e.response_code().unwrap_or(ResponseCode::STORAGE_FAILED),
        message: e.to_string(),
    }
}

/// A command-level refusal (SPEC §9 level 2), written to the error log like every other.
fn command_error(session: &Session, id: BoxId, code: ResponseCode, message: String) -> Refusal {
    let _ = session.home().log_error(&id.to_string(), code, &message, clock::now());
    Refusal { box_id: id, code, message }
}

fn check_counts(
    session: &Session,
    id: BoxId,
    items: &[Vec<Vec<u8>>],
    n: usize,
) -> Result<(), Refusal> {
    match items.iter().find(|p| p.len() != n) {
        None => Ok(()),
        Some(p) => Err(command_error(
            session,
            id,
            ResponseCode::PARAMETER_COUNT,
            format!("expected {n} parameters per item, got {}", p.len()),
        )),
    }
}

fn answers<T>(
    id: BoxId,
    results: Vec<Result<T, HostError>>,
    records: impl Fn(T) -> Vec<Vec<u8>>,
) -> Vec<Answer> {
    results.into_iter().map(|r| r.map(&records).map_err(|e| refusal(id, &e))).collect()
}

impl Boxes for EmbeddedBoxes {
    fn call_batch(
        &self,
        id: BoxId,
        command: CommandCode,
        items: Vec<Vec<Vec<u8>>>,
    ) -> impl Future<Output = Result<Vec<Answer>, Refusal>> + Send {
        let link = self.clone();
        async move {
            tokio::task::spawn_blocking(move || link.dispatch(id, command, &items))
                .await
                .unwrap_or_else(|e| {
                    Err(Refusal {
                        box_id: id,
                        code: ResponseCode::STORAGE_FAILED,
                        message: format!("the box's host thread failed: {e}"),
                    })
                })
        }
    }
}

impl EmbeddedBoxes {
    fn dispatch(
        &self,
        id: BoxId,
        command: CommandCode,
        items: &[Vec<Vec<u8>>],
    ) -> Result<Vec<Answer>, Refusal> {
        let now = clock::now();
        let s = &*self.session;
        let whole = |e: HostError| refusal(id, &e);
        let bytes = |v: &[u8]| v.to_vec();
        match command {
            CommandCode::ATTEST_STATE => {
                check_counts(s, id, items, 1)?;
                Ok(items
                    .iter()
                    .map(|p| {
                        let nonce: [u8; 32] = p[0].as_slice().try_into().map_err(|_| {
                            command_error(
                                s,
                                id,
                                ResponseCode::PARAMETER_SYNTAX,
                                "malformed nonce".into(),
                            )
                        })?;
                        s.run(id, |b| b.attest(Nonce(nonce), now))
                            .map(|a| vec![bytes(a.as_bytes())])
                            .map_err(|e| refusal(id, &e))
                    })
                    .collect())
            }
            CommandCode::GENERATE_KEY => {
                check_counts(s, id, items, 1)?;
                let mi1s: Vec<&[u8]> = items.iter().map(|p| p[0].as_slice()).collect();
                let results =
                    s.run_batch(id, |b| Ok(b.oak()?.generate_keys(&mi1s, now))).map_err(whole)?;
                Ok(answers(id, results, |g| vec![bytes(g.mi3.as_bytes()), bytes(g.mi4.as_bytes())]))
            }
            CommandCode::INSTALL_KEY => {
                check_counts(s, id, items, 2)?;
                self.install(id, items, now)
            }
            CommandCode::RECOVER => {
                check_counts(s, id, items, 0)?;
                Ok(items
                    .iter()
                    .map(|_| {
                        s.run(id, |b| b.steel()?.abort_interrupted(now))
                            .map(|aborted| aborted.iter().map(|a| bytes(a.as_bytes())).collect())
                            .map_err(|e| refusal(id, &e))
                    })
                    .collect())
            }
            CommandCode::CHECK_INSTALL => {
                check_counts(s, id, items, 2)?;
                let pairs: Vec<(&[u8], &[u8])> =
                    items.iter().map(|p| (p[0].as_slice(), p[1].as_slice())).collect();
                let results = s
                    .run_batch(id, |b| Ok(b.brass()?.check_installs(&pairs, now)))
                    .map_err(whole)?;
                Ok(answers(id, results, |outcome| match outcome {
                    postkey_box::CheckOutcome::Installed { mi9, mi10 } => {
                        vec![bytes(mi9.as_bytes()), bytes(mi10.as_bytes())]
                    }
                    postkey_box::CheckOutcome::Bad(bad) => vec![bytes(bad.as_bytes())],
                }))
            }
            other => Err(command_error(
                s,
                id,
                ResponseCode::UNKNOWN_COMMAND,
                format!("{other:?} is not a command of the box link"),
            )),
        }
    }

    /// `INSTALL_KEY` for a batch: each meter greets over its meter link; one commit seals every
    /// installation in flight before any MI5 leaves; each meter answers MI6 (or its link fails,
    /// and Steel signs ABORTED for that key at once); one commit ends them all.
    fn install(
        &self,
        id: BoxId,
        items: &[Vec<Vec<u8>>],
        now: postkey_wire::Timestamp,
    ) -> Result<Vec<Answer>, Refusal> {
        let s = &*self.session;
        let mut out: Vec<Option<Answer>> = items.iter().map(|_| None).collect();
        let mut links = self.meters();
        let link_error = |meter: &MeterId, e: &postkey_meter::MeterError| {
            let message = format!("meter link to {meter}: {e}");
            let _ = s.home().log_error(&id.to_string(), e.response_code(), &message, clock::now());
            Refusal { box_id: id, code: e.response_code(), message }
        };
        // The meters' greetings (their transport keys).
        let mut started: Vec<(usize, MeterId, DomainId, Vec<u8>)> = Vec::new();
        for (i, p) in items.iter().enumerate() {
            let meter = std::str::from_utf8(&p[1]).ok().and_then(|m| MeterId::parse(m).ok());
            let Some(meter) = meter else {
                out[i] = Some(Err(command_error(
                    s,
                    id,
                    ResponseCode::PARAMETER_SYNTAX,
                    "malformed meter ID".into(),
                )));
                continue;
            };
            let domain = match Unverified::<KeyForSteel>::from_bytes(&p[0]) {
                Ok(mi4) => mi4.header().domain.clone(),
                Err(e) => {
                    out[i] = Some(Err(command_error(s, id, e.response_code(), e.to_string())));
                    continue;
                }
            };
            let Some(link) = links.links.get_mut(&meter) else {
                out[i] = Some(Err(command_error(
                    s,
                    id,
                    ResponseCode::NO_INSTALL_IN_FLIGHT,
                    format!("meter {meter} is not connected to the meter link"),
                )));
                continue;
            };
            match link.hello(&domain, now) {
                Ok(hello) => started.push((i, meter, domain, hello)),
                Err(e) => out[i] = Some(Err(link_error(&meter, &e))),
            }
        }
        // MI5 leaves only after every installation of the batch is sealed as in flight.
        let begin: Vec<(&[u8], &[u8])> =
            started.iter().map(|(i, _, _, h)| (items[*i][0].as_slice(), h.as_slice())).collect();
        let mi5s = s
            .run_batch(id, |b| Ok(b.steel()?.begin_installs(&begin, now)))
            .map_err(|e| refusal(id, &e))?;
        let mut mi6s: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut failed: Vec<(usize, DomainId, postkey_wire::KeyId, String)> = Vec::new();
        for ((i, meter, domain, _), mi5) in started.into_iter().zip(mi5s) {
            let mi5 = match mi5 {
                Ok(mi5) => mi5,
                Err(e) => {
                    out[i] = Some(Err(refusal(id, &e)));
                    continue;
                }
            };
            let key_id = mi5.header().key_id;
            let answer = links
                .links
                .get_mut(&meter)
                .ok_or(postkey_meter::MeterError::NotThisMeter(meter.clone()))
                .and_then(|link| link.install(&mi5.to_bytes(), now));
            match (answer, key_id) {
                (Ok(mi6), _) => mi6s.push((i, mi6)),
                (Err(e), Some(key_id)) => {
                    let r = link_error(&meter, &e);
                    failed.push((i, domain, key_id, r.message));
                }
                (Err(e), None) => out[i] = Some(Err(link_error(&meter, &e))),
            }
        }
        drop(links);
        let finish: Vec<&[u8]> = mi6s.iter().map(|(_, m)| m.as_slice()).collect();
        let ended = s
            .run_batch(id, |b| {
                let mut steel = b.steel()?;
                let mut ended = steel.finish_installs(&finish, clock::now());
                for (_, domain, key_id, reason) in &failed {
                    ended.push(
                        steel
                            .abort_install(domain, *key_id, reason, clock::now())
                            .map(InstallOutcome::Aborted),
                    );
                }
                Ok(ended)
            })
            .map_err(|e| refusal(id, &e))?;
        let order = mi6s.iter().map(|(i, _)| *i).chain(failed.iter().map(|(i, ..)| *i));
        for (i, outcome) in order.zip(ended) {
            out[i] = Some(outcome.map_err(|e| refusal(id, &e)).map(|o| match o {
                InstallOutcome::Installed(mi7) => vec![mi7.as_bytes().to_vec()],
                InstallOutcome::Aborted(a) => vec![a.as_bytes().to_vec()],
            }));
        }
        Ok(out
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    Err(Refusal {
                        box_id: id,
                        code: ResponseCode::NO_INSTALL_IN_FLIGHT,
                        message: "the installation ended without an answer".into(),
                    })
                })
            })
            .collect())
    }
}
