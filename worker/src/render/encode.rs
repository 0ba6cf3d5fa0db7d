//! Encoders: progressive JPEG through libjpeg-turbo (4:2:0, Huffman-optimised
//! by the progressive scans), PNG with the `image` crate's fast deflate, lossy
//! WebP through libwebp, AVIF through rav1e (ravif) at a configurable speed.
//! Nothing from the source's metadata (EXIF, XMP, ICC) is written.

use std::cell::RefCell;

use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::{DynamicImage, ImageEncoder};
use rgb::FromSlice as _;
use turbojpeg::{Compressor, Image, PixelFormat, Subsamp};

use kiln_core::format::OutputFormat;

use super::effects;
use super::RenderError;

/// What the encoders need besides the pixels.
#[derive(Clone, Copy, Debug)]
pub struct EncodeParams {
    pub format: OutputFormat,
    /// 1..=100; `None` takes the format's default.
    pub quality: Option<u8>,
    /// JPEG's flattening colour.
    pub background: Option<[u8; 3]>,
    /// rav1e speed, 1 (slowest, smallest) ..= 10 (fastest).
    pub avif_speed: u8,
}

/// Defaults when `q:` is absent: JPEG and WebP 80 (imgproxy's and sharp's
/// choice), AVIF 60 (AVIF at the same number looks better and is larger).
pub fn default_quality(format: OutputFormat) -> u8 {
    match format {
        OutputFormat::Avif => 60,
        _ => 80,
    }
}

pub fn encode(image: &DynamicImage, params: &EncodeParams) -> Result<Vec<u8>, RenderError> {
    let quality = params
        .quality
        .unwrap_or_else(|| default_quality(params.format));
    match params.format {
        OutputFormat::Jpeg => jpeg(image, quality, params.background),
        OutputFormat::Png => png(image),
        OutputFormat::Webp => webp(image, quality),
        OutputFormat::Avif => avif(image, quality, params.avif_speed),
    }
}

thread_local! {
    static COMPRESSOR: RefCell<Option<Compressor>> = const { RefCell::new(None) };
}

fn jpeg(
    image: &DynamicImage,
    quality: u8,
    background: Option<[u8; 3]>,
) -> Result<Vec<u8>, RenderError> {
    let flattened;
    let rgb = match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => {
            flattened = effects::flatten_for_jpeg(other, background);
            &flattened
        }
    };
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Compressor::new().ok();
        }
        let compressor = slot.as_mut().ok_or(RenderError::Encode)?;
        compressor
            .set_quality(i32::from(quality))
            .and_then(|()| compressor.set_subsamp(Subsamp::Sub2x2))
            .and_then(|()| compressor.set_progressive(true))
            .map_err(|_| RenderError::Encode)?;
        let width = rgb.width() as usize;
        compressor
            .compress_to_vec(Image {
                pixels: rgb.as_raw().as_slice(),
                width,
                pitch: width * 3,
                height: rgb.height() as usize,
                format: PixelFormat::RGB,
            })
            .map_err(|_| RenderError::Encode)
    })
}

fn png(image: &DynamicImage) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::new();
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, PngFilter::Adaptive)
        .write_image(
            image.as_bytes(),
            image.width(),
            image.height(),
            image.color().into(),
        )
        .map_err(|_| RenderError::Encode)?;
    Ok(out)
}

fn webp(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, RenderError> {
    let encoder = match image {
        DynamicImage::ImageRgba8(rgba) => {
            webp::Encoder::from_rgba(rgba.as_raw(), rgba.width(), rgba.height())
        }
        DynamicImage::ImageRgb8(rgb) => {
            webp::Encoder::from_rgb(rgb.as_raw(), rgb.width(), rgb.height())
        }
        _ => return Err(RenderError::Encode),
    };
    let encoded = encoder
        .encode_simple(false, f32::from(quality))
        .map_err(|_| RenderError::Encode)?;
    Ok(encoded.to_vec())
}

fn avif(image: &DynamicImage, quality: u8, speed: u8) -> Result<Vec<u8>, RenderError> {
    let encoder = ravif::Encoder::new()
        .with_quality(f32::from(quality))
        .with_alpha_quality(f32::from(quality))
        .with_speed(speed)
        .with_bit_depth(ravif::BitDepth::Eight)
        .with_num_threads(Some(1));
    let (width, height) = (image.width() as usize, image.height() as usize);
    let encoded = match image {
        DynamicImage::ImageRgba8(rgba) => {
            encoder.encode_rgba(ravif::Img::new(rgba.as_raw().as_rgba(), width, height))
        }
        DynamicImage::ImageRgb8(rgb) => {
            encoder.encode_rgb(ravif::Img::new(rgb.as_raw().as_rgb(), width, height))
        }
        _ => return Err(RenderError::Encode),
    };
    Ok(encoded.map_err(|_| RenderError::Encode)?.avif_file)
}
