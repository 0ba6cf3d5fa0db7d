//! The start every Kiln server binary shares: the env file, the container
//! `healthcheck` subcommand, logging, configuration (exit 2 when invalid),
//! the runtime, and the exit code of the binary's own `run`.

use std::future::Future;
use std::process::ExitCode;

use crate::{env_file, healthcheck, telemetry};

/// A server binary: its name in logs, and where its `/readyz` listens.
pub struct Binary {
    pub name: &'static str,
    /// The variable naming its listen address, and the address by default.
    pub listen_var: &'static str,
    pub default_listen: &'static str,
}

impl Binary {
    /// Runs the binary: `load` reads its configuration, `run` serves until
    /// shutdown. `{name} healthcheck` probes a running process's `/readyz`
    /// instead (container health checks).
    pub fn main<C, F, Fut>(&self, load: fn() -> anyhow::Result<C>, run: F) -> ExitCode
    where
        F: FnOnce(C) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let env_file = env_file::load();
        if std::env::args().nth(1).as_deref() == Some("healthcheck") {
            return healthcheck::run(self.listen_var, self.default_listen);
        }
        telemetry::init_tracing();
        if let Err(err) = env_file {
            tracing::error!("{err:#}");
            return ExitCode::FAILURE;
        }
        let config = match load() {
            Ok(config) => config,
            Err(err) => {
                tracing::error!("invalid configuration: {err:#}");
                return ExitCode::from(2);
            }
        };
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(err) => {
                tracing::error!(%err, "cannot start the async runtime");
                return ExitCode::FAILURE;
            }
        };
        match runtime.block_on(run(config)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!("{} stopped: {err:#}", self.name);
                ExitCode::FAILURE
            }
        }
    }
}
