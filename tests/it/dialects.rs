//! thumbor/imagor and imgproxy URLs, written by those projects' own client
//! libraries (libthumbor, @imgproxy/imgproxy-node), against a running farm:
//! what each renders, what each refuses, and that one rendition asked for
//! natively and in both dialects is one object and one render.

use image::{DynamicImage, GenericImageView as _, ImageFormat};
use serde_json::json;

use anyhow::Context as _;
use kiln_e2e::peers::{imgproxy_node_urls, libthumbor_urls};

use kiln_e2e::{http, images, redirected_bytes, Process, TestEnv};

const THUMBOR_KEY: &str = "e2e-thumbor-key";
/// imgproxy keys and salts are hex: "e2e-imgproxy-key" and "e2e-salt".
const IMGPROXY_KEY: &str = "6532652d696d6770726f78792d6b6579";
const IMGPROXY_SALT: &str = "6532652d73616c74";

fn dialect_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("KILN_THUMBOR_KEY", THUMBOR_KEY),
        ("KILN_IMGPROXY_KEY", IMGPROXY_KEY),
        ("KILN_IMGPROXY_SALT", IMGPROXY_SALT),
    ]
}

/// GETs `path`, follows the 302 to S3 and decodes what is there.
async fn render(api: &Process, path: &str) -> anyhow::Result<(ImageFormat, DynamicImage)> {
    let client = http();
    let response = client.get(api.url(path)).send().await?;
    let body = redirected_bytes(&client, response)
        .await
        .with_context(|| path.to_owned())?;
    Ok((image::guess_format(&body)?, image::load_from_memory(&body)?))
}

/// The cached object `path` redirects to (its presigned query left off).
async fn object_of(api: &Process, path: &str) -> anyhow::Result<String> {
    let response = http().get(api.url(path)).send().await?;
    anyhow::ensure!(response.status() == 302, "{path}: {}", response.status());
    let location = response.headers()["location"].to_str()?;
    Ok(location.split('?').next().unwrap_or_default().to_owned())
}

