//! Datadog: health metrics, one `/api/v1/query` per environment for every component.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::http::{Auth, ClientContext, ClientOptions, FetchError, RateHeaders, SourceClient};
use crate::config::{DatadogConfig, Secrets};

const RESOURCE: &str = "query";

/// `GET /api/v1/query`: `status` is always there; `series` with `status: ok`.
#[derive(Debug, Deserialize)]
struct QueryResponse {
    status: String,
    #[serde(default)]
    error: Option<String>,
    series: Option<Vec<Series>>,
}

#[derive(Debug, Deserialize)]
struct Series {
    #[serde(default)]
    query_index: Option<usize>,
    /// `[timestamp_ms, value]` pairs; the value is null where there was no data.
    pointlist: Vec<(f64, Option<f64>)>,
}

/// The series' newest value: its last non-null point.
fn last_value(series: &Series) -> Option<f64> {
    series.pointlist.iter().rev().find_map(|(_, v)| *v)
}

#[derive(Clone)]
pub struct Datadog {
    client: SourceClient,
    window_secs: i64,
}

/// One query of a multi-query call: which component and which named query it is.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthQuery {
    pub component: String,
    pub name: String,
    pub query: String,
}

impl Datadog {
    pub fn new(
        cfg: &DatadogConfig,
        secrets: &Secrets,
        ctx: &ClientContext,
    ) -> Result<Datadog, String> {
        let auth = Auth::Headers(vec![
            (
                "DD-API-KEY",
                secrets.datadog_api_key.clone().unwrap_or_default(),
            ),
            (
                "DD-APPLICATION-KEY",
                secrets.datadog_app_key.clone().unwrap_or_default(),
            ),
        ]);
        let client = SourceClient::new(ClientOptions {
            headers: vec![("accept", "application/json".into())],
            max_concurrency: cfg.max_concurrency,
            rate_headers: RateHeaders::Datadog,
            budgets: vec![(RESOURCE, "Datadog", None)],
            max_body_bytes: (cfg.max_body_mib.max(1) << 20) as usize,
            // Metric queries are live data: only counted, as bypasses.
            cache: ctx.cache_for(crate::cache::Namespace::Datadog),
            ..ClientOptions::new("datadog", "Datadog", cfg.base_url.clone(), auth, ctx)
        })?;
        Ok(Datadog {
            client,
            window_secs: i64::from(cfg.window_minutes.max(1)) * 60,
        })
    }

    pub fn client(&self) -> &SourceClient {
        &self.client
    }

    /// Runs all `queries`, in one call while the URL stays short enough (in a few
    /// concurrent ones otherwise); returns (component, name) → last non-null value.
    pub async fn query(
        &self,
        queries: &[HealthQuery],
        now: time::OffsetDateTime,
    ) -> Result<BTreeMap<(String, String), Option<f64>>, FetchError> {
        let groups = split_by_url_length(queries, MAX_ENCODED_QUERY_BYTES);
        let answers =
            futures::future::join_all(groups.iter().map(|g| self.query_group(g, now))).await;
        let mut out = BTreeMap::new();
        for answer in answers {
            out.extend(answer?);
        }
        Ok(out)
    }

    async fn query_group(
        &self,
        queries: &[HealthQuery],
        now: time::OffsetDateTime,
    ) -> Result<BTreeMap<(String, String), Option<f64>>, FetchError> {
        let to = now.unix_timestamp();
        let from = to - self.window_secs;
        let joined = queries
            .iter()
            .map(|q| q.query.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let mut url = self.client.url("api/v1/query")?;
        url.query_pairs_mut()
            .append_pair("from", &from.to_string())
            .append_pair("to", &to.to_string())
            .append_pair("query", &joined);
        let endpoint = "/api/v1/query";
        let resp = self.client.get_uncached(url, RESOURCE).await?;
        let body: QueryResponse = resp.json(&self.client, "GET", endpoint)?;
        let shape = |msg: String| {
            self.client
                .error("GET", endpoint, Some(resp.status), msg, false)
        };
        if body.status != "ok" {
            let msg = body
                .error
                .unwrap_or_else(|| format!("query status {:?}", body.status));
            return Err(shape(msg));
        }
        let series = body
            .series
            .ok_or_else(|| shape("response has no `series`".into()))?;
        parse_series(queries, &series).map_err(shape)
    }
}

/// (component, query name) → newest value, for the queries of one call. A series must
/// say which query it answers (`query_index`) unless there was only one.
fn parse_series(
    queries: &[HealthQuery],
    series: &[Series],
) -> Result<BTreeMap<(String, String), Option<f64>>, String> {
    let mut out: BTreeMap<(String, String), Option<f64>> = queries
        .iter()
        .map(|q| ((q.component.clone(), q.name.clone()), None))
        .collect();
    for s in series {
        let index = match (s.query_index, queries.len()) {
            (Some(i), _) => i,
            (None, 1) => 0,
            (None, _) => return Err("a series has no `query_index`".into()),
        };
        let q = queries
            .get(index)
            .ok_or_else(|| format!("a series answers query {index} of {}", queries.len()))?;
        if let Some(v) = last_value(s) {
            out.insert((q.component.clone(), q.name.clone()), Some(v));
        }
    }
    Ok(out)
}

/// The `query=` parameter's encoded size per call. Front ends commonly refuse URLs past
/// 8 KiB (HTTP 414); this leaves room for the rest of the URL.
const MAX_ENCODED_QUERY_BYTES: usize = 6000;

/// Consecutive groups of `queries` whose comma-joined, URL-encoded text stays within
/// `limit` bytes (a single longer query is a group of its own).
fn split_by_url_length(queries: &[HealthQuery], limit: usize) -> Vec<&[HealthQuery]> {
    let encoded = |q: &HealthQuery| {
        url::form_urlencoded::byte_serialize(q.query.as_bytes())
            .map(str::len)
            .sum::<usize>()
    };
    let mut groups = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, q) in queries.iter().enumerate() {
        // A comma between queries is `%2C`.
        let add = encoded(q) + if i > start { 3 } else { 0 };
        if i > start && size + add > limit {
            groups.push(&queries[start..i]);
            start = i;
            size = encoded(q);
        } else {
            size += add;
        }
    }
    if start < queries.len() {
        groups.push(&queries[start..]);
    }
    groups
}

