//! Verification on the embedded default (docs/verification.md): indicium text in, read and
//! repaired by the check characters alone (postkey-indicium), verified by the KMC and the Brass
//! boxes serving the meters' sub-domains, good mailpieces remembered in the archive's duplicate
//! memory, one report per mailpiece out.

use postkey_archive::Store;
use postkey_archive_sqlite::SqliteStore;
use postkey_indicium::{FieldRepair, ParseError, Parsed};
use postkey_kmc::{Kmc, KmsClock, PieceToVerify, PieceVerdict, VerifyCache};
use postkey_wire::{BoxId, BoxType, ResponseCode, Site, Timestamp, Verdict};

use crate::archive::Trust;
use crate::factory::{Opened, kmc_error, open_kmc};
use crate::link::EmbeddedBoxes;
use crate::lock::HomeLock;
use crate::{Home, HostError};

/// Mailpieces verified per batch by default: one archive read of each kind for the meters it
/// names that the verifier has not read, a few `VERIFY` commands per Brass box, one
/// duplicate-memory transaction and one checkpoint per batch. Large enough that a day's mail
/// from tens of thousands of meters names each key several times a batch (the box's per-key
/// work is then shared by several tokens), small enough that three batches in flight take tens of
/// megabytes (docs/benchmarks.md, "Verification").
pub const DEFAULT_VERIFY_BATCH: usize = 65_536;

/// The largest batch `verify --file` takes.
pub const MAX_VERIFY_BATCH: usize = 65_536;

/// One repair the check characters made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepairReport {
    /// The field, as docs/indicium.md names it.
    pub field: &'static str,
    /// The character's place in the printed word (field and check characters), from 0.
    pub position: usize,
    /// What was read.
    pub read: char,
    /// What it was repaired to.
    pub corrected: char,
}

/// The first sighting of a mailpiece that turned up again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FirstSeen {
    /// When, UTC.
    pub time: String,
    /// Where.
    pub site: String,
}

/// What the verifier answers for one mailpiece.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// `good`, or the reason it is not (the postal token's first).
    pub outcome: &'static str,
    /// The 5xxx code of a mailpiece that is not good.
    pub code: Option<u16>,
    /// The vendor token's answer.
    pub vendor: &'static str,
    /// The postal token's answer.
    pub postal: &'static str,
    /// The meter, when the archive knows the ISN.
    pub meter: Option<String>,
    /// The mailpiece's sub-domain, ISN and piece count, when it parsed.
    pub subdomain: Option<String>,
    /// Its ISN.
    pub isn: Option<String>,
    /// Its piece count.
    pub count: Option<u32>,
    /// Characters the check code repaired (at most one per field).
    pub repairs: Vec<RepairReport>,
    /// For a duplicate, its first sighting.
    pub first_seen: Option<FirstSeen>,
    /// Why a malformed indicium was refused.
    pub reason: Option<String>,
}

impl VerifyReport {
    /// Whether the mailpiece is good.
    pub fn is_good(&self) -> bool {
        self.outcome == Verdict::Good.name()
    }

    fn malformed(why: String) -> Self {
        Self {
            outcome: Verdict::Malformed.name(),
            code: Verdict::Malformed.code().map(|c| c.0),
            vendor: Verdict::Malformed.name(),
            postal: Verdict::Malformed.name(),
            meter: None,
            subdomain: None,
            isn: None,
            count: None,
            repairs: Vec::new(),
            first_seen: None,
            reason: Some(why),
        }
    }

    fn of(piece: &PieceToVerify, repairs: &[FieldRepair], v: PieceVerdict) -> Self {
        let m = &piece.mailpiece;
        let verdict = v.verdict();
        Self {
            outcome: verdict.name(),
            code: verdict.code().map(|c| c.0),
            vendor: v.vendor.name(),
            postal: v.postal.name(),
            meter: v.meter.map(|m| m.to_string()),
            subdomain: Some(m.subdomain.to_string()),
            isn: Some(m.isn.to_string()),
            count: Some(m.count),
            repairs: repairs_of(repairs),
            first_seen: v
                .first
                .map(|f| FirstSeen { time: f.time.to_string(), site: f.site.to_string() }),
            reason: None,
        }
    }
}

/// A batch parsed and planned against the archive, waiting for Brass and the duplicate memory.
struct Prepared {
    reports: Vec<Option<VerifyReport>>,
    repairs: Vec<Vec<FieldRepair>>,
    places: Vec<usize>,
    pieces: Vec<PieceToVerify>,
    plan: postkey_kmc::VerificationPlan,
}

