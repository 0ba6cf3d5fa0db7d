//! The worker's parts as a library: the binary wires them together, and the
//! image benchmark (`examples/image_bench.rs`) drives the render pipeline
//! directly.

pub mod captcha;
pub mod card_html;
pub mod chromium;
pub mod config;
pub mod consumer;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod render;
pub mod render_pool;
