//! The embedded box link: the KMC's [`Boxes`] over the boxes a [`Session`] has enabled, with the
//! same messages and checks a remote box will have (SPEC §9 levels 2 and 3). Every change a
//! command makes is sealed and written before the answer is returned.
//!
//! For `INSTALL_KEY` the Steel box's host connects it to the meter over the meter link: the KMC
//! (in the PSR role) orders the installation but never carries MI5 or MI6.

use std::collections::BTreeMap;

use postkey_kmc::{Boxes, Refusal};
use postkey_meter::MeterLink;
use postkey_wire::{BoxId, CommandCode, MeterId, Nonce, ResponseCode};

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

/// A session's boxes and meter links, as the KMC reaches them.
#[derive(Debug)]
pub struct EmbeddedBoxes<'a> {
    /// The boxes.
    pub session: &'a mut Session,
    /// The meters on the production line.
    pub meters: &'a mut MeterLinks,
}

fn refusal(id: BoxId, e: &HostError) -> Refusal {
    Refusal {
        box_id: id,
        code: e.response_code().unwrap_or(ResponseCode::STORAGE_FAILED),
        message: e.to_string(),
    }
}

fn count(id: BoxId, params: &[&[u8]], n: usize) -> Result<(), Refusal> {
    if params.len() == n {
        Ok(())
    } else {
        Err(Refusal {
            box_id: id,
            code: ResponseCode::PARAMETER_COUNT,
            message: format!("expected {n} parameters, got {}", params.len()),
        })
    }
}

fn syntax(id: BoxId, what: &str) -> Refusal {
    Refusal {
        box_id: id,
        code: ResponseCode::PARAMETER_SYNTAX,
        message: format!("malformed {what}"),
    }
}

impl Boxes for EmbeddedBoxes<'_> {
    fn call(
        &mut self,
        id: BoxId,
        command: CommandCode,
        params: &[&[u8]],
    ) -> Result<Vec<Vec<u8>>, Refusal> {
        let now = clock::now();
        let s = &mut *self.session;
        let bytes = |v: &[u8]| v.to_vec();
        match command {
            CommandCode::ATTEST_STATE => {
                count(id, params, 1)?;
                let nonce: [u8; 32] = params[0].try_into().map_err(|_| syntax(id, "nonce"))?;
                let a = s.run(id, |b| b.attest(Nonce(nonce), now)).map_err(|e| refusal(id, &e))?;
                Ok(vec![bytes(a.as_bytes())])
            }
            CommandCode::GENERATE_KEY => {
                count(id, params, 1)?;
                let g = s
                    .run(id, |b| b.oak()?.generate_key(params[0], now))
                    .map_err(|e| refusal(id, &e))?;
                Ok(vec![bytes(g.mi3.as_bytes()), bytes(g.mi4.as_bytes())])
            }
            CommandCode::INSTALL_KEY => {
                count(id, params, 2)?;
                let meter_id = std::str::from_utf8(params[1])
                    .ok()
                    .and_then(|m| MeterId::parse(m).ok())
                    .ok_or_else(|| syntax(id, "meter ID"))?;
                let domain =
                    postkey_wire::Unverified::<postkey_wire::KeyForSteel>::from_bytes(params[0])
                        .map_err(|e| Refusal {
                            box_id: id,
                            code: e.response_code(),
                            message: e.to_string(),
                        })?
                        .header()
                        .domain
                        .clone();
                let link = self.meters.links.get_mut(&meter_id).ok_or_else(|| Refusal {
                    box_id: id,
                    code: ResponseCode::NO_INSTALL_IN_FLIGHT,
                    message: format!("meter {meter_id} is not connected to the meter link"),
                })?;
                let link_error = |e: postkey_meter::MeterError| Refusal {
                    box_id: id,
                    code: e.response_code(),
                    message: format!("meter link: {e}"),
                };
                let hello = link.hello(&domain, now).map_err(link_error)?;
                // MI5 leaves only after the in-flight installation is sealed (Session::run commits).
                let mi5 = s
                    .run(id, |b| b.steel()?.begin_install(params[0], &hello, now))
                    .map_err(|e| refusal(id, &e))?;
                let mi6 = match link.install(&mi5.to_bytes(), now) {
                    Ok(mi6) => mi6,
                    // The meter refused: the installation stays in flight and is aborted by
                    // RECOVER; answer with what the meter said.
                    Err(e) => return Err(link_error(e)),
                };
                let outcome = s
                    .run(id, |b| b.steel()?.finish_install(&mi6, clock::now()))
                    .map_err(|e| refusal(id, &e))?;
                Ok(vec![match outcome {
                    postkey_box::InstallOutcome::Installed(mi7) => bytes(mi7.as_bytes()),
                    postkey_box::InstallOutcome::Aborted(a) => bytes(a.as_bytes()),
                }])
            }
            CommandCode::RECOVER => {
                count(id, params, 0)?;
                let aborted = s
                    .run(id, |b| b.steel()?.abort_interrupted(now))
                    .map_err(|e| refusal(id, &e))?;
                Ok(aborted.iter().map(|a| bytes(a.as_bytes())).collect())
            }
            CommandCode::CHECK_INSTALL => {
                count(id, params, 2)?;
                match s
                    .run(id, |b| b.brass()?.check_install(params[0], params[1], now))
                    .map_err(|e| refusal(id, &e))?
                {
                    postkey_box::CheckOutcome::Installed { mi9, mi10 } => {
                        Ok(vec![bytes(mi9.as_bytes()), bytes(mi10.as_bytes())])
                    }
                    postkey_box::CheckOutcome::Bad(bad) => Ok(vec![bytes(bad.as_bytes())]),
                }
            }
            other => Err(Refusal {
                box_id: id,
                code: ResponseCode::UNKNOWN_COMMAND,
                message: format!("{other:?} is not a command of the box link"),
            }),
        }
    }
}
