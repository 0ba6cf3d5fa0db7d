//! Draws a captcha built to resist segmentation: characters in several fonts,
//! each scaled, rotated and overlapping its neighbours, the whole line warped
//! by two waves, crossed by thick noise arcs in the same ink (one of them
//! inverting what it crosses) and thin ones. Grey on a flat background, a few
//! grey levels only, so the PNG stays a few KB.

use std::path::Path;

use ab_glyph::{Font as _, FontArc, PxScale, ScaleFont as _};
use anyhow::{bail, Context as _};
use image::{GrayImage, Luma};
use rand::RngExt as _;

const BACKGROUND: f32 = 246.0;
const INK: f32 = 40.0;
/// Grey levels kept in the output: anti-aliased enough, and compresses well.
const LEVELS: f32 = 8.0;

/// The fonts a captcha draws from (`*.ttf` / `*.otf` in one directory).
pub struct Fonts(Vec<FontArc>);

impl Fonts {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut fonts = Vec::new();
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading captcha fonts in {}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("ttf") || e.eq_ignore_ascii_case("otf"))
            })
            .collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path)?;
            let font = FontArc::try_from_vec(bytes)
                .with_context(|| format!("{} is not a font", path.display()))?;
            fonts.push(font);
        }
        if fonts.is_empty() {
            bail!("no .ttf or .otf fonts in {}", dir.display());
        }
        Ok(Self(fonts))
    }

    /// Every font has a glyph for every character of `alphabet`.
    pub fn check_covers(&self, alphabet: &[char]) -> anyhow::Result<()> {
        for (i, font) in self.0.iter().enumerate() {
            if let Some(c) = alphabet.iter().find(|c| font.glyph_id(**c).0 == 0) {
                bail!("captcha font #{i} has no glyph for {c:?}");
            }
        }
        Ok(())
    }
}

/// Ink coverage, 0..1, over the image.
struct Canvas {
    width: usize,
    height: usize,
    ink: Vec<f32>,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Self {
        Self {
            width: width as usize,
            height: height as usize,
            ink: vec![0.0; width as usize * height as usize],
        }
    }

    fn at(&self, x: f32, y: f32) -> f32 {
        bilinear(&self.ink, self.width, self.height, x, y)
    }

    fn add(&mut self, x: usize, y: usize, value: f32) {
        if x < self.width && y < self.height {
            let cell = &mut self.ink[y * self.width + x];
            *cell = cell.max(value);
        }
    }
}

