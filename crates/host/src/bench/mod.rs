//! `postkey bench install`: end-to-end installation throughput on the embedded default, and CPU
//! per key beside the cost of the public-key operations one key needs, measured in the same run.
//!
//! One key needs 4 HPKE seals (MI3, MI4, MI5, MI9), 3 HPKE opens (MI4 at Steel, MI5 at the meter,
//! MI3 at Brass), 5 Ed25519 signatures (MI3, MI4, MI7, MI9, MI10) and 6 strict verifications
//! (Steel: MI4; Brass: MI3, MI7; KMC: MI3, MI7, MI9, the records it keeps). What a batch does
//! once (Oak's check of the Steel box's papers, the KMC's check of the domain bundle) is not
//! counted per key. The ratio of the CPU time per key to that sum says how much the rest
//! (encoding, sealing box states, the archive, the meters) costs on top of the cryptography that
//! cannot be avoided.

use std::time::Instant;

use postkey_crypto::{HpkeInfo, HpkeRecordType, Signer as _};
use postkey_secrets::rng::{BoxRng, OsEntropy};
use postkey_secrets::{HpkePrivateKey, MasterKey, SigningKey};
use postkey_wire::{DomainId, MeterId};

use crate::lock::HomeLock;
use crate::{Factory, HostError};

/// The public-key operations of one key (see the module documentation).
pub const SEALS: f64 = 4.0;
/// HPKE opens per key.
pub const OPENS: f64 = 3.0;
/// Signatures per key.
pub const SIGNATURES: f64 = 5.0;
/// Strict verifications per key.
pub const VERIFICATIONS: f64 = 6.0;

/// What `postkey bench install` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstallBench {
    /// Meters keyed.
    pub meters: usize,
    /// Meters per batch.
    pub batch: usize,
    /// The archive.
    pub archive: String,
    /// Keys installed (two per meter).
    pub keys: usize,
    /// Wall time of the installations, seconds.
    pub seconds: f64,
    /// Keys installed per second, end to end with every durable write.
    pub keys_per_second: f64,
    /// Meters keyed per second.
    pub meters_per_second: f64,
    /// Process CPU time per key without the durable commit, microseconds (waiting on fsync is
    /// not CPU time; the CPU threads spend committing the SQLite archive and writing and
    /// syncing box states and meter files is counted apart, in `durable_us_per_key`).
    pub cpu_us_per_key: f64,
    /// CPU time per key in durable commits, microseconds (on PostgreSQL the commits run in the
    /// server and are not counted here).
    pub durable_us_per_key: f64,
    /// `(cpu_us_per_key + durable_us_per_key) / public_key_ops_us_per_key`.
    pub ratio_all_in: f64,
    /// The public-key operations of one key, measured in this run, microseconds.
    pub public_key_ops_us_per_key: f64,
    /// `cpu_us_per_key / public_key_ops_us_per_key`.
    pub ratio: f64,
    /// The baseline's parts, microseconds each.
    pub hpke_seal_us: f64,
    /// HPKE open.
    pub hpke_open_us: f64,
    /// Ed25519 signature.
    pub sign_us: f64,
    /// Ed25519 strict verification.
    pub verify_us: f64,
}

mod verify;

pub use verify::{VerifyBench, verify};

use postkey_archive::metrics::{
    durable_cpu_seconds as durable_seconds, process_cpu_seconds as cpu_seconds,
};

pub(super) fn per_op(iterations: u32, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        op();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
}

fn baseline() -> Result<(f64, f64, f64, f64), HostError> {
    let fail = |e: String| HostError::Entropy(format!("benchmark baseline: {e}"));
    let mut rng =
        BoxRng::instantiate(OsEntropy, b"postkey bench").map_err(|e| fail(e.to_string()))?;
    let sk = HpkePrivateKey::generate(&mut rng).map_err(|e| fail(e.to_string()))?;
    let pk = sk.public_key();
    let info = HpkeInfo::new(HpkeRecordType::Mi3, "USPS", 1, "BRASS:USPS")
        .map_err(|e| fail(e.to_string()))?;
    let key = MasterKey::generate(&mut rng).map_err(|e| fail(e.to_string()))?;
    let ct = key.seal_to(&pk, &info, &mut rng).map_err(|e| fail(e.to_string()))?;
    let signer = SigningKey::generate(&mut rng).map_err(|e| fail(e.to_string()))?;
    let vk = signer.verifying_key();
    let message = [7u8; 300];
    let sig = signer.sign(&message);
    let n = 300;
    let seal = per_op(n, || {
        let _ = key.seal_to(&pk, &info, &mut rng);
    });
    let open = per_op(n, || {
        let _ = sk.open_master_key(&info, &ct);
    });
    let sign = per_op(n, || {
        let _ = signer.sign(&message);
    });
    let verify = per_op(n, || {
        let _ = vk.verify(&message, &sig);
    });
    Ok((seal, open, sign, verify))
}

