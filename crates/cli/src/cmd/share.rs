use std::path::PathBuf;

use super::{Ctx, Outcome, block_on, print_json, print_lines};

/// `postkey share …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Check one share file alone: its signature and its owner, no quorum needed.
    Check(CheckArgs),
}

/// Arguments of `postkey share check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The share file.
    file: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(ctx: &Ctx, command: Command) -> anyhow::Result<Outcome> {
    let Command::Check(a) = command;
    let bytes = postkey_host::read_share_file(&a.file)?;
    let store = block_on(ctx.trusted())??.0;
    match block_on(postkey_host::check_share(&ctx.home, &store, &bytes))? {
        Ok(r) => {
            if a.json {
                print_json(&r)?;
            } else {
                print_lines(&[format!(
                    "{}: valid share {} of {} (threshold {}) of {}'s {}, set {}, signed by {}",
                    a.file.display(),
                    r.index,
                    r.count,
                    r.threshold,
                    r.id,
                    r.purpose,
                    r.set,
                    r.signed_by
                )])?;
            }
            Ok(Outcome::Success)
        }
        Err(e) => {
            let code = e.response_code().0;
            if a.json {
                print_json(
                    &serde_json::json!({"valid": false, "error": e.to_string(), "code": code}),
                )?;
            } else {
                print_lines(&[format!("{}: INVALID: {e}", a.file.display())])?;
            }
            Ok(Outcome::CheckFailed)
        }
    }
}
