use std::path::PathBuf;

use postkey_host::{Access, Ceremonies, ManufactureOrder, SharePolicy};
use postkey_wire::{BoxId, BoxType, DomainId, SubdomainId};

use super::{
    Conductor, Ctx, Outcome, block_on, join, print_json, print_lines, shares_dir, warn_media,
};

/// `postkey box …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Initialize a new box of a type with a manufacturing box, and install its processes.
    Manufacture(ManufactureArgs),
    /// Install a domain process in an existing box.
    Install(InstallArgs),
    /// List the boxes.
    List(ListArgs),
    /// Show one box.
    Show(ShowArgs),
    /// Enable a box from its shares and run its power-up self-tests.
    SelfTest(SelfTestArgs),
    /// Accept the older state of a box restored from backup (quorum-authorised; refused if the
    /// archive shows the box handled key IDs or gave box numbers after it).
    Rebaseline(RebaselineArgs),
}

/// A box type on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Type {
    /// Manufacturing.
    Manufacturing,
    /// Oak: generates master keys.
    Oak,
    /// Steel: installs master keys.
    Steel,
    /// Brass: registers and verifies.
    Brass,
    /// Tin: verifies postal tokens remotely.
    Tin,
}

impl From<Type> for BoxType {
    fn from(t: Type) -> Self {
        match t {
            Type::Manufacturing => BoxType::Manufacturing,
            Type::Oak => BoxType::Oak,
            Type::Steel => BoxType::Steel,
            Type::Brass => BoxType::Brass,
            Type::Tin => BoxType::Tin,
        }
    }
}