async fn status_and_body(api: &Process, path: &str) -> anyhow::Result<(u16, String)> {
    let response = http().get(api.url(path)).send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

#[tokio::test]
async fn thumbor_urls_from_libthumbor_render_as_thumbor_does() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&dialect_env()).await?;
    let _worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("wide.jpg", images::jpeg(800, 400), "image/jpeg")
        .await?;
    let cases = [
        // (libthumbor options, format, width, height)
        (
            json!({"width": 300, "height": 200}),
            ImageFormat::Jpeg,
            300,
            200,
        ),
        (
            json!({"width": 300, "height": 300, "fit_in": true}),
            ImageFormat::Jpeg,
            300,
            150,
        ),
        // A single side enlarges, as thumbor does.
        (json!({"width": 1600}), ImageFormat::Jpeg, 1600, 800),
        (
            json!({"width": 200, "height": 200, "fit_in": true,
                   "filters": ["format(webp)", "quality(70)"]}),
            ImageFormat::WebP,
            200,
            100,
        ),
        (
            json!({"width": 100, "height": 100, "flip": true, "smart": true}),
            ImageFormat::Jpeg,
            100,
            100,
        ),
        // Cropped to 300×100, then turned a quarter counter-clockwise.
        (
            json!({"width": 300, "height": 100, "halign": "left", "filters": ["rotate(90)"]}),
            ImageFormat::Jpeg,
            100,
            300,
        ),
        (
            json!({"crop": [[100, 0], [500, 400]], "width": 200, "height": 200}),
            ImageFormat::Jpeg,
            200,
            200,
        ),
    ];
    let specs: Vec<_> = cases
        .iter()
        .map(|(options, ..)| {
            let mut options = options.clone();
            options["image_url"] = json!(source);
            options
        })
        .collect();
    let urls = libthumbor_urls(THUMBOR_KEY, &specs)?;
    for (url, (options, format, width, height)) in urls.iter().zip(&cases) {
        let (got, image) = render(&api, &format!("/t{url}")).await?;
        assert_eq!(
            (got, image.width(), image.height()),
            (*format, *width, *height),
            "{options} {url}"
        );
    }

    // fill(colour) letterboxes a fit-in image; grayscale() keeps no colour.
    let urls = libthumbor_urls(
        THUMBOR_KEY,
        &[
            json!({"width": 400, "height": 400, "fit_in": true,
                   "filters": ["fill(ff0000)", "format(png)"], "image_url": source}),
            json!({"width": 200, "height": 100, "filters": ["grayscale()", "format(png)"],
                   "image_url": source}),
        ],
    )?;
    let (_, letterboxed) = render(&api, &format!("/t{}", urls[0])).await?;
    assert_eq!(letterboxed.dimensions(), (400, 400));
    let top = letterboxed.get_pixel(200, 10);
    assert_eq!(
        &top.0[..3],
        &[255, 0, 0],
        "the bar above the image is the fill colour"
    );
    let (_, gray) = render(&api, &format!("/t{}", urls[1])).await?;
    let rgb = gray.to_rgb8();
    assert!(
        rgb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]),
        "grayscale()"
    );

    // Refusals: a forged signature, unsafe/ while it is off, a filter Kiln
    // cannot honour (named), and a path trick before any fetch.
    let good = &libthumbor_urls(THUMBOR_KEY, &[json!({"width": 50, "image_url": source})])?[0];
    let forged = good.replacen("50x", "51x", 1);
    assert_eq!(status_and_body(&api, &format!("/t{forged}")).await?.0, 403);
    let unsafe_url = format!("/t/unsafe/50x0/{source}");
    assert_eq!(status_and_body(&api, &unsafe_url).await?.0, 403);
    let other_key = libthumbor_urls("another-key", &[json!({"width": 50, "image_url": source})])?;
    assert_eq!(
        status_and_body(&api, &format!("/t{}", other_key[0]))
            .await?
            .0,
        403
    );
    let watermark = libthumbor_urls(
        THUMBOR_KEY,
        &[json!({"width": 50, "filters": ["watermark(a.png,0,0,0)"], "image_url": source})],
    )?;
    let (status, body) = status_and_body(&api, &format!("/t{}", watermark[0])).await?;
    assert_eq!(
        (status, body.contains("watermark()")),
        (400, true),
        "{body}"
    );
    let (status, _) = api
        .raw_get(&format!("/t/unsafe/50x0/{}/../x.jpg", env.id))
        .await?;
    assert_eq!(status, 400);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn imgproxy_urls_from_the_official_node_builder() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&dialect_env()).await?;
    let _worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("a photo.jpg", images::jpeg(800, 400), "image/jpeg")
        .await?;
    let bucket =
        std::env::var("KILN_S3_ORIGINALS_BUCKET").unwrap_or_else(|_| "kiln-originals".into());
    let s3_url = format!("s3://{bucket}/{source}");
    let cases = [
        (
            json!({"url": s3_url, "options": {"resizing_type": "fill", "width": 300, "height": 200}}),
            ImageFormat::Jpeg,
            300,
            200,
        ),
        (
            json!({"url": {"value": source, "displayAs": "plain"},
                   "options": {"resize": {"resizing_type": "fit", "width": 300, "height": 300}}}),
            ImageFormat::Jpeg,
            300,
            150,
        ),
        // fill never enlarges without `enlarge`: the whole 800×400 is kept.
        (
            json!({"url": s3_url, "options": {"resizing_type": "fill", "width": 2000, "height": 1000}}),
            ImageFormat::Jpeg,
            800,
            400,
        ),
        (
            json!({"url": s3_url,
                   "options": {"resizing_type": "fill", "width": 2000, "height": 1000, "enlarge": 1}}),
            ImageFormat::Jpeg,
            2000,
            1000,
        ),
        // fill-down keeps the box's aspect ratio instead.
        (
            json!({"url": s3_url,
                   "options": {"resizing_type": "fill-down", "width": 1000, "height": 1000}}),
            ImageFormat::Jpeg,
            400,
            400,
        ),
        (
            json!({"url": s3_url, "options": {"width": 100, "format": "webp", "quality": 60}}),
            ImageFormat::WebP,
            100,
            50,
        ),
        (
            json!({"url": s3_url,
                   "options": {"resize": {"resizing_type": "fit", "width": 300, "height": 300,
                                          "extend": {"extend": 1, "gravity": {"type": "no"}}},
                               "background": "00ff00", "format": "png"}}),
            ImageFormat::Png,
            300,
            300,
        ),
        (
            json!({"url": s3_url, "options": {"width": 200, "rotate": 90, "dpr": 2}}),
            ImageFormat::Jpeg,
            400,
            800,
        ),
    ];
    let requests: Vec<_> = cases.iter().map(|(r, ..)| r.clone()).collect();
    let urls = imgproxy_node_urls(IMGPROXY_KEY, IMGPROXY_SALT, &requests)?;
    for (url, (request, format, width, height)) in urls.iter().zip(&cases) {
        let (got, image) = render(&api, &format!("/p{url}")).await?;
        assert_eq!(
            (got, image.width(), image.height()),
            (*format, *width, *height),
            "{request} {url}"
        );
    }
    // The extended (padded) image sits at the top of a green canvas.
    let (_, padded) = render(&api, &format!("/p{}", urls[6])).await?;
    assert_eq!(&padded.get_pixel(150, 295).0[..3], &[0, 255, 0]);

    // A new cache buster is a new object; the same one is the same object.
    let busted = imgproxy_node_urls(
        IMGPROXY_KEY,
        IMGPROXY_SALT,
        &[
            json!({"url": s3_url, "options": {"width": 64, "cachebuster": "v1"}}),
            json!({"url": s3_url, "options": {"width": 64, "cachebuster": "v2"}}),
            json!({"url": {"value": source, "displayAs": "plain"}, "options": {"width": 64, "cachebuster": "v1"}}),
        ],
    )?;
    let v1 = object_of(&api, &format!("/p{}", busted[0])).await?;
    let v2 = object_of(&api, &format!("/p{}", busted[1])).await?;
    let v1_plain = object_of(&api, &format!("/p{}", busted[2])).await?;
    assert_ne!(v1, v2, "cb is part of the cache key");
    assert_eq!(v1, v1_plain, "base64 and plain sources are one object");

    // Refusals: a forged signature, `insecure` while it is off, an option
    // Kiln cannot honour (named), an unknown bucket.
    let forged = urls[0].replacen("w:300", "w:301", 1);
    assert_eq!(status_and_body(&api, &format!("/p{forged}")).await?.0, 403);
    assert_eq!(
        status_and_body(&api, &format!("/p/insecure/w:50/plain/{source}"))
            .await?
            .0,
        403
    );
    let refused = imgproxy_node_urls(
        IMGPROXY_KEY,
        IMGPROXY_SALT,
        &[
            json!({"url": s3_url, "options": {"width": 50, "padding": 10}}),
            json!({"url": "s3://elsewhere/a.jpg", "options": {"width": 50}}),
        ],
    )?;
    let (status, body) = status_and_body(&api, &format!("/p{}", refused[0])).await?;
    assert_eq!((status, body.contains("pd")), (400, true), "{body}");
    let (status, body) = status_and_body(&api, &format!("/p{}", refused[1])).await?;
    assert_eq!((status, body.contains("bucket")), (400, true), "{body}");
    let (status, _) = api
        .raw_get(&format!("/p/insecure/w:50/plain/{}/../x.jpg", env.id))
        .await?;
    assert_eq!(status, 400, "a path trick is refused before the signature");
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn one_rendition_whichever_dialect_asks() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&dialect_env()).await?;
    let worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("same.jpg", images::jpeg(900, 600), "image/jpeg")
        .await?;
    let thumbor = libthumbor_urls(
        THUMBOR_KEY,
        &[
            json!({"width": 300, "height": 200, "image_url": source}),
            json!({"width": 300, "height": 300, "fit_in": true, "image_url": source}),
        ],
    )?;
    let imgproxy = imgproxy_node_urls(
        IMGPROXY_KEY,
        IMGPROXY_SALT,
        &[
            json!({"url": {"value": source, "displayAs": "plain"},
                   "options": {"resizing_type": "fill", "width": 300, "height": 200, "enlarge": 1}}),
            json!({"url": {"value": source, "displayAs": "plain"},
                   "options": {"resizing_type": "fit", "width": 300, "height": 300}}),
        ],
    )?;
    for (native, thumbor, imgproxy) in [
        ("300x200,fill", &thumbor[0], &imgproxy[0]),
        ("300x300", &thumbor[1], &imgproxy[1]),
    ] {
        let mut objects = Vec::new();
        for path in [
            env.signed_path(native, &source),
            format!("/t{thumbor}"),
            format!("/p{imgproxy}"),
        ] {
            objects.push(object_of(&api, &path).await?);
        }
        assert!(
            objects.windows(2).all(|w| w[0] == w[1]),
            "{native}: {objects:?}"
        );
    }
    assert_eq!(env.cache_objects().await?.len(), 2, "two renditions in all");
    assert_eq!(
        worker.log_count("rendering bytes="),
        2,
        "each rendered once"
    );
    env.cleanup().await;
    Ok(())
}

