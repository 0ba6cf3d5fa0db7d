//! The whole pipeline on generated images: sizes per mode, which region
//! survives, orientation, colour management, guards, formats, and a visual
//! comparison of the shrink-on-load path against an independent full-size
//! reference render.

use image::codecs::gif::GifEncoder;
use image::{DynamicImage, Frame as GifFrame, GenericImageView, ImageFormat, Rgb, RgbImage};
use image::{Rgba, RgbaImage};

use kiln_core::format::OutputFormat;
use kiln_core::limits::SourceLimits;
use kiln_core::options::ImageOptions;

use super::{jpeg_header, render_alone as render, RenderError, Rendered, Settings};

const RED: [u8; 3] = [220, 30, 30];
const BLUE: [u8; 3] = [30, 30, 220];

fn settings() -> Settings {
    Settings {
        limits: SourceLimits {
            max_bytes: 20 << 20,
            max_width: 10_000,
            max_height: 10_000,
            max_pixels: 50_000_000,
            max_output_dimension: 4096,
        },
        avif_speed: 10,
        render_timeout: std::time::Duration::from_secs(60),
    }
}

fn jpeg(image: &RgbImage) -> Vec<u8> {
    let pixels = image.as_raw();
    let width = image.width() as usize;
    turbojpeg::compress(
        turbojpeg::Image {
            pixels: pixels.as_slice(),
            width,
            pitch: width * 3,
            height: image.height() as usize,
            format: turbojpeg::PixelFormat::RGB,
        },
        95,
        turbojpeg::Subsamp::None,
    )
    .unwrap()
    .to_vec()
}

fn png(image: &DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Inserts an APPn segment right after the JPEG's SOI marker.
fn with_segment(jpeg: &[u8], marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, marker]);
    out.extend(u16::try_from(payload.len() + 2).unwrap().to_be_bytes());
    out.extend(payload);
    out.extend(&jpeg[2..]);
    out
}

/// An APP1 EXIF block holding only an orientation tag.
fn exif_orientation(value: u16) -> Vec<u8> {
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08\0\x01".to_vec();
    exif.extend([0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1]);
    exif.extend(value.to_be_bytes());
    exif.extend([0, 0, 0, 0, 0, 0]);
    exif
}

/// An ICC v2 display profile with sRGB primaries and a linear (gamma 1.0)
/// tone curve: a mid grey of 128 in it is about 188 in sRGB.
fn linear_icc() -> Vec<u8> {
    let xyz = |v: [f64; 3]| {
        let mut tag = b"XYZ \0\0\0\0".to_vec();
        for c in v {
            tag.extend(((c * 65536.0).round() as i32).to_be_bytes());
        }
        tag
    };
    let curve = b"curv\0\0\0\0\0\0\0\x01\x01\x00\0\0".to_vec();
    let tags: Vec<(&[u8; 4], Vec<u8>)> = vec![
        (b"rXYZ", xyz([0.4361, 0.2225, 0.0139])),
        (b"gXYZ", xyz([0.3851, 0.7169, 0.0971])),
        (b"bXYZ", xyz([0.1431, 0.0606, 0.7141])),
        (b"wtpt", xyz([0.9642, 1.0, 0.8249])),
        (b"rTRC", curve.clone()),
        (b"gTRC", curve.clone()),
        (b"bTRC", curve),
        (b"desc", b"desc\0\0\0\0\0\0\0\x0cLinear test\0".to_vec()),
    ];
    let mut header = vec![0u8; 128];
    header[8..12].copy_from_slice(&[2, 0x10, 0, 0]);
    header[12..16].copy_from_slice(b"mntr");
    header[16..20].copy_from_slice(b"RGB ");
    header[20..24].copy_from_slice(b"XYZ ");
    header[36..40].copy_from_slice(b"acsp");
    let mut table = u32::try_from(tags.len()).unwrap().to_be_bytes().to_vec();
    let mut data = Vec::new();
    let data_start = 128 + 4 + 12 * tags.len();
    for (signature, tag) in &tags {
        table.extend(*signature);
        table.extend(
            u32::try_from(data_start + data.len())
                .unwrap()
                .to_be_bytes(),
        );
        table.extend(u32::try_from(tag.len()).unwrap().to_be_bytes());
        data.extend(tag);
        while data.len() % 4 != 0 {
            data.push(0);
        }
    }
    let mut icc = header;
    icc.extend(table);
    icc.extend(data);
    let size = u32::try_from(icc.len()).unwrap().to_be_bytes();
    icc[..4].copy_from_slice(&size);
    icc
}

