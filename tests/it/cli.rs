//! The `kiln` command line as an operator and a script use it: help on every
//! command, exit codes 0/1/2, `--json`, completions, and an `https://` api
//! behind a TLS front with a private CA.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncBufReadExt as _;

use kiln_e2e::{images, TestEnv, ADMIN_KEY};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn bad_command_lines_exit_2_failures_exit_1_help_exits_0() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    // The api migrates the test's database.
    let _api = env.spawn_api(&[]).await?;
    for args in [
        &["partner", "frobnicate"][..],
        &["partner", "create"],
        &["partner", "create", "press", "--rate", "fast"],
        &["partner", "create", "press", "--monthly", "0"],
        // A name the partner rules refuse is the user's mistake, too.
        &["partner", "create", "no spaces please"],
        &["sign", "100x100"],
        &["sign", "100x100,bogus:1", "a.jpg"],
        &["sign-card", "no-template"],
        &["sample-image", "/tmp/x.jpg", "0x0"],
        &["nonsense"],
    ] {
        let output = env.cli(args, &[]).await?;
        assert_eq!(
            output.status.code(),
            Some(2),
            "kiln {args:?}: {}",
            text(&output.stderr)
        );
        assert!(!text(&output.stderr).is_empty(), "kiln {args:?} says why");
    }
    // A well-formed command whose work fails: 1.
    let unknown = env.cli(&["partner", "revoke", "nobody-here"], &[]).await?;
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown.stderr));
    assert!(text(&unknown.stderr).contains("nobody-here"));
    // Help on every command, exit 0.
    for args in [
        &["--help"][..],
        &["sign", "--help"],
        &["sign-card", "--help"],
        &["upload", "--help"],
        &["sample-image", "--help"],
        &["partner", "--help"],
        &["partner", "create", "--help"],
        &["partner", "list", "--help"],
        &["partner", "rotate-key", "--help"],
        &["partner", "revoke", "--help"],
        &["prerender", "--help"],
        &["completions", "--help"],
    ] {
        let output = env.cli(args, &[]).await?;
        assert_eq!(output.status.code(), Some(0), "kiln {args:?}");
        assert!(
            text(&output.stdout).contains("Usage: kiln"),
            "kiln {args:?}"
        );
    }
    let prerender_help = text(&env.cli(&["prerender", "--help"], &[]).await?.stdout);
    assert!(
        prerender_help.contains("KILN_API_URL") && prerender_help.contains("--ca-cert"),
        "{prerender_help}"
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn json_output_is_one_document_a_script_can_read() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let _api = env.spawn_api(&[]).await?;
    let signed = env
        .cli(&["--json", "sign", "100x100,f:webp", "a/b.jpg"], &[])
        .await?;
    assert!(signed.status.success(), "{}", text(&signed.stderr));
    let doc: Value = serde_json::from_slice(&signed.stdout)?;
    let url = doc["url"].as_str().unwrap_or_default();
    assert!(
        url.contains("/img/") && url.ends_with("/100x100,f:webp/a/b.jpg"),
        "{doc}"
    );

    let created = env
        .cli(
            &["partner", "create", "scripted", "--monthly", "7", "--json"],
            &[],
        )
        .await?;
    assert!(created.status.success(), "{}", text(&created.stderr));
    let created: Value = serde_json::from_slice(&created.stdout)?;
    assert_eq!(created["name"], "scripted");
    let key = created["key"].as_str().unwrap_or_default().to_owned();
    assert!(key.len() > 20, "{created}");

    let listed = env.cli(&["partner", "list", "--json"], &[]).await?;
    let listed: Value = serde_json::from_slice(&listed.stdout)?;
    let partner = listed
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == "scripted"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(partner["monthly_quota"], 7, "{listed}");
    assert!(
        !listed.to_string().contains(&key),
        "the key is never listed"
    );

    let revoked = env
        .cli(&["partner", "revoke", "scripted", "--json"], &[])
        .await?;
    let revoked: Value = serde_json::from_slice(&revoked.stdout)?;
    assert_eq!(revoked["revoked"], true);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn completions_are_scripts_for_the_shell_asked_for() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let bash = env.cli(&["completions", "bash"], &[]).await?;
    assert!(bash.status.success());
    let script = text(&bash.stdout);
    assert!(
        script.contains("complete -F") && script.contains("prerender"),
        "{script}"
    );
    // bash accepts it.
    let check = std::process::Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(script.as_bytes())?;
            child.wait()
        })?;
    assert!(check.success());
    let zsh = env.cli(&["completions", "zsh"], &[]).await?;
    assert!(text(&zsh.stdout).starts_with("#compdef kiln"));
    assert_eq!(
        env.cli(&["completions", "tcsh"], &[]).await?.status.code(),
        Some(2)
    );
    env.cleanup().await;
    Ok(())
}

