//! Token-by-token parsing of the options segment. Every error names the token.

use super::presets::Presets;
use super::{
    Compass, CropRect, FormatChoice, Fraction, Gravity, ImageOptions, ResizeMode, Sigma,
    MAX_DIMENSION,
};
use crate::format::OutputFormat;

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
    #[error("unknown preset {0:?}")]
    UnknownPreset(String),
    #[error("only presets are allowed here, not {0:?}")]
    PresetsOnly(String),
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

/// A non-negative decimal with at most `digits` fractional digits, as an
/// integer in units of 10^-digits (`fixed("1.25", 2)` = 125).
fn fixed(token: &str, text: &str, digits: u32, reason: &'static str) -> Result<u32, OptionsError> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 5
        || !all_digits(whole)
        || !all_digits(frac)
        || frac.len() > digits as usize
        || (text.contains('.') && frac.is_empty())
    {
        return Err(invalid(token, reason));
    }
    let scale = 10u32.pow(digits);
    let whole: u32 = whole.parse().map_err(|_| invalid(token, reason))?;
    let frac_value: u32 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u32>().map_err(|_| invalid(token, reason))?
            * 10u32.pow(digits - frac.len() as u32)
    };
    Ok(whole * scale + frac_value)
}

fn fraction(token: &str, text: &str) -> Result<Fraction, OptionsError> {
    let reason = "focal point coordinates are fractions 0..1 with up to 4 decimals";
    let value = fixed(token, text, 4, reason)?;
    u16::try_from(value)
        .ok()
        .filter(|v| *v <= Fraction::SCALE)
        .map(Fraction)
        .ok_or_else(|| invalid(token, reason))
}

fn sigma(
    token: &str,
    text: &str,
    max_tenths: u16,
    reason: &'static str,
) -> Result<Sigma, OptionsError> {
    let value = fixed(token, text, 1, reason)?;
    u16::try_from(value)
        .ok()
        .filter(|v| (1..=max_tenths).contains(v))
        .map(Sigma)
        .ok_or_else(|| invalid(token, reason))
}

fn hex_colour(token: &str, text: &str) -> Result<[u8; 3], OptionsError> {
    let reason = "background must be RRGGBB hex";
    if text.len() != 6 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid(token, reason));
    }
    let byte =
        |i: usize| u8::from_str_radix(&text[i..i + 2], 16).map_err(|_| invalid(token, reason));
    Ok([byte(0)?, byte(2)?, byte(4)?])
}

fn gravity(token: &str, value: &str) -> Result<Gravity, OptionsError> {
    if value == "smart" {
        return Ok(Gravity::Smart);
    }
    if let Some(point) = value.strip_prefix("fp:") {
        return focal(token, point);
    }
    Compass::ALL
        .iter()
        .find(|(_, t)| *t == value)
        .map(|(c, _)| Gravity::Compass(*c))
        .ok_or_else(|| {
            invalid(
                token,
                "gravity must be c n s e w ne nw se sw, smart or fp:X:Y",
            )
        })
}

fn focal(token: &str, point: &str) -> Result<Gravity, OptionsError> {
    let (x, y) = point
        .split_once(':')
        .ok_or_else(|| invalid(token, "expected fp:X:Y"))?;
    Ok(Gravity::Focal {
        x: fraction(token, x)?,
        y: fraction(token, y)?,
    })
}

fn crop(token: &str, value: &str) -> Result<CropRect, OptionsError> {
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
    Ok(rect)
}

fn size(token: &str) -> Result<(u32, u32), OptionsError> {
    let (w, h) = token.split_once('x').unwrap_or_default();
    let reason = "size must be WxH with whole numbers (0 derives from the aspect ratio)";
    let (w, h): (u32, u32) = (number(token, w, reason)?, number(token, h, reason)?);
    if w > MAX_DIMENSION || h > MAX_DIMENSION {
        return Err(invalid(token, "size is larger than 65535"));
    }
    Ok((w, h))
}

/// Every resize mode and its token.
pub(super) const MODES: [(ResizeMode, &str); 7] = [
    (ResizeMode::Fit, "fit"),
    (ResizeMode::Fill, "fill"),
    (ResizeMode::Pad, "pad"),
    (ResizeMode::Force, "force"),
    (ResizeMode::FillDown, "fill-down"),
    (ResizeMode::FillMax, "fill-max"),
    (ResizeMode::Auto, "auto"),
];

pub(super) fn mode_token(mode: ResizeMode) -> &'static str {
    MODES
        .iter()
        .find(|(m, _)| *m == mode)
        .map_or("fit", |(_, t)| t)
}

/// Tracks which option families were set, to reject duplicates.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    fn mark(&mut self, family: u32, token: &str) -> Result<(), OptionsError> {
        if self.0 & family != 0 {
            return Err(OptionsError::Conflict(token.to_owned()));
        }
        self.0 |= family;
        Ok(())
    }
}

