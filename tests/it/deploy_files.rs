//! The container and cluster files do what they say. There is no Docker
//! engine or cluster here, so each file is checked where it touches Kiln:
//! compose's healthchecks are run (as Docker runs them) against a real api
//! and worker, images are pinned, and the build context keeps secrets and
//! history out.

use std::path::Path;
use std::process::Command;

use kiln_e2e::{binary, Process, TestEnv};

fn read(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// The `test:` of `service`'s healthcheck in compose.yaml (a flow sequence,
/// which is also JSON).
fn compose_healthcheck(service: &str) -> Vec<String> {
    let compose = read("deploy/compose/compose.yaml");
    let mut in_service = false;
    for line in compose.lines() {
        if line.starts_with("  ") && !line.starts_with("   ") {
            in_service = line.trim_end() == format!("  {service}:");
        }
        if let Some(test) = line.trim_start().strip_prefix("test: ") {
            if in_service {
                return serde_json::from_str(test)
                    .unwrap_or_else(|err| panic!("{service}'s healthcheck {test}: {err}"));
            }
        }
    }
    panic!("{service} has no healthcheck in compose.yaml")
}

/// Runs a healthcheck the way Docker does: `CMD` executes its arguments,
/// `CMD-SHELL` runs one string under `/bin/sh -c` (dash on Debian). The
/// image's binaries are on PATH; the container's listen variable is set.
fn run_healthcheck(test: &[String], listen_var: &str, process: &Process) -> bool {
    let bin = binary("kiln-api");
    let bin_dir = bin.parent().expect("bin dir");
    let path = format!("{}:/usr/bin:/bin", bin_dir.display());
    let addr = process.base_url.trim_start_matches("http://");
    let mut command = match test.first().map(String::as_str) {
        Some("CMD") => {
            let mut command = Command::new(&test[1]);
            command.args(&test[2..]);
            command
        }
        Some("CMD-SHELL") => {
            let mut command = Command::new("/bin/sh");
            command.arg("-c").arg(&test[1]);
            command
        }
        other => panic!("not a Docker healthcheck: {other:?}"),
    };
    let output = command
        .env_clear()
        .env("PATH", path)
        .env(listen_var, addr)
        // The images set KILN_ENV_FILE= (no env file).
        .env("KILN_ENV_FILE", "")
        .output()
        .expect("healthcheck runs");
    if !output.status.success() {
        eprintln!(
            "healthcheck {test:?}: {} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output.status.success()
}

#[tokio::test]
async fn compose_healthchecks_pass_on_a_ready_process_and_fail_on_a_stopped_one(
) -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let mut api = env.spawn_api(&[]).await?;
    let mut worker = env.spawn_worker(&[]).await?;
    let api_check = compose_healthcheck("api");
    let worker_check = compose_healthcheck("worker");
    assert!(
        run_healthcheck(&api_check, "KILN_LISTEN", &api),
        "the api's compose healthcheck fails on a ready api: the worker, which waits for it, would never start"
    );
    assert!(run_healthcheck(
        &worker_check,
        "KILN_WORKER_LISTEN",
        &worker
    ));
    api.child.kill().await?;
    api.child.wait().await?;
    worker.child.kill().await?;
    worker.child.wait().await?;
    assert!(!run_healthcheck(&api_check, "KILN_LISTEN", &api));
    assert!(!run_healthcheck(
        &worker_check,
        "KILN_WORKER_LISTEN",
        &worker
    ));
    env.cleanup().await;
    Ok(())
}

/// A tag that names a release: not missing, not `latest`, not a bare major
/// (`postgres:15`, `rust:1`); or a digest.
fn pinned(image: &str) -> bool {
    if image.contains("@sha256:") {
        return true;
    }
    let name_end = image.rfind('/').map_or(0, |slash| slash + 1);
    let Some((_, tag)) = image[name_end..].split_once(':') else {
        return false;
    };
    tag != "latest" && (tag.starts_with("RELEASE.") || tag.contains('.'))
}

#[test]
fn every_image_is_pinned_to_a_release() {
    let mut images = Vec::new();
    for path in [
        "deploy/compose/compose.yaml",
        "deploy/k8s/api.yaml",
        "deploy/k8s/worker.yaml",
    ] {
        for line in read(path).lines() {
            if let Some(image) = line.trim_start().strip_prefix("image: ") {
                images.push((path, image.trim().to_owned()));
            }
        }
    }
    for path in [
        "deploy/docker/api.Dockerfile",
        "deploy/docker/worker.Dockerfile",
    ] {
        for line in read(path).lines() {
            if let Some(from) = line.strip_prefix("FROM ") {
                let image = from.split_whitespace().next().unwrap_or_default();
                images.push((path, image.to_owned()));
            }
        }
    }
    assert!(images.len() >= 10, "{images:?}");
    let floating: Vec<_> = images.iter().filter(|(_, i)| !pinned(i)).collect();
    assert!(floating.is_empty(), "floating image tags: {floating:?}");
}

#[test]
fn pinned_tags_are_told_from_floating_ones() {
    for image in [
        "postgres:15.10-bookworm",
        "minio/minio:RELEASE.2025-04-22T22-12-26Z",
        "ghcr.io/kiln/kiln-api:0.1.0",
        "localhost:5000/kiln-api:0.1.0",
        "debian@sha256:0123",
    ] {
        assert!(pinned(image), "{image}");
    }
    for image in [
        "postgres:15",
        "rust:1-bookworm",
        "minio/minio:latest",
        "ghcr.io/kiln/kiln-api",
        "localhost:5000/kiln-api",
    ] {
        assert!(!pinned(image), "{image}");
    }
}

/// `COPY . .` in the Dockerfiles sends the build context into the image's
/// build stage: the repository's history and local secrets stay out of it.
#[test]
fn the_build_context_leaves_out_history_secrets_and_build_output() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in [".git", ".kiln", "**/.env", "target", "**/target"] {
        assert!(
            patterns.contains(&needed),
            ".dockerignore lacks {needed}: {patterns:?}"
        );
    }
    assert!(
        !patterns.iter().any(|p| p.starts_with('!')),
        "no exceptions re-include ignored files: {patterns:?}"
    );
}