/// A batch Brass answered for, to be remembered ([`Verifier::settle`]).
struct Checked {
    reports: Vec<Option<VerifyReport>>,
    repairs: Vec<Vec<FieldRepair>>,
    places: Vec<usize>,
    pieces: Vec<PieceToVerify>,
    verdicts: Vec<postkey_kmc::PieceVerdict>,
}

/// A verifier: the KMC with every Brass box that serves a sub-domain enabled.
#[derive(Debug)]
pub struct Verifier<S = SqliteStore> {
    home: Home,
    kmc: Kmc<S>,
    boxes: EmbeddedBoxes,
    trust: Trust,
    audit: Option<BoxId>,
    clock: KmsClock<fn() -> Timestamp>,
    cache: VerifyCache,
    site: Site,
    /// One checkpoint at a time: batches verified at once by one verifier each checkpoint.
    checkpointing: tokio::sync::Mutex<()>,
}

impl<S: Store> Verifier<S> {
    /// Opens for verifying at `site`: the archive's integrity check at open, then the Brass
    /// boxes enabled from `shares_dir` and checked.
    pub async fn open(
        lock: &HomeLock,
        store: S,
        shares_dir: &std::path::Path,
        site: Site,
    ) -> Result<Self, HostError> {
        let home = lock.home().clone();
        let trust = Trust::load(&home, &store).await?;
        crate::archive::check_at_open(&home, &store).await?;
        let mut brass = Vec::new();
        for b in
            store.boxes(Some(BoxType::Brass)).await.map_err(|e| home.logged("kmc", e.into()))?
        {
            let processes =
                store.domain_processes(b.id).await.map_err(|e| home.logged("kmc", e.into()))?;
            if processes.iter().any(|p| !p.subdomains.is_empty()) {
                brass.push(b.id);
            }
        }
        let Opened { kmc, boxes, trust, audit, clock } =
            open_kmc(lock, store, trust, shares_dir, &brass).await?;
        if audit.is_none() {
            // Its checkpoint of the duplicate memory is what refuses an archive put back from
            // before a verification, which would let a copy verify good again.
            let why = "verification needs the audit box (a Brass box with the ADMIN process): \
                       make one first";
            return Err(home.logged("host", crate::Usage::InvalidArgument(why.into()).into()));
        }
        Ok(Self {
            home,
            kmc,
            boxes,
            trust,
            audit,
            clock,
            cache: VerifyCache::default(),
            site,
            checkpointing: tokio::sync::Mutex::new(()),
        })
    }

    /// Verifies each indicium text, in order: one report each. A text that does not parse is
    /// `malformed` (5006), in the error log with its reason; the others go to the KMC as one
    /// batch.
    pub async fn verify_texts(&self, texts: &[&str]) -> Result<Vec<VerifyReport>, HostError> {
        let inputs: Vec<Result<&str, String>> = texts.iter().map(|t| Ok(*t)).collect();
        self.verify_inputs(&inputs).await
    }

    /// As [`Self::verify_texts`], for inputs some of which could not be read as text at all
    /// (a picture without a readable symbol, a line too long): those are `malformed` with the
    /// reason given.
    pub async fn verify_inputs(
        &self,
        inputs: &[Result<&str, String>],
    ) -> Result<Vec<VerifyReport>, HostError> {
        let prepared = self.prepare(inputs).await?;
        self.finish(prepared).await
    }

    /// Parses a batch (a text that does not parse is `malformed`, in the error log) and plans
    /// it against the archive: what [`Self::finish`] completes.
    async fn prepare(&self, inputs: &[Result<&str, String>]) -> Result<Prepared, HostError> {
        self.prepare_parsed(parse_all(inputs), Inputs::Given).await
    }

