//! How the CLI reaches a Kiln api: its URL and key (flags, else
//! environment), and an HTTP client that speaks TLS to an `https://` api with
//! the system's roots plus any `--ca-cert`.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use kiln_infra::config::var_or;

#[derive(Args)]
pub struct ApiArgs {
    /// The api's base URL (http:// or https://); else KILN_PUBLIC_URL, else http://127.0.0.1:8080.
    #[arg(long = "api", env = "KILN_API_URL", value_name = "URL")]
    url: Option<String>,
    /// A partner or admin key; else the first of KILN_ADMIN_KEYS.
    #[arg(
        long = "key",
        env = "KILN_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    key: Option<String>,
    /// A PEM file of extra CA certificates to trust (a private CA).
    #[arg(long = "ca-cert", env = "KILN_CA_CERT", value_name = "PEM")]
    ca_cert: Option<std::path::PathBuf>,
}

pub struct Api {
    pub base: String,
    pub key: String,
    pub client: reqwest::Client,
}

impl ApiArgs {
    /// Whether an api was named (`--api` or `KILN_API_URL`).
    pub fn is_given(&self) -> bool {
        self.url.is_some()
    }

    pub fn connect(&self, timeout: Duration) -> anyhow::Result<Api> {
        let base = self
            .url
            .clone()
            .or_else(|| kiln_infra::config::var_opt("KILN_PUBLIC_URL"))
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            anyhow::bail!("--api {base:?} must start with http:// or https://");
        }
        let key = self
            .key
            .clone()
            .or_else(|| {
                var_or("KILN_ADMIN_KEYS", "")
                    .split(',')
                    .map(str::trim)
                    .find(|k| !k.is_empty())
                    .map(str::to_owned)
            })
            .context("give --key (or KILN_API_KEY): a partner or admin key")?;
        Ok(Api {
            base: base.trim_end_matches('/').to_owned(),
            key,
            client: client(self.ca_cert.as_deref(), timeout)?,
        })
    }
}

fn client(ca_cert: Option<&std::path::Path>, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    // The ring provider, which the S3 client already builds; installing it
    // twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} holds no PEM certificate", path.display()))?;
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().context("building the HTTP client")
}
