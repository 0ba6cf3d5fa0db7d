//! Harness for Kiln's end-to-end tests: real PostgreSQL, RabbitMQ and Garage,
//! real `kiln-api` and `kiln-worker` processes on free ports.
//!
//! Every [`TestEnv`] gets its own database (migrated by the api it starts),
//! its own queue prefix and its own key prefixes in both buckets, so tests run
//! in parallel without seeing each other's messages or objects.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use kiln_core::signing::SigningConfig;
use kiln_infra::config::{AmqpConfig, S3Config};
use kiln_infra::queue::Topology;
use kiln_infra::storage::Storage;
use rand::RngExt as _;
use sqlx::{Connection as _, Executor as _, PgConnection};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub mod crafted;
pub mod images;
pub mod peers;
pub mod services;

/// The signing key every test api is configured with.
pub const SIGNING_KEY: &str = "e2e-signing-key-0123456789abcdef";
/// The nginx-compatible expression test apis use unless a test overrides it.
pub const NGINX_EXPRESSION: &str = "$uri e2e-nginx-secret";

/// The admin bearer key of every test api.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef0123";

/// The captcha salt every test api and worker shares.
pub const CAPTCHA_SALT: &str = "test-captcha-salt-0123456789abcdef";

/// The repository's `templates/` directory.
pub fn repo_templates() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates")
}

