use std::path::PathBuf;

use super::{Outcome, print_json, print_lines, warn_media};

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

pub(crate) fn run(home: &postkey_host::Home, args: Args) -> anyhow::Result<Outcome> {
    let media = args.media.unwrap_or_else(|| home.media_dir());
    let report = postkey_host::init(home, &media)?;
    warn_media(&media);
    if args.json {
        print_json(&report)?;
    } else {
        let mut lines = vec![
            format!("initialized {}: {}", home.root().display(), report.id),
            format!("trust anchors fingerprint: {}", report.anchors_fingerprint),
            "  (operators confirm this fingerprint at every box initialization)".into(),
            "share files:".into(),
        ];
        lines.extend(report.share_files.iter().map(|f| format!("  {}", f.display())));
        lines.push(format!("transcript: {}", report.transcript.display()));
        print_lines(&lines)?;
    }
    Ok(Outcome::Success)
}
