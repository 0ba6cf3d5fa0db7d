//! The image pipeline. CPU-bound and synchronous: it runs on the render pool.
//!
//! 1. Probe the header; refuse sources over the byte, width, height or pixel
//!    limits before any pixel buffer exists.
//! 2. Plan in upright coordinates (EXIF orientation, `r:` and `flip:` folded
//!    into one transform): crop, box, mode, gravity, `pad` canvas.
//! 3. Map the planned window back into the stored image and decode only as
//!    much as it needs: JPEGs at 1/2, 1/4 or 1/8 scale in the DCT domain.
//! 4. `smart` gravity places the window by edge energy on the decoded pixels.
//! 5. Lanczos3 resize of the window straight out of the decode buffer.
//! 6. On the small result: orientation, ICC → sRGB, pad, blur, sharpen, greyscale.
//! 7. Encode without metadata.

use image::DynamicImage;

use kiln_core::format::OutputFormat;
use kiln_core::limits::SourceLimits;
use kiln_core::options::{CropRect, FormatChoice, ImageOptions};

mod color;
mod decode;
mod effects;
pub mod encode;
#[cfg(test)]
mod fuzz_headers;
pub mod geometry;
use kiln_core::image_header::jpeg as jpeg_header;
mod orient;
mod probe;
mod resize;
mod smart;
#[cfg(test)]
mod tests;
mod turbo;

use crate::render_pool::Abandoned;
use geometry::Request;
use orient::{Rect, Transform};
use probe::SourceFormat;

/// A permanent failure: the same input will always fail, so it is remembered
/// and answered at once. Messages are shown to clients.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("source is larger than {0} bytes")]
    TooManyBytes(u64),
    #[error("source image is {width}x{height}, over the {limit}")]
    TooLarge {
        width: u32,
        height: u32,
        limit: String,
    },
    #[error("source is not a supported image (JPEG, PNG, WebP, GIF)")]
    Unsupported,
    #[error("source image could not be decoded")]
    Undecodable,
    /// The decoder read other dimensions than the header probe (a crafted file).
    #[error("source image headers are inconsistent")]
    Inconsistent,
    #[error("source image took longer than {0} s to render")]
    TimedOut(u64),
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

/// What the pipeline needs besides the source and the options.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub limits: SourceLimits,
    /// rav1e speed for AVIF output (`KILN_AVIF_SPEED`).
    pub avif_speed: u8,
    /// How long one render may take on its thread (`KILN_RENDER_TIMEOUT_MS`).
    pub render_timeout: std::time::Duration,
}

/// Checked between the pipeline's stages: a render past its time budget,
/// or whose job gave up on it, stops at the next stage instead of holding
/// its thread to the end. Each stage is bounded by the limits (pixels,
/// progressive scans), so a render overruns its budget by one stage at most.
pub struct Budget<'a> {
    deadline: std::time::Instant,
    limit: std::time::Duration,
    abandoned: &'a Abandoned<'a>,
}

impl<'a> Budget<'a> {
    pub fn start(limit: std::time::Duration, abandoned: &'a Abandoned<'a>) -> Self {
        Self {
            deadline: std::time::Instant::now() + limit,
            limit,
            abandoned,
        }
    }

    fn check(&self) -> Result<(), RenderError> {
        if self.abandoned.is_abandoned() || std::time::Instant::now() > self.deadline {
            return Err(RenderError::TimedOut(self.limit.as_secs().max(1)));
        }
        Ok(())
    }
}

pub struct Rendered {
    pub bytes: Vec<u8>,
    pub format: OutputFormat,
    pub width: u32,
    pub height: u32,
}

fn output_format(
    choice: Option<FormatChoice>,
    source: SourceFormat,
    has_alpha: bool,
) -> OutputFormat {
    match choice {
        Some(FormatChoice::Fixed(format)) => format,
        // `f:auto` is resolved by the api; were one to arrive, it is served
        // like a client that accepts nothing modern.
        Some(FormatChoice::Compatible | FormatChoice::Auto) if has_alpha => OutputFormat::Png,
        Some(FormatChoice::Compatible | FormatChoice::Auto) => OutputFormat::Jpeg,
        None => match source {
            SourceFormat::Jpeg => OutputFormat::Jpeg,
            SourceFormat::Webp => OutputFormat::Webp,
            // GIF (first frame) is not encoded: PNG keeps it lossless.
            SourceFormat::Png | SourceFormat::Gif => OutputFormat::Png,
        },
    }
}

fn rect(crop: CropRect) -> Rect {
    Rect {
        left: f64::from(crop.x),
        top: f64::from(crop.y),
        width: f64::from(crop.width),
        height: f64::from(crop.height),
    }
}

