//! Metering, reports and the usage page against the real services.

use std::time::Duration;

use serde_json::{json, Value};

use kiln_e2e::{http, images, TestEnv, ADMIN_KEY};

#[tokio::test]
async fn counts_stay_in_memory_and_are_flushed_on_sigterm() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let admin_api = env.spawn_api(&[]).await?;
    let key = env
        .create_partner(
            &admin_api,
            json!({"name": "metered", "path_prefixes": [env.source("ok/")]}),
        )
        .await?;
    // This api would not flush for ten minutes: only shutdown writes its counts.
    let api = env
        .spawn_api(&[("KILN_METER_FLUSH_MS", "600000"), ("KILN_AUDIT", "true")])
        .await?;
    let worker = env.spawn_worker(&[]).await?;
    let photo = images::jpeg(300, 200);
    let original = env.upload("ok/a.jpg", photo.clone(), "image/jpeg").await?;
    let client = http();
    for _ in 0..5 {
        let r = client
            .get(api.url(&format!("/originals/{original}?key={key}")))
            .send()
            .await?;
        assert_eq!(r.status(), 302);
    }
    let forbidden = format!("/originals/{}?key={key}", env.source("elsewhere/b.jpg"));
    assert_eq!(client.get(api.url(&forbidden)).send().await?.status(), 403);
    let missing = format!("/originals/{}?key={key}", env.source("ok/none.jpg"));
    assert_eq!(client.get(api.url(&missing)).send().await?.status(), 404);
    // An image request made with the key in a header is metered as an image.
    let image = env.signed_path("120x80", &original);
    for _ in 0..3 {
        let r = client
            .get(api.url(&image))
            .header("x-kiln-key", &key)
            .send()
            .await?;
        assert_eq!(r.status(), 302);
    }
    drop(worker);

    let mut db = env.db().await?;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_minute")
        .fetch_one(&mut db)
        .await?;
    assert_eq!(before, 0, "no INSERT per request");

    api.signal("TERM")?;
    let mut api = api;
    tokio::time::timeout(Duration::from_secs(15), api.child.wait()).await??;

    let rows: Vec<(String, i16, i64, i64)> = sqlx::query_as(
        "SELECT kind, status_class, sum(hits)::int8, sum(bytes)::int8 FROM usage_minute \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&mut db)
    .await?;
    assert_eq!(
        rows,
        vec![
            ("image".to_owned(), 3, 3, 0),
            ("original".to_owned(), 3, 5, 5 * photo.len() as i64),
            ("original".to_owned(), 4, 2, 0),
        ]
    );
    let (hits, errors): (i64, i64) = sqlx::query_as(
        "SELECT sum(hits)::int8, sum(errors)::int8 FROM usage_daily WHERE partner = 'metered'",
    )
    .fetch_one(&mut db)
    .await?;
    assert_eq!((hits, errors), (10, 2), "the daily rollup agrees");
    let hourly: i64 = sqlx::query_scalar(
        "SELECT sum(hits)::int8 FROM usage_hourly WHERE partner = 'metered' AND kind = 'original'",
    )
    .fetch_one(&mut db)
    .await?;
    assert_eq!(hourly, 7);

    // The audit trail has every access, and cannot be rewritten.
    let audited: Vec<(String, i16)> =
        sqlx::query_as("SELECT object, status FROM usage_audit ORDER BY at")
            .fetch_all(&mut db)
            .await?;
    assert_eq!(audited.len(), 10);
    assert!(audited
        .iter()
        .any(|(o, s)| o.ends_with("ok/none.jpg") && *s == 404));
    let tamper = sqlx::query("DELETE FROM usage_audit")
        .execute(&mut db)
        .await;
    assert!(tamper.is_err(), "usage_audit is append-only");
    env.cleanup().await;
    Ok(())
}

async fn usage(
    api: &kiln_e2e::Process,
    query: &str,
    bearer: &str,
) -> anyhow::Result<(u16, String)> {
    let response = http()
        .get(api.url(&format!("/v1/usage{query}")))
        .bearer_auth(bearer)
        .send()
        .await?;
    Ok((response.status().as_u16(), response.text().await?))
}

