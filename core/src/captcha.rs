//! Captcha codes and keys, shared by the api (verification) and the worker
//! (generation).
//!
//! `key = base64url(HMAC-SHA256(salt, code ‖ slot))` by default; the seed's
//! nginx scheme, `base64url(md5(salt + code + slot))`, as a compatibility mode
//! (`KILN_CAPTCHA_KEY_MODE=md5`). The salt lives only in the server's
//! configuration. Codes are normalised (case, spaces) before hashing, and keys
//! are compared in constant time.

use anyhow::bail;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use md5::{Digest as _, Md5};
use rand::rngs::SysRng;
use rand::TryRng as _;
use subtle::ConstantTimeEq as _;

/// Letters and digits that stay distinct when rotated, warped and crossed by
/// noise: no 0/O/D/Q, 1/I/L/7, 2/Z, 5/S, 8/B, 6/G, U/V, C.
pub const DEFAULT_ALPHABET: &str = "AEFHJKMNPRTWXY349";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMode {
    Hmac,
    /// The seed's `md5(salt + code + slot)`, base64url without padding.
    Md5Compat,
}

#[derive(Clone)]
pub struct CaptchaConfig {
    pub salt: Vec<u8>,
    pub key_mode: KeyMode,
    pub length: usize,
    pub alphabet: Vec<char>,
    /// The pool holds 16^`slot_digits` slots, named by that many hex digits.
    pub slot_digits: u32,
    pub width: u32,
    pub height: u32,
    /// How long an issued captcha may be answered by the client it was
    /// issued to (`KILN_CAPTCHA_ISSUE_TTL_SECS`, 300) before its slot is
    /// ready for another client.
    pub issue_ttl: std::time::Duration,
}

impl std::fmt::Debug for CaptchaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptchaConfig")
            .field("salt", &"<redacted>")
            .field("key_mode", &self.key_mode)
            .field("length", &self.length)
            .field("slot_digits", &self.slot_digits)
            .finish_non_exhaustive()
    }
}

/// Hex characters of a lease token (128 random bits).
pub const LEASE_LEN: usize = 32;

/// A fresh lease token from the OS CSPRNG.
pub fn new_lease() -> String {
    let mut raw = [0u8; LEASE_LEN / 2];
    rand::fill(&mut raw);
    hex::encode(raw)
}

impl CaptchaConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.salt.len() < 16 {
            bail!("KILN_CAPTCHA_SALT must be at least 16 bytes");
        }
        if !(4..=10).contains(&self.length) {
            bail!("KILN_CAPTCHA_LENGTH must be 4..=10");
        }
        let mut seen = std::collections::HashSet::new();
        if self.alphabet.len() < 10
            || !self
                .alphabet
                .iter()
                .all(|c| (c.is_ascii_uppercase() || c.is_ascii_digit()) && seen.insert(*c))
        {
            bail!("KILN_CAPTCHA_ALPHABET must be 10 or more distinct A-Z / 0-9 characters");
        }
        if !(1..=5).contains(&self.slot_digits) {
            bail!("KILN_CAPTCHA_POOL_DIGITS must be 1..=5 (16 to 1 048 576 slots)");
        }
        if !(10..=86_400).contains(&self.issue_ttl.as_secs()) {
            bail!("KILN_CAPTCHA_ISSUE_TTL_SECS must be 10..=86400");
        }
        if !(80..=600).contains(&self.width) || !(30..=200).contains(&self.height) {
            bail!("KILN_CAPTCHA_WIDTH must be 80..=600 and KILN_CAPTCHA_HEIGHT 30..=200");
        }
        Ok(())
    }

    pub fn slots(&self) -> u32 {
        16u32.pow(self.slot_digits)
    }

    /// The slot name: `index` as `slot_digits` lowercase hex digits.
    pub fn slot_name(&self, index: u32) -> String {
        format!("{index:0width$x}", width = self.slot_digits as usize)
    }

    /// What a client gets as its captcha's `slot`: the pool slot and the
    /// lease it was issued under.
    pub fn issued_slot(slot: &str, lease: &str) -> String {
        format!("{slot}-{lease}")
    }

    /// The pool slot and lease of an issued slot string, if it is one.
    pub fn parse_issued<'a>(&self, issued: &'a str) -> Option<(&'a str, &'a str)> {
        let (slot, lease) = issued.split_once('-')?;
        let lease_ok = lease.len() == LEASE_LEN
            && lease
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        (self.is_slot(slot) && lease_ok).then_some((slot, lease))
    }

    pub fn is_slot(&self, slot: &str) -> bool {
        slot.len() == self.slot_digits as usize
            && slot
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// A fresh code from the OS CSPRNG, uniform over the alphabet.
    pub fn random_code(&self) -> anyhow::Result<String> {
        let k = self.alphabet.len();
        // Rejection sampling: bytes at or above the largest multiple of k
        // would favour the first letters.
        let limit = 256 - 256 % k;
        let mut code = String::with_capacity(self.length);
        let mut buf = [0u8; 32];
        while code.len() < self.length {
            SysRng
                .try_fill_bytes(&mut buf)
                .map_err(|e| anyhow::anyhow!("OS random source: {e}"))?;
            for b in buf {
                if (b as usize) < limit && code.len() < self.length {
                    code.push(self.alphabet[b as usize % k]);
                }
            }
        }
        Ok(code)
    }

    /// The key a client carries for `code` shown in `slot`.
    pub fn key(&self, code: &str, slot: &str) -> String {
        let code = normalise(code);
        match self.key_mode {
            KeyMode::Hmac => {
                let mut mac =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.salt).expect("any key length");
                mac.update(code.as_bytes());
                mac.update(slot.as_bytes());
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            }
            KeyMode::Md5Compat => {
                let mut md5 = Md5::new();
                md5.update(&self.salt);
                md5.update(code.as_bytes());
                md5.update(slot.as_bytes());
                URL_SAFE_NO_PAD.encode(md5.finalize())
            }
        }
    }

    /// Whether `code` answers the captcha `key` issued for `slot`.
    pub fn matches(&self, code: &str, slot: &str, key: &str) -> bool {
        let expected = self.key(code, slot);
        expected.as_bytes().ct_eq(key.as_bytes()).into()
    }
}

