//! Kiln's shared library: what both the api and the worker need — configuration,
//! URL signing, option parsing, cache keys, job messages, and the clients for
//! Postgres, RabbitMQ and S3.

pub mod bulk;
pub mod cache_key;
pub mod captcha;
pub mod captcha_pool;
pub mod cards;
pub mod config;
pub mod db;
pub mod env_file;
pub mod format;
pub mod healthcheck;
pub mod image_header;
pub mod job;
pub mod links;
pub mod nginx_link;
pub mod options;
pub mod partners;
pub mod purge;
pub mod queue;
pub mod renditions;
pub mod shutdown;
pub mod signing;
pub mod source_key;
pub mod storage;
pub mod telemetry;
pub mod usage;

/// Bumped whenever the image pipeline's output changes for the same input, so
/// every cached rendition is re-rendered instead of served stale.
pub const IMAGE_RENDERER_VERSION: &str = "img-2";