/// A Kiln binary (`kiln`, `kiln-api`, `kiln-worker`).
pub fn binary(name: &str) -> PathBuf {
    bin_dir().join(name)
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("KILN_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // target/{profile}/deps/it-HASH → target/{profile}
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .to_path_buf()
}

pub struct TestEnv {
    pub id: String,
    pub database_url: String,
    pub queue_prefix: String,
    pub source_prefix: String,
    pub cache_prefix: String,
    pub storage: Storage,
    base_env: HashMap<String, String>,
}

impl TestEnv {
    pub async fn new() -> anyhow::Result<Self> {
        let _ = kiln_infra::env_file::load();
        let id = format!("t{:012x}", rand::rng().random::<u64>() & 0xffff_ffff_ffff);
        let admin_url = std::env::var("KILN_DATABASE_URL")
            .context("KILN_DATABASE_URL must be set (run deploy/local/test.sh)")?;
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .context("connecting to Postgres")?;
        let db_name = format!("kiln_{id}");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db_name}")))
            .await?;
        let database_url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{db_name}"),
            None => bail!("KILN_DATABASE_URL has no database name"),
        };
        let s3_config = S3Config::from_env()?;
        let storage = Storage::new(s3_config.clone());
        let mut env = Self {
            queue_prefix: format!("kiln.{id}."),
            source_prefix: format!("{id}/"),
            cache_prefix: format!("{id}/r/"),
            database_url,
            storage,
            id,
            base_env: HashMap::new(),
        };
        let pairs = [
            ("KILN_ENV_FILE", String::new()),
            ("KILN_DATABASE_URL", env.database_url.clone()),
            (
                "KILN_AMQP_URL",
                std::env::var("KILN_AMQP_URL").unwrap_or_default(),
            ),
            ("KILN_QUEUE_PREFIX", env.queue_prefix.clone()),
            // RabbitMQ removes this test's queues once it is over.
            ("KILN_QUEUE_EXPIRES_MS", "300000".to_owned()),
            ("KILN_S3_ENDPOINT", s3_config.endpoint.clone()),
            ("KILN_S3_REGION", s3_config.region.clone()),
            ("KILN_S3_ACCESS_KEY_ID", s3_config.access_key_id.clone()),
            (
                "KILN_S3_SECRET_ACCESS_KEY",
                s3_config.secret_access_key.clone(),
            ),
            (
                "KILN_S3_ORIGINALS_BUCKET",
                s3_config.originals_bucket.clone(),
            ),
            ("KILN_S3_CACHE_BUCKET", s3_config.cache_bucket.clone()),
            ("KILN_S3_CACHE_PREFIX", env.cache_prefix.clone()),
            ("KILN_SIGNING_KEYS", SIGNING_KEY.to_owned()),
            ("KILN_CAPTCHA_SALT", CAPTCHA_SALT.to_owned()),
            ("KILN_ADMIN_KEYS", ADMIN_KEY.to_owned()),
            ("KILN_NGINX_SECURE_LINK_MD5", NGINX_EXPRESSION.to_owned()),
            ("KILN_LISTEN", "127.0.0.1:0".to_owned()),
            ("KILN_WORKER_LISTEN", "127.0.0.1:0".to_owned()),
            ("KILN_DATABASE_MAX_CONNECTIONS", "8".to_owned()),
            // Card tests ask for browsers; the others need none.
            ("KILN_WORKER_KINDS", "image".to_owned()),
            ("KILN_CARD_BROWSERS", "1".to_owned()),
            ("KILN_TEMPLATES_DIR", repo_templates().display().to_string()),
            ("RUST_LOG", "info,sqlx=warn,aws=warn,lapin=warn".to_owned()),
        ];
        env.base_env = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Ok(env)
    }

    /// A source key inside this test's prefix.
    pub fn source(&self, name: &str) -> String {
        format!("{}{name}", self.source_prefix)
    }

    pub async fn upload(
        &self,
        name: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> anyhow::Result<String> {
        let key = self.source(name);
        self.storage
            .put_original(&key, bytes.into(), content_type)
            .await?;
        Ok(key)
    }

    /// Rendered objects this test's apis and workers wrote to the cache bucket.
    pub async fn cache_objects(&self) -> anyhow::Result<Vec<String>> {
        let out = self
            .storage
            .client()
            .list_objects_v2()
            .bucket(&self.storage.config().cache_bucket)
            .prefix(&self.cache_prefix)
            .send()
            .await?;
        Ok(out
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect())
    }

    pub async fn db(&self) -> anyhow::Result<PgConnection> {
        Ok(PgConnection::connect(&self.database_url).await?)
    }

    fn command(&self, binary: &str, overrides: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(bin_dir().join(binary));
        cmd.env_clear();
        for key in ["PATH", "HOME"] {
            if let Ok(value) = std::env::var(key) {
                cmd.env(key, value);
            }
        }
        cmd.envs(&self.base_env);
        for (k, v) in overrides {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    pub async fn spawn_api(&self, overrides: &[(&str, &str)]) -> anyhow::Result<Process> {
        Process::spawn(
            self.command("kiln-api", overrides),
            "kiln-api listening on ",
            "api",
        )
        .await
    }

    pub async fn spawn_worker(&self, overrides: &[(&str, &str)]) -> anyhow::Result<Process> {
        Process::spawn(
            self.command("kiln-worker", overrides),
            "kiln-worker health on ",
            "worker",
        )
        .await
    }

    /// A worker whose address space is capped at `bytes` (util-linux
    /// `prlimit`, which execs it: same pid): an allocation past the cap
    /// aborts it, as the kernel's OOM killer would kill it.
    pub async fn spawn_worker_with_memory_cap(
        &self,
        overrides: &[(&str, &str)],
        bytes: u64,
    ) -> anyhow::Result<Process> {
        let mut cmd = self.command("kiln-worker", overrides);
        let program = cmd.as_std().get_program().to_owned();
        let mut capped = Command::new("prlimit");
        capped
            .arg(format!("--as={bytes}"))
            .arg("--")
            .arg(program)
            .env_clear()
            .envs(cmd.as_std().get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Fewer malloc arenas: the worker's baseline address space stays small.
        capped.env("MALLOC_ARENA_MAX", "2");
        cmd = capped;
        Process::spawn(cmd, "kiln-worker health on ", "worker").await
    }

    /// Deletes every queue this test's processes may have declared.
    async fn delete_queues(&self) -> anyhow::Result<()> {
        let amqp = lapin::Connection::connect(&std::env::var("KILN_AMQP_URL")?, Default::default())
            .await?;
        let channel = amqp.create_channel().await?;
        // The most attempts a test may configure: every retry queue it could have.
        let topology = Topology::new(&AmqpConfig {
            url: String::new(),
            queue_prefix: self.queue_prefix.clone(),
            timeout: Duration::from_secs(3),
            max_attempts: 10,
            queue_expires: None,
            quorum_queues: false,
            max_queue_length: None,
        });
        for name in topology.queue_names() {
            // Deleting a queue that was never declared is a no-op in RabbitMQ.
            channel
                .queue_delete(name.as_str().into(), Default::default())
                .await
                .with_context(|| format!("deleting {name}"))?;
        }
        let _ = amqp.close(200, "".into()).await;
        Ok(())
    }

    /// Messages waiting in this test's queue `{prefix}{name}` (e.g. `card`).
    pub async fn queue_depth(&self, name: &str) -> anyhow::Result<u32> {
        let amqp = lapin::Connection::connect(&std::env::var("KILN_AMQP_URL")?, Default::default())
            .await?;
        let channel = amqp.create_channel().await?;
        let queue = channel
            .queue_declare(
                format!("{}{name}", self.queue_prefix).into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await?;
        let _ = amqp.close(200, "".into()).await;
        Ok(queue.message_count())
    }

    /// Transactions committed in this test's database so far: what Kiln has
    /// asked Postgres (each statement outside a transaction is one).
    pub async fn transactions(&self) -> anyhow::Result<i64> {
        let admin_url = std::env::var("KILN_DATABASE_URL")?;
        let mut admin = PgConnection::connect(&admin_url).await?;
        // Statistics reach the shared view when a backend is idle, within a second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let count: i64 = sqlx::query_scalar(
            "SELECT (xact_commit + xact_rollback)::int8 FROM pg_stat_database WHERE datname = $1",
        )
        .bind(format!("kiln_{}", self.id))
        .fetch_one(&mut admin)
        .await?;
        Ok(count)
    }

    /// Runs `binary` (`kiln-api`, `kiln-worker`) with this test's
    /// environment and `overrides` until it exits (at most 20 s): for
    /// settings it must refuse at start-up.
    pub async fn run_to_exit(
        &self,
        binary: &str,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<std::process::Output> {
        let mut cmd = self.command(binary, overrides);
        cmd.stdin(Stdio::null());
        Ok(tokio::time::timeout(Duration::from_secs(20), cmd.output()).await??)
    }

    /// Runs the `kiln` command line with this test's environment.
    pub async fn cli(
        &self,
        args: &[&str],
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<std::process::Output> {
        let mut cmd = self.command("kiln", overrides);
        cmd.args(args).stdin(Stdio::null());
        Ok(cmd.output().await?)
    }

    /// Creates a partner through the admin API; returns its key.
    pub async fn create_partner(
        &self,
        api: &Process,
        body: serde_json::Value,
    ) -> anyhow::Result<String> {
        let response = http()
            .post(api.url("/v1/partners"))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
            .await?;
        if response.status() != 201 {
            bail!(
                "creating a partner: {} {}",
                response.status(),
                response.text().await?
            );
        }
        let created: serde_json::Value = response.json().await?;
        created["key"]
            .as_str()
            .map(str::to_owned)
            .context("no key in the answer")
    }

    /// A signed native URL path for `options` and a source key.
    pub fn signed_path(&self, options: &str, source: &str) -> String {
        let signing = SigningConfig {
            keys: vec![SIGNING_KEY.as_bytes().to_vec()],
            signature_len: kiln_core::signing::FULL_SIGNATURE_LEN,
            allow_unsafe: false,
        };
        let payload = format!("{options}/{source}");
        format!(
            "/img/{}/{payload}",
            signing.sign(&payload).unwrap_or_default()
        )
    }

    /// A signed card path: `/card/{signature}/{template}/{id}.{ext}[?query]`.
    pub fn signed_card(&self, payload: &str) -> String {
        let signing = SigningConfig {
            keys: vec![SIGNING_KEY.as_bytes().to_vec()],
            signature_len: kiln_core::signing::FULL_SIGNATURE_LEN,
            allow_unsafe: false,
        };
        let (path, query) = match payload.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (payload, None),
        };
        let signed = kiln_core::signing::card_payload(path, query);
        format!(
            "/card/{}/{payload}",
            signing.sign(&signed).unwrap_or_default()
        )
    }

    /// Drops this test's database and deletes its queues (best effort;
    /// leftover databases are swept by test.sh). Queues left behind would
    /// expire, but only while the broker runs: a broker stopped first
    /// recovers every one of them on its next boot (after an unclean stop,
    /// a thousand of them kept RabbitMQ 4.1 from ever finishing its boot).
    pub async fn cleanup(self) {
        if let Err(err) = self.delete_queues().await {
            eprintln!("cleanup: queues of {} not deleted: {err:#}", self.id);
        }
        if let Ok(admin_url) = std::env::var("KILN_DATABASE_URL") {
            if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                let _ = admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS kiln_{} WITH (FORCE)",
                        self.id
                    )))
                    .await;
            }
        }
    }
}

