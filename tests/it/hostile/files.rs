//! Crafted originals: each can fail only its own rendition. The worker keeps
//! rendering other users' images, its memory stays bounded, and nothing is
//! lost or retried forever.

use std::time::Duration;

use kiln_e2e::{crafted, follow_redirect, http, images, TestEnv};

use super::status_of;

/// Another user's JPEG `source` renders to `size` through `api`.
async fn renders(
    env: &TestEnv,
    api: &kiln_e2e::Process,
    source: &str,
    size: (u32, u32),
) -> anyhow::Result<()> {
    let client = http();
    let url = api.url(&env.signed_path(&format!("{}x{}", size.0, size.1), source));
    let response = client.get(url).send().await?;
    assert_eq!(
        follow_redirect(&client, response).await?,
        (image::ImageFormat::Jpeg, size.0, size.1)
    );
    Ok(())
}

/// The review's JPEG: the header scan saw 100×100, the fallback decoder
/// 65535×65535 (~12.9 GB). It is refused before any pixel buffer exists.
#[tokio::test]
async fn a_jpeg_whose_decoders_disagree_fails_alone() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_MISS_WAIT_MS", "20000")]).await?;
    let mut worker = env
        .spawn_worker(&[("KILN_WORKER_CONCURRENCY", "1")])
        .await?;
    let decoy = env
        .upload("decoy.jpg", crafted::decoy_frame_jpeg(), "image/jpeg")
        .await?;
    let fine = env
        .upload("fine.jpg", images::jpeg(640, 480), "image/jpeg")
        .await?;
    let client = http();
    let rss = worker.sample_rss();

    let attack = api.url(&env.signed_path("100x100", &decoy));
    let (status, body) = status_of(&client, &attack).await?;
    assert_eq!(status, 422, "{body}");
    // Remembered: asking again answers at once, no second render.
    assert_eq!(status_of(&client, &attack).await?.0, 422);
    // Another user's image renders on the same worker.
    renders(&env, &api, &fine, (320, 240)).await?;
    let peak = rss.stop().await;
    assert!(worker.is_running(), "the worker survived");
    assert!(peak < 200.0, "worker RSS peaked at {peak:.0} MiB");
    assert_eq!(
        worker
            .metric(&client, "kiln_jobs_total", &["outcome=\"failed\""])
            .await?,
        1.0
    );
    env.cleanup().await;
    Ok(())
}

/// Thousands of progressive scans, each a pass over the whole image: the
/// decoders stop at their scan limit and the render thread is free again.
#[tokio::test]
async fn thousands_of_progressive_scans_do_not_hold_a_render_thread() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_MISS_WAIT_MS", "15000")]).await?;
    let mut worker = env
        .spawn_worker(&[("KILN_WORKER_CONCURRENCY", "1")])
        .await?;
    let scans = env
        .upload(
            "scans.jpg",
            crafted::many_scans_jpeg(4000, 3000, 5000),
            "image/jpeg",
        )
        .await?;
    let fine = env
        .upload("fine.jpg", images::jpeg(640, 480), "image/jpeg")
        .await?;
    let client = http();

    let (status, body) = status_of(&client, &api.url(&env.signed_path("200x150", &scans))).await?;
    assert_eq!(status, 422, "refused, not rendered for minutes: {body}");
    // The only render thread takes the next image at once.
    renders(&env, &api, &fine, (320, 240)).await?;
    assert!(worker.is_running());
    env.cleanup().await;
    Ok(())
}

/// A render past its time budget stops at the next stage, fails for good
/// (it would be as slow again) and frees its thread for the next job.
#[tokio::test]
async fn a_render_past_its_budget_frees_its_thread() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_MISS_WAIT_MS", "20000")]).await?;
    let worker = env
        .spawn_worker(&[
            ("KILN_WORKER_CONCURRENCY", "1"),
            ("KILN_RENDER_TIMEOUT_MS", "50"),
        ])
        .await?;
    // Decoding and resizing this PNG takes longer than 50 ms.
    let slow = env
        .upload("slow.png", images::png(5000, 4000), "image/png")
        .await?;
    let fine = env
        .upload("fine.jpg", images::jpeg(64, 48), "image/jpeg")
        .await?;
    let client = http();
    let (status, body) = status_of(
        &client,
        &api.url(&env.signed_path("2000x1600,f:png", &slow)),
    )
    .await?;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("took longer than"), "{body}");
    renders(&env, &api, &fine, (32, 24)).await?;
    assert_eq!(
        worker
            .metric(&client, "kiln_jobs_total", &["outcome=\"retried\""])
            .await?,
        0.0,
        "not retried on other threads"
    );
    env.cleanup().await;
    Ok(())
}