/// Left half red, right half blue.
fn halves(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, _| {
        Rgb(if x < width / 2 { RED } else { BLUE })
    })
}

/// Top half red, bottom half blue.
fn bands(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |_, y| {
        Rgb(if y < height / 2 { RED } else { BLUE })
    })
}

/// A smooth, detailed test picture (gradients and rings), deterministic.
fn photo(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (
            f64::from(x) / f64::from(width),
            f64::from(y) / f64::from(height),
        );
        let ring = ((fx - 0.4).hypot(fy - 0.6) * 60.0).sin() * 0.5 + 0.5;
        Rgb([
            (fx * 255.0) as u8,
            (ring * 255.0) as u8,
            ((1.0 - fy) * 200.0 + ring * 55.0) as u8,
        ])
    })
}

fn run(source: &[u8], options: &str) -> Result<(Rendered, DynamicImage), RenderError> {
    let options = if options.is_empty() { "0x0" } else { options };
    let options = ImageOptions::parse(options).expect("valid options");
    let rendered = render(source, &options, &settings())?;
    let decoded = image::load_from_memory(&rendered.bytes).expect("output decodes");
    assert_eq!(
        (decoded.width(), decoded.height()),
        (rendered.width, rendered.height)
    );
    Ok((rendered, decoded))
}

fn size(source: &[u8], options: &str) -> (u32, u32) {
    run(source, options).unwrap().1.dimensions()
}

fn pixel(image: &DynamicImage, x: u32, y: u32) -> [u8; 3] {
    let p = image.get_pixel(x, y).0;
    [p[0], p[1], p[2]]
}

fn close(actual: [u8; 3], expected: [u8; 3], tolerance: u8) -> bool {
    actual
        .iter()
        .zip(expected)
        .all(|(a, e)| a.abs_diff(e) <= tolerance)
}

fn assert_colour(image: &DynamicImage, x: u32, y: u32, expected: [u8; 3]) {
    let actual = pixel(image, x, y);
    assert!(
        close(actual, expected, 24),
        "pixel ({x}, {y}) is {actual:?}, expected about {expected:?}"
    );
}

#[test]
fn every_mode_produces_its_size() {
    let source = jpeg(&photo(1600, 1200));
    assert_eq!(size(&source, "400x400"), (400, 300));
    assert_eq!(size(&source, "400x400,fill"), (400, 400));
    assert_eq!(size(&source, "400x400,pad,bg:ffffff"), (400, 400));
    assert_eq!(size(&source, "400x100,force"), (400, 100));
    assert_eq!(size(&source, "0x300"), (400, 300));
    assert_eq!(size(&source, "400x400,dpr:2"), (800, 600));
    assert_eq!(size(&source, "400x400,fill,dpr:1.5"), (600, 600));
    // No enlargement without `up`; with it, fit grows to the box.
    assert_eq!(size(&source, "3000x3000"), (1600, 1200));
    assert_eq!(size(&source, "2000x2000,up"), (2000, 1500));
    // The crop happens first, in source pixels.
    assert_eq!(size(&source, "crop:100:100:500:300"), (500, 300));
    // Rotation swaps the sides.
    assert_eq!(size(&source, "400x400,r:90"), (300, 400));
}

#[test]
fn gravity_decides_which_region_survives() {
    let wide = jpeg(&halves(800, 200));
    let (_, west) = run(&wide, "100x100,fill,g:w").unwrap();
    assert_colour(&west, 50, 50, RED);
    assert_colour(&west, 95, 50, RED);
    let (_, east) = run(&wide, "100x100,fill,g:e").unwrap();
    assert_colour(&east, 5, 50, BLUE);
    let (_, focal) = run(&wide, "100x100,fill,fp:0.9:0.5").unwrap();
    assert_colour(&focal, 5, 50, BLUE);
    let (_, focal) = run(&wide, "100x100,fill,fp:0.1:0.5").unwrap();
    assert_colour(&focal, 95, 50, RED);
    // The centre window straddles the halves.
    let (_, centre) = run(&wide, "100x100,fill").unwrap();
    assert_colour(&centre, 5, 50, RED);
    assert_colour(&centre, 95, 50, BLUE);

    let tall = jpeg(&bands(200, 800));
    let (_, north) = run(&tall, "100x100,fill,g:n").unwrap();
    assert_colour(&north, 50, 95, RED);
    let (_, south) = run(&tall, "100x100,fill,g:sw").unwrap();
    assert_colour(&south, 50, 5, BLUE);
}

