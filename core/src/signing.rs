//! Native URL signatures: `base64url_nopad(HMAC-SHA256(key, "{options}/{source}"))`,
//! optionally truncated. Several keys may be configured for rotation: the first
//! signs, any verifies. Comparison is constant-time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Signing settings for native `/img/` URLs (read from `KILN_SIGNING_KEYS`,
/// `KILN_SIGNATURE_SIZE`, `KILN_ALLOW_UNSAFE_URLS` by `kiln-infra`).
#[derive(Clone, Debug)]
pub struct SigningConfig {
    pub keys: Vec<Vec<u8>>,
    pub signature_len: usize,
    pub allow_unsafe: bool,
}

/// Length of an untruncated signature (32 bytes in base64url without padding).
pub const FULL_SIGNATURE_LEN: usize = 43;
/// Shortest truncation allowed: 16 characters are 96 bits.
pub const MIN_SIGNATURE_LEN: usize = 16;

/// Signature for `payload` (the URL path after the signature segment).
pub fn sign(key: &[u8], payload: &str, len: usize) -> String {
    let mut sig = URL_SAFE_NO_PAD.encode(hmac_sha256(key, payload.as_bytes()));
    sig.truncate(len.clamp(MIN_SIGNATURE_LEN, FULL_SIGNATURE_LEN));
    sig
}

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// What a card URL's signature covers: `card:{template}/{id}.{ext}[?query]`.
/// The prefix keeps card and image signatures apart: an image payload
/// starts with its option list, which never begins with `card:`.
pub fn card_payload(signed_path: &str, query: Option<&str>) -> String {
    match query {
        Some(q) if !q.is_empty() => format!("{CARD_DOMAIN}{signed_path}?{q}"),
        _ => format!("{CARD_DOMAIN}{signed_path}"),
    }
}

/// The domain prefix of card signatures.
pub const CARD_DOMAIN: &str = "card:";

/// How a request's signature segment was judged.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    /// The literal `unsafe` segment, accepted because the operator enabled it.
    UnsafeAllowed,
    Invalid,
}

impl SigningConfig {
    /// Signs with the first configured key.
    pub fn sign(&self, payload: &str) -> Option<String> {
        self.keys
            .first()
            .map(|key| sign(key, payload, self.signature_len))
    }

    pub fn verify(&self, signature: &str, payload: &str) -> Verdict {
        if signature == "unsafe" {
            return if self.allow_unsafe {
                Verdict::UnsafeAllowed
            } else {
                Verdict::Invalid
            };
        }
        if signature.len() != self.signature_len {
            return Verdict::Invalid;
        }
        // Check every key (no early exit) so timing does not reveal which matched.
        let matched = self.keys.iter().fold(0u8, |acc, key| {
            let expected = sign(key, payload, self.signature_len);
            acc | expected.as_bytes().ct_eq(signature.as_bytes()).unwrap_u8()
        });
        if matched == 1 {
            Verdict::Valid
        } else {
            Verdict::Invalid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(keys: &[&str], len: usize) -> SigningConfig {
        SigningConfig {
            keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            signature_len: len,
            allow_unsafe: false,
        }
    }

    #[test]
    fn matches_an_independent_hmac_sha256_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            sign(b"Jefe", "what do ya want for nothing?", FULL_SIGNATURE_LEN),
            "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM"
        );
    }

    #[test]
    fn verifies_with_any_rotated_key_and_rejects_others() {
        let old = config(&["old-key-0123456789"], 43);
        let rotated = config(&["new-key-0123456789", "old-key-0123456789"], 43);
        let sig_by_old = old.sign("800x600/a.jpg").unwrap();
        assert_eq!(rotated.verify(&sig_by_old, "800x600/a.jpg"), Verdict::Valid);
        assert_eq!(
            rotated.verify(&sig_by_old, "800x601/a.jpg"),
            Verdict::Invalid
        );
        let stranger = config(&["someone-else-0123456"], 43);
        let forged = stranger.sign("800x600/a.jpg").unwrap();
        assert_eq!(rotated.verify(&forged, "800x600/a.jpg"), Verdict::Invalid);
    }

    #[test]
    fn truncated_signatures_must_have_the_configured_length() {
        let cfg = config(&["key-0123456789abcdef"], 16);
        let sig = cfg.sign("fit/a.png").unwrap();
        assert_eq!(sig.len(), 16);
        assert_eq!(cfg.verify(&sig, "fit/a.png"), Verdict::Valid);
        assert_eq!(cfg.verify(&sig[..15], "fit/a.png"), Verdict::Invalid);
        let full = sign(b"key-0123456789abcdef", "fit/a.png", 43);
        assert_eq!(cfg.verify(&full, "fit/a.png"), Verdict::Invalid);
    }

    #[test]
    fn card_and_image_signatures_cover_different_payloads() {
        let cfg = config(&["key-0123456789abcdef"], 43);
        // A template named like an option list, an id like a source.
        let card = card_payload("300x200/cat.jpg", None);
        assert_eq!(card, "card:300x200/cat.jpg");
        let card_sig = cfg.sign(&card).unwrap();
        assert_eq!(cfg.verify(&card_sig, "300x200/cat.jpg"), Verdict::Invalid);
        assert_eq!(card_payload("a/b.png", Some("t=1")), "card:a/b.png?t=1");
        assert_eq!(card_payload("a/b.png", Some("")), "card:a/b.png");
    }

    #[test]
    fn unsafe_segment_only_when_enabled() {
        let mut cfg = config(&["key-0123456789abcdef"], 43);
        assert_eq!(cfg.verify("unsafe", "x/a.png"), Verdict::Invalid);
        cfg.allow_unsafe = true;
        assert_eq!(cfg.verify("unsafe", "x/a.png"), Verdict::UnsafeAllowed);
    }
}
