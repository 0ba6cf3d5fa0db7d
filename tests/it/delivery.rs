//! Misses render and redirect; hits redirect without rendering again; proxy
//! mode streams with validators.

use kiln_e2e::{follow_redirect, http, images, TestEnv};

#[tokio::test]
async fn miss_renders_then_redirects_to_an_image_of_the_right_size_and_format() -> anyhow::Result<()>
{
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("photo.jpg", images::jpeg(1200, 800), "image/jpeg")
        .await?;
    let client = http();

    let first = client
        .get(api.url(&env.signed_path("300x300,f:png", &source)))
        .send()
        .await?;
    assert_eq!(first.status(), 302, "{:?}", first.text().await);
    let location = first.headers()["location"].to_str()?.to_owned();
    let rendered = client.get(&location).send().await?;
    assert_eq!(rendered.status(), 200);
    assert_eq!(rendered.headers()["content-type"], "image/png");
    assert_eq!(
        rendered.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let (format, w, h) = images::inspect(&rendered.bytes().await?);
    assert_eq!((format, w, h), (image::ImageFormat::Png, 300, 200));

    // Default format follows the source; fill gives exactly the box.
    let filled = client
        .get(api.url(&env.signed_path("200x100,fill", &source)))
        .send()
        .await?;
    assert_eq!(
        follow_redirect(&client, filled).await?,
        (image::ImageFormat::Jpeg, 200, 100)
    );

    // A crop in source pixels, then a resize.
    let cropped = client
        .get(api.url(&env.signed_path("crop:100:100:400:400,200x200,f:webp", &source)))
        .send()
        .await?;
    assert_eq!(
        follow_redirect(&client, cropped).await?,
        (image::ImageFormat::WebP, 200, 200)
    );

    // The repeat is a hit: same object, no new render. The worker counts a
    // job once its handler returns, just after it told the api the
    // rendition is ready, so the count of the three renders above may
    // trail their 302s: wait for it before the hit.
    let renders_before = worker
        .metric_reaching(
            &client,
            "kiln_jobs_total",
            &["outcome=\"ok\""],
            3.0,
            std::time::Duration::from_secs(5),
        )
        .await?;
    let again = client
        .get(api.url(&env.signed_path("300x300,f:png", &source)))
        .send()
        .await?;
    assert_eq!(again.status(), 302);
    assert_eq!(again.headers()["location"], location.as_str());
    let renders_after = worker
        .metric(&client, "kiln_jobs_total", &["outcome=\"ok\""])
        .await?;
    assert_eq!(renders_before, renders_after);
    assert_eq!(renders_after, 3.0);
    assert!(api.metric(&client, "kiln_cache_hits_total", &[]).await? >= 1.0);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn equivalent_option_lists_share_one_cached_object() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let _worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("a.png", images::png_with_alpha(400, 300), "image/png")
        .await?;
    let client = http();
    let mut locations = Vec::new();
    for options in [
        "160x160,f:webp",
        "f:webp,160x160",
        "fit,f:webp,160x160,q:80",
    ] {
        let response = client
            .get(api.url(&env.signed_path(options, &source)))
            .send()
            .await?;
        assert_eq!(response.status(), 302, "{options}");
        let location = response.headers()["location"].to_str()?.to_owned();
        locations.push(location.split('?').next().unwrap_or_default().to_owned());
    }
    // q:80 is the default, but it is written explicitly, so it is its own canonical form;
    // the first two are the same list in another order.
    assert_eq!(locations[0], locations[1]);
    assert_eq!(env.cache_objects().await?.len(), 2);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn proxy_mode_streams_with_etag_and_answers_304() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[("KILN_DELIVERY", "proxy")]).await?;
    let _worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("p.jpg", images::jpeg(640, 480), "image/jpeg")
        .await?;
    let client = http();
    let url = api.url(&env.signed_path("320x320", &source));

    let response = client.get(&url).send().await?;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let etag = headers["etag"].to_str()?.to_owned();
    let length: usize = headers["content-length"].to_str()?.parse()?;
    let body = response.bytes().await?;
    assert_eq!(body.len(), length);
    assert_eq!(images::inspect(&body), (image::ImageFormat::Jpeg, 320, 240));

    let revalidated = client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await?;
    assert_eq!(revalidated.status(), 304);
    assert_eq!(revalidated.headers()["etag"], etag.as_str());
    assert!(revalidated.bytes().await?.is_empty());
    let other = client
        .get(&url)
        .header("if-none-match", "\"something-else\"")
        .send()
        .await?;
    assert_eq!(other.status(), 200);
    env.cleanup().await;
    Ok(())
}
