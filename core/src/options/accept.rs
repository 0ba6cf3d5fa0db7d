//! `f:auto`: choosing the output format from the client's `Accept` header.
//!
//! Only explicit media types count (`image/avif`, `image/webp`): a browser
//! that sends `*/*` has not said it decodes AVIF. A client that accepts none
//! of the preferred formats gets `f:compat` (JPEG, or PNG for alpha).

use super::{FormatChoice, ImageOptions};
use crate::format::OutputFormat;

/// The formats `f:auto` may choose, best first (`KILN_AUTO_FORMATS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoFormats(pub Vec<OutputFormat>);

impl Default for AutoFormats {
    fn default() -> Self {
        Self(vec![OutputFormat::Avif, OutputFormat::Webp])
    }
}

impl AutoFormats {
    /// Parses `avif,webp`; only formats a browser may not support are allowed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut formats = Vec::new();
        for token in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match OutputFormat::from_token(token) {
                Some(f @ (OutputFormat::Avif | OutputFormat::Webp)) if !formats.contains(&f) => {
                    formats.push(f)
                }
                _ => return Err(format!("{token:?} is not avif or webp, or is listed twice")),
            }
        }
        Ok(Self(formats))
    }
}

/// Whether `accept` lists `media_type` explicitly with a non-zero q.
fn accepts(accept: &str, media_type: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let matches = parts
            .next()
            .is_some_and(|t| t.eq_ignore_ascii_case(media_type));
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        matches && !refused
    })
}

/// The best of `preferred` the client accepts.
pub fn negotiate(accept: &str, preferred: &AutoFormats) -> FormatChoice {
    preferred
        .0
        .iter()
        .find(|f| accepts(accept, f.content_type()))
        .map_or(FormatChoice::Compatible, |f| FormatChoice::Fixed(*f))
}

impl ImageOptions {
    /// Replaces `f:auto` with the negotiated format; other options are untouched.
    pub fn resolve_format(&mut self, accept: &str, preferred: &AutoFormats) {
        if self.format == Some(FormatChoice::Auto) {
            self.format = Some(negotiate(accept, preferred));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
    const OLD_SAFARI: &str =
        "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5";

    #[test]
    fn picks_the_best_accepted_format() {
        let prefs = AutoFormats::default();
        let fixed = FormatChoice::Fixed;
        assert_eq!(negotiate(CHROME, &prefs), fixed(OutputFormat::Avif));
        assert_eq!(negotiate(OLD_SAFARI, &prefs), fixed(OutputFormat::Webp));
        assert_eq!(negotiate("*/*", &prefs), FormatChoice::Compatible);
        assert_eq!(negotiate("", &prefs), FormatChoice::Compatible);
        assert_eq!(
            negotiate("image/avif;q=0, image/webp", &prefs),
            fixed(OutputFormat::Webp)
        );
        assert_eq!(negotiate("IMAGE/AVIF", &prefs), fixed(OutputFormat::Avif));
        let webp_first = AutoFormats::parse("webp,avif").unwrap();
        assert_eq!(negotiate(CHROME, &webp_first), fixed(OutputFormat::Webp));
        let none = AutoFormats::parse("").unwrap();
        assert_eq!(negotiate(CHROME, &none), FormatChoice::Compatible);
    }

    #[test]
    fn resolving_changes_only_auto() {
        let prefs = AutoFormats::default();
        let mut o = ImageOptions::parse("10x10,f:auto").unwrap();
        o.resolve_format(CHROME, &prefs);
        assert_eq!(o.canonical(), "10x10,f:avif");
        let mut o = ImageOptions::parse("10x10,f:auto").unwrap();
        o.resolve_format("text/html", &prefs);
        assert_eq!(o.canonical(), "10x10,f:compat");
        let mut o = ImageOptions::parse("10x10,f:png").unwrap();
        o.resolve_format(CHROME, &prefs);
        assert_eq!(o.canonical(), "10x10,f:png");
    }

    #[test]
    fn auto_format_lists_are_validated() {
        assert!(AutoFormats::parse("avif,jpeg").is_err());
        assert!(AutoFormats::parse("webp,webp").is_err());
        assert_eq!(
            AutoFormats::parse(" webp , avif ").unwrap().0,
            vec![OutputFormat::Webp, OutputFormat::Avif]
        );
    }
}
