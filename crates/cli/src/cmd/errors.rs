use super::{Ctx, Outcome, block_on, print_json, print_lines};

/// Arguments of `postkey errors`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Show at most this many of the newest entries (1 to 1,000,000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    limit: u32,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// The error log, oldest of the newest `limit` first: the archive's and the home's spool, read
/// without writing.
pub(crate) fn run(ctx: &Ctx, args: Args) -> anyhow::Result<Outcome> {
    let errors = block_on(async {
        let (store, _) = ctx.trusted().await?;
        anyhow::Ok(postkey_host::error_log(&ctx.home, &store, args.limit).await?)
    })??;
    if args.json {
        print_json(&errors)?;
    } else {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| format!("{} {:<9} {:04} {}", e.time, e.component, e.code, e.message))
            .collect();
        print_lines(&lines)?;
    }
    Ok(Outcome::Success)
}