/// Upper case, spaces and other whitespace removed: `" a3 k9 "` → `"A3K9"`.
pub fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: KeyMode) -> CaptchaConfig {
        CaptchaConfig {
            salt: b"0123456789abcdef-salt".to_vec(),
            key_mode: mode,
            length: 6,
            alphabet: DEFAULT_ALPHABET.chars().collect(),
            slot_digits: 3,
            width: 200,
            height: 70,
            issue_ttl: std::time::Duration::from_secs(300),
        }
    }

    #[test]
    fn issued_slots_carry_their_lease() {
        let c = config(KeyMode::Hmac);
        let lease = new_lease();
        let issued = CaptchaConfig::issued_slot("0a1", &lease);
        assert_eq!(c.parse_issued(&issued), Some(("0a1", lease.as_str())));
        assert_ne!(new_lease(), lease);
        for bad in [
            "0a1",
            "0a1-",
            "0a1-xyz",
            "zzz-00000000000000000000000000000000",
            "0a1-0000",
        ] {
            assert_eq!(c.parse_issued(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_bind_code_and_slot_and_ignore_case_and_spaces() {
        let c = config(KeyMode::Hmac);
        let key = c.key("AE3F4K", "0a1");
        assert!(c.matches(" ae3 f4k ", "0a1", &key));
        assert!(!c.matches("AE3F4X", "0a1", &key), "another code");
        assert!(!c.matches("AE3F4K", "0a2", &key), "another slot");
        assert_eq!(key.len(), 43);
    }

    #[test]
    fn md5_mode_is_the_seeds_nginx_formula() {
        let c = config(KeyMode::Md5Compat);
        // echo -n '0123456789abcdef-saltAE3F4K0a1' | openssl md5 -binary | base64 | tr +/ -_ | tr -d =
        let mut md5 = Md5::new();
        md5.update(b"0123456789abcdef-saltAE3F4K0a1");
        assert_eq!(
            c.key("ae3f4k", "0a1"),
            URL_SAFE_NO_PAD.encode(md5.finalize())
        );
        assert_eq!(c.key("ae3f4k", "0a1").len(), 22);
    }

    #[test]
    fn codes_are_uniform_over_the_alphabet() {
        let c = config(KeyMode::Hmac);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..2000 {
            let code = c.random_code().unwrap();
            assert_eq!(code.len(), 6);
            for ch in code.chars() {
                *counts.entry(ch).or_insert(0u32) += 1;
            }
        }
        assert_eq!(counts.len(), DEFAULT_ALPHABET.len(), "every letter appears");
        let expected = 12_000.0 / DEFAULT_ALPHABET.len() as f64;
        for (ch, n) in counts {
            assert!(
                (f64::from(n) - expected).abs() < expected * 0.25,
                "{ch}: {n}"
            );
        }
    }

    #[test]
    fn slots_are_fixed_width_hex() {
        let c = config(KeyMode::Hmac);
        assert_eq!(c.slots(), 4096);
        assert_eq!(c.slot_name(10), "00a");
        assert!(c.is_slot("fff") && !c.is_slot("FFF") && !c.is_slot("0ff0") && !c.is_slot("g00"));
    }

    #[test]
    fn weak_settings_are_refused() {
        let mut c = config(KeyMode::Hmac);
        c.salt = b"short".to_vec();
        assert!(c.validate().is_err());
        let mut c = config(KeyMode::Hmac);
        c.alphabet = "AABCDEFGHJ".chars().collect();
        assert!(c.validate().is_err(), "duplicate letters");
        let mut c = config(KeyMode::Hmac);
        c.slot_digits = 7;
        assert!(c.validate().is_err());
    }
}
