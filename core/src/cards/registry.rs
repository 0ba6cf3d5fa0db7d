//! Loads every template under `{templates}/cards/` once, at start-up: manifest,
//! HTML, assets and a content hash over all of them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use super::manifest::Manifest;

/// The origin pages are loaded from; the browser reaches nothing else.
pub const ASSET_ORIGIN: &str = "https://card.kiln";
const SHARED_DIR: &str = "_shared";
const LARGEST_ASSET: u64 = 16 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct Asset {
    pub bytes: Bytes,
    pub content_type: &'static str,
}

#[derive(Debug)]
pub struct CardTemplate {
    pub name: String,
    pub manifest: Manifest,
    /// The `card.html` source.
    pub html: String,
    /// Files by path relative to the template directory (`style.css`), plus
    /// the shared ones as `_shared/...`.
    pub assets: HashMap<String, Asset>,
    /// Hex SHA-256 over every file the template can load.
    pub hash: String,
    pub default_image: Asset,
}

#[derive(Debug, Default)]
pub struct Templates {
    by_name: BTreeMap<String, Arc<CardTemplate>>,
}

impl Templates {
    /// Loads `{root}/cards/*`. A missing `cards/` directory means no templates.
    pub fn load(root: &Path) -> anyhow::Result<Self> {
        let cards = root.join("cards");
        if !cards.is_dir() {
            return Ok(Self::default());
        }
        let shared = read_tree(&cards.join(SHARED_DIR))?;
        let mut by_name = BTreeMap::new();
        for entry in
            std::fs::read_dir(&cards).with_context(|| format!("reading {}", cards.display()))?
        {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == SHARED_DIR || !entry.file_type()?.is_dir() {
                continue;
            }
            let template = load_one(&entry.path(), &name, &shared)
                .with_context(|| format!("card template {name:?}"))?;
            by_name.insert(name, Arc::new(template));
        }
        Ok(Self { by_name })
    }

    /// Reads one template from disk again (previews and edited templates).
    /// `None` when `{root}/cards/{name}` is not a template directory.
    pub fn load_template(root: &Path, name: &str) -> anyhow::Result<Option<CardTemplate>> {
        let cards = root.join("cards");
        let dir = cards.join(name);
        if !valid_name(name) || name == SHARED_DIR || !dir.is_dir() {
            return Ok(None);
        }
        let shared = read_tree(&cards.join(SHARED_DIR))?;
        load_one(&dir, name, &shared)
            .with_context(|| format!("card template {name:?}"))
            .map(Some)
    }

    /// Replaces (or adds) one template, e.g. after [`Templates::load_template`].
    pub fn insert(&mut self, template: CardTemplate) -> Arc<CardTemplate> {
        let template = Arc::new(template);
        self.by_name
            .insert(template.name.clone(), Arc::clone(&template));
        template
    }

