use postkey_host::Access;
use postkey_wire::{MeterId, Msn, ProductCode};

use super::{Ctx, Outcome, print_json, print_lines};

/// `postkey meter …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Make a simulated meter (its transport key pair; its state in <home>/meters).
    New(NewArgs),
    /// Show a simulated meter: the key ID it holds of each domain (never a key).
    Show(ShowArgs),
}

/// Arguments of `postkey meter show`.
#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// The meter, e.g. PB1234-000123.
    meter: MeterId,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
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
    match command {
        Command::New(a) => new(ctx, a),
        Command::Show(a) => show(ctx, a),
    }
}

fn show(ctx: &Ctx, a: ShowArgs) -> anyhow::Result<Outcome> {
    // Read only: a home that was never initialized is an error, and nothing is written.
    ctx.home.anchors()?;
    let meter = ctx.home.meter_now(&a.meter)?;
    let keys: Vec<serde_json::Value> = meter
        .keys()
        .iter()
        .map(|(domain, k)| serde_json::json!({"domain": domain.to_string(), "key_id": k.key_id.get()}))
        .collect();
    if a.json {
        print_json(&serde_json::json!({"meter_id": a.meter.to_string(), "keys": keys}))?;
    } else {
        let mut lines = vec![format!("meter {}", a.meter)];
        lines.extend(meter.keys().iter().map(|(d, k)| format!("  {d}/{}", k.key_id)));
        if meter.keys().is_empty() {
            lines.push("  no keys".into());
        }
        print_lines(&lines)?;
    }
    Ok(Outcome::Success)
}

fn new(ctx: &Ctx, a: NewArgs) -> anyhow::Result<Outcome> {
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
