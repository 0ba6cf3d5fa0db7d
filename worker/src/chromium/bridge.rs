//! Relays DevTools messages between Chromium's `--remote-debugging-pipe`
//! (NUL-terminated JSON on fds 3 and 4) and the WebSocket chromiumoxide
//! connects to.
//!
//! The socket listens on 127.0.0.1 at a random port under a random 128-bit
//! path, and closes as soon as the worker's own connection is established:
//! unlike Chromium's `--remote-debugging-port`, there is no `/json/version`
//! that tells a local process where to connect, and nobody can connect
//! after the worker. A connection with the wrong path is refused and the
//! bridge keeps waiting for the right one.
//!
//! Starting, the bridge asks the browser for its version over the pipe and
//! waits for the answer: that is how a started browser is known to be ready
//! (and one that died at once, e.g. refused its sandbox, is known not to be).

use std::os::fd::OwnedFd;
use std::time::Duration;

use anyhow::{bail, Context as _};
use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::Message;
use futures_util::StreamExt as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::unix::pipe;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The id of the readiness probe (chromiumoxide counts its own from 0).
const PROBE: &[u8] = br#"{"id":4000000000,"method":"Browser.getVersion"}"#;
/// Largest command the worker may send (a card page's HTML is far less).
const MAX_COMMAND: usize = 16 << 20;

pub struct Bridge {
    url: String,
    task: Option<JoinHandle<()>>,
}

impl Bridge {
    /// Waits (at most `timeout`) for the browser to answer on the pipe, then
    /// listens for the worker's connection.
    pub async fn start(
        commands: OwnedFd,
        answers: OwnedFd,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut to_browser =
            pipe::Sender::from_owned_fd(commands).context("opening the command pipe")?;
        let mut from_browser = BufReader::new(
            pipe::Receiver::from_owned_fd(answers).context("opening the answer pipe")?,
        );
        let mut probe = PROBE.to_vec();
        probe.push(0);
        let mut answer = Vec::new();
        let ready = tokio::time::timeout(timeout, async {
            to_browser.write_all(&probe).await?;
            from_browser.read_until(0, &mut answer).await
        })
        .await;
        match ready {
            Ok(Ok(n)) if n > 0 => {}
            Ok(Ok(_)) => bail!("the browser closed its DevTools pipe"),
            Ok(Err(err)) => return Err(anyhow::Error::new(err).context("the DevTools pipe failed")),
            Err(_) => bail!("the browser did not answer within {timeout:?}"),
        }
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("listening for the DevTools connection")?;
        let port = listener.local_addr()?.port();
        let path = format!("/devtools/browser/{}", random_hex());
        let url = format!("ws://127.0.0.1:{port}{path}");
        let task = tokio::spawn(async move {
            if let Some(ws) = accept_worker(&listener, &path).await {
                drop(listener);
                relay(ws, to_browser, from_browser).await;
            }
        });
        Ok(Self {
            url,
            task: Some(task),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops relaying (the browser is being killed).
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop();
    }
}

fn random_hex() -> String {
    let mut raw = [0u8; 16];
    rand::fill(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

type Ws = async_tungstenite::WebSocketStream<
    async_tungstenite::tokio::TokioAdapter<tokio::net::TcpStream>,
>;

/// The first connection that asks for `path`; others are refused.
async fn accept_worker(listener: &TcpListener, path: &str) -> Option<Ws> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_COMMAND))
        .max_frame_size(Some(MAX_COMMAND));
    loop {
        let (stream, _) = listener.accept().await.ok()?;
        // The handshake callback's signature is tungstenite's.
        #[allow(clippy::result_large_err)]
        let check = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
            if request.uri().path() == path {
                Ok(response)
            } else {
                let mut refused = ErrorResponse::new(None);
                *refused.status_mut() = async_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
                Err(refused)
            }
        };
        match async_tungstenite::tokio::accept_hdr_async_with_config(stream, check, Some(config))
            .await
        {
            Ok(ws) => return Some(ws),
            Err(err) => tracing::warn!(%err, "refused a connection to a browser's DevTools bridge"),
        }
    }
}

async fn relay(ws: Ws, mut to_browser: pipe::Sender, mut from_browser: BufReader<pipe::Receiver>) {
    let (mut sink, mut stream) = ws.split();
    let commands = async {
        while let Some(Ok(message)) = stream.next().await {
            let bytes = match message {
                Message::Text(text) => text.as_bytes().to_vec(),
                Message::Binary(bytes) => bytes.to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            if to_browser.write_all(&bytes).await.is_err()
                || to_browser.write_all(&[0]).await.is_err()
            {
                break;
            }
        }
    };
    let answers = async {
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            buf.clear();
            match from_browser.read_until(0, &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if buf.last() == Some(&0) {
                buf.pop();
            }
            let text = String::from_utf8_lossy(&buf).into_owned();
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
        // The browser is gone: tell chromiumoxide at once.
        let _ = sink.close(None).await;
    };
    tokio::select! {
        () = commands => {}
        () = answers => {}
    }
}
