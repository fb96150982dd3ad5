//! Simulated Jira Cloud: `GET`/`POST /rest/api/3/search/jql` (under the context path
//! `/jira`) for `key in (...)` queries, `fields` selection, `nextPageToken` paging, Basic
//! auth with email and API token. The retired `/rest/api/3/search` answers 410 Gone.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use base64::Engine;
use serde_json::{Map, Value, json};

use super::{AppState, JIRA_EMAIL, JIRA_TOKEN, json_status, query_map};

const DEFAULT_MAX_RESULTS: usize = 50;
const MAX_RESULTS: usize = 100;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/jira/rest/api/3/search/jql", get(search).post(search))
        .route("/jira/rest/api/3/search", get(gone).post(gone))
}

static KEY_IN: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r#"(?i)^\s*(?:key|issuekey|issue)\s+in\s*\(([^)]*)\)\s*(?:order\s+by\s+.*)?$"#,
    )
    .expect("valid regex")
});
static KEY_EQ: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r#"(?i)^\s*(?:key|issuekey|issue)\s*=\s*("?[A-Za-z0-9_-]+"?)\s*$"#)
        .expect("valid regex")
});

fn authorised(headers: &HeaderMap) -> bool {
    let Some(encoded) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|s| s == format!("{JIRA_EMAIL}:{JIRA_TOKEN}"))
}

fn bad_request(message: String) -> Response {
    json_status(
        StatusCode::BAD_REQUEST,
        json!({"errorMessages": [message], "errors": {}}),
    )
}

async fn gone() -> Response {
    json_status(
        StatusCode::GONE,
        json!({"errorMessages": ["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"], "errors": {}}),
    )
}

/// The search parameters, from the query string (GET) or the JSON body (POST).
struct SearchParams {
    jql: String,
    fields: Vec<String>,
    max_results: usize,
    next_page_token: Option<String>,
}

fn params(method: &Method, uri: &Uri, body: &str) -> Result<SearchParams, String> {
    if method == Method::POST {
        let v: Value =
            serde_json::from_str(body).map_err(|e| format!("Invalid request payload: {e}"))?;
        let fields = match v.get("fields") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect(),
            _ => vec!["id".into()],
        };
        return Ok(SearchParams {
            jql: v
                .get("jql")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            fields,
            max_results: v
                .get("maxResults")
                .and_then(Value::as_u64)
                .map(|n| n as usize)
                .unwrap_or(DEFAULT_MAX_RESULTS),
            next_page_token: v
                .get("nextPageToken")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
    }
    let q = query_map(uri);
    Ok(SearchParams {
        jql: q.get("jql").cloned().unwrap_or_default(),
        fields: q
            .get("fields")
            .map(|f| f.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_else(|| vec!["id".into()]),
        max_results: q
            .get("maxResults")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_RESULTS),
        next_page_token: q.get("nextPageToken").cloned(),
    })
}

fn keys_of(jql: &str) -> Result<Vec<String>, String> {
    let list = if let Some(c) = KEY_IN.captures(jql) {
        c[1].to_string()
    } else if let Some(c) = KEY_EQ.captures(jql) {
        c[1].to_string()
    } else {
        return Err(format!(
            "Error in the JQL Query: this simulator understands `key in (...)` and `key = X` only (got '{jql}')."
        ));
    };
    Ok(list
        .split(',')
        .map(|k| k.trim().trim_matches('"').trim_matches('\'').to_uppercase())
        .filter(|k| !k.is_empty())
        .collect())
}

async fn search(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !authorised(&headers) {
        return json_status(
            StatusCode::UNAUTHORIZED,
            json!({"errorMessages": ["You are not authenticated. Authentication required to perform this operation."], "errors": {}}),
        );
    }
    let p = match params(&method, &uri, &body) {
        Ok(p) => p,
        Err(m) => return bad_request(m),
    };
    let keys = match keys_of(&p.jql) {
        Ok(k) => k,
        Err(m) => return bad_request(m),
    };
    let org = state.org();
    let unknown: Vec<&String> = keys
        .iter()
        .filter(|k| !org.tickets.contains_key(*k))
        .collect();
    if !unknown.is_empty() {
        // One message per unknown key, as Jira lists them.
        let messages: Vec<String> = unknown
            .iter()
            .map(|k| format!("An issue with key '{k}' does not exist for field 'key'."))
            .collect();
        return json_status(
            StatusCode::BAD_REQUEST,
            json!({"errorMessages": messages, "errors": {}}),
        );
    }
    let start: usize = match &p.next_page_token {
        None => 0,
        Some(t) => match base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse().ok()))
        {
            Some(n) => n,
            None => {
                return bad_request("The provided next page token is invalid or expired.".into());
            }
        },
    };
    let max = p.max_results.clamp(1, MAX_RESULTS);
    let mut matching: Vec<&super::org::SimTicket> =
        keys.iter().filter_map(|k| org.tickets.get(k)).collect();
    matching.sort_by_key(|t| std::cmp::Reverse(t.id));
    matching.dedup_by_key(|t| t.id);
    let page = matching.iter().skip(start).take(max);
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let all_fields = p.fields.iter().any(|f| f == "*all" || f == "*navigable");
    let wants = |f: &str| all_fields || p.fields.iter().any(|x| x == f);
    let issues: Vec<Value> = page
        .map(|t| {
            let mut fields = Map::new();
            if wants("summary") {
                fields.insert("summary".into(), json!(t.summary));
            }
            if wants("status") {
                fields.insert(
                    "status".into(),
                    json!({
                        "self": format!("http://{host}/jira/rest/api/3/status/{}", t.status.len()),
                        "name": t.status,
                        "id": (t.status.len() + 10000).to_string(),
                        "statusCategory": {"key": t.status_category, "name": t.status_category, "id": 3, "colorName": "green"},
                    }),
                );
            }
            if wants("fixVersions") {
                fields.insert("fixVersions".into(), json!([]));
            }
            json!({
                "id": t.id.to_string(),
                "key": t.key,
                "self": format!("http://{host}/jira/rest/api/3/issue/{}", t.id),
                "expand": "",
                "fields": fields,
            })
        })
        .collect();
    let next = start + issues.len();
    let mut body = json!({"issues": issues, "isLast": next >= matching.len()});
    if next < matching.len() {
        body["nextPageToken"] = json!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{next}"))
        );
    }
    json_status(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_key_lists() {
        assert_eq!(
            keys_of(r#"key in ("PAY-1", "PAY-2")"#).unwrap(),
            ["PAY-1", "PAY-2"]
        );
        assert_eq!(
            keys_of("issuekey IN (pay-3,PAY-4)").unwrap(),
            ["PAY-3", "PAY-4"]
        );
        assert_eq!(keys_of("key = PAY-9").unwrap(), ["PAY-9"]);
        assert!(keys_of("project = PAY").is_err());
    }
}
