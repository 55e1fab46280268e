//! The setup the host's integration tests share: a home whose installation the real ceremonies
//! made (the first ceremony, domains, boxes and their processes), recorded in an archive, the
//! single source of truth about boxes, domains, processes and state versions.

// Each test file uses a part of this module.
#![allow(dead_code)]

use std::path::PathBuf;

use postkey_archive::Store;
use postkey_host::{
    Access, Ceremonies, Expected, Home, HomeLock, InitReport, Session, SharePolicy, SqliteStore,
    Trust, Wait,
};
use postkey_wire::{BoxId, BoxType, DomainId, DomainKind, ResponseCode, SubdomainId};

pub(crate) fn d(s: &str) -> DomainId {
    DomainId::parse(s).unwrap()
}

pub(crate) fn sub(s: &str) -> SubdomainId {
    SubdomainId::parse(s).unwrap()
}

/// What a world holds besides the first manufacturing box: its domains (each `VE` or `USPS`,
/// with the one sub-domain `<domain>/US`) and one box of each type listed, in order, each with a
/// process of every domain (a Brass process serves the domain's sub-domain).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    pub(crate) domains: &'static [&'static str],
    pub(crate) boxes: &'static [BoxType],
}

/// The first ceremony only.
pub(crate) const INITIALIZED: Spec = Spec { domains: &[], boxes: &[] };
/// One Oak box, no domain besides ADMIN, no process.
pub(crate) const ONE_OAK: Spec = Spec { domains: &[], boxes: &[BoxType::Oak] };
/// A production line: VE and USPS, and an Oak, a Steel and a Brass box serving both.
pub(crate) const LINE: Spec =
    Spec { domains: &["VE", "USPS"], boxes: &[BoxType::Oak, BoxType::Steel, BoxType::Brass] };
/// USPS, and an Oak and a Steel box serving it.
pub(crate) const USPS_OAK_STEEL: Spec =
    Spec { domains: &["USPS"], boxes: &[BoxType::Oak, BoxType::Steel] };

fn kind(domain: &str) -> DomainKind {
    match domain {
        "VE" => DomainKind::Vendor,
        "USPS" => DomainKind::Postal,
        other => panic!("no test domain {other}"),
    }
}

/// A home, its archive and what the ceremonies made in them. No box is enabled and no lock is
/// held once it is built.
#[derive(Debug)]
pub(crate) struct World<S = SqliteStore> {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) home: Home,
    pub(crate) store: S,
    pub(crate) trust: Trust,
    pub(crate) init: InitReport,
    /// The boxes made, in the order of the spec's types.
    pub(crate) made: Vec<BoxId>,
}

/// A temporary directory on a RAM file system where there is one (every refusal is an fsync'd
/// log line), else in the default temporary directory.
pub(crate) fn ram_tempdir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

/// Builds `spec` in a home in `dir`, on the home's own SQLite archive.
pub(crate) async fn world(dir: tempfile::TempDir, spec: Spec) -> World {
    let home = Home::new(dir.path());
    let store = postkey_host::open_archive(&home).await.unwrap();
    world_on(dir, store, spec).await
}

