//! `manifest.toml`: a template's size, id pattern, declared parameters and
//! default image, checked when templates are loaded.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use regex_lite::Regex;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default = "default_width")]
    width: u32,
    #[serde(default = "default_height")]
    height: u32,
    #[serde(default = "default_scale")]
    device_scale_factor: f64,
    /// Ids are public: the unsigned `/card/{template}/{id}.{ext}` form works
    /// (and takes no parameters).
    #[serde(default)]
    public: bool,
    id: String,
    default_image: String,
    #[serde(default)]
    scripts: bool,
    #[serde(default)]
    params: BTreeMap<String, RawParam>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParam {
    #[serde(default)]
    pattern: Option<String>,
    max_len: usize,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    kind: ParamKind,
}

fn default_width() -> u32 {
    1200
}
fn default_height() -> u32 {
    630
}
fn default_scale() -> f64 {
    1.0
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    /// Free text, HTML-escaped by the template engine.
    #[default]
    Text,
    /// A key in the originals bucket: the page may load that one object.
    Original,
}

#[derive(Debug)]
pub struct ParamSpec {
    pub pattern: Option<Regex>,
    pub max_len: usize,
    pub required: bool,
    pub kind: ParamKind,
}

#[derive(Debug)]
pub struct Manifest {
    pub width: u32,
    pub height: u32,
    pub device_scale_factor: f64,
    pub public: bool,
    /// Anchored id pattern; its named groups become template variables.
    pub id: Regex,
    pub default_image: String,
    pub scripts: bool,
    pub params: BTreeMap<String, ParamSpec>,
}

/// Anchors a pattern so it must match the whole value.
fn anchored(pattern: &str) -> anyhow::Result<Regex> {
    Regex::new(&format!("^(?:{pattern})$")).with_context(|| format!("invalid pattern {pattern:?}"))
}

impl Manifest {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let raw: RawManifest = toml::from_str(text).context("manifest.toml")?;
        if !(16..=4096).contains(&raw.width) || !(16..=4096).contains(&raw.height) {
            bail!("width and height must be between 16 and 4096");
        }
        if !(0.5..=4.0).contains(&raw.device_scale_factor) {
            bail!("device_scale_factor must be between 0.5 and 4");
        }
        let mut params = BTreeMap::new();
        for (name, p) in raw.params {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                bail!("parameter name {name:?} must be ASCII letters, digits or _");
            }
            if p.max_len == 0 || p.max_len > 2048 {
                bail!("parameter {name}: max_len must be 1..=2048");
            }
            let pattern = p.pattern.as_deref().map(anchored).transpose()?;
            params.insert(
                name,
                ParamSpec {
                    pattern,
                    max_len: p.max_len,
                    required: p.required,
                    kind: p.kind,
                },
            );
        }
        Ok(Self {
            width: raw.width,
            height: raw.height,
            device_scale_factor: raw.device_scale_factor,
            public: raw.public,
            id: anchored(&raw.id)?,
            default_image: raw.default_image,
            scripts: raw.scripts,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_defaults_and_anchors_patterns() {
        let m = Manifest::parse(
            r#"
            id = '\d+'
            default_image = "default.png"
            [params.title]
            max_len = 10
            required = true
            "#,
        )
        .unwrap();
        assert_eq!(
            (m.width, m.height, m.public, m.scripts),
            (1200, 630, false, false)
        );
        assert!(m.id.is_match("123"));
        assert!(!m.id.is_match("12a"), "patterns match the whole id");
        assert!(m.params["title"].required);
    }

    #[test]
    fn refuses_unknown_keys_and_bad_sizes() {
        assert!(Manifest::parse("id='x'\ndefault_image='d.png'\ncolour='red'").is_err());
        assert!(Manifest::parse("id='x'\ndefault_image='d.png'\nwidth=5").is_err());
        assert!(Manifest::parse("id='('\ndefault_image='d.png'").is_err());
    }
}
