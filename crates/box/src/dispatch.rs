//! The one entry point of a box: [`dispatch`] takes a decoded [`Command`], the time and the
//! box's host, and returns the typed [`Response`]. The match over commands is exhaustive, so a
//! command added to the protocol does not compile until it has an arm here.
//!
//! ```text
//!  Command ──► admit (error state, command table 3001, record table 3003)
//!          ──► box type (3006) ──► each item on its own ──► Response (answers or refusals)
//!  INSTALL_KEY:  hello ◄──meter link──► begin (in flight) ──► host.commit ──► MI5 ──► MI6
//!                ──► meters durable (one flush) ──► finish: MI7, or ABORTED (test tokens
//!                differ, link failed, bad MI6, the meters could not keep their keys)
//! ```
//!
//! The box changes its state only in memory; the host commits it (seal, write, sync) before the
//! response leaves, and within `INSTALL_KEY` also before any MI5 leaves, through [`Host::commit`].

use postkey_wire::command::{
    AdoptDomain, AttestState, BoxRequest, Certify, CheckInstall, Checked, Command, Confirmed,
    CreateDomain, Deliver, Delivered, Done, GenerateKey, Generated, InstallCertificate,
    InstallEnded, InstallKey, InstallKit, InstallProcess, IssueKit, IssueSetId, Outcome, Register,
    Response, SignTables, SignTranscript, UpdateTables, Withdraw, answers_of,
};
use postkey_wire::{
    BoxType, CommandCode, DomainId, KeyForMeter, KeyId, Message, MeterId, MeterLink, Refusal,
    Timestamp,
};

use crate::brass::CheckOutcome;
use crate::core::TypedBox;
use crate::oak::PapersMemo;
use crate::process::Serving;
use crate::secure_box::each_type;
use crate::steel::InstallOutcome;
use crate::{BoxError, Manufacturing, Seal, SecureBox, Steel};

/// What a box needs from the host that runs it, while it runs one command.
pub trait Host {
    /// The host's own failure (its storage), which stops the command.
    type Error;

    /// Seals and writes the box's state durably now, before a message that depends on it
    /// leaves the box.
    fn commit(&mut self, secure_box: &mut dyn Seal) -> Result<(), Self::Error>;

    /// The meter link to `meter`, if that meter is on this Steel box's production line.
    fn meter_link(&mut self, meter: &MeterId) -> Option<&mut dyn MeterLink>;

    /// Has `meters`, which answered MI6, make their keys durable (one flush for the batch). An
    /// MI6 counts only after this: a meter never holds a key the box reported as aborted, nor
    /// loses one it reported as installed.
    fn meters_durable(&mut self, meters: &[MeterId]) -> Result<(), Refusal>;

    /// Records a failure that ends as an answer rather than a refusal (a meter that refused its
    /// key: the answer is a signed ABORTED), for the error log.
    fn log(&mut self, refusal: &Refusal);
}

/// A host without storage or meters: for boxes driven in memory (tests, and ceremonies whose
/// host commits after the command).
#[derive(Debug, Default)]
pub struct NoHost;

impl Host for NoHost {
    type Error = core::convert::Infallible;

    fn commit(&mut self, _: &mut dyn Seal) -> Result<(), Self::Error> {
        Ok(())
    }

    fn meter_link(&mut self, _: &MeterId) -> Option<&mut dyn MeterLink> {
        None
    }

    fn meters_durable(&mut self, _: &[MeterId]) -> Result<(), Refusal> {
        Ok(())
    }

    fn log(&mut self, _: &Refusal) {}
}

/// Why a command stopped without a response: the box refused all of it, or its host failed.
#[derive(Debug)]
pub enum Stopped<E> {
    /// The box refused the whole command (its state, its tables, its type); nothing changed.
    Refused(BoxError),
    /// The host failed to commit; the command's effects on the box are not durable.
    Host(E),
}

impl<E> From<BoxError> for Stopped<E> {
    fn from(e: BoxError) -> Self {
        Self::Refused(e)
    }
}

fn each<T, A>(items: Vec<T>, mut f: impl FnMut(T) -> Result<A, BoxError>) -> Vec<Outcome<A>> {
    items.into_iter().map(|item| f(item).map_err(|e| e.to_refusal())).collect()
}

