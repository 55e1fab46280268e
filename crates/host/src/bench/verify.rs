//! `postkey bench verify` (docs/benchmarks.md, "Verification"): a fixed workload of mailpieces
//! printed by registered meters, a share of them copies, verified three ways, each beside two
//! bare AES-256-CMACs of the same canonical bytes per mailpiece (a mailpiece has two tokens),
//! measured in the same run:
//!
//! - **single**: one mailpiece per batch (`Kmc::brass_verdicts` on a plan made before the
//!   clock starts: the KMC's `VERIFY` item, the embedded link, Brass and the answer), the
//!   token-key cache and the key records warm;
//! - **batched**: the same in batches of [`crate::DEFAULT_VERIFY_BATCH`];
//! - **file**: `verify --file`'s path end to end (`Verifier::verify_file`): parsing and repair,
//!   the archive's key records, Brass, and the durable duplicate memory.

use std::collections::BTreeMap;
use std::time::Instant;

use postkey_archive::Store;
use postkey_indicium::Indicium;
use postkey_kmc::{PieceToVerify, PieceVerdict};
use postkey_meter::{Mailing, Meter, MeterError};
use postkey_secrets::TokenKey;
use postkey_wire::{Site, Verdict, Zip};

use super::{Run, cpu_seconds, durable_seconds};
use crate::lock::HomeLock;
use crate::{HostError, Verifier};

/// What `postkey bench verify` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyBench {
    /// Meters that printed the workload.
    pub meters: usize,
    /// Mailpieces in the workload (copies included).
    pub mailpieces: usize,
    /// Of them, copies of another.
    pub copies: usize,
    /// The archive of the duplicate memory.
    pub archive: String,
    /// Two bare AES-256-CMACs (each with its key schedule) over one mailpiece's canonical bytes,
    /// microseconds: the floor.
    pub bare_cmacs_us_per_piece: f64,
    /// Single: mailpieces per second.
    pub single_pieces_per_second: f64,
    /// Single: wall time per mailpiece over the floor.
    pub single_ratio: f64,
    /// Mailpieces verified batched.
    pub batched_pieces: usize,
    /// Batched: mailpieces per second (wall).
    pub batched_pieces_per_second: f64,
    /// Batched: process CPU time per mailpiece, microseconds (the least of three rounds, as
    /// the floor is the least of five).
    pub batched_cpu_us_per_piece: f64,
    /// Batched: CPU per mailpiece over the floor.
    pub batched_ratio: f64,
    /// Batched: tokens per CPU-second (per core).
    pub batched_tokens_per_cpu_second: f64,
    /// File: mailpieces per second end to end, every durable write included.
    pub file_pieces_per_second: f64,
    /// File: wall time, seconds.
    pub file_seconds: f64,
    /// File: process CPU time per mailpiece without the durable commit, microseconds.
    pub file_cpu_us_per_piece: f64,
    /// File: CPU time per mailpiece in durable commits, microseconds.
    pub file_durable_us_per_piece: f64,
    /// File: the count of each outcome (all good but the copies, which are duplicates).
    pub file_outcomes: BTreeMap<String, u64>,
}

/// Mailpieces sent singly, and batched, for the in-process figures.
const SAMPLE: usize = 100_000;
const SINGLE: usize = 10_000;
/// Rounds of the batched measurement, of which the least is reported (as for the floor).
const BATCHED_ROUNDS: usize = 3;

/// A small deterministic generator for the workload's order (splitmix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Runs the verification benchmark in the home `lock` holds alone (a fresh one): `meters`
/// meters keyed and registered into `USPS/US`, `pieces` mailpieces printed by them (one in a
/// hundred a copy of another), shuffled, written to a file of the home; then the three
/// measures. `archive` as for [`super::install`].
pub async fn verify(
    lock: &HomeLock,
    meters: usize,
    pieces: usize,
    archive: Option<&postkey_archive_postgres::PgConfig>,
    mut progress: impl FnMut(&str),
) -> Result<VerifyBench, HostError> {
    let (ids, line, orders) = super::registered_line(meters, 'V')?;
    let run = Run { lock, ids: &ids, line: &line, orders: &orders, batch: 64 };
    match archive {
        None => {
            crate::demo::run(lock, crate::demo::DemoOptions::new(0, 0), |_| {}).await?;
            let store = crate::open_archive(lock.home()).await?;
            prepare(&run, store.clone(), pieces, &mut progress).await?;
            measure(&run, store, pieces, "SQLite".into(), progress).await
        }
        Some(config) => {
            let store = postkey_archive_postgres::PgStore::connect(config).await?;
            crate::demo::run_on(lock, store.clone(), crate::demo::DemoOptions::new(0, 0), |_| {})
                .await?;
            prepare(&run, store.clone(), pieces, &mut progress).await?;
            store.analyze().await?;
            let schema = config.schema.as_deref().unwrap_or("(default)");
            measure(&run, store, pieces, format!("PostgreSQL, schema {schema}"), progress).await
        }
    }
}