    pub fn get(&self, name: &str) -> Option<&Arc<CardTemplate>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn load_one(
    dir: &Path,
    name: &str,
    shared: &BTreeMap<String, Bytes>,
) -> anyhow::Result<CardTemplate> {
    if !valid_name(name) {
        bail!("template names are lowercase letters, digits, - and _");
    }
    let files = read_tree(dir)?;
    let manifest_text = files
        .get("manifest.toml")
        .context("manifest.toml is missing")?;
    let manifest =
        Manifest::parse(std::str::from_utf8(manifest_text).context("manifest.toml is not UTF-8")?)?;
    let html = files.get("card.html").context("card.html is missing")?;
    let html = String::from_utf8(html.to_vec()).context("card.html is not UTF-8")?;
    let default_bytes = files
        .get(&manifest.default_image)
        .with_context(|| format!("default image {:?} is missing", manifest.default_image))?
        .clone();
    let default_image = Asset {
        content_type: content_type(&manifest.default_image),
        bytes: default_bytes,
    };
    if !default_image.content_type.starts_with("image/") {
        bail!("default image must be a PNG, JPEG or WebP file");
    }

    let mut hasher = Sha256::new();
    let mut assets = HashMap::new();
    let all = files
        .iter()
        .map(|(p, b)| (p.clone(), b))
        .chain(shared.iter().map(|(p, b)| (format!("{SHARED_DIR}/{p}"), b)));
    for (path, bytes) in all {
        hasher.update((path.len() as u64).to_be_bytes());
        hasher.update(path.as_bytes());
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
        assets.insert(
            path.clone(),
            Asset {
                content_type: content_type(&path),
                bytes: bytes.clone(),
            },
        );
    }
    Ok(CardTemplate {
        name: name.to_owned(),
        manifest,
        html,
        assets,
        hash: hex::encode(hasher.finalize()),
        default_image,
    })
}

/// Every regular file under `dir`, by `/`-separated relative path (sorted).
fn read_tree(dir: &Path) -> anyhow::Result<BTreeMap<String, Bytes>> {
    let mut out = BTreeMap::new();
    if dir.is_dir() {
        walk(dir, "", &mut out)?;
    }
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Bytes>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = format!("{prefix}{name}");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), &format!("{path}/"), out)?;
        } else if kind.is_file() {
            if entry.metadata()?.len() > LARGEST_ASSET {
                bail!("{path} is larger than 16 MiB");
            }
            out.insert(path, Bytes::from(std::fs::read(entry.path())?));
        }
    }
    Ok(())
}

pub(crate) fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "avif" => "image/avif",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, path: &str, body: &[u8]) {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    fn fixture() -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!("kiln-cards-{}", rand::random::<u64>()));
        write(&root, "cards/_shared/fonts/a.woff2", b"font");
        write(
            &root,
            "cards/demo/manifest.toml",
            b"id = '[a-z]+'\ndefault_image = 'default.png'\n",
        );
        write(&root, "cards/demo/card.html", b"<p>{{ id }}</p>");
        write(&root, "cards/demo/default.png", b"\x89PNG");
        write(&root, "cards/demo/img/logo.svg", b"<svg/>");
        root
    }

    #[test]
    fn loads_assets_and_hashes_every_file() {
        let root = fixture();
        let t = Templates::load(&root).unwrap();
        let demo = t.get("demo").unwrap();
        assert_eq!(demo.assets["img/logo.svg"].content_type, "image/svg+xml");
        assert_eq!(
            demo.assets["_shared/fonts/a.woff2"].content_type,
            "font/woff2"
        );
        assert_eq!(demo.default_image.content_type, "image/png");
        let before = demo.hash.clone();

        write(&root, "cards/_shared/fonts/a.woff2", b"font v2");
        let after = Templates::load(&root)
            .unwrap()
            .get("demo")
            .unwrap()
            .hash
            .clone();
        assert_ne!(before, after, "a shared asset edit changes the hash");
        write(&root, "cards/demo/card.html", b"<p>{{ id }}!</p>");
        let edited = Templates::load(&root)
            .unwrap()
            .get("demo")
            .unwrap()
            .hash
            .clone();
        assert_ne!(after, edited, "a template edit changes the hash");
        let reloaded = Templates::load_template(&root, "demo").unwrap().unwrap();
        assert_eq!(
            reloaded.hash, edited,
            "one template reloads with the same hash"
        );
        assert!(Templates::load_template(&root, "_shared")
            .unwrap()
            .is_none());
        assert!(Templates::load_template(&root, "../cards")
            .unwrap()
            .is_none());
        assert!(Templates::load_template(&root, "missing")
            .unwrap()
            .is_none());
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_template_without_its_default_image_is_refused() {
        let root = fixture();
        std::fs::remove_file(root.join("cards/demo/default.png")).unwrap();
        let err = Templates::load(&root).unwrap_err();
        assert!(format!("{err:#}").contains("default image"), "{err:#}");
        std::fs::remove_dir_all(root).unwrap();
    }
}
