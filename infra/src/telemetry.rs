//! Logging setup: `RUST_LOG` filters (default `info`), `KILN_LOG_FORMAT=json`
//! switches to one JSON object per line.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("KILN_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Logs go to stderr; stdout carries only the one "listening on" line.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        // Colour codes only for a terminal: files and log shippers get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// Installs the global Prometheus recorder; render its handle at `/metrics`.
/// Histograms get explicit buckets (seconds), so they render as histograms.
pub fn install_metrics() -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    use anyhow::Context as _;
    const BUCKETS: &[f64] = &[
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the Prometheus recorder")
}

/// [`install_metrics`], or `None` with a warning: a process without its
/// metrics still serves.
pub fn metrics_or_warn() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    install_metrics()
        .inspect_err(|err| tracing::warn!("metrics disabled: {err:#}"))
        .ok()
}
