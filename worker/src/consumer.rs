//! Consumes one job kind's queue: manual acks only after the rendition is in S3 and
//! its row says ready (a worker killed mid-job leaves the message unacked, and
//! RabbitMQ hands it to the next worker). Failures are classified: permanent
//! ones are recorded on the row; transient ones go to a delay queue and come
//! back, up to `KILN_RENDER_MAX_ATTEMPTS`, then to the dead-letter queue.
//! A lost connection is re-established with backoff.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use std::panic::AssertUnwindSafe;

use futures_util::{FutureExt as _, StreamExt as _};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use kiln_core::job::{now_ms, PRIORITY_ON_DEMAND};
use kiln_infra::config::AmqpConfig;
use kiln_infra::queue::{self, Publisher, Topology};

use crate::jobs::{Delivered, JobError, JobHandler};
use crate::metrics as m;
use crate::render_pool::Lane;

pub struct Consumer<H: JobHandler> {
    pub amqp: AmqpConfig,
    pub prefetch: u16,
    pub job_timeout: Duration,
    pub handler: Arc<H>,
    /// Publishes retries and dead letters.
    pub publisher: Arc<Publisher>,
}

impl<H: JobHandler> Consumer<H> {
    /// Runs until `cancel` fires; then stops taking deliveries, lets in-flight
    /// jobs finish (each bounded by the job timeout) and returns.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(250);
        while !cancel.is_cancelled() {
            match self.clone().session(&cancel).await {
                Ok(()) => backoff = Duration::from_millis(250),
                Err(err) => {
                    tracing::warn!("consumer session ended: {err:#}; reconnecting in {backoff:?}");
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn session(self: Arc<Self>, cancel: &CancellationToken) -> anyhow::Result<()> {
        let topology = Topology::new(&self.amqp);
        let connection = queue::connect(&self.amqp, "kiln-worker").await?;
        let channel = connection
            .create_channel()
            .await
            .context("opening channel")?;
        // Prefetch bounds unacked deliveries per worker: enough that S3
        // fetches and uploads overlap renders (a small image's render is a
        // few milliseconds, its fetch tens), few enough that work stays
        // spread over workers. On-demand renders overtake held bulk ones in
        // the render pool.
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .context("setting prefetch")?;
        topology.declare(&channel, H::KIND).await?;
        let mut deliveries = channel
            .basic_consume(
                topology.work_queue(H::KIND).into(),
                "".into(),
                // Manual acks (no_ack: false): a message leaves the queue only
                // once its rendition is stored.
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("starting the consumer")?;
        tracing::info!(queue = %topology.work_queue(H::KIND), prefetch = self.prefetch, "consuming");

        let mut in_flight = JoinSet::new();
        let result = loop {
            tokio::select! {
                _ = cancel.cancelled() => break Ok(()),
                Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        let this = self.clone();
                        let topology = topology.clone();
                        in_flight.spawn(async move { this.handle(&topology, delivery).await });
                    }
                    Some(Err(err)) => break Err(anyhow::Error::new(err).context("delivery stream failed")),
                    None => break Err(anyhow::anyhow!("delivery stream closed")),
                }
            }
        };
        if !in_flight.is_empty() {
            tracing::info!(jobs = in_flight.len(), "waiting for in-flight jobs");
        }
        while in_flight.join_next().await.is_some() {}
        let _ = channel.close(200, "worker stopping".into()).await;
        let _ = connection.close(200, "worker stopping".into()).await;
        result
    }

    async fn handle(&self, topology: &Topology, delivery: Delivery) {
        let kind = H::KIND.name();
        let mut job: H::Job = match serde_json::from_slice(&delivery.data) {
            Ok(job) => job,
            Err(err) => {
                tracing::error!(%err, "undecodable job message; dead-lettering it");
                self.dead_letter_raw(topology, &delivery).await;
                return;
            }
        };
        if let Some(at) = H::enqueued_at_ms(&job) {
            metrics::histogram!(m::QUEUE_WAIT, "kind" => kind)
                .record(now_ms().saturating_sub(at) as f64 / 1000.0);
        }
        let delivered = Delivered {
            resumed: delivery.redelivered || *H::attempt(&mut job) > 1,
            lane: Lane::of_priority(delivery.properties.priority().unwrap_or(0)),
        };
        // A handler that panics fails its job for good (it would panic
        // again): it is recorded and acked, never left unacked to come back.
        let run = AssertUnwindSafe(self.handler.run(&job, delivered)).catch_unwind();
        let outcome = match tokio::time::timeout(self.job_timeout, run).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_panic)) => {
                tracing::error!(cache_key = %H::cache_key(&job), "job handler panicked");
                metrics::counter!(m::JOBS, "kind" => kind, "outcome" => "panicked").increment(1);
                Err(JobError::Permanent {
                    http_status: 422,
                    message: "source image could not be processed".into(),
                })
            }
            Err(_) => Err(JobError::Transient(anyhow::anyhow!(
                "job timed out after {:?}",
                self.job_timeout
            ))),
        };
        let settled = match outcome {
            Ok(()) => {
                metrics::counter!(m::JOBS, "kind" => kind, "outcome" => "ok").increment(1);
                Ok(())
            }
            Err(JobError::Permanent {
                http_status,
                message,
            }) => {
                tracing::info!(http_status, %message, cache_key = %H::cache_key(&job), "rendition failed permanently");
                metrics::counter!(m::JOBS, "kind" => kind, "outcome" => "failed").increment(1);
                self.handler
                    .record_failure(&job, http_status, &message)
                    .await
            }
            Err(JobError::Transient(err)) => self.retry_or_dead_letter(topology, job, err).await,
        };
        let acked = match settled {
            Ok(()) => delivery.ack(BasicAckOptions::default()).await,
            Err(err) => {
                // Could not even record the outcome: hand the message back.
                tracing::warn!("could not settle job: {err:#}; requeueing");
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await
            }
        };
        if let Err(err) = acked {
            tracing::warn!(%err, "ack failed; the broker will redeliver");
        }
    }

    async fn retry_or_dead_letter(
        &self,
        topology: &Topology,
        mut job: H::Job,
        err: anyhow::Error,
    ) -> anyhow::Result<()> {
        let kind = H::KIND.name();
        let failed_attempt = *H::attempt(&mut job);
        let cache_key = H::cache_key(&job).to_owned();
        if failed_attempt < topology.max_attempts() {
            tracing::warn!(attempt = failed_attempt, %cache_key, "transient failure, retrying: {err:#}");
            metrics::counter!(m::JOBS, "kind" => kind, "outcome" => "retried").increment(1);
            *H::attempt(&mut job) += 1;
            let retry_queue = topology.retry_queue(H::KIND, failed_attempt);
            return self
                .publisher
                .publish(&retry_queue, &to_json(&job), PRIORITY_ON_DEMAND)
                .await;
        }
        tracing::error!(attempts = failed_attempt, %cache_key, "giving up, dead-lettering: {err:#}");
        metrics::counter!(m::JOBS, "kind" => kind, "outcome" => "dead").increment(1);
        self.publisher
            .publish(&topology.dead_queue(H::KIND), &to_json(&job), 0)
            .await?;
        self.handler.give_up(&job).await
    }

    async fn dead_letter_raw(&self, topology: &Topology, delivery: &Delivery) {
        let dead = topology.dead_queue(H::KIND);
        let result = match self.publisher.publish(&dead, &delivery.data, 0).await {
            Ok(()) => delivery.ack(BasicAckOptions::default()).await,
            Err(_) => {
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await
            }
        };
        if let Err(err) = result {
            tracing::warn!(%err, "could not settle an undecodable message");
        }
    }
}

fn to_json<T: serde::Serialize>(job: &T) -> Vec<u8> {
    serde_json::to_vec(job).unwrap_or_default()
}
