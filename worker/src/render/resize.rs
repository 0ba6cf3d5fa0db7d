//! The final high-quality resize with fast_image_resize (SIMD convolution,
//! Lanczos3), straight from the decode buffer: the window is cropped on the
//! fly, alpha premultiplied during the resize so edges do not darken. The
//! resizer's scratch buffers are kept per render thread.

use std::cell::RefCell;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage, RgbaImage};

use super::decode::Frame;
use super::orient::Rect;
use super::RenderError;

thread_local! {
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

pub fn resize(
    frame: &Frame<'_>,
    window: Rect,
    width: u32,
    height: u32,
) -> Result<DynamicImage, RenderError> {
    let pixel_type = if frame.has_alpha {
        PixelType::U8x4
    } else {
        PixelType::U8x3
    };
    let source = ImageRef::new(frame.width, frame.height, frame.data, pixel_type)
        .map_err(|_| RenderError::Undecodable)?;
    let mut target = Image::new(width, height, pixel_type);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(window.left, window.top, window.width, window.height);
    RESIZER
        .with(|resizer| resizer.borrow_mut().resize(&source, &mut target, &options))
        .map_err(|_| RenderError::Encode)?;
    let buffer = target.into_vec();
    let image = if frame.has_alpha {
        RgbaImage::from_raw(width, height, buffer).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(width, height, buffer).map(DynamicImage::ImageRgb8)
    };
    image.ok_or(RenderError::Encode)
}
