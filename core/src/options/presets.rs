//! Presets: named native option lists from the operator's file
//! (`KILN_PRESETS_FILE`, TOML `name = "800x600,fill,f:webp"`), used as
//! `preset:NAME` in native URLs, `pr:NAME` in imgproxy's and
//! `filters:preset(NAME)` in thumbor's. They are expanded before the
//! canonical form is taken, so a preset and its spelled-out options share
//! one cached object, and a changed definition is a new key. In presets-only
//! mode (`KILN_PRESETS_ONLY`) a URL may name presets and nothing else.

use std::collections::BTreeMap;

use super::ImageOptions;

/// Longest preset name; names are `a-z 0-9 _ -`.
pub const MAX_PRESET_NAME: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Presets {
    lists: BTreeMap<String, String>,
    /// Refuse URLs that use anything but presets.
    pub only: bool,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PRESET_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Presets {
    /// Reads the presets file's text; every list must parse on its own
    /// (no nested presets, no expiry).
    pub fn from_toml(text: &str, only: bool) -> Result<Self, String> {
        let lists: BTreeMap<String, String> =
            toml::from_str(text).map_err(|e| format!("not a table of name = \"options\": {e}"))?;
        for (name, list) in &lists {
            if !valid_name(name) {
                return Err(format!("preset name {name:?} must be 1..64 of a-z 0-9 _ -"));
            }
            if list
                .split(',')
                .any(|t| t.starts_with("preset:") || t.starts_with("exp:"))
            {
                return Err(format!(
                    "preset {name:?}: presets hold neither presets nor exp:"
                ));
            }
            ImageOptions::parse(list).map_err(|e| format!("preset {name:?}: {e}"))?;
        }
        if only && lists.is_empty() {
            return Err("presets-only mode needs at least one preset".into());
        }
        Ok(Self { lists, only })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.lists.get(name).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// `preset:NAME…` expanded and nothing else: what a dialect's preset
    /// reference renders.
    pub fn options_for(&self, names: &[&str]) -> Result<ImageOptions, super::OptionsError> {
        let tokens: Vec<String> = names.iter().map(|n| format!("preset:{n}")).collect();
        ImageOptions::parse_with(&tokens.join(","), self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::OptionsError;

    fn presets(only: bool) -> Presets {
        Presets::from_toml(
            "thumb = \"200x200,fill,f:webp\"\nsharp = \"sharpen:1,q:90\"\n",
            only,
        )
        .unwrap()
    }

    #[test]
    fn a_preset_and_its_spelled_out_options_are_one_rendition() {
        let p = presets(false);
        let named = ImageOptions::parse_with("preset:thumb", &p).unwrap();
        let spelled = ImageOptions::parse("f:webp,200x200,fill").unwrap();
        assert_eq!(named.canonical(), spelled.canonical());
        // The URL's own tokens override a preset's; presets combine.
        let over = ImageOptions::parse_with("preset:thumb,q:50,preset:sharp", &p).unwrap();
        assert_eq!(over.canonical(), "200x200,fill,f:webp,q:50,sharpen:1");
        let changed = Presets::from_toml("thumb = \"200x200,fill,f:avif\"", false).unwrap();
        let after = ImageOptions::parse_with("preset:thumb", &changed).unwrap();
        assert_ne!(
            after.canonical(),
            named.canonical(),
            "a new definition, a new key"
        );
    }

    #[test]
    fn unknown_presets_and_presets_only_mode_are_refused() {
        let p = presets(false);
        assert_eq!(
            ImageOptions::parse_with("preset:nope", &p),
            Err(OptionsError::UnknownPreset("nope".into()))
        );
        assert!(
            ImageOptions::parse("preset:thumb").is_err(),
            "no presets configured"
        );
        let only = presets(true);
        assert!(ImageOptions::parse_with("preset:thumb,exp:4000000000", &only).is_ok());
        assert_eq!(
            ImageOptions::parse_with("preset:thumb,q:50", &only),
            Err(OptionsError::PresetsOnly("q:50".into()))
        );
        assert!(matches!(
            ImageOptions::parse_with("300x200", &only),
            Err(OptionsError::PresetsOnly(_))
        ));
    }

    #[test]
    fn the_file_is_checked_when_it_is_read() {
        for bad in [
            "thumb = 3",
            "Thumb = \"10x10\"",
            "thumb = \"10x10,bogus\"",
            "thumb = \"preset:other\"",
            "thumb = \"10x10,exp:1\"",
            "not toml",
        ] {
            assert!(Presets::from_toml(bad, false).is_err(), "{bad}");
        }
        assert!(Presets::from_toml("", true).is_err());
        assert!(Presets::from_toml("", false).unwrap().is_empty());
    }
}
