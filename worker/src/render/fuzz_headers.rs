//! Fuzzing the pipeline with crafted files (proptest): byte mutations of
//! small JPEGs (baseline, progressive, the review's decoy frame, repeated
//! scans), PNGs and WebPs, generated here.
//!
//! - differential: where the header scan and a decoder (libjpeg-turbo or
//!   zune-jpeg) both read a JPEG's frame, they read the same size — the
//!   scan refuses whatever structure the decoders could read differently;
//! - the whole render of any mutation ends in an image or an error, never a
//!   panic, within small limits (so no mutation can make it allocate much).
//!
//! `PROPTEST_CASES=100000 cargo test --release -p kiln-worker --lib fuzz_headers`
//! runs a campaign.

use proptest::prelude::*;
use proptest::sample::{select, Index};

use kiln_core::limits::SourceLimits;
use kiln_core::options::ImageOptions;

use super::turbo::Turbo;
use super::{render_alone, Settings};
use kiln_core::image_header::jpeg as jpeg_header;
use kiln_e2e::crafted::decoy_frame_jpeg;

fn jpeg(progressive: bool) -> Vec<u8> {
    let pixels: Vec<u8> = (0..24 * 16)
        .flat_map(|i| [(i * 7 % 256) as u8, (i * 13 % 256) as u8, 90])
        .collect();
    let mut compressor = turbojpeg::Compressor::new().expect("compressor");
    let _ = compressor.set_progressive(progressive);
    let _ = compressor.set_subsamp(turbojpeg::Subsamp::Sub2x2);
    compressor
        .compress_to_vec(turbojpeg::Image {
            pixels: pixels.as_slice(),
            width: 24,
            pitch: 24 * 3,
            height: 16,
            format: turbojpeg::PixelFormat::RGB,
        })
        .expect("a JPEG")
}

/// A progressive JPEG whose last scan is repeated 200 times.
fn repeated_scans() -> Vec<u8> {
    let jpeg = jpeg(true);
    let last = (0..jpeg.len() - 1)
        .rev()
        .find(|&i| jpeg[i] == 0xFF && jpeg[i + 1] == 0xDA)
        .unwrap_or(0);
    let end = jpeg.len() - 2;
    let mut out = jpeg[..end].to_vec();
    for _ in 0..200 {
        out.extend_from_slice(&jpeg[last..end]);
    }
    out.extend([0xFF, 0xD9]);
    out
}

fn encoded(format: image::ImageFormat) -> Vec<u8> {
    let image = image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(20, 12, |x, y| {
        image::Rgba([x as u8 * 12, y as u8 * 20, 128, 200])
    }));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encoding a seed");
    out.into_inner()
}

fn seeds() -> Vec<Vec<u8>> {
    vec![
        jpeg(false),
        jpeg(true),
        decoy_frame_jpeg(),
        repeated_scans(),
        encoded(image::ImageFormat::Png),
        encoded(image::ImageFormat::WebP),
    ]
}

/// A seed with up to eight byte edits: flips, insertions (often 0xFF and
/// marker bytes), deletions, and a short run copied from elsewhere.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let bytes = prop_oneof![
        any::<u8>(),
        select(vec![
            0xFFu8, 0xD0, 0xD8, 0xD9, 0xDA, 0xC0, 0xC2, 0xC4, 0xDB, 0x01, 0x00
        ]),
    ];
    let edits = prop::collection::vec((any::<Index>(), 0u8..4, bytes, any::<Index>()), 0..8);
    (select(seeds()), edits).prop_map(|(mut data, edits)| {
        for (at, op, byte, from) in edits {
            let pos = at.index(data.len() + 1);
            match op {
                0 => data.insert(pos, byte),
                1 if pos < data.len() => {
                    data.remove(pos);
                }
                2 if pos < data.len() => data[pos] ^= byte | 1,
                _ => {
                    let start = from.index(data.len().max(1));
                    let run: Vec<u8> = data.iter().skip(start).take(6).copied().collect();
                    for (i, b) in run.into_iter().enumerate() {
                        data.insert((pos + i).min(data.len()), b);
                    }
                }
            }
        }
        data
    })
}

fn settings() -> Settings {
    Settings {
        limits: SourceLimits {
            max_bytes: 1 << 20,
            max_width: 2000,
            max_height: 2000,
            max_pixels: 1_000_000,
            max_output_dimension: 256,
        },
        avif_speed: 10,
        render_timeout: std::time::Duration::from_secs(10),
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn the_header_scan_and_the_decoders_read_one_frame(data in mutated()) {
        let Some(scan) = jpeg_header::read(&data) else {
            return Ok(());
        };
        let mut turbo = Turbo::new().ok_or_else(|| TestCaseError::fail("no TurboJPEG"))?;
        if let Some(header) = turbo.read_header(&data) {
            prop_assert_eq!(
                (header.width, header.height),
                (scan.width as usize, scan.height as usize)
            );
        }
        if let Ok(zune) = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(&data)) {
            prop_assert_eq!(image::ImageDecoder::dimensions(&zune), (scan.width, scan.height));
        }
    }

    #[test]
    fn any_mutation_renders_or_fails_without_a_panic(
        data in mutated(),
        options in select(vec!["32x32", "300x10,fill", "16x16,f:png", "0x0"]),
    ) {
        let options = ImageOptions::parse(options).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Ok(rendered) = render_alone(&data, &options, &settings()) {
            prop_assert!(rendered.width <= 256 && rendered.height <= 256);
        }
    }
}