/// Builds `spec` in a home in `dir`, recorded in `store`.
pub(crate) async fn world_on<S: Store + Clone>(
    dir: tempfile::TempDir,
    store: S,
    spec: Spec,
) -> World<S> {
    let home = Home::new(dir.path());
    let media = home.media_dir();
    let lock = home.lock(Access::Exclusive, Wait::No).unwrap();
    let init = postkey_host::init(&lock, &store, &media).await.unwrap();
    let m = BoxId::FIRST_MANUFACTURING;
    let mut c = Ceremonies::open(&lock, store.clone()).await.unwrap();
    c.enable(m, &media).await.unwrap();
    for name in spec.domains {
        c.create_domain(m, d(name), kind(name), vec![sub(&format!("{name}/US"))]).await.unwrap();
    }
    let mut made = Vec::new();
    for &t in spec.boxes {
        let r = c.manufacture(m, t, &media, SharePolicy::default_for(t), None).await.unwrap();
        assert_eq!(r.box_type, t);
        for name in spec.domains {
            let subs = if t == BoxType::Brass { vec![sub(&format!("{name}/US"))] } else { vec![] };
            c.install_process(m, r.id, &d(name), subs).await.unwrap();
        }
        made.push(r.id);
    }
    let trust = c.trust().clone();
    c.close();
    drop(lock);
    // Every ceremony recorded the versions its boxes reached: the archive holds each box's
    // sealed state version, no more (the box would be refused) and no less (a restored state
    // would pass).
    for b in std::iter::once(m).chain(made.iter().copied()) {
        let sealed = home.store().read_state(b).unwrap().version;
        assert_eq!(store.highest_state_version(b).await.unwrap(), sealed, "{b}");
    }
    World { dir, home, store, trust, init, made }
}

impl<S: Store> World<S> {
    /// The first box made of type `t`.
    pub(crate) fn made(&self, t: BoxType) -> BoxId {
        *self.made.iter().find(|b| b.box_type() == t).unwrap()
    }

    /// The home's media directory, where every share file was written.
    pub(crate) fn media(&self) -> PathBuf {
        self.home.media_dir()
    }

    /// Where box `id`'s sealed state is.
    pub(crate) fn state_path(&self, id: BoxId) -> PathBuf {
        self.dir.path().join("boxes").join(format!("{id}.state"))
    }

    /// The version of box `id`'s sealed state on disk.
    pub(crate) fn sealed_version(&self, id: BoxId) -> postkey_wire::StateVersion {
        self.home.store().read_state(id).unwrap().version
    }

    /// The home, held alone, as a ceremony holds it.
    pub(crate) fn lock(&self) -> HomeLock {
        self.home.lock(Access::Exclusive, Wait::No).unwrap()
    }

    /// What the archive expects of box `id` when it is enabled.
    pub(crate) async fn expected(&self, id: BoxId) -> Expected {
        Expected::of(&self.store, &self.trust, id).await.unwrap()
    }

    /// A session with `ids` enabled from the media, each checked against the archive.
    pub(crate) async fn session(&self, ids: &[BoxId]) -> Session {
        let mut s = Session::new(&self.home, Wait::No);
        for &id in ids {
            s.enable(id, &self.media(), &self.expected(id).await).unwrap();
        }
        s
    }

    /// The highest state version the archive recorded for box `id`.
    pub(crate) async fn recorded(&self, id: BoxId) -> postkey_wire::StateVersion {
        self.store.highest_state_version(id).await.unwrap()
    }
}

/// Whether the home's error-log spool holds an entry with `code`.
pub(crate) fn logged(home: &Home, code: ResponseCode) -> bool {
    home.spooled_errors().unwrap().iter().any(|e| e.code == code.0)
}

/// How many entries of the home's error-log spool name `component` and carry `code`.
pub(crate) fn logged_by(home: &Home, component: BoxId, code: ResponseCode) -> usize {
    home.spooled_errors()
        .unwrap()
        .iter()
        .filter(|e| e.code == code.0 && e.component == component.to_string())
        .count()
}

/// A box whose sealed state cannot be replaced while this stands: the state file is moved aside
/// and a non-empty directory stands at its path, so the atomic write of a new state fails at its
/// last step (the temporary file written and synced, its rename over the state refused). File
/// permissions would not stop a test run as root, and the temporary file's name is the
/// writer's own, so it cannot be blocked in advance.
#[derive(Debug)]
pub(crate) struct Unwritable {
    state: PathBuf,
    aside: PathBuf,
}

impl Unwritable {
    /// Blocks the state at `state`.
    pub(crate) fn block(state: &std::path::Path) -> Self {
        let aside = state.with_extension("state.aside");
        std::fs::rename(state, &aside).unwrap();
        std::fs::create_dir(state).unwrap();
        std::fs::write(state.join("in-the-way"), b"").unwrap();
        Self { state: state.to_path_buf(), aside }
    }

