//! Requests made with a partner key: the key is found (`?key=`, the
//! `/originals/{key}/…` path segment, `X-Kiln-Key`, or `Authorization: Bearer
//! kp_…`), resolved (cached for `KILN_PARTNER_CACHE_SECS`), held to the
//! partner's rate and monthly quota, and the request metered whatever its
//! outcome. The key is taken out of the URI before the handler runs, so
//! signatures over a query never see it. Requests without a key pass
//! untouched; a key that is unknown or revoked is refused (403, or 404 with
//! `KILN_PARTNER_DENY_STATUS=404`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{Datelike as _, TimeZone as _, Utc};

use kiln_infra::partners::{self, KeyOwner, KEY_PREFIX};

use crate::partners::metering::Access;
use crate::plumbing::client_addr::ClientAddr;
use crate::plumbing::error::ApiError;
use crate::plumbing::metrics as m;
use crate::plumbing::rate_limit::Rate;
use crate::state::{AppState, SharedState};

/// How many bytes a response delivered, when that is not its body (a redirect
/// to an original counts the original's size).
#[derive(Clone, Copy, Debug)]
pub struct DeliveredBytes(pub u64);

/// A resolved key, as handlers find it in the request's extensions.
pub type PartnerKey = Arc<KeyOwner>;

/// The header a key may also come in.
pub const KEY_HEADER: &str = "x-kiln-key";

/// How long a quota's flushed total is trusted before it is read again.
const QUOTA_REFRESH: Duration = Duration::from_secs(10);

/// What kind of request a path is, for metering; `None`: never metered.
fn kind_of(path: &str) -> Option<&'static str> {
    let kinds = [
        ("/originals/", "original"),
        ("/img/", "image"),
        ("/resize/", "image"),
        ("/crop/", "image"),
        ("/card/", "card"),
        ("/v1/jobs", "job"),
        ("/v1/originals/", "upload"),
        ("/v1/purge", "purge"),
        ("/v1/usage", "report"),
        ("/usage", "report"),
    ];
    kinds
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix))
        .map(|(_, kind)| *kind)
}

/// The presented key and the URI with the key taken out of it.
fn take_key(uri: &Uri, headers: &axum::http::HeaderMap) -> Option<(String, Uri)> {
    let path = uri.path();
    let query = uri.query().unwrap_or("");
    let from_header =
        || headers.contains_key(KEY_HEADER) || headers.contains_key(header::AUTHORIZATION);
    // Most requests carry no key at all: no allocation for them.
    if !query.contains("key=") && !path.starts_with("/originals/") && !from_header() {
        return None;
    }
    let mut key = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter(|pair| match pair.strip_prefix("key=") {
            Some(value) if key.is_none() => {
                key = Some(value.to_owned());
                false
            }
            _ => true,
        })
        .collect();
    let mut new_path = path.to_owned();
    if key.is_none() {
        if let Some(rest) = path.strip_prefix("/originals/") {
            if let Some((first, object)) = rest.split_once('/') {
                if first.starts_with(KEY_PREFIX) {
                    key = Some(first.to_owned());
                    new_path = format!("/originals/{object}");
                }
            }
        }
    }
    if key.is_none() {
        key = headers
            .get(KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| {
                headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .filter(|k| k.starts_with(KEY_PREFIX))
                    .map(str::to_owned)
            });
    }
    let key = key?;
    let rebuilt = if kept.is_empty() {
        new_path
    } else {
        format!("{new_path}?{}", kept.join("&"))
    };
    let uri = rebuilt.parse().unwrap_or_else(|_| uri.clone());
    Some((key.trim().to_owned(), uri))
}

/// Resolved keys, briefly remembered, unknown ones too: a bounded cache
/// (CLOCK-Pro, so a flood of one-off keys cannot push the partners' own keys
/// out) keyed by the presented key itself, which the process sees anyway: no
/// hashing on the hit path. Only well-formed keys are looked up or cached; a
/// client's lookups of keys nobody has are rate-limited before Postgres.
pub struct KeyCache {
    entries: quick_cache::sync::Cache<String, Resolved>,
}

/// A key's owner (`None`: unknown or revoked) and when that was read.
type Resolved = (Option<PartnerKey>, Instant);

/// How a presented key was resolved.
enum Resolution {
    Known(PartnerKey),
    Unknown,
    /// A lookup the client may not make now (too many unknown keys).
    Limited(Duration),
}

