//! Decoding into a per-thread buffer. JPEGs go through libjpeg-turbo with
//! DCT-domain shrink-on-load (1/2, 1/4, 1/8); still WebPs through libwebp;
//! everything else (and JPEGs libjpeg-turbo refuses, such as CMYK, and
//! animated WebPs) through the `image` crate. The buffer
//! is kept between images on the same render thread: a fresh 36 MB
//! allocation per image costs more in page faults than the resize itself.
//!
//! Every decoder reads the header again itself; before any buffer is sized
//! from what it read, its dimensions must be the probe's (which the limits
//! were checked against), and each decoder carries its own limits as well:
//! libjpeg-turbo's `TJPARAM_MAXPIXELS` and `TJPARAM_SCANLIMIT`, the `image`
//! crate's `Limits`, zune-jpeg's scan cap.

use std::cell::RefCell;

use image::{ColorType, DynamicImage, ImageDecoder};

use kiln_core::limits::SourceLimits;

use super::probe::{self, Probe, SourceFormat};
use super::turbo::Turbo;
use super::RenderError;

/// Buffers larger than this are freed after use instead of kept for the next
/// image, so a rare 50 MP source does not pin 200 MB per thread.
const KEEP_BUFFER_BYTES: usize = 64 << 20;

/// Decoded 8-bit RGB or RGBA pixels, rows packed. Mutable, so alpha can be
/// premultiplied in place instead of in a second full-size copy.
pub struct Frame<'a> {
    pub data: &'a mut [u8],
    pub width: u32,
    pub height: u32,
    pub has_alpha: bool,
    /// The decoded image's full height: a JPEG may be decoded as a band of
    /// rows starting at `top`.
    pub full_height: u32,
    pub top: u32,
}

/// Progressive scans a JPEG may have (zune-jpeg's default cap too): real
/// encoders write about ten; thousands of empty scans would each cost a
/// pass over the whole image.
pub const MAX_SCANS: u32 = 100;

/// Rows of the stored image a render needs: `(top, height)` in source pixels.
pub type Rows = (f64, f64);

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static TURBO: RefCell<Option<Turbo>> = const { RefCell::new(None) };
}

/// Runs `f` with `len` bytes of this thread's reusable buffer.
fn with_buffer<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    BUFFER.with(|cell| {
        let mut buffer = cell.take();
        if buffer.len() < len {
            // Only the growth is zeroed (and faulted in); reuse is free.
            buffer.resize(len, 0);
        }
        let result = f(&mut buffer[..len]);
        if buffer.len() <= KEEP_BUFFER_BYTES {
            cell.replace(buffer);
        }
        result
    })
}

/// The JPEG shrink-on-load factor: the largest of 8, 4, 2 that keeps the
/// decoded window at least as large as the output, so the final resize is
/// always a downscale.
pub fn jpeg_shrink(window: (f64, f64), output: (u32, u32)) -> u32 {
    [8u32, 4, 2]
        .into_iter()
        .find(|d| {
            window.0 / f64::from(*d) >= f64::from(output.0)
                && window.1 / f64::from(*d) >= f64::from(output.1)
        })
        .unwrap_or(1)
}

/// Decodes `source` (already probed), at `1/shrink` scale and only the
/// `rows` needed where the format supports it, and hands the pixels to `f`.
pub fn decode<R>(
    source: &[u8],
    probe: &Probe,
    shrink: u32,
    rows: Rows,
    limits: &SourceLimits,
    f: impl FnOnce(Frame<'_>) -> Result<R, RenderError>,
) -> Result<R, RenderError> {
    if probe.format == SourceFormat::Jpeg && probe.turbo_decodable {
        match decode_turbo(source, probe, shrink, rows, limits, f) {
            Ok(result) => return result,
            // libjpeg-turbo refused the file (corrupt or unusual): the `image`
            // crate's decoder is more lenient.
            Err(f) => return decode_image(source, probe, limits, f),
        }
    }
    if probe.format == SourceFormat::Webp {
        // libwebp is about twice as fast as the pure-Rust decoder; it refuses
        // animations, which the `image` crate decodes (first frame).
        let features = webp::BitstreamFeatures::new(source);
        if features.is_some_and(|f| (f.width(), f.height()) != (probe.width, probe.height)) {
            return Err(RenderError::Inconsistent);
        }
        if let Some(mut image) = webp::Decoder::new(source).decode() {
            let (width, height, has_alpha) = (image.width(), image.height(), image.is_alpha());
            return f(Frame {
                data: &mut image,
                width,
                height,
                has_alpha,
                full_height: height,
                top: 0,
            });
        }
    }
    decode_image(source, probe, limits, f)
}

/// `Err(f)` hands the callback back when libjpeg-turbo cannot decode.
#[allow(clippy::type_complexity)]
fn decode_turbo<R, F>(
    source: &[u8],
    probe: &Probe,
    shrink: u32,
    rows: Rows,
    limits: &SourceLimits,
    f: F,
) -> Result<Result<R, RenderError>, F>
where
    F: FnOnce(Frame<'_>) -> Result<R, RenderError>,
{
    TURBO.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Turbo::new();
        }
        let Some(turbo) = slot.as_mut() else {
            return Err(f);
        };
        turbo.set_limits(limits.max_pixels, MAX_SCANS);
        let Some(header) = turbo.read_header(source) else {
            return Err(f);
        };
        if (header.width, header.height) != (probe.width as usize, probe.height as usize) {
            return Ok(Err(RenderError::Inconsistent));
        }
        let denom = shrink as usize;
        // Source rows to scaled rows, widened to whole rows.
        let scale = super::turbo::scaled(header.height, denom) as f64 / header.height as f64;
        let top = (rows.0 * scale).floor().max(0.0) as usize;
        let bottom = ((rows.0 + rows.1) * scale).ceil() as usize;
        let width = super::turbo::scaled(header.width, denom);
        let band_rows = bottom.saturating_sub(top).max(1);
        with_buffer(width * band_rows * 3, move |pixels| {
            let Some(band) = turbo.decompress_rows(source, header, denom, (top, band_rows), pixels)
            else {
                return Err(f);
            };
            Ok(f(Frame {
                data: &mut pixels[..band.width * band.height * 3],
                width: band.width as u32,
                height: band.height as u32,
                has_alpha: false,
                full_height: band.full_height as u32,
                top: band.top as u32,
            }))
        })
    })
}