/// The workload file of the home.
fn workload_path(run: &Run<'_>) -> std::path::PathBuf {
    run.lock.home().root().join("verify-workload.txt")
}

/// Keys and registers the meters, has them print, and writes the shuffled workload.
async fn prepare<S: Store + Clone>(
    run: &Run<'_>,
    store: S,
    pieces: usize,
    mut progress: impl FnMut(&str),
) -> Result<(), HostError> {
    let home = run.lock.home();
    progress("keying the meters");
    run.key_meters(store.clone()).await?;
    progress("registering them");
    let mut r =
        crate::Registrar::for_orders(run.lock, store, &home.media_dir(), run.orders).await?;
    let reports = r.register_many(run.orders, run.batch, |_| {}).await?;
    r.close();
    if let Some(refused) = reports.iter().find(|r| r.outcome != "registered") {
        return Err(crate::Usage::InvalidArgument(format!("bench: {refused:?}")).into());
    }
    progress("printing");
    let copies = pieces / 100;
    let originals = pieces - copies;
    let per_meter = originals.div_ceil(run.ids.len());
    let date = crate::register::utc_date(crate::clock::now())?;
    let mut texts = Vec::with_capacity(pieces);
    let mut printed: Vec<Meter> = Vec::with_capacity(run.ids.len());
    for (k, id) in run.ids.iter().enumerate() {
        let mut meter = home.load_meter(id)?;
        let n = per_meter.min(originals - texts.len().min(originals));
        let mailing = Mailing { date, value: 50 + (k % 400) as u32, zip: Zip::normalize("06484")? };
        // The meters' files are saved once, after all of them printed (two flushes).
        let out = meter
            .print(&mailing, n as u32, |_| Ok::<_, MeterError>(()))
            .map_err(|e| crate::Usage::InvalidArgument(e.to_string()))?;
        texts.extend(out.into_iter().map(|p| {
            Indicium { mailpiece: p.mailpiece, vendor: p.vendor, postal: p.postal }.to_text()
        }));
        printed.push(meter);
    }
    home.save_meters(&printed.iter().collect::<Vec<_>>())?;
    let mut mix = Mix(0x5EED);
    // Copies of distinct originals, then everything in a random order.
    let step = (originals / copies.max(1)).max(1);
    let copied: Vec<String> = texts.iter().step_by(step).take(copies).cloned().collect();
    texts.extend(copied);
    for i in (1..texts.len()).rev() {
        let j = mix.below(i + 1);
        texts.swap(i, j);
    }
    let mut body = texts.join("\n");
    body.push('\n');
    postkey_durable::write_atomic(&workload_path(run), body.as_bytes(), 0o600)?;
    Ok(())
}

/// The floor: two bare AES-256-CMACs (key schedule included) per mailpiece, microseconds; the
/// least of five rounds.
fn floor(canonical: &[Vec<u8>]) -> f64 {
    let keys: Vec<TokenKey> =
        (0..16u8).map(|i| TokenKey::from_bytes([i.wrapping_mul(37); 32])).collect();
    let n = canonical.len().min(20_000);
    let round = || {
        let start = Instant::now();
        for (i, c) in canonical.iter().take(n).enumerate() {
            core::hint::black_box(keys[i % 16].token_over(c));
            core::hint::black_box(keys[(i + 1) % 16].token_over(c));
        }
        start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64
    };
    (0..5).map(|_| round()).fold(f64::INFINITY, f64::min)
}

