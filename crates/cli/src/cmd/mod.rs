//! One module per subcommand.

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

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use postkey_host::Home;

/// What a command found, when it ran to the end.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything checked out.
    Success,
    /// A check or verification failed; the details were printed.
    CheckFailed,
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
    /// The factory: install a vendor key and a postal key into a meter.
    #[command(subcommand)]
    Factory(factory::Command),
    /// Master key records: list, show.
    #[command(subcommand)]
    Keys(keys::Command),
    /// Show the error log.
    Errors(errors::Args),
    /// Run the whole system end to end on the embedded default.
    Demo(demo::Args),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::Command),
    /// Write the published token test vectors (docs/test-vectors.json).
    TestVectors(test_vectors::Args),
    /// Run the power-up self-tests of every cryptographic primitive.
    SelfTest(self_test::Args),
}

pub(crate) fn run(home: Option<PathBuf>, command: Command) -> anyhow::Result<Outcome> {
    let home_or_default =
        || Home::new(home.clone().unwrap_or_else(|| PathBuf::from("postkey-home")));
    match command {
        Command::Init(args) => init::run(&home_or_default(), args),
        Command::Domain(c) => domain::run(&home_or_default(), c),
        Command::Box(c) => boxes::run(&home_or_default(), c),
        Command::Share(c) => share::run(&home_or_default(), c),
        Command::Errors(args) => errors::run(&home_or_default(), args),
        Command::Meter(c) => meter::run(&home_or_default(), c),
        Command::Factory(c) => factory::run(&home_or_default(), c),
        Command::Keys(c) => keys::run(&home_or_default(), c),
        Command::Demo(args) => demo::run(home, args),
        Command::Bench(c) => bench::run(home, c),
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

/// The directory of share files: `--shares-dir`, else the home's media directory.
pub(crate) fn shares_dir(home: &Home, given: Option<&Path>) -> PathBuf {
    given.map(Path::to_path_buf).unwrap_or_else(|| home.media_dir())
}

/// The simulator warning of SPEC §12, on standard error.
pub(crate) fn warn_media(dir: &Path) {
    eprintln!(
        "postkey: warning: simulation: share files are written to {} beside the sealed box states; \
         a real deployment hands each share to its custodian on removable media (see SECURITY.md)",
        dir.display()
    );
}
