//! Decoding with guards: the header is read first and checked against the
//! width, height and pixel limits, so a decompression bomb is refused before
//! a single pixel buffer is allocated.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use kiln_core::config::SourceLimits;

use super::RenderError;

fn reader(source: &[u8]) -> Result<ImageReader<Cursor<&[u8]>>, RenderError> {
    let reader = ImageReader::new(Cursor::new(source))
        .with_guessed_format()
        .map_err(|_| RenderError::Unsupported)?;
    match reader.format() {
        Some(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif) => {
            Ok(reader)
        }
        _ => Err(RenderError::Unsupported),
    }
}

pub fn decode(
    source: &[u8],
    limits: &SourceLimits,
) -> Result<(DynamicImage, ImageFormat), RenderError> {
    let probe = reader(source)?;
    let format = probe.format().ok_or(RenderError::Unsupported)?;
    let (width, height) = probe
        .into_dimensions()
        .map_err(|_| RenderError::Undecodable)?;
    let too_large = |limit: String| RenderError::TooLarge {
        width,
        height,
        limit,
    };
    if width > limits.max_width {
        return Err(too_large(format!("{} px width", limits.max_width)));
    }
    if height > limits.max_height {
        return Err(too_large(format!("{} px height", limits.max_height)));
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(too_large(format!("{} pixel", limits.max_pixels)));
    }

    let mut reader = reader(source)?;
    let mut decode_limits = Limits::default();
    decode_limits.max_image_width = Some(limits.max_width);
    decode_limits.max_image_height = Some(limits.max_height);
    // RGBA at 16 bits per channel, plus headroom for the decoder's own buffers.
    decode_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(decode_limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|_| RenderError::Undecodable)?;
    let orientation = decoder
        .orientation()
        .map_err(|_| RenderError::Undecodable)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|_| RenderError::Undecodable)?;
    image.apply_orientation(orientation);
    Ok((image, format))
}
