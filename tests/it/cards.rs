//! Social cards rendered by real Chromium: sizes, escaping, offline pages,
//! timeouts, a browser killed mid-render, default images, previews.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use image::{DynamicImage, GenericImageView as _, ImageFormat};

use kiln_e2e::{http, images, repo_templates, Process, TestEnv, ADMIN_KEY};

pub(crate) const CARD_WORKER: &[(&str, &str)] = &[("KILN_WORKER_KINDS", "card")];

/// A card response: status, the `x-kiln-card` marker and the image bytes
/// (a 302 is followed to S3).
pub(crate) struct Card {
    pub(crate) status: u16,
    marker: Option<String>,
    cache_control: Option<String>,
    bytes: Vec<u8>,
}

impl Card {
    /// Tells two cards' files apart.
    pub(crate) fn bytes_digest(&self) -> u32 {
        crc32fast::hash(&self.bytes)
    }

    pub(crate) fn image(&self) -> DynamicImage {
        image::load_from_memory(&self.bytes).expect("a decodable image")
    }
    pub(crate) fn is_default(&self) -> bool {
        self.marker.as_deref() == Some("default")
    }
}

pub(crate) async fn get_card(api: &Process, path: &str) -> anyhow::Result<Card> {
    let client = http();
    let mut request = client.get(api.url(path));
    if path.starts_with("/card-preview/") {
        // As a browser would send it after the prompt: the key as password.
        request = request.basic_auth("author", Some(ADMIN_KEY));
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let marker = header("x-kiln-card");
    let cache_control = header("cache-control");
    let bytes = if status == 302 {
        let location = header("location").unwrap_or_default();
        client
            .get(location)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?
            .to_vec()
    } else {
        response.bytes().await?.to_vec()
    };
    Ok(Card {
        status,
        marker,
        cache_control,
        bytes,
    })
}

/// Standard deviation of luma: a blank or single-colour capture is near 0.
fn luma_spread(image: &DynamicImage) -> f64 {
    let luma = image.to_luma8();
    let n = luma.pixels().len() as f64;
    let mean = luma.pixels().map(|p| f64::from(p[0])).sum::<f64>() / n;
    (luma
        .pixels()
        .map(|p| (f64::from(p[0]) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

/// Share of pixels close to pure red.
pub(crate) fn red_share(image: &DynamicImage) -> f64 {
    let rgb = image.to_rgb8();
    let red = rgb
        .pixels()
        .filter(|p| p[0] > 200 && p[1] < 60 && p[2] < 60)
        .count();
    red as f64 / rgb.pixels().len() as f64
}

fn center_pixel(image: &DynamicImage) -> [u8; 3] {
    let (w, h) = image.dimensions();
    let p = image.get_pixel(w / 2, h / 2);
    [p[0], p[1], p[2]]
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// A copy of the shipped templates plus fixture templates written by a test.
struct Fixture {
    root: PathBuf,
}

impl Fixture {
    fn new() -> anyhow::Result<Self> {
        let root = std::env::temp_dir().join(format!("kiln-cards-{:016x}", rand::random::<u64>()));
        copy_tree(&repo_templates(), &root)?;
        Ok(Self { root })
    }

    /// A public template with ids `[a-z0-9-]+`.
    fn add(&self, name: &str, scripts: bool, html: &str) -> anyhow::Result<()> {
        let dir = self.root.join("cards").join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("manifest.toml"),
            format!(
                "public = true\nscripts = {scripts}\nid = '[a-z0-9-]+'\ndefault_image = 'default.jpg'\n"
            ),
        )?;
        std::fs::write(dir.join("card.html"), html)?;
        std::fs::copy(
            self.root.join("cards/stats/default.jpg"),
            dir.join("default.jpg"),
        )?;
        Ok(())
    }

    fn dir(&self) -> String {
        self.root.display().to_string()
    }

    /// An api and a card worker reading these templates.
    async fn spawn(
        &self,
        env: &TestEnv,
        api: &[(&str, &str)],
        worker: &[(&str, &str)],
    ) -> anyhow::Result<(Process, Process)> {
        let dir = self.dir();
        let mut api_env = vec![("KILN_TEMPLATES_DIR", dir.as_str())];
        api_env.extend_from_slice(api);
        let mut worker_env = vec![
            ("KILN_TEMPLATES_DIR", dir.as_str()),
            ("KILN_WORKER_KINDS", "card"),
        ];
        worker_env.extend_from_slice(worker);
        let api = env.spawn_api(&api_env).await?;
        let worker = env.spawn_worker(&worker_env).await?;
        Ok((api, worker))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A full-page colour, so a test can tell which version rendered.
fn solid_page(colour: &str) -> String {
    format!(
        "<!doctype html><html><body style=\"margin:0\">\
         <div style=\"width:1200px;height:630px;background:{colour}\"><h1>{{{{ id }}}}</h1></div>\
         </body></html>"
    )
}

#[tokio::test]
async fn both_templates_render_at_their_size_in_every_format() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let worker = env.spawn_worker(CARD_WORKER).await?;
    let client = http();
    let shipped = |name: &str| std::fs::read(repo_templates().join(name));
    let stats_default = image::load_from_memory(&shipped("cards/stats/default.jpg")?)?;

    for (ext, format) in [
        ("jpg", ImageFormat::Jpeg),
        ("png", ImageFormat::Png),
        ("webp", ImageFormat::WebP),
    ] {
        let stats = get_card(&api, &format!("/card/stats/12-34-10.{ext}")).await?;
        let article = get_card(
            &api,
            &env.signed_card(&format!(
                "article/launch-day.{ext}?title=We%20shipped%20Kiln%20%F0%9F%9A%80&author=Ada%20Lovelace&site=kiln.dev&tag=Release"
            )),
        )
        .await?;
        for (name, card) in [("stats", &stats), ("article", &article)] {
            assert_eq!(card.status, 302, "{name}.{ext} is rendered and cached");
            assert!(!card.is_default(), "{name}.{ext}");
            assert_eq!(
                images::inspect(&card.bytes),
                (format, 1200, 630),
                "{name}.{ext}"
            );
            let spread = luma_spread(&card.image());
            assert!(
                spread > 20.0,
                "{name}.{ext} is not blank (luma σ {spread:.1})"
            );
        }
        // The numbers from the id are drawn: the card is not its default image.
        let diff = images_differ(&stats.image(), &stats_default);
        assert!(
            diff > 0.008,
            "stats.{ext} differs from the default ({diff:.3})"
        );
    }

    // A second request is a cache hit: nothing new is queued or rendered.
    let again = get_card(&api, "/card/stats/12-34-10.jpg").await?;
    assert_eq!(again.status, 302);
    assert_eq!(
        api.metric(&client, "kiln_jobs_queued_total", &[]).await?,
        6.0
    );
    assert_eq!(
        worker
            .metric(
                &client,
                "kiln_jobs_total",
                &["kind=\"card\"", "outcome=\"ok\""]
            )
            .await?,
        6.0
    );
    assert_eq!(
        worker
            .metric(&client, "kiln_browser_starts_total", &[])
            .await?,
        1.0,
        "one warm browser served every card"
    );
    env.cleanup().await;
    Ok(())
}

/// Mean absolute difference of the RGB channels, 0..1.
fn images_differ(a: &DynamicImage, b: &DynamicImage) -> f64 {
    let (a, b) = (a.to_rgb8(), b.to_rgb8());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    total as f64 / (a.as_raw().len() as f64 * 255.0)
}

#[tokio::test]
async fn markup_in_a_parameter_is_drawn_as_text() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let _worker = env.spawn_worker(CARD_WORKER).await?;
    // Unescaped, this would cover the card in red.
    let title = "%3Cdiv%20style%3D%22position%3Afixed%3Binset%3A0%3Bbackground%3A%23ff0000%22%3Ex%3C%2Fdiv%3E";
    let card = get_card(
        &api,
        &env.signed_card(&format!(
            "article/injection.png?title={title}&author=%3Cb%3EEve"
        )),
    )
    .await?;
    assert_eq!(card.status, 302);
    assert!(!card.is_default());
    let red = red_share(&card.image());
    assert!(red < 0.01, "{:.1} % of the card is red", red * 100.0);
    env.cleanup().await;
    Ok(())
}

/// Three layers keep a page offline: its Content-Security-Policy, request
/// interception (only the template's origin is answered) and host rules under
/// which no name or address resolves. Without the last, this test saw one TCP
/// connection reach the listener.
#[tokio::test]
async fn pages_reach_no_other_host() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let fixture = Fixture::new()?;
    let elsewhere = format!("http://127.0.0.1:{port}");
    fixture.add(
        "probe",
        false,
        &format!(
            "<!doctype html><html><head>\
             <link rel=\"stylesheet\" href=\"{elsewhere}/style.css\">\
             <style>@import url(\"{elsewhere}/import.css\"); \
             body {{ margin:0; background: #2a6 url(\"{elsewhere}/bg.png\"); }}</style>\
             </head><body><h1>{{{{ id }}}}</h1><img src=\"{elsewhere}/pixel.png\">\
             <iframe src=\"{elsewhere}/frame.html\"></iframe>\
             <img src=\"https://example.com/remote.png\"></body></html>"
        ),
    )?;
    let (api, _worker) = fixture.spawn(&env, &[], &[]).await?;
    let card = get_card(&api, "/card/probe/offline.jpg").await?;
    assert_eq!(card.status, 302, "the card still renders");
    assert!(!card.is_default());
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the browser connected to another host"
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn a_hanging_template_gives_the_default_image_and_the_browser_carries_on(
) -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let fixture = Fixture::new()?;
    fixture.add("hang", true, "<!doctype html><script>for(;;){}</script>")?;
    fixture.add(
        "dialogs",
        true,
        &format!(
            "<script>alert('hello'); confirm('sure?'); prompt('name?');</script>{}",
            solid_page("#3355cc")
        ),
    )?;
    fixture.add(
        "quiet",
        false,
        &format!(
            "<script>alert('never runs')</script>{}",
            solid_page("#cc5533")
        ),
    )?;
    // Two attempts of 1.5 s (a retry after 1 s between them), then the job
    // gives up and releases its claim; the request waits 8 s.
    let (api, worker) = fixture
        .spawn(
            &env,
            &[("KILN_MISS_WAIT_MS", "8000")],
            &[
                ("KILN_CARD_RENDER_TIMEOUT_MS", "1500"),
                ("KILN_RENDER_MAX_ATTEMPTS", "2"),
            ],
        )
        .await?;
    let client = http();

    let hung = get_card(&api, "/card/hang/forever.jpg").await?;
    assert_eq!(hung.status, 200);
    assert!(hung.is_default(), "the default image, not an error");
    assert_eq!(hung.cache_control.as_deref(), Some("no-store"));
    assert_eq!(
        hung.bytes,
        std::fs::read(fixture.root.join("cards/hang/default.jpg"))?
    );
    assert_eq!(
        api.metric(
            &client,
            "kiln_card_defaults_total",
            &["reason=\"wait_timeout\""]
        )
        .await?,
        1.0,
        "the render did not finish in time"
    );
    // The request gave up waiting at 8 s; the second attempt may still be
    // running then (a hung tab is replaced, which on a busy machine takes
    // a browser start), so wait for it.
    assert_eq!(
        worker
            .metric_reaching(
                &client,
                "kiln_card_render_timeouts_total",
                &[],
                2.0,
                Duration::from_secs(20)
            )
            .await?,
        2.0,
        "each attempt timed out, and was retried"
    );

    // A timeout is not the card's fault: nothing is remembered as failed,
    // so the next request (after a busy moment) renders it again.
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM renditions WHERE status = 'failed'")
        .fetch_one(&mut env.db().await?)
        .await?;
    assert_eq!(failed, 0);

    // Dialogs are dismissed; with scripts off they never open.
    for (template, colour) in [
        ("dialogs", [0x33, 0x55, 0xcc]),
        ("quiet", [0xcc, 0x55, 0x33]),
    ] {
        let card = get_card(&api, &format!("/card/{template}/after.png")).await?;
        assert_eq!(card.status, 302, "{template} renders after the hang");
        let got = center_pixel(&card.image());
        assert!(
            got.iter().zip(colour).all(|(a, b)| a.abs_diff(b) < 8),
            "{template}: centre pixel {got:?}"
        );
    }
    env.cleanup().await;
    Ok(())
}

/// Process ids of the worker's direct children (its browsers).
pub(crate) fn browser_pids(worker: &Process) -> anyhow::Result<Vec<u32>> {
    let pid = worker.child.id().unwrap_or_default();
    let out = std::process::Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Processes (not zombies) left in the given process groups.
fn live_in_groups(groups: &[u32]) -> anyhow::Result<usize> {
    let out = std::process::Command::new("ps")
        .args(["-eo", "pgid=,stat="])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.parse::<u32>().ok()?, parts.next()?.to_owned()))
        })
        .filter(|(g, stat)| groups.contains(g) && !stat.starts_with('Z'))
        .count())
}

