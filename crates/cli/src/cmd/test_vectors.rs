use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;

use super::Outcome;

/// Arguments of `postkey test-vectors`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Write the vectors to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Compare FILE with the vectors the code computes instead of writing it; exit 1 if they
    /// differ.
    #[arg(long, value_name = "FILE", conflicts_with = "out")]
    check: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<Outcome> {
    if let Some(path) = args.check {
        if postkey_host::vectors_file_is_current(&path)? {
            eprintln!("{}: up to date", path.display());
            return Ok(Outcome::Success);
        }
        eprintln!("{}: differs from the vectors the code computes", path.display());
        return Ok(Outcome::CheckFailed);
    }
    match args.out {
        Some(path) => postkey_host::write_vectors_file(&path)?,
        None => {
            let json = postkey_host::test_vectors_json().context("computing the test vectors")?;
            std::io::stdout().write_all(json.as_bytes()).context("writing to standard output")?
        }
    }
    Ok(Outcome::Success)
}
