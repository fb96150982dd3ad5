//! A simulated OCI registry (the distribution API) under `/registry`: pull tokens from
//! `/registry/token` as the registry token flow has them (anonymous pulls of public
//! images), `GET /v2/<name>/manifests/<digest>` and `GET /v2/<name>/blobs/<digest>` with
//! `Docker-Content-Digest`, and the spec's error bodies.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{AppState, query_map};

const SERVICE: &str = "sim-registry";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/registry/token", get(token))
        .route("/registry/v2/", get(base))
        .route("/registry/v2/{*rest}", get(object))
}

/// The pull token of one repository (scope-bound, as real registries' are).
fn token_for(repository: &str) -> String {
    format!("sim-pull-{}", repository.replace('/', "."))
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string()
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"errors": [{"code": code, "message": message, "detail": null}]}).to_string(),
    )
        .into_response()
}

fn challenge(headers: &HeaderMap, scope: Option<&str>) -> Response {
    let mut value = format!(
        "Bearer realm=\"http://{}/registry/token\",service=\"{SERVICE}\"",
        host(headers)
    );
    if let Some(scope) = scope {
        value.push_str(&format!(",scope=\"{scope}\""));
    }
    let mut resp = error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required",
    );
    if let Ok(v) = value.parse() {
        resp.headers_mut().insert("www-authenticate", v);
    }
    resp
}

async fn base(headers: HeaderMap) -> Response {
    challenge(&headers, None)
}

async fn token(uri: Uri) -> Response {
    let q = query_map(&uri);
    let scope = q.get("scope").cloned().unwrap_or_default();
    let Some(repository) = scope
        .strip_prefix("repository:")
        .and_then(|s| s.strip_suffix(":pull"))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "DENIED",
            "scope repository:<name>:pull expected",
        );
    };
    let t = token_for(repository);
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({"token": t, "access_token": t, "expires_in": 300, "issued_at": "2026-01-01T00:00:00Z"})
            .to_string(),
    )
        .into_response()
}

async fn object(
    State(state): State<AppState>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (repository, kind, reference) = match rest.rsplit_once("/manifests/") {
        Some((name, r)) => (name, "manifests", r),
        None => match rest.rsplit_once("/blobs/") {
            Some((name, r)) => (name, "blobs", r),
            None => return error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "unknown path"),
        },
    };
    let authorised = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == token_for(repository));
    if !authorised {
        return challenge(&headers, Some(&format!("repository:{repository}:pull")));
    }
    let org = state.org();
    let Some(obj) = org
        .oci
        .get(reference)
        .filter(|o| o.repository == repository)
    else {
        return if kind == "manifests" {
            error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown",
            )
        } else {
            error(
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                "blob unknown to registry",
            )
        };
    };
    let is_manifest = obj.media_type.contains("manifest") || obj.media_type.contains("index");
    if (kind == "manifests") != is_manifest {
        return error(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        );
    }
    let content_type = if kind == "blobs" {
        "application/octet-stream".to_string()
    } else {
        obj.media_type.clone()
    };
    (
        StatusCode::OK,
        [
            ("content-type", content_type),
            ("docker-content-digest", reference.to_string()),
        ],
        obj.body.clone(),
    )
        .into_response()
}