impl KeyCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(capacity),
        }
    }

    async fn resolve(
        &self,
        state: &AppState,
        key: &str,
        client: std::net::IpAddr,
    ) -> Result<Resolution, sqlx::Error> {
        if !partners::is_key_shaped(key) {
            return Ok(Resolution::Unknown);
        }
        let ttl = state.config.partner_cache_ttl;
        let known =
            |owner: Option<PartnerKey>| owner.map_or(Resolution::Unknown, Resolution::Known);
        match self.entries.get(key) {
            Some((owner, at)) if at.elapsed() < ttl => return Ok(known(owner)),
            Some(_) => {
                self.entries.remove(key);
            }
            None => {}
        }
        // One lookup per key at a time: concurrent requests with the same
        // key wait for it instead of each asking Postgres.
        let guard = match self.entries.get_value_or_guard_async(key).await {
            Ok((owner, _)) => return Ok(known(owner)),
            Err(guard) => guard,
        };
        // A client that keeps presenting keys nobody has is refused before
        // Postgres once it is over its budget of unknown keys.
        let client = crate::plumbing::client_addr::limit_key(client);
        if let Err(wait) = state.unknown_key_limit.peek(client) {
            return Ok(Resolution::Limited(wait));
        }
        let owner = partners::find_key(&state.db, key).await?.map(Arc::new);
        if owner.is_none() {
            let _ = state.unknown_key_limit.check(client);
        }
        let _ = guard.insert((owner.clone(), Instant::now()));
        metrics::gauge!(m::PARTNER_KEY_CACHE).set(self.entries.len() as f64);
        Ok(known(owner))
    }

    /// Forgets every key (after a revocation or rotation through this process).
    pub fn clear(&self) {
        self.entries.clear();
    }
}

/// Monthly request counts per partner: the flushed total (re-read every
/// [`QUOTA_REFRESH`]) plus what this process admitted since. Approximate
/// across api processes by what the others admitted since their last flush.
#[derive(Default)]
pub struct QuotaBook {
    entries: Mutex<HashMap<i64, QuotaEntry>>,
}

struct QuotaEntry {
    flushed: i64,
    admitted_since: i64,
    read_at: Instant,
    month: u32,
}

impl QuotaBook {
    /// `Ok` and counts the request, or the seconds until the quota renews.
    async fn admit(
        &self,
        db: &sqlx::PgPool,
        owner: &KeyOwner,
    ) -> Result<Result<(), u64>, sqlx::Error> {
        self.admit_many(db, owner, 1).await
    }

    /// `Ok` and counts `n` requests (a bulk job's items), or the seconds
    /// until the quota renews; all or nothing.
    pub async fn admit_many(
        &self,
        db: &sqlx::PgPool,
        owner: &KeyOwner,
        n: i64,
    ) -> Result<Result<(), u64>, sqlx::Error> {
        let Some(quota) = owner.limits.monthly_quota else {
            return Ok(Ok(()));
        };
        let now = Utc::now();
        let month = now.year() as u32 * 12 + now.month0();
        let fresh = {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries
                .get(&owner.partner_id)
                .is_some_and(|e| e.read_at.elapsed() < QUOTA_REFRESH && e.month == month)
        };
        if !fresh {
            let flushed = partners::month_hits(db, owner.partner_id).await?;
            self.entries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    owner.partner_id,
                    QuotaEntry {
                        flushed,
                        admitted_since: 0,
                        read_at: Instant::now(),
                        month,
                    },
                );
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = entries.get_mut(&owner.partner_id) else {
            return Ok(Ok(()));
        };
        if entry.flushed + entry.admitted_since + n > quota {
            return Ok(Err(seconds_to_next_month()));
        }
        entry.admitted_since += n;
        Ok(Ok(()))
    }
}

fn seconds_to_next_month() -> u64 {
    let now = Utc::now();
    let (year, month) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0)
        .single()
        .map_or(3600, |next| (next - now).num_seconds().max(1) as u64)
}

