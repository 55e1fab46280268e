use postkey_wire::{DomainId, KeyId};

use super::{Ctx, Outcome, block_on, print_json, print_lines};

/// `postkey keys …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// List master key records.
    List(ListArgs),
    /// Show one key: status, the six times, and its history.
    Show(ShowArgs),
}

/// Arguments of `postkey keys list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Only this domain.
    #[arg(long)]
    domain: Option<DomainId>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `postkey keys show`.
#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// The key's domain.
    domain: DomainId,
    /// The key ID.
    key_id: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(ctx: &Ctx, command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::List(a) => {
            let keys = block_on(async {
                let (store, _) = ctx.trusted().await?;
                anyhow::Ok(postkey_host::list_keys(&store, a.domain.as_ref()).await?)
            })??;
            if a.json {
                print_json(&keys)?;
            } else {
                let lines: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        let meter = match (&k.product_code, &k.msn) {
                            (Some(p), Some(m)) => format!("{p}-{m}"),
                            _ => "-".into(),
                        };
                        format!("{:<6} {:>6}  {:<9} {meter}", k.domain, k.key_id, k.status)
                    })
                    .collect();
                print_lines(&lines)?;
            }
        }
        Command::Show(a) => {
            let key_id = KeyId::new(a.key_id)?;
            let k = block_on(async {
                let (store, _) = ctx.trusted().await?;
                anyhow::Ok(postkey_host::show_key(&store, &a.domain, key_id).await?)
            })??;
            if a.json {
                print_json(&k)?;
            } else {
                let mut lines = vec![
                    format!("key {}/{}: {}", k.key.domain, k.key.key_id, k.key.status),
                    format!("oak {}  steel {}", k.key.oak, k.key.steel),
                    format!(
                        "meter {}",
                        match (&k.key.product_code, &k.key.msn) {
                            (Some(p), Some(m)) => format!("{p}-{m}"),
                            _ => "-".into(),
                        }
                    ),
                    "times:".into(),
                ];
                if let Some(times) = k.times.as_object() {
                    for (name, v) in times {
                        lines.push(format!("  {name:<21} {}", v.as_str().unwrap_or("-")));
                    }
                }
                lines.push("history:".into());
                for e in &k.history {
                    lines.push(format!(
                        "  #{:<5} {} {:<10} {}{}",
                        e.seq,
                        e.time,
                        e.actor,
                        e.action,
                        e.record.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
                    ));
                }
                print_lines(&lines)?;
            }
        }
    }
    Ok(Outcome::Success)
}
