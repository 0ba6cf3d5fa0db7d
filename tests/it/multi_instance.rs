//! A farm of two api processes and two workers on the same services: every
//! guarantee that depends on shared state holds across processes — one
//! render per rendition, a one-time link's uses, a captcha's single pass,
//! and every metered request counted exactly once.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;

use kiln_e2e::{http, images, Process, TestEnv};

use crate::captcha::{concurrent_right_answers, ready_slots_after_refill, POOL};
use crate::links::{create, path_of, upload};

/// Two apis and two workers (images and captchas).
async fn farm(env: &TestEnv) -> anyhow::Result<([Process; 2], [Process; 2])> {
    let mut worker_env = POOL.to_vec();
    worker_env.push(("KILN_WORKER_KINDS", "image,captcha"));
    let apis = [env.spawn_api(POOL).await?, env.spawn_api(POOL).await?];
    let workers = [
        env.spawn_worker(&worker_env).await?,
        env.spawn_worker(&worker_env).await?,
    ];
    Ok((apis, workers))
}

async fn sum_metric(processes: &[Process], name: &str, labels: &[&str]) -> anyhow::Result<f64> {
    let client = http();
    let mut total = 0.0;
    for process in processes {
        total += process.metric(&client, name, labels).await?;
    }
    Ok(total)
}

#[tokio::test]
async fn two_apis_and_two_workers_keep_every_count_exact() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let ([api_a, api_b], workers) = farm(&env).await?;
    let apis = [&api_a, &api_b];
    let client = http();

    // Renders: 10 renditions, 20 concurrent requests each, over both apis.
    let source = env
        .upload("farm.jpg", images::jpeg(1600, 1200), "image/jpeg")
        .await?;
    let paths: Vec<String> = (0..10)
        .map(|i| env.signed_path(&format!("{}x{}", 200 + i, 150 + i), &source))
        .collect();
    let requests = (0..200).map(|i| {
        let url = apis[i % 2].url(&paths[i % 10]);
        let client = client.clone();
        async move { Ok::<_, anyhow::Error>(client.get(url).send().await?.status().as_u16()) }
    });
    let statuses: Vec<u16> = join_all(requests)
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    assert!(statuses.iter().all(|s| *s == 302), "{statuses:?}");
    let apis_owned = [api_a, api_b];
    assert_eq!(
        sum_metric(&apis_owned, "kiln_jobs_queued_total", &["kind=\"image\""]).await?,
        10.0,
        "one job queued per rendition across both apis"
    );
    let renders: usize = workers
        .iter()
        .map(|w| w.log_count("rendering bytes="))
        .sum();
    assert_eq!(renders, 10, "one render per rendition across both workers");
    assert_eq!(env.cache_objects().await?.len(), 10);
    let [api_a, api_b] = apis_owned;

    // One-time links: a 3-use link, 40 concurrent uses over both apis.
    let (object, _) = upload(&env, "farm.pdf").await?;
    let (status, link) = create(
        &api_a,
        json!({"object": object, "filename": "farm.pdf", "uses": 3}),
    )
    .await?;
    assert_eq!(status, 201, "{link}");
    let path = path_of(&link);
    let uses = (0..40).map(|i| {
        let url = if i % 2 == 0 { &api_a } else { &api_b }.url(&path);
        let client = client.clone();
        async move { Ok::<_, anyhow::Error>(client.get(url).send().await?.status().as_u16()) }
    });
    let mut statuses: Vec<u16> = join_all(uses)
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    statuses.sort_unstable();
    assert_eq!(statuses[..3], [302, 302, 302]);
    assert!(statuses[3..].iter().all(|s| *s == 410), "{statuses:?}");

    // Captchas: 6 captchas, each answered right 10 times at once over both
    // apis: each passes exactly once; both workers refill the pool.
    for round in 0..6 {
        let passed = concurrent_right_answers([&api_a, &api_b], 10).await?;
        assert_eq!(passed, 1, "captcha {round}: one of ten answers passes");
    }
    assert_eq!(
        ready_slots_after_refill(&env).await?,
        16,
        "the pool is full again"
    );
    assert_eq!(
        sum_metric(&workers, "kiln_captchas_generated_total", &[]).await?,
        16.0 + 6.0,
        "each slot drawn once, and once more per consumed captcha"
    );

    // Metering: 300 keyed requests over both apis, flushing every second
    // into the same minute rows, then both stopped.
    let key = env
        .create_partner(
            &api_a,
            json!({"name": "farm", "path_prefixes": [env.source("")]}),
        )
        .await?;
    let missing = format!("/originals/{}?key={key}", env.source("none.jpg"));
    let found = format!("/originals/{source}?key={key}");
    let metered = (0..300).map(|i| {
        let path = if i % 3 == 0 { &missing } else { &found };
        let url = if i % 2 == 0 { &api_a } else { &api_b }.url(path);
        let client = client.clone();
        async move { Ok::<_, anyhow::Error>(client.get(url).send().await?.status().as_u16()) }
    });
    let statuses: Vec<u16> = join_all(metered)
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(statuses.iter().filter(|s| **s == 302).count(), 200);
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 100);
    let mut exits = Vec::new();
    for mut api in [api_a, api_b] {
        api.signal("TERM")?;
        exits.push(api.exit_status(Duration::from_secs(15)).await?);
    }
    assert!(exits.iter().all(|e| e.success()), "{exits:?}");
    let mut db = env.db().await?;
    let rows: Vec<(i16, i64)> = sqlx::query_as(
        "SELECT status_class, sum(hits)::int8 FROM usage_minute \
         WHERE kind = 'original' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&mut db)
    .await?;
    assert_eq!(rows, vec![(3, 200), (4, 100)], "every request counted once");
    drop(workers);
    env.cleanup().await;
    Ok(())
}