/// Runs the benchmark in the home `lock` holds alone (a fresh one: the demo's ceremonies run
/// first, without meters). `archive`: a fresh PostgreSQL schema instead of the home's SQLite
/// archive, left for the caller to drop ([`drop_schema`]).
pub async fn install(
    lock: &HomeLock,
    meters: usize,
    batch: usize,
    archive: Option<&postkey_archive_postgres::PgConfig>,
    progress: impl FnMut(usize),
) -> Result<InstallBench, HostError> {
    let home = lock.home();
    let (ve, usps) = (DomainId::parse("VE")?, DomainId::parse("USPS")?);
    let ids: Vec<MeterId> = (1..=meters)
        .map(|n| MeterId::parse(&format!("PB9999-{n:06}")))
        .collect::<Result<_, _>>()?;
    let domains = [ve.clone(), usps.clone()];
    match archive {
        None => {
            crate::demo::run(lock, crate::demo::DemoOptions::new(0, 0), |_| {}).await?;
            make_meters(lock, &ids).await?;
            let factory = Factory::open(lock, &home.media_dir(), &domains).await?;
            measure(factory, ids, &ve, &usps, batch, "SQLite".into(), progress).await
        }
        Some(config) => {
            let store = postkey_archive_postgres::PgStore::connect(config).await?;
            crate::demo::run_on(lock, store.clone(), crate::demo::DemoOptions::new(0, 0), |_| {})
                .await?;
            make_meters(lock, &ids).await?;
            let where_ =
                format!("PostgreSQL, schema {}", config.schema.as_deref().unwrap_or("(default)"));
            let factory = Factory::open_on(lock, store, &home.media_dir(), &domains).await?;
            measure(factory, ids, &ve, &usps, batch, where_, progress).await
        }
    }
}

