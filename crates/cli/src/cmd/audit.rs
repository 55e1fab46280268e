use std::path::PathBuf;

use super::{Ctx, Outcome, block_on, join, print_json, print_lines, shares_dir};

/// `postkey audit …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Check the archive against the home's trust anchors: every chain, every stored record
    /// (digest, signature, what it names), every key's fields and status against its history,
    /// and each domain's key-ID accounting. Reads only. Exit 1 with the first bad position.
    Verify(VerifyArgs),
    /// Write the archive to a new file an auditor carries away and verifies with `audit verify
    /// --file FILE --anchors ANCHORS`, without the home. Reads only.
    Export(ExportArgs),
}

/// Arguments of `postkey audit verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// Verify this export (from `audit export`) instead of the home's archive; needs no home.
    #[arg(long, value_name = "EXPORT", requires = "anchors")]
    file: Option<PathBuf>,
    /// The trust anchors to verify an export against (`trust-anchors.cbor` from the media).
    #[arg(long, value_name = "FILE", requires = "file")]
    anchors: Option<PathBuf>,
    /// Also ask each Oak and Steel box whose shares are at hand for its state, and check that
    /// none has used a key ID the archive never allocated and none is older than the archive
    /// recorded (reads the boxes' states, writes nothing).
    #[arg(long, conflicts_with = "file")]
    boxes: bool,
    /// Directory of the boxes' share files, with `--boxes` [default: <home>/media]
    #[arg(long, value_name = "DIR", requires = "boxes")]
    shares_dir: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `postkey audit export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The new file to write (it must not exist).
    file: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(ctx: &Ctx, command: Command) -> anyhow::Result<Outcome> {
    let a = match command {
        Command::Verify(a) => a,
        Command::Export(a) => {
            let r = block_on(postkey_host::export_archive(&ctx.home, &a.file))??;
            if a.json {
                print_json(&r)?;
            } else {
                let events: u64 = r.chains.iter().map(|(_, n)| n).sum();
                print_lines(&[format!(
                    "exported the archive to {} ({} bytes, {} chains, {events} events); verify it \
                     with `postkey audit verify --file {} --anchors trust-anchors.cbor`",
                    r.file,
                    r.bytes,
                    r.chains.len(),
                    r.file
                )])?;
            }
            return Ok(Outcome::Success);
        }
    };
    let report = match (&a.file, &a.anchors) {
        (Some(file), Some(anchors)) => block_on(postkey_host::audit_export(file, anchors))??,
        _ if a.boxes => {
            let dir = shares_dir(&ctx.home, a.shares_dir.as_deref());
            block_on(postkey_host::audit_with_boxes(&ctx.home, &dir, ctx.wait))??
        }
        _ => block_on(postkey_host::audit(&ctx.home))??,
    };
    if a.json {
        print_json(&report)?;
    } else {
        let events: u64 = report.chains.iter().map(|c| c.count).sum();
        let mut lines = vec![format!(
            "checked {} chains ({events} events), {} keys, {} records",
            report.chains.len(),
            report.keys,
            report.records
        )];
        for a in &report.key_ids {
            lines.push(format!(
                "  {}: {} key IDs allocated = {} keys + {} burned + {} pending",
                a.domain, a.allocated, a.created, a.burned, a.pending
            ));
        }
        for b in &report.boxes {
            lines.push(match (&b.version, &b.not_at_hand) {
                (Some(v), _) => format!("  box {}: state version {v} attested", b.box_id),
                (None, why) => {
                    format!("  box {}: not at hand: {}", b.box_id, why.as_deref().unwrap_or("?"))
                }
            });
        }
        match report.faults.first() {
            None => lines.push("all holds".into()),
            Some(first) => {
                lines.push(format!("FAILED at {first}"));
                let rest: Vec<String> =
                    report.faults.iter().skip(1).map(ToString::to_string).collect();
                if !rest.is_empty() {
                    lines.push(format!("  then: {}", join(&rest, "; ")));
                }
                if report.more_faults > 0 {
                    lines.push(format!("  and {} faults more", report.more_faults));
                }
            }
        }
        print_lines(&lines)?;
    }
    Ok(if report.holds() { Outcome::Success } else { Outcome::CheckFailed })
}
