//! The miss path and delivery: what a request for a rendition goes through
//! (hot cache, rendition row, claim, publish, wait for ready) and how a ready
//! one reaches the client (redirect or proxy, cache tags, hit times).

pub mod cache_tags;
pub mod card_plan;
pub mod delivery;
pub mod hot_cache;
pub mod rendition;
pub mod retention;
pub mod waiters;
