//! Simulated GitHub: REST v3 (commits, pulls, tags, contents, compare, rate_limit) and the
//! GraphQL endpoint (`repository { object(expression:) }`), with GitHub's rate-limit
//! headers, primary budgets per token, secondary limits (concurrency, points per minute
//! per endpoint), weak ETags and `Link` pagination.

use std::collections::{HashSet, VecDeque};
use std::sync::LazyLock;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

use super::org::{GitopsRepo, Org, SourceRepo};
use super::{
    AppState, Budget, GITHUB_ANONYMOUS_BUDGET_PER_HOUR, GITHUB_TOKEN, SECONDARY_RETRY_AFTER_SECS,
    Shared, Source, iso, json_status, json_with_etag, query_map, unix_now,
};

const DOCS: &str = "https://docs.github.com/rest";
const DEFAULT_PER_PAGE: usize = 30;
const MAX_PER_PAGE: usize = 100;
/// GitHub lists at most this many commits in a comparison.
const COMPARE_MAX_COMMITS: usize = 250;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v3/rate_limit", get(rate_limit))
        .route("/api/v3/repos/{owner}/{repo}/{*rest}", get(by_name))
        .route("/api/v3/repositories/{id}/{*rest}", get(by_id))
        .route("/api/graphql", post(graphql))
}

// --- admission: auth, budgets, secondary limits ---------------------------------------

fn token(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| rest.trim().to_string())
}

/// The endpoint family a secondary points-per-minute limit is counted for.
fn family(path: &str) -> String {
    if path == "/api/graphql" {
        return "graphql".into();
    }
    if path == "/api/v3/rate_limit" {
        return "rate_limit".into();
    }
    let segs: Vec<&str> = path.trim_start_matches("/api/v3/").split('/').collect();
    let rest = match segs.first() {
        Some(&"repos") => segs.get(3),
        Some(&"repositories") => segs.get(2),
        _ => None,
    };
    rest.map(|s| s.to_string())
        .unwrap_or_else(|| "other".into())
}

/// Decrements the in-flight count even if the client goes away mid-request.
struct InFlight<'a> {
    state: &'a Shared,
    who: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut l = self.state.limits.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = l.in_flight.get_mut(&self.who) {
            *n = n.saturating_sub(1);
        }
    }
}

fn budget<'a>(
    budgets: &'a mut std::collections::HashMap<(String, &'static str), Budget>,
    state: &Shared,
    who: &str,
    resource: &'static str,
) -> &'a mut Budget {
    let now = unix_now();
    let limit = match (who, resource) {
        ("anonymous", _) => GITHUB_ANONYMOUS_BUDGET_PER_HOUR,
        (_, "graphql") => state.opts.github_graphql_budget,
        _ => state.opts.github_rest_budget,
    };
    let window = state.opts.github_budget_window.as_secs().max(1);
    let b = budgets
        .entry((who.to_string(), resource))
        .or_insert_with(|| Budget {
            limit,
            used: 0,
            reset_unix: now + window,
        });
    if now >= b.reset_unix {
        b.used = 0;
        b.reset_unix = now + window;
    }
    b
}

