//! The HTTP listener: hyper's HTTP/1 server with the limits `axum::serve`
//! leaves out, so slow or greedy clients cannot hold the api's sockets.
//!
//! - a header-read timeout (hyper's own, with a timer): a request's headers
//!   must arrive within it, and a kept-alive connection waiting for its next
//!   request closes after it too;
//! - an idle timeout on the socket: no byte read or written for that long
//!   (a stalled upload, a client that stops reading a streamed response)
//!   closes the connection. Time the api itself spends on a request (a miss
//!   waiting for its render) is not the client's idleness and does not
//!   count: the clock only runs while no handler is working;
//! - a request-body timeout (a tower layer in the router);
//! - a cap on open connections, and a smaller one per client address, so
//!   one client cannot take every socket. Trusted proxies carry many
//!   clients and are held only to the total cap.
//!
//! Shutdown: on cancel the listener closes, every connection finishes the
//! request it is serving (hyper's graceful shutdown), and `serve` returns once
//! all are done or the drain bound passes.

use std::collections::HashMap;
use std::future::Future as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::plumbing::client_addr::TrustedProxies;

/// Connection limits and timeouts (`KILN_HTTP_*`).
#[derive(Clone, Debug)]
pub struct ServerLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// How long a stopping server waits for requests in flight.
    pub drain_timeout: Duration,
}

/// Open connections per client address.
#[derive(Default)]
struct PerClient {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One client's connection, counted while it lives.
struct ClientSlot {
    clients: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: self.clone(),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `app` on `listener` until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    proxies: TrustedProxies,
    cancel: CancellationToken,
) -> io::Result<()> {
    let total = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Arc::new(PerClient::default());
    let tracker = TaskTracker::new();
    loop {
        // At the total cap, stop accepting: new clients wait in the backlog.
        let permit = tokio::select! {
            () = cancel.cancelled() => break,
            permit = total.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = if proxies.contains(peer.ip()) {
            None
        } else {
            match clients.enter(peer.ip(), limits.max_connections_per_client) {
                Some(slot) => Some(slot),
                None => {
                    metrics::counter!(crate::plumbing::metrics::CONNECTIONS_REFUSED).increment(1);
                    tracker.spawn(refuse(stream));
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let limits = limits.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let _held = (permit, slot);
            serve_connection(stream, peer, app, &limits, &cancel).await;
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(limits.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tracker.len(),
            "requests still in flight after the drain timeout"
        );
    }
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: &ServerLimits,
    cancel: &CancellationToken,
) {
    let handling = Handling::default();
    let in_handler = handling.clone();
    let service =
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let working = in_handler.enter();
            let response = tower::ServiceExt::oneshot(app.clone(), request);
            async move {
                let response = response.await;
                drop(working);
                response
            }
        });
    let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout, handling));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => log_end(result),
        () = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            log_end(connection.await);
        }
    }
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(err) = result {
        // Timeouts and resets are the client's business; keep them quiet.
        tracing::debug!(%err, "connection ended");
    }
}

/// Over the per-client cap: a short answer, then the socket is closed.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncWriteExt as _;
    let answer = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
                   Content-Type: text/plain\r\nContent-Length: 33\r\n\r\ntoo many connections, retry later";
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer)).await;
    let _ = stream.shutdown().await;
}

/// Requests of one connection whose handler has not answered yet.
#[derive(Clone, Default)]
struct Handling(Arc<AtomicUsize>);

/// One request in its handler; dropped when the response head is ready.
struct Working(Arc<AtomicUsize>);

impl Handling {
    fn enter(&self) -> Working {
        self.0.fetch_add(1, Ordering::Relaxed);
        Working(self.0.clone())
    }

    fn busy(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }
}

impl Drop for Working {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket that fails with `TimedOut` once neither reading nor writing has
/// made progress for `limit` while one of them waits and no handler of the
/// connection is working (the silence is then the client's).
struct IdleTimeout<S> {
    inner: S,
    limit: Duration,
    timer: Pin<Box<Sleep>>,
    handling: Handling,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, limit: Duration, handling: Handling) -> Self {
        Self {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            handling,
        }
    }

    fn progressed(&mut self) {
        self.timer.as_mut().reset(Instant::now() + self.limit);
    }

    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.timer.as_mut().poll(cx).is_ready() {
            if !self.handling.busy() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout"));
            }
            // The api is the one taking its time: start a fresh period.
            self.progressed();
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this.check(cx) {
                Ok(()) => Poll::Pending,
                Err(err) => Poll::Ready(Err(err)),
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    this.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this.check(cx) {
                Ok(()) => Poll::Pending,
                Err(err) => Poll::Ready(Err(err)),
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => match this.check(cx) {
                Ok(()) => Poll::Pending,
                Err(err) => Poll::Ready(Err(err)),
            },
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn an_idle_socket_times_out_and_a_busy_one_does_not() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = IdleTimeout::new(server, Duration::from_millis(100), Handling::default());
        let mut client = client;
        let mut buf = [0u8; 4];
        // Bytes every 50 ms keep it alive past the limit…
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            client.write_all(b"x").await.unwrap();
            server.read_exact(&mut buf[..1]).await.unwrap();
        }
        // …silence does not.
        let err = server.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    fn limits(idle: Duration) -> ServerLimits {
        ServerLimits {
            header_timeout: Duration::from_secs(5),
            idle_timeout: idle,
            max_connections: 16,
            max_connections_per_client: 16,
            drain_timeout: Duration::from_secs(1),
        }
    }

    /// A handler slower than the idle limit (a miss waiting for its render)
    /// still answers on its connection; once answered, a silent client's
    /// kept-alive connection is closed by the same limit.
    #[tokio::test]
    async fn a_slow_handler_is_not_the_clients_idleness() {
        let app = Router::new().route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "done"
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            app,
            limits(Duration::from_millis(100)),
            TrustedProxies::default(),
            cancel.clone(),
        ));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 512];
        while !answer.ends_with(b"done") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the answer: {answer:?}");
            answer.extend_from_slice(&buf[..n]);
        }
        assert!(answer.starts_with(b"HTTP/1.1 200"));
        let closed = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "an idle kept-alive connection is closed: {closed:?}"
        );
        cancel.cancel();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn connections_are_counted_per_client() {
        let clients = Arc::new(PerClient::default());
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let first = clients.enter(ip, 2).unwrap();
        let _second = clients.enter(ip, 2).unwrap();
        assert!(clients.enter(ip, 2).is_none(), "third over the cap");
        assert!(clients.enter("192.0.2.8".parse().unwrap(), 2).is_some());
        drop(first);
        assert!(
            clients.enter(ip, 2).is_some(),
            "a closed one frees its place"
        );
    }
}
