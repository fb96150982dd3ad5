//! TeamCity: the latest builds of each build type (`/app/rest/builds`).

use reqwest::Url;
use serde::Deserialize;

use super::http::{Auth, ClientContext, ClientOptions, FetchError, RateHeaders, SourceClient};
use crate::config::{Secrets, TeamCityConfig};
use crate::engine::model::Build;

const RESOURCE: &str = "teamcity";
const FIELDS: &str = "count,nextHref,build(id,number,status,state,branchName,buildTypeId,startDate,finishDate,webUrl)";

/// `Builds`: `count` is always there when asked for in `fields` (0 when nothing
/// matched), so a body without it is not an answer to this request.
#[derive(Debug, Deserialize)]
struct BuildsPage {
    count: u64,
    /// TeamCity leaves out an empty collection.
    #[serde(default)]
    build: Vec<BuildItem>,
    #[serde(rename = "nextHref")]
    next_href: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BuildItem {
    number: Option<String>,
    status: Option<String>,
    state: Option<String>,
    #[serde(rename = "finishDate")]
    finish_date: Option<String>,
    #[serde(rename = "webUrl")]
    web_url: Option<String>,
}

#[derive(Clone)]
pub struct TeamCity {
    client: SourceClient,
    wanted: u32,
    base: Url,
}

impl TeamCity {
    pub fn new(
        cfg: &TeamCityConfig,
        secrets: &Secrets,
        ctx: &ClientContext,
    ) -> Result<TeamCity, String> {
        let token = secrets.teamcity_token.clone().unwrap_or_default();
        let client = SourceClient::new(ClientOptions {
            headers: vec![("accept", "application/json".into())],
            max_concurrency: cfg.max_concurrency,
            rate_headers: RateHeaders::RetryAfterOnly,
            max_body_bytes: (cfg.max_body_mib.max(1) << 20) as usize,
            cache: ctx.cache_for(crate::cache::Namespace::TeamCity),
            ..ClientOptions::new(
                "teamcity",
                "TeamCity",
                cfg.base_url.clone(),
                Auth::Bearer(token),
                ctx,
            )
        })?;
        let base = Url::parse(&cfg.base_url).map_err(|e| format!("teamcity: bad base_url: {e}"))?;
        Ok(TeamCity {
            client,
            wanted: cfg.builds_per_type.max(1),
            base,
        })
    }

    pub fn client(&self) -> &SourceClient {
        &self.client
    }

    /// The newest build of `build_type` (finished ones preferred), following `nextHref`
    /// until `builds_per_type` builds were seen.
    pub async fn latest_build(&self, build_type: &str) -> Result<Option<Build>, FetchError> {
        let mut url = self.client.url("app/rest/builds")?;
        url.query_pairs_mut()
            .append_pair(
                "locator",
                &format!("buildType:(id:{build_type}),count:{}", self.wanted),
            )
            .append_pair("fields", FIELDS);
        let mut builds = Vec::new();
        let mut pages = 0;
        loop {
            pages += 1;
            let endpoint = self.client.endpoint_of(&url);
            let (page, _): (BuildsPage, _) = self.client.get_json(url.clone(), RESOURCE).await?;
            if page.count > 0 && page.build.is_empty() {
                return Err(self.client.error(
                    "GET",
                    &endpoint,
                    Some(200),
                    format!("response counts {} builds but lists none", page.count),
                    false,
                ));
            }
            builds.extend(page.build);
            match page.next_href {
                Some(next) if builds.len() < self.wanted as usize && pages < 20 => {
                    url = self.resolve_href(&next, &endpoint)?
                }
                _ => break,
            }
        }
        let newest_finished = builds
            .iter()
            .position(|b| b.state.as_deref().is_none_or(|s| s == "finished"));
        let chosen = newest_finished.or(if builds.is_empty() { None } else { Some(0) });
        Ok(chosen.map(|i| {
            let b = &builds[i];
            Build {
                number: b.number.clone(),
                status: b.status.clone(),
                state: b.state.clone(),
                finished_at: b.finish_date.as_deref().and_then(parse_teamcity_date),
                web_url: b.web_url.clone(),
            }
        }))
    }

    /// `nextHref` is server-relative and may already carry the context path
    /// (`/tc/app/rest/...`); otherwise it is relative to the base URL. It must stay on
    /// the server's origin: following it sends the token.
    fn resolve_href(&self, href: &str, from: &str) -> Result<Url, FetchError> {
        let prefix = self.base.path().trim_end_matches('/');
        let server_relative = href.starts_with('/') && !href.starts_with("//");
        let link = if server_relative && !href.starts_with(&format!("{prefix}/")) {
            format!("{prefix}{href}")
        } else {
            href.to_string()
        };
        self.client.follow_link(&link, from)
    }
}

/// TeamCity dates: `20240101T120000+0000` (also accepts `+00:00` and RFC 3339).
pub fn parse_teamcity_date(s: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::FormatItem;
    use time::macros::format_description;
    const BASIC: &[FormatItem<'_>] = format_description!(
        "[year][month][day]T[hour][minute][second][offset_hour sign:mandatory][offset_minute]"
    );
    const COLON: &[FormatItem<'_>] = format_description!(
        "[year][month][day]T[hour][minute][second][offset_hour sign:mandatory]:[offset_minute]"
    );
    let s = s.trim();
    time::OffsetDateTime::parse(s, BASIC)
        .or_else(|_| time::OffsetDateTime::parse(s, COLON))
        .ok()
        .or_else(|| super::github::parse_rfc3339(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_teamcity_dates() {
        let t = parse_teamcity_date("20240101T120000+0000").unwrap();
        assert_eq!((t.year(), t.hour()), (2024, 12));
        let t = parse_teamcity_date("20231231T235959-0130").unwrap();
        assert_eq!(t.offset().whole_minutes(), -90);
        assert!(parse_teamcity_date("20240101T120000+00:00").is_some());
        assert!(parse_teamcity_date("2024-01-01T12:00:00Z").is_some());
        assert!(parse_teamcity_date("yesterday").is_none());
    }

    #[test]
    fn parses_builds_page() {
        let json = r#"{"count":2,"href":"/app/rest/builds?locator=x","nextHref":"/app/rest/builds?locator=x,start:2","build":[{"id":9,"buildTypeId":"Api","number":"142","status":"SUCCESS","state":"finished","finishDate":"20240101T120000+0000","webUrl":"https://tc/viewLog.html?buildId=9"},{"id":8,"number":"141","status":"FAILURE","state":"finished"}]}"#;
        let page: BuildsPage = serde_json::from_str(json).unwrap();
        assert_eq!(page.build.len(), 2);
        assert!(page.next_href.is_some());
    }
}
