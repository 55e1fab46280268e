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
    /// How many mailpieces the meters print (then some are forged, altered, misread or copied),
    /// at most ten million.
    #[arg(long, default_value_t = 10_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=10_000_000))]
    mailpieces: usize,
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
    let mut verified: Option<super::Progress> = None;
    let options = postkey_host::demo::DemoOptions::new(args.meters, args.mailpieces);
    let report = super::block_on(postkey_host::demo::run(&lock, options, |p| match p {
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
        postkey_host::demo::Progress::Verified(n, total) => {
            if let Some(p) = registered.take() {
                p.finish();
            }
            verified
                .get_or_insert_with(|| super::Progress::new("mailpieces verified", total))
                .set(n);
        }
    }))??;
    for p in keyed.iter().chain(&registered).chain(&verified) {
        p.finish();
    }
    let held = report.audit.holds() && report.mismatches == 0;
    if args.json {
        print_json(&report)?;
        return Ok(if held { Outcome::Success } else { Outcome::CheckFailed });
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
    lines.push(String::new());
    lines.extend(results_table(&report.mail));
    lines.push(String::new());
    lines.push(format!(
        "{} signed ceremony transcripts; {} error-log entries (the refusals above among them)",
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
    lines.push(format!("mismatches: {}", report.mismatches));
    print_lines(&lines)?;
    Ok(if held { Outcome::Success } else { Outcome::CheckFailed })
}

/// The results table: per case, how many mailpieces, the outcome expected, what they got, and
/// whether it matched; then the Tin box's.
fn results_table(mail: &postkey_host::demo::MailReport) -> Vec<String> {
    let mut lines = vec![format!(
        "{} mailpieces verified at Brass in {:.2} s ({:.0} a second):",
        mail.mailpieces, mail.seconds, mail.per_second
    )];
    lines.extend(rows(&mail.rows));
    let Some(tin) = &mail.tin else { return lines };
    lines.push(String::new());
    lines.push(format!(
        "{} took the export of {} for {} ({} meters), then the one after the withdrawals ({} \
         meters); the older again: {}",
        tin.tin,
        tin.subdomain,
        tin.month,
        tin.meters_before,
        tin.meters_after,
        if tin.older_refused { "refused (3034), as it must be" } else { "TAKEN: MISMATCH" }
    ));
    lines.push(format!(
        "{} {} mailpieces verified at {} offline ({}):",
        tin.mailpieces, tin.subdomain, tin.tin, tin.covers
    ));
    lines.extend(rows(&tin.rows));
    lines
}

fn rows(rows: &[postkey_host::demo::ResultRow]) -> Vec<String> {
    let mut lines = vec![format!(
        "  {:<26} {:>7}  {:<25} {:<34} {}",
        "mailpieces", "count", "expected", "got", "matches"
    )];
    for r in rows {
        let got: Vec<String> = r.got.iter().map(|(o, n)| format!("{n} {o}")).collect();
        let matches =
            if r.mismatches == 0 { "yes".to_owned() } else { format!("NO ({})", r.mismatches) };
        lines.push(format!(
            "  {:<26} {:>7}  {:<25} {:<34} {matches}",
            r.case,
            r.mailpieces,
            r.expected,
            got.join(", ")
        ));
    }
    lines
}
