//! Kiln's infrastructure: configuration from `KILN_*` variables, and the
//! clients and queries for PostgreSQL, RabbitMQ and S3 that the api, the
//! worker and the CLI share. Everything pure (signing, options, cache keys,
//! manifests) lives in `kiln-core`, below this crate.

pub mod bootstrap;
pub mod bulk;
pub mod captcha_pool;
pub mod config;
pub mod db;
pub mod dialect_config;
pub mod env_file;
pub mod healthcheck;
pub mod links;
pub mod partners;
pub mod purge;
pub mod queue;
pub mod readiness;
pub mod renditions;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
pub mod usage;
