use postkey_host::Home;

use super::{Outcome, print_json, print_lines};

/// Arguments of `postkey errors`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(home: &Home, args: Args) -> anyhow::Result<Outcome> {
    let errors = home.errors()?;
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
