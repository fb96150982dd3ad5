//! GitHub: REST v3 (commits, pulls, tags, contents, rate_limit) and GraphQL (file
//! contents at many commits per request through aliases).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::join_all;
use reqwest::Url;
use serde::Deserialize;

use super::http::{
    Auth, ClientContext, ClientOptions, FetchError, Links, Pace, RateHeaders, SourceClient,
    query_param,
};
use crate::cache::{HttpCache, Namespace};
use crate::config::{Config, Secrets};

/// GitHub's maximum page size.
pub const PER_PAGE: u32 = 100;
/// Pages of one listing followed before it is called endless (GitHub stops far below).
const MAX_PAGES: usize = 1000;
/// Aliases per GraphQL request (GitHub's node limit allows more; 100 keeps answers small).
pub const GRAPHQL_ALIASES_PER_REQUEST: usize = 100;
/// GitHub's documented secondary limits.
pub const REST_POINTS_PER_MINUTE: usize = 900;
pub const GRAPHQL_POINTS_PER_MINUTE: usize = 2000;
pub const MAX_CONCURRENT_REQUESTS: usize = 100;
/// Rate-limit answers one GraphQL batch sits through before it fails.
const MAX_GRAPHQL_RATE_LIMIT_WAITS: u32 = 5;

const REST: &str = "core";
const GRAPHQL: &str = "graphql";

#[derive(Debug, Clone, Deserialize)]
pub struct CommitItem {
    pub sha: String,
    pub commit: CommitDetail,
    #[serde(default)]
    pub parents: Vec<ParentRef>,
}

