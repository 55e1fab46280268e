//! The simulated meters' storage (protocol §12: a simulation keeps a meter's keys in a file under the
//! home, mode 0600; a real meter keeps them in its secure element).
//!
//! A meter must make a key durable before its MI6 answer counts. Rewriting each meter's file at
//! that moment would put a file-system sync per batch in the Steel box's path, so a factory run
//! appends the meters' new images to a journal of its own (one append and one `fdatasync` per
//! Steel batch) and rewrites their files after the batch, off that path. The run removes its
//! journal once every file it changed is durable; a journal left by a run that stopped is applied
//! to the files by the next command that reads meters, which knows it is left over because no
//! process holds its lock.
//!
//! ```text
//!  <home>/meters/<ID>.meter            a meter's state
//!  <home>/meters/run-<pid>-<t>.journal  [length u32 BE ‖ meter image]*, flock'd by its run
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use postkey_durable::{create_durable, write_atomic_many};
use postkey_meter::{Mailing, Meter, MeterError, PostalRegistration, Printed};
use postkey_wire::MeterId;
use rustix::fs::{FlockOperation, flock};
use zeroize::Zeroizing;

use crate::home::{make_dir, read, remove_if_there, storage};
use crate::{Home, HostError, Usage};

/// The largest simulated meter file read.
const MAX_METER_FILE: u64 = 4096;
/// The largest journal applied (a run's journal grows by one image per key installed).
const MAX_JOURNAL: u64 = 256 * 1024 * 1024;

impl Home {
    fn meters_dir(&self) -> PathBuf {
        self.root().join("meters")
    }

    pub(crate) fn meter_path(&self, id: &MeterId) -> PathBuf {
        self.meters_dir().join(format!("{id}.meter"))
    }

