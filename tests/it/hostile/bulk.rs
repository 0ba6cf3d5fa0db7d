//! Bulk jobs from partners: every original an item names is held to the
//! partner's prefixes (no existence oracle over the bucket), every item is
//! metered and counts against the quota, a partner can have only so many
//! items waiting, and the queue is shared fairly between partners.

use std::time::Duration;

use serde_json::{json, Value};

use kiln_e2e::{images, Process, TestEnv};

/// Status and body text of a job submission.
async fn submit(api: &Process, key: &str, items: Value) -> anyhow::Result<(u16, String)> {
    let (status, body) = crate::bulk::submit(api, key, items).await?;
    let text = match body {
        Value::String(text) => text,
        json => json.to_string(),
    };
    Ok((status, text))
}

fn image_items(source: &str, n: usize, first_size: usize) -> Value {
    (0..n)
        .map(
            |i| json!({"image": {"source": source, "options": format!("{0}x{0}", first_size + i)}}),
        )
        .collect()
}

#[tokio::test]
async fn card_items_may_embed_only_the_partners_originals() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let key = env
        .create_partner(
            &api,
            json!({"name": "acme", "path_prefixes": [env.source("acme")]}),
        )
        .await?;
    let outside = env.source("other/portrait.png");
    for item in [
        json!({"card": {"template": "article", "id": "a", "params": {"title": "T", "avatar": outside}}}),
        json!({"url": env.signed_card(&format!("article/b.png?title=T&avatar={outside}"))}),
    ] {
        let (status, body) = submit(&api, &key, json!([item])).await?;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("does not reach an original"), "{body}");
    }
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn items_are_metered_held_to_the_quota_and_capped() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    // No worker: submitted items stay waiting.
    let api = env
        .spawn_api(&[("KILN_BULK_MAX_PENDING_PER_PARTNER", "10")])
        .await?;
    let source = env
        .upload("p.jpg", images::jpeg(32, 32), "image/jpeg")
        .await?;
    let key = env
        .create_partner(
            &api,
            json!({"name": "metered", "monthly_quota": 40, "path_prefixes": [env.source("")]}),
        )
        .await?;
    let (status, body) = submit(&api, &key, image_items(&source, 7, 10)).await?;
    assert_eq!(status, 202, "{body}");
    // Over the cap of items waiting at once: 7 wait, 4 more would be 11.
    let (status, body) = submit(&api, &key, image_items(&source, 4, 100)).await?;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("still waiting"), "{body}");
    // Items count as requests: 7 items and 2 POSTs metered.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let usage: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, sum(hits)::int8 FROM usage_minute GROUP BY kind ORDER BY kind",
    )
    .fetch_all(&mut env.db().await?)
    .await?;
    assert_eq!(
        usage,
        vec![("job".to_owned(), 2), ("job_item".to_owned(), 7)]
    );
    // And against the monthly quota of 40: 9 used, 35 more do not fit.
    let other = env
        .create_partner(
            &api,
            json!({"name": "quota", "monthly_quota": 5, "path_prefixes": [env.source("")]}),
        )
        .await?;
    let (status, body) = submit(&api, &other, image_items(&source, 6, 200)).await?;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("quota"), "{body}");
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn a_big_job_does_not_hold_back_another_partners_small_one() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_BULK_IN_FLIGHT", "2")]).await?;
    let _worker = env
        .spawn_worker(&[("KILN_WORKER_CONCURRENCY", "1")])
        .await?;
    let source = env
        .upload("f.jpg", images::jpeg(800, 600), "image/jpeg")
        .await?;
    let prefix = json!([env.source("")]);
    let big = env
        .create_partner(&api, json!({"name": "big", "path_prefixes": prefix}))
        .await?;
    let small = env
        .create_partner(&api, json!({"name": "small", "path_prefixes": prefix}))
        .await?;
    assert_eq!(
        submit(&api, &big, image_items(&source, 40, 10)).await?.0,
        202
    );
    assert_eq!(
        submit(&api, &small, image_items(&source, 3, 500)).await?.0,
        202
    );
    // Wait until the small job is done.
    let mut db = env.db().await?;
    for _ in 0..300 {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM bulk_items b JOIN bulk_jobs j ON j.id = b.job_id \
             JOIN partners p ON p.id = j.partner_id \
             LEFT JOIN renditions r ON r.cache_key = b.cache_key \
             WHERE p.name = 'small' AND (r.status IS DISTINCT FROM 'ready')",
        )
        .fetch_one(&mut db)
        .await?;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // By then the big job has had about as many renders, not all of its 40.
    let big_done: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bulk_items b JOIN bulk_jobs j ON j.id = b.job_id \
         JOIN partners p ON p.id = j.partner_id JOIN renditions r ON r.cache_key = b.cache_key \
         WHERE p.name = 'big' AND r.status = 'ready'",
    )
    .fetch_one(&mut db)
    .await?;
    assert!(
        big_done <= 12,
        "{big_done} of the big job's items went first"
    );
    env.cleanup().await;
    Ok(())
}
