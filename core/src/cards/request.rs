//! Checks a card request's id and parameters against its template. Anything
//! that does not match is [`Invalid`]: the api answers the template's default
//! image, never the input back.

use std::collections::BTreeMap;

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

use super::manifest::ParamKind;
use super::registry::CardTemplate;
use super::CARD_RENDERER_VERSION;
use crate::cache_key::rendition_key;
use crate::format::OutputFormat;
use crate::source_key::SourceKey;

const LONGEST_ID: usize = 256;

/// A valid card request: everything that determines the card's pixels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardSpec {
    pub template: String,
    pub id: String,
    /// Declared parameters only, decoded.
    pub params: BTreeMap<String, String>,
    pub format: OutputFormat,
}

/// Why a request gets the default image (a bounded metric label each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("unknown template")]
    UnknownTemplate,
    #[error("unsupported format")]
    Format,
    #[error("invalid id")]
    Id,
    #[error("invalid parameter")]
    Param,
    #[error("undeclared parameter")]
    UnknownParam,
    #[error("missing parameter")]
    MissingParam,
}

impl Invalid {
    pub fn label(self) -> &'static str {
        match self {
            Self::UnknownTemplate => "template",
            Self::Format => "format",
            Self::Id => "id",
            Self::Param => "param",
            Self::UnknownParam => "unknown_param",
            Self::MissingParam => "missing_param",
        }
    }
}

/// Card formats: the `{id}.{ext}` extension.
pub fn card_format(ext: &str) -> Result<OutputFormat, Invalid> {
    match ext {
        "jpg" | "jpeg" => Ok(OutputFormat::Jpeg),
        "png" => Ok(OutputFormat::Png),
        "webp" => Ok(OutputFormat::Webp),
        _ => Err(Invalid::Format),
    }
}

fn decode(raw: &str) -> Result<String, Invalid> {
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Invalid::Param)
}

impl CardSpec {
    /// Validates `{id}.{ext}` (still percent-encoded) and, for signed URLs,
    /// the raw query. Public URLs pass `None`: they take no parameters.
    pub fn check(
        template: &CardTemplate,
        id_and_ext: &str,
        query: Option<&str>,
    ) -> Result<Self, Invalid> {
        let (raw_id, ext) = id_and_ext.rsplit_once('.').ok_or(Invalid::Format)?;
        let format = card_format(ext)?;
        let id = percent_decode_str(raw_id)
            .decode_utf8()
            .map_err(|_| Invalid::Id)?;
        if id.is_empty() || id.len() > LONGEST_ID || !template.manifest.id.is_match(&id) {
            return Err(Invalid::Id);
        }
        let mut params = BTreeMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, value) = (decode(k)?, decode(v)?);
            let spec = template
                .manifest
                .params
                .get(&name)
                .ok_or(Invalid::UnknownParam)?;
            let valid = value.chars().count() <= spec.max_len
                && !value.chars().any(char::is_control)
                && spec.pattern.as_ref().is_none_or(|p| p.is_match(&value))
                && (spec.kind != ParamKind::Original || SourceKey::new(value.as_str()).is_ok());
            if !valid || params.insert(name, value).is_some() {
                return Err(Invalid::Param);
            }
        }
        if template
            .manifest
            .params
            .iter()
            .any(|(name, spec)| spec.required && !params.contains_key(name))
        {
            return Err(Invalid::MissingParam);
        }
        Ok(Self {
            template: template.name.clone(),
            id: id.into_owned(),
            params,
            format,
        })
    }

    /// One string per distinct card: `{id}.{ext}?k=v&…`, sorted, encoded.
    pub fn canonical(&self) -> String {
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let mut out = format!("{}.{}", enc(&self.id), self.format.token());
        for (i, (k, v)) in self.params.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(&format!("{}={}", enc(k), enc(v)));
        }
        out
    }

    /// The rendition key: renderer version, canonical request, template name
    /// and the template's content hash.
    pub fn cache_key(&self, template_hash: &str) -> String {
        rendition_key(
            CARD_RENDERER_VERSION,
            &self.canonical(),
            &format!("card:{}", self.template),
            template_hash,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::cards::{Asset, Manifest};

    fn template() -> CardTemplate {
        let manifest = Manifest::parse(
            r#"
            id = '(?P<a>\d{1,3})-(?P<b>\d{1,3})'
            default_image = "d.png"
            [params.title]
            max_len = 8
            required = true
            [params.tone]
            pattern = 'dark|light'
            max_len = 5
            [params.avatar]
            kind = "original"
            max_len = 64
            "#,
        )
        .unwrap();
        CardTemplate {
            name: "t".into(),
            manifest,
            html: String::new(),
            assets: HashMap::new(),
            hash: "h".into(),
            default_image: Asset {
                bytes: Default::default(),
                content_type: "image/png",
            },
        }
    }

    #[test]
    fn accepts_declared_parameters_and_canonicalises_them() {
        let t = template();
        let a = CardSpec::check(&t, "12-34.jpg", Some("tone=dark&title=Hi+%3Cb%3E")).unwrap();
        assert_eq!(a.params["title"], "Hi <b>");
        let b = CardSpec::check(&t, "12-34.jpeg", Some("title=Hi%20%3Cb%3E&tone=dark")).unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.cache_key("h1"), b.cache_key("h1"));
        assert_ne!(
            a.cache_key("h1"),
            a.cache_key("h2"),
            "template edits change the key"
        );
        let png = CardSpec::check(&t, "12-34.png", Some("title=Hi")).unwrap();
        assert_ne!(png.cache_key("h1"), a.cache_key("h1"));
    }

    #[test]
    fn refuses_what_the_manifest_does_not_allow() {
        let t = template();
        let check = |id: &str, q: &str| CardSpec::check(&t, id, Some(q)).unwrap_err();
        assert_eq!(check("12-34.gif", "title=a"), Invalid::Format);
        assert_eq!(check("1234-1.jpg", "title=a"), Invalid::Id);
        assert_eq!(check("12-34<script>.jpg", "title=a"), Invalid::Id);
        assert_eq!(check("12-34.jpg", "title=far+too+long"), Invalid::Param);
        assert_eq!(check("12-34.jpg", "title=a&tone=neon"), Invalid::Param);
        assert_eq!(check("12-34.jpg", "title=a&title=b"), Invalid::Param);
        assert_eq!(check("12-34.jpg", "title=a%0A"), Invalid::Param);
        assert_eq!(
            check("12-34.jpg", "title=a&avatar=..%2Fetc"),
            Invalid::Param
        );
        assert_eq!(check("12-34.jpg", "title=a&x=1"), Invalid::UnknownParam);
        assert_eq!(check("12-34.jpg", "tone=dark"), Invalid::MissingParam);
        assert_eq!(
            CardSpec::check(&t, "12-34.jpg", None).unwrap_err(),
            Invalid::MissingParam
        );
    }
}
