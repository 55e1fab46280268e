use postkey_host::KeyDetail;
use postkey_wire::{DomainId, KeyId, MeterId};

use super::{Ctx, Outcome, block_on, print_json, print_lines};

/// `postkey keys …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// List master key records.
    List(ListArgs),
    /// Show one key (or every key of a meter): status, the six times, and its history, each
    /// event with its actor and the digest of the record that caused it.
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
    #[arg(required_unless_present = "meter", requires = "key_id")]
    domain: Option<DomainId>,
    /// The key ID.
    #[arg(requires = "domain")]
    key_id: Option<u64>,
    /// Every key of this meter instead (`PRODUCT-MSN`), whatever its domain or status.
    #[arg(long, value_name = "METER", conflicts_with_all = ["domain", "key_id"])]
    meter: Option<MeterId>,
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
            let keys = block_on(async {
                let (store, _) = ctx.trusted().await?;
                anyhow::Ok(match (&a.meter, &a.domain, a.key_id) {
                    (Some(meter), ..) => postkey_host::show_meter_keys(&store, meter).await?,
                    (None, Some(domain), Some(key_id)) => {
                        let key_id = KeyId::new(key_id)?;
                        vec![postkey_host::show_key(&store, domain, key_id).await?]
                    }
                    // clap requires a meter, or a domain and a key ID.
                    _ => Vec::new(),
                })
            })??;
            match (a.json, a.meter.is_some()) {
                (true, true) => print_json(&keys)?,
                (true, false) => print_json(&keys[0])?,
                (false, _) => {
                    let lines: Vec<Vec<String>> = keys.iter().map(detail_lines).collect();
                    print_lines(&lines.join(&String::new()))?;
                }
            }
        }
    }
    Ok(Outcome::Success)
}

/// One key as text: its status, boxes, meter, times, and history.
fn detail_lines(k: &KeyDetail) -> Vec<String> {
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
        let record = match (&e.record, &e.record_digest) {
            (Some(r), Some(d)) => format!(" ({r} sha256:{})", &d[..16.min(d.len())]),
            _ => String::new(),
        };
        lines.push(format!("  #{:<5} {} {:<10} {}{record}", e.seq, e.time, e.actor, e.action));
    }
    lines
}
