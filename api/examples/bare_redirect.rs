//! The benchmark's baseline: a bare axum handler answering a fixed 302, the
//! ceiling for Kiln's hit path on the same machine (see `bench/hit_path.sh`).

use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".to_owned());
    let app = Router::new().route(
        "/{*rest}",
        get(|| async {
            (
                StatusCode::FOUND,
                [(
                    header::LOCATION,
                    "http://127.0.0.1:3900/kiln-cache/r/ab/abc",
                )],
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("bare redirect on http://{addr}");
    axum::serve(listener, app).await
}
