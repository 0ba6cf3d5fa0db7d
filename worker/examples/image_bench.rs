//! Kiln's side of `bench/image_pipeline.sh`.
//!
//! ```text
//! image_bench generate DIR                      write the fixed generated inputs
//! image_bench run FILE OPTIONS THREADS SECONDS  render FILE with Kiln options on THREADS threads
//! image_bench floor FILE THREADS SECONDS        1/8-scale JPEG decode only (the floor)
//! ```
//! `run` and `floor` print one line: `images_per_second peak_rss_mib output_bytes`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use image::codecs::png::PngEncoder;
use image::{ImageEncoder, RgbImage, RgbaImage};

use kiln_core::limits::SourceLimits;
use kiln_core::options::ImageOptions;
use kiln_infra::config::FromEnv as _;
use kiln_worker::render::{render_alone as render, Settings};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["generate", dir] => generate(Path::new(dir)),
        ["run", file, options, threads, seconds] => {
            let source = std::fs::read(file).with_context(|| format!("reading {file}"))?;
            let options = ImageOptions::parse(options).map_err(|e| anyhow::anyhow!("{e}"))?;
            let settings = Settings {
                limits: SourceLimits::from_env()?,
                avif_speed: std::env::var("KILN_AVIF_SPEED")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(8),
                render_timeout: std::time::Duration::from_secs(600),
            };
            let out_bytes = render(&source, &options, &settings)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .bytes
                .len();
            let rate = measure(threads.parse()?, seconds.parse()?, move || {
                let _ = render(&source, &options, &settings);
            });
            report(rate, out_bytes);
            Ok(())
        }
        ["floor", file, threads, seconds] => {
            let source = std::fs::read(file).with_context(|| format!("reading {file}"))?;
            let rate = measure(threads.parse()?, seconds.parse()?, move || {
                decode_eighth(&source);
            });
            report(rate, 0);
            Ok(())
        }
        _ => bail!("usage: image_bench generate DIR | run FILE OPTIONS THREADS SECONDS | floor FILE THREADS SECONDS"),
    }
}

fn report(rate: f64, out_bytes: usize) {
    println!("{rate:.1} {:.0} {out_bytes}", peak_rss_mib());
}

/// Runs `work` on `threads` threads (one warm-up call each) for `seconds`;
/// returns calls per second across all threads.
fn measure(threads: usize, seconds: f64, work: impl Fn() + Send + Sync + 'static) -> f64 {
    let work = Arc::new(work);
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (work, done) = (work.clone(), done.clone());
            std::thread::spawn(move || {
                work();
                let start = Instant::now();
                let mut count = 0;
                while start.elapsed() < deadline {
                    work();
                    count += 1;
                }
                done.fetch_add(count, Ordering::Relaxed);
                start.elapsed()
            })
        })
        .collect();
    let longest = handles
        .into_iter()
        .filter_map(|h| h.join().ok())
        .max()
        .unwrap_or_else(|| started.elapsed());
    done.load(Ordering::Relaxed) as f64 / longest.as_secs_f64()
}