/// Scales a stored-image rectangle to a decoded frame (of another size, and
/// perhaps only a band of its rows) and keeps it inside the frame.
fn to_frame(r: Rect, scale: (f64, f64), frame: &decode::Frame<'_>) -> Rect {
    let (fw, fh) = (f64::from(frame.width), f64::from(frame.height));
    let width = (r.width * scale.0).clamp(1.0, fw);
    let height = (r.height * scale.1).clamp(1.0, fh);
    Rect {
        left: (r.left * scale.0).clamp(0.0, fw - width),
        top: (r.top * scale.1 - f64::from(frame.top)).clamp(0.0, fh - height),
        width,
        height,
    }
}

/// The stored rows a render reads: the window (or, for smart gravity, the
/// region it may move in), widened by the resampling filter's reach.
fn rows_needed(area: Rect, stored_height: f64, out_height: u32) -> decode::Rows {
    let ratio = (area.height / f64::from(out_height.max(1))).max(1.0);
    let margin = (3.0 * ratio).ceil() + 2.0;
    let top = (area.top - margin).max(0.0);
    let bottom = (area.top + area.height + margin).min(stored_height);
    (top, bottom - top)
}

fn to_srgb(image: &mut DynamicImage, icc: &[u8]) {
    match image {
        DynamicImage::ImageRgb8(rgb) => color::to_srgb(icc, rgb, false),
        DynamicImage::ImageRgba8(rgba) => color::to_srgb(icc, rgba, true),
        _ => {}
    }
}

/// A render outside the render pool (benches, tests): nobody abandons it,
/// and its budget is the configured render timeout.
pub fn render_alone(
    source: &[u8],
    options: &ImageOptions,
    settings: &Settings,
) -> Result<Rendered, RenderError> {
    let never = Abandoned::never();
    render(
        source,
        options,
        settings,
        &Budget::start(settings.render_timeout, &never),
    )
}

pub fn render(
    source: &[u8],
    options: &ImageOptions,
    settings: &Settings,
    budget: &Budget<'_>,
) -> Result<Rendered, RenderError> {
    let limits = &settings.limits;
    let probe = probe::probe(source, limits)?;
    budget.check()?;
    let transform = Transform::new(probe.orientation, options.rotate, options.flip);
    let (upright_w, upright_h) = transform.swap_dims(probe.width, probe.height);
    let crop = match options.crop {
        Some(crop) => {
            geometry::clamp_crop(crop, upright_w, upright_h).ok_or(RenderError::CropOutside)?
        }
        None => CropRect {
            x: 0,
            y: 0,
            width: upright_w,
            height: upright_h,
        },
    };
    let (box_width, box_height) = options.device_box(limits.max_output_dimension);
    let plan = geometry::plan(
        crop.width,
        crop.height,
        &Request {
            box_width,
            box_height,
            mode: options.mode,
            gravity: options.gravity,
            upscale: options.upscale,
            max_dimension: limits.max_output_dimension,
        },
    );

    // Back into the stored image's coordinates, where decoding happens.
    let stored = (f64::from(probe.width), f64::from(probe.height));
    let upright_window = Rect {
        left: f64::from(crop.x) + plan.window.left,
        top: f64::from(crop.y) + plan.window.top,
        ..plan.window
    };
    let window = transform.rect_to_stored(upright_window, stored);
    let region = transform.rect_to_stored(rect(crop), stored);
    let (out_w, out_h) = transform.swap_dims(plan.out_width, plan.out_height);
    let shrink = decode::jpeg_shrink((window.width, window.height), (out_w, out_h));
    let rows = rows_needed(if plan.smart { region } else { window }, stored.1, out_h);

    let mut image = decode::decode(source, &probe, shrink, rows, limits, |frame| {
        let scale = (
            f64::from(frame.width) / stored.0,
            f64::from(frame.full_height) / stored.1,
        );
        let mut window = to_frame(window, scale, &frame);
        if plan.smart {
            let region = to_frame(region, scale, &frame);
            (window.left, window.top) =
                smart::best_window(&frame, region, window.width, window.height);
        }
        budget.check()?;
        resize::resize(frame, window, out_w, out_h)
    })?;
    budget.check()?;

    image.apply_orientation(transform.as_orientation());
    if let Some(icc) = &probe.icc {
        to_srgb(&mut image, icc);
    }
    if let Some(canvas) = plan.canvas {
        image = effects::pad(&image, canvas, options.background);
    }
    if let Some(sigma) = options.blur {
        image = effects::blur(&image, sigma.get());
    }
    if let Some(sigma) = options.sharpen {
        image = effects::sharpen(&image, sigma.get());
    }
    if options.grayscale {
        image = effects::grayscale(&image);
    }
    let image = effects::drop_opaque_alpha(image);
    budget.check()?;

    let format = output_format(options.format, probe.format, image.color().has_alpha());
    let bytes = encode::encode(
        &image,
        &encode::EncodeParams {
            format,
            quality: options.quality,
            background: options.background,
            avif_speed: settings.avif_speed,
        },
    )?;
    Ok(Rendered {
        bytes,
        format,
        width: image.width(),
        height: image.height(),
    })
}
