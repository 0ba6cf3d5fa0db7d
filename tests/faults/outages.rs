//! PostgreSQL, RabbitMQ and Garage go away while requests flow, and come
//! back: Kiln answers 503 with `Retry-After` meanwhile (never a hang, never a
//! 500), reconnects by itself, and ends with exactly one object and one
//! render per rendition asked for.

use std::time::{Duration, Instant};

use kiln_e2e::services::{Outage, Service};
use kiln_e2e::{images, Process, TestEnv};

use crate::flow::{check_answers, client, settle, Answer, Flow};

const OUTAGE: Duration = Duration::from_secs(5);

/// Renders the worker began (a render repeated after a fault counts twice).
fn renders_begun(worker: &Process) -> usize {
    worker.log_count("rendering bytes=")
}

/// What `path` (`/readyz` or `/readyz?strict=true`) answers: status and body.
async fn readyz(process: &Process, path: &str) -> anyhow::Result<(u16, String)> {
    let response = client().get(process.url(path)).send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// Asks `/readyz?strict=true` until it answers 200 (every dependency is
/// back), at most 30 s.
async fn ready_again(process: &Process) -> anyhow::Result<()> {
    let mut last = (0, String::new());
    for _ in 0..150 {
        last = readyz(process, STRICT).await?;
        if last.0 == 200 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!(
        "{} is not ready 30 s after the outage: {} {}",
        process.base_url,
        last.0,
        last.1
    )
}

const STRICT: &str = "/readyz?strict=true";

fn during(answers: &[Answer], from: Instant, to: Instant) -> Vec<&Answer> {
    answers
        .iter()
        .filter(|a| a.at > from && a.at < to)
        .collect()
}

/// Hits keep flowing, two slow renders are in flight when `service` stops,
/// new misses arrive during the outage; then everything settles.
async fn requests_flow_through(service: Service) -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_MISS_WAIT_MS", "5000")]).await?;
    // An api that has served nothing: without PostgreSQL it can serve
    // nothing, and says so; the one holding renditions stays in service.
    let cold_api = env.spawn_api(&[]).await?;
    let mut worker = env
        .spawn_worker(&[("KILN_WORKER_CONCURRENCY", "2")])
        .await?;
    let small = env
        .upload("small.jpg", images::jpeg(800, 600), "image/jpeg")
        .await?;
    let big = env
        .upload("big.png", images::png(4000, 3000), "image/png")
        .await?;
    let url = |options: String, source: &str| api.url(&env.signed_path(&options, source));
    let warm: Vec<String> = (0..10)
        .map(|i| url(format!("{}x90", 100 + i), &small))
        .collect();
    let slow: Vec<String> = (0..2)
        .map(|i| url(format!("{}x2000,f:avif,q:90", 2600 + i), &big))
        .collect();
    let fresh: Vec<String> = (0..10)
        .map(|i| url(format!("{}x50", 60 + i), &small))
        .collect();
    settle(&warm, Duration::from_secs(30)).await?;

    let hits = Flow::start(warm.clone(), 2);
    let in_flight = Flow::start(slow.clone(), 2);
    // Both slow renders under way (the worker renders two at a time).
    for _ in 0..200 {
        if renders_begun(&worker) >= warm.len() + slow.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rendering_before = renders_begun(&worker);
    let outage = Outage::begin(service).await?;
    let down = Instant::now();
    let misses = Flow::start(fresh.clone(), 2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let api_ready_during = readyz(&api, "/readyz").await?;
    let api_strict_during = readyz(&api, STRICT).await?;
    let cold_api_ready_during = readyz(&cold_api, "/readyz").await?;
    let worker_ready_during = readyz(&worker, "/readyz").await?;
    tokio::time::sleep(OUTAGE).await;
    let restarting = Instant::now();
    outage.end().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hit_answers = hits.finish().await?;
    let slow_answers = in_flight.finish().await?;
    let miss_answers = misses.finish().await?;
    for answers in [&hit_answers, &slow_answers, &miss_answers] {
        check_answers(answers)?;
    }

    // During the outage the renditions already made were still served…
    let served = during(&hit_answers, down, restarting);
    assert!(
        !served.is_empty() && served.iter().all(|a| a.status == 302),
        "hits during the outage: {served:?}"
    );
    // …new ones answered 503 + Retry-After (checked above) at once, not after a hang.
    let refused = during(&miss_answers, down, restarting);
    assert!(
        refused.iter().any(|a| a.status == 503),
        "misses during the outage: {refused:?}"
    );
    // The api stays in its load balancer's rotation (its hits still work)
    // and reports the outage; the worker, which can do nothing, is not ready.
    assert_eq!(api_ready_during.0, 200, "{service:?}: {api_ready_during:?}");
    assert!(
        api_ready_during.1.contains(r#""misses":"unavailable""#),
        "{service:?}: {api_ready_during:?}"
    );
    assert_eq!(
        api_strict_during.0, 503,
        "{service:?}: {api_strict_during:?}"
    );
    let cold_expected = if service == Service::Postgres {
        503
    } else {
        200
    };
    assert_eq!(
        cold_api_ready_during.0, cold_expected,
        "{service:?}: an api holding no rendition: {cold_api_ready_during:?}"
    );
    assert_eq!(
        worker_ready_during.0, 503,
        "{service:?}: the worker reports the outage: {worker_ready_during:?}"
    );
    assert_eq!(
        rendering_before,
        warm.len() + slow.len(),
        "the slow renders were under way when the outage began"
    );

    // Afterwards every rendition is served, by the same processes…
    let all: Vec<String> = [warm, slow, fresh].concat();
    settle(&all, Duration::from_secs(90)).await?;
    ready_again(&api).await?;
    ready_again(&cold_api).await?;
    ready_again(&worker).await?;
    assert!(
        worker.is_running(),
        "the worker reconnected without a restart"
    );
    // …with no render lost or made twice. On failure: which renditions
    // were rendered more than once, and the worker's lines about them.
    assert_eq!(env.cache_objects().await?.len(), all.len());
    let begun = renders_begun(&worker);
    if begun != all.len() {
        let lines = worker.log.lock().map(|l| l.clone()).unwrap_or_default();
        let telling: Vec<&String> = lines
            .iter()
            .filter(|l| {
                ["rendering bytes=", "upload", "retry", "failed", "resum"]
                    .iter()
                    .any(|w| l.contains(w))
            })
            .collect();
        panic!(
            "{service:?}: {begun} renders for {} renditions; the worker said:\n{}",
            all.len(),
            telling
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    drop(api);
    drop(cold_api);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
#[ignore = "restarts RabbitMQ: run by deploy/local/test.sh, one at a time"]
async fn rabbitmq_restart_while_requests_flow() -> anyhow::Result<()> {
    requests_flow_through(Service::Rabbitmq).await
}

#[tokio::test]
#[ignore = "restarts PostgreSQL: run by deploy/local/test.sh, one at a time"]
async fn postgres_restart_while_requests_flow() -> anyhow::Result<()> {
    requests_flow_through(Service::Postgres).await
}

#[tokio::test]
#[ignore = "stops Garage: run by deploy/local/test.sh, one at a time"]
async fn garage_stopped_while_requests_flow() -> anyhow::Result<()> {
    requests_flow_through(Service::Garage).await
}

/// A render that finishes while S3 is away keeps its bytes and uploads them
/// when S3 returns: the outage costs a wait, not a second render (counted
/// as renders begun, which the scenarios above also bound).
#[tokio::test]
#[ignore = "stops Garage: run by deploy/local/test.sh, one at a time"]
async fn a_render_finished_during_an_s3_outage_is_uploaded_not_redone() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_MISS_WAIT_MS", "60000")]).await?;
    // Slow AVIF (15-20 s): the render is still under way once Garage has
    // stopped (a graceful stop can take several seconds).
    let worker = env
        .spawn_worker(&[
            ("KILN_WORKER_CONCURRENCY", "1"),
            ("KILN_AVIF_SPEED", "1"),
            ("KILN_JOB_TIMEOUT_MS", "120000"),
            ("KILN_RENDER_TIMEOUT_MS", "90000"),
        ])
        .await?;
    let big = env
        .upload("big.png", images::png(2600, 2000), "image/png")
        .await?;
    let url = api.url(&env.signed_path("2000x1500,f:avif,q:90", &big));
    let waiting = kiln_e2e::http_with_timeout(Duration::from_secs(90));
    let pending = tokio::spawn(async move { waiting.get(url).send().await });
    worker
        .wait_for_log("rendering bytes=", Duration::from_secs(20))
        .await?;
    let outage = Outage::begin(Service::Garage).await?;
    worker
        .wait_for_log("upload failed", Duration::from_secs(60))
        .await?;
    outage.end().await?;
    let response = pending.await??;
    assert_eq!(response.status(), 302, "answered once S3 was back");
    assert_eq!(renders_begun(&worker), 1, "rendered once");
    assert_eq!(env.cache_objects().await?.len(), 1);
    env.cleanup().await;
    Ok(())
}
