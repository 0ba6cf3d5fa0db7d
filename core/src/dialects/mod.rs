//! Other services' URL grammars, read into Kiln's own options: thumbor and
//! imagor (`/t/…`), imgproxy (`/p/…`). A dialect URL becomes a
//! [`DialectRequest`] — a source key and canonical [`ImageOptions`] — so the
//! same rendition asked for natively or in any dialect is one cache key and
//! one render. What Kiln cannot honour exactly is refused with a message
//! naming it, never approximated silently.
//!
//! Checks run in the native order: the path's shape and the source (400),
//! the signature (403), the options (400); the api then checks the size
//! limit and the expiry.

use percent_encoding::percent_decode_str;

use crate::options::{Compass, Fraction, Gravity, ImageOptions, Presets};
use crate::source_key::{decode_url_path, SourceKey, SourceKeyError};

pub mod imgproxy;
pub mod signer;
pub mod thumbor;

/// What a dialect URL asks for, in Kiln's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialectRequest {
    pub source: SourceKey,
    pub options: ImageOptions,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DialectError {
    /// The path does not follow the grammar, or names a bad source: 400.
    #[error("{0}")]
    Malformed(String),
    /// Missing, wrong or disabled signature: 403.
    #[error("bad signature")]
    BadSignature,
    /// A well-formed option Kiln cannot render exactly: 400.
    #[error("{0}")]
    Unsupported(String),
}

impl From<SourceKeyError> for DialectError {
    fn from(err: SourceKeyError) -> Self {
        Self::Malformed(err.to_string())
    }
}

fn malformed(message: impl Into<String>) -> DialectError {
    DialectError::Malformed(message.into())
}

fn unsupported(message: impl Into<String>) -> DialectError {
    DialectError::Unsupported(message.into())
}

/// A dialect's image reference as a key in the originals bucket. Both
/// peers also take full URLs; until remote origins are configured, those
/// are refused by name rather than looked up as keys. `originals_bucket`
/// lets imgproxy's `s3://{bucket}/{key}` name Kiln's own bucket.
fn source_key(decoded: &str, originals_bucket: &str) -> Result<SourceKey, DialectError> {
    let lower = decoded.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Err(unsupported(
            "remote http(s) sources are not enabled on this server",
        ));
    }
    if let Some(rest) = decoded.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket != originals_bucket {
            return Err(unsupported(format!("unknown bucket {bucket:?}")));
        }
        return Ok(SourceKey::new(key)?);
    }
    if let Some(key) = decoded.strip_prefix("local:///") {
        return Ok(SourceKey::new(key)?);
    }
    if decoded.contains("://") {
        return Err(unsupported("unknown source scheme"));
    }
    Ok(SourceKey::new(decoded)?)
}

/// Percent-decodes a source path as native source keys are decoded.
fn decode_path(raw: &str) -> Result<String, DialectError> {
    Ok(decode_url_path(raw)?)
}

/// One of Kiln's own tokens, checked by the native option parser, so a
/// dialect's spelling shares its limits and messages (`what` names the
/// dialect's option in an error).
fn native(token: &str, what: &str) -> Result<ImageOptions, DialectError> {
    ImageOptions::parse(&format!("0x0,{token}")).map_err(|e| malformed(format!("{what}: {e}")))
}

/// Whether `verify` accepts `raw` (the path as it came) or its
/// percent-decoded form. Both peers' client libraries sign the path before
/// an HTTP client escapes it (a space in a plain source, say), and both
/// servers check the decoded path. The decoded form only counts when it has
/// the same segments as the raw one, so an escaped slash cannot move a
/// signed boundary.
fn signed_as_sent_or_decoded(raw: &str, verify: impl Fn(&str) -> bool) -> bool {
    if verify(raw) {
        return true;
    }
    if !raw.contains('%') {
        return false;
    }
    match percent_decode_str(raw).decode_utf8() {
        Ok(decoded) if decoded.split('/').count() == raw.split('/').count() => verify(&decoded),
        _ => false,
    }
}

