//! `kiln partner create|list|rotate-key|revoke`: the same as the admin API,
//! straight against PostgreSQL (`KILN_DATABASE_URL`).

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;

use kiln_infra::config::DbConfig;
use kiln_infra::partners::{self, Limits, PartnerError};

use crate::output::{usage, CliResult, Failure, Output};

#[derive(Subcommand)]
pub enum PartnerCommand {
    /// Create a partner; prints its key (shown once).
    Create {
        name: String,
        #[command(flatten)]
        prefixes: Prefixes,
        /// Requests per second (token bucket rate).
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        rate: Option<i32>,
        /// Burst size of the rate limit.
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        burst: Option<i32>,
        /// Requests per calendar month.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        monthly: Option<i64>,
    },
    /// Partners, their limits and keys (by hint).
    List,
    /// Issue a new key; the partner's old keys are revoked.
    RotateKey {
        name: String,
        #[command(flatten)]
        prefixes: Prefixes,
    },
    /// Revoke the partner and every key it holds.
    Revoke { name: String },
}

#[derive(Args)]
pub struct Prefixes {
    /// A source prefix (whole path segments) the key may reach; repeatable.
    #[arg(long = "prefix", value_name = "PREFIX")]
    list: Vec<String>,
}

/// A partner error the user caused (bad name, prefix or limit) is a usage
/// error; anything else (not found, database down) a failure.
fn failure(err: PartnerError) -> Failure {
    match err {
        PartnerError::Invalid(message) => usage(message),
        other => Failure::Failed(other.into()),
    }
}

pub fn run(command: PartnerCommand, out: &Output) -> CliResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let db = kiln_infra::db::pool(&DbConfig::from_env()?)?;
        match command {
            PartnerCommand::Create {
                name,
                prefixes,
                rate,
                burst,
                monthly,
            } => {
                let limits = Limits {
                    rate_per_second: rate,
                    burst,
                    monthly_quota: monthly,
                };
                let issued = partners::create(&db, &name, &prefixes.list, &limits)
                    .await
                    .map_err(failure)?;
                out.print(
                    || {
                        format!(
                            "created partner {} (id {})\nkey (shown once): {}",
                            issued.name, issued.id, issued.key
                        )
                    },
                    json!(issued),
                );
            }
            PartnerCommand::RotateKey { name, prefixes } => {
                let list = (!prefixes.list.is_empty()).then_some(prefixes.list.as_slice());
                let issued = partners::rotate_key(&db, &name, list)
                    .await
                    .map_err(failure)?;
                out.print(
                    || {
                        format!(
                            "new key for {} (shown once): {}\nold keys revoked (api processes stop accepting them within KILN_PARTNER_CACHE_SECS)",
                            issued.name, issued.key
                        )
                    },
                    json!(issued),
                );
            }
            PartnerCommand::Revoke { name } => {
                partners::revoke(&db, &name).await.map_err(failure)?;
                out.print(
                    || format!("revoked partner {name} and its keys"),
                    json!({ "name": name, "revoked": true }),
                );
            }
            PartnerCommand::List => {
                let all = partners::list(&db).await.context("listing partners")?;
                out.print(|| list_text(&all), json!(all));
            }
        }
        Ok(())
    })
}

fn list_text(all: &[partners::Partner]) -> String {
    if all.is_empty() {
        return "no partners yet: kiln partner create NAME".to_owned();
    }
    let limit = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
    let mut text = format!(
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
        text.push_str(&format!(
            "\n{:<24} {:>8} {:>6} {:>12}  {:<8}  {}",
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
        ));
    }
    text
}