    /// As [`Self::prepare`], for a batch parsed already.
    async fn prepare_parsed(
        &self,
        read: Vec<Result<Parsed, String>>,
        inputs: Inputs<'_>,
    ) -> Result<Prepared, HostError> {
        log_refused(&self.home, &read, inputs, self.clock.now())?;
        let inputs = &read;
        let mut reports: Vec<Option<VerifyReport>> = Vec::with_capacity(inputs.len());
        let (mut pieces, mut repairs, mut places) = (Vec::new(), Vec::new(), Vec::new());
        for (i, read) in read.into_iter().enumerate() {
            match read {
                Ok(Parsed { indicium, repairs: repaired }) => {
                    places.push(i);
                    // Moved, not copied: the report takes the fields from the piece verified.
                    pieces.push(PieceToVerify {
                        mailpiece: indicium.mailpiece,
                        vendor: indicium.vendor,
                        postal: indicium.postal,
                    });
                    repairs.push(repaired);
                    reports.push(None);
                }
                Err(why) => reports.push(Some(VerifyReport::malformed(why))),
            }
        }
        let plan = self
            .kmc
            .plan_verification(&self.cache, &pieces)
            .await
            .map_err(|e| kmc_error(&self.home, e))?;
        Ok(Prepared { reports, repairs, places, pieces, plan })
    }

    /// Brass, the duplicate memory and the checkpoint for a prepared batch: its reports.
    async fn finish(&self, prepared: Prepared) -> Result<Vec<VerifyReport>, HostError> {
        let checked = self.check(prepared).await?;
        self.settle(checked).await
    }

    /// Brass's answers for a prepared batch.
    async fn check(&self, prepared: Prepared) -> Result<Checked, HostError> {
        let Prepared { reports, repairs, places, pieces, plan } = prepared;
        let verdicts = self
            .kmc
            .brass_verdicts(&self.boxes, &self.cache, plan, &pieces)
            .await
            .map_err(|e| kmc_error(&self.home, e))?;
        Ok(Checked { reports, repairs, places, pieces, verdicts })
    }

    /// The duplicate memory for a batch Brass answered for, then the checkpoint: its reports.
    async fn settle(&self, checked: Checked) -> Result<Vec<VerifyReport>, HostError> {
        let Checked { mut reports, repairs, places, pieces, mut verdicts } = checked;
        let now = self.clock.now();
        self.kmc
            .remember(&mut verdicts, &pieces, &self.site, now)
            .await
            .map_err(|e| kmc_error(&self.home, e))?;
        for (((place, p), r), v) in places.into_iter().zip(&pieces).zip(&repairs).zip(verdicts) {
            reports[place] = Some(VerifyReport::of(p, r, v));
        }
        // The audit box signs the duplicate memory's chain as it now stands before any answer
        // leaves: an archive put back from before this batch is refused (3676) by the next
        // command, and its mailpieces never verify good twice.
        self.checkpoint().await?;
        Ok(reports.into_iter().flatten().collect())
    }

    /// Verifies the indicia of a file, one a line (empty lines skipped), `batch` at a time:
    /// `each` is told every report with its line number as its batch is done (its sightings
    /// committed), and writes it: if it fails, the run stops there ([`HostError::Output`]) and
    /// no later batch is remembered (its answers could not be given). A line longer than [`MAX_LINE`] is `malformed` and is not held whole. The
    /// file must be a regular file (a FIFO or a device is refused before it is read). Returns
    /// the count of each outcome.
    pub async fn verify_file(
        &mut self,
        path: &std::path::Path,
        batch: usize,
        mut each: impl FnMut(u64, &VerifyReport) -> std::io::Result<()>,
    ) -> Result<std::collections::BTreeMap<&'static str, u64>, HostError> {
        let this = &*self;
        let mut lines = Lines::open(&this.home, path)?;
        let mut counts = std::collections::BTreeMap::new();
        // Three batches in flight: while batch n is remembered (the duplicate memory, then
        // the checkpoint), batch n + 1 is at Brass and batch n + 2 is parsed and planned
        // against the archive (`Kmc::plan_verification` reads only). Brass's answers do not
        // depend on the duplicate memory; batches are remembered in order, and each batch's
        // answers leave after its checkpoint.
        let mut at_brass: Option<(Vec<u64>, Prepared)> = None;
        let mut checked: Option<(Vec<u64>, Checked)> = None;
        loop {
            let read = lines.next_batch(batch)?;
            if read.is_empty() && at_brass.is_none() && checked.is_none() {
                break;
            }
            let numbers: Vec<u64> = read.iter().map(|(n, _)| *n).collect();
            let (to_check, to_settle) = (at_brass.take(), checked.take());
            // Parsed on a thread of its own, beside the KMC's work on the other batches.
            let next = async {
                if read.is_empty() {
                    return Ok(None);
                }
                let parsed = tokio::task::spawn_blocking(move || parse_all(&Lines::inputs(&read)))
                    .await
                    // A panic while parsing is this command's, as on its own thread.
                    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                this.prepare_parsed(parsed, Inputs::Lines(path, &numbers)).await.map(Some)
            };
            let check = async {
                match to_check {
                    Some((lines, p)) => this.check(p).await.map(|c| Some((lines, c))),
                    None => Ok(None),
                }
            };
            let settle = async {
                match to_settle {
                    Some((lines, c)) => this.settle(c).await.map(|r| Some((lines, r))),
                    None => Ok(None),
                }
            };
            let (next, check, settle) = tokio::join!(next, check, settle);
            if let Some((numbers, reports)) = settle? {
                for (n, r) in numbers.iter().zip(&reports) {
                    *counts.entry(r.outcome).or_default() += 1;
                    // Batch n + 1 (Brass's answers) and n + 2 are dropped unremembered.
                    each(*n, r).map_err(HostError::Output)?;
                }
            }
            checked = check?;
            at_brass = next?.map(|p| (numbers, p));
        }
        lines.check_any(&this.home, counts.is_empty())?;
        Ok(counts)
    }

    /// The box link and the archive, for the benchmark's direct Brass calls.
    #[cfg(feature = "bench")]
    pub(crate) fn parts(&self) -> (&Kmc<S>, &EmbeddedBoxes, &VerifyCache) {
        (&self.kmc, &self.boxes, &self.cache)
    }

    /// What the command recorded goes to the error log and the audit box's checkpoints; the
    /// boxes are locked.
    pub async fn close(self) -> Result<(), HostError> {
        self.checkpoint().await
    }

    async fn checkpoint(&self) -> Result<(), HostError> {
        let _one = self.checkpointing.lock().await;
        let session = self.boxes.session();
        crate::checkpoint::moved(&self.home, self.kmc.store(), session, &self.trust, self.audit)
            .await
    }
}