/// A job that kills its worker (here: an allocation past the process's
/// memory cap aborts it, as the OOM killer would kill it) takes down at
/// most `KILN_MAX_RENDER_CRASHES` worker lives; then it is failed, and the
/// next worker renders everyone else's images.
#[tokio::test]
async fn a_job_that_kills_its_worker_is_failed_after_three_deaths() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_MISS_WAIT_MS", "30000")]).await?;
    // 7000×7000: a 147 MB decode buffer, more than the capped worker has.
    let killer = env
        .upload("killer.png", images::png(7000, 7000), "image/png")
        .await?;
    let fine = env
        .upload("fine.jpg", images::jpeg(64, 48), "image/jpeg")
        .await?;
    let client = http();
    let worker_env = [
        ("KILN_WORKER_CONCURRENCY", "1"),
        ("KILN_MAX_RENDER_CRASHES", "3"),
        ("KILN_WORKER_FETCH_BUDGET_BYTES", "52428800"),
    ];
    const CAP: u64 = 260 << 20;

    let pending = tokio::spawn({
        let client = client.clone();
        let url = api.url(&env.signed_path("100x100", &killer));
        async move { status_of(&client, &url).await }
    });
    let mut deaths = 0;
    for life in 0..5 {
        let mut worker = env.spawn_worker_with_memory_cap(&worker_env, CAP).await?;
        let ended = worker.exit_status(Duration::from_secs(20)).await;
        match ended {
            Ok(status) => {
                assert!(!status.success(), "life {life}: the worker died ({status})");
                deaths += 1;
            }
            // Still alive: the job was failed instead of rendered again.
            Err(_) => {
                let (status, body) = pending.await??;
                assert_eq!(status, 422, "{body}");
                renders(&env, &api, &fine, (32, 24)).await?;
                assert!(worker.log_contains("failing the rendition"));
                break;
            }
        }
    }
    assert_eq!(deaths, 3, "three worker lives, then the job is failed");
    let crashes: i32 = sqlx::query_scalar("SELECT crashes FROM renditions WHERE status = 'failed'")
        .fetch_one(&mut env.db().await?)
        .await?;
    assert_eq!(crashes, 3);
    env.cleanup().await;
    Ok(())
}

/// Deliveries held ahead of a free render thread wait for room in the fetch
/// budget before downloading: the originals in memory stay within it, not
/// prefetch × the byte limit.
#[tokio::test]
async fn prefetched_jobs_hold_no_more_bytes_than_the_budget() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_MISS_WAIT_MS", "60000")]).await?;
    let worker = env
        .spawn_worker(&[
            ("KILN_WORKER_CONCURRENCY", "1"),
            ("KILN_WORKER_PREFETCH", "12"),
            ("KILN_MAX_SOURCE_BYTES", "20000000"),
            ("KILN_WORKER_FETCH_BUDGET_BYTES", "40000000"),
        ])
        .await?;
    // Incompressible originals of ~15 MB, each a separate object.
    let mut sources = Vec::new();
    for i in 0..12 {
        let bytes = images::noise_png(2300, 2200, i);
        assert!(bytes.len() > 14_000_000, "{}", bytes.len());
        sources.push(
            env.upload(&format!("noise-{i}.png"), bytes, "image/png")
                .await?,
        );
    }
    let baseline = kiln_e2e::rss_mib(worker.pid().unwrap_or(0)).unwrap_or(0.0);
    let rss = worker.sample_rss();
    let client = http();
    let requests = sources.iter().map(|source| {
        let (client, url) = (
            client.clone(),
            api.url(&env.signed_path("64x64,f:jpeg", source)),
        );
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    let statuses = futures_util::future::join_all(requests).await;
    let peak = rss.stop().await;
    for status in statuses {
        assert_eq!(status?, 302);
    }
    // Two 15 MB originals held at once, one decoded (~15 MB of pixels) and
    // the resize's buffers; twelve held would be 180 MB more.
    assert!(
        peak - baseline < 130.0,
        "worker RSS rose by {:.0} MiB (from {baseline:.0})",
        peak - baseline
    );
    env.cleanup().await;
    Ok(())
}