const SIZE: u32 = 1;
const MODE: u32 = 1 << 1;
const GRAVITY: u32 = 1 << 2;
const CROP: u32 = 1 << 3;
const BG: u32 = 1 << 4;
const FORMAT: u32 = 1 << 5;
const QUALITY: u32 = 1 << 6;
const DPR: u32 = 1 << 7;
const ROTATE: u32 = 1 << 8;
const FLIP: u32 = 1 << 9;
const BLUR: u32 = 1 << 10;
const SHARPEN: u32 = 1 << 11;
const UP: u32 = 1 << 12;
const EXPIRES: u32 = 1 << 13;
const GRAY: u32 = 1 << 14;
const CACHE_BUSTER: u32 = 1 << 15;

/// Longest cache buster; its characters are those of a URL segment that
/// need no escaping.
pub const MAX_CACHE_BUSTER: usize = 64;

impl ImageOptions {
    pub fn parse(segment: &str) -> Result<Self, OptionsError> {
        Self::parse_with(segment, &Presets::default())
    }

    /// Parses with `preset:NAME` tokens expanded from `presets`: presets
    /// apply first, in order, and the URL's own tokens override them.
    pub fn parse_with(segment: &str, presets: &Presets) -> Result<Self, OptionsError> {
        if segment.is_empty() {
            return Err(OptionsError::Empty);
        }
        let (named, own): (Vec<&str>, Vec<&str>) =
            segment.split(',').partition(|t| t.starts_with("preset:"));
        if presets.only {
            if let Some(other) = own.iter().find(|t| !t.starts_with("exp:")) {
                return Err(OptionsError::PresetsOnly((*other).to_owned()));
            }
            if named.is_empty() {
                return Err(OptionsError::PresetsOnly(segment.to_owned()));
            }
        }
        let mut o = Self::default();
        for token in named {
            let name = &token["preset:".len()..];
            let list = presets
                .get(name)
                .ok_or_else(|| OptionsError::UnknownPreset(name.to_owned()))?;
            for token in list.split(',') {
                let (name, value) = token.split_once(':').unwrap_or((token, ""));
                o.apply(token, name, value)?;
            }
        }
        let mut seen = Seen::default();
        for token in own {
            let (name, value) = token.split_once(':').unwrap_or((token, ""));
            let family = o.apply(token, name, value)?;
            seen.mark(family, token)?;
        }
        if o.mode.needs_box() && (o.width == 0 || o.height == 0) {
            return Err(invalid(
                mode_token(o.mode),
                "needs both a width and a height",
            ));
        }
        if o.mode == ResizeMode::Force && o.width == 0 && o.height == 0 {
            return Err(invalid("force", "needs a width or a height"));
        }
        Ok(o)
    }

