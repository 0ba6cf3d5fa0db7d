//! Whose budget a request spends: behind a trusted proxy, the client the
//! proxy saw (right-most untrusted `X-Forwarded-For` hop), IPv6 clients by
//! their /64; from anyone else, the TCP peer, whatever it claims. nginx's
//! `$remote_addr` is the same address.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use md5::{Digest as _, Md5};

use kiln_e2e::{http, Process, TestEnv};

/// `GET /captcha` claiming to be forwarded for `xff`.
async fn captcha_as(api: &Process, xff: &str) -> anyhow::Result<u16> {
    Ok(http()
        .get(api.url("/captcha"))
        .header("x-forwarded-for", xff)
        .send()
        .await?
        .status()
        .as_u16())
}

/// Two captchas a client, then 429 (no worker: the pool is empty, so an
/// admitted request answers 503).
const TWO_A_CLIENT: &[(&str, &str)] = &[
    ("KILN_CAPTCHA_RATE_PER_MINUTE", "1"),
    ("KILN_CAPTCHA_BURST", "2"),
];

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_budget() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let mut settings = TWO_A_CLIENT.to_vec();
    settings.push(("KILN_TRUSTED_PROXIES", "127.0.0.1/32"));
    let api = env.spawn_api(&settings).await?;
    for _ in 0..2 {
        assert_eq!(captcha_as(&api, "198.51.100.1").await?, 503);
    }
    assert_eq!(captcha_as(&api, "198.51.100.1").await?, 429);
    assert_eq!(
        captcha_as(&api, "198.51.100.2").await?,
        503,
        "another client"
    );
    // What the client wrote itself, at the left, changes nothing.
    assert_eq!(captcha_as(&api, "203.0.113.50, 198.51.100.1").await?, 429);
    // IPv6: one subscriber's /64 is one client.
    assert_eq!(captcha_as(&api, "2001:db8:1:2::1").await?, 503);
    assert_eq!(captcha_as(&api, "2001:db8:1:2::2").await?, 503);
    assert_eq!(captcha_as(&api, "2001:db8:1:2:ffff::9").await?, 429);
    assert_eq!(
        captcha_as(&api, "2001:db8:1:3::1").await?,
        503,
        "another /64"
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn forwarding_headers_from_anyone_else_are_ignored() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(TWO_A_CLIENT).await?;
    assert_eq!(captcha_as(&api, "198.51.100.1").await?, 503);
    assert_eq!(captcha_as(&api, "198.51.100.2").await?, 503);
    assert_eq!(
        captcha_as(&api, "198.51.100.3").await?,
        429,
        "a spoofed header does not buy a new budget"
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn nginx_remote_addr_is_the_forwarded_client() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env
        .spawn_api(&[
            ("KILN_TRUSTED_PROXIES", "127.0.0.1"),
            (
                "KILN_NGINX_SECURE_LINK_MD5",
                "$remote_addr$uri e2e-nginx-secret",
            ),
        ])
        .await?;
    let uri = format!("/resize/100x100/{}", env.source("missing.jpg"));
    let hash = URL_SAFE_NO_PAD.encode(Md5::digest(
        format!("198.51.100.9{uri} e2e-nginx-secret").as_bytes(),
    ));
    let client = http();
    let get = |xff: &'static str| {
        client
            .get(api.url(&format!("{uri}?hash={hash}")))
            .header("x-forwarded-for", xff)
            .send()
    };
    // The link is the forwarded client's: accepted (the source is missing).
    assert_eq!(get("198.51.100.9").await?.status(), 404);
    assert_eq!(get("198.51.100.10").await?.status(), 403);
    env.cleanup().await;
    Ok(())
}
