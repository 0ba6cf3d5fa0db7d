//! Messages on the render queues. One queue per job kind, so each kind's
//! workers can be scaled and throttled on their own.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Image,
    Card,
    Captcha,
}

impl JobKind {
    pub const ALL: [Self; 3] = [Self::Image, Self::Card, Self::Captcha];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Card => "card",
            Self::Captcha => "captcha",
        }
    }
}

/// A kind name no queue is for (a row written by a newer or broken version):
/// an error, never quietly taken for an image job.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown job kind {0:?}")]
pub struct UnknownJobKind(pub String);

impl TryFrom<String> for JobKind {
    type Error = UnknownJobKind;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Self::parse(&name).ok_or(UnknownJobKind(name))
    }
}

/// Priority of on-demand misses; bulk work goes lower so it never starves them.
pub const PRIORITY_ON_DEMAND: u8 = 5;

/// Render one image rendition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageJob {
    pub cache_key: String,
    pub object_key: String,
    pub source_key: String,
    pub source_etag: String,
    /// Canonical options (see `options::ImageOptions::canonical`).
    pub options: String,
    /// The original's size as the api's HEAD saw it: the worker reserves
    /// this much of its fetch budget before downloading.
    #[serde(default)]
    pub source_bytes: Option<u64>,
    /// 1 for the first try; retries carry the next number.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// When the api queued the job (UNIX milliseconds), to measure queue wait.
    #[serde(default)]
    pub enqueued_at_ms: Option<u64>,
    /// The id of the request whose miss queued this job (`x-request-id`),
    /// named in the worker's log lines for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Render one social card. Previews are ordinary jobs under a one-off cache
/// key; the api deletes their object and row once it has answered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardJob {
    pub cache_key: String,
    pub object_key: String,
    pub template: String,
    /// The template's content hash the api saw; a worker with other files retries.
    pub template_hash: String,
    pub id: String,
    pub params: std::collections::BTreeMap<String, String>,
    /// ETags of the originals `original`-kind parameters name, by key.
    #[serde(default)]
    pub originals: std::collections::BTreeMap<String, String>,
    pub format: crate::format::OutputFormat,
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    #[serde(default)]
    pub enqueued_at_ms: Option<u64>,
    /// The id of the request whose miss queued this job (`x-request-id`),
    /// named in the worker's log lines for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl CardJob {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Draw a new captcha into one pool slot (after it was consumed, or to fill
/// the pool).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptchaJob {
    pub slot: String,
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    #[serde(default)]
    pub enqueued_at_ms: Option<u64>,
}

impl CaptchaJob {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn first_attempt() -> u32 {
    1
}

/// The current time in UNIX milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ImageJob {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_named_or_refused() {
        assert_eq!(JobKind::try_from("card".to_owned()), Ok(JobKind::Card));
        assert_eq!(
            JobKind::try_from("video".to_owned()),
            Err(UnknownJobKind("video".into()))
        );
        for kind in [JobKind::Image, JobKind::Card, JobKind::Captcha] {
            assert_eq!(JobKind::parse(kind.name()), Some(kind));
        }
    }

    #[test]
    fn round_trips_and_defaults_the_attempt() {
        let job = ImageJob {
            cache_key: "k".into(),
            object_key: "r/k".into(),
            source_key: "a.jpg".into(),
            source_etag: "\"e\"".into(),
            options: "10x10".into(),
            source_bytes: Some(1234),
            attempt: 1,
            enqueued_at_ms: Some(5),
            request_id: Some("req-1".into()),
        };
        let back: ImageJob = serde_json::from_slice(&job.to_json()).unwrap();
        assert_eq!(back, job);
        let old: ImageJob = serde_json::from_str(
            r#"{"cache_key":"k","object_key":"r/k","source_key":"a","source_etag":"e","options":"1x1"}"#,
        )
        .unwrap();
        assert_eq!(old.attempt, 1);
    }
}
