//! `kiln`: the operator's command line.
//!
//! ```text
//! kiln sign OPTIONS SOURCE        print a signed /img/ URL
//! kiln sign-card CARD             print a signed /card/ URL
//! kiln upload FILE [KEY]          put an original into the originals bucket
//! kiln partner …                  partners and their keys
//! kiln prerender FILE             submit a bulk pre-render job, follow its progress
//! ```
//! Reads `.kiln/local.env` (written by `deploy/local/up.sh`) and the environment.

use std::process::ExitCode;

mod partner;
mod prerender;

use anyhow::{bail, Context as _};
use kiln_core::config::{var_or, S3Config, SigningConfig};
use kiln_core::options::ImageOptions;
use kiln_core::source_key::SourceKey;
use kiln_core::storage::Storage;

const USAGE: &str = "usage:
  kiln sign OPTIONS SOURCE     print a signed URL, e.g. kiln sign 800x600,f:webp photos/cat.jpg
  kiln sign-card CARD          print a signed card URL, e.g.
                               kiln sign-card 'article/hello.jpg?title=Hello%20world&author=Ada'
  kiln upload FILE [KEY]       upload an original (KEY defaults to the file name)
  kiln sample-image PATH [WxH] write a sample JPEG (default 1600x900; used by up.sh and bench/)
  kiln prerender FILE          submit a bulk pre-render job (one URL or JSON item per line)
                               and show its progress until done
";

fn main() -> ExitCode {
    if let Err(err) = kiln_core::env_file::load() {
        eprintln!("kiln: {err:#}");
        return ExitCode::FAILURE;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["sign", options, source] => sign(options, source),
        ["sign-card", card] => sign_card(card),
        ["upload", file] => upload(file, None),
        ["upload", file, key] => upload(file, Some(key)),
        ["sample-image", path] => sample_image(path, "1600x900"),
        ["sample-image", path, size] => sample_image(path, size),
        ["partner", rest @ ..] => partner::run(rest),
        ["prerender", file] => prerender::run(file),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}{}", partner::USAGE);
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}{}", partner::USAGE);
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("kiln: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Signs `{options}/{source}` exactly as the URL will carry it.
fn sign(options: &str, source: &str) -> anyhow::Result<()> {
    ImageOptions::parse(options).map_err(|e| anyhow::anyhow!("{e}"))?;
    let source = SourceKey::new(source).map_err(|e| anyhow::anyhow!("{e}"))?;
    let signing = SigningConfig::from_env()?;
    let payload = format!("{options}/{}", source.to_url_path());
    let signature = signing
        .sign(&payload)
        .context("no signing key configured")?;
    let base = var_or("KILN_PUBLIC_URL", "http://127.0.0.1:8080");
    println!("{}/img/{signature}/{payload}", base.trim_end_matches('/'));
    Ok(())
}

/// Signs `card:{template}/{id}.{ext}[?query]` (query as it will be sent,
/// already percent-encoded).
fn sign_card(card: &str) -> anyhow::Result<()> {
    let (path, query) = match card.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (card, None),
    };
    if path.split('/').count() != 2 || !path.contains('.') {
        bail!("expected TEMPLATE/ID.EXT[?k=v&...], e.g. article/hello.jpg?title=Hi");
    }
    let payload = card.trim_end_matches('?');
    let signature = SigningConfig::from_env()?
        .sign(&kiln_core::signing::card_payload(path, query))
        .context("no signing key configured")?;
    let base = var_or("KILN_PUBLIC_URL", "http://127.0.0.1:8080");
    println!("{}/card/{signature}/{payload}", base.trim_end_matches('/'));
    Ok(())
}

fn content_type_for(bytes: &[u8]) -> &'static str {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "image/webp",
        _ => "application/octet-stream",
    }
}

fn upload(file: &str, key: Option<&str>) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {file}"))?;
    let key = match key {
        Some(key) => key.to_owned(),
        None => std::path::Path::new(file)
            .file_name()
            .and_then(|n| n.to_str())
            .context("the file has no usable name; give a KEY")?
            .to_owned(),
    };
    let key = SourceKey::new(key).map_err(|e| anyhow::anyhow!("{e}"))?;
    if key.as_str().ends_with('/') {
        bail!("KEY must name an object, not a folder");
    }
    let storage = Storage::new(S3Config::from_env()?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let content_type = content_type_for(&bytes);
    runtime.block_on(storage.put_original(key.as_str(), bytes.into(), content_type))?;
    println!("uploaded {file} as {key} ({content_type})");
    Ok(())
}

/// A synthetic landscape (sky gradient, sun, hills) so the local stack has an
/// original to render without downloading one.
fn sample_image(path: &str, size: &str) -> anyhow::Result<()> {
    let (w, h) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .filter(|&(w, h)| w > 0 && h > 0 && w <= 20_000 && h <= 20_000)
        .context("size must be WxH, each 1..20000")?;
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
    image
        .save(path)
        .with_context(|| format!("writing {path}"))?;
    println!("wrote {path}");
    Ok(())
}
