//! Kiln's pure core: URL signing, option parsing, cache and source keys, job
//! messages, card manifests, captcha keys and image header probes. No I/O
//! beyond reading a template directory at start-up, and no environment: what
//! `kiln sign` and the parsers (and their fuzzers) need, light to build and
//! test. Configuration and the service clients are in `kiln-infra`.

pub mod cache_key;
pub mod captcha;
pub mod cards;
pub mod dialects;
pub mod format;
pub mod image_header;
pub mod job;
pub mod limits;
pub mod nginx_link;
pub mod options;
pub mod signing;
pub mod source_key;

/// Bumped whenever the image pipeline's output changes for the same input, so
/// every cached rendition is re-rendered instead of served stale.
pub const IMAGE_RENDERER_VERSION: &str = "img-2";
