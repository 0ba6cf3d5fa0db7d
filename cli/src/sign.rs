//! `kiln sign` and `kiln sign-card`: signed URLs, exactly as the api checks them.

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use kiln_core::dialects;
use kiln_core::options::{ImageOptions, Presets};
use kiln_core::signing::SigningConfig;
use kiln_core::source_key::SourceKey;
use kiln_infra::config::{FromEnv as _, S3Config};
use kiln_infra::dialect_config::Dialects;

use crate::output::{usage, CliResult, Output};

/// The URL grammar `kiln sign` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DialectArg {
    /// `/img/{signature}/{options}/{source}`
    #[default]
    Native,
    /// `{KILN_THUMBOR_PREFIX}/{hmac}/{options}/{image}` (thumbor, imagor)
    Thumbor,
    /// `{KILN_IMGPROXY_PREFIX}/{signature}/{options}/plain/{source}`
    Imgproxy,
}

#[derive(Args)]
pub struct SignArgs {
    /// Image options in the dialect's own form: `800x600,fill,f:webp`
    /// (native), `fit-in/800x600/filters:format(webp)` (thumbor),
    /// `rs:fit:800:600/f:webp` (imgproxy).
    options: String,
    /// The original's key in the originals bucket.
    source: String,
    /// URL grammar to write.
    #[arg(long, value_enum, default_value_t = DialectArg::Native)]
    dialect: DialectArg,
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
    match args.dialect {
        DialectArg::Native => {}
        DialectArg::Thumbor | DialectArg::Imgproxy => return sign_dialect(args, out),
    }
    ImageOptions::parse_with(&args.options, &Presets::from_env()?)
        .map_err(|e| usage(format!("OPTIONS: {e}")))?;
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

/// Signs a thumbor or imgproxy URL with the api's dialect settings, then
/// reads it back with the api's own parser, so what is printed is accepted.
fn sign_dialect(args: &SignArgs, out: &Output) -> CliResult {
    let source = SourceKey::new(&args.source).map_err(|e| usage(format!("SOURCE: {e}")))?;
    let options = args.options.trim_matches('/');
    let dialects = Dialects::from_env()?;
    let bucket = S3Config::from_env()?.originals_bucket;
    let presets = Presets::from_env()?;
    let (prefix, signature, path, parsed) = match args.dialect {
        DialectArg::Thumbor => {
            let d = dialects
                .thumbor
                .context("the thumbor dialect is off: set KILN_THUMBOR_KEY")?;
            let path = match options {
                "" => source.to_url_path(),
                options => format!("{options}/{}", source.to_url_path()),
            };
            let signature = d
                .signing
                .sign(&path)
                .context("no thumbor key configured (KILN_THUMBOR_KEY)")?;
            let parsed = dialects::thumbor::parse_with(
                &format!("{signature}/{path}"),
                &d.signing,
                &bucket,
                &presets,
            );
            (d.prefix, signature, path, parsed)
        }
        _ => {
            let d = dialects
                .imgproxy
                .context("the imgproxy dialect is off: set KILN_IMGPROXY_KEY and _SALT")?;
            let path = format!("{options}/plain/{}", source.to_url_path());
            let signature = d
                .signing
                .sign(&format!("/{path}"))
                .context("no imgproxy key configured (KILN_IMGPROXY_KEY)")?;
            let parsed = dialects::imgproxy::parse_with(
                &format!("{signature}/{path}"),
                &d.signing,
                &bucket,
                &presets,
            );
            (d.prefix, signature, path, parsed)
        }
    };
    parsed.map_err(|e| usage(format!("OPTIONS: {e}")))?;
    let url = format!(
        "{}{prefix}/{signature}/{path}",
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
