use std::os::unix::fs::DirBuilderExt as _;
use std::path::PathBuf;

use anyhow::Context as _;
use postkey_host::{Access, Home, Wait};

use super::{Outcome, join, print_json, print_lines, warn_media};

/// Arguments of `postkey demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How many meters to make and key (half VE+USPS, half VE+EARTH), at most a million.
    #[arg(long, default_value_t = 100, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1_000_000))]
    meters: usize,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// A fresh home under the system's temporary directory, kept after the demo so it can be looked
/// at (its path is printed).
pub(crate) fn fresh_home() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let micros = postkey_host::now().unix_micros();
        let dir = base.join(format!("postkey-demo-{}-{micros}-{attempt}", std::process::id()));
        // 0700 whatever the umask, as every directory of a home.
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    anyhow::bail!("cannot create a fresh home under {}", base.display())
}

pub(crate) fn run(home: Option<PathBuf>, wait: Wait, args: Args) -> anyhow::Result<Outcome> {
    let root = match home {
        Some(h) => h,
        None => fresh_home()?,
    };
    let home = Home::new(&root);
    let lock = home.lock(Access::Exclusive, wait)?;
    eprintln!("postkey demo: home {}", root.display());
    warn_media(&home.media_dir());
    let mut keyed = Some(super::Progress::new("meters keyed", args.meters));
    let mut registered: Option<super::Progress> = None;
    let report = super::block_on(postkey_host::demo::run(&lock, args.meters, |p| match p {
        postkey_host::demo::Progress::Step(step) => eprintln!("  {step}"),
        postkey_host::demo::Progress::Meters(n, _) => {
            if let Some(p) = &mut keyed {
                p.set(n);
            }
        }
        postkey_host::demo::Progress::Registered(n, total) => {
            if let Some(p) = keyed.take() {
                p.finish();
            }
            registered
                .get_or_insert_with(|| super::Progress::new("meters registered", total))
                .set(n);
        }
    }))??;
    for p in keyed.iter().chain(&registered) {
        p.finish();
    }
    if args.json {
        print_json(&report)?;
        return Ok(if report.audit.holds() { Outcome::Success } else { Outcome::CheckFailed });
    }
    let mut lines = vec![
        format!("postkey demo in {}", report.home),
        format!(
            "first ceremony: {} (trust anchors {})",
            report.init.id, report.init.anchors_fingerprint
        ),
        String::new(),
        "domains:".into(),
    ];
    lines.extend(
        report.domains.iter().map(|d| {
            format!("  {:<6} {:<7} {}", d.domain, d.kind.name(), join(&d.subdomains, " "))
        }),
    );
    lines.push(String::new());
    lines.push("boxes:".into());
    for b in &report.boxes {
        let processes: Vec<String> = b
            .processes
            .iter()
            .map(|p| {
                if p.subdomains.is_empty() {
                    p.domain.to_string()
                } else {
                    format!("{}[{}]", p.domain, join(&p.subdomains, ","))
                }
            })
            .collect();
        lines.push(format!("  {}  {:<13} {}", b.id, b.box_type, processes.join(" ")));
    }
    lines.push(String::new());
    let registrations: Vec<String> =
        report.registrations.iter().map(|(o, n)| format!("{n} {o}")).collect();
    lines.push(format!(
        "keys of {} meters (registrations: {}; withdrawn: {}):",
        report.meters,
        registrations.join(", "),
        report.withdrawn.join(", ")
    ));
    lines.extend(report.keys.iter().map(|k| {
        let place = k.subdomain.as_deref().unwrap_or(&k.domain);
        format!("  {place:<9} {:<10} {}", k.status, k.count)
    }));
    lines.push(String::new());
    lines.push(format!(
        "{} signed ceremony transcripts; {} error-log entries",
        report.transcripts, report.errors
    ));
    let a = &report.audit;
    let events: u64 = a.chains.iter().map(|c| c.count).sum();
    lines.push(match a.faults.first() {
        None => format!(
            "audit verify: all holds ({} chains, {events} events, {} keys, {} records)",
            a.chains.len(),
            a.keys,
            a.records
        ),
        Some(first) => format!("audit verify: FAILED at {first}"),
    });
    lines.push(format!(
        "look around: postkey --home {} keys list (or box list, domain list, errors, audit verify)",
        report.home
    ));
    print_lines(&lines)?;
    Ok(if a.holds() { Outcome::Success } else { Outcome::CheckFailed })
}
