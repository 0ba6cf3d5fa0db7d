//! One Chromium process: started with the flags this farm needs, in its own
//! process group with a fresh profile directory; the whole group is killed
//! (SIGKILL) and the profile removed when the handle is dropped, so a worker
//! never leaves a browser, renderer or zygote behind.
//!
//! What a page could reach is kept small:
//! - the environment is cleared: the browser gets no database URL, S3 key,
//!   broker password or signing key, only a `HOME` in its own profile;
//! - DevTools goes over `--remote-debugging-pipe` (fds 3 and 4), not a TCP
//!   port any local process could open: chromiumoxide speaks WebSocket, so a
//!   [`super::bridge`] relays between the pipe and a one-connection socket
//!   on a random path, closed to everyone once the worker is connected;
//! - a worker running as root starts the browser as an unprivileged user
//!   (`KILN_CHROMIUM_USER`, default `nobody`), which lets Chromium use its own
//!   sandbox (user namespaces); `KILN_CHROMIUM_SANDBOX=auto` falls back to
//!   `--no-sandbox` with a warning where the kernel refuses them,
//!   `required` refuses to start without it, `off` never tries.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Gid, Pid, Uid};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use super::bridge::Bridge;

/// Flags for a headless, offline, single-purpose browser.
const FLAGS: &[&str] = &[
    "--headless",
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
    "--remote-debugging-pipe",
    // Offline pages: interception fails every request for another host, and
    // no name (or address) resolves either, so not even a preconnect leaves.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "about:blank",
];

/// Whether Chromium runs inside its own sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sandbox {
    /// Try it; without it (with a warning) if the browser cannot start so.
    Auto,
    /// Refuse to start a browser without it.
    Required,
    /// `--no-sandbox` (the only way a browser runs as root).
    Off,
}

impl Sandbox {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "auto" => Some(Self::Auto),
            "required" => Some(Self::Required),
            "off" => Some(Self::Off),
            _ => None,
        }
    }
}

/// How browsers are started (`KILN_CHROMIUM*`).
#[derive(Clone, Debug)]
pub struct Launch {
    pub executable: std::path::PathBuf,
    pub timeout: Duration,
    pub sandbox: Sandbox,
    /// The account a root worker starts browsers as.
    pub user: String,
}

impl Launch {
    /// The defaults a worker uses, with `KILN_CHROMIUM` as the executable
    /// (for benches and tools).
    pub fn local() -> Self {
        Self {
            executable: std::env::var("KILN_CHROMIUM")
                .unwrap_or_else(|_| "/usr/bin/chromium".into())
                .into(),
            timeout: Duration::from_secs(20),
            sandbox: Sandbox::Auto,
            user: "nobody".into(),
        }
    }
}

/// The account a browser runs as: `None` keeps the worker's own.
#[derive(Clone, Copy, Debug)]
struct Account {
    uid: Uid,
    gid: Gid,
}

pub struct ChromiumProcess {
    child: Child,
    pgid: Option<i32>,
    /// Deleted after the group is killed.
    profile: Option<tempfile::TempDir>,
    /// `ws://127.0.0.1:{port}/devtools/browser/{random}`: the bridge, for
    /// one connection.
    pub ws_url: String,
    bridge: Bridge,
    /// Whether this browser runs sandboxed.
    pub sandboxed: bool,
}

impl ChromiumProcess {
    /// Starts a browser as `launch` says, falling back to no sandbox only
    /// in [`Sandbox::Auto`].
    pub async fn start(launch: &Launch) -> anyhow::Result<Self> {
        let account = account_for(&launch.user)?;
        match launch.sandbox {
            Sandbox::Off => Self::spawn(launch, account, false).await,
            Sandbox::Required => Self::spawn(launch, account, true).await.context(
                "Chromium did not start with its sandbox (KILN_CHROMIUM_SANDBOX=required)",
            ),
            Sandbox::Auto => match Self::spawn(launch, account, true).await {
                Ok(process) => Ok(process),
                Err(err) => {
                    tracing::warn!(
                        "Chromium did not start with its sandbox ({err:#}); \
                         starting it without (KILN_CHROMIUM_SANDBOX=required refuses this)"
                    );
                    Self::spawn(launch, account, false).await
                }
            },
        }
    }