/// Items a thread takes at the least: below this, a thread costs more than it saves.
const ITEMS_PER_THREAD: usize = 16;

/// As [`each`], for items that change nothing in the box (`f` takes it shared): split over the
/// host's cores, at least `per_thread` items a thread, answers in order. Registration is the
/// KMC's batch work that is all cryptography (docs/registration.md, "How the Brass work is laid
/// out"); a `VERIFY` item is a group of up to 4,096 mailpieces, one a thread is worth it.
fn each_in_parallel<T: Send, A: Send>(
    items: Vec<T>,
    per_thread: usize,
    f: impl Fn(T) -> Result<A, BoxError> + Sync,
) -> Vec<Outcome<A>> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let threads = cores.min(items.len() / per_thread.max(1)).max(1);
    if threads == 1 {
        return each(items, f);
    }
    let per = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut items = items.into_iter();
    loop {
        let chunk: Vec<T> = items.by_ref().take(per).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    let f = &f;
    std::thread::scope(|scope| {
        let mut rest = chunks.into_iter();
        // The first chunk on this thread, the others on their own.
        let first = rest.next().unwrap_or_default();
        let others: Vec<_> = rest.map(|chunk| scope.spawn(move || each(chunk, f))).collect();
        let mut out = each(first, f);
        for handle in others {
            match handle.join() {
                Ok(answers) => out.extend(answers),
                // A panic in a thread is the command's, as on this thread.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

fn done<T>(items: Vec<T>, mut f: impl FnMut(T) -> Result<(), BoxError>) -> Vec<Outcome<Done>> {
    each(items, |item| f(item).map(|()| Done {}))
}

/// Runs `command` on `b` and returns its answers, one per item, in order.
pub fn dispatch<H: Host>(
    b: &mut SecureBox,
    command: Command,
    now: Timestamp,
    host: &mut H,
) -> Result<Response, Stopped<H::Error>> {
    let code = command.code();
    each_type!(&*b, t => t.admit(code))?;
    // The command table (protocol §8) already refused a command of another type; the wire
    // table says which types have it, for a clear refusal before the typed match below.
    if !code.box_types().contains(&b.box_type()) {
        return Err(wrong_type(code, b.box_type()).into());
    }
    // One arm per command, no wildcard: a command added to the protocol does not compile until
    // it has an arm here, and each arm reaches only the typed box that has the command.
    Ok(match command {
        Command::SelfTest(items) => {
            // The known answers are run once for the batch: every item gets that verdict, so a
            // long batch costs no more than one.
            let verdict = each_type!(b, t => t.self_test()).map_err(|e| e.to_refusal());
            Response::SelfTest(items.iter().map(|_| verdict.clone().map(|()| Done {})).collect())
        }
        Command::AttestState(items) => {
            Response::AttestState(each(items, |AttestState { nonce }| {
                Ok(each_type!(&*b, t => t.attest(nonce, now)).into())
            }))
        }
        Command::UpdateTables(items) => Response::UpdateTables(done(
            items,
            |UpdateTables { update }| each_type!(&mut *b, t => t.update_tables(update)),
        )),
        Command::InstallCertificate(items) => Response::InstallCertificate(done(
            items,
            |InstallCertificate { certificate }| each_type!(&mut *b, t => t.install_certificate(certificate)),
        )),
        Command::InstallProcess(items) => match b {
            SecureBox::Oak(t) => install_processes(t, items),
            SecureBox::Steel(t) => install_processes(t, items),
            SecureBox::Brass(t) => install_processes(t, items),
            SecureBox::Tin(t) => install_processes(t, items),
            SecureBox::Manufacturing(_) => {
                return Err(wrong_type(code, BoxType::Manufacturing).into());
            }
        },
        Command::InstallKit(items) => {
            let m = manufacturing(b, code)?;
            Response::InstallKit(done(items, |InstallKit { kit }| m.install_kit(kit)))
        }
        Command::IssueSetId(items) => {
            let m = equipped(b, code)?;
            Response::IssueSetId(each(items, |IssueSetId { offer, box_type }| {
                m.issue_set_id(&offer, box_type, now).map(Into::into)
            }))
        }
        Command::Certify(items) => {
            let m = equipped(b, code)?;
            Response::Certify(each(items, |Certify { keys }| m.certify(keys, now).map(Into::into)))
        }
        Command::CreateDomain(items) => {
            let m = equipped(b, code)?;
            Response::CreateDomain(each(items, |CreateDomain { domain, kind, subdomains }| {
                m.create_domain(domain, kind, subdomains, now).map(Into::into)
            }))
        }
        Command::Deliver(items) => {
            let m = equipped(b, code)?;
            Response::Deliver(each(items, |Deliver { bundle, recipient, subdomains }| {
                let out = m.deliver(bundle, recipient, subdomains, now)?;
                Ok(Delivered { delivery: out.delivery.into(), record: out.record.into() })
            }))
        }
        Command::AdoptDomain(items) => {
            let m = equipped(b, code)?;
            Response::AdoptDomain(done(items, |AdoptDomain { bundle }| {
                m.adopt_domain(bundle).map(|_| ())
            }))
        }
        Command::IssueKit(items) => {
            let m = equipped(b, code)?;
            Response::IssueKit(each(items, |IssueKit { recipient }| {
                m.issue_kit(recipient, now).map(Into::into)
            }))
        }
        Command::SignTables(items) => {
            let m = equipped(b, code)?;
            Response::SignTables(each(items, |SignTables { recipient, tables }| {
                m.sign_tables(recipient, tables, now).map(Into::into)
            }))
        }
        Command::SignTranscript(items) => {
            let m = equipped(b, code)?;
            Response::SignTranscript(each(items, |SignTranscript { transcript }| {
                m.sign_transcript(transcript, now).map(Into::into)
            }))
        }
        Command::GenerateKey(items) => {
            let SecureBox::Oak(oak) = b else { return Err(wrong_type(code, b.box_type()).into()) };
            // The Steel papers of a batch for one Steel box are checked once (same bytes, same
            // anchor: the same verdict); every other rule is checked per key.
            let mut memo = PapersMemo::default();
            Response::GenerateKey(each(items, |GenerateKey { mi1 }| {
                let g = oak.generate_key(&mi1, now, &mut memo)?;
                Ok(Generated { mi3: g.mi3.into(), mi4: g.mi4.into() })
            }))
        }
        Command::InstallKey(items) => {
            let SecureBox::Steel(steel) = b else {
                return Err(wrong_type(code, b.box_type()).into());
            };
            Response::InstallKey(install_keys(steel, items, now, host)?)
        }
        Command::Recover(items) => {
            let SecureBox::Steel(steel) = b else {
                return Err(wrong_type(code, b.box_type()).into());
            };
            Response::Recover(each(items, |_| steel.recover(now)))
        }
        Command::CheckInstall(items) => {
            let SecureBox::Brass(brass) = b else {
                return Err(wrong_type(code, b.box_type()).into());
            };
            Response::CheckInstall(each(items, |CheckInstall { mi3, mi7 }| {
                Ok(match brass.check_install(mi3, mi7, now)? {
                    CheckOutcome::Installed { mi9, mi10 } => {
                        Checked::Installed(Confirmed { mi9: mi9.into(), mi10: mi10.into() })
                    }
                    CheckOutcome::Bad(bad) => Checked::Bad(bad.into()),
                })
            }))
        }
        Command::Register(items) => {
            let SecureBox::Brass(brass) = b else {
                return Err(wrong_type(code, b.box_type()).into());
            };
            let brass = &*brass;
            Response::Register(each_in_parallel(
                items,
                ITEMS_PER_THREAD,
                |Register { mr1, mi9 }| brass.register(mr1, mi9, now),
            ))
        }
        Command::Withdraw(items) => {
            let SecureBox::Brass(brass) = b else {
                return Err(wrong_type(code, b.box_type()).into());
            };
            Response::Withdraw(each(items, |Withdraw { mi9, reason }| {
                brass.withdraw(mi9, reason, now).map(Into::into)
            }))
        }
        Command::Verify(items) => {
            let SecureBox::Brass(brass) = b else {
                return Err(wrong_type(code, b.box_type()).into());
            };
            let brass = &*brass;
            Response::Verify(each_in_parallel(items, 1, |item| brass.verify(item)))
        }
        Command::ExportTokenKeys(items) => {
            let SecureBox::Brass(brass) = b else {
                return Err(wrong_type(code, b.box_type()).into());
            };
            Response::ExportTokenKeys(each(items, |item| {
                brass.export_token_keys(item, now).map(Into::into)
            }))
        }
        Command::ImportTinExport(items) => {
            let SecureBox::Tin(tin) = b else {
                return Err(wrong_type(code, b.box_type()).into());
            };
            Response::ImportTinExport(each(items, |item| tin.import_export(item.export, now)))
        }
        Command::TinVerify(items) => {
            let SecureBox::Tin(tin) = b else {
                return Err(wrong_type(code, b.box_type()).into());
            };
            let tin = &*tin;
            Response::TinVerify(each_in_parallel(items, ITEMS_PER_THREAD, |item| {
                tin.verify(item, now)
            }))
        }
        Command::Checkpoint(items) => {
            let SecureBox::Brass(brass) = b else {
                return Err(wrong_type(code, b.box_type()).into());
            };
            Response::Checkpoint(each(items, |item| brass.checkpoint(item, now)))
        }
    })
}

/// The refusal of a command this box's type does not have (3006).
fn wrong_type(code: CommandCode, actual: BoxType) -> BoxError {
    BoxError::WrongBoxType {
        expected: code.box_types().first().map_or("another", |t| t.name()),
        actual: actual.name(),
    }
}

fn install_processes<R: Serving>(b: &mut TypedBox<R>, items: Vec<InstallProcess>) -> Response {
    Response::InstallProcess(done(items, |InstallProcess { delivery }| b.install_process(delivery)))
}

/// The manufacturing box `b` is, for a command only that type has.
fn manufacturing(
    b: &mut SecureBox,
    code: CommandCode,
) -> Result<&mut TypedBox<Manufacturing>, BoxError> {
    match b {
        SecureBox::Manufacturing(m) => Ok(m),
        other => Err(wrong_type(code, other.box_type())),
    }
}

/// The manufacturing box `b` is, which must have its kit already.
fn equipped(
    b: &mut SecureBox,
    code: CommandCode,
) -> Result<&mut TypedBox<Manufacturing>, BoxError> {
    let m = manufacturing(b, code)?;
    m.role.held()?;
    Ok(m)
}

/// Runs a batch of `R` items on `b` through [`dispatch`]: each item's answer or refusal, typed
/// by the command. For callers that hold the box themselves (tests, the first ceremony).
pub fn call<R: BoxRequest, H: Host>(
    b: &mut SecureBox,
    items: Vec<R>,
    now: Timestamp,
    host: &mut H,
) -> Result<Vec<Outcome<R::Answer>>, Stopped<H::Error>> {
    let sent = items.len();
    let response = dispatch(b, R::batch(items), now, host)?;
    // Our own dispatcher answers the command it was given, one answer per item.
    answers_of::<R>(sent, response).map_err(|e| Stopped::Refused(BoxError::Wire(e)))
}

/// An installation that got its MI5: the meter it goes to, and the key it concerns.
struct Begun {
    place: usize,
    meter: MeterId,
    domain: DomainId,
    key_id: KeyId,
    mi5: Message<KeyForMeter>,
}

/// `INSTALL_KEY` for a batch, over the meter link (protocol §6.1): every meter the orders name greets
/// with its transport key; every installation is begun and sealed as in flight by one commit
/// before any MI5 leaves; each meter answers MI6; each installation ends with MI7, or with a
/// signed ABORTED if the test tokens differ, the meter refused the key or its answer is invalid.
fn install_keys<H: Host>(
    b: &mut TypedBox<Steel>,
    items: Vec<InstallKey>,
    now: Timestamp,
    host: &mut H,
) -> Result<Vec<Outcome<InstallEnded>>, Stopped<H::Error>> {
    let mut out: Vec<Option<Outcome<InstallEnded>>> = items.iter().map(|_| None).collect();
    let mut begun = Vec::with_capacity(items.len());
    for (place, InstallKey { mi4, meter }) in items.into_iter().enumerate() {
        let domain = mi4.header().domain.clone();
        let hello = match host.meter_link(&meter) {
            None => Err(BoxError::MeterNotConnected(meter.clone()).to_refusal()),
            // What the meter says is bounded before it goes anywhere.
            Some(link) => link.hello(&domain, now).map_err(|r| Refusal::new(r.code, r.message)),
        };
        let started = hello.and_then(|hello| {
            b.begin_install(&mi4, &meter, &hello, now).map_err(|e| e.to_refusal()).map(|mi5| {
                let key_id = mi5.header().key_id;
                (mi5, key_id)
            })
        });
        match started {
            Ok((mi5, Some(key_id))) => begun.push(Begun { place, meter, domain, key_id, mi5 }),
            Ok((_, None)) => {
                out[place] = Some(Err(BoxError::NoInstallInFlight.to_refusal()));
            }
            Err(refusal) => out[place] = Some(Err(refusal)),
        }
    }
    // MI5 leaves only after every installation of the batch is sealed as in flight.
    if !begun.is_empty() {
        host.commit(b).map_err(Stopped::Host)?;
    }
    let mut answered = Vec::with_capacity(begun.len());
    for Begun { place, meter, domain, key_id, mi5 } in begun {
        let answer = match host.meter_link(&meter) {
            None => Err(BoxError::MeterNotConnected(meter.clone()).to_refusal()),
            Some(link) => link.install(&mi5, now),
        };
        answered.push((place, meter, domain, key_id, answer));
    }
    // The meters make their keys durable before any MI6 counts: if they cannot, every
    // installation of the batch that reached a meter ends ABORTED.
    let mut holding: Vec<MeterId> =
        answered.iter().filter(|a| a.4.is_ok()).map(|a| a.1.clone()).collect();
    // A meter given its vendor and its postal key in one batch keeps both with one write.
    holding.sort();
    holding.dedup();
    let durable = if holding.is_empty() { Ok(()) } else { host.meters_durable(&holding) };
    for (place, meter, domain, key_id, answer) in answered {
        let answer = match (&durable, answer) {
            (Err(why), Ok(_)) => Err(why.clone()),
            (_, answer) => answer,
        };
        let ended = match answer.map(|mi6| b.finish_install(&domain, key_id, &mi6, now)) {
            Ok(Ok(InstallOutcome::Installed(mi7))) => Ok(InstallEnded::Installed(mi7.into())),
            Ok(Ok(InstallOutcome::Aborted(aborted))) => Ok(InstallEnded::Aborted(aborted.into())),
            // The meter refused the key, or answered an MI6 that ends no installation of this
            // box: the installation ends with a signed ABORTED, and its key becomes `Bad`.
            Ok(Err(e)) => abort(b, host, &meter, &domain, key_id, e.to_refusal(), now),
            Err(refusal) => abort(b, host, &meter, &domain, key_id, refusal, now),
        };
        out[place] = Some(ended);
    }
    let out: Vec<Outcome<InstallEnded>> = out
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(BoxError::NoInstallInFlight.to_refusal())))
        .collect();
    // Kept with the state the host commits before these answers leave: a KMC that stops before
    // it records them gets them again from RECOVER.
    // A batch refused whole changes nothing.
    let ended: Vec<InstallEnded> = out.iter().filter_map(|o| o.as_ref().ok().cloned()).collect();
    if !ended.is_empty() {
        b.role.last_ended = ended;
        b.core.changed();
    }
    Ok(out)
}

fn abort<H: Host>(
    b: &mut TypedBox<Steel>,
    host: &mut H,
    meter: &MeterId,
    domain: &DomainId,
    key_id: KeyId,
    why: Refusal,
    now: Timestamp,
) -> Outcome<InstallEnded> {
    let logged = Refusal::new(
        why.code,
        format!("meter link to {meter}: {}", crate::install::excerpt(&why.message, 200)),
    );
    host.log(&logged);
    b.abort_install(domain, key_id, &logged.message, now)
        .map(|a| InstallEnded::Aborted(a.into()))
        .map_err(|e| e.to_refusal())
}