fn decode_image<R>(
    source: &[u8],
    probe: &Probe,
    limits: &SourceLimits,
    f: impl FnOnce(Frame<'_>) -> Result<R, RenderError>,
) -> Result<R, RenderError> {
    let decoder = probe::decoder(source, probe.format, limits)?;
    let (width, height) = decoder.dimensions();
    if (width, height) != (probe.width, probe.height) {
        return Err(RenderError::Inconsistent);
    }
    let color = decoder.color_type();
    if matches!(color, ColorType::Rgb8 | ColorType::Rgba8) {
        let len = usize::try_from(decoder.total_bytes()).map_err(|_| RenderError::Undecodable)?;
        return with_buffer(len, |pixels| {
            decoder
                .read_image(pixels)
                .map_err(|_| RenderError::Undecodable)?;
            f(Frame {
                data: pixels,
                width,
                height,
                has_alpha: color == ColorType::Rgba8,
                full_height: height,
                top: 0,
            })
        });
    }
    // Gray, 16-bit and float sources: converted once, in a fresh buffer.
    let image = DynamicImage::from_decoder(decoder).map_err(|_| RenderError::Undecodable)?;
    let (mut data, has_alpha) = if color.has_alpha() {
        (image.into_rgba8().into_raw(), true)
    } else {
        (image.into_rgb8().into_raw(), false)
    };
    f(Frame {
        data: &mut data,
        width,
        height,
        has_alpha,
        full_height: height,
        top: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> SourceLimits {
        SourceLimits {
            max_bytes: 1 << 20,
            max_width: 1000,
            max_height: 1000,
            max_pixels: 1_000_000,
            max_output_dimension: 1000,
        }
    }

    /// Whatever told the probe otherwise, a decoder that reads other
    /// dimensions than the probe is stopped before it sizes a buffer.
    #[test]
    fn a_decoder_that_disagrees_with_the_probe_is_stopped() {
        let image = image::RgbImage::from_pixel(64, 48, image::Rgb([10, 200, 30]));
        let mut jpeg = Vec::new();
        image::DynamicImage::ImageRgb8(image)
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        let mut probe = probe::probe(&jpeg, &limits()).unwrap();
        assert_eq!((probe.width, probe.height), (64, 48));
        let rows = (0.0, 48.0);
        assert!(decode(&jpeg, &probe, 1, rows, &limits(), |_| Ok(())).is_ok());
        probe.height = 12;
        for turbo in [true, false] {
            probe.turbo_decodable = turbo;
            let result = decode(&jpeg, &probe, 1, rows, &limits(), |_| Ok(()));
            assert_eq!(result, Err(RenderError::Inconsistent), "turbo: {turbo}");
        }
    }

    #[test]
    fn shrinks_as_far_as_the_output_allows() {
        assert_eq!(jpeg_shrink((4000.0, 3000.0), (800, 600)), 4);
        assert_eq!(jpeg_shrink((4000.0, 3000.0), (500, 375)), 8);
        assert_eq!(jpeg_shrink((4000.0, 2100.0), (1200, 630)), 2);
        assert_eq!(jpeg_shrink((4000.0, 3000.0), (2001, 1500)), 1);
        assert_eq!(jpeg_shrink((100.0, 100.0), (200, 200)), 1);
    }
}
