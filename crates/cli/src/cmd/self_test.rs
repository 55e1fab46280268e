use std::io::Write as _;

use anyhow::Context as _;

use super::Outcome;

/// Arguments of `postkey self-test`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<Outcome> {
    let report = postkey_host::run_self_tests();
    let mut out = std::io::stdout().lock();
    if args.json {
        let results: Vec<_> = report
            .iter()
            .map(|r| serde_json::json!({"primitive": r.primitive, "passed": r.passed}))
            .collect();
        let all = report.iter().all(|r| r.passed);
        let doc = serde_json::json!({"passed": all, "results": results});
        writeln!(out, "{doc}").context("writing to standard output")?;
    } else {
        for r in &report {
            writeln!(out, "{:<28} {}", r.primitive, if r.passed { "ok" } else { "FAILED" })
                .context("writing to standard output")?;
        }
    }
    Ok(if report.iter().all(|r| r.passed) { Outcome::Success } else { Outcome::CheckFailed })
}