fn rate_headers(headers: &mut HeaderMap, b: &Budget, resource: &str) {
    let remaining = b.limit.saturating_sub(b.used);
    for (k, v) in [
        ("x-ratelimit-limit", b.limit.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-used", b.used.to_string()),
        ("x-ratelimit-reset", b.reset_unix.to_string()),
        ("x-ratelimit-resource", resource.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    }
}

fn error_body(message: &str, doc: &str, status: StatusCode) -> Value {
    json!({
        "message": message,
        "documentation_url": format!("{DOCS}/{doc}"),
        "status": status.as_u16().to_string(),
    })
}

pub(super) async fn admit(state: AppState, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let fam = family(&path);
    *state
        .github_endpoints
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(fam.clone())
        .or_default() += 1;
    let is_graphql = fam == "graphql";
    let who = match token(req.headers()) {
        Some(t) if t == GITHUB_TOKEN => "user-1".to_string(),
        Some(_) => {
            tokio::time::sleep(state.opts.latency).await;
            return json_status(
                StatusCode::UNAUTHORIZED,
                error_body(
                    "Bad credentials",
                    "overview/troubleshooting-the-rest-api",
                    StatusCode::UNAUTHORIZED,
                ),
            );
        }
        None if is_graphql => {
            tokio::time::sleep(state.opts.latency).await;
            return json_status(
                StatusCode::UNAUTHORIZED,
                json!({"message": "This endpoint requires you to be authenticated.", "documentation_url": "https://docs.github.com/graphql/guides/forming-calls-with-graphql#authenticating-with-graphql"}),
            );
        }
        None => "anonymous".to_string(),
    };
    let resource: &'static str = if is_graphql { "graphql" } else { "core" };
    if fam == "rate_limit" {
        // Free: counts against no budget and no secondary limit.
        tokio::time::sleep(state.opts.latency).await;
        let mut resp = next.run(req).await;
        let mut l = state.limits.lock().unwrap_or_else(|e| e.into_inner());
        let b = budget(&mut l.budgets, &state, &who, "core").clone();
        rate_headers(resp.headers_mut(), &b, "core");
        return resp;
    }
    let guard = {
        let mut l = state.limits.lock().unwrap_or_else(|e| e.into_inner());
        let b = budget(&mut l.budgets, &state, &who, resource).clone();
        if b.used >= b.limit {
            state
                .count(Source::GitHub)
                .primary_limited
                .fetch_add(1, Ordering::Relaxed);
            drop(l);
            if is_graphql {
                // GraphQL answers an exhausted budget with 200 and an error.
                let mut resp = json_status(
                    StatusCode::OK,
                    json!({"errors": [{"type": "RATE_LIMITED", "message": "API rate limit exceeded for user ID 1."}]}),
                );
                rate_headers(resp.headers_mut(), &b, resource);
                return resp;
            }
            let mut resp = json_status(
                StatusCode::FORBIDDEN,
                error_body(
                    "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID 0000:0000:SIM.",
                    "overview/rate-limits-for-the-rest-api#about-primary-rate-limits",
                    StatusCode::FORBIDDEN,
                ),
            );
            rate_headers(resp.headers_mut(), &b, resource);
            return resp;
        }
        let max_points = if is_graphql {
            state.opts.github_graphql_points_per_minute
        } else {
            state.opts.github_rest_points_per_minute
        };
        let in_flight = l.in_flight.get(&who).copied().unwrap_or(0);
        let now = Instant::now();
        let points = l.points.entry((who.clone(), fam.clone())).or_default();
        while points
            .front()
            .is_some_and(|t| now.duration_since(*t).as_secs() >= 60)
        {
            points.pop_front();
        }
        if in_flight >= state.opts.github_max_concurrent || points.len() >= max_points {
            state
                .count(Source::GitHub)
                .secondary_limited
                .fetch_add(1, Ordering::Relaxed);
            drop(l);
            let mut resp = json_status(
                StatusCode::FORBIDDEN,
                error_body(
                    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID 0000:0000:SIM.",
                    "overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
                    StatusCode::FORBIDDEN,
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&SECONDARY_RETRY_AFTER_SECS.to_string()) {
                resp.headers_mut().insert("retry-after", v);
            }
            rate_headers(resp.headers_mut(), &b, resource);
            return resp;
        }
        points.push_back(now);
        *l.in_flight.entry(who.clone()).or_default() += 1;
        InFlight {
            state: &state,
            who: who.clone(),
        }
    };
    tokio::time::sleep(state.opts.latency).await;
    let mut resp = next.run(req).await;
    drop(guard);
    let mut l = state.limits.lock().unwrap_or_else(|e| e.into_inner());
    let b = budget(&mut l.budgets, &state, &who, resource);
    // Conditional requests answered 304 cost nothing.
    if resp.status() != StatusCode::NOT_MODIFIED {
        b.used += 1;
    }
    let b = b.clone();
    rate_headers(resp.headers_mut(), &b, resource);
    resp
}

// --- REST -------------------------------------------------------------------------------

async fn rate_limit(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let who = match token(&headers) {
        Some(t) if t == GITHUB_TOKEN => "user-1".to_string(),
        _ => "anonymous".to_string(),
    };
    let mut l = state.limits.lock().unwrap_or_else(|e| e.into_inner());
    let mut view = |resource: &'static str| {
        let b = budget(&mut l.budgets, &state, &who, resource);
        json!({
            "limit": b.limit,
            "used": b.used,
            "remaining": b.limit.saturating_sub(b.used),
            "reset": b.reset_unix,
        })
    };
    let core = view("core");
    let graphql = view("graphql");
    json_status(
        StatusCode::OK,
        json!({
            "resources": {
                "core": core,
                "graphql": graphql,
                "search": {"limit": 30, "used": 0, "remaining": 30, "reset": unix_now() + 60},
            },
            "rate": core,
        }),
    )
}

/// A repository the simulator knows.
enum Repo<'a> {
    Gitops(&'a GitopsRepo),
    Source(&'a SourceRepo),
}

impl<'a> Repo<'a> {
    fn find(org: &'a Org, full_name: &str) -> Option<Repo<'a>> {
        if org.gitops.full_name.eq_ignore_ascii_case(full_name) {
            return Some(Repo::Gitops(&org.gitops));
        }
        org.repos
            .values()
            .find(|r| r.full_name.eq_ignore_ascii_case(full_name))
            .map(Repo::Source)
    }

    fn by_id(org: &'a Org, id: u64) -> Option<Repo<'a>> {
        if org.gitops.id == id {
            return Some(Repo::Gitops(&org.gitops));
        }
        org.repos.values().find(|r| r.id == id).map(Repo::Source)
    }

    fn id(&self) -> u64 {
        match self {
            Repo::Gitops(g) => g.id,
            Repo::Source(s) => s.id,
        }
    }

    fn full_name(&self) -> &str {
        match self {
            Repo::Gitops(g) => &g.full_name,
            Repo::Source(s) => &s.full_name,
        }
    }

    fn len(&self) -> usize {
        match self {
            Repo::Gitops(g) => g.commits.len(),
            Repo::Source(s) => s.commits.len(),
        }
    }

    fn sha(&self, i: usize) -> &str {
        match self {
            Repo::Gitops(g) => &g.commits[i].sha,
            Repo::Source(s) => &s.commits[i].sha,
        }
    }

    fn date(&self, i: usize) -> i64 {
        match self {
            Repo::Gitops(g) => g.commits[i].date,
            Repo::Source(s) => s.commits[i].date,
        }
    }

    fn message(&self, i: usize) -> &str {
        match self {
            Repo::Gitops(g) => &g.commits[i].message,
            Repo::Source(s) => &s.commits[i].message,
        }
    }

    fn parents(&self, i: usize) -> Vec<usize> {
        match self {
            Repo::Gitops(_) => i.checked_sub(1).into_iter().collect(),
            Repo::Source(s) => s.commits[i].parents.clone(),
        }
    }

    fn head(&self) -> usize {
        match self {
            Repo::Gitops(g) => g.commits.len().saturating_sub(1),
            Repo::Source(s) => s.main.last().copied().unwrap_or(0),
        }
    }

    /// A branch (`main`, `HEAD`), a tag, or a full or abbreviated (≥ 7) commit sha.
    fn resolve(&self, r: &str) -> Option<usize> {
        if r.is_empty() || r == "main" || r == "HEAD" || r == "refs/heads/main" {
            return Some(self.head());
        }
        let r = r.strip_prefix("refs/tags/").unwrap_or(r);
        if let Repo::Source(s) = self
            && let Some(rel) = s.releases.iter().find(|rel| rel.tag == r)
        {
            return Some(rel.commit);
        }
        let by_sha = match self {
            Repo::Gitops(g) => &g.by_sha,
            Repo::Source(s) => &s.by_sha,
        };
        if let Some(i) = by_sha.get(r) {
            return Some(*i);
        }
        if r.len() >= 7 && r.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut found = (0..self.len()).filter(|&i| self.sha(i).starts_with(r));
            let first = found.next()?;
            return found.next().is_none().then_some(first);
        }
        None
    }

    /// `from` and its ancestors, newest first.
    fn history(&self, from: usize) -> Vec<usize> {
        match self {
            Repo::Gitops(_) => (0..=from).rev().collect(),
            Repo::Source(_) => {
                let mut seen = HashSet::new();
                let mut queue = VecDeque::from([from]);
                while let Some(c) = queue.pop_front() {
                    if seen.insert(c) {
                        queue.extend(self.parents(c));
                    }
                }
                let mut v: Vec<usize> = seen.into_iter().collect();
                v.sort_by_key(|&c| std::cmp::Reverse((self.date(c), c)));
                v
            }
        }
    }

    fn ancestors(&self, from: usize) -> HashSet<usize> {
        self.history(from).into_iter().collect()
    }

    fn commit_json(&self, i: usize, api: &str) -> Value {
        let sha = self.sha(i);
        let repo = self.full_name();
        let who = json!({"name": "Acme Bot", "email": "bot@acme.test", "date": iso(self.date(i))});
        json!({
            "sha": sha,
            "node_id": format!("C_{}", &sha[..12]),
            "commit": {
                "author": who,
                "committer": who,
                "message": self.message(i),
                "tree": {"sha": format!("{:0>40}", &sha[..20]), "url": format!("{api}/repos/{repo}/git/trees/{}", &sha[..20])},
                "url": format!("{api}/repos/{repo}/git/commits/{sha}"),
                "comment_count": 0,
                "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null}
            },
            "url": format!("{api}/repos/{repo}/commits/{sha}"),
            "html_url": format!("https://github.example/{repo}/commit/{sha}"),
            "comments_url": format!("{api}/repos/{repo}/commits/{sha}/comments"),
            "author": {"login": "acme-bot", "id": 1, "type": "Bot"},
            "committer": {"login": "web-flow", "id": 19864447, "type": "User"},
            "parents": self.parents(i).iter().map(|&p| json!({
                "sha": self.sha(p),
                "url": format!("{api}/repos/{repo}/commits/{}", self.sha(p)),
                "html_url": format!("https://github.example/{repo}/commit/{}", self.sha(p)),
            })).collect::<Vec<_>>(),
        })
    }
}

/// Every commit object rendered once, for the API root clients are expected to use.
/// Commit listings are most of what the simulator serves; rendering them per request made
/// the simulator, not the client, the bottleneck of the benchmark on a 2-core machine
/// (where both share the CPU).
#[derive(Default)]
pub(super) struct RenderedCommits {
    api: String,
    by_repo: std::collections::HashMap<u64, Vec<Box<str>>>,
}

impl RenderedCommits {
    pub(super) fn new(org: &Org, api: String) -> RenderedCommits {
        let mut by_repo = std::collections::HashMap::new();
        let repos =
            std::iter::once(Repo::Gitops(&org.gitops)).chain(org.repos.values().map(Repo::Source));
        for repo in repos {
            let rendered = (0..repo.len())
                .map(|i| repo.commit_json(i, &api).to_string().into_boxed_str())
                .collect();
            by_repo.insert(repo.id(), rendered);
        }
        RenderedCommits { api, by_repo }
    }

    fn commit(&self, api: &str, repo: u64, i: usize) -> Option<&str> {
        if api != self.api {
            return None;
        }
        self.by_repo.get(&repo)?.get(i).map(|s| &**s)
    }
}

/// `http://host/api/v3` as the client reached us.
fn api_root(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}/api/v3")
}

async fn by_name(
    State(state): State<AppState>,
    Path((owner, repo, rest)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let org = state.org();
    match Repo::find(&org, &format!("{owner}/{repo}")) {
        Some(r) => dispatch(&state, &r, &rest, &uri, &headers),
        None => not_found("repos/repos#get-a-repository"),
    }
}

async fn by_id(
    State(state): State<AppState>,
    Path((id, rest)): Path<(u64, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let org = state.org();
    match Repo::by_id(&org, id) {
        Some(r) => dispatch(&state, &r, &rest, &uri, &headers),
        None => not_found("repos/repos#get-a-repository"),
    }
}

fn not_found(doc: &str) -> Response {
    json_status(
        StatusCode::NOT_FOUND,
        error_body("Not Found", doc, StatusCode::NOT_FOUND),
    )
}

fn unprocessable(message: &str) -> Response {
    json_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        error_body(message, "repos", StatusCode::UNPROCESSABLE_ENTITY),
    )
}

fn dispatch(state: &Shared, repo: &Repo, rest: &str, uri: &Uri, headers: &HeaderMap) -> Response {
    let q = query_map(uri);
    let rest = rest.trim_end_matches('/');
    let org = state.org();
    match rest.split_once('/').map_or((rest, ""), |(a, b)| (a, b)) {
        ("commits", "") => list_commits(state, repo, &q, uri, headers),
        ("pulls", "") => list_pulls(state, repo, &q, uri, headers),
        ("tags", "") => list_tags(state, repo, &q, uri, headers),
        ("contents", path) => contents(state, &org, repo, path, &q, headers),
        ("compare", basehead) => compare(state, repo, basehead, headers),
        _ => not_found("repos"),
    }
}

fn per_page(q: &std::collections::HashMap<String, String>) -> (usize, usize) {
    let per_page = q
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(DEFAULT_PER_PAGE)
        .clamp(1, MAX_PER_PAGE);
    let page = q
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    (per_page, page)
}

/// Serves one page of `items` with GitHub's `Link` header (URLs under `/repositories/ID`).
/// Only the page's items are rendered to JSON.
#[allow(clippy::too_many_arguments)]
fn paginate<T>(
    state: &Shared,
    repo: &Repo,
    what: &str,
    items: Vec<T>,
    render: impl Fn(T, &mut String),
    q: &std::collections::HashMap<String, String>,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let (per_page, page) = per_page(q);
    let last = items.len().div_ceil(per_page).max(1);
    let start = (page - 1) * per_page;
    let mut body = String::from("[");
    for (n, item) in items.into_iter().skip(start).take(per_page).enumerate() {
        if n > 0 {
            body.push(',');
        }
        render(item, &mut body);
    }
    body.push(']');
    let link_to = |p: usize| {
        let mut pairs: Vec<(String, String)> = uri
            .query()
            .map(|s| {
                url::form_urlencoded::parse(s.as_bytes())
                    .into_owned()
                    .filter(|(k, _)| k != "page")
                    .collect()
            })
            .unwrap_or_default();
        pairs.push(("page".into(), p.to_string()));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!(
            "{}/repositories/{}/{what}?{query}",
            api_root(headers),
            repo.id()
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", link_to((page - 1).min(last))));
    }
    if page < last {
        links.push(format!("<{}>; rel=\"next\"", link_to(page + 1)));
        links.push(format!("<{}>; rel=\"last\"", link_to(last)));
    }
    if page > 1 {
        links.push(format!("<{}>; rel=\"first\"", link_to(1)));
    }
    let extra = if links.is_empty() {
        vec![]
    } else {
        vec![("link", links.join(", "))]
    };
    json_with_etag(state, Source::GitHub, headers, body, extra)
}

/// Appends a JSON value to a listing body.
fn push_value(v: Value, out: &mut String) {
    out.push_str(&v.to_string());
}

fn parse_time(v: &str) -> Option<i64> {
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn list_commits(
    state: &Shared,
    repo: &Repo,
    q: &std::collections::HashMap<String, String>,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let from = match q.get("sha") {
        Some(r) => match repo.resolve(r) {
            Some(c) => c,
            None => {
                return json_status(
                    StatusCode::NOT_FOUND,
                    error_body(
                        &format!("No commit found for SHA: {r}"),
                        "commits/commits#list-commits",
                        StatusCode::NOT_FOUND,
                    ),
                );
            }
        },
        None => repo.head(),
    };
    let bound = |k: &str| q.get(k).map(|v| (v, parse_time(v)));
    let (since, until) = match (bound("since"), bound("until")) {
        (Some((v, None)), _) => {
            return unprocessable(&format!("Invalid value for parameter 'since': {v}"));
        }
        (_, Some((v, None))) => {
            return unprocessable(&format!("Invalid value for parameter 'until': {v}"));
        }
        (s, u) => (s.and_then(|(_, t)| t), u.and_then(|(_, t)| t)),
    };
    let candidates: Vec<usize> = match (q.get("path"), repo) {
        // The gitops history is linear: a file's commits up to `from`, newest first.
        (Some(p), Repo::Gitops(g)) => g
            .file_by_path
            .get(p.trim_start_matches('/'))
            .map(|&f| {
                g.commits_by_file[f]
                    .iter()
                    .rev()
                    .copied()
                    .filter(|&c| c <= from)
                    .collect()
            })
            .unwrap_or_default(),
        (Some(_), Repo::Source(_)) => vec![],
        (None, _) => repo.history(from),
    };
    let api = api_root(headers);
    let items: Vec<usize> = candidates
        .into_iter()
        .filter(|&c| since.is_none_or(|s| repo.date(c) >= s))
        .filter(|&c| until.is_none_or(|u| repo.date(c) <= u))
        .collect();
    paginate(
        state,
        repo,
        "commits",
        items,
        |c, out| match state.rendered.commit(&api, repo.id(), c) {
            Some(json) => out.push_str(json),
            None => out.push_str(&repo.commit_json(c, &api).to_string()),
        },
        q,
        uri,
        headers,
    )
}

fn list_pulls(
    state: &Shared,
    repo: &Repo,
    q: &std::collections::HashMap<String, String>,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let Repo::Source(src) = repo else {
        return paginate(
            state,
            repo,
            "pulls",
            Vec::<Value>::new(),
            push_value,
            q,
            uri,
            headers,
        );
    };
    let state_filter = q.get("state").map(String::as_str).unwrap_or("open");
    let sort = q.get("sort").map(String::as_str).unwrap_or("created");
    let default_direction = if sort == "created" { "desc" } else { "asc" };
    let direction = q
        .get("direction")
        .map(String::as_str)
        .unwrap_or(default_direction);
    let mut pulls: Vec<_> = src
        .pulls
        .iter()
        .filter(|p| {
            let open = p.closed_at.is_none();
            match state_filter {
                "open" => open,
                "closed" => !open,
                _ => true,
            }
        })
        .collect();
    pulls.sort_by_key(|p| {
        let k = if sort == "updated" {
            p.updated_at
        } else {
            p.created_at
        };
        (k, p.number)
    });
    if direction == "desc" {
        pulls.reverse();
    }
    let api = api_root(headers);
    let name = &src.full_name;
    let items = pulls
        .into_iter()
        .map(|p| {
            let head_sha = &src.commits[p.head_commit].sha;
            let merge_sha = p
                .merge_commit
                .map(|m| src.commits[m].sha.clone())
                // Open and unmerged PRs carry a test-merge sha that is not on any branch.
                .unwrap_or_else(|| format!("{:016x}", super::org::fnv1a(head_sha.as_bytes())).repeat(3)[..40].to_string());
            json!({
                "url": format!("{api}/repos/{name}/pulls/{}", p.number),
                "id": src.id * 100_000 + p.number,
                "node_id": format!("PR_{}", p.number),
                "html_url": format!("https://github.example/{name}/pull/{}", p.number),
                "number": p.number,
                "state": if p.closed_at.is_some() { "closed" } else { "open" },
                "locked": false,
                "title": p.title,
                "user": {"login": "dev", "id": 2, "type": "User"},
                "body": null,
                "labels": [],
                "created_at": iso(p.created_at),
                "updated_at": iso(p.updated_at),
                "closed_at": p.closed_at.map(iso),
                "merged_at": p.merged_at.map(iso),
                "merge_commit_sha": merge_sha,
                "draft": false,
                "head": {"label": format!("acme:{}", p.head_ref), "ref": p.head_ref, "sha": head_sha},
                "base": {"label": "acme:main", "ref": "main", "sha": src.commits[src.main[src.main.len() - 1]].sha},
                "author_association": "MEMBER",
            })
        })
        .collect();
    paginate(state, repo, "pulls", items, push_value, q, uri, headers)
}

fn list_tags(
    state: &Shared,
    repo: &Repo,
    q: &std::collections::HashMap<String, String>,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let api = api_root(headers);
    let items = match repo {
        Repo::Source(src) => src
            .releases
            .iter()
            .rev()
            .map(|r| {
                let sha = &src.commits[r.commit].sha;
                json!({
                    "name": r.tag,
                    "commit": {"sha": sha, "url": format!("{api}/repos/{}/commits/{sha}", src.full_name)},
                    "zipball_url": format!("{api}/repos/{}/zipball/refs/tags/{}", src.full_name, r.tag),
                    "tarball_url": format!("{api}/repos/{}/tarball/refs/tags/{}", src.full_name, r.tag),
                    "node_id": format!("REF_{}", r.tag),
                })
            })
            .collect(),
        Repo::Gitops(_) => vec![],
    };
    paginate(state, repo, "tags", items, push_value, q, uri, headers)
}

fn contents(
    state: &Shared,
    org: &Org,
    repo: &Repo,
    path: &str,
    q: &std::collections::HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let doc = "repos/contents#get-repository-content";
    let Repo::Gitops(g) = repo else {
        return not_found(doc);
    };
    let Some(commit) = repo.resolve(q.get("ref").map(String::as_str).unwrap_or("main")) else {
        return json_status(
            StatusCode::NOT_FOUND,
            error_body(
                &format!(
                    "No commit found for the ref {}",
                    q.get("ref").cloned().unwrap_or_default()
                ),
                doc,
                StatusCode::NOT_FOUND,
            ),
        );
    };
    let Some(text) = g
        .file_by_path
        .get(path)
        .and_then(|&f| org.file_at(f, commit))
    else {
        return not_found(doc);
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    // GitHub wraps the base64 content at 60 characters.
    let wrapped: String = encoded
        .as_bytes()
        .chunks(60)
        .map(|c| format!("{}\n", String::from_utf8_lossy(c)))
        .collect();
    let blob = format!("{:016x}", super::org::fnv1a(text.as_bytes())).repeat(3)[..40].to_string();
    let name = path.rsplit('/').next().unwrap_or(path);
    let api = api_root(headers);
    let body = json!({
        "type": "file",
        "encoding": "base64",
        "size": text.len(),
        "name": name,
        "path": path,
        "content": wrapped,
        "sha": blob,
        "url": format!("{api}/repos/{}/contents/{path}?ref={}", g.full_name, repo.sha(commit)),
        "git_url": format!("{api}/repos/{}/git/blobs/{blob}", g.full_name),
        "html_url": format!("https://github.example/{}/blob/{}/{path}", g.full_name, repo.sha(commit)),
        "download_url": null,
        "_links": {"self": format!("{api}/repos/{}/contents/{path}", g.full_name)},
    });
    json_with_etag(state, Source::GitHub, headers, body.to_string(), vec![])
}

fn compare(state: &Shared, repo: &Repo, basehead: &str, headers: &HeaderMap) -> Response {
    let Some((base, head)) = basehead.split_once("...") else {
        return not_found("commits/commits#compare-two-commits");
    };
    let (Some(b), Some(h)) = (repo.resolve(base), repo.resolve(head)) else {
        return not_found("commits/commits#compare-two-commits");
    };
    let anc_b = repo.ancestors(b);
    let anc_h = repo.ancestors(h);
    let ahead: Vec<usize> = {
        let mut v: Vec<usize> = anc_h.difference(&anc_b).copied().collect();
        v.sort_by_key(|&c| (repo.date(c), c));
        v
    };
    let behind_by = anc_b.difference(&anc_h).count();
    let status = match (ahead.len(), behind_by) {
        (0, 0) => "identical",
        (_, 0) => "ahead",
        (0, _) => "behind",
        _ => "diverged",
    };
    let merge_base = repo
        .history(h)
        .into_iter()
        .find(|c| anc_b.contains(c))
        .unwrap_or(b);
    let api = api_root(headers);
    let body = json!({
        "url": format!("{api}/repos/{}/compare/{basehead}", repo.full_name()),
        "status": status,
        "ahead_by": ahead.len(),
        "behind_by": behind_by,
        "total_commits": ahead.len(),
        "base_commit": repo.commit_json(b, &api),
        "merge_base_commit": repo.commit_json(merge_base, &api),
        "commits": ahead.iter().take(COMPARE_MAX_COMMITS).map(|&c| repo.commit_json(c, &api)).collect::<Vec<_>>(),
        "files": [],
    });
    json_with_etag(state, Source::GitHub, headers, body.to_string(), vec![])
}

// --- GraphQL ----------------------------------------------------------------------------

static REPOSITORY: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r#"repository\s*\(\s*(?:owner\s*:\s*("(?:[^"\\]|\\.)*")\s*,?\s*name\s*:\s*("(?:[^"\\]|\\.)*")|name\s*:\s*("(?:[^"\\]|\\.)*")\s*,?\s*owner\s*:\s*("(?:[^"\\]|\\.)*"))\s*\)"#,
    )
    .expect("valid regex")
});

static OBJECT: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r#"([A-Za-z_][A-Za-z0-9_]*)\s*:\s*object\s*\(\s*expression\s*:\s*("(?:[^"\\]|\\.)*")\s*\)"#,
    )
    .expect("valid regex")
});

fn gql_error(message: &str, kind: Option<&str>, path: Option<Vec<&str>>) -> Value {
    let mut e = json!({"message": message, "locations": [{"line": 1, "column": 1}]});
    if let Some(k) = kind {
        e["type"] = json!(k);
    }
    if let Some(p) = path {
        e["path"] = json!(p);
    }
    e
}

async fn graphql(State(state): State<AppState>, body: String) -> Response {
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return json_status(
            StatusCode::BAD_REQUEST,
            json!({"message": "Problems parsing JSON", "documentation_url": "https://docs.github.com/graphql"}),
        );
    };
    let Some(query) = request.get("query").and_then(Value::as_str) else {
        return json_status(
            StatusCode::OK,
            json!({"errors": [gql_error("A query attribute must be specified and must be a string.", None, None)]}),
        );
    };
    let Some(repo_caps) = REPOSITORY.captures(query) else {
        return json_status(
            StatusCode::OK,
            json!({"errors": [gql_error("This simulator answers `repository(owner:, name:) { alias: object(expression:) { ... on Blob { text } } }` queries only", None, None)]}),
        );
    };
    let unquote = |m: Option<regex::Match>| -> Option<String> {
        serde_json::from_str::<String>(m?.as_str()).ok()
    };
    let owner = unquote(repo_caps.get(1)).or_else(|| unquote(repo_caps.get(4)));
    let name = unquote(repo_caps.get(2)).or_else(|| unquote(repo_caps.get(3)));
    let full = format!("{}/{}", owner.unwrap_or_default(), name.unwrap_or_default());
    let org = state.org();
    let Some(repo) = Repo::find(&org, &full) else {
        return json_status(
            StatusCode::OK,
            json!({
                "data": {"repository": null},
                "errors": [gql_error(&format!("Could not resolve to a Repository with the name '{full}'."), Some("NOT_FOUND"), Some(vec!["repository"]))],
            }),
        );
    };
    if OBJECT.captures_iter(query).count() > state.opts.github_graphql_max_objects {
        return json_status(
            StatusCode::BAD_GATEWAY,
            json!({"data": null, "errors": [gql_error("Something went wrong while executing your query. This may be the result of a timeout, or it could be a GitHub bug. Please include `0000:1111:2222` when reporting this issue.", None, None)]}),
        );
    }
    let want_text = query.contains("text");
    let want_binary = query.contains("isBinary");
    let want_size = query.contains("byteSize");
    let mut data = serde_json::Map::new();
    for caps in OBJECT.captures_iter(query) {
        let alias = caps[1].to_string();
        let Ok(expression) = serde_json::from_str::<String>(&caps[2]) else {
            data.insert(alias, Value::Null);
            continue;
        };
        let value = expression.split_once(':').and_then(|(rev, path)| {
            let commit = repo.resolve(rev)?;
            let Repo::Gitops(g) = &repo else { return None };
            let f = *g.file_by_path.get(path)?;
            let text = org.file_at(f, commit)?;
            let mut blob = serde_json::Map::new();
            if want_text {
                blob.insert("text".into(), json!(text));
            }
            if want_binary {
                blob.insert("isBinary".into(), json!(false));
            }
            if want_size {
                blob.insert("byteSize".into(), json!(text.len()));
            }
            Some(Value::Object(blob))
        });
        data.insert(alias, value.unwrap_or(Value::Null));
    }
    json_status(
        StatusCode::OK,
        json!({"data": {"repository": Value::Object(data)}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_families() {
        assert_eq!(family("/api/v3/repos/acme/deploy/commits"), "commits");
        assert_eq!(
            family("/api/v3/repositories/9/contents/a/b.yaml"),
            "contents"
        );
        assert_eq!(family("/api/graphql"), "graphql");
        assert_eq!(family("/api/v3/rate_limit"), "rate_limit");
    }

    #[test]
    fn parses_the_aliased_object_query() {
        let q = r#"query { repository(owner: "acme", name: "deploy") { f0: object(expression: "abc:overlays/x.yaml") { ... on Blob { text } } f1: object(expression: "d\"e:f") { ... on Blob { text } } } }"#;
        let caps = REPOSITORY.captures(q).unwrap();
        assert_eq!(&caps[1], "\"acme\"");
        let aliases: Vec<String> = OBJECT.captures_iter(q).map(|c| c[1].to_string()).collect();
        assert_eq!(aliases, ["f0", "f1"]);
    }
}
