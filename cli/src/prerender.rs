//! `kiln prerender FILE`: submits a bulk job and shows its progress until it
//! is done. FILE holds one item per line — a URL (`/img/…`, `/card/…`, or an
//! absolute one) or a JSON item (`{"image":{…}}`, `{"card":{…}}`) — or one JSON
//! document (`{"items":[…]}` or `[…]`). `#` starts a comment line.
//!
//! The api, key and CA come from `--api`/`--key`/`--ca-cert` or the
//! environment (see `api_client`).

use std::io::Write as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{json, Value};

use crate::api_client::{Api, ApiArgs};
use crate::output::{usage, CliResult, Output};

#[derive(Args)]
pub struct PrerenderArgs {
    /// One item per line (a URL or a JSON item), or one JSON document.
    file: std::path::PathBuf,
    #[command(flatten)]
    api: ApiArgs,
}

const POLL: Duration = Duration::from_millis(500);
const BAR_WIDTH: usize = 30;

/// The items of a prerender file.
pub fn read_items(text: &str) -> anyhow::Result<Vec<Value>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with("{\"items\"") {
        let doc: Value = serde_json::from_str(trimmed).context("parsing the JSON document")?;
        return match doc {
            Value::Array(items) => Ok(items),
            Value::Object(mut o) => match o.remove("items") {
                Some(Value::Array(items)) => Ok(items),
                _ => bail!("\"items\" must be an array"),
            },
            _ => bail!("expected an array of items"),
        };
    }
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let item = if line.starts_with('{') {
            serde_json::from_str(line).with_context(|| format!("line {}: not JSON", n + 1))?
        } else {
            json!({ "url": line })
        };
        items.push(item);
    }
    Ok(items)
}

fn bar(done: i64, total: i64) -> String {
    let filled = if total > 0 {
        (done as usize * BAR_WIDTH) / total as usize
    } else {
        BAR_WIDTH
    };
    format!("[{}{}]", "#".repeat(filled), ".".repeat(BAR_WIDTH - filled))
}

pub fn run(args: &PrerenderArgs, out: &Output) -> CliResult {
    let file = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {file}"))?;
    let items = read_items(&text).map_err(|e| usage(format!("{file}: {e:#}")))?;
    if items.is_empty() {
        return Err(usage(format!("{file} holds no items")));
    }
    let api = args.api.connect(Duration::from_secs(120))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(submit_and_follow(&api, items, out))?;
    Ok(())
}

async fn submit_and_follow(api: &Api, items: Vec<Value>, out: &Output) -> anyhow::Result<()> {
    let Api { base, key, client } = api;
    let response = client
        .post(format!("{base}/v1/jobs"))
        .bearer_auth(key)
        .json(&json!({ "items": items }))
        .send()
        .await
        .with_context(|| format!("submitting to {base}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status.as_u16() != 202 {
        bail!("the api refused the job ({status}): {body}");
    }
    let id = body["id"]
        .as_str()
        .context("no job id in the answer")?
        .to_owned();
    // Progress goes to stderr, for people; --json keeps stderr quiet.
    let people = !out.is_json();
    if people {
        eprintln!(
            "job {id}: {} items, {} already cached",
            body["total"], body["already_cached"]
        );
    }
    loop {
        let progress: Value = client
            .get(format!("{base}/v1/jobs/{id}"))
            .bearer_auth(key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let total = progress["total"].as_i64().unwrap_or(0);
        let (done, failed, cancelled) = (
            progress["done"].as_i64().unwrap_or(0),
            progress["failed"].as_i64().unwrap_or(0),
            progress["cancelled"].as_i64().unwrap_or(0),
        );
        let finished = done + failed + cancelled;
        if people {
            eprint!(
                "\r{} {finished}/{total}  done {done}  failed {failed}  cancelled {cancelled}  ",
                bar(finished, total)
            );
            let _ = std::io::stderr().flush();
        }
        if progress["state"] != "running" {
            if people {
                eprintln!();
                for item in progress["failed_items"].as_array().into_iter().flatten() {
                    eprintln!(
                        "  item {}: {} ({})",
                        item["item"], item["error"], item["status"]
                    );
                }
            }
            println!("{}", serde_json::to_string(&progress)?);
            if failed > 0 {
                bail!("{failed} item(s) failed");
            }
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_hold_urls_json_lines_or_one_document() {
        let lines = "# comment\n/img/s/300x200/a.jpg\n\n{\"image\":{\"source\":\"a.jpg\",\"options\":\"10x10\"}}\n";
        let items = read_items(lines).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0], json!({"url": "/img/s/300x200/a.jpg"}));
        assert_eq!(items[1]["image"]["source"], "a.jpg");
        assert_eq!(read_items(r#"{"items":[{"url":"/x"}]}"#).unwrap().len(), 1);
        assert_eq!(
            read_items(r#"[{"url":"/x"},{"url":"/y"}]"#).unwrap().len(),
            2
        );
        assert!(read_items("{not json\n").is_err());
    }

    #[test]
    fn the_bar_fills_with_progress() {
        assert_eq!(bar(0, 10), format!("[{}]", ".".repeat(30)));
        assert_eq!(
            bar(5, 10),
            format!("[{}{}]", "#".repeat(15), ".".repeat(15))
        );
        assert_eq!(bar(10, 10), format!("[{}]", "#".repeat(30)));
    }
}
