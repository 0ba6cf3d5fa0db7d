//! Warm card rendering, measured on the worker's own path
//! (`jobs::card::capture`: the browser pool with a reused page, offline
//! interception, capture, and the Rust PNG encode). S3 and Postgres are left out; `bench/cards.sh` runs this next
//! to Puppeteer driving the same Chromium on the same pages.
//!
//! ```sh
//! card_bench html  TEMPLATES_DIR OUT_DIR            # the pages, for the peer
//! card_bench run   TEMPLATES_DIR BROWSERS SECONDS   # one line per case
//! card_bench cold  TEMPLATES_DIR                    # start + first card
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use kiln_core::cards::{CardTemplate, Templates};
use kiln_core::format::OutputFormat;
use kiln_worker::chromium::{BrowserPool, PageContent, PoolConfig};
use kiln_worker::jobs::card::capture;
use kiln_worker::render_pool::RenderPool;

const JPEG_QUALITY: u8 = 85;
const RENDER_TIMEOUT: Duration = Duration::from_secs(10);

/// A card measured: template, id, parameters.
type Case = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

fn cases() -> Vec<Case> {
    vec![
        (
            "article",
            "launch-day",
            vec![
                ("title", "We shipped Kiln: social cards in 40 ms 🚀"),
                ("author", "Ada Lovelace"),
                ("site", "kiln.dev"),
                ("tag", "Release"),
            ],
        ),
        ("stats", "12-34-10", vec![]),
    ]
}

fn page(
    templates: &Templates,
    name: &str,
    id: &str,
    params: &[(&str, &str)],
) -> anyhow::Result<(Arc<CardTemplate>, String)> {
    let template = templates.get(name).context("template")?.clone();
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let html = kiln_worker::card_html::render(&template, id, &params, &Default::default())?;
    Ok((template, html))
}

fn pool_config(browsers: usize) -> PoolConfig {
    PoolConfig {
        launch: kiln_worker::chromium::Launch::local(),
        browsers,
        recycle_renders: u32::MAX,
        recycle_age: Duration::from_secs(24 * 3600),
        max_timeouts: 3,
    }
}

struct Bench {
    pool: Arc<BrowserPool>,
    encoders: Arc<RenderPool>,
}

impl Bench {
    /// One card as the worker makes it; returns the encoded size.
    async fn card(
        &self,
        template: &Arc<CardTemplate>,
        html: &str,
        format: OutputFormat,
    ) -> anyhow::Result<usize> {
        let content = Arc::new(PageContent {
            template: template.clone(),
            originals: Default::default(),
        });
        let bytes = capture(
            &self.pool,
            &self.encoders,
            content,
            html.to_owned(),
            format,
            JPEG_QUALITY,
            RENDER_TIMEOUT,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(bytes.len())
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank]
}

async fn run(root: &Path, browsers: usize, seconds: f64) -> anyhow::Result<()> {
    let templates = Templates::load(root)?;
    let bench = Arc::new(Bench {
        pool: BrowserPool::start(pool_config(browsers)).await?,
        encoders: Arc::new(RenderPool::new(browsers)?),
    });
    for (name, id, params) in cases() {
        let (template, html) = page(&templates, name, id, &params)?;
        for (label, format) in [
            ("jpg", OutputFormat::Jpeg),
            ("png", OutputFormat::Png),
            ("webp", OutputFormat::Webp),
        ] {
            // Warm: every browser has loaded this template's page and fonts.
            for _ in 0..3 * browsers {
                bench.card(&template, &html, format).await?;
            }
            let until = Instant::now() + Duration::from_secs_f64(seconds);
            let started = Instant::now();
            let loops = (0..browsers).map(|_| {
                let (bench, template, html) = (bench.clone(), template.clone(), html.clone());
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    while Instant::now() < until {
                        let t = Instant::now();
                        let size = bench.card(&template, &html, format).await?;
                        samples.push((t.elapsed().as_secs_f64() * 1000.0, size));
                    }
                    Ok::<_, anyhow::Error>(samples)
                })
            });
            let mut samples = Vec::new();
            for result in futures_util::future::join_all(loops).await {
                samples.extend(result??);
            }
            let elapsed = started.elapsed().as_secs_f64();
            let mut ms: Vec<f64> = samples.iter().map(|s| s.0).collect();
            ms.sort_by(f64::total_cmp);
            let kib =
                samples.iter().map(|s| s.1).sum::<usize>() as f64 / samples.len() as f64 / 1024.0;
            println!(
                "kiln {name} {label} {browsers} {:.1} {:.1} {:.1} {:.0}",
                percentile(&ms, 0.5),
                percentile(&ms, 0.95),
                samples.len() as f64 / elapsed,
                kib
            );
        }
    }
    bench.pool.shutdown().await;
    Ok(())
}

async fn cold(root: &Path) -> anyhow::Result<()> {
    let templates = Templates::load(root)?;
    let (template, html) = page(&templates, "stats", "12-34-10", &[])?;
    let started = Instant::now();
    let bench = Bench {
        pool: BrowserPool::start(pool_config(1)).await?,
        encoders: Arc::new(RenderPool::new(1)?),
    };
    let launched = started.elapsed();
    bench.card(&template, &html, OutputFormat::Jpeg).await?;
    println!(
        "kiln cold {:.0} {:.0}",
        launched.as_secs_f64() * 1000.0,
        started.elapsed().as_secs_f64() * 1000.0
    );
    bench.pool.shutdown().await;
    Ok(())
}

fn write_pages(root: &Path, out: &Path) -> anyhow::Result<()> {
    let templates = Templates::load(root)?;
    std::fs::create_dir_all(out)?;
    for (name, id, params) in cases() {
        let (_, html) = page(&templates, name, id, &params)?;
        std::fs::write(out.join(format!("{name}.html")), html)?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["html", root, out] => write_pages(Path::new(root), Path::new(out)),
        ["run", root, browsers, seconds] => {
            run(Path::new(root), browsers.parse()?, seconds.parse()?).await
        }
        ["cold", root] => cold(Path::new(root)).await,
        _ => bail!("usage: card_bench html ROOT OUT | run ROOT BROWSERS SECONDS | cold ROOT"),
    }
}
