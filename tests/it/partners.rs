//! Partners: keys, originals, limits, the CLI — against the real services.

use reqwest::header::{LOCATION, RETRY_AFTER};
use serde_json::json;

use kiln_e2e::{http, images, TestEnv, ADMIN_KEY};

#[tokio::test]
async fn a_partner_key_reaches_its_originals_and_nothing_more() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_PARTNER_CACHE_SECS", "0")]).await?;
    let client = http();
    let photo = images::jpeg(320, 200);
    let catalog = env
        .upload("catalog/shoe.jpg", photo.clone(), "binary/octet-stream")
        .await?;
    let private = env
        .upload("private/plan.jpg", photo.clone(), "image/jpeg")
        .await?;
    let key = env
        .create_partner(
            &api,
            json!({"name": "acme", "path_prefixes": [env.source("catalog/")]}),
        )
        .await?;

    // Both key forms redirect to the object, answered as image/jpeg although
    // it was stored as binary/octet-stream.
    for path in [
        format!("/originals/{catalog}?key={key}"),
        format!("/originals/{key}/{catalog}"),
    ] {
        let response = client.get(api.url(&path)).send().await?;
        assert_eq!(response.status(), 302, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let location = response.headers()[LOCATION].to_str()?.to_owned();
        let object = reqwest::get(&location).await?;
        assert_eq!(object.status(), 200);
        assert_eq!(object.headers()["content-type"], "image/jpeg");
        assert_eq!(object.bytes().await?.as_ref(), photo.as_slice());
    }
    let status = |path: String| {
        let client = client.clone();
        let url = api.url(&path);
        async move { Ok::<_, anyhow::Error>(client.get(url).send().await?.status().as_u16()) }
    };
    // Outside the key's prefixes, without a key, with a made-up key: refused.
    assert_eq!(
        status(format!("/originals/{private}?key={key}")).await?,
        403
    );
    assert_eq!(status(format!("/originals/{catalog}")).await?, 403);
    assert_eq!(
        status(format!("/originals/{catalog}?key=kp_{}", "x".repeat(43))).await?,
        403
    );
    assert_eq!(
        status(format!(
            "/originals/{}?key={key}",
            env.source("catalog/none.jpg")
        ))
        .await?,
        404
    );
    assert_eq!(
        status(format!("/originals/..%2F..%2Fetc%2Fpasswd?key={key}")).await?,
        400
    );

    // Rotating the key retires the old one; revoking the partner, the new one.
    let rotated: serde_json::Value = client
        .post(api.url("/v1/partners/acme/rotate-key"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?
        .json()
        .await?;
    let new_key = rotated["key"].as_str().unwrap_or_default().to_owned();
    assert_ne!(new_key, key);
    assert_eq!(
        status(format!("/originals/{catalog}?key={key}")).await?,
        403
    );
    assert_eq!(
        status(format!("/originals/{catalog}?key={new_key}")).await?,
        302
    );
    assert_eq!(
        status(format!("/originals/{private}?key={new_key}")).await?,
        403,
        "the new key keeps the prefixes"
    );
    let revoked = client
        .post(api.url("/v1/partners/acme/revoke"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?;
    assert_eq!(revoked.status(), 204);
    assert_eq!(
        status(format!("/originals/{catalog}?key={new_key}")).await?,
        403
    );

    // Keys are stored hashed: the database never holds one in clear text.
    let mut db = env.db().await?;
    let stored: Vec<(Vec<u8>, String)> =
        sqlx::query_as("SELECT key_hash, key_hint FROM partner_keys")
            .fetch_all(&mut db)
            .await?;
    assert_eq!(stored.len(), 2);
    for (hash, hint) in &stored {
        assert_eq!(hash.len(), 32);
        assert!(hint.len() < 12 && (key.starts_with(hint) || new_key.starts_with(hint)));
    }

    // Deployments that hide the route altogether answer 404.
    let hidden = env
        .spawn_api(&[("KILN_PARTNER_DENY_STATUS", "404")])
        .await?;
    let response = client
        .get(hidden.url(&format!("/originals/{catalog}?key={new_key}")))
        .send()
        .await?;
    assert_eq!(response.status(), 404);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn admin_routes_check_their_input_and_key() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let client = http();
    let post = |body: serde_json::Value, key: &'static str| {
        client
            .post(api.url("/v1/partners"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    assert_eq!(
        post(json!({"name": "acme"}), "wrong-key-0123456789")
            .await?
            .status(),
        403
    );
    assert_eq!(post(json!({"name": "a b"}), ADMIN_KEY).await?.status(), 400);
    assert_eq!(
        post(json!({"name": "acme", "monthly_quota": 0}), ADMIN_KEY)
            .await?
            .status(),
        400
    );
    assert_eq!(
        post(json!({"name": "acme", "colour": "red"}), ADMIN_KEY)
            .await?
            .status(),
        400
    );
    assert_eq!(
        post(json!({"name": "acme"}), ADMIN_KEY).await?.status(),
        201
    );
    let again = post(json!({"name": "acme"}), ADMIN_KEY).await?;
    assert_eq!(again.status(), 409);
    let missing = client
        .post(api.url("/v1/partners/nobody/revoke"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?;
    assert_eq!(missing.status(), 404);
    let list: serde_json::Value = client
        .get(api.url("/v1/partners"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(list[0]["name"], "acme");
    assert!(list[0]["keys"][0]["hint"]
        .as_str()
        .unwrap_or_default()
        .starts_with("kp_"));
    assert!(
        list[0]["keys"][0].get("key").is_none(),
        "keys are never listed"
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn quotas_and_rates_answer_429_with_retry_after() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let client = http();
    let original = env
        .upload("q.jpg", images::jpeg(64, 64), "image/jpeg")
        .await?;
    let monthly = env
        .create_partner(&api, json!({"name": "monthly", "monthly_quota": 3}))
        .await?;
    let rated = env
        .create_partner(
            &api,
            json!({"name": "rated", "rate_per_second": 1, "burst": 2}),
        )
        .await?;
    let get = |key: &str| {
        client
            .get(api.url(&format!("/originals/{original}?key={key}")))
            .send()
    };

    for _ in 0..3 {
        assert_eq!(get(&monthly).await?.status(), 302);
    }
    let refused = get(&monthly).await?;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()[RETRY_AFTER].to_str()?.parse()?;
    assert!(
        (1..=31 * 24 * 3600).contains(&retry),
        "until next month: {retry}"
    );

    assert_eq!(get(&rated).await?.status(), 302);
    assert_eq!(get(&rated).await?.status(), 302);
    let limited = get(&rated).await?;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()[RETRY_AFTER], "1");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(get(&rated).await?.status(), 302, "the rate refills");
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn the_cli_creates_lists_rotates_and_revokes_partners() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_PARTNER_CACHE_SECS", "0")]).await?;
    let original = env
        .upload("cli/a.jpg", images::jpeg(64, 64), "image/jpeg")
        .await?;
    let prefix = env.source("cli/");
    let created = env
        .cli(
            &[
                "partner",
                "create",
                "press",
                "--prefix",
                &prefix,
                "--monthly",
                "100",
            ],
            &[],
        )
        .await?;
    let stdout = String::from_utf8_lossy(&created.stdout).to_string();
    assert!(
        created.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("key (shown once): "))
        .unwrap_or_default()
        .to_owned();
    let client = http();
    let get = |key: String| {
        client
            .get(api.url(&format!("/originals/{original}?key={key}")))
            .send()
    };
    assert_eq!(get(key.clone()).await?.status(), 302);

    let listed = env.cli(&["partner", "list"], &[]).await?;
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(listing.contains("press") && listing.contains(&key[..9]) && listing.contains("100"));
    assert!(!listing.contains(&key), "the full key is never shown again");

    let rotated = env.cli(&["partner", "rotate-key", "press"], &[]).await?;
    let rotated = String::from_utf8_lossy(&rotated.stdout).to_string();
    let new_key = rotated
        .lines()
        .find_map(|l| l.strip_prefix("new key for press (shown once): "))
        .unwrap_or_default()
        .to_owned();
    assert_eq!(get(key).await?.status(), 403);
    assert_eq!(get(new_key.clone()).await?.status(), 302);

    let revoked = env.cli(&["partner", "revoke", "press"], &[]).await?;
    assert!(revoked.status.success());
    assert_eq!(get(new_key).await?.status(), 403);
    let unknown = env.cli(&["partner", "revoke", "press"], &[]).await?;
    assert!(!unknown.status.success(), "revoking twice is an error");
    env.cleanup().await;
    Ok(())
}