    /// Writes a new simulated meter's state, refusing a meter that exists already.
    pub fn create_meter(&self, meter: &Meter) -> Result<(), HostError> {
        let path = self.meter_path(meter.id());
        match create_durable(&path, &meter.to_simulator_file(), 0o600) {
            Ok(()) => Ok(()),
            Err(e) if e.source.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Usage::MeterExists(meter.id().clone()).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Saves simulated meters' states, all durable together (two flushes for the lot).
    pub fn save_meters(&self, meters: &[&Meter]) -> Result<(), HostError> {
        let images: Vec<(String, Zeroizing<Vec<u8>>)> =
            meters.iter().map(|m| (format!("{}.meter", m.id()), m.to_simulator_file())).collect();
        let files: Vec<(String, &[u8])> =
            images.iter().map(|(n, b)| (n.clone(), b.as_slice())).collect();
        make_dir(&self.meters_dir())?;
        Ok(write_atomic_many(&self.meters_dir(), &files, 0o600)?)
    }

    /// A simulated meter's state, as its file holds it: call [`Self::settle_meter_journals`]
    /// first in a command that reads meters.
    pub fn load_meter(&self, id: &MeterId) -> Result<Meter, HostError> {
        let path = self.meter_path(id);
        if !path.exists() {
            return Err(Usage::UnknownMeter(id.clone()).into());
        }
        let bytes = Zeroizing::new(read(&path, MAX_METER_FILE)?);
        let meter = Meter::from_simulator_file(&bytes).map_err(|e| HostError::corrupt(&path, e))?;
        // A file copied over another meter's would answer as the meter it holds.
        if meter.id() != id {
            let why = format!("it holds meter {}, not {id}", meter.id());
            return Err(HostError::corrupt(&path, why));
        }
        Ok(meter)
    }

    /// Takes one meter's file for a change that reads and rewrites it (printing, recording its
    /// registration), waiting for another command changing the same meter: two commands on one
    /// meter never both take the same piece counts. Dropping the file releases it.
    fn lock_meter(&self, id: &MeterId) -> Result<File, HostError> {
        let path = self.root().join("locks").join(format!("meter-{id}.lock"));
        crate::lock::take_exclusive(&path)
    }

    /// Records in each meter's file the registration the KMC confirmed (both keys `Active`),
    /// all durable together: from then on the meter prints indicia that name it. A meter that
    /// holds it already is left as it is.
    pub fn record_registrations(
        &self,
        done: &[(MeterId, PostalRegistration)],
    ) -> Result<(), HostError> {
        // Locks taken in ID order, as every command that holds several does.
        let mut ids: Vec<&MeterId> = done.iter().map(|(id, _)| id).collect();
        ids.sort();
        ids.dedup();
        let _held = ids.into_iter().map(|id| self.lock_meter(id)).collect::<Result<Vec<_>, _>>()?;
        let mut changed = Vec::new();
        for (id, registration) in done {
            // A meter that cannot take it is logged and left for a rerun; the others go on.
            let taken = self.load_meter(id).and_then(|mut meter| {
                if meter.registration() == Some(registration) {
                    return Ok(None);
                }
                meter.set_registration(registration.clone()).map_err(|e| meter_refused(id, &e))?;
                Ok(Some(meter))
            });
            match taken {
                Ok(Some(meter)) => changed.push(meter),
                Ok(None) => {}
                Err(e) => {
                    let _ = self.logged("meter", e);
                }
            }
        }
        let meters: Vec<&Meter> = changed.iter().collect();
        if meters.is_empty() { Ok(()) } else { self.save_meters(&meters) }
    }

    /// A simulated meter prints `n` mailpieces of `mailing` (protocol §6.5): its piece counter
    /// is advanced and its file rewritten durably (one atomic write for the `n`) before any
    /// token is made, under the meter's lock.
    pub fn print(
        &self,
        id: &MeterId,
        mailing: &Mailing,
        n: u32,
    ) -> Result<Vec<Printed>, HostError> {
        let _held = self.lock_meter(id)?;
        let mut meter = self.load_meter(id)?;
        meter.print(mailing, n, |m| self.save_meters(&[m]).map_err(PrintFailed::Host)).map_err(
            |e| match e {
                PrintFailed::Host(e) => e,
                PrintFailed::Meter(e) => meter_refused(id, &e),
            },
        )
    }

    /// Applies the journals of factory runs that stopped before their meters' files were
    /// rewritten (those no process holds), then removes them. Journals of running factories are
    /// left alone.
    pub fn settle_meter_journals(&self) -> Result<(), HostError> {
        for path in self.meter_journals()? {
            let Some(file) = lock_left_over(&path)? else { continue };
            let images = journal_images(&path)?;
            // Each meter rewritten is held (in ID order) against a print or a registration
            // reading and writing it meanwhile.
            let _held =
                images.keys().map(|id| self.lock_meter(id)).collect::<Result<Vec<_>, _>>()?;
            let mut newer = Vec::new();
            for (id, mut image) in images {
                // An image not taken is logged and left out; the others are applied.
                let taken = self.load_meter(&id).and_then(|current| {
                    // Never an older key over a newer one: a journal put back or forged.
                    if advances(&current, &image) {
                        // Nor an older counter or a registration lost.
                        image.keep_progress_of(&current);
                        Ok(())
                    } else {
                        let why =
                            format!("its image of {id} would put back older keys; not applied");
                        Err(HostError::corrupt(&path, why))
                    }
                });
                match taken {
                    Ok(()) => newer.push(image),
                    Err(e) => {
                        let _ = self.log_error(
                            "host",
                            e.response_code(),
                            &e.to_string(),
                            crate::clock::now(),
                        );
                    }
                }
            }
            let meters: Vec<&Meter> = newer.iter().collect();
            if !meters.is_empty() {
                self.save_meters(&meters)?;
            }
            remove_if_there(&path)?;
            drop(file);
        }
        Ok(())
    }

    /// A meter as it stands, read only: its file, with the images that runs' journals hold of
    /// it applied, oldest run first (a stopped run's, not yet applied; a running one's, whose
    /// meters kept their keys before MI6 counted).
    pub fn meter_now(&self, id: &MeterId) -> Result<Meter, HostError> {
        let taken = self.meter_reader()?.take(core::slice::from_ref(id))?;
        taken.into_iter().next().ok_or_else(|| Usage::UnknownMeter(id.clone()).into())
    }

    /// Meters as they stand, as [`Home::meter_now`] reads each, with the home's meter journals
    /// read once for them all.
    pub fn meters_now(&self, ids: &[MeterId]) -> Result<Vec<Meter>, HostError> {
        self.meter_reader()?.take(ids)
    }

    /// A reader of meters as they stand, for a command that reads many in turns (registration,
    /// batch by batch): the journals are listed and read once, when it is made, and each
    /// meter's file when it is taken. A meter another run keys meanwhile is read as its file
    /// and those journals had it: its requests then name keys the archive no longer holds
    /// `Installed`, and its registration is refused (a rerun registers it).
    pub fn meter_reader(&self) -> Result<MeterReader<'_>, HostError> {
        let journals = self
            .meter_journals()?
            .iter()
            .map(|path| journal_images(path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MeterReader { home: self, journals })
    }

    /// The meter journals, oldest run first (by the start time in their names).
    fn meter_journals(&self) -> Result<Vec<PathBuf>, HostError> {
        let dir = self.meters_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(storage("reading", &dir, e)),
        };
        let mut journals = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| storage("reading", &dir, e))?.path();
            if path.extension().is_some_and(|e| e == "journal") {
                // run-<pid>-<start>.journal; a name that does not parse sorts first.
                let start = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.rsplit('-').next())
                    .and_then(|t| t.parse::<u64>().ok())
                    .unwrap_or(0);
                journals.push((start, path));
            }
        }
        journals.sort();
        Ok(journals.into_iter().map(|(_, p)| p).collect())
    }

    /// Opens this run's meter journal, held by this process until it is closed or the process
    /// ends.
    pub(crate) fn open_meter_journal(&self) -> Result<MeterJournal, HostError> {
        let dir = self.meters_dir();
        make_dir(&dir)?;
        let name =
            format!("run-{}-{}.journal", std::process::id(), crate::clock::now().unix_micros());
        let path = dir.join(name);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| storage("creating", &path, e))?;
        flock(&file, FlockOperation::NonBlockingLockExclusive)
            .map_err(|e| storage("locking", &path, e.into()))?;
        File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| storage("syncing", &dir, e))?;
        Ok(MeterJournal { file, path })
    }
}