/// A dialect URL's options with its preset references applied. A URL that
/// names presets may add only a cache buster or an expiry (combining them
/// with the dialect's own options is refused, by `what`); in presets-only
/// mode a URL must name presets.
fn with_presets(
    options: ImageOptions,
    names: &[String],
    presets: &Presets,
    what: &str,
) -> Result<ImageOptions, DialectError> {
    let mut bare = options.clone();
    bare.cache_buster = None;
    bare.expires = None;
    let plain = bare == ImageOptions::default();
    if names.is_empty() {
        if presets.only {
            return Err(unsupported("only presets are allowed on this server"));
        }
        return Ok(options);
    }
    if !plain {
        return Err(unsupported(format!(
            "{what} together with other options is not supported"
        )));
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut expanded = presets.options_for(&names).map_err(|e| match e {
        crate::options::OptionsError::UnknownPreset(name) => {
            unsupported(format!("unknown preset {name:?}"))
        }
        other => malformed(other.to_string()),
    })?;
    expanded.cache_buster = options.cache_buster;
    expanded.expires = options.expires;
    Ok(expanded)
}

/// Where gravity points, as fractions of the image (0 = left/top).
fn anchor(gravity: Gravity) -> Option<(f64, f64)> {
    match gravity {
        Gravity::Compass(c) => Some(c.anchor()),
        Gravity::Focal { x, y } => Some((x.get(), y.get())),
        Gravity::Smart => None,
    }
}

/// The gravity that points at `(u, v)`, in the form it came in.
fn gravity_at(like: Gravity, (u, v): (f64, f64)) -> Gravity {
    match like {
        Gravity::Compass(_) => Compass::ALL
            .iter()
            .map(|(c, _)| *c)
            .find(|c| c.anchor() == (u, v))
            .map_or(like, Gravity::Compass),
        Gravity::Focal { .. } => {
            let f = |t: f64| Fraction((t * f64::from(Fraction::SCALE)).round() as u16);
            Gravity::Focal { x: f(u), y: f(v) }
        }
        Gravity::Smart => like,
    }
}

/// Rewrites options a peer applies in the order "place the crop window,
/// resize, flip, then rotate `ccw` degrees counter-clockwise" into Kiln's
/// order (rotate clockwise, flip, then crop and resize): the box turns with
/// the image, the flips trade axes on a quarter turn, and the gravity point
/// is carried through the same flips and rotation.
fn rotate_after_resize(options: &mut ImageOptions, ccw: u16) {
    if let Some(point) = anchor(options.gravity) {
        let (mut u, mut v) = point;
        if options.flip.horizontal {
            u = 1.0 - u;
        }
        if options.flip.vertical {
            v = 1.0 - v;
        }
        let turned = match ccw {
            90 => (v, 1.0 - u),
            180 => (1.0 - u, 1.0 - v),
            270 => (1.0 - v, u),
            _ => (u, v),
        };
        options.gravity = gravity_at(options.gravity, turned);
    }
    if ccw == 90 || ccw == 270 {
        std::mem::swap(&mut options.width, &mut options.height);
        let flip = options.flip;
        options.flip.horizontal = flip.vertical;
        options.flip.vertical = flip.horizontal;
    }
    options.rotate = (360 - ccw) % 360;
}

/// A colour as thumbor and imgproxy write it: `rgb` or `rrggbb` hex, no `#`.
fn hex_colour(text: &str) -> Option<[u8; 3]> {
    let text = text.strip_prefix('#').unwrap_or(text);
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let full: String = match text.len() {
        3 => text.chars().flat_map(|c| [c, c]).collect(),
        6 => text.to_owned(),
        _ => return None,
    };
    let byte = |i: usize| u8::from_str_radix(&full[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_keys_in_the_originals_bucket() {
        let key = |s: &str| source_key(s, "originals").map(|k| k.as_str().to_owned());
        assert_eq!(key("a/b.jpg").unwrap(), "a/b.jpg");
        assert_eq!(key("s3://originals/a/b.jpg").unwrap(), "a/b.jpg");
        assert_eq!(key("local:///a/b.jpg").unwrap(), "a/b.jpg");
        assert!(matches!(
            key("s3://other/a.jpg"),
            Err(DialectError::Unsupported(_))
        ));
        assert!(matches!(
            key("https://e.com/a.jpg"),
            Err(DialectError::Unsupported(_))
        ));
        assert!(matches!(
            key("ftp://e.com/a.jpg"),
            Err(DialectError::Unsupported(_))
        ));
        assert!(matches!(key("a/../b.jpg"), Err(DialectError::Malformed(_))));
        assert!(decode_path("a%2Fb").is_err());
        assert_eq!(decode_path("a%20b").unwrap(), "a b");
    }

    #[test]
    fn dialect_presets_expand_to_the_native_ones() {
        use super::signer::{ImgproxySigning, ThumborSigning};
        let presets = Presets::from_toml("thumb = \"200x200,fill,f:webp\"", false).unwrap();
        let native = ImageOptions::parse_with("preset:thumb", &presets).unwrap();
        let thumbor = ThumborSigning {
            allow_unsafe: true,
            ..ThumborSigning::default()
        };
        let t = thumbor::parse_with(
            "unsafe/filters:preset(thumb)/a.jpg",
            &thumbor,
            "o",
            &presets,
        );
        assert_eq!(t.unwrap().options, native);
        let imgproxy = ImgproxySigning {
            allow_insecure: true,
            signature_size: 32,
            ..ImgproxySigning::default()
        };
        let i = imgproxy::parse_with(
            "insecure/pr:thumb/cb:2/plain/a.jpg",
            &imgproxy,
            "o",
            &presets,
        )
        .unwrap();
        assert_eq!(
            i.options.canonical(),
            format!("{},cb:2", native.canonical())
        );
        let mixed = imgproxy::parse_with(
            "insecure/pr:thumb/w:5/plain/a.jpg",
            &imgproxy,
            "o",
            &presets,
        );
        assert!(matches!(mixed, Err(DialectError::Unsupported(m)) if m.contains("pr")));
        let unknown =
            thumbor::parse_with("unsafe/filters:preset(x)/a.jpg", &thumbor, "o", &presets);
        assert!(matches!(unknown, Err(DialectError::Unsupported(m)) if m.contains("\"x\"")));
        let only = Presets::from_toml("thumb = \"200x200\"", true).unwrap();
        let other = thumbor::parse_with("unsafe/fit-in/10x10/a.jpg", &thumbor, "o", &only);
        assert!(matches!(other, Err(DialectError::Unsupported(m)) if m.contains("only presets")));
    }

    #[test]
    fn signatures_over_the_decoded_path_keep_its_segments() {
        let signed = |p: &str| p == "w:1/plain/a b.jpg";
        assert!(signed_as_sent_or_decoded("w:1/plain/a b.jpg", signed));
        assert!(signed_as_sent_or_decoded("w:1/plain/a%20b.jpg", signed));
        assert!(!signed_as_sent_or_decoded("w:1/plain/a%20c.jpg", signed));
        let signed = |p: &str| p == "w:1/plain/a/b.jpg";
        assert!(!signed_as_sent_or_decoded("w:1/plain/a%2Fb.jpg", signed));
    }

    #[test]
    fn rotation_after_resize_turns_box_flips_and_gravity() {
        let mut o = ImageOptions {
            width: 300,
            height: 100,
            gravity: Gravity::Compass(Compass::West),
            ..ImageOptions::default()
        };
        o.flip.horizontal = true;
        rotate_after_resize(&mut o, 90);
        assert_eq!((o.width, o.height, o.rotate), (100, 300, 270));
        assert!(o.flip.vertical && !o.flip.horizontal);
        // West, mirrored to east by the flip, is north after a quarter turn
        // counter-clockwise.
        assert_eq!(o.gravity, Gravity::Compass(Compass::North));
        let mut focal = ImageOptions {
            gravity: Gravity::Focal {
                x: Fraction(2500),
                y: Fraction(1000),
            },
            ..ImageOptions::default()
        };
        rotate_after_resize(&mut focal, 270);
        assert_eq!(
            focal.gravity,
            Gravity::Focal {
                x: Fraction(9000),
                y: Fraction(2500)
            }
        );
        assert_eq!(focal.rotate, 90);
    }

    #[test]
    fn colours_in_both_peers_spellings() {
        assert_eq!(hex_colour("ff8000"), Some([255, 128, 0]));
        assert_eq!(hex_colour("F80"), Some([255, 136, 0]));
        assert_eq!(hex_colour("#000000"), Some([0, 0, 0]));
        assert_eq!(hex_colour("red"), None);
        assert_eq!(hex_colour("ff800"), None);
    }
}
