//! Image options: the comma-separated `{options}` segment of `/img/` URLs.
//!
//! Parsing produces [`ImageOptions`]; [`ImageOptions::canonical`] writes them
//! back in one fixed order with defaults dropped, so equivalent lists
//! (`800x600,f:webp` and `f:webp,800x600`) share one cache key. The canonical
//! form parses back to the same options; it is what jobs carry to workers.

use crate::format::OutputFormat;

/// Largest width or height a URL may ask for, before the configured output limit.
pub const MAX_DIMENSION: u32 = 65_535;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ResizeMode {
    /// Inside the box, aspect ratio kept, never upscaled.
    #[default]
    Fit,
    /// Cover the box, then crop the overflow around the centre to exactly W×H.
    Fill,
}

/// A crop in source pixels, applied before resizing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CropRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ImageOptions {
    /// Target box in pixels; 0 derives the side from the aspect ratio (both 0: original size).
    pub width: u32,
    pub height: u32,
    pub mode: ResizeMode,
    pub crop: Option<CropRect>,
    /// `None` keeps the source's format.
    pub format: Option<OutputFormat>,
    pub quality: Option<u8>,
    /// URL expiry (UNIX seconds). Not part of the canonical form: it decides
    /// whether a URL is valid, not what is rendered.
    pub expires: Option<i64>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error(
        "options are empty; give at least a size such as 800x600 (0x0 keeps the original size)"
    )]
    Empty,
    #[error("unknown option token {0:?}")]
    UnknownToken(String),
    #[error("invalid option token {token:?}: {reason}")]
    Invalid { token: String, reason: &'static str },
    #[error("option {0:?} is given twice or conflicts with another token")]
    Conflict(String),
}

fn invalid(token: &str, reason: &'static str) -> OptionsError {
    OptionsError::Invalid {
        token: token.to_owned(),
        reason,
    }
}

fn number<T: std::str::FromStr>(
    token: &str,
    text: &str,
    reason: &'static str,
) -> Result<T, OptionsError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(token, reason));
    }
    text.parse().map_err(|_| invalid(token, reason))
}

impl ImageOptions {
    pub fn parse(segment: &str) -> Result<Self, OptionsError> {
        if segment.is_empty() {
            return Err(OptionsError::Empty);
        }
        let mut opts = Self::default();
        let mut seen_size = false;
        let mut seen_mode = false;
        for token in segment.split(',') {
            let (name, value) = token.split_once(':').unwrap_or((token, ""));
            let duplicate = match name {
                "fit" | "fill" if value.is_empty() => {
                    let dup = seen_mode;
                    seen_mode = true;
                    opts.mode = if name == "fit" {
                        ResizeMode::Fit
                    } else {
                        ResizeMode::Fill
                    };
                    dup
                }
                "crop" => {
                    let fields: Vec<&str> = value.split(':').collect();
                    let [x, y, w, h] = fields[..] else {
                        return Err(invalid(token, "expected crop:X:Y:W:H"));
                    };
                    let reason = "crop values must be whole numbers of source pixels";
                    let rect = CropRect {
                        x: number(token, x, reason)?,
                        y: number(token, y, reason)?,
                        width: number(token, w, reason)?,
                        height: number(token, h, reason)?,
                    };
                    if rect.width == 0 || rect.height == 0 {
                        return Err(invalid(token, "crop width and height must be positive"));
                    }
                    opts.crop.replace(rect).is_some()
                }
                "f" => {
                    let format = OutputFormat::from_token(value)
                        .ok_or_else(|| invalid(token, "format must be jpeg, png or webp"))?;
                    opts.format.replace(format).is_some()
                }
                "q" => {
                    let q: u8 = number(token, value, "quality must be 1..100")?;
                    if !(1..=100).contains(&q) {
                        return Err(invalid(token, "quality must be 1..100"));
                    }
                    opts.quality.replace(q).is_some()
                }
                "exp" => {
                    let exp: i64 = number(token, value, "expiry must be UNIX seconds")?;
                    opts.expires.replace(exp).is_some()
                }
                _ if value.is_empty() && token.contains('x') => {
                    let (w, h) = token.split_once('x').unwrap_or_default();
                    let reason =
                        "size must be WxH with whole numbers (0 derives from the aspect ratio)";
                    let (w, h): (u32, u32) = (number(token, w, reason)?, number(token, h, reason)?);
                    if w > MAX_DIMENSION || h > MAX_DIMENSION {
                        return Err(invalid(token, "size is larger than 65535"));
                    }
                    let dup = seen_size;
                    seen_size = true;
                    (opts.width, opts.height) = (w, h);
                    dup
                }
                _ => return Err(OptionsError::UnknownToken(token.to_owned())),
            };
            if duplicate {
                return Err(OptionsError::Conflict(token.to_owned()));
            }
        }
        if opts.mode == ResizeMode::Fill && (opts.width == 0 || opts.height == 0) {
            return Err(invalid("fill", "fill needs both a width and a height"));
        }
        Ok(opts)
    }

