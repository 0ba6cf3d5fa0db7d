//! `kiln sample-image PATH [WxH]`: a synthetic landscape (sky gradient, sun,
//! hills), so the local stack has an original to render without
//! downloading one.

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use crate::output::{usage, CliResult, Output};

#[derive(Args)]
pub struct SampleImageArgs {
    /// Where to write the JPEG.
    path: std::path::PathBuf,
    /// Its size, each side 1..20000.
    #[arg(default_value = "1600x900")]
    size: String,
}

fn parse_size(size: &str) -> Option<(u32, u32)> {
    size.split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|&(w, h)| w > 0 && h > 0 && w <= 20_000 && h <= 20_000)
}

pub fn run(args: &SampleImageArgs, out: &Output) -> CliResult {
    let (w, h) = parse_size(&args.size).ok_or_else(|| usage("SIZE must be WxH, each 1..20000"))?;
    let image = image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let grain = ((x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) % 17) as f32 - 8.0;
        let hill = 0.62 + 0.08 * (fx * 9.0).sin() + 0.04 * (fx * 23.0).cos();
        let (dx, dy) = (x as f32 - 0.72 * w as f32, y as f32 - 0.28 * h as f32);
        let sun = (dx * dx + dy * dy).sqrt() < 0.06 * w as f32;
        let pixel = if sun {
            [255, 214, 102]
        } else if fy > hill {
            [
                (40.0 + 60.0 * fx + grain) as u8,
                (110.0 + 50.0 * (1.0 - fy) + grain) as u8,
                60,
            ]
        } else {
            [
                (90.0 + 120.0 * fy + grain) as u8,
                (150.0 + 70.0 * fy) as u8,
                235,
            ]
        };
        image::Rgb(pixel)
    });
    let path = args.path.display().to_string();
    image
        .save(&args.path)
        .with_context(|| format!("writing {path}"))?;
    out.print(
        || format!("wrote {path}"),
        json!({ "path": path, "width": w, "height": h }),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_bounded() {
        assert_eq!(parse_size("1600x900"), Some((1600, 900)));
        assert_eq!(parse_size("0x10"), None);
        assert_eq!(parse_size("20001x10"), None);
        assert_eq!(parse_size("big"), None);
    }
}
