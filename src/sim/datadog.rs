//! Simulated Datadog: `GET /api/v1/query?from=&to=&query=` with comma-joined queries,
//! one series per query that has data (`query_index` says which), null points, and
//! `DD-API-KEY` / `DD-APPLICATION-KEY` auth. Budget headers are added by the admission
//! layer.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::{AppState, DATADOG_API_KEY, DATADOG_APP_KEY, json_status, query_map, split_top_level};

const POINT_INTERVAL_SECS: i64 = 60;
const MAX_POINTS: i64 = 30;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/query", get(query))
}

fn header_is(headers: &HeaderMap, name: &str, want: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == want)
}

/// `p95:trace.http.request.duration{service:x,env:y}.as_rate()` → (aggr, metric, scope).
fn parse_query(q: &str) -> Option<(String, String, String)> {
    let (aggr, rest) = q.split_once(':')?;
    let open = rest.find('{')?;
    let close = rest[open..].find('}')? + open;
    Some((
        aggr.trim().to_string(),
        rest[..open].trim().to_string(),
        rest[open + 1..close].to_string(),
    ))
}

async fn query(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    if !header_is(&headers, "dd-api-key", DATADOG_API_KEY)
        || !header_is(&headers, "dd-application-key", DATADOG_APP_KEY)
    {
        return json_status(StatusCode::FORBIDDEN, json!({"errors": ["Forbidden"]}));
    }
    let q = query_map(&uri);
    let num = |k: &str| q.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    let (Some(from), Some(to), Some(query)) = (num("from"), num("to"), q.get("query")) else {
        return json_status(
            StatusCode::BAD_REQUEST,
            json!({"errors": ["The parameters 'from', 'to' and 'query' are required"]}),
        );
    };
    if to < from {
        return json_status(
            StatusCode::BAD_REQUEST,
            json!({"errors": ["'from' must be before 'to'"]}),
        );
    }
    let org = state.org();
    let mut series = Vec::new();
    for (index, part) in split_top_level(query).into_iter().enumerate() {
        let part = part.trim();
        let Some((aggr, metric, scope)) = parse_query(part) else {
            return json_status(
                StatusCode::BAD_REQUEST,
                json!({"errors": [format!("Error parsing query: unable to parse {part}: Rule 'scope_expr' didn't match")]}),
            );
        };
        let Some(value) = org.metric_value(part) else {
            continue;
        };
        let end = to - to.rem_euclid(POINT_INTERVAL_SECS);
        let n = ((to - from) / POINT_INTERVAL_SECS).clamp(1, MAX_POINTS);
        let points: Vec<Value> = (0..n)
            .map(|k| {
                let t = end - (n - 1 - k) * POINT_INTERVAL_SECS;
                // The newest bucket is often still empty.
                let v = if k == n - 1 && n > 1 {
                    Value::Null
                } else if k == n - 2 {
                    json!(value)
                } else {
                    json!(value * (0.9 + 0.02 * (k % 10) as f64))
                };
                json!([t as f64 * 1000.0, v])
            })
            .collect();
        series.push(json!({
            "metric": metric,
            "display_name": metric,
            "query_index": index,
            "aggr": aggr,
            "scope": scope,
            "expression": part,
            "tag_set": [],
            "unit": null,
            "pointlist": points,
            "start": (end - (n - 1) * POINT_INTERVAL_SECS) * 1000,
            "end": end * 1000,
            "interval": POINT_INTERVAL_SECS,
            "length": n,
            "attributes": {},
        }));
    }
    json_status(
        StatusCode::OK,
        json!({
            "status": "ok",
            "res_type": "time_series",
            "resp_version": 1,
            "query": query,
            "from_date": from * 1000,
            "to_date": to * 1000,
            "series": series,
            "values": [],
            "times": [],
            "message": "",
            "group_by": [],
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metric_queries() {
        let (aggr, metric, scope) =
            parse_query("sum:trace.http.request.errors{service:api,env:prod}.as_rate()").unwrap();
        assert_eq!(aggr, "sum");
        assert_eq!(metric, "trace.http.request.errors");
        assert_eq!(scope, "service:api,env:prod");
        assert!(parse_query("garbage").is_none());
    }
}
