//! RabbitMQ: topology, connection (re-established lazily after a failure), and
//! confirmed publishing.
//!
//! Per job kind there is a durable work queue (`{prefix}{kind}`, with
//! priorities so bulk work never starves on-demand misses), one delay queue
//! per retry (`{prefix}{kind}.retry.{n}`: messages wait out their TTL there and
//! dead-letter back to the work queue), and a dead-letter queue
//! (`{prefix}{kind}.dead`) for jobs that failed every attempt. With
//! `KILN_QUEUE_TYPE=quorum` every queue is a quorum queue (replicated, for
//! clusters); switching type needs new queue names (a new prefix), as
//! RabbitMQ refuses to redeclare a queue with another type.

use std::time::Duration;

use anyhow::{bail, Context as _};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::config::AmqpConfig;
use kiln_core::job::JobKind;

pub const MAX_PRIORITY: u8 = 10;

/// The broker refused a message because its queue is at `x-max-length`
/// (`KILN_QUEUE_MAX_LENGTH`): callers answer "overloaded", not "down".
#[derive(Debug, thiserror::Error)]
#[error("queue {0} is full")]
pub struct QueueFull(pub String);

/// Queue names for one job kind.
#[derive(Clone, Debug)]
pub struct Topology {
    prefix: String,
    max_attempts: u32,
    expires: Option<Duration>,
    quorum: bool,
    max_length: Option<u32>,
}

impl Topology {
    pub fn new(cfg: &AmqpConfig) -> Self {
        Self {
            prefix: cfg.queue_prefix.clone(),
            max_attempts: cfg.max_attempts,
            expires: cfg.queue_expires,
            quorum: cfg.quorum_queues,
            max_length: cfg.max_queue_length,
        }
    }

    /// Arguments every queue of this topology shares.
    fn base_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        if self.quorum {
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(LongString::from("quorum")),
            );
        }
        if let Some(expires) = self.expires {
            args.insert(
                "x-expires".into(),
                AMQPValue::LongLongInt(expires.as_millis() as i64),
            );
        }
        args
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    pub fn work_queue(&self, kind: JobKind) -> String {
        format!("{}{}", self.prefix, kind.name())
    }

    /// Delay queue a job enters after failing attempt `failed_attempt`.
    pub fn retry_queue(&self, kind: JobKind, failed_attempt: u32) -> String {
        format!("{}{}.retry.{}", self.prefix, kind.name(), failed_attempt)
    }

    pub fn dead_queue(&self, kind: JobKind) -> String {
        format!("{}{}.dead", self.prefix, kind.name())
    }

    /// Every queue this topology declares, over all job kinds.
    pub fn queue_names(&self) -> Vec<String> {
        JobKind::ALL
            .into_iter()
            .flat_map(|kind| {
                std::iter::once(self.work_queue(kind))
                    .chain((1..self.max_attempts).map(move |n| self.retry_queue(kind, n)))
                    .chain(std::iter::once(self.dead_queue(kind)))
            })
            .collect()
    }

    /// Declares every queue of `kind` (idempotent).
    pub async fn declare(&self, channel: &Channel, kind: JobKind) -> anyhow::Result<()> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let mut work_args = self.base_args();
        // Quorum queues take no x-max-priority: since RabbitMQ 4.0 they
        // deliver priorities above 4 (on-demand) before the rest (bulk).
        if !self.quorum {
            work_args.insert(
                "x-max-priority".into(),
                AMQPValue::ShortShortUInt(MAX_PRIORITY),
            );
        }
        // A bounded backlog: past it the broker refuses new jobs (publisher
        // confirms come back negative) instead of letting one client's
        // stream of misses grow the queue without end.
        if let Some(max) = self.max_length {
            work_args.insert(
                "x-max-length".into(),
                AMQPValue::LongLongInt(i64::from(max)),
            );
            work_args.insert(
                "x-overflow".into(),
                AMQPValue::LongString(LongString::from("reject-publish")),
            );
        }
        let work = self.work_queue(kind);
        channel
            .queue_declare(work.as_str().into(), durable, work_args)
            .await
            .map_err(|err| {
                let hint = if err.to_string().contains("PRECONDITION_FAILED") {
                    format!(
                        "; queue {work} exists with other arguments (queue type, \
                         x-max-length): delete it or use a new KILN_QUEUE_PREFIX"
                    )
                } else {
                    String::new()
                };
                anyhow::Error::new(err).context(format!("declaring work queue{hint}"))
            })?;
        for attempt in 1..self.max_attempts {
            let mut args = self.base_args();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(retry_delay(attempt).as_millis() as i64),
            );
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(LongString::from("")),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(LongString::from(self.work_queue(kind))),
            );
            channel
                .queue_declare(self.retry_queue(kind, attempt).into(), durable, args)
                .await
                .context("declaring retry queue")?;
        }
        channel
            .queue_declare(self.dead_queue(kind).into(), durable, self.base_args())
            .await
            .context("declaring dead-letter queue")?;
        Ok(())
    }
}