async fn measure<S: Store + Clone>(
    run: &Run<'_>,
    store: S,
    pieces: usize,
    archive: String,
    mut progress: impl FnMut(&str),
) -> Result<VerifyBench, HostError> {
    let home = run.lock.home();
    let path = workload_path(run);
    let text = String::from_utf8(crate::home::read(&path, 4 << 30)?)
        .map_err(|e| HostError::corrupt(&path, e.to_string()))?;
    let site = Site::parse("bench")?;
    let v = Verifier::open(run.lock, store.clone(), &home.media_dir(), site).await?;

    // The sample, parsed, and planned against the archive before the clock starts (the key
    // records warm): what is measured is the KMC's `VERIFY` items, Brass and the answers.
    let pieces_of =
        |lines: &mut dyn Iterator<Item = &str>| -> Result<Vec<PieceToVerify>, HostError> {
            lines
                .map(|l| {
                    let i = postkey_indicium::parse(l)
                        .map_err(|e| crate::Usage::InvalidArgument(format!("bench workload: {e}")))?
                        .indicium;
                    Ok(PieceToVerify { mailpiece: i.mailpiece, vendor: i.vendor, postal: i.postal })
                })
                .collect()
        };
    let sample = pieces_of(&mut text.lines().take(SAMPLE))?;
    let canonical: Vec<Vec<u8>> = sample.iter().map(|p| p.mailpiece.canonical_bytes()).collect();
    let (kmc, boxes, cache) = v.parts();
    let plan = async |pieces: &[PieceToVerify]| {
        kmc.plan_verification(cache, pieces).await.map_err(kmc_refused)
    };
    let check = |answers: Vec<PieceVerdict>| -> Result<usize, HostError> {
        Ok(answers
            .iter()
            .map(|a| {
                usize::from(a.postal == Verdict::Good) + usize::from(a.vendor == Verdict::Good)
            })
            .sum())
    };
    progress("in memory: warming the caches");
    let batches: Vec<&[PieceToVerify]> = sample.chunks(crate::DEFAULT_VERIFY_BATCH).collect();
    // The first round sends each MR3 (the box checks it and keeps it by digest, the token keys
    // are derived); the KMC names each by digest alone from then on, as the measured round does.
    for b in &batches {
        let answers =
            kmc.brass_verdicts(boxes, cache, plan(b).await?, b).await.map_err(kmc_refused)?;
        check(answers)?;
    }
    progress("in memory: batched");
    // The least of three rounds, as the floor is: what verification costs undisturbed (a round
    // is some 0.1 s of CPU, which another process on the machine easily inflates).
    let (mut batched_wall, mut batched_cpu) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..BATCHED_ROUNDS {
        let mut plans = Vec::with_capacity(batches.len());
        for b in &batches {
            plans.push(plan(b).await?);
        }
        let (cpu0, start) = (cpu_seconds(), Instant::now());
        let mut good = 0;
        for (b, p) in batches.iter().zip(plans) {
            good += check(kmc.brass_verdicts(boxes, cache, p, b).await.map_err(kmc_refused)?)?;
        }
        let (wall, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
        if good != 2 * sample.len() {
            return Err(crate::Usage::InvalidArgument(format!(
                "bench: {good} of {} tokens good in the batched run",
                2 * sample.len()
            ))
            .into());
        }
        if cpu < batched_cpu {
            (batched_wall, batched_cpu) = (wall, cpu);
        }
    }
    progress("in memory: single");
    let single = sample.len().min(SINGLE);
    let mut plans = Vec::with_capacity(single);
    for p in sample[..single].chunks(1) {
        plans.push(plan(p).await?);
    }
    let start = Instant::now();
    for (p, plan) in sample[..single].chunks(1).zip(plans) {
        check(kmc.brass_verdicts(boxes, cache, plan, p).await.map_err(kmc_refused)?)?;
    }
    let single_wall = start.elapsed().as_secs_f64() / single.max(1) as f64;
    let bare = floor(&canonical);

    // The file, end to end.
    progress("the file, end to end");
    let (cpu0, durable0, start) = (cpu_seconds(), durable_seconds(), Instant::now());
    let mut v = v;
    let outcomes = v.verify_file(&path, crate::DEFAULT_VERIFY_BATCH, |_, _| Ok(())).await?;
    let file_seconds = start.elapsed().as_secs_f64();
    let (cpu, durable) = (cpu_seconds() - cpu0, durable_seconds() - durable0);
    v.close().await?;
    let n = pieces.max(1) as f64;
    let copies = pieces / 100;
    let expected =
        BTreeMap::from([("duplicate", copies as u64), ("good", (pieces - copies) as u64)]);
    let got: BTreeMap<&str, u64> = outcomes.iter().map(|(k, v)| (*k, *v)).collect();
    if got != expected {
        return Err(crate::Usage::InvalidArgument(format!(
            "bench: the file's outcomes {got:?} are not the workload's {expected:?}"
        ))
        .into());
    }
    let m = sample.len().max(1) as f64;
    Ok(VerifyBench {
        meters: run.ids.len(),
        mailpieces: pieces,
        copies,
        archive,
        bare_cmacs_us_per_piece: bare,
        single_pieces_per_second: 1.0 / single_wall,
        single_ratio: single_wall * 1e6 / bare,
        batched_pieces: sample.len(),
        batched_pieces_per_second: m / batched_wall,
        batched_cpu_us_per_piece: batched_cpu * 1e6 / m,
        batched_ratio: batched_cpu * 1e6 / m / bare,
        batched_tokens_per_cpu_second: 2.0 * m / batched_cpu,
        file_pieces_per_second: n / file_seconds,
        file_seconds,
        file_cpu_us_per_piece: (cpu - durable) * 1e6 / n,
        file_durable_us_per_piece: durable * 1e6 / n,
        file_outcomes: outcomes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    })
}

fn kmc_refused(e: postkey_kmc::KmcError) -> HostError {
    crate::Usage::InvalidArgument(format!("bench: {e}")).into()
}
