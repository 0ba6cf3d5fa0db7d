//! Metric names, described once.

pub const RENDER_SECONDS: &str = "kiln_render_seconds";
pub const STAGE_SECONDS: &str = "kiln_render_stage_seconds";
pub const QUEUE_WAIT: &str = "kiln_queue_wait_seconds";
pub const JOBS: &str = "kiln_jobs_total";
pub const CARD_TIMEOUTS: &str = "kiln_card_render_timeouts_total";
pub const CARD_BLOCKED_REQUESTS: &str = "kiln_card_blocked_requests_total";
pub const BROWSER_STARTS: &str = "kiln_browser_starts_total";
pub const BROWSER_RESTARTS: &str = "kiln_browser_restarts_total";
pub const CAPTCHAS_GENERATED: &str = "kiln_captchas_generated_total";
pub const CAPTCHA_POOL_READY: &str = "kiln_captcha_pool_ready";
pub const CAPTCHA_POOL_SLOTS: &str = "kiln_captcha_pool_slots";

pub fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_histogram!(
        RENDER_SECONDS,
        Unit::Seconds,
        "Whole job time (fetch, render, upload), by kind"
    );
    describe_histogram!(STAGE_SECONDS, Unit::Seconds, "Job time by kind and stage");
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Time a job spent queued before a worker took it"
    );
    describe_counter!(CARD_TIMEOUTS, "Card renders that passed their timeout");
    describe_counter!(
        CARD_BLOCKED_REQUESTS,
        "Requests from card pages to anything but their template's files, blocked"
    );
    describe_counter!(BROWSER_STARTS, "Chromium processes started");
    describe_counter!(
        BROWSER_RESTARTS,
        "Chromium processes retired, by reason (recycled, failure, unhealthy, repeated timeouts)"
    );
    describe_counter!(
        JOBS,
        "Jobs finished by kind and outcome (ok, failed, retried, dead)"
    );
}
