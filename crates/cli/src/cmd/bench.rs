use postkey_host::{Access, Home, Wait, bench};

use super::{Outcome, block_on, print_json, print_lines};

/// `postkey bench …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Installation throughput end to end on the embedded default, with the cost of its
    /// public-key operations measured in the same run.
    Install(InstallArgs),
    /// Registration throughput end to end: meters keyed first, then all registered (MR1 to
    /// MR4, both keys Active per meter), with the cryptography of a registration measured in the
    /// same run.
    Register(InstallArgs),
    /// `audit verify` on an archive of real signed records, beside its floor measured in the
    /// same run (SHA-256 over the same bytes, as many strict Ed25519 verifications). With
    /// `--home`, the archive of that home as it is; else a fresh home keyed with `--meters`.
    Audit(AuditArgs),
    /// Verification throughput: meters keyed and registered, a workload of mailpieces printed
    /// by them (one in a hundred a copy), verified one at a time and batched at the Brass box
    /// and through `verify --file` with the durable duplicate memory, each beside two bare
    /// AES-256-CMACs per mailpiece measured in the same run.
    Verify(VerifyArgs),
}

/// Arguments of `postkey bench verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// Meters printing the workload (keyed and registered first).
    #[arg(long, default_value_t = 10_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    meters: usize,
    /// Mailpieces in the workload, copies included.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(100..=10_000_000))]
    mailpieces: usize,
    /// Keep the duplicate memory in PostgreSQL at this URL, in a fresh schema dropped after.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Keep the temporary home (and the PostgreSQL schema).
    #[arg(long)]
    keep: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `postkey bench audit`.
#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    /// Meters to key first in a fresh home (two keys each), at most a million; ignored with
    /// `--home`.
    #[arg(long, default_value_t = 1000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    meters: usize,
    /// Keep the fresh home it makes.
    #[arg(long)]
    keep: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `postkey bench install`.
