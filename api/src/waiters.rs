//! Wakes requests waiting for a render. One Postgres `LISTEN` connection per
//! api process receives the worker's NOTIFY (payload: the cache key) and wakes
//! that key's waiters. Notifications can be lost while the listener
//! reconnects, so waiters also re-read the row on a short interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use kiln_core::renditions::CHANNEL;

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

    fn wake(&self, key: &str) {
        self.any.notify_one();
        let notify = self.map.lock().ok().and_then(|map| map.get(key).cloned());
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    /// Listens for rendition notifications until `cancel` fires, reconnecting on failure.
    pub async fn run_listener(self: Arc<Self>, pool: PgPool, cancel: CancellationToken) {
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
            if let Err(err) = listener.listen(CHANNEL).await {
                tracing::warn!(%err, "LISTEN failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    received = listener.recv() => match received {
                        Ok(notification) => self.wake(notification.payload()),
                        Err(err) => {
                            tracing::warn!(%err, "rendition listener lost its connection");
                            break;
                        }
                    }
                }
            }
        }
    }
}
