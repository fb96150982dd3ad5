//! Simulated TeamCity REST: `GET /app/rest/builds?locator=...&fields=...` under the
//! context path `/tc`, with the default build filter (finished builds only unless the
//! locator asks otherwise), `count`/`start` paging through `nextHref`, the `fields`
//! selection, Bearer token auth, and JSON or XML by `Accept`.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::org::SimBuild;
use super::{AppState, TEAMCITY_TOKEN, json_status, query_map, split_top_level};

const CONTEXT: &str = "/tc";
const DEFAULT_COUNT: usize = 100;
const DEFAULT_BUILD_FIELDS: &[&str] = &[
    "id",
    "buildTypeId",
    "number",
    "status",
    "state",
    "branchName",
    "href",
    "webUrl",
];

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/tc/app/rest/builds", get(builds))
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [("content-type", "text/plain; charset=UTF-8")],
        body,
    )
        .into_response()
}

/// `dimension:value` pairs of a locator; values may be parenthesised.
fn locator(s: &str) -> Vec<(String, String)> {
    split_top_level(s)
        .into_iter()
        .filter_map(|part| {
            let (k, v) = part.split_once(':')?;
            let v = v.trim();
            let v = v
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// `count,nextHref,build(id,number)` → top-level names and the build sub-selection.
fn fields(spec: Option<&String>) -> (Vec<String>, Vec<String>) {
    let Some(spec) = spec else {
        return (
            vec![
                "count".into(),
                "href".into(),
                "nextHref".into(),
                "prevHref".into(),
            ],
            DEFAULT_BUILD_FIELDS.iter().map(|s| s.to_string()).collect(),
        );
    };
    let mut top = Vec::new();
    let mut build = Vec::new();
    for part in split_top_level(spec) {
        let part = part.trim();
        if let Some(inner) = part
            .strip_prefix("build(")
            .and_then(|p| p.strip_suffix(')'))
        {
            build = split_top_level(inner)
                .into_iter()
                .map(|s| s.trim().to_string())
                .collect();
            top.push("build".to_string());
        } else {
            if part == "build" {
                build = DEFAULT_BUILD_FIELDS.iter().map(|s| s.to_string()).collect();
            }
            top.push(part.to_string());
        }
    }
    (top, build)
}

/// TeamCity's date format: `20240101T120000+0000`.
fn tc_date(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]+0000"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn build_json(b: &SimBuild, build_type: &str, host: &str, wanted: &[String]) -> Value {
    let mut all = Map::new();
    all.insert("id".into(), json!(b.id));
    all.insert("buildTypeId".into(), json!(build_type));
    all.insert("number".into(), json!(b.number.to_string()));
    all.insert("status".into(), json!(b.status));
    all.insert("state".into(), json!(b.state));
    all.insert("branchName".into(), json!(b.branch));
    all.insert("defaultBranch".into(), json!(true));
    all.insert(
        "href".into(),
        json!(format!("{CONTEXT}/app/rest/builds/id:{}", b.id)),
    );
    all.insert(
        "webUrl".into(),
        json!(format!(
            "http://{host}{CONTEXT}/buildConfiguration/{build_type}/{}",
            b.id
        )),
    );
    all.insert("startDate".into(), json!(tc_date(b.start)));
    if let Some(f) = b.finish {
        all.insert("finishDate".into(), json!(tc_date(f)));
    }
    if b.state == "running" {
        all.insert("percentageComplete".into(), json!(42));
    }
    Value::Object(
        all.into_iter()
            .filter(|(k, _)| wanted.iter().any(|w| w == k))
            .collect(),
    )
}

async fn builds(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let authorised = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == TEAMCITY_TOKEN);
    if !authorised {
        return text(
            StatusCode::UNAUTHORIZED,
            "Authentication required\nTo login manually go to \"/login.html\" page".into(),
        );
    }
    let q = query_map(&uri);
    let loc = locator(q.get("locator").map(String::as_str).unwrap_or(""));
    let get = |k: &str| loc.iter().find(|(d, _)| d == k).map(|(_, v)| v.clone());
    let Some(build_type) = get("buildType").map(|v| {
        locator(&v)
            .into_iter()
            .find(|(k, _)| k == "id")
            .map(|(_, id)| id)
            .unwrap_or(v)
    }) else {
        return text(
            StatusCode::BAD_REQUEST,
            "Responding with error, status code: 400 (Bad Request).\nDetails: jetbrains.buildServer.server.rest.errors.BadRequestException: this simulator needs a buildType dimension in the locator".into(),
        );
    };
    let org = state.org();
    let Some(all) = org.builds.get(&build_type) else {
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "Responding with error, status code: 404 (Not Found).\nDetails: jetbrains.buildServer.server.rest.errors.NotFoundException: No build type nor template is found by id '{build_type}'."
            ),
        );
    };
    let count = get("count")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(DEFAULT_COUNT)
        .min(state.opts.teamcity_max_count);
    let start = get("start")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    // The default filter hides running and queued builds unless asked for.
    let state_dim = get("state");
    let running_dim = get("running");
    let status_dim = get("status");
    let matching: Vec<&SimBuild> = all
        .iter()
        .filter(|b| match (state_dim.as_deref(), running_dim.as_deref()) {
            (Some("any"), _) | (_, Some("any")) => true,
            (Some(s), _) => b.state == s,
            (_, Some("true")) => b.state == "running",
            _ => b.state == "finished",
        })
        .filter(|b| status_dim.as_deref().is_none_or(|s| b.status == s))
        .collect();
    let page: Vec<&SimBuild> = matching.iter().skip(start).take(count).copied().collect();
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let (top, build_fields) = fields(q.get("fields"));
    let href_for = |start: usize| {
        let kept: Vec<String> = loc
            .iter()
            .filter(|(k, _)| k != "start")
            .map(|(k, v)| {
                if v.contains(':') || v.contains(',') {
                    format!("{k}:({v})")
                } else {
                    format!("{k}:{v}")
                }
            })
            .chain((start > 0).then(|| format!("start:{start}")))
            .collect();
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("locator", &kept.join(","));
        if let Some(f) = q.get("fields") {
            query.append_pair("fields", f);
        }
        format!("{CONTEXT}/app/rest/builds?{}", query.finish())
    };
    let wants_json = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    let has_next = start + page.len() < matching.len();
    if !wants_json {
        let builds: String = page
            .iter()
            .map(|b| {
                format!(
                    "<build id=\"{}\" buildTypeId=\"{build_type}\" number=\"{}\" status=\"{}\" state=\"{}\"/>",
                    b.id, b.number, b.status, b.state
                )
            })
            .collect();
        return (
            StatusCode::OK,
            [("content-type", "application/xml")],
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><builds count=\"{}\">{builds}</builds>",
                page.len()
            ),
        )
            .into_response();
    }
    let mut body = Map::new();
    let wants = |k: &str| top.iter().any(|t| t == k);
    if wants("count") {
        body.insert("count".into(), json!(page.len()));
    }
    if wants("href") {
        body.insert("href".into(), json!(href_for(start)));
    }
    if wants("nextHref") && has_next {
        body.insert("nextHref".into(), json!(href_for(start + page.len())));
    }
    if wants("prevHref") && start > 0 {
        body.insert(
            "prevHref".into(),
            json!(href_for(start.saturating_sub(count))),
        );
    }
    if wants("build") || !build_fields.is_empty() {
        body.insert(
            "build".into(),
            Value::Array(
                page.iter()
                    .map(|b| build_json(b, &build_type, &host, &build_fields))
                    .collect(),
            ),
        );
    }
    json_status(StatusCode::OK, Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locators_and_fields() {
        let l = locator("buildType:(id:Acme_Api),count:5,start:10");
        assert_eq!(l[0], ("buildType".into(), "id:Acme_Api".into()));
        assert_eq!(l[2], ("start".into(), "10".into()));
        let (top, build) = fields(Some(&"count,nextHref,build(id,number,finishDate)".into()));
        assert_eq!(top, ["count", "nextHref", "build"]);
        assert_eq!(build, ["id", "number", "finishDate"]);
        assert_eq!(tc_date(0), "19700101T000000+0000");
    }
}
