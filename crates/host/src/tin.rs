//! Tin boxes on the embedded default (docs/tin.md): a month's token keys exported by the Brass
//! box serving a postal sub-domain into a file sealed to one Tin box, imported into it, and
//! mailpieces verified there offline: the postal token only, the meters as of the export's
//! time, no duplicate memory.

use postkey_archive::Store;
use postkey_archive_sqlite::SqliteStore;
use postkey_kmc::{Kmc, KmsClock, PieceToVerify};
use postkey_wire::{BoxId, Period, SubdomainId, Timestamp, Verdict};

use crate::archive::Trust;
use crate::factory::{Opened, kmc_error, open_kmc};
use crate::link::EmbeddedBoxes;
use crate::lock::HomeLock;
use crate::verify::{Inputs, Lines, RepairReport, parse_logged, repairs_of};
use crate::{Home, HostError, OutputFile, Usage};

/// What a Tin box's answers cover, said with each of them.
pub const TIN_COVERS: &str =
    "the postal token only; the meters as of the export's time; duplicates not checked";

/// An export made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportReport {
    /// The file written.
    pub file: String,
    /// The Tin box it is sealed to.
    pub tin: String,
    /// The Brass box that made it.
    pub brass: String,
    /// The postal sub-domain.
    pub subdomain: String,
    /// The month.
    pub month: String,
    /// The meters as of this time (UTC).
    pub as_of: String,
    /// Meters covered.
    pub meters: usize,
    /// Chunks.
    pub chunks: usize,
}

/// An export imported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportReport {
    /// The Tin box.
    pub tin: String,
    /// The postal sub-domain.
    pub subdomain: String,
    /// The month.
    pub month: String,
    /// The export's time (UTC).
    pub as_of: String,
    /// Chunks the box holds of it.
    pub have: u32,
    /// Chunks it has.
    pub chunks: u32,
    /// Token keys now in use for the sub-domain and month.
    pub meters: u32,
}

/// What a Tin box answered for one mailpiece.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TinReport {
    /// The postal token's verdict: `good`, `bad`, `unknown-meter`, `date-before-registration`,
    /// `not-exported`, or `malformed`.
    pub outcome: &'static str,
    /// Its 5xxx code, when not good.
    pub code: Option<u16>,
    /// What the answer covers ([`TIN_COVERS`]).
    pub covers: &'static str,
    /// The time of the export that answered (UTC).
    pub as_of: Option<String>,
    /// The mailpiece's sub-domain, when it parsed.
    pub subdomain: Option<String>,
    /// Its ISN.
    pub isn: Option<String>,
    /// Its piece count.
    pub count: Option<u32>,
    /// Characters the check code repaired.
    pub repairs: Vec<RepairReport>,
    /// Why it was malformed, or why the box could not answer.
    pub reason: Option<String>,
}

impl TinReport {
    /// Whether the postal token is good.
    pub fn is_good(&self) -> bool {
        self.outcome == Verdict::Good.name()
    }
}

/// Has the Brass box serving `subdomain` export the token keys of `month` of the meters whose
/// keys there are `Active`, sealed to Tin box `tin`, into the new file `out` (created first:
/// a path that cannot be written fails before any box is enabled).
pub async fn export<S: Store>(
    lock: &HomeLock,
    store: S,
    shares_dir: &std::path::Path,
    tin: BoxId,
    subdomain: &SubdomainId,
    month: Period,
    out: &std::path::Path,
) -> Result<ExportReport, HostError> {
    let home = lock.home();
    // A month no Tin box would take is the caller's mistake, refused before any box works.
    if let Err(why) = postkey_box::in_tin_window(month, crate::clock::now()) {
        let why = format!("--month {month}: {why}");
        return Err(home.logged("host", Usage::InvalidArgument(why).into()));
    }
    let file = OutputFile::create(out).map_err(|e| home.logged("host", e))?;
    is_tin(home, &store, tin).await?;
    let trust = Trust::load(home, &store).await?;
    crate::archive::check_at_open(home, &store).await?;
    let brass =
        postkey_kmc::brass_serving(&store, subdomain).await.map_err(|e| kmc_error(home, e))?;
    let Opened { kmc, boxes, trust, audit, clock } =
        open_kmc(lock, store, trust, shares_dir, &[brass]).await?;
    let as_of = clock.now();
    let made = kmc
        .export_token_keys(&boxes, tin, subdomain, month, as_of)
        .await
        .map_err(|e| kmc_error(home, e));
    let made = match made {
        Ok(m) => m,
        Err(e) => {
            crate::checkpoint::moved(home, kmc.store(), boxes.session(), &trust, audit).await?;
            return Err(e);
        }
    };
    file.finish(&postkey_wire::encode_export_file(&made.chunks))?;
    crate::checkpoint::moved(home, kmc.store(), boxes.session(), &trust, audit).await?;
    Ok(ExportReport {
        file: out.display().to_string(),
        tin: tin.to_string(),
        brass: made.brass.to_string(),
        subdomain: subdomain.to_string(),
        month: month.to_string(),
        as_of: as_of.to_string(),
        meters: made.keys,
        chunks: made.chunks.len(),
    })
}