    /// Applies one token; returns the option family it set.
    fn apply(&mut self, token: &str, name: &str, value: &str) -> Result<u32, OptionsError> {
        let family = match (name, value) {
            (_, "") if MODES.iter().any(|(_, t)| *t == name) => {
                self.mode = MODES
                    .iter()
                    .find(|(_, t)| *t == name)
                    .map_or(ResizeMode::Fit, |(m, _)| *m);
                MODE
            }
            ("cb", _) => {
                let fine = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
                if value.is_empty() || value.len() > MAX_CACHE_BUSTER || !value.bytes().all(fine) {
                    return Err(invalid(
                        token,
                        "a cache buster is 1..64 of A-Z a-z 0-9 - _ .",
                    ));
                }
                self.cache_buster = Some(value.to_owned());
                CACHE_BUSTER
            }
            ("gray", "") => {
                self.grayscale = true;
                GRAY
            }
            ("g", _) => {
                self.gravity = gravity(token, value)?;
                GRAVITY
            }
            ("smart", "") => {
                self.gravity = Gravity::Smart;
                GRAVITY
            }
            ("fp", _) => {
                self.gravity = focal(token, value)?;
                GRAVITY
            }
            ("crop", _) => {
                self.crop = Some(crop(token, value)?);
                CROP
            }
            ("bg", _) => {
                self.background = Some(hex_colour(token, value)?);
                BG
            }
            ("f", "auto") => {
                self.format = Some(FormatChoice::Auto);
                FORMAT
            }
            ("f", "compat") => {
                self.format = Some(FormatChoice::Compatible);
                FORMAT
            }
            ("f", _) => {
                let format = OutputFormat::from_token(value).ok_or_else(|| {
                    invalid(
                        token,
                        "format must be jpeg, png, webp, avif, auto or compat",
                    )
                })?;
                self.format = Some(FormatChoice::Fixed(format));
                FORMAT
            }
            ("q", _) => {
                let q: u8 = number(token, value, "quality must be 1..100")?;
                if !(1..=100).contains(&q) {
                    return Err(invalid(token, "quality must be 1..100"));
                }
                self.quality = Some(q);
                QUALITY
            }
            ("dpr", _) => {
                let reason = "dpr must be 1..4 with up to 2 decimals";
                let dpr = fixed(token, value, 2, reason)?;
                self.dpr = u16::try_from(dpr)
                    .ok()
                    .filter(|d| (100..=400).contains(d))
                    .ok_or_else(|| invalid(token, reason))?;
                DPR
            }
            ("r", "0" | "90" | "180" | "270") => {
                self.rotate = value.parse().unwrap_or(0);
                ROTATE
            }
            ("r", _) => return Err(invalid(token, "rotation must be 90, 180 or 270")),
            ("flip", "h" | "v" | "hv" | "vh") => {
                self.flip.horizontal = value.contains('h');
                self.flip.vertical = value.contains('v');
                FLIP
            }
            ("flip", _) => return Err(invalid(token, "flip must be h, v or hv")),
            ("blur", _) => {
                self.blur = Some(sigma(token, value, 1000, "blur sigma must be 0.1..100")?);
                BLUR
            }
            ("sharpen", _) => {
                self.sharpen = Some(sigma(token, value, 100, "sharpen sigma must be 0.1..10")?);
                SHARPEN
            }
            ("up", "") => {
                self.upscale = true;
                UP
            }
            ("exp", _) => {
                self.expires = Some(number(token, value, "expiry must be UNIX seconds")?);
                EXPIRES
            }
            (_, "") if token.contains('x') => {
                (self.width, self.height) = size(token)?;
                SIZE
            }
            _ => return Err(OptionsError::UnknownToken(token.to_owned())),
        };
        Ok(family)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Flip;

    #[test]
    fn parses_every_token() {
        let o = ImageOptions::parse(
            "800x600,fill,g:ne,crop:10:20:300:400,bg:FF8000,f:webp,q:75,dpr:1.5,r:90,flip:h,\
             blur:2.5,sharpen:0.8,up,exp:1700000000",
        )
        .unwrap();
        assert_eq!((o.width, o.height), (800, 600));
        assert_eq!(o.mode, ResizeMode::Fill);
        assert_eq!(o.gravity, Gravity::Compass(Compass::NorthEast));
        let crop = CropRect {
            x: 10,
            y: 20,
            width: 300,
            height: 400,
        };
        assert_eq!(o.crop, Some(crop));
        assert_eq!(o.background, Some([255, 128, 0]));
        assert_eq!(o.format, Some(FormatChoice::Fixed(OutputFormat::Webp)));
        assert_eq!(o.quality, Some(75));
        assert_eq!(o.dpr, 150);
        assert_eq!(o.rotate, 90);
        let flip = Flip {
            horizontal: true,
            vertical: false,
        };
        assert_eq!(o.flip, flip);
        assert_eq!(o.blur, Some(Sigma(25)));
        assert_eq!(o.sharpen, Some(Sigma(8)));
        assert!(o.upscale);
        assert_eq!(o.expires, Some(1_700_000_000));
    }

    #[test]
    fn gravity_forms() {
        let g = |s: &str| {
            ImageOptions::parse(&format!("10x10,fill,{s}"))
                .unwrap()
                .gravity
        };
        assert_eq!(g("smart"), Gravity::Smart);
        assert_eq!(g("g:smart"), Gravity::Smart);
        let focal = Gravity::Focal {
            x: Fraction(2500),
            y: Fraction(10_000),
        };
        assert_eq!(g("fp:0.25:1"), focal);
        assert_eq!(g("g:fp:0.25:1.0"), focal);
        for (compass, token) in Compass::ALL {
            assert_eq!(g(&format!("g:{token}")), Gravity::Compass(compass));
        }
        assert_eq!(
            ImageOptions::parse("10x10,f:auto").unwrap().format,
            Some(FormatChoice::Auto)
        );
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
            "g:up",
            "fp:1.5:0",
            "fp:0.5",
            "fp:0.12345:0",
            "bg:fff",
            "bg:GG0000",
            "dpr:0.5",
            "dpr:5",
            "dpr:1.",
            "dpr:1.234",
            "r:45",
            "flip:x",
            "blur:0",
            "blur:101",
            "sharpen:11",
            "blur:-1",
            "up:1",
        ] {
            let err = ImageOptions::parse(&format!("10x10,{bad}")).unwrap_err();
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
        for conflict in [
            "10x10,20x20",
            "fit,fill,1x1",
            "10x10,g:n,smart",
            "10x10,up,up",
        ] {
            assert!(
                matches!(
                    ImageOptions::parse(conflict),
                    Err(OptionsError::Conflict(_))
                ),
                "{conflict}"
            );
        }
        assert!(ImageOptions::parse("0x600,fill").is_err());
        assert!(ImageOptions::parse("600x0,pad").is_err());
        assert!(ImageOptions::parse("0x0,force").is_err());
        assert_eq!(ImageOptions::parse(""), Err(OptionsError::Empty));
    }

    #[test]
    fn device_box_applies_dpr_and_the_cap() {
        let o = ImageOptions::parse("400x300,dpr:2").unwrap();
        assert_eq!(o.device_box(8192), (800, 600));
        assert_eq!(o.device_box(700), (700, 600));
        let o = ImageOptions::parse("333x0,dpr:1.5").unwrap();
        assert_eq!(o.device_box(8192), (499, 0));
    }
}