#[tokio::test]
async fn usage_reports_by_hour_and_day_as_json_and_csv() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_METER_FLUSH_MS", "100")]).await?;
    let a = env.create_partner(&api, json!({"name": "alpha"})).await?;
    let b = env.create_partner(&api, json!({"name": "beta"})).await?;
    let original = env
        .upload("r.jpg", images::jpeg(64, 64), "image/jpeg")
        .await?;
    let client = http();
    for (key, n) in [(&a, 4), (&b, 2)] {
        for _ in 0..n {
            client
                .get(api.url(&format!("/originals/{original}?key={key}")))
                .send()
                .await?;
        }
    }
    tokio::time::sleep(Duration::from_millis(600)).await;

    let (status, body) = usage(&api, "?by=hour", ADMIN_KEY).await?;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<Value> = serde_json::from_str(&body)?;
    let hits = |partner: &str| -> i64 {
        rows.iter()
            .filter(|r| r["partner"] == partner && r["kind"] == "original")
            .map(|r| r["hits"].as_i64().unwrap_or(0))
            .sum()
    };
    assert_eq!((hits("alpha"), hits("beta")), (4, 2));

    // A partner sees itself only, and may not ask for another.
    let (status, body) = usage(&api, "?by=day", &a).await?;
    assert_eq!(status, 200);
    let own: Vec<Value> = serde_json::from_str(&body)?;
    assert!(!own.is_empty() && own.iter().all(|r| r["partner"] == "alpha"));
    assert_eq!(usage(&api, "?partner=beta", &a).await?.0, 403);

    let (status, csv) = usage(&api, "?partner=beta&format=csv", ADMIN_KEY).await?;
    assert_eq!(status, 200);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("partner,kind,period,hits,bytes,errors,avg_ms")
    );
    let line = lines.next().unwrap_or_default();
    assert!(
        line.starts_with("beta,original,") && line.contains(",2,"),
        "{line}"
    );

    // A range before any traffic is empty; bad input is a 400.
    let (_, empty) = usage(&api, "?from=2020-01-01&to=2020-01-02", ADMIN_KEY).await?;
    assert_eq!(empty, "[]");
    for bad in [
        "?by=week",
        "?from=yesterday",
        "?from=2026-02-01&to=2026-01-01",
        "?format=xml",
    ] {
        assert_eq!(usage(&api, bad, ADMIN_KEY).await?.0, 400, "{bad}");
    }
    assert_eq!(usage(&api, "?partner=nobody", ADMIN_KEY).await?.0, 404);
    let anonymous = client.get(api.url("/v1/usage")).send().await?;
    assert_eq!(anonymous.status(), 401);
    env.cleanup().await;
    Ok(())
}

/// Runs headless Chromium on `url` with extra flags; returns stdout.
async fn chromium(args: &[&str], url: &str) -> anyhow::Result<Vec<u8>> {
    let profile = tempfile_dir()?;
    let binary = std::env::var("KILN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                &format!("--user-data-dir={}", profile.display()),
            ])
            .args(args)
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    let _ = std::fs::remove_dir_all(&profile);
    Ok(output.stdout)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("kiln-usage-page-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[tokio::test]
async fn the_usage_page_draws_its_chart_in_chromium() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_METER_FLUSH_MS", "100")]).await?;
    let key = env.create_partner(&api, json!({"name": "charted"})).await?;
    let original = env
        .upload("c.jpg", images::jpeg(64, 64), "image/jpeg")
        .await?;
    let client = http();
    for _ in 0..6 {
        client
            .get(api.url(&format!("/originals/{original}?key={key}")))
            .send()
            .await?;
    }
    client
        .get(api.url(&format!("/originals/{}?key={key}", env.source("none.jpg"))))
        .send()
        .await?;
    tokio::time::sleep(Duration::from_millis(600)).await;

    let page = api.url(&format!("/usage?key={key}"));
    let dom = String::from_utf8(chromium(&["--dump-dom"], &page).await?)?;
    assert!(dom.contains("Usage — charted"), "{dom}");
    assert_eq!(dom.matches(r#"class="day""#).count(), 30, "one bar per day");
    let today = chrono_today();
    assert!(
        dom.contains(&format!(
            r#"data-day="{today}" data-hits="7" data-errors="1""#
        )),
        "today's bar: {dom}"
    );

    // The rendered page shows the bar in its colour (#3d6df2).
    let shot_dir = tempfile_dir()?;
    let shot = shot_dir.join("usage.png");
    chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1000,600",
        ],
        &page,
    )
    .await?;
    let png = image::open(&shot)?.to_rgb8();
    let blue = png
        .pixels()
        .filter(|p| p[0].abs_diff(0x3d) < 8 && p[1].abs_diff(0x6d) < 8 && p[2].abs_diff(0xf2) < 8)
        .count();
    assert!(blue > 200, "bar pixels: {blue}");
    let _ = std::fs::remove_dir_all(&shot_dir);

    // Without a key the page is refused; another partner's page is not shown.
    assert_eq!(client.get(api.url("/usage")).send().await?.status(), 401);
    assert_eq!(
        client
            .get(api.url(&format!("/usage?partner=other&key={key}")))
            .send()
            .await?
            .status(),
        403
    );
    env.cleanup().await;
    Ok(())
}

fn chrono_today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}
