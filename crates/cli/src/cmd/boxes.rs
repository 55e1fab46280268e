use std::path::PathBuf;

use postkey_host::{Home, Session, SharePolicy};
use postkey_wire::{BoxId, BoxType, DomainId, SubdomainId};

use super::{Outcome, join, print_json, print_lines, shares_dir, warn_media};

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
    /// For a Brass box: a sub-domain it serves (repeat) [default: every sub-domain of each domain]
    #[arg(long = "subdomain", value_name = "DOMAIN/CC")]
    subdomains: Vec<SubdomainId>,
    /// Shares needed to enable the new box [default: 2]
    #[arg(long)]
    threshold: Option<u8>,
    /// Shares made for the new box [default: 3 for manufacturing boxes, else 2]
    #[arg(long)]
    count: Option<u8>,
    /// The manufacturing box that initializes it.
    #[arg(long = "with", value_name = "BOX", default_value = "M00000001")]
    manufacturing_box: BoxId,
    /// Directory of the manufacturing box's share files [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    shares_dir: Option<PathBuf>,
    /// Where to write the new box's share files [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    media: Option<PathBuf>,
    /// The trust-anchor fingerprint the operators read from the media and confirm; the new box's
    /// anchors must match it (shown by `postkey init`)
    #[arg(long, value_name = "HEX")]
    anchors_fingerprint: Option<String>,
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
    /// For a Brass box: a sub-domain it serves (repeat) [default: every sub-domain]
    #[arg(long = "subdomain", value_name = "DOMAIN/CC")]
    subdomains: Vec<SubdomainId>,
    /// The manufacturing box that delivers the keys.
    #[arg(long = "with", value_name = "BOX", default_value = "M00000001")]
    manufacturing_box: BoxId,
    /// Directory of both boxes' share files [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    shares_dir: Option<PathBuf>,
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

/// The sub-domains of `domain` among `given`, or all of the domain's when none is given.
fn served(
    home: &Home,
    domain: &DomainId,
    given: &[SubdomainId],
) -> anyhow::Result<Vec<SubdomainId>> {
    let mine: Vec<SubdomainId> = given.iter().filter(|s| s.domain() == domain).cloned().collect();
    if !mine.is_empty() {
        return Ok(mine);
    }
    let all = postkey_host::domains(home)?;
    let d = all.iter().find(|d| &d.domain == domain);
    Ok(d.map(|d| d.subdomains.clone()).unwrap_or_default())
}

pub(crate) fn run(home: &Home, command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::Manufacture(a) => {
            let box_type = BoxType::from(a.box_type);
            let default = SharePolicy::default_for(box_type);
            let policy = SharePolicy {
                threshold: a.threshold.unwrap_or(default.threshold),
                count: a.count.unwrap_or(default.count),
            };
            let media = a.media.clone().unwrap_or_else(|| home.media_dir());
            let mut session = Session::new(home)?;
            session.enable(a.manufacturing_box, &shares_dir(home, a.shares_dir.as_deref()))?;
            let report = postkey_host::manufacture(
                &mut session,
                a.manufacturing_box,
                box_type,
                &media,
                policy,
                a.anchors_fingerprint.as_deref(),
            )?;
            let id = report.id;
            for domain in &a.domains {
                let subs = if box_type == BoxType::Brass {
                    served(home, domain, &a.subdomains)?
                } else {
                    Vec::new()
                };
                postkey_host::install_process(&mut session, a.manufacturing_box, id, domain, subs)?;
            }
            session.lock();
            warn_media(&media);
            if a.json {
                print_json(&postkey_host::box_report(home, id)?)?;
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
            let dir = shares_dir(home, a.shares_dir.as_deref());
            let mut session = Session::new(home)?;
            session.enable(a.manufacturing_box, &dir)?;
            session.enable(a.id, &dir)?;
            let subs = if a.id.box_type() == BoxType::Brass {
                served(home, &a.domain, &a.subdomains)?
            } else {
                Vec::new()
            };
            postkey_host::install_process(
                &mut session,
                a.manufacturing_box,
                a.id,
                &a.domain,
                subs,
            )?;
            session.lock();
            print_lines(&[format!(
                "installed the {} process of {} in {}",
                a.id.box_type(),
                a.domain,
                a.id
            )])?;
        }
        Command::List(a) => {
            let boxes = postkey_host::boxes(home)?;
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
                            b.state_version.unwrap_or(0),
                            join(&b.domains, " ")
                        )
                    })
                    .collect();
                print_lines(&lines)?;
            }
        }
        Command::Show(a) => {
            let b = postkey_host::box_report(home, a.id)?;
            if a.json {
                print_json(&b)?;
            } else {
                let mut lines = vec![
                    format!("id:             {}", b.id),
                    format!("type:           {}", b.box_type),
                    format!(
                        "state version:  {}",
                        b.state_version.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
                    ),
                    format!(
                        "identity key:   {}",
                        b.identity_fingerprint.map_or_else(|| "-".into(), |f| f.to_string())
                    ),
                    format!(
                        "certified by:   {} at {}",
                        b.certified_by.map(|b| b.to_string()).unwrap_or_default(),
                        b.certified_at.clone().unwrap_or_default()
                    ),
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
        Command::SelfTest(a) => {
            let mut session = Session::new(home)?;
            session.enable(a.id, &shares_dir(home, a.shares_dir.as_deref()))?;
            let result = session.call_one(a.id, postkey_wire::command::SelfTest {});
            session.lock();
            let passed = result.is_ok();
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
