//! Fuzzing through a real api: the request corpus (`fuzz/corpus/`) as is,
//! mutated, and mutated option strings and source paths *validly signed* so
//! they get past the signature check into option parsing, key checks and S3.
//! Whatever arrives: never a 5xx (but the overload answer, 503 with
//! Retry-After), never internal text in a body, never a
//! crash. The seed is printed, and `KILN_FUZZ_SEED` replays a run.

use std::path::Path;

use futures_util::stream::{self, StreamExt as _};
use rand::rngs::StdRng;
use rand::{RngExt as _, SeedableRng as _};

use kiln_core::dialects::signer::{ImgproxyKey, ImgproxySigning, ThumborSigning};
use kiln_e2e::{Process, TestEnv};

const DIALECT_KEY: &str = "fuzz-thumbor-key";
const DIALECT_HEX: &str = "66757a7a";

fn corpus(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(name);
    std::fs::read_to_string(path)
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Characters a request target may carry as is (anything else would be a
/// malformed request line, refused by the HTTP parser before Kiln sees it).
const URL_CHARS: &[u8] = b"abcxyzAZ0129./%-_~:,?&=+;@!$'()*25fFeE";

fn mutate(rng: &mut StdRng, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..rng.random_range(1..6) {
        let pos = rng.random_range(0..=bytes.len());
        let c = URL_CHARS[rng.random_range(0..URL_CHARS.len())];
        match rng.random_range(0..3) {
            0 => bytes.insert(pos, c),
            1 if pos < bytes.len() => {
                bytes.remove(pos);
            }
            _ if pos < bytes.len() => bytes[pos] = c,
            _ => bytes.push(c),
        }
    }
    String::from_utf8_lossy(&bytes)
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .collect()
}

/// What no response body may contain: it would be an internal error leaking.
const INTERNAL: &[&str] = &[
    "sqlx",
    "panicked",
    "dispatch failure",
    "database",
    "lapin",
    "/root/",
    "src/",
    "backtrace",
];

/// The run's seed: `KILN_FUZZ_SEED`, else a random one (printed, to replay).
fn seed() -> u64 {
    let seed = std::env::var("KILN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>());
    eprintln!("fuzz seed {seed} (KILN_FUZZ_SEED={seed} replays it)");
    seed
}

/// Every request passed, and the api is alive with no panic in its log.
fn all_passed(seed: u64, results: Vec<anyhow::Result<()>>, api: &mut Process) {
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect();
    assert!(
        failures.is_empty(),
        "seed {seed}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(api.is_running(), "the api survived");
    assert!(!api.log_contains("panicked"), "no handler panicked");
}

async fn check(api: &Process, target: String) -> anyhow::Result<()> {
    let target = if target.starts_with('/') {
        target
    } else {
        format!("/{target}")
    };
    let (status, head, body) = api.raw_get_with_head(&target).await?;
    // The one 5xx the contract has for a client: overloaded (an empty
    // captcha pool, a full wait queue), always with Retry-After.
    let overloaded = status == 503 && head.to_ascii_lowercase().contains("\r\nretry-after:");
    anyhow::ensure!(
        status < 500 || overloaded,
        "{target} answered {status}: {head}\n{body}"
    );
    let lower = body.to_lowercase();
    if let Some(word) = INTERNAL.iter().find(|w| lower.contains(*w)) {
        anyhow::bail!("{target} leaked {word:?}: {body}");
    }
    Ok(())
}

#[tokio::test]
async fn fuzzed_requests_never_get_a_5xx_or_internal_text() -> anyhow::Result<()> {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let env = TestEnv::new().await?;
    let mut api = env
        .spawn_api(&[
            ("KILN_MISS_WAIT_MS", "200"),
            ("KILN_CARD_PREVIEW", "true"),
            ("KILN_THUMBOR_KEY", DIALECT_KEY),
            ("KILN_IMGPROXY_KEY", DIALECT_HEX),
            ("KILN_IMGPROXY_SALT", DIALECT_HEX),
        ])
        .await?;

    let requests = corpus("requests.txt");
    let options = corpus("options.txt");
    let paths = corpus("paths.txt");
    let mut targets: Vec<String> = requests.clone();
    for _ in 0..300 {
        let base = requests[rng.random_range(0..requests.len())].clone();
        targets.push(mutate(&mut rng, &base));
    }
    for _ in 0..300 {
        let option = options[rng.random_range(0..options.len())].clone();
        let option = mutate(&mut rng, &option);
        let path = paths[rng.random_range(0..paths.len())].clone();
        let path = if rng.random_bool(0.5) {
            mutate(&mut rng, &path)
        } else {
            path
        };
        targets.push(env.signed_path(&option, &env.source(&path)));
    }
    for option in &options {
        targets.push(env.signed_path(option, &env.source("missing.jpg")));
    }
    // The dialects, mutated and then validly signed, so the mutations reach
    // their option parsers.
    let thumbor = ThumborSigning {
        keys: vec![DIALECT_KEY.as_bytes().to_vec()],
        ..ThumborSigning::default()
    };
    let imgproxy = ImgproxySigning {
        keys: vec![ImgproxyKey {
            key: hex::decode(DIALECT_HEX)?,
            salt: hex::decode(DIALECT_HEX)?,
        }],
        signature_size: 32,
        allow_insecure: false,
    };
    for line in corpus("thumbor.txt") {
        for _ in 0..8 {
            let path = mutate(&mut rng, &line);
            let sig = thumbor.sign(&path).unwrap_or_default();
            targets.push(format!("/t/{sig}/{path}"));
        }
    }
    for line in corpus("imgproxy.txt") {
        for _ in 0..8 {
            let path = mutate(&mut rng, &line);
            let sig = imgproxy.sign(&format!("/{path}")).unwrap_or_default();
            targets.push(format!("/p/{sig}/{path}"));
        }
    }
    let results: Vec<anyhow::Result<()>> = stream::iter(targets)
        .map(|target| check(&api, target))
        .buffer_unordered(8)
        .collect()
        .await;
    all_passed(seed, results, &mut api);
    env.cleanup().await;
    Ok(())
}

/// A request from `bodies.txt`: method, path and body.
fn parse_body_line(line: &str, source_prefix: &str) -> Option<(String, String, String)> {
    let line = line.replace("{src}", source_prefix);
    let (head, body) = line.split_once('\t')?;
    let (method, path) = head.split_once(' ')?;
    Some((method.to_owned(), path.to_owned(), body.to_owned()))
}

async fn check_v1(
    client: &reqwest::Client,
    api: &Process,
    (method, path, body): (String, String, String),
) -> anyhow::Result<()> {
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let Ok(url) = reqwest::Url::parse(&api.url(&path)) else {
        return Ok(());
    };
    let response = client
        .request(method.clone(), url)
        .bearer_auth(kiln_e2e::ADMIN_KEY)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await?;
    anyhow::ensure!(
        status < 500,
        "{method} {path} {body:?} answered {status}: {text}"
    );
    if status >= 400 {
        anyhow::ensure!(
            content_type == "application/problem+json",
            "{method} {path} {body:?}: {status} as {content_type:?}: {text}"
        );
    }
    let lower = text.to_lowercase();
    if let Some(word) = INTERNAL.iter().find(|w| lower.contains(*w)) {
        anyhow::bail!("{method} {path} leaked {word:?}: {text}");
    }
    Ok(())
}

/// The `/v1` endpoints that take bodies (purge, upload, jobs, partners,
/// links), with the corpus's bodies and their mutations, authenticated:
/// never a 5xx, every error a problem.
#[tokio::test]
async fn fuzzed_v1_bodies_never_get_a_5xx_and_errors_are_problems() -> anyhow::Result<()> {
    let seed = seed();
    let mut rng = StdRng::seed_from_u64(seed);
    let env = TestEnv::new().await?;
    let mut api = env.spawn_api(&[]).await?;
    let lines = corpus("bodies.txt");
    let prefix = env.source("");
    let mut requests: Vec<(String, String, String)> = lines
        .iter()
        .filter_map(|line| parse_body_line(line, &prefix))
        .collect();
    assert!(requests.len() >= 25, "{}", requests.len());
    for _ in 0..200 {
        let (method, path, body) = requests[rng.random_range(0..requests.len())].clone();
        requests.push((method, path, mutate(&mut rng, &body)));
    }
    let client = kiln_e2e::http();
    let results: Vec<anyhow::Result<()>> = stream::iter(requests)
        .map(|request| check_v1(&client, &api, request))
        .buffer_unordered(4)
        .collect()
        .await;
    all_passed(seed, results, &mut api);
    env.cleanup().await;
    Ok(())
}