/// Parses each input (docs/indicium.md); an input that does not parse is `malformed` with its
/// reason, in the error log (5006).
pub(crate) fn parse_logged(
    home: &Home,
    inputs: &[Result<&str, String>],
    named: Inputs<'_>,
    now: Timestamp,
) -> Result<Vec<Result<Parsed, String>>, HostError> {
    let read = parse_all(inputs);
    log_refused(home, &read, named, now)?;
    Ok(read)
}

/// How the error log names a batch's inputs: by their place among the texts given, or by
/// their line of the file (a batch of a file is not its first lines, and blank lines are
/// skipped: the line is what the verifier's own answers name).
#[derive(Clone, Copy)]
pub(crate) enum Inputs<'a> {
    /// Texts given one by one (arguments, pictures): `indicium N`.
    Given,
    /// Lines of a file, each with its number: `FILE line N`.
    Lines(&'a std::path::Path, &'a [u64]),
}

impl Inputs<'_> {
    fn name(&self, i: usize) -> String {
        match self {
            Inputs::Given => format!("indicium {}", i + 1),
            Inputs::Lines(path, numbers) => match numbers.get(i) {
                Some(n) => format!("{} line {n}", path.display()),
                None => format!("{} input {}", path.display(), i + 1),
            },
        }
    }
}

/// Each input parsed (a text that does not parse, or a line that could not be read, says why).
fn parse_all(inputs: &[Result<&str, String>]) -> Vec<Result<Parsed, String>> {
    inputs
        .iter()
        .map(|input| {
            input
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|t| postkey_indicium::parse(t).map_err(|e: ParseError| e.to_string()))
        })
        .collect()
}

/// The inputs that did not parse, in the error log (one entry each, numbered in the batch).
fn log_refused(
    home: &Home,
    read: &[Result<Parsed, String>],
    inputs: Inputs<'_>,
    now: Timestamp,
) -> Result<(), HostError> {
    let refused: Vec<String> = read
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|why| format!("{}: {why}", inputs.name(i))))
        .collect();
    if !refused.is_empty() {
        let entries: Vec<(ResponseCode, &str)> =
            refused.iter().map(|m| (ResponseCode::INDICIUM_MALFORMED, m.as_str())).collect();
        home.log_errors("kmc", &entries, now)?;
    }
    Ok(())
}

/// The repairs of a parsed indicium, as reports give them.
pub(crate) fn repairs_of(repairs: &[FieldRepair]) -> Vec<RepairReport> {
    repairs
        .iter()
        .map(|r| RepairReport {
            field: r.field.name(),
            position: r.repair.position,
            read: r.repair.read,
            corrected: r.repair.corrected,
        })
        .collect()
}

