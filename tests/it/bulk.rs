//! Bulk pre-render jobs and the `/v1` description, against the real services.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use kiln_e2e::{http, images, Process, TestEnv, ADMIN_KEY};

pub(crate) async fn submit(api: &Process, key: &str, items: Value) -> anyhow::Result<(u16, Value)> {
    let response = http()
        .post(api.url("/v1/jobs"))
        .bearer_auth(key)
        .json(&json!({ "items": items }))
        .send()
        .await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

async fn progress(api: &Process, key: &str, id: &str) -> anyhow::Result<(u16, Value)> {
    let response = http()
        .get(api.url(&format!("/v1/jobs/{id}")))
        .bearer_auth(key)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// Polls the job until `until` holds for its progress (at most `within`).
async fn wait_for(
    api: &Process,
    id: &str,
    within: Duration,
    until: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (_, p) = progress(api, ADMIN_KEY, id).await?;
        if until(&p) {
            return Ok(p);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("job {id} did not get there in {within:?}: {p}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_bulk_job_renders_its_items_and_reports_failures() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let _worker = env.spawn_worker(&[]).await?;
    let client = http();
    let source = env
        .upload("bulk/a.jpg", images::jpeg(400, 300), "image/jpeg")
        .await?;

    // One bad item refuses the whole job, every reason listed, nothing stored.
    let (status, body) = submit(
        &api,
        ADMIN_KEY,
        json!([
            {"image": {"source": source, "options": "100x100"}},
            {"url": format!("/img/not-a-signature/100x100/{source}")},
            {"bogus": 1},
            {"image": {"source": source, "options": "100x100,f:auto"}},
            {"card": {"template": "stats", "id": "not an id!"}},
        ]),
    )
    .await?;
    assert_eq!(status, 400, "{body}");
    let listed: Vec<i64> = body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["item"].as_i64())
        .collect();
    assert_eq!(listed, vec![1, 2, 3, 4]);
    let mut db = env.db().await?;
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM bulk_jobs")
        .fetch_one(&mut db)
        .await?;
    assert_eq!(jobs, 0);

    // One item is cached beforehand.
    let cached = env.signed_path("50x50", &source);
    assert_eq!(client.get(api.url(&cached)).send().await?.status(), 302);
    let items = json!([
        {"url": cached},
        {"url": api.url(&env.signed_path("60x60", &source))},
        {"image": {"source": source, "options": "70x70"}},
        {"image": {"source": source, "options": "80x80,f:webp"}},
        {"image": {"source": env.source("bulk/missing.jpg"), "options": "90x90"}},
    ]);
    let (status, created) = submit(&api, ADMIN_KEY, items.clone()).await?;
    assert_eq!(status, 202, "{created}");
    assert_eq!(
        (
            created["total"].as_i64(),
            created["already_cached"].as_i64(),
            created["refused"].as_i64()
        ),
        (Some(5), Some(1), Some(1))
    );
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let done = wait_for(&api, &id, Duration::from_secs(30), |p| {
        p["state"] != "running"
    })
    .await?;
    assert_eq!(done["state"], "done");
    assert_eq!(
        (done["done"].as_i64(), done["failed"].as_i64()),
        (Some(4), Some(1))
    );
    assert_eq!(done["failed_items"][0]["item"], 4);
    assert_eq!(done["failed_items"][0]["error"], "source not found");

    // The renders are in the cache: the URLs answer at once.
    let ready: i64 = sqlx::query_scalar("SELECT count(*) FROM renditions WHERE status = 'ready'")
        .fetch_one(&mut db)
        .await?;
    assert_eq!(ready, 4);
    let again = client
        .get(api.url(&env.signed_path("60x60", &source)))
        .send()
        .await?;
    assert_eq!(again.status(), 302);
    let (_, resubmitted) = submit(&api, ADMIN_KEY, items).await?;
    assert_eq!(
        resubmitted["already_cached"], 4,
        "cached items cost nothing"
    );

    // A partner sees its own jobs only, and its key's prefixes bind its items.
    let key = env
        .create_partner(
            &api,
            json!({"name": "bulky", "path_prefixes": [env.source("other/")]}),
        )
        .await?;
    assert_eq!(progress(&api, &key, &id).await?.0, 404);
    let (status, _) = submit(
        &api,
        &key,
        json!([{"image": {"source": source, "options": "10x10"}}]),
    )
    .await?;
    assert_eq!(status, 400);
    assert_eq!(progress(&api, "", &id).await?.0, 401);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn on_demand_misses_overtake_a_running_bulk_job_and_cancel_stops_it() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let _worker = env
        .spawn_worker(&[
            ("KILN_WORKER_CONCURRENCY", "2"),
            ("KILN_WORKER_PREFETCH", "16"),
        ])
        .await?;
    let client = http();
    let source = env
        .upload("big.jpg", images::jpeg(1600, 1200), "image/jpeg")
        .await?;
    let items: Vec<Value> = (0..2000)
        .map(|i| json!({"image": {"source": source, "options": format!("{}x{}", 40 + i, 30 + i)}}))
        .collect();
    let (status, created) = submit(&api, ADMIN_KEY, Value::Array(items)).await?;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    wait_for(&api, &id, Duration::from_secs(60), |p| {
        p["done"].as_i64() >= Some(20)
    })
    .await?;

    // A visitor's miss while the job runs: its message is delivered next (the
    // queue's priority) and its render overtakes the bulk renders the worker
    // holds (the render pool's lanes). Bulk renders keep the threads busy
    // while the visitor's original is fetched, so some finish meanwhile: at
    // most the 16 held plus the 2 under way, not the job's backlog.
    let mut db = env.db().await?;
    let t0: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut db)
        .await?;
    let miss = client
        .get(api.url(&env.signed_path("77x55,f:png", &source)))
        .send()
        .await?;
    assert_eq!(miss.status(), 302);
    let t1: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut db)
        .await?;
    let bulk_renders_meanwhile: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM renditions r JOIN bulk_items b ON b.cache_key = r.cache_key \
         WHERE b.job_id = $1 AND r.finished_at BETWEEN $2 AND $3",
    )
    .bind(&id)
    .bind(t0)
    .bind(t1)
    .fetch_one(&mut db)
    .await?;
    assert!(
        bulk_renders_meanwhile <= 18,
        "{bulk_renders_meanwhile} bulk renders finished while the miss waited"
    );
    let (_, running) = progress(&api, ADMIN_KEY, &id).await?;
    assert!(
        running["pending"].as_i64() > Some(1000),
        "the job was still running: {running}"
    );

    // Cancelling stops everything not handed over yet.
    let cancelled: Value = client
        .delete(api.url(&format!("/v1/jobs/{id}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?
        .json()
        .await?;
    assert!(cancelled["cancelled"].as_i64() > Some(1000), "{cancelled}");
    let settled = wait_for(&api, &id, Duration::from_secs(30), |p| {
        p["state"] != "running"
    })
    .await?;
    assert_eq!(settled["state"], "cancelled");
    let sum = ["done", "failed", "cancelled"]
        .iter()
        .map(|k| settled[*k].as_i64().unwrap_or(0))
        .sum::<i64>();
    assert_eq!(sum, 2000);
    let count = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM renditions r JOIN bulk_items b ON b.cache_key = r.cache_key WHERE b.job_id = $1",
        )
        .bind(&id)
        .fetch_one(&mut env.db().await?)
        .await
        .map_err(anyhow::Error::from)
    };
    let rendered = count().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        count().await?,
        rendered,
        "nothing renders after the cancel settled"
    );
    assert_eq!(rendered, settled["done"].as_i64().unwrap_or(0));
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn kiln_prerender_submits_a_file_and_follows_it_to_the_end() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let _worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("cli.jpg", images::jpeg(300, 200), "image/jpeg")
        .await?;
    let file = std::env::temp_dir().join(format!("kiln-prerender-{}.txt", env.id));
    let lines = format!(
        "# three renditions\n{}\n{}\n{{\"image\":{{\"source\":\"{source}\",\"options\":\"30x30\"}}}}\n",
        env.signed_path("10x10", &source),
        api.url(&env.signed_path("20x20", &source)),
    );
    std::fs::write(&file, lines)?;
    let output = env
        .cli(
            &["prerender", &file.display().to_string()],
            &[
                ("KILN_API_URL", api.base_url.as_str()),
                ("KILN_API_KEY", ADMIN_KEY),
            ],
        )
        .await?;
    let _ = std::fs::remove_file(&file);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("3/3"), "{stderr}");
    let last: Value = serde_json::from_str(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default(),
    )?;
    assert_eq!(
        (last["state"].as_str(), last["done"].as_i64()),
        (Some("done"), Some(3))
    );
    env.cleanup().await;
    Ok(())
}

