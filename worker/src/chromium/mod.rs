//! Headless Chromium for social cards: processes ([`process`]), one reused
//! page per browser ([`tab`]), offline request interception ([`intercept`])
//! and the warm pool the card job renders on ([`pool`]).

mod bridge;
pub mod intercept;
pub mod pool;
pub mod process;
pub mod tab;

pub use intercept::PageContent;
pub use pool::{BrowserPool, PoolConfig};
pub use process::{Launch, Sandbox};
pub use tab::{Capture, TabError};
