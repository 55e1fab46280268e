use std::path::PathBuf;

use postkey_host::{Access, Registrar};
use postkey_wire::MeterId;

use super::{Ctx, Outcome, block_on, print_json, print_lines, shares_dir};

/// Arguments of `postkey withdraw`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The meter to take out of service, e.g. PB1234-000123.
    meter: MeterId,
    /// Why, for the withdrawal records (at most 256 bytes).
    #[arg(long, default_value = "taken out of service")]
    reason: String,
    /// Directory of the boxes' share files [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    shares_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Outcome> {
    if let Err(e) = postkey_wire::check_reason(&a.reason) {
        let why = format!("--reason: {e}");
        anyhow::bail!(postkey_host::HostError::from(postkey_host::Usage::InvalidArgument(why)));
    }
    let dir = shares_dir(&ctx.home, a.shares_dir.as_deref());
    let lock = ctx.lock(Access::Shared)?;
    let keys = block_on(async {
        let store = ctx.archive().await?;
        let r = Registrar::for_withdrawal(&lock, store, &dir, &a.meter).await?;
        let keys = r.withdraw(&a.meter, &a.reason).await;
        r.close();
        anyhow::Ok(keys?)
    })??;
    if a.json {
        print_json(&serde_json::json!({"meter": a.meter.to_string(), "obsolete": keys}))?;
    } else {
        print_lines(&[format!("{}: withdrawn; obsolete: {}", a.meter, keys.join(", "))])?;
    }
    Ok(Outcome::Success)
}
