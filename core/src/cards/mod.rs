//! Social-card templates: their manifests, the files they ship, and how a
//! request's id and parameters are checked against them. The api uses this to
//! validate URLs and compute cache keys; the worker to render.
//!
//! A template lives in `{templates}/cards/{name}/`: `manifest.toml`,
//! `card.html` (a minijinja template, auto-escaped) and any assets it links
//! (fonts, images, CSS). Files in `{templates}/cards/_shared/` are available to
//! every template under `/_shared/`. The content hash covers every file a
//! template can load, so editing one changes every cache key of that template.

mod manifest;
mod registry;
mod request;

pub use manifest::{Manifest, ParamKind, ParamSpec};
pub use registry::{Asset, CardTemplate, Templates, ASSET_ORIGIN};
pub use request::{CardSpec, Invalid};

/// Bumped when the card pipeline's output changes for the same template.
pub const CARD_RENDERER_VERSION: &str = "card-1";
