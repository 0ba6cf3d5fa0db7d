//! What a card page (untrusted parameters in a real browser) could reach:
//! Chromium runs with an empty environment (no database URL, S3 key, broker
//! password or signing key), as an unprivileged user inside its own
//! sandbox where the kernel allows it, speaks DevTools over a pipe (no port
//! any local process could open), and a replaced avatar is never drawn from
//! the browser's memory of the old one.

use std::collections::HashSet;

use image::{DynamicImage, ImageFormat};

use kiln_e2e::{images, TestEnv, CAPTCHA_SALT, SIGNING_KEY};

use crate::cards::{browser_pids, get_card, red_share, CARD_WORKER};

/// Inodes of the listening TCP sockets on this machine.
fn listening_inodes() -> anyhow::Result<HashSet<u64>> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table)?.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // st 0A is LISTEN; the inode is the tenth field.
            if fields.get(3) == Some(&"0A") {
                if let Some(inode) = fields.get(9).and_then(|i| i.parse().ok()) {
                    inodes.insert(inode);
                }
            }
        }
    }
    Ok(inodes)
}

/// Socket inodes a process holds.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let text = target.to_string_lossy().into_owned();
            text.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// Every process in `pgid`'s group.
fn group_members(pgid: u32) -> Vec<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-g", &pgid.to_string()])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[tokio::test]
async fn the_browser_holds_no_secret_and_no_port() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let worker = env.spawn_worker(CARD_WORKER).await?;
    // A render first: the worker is connected to its browser by then.
    let card = get_card(&api, "/card/stats/1-2-3.png").await?;
    assert_eq!(card.status, 302);

    let browsers = browser_pids(&worker)?;
    assert!(!browsers.is_empty(), "the worker started a browser");
    let listening = listening_inodes()?;
    for browser in browsers {
        let environ = std::fs::read(format!("/proc/{browser}/environ"))?;
        let environ = String::from_utf8_lossy(&environ);
        // (Debian's /usr/bin/chromium wrapper adds its own public API keys.)
        let s3_secret = std::env::var("KILN_S3_SECRET_ACCESS_KEY")?;
        for secret in [
            "KILN_",
            "postgres://",
            "amqp://",
            SIGNING_KEY,
            CAPTCHA_SALT,
            s3_secret.as_str(),
        ] {
            assert!(
                !environ.contains(secret),
                "the browser sees {secret}: {environ}"
            );
        }
        let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{browser}/cmdline"))?)
            .replace('\0', " ");
        assert!(cmdline.contains("--remote-debugging-pipe"), "{cmdline}");
        assert!(!cmdline.contains("--remote-debugging-port"), "{cmdline}");
        // Here the kernel allows user namespaces: the sandbox is on, and a
        // root worker's browser runs as nobody.
        assert!(!cmdline.contains("--no-sandbox"), "{cmdline}");
        let status = std::fs::read_to_string(format!("/proc/{browser}/status"))?;
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_default()
            .to_owned();
        assert_ne!(uid, "0", "the browser does not run as root");
        // Nothing the browser's processes hold is a listening socket.
        for member in group_members(browser) {
            let open = socket_inodes(member);
            assert!(
                open.is_disjoint(&listening),
                "browser process {member} listens on a TCP port"
            );
        }
    }
    // The worker listens on its health port only (the DevTools bridge closed
    // its socket once it was connected).
    let worker_listens = socket_inodes(worker.pid().unwrap_or(0))
        .intersection(&listening)
        .count();
    assert_eq!(worker_listens, 1, "the health port, nothing else");
    env.cleanup().await;
    Ok(())
}

fn portrait(rgb: [u8; 3]) -> Vec<u8> {
    images::encode(
        DynamicImage::ImageRgb8(image::RgbImage::from_pixel(256, 256, image::Rgb(rgb))),
        ImageFormat::Png,
    )
}

#[tokio::test]
async fn a_replaced_avatar_is_drawn_from_its_new_bytes() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    // No ETag cache in the api: the replacement is seen at once.
    let api = env
        .spawn_api(&[("KILN_SOURCE_CACHE_TTL_SECS", "0")])
        .await?;
    // One browser, one page, reused for both cards.
    let _worker = env.spawn_worker(CARD_WORKER).await?;
    let key = env
        .upload("avatar.png", portrait([255, 0, 0]), "image/png")
        .await?;
    let url = env.signed_card(&format!("article/me.png?title=Hi&author=Ada&avatar={key}"));
    let red = get_card(&api, &url).await?;
    assert_eq!(red.status, 302);
    assert!(red_share(&red.image()) > 0.002, "the red avatar is drawn");

    env.upload("avatar.png", portrait([0, 0, 255]), "image/png")
        .await?;
    let replaced = get_card(&api, &url).await?;
    assert_eq!(replaced.status, 302);
    assert_ne!(replaced.bytes_digest(), red.bytes_digest(), "a new card");
    assert!(
        red_share(&replaced.image()) < 0.001,
        "the old avatar's bytes were drawn into the new card"
    );
    env.cleanup().await;
    Ok(())
}
