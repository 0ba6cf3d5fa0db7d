//! A warm pool of browsers, one per concurrent card render: two captures in
//! parallel inside one browser can hang, separate browsers do not. Browsers
//! are started with the worker, recycled after a number of renders or an age,
//! and restarted when they crash, lose their CDP connection or keep timing out.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use super::intercept::PageContent;
use super::process::Launch;
use super::tab::{Capture, Tab, TabError};
use crate::metrics as m;

#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// How each browser is started (executable, sandbox, account, timeout).
    pub launch: Launch,
    pub browsers: usize,
    /// Restart a browser after this many renders …
    pub recycle_renders: u32,
    /// … or once it is this old.
    pub recycle_age: Duration,
    /// Consecutive timeouts before the browser (not just the page) is replaced.
    pub max_timeouts: u32,
}

#[derive(Default)]
struct Slot {
    tab: Option<Tab>,
    renders: u32,
    started: Option<Instant>,
    timeouts: u32,
}

pub struct BrowserPool {
    config: PoolConfig,
    slots: Vec<Mutex<Slot>>,
    free: Semaphore,
}

impl BrowserPool {
    /// Starts every browser now, so the first card is as fast as the next.
    pub async fn start(config: PoolConfig) -> anyhow::Result<Arc<Self>> {
        let pool = Arc::new(Self {
            slots: (0..config.browsers).map(|_| Mutex::default()).collect(),
            free: Semaphore::new(config.browsers),
            config,
        });
        let starts = pool.slots.iter().map(|slot| async {
            let mut slot = slot.lock().await;
            pool.ensure(&mut slot).await
        });
        for result in futures_util::future::join_all(starts).await {
            result?;
        }
        Ok(pool)
    }

    pub fn size(&self) -> usize {
        self.slots.len()
    }

    /// Renders one card on a free browser within `timeout` (not counting a
    /// browser start, which the pool does first when it has to).
    pub async fn render(
        &self,
        content: Arc<PageContent>,
        html: String,
        capture: Capture,
        timeout: Duration,
    ) -> Result<Vec<u8>, TabError> {
        let _permit = self
            .free
            .acquire()
            .await
            .map_err(|_| TabError::Broken(anyhow::anyhow!("browser pool closed")))?;
        let mut guard = self.free_slot().await;
        let slot = &mut *guard;
        self.ensure(slot).await?;
        let Some(tab) = slot.tab.as_mut() else {
            return Err(TabError::Broken(anyhow::anyhow!("no browser")));
        };
        let result = tab
            .render(content, html, capture, Instant::now() + timeout)
            .await;
        match &result {
            Ok(_) => {
                slot.renders += 1;
                slot.timeouts = 0;
            }
            Err(TabError::Timeout) => {
                metrics::counter!(m::CARD_TIMEOUTS).increment(1);
                slot.timeouts += 1;
                let replaced = slot.timeouts < self.config.max_timeouts
                    && tab.replace_page(self.config.launch.timeout).await.is_ok();
                if !replaced {
                    self.retire(slot, "repeated timeouts").await;
                }
            }
            Err(TabError::Broken(err)) => {
                tracing::warn!("browser failed: {err:#}");
                self.retire(slot, "failure").await;
            }
        }
        result
    }

    async fn free_slot(&self) -> tokio::sync::MutexGuard<'_, Slot> {
        // A permit guarantees one slot is unlocked or about to be.
        loop {
            for slot in &self.slots {
                if let Ok(guard) = slot.try_lock() {
                    return guard;
                }
            }
            tokio::task::yield_now().await;
        }
    }

    /// Makes sure the slot holds a healthy, not yet due browser.
    async fn ensure(&self, slot: &mut Slot) -> Result<(), TabError> {
        let due = slot.renders >= self.config.recycle_renders
            || slot
                .started
                .is_some_and(|at| at.elapsed() >= self.config.recycle_age);
        let healthy = slot.tab.as_mut().is_some_and(Tab::is_healthy);
        if healthy && !due {
            return Ok(());
        }
        if slot.tab.is_some() {
            self.retire(slot, if due { "recycled" } else { "unhealthy" })
                .await;
        }
        let tab = Tab::open(&self.config.launch)
            .await
            .map_err(TabError::Broken)?;
        metrics::counter!(m::BROWSER_STARTS).increment(1);
        *slot = Slot {
            tab: Some(tab),
            renders: 0,
            started: Some(Instant::now()),
            timeouts: 0,
        };
        Ok(())
    }

    async fn retire(&self, slot: &mut Slot, why: &'static str) {
        if let Some(tab) = slot.tab.take() {
            tracing::info!(why, renders = slot.renders, "restarting a browser");
            metrics::counter!(m::BROWSER_RESTARTS, "reason" => why).increment(1);
            tab.close().await;
        }
    }

    /// Closes every browser (the worker is stopping).
    pub async fn shutdown(&self) {
        self.free.close();
        for slot in &self.slots {
            let mut slot = slot.lock().await;
            if let Some(tab) = slot.tab.take() {
                tab.close().await;
            }
        }
    }
}
