//! One browser and the one page it reuses for every card: the page is pointed
//! at a template once (viewport, script policy, an empty shell document from
//! the template's origin), then each card replaces the document's content and
//! is captured. Every CDP step runs under the render's deadline, an outer
//! `tokio::time::timeout`, because chromiumoxide's own request timeout does not
//! stop a hung screenshot.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use chromiumoxide::cdp::browser_protocol::emulation::{
    SetDeviceMetricsOverrideParams, SetScriptExecutionDisabledParams,
};
use chromiumoxide::cdp::browser_protocol::fetch::{EnableParams, RequestPattern};
use chromiumoxide::cdp::browser_protocol::inspector::EventTargetCrashed;
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, CaptureScreenshotParams, EventJavascriptDialogOpening,
    HandleJavaScriptDialogParams, SetDocumentContentParams,
};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::{Browser, Page};
use futures_util::StreamExt as _;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use kiln_core::cards::{CardTemplate, ASSET_ORIGIN};

use super::intercept::{self, PageContent};
use super::process::{ChromiumProcess, Launch};

/// Forces a layout (which starts the web-font loads the text needs, emoji
/// subsets included), then waits for those fonts and for images.
const SETTLE: &str = "void document.documentElement.getBoundingClientRect(); \
     document.fonts.ready.then(() => Promise.all(Array.from(document.images, \
     i => i.complete ? 0 : i.decode().catch(() => 0)))).then(() => true)";

/// What a capture produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capture {
    /// Chromium's own JPEG encoder at this quality (the fastest path).
    Jpeg(u8),
    /// Chromium's WebP encoder at this quality.
    Webp(u8),
    /// A fast, large PNG, re-encoded by the worker.
    Png,
}

#[derive(Debug, thiserror::Error)]
pub enum TabError {
    /// The render did not finish by its deadline: the page may be stuck.
    #[error("render timed out")]
    Timeout,
    /// The browser, the page or the CDP connection failed.
    #[error("browser failure: {0:#}")]
    Broken(anyhow::Error),
}

impl From<anyhow::Error> for TabError {
    fn from(err: anyhow::Error) -> Self {
        Self::Broken(err)
    }
}

pub struct Tab {
    browser: Browser,
    page: Page,
    tasks: Vec<JoinHandle<()>>,
    dead: Arc<AtomicBool>,
    content: Arc<Mutex<Option<Arc<PageContent>>>>,
    /// `(name, hash)` of the template the page is set up for.
    current: Option<(String, String)>,
    /// Dropped last: kills the process group.
    process: ChromiumProcess,
}