/// `kiln sign --dialect …` prints URLs the api serves, and refuses options
/// the api would refuse (exit 2, like any usage error).
#[tokio::test]
async fn kiln_sign_writes_both_dialects() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&dialect_env()).await?;
    let _worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("cli.jpg", images::jpeg(400, 200), "image/jpeg")
        .await?;
    let base = api.url("");
    for (dialect, options, size) in [
        (
            "thumbor",
            "fit-in/100x100/filters:format(png)",
            (ImageFormat::Png, 100, 50),
        ),
        (
            "imgproxy",
            "rs:fill:50:50:1/f:webp",
            (ImageFormat::WebP, 50, 50),
        ),
    ] {
        let out = env
            .cli(
                &[
                    "sign",
                    "--dialect",
                    dialect,
                    options,
                    &source,
                    "--public-url",
                    &base,
                ],
                &dialect_env(),
            )
            .await?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout)?.trim().to_owned();
        let path = url
            .strip_prefix(base.trim_end_matches('/'))
            .unwrap_or(&url)
            .to_owned();
        let (format, image) = render(&api, &path).await?;
        assert_eq!((format, image.width(), image.height()), size, "{url}");
    }
    let refused = env
        .cli(
            &["sign", "--dialect", "imgproxy", "pd:10", &source],
            &dialect_env(),
        )
        .await?;
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    env.cleanup().await;
    Ok(())
}

