//! Image options through the whole farm: `f:auto` negotiated from `Accept`
//! (with `Vary: Accept`, one cached object per negotiated format), and the
//! newer geometry options rendered by a real worker.

use kiln_e2e::{follow_redirect, http, images, TestEnv};

const CHROME_ACCEPT: &str = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";

/// Fetches `url` with `accept`, expects a 302 with `Vary: Accept`, and returns
/// the rendered object's bytes and content type.
async fn negotiate(
    client: &reqwest::Client,
    url: &str,
    accept: &str,
) -> anyhow::Result<(Vec<u8>, String)> {
    let response = client.get(url).header("accept", accept).send().await?;
    assert_eq!(
        response.status(),
        302,
        "{accept}: {:?}",
        response.text().await
    );
    let vary = response
        .headers()
        .get("vary")
        .map(|v| v.to_str().unwrap_or(""));
    assert_eq!(vary, Some("Accept"), "{accept}");
    let location = response.headers()["location"].to_str()?.to_owned();
    let object = client.get(location).send().await?.error_for_status()?;
    let content_type = object.headers()["content-type"].to_str()?.to_owned();
    Ok((object.bytes().await?.to_vec(), content_type))
}

#[tokio::test]
async fn auto_format_follows_accept_and_caches_each_choice_apart() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("auto.jpg", images::jpeg(800, 600), "image/jpeg")
        .await?;
    let client = http();
    let url = api.url(&env.signed_path("200x200,f:auto", &source));

    let (avif, content_type) = negotiate(&client, &url, CHROME_ACCEPT).await?;
    assert_eq!(content_type, "image/avif");
    assert_eq!(&avif[4..12], b"ftypavif");

    let (webp, content_type) = negotiate(&client, &url, "image/webp,*/*").await?;
    assert_eq!(content_type, "image/webp");
    assert_eq!(images::inspect(&webp), (image::ImageFormat::WebP, 200, 150));

    // A client that names neither gets JPEG (the source has no alpha).
    let (jpeg, content_type) = negotiate(&client, &url, "*/*").await?;
    assert_eq!(content_type, "image/jpeg");
    assert_eq!(images::inspect(&jpeg).0, image::ImageFormat::Jpeg);
    let (no_header, _) = negotiate(&client, &url, "").await?;
    assert_eq!(no_header, jpeg, "no Accept is the same choice as */*");

    // Asking again in AVIF reuses the cached object: three formats, three objects.
    negotiate(&client, &url, CHROME_ACCEPT).await?;
    assert_eq!(env.cache_objects().await?.len(), 3);

    // A fixed format does not vary.
    let fixed = client
        .get(api.url(&env.signed_path("200x200,f:webp", &source)))
        .header("accept", CHROME_ACCEPT)
        .send()
        .await?;
    assert!(fixed.headers().get("vary").is_none());
    assert_eq!(
        follow_redirect(&client, fixed).await?,
        (image::ImageFormat::WebP, 200, 150)
    );

    drop(worker);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn geometry_options_render_through_the_worker() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("geometry.jpg", images::jpeg(1200, 800), "image/jpeg")
        .await?;
    let client = http();
    for (options, expected) in [
        ("300x300,pad,bg:102030", (300, 300)),
        ("300x100,force", (300, 100)),
        ("300x300,fill,g:ne", (300, 300)),
        ("300x300,fill,smart", (300, 300)),
        ("300x300,fill,fp:0.2:0.8", (300, 300)),
        ("300x300,dpr:2", (600, 400)),
        ("300x300,r:90,flip:h", (200, 300)),
        ("300x300,blur:2,sharpen:1", (300, 200)),
        ("2000x2000,up", (2000, 1333)),
    ] {
        let response = client
            .get(api.url(&env.signed_path(options, &source)))
            .send()
            .await?;
        let (format, width, height) = follow_redirect(&client, response).await?;
        assert_eq!(format, image::ImageFormat::Jpeg, "{options}");
        assert_eq!((width, height), expected, "{options}");
    }
    drop(worker);
    env.cleanup().await;
    Ok(())
}