/// The git commit: its committer is always there (unlike the GitHub *user* fields
/// beside it, which are null for unknown emails).
#[derive(Debug, Clone, Deserialize)]
pub struct CommitDetail {
    pub committer: Signature,
    pub author: Option<Signature>,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Signature {
    #[serde(deserialize_with = "rfc3339")]
    pub date: time::OffsetDateTime,
}

/// A timestamp that must be RFC 3339: a listing whose dates do not parse is not the
/// documented shape (a date of 1970 would pass for a plausible deployment time).
fn rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<time::OffsetDateTime, D::Error> {
    let s = String::deserialize(d)?;
    parse_rfc3339(&s).ok_or_else(|| serde::de::Error::custom(format!("date {s:?} is not RFC 3339")))
}

#[derive(Debug, Clone, Deserialize)]
pub struct ParentRef {
    pub sha: String,
}

impl CommitItem {
    /// Committer date (when the commit landed on the branch).
    pub fn date(&self) -> time::OffsetDateTime {
        self.commit.committer.date
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PullItem {
    pub number: u64,
    #[serde(default)]
    pub title: String,
    pub head: PullHead,
    pub merged_at: Option<String>,
    pub merge_commit_sha: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PullHead {
    #[serde(rename = "ref", default)]
    pub branch: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TagItem {
    pub name: String,
    pub commit: TagCommit,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TagCommit {
    pub sha: String,
}

/// A file of the contents API (a directory answers an array, which does not parse).
#[derive(Deserialize)]
struct ContentsItem {
    content: String,
    encoding: String,
}

pub fn parse_rfc3339(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

pub fn format_rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The GitHub client of one run.
#[derive(Clone)]
pub struct GitHub {
    pub rest: SourceClient,
    graphql_url: Url,
    use_graphql: bool,
    /// Where file texts at a SHA (immutable) are kept; None: fetched every time.
    cache: Option<HttpCache>,
    /// File texts being written to the store off the async workers.
    storing: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// File reads waiting to be sent, per repository, so that reads asked for by many
    /// files at about the same time share full GraphQL requests.
    waiting: std::sync::Arc<std::sync::Mutex<HashMap<String, Vec<WaitingRead>>>>,
}

type TextAnswer = Result<Option<String>, FetchError>;
type WaitingRead = (FileAt, tokio::sync::oneshot::Sender<TextAnswer>);

/// How long a read waits for others to fill its GraphQL request (a request fills at once
/// when 100 are waiting).
const COALESCE_WAIT: Duration = Duration::from_millis(2);

/// A GraphQL failure that a smaller query would likely not hit.
fn too_slow(e: &FetchError) -> bool {
    matches!(e.status, Some(502 | 504)) || e.message.to_ascii_lowercase().contains("timeout")
}

/// One file at one commit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileAt {
    pub sha: String,
    pub path: String,
}

impl GitHub {
    pub fn new(config: &Config, secrets: &Secrets, ctx: &ClientContext) -> Result<GitHub, String> {
        let gh = &config.github;
        let auth = match &secrets.github_token {
            Some(t) => Auth::Bearer(t.clone()),
            None => Auth::None,
        };
        let minute = Duration::from_secs(60);
        let rest = SourceClient::new(ClientOptions {
            headers: vec![
                ("accept", "application/vnd.github+json".into()),
                ("x-github-api-version", "2022-11-28".into()),
            ],
            max_concurrency: gh.max_concurrency.clamp(1, MAX_CONCURRENT_REQUESTS),
            rate_headers: RateHeaders::GitHub,
            cache: ctx.cache_for(Namespace::GitHub),
            max_body_bytes: (gh.max_body_mib.max(1) << 20) as usize,
            extra_origins: vec![config.graphql_url()],
            budgets: vec![
                (
                    REST,
                    "GitHub",
                    Some(Pace {
                        max: REST_POINTS_PER_MINUTE,
                        window: minute,
                    }),
                ),
                (
                    GRAPHQL,
                    "GitHub GraphQL",
                    Some(Pace {
                        max: GRAPHQL_POINTS_PER_MINUTE,
                        window: minute,
                    }),
                ),
            ],
            ..ClientOptions::new("github", "GitHub", gh.base_url.clone(), auth, ctx)
        })?;
        let graphql_url = Url::parse(&config.graphql_url())
            .map_err(|e| format!("github: bad graphql_url: {e}"))?;
        Ok(GitHub {
            rest,
            graphql_url,
            use_graphql: gh.graphql,
            cache: ctx.cache.clone(),
            storing: std::sync::Arc::default(),
            waiting: std::sync::Arc::default(),
        })
    }

    /// The cache key of a file at a commit: immutable, and bound to the credential that
    /// could read it.
    fn file_key(&self, repo: &str, f: &FileAt) -> String {
        format!(
            "{} file {repo}@{}:{}",
            self.rest.cache_prefix(),
            f.sha,
            f.path
        )
    }

    /// Waits until every file text fetched so far is in the store.
    pub async fn settle(&self) {
        let pending = std::mem::take(&mut *self.storing.lock().unwrap_or_else(|p| p.into_inner()));
        for handle in pending {
            let _ = handle.await;
        }
    }

    /// Learns both budgets before fanning out (`GET /rate_limit` costs no budget).
    pub async fn learn_budgets(&self) -> Result<(), FetchError> {
        let url = self.rest.url("rate_limit")?;
        // Not cached: it changes with every request. Its headers describe only `core`;
        // the GraphQL budget is in the body.
        let resp = self.rest.get_uncached(url, REST).await?;
        let body: serde_json::Value = resp.json(&self.rest, "GET", "/rate_limit")?;
        for resource in [REST, GRAPHQL] {
            let r = &body["resources"][resource];
            if let (Some(remaining), Some(limit)) = (r["remaining"].as_u64(), r["limit"].as_u64()) {
                self.rest
                    .learn_budget(resource, remaining, limit, r["reset"].as_u64());
            }
        }
        Ok(())
    }

    fn repo_url(
        &self,
        repo: &str,
        rest: &str,
        query: &[(&str, String)],
    ) -> Result<Url, FetchError> {
        let mut url = self.rest.url(&format!("repos/{repo}/{rest}"))?;
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Commits of `repo` (newest first) matching `query` (`path`, `since`, `sha`), with
    /// `per_page=100`. Paging stops after the first page holding a commit in `known`
    /// (incremental); with nothing known and `rel="last"` given, the remaining pages are
    /// fetched concurrently.
    pub async fn commits(
        &self,
        repo: &str,
        query: &[(&str, String)],
        known: &HashSet<String>,
    ) -> Result<Vec<CommitItem>, FetchError> {
        let mut q = query.to_vec();
        q.push(("per_page", PER_PAGE.to_string()));
        let first = self.repo_url(repo, "commits", &q)?;
        self.paged(
            first,
            |items: &Vec<CommitItem>| items.iter().any(|c| known.contains(&c.sha)),
            !known.is_empty(),
        )
        .await
    }

    /// The first page only of commits matching `query`, `per_page` of them.
    pub async fn commits_page(
        &self,
        repo: &str,
        query: &[(&str, String)],
        per_page: u32,
    ) -> Result<Vec<CommitItem>, FetchError> {
        let mut q = query.to_vec();
        q.push(("per_page", per_page.to_string()));
        let url = self.repo_url(repo, "commits", &q)?;
        Ok(self.rest.get_json(url, REST).await?.0)
    }

    /// Tags of `repo` (all pages).
    pub async fn tags(&self, repo: &str) -> Result<Vec<TagItem>, FetchError> {
        let first = self.repo_url(repo, "tags", &[("per_page", PER_PAGE.to_string())])?;
        self.paged(first, |_: &Vec<TagItem>| false, false).await
    }

    /// Closed pull requests updated since `since` (most recently updated first).
    pub async fn closed_pulls(
        &self,
        repo: &str,
        since: time::OffsetDateTime,
    ) -> Result<Vec<PullItem>, FetchError> {
        let first = self.repo_url(
            repo,
            "pulls",
            &[
                ("state", "closed".into()),
                ("sort", "updated".into()),
                ("direction", "desc".into()),
                ("per_page", PER_PAGE.to_string()),
            ],
        )?;
        let past_window = |items: &Vec<PullItem>| {
            items
                .iter()
                .any(|p| parse_rfc3339(&p.updated_at).is_some_and(|t| t < since))
        };
        let pulls = self.paged(first, past_window, true).await?;
        Ok(pulls)
    }

    /// Follows `Link` pagination from `first`. `stop(page)` ends paging after that page.
    /// `sequential` follows `rel="next"` one page at a time (needed when `stop` may end
    /// it early); otherwise, once `rel="last"` is known, the rest is fetched concurrently.
    async fn paged<T: serde::de::DeserializeOwned>(
        &self,
        first: Url,
        stop: impl Fn(&Vec<T>) -> bool,
        sequential: bool,
    ) -> Result<Vec<T>, FetchError> {
        let endpoint = self.rest.endpoint_of(&first);
        let (mut items, resp): (Vec<T>, _) = self.rest.get_json(first, REST).await?;
        if stop(&items) {
            return Ok(items);
        }
        let links = Links::parse(resp.link.as_deref());
        // Links carry the token when followed: they must stay on the configured origin.
        let last_url = links
            .last
            .as_deref()
            .map(|l| self.rest.follow_link(l, &endpoint))
            .transpose()?;
        let last_page = last_url
            .as_ref()
            .and_then(|l| query_param(l.as_str(), "page"))
            .and_then(|p| p.parse::<u32>().ok());
        if let (false, Some(last), Some(last_url)) = (sequential, last_page, &last_url) {
            // Pages 2..=last, concurrently, in order.
            let urls: Vec<Url> = (2..=last)
                .map(|p| {
                    let mut u = last_url.clone();
                    let pairs: Vec<(String, String)> = u
                        .query_pairs()
                        .map(|(k, v)| {
                            let v = if k == "page" {
                                p.to_string()
                            } else {
                                v.into_owned()
                            };
                            (k.into_owned(), v)
                        })
                        .collect();
                    u.query_pairs_mut().clear().extend_pairs(pairs);
                    u
                })
                .collect();
            let pages = join_all(urls.into_iter().map(|u| async move {
                Ok::<_, FetchError>(self.rest.get_json::<Vec<T>>(u, REST).await?.0)
            }))
            .await;
            for page in pages {
                items.extend(page?);
            }
            return Ok(items);
        }
        let mut next = links.next;
        let mut from = endpoint;
        // Bounded: GitHub caps listings far below this many pages.
        let mut pages = 1;
        while let Some(n) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(self.rest.error(
                    "GET",
                    &from,
                    None,
                    format!("more than {MAX_PAGES} pages of Link rel=\"next\": stopped"),
                    false,
                ));
            }
            let url = self.rest.follow_link(&n, &from)?;
            from = self.rest.endpoint_of(&url);
            let (page, resp): (Vec<T>, _) = self.rest.get_json(url, REST).await?;
            let done = stop(&page) || page.is_empty();
            items.extend(page);
            if done {
                break;
            }
            next = Links::parse(resp.link.as_deref()).next;
        }
        Ok(items)
    }

    /// Text of each file at each commit (None: absent there). Immutable, so answers come
    /// from the store first; the rest through GraphQL aliases (requests of up to 100,
    /// shared with other files' reads waiting at the same time), REST `contents` as the
    /// fallback.
    pub async fn files(
        &self,
        repo: &str,
        wanted: &[FileAt],
    ) -> (HashMap<FileAt, Option<String>>, Vec<FetchError>) {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        let mut seen = HashSet::new();
        for f in wanted {
            if !seen.insert(f.clone()) {
                continue;
            }
            let cached = match &self.cache {
                Some(c) => {
                    c.immutable(Namespace::GitHub, &self.file_key(repo, f))
                        .await
                }
                None => None,
            };
            match cached {
                Some(text) => {
                    out.insert(f.clone(), Some(text));
                }
                None => missing.push(f.clone()),
            }
        }
        self.rest.count_cache_hit(out.len() as u64);
        let from_store: HashSet<FileAt> = out.keys().cloned().collect();
        let mut errors = Vec::new();
        if missing.is_empty() {
            return (out, errors);
        }
        if self.use_graphql {
            self.read_coalesced(repo, missing, &mut out, &mut errors)
                .await;
        } else {
            let (texts, errs) = self.fetch_texts(repo, missing).await;
            out.extend(texts);
            errors.extend(errs);
        }
        // Thousands of small sled inserts in a cold run: done on the blocking pool so that
        // they neither hold an async worker nor delay this answer (measured: 1.5 latency
        // units of the cold benchmark). `settle` waits for them before the run commits.
        let texts: Vec<(String, String)> = out
            .iter()
            .filter(|(f, _)| !from_store.contains(*f))
            .filter_map(|(f, t)| Some((self.file_key(repo, f), t.clone()?)))
            .collect();
        if let Some(cache) = self.cache.clone().filter(|_| !texts.is_empty()) {
            let handle = tokio::task::spawn_blocking(move || {
                cache.put_immutable_blocking(Namespace::GitHub, &texts);
            });
            self.storing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(handle);
        }
        (out, errors)
    }

    /// Reads `missing` through requests shared with other files' reads that wait at the
    /// same time: a full request (100 aliases) goes at once, the rest after
    /// [`COALESCE_WAIT`]. Whoever takes a batch sends it and answers every reader in it.
    async fn read_coalesced(
        &self,
        repo: &str,
        missing: Vec<FileAt>,
        out: &mut HashMap<FileAt, Option<String>>,
        errors: &mut Vec<FetchError>,
    ) {
        let mut answers = Vec::new();
        let take_full = |all: bool| {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            let queue = waiting.entry(repo.to_string()).or_default();
            let mut batches = Vec::new();
            while queue.len() >= GRAPHQL_ALIASES_PER_REQUEST || (all && !queue.is_empty()) {
                let n = queue.len().min(GRAPHQL_ALIASES_PER_REQUEST);
                batches.push(queue.drain(..n).collect::<Vec<WaitingRead>>());
            }
            batches
        };
        {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            let queue = waiting.entry(repo.to_string()).or_default();
            for f in missing {
                let (tx, rx) = tokio::sync::oneshot::channel();
                answers.push((f.clone(), rx));
                queue.push((f, tx));
            }
        }
        let full = take_full(false);
        let send_full = join_all(full.into_iter().map(|b| self.send_batch(repo, b)));
        let send_rest = async {
            tokio::time::sleep(COALESCE_WAIT).await;
            join_all(
                take_full(true)
                    .into_iter()
                    .map(|b| self.send_batch(repo, b)),
            )
            .await;
        };
        tokio::join!(send_full, send_rest);
        for (f, rx) in answers {
            match rx.await {
                Ok(Ok(text)) => {
                    out.insert(f, text);
                }
                Ok(Err(e)) => {
                    if !errors
                        .iter()
                        .any(|x| x.endpoint == e.endpoint && x.message == e.message)
                    {
                        errors.push(e);
                    }
                }
                Err(_) => errors.push(self.rest.error(
                    "POST",
                    "graphql",
                    None,
                    format!("{}:{}: the read was dropped", &f.sha, f.path),
                    false,
                )),
            }
        }
    }

    /// Sends one batch of waiting reads and answers each reader.
    async fn send_batch(&self, repo: &str, batch: Vec<WaitingRead>) {
        let files: Vec<FileAt> = batch.iter().map(|(f, _)| f.clone()).collect();
        let (texts, errors) = self.fetch_texts(repo, files).await;
        for (f, tx) in batch {
            let answer = match texts.get(&f) {
                Some(text) => Ok(text.clone()),
                None => Err(errors
                    .iter()
                    .find(|e| e.endpoint.contains(&f.sha))
                    .or(errors.first())
                    .cloned()
                    .unwrap_or_else(|| {
                        self.rest.error(
                            "POST",
                            "graphql",
                            None,
                            format!("{}:{}: no answer", &f.sha, f.path),
                            false,
                        )
                    })),
            };
            // The reader only goes away when its run is being dropped.
            let _ = tx.send(answer);
        }
    }

    /// Reads `missing` through GraphQL (even batches of up to 100 aliases, halved when
    /// they time out), REST `contents` for what GraphQL could not answer.
    async fn fetch_texts(
        &self,
        repo: &str,
        missing: Vec<FileAt>,
    ) -> (HashMap<FileAt, Option<String>>, Vec<FetchError>) {
        let mut out = HashMap::new();
        let mut errors = Vec::new();
        let mut rest_fallback = Vec::new();
        if self.use_graphql {
            // Even batches: 101 files are two requests of 51, not one of 100 and one of 1.
            let requests = missing.len().div_ceil(GRAPHQL_ALIASES_PER_REQUEST);
            let per_request = missing.len().div_ceil(requests);
            let mut queue: Vec<&[FileAt]> = missing.chunks(per_request).collect();
            while !queue.is_empty() {
                let batches =
                    join_all(queue.drain(..).map(|chunk| async move {
                        (chunk, self.graphql_files(repo, chunk).await)
                    }))
                    .await;
                for (chunk, result) in batches {
                    match result {
                        Ok(found) => {
                            for (f, text) in found {
                                out.insert(f, text);
                            }
                        }
                        // GitHub answers 502/504 (or a timeout error) when a query takes
                        // too long: half the aliases each usually pass.
                        Err(e) if too_slow(&e) && chunk.len() > 1 => {
                            self.rest.log().warn(
                                "github",
                                format!(
                                    "GraphQL batch of {} too slow ({e}); halving it",
                                    chunk.len()
                                ),
                            );
                            let (a, b) = chunk.split_at(chunk.len() / 2);
                            queue.extend([a, b]);
                        }
                        Err(e) => {
                            self.rest.log().warn(
                                "github",
                                format!(
                                    "GraphQL file batch failed ({e}); falling back to REST contents"
                                ),
                            );
                            rest_fallback.extend_from_slice(chunk);
                        }
                    }
                }
            }
        } else {
            rest_fallback = missing;
        }
        let fetched = join_all(rest_fallback.into_iter().map(|f| async move {
            let r = self.rest_file(repo, &f).await;
            (f, r)
        }))
        .await;
        for (f, r) in fetched {
            match r {
                Ok(text) => {
                    out.insert(f, text);
                }
                Err(e) => errors.push(e),
            }
        }
        (out, errors)
    }

    async fn graphql_files(
        &self,
        repo: &str,
        files: &[FileAt],
    ) -> Result<Vec<(FileAt, Option<String>)>, FetchError> {
        let (owner, name) = repo.split_once('/').unwrap_or((repo, ""));
        let mut query = format!(
            "query {{ repository(owner: {}, name: {}) {{",
            gql_string(owner),
            gql_string(name)
        );
        for (i, f) in files.iter().enumerate() {
            query.push_str(&format!(
                " f{i}: object(expression: {}) {{ ... on Blob {{ text isBinary isTruncated }} }}",
                gql_string(&format!("{}:{}", f.sha, f.path))
            ));
        }
        query.push_str(" } }");
        let endpoint = "POST graphql";
        let body = serde_json::json!({ "query": query });
        let mut waits = 0;
        let (resp, value) = loop {
            let resp = self
                .rest
                .post_json(self.graphql_url.clone(), &body, GRAPHQL)
                .await?;
            let value: serde_json::Value = serde_json::from_str(&resp.body).map_err(|e| {
                self.rest.error(
                    "POST",
                    endpoint,
                    Some(resp.status),
                    format!("unexpected GraphQL response: {e}"),
                    false,
                )
            })?;
            // GraphQL reports its limits inside a 200: wait, then ask again (a REST
            // fallback would only spend the other budget).
            match graphql_rate_limited(&value) {
                Some(message) if waits < MAX_GRAPHQL_RATE_LIMIT_WAITS => {
                    waits += 1;
                    let wait = self.graphql_wait(waits);
                    self.rest
                        .pause(GRAPHQL, wait, &format!("graphql ({message})"));
                }
                Some(message) => {
                    return Err(self.rest.error(
                        "POST",
                        endpoint,
                        Some(resp.status),
                        format!("rate limited: {message}; giving up"),
                        false,
                    ));
                }
                None => break (resp, value),
            }
        };
        let repo_data = value.get("data").and_then(|d| d.get("repository"));
        let errors = value
            .get("errors")
            .and_then(|e| e.as_array())
            .cloned()
            .unwrap_or_default();
        let Some(repo_data) = repo_data.filter(|r| r.is_object()) else {
            let message = errors
                .first()
                .and_then(|e| e.get("message"))
                .and_then(|m| m.as_str())
                .unwrap_or("no data in GraphQL response");
            return Err(self.rest.error(
                "POST",
                endpoint,
                Some(resp.status),
                message.to_string(),
                false,
            ));
        };
        // Aliases named by an error are unknown, not absent: fetch those over REST.
        let errored: HashSet<String> = errors
            .iter()
            .filter_map(|e| {
                e.get("path")?
                    .as_array()?
                    .get(1)?
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        let mut out = Vec::new();
        let mut retry = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let alias = format!("f{i}");
            if errored.contains(&alias) {
                retry.push(f.clone());
                continue;
            }
            match repo_data.get(&alias) {
                // `object(expression:)` is null when the path does not exist at that commit.
                Some(serde_json::Value::Null) => out.push((f.clone(), None)),
                // A truncated blob is read whole over REST.
                Some(obj) if obj.get("isTruncated").and_then(|t| t.as_bool()) == Some(true) => {
                    retry.push(f.clone())
                }
                Some(obj) => match obj.get("text").and_then(|t| t.as_str()) {
                    Some(text) => out.push((f.clone(), Some(text.to_string()))),
                    // Not a text blob (a tree, a binary file) or not the documented shape:
                    // unknown, not absent, so REST gives the answer (or the error).
                    None => retry.push(f.clone()),
                },
                // An alias missing from the answer is not an absent file either.
                None => retry.push(f.clone()),
            }
        }
        for f in retry {
            let text = self.rest_file(repo, &f).await?;
            out.push((f, text));
        }
        Ok(out)
    }

    /// How long to hold GraphQL after a rate-limit answer: until the reset when the budget
    /// is spent, else GitHub's documented "at least a minute", doubling.
    fn graphql_wait(&self, waits: u32) -> Duration {
        let budget = self
            .rest
            .budgets()
            .into_iter()
            .find(|b| b.source == "GitHub GraphQL" && b.remaining == 0);
        if let Some(reset) = budget.and_then(|b| b.resets_at) {
            let left = reset - time::OffsetDateTime::now_utc();
            return Duration::try_from(left).unwrap_or_default() + Duration::from_millis(500);
        }
        Duration::from_secs(60 << waits.saturating_sub(1).min(4))
    }

    /// `GET /repos/{o}/{r}/contents/{path}?ref=SHA` (base64 with embedded newlines).
    async fn rest_file(&self, repo: &str, f: &FileAt) -> Result<Option<String>, FetchError> {
        let path: Vec<String> = f.path.split('/').map(urlencode_segment).collect();
        let url = self.repo_url(
            repo,
            &format!("contents/{}", path.join("/")),
            &[("ref", f.sha.clone())],
        )?;
        let endpoint = self.rest.endpoint_of(&url);
        match self.rest.get_json::<ContentsItem>(url, REST).await {
            Ok((item, _)) => decode_contents(item)
                .map(Some)
                .map_err(|m| self.rest.error("GET", &endpoint, Some(200), m, false)),
            Err(e) if e.status == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The message of a GraphQL rate-limit error (`type` RATE_LIMITED or RATE_LIMIT, or a
/// message naming a rate limit), if the answer is one.
fn graphql_rate_limited(value: &serde_json::Value) -> Option<String> {
    value.get("errors")?.as_array()?.iter().find_map(|e| {
        let kind = e.get("type").and_then(|t| t.as_str()).unwrap_or_default();
        let message = e
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or_default();
        (kind.starts_with("RATE_LIMIT") || message.to_ascii_lowercase().contains("rate limit"))
            .then(|| message.to_string())
    })
}

fn decode_contents(item: ContentsItem) -> Result<String, String> {
    use base64::Engine;
    let content = item.content;
    match item.encoding.as_str() {
        "base64" => {
            let compact: String = content.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map_err(|e| format!("bad base64 content: {e}"))?;
            String::from_utf8(bytes).map_err(|_| "file content is not UTF-8".to_string())
        }
        "utf-8" | "utf8" => Ok(content),
        other => Err(format!(
            "unsupported content encoding {other:?} (file too large?)"
        )),
    }
}

/// A GraphQL string literal.
fn gql_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn urlencode_segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_base64_with_embedded_newlines() {
        let item = ContentsItem {
            content: "aW1hZ2VzOgogIC0gbmFt\nZTogeAo=\n".into(),
            encoding: "base64".into(),
        };
        assert_eq!(decode_contents(item).unwrap(), "images:\n  - name: x\n");
    }

    #[test]
    fn graphql_rate_limits_are_recognised() {
        let limited: serde_json::Value = serde_json::from_str(
            r#"{"errors":[{"type":"RATE_LIMITED","message":"API rate limit exceeded for user ID 1."}]}"#,
        )
        .unwrap();
        assert!(graphql_rate_limited(&limited).is_some());
        let newer: serde_json::Value = serde_json::from_str(
            r#"{"errors":[{"type":"RATE_LIMIT","code":"graphql_rate_limit","message":"API rate limit already exceeded for user ID 1."}]}"#,
        )
        .unwrap();
        assert!(graphql_rate_limited(&newer).is_some());
        let not_found: serde_json::Value = serde_json::from_str(
            r#"{"data":{"repository":null},"errors":[{"type":"NOT_FOUND","path":["repository"],"message":"Could not resolve to a Repository with the name 'a/b'."}]}"#,
        )
        .unwrap();
        assert!(graphql_rate_limited(&not_found).is_none());
    }

    #[test]
    fn graphql_strings_are_escaped() {
        assert_eq!(gql_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn commit_item_parses_real_shape() {
        let json = r#"[{"sha":"6dcb09b5b57875f334f61aebed695e2e4193db5e","node_id":"x","commit":{"url":"u","author":{"name":"Monalisa","email":"m@x","date":"2011-04-14T16:00:49Z"},"committer":{"name":"Monalisa","email":"m@x","date":"2011-04-15T16:00:49Z"},"message":"Fix all the bugs","tree":{"url":"u","sha":"t"},"comment_count":0},"url":"u","parents":[{"url":"u","sha":"6dcb09b5b57875f334f61aebed695e2e4193db5e"}]}]"#;
        let items: Vec<CommitItem> = serde_json::from_str(json).unwrap();
        assert_eq!(items[0].parents.len(), 1);
        assert_eq!(items[0].date().day(), 15);
    }
}