pub async fn partner_access(
    State(state): State<SharedState>,
    Extension(ClientAddr(client)): Extension<ClientAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    // thumbor and imgproxy URLs are image requests, metered as /img/ is.
    let kind =
        kind_of(path).or_else(|| crate::routes::dialect::route(&state, path).map(|_| "image"));
    let Some(kind) = kind else {
        return next.run(request).await;
    };
    let Some((key, uri)) = take_key(request.uri(), request.headers()) else {
        return next.run(request).await;
    };
    *request.uri_mut() = uri;
    let owner = match state.partner_keys.resolve(&state, &key, client).await {
        Ok(Resolution::Known(owner)) => owner,
        Ok(Resolution::Unknown) => {
            metrics::counter!(m::PARTNER_KEYS_REFUSED).increment(1);
            return deny(&state);
        }
        Ok(Resolution::Limited(wait)) => {
            metrics::counter!(m::RATE_LIMITED, "limit" => "unknown_keys").increment(1);
            return ApiError::RateLimited {
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
            .into_response();
        }
        Err(err) => {
            return ApiError::dependency(err, state.config.retry_after_secs).into_response()
        }
    };
    let started = Instant::now();
    // Only the audit trail keeps the path and address of each access.
    let object = if state.meter.audits() {
        request.uri().path().to_owned()
    } else {
        String::new()
    };
    let response = match held_to_limits(&state, &owner).await {
        Ok(()) => {
            request.extensions_mut().insert(owner.clone());
            next.run(request).await
        }
        Err(refused) => refused.into_response(),
    };
    let bytes = response
        .extensions()
        .get::<DeliveredBytes>()
        .map(|b| b.0)
        .or_else(|| {
            response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
        })
        .unwrap_or(0);
    state.meter.record(&Access {
        partner_id: owner.partner_id,
        kind,
        status: response.status().as_u16(),
        bytes,
        duration: started.elapsed(),
        object: &object,
        client: &if state.meter.audits() {
            client.to_string()
        } else {
            String::new()
        },
    });
    response
}

async fn held_to_limits(state: &AppState, owner: &KeyOwner) -> Result<(), ApiError> {
    if let Some(per_second) = owner.limits.rate_per_second {
        let burst = owner.limits.burst.unwrap_or(per_second);
        let rate = Rate::per_second(per_second as u32, burst as u32);
        if let Err(wait) = state.partner_rate.check_rate(owner.partner_id, rate) {
            metrics::counter!(m::RATE_LIMITED, "limit" => "partner_rate").increment(1);
            return Err(ApiError::RateLimited {
                retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
            });
        }
    }
    match state.quotas.admit(&state.db, owner).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(retry_after)) => {
            metrics::counter!(m::RATE_LIMITED, "limit" => "partner_quota").increment(1);
            Err(ApiError::QuotaExceeded { retry_after })
        }
        Err(err) => Err(ApiError::dependency(err, state.config.retry_after_secs)),
    }
}

/// The answer to an unknown or revoked key.
pub fn deny(state: &AppState) -> Response {
    let status = state.config.partner_deny_status;
    if status == StatusCode::NOT_FOUND {
        crate::plumbing::problem::plain(status, "not-found", "not found".into())
    } else {
        crate::plumbing::problem::plain(status, "invalid-key", "invalid or revoked key".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn take(uri: &str, headers: &HeaderMap) -> Option<(String, String)> {
        take_key(&uri.parse().unwrap(), headers).map(|(k, u)| (k, u.to_string()))
    }

    #[test]
    fn the_key_is_taken_out_of_the_query_or_the_originals_path() {
        let none = HeaderMap::new();
        assert_eq!(
            take("/originals/a/b.jpg?key=kp_x", &none),
            Some(("kp_x".into(), "/originals/a/b.jpg".into()))
        );
        assert_eq!(
            take("/card/S/article/a.png?title=Hi&key=kp_x&author=Ada", &none),
            Some((
                "kp_x".into(),
                "/card/S/article/a.png?title=Hi&author=Ada".into()
            ))
        );
        assert_eq!(
            take("/originals/kp_x/a/b.jpg", &none),
            Some(("kp_x".into(), "/originals/a/b.jpg".into()))
        );
        assert_eq!(take("/originals/a/b.jpg", &none), None);
        assert_eq!(take("/img/s/300x200/a.jpg", &none), None);
    }

    #[test]
    fn the_key_may_come_in_a_header() {
        let mut headers = HeaderMap::new();
        headers.insert(KEY_HEADER, HeaderValue::from_static("kp_h"));
        assert_eq!(
            take("/img/s/300x200/a.jpg", &headers),
            Some(("kp_h".into(), "/img/s/300x200/a.jpg".into()))
        );
        let mut bearer = HeaderMap::new();
        bearer.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer kp_b"),
        );
        assert_eq!(take("/v1/jobs", &bearer).map(|t| t.0), Some("kp_b".into()));
        let mut admin = HeaderMap::new();
        admin.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer admin-key-0123456789"),
        );
        assert_eq!(
            take("/v1/jobs", &admin),
            None,
            "admin keys are not partner keys"
        );
    }

    #[test]
    fn paths_map_to_metered_kinds() {
        assert_eq!(kind_of("/originals/a.jpg"), Some("original"));
        assert_eq!(kind_of("/img/s/o/a.jpg"), Some("image"));
        assert_eq!(kind_of("/card/stats/1-2-3.png"), Some("card"));
        assert_eq!(kind_of("/v1/jobs/abc"), Some("job"));
        assert_eq!(kind_of("/healthz"), None);
        assert_eq!(kind_of("/captcha"), None);
    }

    #[test]
    fn quotas_renew_at_the_next_month() {
        let secs = seconds_to_next_month();
        assert!((1..=31 * 24 * 3600).contains(&secs), "{secs}");
    }
}
