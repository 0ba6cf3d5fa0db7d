//! Captchas from the pool and the seed's captcha-guarded download, against
//! the real services. Tests read a captcha's code the way only the server
//! could: they know the salt and try every 4-character code against the key.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::Value;

use kiln_core::captcha::{CaptchaConfig, KeyMode, DEFAULT_ALPHABET};
use kiln_e2e::{http, Process, TestEnv, CAPTCHA_SALT};

/// Four characters keep the brute force below a second; one hex digit, 16 slots.
/// Rate limits are raised: every test client is 127.0.0.1.
pub(crate) const POOL: &[(&str, &str)] = &[
    ("KILN_CAPTCHA_LENGTH", "4"),
    ("KILN_CAPTCHA_POOL_DIGITS", "1"),
    ("KILN_CAPTCHA_RATE_PER_MINUTE", "60000"),
    ("KILN_CAPTCHA_BURST", "1000"),
    ("KILN_VERIFY_RATE_PER_MINUTE", "60000"),
    ("KILN_VERIFY_BURST", "1000"),
];

fn config(mode: KeyMode) -> CaptchaConfig {
    CaptchaConfig {
        salt: CAPTCHA_SALT.as_bytes().to_vec(),
        key_mode: mode,
        length: 4,
        alphabet: DEFAULT_ALPHABET.chars().collect(),
        slot_digits: 1,
        width: 200,
        height: 70,
        issue_ttl: std::time::Duration::from_secs(300),
    }
}

/// The code behind `key` in `slot` (as served: the pool slot and its lease).
pub(crate) fn solve(mode: KeyMode, slot: &str, key: &str) -> String {
    let config = config(mode);
    let slot = slot.split('-').next().unwrap_or(slot);
    let letters = &config.alphabet;
    let n = letters.len();
    for i in 0..n.pow(4) {
        let code: String = (0..4).map(|d| letters[i / n.pow(d) % n]).collect();
        if config.matches(&code, slot, key) {
            return code;
        }
    }
    panic!("no code matches key {key} in slot {slot}");
}

async fn stack(env: &TestEnv, api: &[(&str, &str)]) -> anyhow::Result<(Process, Process)> {
    let mut api_env = POOL.to_vec();
    api_env.extend_from_slice(api);
    let mut worker_env = POOL.to_vec();
    worker_env.push(("KILN_WORKER_KINDS", "captcha"));
    worker_env.extend_from_slice(api);
    let api = env.spawn_api(&api_env).await?;
    let worker = env.spawn_worker(&worker_env).await?;
    Ok((api, worker))
}

/// `GET /captcha`, waiting for the pool's first fill.
pub(crate) async fn captcha(api: &Process) -> anyhow::Result<(String, String, String)> {
    let client = http();
    for _ in 0..100 {
        let response = client.get(api.url("/captcha")).send().await?;
        if response.status() == 503 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: Value = response.json().await?;
        let field = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
        return Ok((field("image"), field("key"), field("slot")));
    }
    anyhow::bail!("the pool never filled")
}