/// Fills `{service}` and `{env}` in a query template.
pub fn render_query(template: &str, service: &str, env: &str) -> String {
    template.replace("{service}", service).replace("{env}", env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_series_with_nulls() {
        let json = r#"{"status":"ok","res_type":"time_series","series":[{"metric":"m","query_index":1,"pointlist":[[1700000000000,0.5],[1700000060000,null]],"scope":"env:prod"},{"query_index":0,"pointlist":[[1700000000000,null]]}],"from_date":1,"to_date":2,"query":"a,b"}"#;
        let r: QueryResponse = serde_json::from_str(json).unwrap();
        let q = |name: &str| HealthQuery {
            component: "api".into(),
            name: name.into(),
            query: String::new(),
        };
        let values = parse_series(&[q("a"), q("b")], &r.series.unwrap()).unwrap();
        // Query 1's newest point is null: its last non-null one counts; query 0 has none.
        assert_eq!(values[&("api".to_string(), "b".to_string())], Some(0.5));
        assert_eq!(values[&("api".to_string(), "a".to_string())], None);
    }

    #[test]
    fn wrong_shapes_are_errors_not_missing_data() {
        assert!(serde_json::from_str::<QueryResponse>("{}").is_err());
        let r: QueryResponse = serde_json::from_str(r#"{"status":"ok"}"#).unwrap();
        assert!(r.series.is_none());
        let two = [
            HealthQuery {
                component: "a".into(),
                name: "x".into(),
                query: String::new(),
            },
            HealthQuery {
                component: "b".into(),
                name: "x".into(),
                query: String::new(),
            },
        ];
        let unindexed: Vec<Series> = serde_json::from_str(r#"[{"pointlist":[[1,2.0]]}]"#).unwrap();
        assert!(parse_series(&two, &unindexed).is_err());
        assert!(parse_series(&two[..1], &unindexed).is_ok());
        let beyond: Vec<Series> =
            serde_json::from_str(r#"[{"query_index":5,"pointlist":[[1,2.0]]}]"#).unwrap();
        assert!(parse_series(&two, &beyond).is_err());
    }

    #[test]
    fn long_query_lists_are_split_by_encoded_length() {
        let q = |i: usize| HealthQuery {
            component: format!("c{i}"),
            name: "p95_ms".into(),
            // 40 bytes raw; `:`, `{`, `,` and `}` are encoded as 3 bytes each.
            query: format!("p95:trace.http.request{{service:s{i:02},env:prod}}"),
        };
        let queries: Vec<HealthQuery> = (0..30).map(q).collect();
        assert_eq!(split_by_url_length(&queries, 100_000).len(), 1);
        let groups = split_by_url_length(&queries, 200);
        assert!(groups.len() > 1);
        assert_eq!(groups.iter().map(|g| g.len()).sum::<usize>(), 30);
        for g in &groups {
            let joined = g
                .iter()
                .map(|h| h.query.as_str())
                .collect::<Vec<_>>()
                .join(",");
            let encoded: usize = url::form_urlencoded::byte_serialize(joined.as_bytes())
                .map(str::len)
                .sum();
            assert!(encoded <= 200, "{encoded}");
        }
        assert!(split_by_url_length(&[], 200).is_empty());
    }

    #[test]
    fn renders_templates() {
        let q = render_query(
            "sum:trace.http.request.errors{service:{service},env:{env}}.as_rate()",
            "api",
            "prod",
        );
        assert_eq!(
            q,
            "sum:trace.http.request.errors{service:api,env:prod}.as_rate()"
        );
    }
}
