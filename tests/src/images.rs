//! Test images made on the fly (no binary fixtures needed).

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};

/// A photo-like RGB image: smooth gradients and a few hard edges.
pub fn photo(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let ripple = ((fx * 40.0).sin() * (fy * 30.0).cos() * 40.0) as i32;
        image::Rgb([
            (fx * 200.0) as u8,
            (fy * 200.0) as u8,
            (128 + ripple).clamp(0, 255) as u8,
        ])
    })
}

pub fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, format)
        .expect("encoding a test image");
    out.into_inner()
}

pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encode(
        DynamicImage::ImageRgb8(photo(width, height)),
        ImageFormat::Jpeg,
    )
}

/// A photo-like opaque PNG (slow to decode when large: no shrink-on-load).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    encode(
        DynamicImage::ImageRgb8(photo(width, height)),
        ImageFormat::Png,
    )
}

pub fn png_with_alpha(width: u32, height: u32) -> Vec<u8> {
    let image = RgbaImage::from_fn(width, height, |x, _| {
        image::Rgba([200, 30, 30, (x * 255 / width) as u8])
    });
    encode(DynamicImage::ImageRgba8(image), ImageFormat::Png)
}

/// A PNG whose header claims 100 000 × 100 000 pixels with almost no data:
/// a decompression bomb that must be refused from the header alone.
pub fn png_bomb() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc_input);
        out.extend_from_slice(&crc32fast::hash(&crc_input).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

/// Decodes a response body, returning its format and dimensions.
pub fn inspect(bytes: &[u8]) -> (ImageFormat, u32, u32) {
    let format = image::guess_format(bytes).expect("a known image format");
    let image = image::load_from_memory(bytes).expect("a decodable image");
    (format, image.width(), image.height())
}

/// An incompressible PNG (pseudo-random pixels from `seed`): its file is
/// as large as its pixels, for tests about bytes held in memory.
pub fn noise_png(width: u32, height: u32, seed: u64) -> Vec<u8> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder as _;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let pixels: Vec<u8> = (0..width as usize * height as usize * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let mut out = Vec::with_capacity(pixels.len() + 1024);
    PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::NoFilter)
        .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
        .expect("encoding a noise PNG");
    out
}
