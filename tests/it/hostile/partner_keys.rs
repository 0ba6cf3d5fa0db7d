//! Partner keys an attacker makes up: malformed ones cost nothing, made-up
//! well-formed ones cost Postgres a few lookups (a per-client budget), the
//! key cache stays bounded, and a real partner's key keeps working. Prefixes
//! are whole path segments.

use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt as _;
use serde_json::json;

use kiln_e2e::{http, images, TestEnv};

fn random_key() -> String {
    let raw: [u8; 32] = rand::random();
    format!(
        "kp_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    )
}

#[tokio::test]
async fn made_up_keys_cost_neither_memory_nor_queries() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env
        .spawn_api(&[
            ("KILN_UNKNOWN_KEY_RATE_PER_MINUTE", "60"),
            ("KILN_UNKNOWN_KEY_BURST", "10"),
            ("KILN_PARTNER_CACHE_CAPACITY", "1000"),
        ])
        .await?;
    let key = env
        .create_partner(
            &api,
            json!({"name": "acme", "path_prefixes": [env.source("")]}),
        )
        .await?;
    let original = env
        .upload("logo.jpg", images::jpeg(64, 64), "image/jpeg")
        .await?;
    let client = http();
    let partner_url = api.url(&format!("/originals/{original}?key={key}"));
    assert_eq!(client.get(&partner_url).send().await?.status(), 302);

    let before = env.transactions().await?;
    let baseline = kiln_e2e::rss_mib(api.pid().unwrap_or(0)).unwrap_or(0.0);
    let rss = api.sample_rss();
    let image = env.signed_path("10x10", &env.source("x.jpg"));
    // 5 000 well-formed keys nobody has, and 20 000 malformed 2 KB ones.
    let long_junk = "x".repeat(2048);
    let attack = futures_util::stream::iter(0..25_000)
        .map(|i| {
            let client = client.clone();
            let url = if i % 5 == 0 {
                api.url(&format!("{image}?key={}", random_key()))
            } else {
                api.url(&format!("{image}?key={long_junk}{i}"))
            };
            async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>();
    let partner = async {
        let mut codes = Vec::new();
        for _ in 0..20 {
            codes.push(client.get(&partner_url).send().await?.status().as_u16());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::Ok(codes)
    };
    let (answers, partner_codes) = tokio::join!(attack, partner);
    let peak = rss.stop().await;
    let after = env.transactions().await?;
    eprintln!(
        "{} transactions during the attack, api RSS peak {peak:.0} MiB",
        after - before
    );
    for answer in answers {
        let status = answer?;
        assert!(status == 403 || status == 429, "{status}");
    }
    assert!(
        partner_codes?.iter().all(|c| *c == 302),
        "the partner's key kept working"
    );
    // The budget's burst of lookups, the partner's own refreshes, the meter's
    // flushes and the bulk feeder's rounds: not 5 000 lookups.
    assert!(
        after - before < 150,
        "{} Postgres transactions during the attack",
        after - before
    );
    let cached = api
        .metric(&client, "kiln_partner_key_cache_entries", &[])
        .await?;
    assert!(cached <= 1000.0, "{cached} keys cached");
    assert!(
        peak - baseline < 40.0,
        "api RSS rose by {:.0} MiB from {baseline:.0}",
        peak - baseline
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn a_prefix_reaches_its_own_segment_only() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let key = env
        .create_partner(
            &api,
            json!({"name": "acme", "path_prefixes": [env.source("acme")]}),
        )
        .await?;
    let own = env
        .upload("acme/logo.jpg", images::jpeg(8, 8), "image/jpeg")
        .await?;
    let neighbour = env
        .upload(
            "acme-internal/payroll.jpg",
            images::jpeg(8, 8),
            "image/jpeg",
        )
        .await?;
    let client = http();
    let get = |source: &str| {
        client
            .get(api.url(&format!("/originals/{source}?key={key}")))
            .send()
    };
    assert_eq!(get(&own).await?.status(), 302);
    assert_eq!(get(&neighbour).await?.status(), 403);
    // Bulk items are held to the same prefixes.
    let response = client
        .post(api.url("/v1/jobs"))
        .bearer_auth(&key)
        .json(&json!({"items": [{"image": {"source": neighbour, "options": "8x8"}}]}))
        .send()
        .await?;
    assert_eq!(response.status(), 400);
    assert!(response.text().await?.contains("does not reach"));
    env.cleanup().await;
    Ok(())
}
