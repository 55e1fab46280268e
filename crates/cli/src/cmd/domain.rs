use std::path::PathBuf;

use postkey_host::{Home, Session};
use postkey_wire::{BoxId, DomainId, DomainKind, SubdomainId};

use super::{Outcome, join, print_json, print_lines, shares_dir};

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
    /// The manufacturing box that creates it.
    #[arg(long = "with", value_name = "BOX", default_value = "M00000001")]
    manufacturing_box: BoxId,
    /// Directory of the manufacturing box's share files [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    shares_dir: Option<PathBuf>,
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

pub(crate) fn run(home: &Home, command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Create(a) => {
            let kind = match a.kind {
                Kind::Vendor => DomainKind::Vendor,
                Kind::Postal => DomainKind::Postal,
                Kind::Earth => DomainKind::Earth,
            };
            let mut session = Session::new(home)?;
            session.enable(a.manufacturing_box, &shares_dir(home, a.shares_dir.as_deref()))?;
            let report = postkey_host::create_domain(
                &mut session,
                a.manufacturing_box,
                a.domain,
                kind,
                a.subdomains,
            )?;
            session.lock();
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
            let domains = postkey_host::domains(home)?;
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