#[test]
fn smart_gravity_keeps_the_detailed_part() {
    // Flat on the left, a checkerboard on the right.
    let image = RgbImage::from_fn(900, 300, |x, y| {
        if x < 600 {
            Rgb([120, 120, 120])
        } else if (x / 6 + y / 6) % 2 == 0 {
            Rgb([0, 0, 0])
        } else {
            Rgb([255, 255, 255])
        }
    });
    let (_, out) = run(&png(&DynamicImage::ImageRgb8(image)), "150x150,fill,smart").unwrap();
    let grey = (0..150)
        .flat_map(|x| (0..150).map(move |y| (x, y)))
        .filter(|(x, y)| close(pixel(&out, *x, *y), [120, 120, 120], 3))
        .count();
    assert!(grey < 150 * 150 / 10, "{grey} flat pixels survived");
}

#[test]
fn pad_places_the_image_by_gravity_on_the_background() {
    let source = jpeg(&RgbImage::from_pixel(400, 200, Rgb(RED)));
    let (_, out) = run(&source, "200x200,pad,bg:0000ff").unwrap();
    assert_colour(&out, 100, 10, [0, 0, 255]);
    assert_colour(&out, 100, 100, RED);
    assert_colour(&out, 100, 190, [0, 0, 255]);
    let (_, north) = run(&source, "200x200,pad,bg:0000ff,g:n").unwrap();
    assert_colour(&north, 100, 10, RED);
    assert_colour(&north, 100, 190, [0, 0, 255]);
    // Without a background the bars are transparent (PNG keeps them).
    let (rendered, clear) = run(&source, "200x200,pad,f:png").unwrap();
    assert_eq!(rendered.format, OutputFormat::Png);
    assert_eq!(clear.get_pixel(100, 5).0[3], 0);
}

#[test]
fn exif_rotated_photos_come_out_upright() {
    // Stored sideways: left half red. EXIF 6 says "rotate 90° clockwise to
    // view", so upright the red half is on top.
    let stored = jpeg(&halves(200, 100));
    let source = with_segment(&stored, 0xE1, &exif_orientation(6));
    let (_, out) = run(&source, "").unwrap();
    assert_eq!(out.dimensions(), (100, 200));
    assert_colour(&out, 50, 20, RED);
    assert_colour(&out, 50, 180, BLUE);
    // `r:` and `flip:` apply after the EXIF orientation.
    let (_, turned) = run(&source, "r:180").unwrap();
    assert_colour(&turned, 50, 20, BLUE);
    let (_, flipped) = run(&source, "flip:v").unwrap();
    assert_colour(&flipped, 50, 20, BLUE);
    let (_, plain) = run(&stored, "r:90").unwrap();
    assert_colour(&plain, 50, 20, RED);
    // Shrink-on-load and a fill window work in upright coordinates too.
    let big = with_segment(&jpeg(&halves(1600, 800)), 0xE1, &exif_orientation(6));
    let (_, top) = run(&big, "100x100,fill,g:n").unwrap();
    assert_colour(&top, 50, 50, RED);
}

#[test]
fn embedded_icc_profiles_are_converted_to_srgb() {
    let grey = jpeg(&RgbImage::from_pixel(64, 64, Rgb([128, 128, 128])));
    let (_, untagged) = run(&grey, "").unwrap();
    assert!(close(pixel(&untagged, 32, 32), [128, 128, 128], 2));
    let mut icc = b"ICC_PROFILE\0\x01\x01".to_vec();
    icc.extend(linear_icc());
    let (rendered, converted) = run(&with_segment(&grey, 0xE2, &icc), "").unwrap();
    let [r, g, b] = pixel(&converted, 32, 32);
    assert!(
        [r, g, b].iter().all(|c| c.abs_diff(188) <= 4),
        "{:?}",
        [r, g, b]
    );
    // The output carries neither the profile nor any EXIF.
    let header = jpeg_header::read(&rendered.bytes).unwrap();
    assert!(header.icc.is_none() && header.exif.is_none());
}