/// Bulk jobs take dialect URLs as they take native ones, and the renders
/// they make are what those URLs (and the native one) then hit.
#[tokio::test]
async fn bulk_jobs_pre_render_dialect_urls() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&dialect_env()).await?;
    let worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("bulk.jpg", images::jpeg(600, 300), "image/jpeg")
        .await?;
    let thumbor = libthumbor_urls(
        THUMBOR_KEY,
        &[json!({"width": 120, "height": 120, "fit_in": true, "image_url": source})],
    )?;
    let imgproxy = imgproxy_node_urls(
        IMGPROXY_KEY,
        IMGPROXY_SALT,
        &[json!({"url": {"value": source, "displayAs": "plain"},
                 "options": {"resizing_type": "fill", "width": 90, "height": 90, "enlarge": 1}})],
    )?;
    let response = http()
        .post(api.url("/v1/jobs"))
        .bearer_auth(kiln_e2e::ADMIN_KEY)
        .json(&json!({ "items": [
            {"url": format!("/t{}", thumbor[0])},
            {"url": api.url(&format!("/p{}", imgproxy[0]))},
        ]}))
        .send()
        .await?;
    assert_eq!(response.status(), 202, "{}", response.text().await?);
    let mut rendered = 0;
    for _ in 0..100 {
        rendered = worker.log_count("rendering bytes=");
        if rendered == 2 && env.cache_objects().await?.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(rendered, 2, "both items rendered by the job");
    for path in [
        format!("/t{}", thumbor[0]),
        env.signed_path("120x120", &source),
        format!("/p{}", imgproxy[0]),
        env.signed_path("90x90,fill", &source),
    ] {
        let response = http().get(api.url(&path)).send().await?;
        assert_eq!(response.status(), 302, "{path}");
    }
    assert_eq!(
        worker.log_count("rendering bytes="),
        2,
        "hits, not new renders"
    );
    env.cleanup().await;
    Ok(())
}