    async fn spawn(
        launch: &Launch,
        account: Option<Account>,
        sandboxed: bool,
    ) -> anyhow::Result<Self> {
        let profile = tempfile::Builder::new()
            .prefix("kiln-chromium-")
            .tempdir()
            .context("creating a profile directory")?;
        if let Some(account) = account {
            nix::unistd::chown(profile.path(), Some(account.uid), Some(account.gid))
                .context("giving the profile directory to the browser's user")?;
        }
        // Chromium reads commands from fd 3 and writes answers to fd 4.
        let (commands_in, commands_out) = pipe()?;
        let (answers_in, answers_out) = pipe()?;
        let mut command = Command::new(&launch.executable);
        command
            .env_clear()
            .env("HOME", profile.path())
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()));
        if !sandboxed {
            command.arg("--no-sandbox");
        }
        prepare_child(&mut command, account, &commands_in, &answers_out);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", launch.executable.display()))?;
        // The child has its copies; these ends are the browser's, not ours.
        drop(commands_in);
        drop(answers_out);
        let pgid = child.id().map(|id| id as i32);
        let stderr = child.stderr.take().context("Chromium's stderr")?;
        // Keep draining stderr so Chromium never blocks on a full pipe; the
        // last lines explain a browser that died while starting.
        let tail = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let tail_writer = tail.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut tail = tail_writer.lock().unwrap_or_else(|p| p.into_inner());
                if tail.len() == 3 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        let bridge = match Bridge::start(commands_out, answers_in, launch.timeout).await {
            Ok(bridge) => bridge,
            Err(err) => {
                if let Some(pgid) = pgid {
                    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                }
                let tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                let said: Vec<&str> = tail.iter().map(String::as_str).collect();
                return Err(err.context(format!("Chromium's last words: {}", said.join(" | "))));
            }
        };
        Ok(Self {
            child,
            pgid,
            profile: Some(profile),
            ws_url: bridge.url().to_owned(),
            bridge,
            sandboxed,
        })
    }

    /// Whether the main process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the whole group and waits (briefly) until none of it is left,
    /// so a stopping worker leaves no browser, renderer or zombie behind.
    pub async fn terminate(&mut self) {
        self.bridge.stop();
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

    /// The browser's process id (tests read its environment).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

fn pipe() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a DevTools pipe")
}

/// The unprivileged account a root worker starts browsers as.
fn account_for(user: &str) -> anyhow::Result<Option<Account>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = nix::unistd::User::from_name(user)
        .with_context(|| format!("looking up KILN_CHROMIUM_USER={user:?}"))?
        .with_context(|| format!("KILN_CHROMIUM_USER={user:?} does not exist"))?;
    if user.uid.is_root() {
        anyhow::bail!("KILN_CHROMIUM_USER must not be root");
    }
    Ok(Some(Account {
        uid: user.uid,
        gid: user.gid,
    }))
}

/// Between fork and exec: the DevTools pipe on fds 3 and 4, the browser's
/// own account, and death with the worker. The kernel SIGKILLs the browser
/// when the worker dies, even by SIGKILL (when no `Drop` runs); the signal
/// follows the spawning thread, and browsers are started from the runtime's
/// worker threads, which live as long as the worker.
fn prepare_child(
    command: &mut Command,
    account: Option<Account>,
    commands_in: &OwnedFd,
    answers_out: &OwnedFd,
) {
    let (read_fd, write_fd) = (commands_in.as_raw_fd(), answers_out.as_raw_fd());
    #[allow(unsafe_code)]
    // SAFETY: runs between fork and exec and calls only async-signal-safe
    // functions (fcntl, dup2, close, setgroups, setgid, setuid, prctl); the
    // closure neither allocates nor takes locks.
    unsafe {
        command.pre_exec(move || {
            // Out of the way first, so neither lands on the other's target.
            let read = libc::fcntl(read_fd, libc::F_DUPFD, 10);
            let write = libc::fcntl(write_fd, libc::F_DUPFD, 10);
            if read < 0 || write < 0 || libc::dup2(read, 3) < 0 || libc::dup2(write, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(read);
            libc::close(write);
            if let Some(account) = account {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(account.gid.as_raw()) != 0
                    || libc::setuid(account.uid.as_raw()) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // After setuid, which clears the parent-death signal.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
}

impl Drop for ChromiumProcess {
    fn drop(&mut self) {
        self.bridge.stop();
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