impl Tab {
    pub async fn open(launch: &Launch) -> anyhow::Result<Self> {
        let timeout = launch.timeout;
        let process = ChromiumProcess::start(launch).await?;
        let config = HandlerConfig {
            viewport: None,
            request_timeout: timeout,
            ..HandlerConfig::default()
        };
        let (browser, mut handler) = tokio::time::timeout(
            timeout,
            Browser::connect_with_config(process.ws_url.clone(), config),
        )
        .await
        .context("connecting to Chromium timed out")?
        .context("connecting to Chromium")?;
        let dead = Arc::new(AtomicBool::new(false));
        let handler_dead = dead.clone();
        let mut tasks = vec![tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if event.is_err() {
                    break;
                }
            }
            // The CDP connection is gone: this browser cannot render any more.
            handler_dead.store(true, Ordering::SeqCst);
        })];
        let page = tokio::time::timeout(timeout, browser.new_page("about:blank"))
            .await
            .context("opening a page timed out")?
            .context("opening a page")?;
        let content = Arc::new(Mutex::new(None));
        tasks.extend(watch_page(&page, dead.clone(), content.clone(), timeout).await?);
        Ok(Self {
            browser,
            page,
            tasks,
            dead,
            content,
            current: None,
            process,
        })
    }

    /// Whether the browser can still render (CDP alive, no crash seen, process running).
    pub fn is_healthy(&mut self) -> bool {
        !self.dead.load(Ordering::SeqCst) && self.process.is_running()
    }

    pub fn pgid(&self) -> Option<i32> {
        self.process.pgid()
    }

    /// Renders `html` for `template` and captures it, all by `deadline`.
    pub async fn render(
        &mut self,
        content: Arc<PageContent>,
        html: String,
        capture: Capture,
        deadline: Instant,
    ) -> Result<Vec<u8>, TabError> {
        let template = content.template.clone();
        *lock(&self.content) = Some(content);
        let key = (template.name.clone(), template.hash.clone());
        let fresh = self.current.as_ref() != Some(&key);
        if fresh {
            self.current = None;
            self.prepare(&template, deadline).await?;
            self.current = Some(key);
        }
        let frame = step(deadline, self.page.mainframe())
            .await?
            .context("reading the main frame")?
            .context("the page has no main frame")?;
        step(
            deadline,
            self.page
                .execute(SetDocumentContentParams::new(frame, html)),
        )
        .await?
        .context("setting the document")?;
        let mut settle = EvaluateParams::new(SETTLE);
        settle.await_promise = Some(true);
        settle.return_by_value = Some(true);
        step(deadline, self.page.execute(settle))
            .await?
            .context("waiting for fonts and images")?;
        if fresh {
            // The first capture of a page just set up can show it half
            // painted (a card cached without its text): capture once and
            // throw it away, which makes the compositor draw the settled
            // page, then settle again.
            let warm = CaptureScreenshotParams {
                format: Some(CaptureScreenshotFormat::Jpeg),
                quality: Some(1),
                from_surface: Some(true),
                ..Default::default()
            };
            step(deadline, self.page.execute(warm))
                .await?
                .context("drawing the page once")?;
            let mut again = EvaluateParams::new(SETTLE);
            again.await_promise = Some(true);
            again.return_by_value = Some(true);
            step(deadline, self.page.execute(again))
                .await?
                .context("waiting for fonts and images")?;
        }
        let mut shot = CaptureScreenshotParams::default();
        match capture {
            Capture::Jpeg(quality) => {
                shot.format = Some(CaptureScreenshotFormat::Jpeg);
                shot.quality = Some(i64::from(quality));
            }
            Capture::Webp(quality) => {
                shot.format = Some(CaptureScreenshotFormat::Webp);
                shot.quality = Some(i64::from(quality));
            }
            Capture::Png => {
                shot.format = Some(CaptureScreenshotFormat::Png);
                shot.optimize_for_speed = Some(true);
            }
        }
        shot.capture_beyond_viewport = Some(false);
        shot.from_surface = Some(true);
        let shot = step(deadline, self.page.execute(shot))
            .await?
            .context("capturing the screenshot")?;
        let data: &str = shot.result.data.as_ref();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .context("decoding the screenshot")?;
        Ok(bytes)
    }

    /// Points the page at `template`: viewport, script policy, shell document.
    async fn prepare(
        &mut self,
        template: &CardTemplate,
        deadline: Instant,
    ) -> Result<(), TabError> {
        let m = &template.manifest;
        step(
            deadline,
            self.page.execute(SetDeviceMetricsOverrideParams::new(
                i64::from(m.width),
                i64::from(m.height),
                m.device_scale_factor,
                false,
            )),
        )
        .await?
        .context("setting the viewport")?;
        step(
            deadline,
            self.page
                .execute(SetScriptExecutionDisabledParams::new(!m.scripts)),
        )
        .await?
        .context("setting the script policy")?;
        let url = format!("{ASSET_ORIGIN}/{}/", template.name);
        step(deadline, self.page.goto(url))
            .await?
            .context("loading the template's shell document")?;
        Ok(())
    }

    /// Replaces the page (after a timeout); fails if the browser cannot.
    pub async fn replace_page(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.current = None;
        let old = self.page.clone();
        let _ = tokio::time::timeout(timeout, old.close()).await;
        let page = tokio::time::timeout(timeout, self.browser.new_page("about:blank"))
            .await
            .context("opening a page timed out")?
            .context("opening a page")?;
        for task in self.tasks.drain(1..) {
            task.abort();
        }
        let watchers = watch_page(&page, self.dead.clone(), self.content.clone(), timeout).await?;
        self.tasks.extend(watchers);
        self.page = page;
        Ok(())
    }

    /// Closes the browser politely, briefly; the process group is killed anyway on drop.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_millis(500), self.browser.close()).await;
        for task in &self.tasks {
            task.abort();
        }
        self.process.terminate().await;
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One CDP step, bounded by the render's deadline.
async fn step<F: std::future::Future>(deadline: Instant, fut: F) -> Result<F::Output, TabError> {
    tokio::time::timeout_at(deadline, fut)
        .await
        .map_err(|_| TabError::Timeout)
}

/// Starts the page's watchers: request interception, crash detection and
/// dialog dismissal (an `alert()` in a script-enabled template never blocks).
async fn watch_page(
    page: &Page,
    dead: Arc<AtomicBool>,
    content: Arc<Mutex<Option<Arc<PageContent>>>>,
    timeout: Duration,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let bounded = |what: &'static str| move |_| anyhow::anyhow!("{what} timed out");
    let mut crashes = tokio::time::timeout(timeout, page.event_listener::<EventTargetCrashed>())
        .await
        .map_err(bounded("listening for crashes"))??;
    let mut dialogs = tokio::time::timeout(
        timeout,
        page.event_listener::<EventJavascriptDialogOpening>(),
    )
    .await
    .map_err(bounded("listening for dialogs"))??;
    let paused = tokio::time::timeout(
        timeout,
        page.event_listener::<chromiumoxide::cdp::browser_protocol::fetch::EventRequestPaused>(),
    )
    .await
    .map_err(bounded("listening for requests"))??;
    tokio::time::timeout(
        timeout,
        page.execute(EnableParams {
            patterns: Some(vec![RequestPattern {
                url_pattern: Some("*".into()),
                resource_type: None,
                request_stage: None,
            }]),
            handle_auth_requests: None,
        }),
    )
    .await
    .map_err(bounded("enabling interception"))?
    .context("enabling interception")?;

    let crash_page_dead = dead;
    let crash_task = tokio::spawn(async move {
        if crashes.next().await.is_some() {
            tracing::warn!("Chromium renderer crashed");
            crash_page_dead.store(true, Ordering::SeqCst);
        }
    });
    let dialog_page = page.clone();
    let dialog_task = tokio::spawn(async move {
        while dialogs.next().await.is_some() {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                dialog_page.execute(HandleJavaScriptDialogParams::new(false)),
            )
            .await;
        }
    });
    let intercept_task = tokio::spawn(intercept::serve(page.clone(), paused, content));
    Ok(vec![crash_task, dialog_task, intercept_task])
}
