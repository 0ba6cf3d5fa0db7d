//! Source keys: the object key of an original, as it appears at the end of an
//! image URL. Canonicalised and checked before the signature is checked and
//! before anything is fetched: path tricks are a 400, never a lookup.

use std::fmt;

use percent_encoding::percent_decode_str;

pub const MAX_SOURCE_KEY_BYTES: usize = 1024;

/// A validated object key in the originals bucket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceKey(String);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SourceKeyError {
    #[error("source path is empty")]
    Empty,
    #[error("source path is longer than {MAX_SOURCE_KEY_BYTES} bytes")]
    TooLong,
    #[error("source path contains an encoded slash, backslash or NUL")]
    EncodedSeparator,
    #[error("source path contains an empty segment (//)")]
    EmptySegment,
    #[error("source path contains a '.' or '..' segment")]
    DotSegment,
    #[error("source path is not valid percent-encoded UTF-8")]
    BadEncoding,
    #[error("source path contains a control character or backslash")]
    ForbiddenCharacter,
}

/// Percent-decodes a source as it appears in a URL path (UTF-8), refusing
/// an encoded `/`, `\` or NUL: the decoded text keeps the path's segments.
pub fn decode_url_path(raw: &str) -> Result<String, SourceKeyError> {
    let lower = raw.to_ascii_lowercase();
    if ["%2f", "%5c", "%00"].iter().any(|bad| lower.contains(bad)) {
        return Err(SourceKeyError::EncodedSeparator);
    }
    percent_decode_str(raw)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| SourceKeyError::BadEncoding)
}

impl SourceKey {
    /// Parses the raw (still percent-encoded) source part of a request path.
    pub fn from_url_path(raw: &str) -> Result<Self, SourceKeyError> {
        Self::new(decode_url_path(raw)?)
    }

    /// Validates an already decoded key (e.g. from `kiln upload`).
    pub fn new(key: impl Into<String>) -> Result<Self, SourceKeyError> {
        let key = key.into();
        if key.is_empty() {
            return Err(SourceKeyError::Empty);
        }
        if key.len() > MAX_SOURCE_KEY_BYTES {
            return Err(SourceKeyError::TooLong);
        }
        if key.chars().any(|c| c.is_control() || c == '\\') {
            return Err(SourceKeyError::ForbiddenCharacter);
        }
        for segment in key.split('/') {
            match segment {
                "" => return Err(SourceKeyError::EmptySegment),
                "." | ".." => return Err(SourceKeyError::DotSegment),
                _ => {}
            }
        }
        Ok(Self(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key percent-encoded for a URL path, '/' kept as the separator.
    pub fn to_url_path(&self) -> String {
        const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~');
        self.0
            .split('/')
            .map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string())
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl fmt::Display for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_nested_keys_and_decodes_escapes() {
        let key = SourceKey::from_url_path("photos/2024/summer%20trip.jpg").unwrap();
        assert_eq!(key.as_str(), "photos/2024/summer trip.jpg");
        assert_eq!(key.to_url_path(), "photos/2024/summer%20trip.jpg");
    }

    #[test]
    fn rejects_path_tricks() {
        use SourceKeyError::*;
        let cases = [
            ("", Empty),
            ("../etc/passwd", DotSegment),
            ("a/../../b.jpg", DotSegment),
            ("a/./b.jpg", DotSegment),
            ("%2e%2e/secret.jpg", DotSegment),
            ("a//b.jpg", EmptySegment),
            ("/abs.jpg", EmptySegment),
            ("dir/", EmptySegment),
            ("a%2Fb.jpg", EncodedSeparator),
            ("a%2fb.jpg", EncodedSeparator),
            ("a%5cb.jpg", EncodedSeparator),
            ("a%00.jpg", EncodedSeparator),
            ("a%0a.jpg", ForbiddenCharacter),
            ("a\\b.jpg", ForbiddenCharacter),
            ("%ff%fe.jpg", BadEncoding),
        ];
        for (raw, expected) in cases {
            assert_eq!(SourceKey::from_url_path(raw), Err(expected), "{raw:?}");
        }
        assert_eq!(
            SourceKey::from_url_path(&"a".repeat(1025)),
            Err(SourceKeyError::TooLong)
        );
    }
}
