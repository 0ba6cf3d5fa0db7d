//! A job handler that panics, against a real RabbitMQ: the consumer records
//! the job as failed and acks it, instead of leaving it unacked to come back
//! to the next worker (and the next) forever.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kiln_core::job::{ImageJob, JobKind, PRIORITY_ON_DEMAND};
use kiln_infra::config::AmqpConfig;
use kiln_infra::queue::{Publisher, Topology};
use kiln_worker::consumer::Consumer;
use kiln_worker::jobs::{Delivered, JobError, JobHandler};
use lapin::options::QueueDeclareOptions;
use tokio_util::sync::CancellationToken;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct Panicking {
    runs: Mutex<u32>,
    failures: Mutex<Vec<(u16, String)>>,
}

impl JobHandler for Panicking {
    type Job = ImageJob;
    const KIND: JobKind = JobKind::Image;

    fn cache_key(job: &ImageJob) -> &str {
        &job.cache_key
    }
    fn attempt(job: &mut ImageJob) -> &mut u32 {
        &mut job.attempt
    }
    fn enqueued_at_ms(job: &ImageJob) -> Option<u64> {
        job.enqueued_at_ms
    }
    async fn run(&self, _job: &ImageJob, _delivered: Delivered) -> Result<(), JobError> {
        *lock(&self.runs) += 1;
        panic!("a bug this input finds");
    }
    async fn record_failure(
        &self,
        _job: &ImageJob,
        status: u16,
        message: &str,
    ) -> anyhow::Result<()> {
        lock(&self.failures).push((status, message.to_owned()));
        Ok(())
    }
    async fn give_up(&self, _job: &ImageJob) -> anyhow::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_panicking_job_is_failed_and_acked_not_redelivered() -> anyhow::Result<()> {
    let _ = kiln_infra::env_file::load();
    let url = std::env::var("KILN_AMQP_URL")
        .map_err(|_| anyhow::anyhow!("KILN_AMQP_URL must be set (run deploy/local/test.sh)"))?;
    let amqp = AmqpConfig {
        url,
        queue_prefix: format!("kiln.panic{:08x}.", rand::random::<u32>()),
        timeout: Duration::from_secs(3),
        max_attempts: 3,
        queue_expires: Some(Duration::from_secs(120)),
        quorum_queues: false,
        max_queue_length: Some(100),
    };
    let publisher = Arc::new(Publisher::new(amqp.clone(), vec![JobKind::Image]));
    let job = ImageJob {
        cache_key: "k".into(),
        object_key: "r/k".into(),
        source_key: "a.jpg".into(),
        source_etag: "\"e\"".into(),
        options: "10x10".into(),
        source_bytes: Some(10),
        attempt: 1,
        enqueued_at_ms: None,
        request_id: Some("req-consumer-test".into()),
    };
    let topology = Topology::new(&amqp);
    publisher
        .publish(
            &topology.work_queue(JobKind::Image),
            &job.to_json(),
            PRIORITY_ON_DEMAND,
        )
        .await?;

    let handler = Arc::new(Panicking::default());
    let run = |handler: Arc<Panicking>| {
        let consumer = Arc::new(Consumer {
            amqp: amqp.clone(),
            prefetch: 1,
            job_timeout: Duration::from_secs(5),
            handler,
            publisher: publisher.clone(),
        });
        let cancel = CancellationToken::new();
        (tokio::spawn(consumer.run(cancel.clone())), cancel)
    };
    let (task, cancel) = run(handler.clone());
    for _ in 0..100 {
        if !handler.failures.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    task.await?;
    assert_eq!(
        *handler.failures.lock().unwrap(),
        vec![(422, "source image could not be processed".to_owned())]
    );
    // A second consumer finds nothing: the message was acked.
    let again = Arc::new(Panicking::default());
    let (task, cancel) = run(again.clone());
    tokio::time::sleep(Duration::from_millis(800)).await;
    cancel.cancel();
    task.await?;
    assert_eq!(
        *again.runs.lock().unwrap(),
        0,
        "the panicking job came back"
    );
    let connection = kiln_infra::queue::connect(&amqp, "test").await?;
    let channel = connection.create_channel().await?;
    let queue = channel
        .queue_declare(
            topology.work_queue(JobKind::Image).into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await?;
    assert_eq!(queue.message_count(), 0);
    assert_eq!(*handler.runs.lock().unwrap(), 1, "run once, never again");
    Ok(())
}
