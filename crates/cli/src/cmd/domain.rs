use postkey_host::{Access, Ceremonies};
use postkey_wire::{DomainId, DomainKind, SubdomainId};

use super::{Conductor, Ctx, Outcome, block_on, join, print_json, print_lines};

/// `postkey domain …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Create a security domain (in the ADMIN domain) with its sub-domains.
    Create(CreateArgs),
    /// List the domains.
    List(ListArgs),
}

/// The kinds of domain a command can create.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Kind {
    /// A meter vendor's domain, e.g. VE.
    Vendor,
    /// A postal operator's domain, e.g. USPS.
    Postal,
    /// The EARTH domain of meters not yet assigned to a postal domain.
    Earth,
}

/// Arguments of `postkey domain create`.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    /// The domain ID: 2 to 8 of [A-Z0-9].
    domain: DomainId,
    /// What kind of domain.
    #[arg(long, value_enum)]
    kind: Kind,
    /// A sub-domain DOMAIN/CC (repeat; at least one).
    #[arg(long = "subdomain", value_name = "DOMAIN/CC", required = true)]
    subdomains: Vec<SubdomainId>,
    #[command(flatten)]
    conductor: Conductor,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `postkey domain list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(ctx: &Ctx, command: Command) -> anyhow::Result<Outcome> {
    let home = &ctx.home;
    match command {
        Command::Create(a) => {
            let kind = match a.kind {
                Kind::Vendor => DomainKind::Vendor,
                Kind::Postal => DomainKind::Postal,
                Kind::Earth => DomainKind::Earth,
            };
            let lock = ctx.lock(Access::Exclusive)?;
            let report = block_on(async {
                let mut c = Ceremonies::open(&lock, ctx.archive().await?).await?;
                let m = a.conductor.manufacturing_box;
                let report = match c.enable(m, &a.conductor.shares(home)).await {
                    Ok(()) => c.create_domain(m, a.domain, kind, a.subdomains).await,
                    Err(e) => Err(e),
                };
                anyhow::Ok(c.end(report).await?)
            })??;
            if a.json {
                print_json(&report)?;
            } else {
                print_lines(&[format!(
                    "created domain {} ({}) with sub-domains {}; known to {}",
                    report.domain,
                    report.kind,
                    join(&report.subdomains, ", "),
                    join(&report.manufacturing_boxes, ", ")
                )])?;
            }
        }
        Command::List(a) => {
            let domains = block_on(async {
                let (store, trust) = ctx.trusted().await?;
                anyhow::Ok(postkey_host::domains(&store, &trust).await?)
            })??;
            if a.json {
                print_json(&domains)?;
            } else {
                let lines: Vec<String> = domains
                    .iter()
                    .map(|d| {
                        format!("{:<8} {:<7} {}", d.domain, d.kind.name(), join(&d.subdomains, " "))
                    })
                    .collect();
                print_lines(&lines)?;
            }
        }
    }
    Ok(Outcome::Success)
}
