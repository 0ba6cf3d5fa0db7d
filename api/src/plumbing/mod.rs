//! HTTP plumbing every route shares: the server and its limits, bodies,
//! client addresses, request ids, errors and problem documents, rate
//! limits, metrics.

pub mod body;
pub mod client_addr;
pub mod error;
pub mod metrics;
pub mod problem;
pub mod rate_limit;
pub mod request_id;
pub mod server;
