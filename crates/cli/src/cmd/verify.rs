use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use postkey_host::{Access, DEFAULT_VERIFY_BATCH, Verifier, VerifyReport};
use postkey_wire::Site;

use super::{Ctx, Outcome, block_on, print_json, print_lines, shares_dir};

/// Arguments of `postkey verify`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["text", "file", "image"]))]
pub(crate) struct Args {
    /// One indicium's text, as printed (quote it: its fields are separated by spaces).
    text: Option<String>,
    /// A file of indicia, one text a line.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// A picture of one indicium (PNG): its Data Matrix is read.
    #[arg(long, value_name = "PNG")]
    image: Option<PathBuf>,
    /// The name of this verifier's site, kept with each first sighting [default: local].
    #[arg(long, default_value = "local", value_parser = |s: &str| Site::parse(s).map_err(|e| e.to_string()))]
    site: Site,
    /// Mailpieces verified per batch (one duplicate-memory transaction each).
    #[arg(long, default_value_t = DEFAULT_VERIFY_BATCH as u16, value_parser = clap::value_parser!(u16).range(1..=16384))]
    batch: u16,
    /// Directory of the boxes' share files [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    shares_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// The largest picture read.
const MAX_IMAGE: u64 = 16 * 1024 * 1024;

pub(crate) fn run(ctx: &Ctx, a: Args) -> anyhow::Result<Outcome> {
    let home = &ctx.home;
    let dir = shares_dir(home, a.shares_dir.as_deref());
    let lock = ctx.lock(Access::Shared)?;
    let logged = |e| home.logged("host", e);
    // A picture is read before any box is enabled; one without a readable symbol is a
    // malformed indicium (5006), as a text that does not parse.
    let text: Option<Result<String, String>> = match (&a.text, &a.image) {
        (Some(t), _) => Some(Ok(t.clone())),
        (None, Some(path)) => {
            let bytes = postkey_host::read_user_file(path, MAX_IMAGE).map_err(logged)?;
            Some(
                postkey_host::symbol::read_png(&bytes)
                    .map_err(|e| format!("{}: no readable indicium: {e}", path.display())),
            )
        }
        (None, None) => None,
    };
    let mut stdout = std::io::stdout().lock();
    let (counts, single) = block_on(async {
        let store = ctx.archive().await?;
        let mut v = Verifier::open(&lock, store, &dir, a.site.clone()).await?;
        let out = match (&text, &a.file) {
            (Some(t), _) => {
                let reports = v.verify_inputs(&[t.as_deref().map_err(Clone::clone)]).await;
                reports.map(|r| {
                    let mut counts = BTreeMap::new();
                    for x in &r {
                        *counts.entry(x.outcome).or_insert(0u64) += 1;
                    }
                    (counts, r.into_iter().next())
                })
            }
            (None, Some(file)) => {
                if a.json {
                    let _ = write!(stdout, "{{\"mailpieces\":[");
                }
                let mut first = true;
                let counts = v
                    .verify_file(file, usize::from(a.batch), |line, r| {
                        let _ = if a.json {
                            let sep = if first { "" } else { "," };
                            let mut value = serde_json::to_value(r).unwrap_or_default();
                            value["line"] = line.into();
                            write!(stdout, "{sep}{value}")
                        } else {
                            writeln!(stdout, "{line}: {}", describe(r))
                        };
                        first = false;
                    })
                    .await;
                counts.map(|c| (c, None))
            }
            (None, None) => unreachable!("clap requires one input"),
        };
        let closed = v.close().await;
        let out = out?;
        closed?;
        anyhow::Ok(out)
    })??;
    let all_good = counts.iter().all(|(o, _)| *o == "good") && !counts.is_empty();
    match single {
        Some(report) => {
            if a.json {
                print_json(&report)?;
            } else {
                print_lines(&[describe(&report)])?;
            }
        }
        None if a.json => {
            let total: u64 = counts.values().sum();
            let tail = serde_json::json!({"outcomes": counts, "mailpieces_verified": total});
            writeln!(stdout, "],\"outcomes\":{},\"total\":{}}}", tail["outcomes"], total)?;
        }
        None => {
            let total: u64 = counts.values().sum();
            let list: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
            writeln!(stdout, "{total} mailpieces: {}", list.join(", "))?;
        }
    }
    Ok(if all_good { Outcome::Success } else { Outcome::CheckFailed })
}

/// One line for a report.
fn describe(r: &VerifyReport) -> String {
    let mut s = r.outcome.to_owned();
    if r.outcome != "good" {
        s.push_str(&format!(" (vendor token {}, postal token {})", r.vendor, r.postal));
    }
    if let (Some(isn), Some(sub), Some(count)) = (&r.isn, &r.subdomain, r.count) {
        s.push_str(&format!(": {sub} ISN {isn} piece {count}"));
    }
    if let Some(m) = &r.meter {
        s.push_str(&format!(", meter {m}"));
    }
    if let Some(f) = &r.first_seen {
        s.push_str(&format!("; first seen {} at {}", f.time, f.site));
    }
    for fix in &r.repairs {
        s.push_str(&format!(
            "; repaired {} character {}: {} -> {}",
            fix.field, fix.position, fix.read, fix.corrected
        ));
    }
    if let Some(why) = &r.reason {
        s.push_str(&format!(": {why}"));
    }
    if let Some(code) = r.code {
        s.push_str(&format!(" [{code}]"));
    }
    s
}