/// Makes the run's meters, yielding now and then so that a caller waiting on a signal beside
/// the run is heard.
async fn make_meters(lock: &HomeLock, ids: &[MeterId]) -> Result<(), HostError> {
    for (n, id) in ids.iter().enumerate() {
        crate::new_meter(lock, id)?;
        if n % 256 == 255 {
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

/// Drops the PostgreSQL schema a run of [`install`] made (the caller named it, and removes it
/// whatever the run's outcome, an interrupted run's included).
pub async fn drop_schema(config: &postkey_archive_postgres::PgConfig) -> Result<(), HostError> {
    let store = postkey_archive_postgres::PgStore::connect(config).await?;
    Ok(store.drop_schema().await?)
}

async fn measure<S: postkey_archive::Store>(
    mut factory: Factory<S>,
    ids: Vec<MeterId>,
    ve: &DomainId,
    usps: &DomainId,
    batch: usize,
    archive: String,
    progress: impl FnMut(usize),
) -> Result<InstallBench, HostError> {
    let meters = ids.len();
    let (seal, open, sign, verify) = baseline()?;
    let line: Vec<(MeterId, DomainId)> = ids.into_iter().map(|id| (id, usps.clone())).collect();
    let (cpu_before, durable_before) = (cpu_seconds(), durable_seconds());
    let start = Instant::now();
    let reports = factory.install_many(&line, ve, batch, progress).await?;
    let seconds = start.elapsed().as_secs_f64();
    let keys = reports.iter().flat_map(|r| &r.keys).filter(|k| k.status == "installed").count();
    let cpu = cpu_seconds() - cpu_before;
    let durable = durable_seconds() - durable_before;
    factory.close();
    let per_key_ops = SEALS * seal + OPENS * open + SIGNATURES * sign + VERIFICATIONS * verify;
    let keys_f = keys.max(1) as f64;
    let all_in_us_per_key = cpu * 1e6 / keys_f;
    let cpu_us_per_key = (cpu - durable) * 1e6 / keys_f;
    Ok(InstallBench {
        meters,
        batch,
        archive,
        keys,
        seconds,
        keys_per_second: keys_f / seconds,
        meters_per_second: meters as f64 / seconds,
        cpu_us_per_key,
        durable_us_per_key: durable * 1e6 / keys_f,
        ratio_all_in: all_in_us_per_key / per_key_ops,
        public_key_ops_us_per_key: per_key_ops,
        ratio: cpu_us_per_key / per_key_ops,
        hpke_seal_us: seal,
        hpke_open_us: open,
        sign_us: sign,
        verify_us: verify,
    })
}

/// The cryptography of registering one key (docs/benchmarks.md, "Registration"): at Brass, a
/// strict verification of MI9, an HPKE open of K, the registration token (AES-CMAC), K wrapped
/// (AES-KWP), MR3's HMAC and MR4's signature; at the KMC, MR4's strict verification.
pub const REGISTER_OPS: &str = "2 verifications, 1 HPKE open, 1 AES-CMAC, 1 AES-KWP wrap, \
                                1 HMAC-SHA256, 1 signature per key";

/// What `postkey bench register` measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegisterBench {
    /// Meters registered (two keys each).
    pub meters: usize,
    /// Meters per batch.
    pub batch: usize,
    /// The archive.
    pub archive: String,
    /// Meters whose registration ended `registered`.
    pub registered: usize,
    /// Wall time of the registrations, seconds.
    pub seconds: f64,
    /// Meters registered per second, end to end with every durable write.
    pub meters_per_second: f64,
    /// Process CPU time per meter without the durable commit, microseconds.
    pub cpu_us_per_meter: f64,
    /// CPU time per meter in durable commits, microseconds.
    pub durable_us_per_meter: f64,
    /// The cryptography of one meter (two keys, [`REGISTER_OPS`]), measured in this run.
    pub crypto_us_per_meter: f64,
    /// `cpu_us_per_meter / crypto_us_per_meter`.
    pub ratio: f64,
    /// `(cpu_us_per_meter + durable_us_per_meter) / crypto_us_per_meter`.
    pub ratio_all_in: f64,
    /// How the Brass work is laid out: the Brass boxes the batches went to.
    pub brass_boxes: usize,
}

/// The cryptography of registering one key, microseconds (see [`REGISTER_OPS`]).
fn register_floor() -> Result<f64, HostError> {
    let fail = |e: String| HostError::Entropy(format!("benchmark baseline: {e}"));
    let mut rng = BoxRng::instantiate(OsEntropy, b"postkey bench register")
        .map_err(|e| fail(e.to_string()))?;
    let sk = HpkePrivateKey::generate(&mut rng).map_err(|e| fail(e.to_string()))?;
    let info = HpkeInfo::new(HpkeRecordType::Mi9, "USPS", 1, "BRASS:USPS")
        .map_err(|e| fail(e.to_string()))?;
    let key = MasterKey::generate(&mut rng).map_err(|e| fail(e.to_string()))?;
    let ct = key.seal_to(&sk.public_key(), &info, &mut rng).map_err(|e| fail(e.to_string()))?;
    let signer = SigningKey::generate(&mut rng).map_err(|e| fail(e.to_string()))?;
    let vk = signer.verifying_key();
    let message = [7u8; 300];
    let sig = signer.sign(&message);
    let conf =
        postkey_secrets::SubdomainConfKey::generate(&mut rng).map_err(|e| fail(e.to_string()))?;
    let auth =
        postkey_secrets::SubdomainAuthKey::generate(&mut rng).map_err(|e| fail(e.to_string()))?;
    let meter = MeterId::parse("PB1234-000001")?;
    let (isn, country) =
        (postkey_wire::Isn::parse("0401234567")?, postkey_wire::Country::parse("US")?);
    let date = postkey_wire::Date::parse("20261204")?;
    let registration =
        postkey_secrets::Registration { meter: &meter, isn: &isn, country: &country, date };
    let n = 300;
    // The least of five rounds: a floor is what the operations cost undisturbed.
    let round = || {
        let open = per_op(n, || {
            let _ = sk.open_master_key(&info, &ct);
        });
        let token = per_op(n, || {
            let _ = key.registration_token(&registration);
        });
        let wrap = per_op(n, || {
            let _ = conf.wrap(&key);
        });
        let mac = per_op(n, || {
            let _ = auth.mac(&message);
        });
        let sign = per_op(n, || {
            let _ = signer.sign(&message);
        });
        let verify = per_op(n, || {
            let _ = vk.verify(&message, &sig);
        });
        2.0 * verify + open + token + wrap + mac + sign
    };
    Ok((0..5).map(|_| round()).fold(f64::INFINITY, f64::min))
}

/// Runs the registration benchmark in the home `lock` holds alone (a fresh one): the demo's
/// ceremonies, `meters` meters keyed (VE and USPS), then all registered into `USPS/US` (the
/// vendor keys into `VE/US`), `batch` meters at a time, timed. `archive` as for [`install`].
pub async fn register(
    lock: &HomeLock,
    meters: usize,
    batch: usize,
    archive: Option<&postkey_archive_postgres::PgConfig>,
    progress: impl FnMut(usize),
) -> Result<RegisterBench, HostError> {
    let home = lock.home();
    let (ids, line, orders) = registered_line(meters, 'B')?;
    let run = Run { lock, ids: &ids, line: &line, orders: &orders, batch };
    match archive {
        None => {
            crate::demo::run(lock, crate::demo::DemoOptions::new(0, 0), |_| {}).await?;
            let store = crate::open_archive(home).await?;
            run.key_meters(store.clone()).await?;
            run.measure(store, "SQLite".into(), progress).await
        }
        Some(config) => {
            let store = postkey_archive_postgres::PgStore::connect(config).await?;
            crate::demo::run_on(lock, store.clone(), crate::demo::DemoOptions::new(0, 0), |_| {})
                .await?;
            run.key_meters(store.clone()).await?;
            // An archive in service has its planner statistics; this one was filled a moment
            // ago from empty tables.
            store.analyze().await?;
            let schema = config.schema.as_deref().unwrap_or("(default)");
            run.measure(store, format!("PostgreSQL, schema {schema}"), progress).await
        }
    }
}

/// The meters `PB9999-<n>` of a benchmark, their factory line (VE and USPS keys) and their
/// registration orders into `USPS/US` under ISNs `<prefix><n>`, dated today.
#[allow(clippy::type_complexity)]
pub(super) fn registered_line(
    meters: usize,
    prefix: char,
) -> Result<(Vec<MeterId>, Vec<(MeterId, DomainId)>, Vec<crate::RegistrationOrder>), HostError> {
    let usps = DomainId::parse("USPS")?;
    let ids: Vec<MeterId> = (1..=meters)
        .map(|n| MeterId::parse(&format!("PB9999-{n:06}")))
        .collect::<Result<_, _>>()?;
    let line: Vec<(MeterId, DomainId)> = ids.iter().map(|id| (id.clone(), usps.clone())).collect();
    let date = crate::register::utc_date(crate::clock::now())?;
    let orders = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            Ok(crate::RegistrationOrder {
                meter: id.clone(),
                subdomain: postkey_wire::SubdomainId::parse("USPS/US")?,
                isn: postkey_wire::Isn::parse(&format!("{prefix}{n:09}"))?,
                date,
            })
        })
        .collect::<Result<_, HostError>>()?;
    Ok((ids, line, orders))
}

