//! Configuration shared by every Kiln binary, read from `KILN_*` environment
//! variables with defaults that work on the local stack (`deploy/local/up.sh`).
//! Everything is validated at start-up: a bad value stops the process with a
//! message naming the variable, never a surprise at request time.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context as _};
use kiln_core::captcha::{CaptchaConfig, KeyMode};
use kiln_core::limits::SourceLimits;
use kiln_core::signing::SigningConfig;

/// Reads `name`, falling back to `default` when unset or empty.
pub fn var_or(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
        _ => default.to_owned(),
    }
}

/// Reads an optional variable (unset or empty is `None`).
pub fn var_opt(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Reads and parses `name`, naming the variable in the error.
pub fn parse_or<T: FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match var_opt(name) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={raw:?} is invalid: {e}")),
    }
}

pub fn bool_or(name: &str, default: bool) -> anyhow::Result<bool> {
    match var_opt(name).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => bail!("{name}={other:?} is invalid: expected true or false"),
    }
}

pub fn millis_or(name: &str, default_ms: u64) -> anyhow::Result<Duration> {
    Ok(Duration::from_millis(parse_or(name, default_ms)?))
}

/// Shortest secret Kiln accepts for a signing key, admin key or captcha salt.
pub const MIN_SECRET_LEN: usize = 32;

/// Words that mark a value copied from an example instead of generated.
const PLACEHOLDERS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replaceme",
    "placeholder",
    "example",
    "your-key",
    "your-secret",
    "yoursecret",
    "insert-",
    "todo",
    "xxxxxxxx",
];

/// Refuses a secret that is short, an example's placeholder, or one
/// character repeated: such values pass a length check and sign nothing.
pub fn check_secret(name: &str, value: &str) -> anyhow::Result<()> {
    let lower = value.to_ascii_lowercase();
    if let Some(word) = PLACEHOLDERS.iter().find(|w| lower.contains(*w)) {
        bail!("{name} holds a placeholder ({word:?}): generate a real secret, e.g. `openssl rand -hex 32`");
    }
    if value.len() < MIN_SECRET_LEN {
        bail!(
            "{name}: every secret must be at least {MIN_SECRET_LEN} bytes (e.g. `openssl rand -hex 32`)"
        );
    }
    let first = value.bytes().next();
    if value.bytes().all(|b| Some(b) == first) {
        bail!("{name} is one character repeated: generate a real secret");
    }
    Ok(())
}

/// Postgres connection settings.
#[derive(Clone, Debug)]
pub struct DbConfig {
    pub url: String,
    pub max_connections: u32,
    pub timeout: Duration,
}

impl DbConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            url: var_or(
                "KILN_DATABASE_URL",
                "postgres://kiln:kiln@127.0.0.1:5432/kiln",
            ),
            max_connections: parse_or("KILN_DATABASE_MAX_CONNECTIONS", 16)?,
            timeout: millis_or("KILN_DATABASE_TIMEOUT_MS", 3000)?,
        })
    }
}

/// RabbitMQ connection and topology settings.
#[derive(Clone, Debug)]
pub struct AmqpConfig {
    pub url: String,
    /// Prefixes every queue name, so several deployments (or tests) can share a broker.
    pub queue_prefix: String,
    pub timeout: Duration,
    /// Render attempts (the first plus retries) before a job is dead-lettered.
    pub max_attempts: u32,
    /// When set, RabbitMQ deletes Kiln's queues after they go unused this long
    /// (`x-expires`): for ephemeral deployments such as tests and previews.
    pub queue_expires: Option<Duration>,
    /// Quorum queues (`KILN_QUEUE_TYPE=quorum`) for RabbitMQ clusters.
    pub quorum_queues: bool,
    /// Jobs a work queue holds at most (`KILN_QUEUE_MAX_LENGTH`, 10000; 0:
    /// unbounded). Changing it needs new queues, as for the queue type.
    pub max_queue_length: Option<u32>,
}

