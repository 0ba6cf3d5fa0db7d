//! Renders one card to a file with the worker's own browser pool, for
//! template authors and for making a template's `default.png`:
//!
//! ```sh
//! cargo run --release -p kiln-worker --example card_render -- \
//!     templates article hello-world out.png title="Hello, world" author=Ada
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kiln_core::cards::Templates;
use kiln_worker::chromium::{BrowserPool, Capture, PageContent, PoolConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, name, id, out, rest @ ..] = args.as_slice() else {
        anyhow::bail!(
            "usage: card_render TEMPLATES_DIR TEMPLATE ID OUT.{{jpg|png}} [key=value ...]"
        );
    };
    let templates = Templates::load(std::path::Path::new(root))?;
    let template = templates.get(name).context("no such template")?.clone();
    let params: BTreeMap<String, String> = rest
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let html = kiln_worker::card_html::render(&template, id, &params, &Default::default())?;
    let pool = BrowserPool::start(PoolConfig {
        launch: kiln_worker::chromium::Launch::local(),
        browsers: 1,
        recycle_renders: 1000,
        recycle_age: Duration::from_secs(3600),
        max_timeouts: 2,
    })
    .await?;
    let capture = if out.ends_with(".png") {
        Capture::Png
    } else {
        Capture::Jpeg(85)
    };
    let started = Instant::now();
    let content = Arc::new(PageContent {
        template,
        originals: Default::default(),
    });
    let bytes = pool
        .render(content, html, capture, Duration::from_secs(10))
        .await?;
    let bytes = if out.ends_with(".png") {
        // Chromium's fast PNG is large; store a well-compressed one.
        let image = image::load_from_memory(&bytes)?;
        let mut buf = Vec::new();
        image.write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)?;
        buf
    } else {
        bytes
    };
    std::fs::write(out, &bytes)?;
    println!("{out}: {} bytes in {:?}", bytes.len(), started.elapsed());
    pool.shutdown().await;
    Ok(())
}
