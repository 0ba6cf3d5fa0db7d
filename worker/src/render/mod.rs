//! The image pipeline: probe the header against the limits, decode (EXIF
//! orientation applied), crop, resize with fast_image_resize, encode.
//! CPU-bound and synchronous: callers run it on the blocking pool.

use image::{DynamicImage, ImageFormat};

use kiln_core::config::SourceLimits;
use kiln_core::format::OutputFormat;
use kiln_core::options::ImageOptions;

mod decode;
mod encode;
pub mod geometry;
mod resize;

pub const DEFAULT_QUALITY: u8 = 80;

/// A permanent failure: the same input will always fail, so it is remembered
/// and answered at once. Messages are shown to clients.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("source is larger than {0} bytes")]
    TooManyBytes(u64),
    #[error("source image is {width}x{height}, over the {limit} limit")]
    TooLarge {
        width: u32,
        height: u32,
        limit: String,
    },
    #[error("source is not a supported image (JPEG, PNG, WebP, GIF)")]
    Unsupported,
    #[error("source image could not be decoded")]
    Undecodable,
    #[error("crop is outside the image")]
    CropOutside,
    #[error("the rendition could not be encoded")]
    Encode,
}

impl RenderError {
    pub fn http_status(&self) -> u16 {
        match self {
            Self::TooManyBytes(_) => 413,
            _ => 422,
        }
    }
}

pub struct Rendered {
    pub bytes: Vec<u8>,
    pub format: OutputFormat,
    pub width: u32,
    pub height: u32,
}

fn default_output(source: ImageFormat) -> OutputFormat {
    match source {
        ImageFormat::Jpeg => OutputFormat::Jpeg,
        ImageFormat::WebP => OutputFormat::Webp,
        // PNG, and GIF (first frame) which Kiln does not encode.
        _ => OutputFormat::Png,
    }
}

pub fn render(
    source: &[u8],
    options: &ImageOptions,
    limits: &SourceLimits,
) -> Result<Rendered, RenderError> {
    if source.len() as u64 > limits.max_bytes {
        return Err(RenderError::TooManyBytes(limits.max_bytes));
    }
    let (image, source_format) = decode::decode(source, limits)?;
    let image = match options.crop {
        Some(crop) => {
            let crop = geometry::clamp_crop(crop, image.width(), image.height())
                .ok_or(RenderError::CropOutside)?;
            image.crop_imm(crop.x, crop.y, crop.width, crop.height)
        }
        None => image,
    };
    let plan = geometry::plan(
        image.width(),
        image.height(),
        options.width,
        options.height,
        options.mode,
        limits.max_output_dimension,
    );
    let format = options
        .format
        .unwrap_or_else(|| default_output(source_format));
    let resized: DynamicImage = resize::resize(image, &plan)?;
    let quality = options.quality.unwrap_or(DEFAULT_QUALITY);
    let bytes = encode::encode(&resized, format, quality)?;
    Ok(Rendered {
        bytes,
        format,
        width: resized.width(),
        height: resized.height(),
    })
}
