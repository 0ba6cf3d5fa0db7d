//! The final high-quality resize with fast_image_resize (SIMD convolution,
//! Lanczos3), straight from the decode buffer: the window is cropped on the
//! fly. Alpha is premultiplied in place in the decode buffer (no second
//! full-size copy) so edges do not darken, and divided out of the small
//! result. The resizer's scratch buffers are kept per render thread.

use std::cell::RefCell;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, MulDiv, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, RgbImage, RgbaImage};

use super::decode::Frame;
use super::orient::Rect;
use super::RenderError;

thread_local! {
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

pub fn resize(
    frame: Frame<'_>,
    window: Rect,
    width: u32,
    height: u32,
) -> Result<DynamicImage, RenderError> {
    let pixel_type = if frame.has_alpha {
        PixelType::U8x4
    } else {
        PixelType::U8x3
    };
    let mut source = Image::from_slice_u8(frame.width, frame.height, frame.data, pixel_type)
        .map_err(|_| RenderError::Undecodable)?;
    let mut target = Image::new(width, height, pixel_type);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        .crop(window.left, window.top, window.width, window.height)
        .use_alpha(false);
    if frame.has_alpha {
        MulDiv::default()
            .multiply_alpha_inplace(&mut source)
            .map_err(|_| RenderError::Encode)?;
    }
    RESIZER
        .with(|resizer| resizer.borrow_mut().resize(&source, &mut target, &options))
        .map_err(|_| RenderError::Encode)?;
    if frame.has_alpha {
        MulDiv::default()
            .divide_alpha_inplace(&mut target)
            .map_err(|_| RenderError::Encode)?;
    }
    let buffer = target.into_vec();
    let image = if frame.has_alpha {
        RgbaImage::from_raw(width, height, buffer).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(width, height, buffer).map(DynamicImage::ImageRgb8)
    };
    image.ok_or(RenderError::Encode)
}
