//! The hostile-input suite: each attack of the security review made against
//! a running api and worker (real PostgreSQL, RabbitMQ, Garage, Chromium),
//! asserting that the service keeps answering other users, that memory stays
//! bounded (RSS sampled) and that nothing is lost.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use kiln_e2e::{http, images, status_once_ready, Process, TestEnv};

mod addresses;
mod bodies;
mod browser;
mod bulk;
mod captchas;
mod connections;
mod files;
mod heads;
mod partner_keys;
mod public_cards;
mod settings;

/// Status and body of `GET url`.
pub(crate) async fn status_of(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<(u16, String)> {
    let response = client.get(url).send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// A TCP connection to the api, from `from` (an address of 127.0.0.0/8, so
/// a test can be several clients) or the default source address.
pub(crate) async fn connect(
    api: &Process,
    from: Option<IpAddr>,
) -> anyhow::Result<tokio::net::TcpStream> {
    let addr: std::net::SocketAddr = api.base_url.trim_start_matches("http://").parse()?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(ip) = from {
        socket.bind(std::net::SocketAddr::new(ip, 0))?;
    }
    Ok(socket.connect(addr).await?)
}

/// Sends `request` as is and returns what the api answered up to the end
/// of its response headers (or all it sent before closing, or `timeout`).
pub(crate) async fn raw_exchange(
    api: &Process,
    from: Option<IpAddr>,
    request: &[u8],
    timeout: Duration,
) -> anyhow::Result<String> {
    let mut stream = connect(api, from).await?;
    stream.write_all(request).await?;
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(timeout, read)
        .await
        .context("the api did not answer in time")??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// A signed image URL that is a hit (rendered once here): what "other
/// users" ask for while an attack runs. Needs a worker.
pub(crate) async fn warm_hit(env: &TestEnv, api: &Process) -> anyhow::Result<String> {
    let source = env
        .upload("everyday.jpg", images::jpeg(320, 240), "image/jpeg")
        .await?;
    let url = api.url(&env.signed_path("160x120", &source));
    assert_eq!(status_once_ready(&http(), &url).await?, 302);
    Ok(url)
}
