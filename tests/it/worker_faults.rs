//! Worker faults: a worker killed mid-job loses nothing; transient failures
//! are retried with backoff and end in the dead-letter queue.

use std::time::Duration;

use kiln_e2e::{follow_redirect, http, images, status_once_ready, TestEnv};

#[tokio::test]
async fn a_worker_killed_mid_job_loses_nothing() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_MISS_WAIT_MS", "30000")]).await?;
    let worker = env
        .spawn_worker(&[("KILN_WORKER_CONCURRENCY", "1")])
        .await?;
    // Large enough that decoding and resizing take a while.
    let source = env
        .upload("huge.png", images::png(5000, 4000), "image/png")
        .await?;
    let client = http();
    let url = api.url(&env.signed_path("400x400,f:jpeg", &source));
    let pending = tokio::spawn(client.get(&url).send());

    worker
        .wait_for_log("rendering", Duration::from_secs(20))
        .await?;
    worker.signal("KILL")?;
    assert!(
        !worker.log_contains("rendition ready"),
        "the kill came after the render finished"
    );
    drop(worker);

    // The message was never acked: a new worker gets it and finishes the job.
    let replacement = env.spawn_worker(&[]).await?;
    let response = pending.await??;
    assert_eq!(
        follow_redirect(&client, response).await?,
        (image::ImageFormat::Jpeg, 400, 320)
    );
    assert_eq!(env.cache_objects().await?.len(), 1, "exactly one object");
    assert_eq!(
        replacement
            .metric(&client, "kiln_jobs_total", &["outcome=\"ok\""])
            .await?,
        1.0
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn transient_failures_retry_with_backoff_then_dead_letter() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_MISS_WAIT_MS", "200")]).await?;
    // This worker cannot read the originals (bad credentials): a transient S3 failure.
    let worker = env
        .spawn_worker(&[
            ("KILN_S3_SECRET_ACCESS_KEY", "not-the-secret"),
            ("KILN_RENDER_MAX_ATTEMPTS", "2"),
        ])
        .await?;
    let source = env
        .upload("t.jpg", images::jpeg(64, 64), "image/jpeg")
        .await?;
    let client = http();
    let response = client
        .get(api.url(&env.signed_path("16x16", &source)))
        .send()
        .await?;
    assert_eq!(response.status(), 503);

    // Attempt 1 fails, waits 1 s in the retry queue, attempt 2 fails: dead-lettered.
    let mut dead = 0.0;
    for _ in 0..100 {
        dead = worker
            .metric(&client, "kiln_jobs_total", &["outcome=\"dead\""])
            .await?;
        if dead > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dead, 1.0);
    assert_eq!(
        worker
            .metric(&client, "kiln_jobs_total", &["outcome=\"retried\""])
            .await?,
        1.0
    );

    let amqp =
        lapin::Connection::connect(&std::env::var("KILN_AMQP_URL")?, Default::default()).await?;
    let channel = amqp.create_channel().await?;
    let queue = channel
        .queue_declare(
            format!("{}image.dead", env.queue_prefix).into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await?;
    assert_eq!(queue.message_count(), 1);

    // The claim was released: with a healthy worker the next request renders.
    let _healthy = env.spawn_worker(&[]).await?;
    let url = api.url(&env.signed_path("16x16", &source));
    assert_eq!(status_once_ready(&client, &url).await?, 302);
    env.cleanup().await;
    Ok(())
}