fn bilinear(data: &[f32], width: usize, height: usize, x: f32, y: f32) -> f32 {
    if x < 0.0 || y < 0.0 || x > (width - 1) as f32 || y > (height - 1) as f32 {
        return 0.0;
    }
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(width - 1), (y0 + 1).min(height - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let top = data[y0 * width + x0] * (1.0 - fx) + data[y0 * width + x1] * fx;
    let bottom = data[y1 * width + x0] * (1.0 - fx) + data[y1 * width + x1] * fx;
    top * (1.0 - fy) + bottom * fy
}

/// One rasterised character: coverage and its size.
struct Glyph {
    width: usize,
    height: usize,
    coverage: Vec<f32>,
}

fn rasterise(font: &FontArc, c: char, px: f32) -> Option<Glyph> {
    let scaled = font.as_scaled(PxScale::from(px));
    let glyph = scaled.scaled_glyph(c);
    let outlined = font.outline_glyph(glyph)?;
    let bounds = outlined.px_bounds();
    let (width, height) = (
        bounds.width().ceil() as usize,
        bounds.height().ceil() as usize,
    );
    if width == 0 || height == 0 {
        return None;
    }
    let mut coverage = vec![0.0; width * height];
    outlined.draw(|x, y, c| {
        if let Some(cell) = coverage.get_mut(y as usize * width + x as usize) {
            *cell = c;
        }
    });
    Some(Glyph {
        width,
        height,
        coverage,
    })
}

/// Draws `code` on a `width`×`height` grey image.
pub fn draw(code: &str, fonts: &Fonts, width: u32, height: u32) -> GrayImage {
    let mut rng = rand::rng();
    let (w, h) = (width as f32, height as f32);
    let glyphs: Vec<(Glyph, f32, f32)> = code
        .chars()
        .filter_map(|c| {
            let font = &fonts.0[rng.random_range(0..fonts.0.len())];
            let px = h * rng.random_range(0.58..0.72);
            let glyph = rasterise(font, c, px)?;
            let angle = rng.random_range(-0.35f32..0.35);
            let stretch = rng.random_range(0.9f32..1.15);
            Some((glyph, angle, stretch))
        })
        .collect();

    // Overlapping advances; the line is stretched or squeezed horizontally
    // to span most of the width (narrow codes would otherwise leave a blank
    // margin that tells a solver where the text starts), and scaled down
    // vertically only when it is squeezed.
    let advances: Vec<f32> = glyphs
        .iter()
        .map(|(g, _, s)| g.width as f32 * s * rng.random_range(0.78..0.92))
        .collect();
    let total: f32 =
        advances.iter().sum::<f32>() + glyphs.last().map_or(0.0, |g| g.0.width as f32 * 0.3);
    let fit_x = ((w * rng.random_range(0.84..0.9)) / total).min(1.6);
    let fit_y = fit_x.min(1.0);
    let mut cursor = (w - total * fit_x) / 2.0;

    let mut text = Canvas::new(width, height);
    for ((glyph, angle, stretch), advance) in glyphs.iter().zip(&advances) {
        let scale = fit_x * stretch;
        let cx = cursor + glyph.width as f32 * scale / 2.0;
        let cy = h / 2.0 + rng.random_range(-0.1..0.1) * h;
        stamp(&mut text, glyph, cx, cy, *angle, scale, fit_y);
        cursor += advance * fit_x;
    }

    // Two waves move the whole line, so no column separates two characters.
    let (ax, lx, px) = (
        h * rng.random_range(0.04..0.08),
        h * rng.random_range(0.8..1.4),
        rng.random_range(0.0..6.3f32),
    );
    let (ay, ly, py) = (
        h * rng.random_range(0.06..0.12),
        w * rng.random_range(0.45..0.9),
        rng.random_range(0.0..6.3f32),
    );
    let mut warped = Canvas::new(width, height);
    for y in 0..text.height {
        for x in 0..text.width {
            let (xf, yf) = (x as f32, y as f32);
            let sx = xf + ax * (std::f32::consts::TAU * yf / lx + px).sin();
            let sy = yf + ay * (std::f32::consts::TAU * xf / ly + py).sin();
            warped.ink[y * text.width + x] = text.at(sx, sy);
        }
    }

    // Arcs across the text: two thick ones in the same ink (one of them
    // inverting where it crosses a stroke), two thin ones.
    for (thickness, invert) in [(2.4, false), (2.4, true), (1.0, false)] {
        arc(&mut warped, &mut rng, thickness, invert);
    }

    let mut image = GrayImage::new(width, height);
    for (i, pixel) in image.pixels_mut().enumerate() {
        let ink = (warped.ink[i].clamp(0.0, 1.0) * LEVELS).round() / LEVELS;
        let value = BACKGROUND + (INK - BACKGROUND) * ink;
        *pixel = Luma([value.round() as u8]);
    }
    image
}

/// Blits a glyph centred at (cx, cy), rotated and scaled (x by `scale`, y by
/// `fit`), by inverse mapping with bilinear sampling.
fn stamp(canvas: &mut Canvas, glyph: &Glyph, cx: f32, cy: f32, angle: f32, scale: f32, fit: f32) {
    let (sin, cos) = angle.sin_cos();
    let half_w = glyph.width as f32 * scale / 2.0;
    let half_h = glyph.height as f32 * fit / 2.0;
    let radius = (half_w * half_w + half_h * half_h).sqrt().ceil();
    let (x0, x1) = (
        (cx - radius).max(0.0) as usize,
        (cx + radius).ceil() as usize,
    );
    let (y0, y1) = (
        (cy - radius).max(0.0) as usize,
        (cy + radius).ceil() as usize,
    );
    for y in y0..=y1.min(canvas.height.saturating_sub(1)) {
        for x in x0..=x1.min(canvas.width.saturating_sub(1)) {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            // Rotate back, then unscale into glyph coordinates.
            let gx = (dx * cos + dy * sin) / scale + glyph.width as f32 / 2.0;
            let gy = (-dx * sin + dy * cos) / fit + glyph.height as f32 / 2.0;
            let c = bilinear(&glyph.coverage, glyph.width, glyph.height, gx, gy);
            if c > 0.0 {
                canvas.add(x, y, c);
            }
        }
    }
}

/// A sine arc from the left edge to the right edge.
fn arc(canvas: &mut Canvas, rng: &mut impl rand::Rng, thickness: f32, invert: bool) {
    let (w, h) = (canvas.width as f32, canvas.height as f32);
    let base = h * rng.random_range(0.3..0.7);
    let slope = rng.random_range(-0.25f32..0.25) * h / w;
    let amplitude = h * rng.random_range(0.1..0.25);
    let length = w * rng.random_range(0.5..1.2);
    let phase = rng.random_range(0.0..6.3f32);
    let mut mask = vec![0.0f32; canvas.ink.len()];
    let mut x = 0.0;
    while x < w {
        let y = base
            + slope * (x - w / 2.0)
            + amplitude * (std::f32::consts::TAU * x / length + phase).sin();
        let r = thickness / 2.0 + 0.5;
        for py in
            (y - r).floor().max(0.0) as usize..=((y + r).ceil() as usize).min(canvas.height - 1)
        {
            for px in
                (x - r).floor().max(0.0) as usize..=((x + r).ceil() as usize).min(canvas.width - 1)
            {
                let d = ((px as f32 - x).powi(2) + (py as f32 - y).powi(2)).sqrt();
                let c = (thickness / 2.0 + 0.5 - d).clamp(0.0, 1.0);
                let cell = &mut mask[py * canvas.width + px];
                *cell = cell.max(c);
            }
        }
        x += 0.5;
    }
    for (ink, m) in canvas.ink.iter_mut().zip(mask) {
        *ink = if invert { (*ink - m).abs() } else { ink.max(m) };
    }
}

/// A small PNG: maximum compression, adaptive filters.
pub fn encode_png(image: &GrayImage) -> anyhow::Result<Vec<u8>> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder as _;
    let mut out = Vec::with_capacity(4096);
    PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::Adaptive)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::L8,
        )
        .context("encoding the captcha PNG")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fonts() -> Fonts {
        Fonts::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/captcha/fonts"))
            .expect("shipped fonts")
    }

    #[test]
    fn shipped_fonts_cover_every_letter_and_digit() {
        let all: Vec<char> = ('A'..='Z').chain('0'..='9').collect();
        fonts().check_covers(&all).unwrap();
    }

    #[test]
    fn a_captcha_is_a_few_kb_and_has_ink_in_every_fifth() {
        let fonts = fonts();
        // Layouts are random: enough draws to meet the unlucky ones.
        for _ in 0..300 {
            let image = draw("AE3K9X", &fonts, 200, 70);
            assert_eq!(image.dimensions(), (200, 70));
            let png = encode_png(&image).unwrap();
            assert!(png.len() < 8 * 1024, "{} bytes", png.len());
            // Characters spread over the width: every fifth of it has ink.
            for part in 0..5 {
                let ink = (part * 40..part * 40 + 40)
                    .flat_map(|x| (0..70).map(move |y| (x, y)))
                    .filter(|&(x, y)| image.get_pixel(x, y)[0] < 128)
                    .count();
                assert!(ink > 60, "fifth {part} has {ink} dark pixels");
            }
        }
    }

    #[test]
    fn two_captchas_of_one_code_differ() {
        let fonts = fonts();
        assert_ne!(
            draw("AE3K9X", &fonts, 200, 70),
            draw("AE3K9X", &fonts, 200, 70)
        );
    }
}
