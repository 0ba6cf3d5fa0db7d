//! `/v1` answers every error as `application/problem+json` (the framework's
//! own rejections included), image routes keep their plain text, and the
//! request id travels from the client's header to the answer, the problem
//! body and the worker's log lines for the render it queued.

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};

use kiln_e2e::{http, images, TestEnv, ADMIN_KEY};

/// Status, headers and parsed problem of a `/v1` error answer.
async fn problem(
    response: reqwest::Response,
) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Value)> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await?;
    anyhow::ensure!(
        content_type == "application/problem+json",
        "{status}: content-type {content_type:?}, body {text}"
    );
    let body: Value = serde_json::from_str(&text)?;
    anyhow::ensure!(body["status"] == status, "{body}");
    for member in ["type", "title", "detail", "request_id"] {
        anyhow::ensure!(body[member].is_string(), "{member} missing: {body}");
    }
    anyhow::ensure!(
        !text.to_lowercase().contains("sqlx") && !text.contains("127.0.0.1"),
        "internal text in {text}"
    );
    Ok((status, headers, body))
}

#[tokio::test]
async fn every_v1_error_is_a_problem() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let client = http();
    let admin_post = |path: &str| client.post(api.url(path)).bearer_auth(ADMIN_KEY);

    // No key: 401, with its WWW-Authenticate kept and the id echoed.
    let (status, headers, body) = problem(
        client
            .post(api.url("/v1/links"))
            .header("x-request-id", "client-trace-7")
            .json(&json!({}))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 401);
    assert_eq!(body["type"], "urn:kiln:problem:unauthorized");
    assert_eq!(body["request_id"], "client-trace-7");
    assert_eq!(headers["x-request-id"], "client-trace-7");
    assert!(headers.contains_key("www-authenticate"));

    // Malformed JSON, wrong types, unknown fields, an oversized body.
    let malformed = admin_post("/v1/partners")
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await?;
    assert_eq!(problem(malformed).await?.0, 400);
    let wrong_type = admin_post("/v1/partners")
        .json(&json!({"name": 5}))
        .send()
        .await?;
    let (status, _, body) = problem(wrong_type).await?;
    assert!(status == 400 || status == 422, "{status} {body}");
    // Its own client: the api closes a connection whose body it refused.
    let oversized = http()
        .post(api.url("/v1/links"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body(vec![b' '; 200 * 1024])
        .send()
        .await?;
    let (status, _, body) = problem(oversized).await?;
    assert_eq!(status, 413);
    assert_eq!(body["type"], "urn:kiln:problem:too-large");

    // Unknown path and a method the route does not have.
    let (status, _, body) = problem(client.get(api.url("/v1/nothing-here")).send().await?).await?;
    assert_eq!(
        (status, body["type"].as_str()),
        (404, Some("urn:kiln:problem:not-found"))
    );
    let (status, _, _) = problem(
        client
            .delete(api.url("/v1/partners"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 405);

    // Invalid bulk items: the problem lists them.
    let (status, _, body) = problem(
        admin_post("/v1/jobs")
            .json(&json!({"items": [{"url": "/img/bad/10x10/a.jpg"}, {"url": "nonsense"}]}))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 400);
    assert_eq!(body["items"].as_array().map(Vec::len), Some(2), "{body}");
    assert!(body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("2 invalid item(s)"));

    // A made-up partner key.
    let (status, _, body) = problem(
        client
            .get(api.url("/v1/usage"))
            .bearer_auth("kp_made_up_key_that_does_not_exist_0123")
            .send()
            .await?,
    )
    .await?;
    assert_eq!(status, 403, "{body}");

    // Image routes keep their short plain text.
    let image = client
        .get(api.url("/img/forged/10x10/a.jpg"))
        .send()
        .await?;
    assert_eq!(image.status(), 403);
    assert!(image.headers()[CONTENT_TYPE]
        .to_str()?
        .starts_with("text/plain"));
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn the_request_id_reaches_the_workers_log() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("traced.jpg", images::jpeg(200, 100), "image/jpeg")
        .await?;
    let client = http();
    let id = format!("trace-{}", env.id);
    let response = client
        .get(api.url(&env.signed_path("50x50", &source)))
        .header("x-request-id", &id)
        .send()
        .await?;
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["x-request-id"], id.as_str());
    worker
        .wait_for_log(&id, Duration::from_secs(10))
        .await
        .map_err(|err| anyhow::anyhow!("the worker never logged {id}: {err}"))?;
    // The job's lines (its render among them) arrive as the worker writes them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let render_line_names_it = || {
        worker
            .log
            .lock()
            .map(|lines| {
                lines
                    .iter()
                    .any(|l| l.contains("rendering bytes=") && l.contains(&id))
            })
            .unwrap_or(false)
    };
    while !render_line_names_it() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        render_line_names_it(),
        "the render's log line names the request"
    );

    // An id that is not well formed is replaced, never echoed.
    let response = client
        .get(api.url("/healthz"))
        .header("x-request-id", "two words")
        .send()
        .await?;
    let made_up = response.headers()["x-request-id"].to_str()?.to_owned();
    assert_eq!(made_up.len(), 32, "{made_up}");
    assert!(made_up.bytes().all(|b| b.is_ascii_hexdigit()));
    let plain = client.get(api.url("/healthz")).send().await?;
    assert_ne!(plain.headers()["x-request-id"], made_up.as_str());
    env.cleanup().await;
    Ok(())
}
