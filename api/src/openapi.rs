//! The OpenAPI document of `/v1`, generated from the handlers' own
//! annotations (`#[utoipa::path]`) and the types they read and answer with;
//! served at `/v1/openapi.json`. An end-to-end test checks it against the
//! router both ways: every documented operation is routed, every routed
//! `/v1` path and method is documented.

use std::sync::OnceLock;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes;

/// The body of every `/v1` error (`application/problem+json`, RFC 9457), as
/// `crate::plumbing::problem::Problem` writes it.
#[derive(ToSchema)]
#[allow(dead_code)] // a description of what Problem serialises
pub struct ProblemBody {
    /// `urn:kiln:problem:{kind}`, e.g. `urn:kiln:problem:rate-limited`.
    #[schema(rename = "type")]
    kind: String,
    /// The kind in words, e.g. `Rate limited`.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What went wrong with this request.
    detail: String,
    /// The request's `x-request-id`.
    request_id: String,
    /// A bulk job's invalid items (`{item, error}`), when that is the problem.
    items: Option<Vec<serde_json::Value>>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what.to_owned()))
                    .build(),
            )
        };
        components.add_security_scheme("admin", bearer("an admin key (KILN_ADMIN_KEYS)"));
        components.add_security_scheme("partner", bearer("a partner key (kp_…)"));
        components.add_security_scheme(
            "partnerHeader",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Kiln-Key"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kiln /v1 API",
        version = "1.0.0",
        description = "Administration and partner API of Kiln. Admin routes take `Authorization: Bearer {KILN_ADMIN_KEYS entry}`; routes marked for partners also take a partner key (`Authorization: Bearer kp_…` or `X-Kiln-Key`). Every error is `application/problem+json` (`Problem`); 429 and 503 carry `Retry-After`; every answer carries `x-request-id`."
    ),
    paths(
        routes::health::openapi,
        routes::links::create,
        routes::partners::create,
        routes::partners::list,
        routes::partners::rotate_key,
        routes::partners::revoke,
        routes::jobs::submit,
        routes::jobs::progress,
        routes::jobs::cancel,
        routes::usage::report,
        routes::upload::put,
        routes::purge::delete_original,
        routes::purge::purge,
    ),
    components(schemas(ProblemBody)),
    modifiers(&Security),
    tags(
        (name = "meta", description = "this document"),
        (name = "links", description = "one-time download links"),
        (name = "partners", description = "partners and their keys"),
        (name = "jobs", description = "bulk pre-render jobs"),
        (name = "usage", description = "metered usage"),
        (name = "originals", description = "upload, delete and purge"),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub fn json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_json().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_an_id_a_tag_and_a_problem_for_its_errors() {
        let doc: serde_json::Value = serde_json::from_str(json()).unwrap();
        let mut operations = 0;
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                operations += 1;
                assert!(op["operationId"].is_string(), "{method} {path}");
                assert!(op["tags"][0].is_string(), "{method} {path}");
                for (status, response) in op["responses"].as_object().unwrap() {
                    if status.starts_with('4') || status.starts_with('5') {
                        assert!(
                            response["content"]["application/problem+json"].is_object(),
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
        assert!(operations >= 13, "{operations}");
    }
}