/// A line of a verification file: its number, and its text or why it is none.
pub(crate) type Line = (u64, Result<String, String>);

/// The lines of a verification file, read in batches: numbered, empty lines skipped, a line
/// longer than [`MAX_LINE`] never held whole, a first byte-order mark and a final `\r` dropped.
pub(crate) struct Lines {
    reader: std::io::BufReader<std::fs::File>,
    path: std::path::PathBuf,
    number: u64,
    buf: Vec<u8>,
    end: bool,
}

impl Lines {
    /// Opens `path`, which must be a regular file (a FIFO or a device is refused before it is
    /// read); a refusal is logged with the OS reason.
    pub(crate) fn open(home: &Home, path: &std::path::Path) -> Result<Self, HostError> {
        let (file, _) = postkey_durable::open_regular(path).map_err(|e| {
            let why = match &e {
                postkey_durable::ReadError::Storage(f) => format!("{e}: {}", f.source),
                _ => e.to_string(),
            };
            let e = HostError::from(crate::Usage::InvalidArgument(format!("--file: {why}")));
            home.logged("host", e)
        })?;
        Ok(Self {
            reader: std::io::BufReader::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
            number: 0,
            buf: Vec::new(),
            end: false,
        })
    }

    /// The next lines that are not empty, at most `batch`; none at the end.
    pub(crate) fn next_batch(&mut self, batch: usize) -> Result<Vec<Line>, HostError> {
        let mut lines = Vec::with_capacity(batch.max(1));
        while lines.len() < batch.max(1) && !self.end {
            self.buf.clear();
            let read = read_line(&mut self.reader, &mut self.buf, MAX_LINE)
                .map_err(|e| crate::home::storage("reading", &self.path, e))?;
            let Some(whole) = read else {
                self.end = true;
                break;
            };
            self.number += 1;
            let text = if whole {
                String::from_utf8(core::mem::take(&mut self.buf))
                    .map_err(|_| "the line is not UTF-8 text".to_owned())
            } else {
                Err(format!("the line is longer than {MAX_LINE} bytes: no indicium"))
            };
            // A byte-order mark some editors put first is no part of the text.
            let first = self.number == 1;
            let text = text.map(|t| match t.strip_prefix('\u{FEFF}') {
                Some(rest) if first => rest.to_owned(),
                _ => t,
            });
            if text.as_ref().is_ok_and(|t| t.trim().is_empty()) {
                continue;
            }
            lines.push((self.number, text));
        }
        Ok(lines)
    }

    /// A batch's lines as verification inputs.
    pub(crate) fn inputs(lines: &[Line]) -> Vec<Result<&str, String>> {
        lines
            .iter()
            .map(|(_, t)| t.as_deref().map(|t| t.trim_end_matches('\r')).map_err(Clone::clone))
            .collect()
    }

    /// Refuses (2010, logged) a file that held no indicium at all.
    pub(crate) fn check_any(&self, home: &Home, none: bool) -> Result<(), HostError> {
        if none {
            let why = format!("--file: {} holds no indicium", self.path.display());
            return Err(home.logged("host", crate::Usage::InvalidArgument(why).into()));
        }
        Ok(())
    }
}

/// The longest line of a verification file held: longer is no indicium.
pub(crate) const MAX_LINE: usize = 4096;

/// Reads one line (without its `\n`) into `buf`, holding at most `max` bytes of it: `None` at
/// the end, `Some(false)` for a line that was longer (the rest skipped).
fn read_line(
    reader: &mut impl std::io::BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    let mut any = false;
    let mut whole = true;
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(any.then_some(whole));
        }
        any = true;
        let (line, used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        if whole {
            if buf.len() + line.len() > max {
                whole = false;
                buf.clear();
            } else {
                buf.extend_from_slice(line);
            }
        }
        reader.consume(used);
        if done {
            return Ok(Some(whole));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_bounded() {
        let data = b"abc\n\nxxxxxxxxxx\nlast";
        let mut r = std::io::BufReader::with_capacity(3, &data[..]);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while let Some(whole) = read_line(&mut r, &mut buf, 5).unwrap() {
            got.push((whole, String::from_utf8(buf.clone()).unwrap()));
            buf.clear();
        }
        assert_eq!(
            got,
            vec![
                (true, "abc".into()),
                (true, String::new()),
                (false, String::new()),
                (true, "last".into())
            ]
        );
    }
}
