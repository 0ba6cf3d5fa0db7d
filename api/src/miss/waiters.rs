//! Wakes requests waiting for a render. One Postgres `LISTEN` connection per
//! api process receives the worker's NOTIFY (payload: the cache key) and wakes
//! that key's waiters. Notifications sent while the listener was away are
//! lost, so every waiter is woken (to re-read its row) each time the
//! listener has connected: no waiter polls.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use kiln_infra::purge;
use kiln_infra::renditions::CHANNEL;

use crate::miss::hot_cache::HotCache;

#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Arc<Notify>>>,
    /// Woken by every notification (the bulk feeder tops up on it).
    pub any: Notify,
}

/// A registration for one cache key; dropping it unregisters.
pub struct Subscription<'a> {
    waiters: &'a Waiters,
    key: String,
    pub notify: Arc<Notify>,
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.waiters.map.lock() {
            // The map holds one reference and this subscription another.
            if Arc::strong_count(&self.notify) <= 2 {
                map.remove(&self.key);
            }
        }
    }
}

impl Waiters {
    pub fn subscribe(&self, key: &str) -> Subscription<'_> {
        let notify = self
            .map
            .lock()
            .map(|mut map| map.entry(key.to_owned()).or_default().clone())
            .unwrap_or_default();
        Subscription {
            waiters: self,
            key: key.to_owned(),
            notify,
        }
    }

    /// Wakes every waiter (after a reconnect: their notification may be lost).
    fn wake_all(&self) {
        self.any.notify_one();
        let all: Vec<Arc<Notify>> = self
            .map
            .lock()
            .map(|map| map.values().cloned().collect())
            .unwrap_or_default();
        for notify in all {
            notify.notify_waiters();
        }
    }

    fn wake(&self, key: &str) {
        self.any.notify_one();
        let notify = self.map.lock().ok().and_then(|map| map.get(key).cloned());
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    /// Listens for rendition and purge notifications until `cancel` fires,
    /// reconnecting on failure. A purge notice goes to `hot`.
    pub async fn run_listener(
        self: Arc<Self>,
        pool: PgPool,
        hot: Arc<HotCache>,
        cancel: CancellationToken,
    ) {
        while !cancel.is_cancelled() {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(%err, "rendition listener cannot connect; retrying");
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            if let Err(err) = listener.listen_all([CHANNEL, purge::CHANNEL]).await {
                tracing::warn!(%err, "LISTEN failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            // Whatever finished while nobody listened is found by re-reading;
            // whatever was purged meanwhile is forgotten.
            self.wake_all();
            hot.forget(&purge::Notice {
                all: true,
                ..Default::default()
            });
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    // try_recv, not recv: recv would reconnect silently and
                    // nobody would know to re-read what was missed.
                    received = listener.try_recv() => match received {
                        Ok(Some(notification)) if notification.channel() == purge::CHANNEL => {
                            hot.forget(&purge::Notice::parse(notification.payload()));
                        }
                        Ok(Some(notification)) => self.wake(notification.payload()),
                        Ok(None) => {
                            tracing::warn!("rendition listener lost its connection");
                            break;
                        }
                        Err(err) => {
                            tracing::warn!(%err, "rendition listener failed");
                            break;
                        }
                    }
                }
            }
        }
    }
}