#[test]
fn outputs_are_progressive_jpeg_webp_avif_and_png() {
    let source = jpeg(&photo(640, 480));
    let (jpeg_out, _) = run(&source, "320x320").unwrap();
    // SOF2: progressive DCT.
    assert!(jpeg_out.bytes.windows(2).any(|w| w == [0xFF, 0xC2]));
    let (webp_out, _) = run(&source, "320x320,f:webp").unwrap();
    assert_eq!(&webp_out.bytes[8..12], b"WEBP");
    assert_eq!(webp_out.format, OutputFormat::Webp);
    let options = ImageOptions::parse("320x320,f:avif").unwrap();
    let avif_out = render(&source, &options, &settings()).unwrap();
    assert_eq!(&avif_out.bytes[4..12], b"ftypavif");
    assert_eq!((avif_out.width, avif_out.height), (320, 240));
    let (png_out, _) = run(&source, "320x320,f:png").unwrap();
    assert_eq!(&png_out.bytes[1..4], b"PNG");
    // Quality changes the JPEG size.
    let (low, _) = run(&source, "320x320,q:30").unwrap();
    assert!(low.bytes.len() < jpeg_out.bytes.len());
}

#[test]
fn compat_picks_png_only_for_real_transparency() {
    let clear = RgbaImage::from_fn(100, 100, |x, _| {
        Rgba([10, 200, 10, if x < 50 { 0 } else { 255 }])
    });
    let (rendered, _) = run(
        &png(&DynamicImage::ImageRgba8(clear.clone())),
        "50x50,f:compat",
    )
    .unwrap();
    assert_eq!(rendered.format, OutputFormat::Png);
    let opaque = RgbaImage::from_pixel(100, 100, Rgba([10, 200, 10, 255]));
    let (rendered, _) = run(&png(&DynamicImage::ImageRgba8(opaque)), "50x50,f:compat").unwrap();
    assert_eq!(rendered.format, OutputFormat::Jpeg);
    // Transparency flattened for JPEG onto `bg:`.
    let (_, flat) = run(&png(&DynamicImage::ImageRgba8(clear)), "f:jpeg,bg:ff0000").unwrap();
    assert_colour(&flat, 10, 50, [255, 0, 0]);
    assert_colour(&flat, 90, 50, [10, 200, 10]);
}

#[test]
fn animated_gifs_give_their_first_frame() {
    let mut gif = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut gif);
        for colour in [RED, BLUE] {
            let frame = RgbaImage::from_pixel(40, 40, Rgba([colour[0], colour[1], colour[2], 255]));
            encoder.encode_frame(GifFrame::new(frame)).unwrap();
        }
    }
    let (rendered, out) = run(&gif, "20x20").unwrap();
    assert_eq!(rendered.format, OutputFormat::Png);
    assert_colour(&out, 10, 10, RED);
}

#[test]
fn blur_and_sharpen_change_edges_the_right_way() {
    let source = png(&DynamicImage::ImageRgb8(halves(200, 100)));
    let edge = |image: &DynamicImage| pixel(image, 98, 50)[2].abs_diff(pixel(image, 101, 50)[2]);
    let (_, plain) = run(&source, "").unwrap();
    let (_, blurred) = run(&source, "blur:4").unwrap();
    assert!(edge(&blurred) < edge(&plain) / 2);
    let (_, sharpened) = run(&photo_png(), "sharpen:1").unwrap();
    let (_, reference) = run(&photo_png(), "").unwrap();
    assert_ne!(sharpened.as_bytes(), reference.as_bytes());
}

fn photo_png() -> Vec<u8> {
    png(&DynamicImage::ImageRgb8(photo(200, 150)))
}

