//! `postkey`: the command-line interface. It parses arguments, calls the libraries and maps
//! outcomes to exit codes: 0 success, 1 a verification or check failed, 2 usage, 3 an
//! operational error.

#![forbid(unsafe_code)]

mod cmd;

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
    #[command(subcommand)]
    command: cmd::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cmd::run(cli.command) {
        Ok(cmd::Outcome::Success) => ExitCode::SUCCESS,
        Ok(cmd::Outcome::CheckFailed) => ExitCode::from(EXIT_CHECK_FAILED),
        Err(e) => {
            eprintln!("postkey: error: {e:#}");
            ExitCode::from(EXIT_OPERATIONAL)
        }
    }
}