/// A documented path with its parameters filled in.
fn concrete_path(path: &str) -> String {
    path.replace("{name}", "nobody")
        .replace("{id}", "job_none")
        .replace("{key}", "nothing/here.jpg")
}

#[tokio::test]
async fn the_openapi_document_describes_routes_that_exist() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let client = http();
    let doc: Value = client
        .get(api.url("/v1/openapi.json"))
        .send()
        .await?
        .json()
        .await?;
    assert!(doc["openapi"]
        .as_str()
        .unwrap_or_default()
        .starts_with("3."));
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    assert!(paths.len() >= 7, "{paths:?}");
    for (path, ops) in &paths {
        assert!(path.starts_with("/v1/"), "{path}");
        let concrete = concrete_path(path);
        for (method, op) in ops.as_object().into_iter().flatten() {
            let method = match method.as_str() {
                "get" => reqwest::Method::GET,
                "post" => reqwest::Method::POST,
                "put" => reqwest::Method::PUT,
                "delete" => reqwest::Method::DELETE,
                _ => continue,
            };
            let status = client
                .request(method.clone(), api.url(&concrete))
                .send()
                .await?
                .status()
                .as_u16();
            // Documented operations exist (never 404/405) and the secured ones
            // want a key.
            let expected = if op.get("security").is_some() {
                401
            } else {
                200
            };
            assert_eq!(status, expected, "{method} {path}");
        }
    }
    // The other direction: every /v1 route the router has is documented,
    // with every method it answers (anything but 405; asked with the admin
    // key, since without one the key check answers 401 first).
    let router = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/src/routes/mod.rs"),
    )?;
    let routed: Vec<String> = router
        .split('"')
        .filter(|s| s.starts_with("/v1/"))
        .map(|s| s.replace("{*", "{"))
        .collect();
    assert!(routed.len() >= 9, "{routed:?}");
    for path in &routed {
        let documented = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is routed but not documented"));
        for method in ["get", "post", "put", "delete"] {
            let status = client
                .request(
                    reqwest::Method::from_bytes(method.to_uppercase().as_bytes())?,
                    api.url(&concrete_path(path)),
                )
                .bearer_auth(ADMIN_KEY)
                .send()
                .await?
                .status()
                .as_u16();
            if status != 405 {
                assert!(
                    documented.get(method).is_some(),
                    "{method} {path} answers {status} but is not documented"
                );
            }
        }
    }
    // Every $ref points at a schema the document defines.
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap_or_default();
        assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
    }
    env.cleanup().await;
    Ok(())
}
