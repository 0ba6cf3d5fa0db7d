//! What happens to the resized image: padding onto a canvas, blur, sharpen,
//! and flattening transparency onto a background.

use image::{imageops, DynamicImage, Rgb, RgbImage, Rgba, RgbaImage};

use super::geometry::Canvas;

const WHITE: [u8; 3] = [255, 255, 255];

/// Composites `image` over an opaque `background`.
pub fn flatten(image: &DynamicImage, background: [u8; 3]) -> RgbImage {
    match image {
        DynamicImage::ImageRgba8(rgba) => {
            let mut out = RgbImage::new(rgba.width(), rgba.height());
            for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
                let [r, g, b, a] = src.0;
                let a = u16::from(a);
                let over = |c: u8, bg: u8| {
                    ((u16::from(c) * a + u16::from(bg) * (255 - a) + 127) / 255) as u8
                };
                *dst = Rgb([
                    over(r, background[0]),
                    over(g, background[1]),
                    over(b, background[2]),
                ]);
            }
            out
        }
        other => other.to_rgb8(),
    }
}

/// JPEG has no alpha: transparency goes onto `bg:`, or white.
pub fn flatten_for_jpeg(image: &DynamicImage, background: Option<[u8; 3]>) -> RgbImage {
    flatten(image, background.unwrap_or(WHITE))
}

/// `pad`: the image on a canvas of the background colour, or on a
/// transparent canvas when no `bg:` was given.
pub fn pad(image: &DynamicImage, canvas: Canvas, background: Option<[u8; 3]>) -> DynamicImage {
    let (x, y) = (i64::from(canvas.x), i64::from(canvas.y));
    match background {
        Some(bg) => {
            let mut out = RgbImage::from_pixel(canvas.width, canvas.height, Rgb(bg));
            imageops::replace(&mut out, &flatten(image, bg), x, y);
            DynamicImage::ImageRgb8(out)
        }
        None => {
            let mut out = RgbaImage::from_pixel(canvas.width, canvas.height, Rgba([0, 0, 0, 0]));
            imageops::replace(&mut out, &image.to_rgba8(), x, y);
            DynamicImage::ImageRgba8(out)
        }
    }
}

/// Drops an alpha channel that is fully opaque, so `f:compat` picks JPEG and
/// encoders do less work.
pub fn drop_opaque_alpha(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageRgba8(rgba) if rgba.pixels().all(|p| p.0[3] == 255) => {
            DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(rgba).into_rgb8())
        }
        other => other,
    }
}

pub fn blur(image: &DynamicImage, sigma: f32) -> DynamicImage {
    image.fast_blur(sigma)
}

/// Unsharp mask of radius `sigma`; changes under 2 levels are left alone so
/// flat areas do not turn grainy.
pub fn sharpen(image: &DynamicImage, sigma: f32) -> DynamicImage {
    image.unsharpen(sigma, 2)
}

/// Luma (Rec. 601, as `image` computes it) in every channel, alpha kept; the
/// result stays RGB(A) so every encoder takes it as before.
pub fn grayscale(image: &DynamicImage) -> DynamicImage {
    if image.color().has_alpha() {
        DynamicImage::ImageRgba8(DynamicImage::ImageLumaA8(image.to_luma_alpha8()).to_rgba8())
    } else {
        DynamicImage::ImageRgb8(DynamicImage::ImageLuma8(image.to_luma8()).to_rgb8())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparency_is_flattened_onto_the_background() {
        let rgba = RgbaImage::from_pixel(2, 1, Rgba([0, 0, 0, 0]));
        let flat = flatten(&DynamicImage::ImageRgba8(rgba), [10, 20, 30]);
        assert_eq!(flat.get_pixel(0, 0).0, [10, 20, 30]);
        let half = RgbaImage::from_pixel(1, 1, Rgba([255, 255, 255, 128]));
        let flat = flatten(&DynamicImage::ImageRgba8(half), [0, 0, 0]);
        assert_eq!(flat.get_pixel(0, 0).0, [128, 128, 128]);
    }

    #[test]
    fn grayscale_keeps_alpha_and_equalises_channels() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([255, 0, 0, 128]));
        rgba.put_pixel(1, 0, image::Rgba([0, 0, 255, 255]));
        let gray = grayscale(&DynamicImage::ImageRgba8(rgba)).to_rgba8();
        for px in gray.pixels() {
            assert_eq!(px[0], px[1]);
            assert_eq!(px[1], px[2]);
        }
        assert_eq!(gray.get_pixel(0, 0)[3], 128);
        assert!(
            gray.get_pixel(0, 0)[0] > gray.get_pixel(1, 0)[0],
            "red is lighter than blue"
        );
    }

    #[test]
    fn pad_places_the_image_on_the_canvas() {
        let red = DynamicImage::ImageRgb8(RgbImage::from_pixel(2, 2, Rgb([255, 0, 0])));
        let canvas = Canvas {
            width: 4,
            height: 2,
            x: 2,
            y: 0,
        };
        let padded = pad(&red, canvas, Some([0, 0, 255])).to_rgb8();
        assert_eq!(padded.get_pixel(0, 0).0, [0, 0, 255]);
        assert_eq!(padded.get_pixel(3, 1).0, [255, 0, 0]);
        let clear = pad(&red, canvas, None).to_rgba8();
        assert_eq!(clear.get_pixel(0, 0).0[3], 0);
        assert_eq!(clear.get_pixel(2, 0).0, [255, 0, 0, 255]);
    }

    #[test]
    fn opaque_alpha_is_dropped_and_real_alpha_kept() {
        let opaque = DynamicImage::ImageRgba8(RgbaImage::from_pixel(1, 1, Rgba([1, 2, 3, 255])));
        assert!(!drop_opaque_alpha(opaque).color().has_alpha());
        let clear = DynamicImage::ImageRgba8(RgbaImage::from_pixel(1, 1, Rgba([1, 2, 3, 0])));
        assert!(drop_opaque_alpha(clear).color().has_alpha());
    }
}