/// Reads an export file and gives it to the Tin box it is sealed to.
pub async fn import<S: Store>(
    lock: &HomeLock,
    store: S,
    shares_dir: &std::path::Path,
    path: &std::path::Path,
) -> Result<ImportReport, HostError> {
    let home = lock.home();
    let bytes = crate::read_user_file(path, postkey_wire::MAX_TIN_EXPORT_FILE)
        .map_err(|e| home.logged("host", e))?;
    let chunks = postkey_wire::decode_export_file(&bytes).map_err(|e| {
        let why = format!("{}: {e}", path.display());
        home.logged("host", Usage::InvalidArgument(why).into())
    })?;
    let Some(first) = chunks.first() else {
        return Err(home.logged("host", Usage::InvalidArgument("an empty export".into()).into()));
    };
    let tin = first.claimed_body().tin;
    is_tin(home, &store, tin).await?;
    let trust = Trust::load(home, &store).await?;
    crate::archive::check_at_open(home, &store).await?;
    let Opened { kmc, boxes, trust, audit, .. } =
        open_kmc(lock, store, trust, shares_dir, &[tin]).await?;
    let imported =
        kmc.import_tin_export(&boxes, tin, &chunks).await.map_err(|e| kmc_error(home, e));
    crate::checkpoint::moved(home, kmc.store(), boxes.session(), &trust, audit).await?;
    let last = imported?.pop().ok_or_else(|| {
        home.logged("host", Usage::InvalidArgument("the export had no chunk".into()).into())
    })?;
    Ok(ImportReport {
        tin: tin.to_string(),
        subdomain: last.subdomain.to_string(),
        month: last.period.to_string(),
        as_of: last.as_of.to_string(),
        have: last.have,
        chunks: last.chunks,
        meters: last.keys,
    })
}

/// Refuses (2010, logged) a box that is not a Tin box of the archive.
async fn is_tin(home: &Home, store: &impl Store, tin: BoxId) -> Result<(), HostError> {
    let known = store.box_record(tin).await.map_err(|e| home.logged("kmc", e.into()))?;
    if tin.box_type() != postkey_wire::BoxType::Tin || known.is_none() {
        let why = format!("{tin} is not a Tin box of this installation (see `postkey box list`)");
        return Err(home.logged("host", Usage::InvalidArgument(why).into()));
    }
    Ok(())
}

/// A Tin verifier: one Tin box enabled. It reads nothing of the archive to verify.
#[derive(Debug)]
pub struct TinVerifier<S = SqliteStore> {
    home: Home,
    kmc: Kmc<S>,
    boxes: EmbeddedBoxes,
    tin: BoxId,
    clock: KmsClock<fn() -> Timestamp>,
}

impl<S: Store> TinVerifier<S> {
    /// Enables Tin box `tin` from `shares_dir`, checked as every box is.
    pub async fn open(
        lock: &HomeLock,
        store: S,
        shares_dir: &std::path::Path,
        tin: BoxId,
    ) -> Result<Self, HostError> {
        let home = lock.home().clone();
        is_tin(&home, &store, tin).await?;
        let trust = Trust::load(&home, &store).await?;
        // The Tin box alone: verification there needs no other box, and writes nothing to
        // the archive but the error log.
        let mut session = crate::Session::new(&home, lock.wait());
        crate::ceremony::enable(&mut session, &store, &trust, tin, shares_dir).await?;
        let kmc = Kmc::new(
            store,
            trust.dks_key(),
            trust.installation,
            postkey_kmc::InstallConfig::default(),
        );
        let boxes = EmbeddedBoxes::new(session, crate::MeterLinks::default());
        let nonce = postkey_wire::Nonce(crate::session::os_nonce()?);
        kmc.check_box(&boxes, tin, nonce).await.map_err(|e| kmc_error(&home, e))?;
        let latest = kmc.latest_time().await.map_err(|e| kmc_error(&home, e))?;
        let clock = KmsClock::start(crate::clock::now as fn() -> Timestamp, latest)
            .map_err(|e| kmc_error(&home, e))?;
        Ok(Self { home, kmc, boxes, tin, clock })
    }