#[test]
fn guards_refuse_from_the_header() {
    // A 57-byte PNG claiming 100 000 × 100 000: refused before any decoding.
    let mut bomb = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = 100_000u32.to_be_bytes().repeat(2);
    ihdr.extend([8, 2, 0, 0, 0]);
    for (kind, data) in [
        (&b"IHDR"[..], &ihdr[..]),
        (b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]),
        (b"IEND", &[]),
    ] {
        let typed = [kind, data].concat();
        bomb.extend(u32::try_from(data.len()).unwrap().to_be_bytes());
        bomb.extend(&typed);
        bomb.extend(crc32fast::hash(&typed).to_be_bytes());
    }
    let options = ImageOptions::parse("100x100").unwrap();
    let err = render(&bomb, &options, &settings()).err().unwrap();
    assert!(
        matches!(err, RenderError::TooLarge { width: 100_000, .. }),
        "{err:?}"
    );
    assert_eq!(err.http_status(), 422);

    let mut limited = settings();
    limited.limits.max_pixels = 1200;
    let source = jpeg(&photo(40, 30));
    assert!(render(&source, &options, &limited).is_ok());
    limited.limits.max_pixels = 1199;
    assert!(matches!(
        render(&source, &options, &limited),
        Err(RenderError::TooLarge { .. })
    ));
    let mut narrow = settings();
    narrow.limits.max_width = 39;
    assert!(matches!(
        render(&source, &options, &narrow),
        Err(RenderError::TooLarge { .. })
    ));
    let mut small = settings();
    small.limits.max_bytes = 100;
    assert_eq!(
        render(&source, &options, &small).err(),
        Some(RenderError::TooManyBytes(100))
    );
    assert_eq!(
        render(b"<svg></svg>", &options, &settings()).err(),
        Some(RenderError::Unsupported)
    );
    // A truncated JPEG header is undecodable, not a panic.
    assert_eq!(
        render(&source[..20], &options, &settings()).err(),
        Some(RenderError::Undecodable)
    );
}

#[test]
fn output_size_is_capped() {
    let source = jpeg(&photo(100, 50));
    assert_eq!(size(&source, "8000x8000,up"), (4096, 2048));
}

/// Peak signal-to-noise ratio of two same-sized RGB images, in dB.
fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let mse = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-9)).log10()
}

#[test]
fn shrink_on_load_matches_a_full_size_reference_render() {
    // Reference: decode at full size, Lanczos3 resize in the `image` crate —
    // a different decoder, no DCT scaling, a different resampler.
    let source = jpeg(&photo(3200, 2400));
    let full = image::load_from_memory(&source).unwrap().to_rgb8();
    let reference = image::imageops::resize(&full, 400, 300, image::imageops::FilterType::Lanczos3);
    let (_, out) = run(&source, "400x400,q:95").unwrap();
    let out = out.to_rgb8();
    assert_eq!(out.dimensions(), (400, 300));
    let score = psnr(&out, &reference);
    assert!(score > 32.0, "PSNR {score:.1} dB against the reference");
    // And a wrong render (another crop) is far below that.
    let (_, shifted) = run(&source, "400x300,fill,crop:100:0:3100:2400").unwrap();
    assert!(psnr(&shifted.to_rgb8(), &reference) < 25.0);
}

#[test]
fn a_band_decoded_fill_matches_a_full_decode_reference() {
    // fill 300x100 (south) on 1600x1200 keeps rows 800..1200 at half scale:
    // only that band is decoded. Reference: full decode, crop, resize.
    let photo = photo(1600, 1200);
    let source = jpeg(&photo);
    let full = image::load_from_memory(&source).unwrap().to_rgb8();
    let band = image::imageops::crop_imm(&full, 0, 800, 1600, 400).to_image();
    let reference = image::imageops::resize(&band, 300, 75, image::imageops::FilterType::Lanczos3);
    let (_, out) = run(&source, "300x75,fill,g:s,q:95").unwrap();
    let score = psnr(&out.to_rgb8(), &reference);
    assert!(score > 30.0, "PSNR {score:.1} dB against the reference");
    let (_, north) = run(&source, "300x75,fill,g:n,q:95").unwrap();
    assert!(psnr(&north.to_rgb8(), &reference) < 25.0);
}

#[test]
fn the_decoy_file_shows_zune_jpeg_the_real_frame() {
    // The attack is real: the `image` crate's decoder reads 65535×65535,
    // while the header scan refuses the file.
    let decoy = kiln_e2e::crafted::decoy_frame_jpeg();
    let decoder = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(&decoy)).unwrap();
    assert_eq!(image::ImageDecoder::dimensions(&decoder), (65535, 65535));
    assert!(jpeg_header::read(&decoy).is_none());
}
