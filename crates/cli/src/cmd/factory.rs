use std::path::PathBuf;

use postkey_host::{Access, Factory};
use postkey_wire::{DomainId, MeterId};

use super::{Ctx, Outcome, block_on, print_json, print_lines, shares_dir};

/// `postkey factory …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Install a vendor key and a postal key into one meter (MI0 to MI10).
    Install(InstallArgs),
}

/// Arguments of `postkey factory install`.
#[derive(Debug, clap::Args)]
pub(crate) struct InstallArgs {
    /// The meter, e.g. PB1234-000123 (made with `postkey meter new`).
    meter: MeterId,
    /// The vendor domain.
    #[arg(long, default_value = "VE")]
    vendor: DomainId,
    /// The postal domain (or EARTH).
    #[arg(long)]
    postal: DomainId,
    /// Directory of the boxes' share files [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    shares_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(ctx: &Ctx, command: Command) -> anyhow::Result<Outcome> {
    let Command::Install(a) = command;
    let home = &ctx.home;
    let dir = shares_dir(home, a.shares_dir.as_deref());
    let lock = ctx.lock(Access::Shared)?;
    // The meter must exist before any box is enabled for it.
    home.load_meter(&a.meter)?;
    let report = block_on(async {
        let store = ctx.archive().await?;
        let domains = [a.vendor.clone(), a.postal.clone()];
        let mut factory = Factory::open_on(&lock, store, &dir, &domains).await?;
        let report = factory.install(&a.meter, &a.vendor, &a.postal).await;
        factory.close();
        anyhow::Ok(report?)
    })??;
    let all_installed = report.keys.iter().all(|k| k.status == "installed");
    if a.json {
        print_json(&report)?;
    } else {
        let lines: Vec<String> = report
            .keys
            .iter()
            .map(|k| {
                let key = match k.key_id {
                    Some(id) => format!("{}/{id}", k.domain),
                    None => format!("{} (no key made)", k.domain),
                };
                match &k.reason {
                    Some(r) => format!("{} key {key}: {} ({r})", report.meter, k.status),
                    None => format!("{} key {key}: {}", report.meter, k.status),
                }
            })
            .collect();
        print_lines(&lines)?;
    }
    Ok(if all_installed { Outcome::Success } else { Outcome::CheckFailed })
}