fn decode_eighth(source: &[u8]) {
    thread_local! {
        static STATE: std::cell::RefCell<(Option<turbojpeg::Decompressor>, Vec<u8>)> =
            const { std::cell::RefCell::new((None, Vec::new())) };
    }
    STATE.with(|cell| {
        let (slot, buffer) = &mut *cell.borrow_mut();
        if slot.is_none() {
            *slot = turbojpeg::Decompressor::new().ok();
        }
        let Some(decompressor) = slot.as_mut() else {
            return;
        };
        let Ok(header) = decompressor.read_header(source) else {
            return;
        };
        let factor = turbojpeg::ScalingFactor::ONE_EIGHTH;
        let _ = decompressor.set_scaling_factor(factor);
        let scaled = header.scaled(factor);
        buffer.resize(scaled.width * scaled.height * 3, 0);
        let _ = decompressor.decompress(
            source,
            turbojpeg::Image {
                pixels: buffer.as_mut_slice(),
                width: scaled.width,
                pitch: scaled.width * 3,
                height: scaled.height,
                format: turbojpeg::PixelFormat::RGB,
            },
        );
    });
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// A deterministic hash of a lattice point, 0..1.
fn lattice(x: i64, y: i64, seed: u64) -> f64 {
    let mut h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ seed.wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^= h >> 31;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 29;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Smoothly interpolated value noise.
fn noise(x: f64, y: f64, seed: u64) -> f64 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let (xi, yi) = (x0 as i64, y0 as i64);
    let top = lattice(xi, yi, seed) * (1.0 - sx) + lattice(xi + 1, yi, seed) * sx;
    let bottom = lattice(xi, yi + 1, seed) * (1.0 - sx) + lattice(xi + 1, yi + 1, seed) * sx;
    top * (1.0 - sy) + bottom * sy
}

/// A photo-like picture: fractal value noise in three colour channels over a
/// sky-to-ground gradient, plus sensor-like grain. `octaves` and `grain` set
/// how detailed (and how large as a JPEG) it is.
fn photo(width: u32, height: u32, octaves: u32, grain: f64) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (u, v) = (f64::from(x) / 400.0, f64::from(y) / 400.0);
        let mut channels = [0.0f64; 3];
        for (c, value) in channels.iter_mut().enumerate() {
            let mut amplitude = 0.5;
            let mut frequency = 1.0;
            for octave in 0..octaves {
                *value += amplitude
                    * noise(
                        u * frequency,
                        v * frequency,
                        c as u64 * 16 + u64::from(octave),
                    );
                amplitude *= 0.55;
                frequency *= 2.1;
            }
        }
        let sky = f64::from(y) / f64::from(height);
        let speck = (lattice(i64::from(x), i64::from(y), 99) - 0.5) * grain;
        let to_u8 = |v: f64| (v * 255.0).clamp(0.0, 255.0) as u8;
        image::Rgb([
            to_u8(channels[0] * 0.8 + sky * 0.2 + speck),
            to_u8(channels[1] * 0.7 + (1.0 - sky) * 0.25 + speck),
            to_u8(channels[2] * 0.6 + (1.0 - sky) * 0.4 + speck),
        ])
    })
}

fn jpeg(image: &RgbImage, progressive: bool) -> anyhow::Result<Vec<u8>> {
    let mut compressor = turbojpeg::Compressor::new()?;
    compressor.set_quality(90)?;
    compressor.set_subsamp(turbojpeg::Subsamp::Sub2x2)?;
    compressor.set_progressive(progressive)?;
    let width = image.width() as usize;
    Ok(compressor.compress_to_vec(turbojpeg::Image {
        pixels: image.as_raw().as_slice(),
        width,
        pitch: width * 3,
        height: image.height() as usize,
        format: turbojpeg::PixelFormat::RGB,
    })?)
}

fn generate(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        std::fs::write(dir.join(name), bytes)?;
        println!("{name}: {} bytes", bytes.len());
        Ok(())
    };
    let detailed = photo(4000, 3000, 9, 0.12);
    write("detailed.jpg", &jpeg(&detailed, false)?)?;
    write("progressive.jpg", &jpeg(&detailed, true)?)?;
    let smooth = photo(4000, 3000, 5, 0.03);
    write("smooth.jpg", &jpeg(&smooth, false)?)?;
    let webp = webp::Encoder::from_rgb(detailed.as_raw(), 4000, 3000).encode(85.0);
    write("photo.webp", &webp)?;
    // 2000×1500 with an alpha vignette: a cut-out product shot.
    let small = image::imageops::resize(&smooth, 2000, 1500, image::imageops::FilterType::Triangle);
    let alpha = RgbaImage::from_fn(2000, 1500, |x, y| {
        let p = small.get_pixel(x, y).0;
        let (dx, dy) = (f64::from(x) / 1000.0 - 1.0, f64::from(y) / 750.0 - 1.0);
        let a = ((1.2 - dx.hypot(dy)) * 400.0).clamp(0.0, 255.0) as u8;
        image::Rgba([p[0], p[1], p[2], a])
    });
    let mut png = Vec::new();
    PngEncoder::new(&mut png).write_image(
        alpha.as_raw(),
        2000,
        1500,
        image::ExtendedColorType::Rgba8,
    )?;
    write("alpha.png", &png)?;
    Ok(())
}