/// A private CA nobody else trusts, and a server certificate for 127.0.0.1
/// it signed: (CA certificate, server certificate, server key).
fn private_ca(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    let file = |name: &str| dir.join(name);
    let openssl = |args: &[&str]| -> anyhow::Result<()> {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "openssl {args:?} failed");
        Ok(())
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=Kiln test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    std::fs::write(
        file("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ])?;
    Ok((file("ca.pem"), file("server.pem"), file("server.key")))
}

#[tokio::test]
async fn prerender_talks_to_an_https_api() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let _worker = env.spawn_worker(&[]).await?;
    let dir = std::env::temp_dir().join(format!("kiln-tls-{}", env.id));
    std::fs::create_dir_all(&dir)?;
    let (ca, cert, key) = private_ca(&dir)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tls/tls_front.py");
    let mut front = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(&cert)
        .arg(&key)
        .arg(api.base_url.trim_start_matches("http://"))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(front.stdout.take().expect("stdout")).lines();
    let port = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await??
        .unwrap_or_default();
    let https = format!("https://127.0.0.1:{port}");

    let source = env
        .upload("tls.jpg", images::jpeg(120, 80), "image/jpeg")
        .await?;
    let file = dir.join("items.txt");
    std::fs::write(&file, format!("{}\n", env.signed_path("40x40", &source)))?;
    let file = file.display().to_string();
    let cert = ca.display().to_string();

    let trusted = env
        .cli(
            &[
                "prerender",
                &file,
                "--api",
                &https,
                "--ca-cert",
                &cert,
                "--json",
            ],
            &[("KILN_API_KEY", ADMIN_KEY)],
        )
        .await?;
    assert!(trusted.status.success(), "{}", text(&trusted.stderr));
    let progress: Value = serde_json::from_slice(&trusted.stdout)?;
    assert_eq!(
        (progress["state"].as_str(), progress["done"].as_i64()),
        (Some("done"), Some(1))
    );
    assert!(
        trusted.stderr.is_empty(),
        "--json keeps stderr quiet: {}",
        text(&trusted.stderr)
    );

    // The same CA from the environment.
    let from_env = env
        .cli(
            &["prerender", &file],
            &[
                ("KILN_API_KEY", ADMIN_KEY),
                ("KILN_API_URL", &https),
                ("KILN_CA_CERT", &cert),
            ],
        )
        .await?;
    assert!(from_env.status.success(), "{}", text(&from_env.stderr));

    // Without the CA the certificate is refused: a failure (1), not a hang.
    let untrusted = env
        .cli(
            &["prerender", &file, "--api", &https],
            &[("KILN_API_KEY", ADMIN_KEY)],
        )
        .await?;
    assert_eq!(untrusted.status.code(), Some(1));
    let stderr = text(&untrusted.stderr).to_lowercase();
    assert!(
        stderr.contains("certificate") || stderr.contains("tls"),
        "{stderr}"
    );
    drop(front);
    let _ = std::fs::remove_dir_all(&dir);
    env.cleanup().await;
    Ok(())
}

#[tokio::test]
async fn upload_through_the_api_is_checked_and_does_not_overwrite_by_accident() -> anyhow::Result<()>
{
    let env = TestEnv::new().await?;
    let api = env.spawn_api(&[]).await?;
    let dir = std::env::temp_dir().join(format!("kiln-cli-upload-{}", env.id));
    std::fs::create_dir_all(&dir)?;
    let photo = dir.join("photo.jpg");
    std::fs::write(&photo, images::jpeg(120, 90))?;
    let photo = photo.display().to_string();
    let key = env.source("cli/photo.jpg");
    let through_api = [
        ("KILN_API_URL", api.base_url.as_str()),
        ("KILN_API_KEY", ADMIN_KEY),
    ];
    let first = env
        .cli(&["upload", &photo, &key, "--json"], &through_api)
        .await?;
    assert!(first.status.success(), "{}", text(&first.stderr));
    let doc: Value = serde_json::from_slice(&first.stdout)?;
    assert_eq!(
        (doc["width"].as_u64(), doc["height"].as_u64()),
        (Some(120), Some(90))
    );
    let again = env.cli(&["upload", &photo, &key], &through_api).await?;
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("409"),
        "{}",
        text(&again.stderr)
    );
    let replaced = env
        .cli(&["upload", &photo, &key, "--overwrite"], &through_api)
        .await?;
    assert!(replaced.status.success(), "{}", text(&replaced.stderr));
    // Not an image: the api refuses it, the CLI says why.
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "plain words")?;
    let refused = env
        .cli(
            &[
                "upload",
                &notes.display().to_string(),
                &env.source("cli/notes.jpg"),
            ],
            &through_api,
        )
        .await?;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("not an image"),
        "{}",
        text(&refused.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    env.cleanup().await;
    Ok(())
}