    /// Verifies each input's postal token at the Tin box, in order: one report each (a text
    /// that does not parse is `malformed`, in the error log).
    pub async fn verify_inputs(
        &self,
        inputs: &[Result<&str, String>],
    ) -> Result<Vec<TinReport>, HostError> {
        self.verify_named(inputs, Inputs::Given).await
    }

    /// As [`Self::verify_inputs`], the error log naming each input as `named` says.
    async fn verify_named(
        &self,
        inputs: &[Result<&str, String>],
        named: Inputs<'_>,
    ) -> Result<Vec<TinReport>, HostError> {
        let read = parse_logged(&self.home, inputs, named, self.clock.now())?;
        let pieces: Vec<PieceToVerify> = read
            .iter()
            .flatten()
            .map(|p| PieceToVerify {
                mailpiece: p.indicium.mailpiece.clone(),
                vendor: p.indicium.vendor,
                postal: p.indicium.postal,
            })
            .collect();
        let mut verdicts = self
            .kmc
            .tin_verify(&self.boxes, self.tin, &pieces)
            .await
            .map_err(|e| kmc_error(&self.home, e))?
            .into_iter();
        let mut out = Vec::with_capacity(read.len());
        for r in &read {
            out.push(match r {
                Err(why) => TinReport {
                    outcome: Verdict::Malformed.name(),
                    code: Verdict::Malformed.code().map(|c| c.0),
                    covers: TIN_COVERS,
                    as_of: None,
                    subdomain: None,
                    isn: None,
                    count: None,
                    repairs: Vec::new(),
                    reason: Some(why.clone()),
                },
                Ok(p) => {
                    let v = verdicts
                        .next()
                        .ok_or_else(|| kmc_error(&self.home, postkey_kmc::KmcError::Unfinished))?;
                    let m = &p.indicium.mailpiece;
                    TinReport {
                        outcome: v.verdict.name(),
                        code: v.verdict.code().map(|c| c.0),
                        covers: TIN_COVERS,
                        as_of: v.as_of.map(|t| t.to_string()),
                        subdomain: Some(m.subdomain.to_string()),
                        isn: Some(m.isn.to_string()),
                        count: Some(m.count),
                        repairs: repairs_of(&p.repairs),
                        reason: v.refusal.map(|r| format!("{} [{}]", r.message, r.code.0)),
                    }
                }
            });
        }
        Ok(out)
    }

    /// Verifies the indicia of a file, one a line, `batch` at a time; `each` is told every
    /// report with its line number. The count of each outcome.
    pub async fn verify_file(
        &self,
        path: &std::path::Path,
        batch: usize,
        mut each: impl FnMut(u64, &TinReport) -> std::io::Result<()>,
    ) -> Result<std::collections::BTreeMap<&'static str, u64>, HostError> {
        let mut lines = Lines::open(&self.home, path)?;
        let mut counts = std::collections::BTreeMap::new();
        loop {
            let read = lines.next_batch(batch)?;
            if read.is_empty() {
                break;
            }
            let numbers: Vec<u64> = read.iter().map(|(n, _)| *n).collect();
            let named = Inputs::Lines(path, &numbers);
            let reports = self.verify_named(&Lines::inputs(&read), named).await?;
            for ((n, _), r) in read.iter().zip(&reports) {
                *counts.entry(r.outcome).or_default() += 1;
                each(*n, r).map_err(HostError::Output)?;
            }
        }
        lines.check_any(&self.home, counts.is_empty())?;
        Ok(counts)
    }

    /// The error log moved into the archive (the next writing command checkpoints it); the
    /// box locked.
    pub async fn close(self) -> Result<(), HostError> {
        crate::archive::move_error_spool(&self.home, self.kmc.store()).await
    }
}