pub(crate) async fn verify(
    api: &Process,
    slot: &str,
    key: &str,
    code: &str,
) -> anyhow::Result<bool> {
    let body: Value = http()
        .post(api.url("/captcha/verify"))
        .json(&serde_json::json!({"slot": slot, "key": key, "code": code}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(body["ok"].as_bool().unwrap_or(false))
}

/// Slots holding a captcha: ready, or issued to a client (an api leases a
/// few ahead of its requests).
async fn ready_slots(env: &TestEnv) -> anyhow::Result<i64> {
    use sqlx::Row as _;
    let mut db = env.db().await?;
    let row =
        sqlx::query("SELECT count(*) AS n FROM captcha_slots WHERE state IN ('ready', 'issued')")
            .fetch_one(&mut db)
            .await?;
    Ok(row.try_get("n")?)
}

/// Slots holding a captcha once the workers have refilled the pool (all
/// 16), or as many as there are after 10 s.
pub(crate) async fn ready_slots_after_refill(env: &TestEnv) -> anyhow::Result<i64> {
    let mut ready = 0;
    for _ in 0..100 {
        ready = ready_slots(env).await?;
        if ready == 16 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(ready)
}

/// Takes a captcha from the first api and answers it right `n` times at
/// once, alternating between both apis; how many answers passed.
pub(crate) async fn concurrent_right_answers(
    apis: [&Process; 2],
    n: usize,
) -> anyhow::Result<usize> {
    let (_, key, slot) = captcha(apis[0]).await?;
    let code = solve(KeyMode::Hmac, &slot, &key);
    let answers = (0..n).map(|i| verify(apis[i % 2], &slot, &key, &code));
    Ok(join_all(answers)
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<bool>>>()?
        .into_iter()
        .filter(|ok| *ok)
        .count())
}

#[tokio::test]
async fn the_seeds_download_flow_works_once() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let (api, _worker) = stack(&env, &[]).await?;
    let client = http();
    let filename = format!("report-{}.pdf", env.id);
    let body = format!("the report for {}", env.id).into_bytes();
    env.storage
        .put_original(
            &format!("files/{filename}"),
            body.clone().into(),
            "application/pdf",
        )
        .await?;

    let (image, key, slot) = captcha(&api).await?;
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        image
            .strip_prefix("data:image/png;base64,")
            .unwrap_or_default(),
    )?;
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() < 8 * 1024, "a few KB: {}", png.len());
    let code = solve(KeyMode::Hmac, &slot, &key);

    // Typed in lower case with spaces: still the code.
    let typed = format!("%20{}%20", code.to_lowercase());
    let url = format!("/download?filename={filename}&key={key}&code={typed}&slot={slot}");
    let response = client.get(api.url(&url)).send().await?;
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str()?.to_owned();
    let file = client.get(location).send().await?.error_for_status()?;
    let disposition = file.headers()["content-disposition"].to_str()?.to_owned();
    assert!(
        disposition.starts_with(&format!("attachment; filename=\"{filename}\"")),
        "{disposition}"
    );
    assert_eq!(file.bytes().await?.to_vec(), body);

    // The same captcha again: refused, with a plain message.
    let replay = client.get(api.url(&url)).send().await?;
    assert_eq!(replay.status(), 403);
    assert_eq!(replay.text().await?, "captcha check failed\n");
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn a_wrong_code_burns_the_slot_and_bad_requests_are_refused_first() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let (api, _worker) = stack(&env, &[]).await?;
    let client = http();

    let (_, key, slot) = captcha(&api).await?;
    let code = solve(KeyMode::Hmac, &slot, &key);
    let wrong = if code.starts_with('A') {
        "EEEE"
    } else {
        "AAAA"
    };
    assert!(!verify(&api, &slot, &key, wrong).await?);
    assert!(
        !verify(&api, &slot, &key, &code).await?,
        "one attempt per captcha: the right code comes too late"
    );

    // Path tricks and missing files are refused before a captcha is spent.
    let (_, key, slot) = captcha(&api).await?;
    let code = solve(KeyMode::Hmac, &slot, &key);
    for (filename, status) in [
        ("..%2F..%2Fetc%2Fpasswd", 400),
        ("a%2Fb.pdf", 400),
        (".env", 400),
        ("missing-file.pdf", 404),
    ] {
        let url = format!("/download?filename={filename}&key={key}&code={code}&slot={slot}");
        let response = client.get(api.url(&url)).send().await?;
        assert_eq!(response.status().as_u16(), status, "{filename}");
    }
    assert!(verify(&api, &slot, &key, &code).await?, "still unspent");
    let missing = client
        .get(api.url("/download?filename=x.pdf"))
        .send()
        .await?;
    assert_eq!(missing.status(), 400);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn concurrent_answers_to_one_captcha_pass_once_and_the_pool_refills() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let (api_a, _worker) = stack(&env, &[]).await?;
    let api_b = env.spawn_api(POOL).await?;
    let passed = concurrent_right_answers([&api_a, &api_b], 20).await?;
    assert_eq!(passed, 1, "exactly one of 20 concurrent answers passes");

    // Consume half the pool; the workers fill it again.
    for _ in 0..8 {
        let (_, key, slot) = captcha(&api_b).await?;
        verify(&api_b, &slot, &key, "XXXX").await?;
    }
    assert_eq!(
        ready_slots_after_refill(&env).await?,
        16,
        "every slot holds a captcha again"
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn an_empty_pool_and_a_fast_client_are_told_to_retry() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let client = http();
    // No worker: nothing was ever generated.
    let api = env
        .spawn_api(&[
            ("KILN_CAPTCHA_RATE_PER_MINUTE", "1"),
            ("KILN_CAPTCHA_BURST", "2"),
        ])
        .await?;
    for _ in 0..2 {
        let response = client.get(api.url("/captcha")).send().await?;
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
    }
    let limited = client.get(api.url("/captcha/fragment")).send().await?;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"].to_str()?.parse()?;
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        api.metric(&client, "kiln_captcha_pool_exhausted_total", &[])
            .await?,
        2.0
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn the_fragment_and_the_seeds_md5_keys() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let (api, _worker) = stack(&env, &[("KILN_CAPTCHA_KEY_MODE", "md5")]).await?;
    let (_, key, slot) = captcha(&api).await?;
    assert_eq!(key.len(), 22, "base64url(md5) without padding");
    let code = solve(KeyMode::Md5Compat, &slot, &key);
    assert!(verify(&api, &slot, &key, &code).await?);

    let html = http()
        .get(api.url("/captcha/fragment"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        html.starts_with("<img src=\"data:image/png;base64,"),
        "{html}"
    );
    assert!(html.contains("<input type=\"hidden\" name=\"key\" value=\""));
    assert!(html.contains("<input type=\"hidden\" name=\"slot\" value=\""));
    env.cleanup().await;
    Ok(())
}