/// A registration benchmark's meters and orders.
pub(super) struct Run<'a> {
    pub(super) lock: &'a HomeLock,
    pub(super) ids: &'a [MeterId],
    pub(super) line: &'a [(MeterId, DomainId)],
    pub(super) orders: &'a [crate::RegistrationOrder],
    pub(super) batch: usize,
}

impl Run<'_> {
    /// Makes the meters and keys them on `store`.
    pub(super) async fn key_meters<S: postkey_archive::Store + Clone>(
        &self,
        store: S,
    ) -> Result<(), HostError> {
        let media = self.lock.home().media_dir();
        let domains = [DomainId::parse("VE")?, DomainId::parse("USPS")?];
        make_meters(self.lock, self.ids).await?;
        let mut f = Factory::open_on(self.lock, store, &media, &domains).await?;
        f.install_many(self.line, &domains[0], crate::DEFAULT_BATCH, |_| {}).await?;
        f.close();
        Ok(())
    }

    /// Times the registration of the keyed meters.
    async fn measure<S: postkey_archive::Store + Clone>(
        &self,
        store: S,
        archive: String,
        progress: impl FnMut(usize),
    ) -> Result<RegisterBench, HostError> {
        let media = self.lock.home().media_dir();
        let mut r = crate::Registrar::for_orders(self.lock, store, &media, self.orders).await?;
        let brass_boxes = r.brass_boxes();
        let (cpu_before, durable_before) = (cpu_seconds(), durable_seconds());
        let start = Instant::now();
        let reports = r.register_many(self.orders, self.batch, progress).await?;
        let seconds = start.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu_before;
        let durable = durable_seconds() - durable_before;
        r.close();
        // Measured after the run, in the same process, warm.
        let per_meter = 2.0 * register_floor()?;
        let registered = reports.iter().filter(|r| r.outcome == "registered").count();
        let m = registered.max(1) as f64;
        let (cpu_us, durable_us) = ((cpu - durable) * 1e6 / m, durable * 1e6 / m);
        Ok(RegisterBench {
            meters: self.ids.len(),
            batch: self.batch,
            archive,
            registered,
            seconds,
            meters_per_second: registered as f64 / seconds,
            cpu_us_per_meter: cpu_us,
            durable_us_per_meter: durable_us,
            crypto_us_per_meter: per_meter,
            ratio: cpu_us / per_meter,
            ratio_all_in: (cpu_us + durable_us) / per_meter,
            brass_boxes,
        })
    }
}

