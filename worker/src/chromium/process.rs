//! One Chromium process: started with the flags this farm needs, in its own
//! process group with a fresh profile directory; the whole group is killed
//! (SIGKILL) and the profile removed when the handle is dropped, so a worker
//! never leaves a browser, renderer or zygote behind.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// Flags for a headless, offline, single-purpose browser.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-breakpad",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--font-render-hinting=none",
    // Screenshots wait on the next frame; without vsync that is sooner.
    "--disable-gpu-vsync",
    "--disable-frame-rate-limit",
    "--remote-debugging-port=0",
    // Offline pages: interception fails every request for another host, and
    // no name (or address) resolves either, so not even a preconnect leaves.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "about:blank",
];

pub struct ChromiumProcess {
    child: Child,
    pgid: Option<i32>,
    /// Deleted after the group is killed.
    profile: Option<tempfile::TempDir>,
    /// `ws://127.0.0.1:{port}/devtools/browser/{id}`
    pub ws_url: String,
}

impl ChromiumProcess {
    pub async fn start(executable: &Path, launch_timeout: Duration) -> anyhow::Result<Self> {
        let profile = tempfile::Builder::new()
            .prefix("kiln-chromium-")
            .tempdir()
            .context("creating a profile directory")?;
        let mut command = Command::new(executable);
        die_with_parent(&mut command);
        let mut child = command
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", executable.display()))?;
        let pgid = child.id().map(|id| id as i32);
        let stderr = child.stderr.take().context("Chromium's stderr")?;
        let mut process = Self {
            child,
            pgid,
            profile: Some(profile),
            ws_url: String::new(),
        };
        let mut lines = BufReader::new(stderr).lines();
        let found = tokio::time::timeout(launch_timeout, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    return Some(url.trim().to_owned());
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(url)) => process.ws_url = url,
            Ok(None) => bail!("Chromium exited before it was ready"),
            Err(_) => bail!("Chromium did not start within {launch_timeout:?}"),
        }
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(process)
    }

    /// Whether the main process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the whole group and waits (briefly) until none of it is left,
    /// so a stopping worker leaves no browser, renderer or zombie behind.
    pub async fn terminate(&mut self) {
        let Some(pgid) = self.pgid.take() else {
            return;
        };
        let group = Pid::from_raw(pgid);
        let _ = killpg(group, Signal::SIGKILL);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
        // The main process is reaped; its children exit once it is gone.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while killpg(group, None).is_ok() && tokio::time::Instant::now() < deadline {
            let _ = killpg(group, Signal::SIGKILL);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process group id (tests kill it to simulate a crash).
    pub fn pgid(&self) -> Option<i32> {
        self.pgid
    }
}

/// Asks the kernel to SIGKILL the browser when the worker dies, even by
/// SIGKILL (when no `Drop` runs). The signal follows the spawning thread, and
/// browsers are started from the runtime's worker threads, which live as long
/// as the worker. Chromium's own children exit when their parent goes.
fn die_with_parent(command: &mut Command) {
    #[allow(unsafe_code)]
    // SAFETY: runs between fork and exec; prctl(2) is async-signal-safe and
    // the closure neither allocates nor takes locks.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

impl Drop for ChromiumProcess {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH (already gone) is fine.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
        let _ = self.child.start_kill();
        if let Some(profile) = self.profile.take() {
            // The killed processes may still hold files for a moment.
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                drop(profile);
            });
        }
    }
}
