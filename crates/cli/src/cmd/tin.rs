use std::io::Write as _;
use std::path::PathBuf;

use postkey_host::tin::{TIN_COVERS, TinReport, TinVerifier};
use postkey_host::{Access, DEFAULT_VERIFY_BATCH};
use postkey_wire::{BoxId, Period, SubdomainId};

use super::verify::{ReportStream, single_counted};
use super::{Ctx, Outcome, block_on, print_json, print_lines, shares_dir};

/// `postkey tin …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Export one month's token keys of a postal sub-domain's active meters, sealed to one Tin
    /// box, into a new file (made by the Brass box serving the sub-domain).
    Export(ExportArgs),
    /// Give an export file to the Tin box it is sealed to; it replaces the older export of
    /// its sub-domain and month, and an older one is refused.
    Import(ImportArgs),
    /// Verify indicia at a Tin box, offline: the postal token only, the meters as of the
    /// export's time, duplicates not checked. Exit 0 only if every postal token is good.
    Verify(VerifyArgs),
}

/// Arguments of `postkey tin export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The Tin box to seal the export to, e.g. T00000001.
    #[arg(long)]
    tin: BoxId,
    /// The postal sub-domain, e.g. USPS/US.
    #[arg(long)]
    subdomain: SubdomainId,
    /// The month, YYYYMM.
    #[arg(long, value_parser = |s: &str| Period::parse(s).map_err(|e| e.to_string()))]
    month: Period,
    /// The export file to create (never overwritten).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Directory of the boxes' share files [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    shares_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `postkey tin import`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// The export file.
    file: PathBuf,
    /// Directory of the boxes' share files [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    shares_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `postkey tin verify`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["text", "file", "image"]))]
pub(crate) struct VerifyArgs {
    /// One indicium's text, as printed (quoted).
    text: Option<String>,
    /// A file of indicia, one text a line.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// A picture of one indicium (PNG).
    #[arg(long, value_name = "PNG")]
    image: Option<PathBuf>,
    /// The Tin box, e.g. T00000001.
    #[arg(long)]
    tin: BoxId,
    /// Directory of the boxes' share files [default: <home>/media]
    #[arg(long, value_name = "DIR")]
    shares_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(ctx: &Ctx, c: Command) -> anyhow::Result<Outcome> {
    match c {
        Command::Export(a) => export(ctx, a),
        Command::Import(a) => import(ctx, a),
        Command::Verify(a) => verify(ctx, a),
    }
}

fn export(ctx: &Ctx, a: ExportArgs) -> anyhow::Result<Outcome> {
    let dir = shares_dir(&ctx.home, a.shares_dir.as_deref());
    let lock = ctx.lock(Access::Shared)?;
    let report = block_on(async {
        let store = ctx.archive().await?;
        let r = postkey_host::tin::export(&lock, store, &dir, a.tin, &a.subdomain, a.month, &a.out)
            .await?;
        anyhow::Ok(r)
    })??;
    if a.json {
        print_json(&report)?;
    } else {
        print_lines(&[format!(
            "{}: token keys of {} meters of {} for {}, as of {}, sealed to {} by {} ({} chunks)",
            report.file,
            report.meters,
            report.subdomain,
            report.month,
            report.as_of,
            report.tin,
            report.brass,
            report.chunks
        )])?;
    }
    Ok(Outcome::Success)
}

fn import(ctx: &Ctx, a: ImportArgs) -> anyhow::Result<Outcome> {
    let dir = shares_dir(&ctx.home, a.shares_dir.as_deref());
    let lock = ctx.lock(Access::Shared)?;
    let report = block_on(async {
        let store = ctx.archive().await?;
        anyhow::Ok(postkey_host::tin::import(&lock, store, &dir, &a.file).await?)
    })??;
    if a.json {
        print_json(&report)?;
    } else {
        let state = if report.have == report.chunks {
            format!("in use: {} meters", report.meters)
        } else {
            format!("{} of {} chunks held", report.have, report.chunks)
        };
        print_lines(&[format!(
            "{}: export of {} for {} as of {}: {state}",
            report.tin, report.subdomain, report.month, report.as_of
        )])?;
    }
    Ok(Outcome::Success)
}

fn verify(ctx: &Ctx, a: VerifyArgs) -> anyhow::Result<Outcome> {
    let home = &ctx.home;
    let dir = shares_dir(home, a.shares_dir.as_deref());
    let lock = ctx.lock(Access::Shared)?;
    let text = super::verify::one_input(home, a.text.as_ref(), a.image.as_deref())?;
    let mut stdout = std::io::stdout().lock();
    let (counts, single) = block_on(async {
        let store = ctx.archive().await?;
        let v = TinVerifier::open(&lock, store, &dir, a.tin).await?;
        if !a.json {
            writeln!(stdout, "tin {}: answers cover {TIN_COVERS}", a.tin)?;
        }
        let out = match (&text, &a.file) {
            (Some(t), _) => {
                let reports = v.verify_inputs(&[t.as_deref().map_err(Clone::clone)]).await;
                reports.map(|r| single_counted(r, |x| x.outcome)).map_err(anyhow::Error::from)
            }
            (None, Some(file)) => {
                let head = [("covers", serde_json::json!(TIN_COVERS))];
                let mut lines = ReportStream::new(&mut stdout, a.json, &head);
                let counts = v
                    .verify_file(file, DEFAULT_VERIFY_BATCH, |line, r| {
                        lines.write(line, r, || describe(r))
                    })
                    .await;
                match counts {
                    Ok(c) => lines.finish(&c, "postal tokens").map(|()| (c, None)),
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
    match single {
        Some(report) if a.json => print_json(&report)?,
        Some(report) => print_lines(&[describe(&report)])?,
        None => {}
    }
    Ok(if all_good { Outcome::Success } else { Outcome::CheckFailed })
}

/// One line for a report.
fn describe(r: &TinReport) -> String {
    let mut s = format!("postal token {}", r.outcome);
    if let (Some(isn), Some(sub), Some(count)) = (&r.isn, &r.subdomain, r.count) {
        s.push_str(&format!(": {sub} ISN {isn} piece {count}"));
    }
    if let Some(t) = &r.as_of {
        s.push_str(&format!("; meters as of {t}"));
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
