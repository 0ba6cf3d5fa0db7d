//! `HEAD` spends nothing: link checkers and chat unfurlers that probe a
//! one-use link, a captcha-guarded download or the captcha route leave
//! them for the person they were meant for.

use kiln_core::captcha::KeyMode;
use kiln_e2e::{http, TestEnv};
use serde_json::json;

use crate::captcha::{captcha, solve, POOL};
use crate::links::{create, path_of, upload};

#[tokio::test]
async fn probing_a_one_use_link_leaves_its_use() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let (key, _) = upload(&env, "invite.pdf").await?;
    let (status, link) = create(&api, json!({"object": key, "uses": 1})).await?;
    assert_eq!(status, 201, "{link}");
    let url = api.url(&path_of(&link));
    let client = http();
    for _ in 0..3 {
        let probe = client.head(&url).send().await?;
        assert_eq!(probe.status(), 200);
        assert!(
            probe.headers().get("location").is_none(),
            "no URL handed out"
        );
    }
    assert_eq!(
        client.get(&url).send().await?.status(),
        302,
        "the use was left"
    );
    assert_eq!(client.get(&url).send().await?.status(), 410);
    assert_eq!(client.head(&url).send().await?.status(), 410);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn probing_a_captcha_download_spends_no_captcha() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(POOL).await?;
    let mut worker_settings = POOL.to_vec();
    worker_settings.push(("KILN_WORKER_KINDS", "captcha"));
    let _worker = env.spawn_worker(&worker_settings).await?;
    let filename = format!("guide-{}.pdf", env.id);
    env.storage
        .put_original(
            &format!("files/{filename}"),
            b"guide".to_vec().into(),
            "application/pdf",
        )
        .await?;
    let (_, key, slot) = captcha(&api).await?;
    let code = solve(KeyMode::Hmac, &slot, &key);
    let url = api.url(&format!(
        "/download?filename={filename}&key={key}&code={code}&slot={slot}"
    ));
    let client = http();
    for _ in 0..3 {
        assert_eq!(client.head(&url).send().await?.status(), 200);
    }
    let missing = api.url("/download?filename=nothing-here.pdf");
    assert_eq!(client.head(&missing).send().await?.status(), 404);
    assert_eq!(
        client.get(&url).send().await?.status(),
        302,
        "the captcha was left"
    );
    assert_eq!(
        client.get(&url).send().await?.status(),
        403,
        "and spent once"
    );
    env.cleanup().await;
    Ok(())
}
