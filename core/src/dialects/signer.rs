//! The peers' URL signatures: thumbor's and imagor's HMAC (SHA-1 by default,
//! SHA-256 or SHA-512 for imagor, base64url with padding, optionally
//! truncated) and imgproxy's HMAC-SHA256 over salt ‖ path (base64url without
//! padding, optionally truncated in bytes). Several keys verify (rotation),
//! each is checked without early exit, and comparisons are constant-time.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;

/// The HMAC hash a thumbor-dialect signature uses (`KILN_THUMBOR_SIGNER`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ThumborHash {
    #[default]
    Sha1,
    Sha256,
    Sha512,
}

impl ThumborHash {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sha1" => Some(Self::Sha1),
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

fn mac<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Signing settings of the thumbor/imagor dialect.
#[derive(Clone, Debug, Default)]
pub struct ThumborSigning {
    pub keys: Vec<Vec<u8>>,
    pub hash: ThumborHash,
    /// Characters kept of the signature; 0 keeps all (imagor's truncate).
    pub truncate: usize,
    pub allow_unsafe: bool,
}

impl ThumborSigning {
    fn signature_with(&self, key: &[u8], path: &str) -> String {
        let digest = match self.hash {
            ThumborHash::Sha1 => mac::<Hmac<sha1::Sha1>>(key, &[path.as_bytes()]),
            ThumborHash::Sha256 => mac::<Hmac<sha2::Sha256>>(key, &[path.as_bytes()]),
            ThumborHash::Sha512 => mac::<Hmac<sha2::Sha512>>(key, &[path.as_bytes()]),
        };
        let mut sig = URL_SAFE.encode(digest);
        if self.truncate > 0 {
            sig.truncate(self.truncate);
        }
        sig
    }

    /// The signature of `path` (everything after the signature segment) with
    /// the first key.
    pub fn sign(&self, path: &str) -> Option<String> {
        self.keys.first().map(|key| self.signature_with(key, path))
    }

    /// Whether `signature` (or `unsafe`, when enabled) covers `path`.
    pub fn verify(&self, signature: &str, path: &str) -> bool {
        if signature == "unsafe" {
            return self.allow_unsafe;
        }
        any_key_matches(&self.keys, signature, |key| self.signature_with(key, path))
    }
}

/// One imgproxy key and its salt (`KILN_IMGPROXY_KEY` / `_SALT`, hex).
#[derive(Clone, Debug)]
pub struct ImgproxyKey {
    pub key: Vec<u8>,
    pub salt: Vec<u8>,
}

/// Signing settings of the imgproxy dialect.
#[derive(Clone, Debug, Default)]
pub struct ImgproxySigning {
    pub keys: Vec<ImgproxyKey>,
    /// Bytes of the digest kept before encoding (1..=32; imgproxy's
    /// `IMGPROXY_SIGNATURE_SIZE`).
    pub signature_size: usize,
    pub allow_insecure: bool,
}

impl ImgproxySigning {
    fn signature_with(&self, pair: &ImgproxyKey, path: &str) -> String {
        let digest = mac::<Hmac<sha2::Sha256>>(&pair.key, &[&pair.salt, path.as_bytes()]);
        let size = self.signature_size.clamp(1, digest.len());
        URL_SAFE_NO_PAD.encode(&digest[..size])
    }

    /// The signature of `path` (`/{options}/{source}`, leading slash
    /// included) with the first pair.
    pub fn sign(&self, path: &str) -> Option<String> {
        self.keys
            .first()
            .map(|pair| self.signature_with(pair, path))
    }

    /// Whether `signature` (or `insecure`, when enabled) covers `path`.
    pub fn verify(&self, signature: &str, path: &str) -> bool {
        if signature == "insecure" {
            return self.allow_insecure;
        }
        any_key_matches(&self.keys, signature, |pair| {
            self.signature_with(pair, path)
        })
    }
}

fn any_key_matches<K>(keys: &[K], given: &str, expected: impl Fn(&K) -> String) -> bool {
    let matched = keys.iter().fold(0u8, |acc, key| {
        acc | expected(key).as_bytes().ct_eq(given.as_bytes()).unwrap_u8()
    });
    matched == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_002s_thumbor_example_verifies() {
        let signing = ThumborSigning {
            keys: vec![b"mysecret".to_vec()],
            ..ThumborSigning::default()
        };
        let path = "500x500/top/raw.githubusercontent.com/cshum/imagor/master/testdata/gopher.png";
        assert_eq!(signing.sign(path).unwrap(), "cST4Ko5_FqwT3BDn-Wf4gO3RFSk=");
        assert!(signing.verify("cST4Ko5_FqwT3BDn-Wf4gO3RFSk=", path));
        assert!(!signing.verify("cST4Ko5_FqwT3BDn-Wf4gO3RFSk=", "500x501/top/x.png"));
        assert!(!signing.verify("unsafe", path), "unsafe is off by default");
    }

    #[test]
    fn imagor_hashes_and_truncation() {
        let mut signing = ThumborSigning {
            keys: vec![b"old".to_vec(), b"mysecret".to_vec()],
            hash: ThumborHash::Sha256,
            truncate: 40,
            allow_unsafe: true,
        };
        let path = "fit-in/100x100/a.png";
        let sig = signing.signature_with(b"mysecret", path);
        assert_eq!(sig.len(), 40);
        assert!(signing.verify(&sig, path), "any configured key verifies");
        assert!(signing.verify("unsafe", path));
        signing.hash = ThumborHash::Sha512;
        assert!(!signing.verify(&sig, path));
        signing.truncate = 0;
        assert_eq!(signing.signature_with(b"k", path).len(), 88);
    }

    #[test]
    fn imgproxys_documented_example_verifies() {
        // imgproxy's docs: key "secret", salt "hello" (hex below).
        let signing = ImgproxySigning {
            keys: vec![ImgproxyKey {
                key: b"secret".to_vec(),
                salt: b"hello".to_vec(),
            }],
            signature_size: 32,
            allow_insecure: false,
        };
        let path =
            "/rs:fill:300:400:0/g:sm/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png";
        let sig = signing.sign(path).unwrap();
        assert_eq!(sig, "oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH8");
        assert!(signing.verify(&sig, path));
        assert!(!signing.verify("insecure", path));
        let short = ImgproxySigning {
            signature_size: 8,
            ..signing.clone()
        };
        assert_eq!(short.sign(path).unwrap(), "oKfUtW34Dvo");
    }
}
