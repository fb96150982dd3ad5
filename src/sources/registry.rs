//! OCI registries (the distribution API that GHCR, Docker Hub and the rest speak): the
//! source revision of a digest-pinned image, read from the
//! `org.opencontainers.image.revision` label of its config.
//!
//! `GET /v2/<name>/manifests/<digest>` (an image index is narrowed to linux/amd64),
//! then `GET /v2/<name>/blobs/<config digest>`. Every answer is checked against the
//! digest it was asked by, so a registry (or anything in between) cannot pass off
//! another image. Tokens follow the registry token flow: a 401's
//! `WWW-Authenticate: Bearer realm=…,service=…` names where to get a pull token for
//! `repository:<name>:pull`, anonymous unless credentials are configured; blobs that
//! redirect to a CDN are fetched there without any credential.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use reqwest::Url;
use serde::Deserialize;
use sha2::Digest as _;

use super::http::{
    Auth, ClientContext, ClientOptions, Counters, CrossOrigin, FetchError, HttpResponse,
    SourceClient,
};
use crate::cache::{HttpCache, Namespace, credential_fingerprint};
use crate::config::{REGISTRY_DEFAULT_USER, RegistryConfig, Secrets};

/// The label the OCI image spec defines for the source revision.
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";
const RESOURCE: &str = "registry";
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// The registry host and repository of an image name, as Docker reads them: the first
/// part is a host when it has a `.` or a `:` or is `localhost`; otherwise the image is on
/// Docker Hub (`nginx` is `docker.io/library/nginx`). A tag or digest is cut off.
pub fn split_image(image: &str) -> (String, String) {
    let image = image.split('@').next().unwrap_or(image);
    let (first, rest) = image.split_once('/').unwrap_or(("", image));
    let (host, path) = if !first.is_empty()
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        (first.to_string(), rest.to_string())
    } else if first.is_empty() {
        ("docker.io".to_string(), format!("library/{rest}"))
    } else {
        ("docker.io".to_string(), image.to_string())
    };
    // A tag after the last path segment (`name:tag`) is not part of the repository.
    let path = match path.rsplit_once('/') {
        Some((dir, last)) => format!("{dir}/{}", last.split(':').next().unwrap_or(last)),
        None => path.split(':').next().unwrap_or(&path).to_string(),
    };
    let host = if host == "index.docker.io" || host == "registry-1.docker.io" {
        "docker.io".to_string()
    } else {
        host
    };
    (host, path)
}

/// The configured registries of one run.
pub struct Registries {
    by_host: HashMap<String, Registry>,
    /// Counters of every registry client, for the run's stats.
    stats: Option<SourceClient>,
}

impl Registries {
    pub fn new(
        configs: &[RegistryConfig],
        secrets: &Secrets,
        ctx: &ClientContext,
    ) -> Result<Registries, String> {
        let counters = Arc::new(Counters::default());
        let mut by_host = HashMap::new();
        for cfg in configs {
            let creds = secrets.registries.get(&cfg.host).and_then(|(user, token)| {
                let token = token.clone()?;
                Some((
                    user.clone()
                        .unwrap_or_else(|| REGISTRY_DEFAULT_USER.to_string()),
                    token,
                ))
            });
            by_host.insert(
                cfg.host.clone(),
                Registry::new(cfg, creds, ctx, counters.clone())?,
            );
        }
        let stats = by_host.values().next().map(|r| r.anonymous.clone());
        Ok(Registries { by_host, stats })
    }

    /// The registry configured for `image`'s host.
    pub fn for_image(&self, image: &str) -> Option<&Registry> {
        self.by_host.get(&split_image(image).0)
    }

    /// A client whose counters are those of every registry request.
    pub fn client(&self) -> Option<&SourceClient> {
        self.stats.as_ref()
    }
}

/// One registry: an anonymous client, and one with a pull token per repository.
pub struct Registry {
    base: Url,
    creds: Option<(String, String)>,
    /// Manifests and configs by digest: content-addressed, so kept as immutable objects
    /// (checked against their digest again when read back).
    cache: Option<HttpCache>,
    /// `registry <host> <credential fingerprint>`: what one credential may read is not
    /// served to another.
    cache_prefix: String,
    shape: ClientShape,
    anonymous: SourceClient,
    by_repository: tokio::sync::Mutex<HashMap<String, SourceClient>>,
}

