//! Jira Cloud: ticket status and summary through `/rest/api/3/search/jql`, batched with
//! `key in (...)`. (The old `/rest/api/3/search` answers 410 Gone.)

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::http::{Auth, ClientContext, ClientOptions, FetchError, RateHeaders, SourceClient};
use crate::config::{JiraConfig, Secrets};
use crate::engine::model::Ticket;

/// Keys per `key in (...)` query.
pub const KEYS_PER_QUERY: usize = 100;
const RESOURCE: &str = "jira";

/// `POST /rest/api/3/search/jql`: `issues` is always there (empty when nothing matched).
#[derive(Debug, Deserialize)]
struct SearchResponse {
    issues: Vec<Issue>,
    #[serde(rename = "nextPageToken")]
    next_page_token: Option<String>,
    #[serde(rename = "isLast")]
    is_last: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Issue {
    key: String,
    #[serde(default)]
    fields: IssueFields,
}

#[derive(Debug, Default, Deserialize)]
struct IssueFields {
    summary: Option<String>,
    status: Option<Named>,
}

#[derive(Debug, Deserialize)]
struct Named {
    name: Option<String>,
}

#[derive(Clone)]
pub struct Jira {
    client: SourceClient,
}

impl Jira {
    pub fn new(cfg: &JiraConfig, secrets: &Secrets, ctx: &ClientContext) -> Result<Jira, String> {
        let auth = Auth::Basic {
            user: secrets.jira_email.clone().unwrap_or_default(),
            password: secrets.jira_token.clone().unwrap_or_default(),
        };
        let client = SourceClient::new(ClientOptions {
            headers: vec![("accept", "application/json".into())],
            max_concurrency: cfg.max_concurrency,
            rate_headers: RateHeaders::RetryAfterOnly,
            max_body_bytes: (cfg.max_body_mib.max(1) << 20) as usize,
            // Searches are POSTs: only counted, as bypasses.
            cache: ctx.cache_for(crate::cache::Namespace::Jira),
            ..ClientOptions::new("jira", "Jira", cfg.base_url.clone(), auth, ctx)
        })?;
        Ok(Jira { client })
    }

    pub fn client(&self) -> &SourceClient {
        &self.client
    }

    /// Looks up one batch of keys; the answer holds those Jira returned. Jira answers 400
    /// naming keys it does not know (or that the token may not see: Jira says the same),
    /// which are taken out and the query sent again; the caller keeps them as "not in
    /// Jira" rather than dropping shipped work the token cannot see.
    pub async fn tickets(&self, keys: &[String]) -> Result<BTreeMap<String, Ticket>, FetchError> {
        let mut pending: BTreeSet<String> = keys.iter().cloned().collect();
        let mut out = BTreeMap::new();
        // Each round either succeeds or removes at least one key.
        while !pending.is_empty() {
            match self.search(&pending).await {
                Ok(found) => {
                    out.extend(found);
                    break;
                }
                Err(e) if e.status == Some(400) => {
                    let unknown: Vec<String> = pending
                        .iter()
                        .filter(|k| {
                            e.message.contains(&format!("'{k}'"))
                                || e.message.contains(&format!("\"{k}\""))
                        })
                        .cloned()
                        .collect();
                    if unknown.is_empty() {
                        return Err(e);
                    }
                    self.client.error_handled();
                    for k in unknown {
                        pending.remove(&k);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn search(
        &self,
        keys: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, Ticket>, FetchError> {
        let jql = format!(
            "key in ({})",
            keys.iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let url = self.client.url("rest/api/3/search/jql")?;
        let endpoint = "/rest/api/3/search/jql";
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        for _ in 0..100 {
            let mut body = serde_json::json!({
                "jql": jql,
                "fields": ["summary", "status", "fixVersions"],
                "maxResults": KEYS_PER_QUERY,
            });
            if let Some(t) = &token {
                body["nextPageToken"] = serde_json::Value::String(t.clone());
            }
            let resp = self.client.post_json(url.clone(), &body, RESOURCE).await?;
            let page: SearchResponse = resp.json(&self.client, "POST", endpoint)?;
            for issue in page.issues {
                // An issue that was not asked for (a moved issue answers under its new
                // key) is not one of ours.
                if !keys.contains(&issue.key) {
                    continue;
                }
                out.insert(
                    issue.key.clone(),
                    Ticket {
                        key: issue.key,
                        status: issue.fields.status.and_then(|s| s.name),
                        summary: issue.fields.summary,
                        in_jira: Some(true),
                    },
                );
            }
            match page.next_page_token {
                Some(t) if page.is_last != Some(true) => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }
}

/// Ticket keys in a PR title or branch name, in order of appearance, without repeats;
/// matches of `ignore` (whole key: `UTF-8`, `ISO-8601`) are not tickets.
pub fn ticket_keys(
    pattern: &regex::Regex,
    ignore: Option<&regex::Regex>,
    texts: &[&str],
) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for text in texts {
        for m in pattern.find_iter(text) {
            let key = m.as_str();
            if ignore.is_some_and(|re| re.find(key).is_some_and(|i| i.len() == key.len())) {
                continue;
            }
            if seen.insert(key.to_string()) {
                out.push(key.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_in_titles_and_branches() {
        let re = regex::Regex::new("[A-Z][A-Z0-9]+-[0-9]+").unwrap();
        let keys = ticket_keys(
            &re,
            None,
            &[
                "PAY-123: fix rounding (PAY-124)",
                "feature/PAY-123-rounding",
                "chore: bump deps",
            ],
        );
        assert_eq!(keys, ["PAY-123", "PAY-124"]);
        let ignore = regex::Regex::new("UTF-[0-9]+|ISO-[0-9]+").unwrap();
        let keys = ticket_keys(
            &re,
            Some(&ignore),
            &["PAY-7: read UTF-8 and ISO-8601 dates", "fix/UTF-80-PAY-8"],
        );
        assert_eq!(keys, ["PAY-7", "PAY-8"]);
    }

    #[test]
    fn parses_search_page() {
        let json = r#"{"issues":[{"id":"1","key":"PAY-1","self":"x","fields":{"summary":"Refunds","status":{"name":"Done","statusCategory":{"key":"done"}},"fixVersions":[]}}],"nextPageToken":"abc","isLast":false}"#;
        let r: SearchResponse = serde_json::from_str(json).unwrap();
        assert_eq!(
            r.issues[0].fields.status.as_ref().unwrap().name.as_deref(),
            Some("Done")
        );
        assert_eq!(r.next_page_token.as_deref(), Some("abc"));
    }
}