impl AmqpConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        let max_attempts = parse_or("KILN_RENDER_MAX_ATTEMPTS", 5u32)?;
        if !(1..=10).contains(&max_attempts) {
            bail!("KILN_RENDER_MAX_ATTEMPTS must be between 1 and 10");
        }
        Ok(Self {
            url: var_or("KILN_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            queue_prefix: var_or("KILN_QUEUE_PREFIX", "kiln."),
            timeout: millis_or("KILN_AMQP_TIMEOUT_MS", 3000)?,
            max_attempts,
            queue_expires: match parse_or("KILN_QUEUE_EXPIRES_MS", 0u64)? {
                0 => None,
                ms => Some(Duration::from_millis(ms)),
            },
            max_queue_length: match parse_or("KILN_QUEUE_MAX_LENGTH", 10_000u32)? {
                0 => None,
                n => Some(n),
            },
            quorum_queues: match var_or("KILN_QUEUE_TYPE", "classic").as_str() {
                "classic" => false,
                "quorum" => true,
                other => bail!("KILN_QUEUE_TYPE={other:?} is invalid: expected classic or quorum"),
            },
        })
    }
}

/// S3 settings: one bucket of originals, one of rendered objects.
#[derive(Clone, Debug)]
pub struct S3Config {
    pub endpoint: String,
    /// The endpoint written into presigned URLs, when clients reach S3 by another address.
    pub public_endpoint: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub originals_bucket: String,
    pub cache_bucket: String,
    /// Prefix of rendered objects inside the cache bucket.
    pub cache_prefix: String,
    pub timeout: Duration,
}

impl S3Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let endpoint = var_or("KILN_S3_ENDPOINT", "http://127.0.0.1:3900");
        let public_endpoint = var_or("KILN_S3_PUBLIC_ENDPOINT", &endpoint);
        for (name, value) in [
            ("KILN_S3_ENDPOINT", &endpoint),
            ("KILN_S3_PUBLIC_ENDPOINT", &public_endpoint),
        ] {
            if !(value.starts_with("http://") || value.starts_with("https://")) {
                bail!("{name}={value:?} must start with http:// or https://");
            }
        }
        let access_key_id = var_opt("KILN_S3_ACCESS_KEY_ID").context(
            "KILN_S3_ACCESS_KEY_ID is required (deploy/local/up.sh writes it to .kiln/local.env)",
        )?;
        let secret_access_key = var_opt("KILN_S3_SECRET_ACCESS_KEY")
            .context("KILN_S3_SECRET_ACCESS_KEY is required")?;
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            public_endpoint: public_endpoint.trim_end_matches('/').to_owned(),
            region: var_or("KILN_S3_REGION", "garage"),
            access_key_id,
            secret_access_key,
            originals_bucket: var_or("KILN_S3_ORIGINALS_BUCKET", "kiln-originals"),
            cache_bucket: var_or("KILN_S3_CACHE_BUCKET", "kiln-cache"),
            cache_prefix: var_or("KILN_S3_CACHE_PREFIX", "r/"),
            timeout: millis_or("KILN_S3_TIMEOUT_MS", 5000)?,
        })
    }
}

impl FromEnv for SourceLimits {
    fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            max_bytes: parse_or("KILN_MAX_SOURCE_BYTES", 50 * 1024 * 1024)?,
            max_width: parse_or("KILN_MAX_SOURCE_WIDTH", 20_000)?,
            max_height: parse_or("KILN_MAX_SOURCE_HEIGHT", 20_000)?,
            max_pixels: parse_or("KILN_MAX_SOURCE_PIXELS", 50_000_000)?,
            max_output_dimension: parse_or("KILN_MAX_OUTPUT_DIMENSION", 8192)?,
        })
    }
}

/// Settings of a type from the pure crate (`kiln-core`), read from `KILN_*`
/// variables here so that crate never touches the environment.
pub trait FromEnv: Sized {
    fn from_env() -> anyhow::Result<Self>;
}

