//! Request bodies: refused from the headers when the caller may not send
//! them, parsed into typed, bounded items when it may, cut off at the
//! route's limit and at the body timeout. An api under these attacks keeps
//! its memory and keeps answering hits.

use std::time::{Duration, Instant};

use kiln_e2e::{http, Process, TestEnv, ADMIN_KEY};

use super::{raw_exchange, warm_hit};

/// `{"items":[[0,0,0,…]]}` of about `bytes`: one item, millions of values.
fn nested_zeros(bytes: usize) -> Vec<u8> {
    let mut body = b"{\"items\":[[0".to_vec();
    while body.len() < bytes {
        body.extend_from_slice(b",0");
    }
    body.extend_from_slice(b"]]}");
    body
}

/// `{"items":[0,0,0,…]}`: millions of items.
fn flat_zeros(items: usize) -> Vec<u8> {
    let mut body = b"{\"items\":[0".to_vec();
    for _ in 1..items {
        body.extend_from_slice(b",0");
    }
    body.extend_from_slice(b"]}");
    body
}

async fn post_json(api: &Process, path: &str, body: Vec<u8>) -> anyhow::Result<(u16, String)> {
    let response = http()
        .post(api.url(path))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    Ok((response.status().as_u16(), response.text().await?))
}

#[tokio::test]
async fn unauthenticated_bodies_are_refused_before_they_are_read() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    for path in ["/v1/jobs", "/v1/links", "/v1/partners"] {
        // Headers announcing 8 MB, and not one byte of the body sent: the
        // answer comes anyway, so nothing waited for (or read) the body.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: kiln\r\nContent-Type: application/json\r\n\
             Content-Length: 8000000\r\n\r\n"
        );
        let started = Instant::now();
        let answer = raw_exchange(&api, None, head.as_bytes(), Duration::from_secs(5)).await?;
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
        assert!(started.elapsed() < Duration::from_secs(3), "{path}");
    }
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn authenticated_bodies_are_typed_and_bounded() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let _worker = env.spawn_worker(&[]).await?;
    let hit = warm_hit(&env, &api).await?;
    let baseline = kiln_e2e::rss_mib(api.pid().unwrap_or(0)).unwrap_or(0.0);
    let rss = api.sample_rss();

    // Four at once, 8 MB each: an untyped parse would build ~0.25 GB of
    // values per request; typed parsing refuses the first item.
    let attacks = (0..4).map(|_| post_json(&api, "/v1/jobs", nested_zeros(8_000_000)));
    let hits = async {
        let client = http();
        let mut codes = Vec::new();
        for _ in 0..20 {
            codes.push(client.get(&hit).send().await?.status().as_u16());
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::Ok(codes)
    };
    let (answers, codes) = tokio::join!(futures_util::future::join_all(attacks), hits);
    for answer in answers {
        let (status, body) = answer?;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("item 0") || body.contains("items"), "{body}");
    }
    assert!(codes?.iter().all(|c| *c == 302), "hits kept answering");
    let peak = rss.stop().await;
    assert!(
        peak - baseline < 100.0,
        "api RSS rose by {:.0} MiB from {baseline:.0}",
        peak - baseline
    );

    // Too many items: refused while parsing, at the 10 001st.
    let (status, body) = post_json(&api, "/v1/jobs", flat_zeros(100_000)).await?;
    assert_eq!(status, 400);
    assert!(body.contains("more than 10000 items"), "{body}");
    // Past the route's byte limit: 413, for jobs (8 MiB) and links (64 KiB).
    let (status, _) = post_json(&api, "/v1/jobs", nested_zeros(9 << 20)).await?;
    assert_eq!(status, 413);
    let mut link = b"{\"object\":\"".to_vec();
    link.extend(std::iter::repeat_n(b'a', 70_000));
    link.extend_from_slice(b"\"}");
    let (status, _) = post_json(&api, "/v1/links", link).await?;
    assert_eq!(status, 413);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn a_body_that_trickles_in_times_out() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env
        .spawn_api(&[("KILN_HTTP_BODY_TIMEOUT_MS", "1000")])
        .await?;
    let head = "POST /captcha/verify HTTP/1.1\r\nHost: kiln\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{\"slot\":";
    let started = Instant::now();
    let answer = raw_exchange(&api, None, head.as_bytes(), Duration::from_secs(10)).await?;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    env.cleanup().await;
    Ok(())
}
