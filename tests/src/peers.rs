//! URLs written by the peers' own client libraries: thumbor's `libthumbor`
//! (Python) and imgproxy's `@imgproxy/imgproxy-node`, installed by
//! `deploy/local/test.sh` (`KILN_PEER_PYTHONPATH`, `KILN_PEER_NODE_PATH`).
//! Each takes a list of the library's own option objects and returns one
//! URL path per object, so tests check Kiln against what real users'
//! code produces rather than against Kiln's own signer.

use std::io::Write as _;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};
use serde_json::Value;

fn home_dir(sub: &str) -> String {
    format!("{}/{sub}", std::env::var("HOME").unwrap_or_default())
}

fn run(mut command: Command, input: &Value, what: &str) -> anyhow::Result<Vec<String>> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.to_string().as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "{what} failed (installed by deploy/local/test.sh?): {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?
        .lines()
        .map(str::to_owned)
        .collect())
}

const LIBTHUMBOR: &str = r#"
import json, sys
from libthumbor import CryptoURL
spec = json.load(sys.stdin)
crypto = CryptoURL(key=spec["key"])
for options in spec["urls"]:
    print(crypto.generate(**options))
"#;

/// `CryptoURL(key).generate(**options)` for each options object.
pub fn libthumbor_urls(key: &str, options: &[Value]) -> anyhow::Result<Vec<String>> {
    let path = std::env::var("KILN_PEER_PYTHONPATH")
        .unwrap_or_else(|_| home_dir(".cache/kiln-peers/python"));
    let mut command = Command::new("python3");
    command.arg("-c").arg(LIBTHUMBOR).env("PYTHONPATH", path);
    run(
        command,
        &serde_json::json!({ "key": key, "urls": options }),
        "libthumbor",
    )
}

const IMGPROXY_NODE: &str = r#"
const { generateImageUrl } = require("@imgproxy/imgproxy-node");
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const spec = JSON.parse(input);
  for (const request of spec.urls) {
    console.log(generateImageUrl({ endpoint: "", key: spec.key, salt: spec.salt, ...request }));
  }
});
"#;

/// `generateImageUrl({ endpoint: "", key, salt, ...request })` for each
/// request object (`{ url, options }`); paths start with the signature.
pub fn imgproxy_node_urls(
    key_hex: &str,
    salt_hex: &str,
    requests: &[Value],
) -> anyhow::Result<Vec<String>> {
    let path = std::env::var("KILN_PEER_NODE_PATH")
        .unwrap_or_else(|_| home_dir(".cache/kiln-bench/node_modules"));
    let mut command = Command::new("node");
    command.arg("-e").arg(IMGPROXY_NODE).env("NODE_PATH", path);
    run(
        command,
        &serde_json::json!({ "key": key_hex, "salt": salt_hex, "urls": requests }),
        "@imgproxy/imgproxy-node",
    )
}