    /// The canonical token list: fixed order, defaults omitted, no expiry.
    pub fn canonical(&self) -> String {
        let mut tokens = vec![format!("{}x{}", self.width, self.height)];
        if self.mode == ResizeMode::Fill {
            tokens.push("fill".into());
        }
        if let Some(c) = self.crop {
            tokens.push(format!("crop:{}:{}:{}:{}", c.x, c.y, c.width, c.height));
        }
        if let Some(f) = self.format {
            tokens.push(format!("f:{}", f.token()));
        }
        // Quality means nothing to PNG; dropping it keeps equivalent URLs together.
        if let (Some(q), false) = (self.quality, self.format == Some(OutputFormat::Png)) {
            tokens.push(format!("q:{q}"));
        }
        tokens.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_token() {
        let o = ImageOptions::parse("800x600,fill,crop:10:20:300:400,f:webp,q:75,exp:1700000000")
            .unwrap();
        assert_eq!((o.width, o.height), (800, 600));
        assert_eq!(o.mode, ResizeMode::Fill);
        assert_eq!(
            o.crop,
            Some(CropRect {
                x: 10,
                y: 20,
                width: 300,
                height: 400
            })
        );
        assert_eq!(o.format, Some(OutputFormat::Webp));
        assert_eq!(o.quality, Some(75));
        assert_eq!(o.expires, Some(1_700_000_000));
    }

    #[test]
    fn equivalent_lists_share_one_canonical_form() {
        let forms = [
            "800x600,f:webp",
            "f:webp,800x600",
            "fit,f:webp,800x600",
            "800x600,fit,f:webp,exp:99",
        ];
        let canon: Vec<String> = forms
            .iter()
            .map(|f| ImageOptions::parse(f).unwrap().canonical())
            .collect();
        assert!(canon.iter().all(|c| c == "800x600,f:webp"), "{canon:?}");
        assert_eq!(
            ImageOptions::parse("f:jpg,10x10").unwrap().canonical(),
            "10x10,f:jpeg"
        );
        assert_eq!(
            ImageOptions::parse("10x10,f:png,q:50").unwrap().canonical(),
            "10x10,f:png"
        );
        assert_ne!(
            ImageOptions::parse("800x600,fill").unwrap().canonical(),
            ImageOptions::parse("800x600").unwrap().canonical()
        );
    }

    #[test]
    fn canonical_form_parses_back_to_the_same_options() {
        let o = ImageOptions::parse("q:90,crop:0:0:5:5,fill,1x2,f:jpeg").unwrap();
        let back = ImageOptions::parse(&o.canonical()).unwrap();
        assert_eq!(back, o);
    }

    #[test]
    fn errors_name_the_offending_token() {
        let err = ImageOptions::parse("800x600,sepia").unwrap_err();
        assert_eq!(err, OptionsError::UnknownToken("sepia".into()));
        assert!(err.to_string().contains("\"sepia\""));
        for bad in [
            "q:0",
            "q:101",
            "q:x",
            "f:gif",
            "crop:1:2:3",
            "crop:0:0:0:5",
            "axb",
            "80x",
            "-1x5",
            "exp:soon",
            "99999x1",
        ] {
            let err = ImageOptions::parse(&format!("10x10,{bad}")).unwrap_err();
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
        assert!(matches!(
            ImageOptions::parse("10x10,20x20"),
            Err(OptionsError::Conflict(_))
        ));
        assert!(matches!(
            ImageOptions::parse("fit,fill,1x1"),
            Err(OptionsError::Conflict(_))
        ));
        assert!(ImageOptions::parse("0x600,fill").is_err());
        assert_eq!(ImageOptions::parse(""), Err(OptionsError::Empty));
    }
}
