//! `kiln upload FILE [KEY]`: puts an original into the originals bucket —
//! through the api (`PUT /v1/originals/{key}`, which checks the file) when
//! `--api` or `KILN_API_URL` is given, else straight into S3.

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use kiln_core::source_key::SourceKey;
use kiln_infra::config::S3Config;
use kiln_infra::storage::Storage;

use crate::api_client::{Api, ApiArgs};
use crate::output::{usage, CliResult, Output};

#[derive(Args)]
pub struct UploadArgs {
    /// The image file.
    file: std::path::PathBuf,
    /// Its key in the originals bucket (default: the file's name).
    key: Option<String>,
    /// Replace an original already stored under KEY (through the api).
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    api: ApiArgs,
}

fn content_type_for(bytes: &[u8]) -> &'static str {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "image/webp",
        _ => "application/octet-stream",
    }
}

pub fn run(args: &UploadArgs, out: &Output) -> CliResult {
    let file = args.file.display().to_string();
    let key = match &args.key {
        Some(key) => key.clone(),
        None => args
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| usage("the file has no usable name; give a KEY"))?
            .to_owned(),
    };
    let key = SourceKey::new(key).map_err(|e| usage(format!("KEY: {e}")))?;
    if key.as_str().ends_with('/') {
        return Err(usage("KEY must name an object, not a folder"));
    }
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {file}"))?;
    if args.api.is_given() {
        let api = args.api.connect(std::time::Duration::from_secs(600))?;
        return through_api(&api, key.as_str(), bytes, args.overwrite, &file, out);
    }
    if args.overwrite {
        return Err(usage(
            "--overwrite needs --api (S3 itself always overwrites)",
        ));
    }
    let storage = Storage::new(S3Config::from_env().context("reading the S3 settings")?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let content_type = content_type_for(&bytes);
    let size = bytes.len();
    runtime
        .block_on(storage.put_original(key.as_str(), bytes.into(), content_type))
        .with_context(|| format!("uploading {file}"))?;
    out.print(
        || format!("uploaded {file} as {key} ({content_type})"),
        json!({ "key": key.as_str(), "content_type": content_type, "bytes": size }),
    );
    Ok(())
}

fn through_api(
    api: &Api,
    key: &str,
    bytes: Vec<u8>,
    overwrite: bool,
    file: &str,
    out: &Output,
) -> CliResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let url = format!(
        "{}/v1/originals/{}{}",
        api.base,
        kiln_core::source_key::SourceKey::new(key)
            .map_err(|e| usage(format!("KEY: {e}")))?
            .to_url_path(),
        if overwrite { "?overwrite=true" } else { "" }
    );
    let (status, body) = runtime.block_on(async {
        let response = api
            .client
            .put(&url)
            .bearer_auth(&api.key)
            .body(bytes)
            .send()
            .await
            .with_context(|| format!("uploading to {}", api.base))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        anyhow::Ok((status, body))
    })?;
    if !status.is_success() {
        let detail = body["detail"].as_str().unwrap_or("no detail");
        return Err(anyhow::anyhow!("the api refused {file} ({status}): {detail}").into());
    }
    out.print(
        || {
            format!(
                "uploaded {file} as {key} ({}, {}x{})",
                body["content_type"].as_str().unwrap_or("?"),
                body["width"],
                body["height"]
            )
        },
        body.clone(),
    );
    Ok(())
}
