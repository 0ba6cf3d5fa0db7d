//! `kiln partner create|list|revoke|rotate-key`: the same as the admin API,
//! straight against Postgres (`KILN_DATABASE_URL`).

use anyhow::{bail, Context as _};
use kiln_core::config::DbConfig;
use kiln_core::partners::{self, Limits};

pub const USAGE: &str = "\
  kiln partner create NAME [--prefix P]... [--rate N] [--burst N] [--monthly N]
                               create a partner; prints its key (shown once)
  kiln partner list            partners, their limits and keys (by hint)
  kiln partner rotate-key NAME [--prefix P]...
                               a new key; the partner's old keys are revoked
  kiln partner revoke NAME     revoke the partner and every key it holds";

/// Flags of `create` and `rotate-key`.
#[derive(Default)]
struct Flags {
    prefixes: Vec<String>,
    limits: Limits,
}

fn parse_flags(args: &[&str]) -> anyhow::Result<Flags> {
    let mut flags = Flags::default();
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("{flag} must be a positive number"))
        };
        match *flag {
            "--prefix" => flags.prefixes.push((*value).to_owned()),
            "--rate" => flags.limits.rate_per_second = Some(i32::try_from(number()?)?),
            "--burst" => flags.limits.burst = Some(i32::try_from(number()?)?),
            "--monthly" => flags.limits.monthly_quota = Some(number()?),
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    Ok(flags)
}

pub fn run(args: &[&str]) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = kiln_core::db::pool(&DbConfig::from_env()?)?;
        match args {
            ["create", name, flags @ ..] => {
                let flags = parse_flags(flags)?;
                let issued = partners::create(&db, name, &flags.prefixes, &flags.limits).await?;
                println!("created partner {} (id {})", issued.name, issued.id);
                println!("key (shown once): {}", issued.key);
            }
            ["rotate-key", name, flags @ ..] => {
                let flags = parse_flags(flags)?;
                if flags.limits != Limits::default() {
                    bail!("rotate-key takes --prefix only");
                }
                let prefixes = (!flags.prefixes.is_empty()).then_some(flags.prefixes.as_slice());
                let issued = partners::rotate_key(&db, name, prefixes).await?;
                println!("new key for {} (shown once): {}", issued.name, issued.key);
                println!("old keys revoked (api processes stop accepting them within KILN_PARTNER_CACHE_SECS)");
            }
            ["revoke", name] => {
                partners::revoke(&db, name).await?;
                println!("revoked partner {name} and its keys");
            }
            ["list"] => print_list(&partners::list(&db).await?),
            _ => bail!("usage:\n{USAGE}"),
        }
        Ok(())
    })
}

fn print_list(all: &[partners::Partner]) {
    if all.is_empty() {
        println!("no partners yet: kiln partner create NAME");
        return;
    }
    let limit = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
    println!(
        "{:<24} {:>8} {:>6} {:>12}  {:<8}  keys",
        "name", "rate/s", "burst", "monthly", "state"
    );
    for p in all {
        let keys: Vec<String> = p
            .keys
            .iter()
            .filter(|k| k.revoked_at.is_none())
            .map(|k| {
                if k.path_prefixes.is_empty() {
                    format!("{}…", k.hint)
                } else {
                    format!("{}… ({})", k.hint, k.path_prefixes.join(", "))
                }
            })
            .collect();
        println!(
            "{:<24} {:>8} {:>6} {:>12}  {:<8}  {}",
            p.name,
            limit(p.limits.rate_per_second.map(i64::from)),
            limit(p.limits.burst.map(i64::from)),
            limit(p.limits.monthly_quota),
            if p.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            },
            keys.join("; ")
        );
    }
}