/// A running Kiln process; killed when dropped.
pub struct Process {
    pub child: Child,
    pub base_url: String,
    /// Every log line the process wrote so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    async fn spawn(
        mut cmd: Command,
        ready_prefix: &str,
        name: &'static str,
    ) -> anyhow::Result<Self> {
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {name} (build it first)"))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().context("stderr")?;
        let stderr_log = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("[{name}] {line}");
                }
                if let Ok(mut log) = stderr_log.lock() {
                    log.push(line);
                }
            }
        });
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let stdout_log = log.clone();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Ok(mut log) = stdout_log.lock() {
                    log.push(line.clone());
                }
                if let Some(url) = line.strip_prefix(ready_prefix) {
                    return Ok::<_, anyhow::Error>(url.trim().to_owned());
                }
            }
            bail!("{name} exited before it was ready")
        })
        .await;
        let base_url = match ready {
            Ok(Ok(url)) => url,
            Ok(Err(err)) => bail!(
                "{err}; its log:\n{}",
                log.lock().map(|l| l.join("\n")).unwrap_or_default()
            ),
            Err(_) => bail!("{name} was not ready within 30 s"),
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            child,
            base_url,
            log,
        })
    }

    /// Sends `GET {path}` byte for byte (HTTP clients normalise `..` and
    /// `//` away) and returns the status code and body.
    pub async fn raw_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        let (status, _, body) = self.raw_get_with_head(path).await?;
        Ok((status, body))
    }

    /// [`Self::raw_get`], with the response head (status line and headers).
    pub async fn raw_get_with_head(&self, path: &str) -> anyhow::Result<(u16, String, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base_url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            stream.read_to_string(&mut response),
        )
        .await??;
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("not an HTTP response: {response:?}"))?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .map(|(h, b)| (h.to_owned(), b.to_owned()))
            .unwrap_or_default();
        Ok((status, head, body))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Samples the process's resident memory every 20 ms until the sampler
    /// is stopped; [`RssSampler::stop`] gives the peak.
    pub fn sample_rss(&self) -> RssSampler {
        RssSampler::start(self.pid().unwrap_or(0))
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit; fails if it takes longer than `within`.
    pub async fn exit_status(
        &mut self,
        within: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .with_context(|| format!("still running after {within:?}"))?
            .context("waiting for the process")
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .map(|l| l.iter().filter(|line| line.contains(needle)).count())
            .unwrap_or(0)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log
            .lock()
            .map(|l| l.iter().any(|line| line.contains(needle)))
            .unwrap_or(false)
    }

    /// Waits until a log line contains `needle`.
    pub async fn wait_for_log(&self, needle: &str, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.log_contains(needle) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("no log line containing {needle:?} within {within:?}")
    }

    /// Sends a signal by name (`TERM`, `KILL`).
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let pid = self.child.id().context("process already exited")?;
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{name} {pid} failed");
        }
        Ok(())
    }

    /// The value of a counter or gauge in the process's `/metrics`, summed
    /// over every series whose labels contain all of `labels`.
    pub async fn metric(
        &self,
        client: &reqwest::Client,
        name: &str,
        labels: &[&str],
    ) -> anyhow::Result<f64> {
        let text = client
            .get(self.url("/metrics"))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|line| line.starts_with(name) && !line.starts_with('#'))
            .filter(|line| line[name.len()..].starts_with(['{', ' ']))
            .filter(|line| labels.iter().all(|l| line.contains(l)))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Polls a metric until it reaches `want` or `within` passes; returns
    /// the last value read (for work that finishes after the response a
    /// test saw, such as a retry still running).
    pub async fn metric_reaching(
        &self,
        client: &reqwest::Client,
        name: &str,
        labels: &[&str],
        want: f64,
        within: Duration,
    ) -> anyhow::Result<f64> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let value = self.metric(client, name, labels).await?;
            if value >= want || tokio::time::Instant::now() >= deadline {
                return Ok(value);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Resident memory of a process, in MiB, from `/proc/{pid}/status`.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// A background sampler of one process's resident memory.
pub struct RssSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    peak: tokio::task::JoinHandle<f64>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let peak = tokio::spawn(async move {
            let mut peak = 0.0f64;
            loop {
                if let Some(now) = rss_mib(pid) {
                    peak = peak.max(now);
                }
                tokio::select! {
                    _ = &mut stopped => return peak,
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        });
        Self { stop, peak }
    }

    /// The highest RSS seen, in MiB.
    pub async fn stop(self) -> f64 {
        let _ = self.stop.send(());
        self.peak.await.unwrap_or(0.0)
    }
}

/// An HTTP client that does not follow redirects (tests check them).
pub fn http() -> reqwest::Client {
    http_with_timeout(Duration::from_secs(30))
}

/// The same, failing any request not answered within `timeout`.
pub fn http_with_timeout(timeout: Duration) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .expect("HTTP client")
}

/// Follows a 302 from Kiln to S3 and returns the rendered image's
/// (format, width, height), failing if the redirect or the object is missing.
pub async fn follow_redirect(
    client: &reqwest::Client,
    response: reqwest::Response,
) -> anyhow::Result<(image::ImageFormat, u32, u32)> {
    Ok(images::inspect(&redirected_bytes(client, response).await?))
}

/// The object a 302 from Kiln points at, failing on any other answer.
pub async fn redirected_bytes(
    client: &reqwest::Client,
    response: reqwest::Response,
) -> anyhow::Result<bytes::Bytes> {
    if response.status() != 302 {
        bail!(
            "expected 302, got {}: {}",
            response.status(),
            response.text().await?
        );
    }
    let location = response.headers()["location"].to_str()?.to_owned();
    Ok(client
        .get(location)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?)
}

/// Requests `url` until it answers something other than 503 (at most ~5 s)
/// and returns that status.
pub async fn status_once_ready(client: &reqwest::Client, url: &str) -> anyhow::Result<u16> {
    let mut status = 503;
    for _ in 0..20 {
        status = client.get(url).send().await?.status().as_u16();
        if status != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(status)
}
