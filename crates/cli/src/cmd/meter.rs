use std::path::PathBuf;

use postkey_host::{Access, Indicium, Mailing};
use postkey_wire::{Date, MeterId, Msn, ProductCode, Zip};

use super::{Ctx, Outcome, print_json, print_lines};

/// `postkey meter …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Make a simulated meter (its transport key pair; its state in <home>/meters).
    New(NewArgs),
    /// Show a simulated meter: the key ID it holds of each domain (never a key).
    Show(ShowArgs),
    /// Print indicia: the next piece counts, made durable before any token is made; each
    /// indicium as its text line, or as a Data Matrix (PNG, SVG).
    Print(PrintArgs),
}

/// Arguments of `postkey meter print`.
#[derive(Debug, clap::Args)]
pub(crate) struct PrintArgs {
    /// The meter, e.g. PB1234-000123 (registered).
    meter: MeterId,
    /// The postage, in the smallest currency unit (cents).
    #[arg(long, value_name = "AMOUNT")]
    value: u32,
    /// The origin postal code (spaces and hyphens are dropped).
    #[arg(long, value_parser = parse_zip)]
    zip: Zip,
    /// The mailing date, YYYYMMDD [default: today, UTC].
    #[arg(long, value_parser = |s: &str| Date::parse(s).map_err(|e| e.to_string()))]
    date: Option<Date>,
    /// How many mailpieces (one durable write of the piece counter for all).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    count: u32,
    /// Write the (first) indicium as a Data Matrix with its human-readable lines, PNG.
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
    /// Write the (first) indicium as a Data Matrix with its human-readable lines, SVG.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_zip(s: &str) -> Result<Zip, String> {
    Zip::normalize(s).map_err(|e| e.to_string())
}

/// Arguments of `postkey meter show`.
#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// The meter, e.g. PB1234-000123.
    meter: MeterId,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `postkey meter new`.
#[derive(Debug, clap::Args)]
pub(crate) struct NewArgs {
    /// The product code, e.g. PB1234.
    #[arg(long)]
    product: ProductCode,
    /// The manufacturing sequence number, e.g. 000123.
    #[arg(long)]
    msn: Msn,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(ctx: &Ctx, command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::New(a) => new(ctx, a),
        Command::Show(a) => show(ctx, a),
        Command::Print(a) => print(ctx, a),
    }
}

fn print(ctx: &Ctx, a: PrintArgs) -> anyhow::Result<Outcome> {
    let home = &ctx.home;
    home.anchors()?;
    let date = match a.date {
        Some(d) => d,
        None => postkey_host::utc_date(postkey_host::now())?,
    };
    let mailing = Mailing { date, value: a.value, zip: a.zip };
    // The pictures' files first: a path that cannot be written takes no piece count.
    let logged = |e| home.logged("host", e);
    let png = a.png.as_deref().map(postkey_host::OutputFile::create).transpose().map_err(logged)?;
    let svg = a.svg.as_deref().map(postkey_host::OutputFile::create).transpose().map_err(logged)?;
    let printed = home.print(&a.meter, &mailing, a.count).map_err(|e| home.logged("meter", e))?;
    let indicia: Vec<Indicium> = printed
        .into_iter()
        .map(|p| Indicium { mailpiece: p.mailpiece, vendor: p.vendor, postal: p.postal })
        .collect();
    if let Some(first) = indicia.first() {
        if let Some(file) = png {
            file.finish(&postkey_host::symbol::to_png(first, 4)?).map_err(logged)?;
        }
        if let Some(file) = svg {
            file.finish(postkey_host::symbol::to_svg(first)?.as_bytes()).map_err(logged)?;
        }
    }
    if a.json {
        let pieces: Vec<serde_json::Value> = indicia
            .iter()
            .map(|i| {
                let m = &i.mailpiece;
                serde_json::json!({
                    "count": m.count,
                    "isn": m.isn.to_string(),
                    "subdomain": m.subdomain.to_string(),
                    "date": m.date.to_string(),
                    "value": m.value,
                    "zip": m.zip.to_string(),
                    "vendor_token": i.vendor.to_string(),
                    "postal_token": i.postal.to_string(),
                    "text": i.to_text(),
                })
            })
            .collect();
        print_json(&serde_json::json!({"meter": a.meter.to_string(), "indicia": pieces}))?;
    } else {
        let lines: Vec<String> = indicia.iter().map(Indicium::to_text).collect();
        print_lines(&lines)?;
    }
    Ok(Outcome::Success)
}

fn show(ctx: &Ctx, a: ShowArgs) -> anyhow::Result<Outcome> {
    // Read only: a home that was never initialized is an error, and nothing is written.
    ctx.home.anchors()?;
    let meter = ctx.home.meter_now(&a.meter)?;
    let keys: Vec<serde_json::Value> = meter
        .keys()
        .iter()
        .map(|(domain, k)| serde_json::json!({"domain": domain.to_string(), "key_id": k.key_id.get()}))
        .collect();
    if a.json {
        print_json(&serde_json::json!({"meter_id": a.meter.to_string(), "keys": keys}))?;
    } else {
        let mut lines = vec![format!("meter {}", a.meter)];
        lines.extend(meter.keys().iter().map(|(d, k)| format!("  {d}/{}", k.key_id)));
        if meter.keys().is_empty() {
            lines.push("  no keys".into());
        }
        print_lines(&lines)?;
    }
    Ok(Outcome::Success)
}

fn new(ctx: &Ctx, a: NewArgs) -> anyhow::Result<Outcome> {
    let home = &ctx.home;
    let id = MeterId::new(a.product, a.msn);
    let lock = ctx.lock(Access::Shared)?;
    postkey_host::new_meter(&lock, &id)?;
    eprintln!(
        "postkey: warning: simulation: the meter's keys are kept in a file under {} (see SECURITY.md)",
        home.root().display()
    );
    if a.json {
        print_json(&serde_json::json!({"meter_id": id.to_string()}))?;
    } else {
        print_lines(&[format!("made meter {id}")])?;
    }
    Ok(Outcome::Success)
}
