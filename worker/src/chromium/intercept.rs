//! Request interception: a card page is offline. Every request the page makes
//! is paused; requests for the template's own origin are answered from the
//! template's files in memory (and the originals fetched for this card), every
//! other request — another host, a `file://` URL, anything — fails as blocked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use chromiumoxide::cdp::browser_protocol::fetch::{
    EventRequestPaused, FailRequestParams, FulfillRequestParams, HeaderEntry,
};
use chromiumoxide::cdp::browser_protocol::network::ErrorReason;
use chromiumoxide::listeners::EventStream;
use chromiumoxide::Page;
use futures_util::StreamExt as _;
use percent_encoding::percent_decode_str;

use kiln_core::cards::{Asset, CardTemplate, ASSET_ORIGIN};

use crate::metrics as m;

/// Where a page's `original`-kind parameters point.
pub const ORIGINALS_PATH: &str = "_originals/";

/// What the page may load while it renders one card.
pub struct PageContent {
    pub template: Arc<CardTemplate>,
    /// Originals-bucket objects named by this card's parameters, by key.
    pub originals: HashMap<String, Asset>,
}

/// Scripts stay off unless the template opts in; everything is same-origin.
fn csp(scripts: bool) -> String {
    let script = if scripts {
        "'self' 'unsafe-inline'"
    } else {
        "'none'"
    };
    format!(
        "default-src 'none'; img-src {ASSET_ORIGIN} data:; font-src {ASSET_ORIGIN} data:; \
         style-src {ASSET_ORIGIN} 'unsafe-inline'; script-src {script}"
    )
}

enum Answer {
    Shell(bool),
    Asset(Asset),
    NotFound,
    Blocked,
}

fn answer(url: &str, content: Option<&PageContent>) -> Answer {
    let Some(path) = url
        .strip_prefix(ASSET_ORIGIN)
        .and_then(|p| p.strip_prefix('/'))
    else {
        return Answer::Blocked;
    };
    let Some(content) = content else {
        return Answer::NotFound;
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let template = &content.template;
    if let Some(key) = path.strip_prefix(ORIGINALS_PATH) {
        let key = percent_decode_str(key).decode_utf8_lossy();
        return content
            .originals
            .get(key.as_ref())
            .map_or(Answer::NotFound, |a| Answer::Asset(a.clone()));
    }
    if let Some(shared) = path.strip_prefix("_shared/") {
        return template
            .assets
            .get(&format!("_shared/{shared}"))
            .map_or(Answer::NotFound, |a| Answer::Asset(a.clone()));
    }
    let Some(rest) = path
        .strip_prefix(template.name.as_str())
        .and_then(|r| r.strip_prefix('/'))
    else {
        return Answer::NotFound;
    };
    if rest.is_empty() {
        return Answer::Shell(template.manifest.scripts);
    }
    let rest = percent_decode_str(rest).decode_utf8_lossy();
    template
        .assets
        .get(rest.as_ref())
        .map_or(Answer::NotFound, |a| Answer::Asset(a.clone()))
}

pub async fn serve(
    page: Page,
    mut paused: EventStream<EventRequestPaused>,
    content: Arc<Mutex<Option<Arc<PageContent>>>>,
) {
    let b64 = base64::engine::general_purpose::STANDARD;
    while let Some(event) = paused.next().await {
        let current = content
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let id = event.request_id.clone();
        let reply = |status: i64, content_type: &str, body: &[u8], extra: Option<HeaderEntry>| {
            let mut fulfil = FulfillRequestParams::new(id.clone(), status);
            // A browser lives no longer than one version of the templates, so
            // its memory cache may keep fonts and images between cards.
            let cache = if status == 200 && extra.is_none() {
                "public, max-age=31536000, immutable"
            } else {
                "no-store"
            };
            let mut headers = vec![
                HeaderEntry::new("Content-Type", content_type),
                HeaderEntry::new("Cache-Control", cache),
            ];
            headers.extend(extra);
            fulfil.response_headers = Some(headers);
            fulfil.body = Some(b64.encode(body).into());
            fulfil
        };
        let result = match answer(&event.request.url, current.as_deref()) {
            Answer::Shell(scripts) => {
                let csp = HeaderEntry::new("Content-Security-Policy", csp(scripts));
                let shell = b"<!doctype html><html><head></head><body></body></html>";
                send(
                    &page,
                    reply(200, "text/html; charset=utf-8", shell, Some(csp)),
                )
                .await
            }
            Answer::Asset(asset) => {
                send(&page, reply(200, asset.content_type, &asset.bytes, None)).await
            }
            Answer::NotFound => send(&page, reply(404, "text/plain", b"not found", None)).await,
            Answer::Blocked => {
                metrics::counter!(m::CARD_BLOCKED_REQUESTS).increment(1);
                tracing::debug!(url = %event.request.url, "blocked a card page request");
                send(
                    &page,
                    FailRequestParams::new(id.clone(), ErrorReason::BlockedByClient),
                )
                .await
            }
        };
        if result.is_err() {
            tracing::debug!("could not answer an intercepted request");
        }
    }
}

async fn send<C>(page: &Page, command: C) -> Result<(), ()>
where
    C: chromiumoxide::types::Command,
{
    match tokio::time::timeout(Duration::from_secs(2), page.execute(command)).await {
        Ok(Ok(_)) => Ok(()),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_core::cards::Templates;

    fn content() -> PageContent {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates");
        let templates = Templates::load(&root).expect("repository templates load");
        let template = templates.get("stats").expect("stats template").clone();
        let mut originals = HashMap::new();
        originals.insert(
            "people/a b.png".to_owned(),
            Asset {
                bytes: bytes::Bytes::from_static(b"png"),
                content_type: "image/png",
            },
        );
        PageContent {
            template,
            originals,
        }
    }

    #[test]
    fn only_the_template_origin_is_answered() {
        let c = content();
        let at = |url: &str| answer(url, Some(&c));
        assert!(matches!(
            at("https://card.kiln/stats/"),
            Answer::Shell(false)
        ));
        assert!(matches!(
            at("https://card.kiln/stats/card.css"),
            Answer::Asset(_)
        ));
        assert!(matches!(
            at("https://card.kiln/_shared/fonts/inter-latin-700-normal.woff2"),
            Answer::Asset(_)
        ));
        assert!(matches!(
            at("https://card.kiln/_originals/people/a%20b.png"),
            Answer::Asset(_)
        ));
        assert!(matches!(
            at("https://card.kiln/_originals/people/other.png"),
            Answer::NotFound
        ));
        assert!(matches!(
            at("https://card.kiln/article/card.css"),
            Answer::NotFound
        ));
        assert!(matches!(
            at("https://card.kiln/stats/../../etc/passwd"),
            Answer::NotFound
        ));
        for blocked in [
            "http://127.0.0.1:9/x.png",
            "https://card.kiln.evil.example/stats/card.css",
            "file:///etc/passwd",
            "https://example.com/",
        ] {
            assert!(matches!(at(blocked), Answer::Blocked), "{blocked}");
        }
    }
}
