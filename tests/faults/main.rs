//! The fault suite: Kiln under real service outages. These tests stop and
//! start the shared PostgreSQL, RabbitMQ and Garage, so they are ignored in
//! the parallel run and run one at a time by `deploy/local/test.sh`:
//!
//! ```sh
//! cargo test --release -p kiln-e2e --test faults -- --ignored --test-threads 1
//! ```
//!
//! The faults that need no service restart (a worker SIGKILLed mid-render,
//! SIGTERM to api and worker) run with the other end-to-end tests, in
//! `tests/it/worker_faults.rs` and `tests/it/shutdown.rs`.

mod flow;
mod outages;