impl FromEnv for kiln_core::options::Presets {
    /// `KILN_PRESETS_FILE` (TOML, `name = "options"`; unset: no presets) and
    /// `KILN_PRESETS_ONLY`.
    fn from_env() -> anyhow::Result<Self> {
        let only = bool_or("KILN_PRESETS_ONLY", false)?;
        let Some(path) = var_opt("KILN_PRESETS_FILE") else {
            if only {
                bail!("KILN_PRESETS_ONLY=true needs KILN_PRESETS_FILE");
            }
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("KILN_PRESETS_FILE={path:?} cannot be read"))?;
        Self::from_toml(&text, only).map_err(|e| anyhow::anyhow!("KILN_PRESETS_FILE={path:?}: {e}"))
    }
}

impl FromEnv for SigningConfig {
    fn from_env() -> anyhow::Result<Self> {
        let keys: Vec<Vec<u8>> = var_opt("KILN_SIGNING_KEYS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| k.as_bytes().to_vec())
            .collect();
        let allow_unsafe = bool_or("KILN_ALLOW_UNSAFE_URLS", false)?;
        if keys.is_empty() && !allow_unsafe {
            bail!("KILN_SIGNING_KEYS is required (comma-separated; the first signs, all verify)");
        }
        for key in &keys {
            check_secret("KILN_SIGNING_KEYS", &String::from_utf8_lossy(key))?;
        }
        let signature_len = parse_or(
            "KILN_SIGNATURE_SIZE",
            kiln_core::signing::FULL_SIGNATURE_LEN,
        )?;
        if !(kiln_core::signing::MIN_SIGNATURE_LEN..=kiln_core::signing::FULL_SIGNATURE_LEN)
            .contains(&signature_len)
        {
            bail!(
                "KILN_SIGNATURE_SIZE must be between {} and {}",
                kiln_core::signing::MIN_SIGNATURE_LEN,
                kiln_core::signing::FULL_SIGNATURE_LEN
            );
        }
        Ok(Self {
            keys,
            signature_len,
            allow_unsafe,
        })
    }
}

impl FromEnv for CaptchaConfig {
    fn from_env() -> anyhow::Result<Self> {
        let salt = var_opt("KILN_CAPTCHA_SALT")
            .context("KILN_CAPTCHA_SALT must be set (32 bytes or more; up.sh writes one)")?;
        check_secret("KILN_CAPTCHA_SALT", &salt)?;
        let key_mode = match var_or("KILN_CAPTCHA_KEY_MODE", "hmac").as_str() {
            "hmac" => KeyMode::Hmac,
            "md5" => KeyMode::Md5Compat,
            other => bail!("KILN_CAPTCHA_KEY_MODE={other:?}: expected hmac or md5"),
        };
        let config = Self {
            salt: salt.into_bytes(),
            key_mode,
            length: parse_or("KILN_CAPTCHA_LENGTH", 6)?,
            alphabet: var_or(
                "KILN_CAPTCHA_ALPHABET",
                kiln_core::captcha::DEFAULT_ALPHABET,
            )
            .chars()
            .collect(),
            slot_digits: parse_or("KILN_CAPTCHA_POOL_DIGITS", 3)?,
            width: parse_or("KILN_CAPTCHA_WIDTH", 200)?,
            height: parse_or("KILN_CAPTCHA_HEIGHT", 70)?,
            issue_ttl: std::time::Duration::from_secs(parse_or(
                "KILN_CAPTCHA_ISSUE_TTL_SECS",
                300,
            )?),
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholder_and_short_secrets_are_refused() {
        for bad in [
            "CHANGE-ME-at-least-16-bytes-0123456789",
            "changeme0123456789012345678901234567",
            "short-but-real-5f2a",
            &"a".repeat(40),
        ] {
            assert!(check_secret("K", bad).is_err(), "{bad}");
        }
        assert!(check_secret("K", "3b9e1f6c0a4d8e2b7f5c9a1d3e6b8f0a").is_ok());
    }
}
