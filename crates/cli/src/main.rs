//! `postkey`: the command-line interface. It parses arguments, calls the libraries and maps
//! outcomes to exit codes: 0 success, 1 a verification or check failed, 2 usage, 3 an
//! operational error.

#![forbid(unsafe_code)]

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Exit code: a verification or check failed.
const EXIT_CHECK_FAILED: u8 = 1;
/// Exit code: an operational error (I/O, a refused operation).
const EXIT_OPERATIONAL: u8 = 3;

/// postkey: key management for digital postage meters.
#[derive(Debug, Parser)]
#[command(
    name = "postkey",
    version,
    about = "postkey: key management for digital postage meters",
    long_about = None
)]
struct Cli {
    /// The postkey home: sealed box states, domain bundles, transcripts, error log [default:
    /// ./postkey-home; `demo` makes a fresh temporary home]
    #[arg(long, global = true, env = "POSTKEY_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A process that may hold keys never dumps core (SPEC §7.2 item 8): refuse to go on if that
    // cannot be ensured.
    if let Err(e) = postkey_host::harden_process() {
        eprintln!("postkey: error: {e}; refusing to run a process that could dump keys to disk");
        return ExitCode::from(EXIT_OPERATIONAL);
    }
    match cmd::run(cli.home, cli.command) {
        Ok(cmd::Outcome::Success) => ExitCode::SUCCESS,
        Ok(cmd::Outcome::CheckFailed) => ExitCode::from(EXIT_CHECK_FAILED),
        Err(e) => {
            eprintln!("postkey: error: {e:#}");
            ExitCode::from(EXIT_OPERATIONAL)
        }
    }
}
