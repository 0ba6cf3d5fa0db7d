//! The URL dialects' settings (`KILN_THUMBOR_*`, `KILN_IMGPROXY_*`). A
//! dialect is on when it has a key (or its unsigned mode is enabled).
//! Keys are the ones already in the published URLs, so they are taken as
//! they are: no length rule, which would force re-signing every URL.

use anyhow::{bail, Context as _};
use kiln_core::dialects::signer::{ImgproxyKey, ImgproxySigning, ThumborHash, ThumborSigning};

use crate::config::{bool_or, parse_or, var_opt, var_or};

/// A dialect's mount point and signing settings.
#[derive(Clone, Debug)]
pub struct Dialect<S> {
    /// Path prefix without a trailing slash (`/t`); empty mounts it at the
    /// root, behind every native route.
    pub prefix: String,
    pub signing: S,
}

fn prefix(name: &str, default: &str) -> anyhow::Result<String> {
    // Set but empty means the root, so read the raw value.
    let raw = match std::env::var(name) {
        Ok(v) => v.trim().to_owned(),
        Err(_) => default.to_owned(),
    };
    let prefix = raw.trim_end_matches('/').to_owned();
    if !prefix.is_empty()
        && (!prefix.starts_with('/')
            || prefix[1..]
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == ".."))
    {
        bail!("{name}={raw:?} must be a path such as /t (or empty for the root)");
    }
    Ok(prefix)
}

/// Shortest truncated thumbor signature: 16 base64 characters are 96 bits.
const MIN_TRUNCATE: usize = 16;

/// `KILN_THUMBOR_KEY`, `_SIGNER`, `_SIGNER_TRUNCATE`, `_UNSAFE`, `_PREFIX`.
pub fn thumbor_from_env() -> anyhow::Result<Option<Dialect<ThumborSigning>>> {
    let key = var_opt("KILN_THUMBOR_KEY");
    let allow_unsafe = bool_or("KILN_THUMBOR_UNSAFE", false)?;
    if key.is_none() && !allow_unsafe {
        return Ok(None);
    }
    let signer = var_or("KILN_THUMBOR_SIGNER", "sha1");
    let hash = ThumborHash::parse(&signer).with_context(|| {
        format!("KILN_THUMBOR_SIGNER={signer:?}: expected sha1, sha256 or sha512")
    })?;
    let truncate = parse_or("KILN_THUMBOR_SIGNER_TRUNCATE", 0usize)?;
    if truncate != 0 && truncate < MIN_TRUNCATE {
        bail!(
            "KILN_THUMBOR_SIGNER_TRUNCATE must be 0 (whole signature) or at least {MIN_TRUNCATE}"
        );
    }
    Ok(Some(Dialect {
        prefix: prefix("KILN_THUMBOR_PREFIX", "/t")?,
        signing: ThumborSigning {
            keys: key.into_iter().map(String::into_bytes).collect(),
            hash,
            truncate,
            allow_unsafe,
        },
    }))
}

fn hex_list(name: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    var_opt(name)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| hex::decode(v).with_context(|| format!("{name}: {v:?} is not hex")))
        .collect()
}

/// `KILN_IMGPROXY_KEY` and `_SALT` (hex; comma-separated pairs, the first
/// signs, all verify), `_SIGNATURE_SIZE`, `_INSECURE`, `_PREFIX`.
pub fn imgproxy_from_env() -> anyhow::Result<Option<Dialect<ImgproxySigning>>> {
    let keys = hex_list("KILN_IMGPROXY_KEY")?;
    let salts = hex_list("KILN_IMGPROXY_SALT")?;
    let allow_insecure = bool_or("KILN_IMGPROXY_INSECURE", false)?;
    if keys.len() != salts.len() {
        bail!("KILN_IMGPROXY_KEY and KILN_IMGPROXY_SALT must list as many values each");
    }
    if keys.is_empty() && !allow_insecure {
        return Ok(None);
    }
    let signature_size = parse_or("KILN_IMGPROXY_SIGNATURE_SIZE", 32usize)?;
    if !(1..=32).contains(&signature_size) {
        bail!("KILN_IMGPROXY_SIGNATURE_SIZE must be 1..32 bytes");
    }
    Ok(Some(Dialect {
        prefix: prefix("KILN_IMGPROXY_PREFIX", "/p")?,
        signing: ImgproxySigning {
            keys: keys
                .into_iter()
                .zip(salts)
                .map(|(key, salt)| ImgproxyKey { key, salt })
                .collect(),
            signature_size,
            allow_insecure,
        },
    }))
}

/// Both dialects; either may be off.
#[derive(Clone, Debug, Default)]
pub struct Dialects {
    pub thumbor: Option<Dialect<ThumborSigning>>,
    pub imgproxy: Option<Dialect<ImgproxySigning>>,
}

impl Dialects {
    /// Reads both and refuses two dialects on one prefix.
    pub fn from_env() -> anyhow::Result<Self> {
        let dialects = Self {
            thumbor: thumbor_from_env()?,
            imgproxy: imgproxy_from_env()?,
        };
        if let (Some(t), Some(i)) = (&dialects.thumbor, &dialects.imgproxy) {
            if t.prefix == i.prefix {
                bail!(
                    "KILN_THUMBOR_PREFIX and KILN_IMGPROXY_PREFIX are both {:?}: give each its own",
                    t.prefix
                );
            }
        }
        Ok(dialects)
    }

    /// The enabled dialects' prefixes, with the variable that set each.
    pub fn prefixes(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if let Some(t) = &self.thumbor {
            out.push(("KILN_THUMBOR_PREFIX", t.prefix.as_str()));
        }
        if let Some(i) = &self.imgproxy {
            out.push(("KILN_IMGPROXY_PREFIX", i.prefix.as_str()));
        }
        out
    }
}
