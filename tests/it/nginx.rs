//! The nginx-compatible routes (seed 000) with the operator's own expression.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use md5::{Digest, Md5};

use kiln_e2e::{follow_redirect, http, images, TestEnv};

/// What nginx's `secure_link_md5` computes, written independently of Kiln's code.
fn nginx_hash(expanded: &str) -> String {
    URL_SAFE_NO_PAD.encode(Md5::digest(expanded.as_bytes()))
}

#[tokio::test]
async fn seed_urls_resize_and_crop_with_a_uri_secret_hash() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?; // expression "$uri e2e-nginx-secret"
    let _worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("polyconf.jpg", images::jpeg(1000, 500), "image/jpeg")
        .await?;
    let client = http();

    for (uri, expected) in [
        (format!("/resize/100x100/{source}"), (100, 50)),
        (format!("/resize/300/{source}"), (300, 150)),
        (format!("/crop/100x100/{source}"), (100, 100)),
    ] {
        let hash = nginx_hash(&format!("{uri} e2e-nginx-secret"));
        let response = client
            .get(api.url(&format!("{uri}?hash={hash}")))
            .send()
            .await?;
        assert_eq!(
            follow_redirect(&client, response).await?,
            (image::ImageFormat::Jpeg, expected.0, expected.1),
            "{uri}"
        );
    }

    let uri = format!("/resize/100x100/{source}");
    let wrong = nginx_hash(&format!("{uri} another-secret"));
    let response = client
        .get(api.url(&format!("{uri}?hash={wrong}")))
        .send()
        .await?;
    assert_eq!(response.status(), 403);
    let response = client.get(api.url(&uri)).send().await?;
    assert_eq!(response.status(), 403, "a missing hash is a bad hash");
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn expiring_links_and_a_configurable_bad_hash_status() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let expression = "$secure_link_expires$uri$remote_addr e2e";
    let api = env
        .spawn_api(&[
            ("KILN_NGINX_SECURE_LINK_MD5", expression),
            ("KILN_NGINX_BAD_HASH_STATUS", "404"),
        ])
        .await?;
    let _worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("e.jpg", images::jpeg(200, 200), "image/jpeg")
        .await?;
    let client = http();
    let uri = format!("/resize/50x50/{source}");

    let future = 4_000_000_000u64;
    let hash = nginx_hash(&format!("{future}{uri}127.0.0.1 e2e"));
    let ok = client
        .get(api.url(&format!("{uri}?hash={hash}&expires={future}")))
        .send()
        .await?;
    assert_eq!(ok.status(), 302);

    let past = 1_000_000_000u64;
    let hash = nginx_hash(&format!("{past}{uri}127.0.0.1 e2e"));
    let expired = client
        .get(api.url(&format!("{uri}?hash={hash}&expires={past}")))
        .send()
        .await?;
    assert_eq!(expired.status(), 410);

    // Without expires the link cannot be valid; bad hashes answer the configured 404.
    let hash = nginx_hash(&format!("{uri}127.0.0.1 e2e"));
    let missing = client
        .get(api.url(&format!("{uri}?hash={hash}")))
        .send()
        .await?;
    assert_eq!(missing.status(), 404);
    let other_ip = nginx_hash(&format!("{future}{uri}10.0.0.1 e2e"));
    let wrong = client
        .get(api.url(&format!("{uri}?hash={other_ip}&expires={future}")))
        .send()
        .await?;
    assert_eq!(wrong.status(), 404);
    env.cleanup().await;
    Ok(())
}
