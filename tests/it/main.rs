//! End-to-end tests against the real services (one binary, see `kiln_e2e`).

mod bulk;
mod captcha;
mod cards;
mod cli;
mod config_docs;
mod delivery;
mod deploy_files;
mod dialects;
mod errors;
mod fuzz_http;
mod hostile;
mod image_options;
mod links;
mod metering;
mod miss_dedupe;
mod multi_instance;
mod nginx;
mod observability;
mod originals;
mod partners;
mod problems;
mod queues;
mod shutdown;
mod worker_faults;