    /// Puts the state back where it was, as it was moved aside; panics if a write left a
    /// temporary file behind in its directory.
    pub(crate) fn restore(self) {
        std::fs::remove_dir_all(&self.state).unwrap();
        std::fs::rename(&self.aside, &self.state).unwrap();
        let dir = self.state.parent().unwrap();
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "a failed write left temporary files: {left:?}");
    }
}

/// Simulated meter `PB1234-<n>`, its transport key from a generator seeded with `n`.
pub(crate) fn meter(n: u32) -> (postkey_wire::MeterId, postkey_meter::SimulatedMeter) {
    use rand_core::SeedableRng as _;
    let id = postkey_wire::MeterId::parse(&format!("PB1234-{n:06}")).unwrap();
    let source = postkey_secrets::rng::testing::SeededSource(
        rand_chacha::ChaCha20Rng::seed_from_u64(u64::from(n)),
    );
    let mut rng = postkey_secrets::rng::BoxRng::instantiate(source, b"meter").unwrap();
    let meter = postkey_meter::Meter::manufacture(id.clone(), &mut rng).unwrap();
    (id, postkey_meter::SimulatedMeter::new(meter))
}

/// Keys meters `PB7777-<n>` (a VE and a USPS key each) in one factory run on `store` (the
/// world's archive, or the home's archive opened again), batches of 2; the run's reports.
pub(crate) async fn key_meters_on<S: Store, T: Store>(
    w: &World<S>,
    store: T,
    numbers: std::ops::RangeInclusive<u32>,
) -> Result<Vec<postkey_host::InstallReport>, postkey_host::HostError> {
    key_meters_with(w, store, numbers, 2, postkey_host::DEFAULT_CHECKPOINT_EVERY).await
}

/// As [`key_meters_on`], `batch` meters per batch and a checkpoint every `checkpoint_every`
/// keys.
pub(crate) async fn key_meters_with<S: Store, T: Store>(
    w: &World<S>,
    store: T,
    numbers: std::ops::RangeInclusive<u32>,
    batch: usize,
    checkpoint_every: usize,
) -> Result<Vec<postkey_host::InstallReport>, postkey_host::HostError> {
    let lock = w.home.lock(Access::Shared, Wait::No).unwrap();
    let mut line = Vec::new();
    for n in numbers {
        let id = postkey_wire::MeterId::parse(&format!("PB7777-{n:06}")).unwrap();
        postkey_host::new_meter(&lock, &id).unwrap();
        line.push((id, d("USPS")));
    }
    let domains = [d("VE"), d("USPS")];
    let mut factory = postkey_host::Factory::open_on(&lock, store, &w.media(), &domains).await?;
    factory.checkpoint_every(std::num::NonZeroUsize::new(checkpoint_every).unwrap());
    let done = factory.install_many(&line, &d("VE"), batch, |_| {}).await;
    factory.close();
    done
}

/// Drops every guard (trigger) of the SQLite archive `c` is connected to, as an attacker with
/// write access to the file would before editing it.
pub(crate) fn drop_guards(c: &postkey_archive_sqlite::rusqlite::Connection) {
    let triggers: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for t in triggers {
        c.execute_batch(&format!("DROP TRIGGER {t}")).unwrap();
    }
}

/// Gives the world's Brass box the `ADMIN` process: it becomes the audit box, and every command
/// checkpoints the audit trail.
pub(crate) async fn with_audit_box<S: Store + Clone>(w: &World<S>) {
    let brass = w.made(BoxType::Brass);
    let lock = w.lock();
    let mut c = Ceremonies::open(&lock, w.store.clone()).await.unwrap();
    let m = BoxId::FIRST_MANUFACTURING;
    c.enable(m, &w.media()).await.unwrap();
    c.enable(brass, &w.media()).await.unwrap();
    c.install_process(m, brass, &DomainId::admin(), vec![]).await.unwrap();
    c.finish().await.unwrap();
}