#[derive(Debug, clap::Args)]
pub(crate) struct InstallArgs {
    /// Meters to key (two keys each: VE and USPS), at most a million.
    #[arg(long, default_value_t = 1000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    meters: usize,
    /// Meters per batch (one durable write per box and archive stage for the whole batch).
    #[arg(long, default_value_t = postkey_host::DEFAULT_BATCH, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    batch: usize,
    /// Run against a PostgreSQL archive at this URL (`postgres://user@host:5432/db`) instead of
    /// the home's SQLite one; the archive goes into a fresh schema named after the run, dropped
    /// after it.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Keep the temporary home (and the PostgreSQL schema) the run makes, to look at after; by
    /// default both are removed when the run ends, or is interrupted (SIGINT, SIGTERM).
    #[arg(long)]
    keep: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// What a throughput run measured.
enum Measured {
    Install(bench::InstallBench),
    Register(bench::RegisterBench),
}

/// SIGINT and SIGTERM, handled from the moment they are registered: a signal that comes before
/// the run is waited on is kept, not lost. Where the handlers cannot be installed, never: the
/// signals then stop the process as they would anyway.
struct Interrupts(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

impl Interrupts {
    /// Registers the handlers (inside a runtime).
    fn register() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self(signal(SignalKind::terminate()).ok().zip(signal(SignalKind::interrupt()).ok()))
    }

    /// Returns when a signal came.
    async fn recv(&mut self) {
        match &mut self.0 {
            Some((term, int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            None => std::future::pending().await,
        }
    }
}

pub(crate) fn run(
    home: Option<std::path::PathBuf>,
    wait: Wait,
    command: Command,
) -> anyhow::Result<Outcome> {
    let (a, register) = match command {
        Command::Install(a) => (a, false),
        Command::Register(a) => (a, true),
        Command::Audit(a) => return run_audit(home, wait, a),
        Command::Verify(a) => return run_verify(home, wait, a),
    };
    // The handlers first: a signal from the moment the home exists still cleans it up.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut interrupts = runtime.block_on(async { Interrupts::register() });
    // A home of its own, made for the run, goes with it unless kept; one the caller named stays.
    let (root, own) = bench_home(home, a.keep)?;
    let pg = a.postgres.map(pg_schema);
    let lock = match Home::new(&root).lock(Access::Exclusive, wait) {
        Ok(lock) => lock,
        Err(e) => {
            if own {
                let _ = std::fs::remove_dir_all(&root);
            }
            return Err(e.into());
        }
    };
    let what = if register { "meters registered" } else { "meters keyed" };
    let mut progress = super::Progress::new(what, a.meters);
    let run = runtime.block_on(async {
        let work = async {
            if register {
                let r = bench::register(&lock, a.meters, a.batch, pg.as_ref(), |n| progress.set(n));
                r.await.map(Measured::Register)
            } else {
                let r = bench::install(&lock, a.meters, a.batch, pg.as_ref(), |n| progress.set(n));
                r.await.map(Measured::Install)
            }
        };
        tokio::select! {
            biased;
            () = interrupts.recv() => None,
            r = work => Some(r),
        }
    });
    progress.finish();
    // An interrupted run's box calls may still be writing into the home on the runtime's
    // blocking threads: dropping the runtime waits for them, so none writes while the home is
    // removed (a signal 20 ms into a run once left "Directory not empty").
    drop(interrupts);
    drop(runtime);
    drop(lock);
    // What the run made goes, whatever its outcome, unless kept.
    if !a.keep {
        if let Some(config) = &pg {
            block_on(bench::drop_schema(config))??;
        }
        if own {
            std::fs::remove_dir_all(&root).map_err(|e| {
                anyhow::anyhow!("removing the bench's home {}: {e}", root.display())
            })?;
        }
    } else if let Some(schema) = pg.as_ref().and_then(|c| c.schema.as_deref()) {
        eprintln!("postkey bench: PostgreSQL schema {schema} kept");
    }
    let Some(r) = run else {
        eprintln!("postkey bench: interrupted; what the run made is removed unless --keep");
        return Ok(Outcome::Interrupted);
    };
    let r = match r? {
        Measured::Install(r) => r,
        Measured::Register(r) => {
            if a.json {
                print_json(&r)?;
            } else {
                print_lines(&[
                    format!(
                        "{} meters registered ({} of {}) in {:.2} s, {} meters per batch, archive: {}, {} Brass box(es)",
                        r.registered,
                        r.registered,
                        r.meters,
                        r.seconds,
                        r.batch,
                        r.archive,
                        r.brass_boxes
                    ),
                    format!("  {:.0} meters/s (every durable write included)", r.meters_per_second),
                    format!(
                        "  CPU per meter {:.0} µs without the durable commit (+ {:.0} µs in durable commits)",
                        r.cpu_us_per_meter, r.durable_us_per_meter
                    ),
                    format!(
                        "  cryptography per meter {:.0} µs (two keys: {})",
                        r.crypto_us_per_meter,
                        bench::REGISTER_OPS
                    ),
                    format!(
                        "  ratio {:.2} ({:.2} with the durable commit)",
                        r.ratio, r.ratio_all_in
                    ),
                ])?;
            }
            return Ok(Outcome::Success);
        }
    };
    if a.json {
        print_json(&r)?;
    } else {
        print_lines(&[
            format!(
                "{} meters, {} keys installed in {:.2} s, {} meters per batch, archive: {}",
                r.meters, r.keys, r.seconds, r.batch, r.archive
            ),
            format!(
                "  {:.0} keys/s, {:.0} meters/s (every durable write included)",
                r.keys_per_second, r.meters_per_second
            ),
            format!(
                "  CPU per key {:.0} µs without the durable commit (+ {:.0} µs in durable commits: archive, box states, meter files)",
                r.cpu_us_per_key, r.durable_us_per_key
            ),
            format!(
                "  public-key operations per key {:.0} µs ({} HPKE seals × {:.1}, {} opens × {:.1}, {} signatures × {:.1}, {} verifications × {:.1})",
                r.public_key_ops_us_per_key,
                bench::SEALS,
                r.hpke_seal_us,
                bench::OPENS,
                r.hpke_open_us,
                bench::SIGNATURES,
                r.sign_us,
                bench::VERIFICATIONS,
                r.verify_us
            ),
            format!("  ratio {:.2} ({:.2} with the durable commit)", r.ratio, r.ratio_all_in),
        ])?;
    }
    Ok(Outcome::Success)
}

/// `postkey bench audit`.
fn run_audit(
    home: Option<std::path::PathBuf>,
    wait: Wait,
    a: AuditArgs,
) -> anyhow::Result<Outcome> {
    let (root, own) = bench_home(home, a.keep)?;
    let home = Home::new(&root);
    let result = (|| {
        let lock = home.lock(Access::Exclusive, wait)?;
        if own {
            let mut progress = super::Progress::new("meters keyed", a.meters);
            block_on(bench::install(&lock, a.meters, postkey_host::DEFAULT_BATCH, None, |n| {
                progress.set(n)
            }))??;
            progress.finish();
        }
        anyhow::Ok(block_on(bench::audit(&lock))??)
    })();
    if own && !a.keep {
        std::fs::remove_dir_all(&root)
            .map_err(|e| anyhow::anyhow!("removing the bench's home {}: {e}", root.display()))?;
    }
    let r = result?;
    if a.json {
        print_json(&r)?;
    } else {
        print_lines(&[
            format!(
                "audit verify: {} keys, {} signed records ({} bytes), {} events, {} signatures in {:.2} s ({:.0} keys/s); {}",
                r.keys,
                r.records,
                r.record_bytes,
                r.events,
                r.signatures,
                r.audit_seconds,
                r.keys_per_second,
                if r.holds { "all holds" } else { "FAILED" }
            ),
            format!(
                "  floor in the same run (SHA-256 over the same bytes + strict Ed25519 verifications): {:.2} s; ratio {:.2}",
                r.baseline_seconds, r.ratio
            ),
        ])?;
    }
    Ok(if r.holds { Outcome::Success } else { Outcome::CheckFailed })
}

/// A fresh schema of the PostgreSQL server at `url`, named after the run.
fn pg_schema(url: String) -> postkey_host::PgConfig {
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    postkey_host::PgConfig {
        schema: Some(format!("postkey_bench_{run}_{}", std::process::id())),
        ..postkey_host::PgConfig::new(url)
    }
}

/// `postkey bench verify`.
fn run_verify(
    home: Option<std::path::PathBuf>,
    wait: Wait,
    a: VerifyArgs,
) -> anyhow::Result<Outcome> {
    let (root, own) = bench_home(home, a.keep)?;
    let pg = a.postgres.map(pg_schema);
    let home = Home::new(&root);
    let result = (|| {
        let lock = home.lock(Access::Exclusive, wait)?;
        let r = block_on(bench::verify(&lock, a.meters, a.mailpieces, pg.as_ref(), |step| {
            eprintln!("postkey bench: {step}");
        }))??;
        anyhow::Ok(r)
    })();
    if !a.keep {
        if let Some(config) = &pg {
            block_on(bench::drop_schema(config))??;
        }
        if own {
            std::fs::remove_dir_all(&root).map_err(|e| {
                anyhow::anyhow!("removing the bench's home {}: {e}", root.display())
            })?;
        }
    }
    let r = result?;
    if a.json {
        print_json(&r)?;
    } else {
        let outcomes: Vec<String> =
            r.file_outcomes.iter().map(|(o, n)| format!("{n} {o}")).collect();
        print_lines(&[
            format!(
                "{} mailpieces from {} meters ({} copies), duplicate memory: {}",
                r.mailpieces, r.meters, r.copies, r.archive
            ),
            format!(
                "  floor: two bare AES-256-CMACs per mailpiece {:.2} µs, measured in this run",
                r.bare_cmacs_us_per_piece
            ),
            format!(
                "  single (one mailpiece per VERIFY call): {:.0} mailpieces/s, ratio {:.1}",
                r.single_pieces_per_second, r.single_ratio
            ),
            format!(
                "  batched ({} mailpieces, key records warm): {:.0} mailpieces/s, CPU {:.2} µs per mailpiece, ratio {:.2}, {:.0} tokens per CPU-second",
                r.batched_pieces,
                r.batched_pieces_per_second,
                r.batched_cpu_us_per_piece,
                r.batched_ratio,
                r.batched_tokens_per_cpu_second
            ),
            format!(
                "  verify --file: {:.0} mailpieces/s end to end ({:.2} s; CPU {:.2} µs per mailpiece + {:.2} µs in durable commits): {}",
                r.file_pieces_per_second,
                r.file_seconds,
                r.file_cpu_us_per_piece,
                r.file_durable_us_per_piece,
                outcomes.join(", ")
            ),
        ])?;
    }
    Ok(Outcome::Success)
}

/// The home a benchmark runs in: the one named, or a fresh one of its own (said when kept).
fn bench_home(
    home: Option<std::path::PathBuf>,
    keep: bool,
) -> anyhow::Result<(std::path::PathBuf, bool)> {
    let (root, own) = match home {
        Some(h) => (h, false),
        None => (super::demo::fresh_home()?, true),
    };
    if !own || keep {
        eprintln!("postkey bench: home {}", root.display());
    }
    Ok((root, own))
}