/// Arguments of `postkey box manufacture`.
#[derive(Debug, clap::Args)]
pub(crate) struct ManufactureArgs {
    /// The type of the new box.
    #[arg(long = "type", value_enum)]
    box_type: Type,
    /// A domain whose process the new box gets (repeat).
    #[arg(long = "domain", value_name = "DOMAIN")]
    domains: Vec<DomainId>,
    /// For a Brass or Tin box: a sub-domain it serves (repeat) [default: every sub-domain of each
    /// domain]
    #[arg(long = "subdomain", value_name = "DOMAIN/CC")]
    subdomains: Vec<SubdomainId>,
    /// Shares needed to enable the new box [default: 2]
    #[arg(long)]
    threshold: Option<u8>,
    /// Shares made for the new box [default: 3 for manufacturing boxes, else 2]
    #[arg(long)]
    count: Option<u8>,
    #[command(flatten)]
    conductor: Conductor,
    /// Where to write the new box's share files [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    media: Option<PathBuf>,
    /// The trust-anchor fingerprint the operators read from the media and confirm; the new box's
    /// anchors must match it (shown by `postkey init`)
    #[arg(long, value_name = "HEX")]
    anchors_fingerprint: Option<postkey_host::Fingerprint>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `postkey box install`.
#[derive(Debug, clap::Args)]
pub(crate) struct InstallArgs {
    /// The box.
    id: BoxId,
    /// The domain.
    #[arg(long)]
    domain: DomainId,
    /// For a Brass or Tin box: a sub-domain it serves (repeat) [default: every sub-domain]
    #[arg(long = "subdomain", value_name = "DOMAIN/CC")]
    subdomains: Vec<SubdomainId>,
    #[command(flatten)]
    conductor: Conductor,
}

/// Arguments of `postkey box list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `postkey box show`.
#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// The box.
    id: BoxId,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `postkey box self-test`.
#[derive(Debug, clap::Args)]
pub(crate) struct SelfTestArgs {
    /// The box.
    id: BoxId,
    /// Directory of the box's share files [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    shares_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `postkey box rebaseline`.
#[derive(Debug, clap::Args)]
pub(crate) struct RebaselineArgs {
    /// The box restored from backup.
    id: BoxId,
    #[command(flatten)]
    conductor: Conductor,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(ctx: &Ctx, command: Command) -> anyhow::Result<Outcome> {
    let home = &ctx.home;
    match command {
        Command::Manufacture(a) => {
            let box_type = BoxType::from(a.box_type);
            let default = SharePolicy::default_for(box_type);
            let policy = SharePolicy {
                threshold: a.threshold.unwrap_or(default.threshold),
                count: a.count.unwrap_or(default.count),
            };
            let order = ManufactureOrder {
                box_type,
                media: a.media.clone().unwrap_or_else(|| home.media_dir()),
                policy,
                anchors_fingerprint: a.anchors_fingerprint,
                domains: a.domains.clone(),
                subdomains: a.subdomains.clone(),
            };
            let media = order.media.clone();
            let lock = ctx.lock(Access::Exclusive)?;
            let (report, shown) = block_on(async {
                let mut c = Ceremonies::open(&lock, ctx.archive().await?).await?;
                let shares = a.conductor.shares(home);
                let made =
                    c.manufacture_with_processes(a.conductor.manufacturing_box, &shares, &order);
                let made = made.await;
                anyhow::Ok(c.end(made).await?)
            })??;
            warn_media(&media);
            if a.json {
                print_json(&shown)?;
            } else {
                let mut lines = vec![
                    format!("manufactured {} ({})", report.id, report.box_type),
                    "share files:".into(),
                ];
                lines.extend(report.share_files.iter().map(|f| format!("  {}", f.display())));
                print_lines(&lines)?;
            }
        }
        Command::Install(a) => {
            let dir = a.conductor.shares(home);
            let lock = ctx.lock(Access::Exclusive)?;
            block_on(async {
                let mut c = Ceremonies::open(&lock, ctx.archive().await?).await?;
                let m = a.conductor.manufacturing_box;
                let done = c.install_one(m, a.id, &a.domain, &a.subdomains, &dir).await;
                anyhow::Ok(c.end(done).await?)
            })??;
            print_lines(&[format!(
                "installed the {} process of {} in {}",
                a.id.box_type(),
                a.domain,
                a.id
            )])?;
        }
        Command::List(a) => {
            let boxes = block_on(async {
                let (store, trust) = ctx.trusted().await?;
                anyhow::Ok(postkey_host::boxes(&store, &trust).await?)
            })??;
            if a.json {
                print_json(&boxes)?;
            } else {
                let lines: Vec<String> = boxes
                    .iter()
                    .map(|b| {
                        format!(
                            "{}  {:<13} v{:<4} {}",
                            b.id,
                            b.box_type,
                            b.state_version,
                            join(&b.domains, " ")
                        )
                    })
                    .collect();
                print_lines(&lines)?;
            }
        }
        Command::Show(a) => {
            let b = block_on(async {
                let (store, trust) = ctx.trusted().await?;
                anyhow::Ok(postkey_host::box_report(&store, &trust, a.id).await?)
            })??;
            if a.json {
                print_json(&b)?;
            } else {
                let mut lines = vec![
                    format!("id:             {}", b.id),
                    format!("type:           {}", b.box_type),
                    format!("state version:  {}", b.state_version),
                    format!("identity key:   {}", b.identity_fingerprint),
                    format!("certified by:   {} at {}", b.certified_by, b.certified_at),
                    "processes:".into(),
                ];
                lines.extend(b.processes.iter().map(|p| {
                    if p.subdomains.is_empty() {
                        format!("  {}", p.domain)
                    } else {
                        format!("  {} serving {}", p.domain, join(&p.subdomains, ", "))
                    }
                }));
                print_lines(&lines)?;
            }
        }
        Command::Rebaseline(a) => {
            let dir = a.conductor.shares(home);
            let lock = ctx.lock(Access::Exclusive)?;
            let report = block_on(async {
                let mut c = Ceremonies::open(&lock, ctx.archive().await?).await?;
                let report = c.rebaseline(a.conductor.manufacturing_box, a.id, &dir).await;
                anyhow::Ok(c.end(report).await?)
            })??;
            if a.json {
                print_json(&report)?;
            } else {
                let mut lines = vec![format!(
                    "re-baselined {}: state version {} recorded (was {}), authorised by {}",
                    report.id, report.to, report.from, report.authorised_by
                )];
                if !report.redelivered.is_empty() {
                    lines.push(format!(
                        "processes delivered again: {}",
                        report.redelivered.join(", ")
                    ));
                }
                print_lines(&lines)?;
            }
        }
        Command::SelfTest(a) => {
            let lock = ctx.lock(Access::Shared)?;
            let passed = block_on(async {
                let mut c = Ceremonies::open(&lock, ctx.archive().await?).await?;
                let passed = c.self_test(a.id, &shares_dir(home, a.shares_dir.as_deref())).await;
                c.close();
                anyhow::Ok(passed?)
            })??;
            if a.json {
                print_json(&serde_json::json!({"id": a.id.to_string(), "passed": passed}))?;
            } else {
                print_lines(&[format!(
                    "{}: power-up self-tests {}",
                    a.id,
                    if passed { "passed" } else { "FAILED" }
                )])?;
            }
            return Ok(if passed { Outcome::Success } else { Outcome::CheckFailed });
        }
    }
    Ok(Outcome::Success)
}
