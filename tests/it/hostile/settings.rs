//! Settings an operator could get dangerously wrong, and what a URL's
//! expiry and a card's signature may mean: placeholder secrets are refused
//! at start-up, card signatures cannot stand in for image ones (or old ones
//! for new, unless a transition is asked for), `exp:` bounds how long an
//! answer is reused, `/metrics` can live on a listener of its own and
//! `/readyz` is cheap however often it is asked.

use kiln_core::signing::SigningConfig;
use kiln_e2e::{http, images, status_once_ready, TestEnv, SIGNING_KEY};

#[tokio::test]
async fn placeholder_and_short_secrets_are_refused_at_start_up() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    for (name, value, says) in [
        (
            "KILN_SIGNING_KEYS",
            "CHANGE-ME-at-least-16-bytes",
            "placeholder",
        ),
        (
            "KILN_ADMIN_KEYS",
            "CHANGE-ME-at-least-16-chars",
            "placeholder",
        ),
        (
            "KILN_ADMIN_KEYS",
            "only-twenty-bytes-xx",
            "at least 32 bytes",
        ),
        (
            "KILN_CAPTCHA_SALT",
            "changeme-changeme-changeme-changeme",
            "placeholder",
        ),
        ("KILN_SIGNING_KEYS", "0123456789abcdef", "at least 32 bytes"),
    ] {
        let out = env.run_to_exit("kiln-api", &[(name, value)]).await?;
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}={value}: {log}");
        assert!(log.contains(name) && log.contains(says), "{name}: {log}");
    }
    let out = env
        .run_to_exit(
            "kiln-worker",
            &[
                ("KILN_WORKER_KINDS", "captcha"),
                ("KILN_CAPTCHA_SALT", "CHANGE-ME"),
            ],
        )
        .await?;
    assert_eq!(out.status.code(), Some(2));
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn card_signatures_of_the_old_form_only_during_a_transition() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let card = "stats/1-2-3.png?unused=1";
    let signing = SigningConfig {
        keys: vec![SIGNING_KEY.as_bytes().to_vec()],
        signature_len: kiln_core::signing::FULL_SIGNATURE_LEN,
        allow_unsafe: false,
    };
    let legacy = format!("/card/{}/{card}", signing.sign(card).unwrap_or_default());
    let strict = env.spawn_api(&[("KILN_MISS_WAIT_MS", "100")]).await?;
    let client = http();
    assert_eq!(client.get(strict.url(&legacy)).send().await?.status(), 403);
    let current = env.signed_card(card);
    assert_eq!(client.get(strict.url(&current)).send().await?.status(), 200);
    let transition = env
        .spawn_api(&[
            ("KILN_MISS_WAIT_MS", "100"),
            ("KILN_LEGACY_CARD_SIGNATURES", "true"),
        ])
        .await?;
    assert_eq!(
        client.get(transition.url(&legacy)).send().await?.status(),
        200
    );
    env.cleanup().await;
    Ok(())
}

/// `max-age=N` of a `Cache-Control` value.
fn max_age(value: &str) -> u64 {
    value
        .split(',')
        .find_map(|p| p.trim().strip_prefix("max-age="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

#[tokio::test]
async fn an_expiring_url_bounds_how_long_its_answer_is_reused() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let _worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("e.jpg", images::jpeg(64, 64), "image/jpeg")
        .await?;
    let client = http();
    let plain = api.url(&env.signed_path("32x32", &source));
    assert_eq!(status_once_ready(&client, &plain).await?, 302);
    let exp = chrono::Utc::now().timestamp() + 30;
    // The same rendition (exp is not part of the key), now a hit.
    let expiring = api.url(&env.signed_path(&format!("32x32,exp:{exp}"), &source));
    for (url, longest) in [(&plain, 3600), (&expiring, 30)] {
        let response = client.get(url).send().await?;
        assert_eq!(response.status(), 302);
        let cache = max_age(response.headers()["cache-control"].to_str()?);
        assert!(cache <= longest, "max-age {cache} for {url}");
        let location = response.headers()["location"].to_str()?.to_owned();
        let presigned: u64 = location
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("X-Amz-Expires="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX);
        assert!(presigned <= longest, "presigned for {presigned} s: {url}");
        if longest == 3600 {
            assert!(cache > 60, "an ordinary hit stays cacheable");
        }
    }
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn metrics_on_their_own_listener_and_readiness_checked_once_a_second() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env
        .spawn_api(&[("KILN_METRICS_LISTEN", "127.0.0.1:0")])
        .await?;
    let client = http();
    assert_eq!(client.get(api.url("/metrics")).send().await?.status(), 404);
    let metrics_url = api
        .log
        .lock()
        .map_err(|_| anyhow::anyhow!("log"))?
        .iter()
        .find_map(|l| l.strip_prefix("kiln-api metrics on ").map(str::to_owned))
        .ok_or_else(|| anyhow::anyhow!("no metrics listener announced"))?;
    let text = client
        .get(format!("{metrics_url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(text.contains("kiln_http_requests_total"), "{text}");

    let before = env.transactions().await?;
    let probes = (0..200).map(|_| client.get(api.url("/readyz")).send());
    for response in futures_util::future::join_all(probes).await {
        assert_eq!(response?.status(), 200);
    }
    let after = env.transactions().await?;
    eprintln!("{} transactions for 200 readiness probes", after - before);
    // One check a second (plus the bulk feeder's rounds), not 200.
    assert!(after - before < 40, "{} transactions", after - before);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn the_env_file_is_read_from_the_working_directory_only() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let root = std::env::temp_dir().join(format!("kiln-envfile-{:08x}", rand::random::<u32>()));
    let child = root.join("child");
    std::fs::create_dir_all(root.join(".kiln"))?;
    std::fs::create_dir_all(&child)?;
    let file = root.join(".kiln/local.env");
    std::fs::write(&file, format!("KILN_SIGNING_KEYS={SIGNING_KEY}\n"))?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    let sign = |dir: &std::path::Path| {
        std::process::Command::new(kiln_e2e::binary("kiln"))
            .args(["sign", "10x10", "a.jpg"])
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
    };
    let here = sign(&root)?;
    assert!(
        here.status.success(),
        "{}",
        String::from_utf8_lossy(&here.stderr)
    );
    // A .kiln/ further up the tree is not looked for.
    let below = sign(&child)?;
    assert!(!below.status.success());
    assert!(String::from_utf8_lossy(&below.stderr).contains("KILN_SIGNING_KEYS is required"));
    // One that others may write is refused.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))?;
    let shared = sign(&root)?;
    assert!(!shared.status.success());
    assert!(String::from_utf8_lossy(&shared.stderr).contains("writable by group or others"));
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
