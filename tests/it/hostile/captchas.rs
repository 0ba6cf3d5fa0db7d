//! Captchas are issued to one client at a time: nobody else is shown one
//! while it can be answered, nobody else's answer can burn it, and one left
//! unanswered goes back to the pool when its lease expires. HEAD takes none.

use std::time::Duration;

use kiln_core::captcha::KeyMode;
use kiln_e2e::{http, TestEnv};

use crate::captcha::{captcha, solve, verify, POOL};

async fn issued(env: &TestEnv) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM captcha_slots WHERE state = 'issued'")
            .fetch_one(&mut env.db().await?)
            .await?,
    )
}

#[tokio::test]
async fn each_captcha_is_issued_to_one_client_only() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let mut settings = POOL.to_vec();
    settings.push(("KILN_CAPTCHA_ISSUE_TTL_SECS", "10"));
    let api = env.spawn_api(&settings).await?;
    let mut worker_settings = settings.clone();
    worker_settings.push(("KILN_WORKER_KINDS", "captcha"));
    let _worker = env.spawn_worker(&worker_settings).await?;

    // HEAD, as a link checker sends it, leases nothing.
    let (_, first_key, first_slot) = captcha(&api).await?;
    let before = issued(&env).await?;
    for _ in 0..5 {
        assert_eq!(http().head(api.url("/captcha")).send().await?.status(), 200);
    }
    assert_eq!(issued(&env).await?, before);

    // The pool's other 15 captchas, at once: 16 different slots in all, and
    // none left to show a 17th client while they can be answered.
    let rest = futures_util::future::join_all((0..15).map(|_| captcha(&api))).await;
    let mut slots: Vec<String> = rest
        .into_iter()
        .map(|r| r.map(|(_, _, slot)| slot))
        .collect::<anyhow::Result<_>>()?;
    slots.push(first_slot.clone());
    let mut pool_slots: Vec<&str> = slots.iter().map(|s| &s[..1]).collect();
    pool_slots.sort_unstable();
    pool_slots.dedup();
    assert_eq!(pool_slots.len(), 16, "no captcha shown to two clients");
    assert_eq!(
        http().get(api.url("/captcha")).send().await?.status(),
        503,
        "every captcha is out"
    );

    // Someone who learnt the first captcha's key (but not its lease) cannot
    // burn it for the client it was issued to.
    let code = solve(KeyMode::Hmac, &first_slot, &first_key);
    let forged_lease = format!("{}-{}", &first_slot[..1], "0".repeat(32));
    assert!(!verify(&api, &forged_lease, &first_key, "XXXX").await?);
    assert!(
        verify(&api, &first_slot, &first_key, &code).await?,
        "still its client's"
    );

    // Unanswered past the lease: back in the pool, and the old lease
    // answers nothing.
    let (_, stale_key, stale_slot) = captcha(&api).await?; // the refilled slot
    tokio::time::sleep(Duration::from_secs(13)).await;
    let stale_code = solve(KeyMode::Hmac, &stale_slot, &stale_key);
    assert!(!verify(&api, &stale_slot, &stale_key, &stale_code).await?);
    assert_eq!(issued(&env).await?, 0, "expired leases were returned");
    env.cleanup().await;
    Ok(())
}
