//! SIGTERM to the api and the worker while a keyed request waits on a render:
//! the render finishes, the request gets its answer, both processes exit
//! cleanly, and the request is in the partner's usage.

use std::time::Duration;

use serde_json::json;

use kiln_e2e::{http, images, TestEnv};

#[tokio::test]
async fn sigterm_lets_in_flight_work_finish_and_flushes_metering() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let admin_api = env.spawn_api(&[]).await?;
    let key = env
        .create_partner(&admin_api, json!({"name": "late"}))
        .await?;
    drop(admin_api);
    // Nothing flushes on a timer: only shutdown writes this api's counts.
    let mut api = env
        .spawn_api(&[
            ("KILN_METER_FLUSH_MS", "600000"),
            ("KILN_MISS_WAIT_MS", "30000"),
        ])
        .await?;
    let mut worker = env
        .spawn_worker(&[("KILN_WORKER_CONCURRENCY", "1")])
        .await?;
    let source = env
        .upload("slow.png", images::png(4000, 3000), "image/png")
        .await?;
    let client = http();
    // An AVIF this size takes the worker a few seconds.
    let url = api.url(&env.signed_path("2400x1800,f:avif,q:90", &source));
    let pending = tokio::spawn(client.get(&url).header("x-kiln-key", &key).send());
    worker
        .wait_for_log("rendering", Duration::from_secs(20))
        .await?;

    api.signal("TERM")?;
    worker.signal("TERM")?;
    // The api stops taking connections at once…
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        client.get(api.url("/healthz")).send().await.is_err(),
        "a stopping api refuses new connections"
    );
    // …but the request already in flight gets its rendition.
    let response = pending.await??;
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str()?.to_owned();
    let object = client.get(location).send().await?.error_for_status()?;
    assert_eq!(object.headers()["content-type"], "image/avif");
    assert_eq!(&object.bytes().await?[4..12], b"ftypavif");
    let worker_exit = worker.exit_status(Duration::from_secs(30)).await?;
    let api_exit = api.exit_status(Duration::from_secs(30)).await?;
    assert!(worker_exit.success(), "worker exited with {worker_exit}");
    assert!(api_exit.success(), "api exited with {api_exit}");
    assert!(worker.log_contains("rendition ready"));
    assert!(worker.log_contains("kiln-worker stopped cleanly"));
    assert!(api.log_contains("kiln-api stopped cleanly"));

    let mut db = env.db().await?;
    let (status,): (String,) = sqlx::query_as("SELECT status FROM renditions")
        .fetch_one(&mut db)
        .await?;
    assert_eq!(status, "ready");
    let usage: Vec<(String, i16, i64)> = sqlx::query_as(
        "SELECT kind, status_class, sum(hits)::int8 FROM usage_minute GROUP BY 1, 2",
    )
    .fetch_all(&mut db)
    .await?;
    assert_eq!(
        usage,
        vec![("image".to_owned(), 3, 1)],
        "metered on the way out"
    );
    env.cleanup().await;
    Ok(())
}