/// What `postkey bench audit` measured: `postkey audit verify` on an archive of real signed
/// records, beside the floor any audit of those bytes has, measured in the same process.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditBench {
    /// Keys in the archive.
    pub keys: u64,
    /// Signed records and checkpoints checked, and their bytes.
    pub records: u64,
    /// Their bytes.
    pub record_bytes: u64,
    /// Events whose hash was recomputed.
    pub events: u64,
    /// Signatures verified.
    pub signatures: u64,
    /// Whether the audit held (it must).
    pub holds: bool,
    /// The audit's wall time, seconds.
    pub audit_seconds: f64,
    /// The floor, seconds: SHA-256 over the same record bytes and one 200-byte block per
    /// event, plus as many strict Ed25519 verifications as signatures.
    pub baseline_seconds: f64,
    /// audit ÷ floor.
    pub ratio: f64,
    /// Keys audited per second.
    pub keys_per_second: f64,
}

/// Audits the archive of the home `lock` holds (read-only, as `postkey audit verify` does), then
/// measures the floor in the same process (see [`AuditBench`]).
pub async fn audit(lock: &HomeLock) -> Result<AuditBench, HostError> {
    let home = lock.home();
    let anchors = home.anchors()?;
    let store = crate::open_archive_read_only(home).await?;
    let start = Instant::now();
    let report = postkey_audit::verify(&store, &anchors).await?;
    let audit_seconds = start.elapsed().as_secs_f64();
    let records = report.records + report.chains.iter().map(|c| c.checkpoints).sum::<u64>();
    let fail = |e: String| HostError::Entropy(format!("benchmark baseline: {e}"));
    let mut rng =
        BoxRng::instantiate(OsEntropy, b"postkey bench audit").map_err(|e| fail(e.to_string()))?;
    let signer = SigningKey::generate(&mut rng).map_err(|e| fail(e.to_string()))?;
    let vk = signer.verifying_key();
    let record = vec![7u8; (report.record_bytes / records.max(1)).max(1) as usize];
    let sig = signer.sign(&record);
    let block = [9u8; 200];
    let start = Instant::now();
    let mut sink = 0u8;
    for _ in 0..records {
        sink ^= postkey_crypto::sha256(&record)[0];
    }
    for _ in 0..report.events {
        sink ^= postkey_crypto::sha256(&block)[0];
    }
    for _ in 0..report.signatures {
        sink ^= u8::from(vk.verify(&record, &sig).is_ok());
    }
    let baseline_seconds = start.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    Ok(AuditBench {
        keys: report.keys,
        records,
        record_bytes: report.record_bytes,
        events: report.events,
        signatures: report.signatures,
        holds: report.holds(),
        audit_seconds,
        baseline_seconds,
        ratio: audit_seconds / baseline_seconds.max(f64::MIN_POSITIVE),
        keys_per_second: report.keys as f64 / audit_seconds.max(f64::MIN_POSITIVE),
    })
}
