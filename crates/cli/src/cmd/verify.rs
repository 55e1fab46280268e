use std::collections::BTreeMap;
use std::path::PathBuf;

use postkey_host::{Access, DEFAULT_VERIFY_BATCH, MAX_VERIFY_BATCH, Verifier, VerifyReport};
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
    /// The name of this verifier's site, kept with each first sighting.
    #[arg(long, default_value = "local", value_parser = |s: &str| Site::parse(s).map_err(|e| e.to_string()))]
    site: Site,
    /// Mailpieces verified per batch (one duplicate-memory transaction each).
    #[arg(long, default_value_t = DEFAULT_VERIFY_BATCH as u32, value_parser = clap::value_parser!(u32).range(1..=MAX_VERIFY_BATCH as i64))]
    batch: u32,
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
    let text = one_input(home, a.text.as_ref(), a.image.as_deref())?;
    let mut stdout = std::io::stdout().lock();
    let (counts, single) = block_on(async {
        let store = ctx.archive().await?;
        let mut v = Verifier::open(&lock, store, &dir, a.site.clone()).await?;
        let out = match (&text, &a.file) {
            (Some(t), _) => {
                let reports = v.verify_inputs(&[t.as_deref().map_err(Clone::clone)]).await;
                reports.map(|r| single_counted(r, |x| x.outcome)).map_err(anyhow::Error::from)
            }
            (None, Some(file)) => {
                let mut lines = ReportStream::new(&mut stdout, a.json, &[]);
                let counts = v
                    .verify_file(file, a.batch as usize, |line, r| {
                        lines.write(line, r, || describe(r))
                    })
                    .await;
                match counts {
                    Ok(c) => lines.finish(&c, "mailpieces").map(|()| (c, None)),
                    Err(e) => Err(anyhow::Error::from(e)),
                }
            }
            (None, None) => unreachable!("clap requires one input"),
        };
        let closed = v.close().await;
        let out = out?;
        closed?;
        anyhow::Ok(out)
    })??;
    let all_good = counts.iter().all(|(o, _)| *o == "good") && !counts.is_empty();
    // A file's reports and counts were written as they came.
    if let Some(report) = single {
        if a.json {
            print_json(&report)?;
        } else {
            print_lines(&[describe(&report)])?;
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

/// The one input of a verification that is not a file: the text given, or the text read from
/// the picture (before any box is enabled; a picture without a readable symbol is a malformed
/// indicium, 5006, as a text that does not parse); none for a file.
pub(crate) fn one_input(
    home: &postkey_host::Home,
    text: Option<&String>,
    image: Option<&std::path::Path>,
) -> anyhow::Result<Option<Result<String, String>>> {
    Ok(match (text, image) {
        (Some(t), _) => Some(Ok(t.clone())),
        (None, Some(path)) => {
            let bytes = postkey_host::read_user_file(path, MAX_IMAGE)
                .map_err(|e| home.logged("host", e))?;
            Some(
                postkey_host::symbol::read_png(&bytes)
                    .map_err(|e| format!("{}: no readable indicium: {e}", path.display())),
            )
        }
        (None, None) => None,
    })
}

/// The outcomes of one input's reports, counted, and its report.
pub(crate) fn single_counted<R>(
    reports: Vec<R>,
    outcome: impl Fn(&R) -> &'static str,
) -> (BTreeMap<&'static str, u64>, Option<R>) {
    let mut counts = BTreeMap::new();
    for r in &reports {
        *counts.entry(outcome(r)).or_insert(0u64) += 1;
    }
    (counts, reports.into_iter().next())
}

/// The reports of a file as they come: a line each, or one JSON document whose `mailpieces`
/// list is written as it grows. Nothing is written before the first report, so a file refused
/// before it is read leaves no half document on standard output.
pub(crate) struct ReportStream<'a, W: std::io::Write> {
    out: &'a mut W,
    json: bool,
    /// The members written before `mailpieces` (`"key":value,` each), in JSON.
    head: String,
    started: bool,
}

impl<'a, W: std::io::Write> ReportStream<'a, W> {
    pub(crate) fn new(out: &'a mut W, json: bool, head: &[(&str, serde_json::Value)]) -> Self {
        let head = head.iter().map(|(k, v)| format!("{}:{v},", serde_json::json!(k))).collect();
        Self { out, json, head, started: false }
    }

    fn start(&mut self) -> std::io::Result<()> {
        if self.json && !self.started {
            write!(self.out, "{{{}\"mailpieces\":[", self.head)?;
        }
        Ok(())
    }

    /// One report, with its line number. A failed write stops the run that gives the reports
    /// (nothing more is verified for answers that cannot be given).
    pub(crate) fn write(
        &mut self,
        line: u64,
        r: &impl serde::Serialize,
        text: impl Fn() -> String,
    ) -> std::io::Result<()> {
        self.start()?;
        if self.json {
            let sep = if self.started { "," } else { "" };
            let mut value = serde_json::to_value(r).unwrap_or_default();
            value["line"] = line.into();
            write!(self.out, "{sep}{value}")?;
            // Out now, as a line of text is: a write that fails must fail here, before the
            // next batch is remembered, not when a buffer fills later.
            self.out.flush()?;
        } else {
            writeln!(self.out, "{line}: {}", text())?;
        }
        self.started = true;
        Ok(())
    }

    /// The counts of each outcome, after the reports: the JSON document's end, or one line.
    pub(crate) fn finish(
        mut self,
        counts: &BTreeMap<&'static str, u64>,
        what: &str,
    ) -> anyhow::Result<()> {
        let total: u64 = counts.values().sum();
        let written = (|| {
            self.start()?;
            if self.json {
                let outcomes = serde_json::to_value(counts).map_err(std::io::Error::other)?;
                writeln!(self.out, "],\"outcomes\":{outcomes},\"total\":{total}}}")?;
            } else {
                let list: Vec<String> = counts.iter().map(|(o, n)| format!("{n} {o}")).collect();
                writeln!(self.out, "{total} {what}: {}", list.join(", "))?;
            }
            self.out.flush()
        })();
        written.map_err(|e| postkey_host::HostError::Output(e).into())
    }
}
