//! One module per subcommand.

mod audit;
#[cfg(feature = "bench")]
mod bench;
mod boxes;
mod demo;
mod domain;
mod errors;
mod factory;
mod init;
mod keys;
mod meter;
mod self_test;
mod share;
mod test_vectors;
mod tin;
mod verify;
mod withdraw;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use postkey_host::SqliteStore;
use postkey_host::{Access, Home, HomeLock, Wait};

/// What a command found, when it ran to the end.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything checked out.
    Success,
    /// A check or verification failed; the details were printed.
    CheckFailed,
    /// SIGINT or SIGTERM stopped long work, which cleaned up after itself.
    #[cfg_attr(not(feature = "bench"), allow(dead_code))]
    Interrupted,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Run the first ceremony: make M00000001, the trust anchors and the first shares.
    Init(init::Args),
    /// Security domains: create and list.
    #[command(subcommand)]
    Domain(domain::Command),
    /// Secure boxes: manufacture, install processes, list, show, self-test.
    #[command(subcommand, name = "box")]
    Box(boxes::Command),
    /// Share files: check one alone.
    #[command(subcommand)]
    Share(share::Command),
    /// Simulated meters: make one.
    #[command(subcommand)]
    Meter(meter::Command),
    /// The factory: install a vendor key and a postal key into a meter, and register them.
    #[command(subcommand)]
    Factory(factory::Command),
    /// Take a meter out of service: both its keys become Obsolete, and it is never registered
    /// or keyed again.
    Withdraw(withdraw::Args),
    /// Verify indicia: a text, a file of them, or a picture (PNG); exit 0 only if every
    /// mailpiece is good.
    Verify(verify::Args),
    /// Tin boxes: export a month's token keys to one, import it there, verify postal tokens
    /// offline.
    #[command(subcommand)]
    Tin(tin::Command),
    /// Master key records: list, show.
    #[command(subcommand)]
    Keys(keys::Command),
    /// Show the error log.
    Errors(errors::Args),
    /// The audit trail: verify the archive against the trust anchors.
    #[command(subcommand)]
    Audit(audit::Command),
    /// Run the whole system end to end on the embedded default.
    Demo(demo::Args),
    /// Benchmarks.
    #[command(subcommand)]
    #[cfg(feature = "bench")]
    Bench(bench::Command),
    /// Write the published token test vectors (docs/test-vectors.json).
    TestVectors(test_vectors::Args),
    /// Run the power-up self-tests of every cryptographic primitive.
    SelfTest(self_test::Args),
}

/// Where a command runs, and whether it waits for the home or a box another command holds.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    /// The home.
    pub(crate) home: Home,
    /// Whether to wait for locks.
    pub(crate) wait: Wait,
}

impl Ctx {
    /// Takes the home (see the lock table in ARCHITECTURE.md), which must have been initialized:
    /// a command on a missing or uninitialized home is refused (3603) and creates nothing.
    pub(crate) fn lock(&self, access: Access) -> anyhow::Result<HomeLock> {
        self.home.anchors()?;
        Ok(self.home.lock(access, self.wait)?)
    }

    /// The home's archive, after checking that the home was initialized: a read command on a
    /// home that does not exist must not make one.
    pub(crate) async fn archive(&self) -> anyhow::Result<SqliteStore> {
        self.home.anchors()?;
        Ok(postkey_host::open_archive(&self.home).await?)
    }

    /// The home's archive, opened read-only, and what the home trusts, for read commands: they
    /// never write, so read access to the home is enough.
    pub(crate) async fn trusted(&self) -> anyhow::Result<(SqliteStore, postkey_host::Trust)> {
        self.home.anchors()?;
        let store = postkey_host::open_archive_read_only(&self.home).await?;
        let trust = postkey_host::Trust::load(&self.home, &store).await?;
        Ok((store, trust))
    }
}

