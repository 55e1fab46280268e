use std::path::PathBuf;

use super::{Ctx, Outcome, block_on, print_json, print_lines, warn_media};

/// Arguments of `postkey init`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to write the share files and trust anchors (the removable media) [default:
    /// <home>/media]
    #[arg(long, value_name = "DIR")]
    media: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(ctx: &Ctx, args: Args) -> anyhow::Result<Outcome> {
    let home = &ctx.home;
    let media = args.media.unwrap_or_else(|| home.media_dir());
    // The one command that makes a home.
    let report = block_on(postkey_host::init_home(home, ctx.wait, &media))??;
    warn_media(&media);
    if args.json {
        print_json(&report)?;
    } else {
        let mut lines = vec![
            format!("initialized {}: {}", home.root().display(), report.id),
            format!("installation: {}", report.installation),
            format!("trust anchors fingerprint: {}", report.anchors_fingerprint),
            "  (operators confirm this fingerprint at every box initialization)".into(),
            "share files:".into(),
        ];
        lines.extend(report.share_files.iter().map(|f| format!("  {}", f.display())));
        lines.push(format!("transcript: {} in the archive", report.transcript));
        print_lines(&lines)?;
    }
    Ok(Outcome::Success)
}
