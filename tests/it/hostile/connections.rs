//! Slow-loris: hundreds of connections that send their headers a byte at a
//! time. The api closes them at the header timeout, holds at most its
//! per-client cap of them at once, and everyone else keeps getting 302s.

use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use kiln_e2e::{http, TestEnv};

use super::{connect, warm_hit};

#[tokio::test]
async fn slow_loris_connections_do_not_stop_other_clients() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    let api = env
        .spawn_api(&[
            ("KILN_HTTP_HEADER_TIMEOUT_MS", "2000"),
            ("KILN_HTTP_MAX_CONNECTIONS_PER_CLIENT", "100"),
        ])
        .await?;
    let _worker = env.spawn_worker(&[]).await?;
    let hit = warm_hit(&env, &api).await?;
    let rss = api.sample_rss();

    // 300 connections from another address, each trickling its headers.
    let attacker: IpAddr = "127.0.0.2".parse()?;
    let mut lorises = Vec::new();
    for _ in 0..300 {
        let stream = connect(&api, Some(attacker)).await?;
        lorises.push(tokio::spawn(trickle(stream)));
    }
    // Meanwhile: ordinary requests, all answered.
    let client = http();
    for i in 0..40 {
        let response = client.get(&hit).send().await?;
        assert_eq!(response.status(), 302, "request {i} during the attack");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut refused = 0;
    let mut timed_out = 0;
    for loris in lorises {
        match loris.await?? {
            Ending::Refused => refused += 1,
            Ending::ClosedByServer => timed_out += 1,
        }
    }
    assert_eq!(
        refused + timed_out,
        300,
        "every slow connection was ended by the api"
    );
    assert!(refused >= 200, "{refused} refused over the per-client cap");
    assert!(
        timed_out >= 1,
        "those admitted were closed at the header timeout"
    );
    let peak = rss.stop().await;
    assert!(peak < 100.0, "api RSS peaked at {peak:.0} MiB");
    assert_eq!(client.get(&hit).send().await?.status(), 302);
    env.cleanup().await;
    Ok(())
}

enum Ending {
    /// Answered 503 at once: the client had its share of connections.
    Refused,
    /// Closed while the headers were still coming.
    ClosedByServer,
}

/// Sends a request's headers one byte every 200 ms, for at most 8 s.
async fn trickle(mut stream: tokio::net::TcpStream) -> anyhow::Result<Ending> {
    let request = b"GET /healthz HTTP/1.1\r\nHost: kiln\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut answer = [0u8; 256];
    for byte in request.iter().cycle().take(40) {
        if stream.write_all(&[*byte]).await.is_err() {
            return Ok(Ending::ClosedByServer);
        }
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut answer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(Ending::ClosedByServer),
            Ok(Ok(n)) => {
                let text = String::from_utf8_lossy(&answer[..n]);
                if text.starts_with("HTTP/1.1 503") && text.contains("too many connections") {
                    return Ok(Ending::Refused);
                }
                // A 408 for the headers that never finished, then the close.
                return Ok(Ending::ClosedByServer);
            }
            Err(_) => {}
        }
    }
    anyhow::bail!("a slow connection was still open after 8 s")
}
