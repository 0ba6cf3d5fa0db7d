//! Card planning: what a checked card request becomes. Its cache key pins
//! the template's content hash and the ETag of every original it embeds;
//! on a miss, the rendition row and the job message a worker renders from.
//! The card routes, the preview and bulk jobs all plan through here.

use std::collections::BTreeMap;

use kiln_core::cache_key::object_key;
use kiln_core::cards::{CardSpec, CardTemplate, ParamKind};
use kiln_core::job::{now_ms, CardJob, JobKind};
use kiln_core::source_key::SourceKey;
use kiln_infra::bulk::Planned;
use kiln_infra::renditions::NewRendition;

use crate::miss::rendition::{source_meta, Miss};
use crate::plumbing::error::ApiError;
use crate::state::AppState;

/// What a checked card request names: its cache key pins the template's
/// content hash and the ETag of every original the card embeds.
pub(crate) struct CardTarget {
    version: String,
    originals: BTreeMap<String, String>,
    pub cache_key: String,
}

/// The card's cache key; `None` when a parameter names an original that
/// does not exist.
pub(crate) async fn card_target(
    state: &AppState,
    template: &CardTemplate,
    spec: &CardSpec,
) -> Result<Option<CardTarget>, ApiError> {
    let Some(originals) = pin_originals(state, template, spec).await? else {
        return Ok(None);
    };
    let mut version = template.hash.clone();
    for (key, etag) in &originals {
        version.push_str(&format!(";{key}={etag}"));
    }
    let cache_key = spec.cache_key(&version);
    Ok(Some(CardTarget {
        version,
        originals,
        cache_key,
    }))
}

/// The row and job message of a card (built only on a miss: the hit path
/// never serialises a job).
pub(crate) fn planned_card(
    state: &AppState,
    template: &CardTemplate,
    spec: CardSpec,
    target: CardTarget,
) -> Planned {
    let CardTarget {
        version,
        originals,
        cache_key,
    } = target;
    let object_key = object_key(&state.config.s3.cache_prefix, &cache_key);
    let options = spec.canonical();
    let job = card_job(template, spec, originals, &cache_key, &object_key);
    Planned {
        kind: JobKind::Card,
        source_key: format!("card:{}", template.name),
        source_etag: version,
        options,
        payload: job.to_json(),
        cache_key,
        object_key,
    }
}

/// The rendition a checked card request names; `None` when a parameter
/// names an original that does not exist.
pub(crate) async fn plan_card(
    state: &AppState,
    template: &CardTemplate,
    spec: CardSpec,
) -> Result<Option<Planned>, ApiError> {
    Ok(card_target(state, template, &spec)
        .await?
        .map(|target| planned_card(state, template, spec, target)))
}

/// The ETag of every original the card embeds (replacing one renders a new
/// card); `None` when a parameter names an original that does not exist.
pub(crate) async fn pin_originals(
    state: &AppState,
    template: &CardTemplate,
    spec: &CardSpec,
) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    let mut originals = BTreeMap::new();
    for (name, value) in &spec.params {
        if template.manifest.params.get(name).map(|p| p.kind) != Some(ParamKind::Original) {
            continue;
        }
        let Ok(key) = SourceKey::new(value.as_str()) else {
            return Ok(None);
        };
        match source_meta(state, &key).await {
            Ok(meta) => originals.insert(value.clone(), meta.etag),
            Err(ApiError::NotFound) => return Ok(None),
            Err(err) => return Err(err),
        };
    }
    Ok(Some(originals))
}

pub(crate) fn card_job(
    template: &CardTemplate,
    spec: CardSpec,
    originals: BTreeMap<String, String>,
    cache_key: &str,
    object_key: &str,
) -> CardJob {
    CardJob {
        cache_key: cache_key.to_owned(),
        object_key: object_key.to_owned(),
        template: template.name.clone(),
        template_hash: template.hash.clone(),
        id: spec.id,
        params: spec.params,
        originals,
        format: spec.format,
        attempt: 1,
        enqueued_at_ms: Some(now_ms()),
        request_id: crate::plumbing::request_id::current(),
    }
}

/// The rendition row and job message of a card.
pub(crate) fn card_miss<'a>(
    job: &'a CardJob,
    source: &'a str,
    version: &'a str,
    canonical: &'a str,
) -> Miss<'a> {
    Miss {
        new: NewRendition {
            cache_key: &job.cache_key,
            object_key: &job.object_key,
            kind: JobKind::Card.name(),
            source_key: source,
            source_etag: version,
            options: canonical,
        },
        kind: JobKind::Card,
        job: job.to_json(),
    }
}
