//! Metric names, described once.

pub const HTTP_REQUESTS: &str = "kiln_http_requests_total";
pub const HTTP_DURATION: &str = "kiln_http_request_duration_seconds";
pub const CACHE_HITS: &str = "kiln_cache_hits_total";
pub const CACHE_MISSES: &str = "kiln_cache_misses_total";
pub const MISS_WAIT: &str = "kiln_miss_wait_seconds";
pub const WAIT_TIMEOUTS: &str = "kiln_miss_wait_timeouts_total";
pub const PUBLISH_FAILURES: &str = "kiln_publish_failures_total";
pub const JOBS_QUEUED: &str = "kiln_jobs_queued_total";
pub const CARD_DEFAULTS: &str = "kiln_card_defaults_total";
pub const CAPTCHAS_SERVED: &str = "kiln_captchas_served_total";
pub const CAPTCHA_POOL_EXHAUSTED: &str = "kiln_captcha_pool_exhausted_total";
pub const CAPTCHA_VERIFICATIONS: &str = "kiln_captcha_verifications_total";
pub const RATE_LIMITED: &str = "kiln_rate_limited_total";
pub const PARTNER_KEYS_REFUSED: &str = "kiln_partner_keys_refused_total";
pub const METER_ROWS_FLUSHED: &str = "kiln_meter_rows_flushed_total";
pub const METER_FLUSH_FAILURES: &str = "kiln_meter_flush_failures_total";
pub const AUDIT_ROWS_DROPPED: &str = "kiln_audit_rows_dropped_total";
pub const BULK_ITEMS_QUEUED: &str = "kiln_bulk_items_queued_total";
pub const PARTNER_KEY_CACHE: &str = "kiln_partner_key_cache_entries";
pub const QUEUE_FULL: &str = "kiln_queue_full_total";
pub const CONNECTIONS_REFUSED: &str = "kiln_http_connections_refused_total";
pub const RETENTION_DELETED: &str = "kiln_retention_deleted_total";

pub fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        RETENTION_DELETED,
        "Renditions deleted because nobody asked for them within KILN_RETENTION_DAYS"
    );
    describe_counter!(HTTP_REQUESTS, "HTTP requests by route and status code");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request duration by route"
    );
    describe_counter!(
        CACHE_HITS,
        "Requests answered from a ready rendition, by kind"
    );
    describe_counter!(
        CACHE_MISSES,
        "Requests that found no ready rendition, by kind"
    );
    describe_histogram!(
        MISS_WAIT,
        Unit::Seconds,
        "Time a missing request waited for its render"
    );
    describe_counter!(WAIT_TIMEOUTS, "Misses that outwaited the bound and got 503");
    describe_counter!(PUBLISH_FAILURES, "Render jobs that could not be published");
    describe_counter!(JOBS_QUEUED, "Render jobs published, by kind");
    describe_counter!(CAPTCHAS_SERVED, "Captchas served from the pool");
    describe_counter!(
        CAPTCHA_POOL_EXHAUSTED,
        "Captcha requests answered 503 because no slot was ready"
    );
    describe_counter!(
        CAPTCHA_VERIFICATIONS,
        "Captcha answers by outcome: passed, failed (slot consumed), stale (nothing consumed)"
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused with 429 (or a card's default image), by limit"
    );
    describe_counter!(
        PARTNER_KEYS_REFUSED,
        "Requests with an unknown or revoked partner key"
    );
    describe_counter!(
        METER_ROWS_FLUSHED,
        "Usage rows (partner, kind, status class, minute) written"
    );
    describe_counter!(
        METER_FLUSH_FAILURES,
        "Usage flushes that failed (their counts are kept for the next)"
    );
    describe_counter!(
        AUDIT_ROWS_DROPPED,
        "Audit rows dropped because the database was away too long"
    );
    describe_counter!(
        BULK_ITEMS_QUEUED,
        "Bulk pre-render items handed to the render queues"
    );
    metrics::describe_gauge!(
        PARTNER_KEY_CACHE,
        "Partner keys (known and unknown) the key cache holds"
    );
    describe_counter!(
        QUEUE_FULL,
        "Misses answered 503 (or a card's default image) because the work queue was full"
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections closed at once: their client already had the most it may open"
    );
    describe_counter!(
        CARD_DEFAULTS,
        "Card requests answered with the template's default image, by template and reason"
    );
}
