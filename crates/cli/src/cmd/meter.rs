use postkey_host::Access;
use postkey_wire::{MeterId, Msn, ProductCode};

use super::{Ctx, Outcome, print_json, print_lines};

/// `postkey meter …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Make a simulated meter (its transport key pair; its state in <home>/meters).
    New(NewArgs),
}

/// Arguments of `postkey meter new`.
#[derive(Debug, clap::Args)]
pub(crate) struct NewArgs {
    /// The product code, e.g. PB1234.
    #[arg(long)]
    product: ProductCode,
    /// The manufacturing sequence number, e.g. 000123.
    #[arg(long)]
    msn: Msn,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(ctx: &Ctx, command: Command) -> anyhow::Result<Outcome> {
    let Command::New(a) = command;
    let home = &ctx.home;
    let id = MeterId::new(a.product, a.msn);
    let lock = ctx.lock(Access::Shared)?;
    postkey_host::new_meter(&lock, &id)?;
    eprintln!(
        "postkey: warning: simulation: the meter's keys are kept in a file under {} (see SECURITY.md)",
        home.root().display()
    );
    if a.json {
        print_json(&serde_json::json!({"meter_id": id.to_string()}))?;
    } else {
        print_lines(&[format!("made meter {id}")])?;
    }
    Ok(Outcome::Success)
}