/// Why printing failed: the meter refused, or its state could not be made durable.
enum PrintFailed {
    Meter(MeterError),
    Host(HostError),
}

impl From<MeterError> for PrintFailed {
    fn from(e: MeterError) -> Self {
        Self::Meter(e)
    }
}

/// A meter's refusal, as the host reports it.
fn meter_refused(id: &MeterId, e: &MeterError) -> HostError {
    HostError::Refused { component: format!("meter {id}"), refusal: e.to_refusal() }
}

/// Meters as they stand, from their files and the journals read when it was made
/// ([`Home::meter_reader`]).
#[derive(Debug)]
pub struct MeterReader<'h> {
    home: &'h Home,
    journals: Vec<BTreeMap<MeterId, Meter>>,
}

impl MeterReader<'_> {
    /// Each meter of `ids` as it stands. Each meter is asked for once: its images leave the
    /// journals' maps.
    pub fn take(&mut self, ids: &[MeterId]) -> Result<Vec<Meter>, HostError> {
        ids.iter()
            .map(|id| {
                let mut meter = self.home.load_meter(id)?;
                for images in &mut self.journals {
                    if let Some(mut newer) = images.remove(id)
                        && advances(&meter, &newer)
                    {
                        newer.keep_progress_of(&meter);
                        meter = newer;
                    }
                }
                Ok(meter)
            })
            .collect()
    }
}

/// The journal of one factory run: the images of the meters that received keys, appended before
/// their MI6 answers count.
#[derive(Debug)]
pub(crate) struct MeterJournal {
    file: File,
    path: PathBuf,
}

