//! `postkey`: the command-line interface. It parses arguments, calls the libraries and maps
//! outcomes to exit codes: 0 success, 1 a verification or check failed, 2 usage, 3 an
//! operational error, 143 long work stopped by SIGINT or SIGTERM once it cleaned up.

#![forbid(unsafe_code)]

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Exit code: a verification or check failed.
const EXIT_CHECK_FAILED: u8 = 1;
/// Exit code: a usage error, found while parsing or after (the caller's fault).
const EXIT_USAGE: u8 = 2;
/// Exit code: an operational error (I/O, a refused operation).
const EXIT_OPERATIONAL: u8 = 3;
/// Exit code: stopped by a signal it handled (128 + SIGTERM, as the shell reports it).
const EXIT_INTERRUPTED: u8 = 143;

/// An error's response code and fault, when it has them.
fn classify(e: &anyhow::Error) -> Option<(postkey_wire::ResponseCode, postkey_wire::Fault)> {
    if let Some(h) = e.downcast_ref::<postkey_host::HostError>() {
        Some((h.response_code(), h.fault()))
    } else {
        // A value of the caller's that does not parse.
        e.downcast_ref::<postkey_wire::WireError>()
            .map(|w| (w.response_code(), postkey_wire::Fault::Caller))
    }
}

/// The exit code of an error: 2 when it is the caller's fault wherever it was found, else 3.
fn exit_code(e: &anyhow::Error) -> u8 {
    match classify(e) {
        Some((_, postkey_wire::Fault::Caller)) => EXIT_USAGE,
        _ => EXIT_OPERATIONAL,
    }
}

/// postkey: key management for digital postage meters.
#[derive(Debug, Parser)]
#[command(
    name = "postkey",
    version,
    about = "postkey: key management for digital postage meters",
    long_about = None
)]
struct Cli {
    /// The postkey home: sealed box states, trust anchors, the SQLite archive, simulated meters
    /// [default: ./postkey-home; `demo` makes a fresh temporary home]
    #[arg(long, global = true, env = "POSTKEY_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// Wait for another postkey command that holds the home or a box, instead of failing at once
    /// (home busy 3605, box in use 4007)
    #[arg(long, global = true)]
    wait: bool,
    #[command(subcommand)]
    command: cmd::Command,
}

/// A usage message as clap renders it, with any line cut to a readable length: a value the
/// caller passed is echoed back, and a 100 KB argument is not worth printing whole.
fn bounded(rendered: &str) -> String {
    const MAX_LINE: usize = 300;
    rendered
        .lines()
        .map(|line| match line.char_indices().nth(MAX_LINE) {
            Some((cut, _)) => format!("{}… ({} bytes in all)", &line[..cut], line.len()),
            None => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An error message as printed: one line, each control character escaped (a file name the
/// caller gave may hold any byte but `/` and NUL, and must not rewrite the terminal), and each
/// word longer than a readable path cut (the kernel refuses such a name anyway).
fn printable(message: &str) -> String {
    const MAX_WORD: usize = 240;
    message
        .split(' ')
        .map(|word| {
            let escaped: String = word
                .chars()
                .flat_map(|c| {
                    let escape = c.is_control().then(|| c.escape_default().to_string());
                    escape.unwrap_or_else(|| c.to_string()).chars().collect::<Vec<_>>()
                })
                .collect();
            match escaped.char_indices().nth(MAX_WORD) {
                Some((cut, _)) => format!("{}…({} bytes)", &escaped[..cut], word.len()),
                None => escaped,
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version: to standard output, exit 0
        Err(e) => {
            let lines: Vec<String> = e.render().to_string().lines().map(printable).collect();
            eprintln!("{}", bounded(&lines.join("\n")));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // A process that may hold keys never dumps core (protocol §7.2 item 8): refuse to go on if that
    // cannot be ensured.
    if let Err(e) = postkey_host::harden_process() {
        eprintln!("postkey: error: {e}; refusing to run a process that could dump keys to disk");
        return ExitCode::from(EXIT_OPERATIONAL);
    }
    let wait = if cli.wait { postkey_host::Wait::Yes } else { postkey_host::Wait::No };
    match cmd::run(cli.home, wait, cli.command) {
        Ok(cmd::Outcome::Success) => ExitCode::SUCCESS,
        Ok(cmd::Outcome::CheckFailed) => ExitCode::from(EXIT_CHECK_FAILED),
        Ok(cmd::Outcome::Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
        Err(e) => {
            let message = printable(&format!("{e:#}"));
            match classify(&e) {
                Some((code, _)) => eprintln!("postkey: error: {message} [response code {code}]"),
                None => eprintln!("postkey: error: {message}"),
            }
            // A caller that asked for JSON reads the refusal as JSON too, on standard output.
            if std::env::args_os().any(|a| a == "--json") {
                let (code, fault) = match classify(&e) {
                    Some((code, fault)) => (Some(code.0), Some(fault.name())),
                    None => (None, None),
                };
                let error = serde_json::json!({
                    "error": { "code": code, "fault": fault, "message": message }
                });
                // Written, not printed: a standard output that is closed or full must not turn
                // the refusal into a panic; the error is on standard error already.
                use std::io::Write as _;
                let _ = writeln!(std::io::stdout().lock(), "{error}");
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped_and_long_words_cut() {
        assert_eq!(printable("no such file a\x1b[2Jb\n"), "no such file a\\u{1b}[2Jb\\n");
        let long = format!("{}: not found", "x".repeat(5000));
        let shown = printable(&long);
        assert!(shown.len() < 300, "{shown}");
        assert!(shown.starts_with("xxx") && shown.ends_with("…(5001 bytes) not found"), "{shown}");
        assert_eq!(printable("a short message"), "a short message");
    }
}
