//! The factory on the embedded default: simulated meters, and key installation driven by the KMC
//! against the home's SQLite archive (`<home>/archive.db`), with every box hosted in this
//! process behind the embedded box link.

use postkey_archive::{KeyStatus, Store};
use postkey_archive_sqlite::SqliteStore;
use postkey_kmc::{InstallConfig, KeyOrder, KeyOutcome, Kmc};
use postkey_meter::{Meter, SimulatedMeter};
use postkey_secrets::rng::{BoxRng, OsEntropy};
use postkey_wire::{BoxId, BoxType, DomainId, KeyId, MeterId, Nonce};

use crate::link::{EmbeddedBoxes, MeterLinks};
use crate::{Home, HostError, Session, clock, register_in_archive};

/// Opens the home's archive and registers in it whatever the home's ceremonies made since.
pub async fn open_archive(home: &Home) -> Result<SqliteStore, HostError> {
    let store = SqliteStore::open(home.root().join("archive.db")).await?;
    register_in_archive(home, &store).await?;
    Ok(store)
}

/// Makes a simulated meter: its transport key from a fresh generator, its state in the home.
pub fn new_meter(home: &Home, id: &MeterId) -> Result<(), HostError> {
    if home.load_meter(id).is_ok() {
        return Err(HostError::Usage(format!("meter {id} already exists")));
    }
    let personalization = format!("postkey meter {id} {}", clock::now().unix_micros());
    let mut rng = BoxRng::instantiate(OsEntropy, personalization.as_bytes())
        .map_err(|e| HostError::boxed("host", postkey_box::BoxError::from(e)))?;
    let meter =
        Meter::manufacture(id.clone(), &mut rng).map_err(|e| HostError::Usage(e.to_string()))?;
    home.save_meter(&meter)
}

/// The boxes that serve an installation: the first registered Oak, Steel and Brass boxes with a
/// process of each domain, unless chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// The Oak box.
    pub oak: BoxId,
    /// The Steel box.
    pub steel: BoxId,
    /// The Brass box.
    pub brass: BoxId,
}

/// Picks the first box of each type that runs processes of all `domains`.
pub async fn line_for(store: &SqliteStore, domains: &[DomainId]) -> Result<Line, HostError> {
    let pick = |t: BoxType| async move {
        for b in store.boxes(Some(t)).await? {
            let served: Vec<DomainId> =
                store.domain_processes(b.id).await?.into_iter().map(|p| p.domain).collect();
            if domains.iter().all(|d| served.contains(d)) {
                return Ok(b.id);
            }
        }
        Err(HostError::Usage(format!(
            "no {t} box serves {}: manufacture one with `postkey box manufacture --type {t} --domain …`",
            domains.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and ")
        )))
    };
    Ok(Line {
        oak: pick(BoxType::Oak).await?,
        steel: pick(BoxType::Steel).await?,
        brass: pick(BoxType::Brass).await?,
    })
}

/// The result of installing one meter's keys.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstallReport {
    /// The meter.
    pub meter: String,
    /// Each key: domain, key ID, status.
    pub keys: Vec<KeySummary>,
}

/// One key of a report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeySummary {
    /// Its domain.
    pub domain: String,
    /// Its ID.
    pub key_id: u64,
    /// Its status.
    pub status: String,
    /// Why it is bad, if it is.
    pub reason: Option<String>,
}

/// A factory run: the KMC, its archive, the boxes of one line enabled, meters on the line.
#[derive(Debug)]
pub struct Factory {
    home: Home,
    kmc: Kmc<SqliteStore>,
    session: Session,
    meters: MeterLinks,
    line: Line,
}

impl Factory {
    /// Opens the archive, enables the line's boxes from `shares_dir`, and runs the KMC's
    /// state-version check on each before anything else; a Steel box's interrupted
    /// installations are then aborted and their keys made `Bad`.
    pub async fn open(
        home: &Home,
        shares_dir: &std::path::Path,
        domains: &[DomainId],
    ) -> Result<Self, HostError> {
        let store = open_archive(home).await?;
        let line = line_for(&store, domains).await?;
        let kmc = Kmc::new(store, home.domain_key_set_key()?, InstallConfig::default());
        let mut session = Session::new(home)?;
        let mut meters = MeterLinks::default();
        for b in [line.oak, line.steel, line.brass] {
            session.enable(b, shares_dir)?;
            let mut nonce = [0u8; 32];
            postkey_secrets::rng::EntropySource::fill(&mut OsEntropy, &mut nonce)
                .map_err(|e| HostError::Usage(e.to_string()))?;
            let mut boxes = EmbeddedBoxes { session: &mut session, meters: &mut meters };
            kmc.check_box(&mut boxes, b, Nonce(nonce)).await.map_err(|e| kmc_error(home, e))?;
        }
        let mut boxes = EmbeddedBoxes { session: &mut session, meters: &mut meters };
        kmc.recover_steel(&mut boxes, line.steel, clock::now)
            .await
            .map_err(|e| kmc_error(home, e))?;
        // A KMC that stopped mid-installation left `New` keys without MI7: they become `Bad`.
        for domain in domains {
            kmc.fail_stale_keys(domain, clock::now()).await.map_err(|e| kmc_error(home, e))?;
        }
        Ok(Self { home: home.clone(), kmc, session, meters, line })
    }

    /// Installs a vendor key and a postal key into meter `id` (loaded from and saved back to the
    /// home), each end to end. A key that fails is `Bad` and reported; the meter keeps what it got.
    pub async fn install(
        &mut self,
        id: &MeterId,
        vendor: &DomainId,
        postal: &DomainId,
    ) -> Result<InstallReport, HostError> {
        let meter = SimulatedMeter::new(self.home.load_meter(id)?);
        self.meters.connect(id.clone(), Box::new(meter.clone()));
        let mut keys = Vec::new();
        for domain in [vendor, postal] {
            let order = KeyOrder {
                domain: domain.clone(),
                oak: self.line.oak,
                steel: self.line.steel,
                brass: self.line.brass,
                meter: id.clone(),
            };
            let mut boxes = EmbeddedBoxes { session: &mut self.session, meters: &mut self.meters };
            let outcome = self
                .kmc
                .install_key(&mut boxes, &order, clock::now)
                .await
                .map_err(|e| kmc_error(&self.home, e));
            match outcome {
                Ok(KeyOutcome::Installed { key_id, .. }) => {
                    keys.push(summary(domain, key_id, KeyStatus::Installed, None))
                }
                Ok(KeyOutcome::Bad { key_id, reason }) => {
                    keys.push(summary(domain, key_id, KeyStatus::Bad, Some(reason)))
                }
                Err(e) => {
                    self.meters.disconnect(id);
                    self.home.save_meter(&meter.meter())?;
                    return Err(e);
                }
            }
        }
        self.meters.disconnect(id);
        self.home.save_meter(&meter.meter())?;
        Ok(InstallReport { meter: id.to_string(), keys })
    }

    /// Locks the boxes.
    pub fn close(self) {
        self.session.lock();
    }
}

fn summary(
    domain: &DomainId,
    key_id: KeyId,
    status: KeyStatus,
    reason: Option<String>,
) -> KeySummary {
    KeySummary {
        domain: domain.to_string(),
        key_id: key_id.get(),
        status: status.to_string(),
        reason,
    }
}

fn kmc_error(home: &Home, e: postkey_kmc::KmcError) -> HostError {
    let _ = home.log_error("kmc", e.response_code(), &e.to_string(), clock::now());
    HostError::Kmc(e)
}
