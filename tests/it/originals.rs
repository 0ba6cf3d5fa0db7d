//! `PUT /v1/originals/{key}` (upload), `DELETE /v1/originals/{key}` and
//! `POST /v1/purge` (purge), and retention, against a running farm.

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{json, Value};

use kiln_e2e::{follow_redirect, http, images, Process, TestEnv, ADMIN_KEY};

async fn put(
    api: &Process,
    key: &str,
    bytes: Vec<u8>,
    query: &str,
    bearer: &str,
) -> anyhow::Result<(u16, Value)> {
    let response = http()
        .put(api.url(&format!("/v1/originals/{key}{query}")))
        .bearer_auth(bearer)
        .body(bytes)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn uploads_are_sniffed_bounded_and_never_overwrite_by_accident() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env
        .spawn_api(&[
            ("KILN_MAX_SOURCE_BYTES", "20000000"),
            ("KILN_MAX_SOURCE_PIXELS", "20000000"),
        ])
        .await?;
    let _worker = env.spawn_worker(&[]).await?;
    let client = http();
    let key = env.source("up/cat.jpg");

    let (status, body) = put(&api, &key, images::jpeg(640, 480), "", ADMIN_KEY).await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["width"].as_u64(), body["height"].as_u64()),
        (Some(640), Some(480))
    );
    assert_eq!(body["content_type"], "image/jpeg");
    let rendered = client
        .get(api.url(&env.signed_path("64x64,fit", &key)))
        .send()
        .await?;
    assert_eq!(follow_redirect(&client, rendered).await?.1, 64);

    // The same key again: 409 unless overwriting is asked for.
    let (status, body) = put(&api, &key, images::png(300, 100), "", ADMIN_KEY).await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["type"], "urn:kiln:problem:conflict");
    let (status, body) = put(
        &api,
        &key,
        images::png(300, 100),
        "?overwrite=true",
        ADMIN_KEY,
    )
    .await?;
    assert_eq!(
        (status, body["replaced"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    // The new original is what renders now (new ETag, new rendition).
    let rendered = client
        .get(api.url(&env.signed_path("150x150,fit", &key)))
        .send()
        .await?;
    assert_eq!(follow_redirect(&client, rendered).await?.1, 150);
    let rendered = client
        .get(api.url(&env.signed_path("64x64,fit", &key)))
        .send()
        .await?;
    let (_, width, height) = follow_redirect(&client, rendered).await?;
    assert_eq!(width, 64);
    assert!(
        (21..=22).contains(&height),
        "the replaced original's shape: {height}"
    );

    // Not an image: refused, and nothing stored; under files/ it is a download.
    let text = b"just some words, not pixels".to_vec();
    let (status, body) = put(
        &api,
        &env.source("up/notes.jpg"),
        text.clone(),
        "",
        ADMIN_KEY,
    )
    .await?;
    assert_eq!(status, 422, "{body}");
    let stored = env.storage.head_original(&env.source("up/notes.jpg")).await;
    assert!(stored.is_err(), "a refused upload stores nothing");
    let (status, body) = put(&api, &format!("files/{}", env.id), text, "", ADMIN_KEY).await?;
    assert_eq!(
        (status, body["content_type"].as_str()),
        (201, Some("application/octet-stream"))
    );

    // A header over the pixel limits (a few hundred bytes that claim 10^10 px).
    let (status, body) = put(
        &api,
        &env.source("up/bomb.png"),
        images::png_bomb(),
        "",
        ADMIN_KEY,
    )
    .await?;
    assert_eq!(status, 422, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(" is over the ") && detail.ends_with(" limit"),
        "names the limit crossed: {detail}"
    );

    // Bad requests.
    for (path, expected) in [
        (format!("/v1/originals/{key}?overwrite=maybe"), 400),
        (format!("/v1/originals/{key}?colour=red"), 400),
        ("/v1/originals/folder/".to_owned(), 400),
        (format!("/v1/originals/{}//b.jpg", env.source("up")), 400),
    ] {
        let response = client
            .put(api.url(&path))
            .bearer_auth(ADMIN_KEY)
            .body(images::jpeg(8, 8))
            .send()
            .await?;
        assert_eq!(response.status(), expected, "{path}");
    }
    let empty = put(&api, &env.source("up/empty.jpg"), Vec::new(), "", ADMIN_KEY).await?;
    assert_eq!(empty.0, 400);
    let anonymous = client
        .put(api.url(&format!("/v1/originals/{key}")))
        .body(images::jpeg(8, 8))
        .send()
        .await?;
    assert_eq!(anonymous.status(), 401);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn the_byte_limit_holds_while_streaming_and_large_files_go_in_parts() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env
        .spawn_api(&[("KILN_MAX_SOURCE_BYTES", "12000000")])
        .await?;
    let _worker = env.spawn_worker(&[]).await?;
    let client = http();

    // A declared length over the limit: refused before a byte is read.
    let declared = client
        .put(api.url(&format!("/v1/originals/{}", env.source("big/declared.png"))))
        .bearer_auth(ADMIN_KEY)
        .header("content-length", "50000000")
        .body(vec![0u8; 16])
        .send()
        .await;
    match declared {
        Ok(response) => assert_eq!(response.status(), 413),
        // The api may close the connection once it has answered.
        Err(err) => assert!(err.is_request() || err.is_body(), "{err}"),
    }

    // A chunked body (no length) that grows past the limit: 413 while it
    // streams, and nothing is stored.
    let chunk = {
        let mut png = images::noise_png(256, 256, 3);
        png.resize(1 << 20, 0);
        bytes::Bytes::from(png)
    };
    let endless =
        futures_util::stream::iter((0..40).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let key = env.source("big/endless.png");
    let response = client
        .put(api.url(&format!("/v1/originals/{key}")))
        .bearer_auth(ADMIN_KEY)
        .body(reqwest::Body::wrap_stream(endless))
        .send()
        .await?;
    assert_eq!(response.status(), 413);
    assert!(
        env.storage.head_original(&key).await.is_err(),
        "nothing stored"
    );

    // A real image over one part (8 MiB): sent in parts, stored whole.
    let big = images::noise_png(1900, 1600, 7);
    assert!(
        big.len() > 8 << 20 && big.len() < 12_000_000,
        "{}",
        big.len()
    );
    let key = env.source("big/noise.png");
    let started = Instant::now();
    let (status, body) = put(&api, &key, big.clone(), "", ADMIN_KEY).await?;
    assert_eq!(status, 201, "{body}");
    eprintln!("uploaded {} bytes in {:?}", big.len(), started.elapsed());
    let stored = env.storage.head_original(&key).await?;
    assert_eq!(stored.size, big.len() as u64);
    let rendered = client
        .get(api.url(&env.signed_path("100x100,fit", &key)))
        .send()
        .await?;
    assert_eq!(follow_redirect(&client, rendered).await?.1, 100);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn partners_upload_and_purge_within_their_prefixes_only() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let own = env.source("acme/");
    let partner = env
        .create_partner(&api, json!({"name": "acme", "path_prefixes": [own]}))
        .await?;
    let inside = env.source("acme/logo.jpg");
    let outside = env.source("acme-internal/logo.jpg");
    assert_eq!(
        put(&api, &inside, images::jpeg(32, 32), "", &partner)
            .await?
            .0,
        201
    );
    let (status, body) = put(&api, &outside, images::jpeg(32, 32), "", &partner).await?;
    assert_eq!(status, 403, "{body}");
    let client = http();
    let purge = |body: Value| {
        client
            .post(api.url("/v1/purge"))
            .bearer_auth(&partner)
            .json(&body)
            .send()
    };
    assert_eq!(purge(json!({"source": inside})).await?.status(), 200);
    assert_eq!(purge(json!({"prefix": own})).await?.status(), 200);
    assert_eq!(purge(json!({"source": outside})).await?.status(), 403);
    assert_eq!(
        purge(json!({"prefix": env.source("")})).await?.status(),
        403
    );
    env.cleanup().await;
    Ok(())
}

/// One answer of the hit flood: when it was sent, its status and Location.
struct Hit {
    sent: Instant,
    status: u16,
    location: Option<String>,
}

async fn hammer(urls: Vec<String>, until: Instant) -> Vec<Hit> {
    let client = http();
    let mut hits = Vec::new();
    while Instant::now() < until {
        let answers = futures_util::stream::iter(urls.iter().cloned())
            .map(|url| {
                let client = client.clone();
                async move {
                    let sent = Instant::now();
                    let response = client.get(url).send().await.ok()?;
                    Some(Hit {
                        sent,
                        status: response.status().as_u16(),
                        location: response
                            .headers()
                            .get("location")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                    })
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        hits.extend(answers.into_iter().flatten());
    }
    hits
}

#[tokio::test]
async fn a_purge_during_hits_leaves_no_redirect_to_a_deleted_object() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let first = env.spawn_api(&[]).await?;
    let second = env.spawn_api(&[]).await?;
    let worker = env
        .spawn_worker(&[("KILN_WORKER_CONCURRENCY", "2")])
        .await?;
    let source = env
        .upload("purge/a.jpg", images::jpeg(400, 300), "image/jpeg")
        .await?;
    let kept = env
        .upload("purge-old/b.jpg", images::jpeg(400, 300), "image/jpeg")
        .await?;
    let client = http();
    let paths: Vec<String> = (0..4)
        .map(|i| env.signed_path(&format!("{}x50", 50 + i), &source))
        .collect();
    let kept_path = env.signed_path("40x40", &kept);
    // Warm on both apis, so both hold the redirects in memory.
    for api in [&first, &second] {
        for path in paths.iter().chain([&kept_path]) {
            let response = client.get(api.url(path)).send().await?;
            assert_eq!(response.status(), 302);
            let tags = response.headers()["surrogate-key"].to_str()?.to_owned();
            assert!(
                tags.contains("purge/") || tags.contains("purge-old/"),
                "{tags}"
            );
        }
    }
    let renders_before = worker.log_count("rendering bytes=");
    assert_eq!(renders_before, 5);

    let urls: Vec<String> = paths
        .iter()
        .flat_map(|p| [first.url(p), second.url(p)])
        .collect();
    let flood = tokio::spawn(hammer(urls, Instant::now() + Duration::from_secs(6)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let purged: Value = client
        .post(first.url("/v1/purge"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"prefix": env.source("purge")}))
        .send()
        .await?
        .json()
        .await?;
    let answered = Instant::now();
    assert_eq!(purged["renditions"], 4, "{purged}");
    let hits = flood.await?;

    // Every redirect handed out a second after the purge answered points at
    // an object that exists (the re-render), on either api.
    let late: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.sent > answered + Duration::from_secs(1))
        .collect();
    assert!(late.len() > 20, "{} late hits", late.len());
    let mut checked = std::collections::HashSet::new();
    for hit in &late {
        assert!(hit.status == 302 || hit.status == 503, "{}", hit.status);
        if let Some(location) = &hit.location {
            if checked.insert(location.clone()) {
                let object = client.get(location).send().await?;
                assert_eq!(
                    object.status(),
                    200,
                    "a redirect to a deleted object: {location}"
                );
            }
        }
    }
    assert_eq!(
        worker.log_count("rendering bytes="),
        renders_before + 4,
        "the purged renditions were rendered again, once each"
    );
    // The prefix is whole segments: purge-old/ was not touched.
    assert_eq!(
        client.get(first.url(&kept_path)).send().await?.status(),
        302
    );

    // Deleting the original removes it and its renditions.
    let deleted: Value = client
        .delete(second.url(&format!("/v1/originals/{source}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(deleted["original_deleted"], true, "{deleted}");
    assert_eq!(deleted["renditions"], 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    for api in [&first, &second] {
        let gone = client.get(api.url(&paths[0])).send().await?;
        assert_eq!(gone.status(), 404, "a deleted original");
    }
    let again = client
        .delete(second.url(&format!("/v1/originals/{source}")))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?;
    assert_eq!(again.status(), 404);

    // Bad purge requests.
    for body in [
        json!({}),
        json!({"source": source, "prefix": "x/"}),
        json!({"sauce": source}),
        json!({"source": 5}),
        json!({"prefix": "/"}),
        json!({"source": "../etc/passwd"}),
    ] {
        let response = client
            .post(first.url("/v1/purge"))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
            .await?;
        assert_eq!(response.status(), 400, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn renditions_nobody_asks_for_expire_and_hits_are_written_in_batches() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env
        .spawn_api(&[
            ("KILN_RETENTION_DAYS", "1"),
            ("KILN_HIT_FLUSH_SECS", "1"),
            ("KILN_RETENTION_SWEEP_SECS", "2"),
        ])
        .await?;
    let _worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("old.jpg", images::jpeg(300, 200), "image/jpeg")
        .await?;
    let client = http();
    let (stale, fresh) = (
        env.signed_path("30x30", &source),
        env.signed_path("60x60", &source),
    );
    for path in [&stale, &fresh] {
        assert_eq!(client.get(api.url(path)).send().await?.status(), 302);
    }
    assert_eq!(env.cache_objects().await?.len(), 2);
    // Once those hits are written (a flush a second)…
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // …both were last asked for two days ago…
    let mut db = env.db().await?;
    sqlx::query("UPDATE renditions SET last_hit_at = now() - interval '2 days'")
        .execute(&mut db)
        .await?;
    // …then one is asked for again, many times: its hits are written in a
    // batch, not once each.
    let before = env.transactions().await?;
    for _ in 0..300 {
        assert_eq!(client.get(api.url(&fresh)).send().await?.status(), 302);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let spent = env.transactions().await? - before;
    eprintln!("300 hits cost {spent} transactions");
    assert!(spent < 60, "{spent} transactions for 300 hits");

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left: Vec<String> =
            sqlx::query_scalar("SELECT options FROM renditions ORDER BY options")
                .fetch_all(&mut db)
                .await?;
        if left == ["60x60"] {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "renditions left: {left:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        env.cache_objects().await?.len(),
        1,
        "the expired object is deleted"
    );
    // The expired one renders again when asked for.
    assert_eq!(client.get(api.url(&stale)).send().await?.status(), 302);
    env.cleanup().await;
    Ok(())
}

/// A render still running when its original is purged stores nothing that
/// no row accounts for: the worker finds the row gone and removes the object.
#[tokio::test]
async fn a_render_in_flight_when_its_original_is_purged_leaves_no_object() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_MISS_WAIT_MS", "500")]).await?;
    let worker = env
        .spawn_worker(&[("KILN_AVIF_SPEED", "1"), ("KILN_WORKER_CONCURRENCY", "1")])
        .await?;
    let source = env
        .upload("inflight.png", images::png(1600, 1200), "image/png")
        .await?;
    let client = http();
    // Slow (AVIF at speed 1): the request gives up waiting, the render goes on.
    let slow = client
        .get(api.url(&env.signed_path("1400x1000,f:avif,q:90", &source)))
        .send()
        .await?;
    assert_eq!(slow.status(), 503);
    worker
        .wait_for_log("rendering bytes=", Duration::from_secs(10))
        .await?;
    let purged: Value = client
        .post(api.url("/v1/purge"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"source": source}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(purged["renditions"], 1, "the pending rendition: {purged}");
    worker
        .wait_for_log("purged while it rendered", Duration::from_secs(60))
        .await?;
    assert!(
        env.cache_objects().await?.is_empty(),
        "no object without a row"
    );
    env.cleanup().await;
    Ok(())
}