pub(crate) fn run(home: Option<PathBuf>, wait: Wait, command: Command) -> anyhow::Result<Outcome> {
    let ctx = || Ctx {
        home: Home::new(home.clone().unwrap_or_else(|| PathBuf::from("postkey-home"))),
        wait,
    };
    match command {
        Command::Init(args) => init::run(&ctx(), args),
        Command::Domain(c) => domain::run(&ctx(), c),
        Command::Box(c) => boxes::run(&ctx(), c),
        Command::Share(c) => share::run(&ctx(), c),
        Command::Errors(args) => errors::run(&ctx(), args),
        Command::Audit(c) => audit::run(&ctx(), c),
        Command::Meter(c) => meter::run(&ctx(), c),
        Command::Factory(c) => factory::run(&ctx(), c),
        Command::Keys(c) => keys::run(&ctx(), c),
        Command::Withdraw(args) => withdraw::run(&ctx(), args),
        Command::Verify(args) => verify::run(&ctx(), args),
        Command::Tin(c) => tin::run(&ctx(), c),
        Command::Demo(args) => demo::run(home, wait, args),
        #[cfg(feature = "bench")]
        Command::Bench(c) => bench::run(home, wait, c),
        Command::TestVectors(args) => test_vectors::run(args),
        Command::SelfTest(args) => self_test::run(args),
    }
}

/// Runs `future` to completion on a runtime of this command's own: the archive is asynchronous.
pub(crate) fn block_on<T>(future: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    Ok(runtime.block_on(future))
}

/// Prints `value` as one JSON document on standard output.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("encoding JSON")?;
    writeln!(std::io::stdout().lock(), "{text}").context("writing to standard output")
}

/// The texts of `values`, joined with `separator`.
pub(crate) fn join<T: std::fmt::Display>(values: &[T], separator: &str) -> String {
    values.iter().map(ToString::to_string).collect::<Vec<_>>().join(separator)
}

/// Prints lines on standard output.
pub(crate) fn print_lines(lines: &[String]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}").context("writing to standard output")?;
    }
    Ok(())
}

/// Progress of long work on standard error: a bar on a terminal, else a line at each tenth of
/// the way (a log or a CI job still sees the work move).
pub(crate) struct Progress {
    what: &'static str,
    total: usize,
    bar: Option<indicatif::ProgressBar>,
    next_line: usize,
}

impl Progress {
    /// Progress through `total` items of `what` ("meters keyed").
    pub(crate) fn new(what: &'static str, total: usize) -> Self {
        use std::io::IsTerminal as _;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            let template = format!("  {what} {{bar:40}} {{pos}}/{{len}} {{elapsed}}");
            bar.set_style(
                indicatif::ProgressStyle::with_template(&template)
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Self { what, total, bar, next_line: 0 }
    }

    /// `done` items are done.
    pub(crate) fn set(&mut self, done: usize) {
        match &self.bar {
            Some(bar) => bar.set_position(done as u64),
            None if done >= self.next_line && self.total > 0 => {
                eprintln!("  {}: {done} of {}", self.what, self.total);
                self.next_line = done + (self.total / 10).max(1);
            }
            None => {}
        }
    }

    /// The work is over.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// The manufacturing box that conducts a ceremony, and where the custodians' share files of the
/// boxes it enables are.
#[derive(Debug, clap::Args)]
pub(crate) struct Conductor {
    /// The manufacturing box that conducts the ceremony.
    #[arg(long = "with", value_name = "BOX", default_value = "M00000001")]
    pub(crate) manufacturing_box: postkey_wire::BoxId,
    /// Directory of the share files of the boxes the ceremony enables [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    pub(crate) shares_dir: Option<PathBuf>,
}

impl Conductor {
    /// The directory of the share files.
    pub(crate) fn shares(&self, home: &Home) -> PathBuf {
        shares_dir(home, self.shares_dir.as_deref())
    }
}

/// The directory of share files: `--shares-dir`, else the home's media directory.
pub(crate) fn shares_dir(home: &Home, given: Option<&Path>) -> PathBuf {
    given.map(Path::to_path_buf).unwrap_or_else(|| home.media_dir())
}

/// The simulator warning of protocol §12, on standard error.
pub(crate) fn warn_media(dir: &Path) {
    eprintln!(
        "postkey: warning: simulation: share files are written to {} beside the sealed box states; \
         a real deployment hands each share to its custodian on removable media (see SECURITY.md)",
        dir.display()
    );
}
