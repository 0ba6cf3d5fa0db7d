//! `kiln sign` and `kiln sign-card`: signed URLs, exactly as the api checks them.

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use kiln_core::options::ImageOptions;
use kiln_core::signing::SigningConfig;
use kiln_core::source_key::SourceKey;
use kiln_infra::config::FromEnv as _;

use crate::output::{usage, CliResult, Output};

#[derive(Args)]
pub struct SignArgs {
    /// Image options, e.g. `800x600,fill,f:webp`.
    options: String,
    /// The original's key in the originals bucket.
    source: String,
    /// Base of the URL printed.
    #[arg(long, env = "KILN_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    public_url: String,
}

#[derive(Args)]
pub struct SignCardArgs {
    /// `TEMPLATE/ID.EXT[?k=v&…]`, the query already percent-encoded.
    card: String,
    /// Base of the URL printed.
    #[arg(long, env = "KILN_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    public_url: String,
}

fn signing() -> anyhow::Result<SigningConfig> {
    SigningConfig::from_env().context("reading KILN_SIGNING_KEYS")
}

/// Signs `{options}/{source}` as the URL will carry it.
pub fn sign(args: &SignArgs, out: &Output) -> CliResult {
    ImageOptions::parse(&args.options).map_err(|e| usage(format!("OPTIONS: {e}")))?;
    let source = SourceKey::new(&args.source).map_err(|e| usage(format!("SOURCE: {e}")))?;
    let payload = format!("{}/{}", args.options, source.to_url_path());
    let signature = signing()?
        .sign(&payload)
        .context("no signing key configured (KILN_SIGNING_KEYS)")?;
    let url = format!(
        "{}/img/{signature}/{payload}",
        args.public_url.trim_end_matches('/')
    );
    out.print(
        || url.clone(),
        json!({ "url": url, "signature": signature }),
    );
    Ok(())
}

/// Signs `card:{template}/{id}.{ext}[?query]`.
pub fn sign_card(args: &SignCardArgs, out: &Output) -> CliResult {
    let card = args.card.as_str();
    let (path, query) = match card.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (card, None),
    };
    if path.split('/').count() != 2 || !path.contains('.') {
        return Err(usage(
            "CARD: expected TEMPLATE/ID.EXT[?k=v&...], e.g. article/hello.jpg?title=Hi",
        ));
    }
    let payload = card.trim_end_matches('?');
    let signature = signing()?
        .sign(&kiln_core::signing::card_payload(path, query))
        .context("no signing key configured (KILN_SIGNING_KEYS)")?;
    let url = format!(
        "{}/card/{signature}/{payload}",
        args.public_url.trim_end_matches('/')
    );
    out.print(
        || url.clone(),
        json!({ "url": url, "signature": signature }),
    );
    Ok(())
}
