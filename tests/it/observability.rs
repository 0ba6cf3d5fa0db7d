//! Health, readiness and metrics endpoints.

use kiln_e2e::{http, TestEnv};

#[tokio::test]
async fn health_readiness_and_metrics_answer() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let worker = env.spawn_worker(&[]).await?;
    let client = http();
    for process in [&api, &worker] {
        assert_eq!(
            client.get(process.url("/healthz")).send().await?.status(),
            200
        );
        let ready = client.get(process.url("/readyz")).send().await?;
        assert_eq!(ready.status(), 200, "{:?}", ready.text().await);
    }
    let ready: serde_json::Value = client.get(api.url("/readyz")).send().await?.json().await?;
    assert_eq!(
        ready,
        serde_json::json!({
            "hits": "ok", "misses": "ok", "postgres": "ok", "rabbitmq": "ok", "s3": "ok"
        })
    );

    // A request shows up in the request counter by route pattern and status.
    client.get(api.url("/img/x/y")).send().await?;
    let metrics = client.get(api.url("/metrics")).send().await?.text().await?;
    assert!(
        metrics.contains(r#"kiln_http_requests_total{route="/img/{*rest}",status="400"} 1"#),
        "{metrics}"
    );
    env.cleanup().await;
    Ok(())
}

/// A dependency only misses need (here S3) being away keeps the api in its
/// load balancer's rotation: `/readyz` says 200 and names what is missing;
/// `/readyz?strict=true` is 503.
#[tokio::test]
async fn readiness_reports_a_dependency_misses_need() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    // An S3 endpoint where nothing listens: the api still starts.
    let api = env
        .spawn_api(&[
            ("KILN_S3_ENDPOINT", "http://127.0.0.1:9"),
            ("KILN_S3_TIMEOUT_MS", "500"),
        ])
        .await?;
    let client = http();
    let response = client.get(api.url("/readyz")).send().await?;
    assert_eq!(response.status(), 200, "hits need no S3 round trip");
    let body: serde_json::Value = response.json().await?;
    assert_eq!(body["s3"], "unavailable");
    assert_eq!(body["postgres"], "ok");
    assert_eq!(body["hits"], "ok");
    assert_eq!(body["misses"], "unavailable");
    let strict = client.get(api.url("/readyz?strict=true")).send().await?;
    assert_eq!(strict.status(), 503);
    // A miss needing S3 is a 503 with Retry-After, not a hang or a 500.
    let response = client
        .get(api.url(&env.signed_path("10x10", &env.source("x.jpg"))))
        .send()
        .await?;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body = response.text().await?;
    assert!(
        !body.contains("127.0.0.1") && !body.to_lowercase().contains("error"),
        "{body}"
    );
    env.cleanup().await;
    Ok(())
}

/// Every metric the Grafana dashboard queries is one Kiln exports.
#[test]
fn the_dashboard_queries_only_metrics_kiln_exports() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect(p);
    let exported = read("api/src/plumbing/metrics.rs") + &read("worker/src/metrics.rs");
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/kiln-dashboard.json")).expect("dashboard JSON");
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().unwrap_or_default();
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("kiln_"))
            {
                let base = name.strip_suffix("_bucket").unwrap_or(name);
                assert!(
                    exported.contains(&format!("\"{base}\"")),
                    "panel {:?} queries {name}, which Kiln does not export",
                    panel["title"]
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 20, "{queried}");
}

/// Every metric Kiln exports is on the dashboard (a metric nobody charts is
/// one nobody watches).
#[test]
fn the_dashboard_charts_every_exported_metric() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect(p);
    let dashboard = read("deploy/grafana/kiln-dashboard.json");
    let mut exported = Vec::new();
    for file in ["api/src/plumbing/metrics.rs", "worker/src/metrics.rs"] {
        for line in read(file).lines() {
            if let Some((_, rest)) = line.split_once(": &str = \"") {
                exported.push(rest.trim_end_matches("\";").to_owned());
            }
        }
    }
    assert!(exported.len() >= 30, "{exported:?}");
    let unseen: Vec<_> = exported
        .iter()
        .filter(|name| !dashboard.contains(name.as_str()))
        .collect();
    assert!(unseen.is_empty(), "not on the dashboard: {unseen:?}");
}

/// The dashboard groups 429s `by (limit)`: every rate-limit counter names
/// its limit in that label, the captcha one included.
#[test]
fn every_rate_limit_counter_names_its_limit() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut counted = 0;
    for dir in [
        "api/src",
        "api/src/routes",
        "api/src/miss",
        "api/src/partners",
        "api/src/plumbing",
    ] {
        for entry in std::fs::read_dir(root.join(dir)).expect(dir) {
            let path = entry.expect("entry").path();
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            for (at, _) in text.match_indices("counter!(m::RATE_LIMITED") {
                let call = &text[at..text[at..].find(')').map_or(text.len(), |end| at + end)];
                assert!(call.contains("\"limit\" =>"), "{}: {call}", path.display());
                counted += 1;
            }
        }
    }
    assert!(counted >= 5, "{counted}");
}