impl MeterJournal {
    /// Appends the images of `meters` and makes them durable (one `fdatasync`).
    pub(crate) fn append(&mut self, meters: &[&Meter]) -> Result<(), HostError> {
        let mut record = Zeroizing::new(Vec::new());
        for m in meters {
            let image = m.to_simulator_file();
            let len = u32::try_from(image.len()).unwrap_or(u32::MAX);
            record.extend_from_slice(&len.to_be_bytes());
            record.extend_from_slice(&image);
        }
        self.file
            .write_all(&record)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| storage("writing", &self.path, e))
    }

    /// The run is over and every meter file it changed is durable: the journal goes.
    pub(crate) fn close(self) -> Result<(), HostError> {
        remove_if_there(&self.path)
    }
}

/// Whether `image` holds, of every domain `current` holds a key of, that key or a newer one (the
/// meter's own rule: a key of a domain it holds is replaced only by a higher key ID).
fn advances(current: &Meter, image: &Meter) -> bool {
    current
        .keys()
        .iter()
        .all(|(domain, held)| image.keys().get(domain).is_some_and(|k| k.key_id >= held.key_id))
}

/// The journal at `path`, locked, if no running process holds it. Not a regular file (a FIFO, a
/// device, a link): refused, never opened in a way that could block.
fn lock_left_over(path: &Path) -> Result<Option<File>, HostError> {
    let flags = (rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW).bits() as i32;
    let file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(HostError::corrupt(path, format!("not a journal: {e}"))),
    };
    match file.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(HostError::corrupt(path, "not a regular file")),
        Err(e) => return Err(storage("reading", path, e)),
    }
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(file)),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(None),
        Err(e) => Err(storage("locking", path, e.into())),
    }
}

/// The newest image of each meter in a journal. A record cut short by a stop (the last one, not
/// yet synced) is ignored: its MI6 never counted.
fn journal_images(path: &Path) -> Result<BTreeMap<MeterId, Meter>, HostError> {
    let bytes = Zeroizing::new(read(path, MAX_JOURNAL)?);
    let mut latest = BTreeMap::new();
    let mut rest: &[u8] = &bytes;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(image) = rest.get(4..4 + len) else { break };
        let meter = Meter::from_simulator_file(image).map_err(|e| HostError::corrupt(path, e))?;
        latest.insert(meter.id().clone(), meter);
        rest = &rest[4 + len..];
    }
    Ok(latest)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use postkey_secrets::rng::BoxRng;
    use postkey_secrets::rng::testing::SeededSource;
    use rand_core::SeedableRng as _;

    use super::*;

    fn meter(n: u64) -> Meter {
        let source = SeededSource(rand_chacha::ChaCha20Rng::seed_from_u64(n));
        let mut rng = BoxRng::instantiate(source, b"meter").unwrap();
        Meter::manufacture(MeterId::parse(&format!("PB1234-{n:06}")).unwrap(), &mut rng).unwrap()
    }

    fn transport(m: &Meter) -> postkey_crypto::HpkePublicKey {
        m.hello(postkey_wire::DomainId::admin(), crate::clock::now()).body().transport
    }

    #[test]
    fn a_journal_left_by_a_stopped_run_is_applied_once_and_a_live_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let (a, b) = (meter(1), meter(2));
        home.create_meter(&a).unwrap();
        home.create_meter(&b).unwrap();
        let mut journal = home.open_meter_journal().unwrap();
        journal.append(&[&a]).unwrap();
        journal.append(&[&a, &b]).unwrap();
        // A torn record at the end (a stop mid-append): ignored.
        journal.file.write_all(&[0, 0, 1, 0, 7]).unwrap();
        // Its run is alive: nothing is applied, the journal stays.
        home.settle_meter_journals().unwrap();
        assert!(journal.path.exists());
        // The run stops (its lock goes with its file): the next reader applies the journal.
        drop(journal);
        home.settle_meter_journals().unwrap();
        for m in [&a, &b] {
            assert_eq!(transport(&home.load_meter(m.id()).unwrap()), transport(m));
        }
        let left: Vec<_> = fs::read_dir(home.meters_dir())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "journal"))
            .collect();
        assert!(left.is_empty(), "the journal was not removed");
    }
}