#[tokio::test]
async fn a_browser_killed_mid_render_is_restarted_and_the_card_still_produced() -> anyhow::Result<()>
{
    let env = TestEnv::new().await?;
    let fixture = Fixture::new()?;
    // Busy for 1.5 s inside the render, then draws.
    fixture.add(
        "slow",
        true,
        &format!(
            "<script>const t = Date.now(); while (Date.now() - t < 1500) {{}}</script>{}",
            solid_page("#22aa66")
        ),
    )?;
    let (api, worker) = fixture
        .spawn(
            &env,
            &[("KILN_MISS_WAIT_MS", "30000")],
            &[("KILN_CARD_RENDER_TIMEOUT_MS", "10000")],
        )
        .await?;
    let client = http();
    worker
        .wait_for_log("card browsers ready", Duration::from_secs(20))
        .await?;
    let first = browser_pids(&worker)?;
    assert_eq!(first.len(), 1, "one browser started with the worker");

    let request = {
        let url = api.url("/card/slow/crash.png");
        let client = client.clone();
        tokio::spawn(async move { client.get(url).send().await })
    };
    worker
        .wait_for_log("rendering card", Duration::from_secs(10))
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", first[0])])
        .status()?;
    assert!(status.success(), "killing the browser's process group");

    let response = request.await??;
    assert_eq!(response.status(), 302, "the job was retried, not lost");
    assert_eq!(response.headers().get("x-kiln-card"), None);
    let card = get_card(&api, "/card/slow/crash.png").await?;
    let got = center_pixel(&card.image());
    assert!(
        got.iter()
            .zip([0x22, 0xaa, 0x66])
            .all(|(a, b)| a.abs_diff(b) < 8),
        "{got:?}"
    );
    assert!(
        worker
            .metric(&client, "kiln_browser_restarts_total", &[])
            .await?
            >= 1.0
    );
    let second = browser_pids(&worker)?;
    assert_eq!(second.len(), 1, "one browser again, no stray ones");
    assert_ne!(first, second, "a new browser");

    // Stopping the worker takes its browser (and every child) with it.
    worker.signal("TERM")?;
    let mut worker = worker;
    tokio::time::timeout(Duration::from_secs(20), worker.child.wait()).await??;
    assert_eq!(live_in_groups(&second)?, 0, "browser processes left behind");
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_the_default_image_or_a_clear_status() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let client = http();
    let stats_default = std::fs::read(repo_templates().join("cards/stats/default.jpg"))?;
    let article_default = std::fs::read(repo_templates().join("cards/article/default.jpg"))?;

    // An id the manifest does not allow: the default image, never the input.
    for path in [
        "/card/stats/%3Cscript%3Ealert(1)%3C%2Fscript%3E.jpg",
        "/card/stats/12-34.jpg",
        "/card/stats/12-34-10.gif",
    ] {
        let card = get_card(&api, path).await?;
        assert_eq!(card.status, 200, "{path}");
        assert!(card.is_default(), "{path}");
        assert_eq!(card.bytes, stats_default, "{path}");
    }
    // A signed request whose parameter breaks the manifest (too long).
    let long = "x".repeat(141);
    let card = get_card(
        &api,
        &env.signed_card(&format!("article/long.jpg?title={long}")),
    )
    .await?;
    assert_eq!((card.status, card.bytes == article_default), (200, true));
    assert_eq!(
        api.metric(&client, "kiln_card_defaults_total", &["reason=\"id\""])
            .await?,
        2.0
    );
    assert_eq!(
        api.metric(
            &client,
            "kiln_card_defaults_total",
            &["template=\"article\""]
        )
        .await?,
        1.0
    );

    // Free-text templates need a signature; the query is part of it.
    let signed = env.signed_card("article/post.jpg?title=Hello");
    let tampered = signed.replace("title=Hello", "title=Hacked");
    for (path, status) in [
        ("/card/article/post.jpg?title=Hello".to_owned(), 403),
        (tampered, 403),
        ("/card/AAAA/article/post.jpg?title=Hello".to_owned(), 403),
        ("/card/nope/1.jpg".to_owned(), 404),
        ("/card/stats".to_owned(), 400),
        ("/card-preview/stats/1-2-3.png".to_owned(), 404),
    ] {
        let response = client.get(api.url(&path)).send().await?;
        assert_eq!(response.status().as_u16(), status, "{path}");
        let body = response.text().await?;
        assert!(
            !body.contains("Hello") && !body.contains("Hacked"),
            "{path}: {body}"
        );
    }
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn an_embedded_original_is_loaded_and_pins_the_card() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let _worker = env.spawn_worker(CARD_WORKER).await?;
    let portrait = images::encode(
        DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            256,
            256,
            image::Rgb([255, 0, 0]),
        )),
        ImageFormat::Png,
    );
    let key = env.upload("portrait.png", portrait, "image/png").await?;
    let with = |avatar: &str| {
        env.signed_card(&format!(
            "article/me.png?title=Hi&author=Ada&avatar={avatar}"
        ))
    };
    let card = get_card(&api, &with(&key)).await?;
    let plain = get_card(&api, &env.signed_card("article/me.png?title=Hi&author=Ada")).await?;
    assert_eq!((card.status, plain.status), (302, 302));
    let red = red_share(&card.image());
    assert!(
        red > 0.002,
        "the red portrait is drawn ({:.2} %)",
        red * 100.0
    );
    assert!(red_share(&plain.image()) < 0.001);

    // A missing original is an invalid parameter: the default image.
    let missing = get_card(&api, &with(&env.source("nobody.png"))).await?;
    assert!(missing.is_default());
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn previews_render_edits_at_once_and_cache_nothing() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let fixture = Fixture::new()?;
    fixture.add("draft", false, &solid_page("#aa2222"))?;
    let (api, _worker) = fixture
        .spawn(&env, &[("KILN_CARD_PREVIEW", "true")], &[])
        .await?;

    // Previews take the admin key: they may embed any original.
    let anonymous = http()
        .get(api.url("/card-preview/draft/one.png"))
        .send()
        .await?;
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"]
        .to_str()?
        .contains("Basic"));
    let first = get_card(&api, "/card-preview/draft/one.png").await?;
    assert_eq!(first.status, 200);
    assert_eq!(first.marker.as_deref(), Some("preview"));
    assert_eq!(first.cache_control.as_deref(), Some("no-store"));
    assert_eq!(center_pixel(&first.image()), [0xaa, 0x22, 0x22]);

    // Edit the template: the next preview shows it, no restart.
    std::fs::write(
        fixture.root.join("cards/draft/card.html"),
        solid_page("#2222aa"),
    )?;
    let second = get_card(&api, "/card-preview/draft/one.png").await?;
    assert_eq!(second.status, 200);
    assert_eq!(center_pixel(&second.image()), [0x22, 0x22, 0xaa]);

    // Checks are explained instead of answered with the default image.
    let bad = http()
        .get(api.url("/card-preview/draft/NOT_AN_ID.png"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await?.contains("invalid id"));

    // Nothing stays in the cache bucket.
    let mut left = env.cache_objects().await?;
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = env.cache_objects().await?;
    }
    assert_eq!(left, Vec::<String>::new());
    env.cleanup().await;
    Ok(())
}
