//! Image options: the comma-separated `{options}` segment of `/img/` URLs.
//!
//! [`ImageOptions::parse`] reads a token list; [`ImageOptions::canonical`]
//! writes it back in one fixed order with defaults and no-ops dropped, so
//! equivalent lists (`800x600,f:webp` and `f:webp,800x600`) share one cache
//! key. The canonical form parses back to the same options; it is what jobs
//! carry to workers.

use crate::format::OutputFormat;

mod accept;
mod canonical;
mod parse;
mod presets;

pub use accept::{negotiate, AutoFormats};
pub use parse::OptionsError;
pub use presets::Presets;

/// Largest width or height a URL may ask for, before the configured output limit.
pub const MAX_DIMENSION: u32 = 65_535;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ResizeMode {
    /// Inside the box, aspect ratio kept, never upscaled unless `up`.
    #[default]
    Fit,
    /// Cover the box, then crop the overflow (placed by gravity) to exactly W×H.
    Fill,
    /// Fit, then letterbox to exactly W×H with the background colour.
    Pad,
    /// Stretch to exactly W×H, aspect ratio ignored.
    Force,
    /// Fill without enlarging: a source smaller than the box is cropped to
    /// the box's aspect ratio at its own scale (imgproxy's `fill-down`).
    FillDown,
    /// Fill without enlarging: a source smaller than the box keeps its
    /// scale and is cropped to at most the box (imgproxy's `fill` without
    /// `enlarge`).
    FillMax,
    /// `fill-max` (or `fill` with `up`) when the source and the box have the
    /// same orientation, `fit` otherwise (imgproxy's `auto`).
    Auto,
}

impl ResizeMode {
    /// Every mode but `fit` and `force` works to the whole box: it needs
    /// both sides, and gravity places something in it (the crop window,
    /// or the padded image).
    pub fn needs_box(self) -> bool {
        !matches!(self, Self::Fit | Self::Force)
    }
}

/// Compass gravity: which part of the image survives a `fill` crop, or where
/// a `pad`ded image sits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compass {
    #[default]
    Centre,
    North,
    South,
    East,
    West,
    NorthEast,
    NorthWest,
    SouthEast,
    SouthWest,
}

impl Compass {
    pub const ALL: [(Self, &'static str); 9] = [
        (Self::Centre, "c"),
        (Self::North, "n"),
        (Self::South, "s"),
        (Self::East, "e"),
        (Self::West, "w"),
        (Self::NorthEast, "ne"),
        (Self::NorthWest, "nw"),
        (Self::SouthEast, "se"),
        (Self::SouthWest, "sw"),
    ];

    pub fn token(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("c", |(_, t)| t)
    }

    /// The anchor as fractions of width and height (0 = left/top, 1 = right/bottom).
    pub fn anchor(self) -> (f64, f64) {
        match self {
            Self::Centre => (0.5, 0.5),
            Self::North => (0.5, 0.0),
            Self::South => (0.5, 1.0),
            Self::East => (1.0, 0.5),
            Self::West => (0.0, 0.5),
            Self::NorthEast => (1.0, 0.0),
            Self::NorthWest => (0.0, 0.0),
            Self::SouthEast => (1.0, 1.0),
            Self::SouthWest => (0.0, 1.0),
        }
    }
}

/// A fraction 0..=1 kept in ten-thousandths, so options stay `Eq + Hash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fraction(pub u16);

impl Fraction {
    pub const SCALE: u16 = 10_000;

    pub fn get(self) -> f64 {
        f64::from(self.0) / f64::from(Self::SCALE)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gravity {
    Compass(Compass),
    /// Content-aware: the window with the most edge energy (see the worker's `smart` module).
    Smart,
    /// Focal point: the window is centred on it as far as the image allows.
    Focal {
        x: Fraction,
        y: Fraction,
    },
}

impl Default for Gravity {
    fn default() -> Self {
        Self::Compass(Compass::Centre)
    }
}

/// A crop in source pixels (after orientation and rotation), applied before resizing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CropRect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FormatChoice {
    Fixed(OutputFormat),
    /// `f:auto`: the api replaces it with the best format the client accepts.
    Auto,
    /// `f:compat`: JPEG, or PNG when the image has alpha — what `f:auto`
    /// becomes for a client that accepts neither AVIF nor WebP.
    Compatible,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flip {
    pub horizontal: bool,
    pub vertical: bool,
}

/// A sigma in tenths of a pixel (blur and sharpen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sigma(pub u16);

impl Sigma {
    pub fn get(self) -> f32 {
        f32::from(self.0) / 10.0
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageOptions {
    /// Target box in CSS pixels; 0 derives the side from the aspect ratio (both 0: original size).
    pub width: u32,
    pub height: u32,
    pub mode: ResizeMode,
    pub gravity: Gravity,
    pub crop: Option<CropRect>,
    /// `bg:RRGGBB`: padding colour, and what transparent pixels are flattened
    /// onto for JPEG. Default: transparent padding, white flattening.
    pub background: Option<[u8; 3]>,
    /// `None` keeps the source's format.
    pub format: Option<FormatChoice>,
    pub quality: Option<u8>,
    /// Device pixel ratio in hundredths (100..=400): multiplies the box.
    pub dpr: u16,
    /// Clockwise rotation in degrees (0, 90, 180, 270), after EXIF orientation.
    pub rotate: u16,
    pub flip: Flip,
    pub blur: Option<Sigma>,
    pub sharpen: Option<Sigma>,
    /// `up`: `fit`, `pad` and `auto` may enlarge a smaller image to the box.
    pub upscale: bool,
    /// `gray`: the output is greyscale (luma), alpha kept.
    pub grayscale: bool,
    /// `cb:TEXT`: a cache buster. Renders nothing differently but is part of
    /// the canonical form, so a new value is a new cached object.
    pub cache_buster: Option<String>,
    /// URL expiry (UNIX seconds). Not part of the canonical form: it decides
    /// whether a URL is valid, not what is rendered.
    pub expires: Option<i64>,
}

impl Default for ImageOptions {
    fn default() -> Self {
        Self {
            width: 0,
            height: 0,
            mode: ResizeMode::Fit,
            gravity: Gravity::default(),
            crop: None,
            background: None,
            format: None,
            quality: None,
            dpr: Self::DPR_ONE,
            rotate: 0,
            flip: Flip::default(),
            blur: None,
            sharpen: None,
            upscale: false,
            grayscale: false,
            cache_buster: None,
            expires: None,
        }
    }
}

impl ImageOptions {
    pub const DPR_ONE: u16 = 100;

    /// The box in device pixels (`dpr` applied), each side capped at `max`.
    pub fn device_box(&self, max: u32) -> (u32, u32) {
        let scale = |side: u32| {
            let scaled = u64::from(side) * u64::from(self.dpr) / u64::from(Self::DPR_ONE);
            u32::try_from(scaled).unwrap_or(u32::MAX).min(max)
        };
        (scale(self.width), scale(self.height))
    }

    /// Whether the response depends on the client's `Accept` header.
    pub fn negotiates_format(&self) -> bool {
        self.format == Some(FormatChoice::Auto)
    }
}
