//! How a command reports: text for people, or one JSON document for scripts
//! (`--json`); and how it fails (a usage error exits 2, a failure 1).

use serde_json::Value;

/// Why a command did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The command line or an argument is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The work failed (exit 1).
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

pub type CliResult = Result<(), Failure>;

/// An argument the user got wrong.
pub fn usage(message: impl std::fmt::Display) -> Failure {
    Failure::Usage(message.to_string())
}

pub struct Output {
    json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    /// Prints `text` for people, or `doc` with `--json`.
    pub fn print(&self, text: impl FnOnce() -> String, doc: Value) {
        if self.json {
            println!("{doc}");
        } else {
            println!("{}", text());
        }
    }
}