/// Presets from `KILN_PRESETS_FILE`, named natively (`preset:`), by thumbor
/// (`filters:preset()`) and by imgproxy (`pr:`): one object with the
/// spelled-out options; presets-only mode refuses everything else.
#[tokio::test]
async fn presets_in_every_dialect_and_presets_only_mode() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let file = std::env::temp_dir().join(format!("{}-presets.toml", env.id));
    std::fs::write(&file, "card = \"160x90,fill,f:webp\"\n")?;
    let file = file.display().to_string();
    let mut vars = dialect_env();
    vars.push(("KILN_PRESETS_FILE", &file));
    let api = env.spawn_api(&vars).await?;
    let worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("preset.jpg", images::jpeg(640, 480), "image/jpeg")
        .await?;
    let thumbor = libthumbor_urls(
        THUMBOR_KEY,
        &[json!({"filters": ["preset(card)"], "image_url": source})],
    )?;
    let imgproxy = imgproxy_node_urls(
        IMGPROXY_KEY,
        IMGPROXY_SALT,
        &[json!({"url": {"value": source, "displayAs": "plain"}, "options": {"preset": ["card"]}})],
    )?;
    let mut objects = Vec::new();
    for path in [
        env.signed_path("160x90,fill,f:webp", &source),
        env.signed_path("preset:card", &source),
        format!("/t{}", thumbor[0]),
        format!("/p{}", imgproxy[0]),
    ] {
        objects.push(object_of(&api, &path).await?);
    }
    assert!(objects.windows(2).all(|w| w[0] == w[1]), "{objects:?}");
    let (format, image) = render(&api, &env.signed_path("preset:card", &source)).await?;
    assert_eq!(
        (format, image.width(), image.height()),
        (ImageFormat::WebP, 160, 90)
    );
    assert_eq!(
        worker.log_count("rendering bytes="),
        1,
        "one render for all four"
    );
    let (status, body) = status_and_body(&api, &env.signed_path("preset:nope", &source)).await?;
    assert_eq!((status, body.contains("nope")), (400, true), "{body}");
    drop(api);

    vars.push(("KILN_PRESETS_ONLY", "true"));
    let only = env.spawn_api(&vars).await?;
    assert_eq!(
        object_of(&only, &env.signed_path("preset:card", &source)).await?,
        objects[0]
    );
    for path in [
        env.signed_path("160x90,fill,f:webp", &source),
        env.signed_path("preset:card,q:50", &source),
        format!(
            "/t{}",
            libthumbor_urls(THUMBOR_KEY, &[json!({"width": 10, "image_url": source})])?[0]
        ),
    ] {
        let (status, body) = status_and_body(&only, &path).await?;
        assert_eq!(
            (status, body.contains("only presets")),
            (400, true),
            "{path}: {body}"
        );
    }
    env.cleanup().await;
    Ok(())
}

/// A partner's key on dialect URLs is metered as on native ones: each
/// request counted once, as an image, in the partner's usage.
#[tokio::test]
async fn partner_keys_on_dialect_urls_are_metered() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&dialect_env()).await?;
    let _worker = env.spawn_worker(&[]).await?;
    let source = env
        .upload("metered.jpg", images::jpeg(300, 200), "image/jpeg")
        .await?;
    let key = env
        .create_partner(&api, json!({"name": "dialects"}))
        .await?;
    let thumbor = libthumbor_urls(THUMBOR_KEY, &[json!({"width": 30, "image_url": source})])?;
    let imgproxy = imgproxy_node_urls(
        IMGPROXY_KEY,
        IMGPROXY_SALT,
        &[json!({"url": {"value": source, "displayAs": "plain"}, "options": {"width": 40}})],
    )?;
    for path in [format!("/t{}", thumbor[0]), format!("/p{}", imgproxy[0])] {
        for _ in 0..2 {
            let response = http()
                .get(api.url(&format!("{path}?key={key}")))
                .send()
                .await?;
            assert_eq!(response.status(), 302, "{path}");
        }
    }
    let mut db = env.db().await?;
    let mut counted = (String::new(), 0i64);
    for _ in 0..50 {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT kind, sum(hits)::int8 FROM usage_hourly WHERE partner = 'dialects' GROUP BY 1",
        )
        .fetch_optional(&mut db)
        .await?;
        if let Some(row) = row.filter(|r| r.1 >= 4) {
            counted = row;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        counted,
        ("image".to_owned(), 4),
        "four requests metered as images"
    );
    env.cleanup().await;
    Ok(())
}