/// How long a job waits after failing attempt `n`: 1 s, 4 s, 16 s, then 60 s.
pub fn retry_delay(failed_attempt: u32) -> Duration {
    let secs = 4u64
        .saturating_pow(failed_attempt.saturating_sub(1))
        .min(60);
    Duration::from_secs(secs)
}

/// Opens a connection, bounded by the configured timeout.
pub async fn connect(cfg: &AmqpConfig, name: &str) -> anyhow::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(cfg.timeout, Connection::connect(&cfg.url, props))
        .await
        .context("timed out connecting to RabbitMQ")?
        .context("connecting to RabbitMQ")
}

/// Publishes persistent messages with publisher confirms over one channel,
/// reconnecting on the next publish after the connection drops.
pub struct Publisher {
    cfg: AmqpConfig,
    topology: Topology,
    kinds: Vec<JobKind>,
    channel: Mutex<Option<(Connection, Channel)>>,
}

impl Publisher {
    pub fn new(cfg: AmqpConfig, kinds: Vec<JobKind>) -> Self {
        Self {
            topology: Topology::new(&cfg),
            cfg,
            kinds,
            channel: Mutex::new(None),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    async fn open(&self) -> anyhow::Result<(Connection, Channel)> {
        let conn = connect(&self.cfg, "kiln-publisher").await?;
        let channel = conn.create_channel().await.context("opening channel")?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("enabling publisher confirms")?;
        for kind in &self.kinds {
            self.topology.declare(&channel, *kind).await?;
        }
        Ok((conn, channel))
    }

    /// A connected channel, opening a new connection if the last one died.
    async fn channel(&self) -> anyhow::Result<Channel> {
        let mut guard = self.channel.lock().await;
        if let Some((conn, channel)) = guard.as_ref() {
            if conn.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        *guard = None;
        let opened = tokio::time::timeout(self.cfg.timeout, self.open())
            .await
            .context("timed out opening a RabbitMQ channel")??;
        let channel = opened.1.clone();
        *guard = Some(opened);
        Ok(channel)
    }

    pub async fn is_connected(&self) -> bool {
        self.channel().await.is_ok()
    }

    /// Publishes `payload` to `queue` and waits for the broker's confirm.
    pub async fn publish(&self, queue: &str, payload: &[u8], priority: u8) -> anyhow::Result<()> {
        let channel = self.channel().await?;
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_priority(priority.min(MAX_PRIORITY));
        let publish = async {
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    payload,
                    props,
                )
                .await
                .context("publishing")?
                .await
                .context("waiting for publisher confirm")?;
            if !confirm.is_ack() {
                // With reject-publish, a nack means the queue is full.
                return Err(anyhow::Error::new(QueueFull(queue.to_owned())));
            }
            if confirm.take_message().is_some() {
                bail!("message to {queue} was unroutable");
            }
            Ok(())
        };
        tokio::time::timeout(self.cfg.timeout, publish)
            .await
            .context("timed out publishing")?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_cap() {
        let delays: Vec<u64> = (1..=6).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, vec![1, 4, 16, 60, 60, 60]);
    }
}
