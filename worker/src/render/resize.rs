//! Resampling with fast_image_resize (SIMD convolution, Lanczos3), alpha
//! premultiplied during the resize so edges do not darken.

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage, RgbaImage};

use super::geometry::Plan;
use super::RenderError;

pub fn resize(image: DynamicImage, plan: &Plan) -> Result<DynamicImage, RenderError> {
    let has_alpha = image.color().has_alpha();
    // Normalise to 8-bit RGB(A): the encoders and the resizer agree on it.
    let source = if has_alpha {
        DynamicImage::ImageRgba8(image.into_rgba8())
    } else {
        DynamicImage::ImageRgb8(image.into_rgb8())
    };
    let w = plan.window;
    let untouched = w.left == 0.0
        && w.top == 0.0
        && w.width == f64::from(source.width())
        && w.height == f64::from(source.height())
        && plan.out_width == source.width()
        && plan.out_height == source.height();
    if untouched {
        return Ok(source);
    }
    let pixel_type = if has_alpha {
        fast_image_resize::PixelType::U8x4
    } else {
        fast_image_resize::PixelType::U8x3
    };
    let mut target = Image::new(plan.out_width, plan.out_height, pixel_type);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(w.left, w.top, w.width, w.height);
    Resizer::new()
        .resize(&source, &mut target, &options)
        .map_err(|_| RenderError::Encode)?;
    let (width, height) = (target.width(), target.height());
    let buffer = target.into_vec();
    let image = if has_alpha {
        RgbaImage::from_raw(width, height, buffer).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(width, height, buffer).map(DynamicImage::ImageRgb8)
    };
    image.ok_or(RenderError::Encode)
}
