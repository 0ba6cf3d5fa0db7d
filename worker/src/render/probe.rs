//! Reading what a source claims to be — format, size, orientation, ICC
//! profile — from its header alone, and refusing it against the limits before
//! a single pixel buffer exists. A tiny PNG that claims 100 000 × 100 000 is
//! answered here, without a memory spike.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{ImageDecoder, ImageFormat, ImageReader};

use kiln_core::limits::SourceLimits;

use super::{jpeg_header, RenderError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
}

impl SourceFormat {
    pub fn image_format(self) -> ImageFormat {
        match self {
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Png => ImageFormat::Png,
            Self::Webp => ImageFormat::WebP,
            Self::Gif => ImageFormat::Gif,
        }
    }
}

pub struct Probe {
    pub format: SourceFormat,
    /// Stored size (before orientation).
    pub width: u32,
    pub height: u32,
    pub orientation: Orientation,
    pub icc: Option<Vec<u8>>,
    /// A JPEG libjpeg-turbo can decode to RGB (gray or YCbCr, not CMYK).
    pub turbo_decodable: bool,
}

pub fn sniff(source: &[u8]) -> Result<SourceFormat, RenderError> {
    match image::guess_format(source) {
        Ok(ImageFormat::Jpeg) => Ok(SourceFormat::Jpeg),
        Ok(ImageFormat::Png) => Ok(SourceFormat::Png),
        Ok(ImageFormat::WebP) => Ok(SourceFormat::Webp),
        Ok(ImageFormat::Gif) => Ok(SourceFormat::Gif),
        _ => Err(RenderError::Unsupported),
    }
}

/// An `image` crate decoder for `format` with its sizes and allocations
/// capped (the decoder refuses larger images itself; [`probe`] checks the
/// same limits first, with a clearer message).
pub fn decoder<'a>(
    source: &'a [u8],
    format: SourceFormat,
    limits: &SourceLimits,
) -> Result<impl ImageDecoder + 'a, RenderError> {
    reader(source, format, limits, true)
}

/// The probe's reader: sizes are read, not refused, so [`check_size`] can
/// say which limit a source is over; allocations are capped all the same.
fn reader<'a>(
    source: &'a [u8],
    format: SourceFormat,
    limits: &SourceLimits,
    refuse_sizes: bool,
) -> Result<impl ImageDecoder + 'a, RenderError> {
    let mut reader = ImageReader::with_format(Cursor::new(source), format.image_format());
    let mut decode_limits = image::Limits::default();
    if refuse_sizes {
        decode_limits.max_image_width = Some(limits.max_width);
        decode_limits.max_image_height = Some(limits.max_height);
    }
    // RGBA at 16 bits per channel, plus headroom for the decoder's own buffers.
    decode_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(decode_limits);
    reader.into_decoder().map_err(|e| match e {
        image::ImageError::Limits(_) => RenderError::TooLarge {
            width: 0,
            height: 0,
            limit: "decoder memory limit".into(),
        },
        _ => RenderError::Undecodable,
    })
}

pub fn probe(source: &[u8], limits: &SourceLimits) -> Result<Probe, RenderError> {
    if source.len() as u64 > limits.max_bytes {
        return Err(RenderError::TooManyBytes(limits.max_bytes));
    }
    let format = sniff(source)?;
    let probe = match format {
        SourceFormat::Jpeg => {
            let header = jpeg_header::read(source).ok_or(RenderError::Undecodable)?;
            Probe {
                format,
                width: header.width,
                height: header.height,
                orientation: header
                    .exif
                    .and_then(Orientation::from_exif_chunk)
                    .unwrap_or(Orientation::NoTransforms),
                icc: header.icc,
                turbo_decodable: matches!(header.components, 1 | 3),
            }
        }
        _ => {
            let mut decoder = reader(source, format, limits, false)?;
            let (width, height) = decoder.dimensions();
            Probe {
                format,
                width,
                height,
                orientation: decoder.orientation().unwrap_or(Orientation::NoTransforms),
                icc: decoder.icc_profile().ok().flatten(),
                turbo_decodable: false,
            }
        }
    };
    check_size(probe.width, probe.height, limits)?;
    Ok(probe)
}

fn check_size(width: u32, height: u32, limits: &SourceLimits) -> Result<(), RenderError> {
    if width == 0 || height == 0 {
        return Err(RenderError::Undecodable);
    }
    limits
        .check_source(width, height)
        .map_err(|over| RenderError::TooLarge {
            width: over.width,
            height: over.height,
            limit: over.limit,
        })
}
