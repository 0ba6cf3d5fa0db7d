//! Public card ids anyone can make up: each new one is a render. A client's
//! misses of unsigned URLs are rate-limited, the queue is bounded (503 with
//! Retry-After for images, the default image for cards), and requests
//! waiting for renders do not poll Postgres.

use std::net::IpAddr;
use std::time::Duration;

use futures_util::StreamExt as _;

use kiln_e2e::{http, TestEnv};

use super::raw_exchange;

/// A made-up id for the `stats` template (public, ids `N-N-N`).
fn stats_id(n: u32) -> String {
    format!("/card/stats/{}-{}-{}.png", n, n % 97, n % 13)
}

#[tokio::test]
async fn a_client_cannot_queue_renders_of_made_up_public_ids() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    // No card worker: whatever is queued stays queued, so it can be counted.
    let api = env
        .spawn_api(&[
            ("KILN_PUBLIC_MISS_RATE_PER_MINUTE", "60"),
            ("KILN_PUBLIC_MISS_BURST", "5"),
            ("KILN_MISS_WAIT_MS", "100"),
        ])
        .await?;
    let client = http();
    let answers = futures_util::stream::iter(0..60)
        .map(|n| {
            let (client, url) = (client.clone(), api.url(&stats_id(n)));
            async move {
                let response = client.get(url).send().await?;
                anyhow::Ok((
                    response.status().as_u16(),
                    response.headers().get("x-kiln-card").is_some(),
                    response.headers()["cache-control"].to_str()?.to_owned(),
                ))
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for answer in answers {
        let (status, default, cache) = answer?;
        assert_eq!((status, default), (200, true), "always an image");
        assert_eq!(cache, "no-store", "a refused miss is not an answer to keep");
    }
    let queued = env.queue_depth("card").await?;
    assert!(queued <= 7, "{queued} renders queued by one client");
    assert!(
        api.metric(
            &client,
            "kiln_rate_limited_total",
            &["limit=\"public_card_misses\""]
        )
        .await?
            >= 50.0
    );
    // Another client has its own budget.
    let other: IpAddr = "127.0.0.3".parse()?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: kiln\r\nConnection: close\r\n\r\n",
        stats_id(1000)
    );
    let answer = raw_exchange(
        &api,
        Some(other),
        request.as_bytes(),
        Duration::from_secs(5),
    )
    .await?;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(env.queue_depth("card").await?, queued + 1);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn a_full_queue_answers_overloaded_and_grows_no_further() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env
        .spawn_api(&[
            ("KILN_QUEUE_MAX_LENGTH", "5"),
            ("KILN_PUBLIC_MISS_RATE_PER_MINUTE", "60000"),
            ("KILN_PUBLIC_MISS_BURST", "1000"),
            ("KILN_MISS_WAIT_MS", "100"),
        ])
        .await?;
    let client = http();
    let mut overloaded_cards = 0;
    for n in 0..20 {
        let response = client.get(api.url(&stats_id(n))).send().await?;
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-kiln-card"));
        overloaded_cards += usize::from(n >= 5);
    }
    assert_eq!(
        env.queue_depth("card").await?,
        5,
        "the queue holds its bound"
    );
    assert_eq!(
        api.metric(
            &client,
            "kiln_card_defaults_total",
            &["reason=\"overloaded\""]
        )
        .await?,
        overloaded_cards as f64
    );
    // Images: 503 with Retry-After, and the claim given back (a later
    // request, with room in the queue, renders it).
    let source = env
        .upload("x.jpg", kiln_e2e::images::jpeg(16, 16), "image/jpeg")
        .await?;
    let mut full = 0;
    for size in 1..=8 {
        let response = client
            .get(api.url(&env.signed_path(&format!("{size}x{size}"), &source)))
            .send()
            .await?;
        if response.status() == 503 && response.headers().contains_key("retry-after") {
            full += 1;
        }
    }
    assert_eq!(
        full, 8,
        "the image queue takes 5; waits time out or are refused"
    );
    assert!(env.queue_depth("image").await? <= 5);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn waiting_requests_do_not_poll_postgres() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_MISS_WAIT_MS", "5000")]).await?;
    let source = env
        .upload("w.jpg", kiln_e2e::images::jpeg(16, 16), "image/jpeg")
        .await?;
    let client = http();
    let before = env.transactions().await?;
    // 200 misses with no worker: each waits out the bound.
    let waits = (1..=200).map(|size| {
        let (client, url) = (
            client.clone(),
            api.url(&env.signed_path(&format!("{size}x{size}"), &source)),
        );
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    for status in futures_util::future::join_all(waits).await {
        assert_eq!(status?, 503);
    }
    let after = env.transactions().await?;
    eprintln!("{} transactions for 200 waits", after - before);
    // Each miss: a look-up, a claim and one read of its row. Polling every
    // 500 ms would add ten reads each.
    assert!(
        after - before < 1200,
        "{} transactions for 200 waits of 5 s",
        after - before
    );
    env.cleanup().await;
    Ok(())
}
