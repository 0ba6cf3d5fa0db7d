//! Encoders: progressive JPEG (jpeg-encoder), PNG (image), lossy WebP
//! (libwebp). Metadata is never copied to the output.

use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::{DynamicImage, ImageEncoder, Rgb, RgbImage};

use kiln_core::format::OutputFormat;

use super::RenderError;

pub fn encode(
    image: &DynamicImage,
    format: OutputFormat,
    quality: u8,
) -> Result<Vec<u8>, RenderError> {
    match format {
        OutputFormat::Jpeg => jpeg(image, quality),
        OutputFormat::Png => png(image),
        OutputFormat::Webp => webp(image, quality),
    }
}

/// JPEG has no alpha: transparent pixels are composited over white.
fn flatten(image: &DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgba8(rgba) => RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
            let [r, g, b, a] = rgba.get_pixel(x, y).0;
            let over = |c: u8| {
                ((u16::from(c) * u16::from(a) + 255 * (255 - u16::from(a)) + 127) / 255) as u8
            };
            Rgb([over(r), over(g), over(b)])
        }),
        other => other.to_rgb8(),
    }
}

fn jpeg(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, RenderError> {
    let rgb = flatten(image);
    let (w, h) = (u16::try_from(rgb.width()), u16::try_from(rgb.height()));
    let (Ok(w), Ok(h)) = (w, h) else {
        return Err(RenderError::Encode);
    };
    let mut out = Vec::with_capacity(rgb.len() / 8);
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_progressive(true);
    encoder
        .encode(rgb.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|_| RenderError::Encode)?;
    Ok(out)
}

fn png(image: &DynamicImage) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::new();
    let encoder =
        PngEncoder::new_with_quality(&mut out, CompressionType::Fast, PngFilter::Adaptive);
    encoder
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