#[derive(Deserialize)]
struct Manifest {
    /// An image index (or Docker manifest list): one manifest per platform.
    manifests: Option<Vec<Descriptor>>,
    config: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
struct ImageConfig {
    config: Option<ImageConfigBody>,
}

#[derive(Deserialize)]
struct ImageConfigBody {
    #[serde(rename = "Labels")]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
}

/// How a registry's clients are made: manifests asked for in every format, blobs followed
/// to a CDN without credentials, counters shared.
struct ClientShape {
    base_url: String,
    ctx: ClientContext,
    counters: Arc<Counters>,
    max_concurrency: usize,
    max_body_bytes: usize,
}

impl ClientShape {
    fn client(
        &self,
        auth: Auth,
        redactor: crate::redact::Redactor,
    ) -> Result<SourceClient, String> {
        SourceClient::new(ClientOptions {
            headers: vec![("accept", MANIFEST_TYPES.into())],
            max_concurrency: self.max_concurrency,
            max_body_bytes: self.max_body_bytes,
            redactor,
            cross_origin: CrossOrigin::FollowWithoutCredentials,
            counters: Some(self.counters.clone()),
            cache: self.ctx.cache_for(Namespace::Registry),
            ..ClientOptions::new(
                "registry",
                "Registry",
                self.base_url.clone(),
                auth,
                &self.ctx,
            )
        })
    }
}

impl Registry {
    fn new(
        cfg: &RegistryConfig,
        creds: Option<(String, String)>,
        ctx: &ClientContext,
        counters: Arc<Counters>,
    ) -> Result<Registry, String> {
        let base_url = cfg.base_url();
        let base = Url::parse(&base_url)
            .map_err(|e| format!("registry {}: bad base_url {base_url}: {e}", cfg.host))?;
        let shape = ClientShape {
            base_url,
            ctx: ctx.clone(),
            counters,
            max_concurrency: cfg.max_concurrency.max(1),
            max_body_bytes: (cfg.max_body_mib.max(1) << 20) as usize,
        };
        let anonymous = shape.client(Auth::None, ctx.redactor.clone())?;
        let fingerprint = match &creds {
            Some((user, token)) => credential_fingerprint(&[user, token]),
            None => credential_fingerprint(&[]),
        };
        Ok(Registry {
            cache: ctx.cache.clone(),
            cache_prefix: format!("registry {} {fingerprint}", cfg.host),
            base,
            creds,
            shape,
            anonymous,
            by_repository: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The revision label of the image `image@digest` (None: it has none).
    pub async fn revision(&self, image: &str, digest: &str) -> Result<Option<String>, FetchError> {
        let (_, repository) = split_image(image);
        let top_endpoint = format!("v2/{repository}/manifests/{digest}");
        let top: Manifest = self.object(&repository, &top_endpoint, digest).await?;
        let malformed = |what: &str| {
            self.anonymous.error(
                "GET",
                &format!("/{top_endpoint}"),
                Some(200),
                what.to_string(),
                false,
            )
        };
        let manifest = match &top.manifests {
            Some(list) => {
                let chosen = pick_platform(list)
                    .ok_or_else(|| malformed("image index lists no manifest"))?;
                let endpoint = format!("v2/{repository}/manifests/{}", chosen.digest);
                self.object::<Manifest>(&repository, &endpoint, &chosen.digest)
                    .await?
            }
            None => top,
        };
        let config = manifest
            .config
            .ok_or_else(|| malformed("manifest has no `config`"))?;
        let endpoint = format!("v2/{repository}/blobs/{}", config.digest);
        let image_config: ImageConfig = self.object(&repository, &endpoint, &config.digest).await?;
        Ok(image_config
            .config
            .and_then(|c| c.labels)
            .and_then(|mut l| l.remove(REVISION_LABEL))
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty()))
    }

    /// The object `digest` of `repository` at `endpoint`: from the cache when kept (and
    /// still matching its digest), else fetched, checked against the digest, decoded and
    /// kept. The anonymous probe of a repository's first manifest is that same GET, so
    /// its answer is used rather than asked for twice.
    async fn object<T: serde::de::DeserializeOwned>(
        &self,
        repository: &str,
        endpoint: &str,
        digest: &str,
    ) -> Result<T, FetchError> {
        let key = format!("{} {repository}@{digest}", self.cache_prefix);
        if let Some(cache) = &self.cache
            && let Some(body) = cache.immutable(Namespace::Registry, &key).await
        {
            match serde_json::from_str(&body) {
                Ok(v) if digest_matches(digest, body.as_bytes()) => return Ok(v),
                _ => cache.remove(&key).await,
            }
        }
        let (client, probe) = self.client_for(repository, endpoint).await?;
        let resp = match probe {
            Some(resp) => resp,
            None => client.get_uncached(client.url(endpoint)?, RESOURCE).await?,
        };
        let shown = format!("/{endpoint}");
        if !digest_matches(digest, resp.body.as_bytes()) {
            return Err(client.error(
                "GET",
                &shown,
                Some(resp.status),
                format!("content does not match its digest {digest}"),
                false,
            ));
        }
        let value = resp.json(&client, "GET", &shown)?;
        if let Some(cache) = &self.cache {
            let cache = cache.clone();
            let item = [(key, resp.body)];
            let _ = tokio::task::spawn_blocking(move || {
                cache.put_immutable_blocking(Namespace::Registry, &item)
            })
            .await;
        }
        Ok(value)
    }

    /// A client allowed to pull `repository`: anonymous when the registry lets it, else
    /// with a token from the realm its challenge names. The first call for a repository
    /// probes anonymously with the GET of `endpoint` and, when that is answered, returns
    /// the answer too.
    async fn client_for(
        &self,
        repository: &str,
        endpoint: &str,
    ) -> Result<(SourceClient, Option<HttpResponse>), FetchError> {
        let mut known = self.by_repository.lock().await;
        if let Some(c) = known.get(repository) {
            return Ok((c.clone(), None));
        }
        let probe = self.anonymous.url(endpoint)?;
        let (client, answer) = match self.anonymous.get_uncached(probe, RESOURCE).await {
            Ok(resp) => (self.anonymous.clone(), Some(resp)),
            Err(e) if e.status == Some(401) => {
                let challenge = e.challenge.clone().unwrap_or_default();
                let client = self
                    .authorised(repository, &challenge)
                    .await
                    .map_err(|m| self.anonymous.error("GET", "/v2/", Some(401), m, false))?;
                (client, None)
            }
            Err(e) => return Err(e),
        };
        known.insert(repository.to_string(), client.clone());
        Ok((client, answer))
    }

    /// Answers a `WWW-Authenticate` challenge: `Basic` with the configured credentials,
    /// `Bearer` with a pull token from its realm.
    async fn authorised(&self, repository: &str, challenge: &str) -> Result<SourceClient, String> {
        let (scheme, params) = parse_challenge(challenge)
            .ok_or_else(|| format!("unauthorised, and no usable challenge ({challenge:?})"))?;
        if scheme.eq_ignore_ascii_case("basic") {
            let (user, password) = self
                .creds
                .clone()
                .ok_or("the registry wants credentials; configure username_env and token_env")?;
            return self.shape.client(
                Auth::Basic { user, password },
                self.shape.ctx.redactor.clone(),
            );
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(format!("unsupported authentication scheme {scheme}"));
        }
        let realm = params
            .get("realm")
            .ok_or("Bearer challenge without realm")?;
        let mut url =
            Url::parse(realm).map_err(|e| format!("token realm {realm:?} is not a URL: {e}"))?;
        if url.scheme() != "https" && url.origin() != self.base.origin() {
            return Err(format!(
                "token realm {realm} is neither https nor the registry itself: not asked"
            ));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                q.append_pair("service", service);
            }
            q.append_pair("scope", &format!("repository:{repository}:pull"));
        }
        // Credentials go to a realm of the registry's own domain only (Docker Hub's is
        // auth.docker.io beside registry-1.docker.io); any other realm is asked anonymously.
        let auth = match &self.creds {
            Some((user, password)) if same_site(&url, &self.base) => Auth::Basic {
                user: user.clone(),
                password: password.clone(),
            },
            _ => Auth::None,
        };
        let realm_client = SourceClient::new(ClientOptions {
            max_body_bytes: 1 << 20,
            counters: Some(self.shape.counters.clone()),
            cache: self.shape.ctx.cache_for(Namespace::Registry),
            ..ClientOptions::new("registry", "Registry", realm.clone(), auth, &self.shape.ctx)
        })?;
        let answer = realm_client
            .get_uncached(url, RESOURCE)
            .await
            .map_err(|e| e.to_string())?;
        let token: TokenAnswer = answer
            .json(&realm_client, "GET", "token")
            .map_err(|e| e.to_string())?;
        let token = token
            .token
            .or(token.access_token)
            .filter(|t| !t.is_empty())
            .ok_or("the token realm answered no token")?;
        self.shape.client(
            Auth::Bearer(token.clone()),
            self.shape.ctx.redactor.with(&token),
        )
    }
}

/// linux/amd64 when listed, else the first real platform (attestation manifests are
/// `unknown/unknown`), else the first.
fn pick_platform(list: &[Descriptor]) -> Option<&Descriptor> {
    fn platform(d: &Descriptor) -> Option<(&str, &str)> {
        d.platform
            .as_ref()
            .map(|p| (p.os.as_str(), p.architecture.as_str()))
    }
    list.iter()
        .find(|d| platform(d) == Some(("linux", "amd64")))
        .or_else(|| {
            list.iter()
                .find(|d| platform(d).is_some_and(|(os, _)| os != "unknown"))
        })
        .or(list.first())
}

/// Whether `body` hashes to `digest` (`sha256:…` or `sha512:…`).
pub fn digest_matches(digest: &str, body: &[u8]) -> bool {
    let Some((algo, hex)) = digest.split_once(':') else {
        return false;
    };
    let actual = match algo {
        "sha256" => hex_of(&sha2::Sha256::digest(body)),
        "sha512" => hex_of(&sha2::Sha512::digest(body)),
        _ => return false,
    };
    actual.eq_ignore_ascii_case(hex)
}

/// `sha256:<hex>` of `body`.
pub fn sha256_digest(body: &[u8]) -> String {
    format!("sha256:{}", hex_of(&sha2::Sha256::digest(body)))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Two URLs of the same site: the same host, or the same last two labels of it.
fn same_site(a: &Url, b: &Url) -> bool {
    let site = |u: &Url| {
        let host = u.host_str().unwrap_or_default();
        let labels: Vec<&str> = host.rsplit('.').take(2).collect();
        labels.join(".")
    };
    a.host_str() == b.host_str() || (site(a).contains('.') && site(a) == site(b))
}

/// `Bearer realm="https://x/token",service="x",scope="…"` → ("Bearer", params).
fn parse_challenge(header: &str) -> Option<(String, HashMap<String, String>)> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.to_string());
        rest = tail.trim_start_matches(',').trim();
    }
    (!scheme.is_empty()).then(|| (scheme.to_string(), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_like_docker() {
        let s = |i: &str| split_image(i);
        assert_eq!(s("ghcr.io/acme/api"), ("ghcr.io".into(), "acme/api".into()));
        assert_eq!(s("nginx"), ("docker.io".into(), "library/nginx".into()));
        assert_eq!(s("acme/api"), ("docker.io".into(), "acme/api".into()));
        assert_eq!(
            s("registry.acme.com:5000/team/api:v1"),
            ("registry.acme.com:5000".into(), "team/api".into())
        );
        assert_eq!(s("localhost/x@sha256:ab"), ("localhost".into(), "x".into()));
        assert_eq!(
            s("index.docker.io/library/redis"),
            ("docker.io".into(), "library/redis".into())
        );
    }

    #[test]
    fn challenges_parse() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:acme/api:pull""#,
        )
        .unwrap();
        assert_eq!(scheme, "Bearer");
        assert_eq!(p["realm"], "https://ghcr.io/token");
        assert_eq!(p["scope"], "repository:acme/api:pull");
        let (scheme, p) = parse_challenge(r#"Basic realm="Registry""#).unwrap();
        assert_eq!(
            (scheme.as_str(), p["realm"].as_str()),
            ("Basic", "Registry")
        );
    }

    #[test]
    fn digests_are_checked_and_sites_compared() {
        let body = br#"{"schemaVersion":2}"#;
        let d = sha256_digest(body);
        assert!(digest_matches(&d, body));
        assert!(!digest_matches(&d, b"{}"));
        assert!(!digest_matches("md5:00", body));
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(same_site(
            &u("https://auth.docker.io/token"),
            &u("https://registry-1.docker.io")
        ));
        assert!(same_site(
            &u("https://ghcr.io/token"),
            &u("https://ghcr.io")
        ));
        assert!(!same_site(
            &u("https://evil.example/token"),
            &u("https://ghcr.io")
        ));
    }

    #[test]
    fn platform_choice_prefers_linux_amd64_and_skips_attestations() {
        let list: Vec<Descriptor> = serde_json::from_str(
            r#"[{"digest":"sha256:1","platform":{"architecture":"unknown","os":"unknown"}},
                {"digest":"sha256:2","platform":{"architecture":"arm64","os":"linux"}},
                {"digest":"sha256:3","platform":{"architecture":"amd64","os":"linux"}}]"#,
        )
        .unwrap();
        assert_eq!(pick_platform(&list).unwrap().digest, "sha256:3");
        assert_eq!(pick_platform(&list[..2]).unwrap().digest, "sha256:2");
    }
}
