//! One-time download links against the real services.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};

use kiln_e2e::{http, Process, TestEnv, ADMIN_KEY};

pub(crate) async fn create(api: &Process, body: Value) -> anyhow::Result<(u16, Value)> {
    let response = http()
        .post(api.url("/v1/links"))
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// The link's path (`/dl/{token}`).
pub(crate) fn path_of(link: &Value) -> String {
    let url = link["url"].as_str().unwrap_or_default();
    format!("/dl/{}", url.rsplit('/').next().unwrap_or_default())
}

pub(crate) async fn upload(env: &TestEnv, name: &str) -> anyhow::Result<(String, Vec<u8>)> {
    let body = format!("contents of {name} for {}", env.id).into_bytes();
    let key = env.upload(name, body.clone(), "application/pdf").await?;
    Ok((key, body))
}

#[tokio::test]
async fn fifty_concurrent_uses_of_a_one_use_link_give_exactly_one_file() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api_a = env.spawn_api(&[]).await?;
    let api_b = env.spawn_api(&[]).await?;
    let (key, body) = upload(&env, "contract.pdf").await?;
    let (status, link) = create(&api_a, json!({"object": key, "filename": "contract.pdf"})).await?;
    assert_eq!(status, 201, "{link}");
    assert!(link["url"]
        .as_str()
        .unwrap_or_default()
        .starts_with(&api_a.base_url));
    assert!(link["expires_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let path = path_of(&link);

    let client = http();
    let uses = (0..50).map(|i| {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        let request = client.get(api.url(&path)).send();
        async move {
            let response = request.await?;
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok::<_, anyhow::Error>((response.status().as_u16(), location))
        }
    });
    let results = join_all(uses)
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let granted: Vec<_> = results.iter().filter(|(s, _)| *s == 302).collect();
    assert_eq!(granted.len(), 1, "{results:?}");
    assert!(
        results.iter().all(|(s, _)| *s == 302 || *s == 410),
        "{results:?}"
    );

    let file = client
        .get(granted[0].1.clone().unwrap_or_default())
        .send()
        .await?
        .error_for_status()?;
    assert!(file.headers()["content-disposition"]
        .to_str()?
        .starts_with("attachment; filename=\"contract.pdf\""));
    assert_eq!(file.bytes().await?.to_vec(), body);

    // Stored hashed: the token itself is nowhere in the table.
    let token = path.trim_start_matches("/dl/");
    let mut db = env.db().await?;
    let (hashed, plain): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE token_hash = sha256(convert_to($1, 'UTF8'))), \
                count(*) FILTER (WHERE object_key = $1 OR filename = $1 OR encode(token_hash, 'escape') = $1) \
         FROM download_links",
    )
    .bind(token)
    .fetch_one(&mut db)
    .await?;
    assert_eq!((hashed, plain), (1, 0));
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn links_expire_count_their_uses_and_strict_ones_stream() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let client = http();
    let (key, body) = upload(&env, "slides.pdf").await?;

    // Three uses, then gone.
    let (_, link) = create(&api, json!({"object": key, "uses": 3})).await?;
    let path = path_of(&link);
    for _ in 0..3 {
        assert_eq!(client.get(api.url(&path)).send().await?.status(), 302);
    }
    let spent = client.get(api.url(&path)).send().await?;
    assert_eq!(spent.status(), 410);

    // Expired before its first use.
    let (_, link) = create(&api, json!({"object": key, "ttl": 1})).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        client.get(api.url(&path_of(&link))).send().await?.status(),
        410
    );

    // Strict: the api streams the file; nothing to reuse afterwards.
    let (_, link) = create(
        &api,
        json!({"object": key, "filename": "deck.pdf", "strict": true}),
    )
    .await?;
    let response = client.get(api.url(&path_of(&link))).send().await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"].to_str()?,
        "attachment; filename=\"deck.pdf\"; filename*=UTF-8''deck%2Epdf"
    );
    assert_eq!(response.bytes().await?.to_vec(), body);
    assert_eq!(
        client.get(api.url(&path_of(&link))).send().await?.status(),
        410
    );

    // Unknown and malformed tokens.
    let unknown = format!("/dl/{}", "A".repeat(43));
    assert_eq!(client.get(api.url(&unknown)).send().await?.status(), 404);
    assert_eq!(client.get(api.url("/dl/short")).send().await?.status(), 404);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn only_admins_create_links_and_bad_requests_say_why() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let client = http();
    let (key, _) = upload(&env, "memo.pdf").await?;
    let body = json!({"object": key});

    let anonymous = client.post(api.url("/v1/links")).json(&body).send().await?;
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"]
        .to_str()?
        .starts_with("Bearer"));
    let wrong = client
        .post(api.url("/v1/links"))
        .bearer_auth("not-the-admin-key-at-all")
        .json(&body)
        .send()
        .await?;
    assert_eq!(wrong.status(), 403);

    for (bad, status) in [
        (json!({"object": "../etc/passwd"}), 400),
        (json!({"object": key, "uses": 0}), 400),
        (json!({"object": key, "ttl": 0}), 400),
        (json!({"object": key, "filename": "../x"}), 400),
        (json!({"object": key, "colour": "red"}), 400),
        (json!({"filename": "x.pdf"}), 400),
        (json!({"object": env.source("missing.pdf")}), 404),
    ] {
        let (got, answer) = create(&api, bad.clone()).await?;
        assert_eq!(got, status, "{bad}: {answer}");
    }
    env.cleanup().await;
    Ok(())
}
