//! Stops and starts the shared services for the fault suite, through
//! `deploy/local/service.sh` (the local stack's own control script).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Postgres,
    Rabbitmq,
    Garage,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Rabbitmq => "rabbitmq",
            Self::Garage => "garage",
        }
    }

    /// Returns once the service no longer accepts connections.
    pub async fn stop(self) -> anyhow::Result<()> {
        control("stop", self).await
    }

    /// Returns once the service accepts connections again.
    pub async fn start(self) -> anyhow::Result<()> {
        control("start", self).await
    }
}

/// The local stack's control script.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/service.sh")
}

async fn control(action: &str, service: Service) -> anyhow::Result<()> {
    let output = tokio::process::Command::new("bash")
        .arg(script())
        .args([action, service.name()])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("running service.sh {action} {}", service.name()))?;
    if !output.status.success() {
        bail!(
            "service.sh {action} {} failed: {}",
            service.name(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Starts the service again if a test fails while it is stopped, so the
/// tests after it find it up.
pub struct Outage(Option<Service>);

impl Outage {
    pub async fn begin(service: Service) -> anyhow::Result<Self> {
        service.stop().await?;
        Ok(Self(Some(service)))
    }

    pub async fn end(mut self) -> anyhow::Result<()> {
        match self.0.take() {
            Some(service) => service.start().await,
            None => Ok(()),
        }
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if let Some(service) = self.0.take() {
            let _ = std::process::Command::new("bash")
                .arg(script())
                .args(["start", service.name()])
                .status();
        }
    }
}
