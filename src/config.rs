//! The TOML configuration: what to snapshot and where the sources live.
//!
//! Every key is documented in the README. Unknown keys are rejected with `file:line`
//! so a typo never silently disables a feature. Secrets are never read from this file
//! by default: it names the environment variables (or files) that hold them, and
//! [`Config::resolve_secrets`] reads those before any request is sent.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A config problem, always naming the file (and line when there is one).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{0}")]
    Secret(String),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub environments: Vec<String>,
    pub gitops: GitOps,
    #[serde(default)]
    pub components: Vec<Component>,
    pub github: GitHubConfig,
    pub teamcity: Option<TeamCityConfig>,
    pub datadog: Option<DatadogConfig>,
    pub jira: Option<JiraConfig>,
    /// Image registries asked for the source revision of digest-only pins.
    #[serde(default)]
    pub registries: Vec<RegistryConfig>,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    /// `[schedule]`: the auto-snapshot policy's values from the file, checked by
    /// [`crate::schedule::Settings`] at load (see [`Config::schedule_layer`]).
    #[serde(default)]
    pub schedule: toml::Table,
    #[serde(default)]
    pub ui: UiConfig,
    /// Key overrides for the TUI, validated by the key map (`[keys]`).
    #[serde(default)]
    pub keys: BTreeMap<String, KeyBinding>,
    #[serde(default)]
    pub serve: ServeConfig,
}

/// `[serve]`: the daemon panes attach to (see `snaptop serve`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// The daemon's socket (default: one per config under `$XDG_RUNTIME_DIR/snaptop/`).
    /// A team's daemon: the path every member's config names.
    pub socket: Option<PathBuf>,
    /// Team mode: the socket is 0660 for this group, whose members may attach.
    pub group: Option<String>,
    /// The first pane starts a daemon when none serves the config (default true);
    /// false: a pane with no daemon runs its own engine.
    pub autostart: Option<bool>,
}

/// One action bound to one key or to several (`quit = ["q", "ctrl-c"]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum KeyBinding {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GitOps {
    /// `owner/name` of the repository holding the kustomization overlays.
    pub repo: String,
    /// Path of each component's kustomization file, with `{env}` and `{component}`.
    pub path: String,
    #[serde(default = "default_history_days")]
    pub history_days: u32,
    /// Branch whose history is the deployment history (default: the repo's default branch).
    pub branch: Option<String>,
}

fn default_history_days() -> u32 {
    60
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub name: String,
    /// `owner/name` of the component's source repository.
    pub repo: String,
    /// Image name as it appears in `images[].name` of the kustomization file.
    pub image: String,
    pub teamcity_build_type: Option<String>,
    pub datadog_service: Option<String>,
    /// Branch whose history is walked for ticket correlation (default: repo default branch).
    pub branch: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GitHubConfig {
    #[serde(default = "default_github_url")]
    pub base_url: String,
    pub graphql_url: Option<String>,
    /// Use GraphQL aliases for file contents (REST `contents` otherwise).
    #[serde(default = "default_true")]
    pub graphql: bool,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    #[serde(default = "default_github_concurrency")]
    pub max_concurrency: usize,
    /// Largest response body accepted (a pulls page of 100 is ~3 MiB).
    #[serde(default = "default_github_body_mib")]
    pub max_body_mib: u64,
}

fn default_github_url() -> String {
    "https://api.github.com".into()
}
fn default_true() -> bool {
    true
}
fn default_github_concurrency() -> usize {
    // Under GitHub's documented 100 concurrent requests, shared by REST and GraphQL.
    80
}
fn default_concurrency() -> usize {
    8
}
fn default_github_body_mib() -> u64 {
    32
}
fn default_body_mib() -> u64 {
    16
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TeamCityConfig {
    pub base_url: String,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    /// How many recent builds of each build type to read (the newest finished one is shown).
    #[serde(default = "default_builds_per_type")]
    pub builds_per_type: u32,
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    #[serde(default = "default_body_mib")]
    pub max_body_mib: u64,
}

fn default_builds_per_type() -> u32 {
    5
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatadogConfig {
    pub base_url: String,
    pub api_key_env: Option<String>,
    pub api_key_file: Option<PathBuf>,
    pub app_key_env: Option<String>,
    pub app_key_file: Option<PathBuf>,
    /// Name → query template with `{service}` and `{env}` placeholders.
    #[serde(default)]
    pub queries: BTreeMap<String, String>,
    /// How far back the health queries look.
    #[serde(default = "default_health_window_minutes")]
    pub window_minutes: u32,
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    #[serde(default = "default_body_mib")]
    pub max_body_mib: u64,
}

fn default_health_window_minutes() -> u32 {
    15
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    pub base_url: String,
    pub email_env: Option<String>,
    pub email_file: Option<PathBuf>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    #[serde(default = "default_ticket_pattern")]
    pub ticket_pattern: String,
    /// Matches of `ticket_pattern` that are not tickets (`UTF-8`, `ISO-8601`), as a regex
    /// over the whole key.
    pub ticket_ignore: Option<String>,
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    #[serde(default = "default_body_mib")]
    pub max_body_mib: u64,
}

impl JiraConfig {
    /// Jira's own key shape: a project key, a dash, a number.
    pub const DEFAULT_TICKET_PATTERN: &'static str = "[A-Z][A-Z0-9]+-[0-9]+";
}

fn default_ticket_pattern() -> String {
    JiraConfig::DEFAULT_TICKET_PATTERN.into()
}

/// An OCI registry (distribution API), asked for a digest's
/// `org.opencontainers.image.revision` label when nothing in the GitOps history ties the
/// digest to a tag.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The registry part of image names: `ghcr.io`, `docker.io`, `registry.acme.com:5000`.
    pub host: String,
    /// Default `https://HOST` (`docker.io`: `https://registry-1.docker.io`).
    pub base_url: Option<String>,
    /// Credentials for private images (anonymous pull tokens otherwise).
    pub username_env: Option<String>,
    pub username_file: Option<PathBuf>,
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
    #[serde(default = "default_registry_concurrency")]
    pub max_concurrency: usize,
    /// Manifests and image configs are small; this leaves room.
    #[serde(default = "default_registry_body_mib")]
    pub max_body_mib: u64,
}

impl RegistryConfig {
    pub fn base_url(&self) -> String {
        match &self.base_url {
            Some(u) => u.clone(),
            None if self.host == "docker.io" => "https://registry-1.docker.io".into(),
            None => format!("https://{}", self.host),
        }
    }
}

fn default_registry_concurrency() -> usize {
    4
}
fn default_registry_body_mib() -> u64 {
    4
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Directory of the sled store (default: `$XDG_DATA_HOME/snaptop/store`).
    pub path: Option<PathBuf>,
    /// sled page cache; sled's own default (1 GiB) is too much for a shared box.
    pub cache_mib: Option<u64>,
}

/// A duration written the human way: `90s`, `30m`, `2h`, `1h30m`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub std::time::Duration);

impl HumanDuration {
    pub const fn secs(s: u64) -> HumanDuration {
        HumanDuration(std::time::Duration::from_secs(s))
    }

    pub fn parse(s: &str) -> Result<HumanDuration, String> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|_| format!("{s:?} is not a duration (write it like 90s, 30m, 2h, 1h30m)"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HumanDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `[cache]`: the HTTP cache's budgets and freshness rules.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Byte budget of the in-memory tier (0: no memory tier, every hit reads the store).
    pub memory_mib: u64,
    /// Byte budget of the store tier; least recently used entries go first past it.
    pub disk_mib: u64,
    /// How old an expired answer may be and still be served, flagged stale, when its
    /// source fails ("0s": never).
    pub stale_if_error: HumanDuration,
    /// Entries nobody used for this long are purged.
    pub max_idle: HumanDuration,
    /// Freshness of answers that carry no `Cache-Control` / `Expires` of their own.
    pub ttl: TtlConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            memory_mib: 64,
            disk_mib: 512,
            stale_if_error: HumanDuration::secs(24 * 3600),
            max_idle: HumanDuration::secs(30 * 24 * 3600),
            ttl: TtlConfig::default(),
        }
    }
}

/// `[cache.ttl]`, per namespace. Answers with their own freshness (GitHub's `max-age`)
/// follow it; this is for the rest. "0s": always revalidate (or refetch).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TtlConfig {
    pub github: HumanDuration,
    pub teamcity: HumanDuration,
    pub datadog: HumanDuration,
    pub jira: HumanDuration,
}

impl Default for TtlConfig {
    fn default() -> Self {
        TtlConfig {
            github: HumanDuration::secs(0),
            // Build lists move slowly next to a snapshot's cadence; a run and its retry
            // within half a minute share one answer.
            teamcity: HumanDuration::secs(30),
            datadog: HumanDuration::secs(0),
            jira: HumanDuration::secs(0),
        }
    }
}

/// `[retention]`: how much history the store keeps.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Run history lines kept (and never older than `keep_days`).
    pub keep_runs: usize,
    /// Run history lines older than this many days go (0: no age limit).
    pub keep_days: u32,
    /// Full snapshots kept (the latest is always kept).
    pub keep_snapshots: usize,
    /// Runs whose detail (per-source requests, failures, log) is kept.
    pub keep_run_details: usize,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            // A year at the default schedule (~30 runs a day) is ~11,000 lines of ~300 bytes.
            keep_runs: 12_000,
            keep_days: 400,
            keep_snapshots: 30,
            keep_run_details: 500,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    pub theme: Option<String>,
    #[serde(default)]
    pub mouse: bool,
}

/// Credentials read from the environment or files; `Debug` never shows them.
#[derive(Clone, Default)]
pub struct Secrets {
    pub github_token: Option<String>,
    pub teamcity_token: Option<String>,
    pub datadog_api_key: Option<String>,
    pub datadog_app_key: Option<String>,
    pub jira_email: Option<String>,
    pub jira_token: Option<String>,
    /// Registry host → (username, token).
    pub registries: BTreeMap<String, (Option<String>, Option<String>)>,
    /// Token files others can read, each with the `chmod` that fixes it.
    pub warnings: Vec<String>,
}

impl Secrets {
    /// Finds every one of these secrets (and the Jira Basic pair) in messages.
    pub fn redactor(&self) -> crate::redact::Redactor {
        let singles = [
            &self.github_token,
            &self.teamcity_token,
            &self.datadog_api_key,
            &self.datadog_app_key,
            &self.jira_token,
        ];
        let mut basic: Vec<(&str, &str)> = Vec::new();
        if let (Some(user), Some(password)) = (&self.jira_email, &self.jira_token) {
            basic.push((user, password));
        }
        let mut tokens: Vec<&str> = singles.into_iter().flatten().map(String::as_str).collect();
        for (user, token) in self.registries.values() {
            if let Some(t) = token {
                tokens.push(t);
                basic.push((user.as_deref().unwrap_or(REGISTRY_DEFAULT_USER), t));
            }
        }
        crate::redact::Redactor::new(tokens, basic)
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |s: &Option<String>| if s.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Secrets")
            .field("github_token", &shown(&self.github_token))
            .field("teamcity_token", &shown(&self.teamcity_token))
            .field("datadog_api_key", &shown(&self.datadog_api_key))
            .field("datadog_app_key", &shown(&self.datadog_app_key))
            .field("jira_email", &shown(&self.jira_email))
            .field("jira_token", &shown(&self.jira_token))
            .field("registries", &self.registries.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Config {
    /// Reads and validates a config file. One that others can write is refused: it
    /// decides where the credentials are sent.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        check_permissions(path, "config").map_err(ConfigError::Secret)?;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        if is_ui_only(text) {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                message: "has no sources (no `environments`, [gitops] or [github]): only [ui], [keys] and [schedule], which the TUI uses in demo mode; a snapshot needs sources".into(),
            });
        }
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
            message: e.message().trim().to_string(),
        })?;
        for (section, env, file) in config.secret_sources() {
            if env && file {
                let line = line_of_section(text, &section).unwrap_or(1);
                return Err(ConfigError::Parse {
                    path: path.to_owned(),
                    line,
                    message: format!(
                        "[{section}] names a secret both by `*_env` and by `*_file`: keep one"
                    ),
                });
            }
        }
        if let Some(bad) = unknown_placeholder(&config.gitops.path, &["env", "component"]) {
            return Err(ConfigError::Parse {
                path: path.to_owned(),
                line: line_of_value(text, "path", &config.gitops.path),
                message: format!(
                    "`gitops.path` has an unknown placeholder `{bad}`: only {{env}} and {{component}} are filled in"
                ),
            });
        }
        config.validate().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        check_schedule(&config.schedule, text, path)?;
        Ok(config)
    }

    /// What this config snapshots, in one line: with the host name it seeds the
    /// schedule's per-box offset, so two configs on one box do not run in step.
    pub fn identity(&self) -> String {
        format!(
            "{} {} {}",
            self.gitops.repo,
            self.gitops.path,
            self.environments.join(",")
        )
    }

    /// The `[schedule]` values as the policy's file layer (checked at load).
    pub fn schedule_layer(&self) -> crate::schedule::Layer {
        crate::schedule::Settings::file_layer(&self.schedule).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), String> {
        if self.environments.is_empty() {
            return Err("`environments` is empty: name at least one environment".into());
        }
        if let Some(dup) = first_duplicate(self.environments.iter()) {
            return Err(format!("environment `{dup}` is listed twice"));
        }
        if let Some(dup) = first_duplicate(self.components.iter().map(|c| &c.name)) {
            return Err(format!("component `{dup}` is defined twice"));
        }
        check_repo("gitops.repo", &self.gitops.repo)?;
        if let Some(bad) = unknown_placeholder(&self.gitops.path, &["env", "component"]) {
            return Err(format!(
                "`gitops.path` has an unknown placeholder `{bad}`: only {{env}} and {{component}} are filled in"
            ));
        }
        if !self.gitops.path.contains("{component}") && self.components.len() > 1 {
            return Err("`gitops.path` must contain `{component}` (and usually `{env}`)".into());
        }
        if !self.gitops.path.contains("{env}") && self.environments.len() > 1 {
            return Err(
                "`gitops.path` must contain `{env}`: without it every environment reads the same file"
                    .into(),
            );
        }
        for c in &self.components {
            check_repo(&format!("components `{}` repo", c.name), &c.repo)?;
            if c.image.trim().is_empty() {
                return Err(format!("component `{}` has an empty `image`", c.name));
            }
        }
        check_url("github.base_url", &self.github.base_url)?;
        if let Some(u) = &self.github.graphql_url {
            check_url("github.graphql_url", u)?;
        }
        if let Some(tc) = &self.teamcity {
            check_url("teamcity.base_url", &tc.base_url)?;
        }
        if let Some(dd) = &self.datadog {
            check_url("datadog.base_url", &dd.base_url)?;
        }
        if let Some(j) = &self.jira {
            check_url("jira.base_url", &j.base_url)?;
            regex::Regex::new(&j.ticket_pattern)
                .map_err(|e| format!("`jira.ticket_pattern` is not a valid regex: {e}"))?;
            if let Some(ignore) = &j.ticket_ignore {
                regex::Regex::new(ignore)
                    .map_err(|e| format!("`jira.ticket_ignore` is not a valid regex: {e}"))?;
            }
        }
        if let Some(dup) = first_duplicate(self.registries.iter().map(|r| &r.host)) {
            return Err(format!("registry `{dup}` is configured twice"));
        }
        for r in &self.registries {
            if r.host.is_empty() || r.host.contains('/') {
                return Err(format!(
                    "registry host `{}` must be a host name such as ghcr.io",
                    r.host
                ));
            }
            check_url(&format!("registry `{}` base_url", r.host), &r.base_url())?;
        }
        Ok(())
    }

    /// (section, env var set, file set) of every secret the config names.
    fn secret_sources(&self) -> Vec<(String, bool, bool)> {
        let both = |env: &Option<String>, file: &Option<PathBuf>| (env.is_some(), file.is_some());
        let mut out = Vec::new();
        let mut add = |section: &str, (e, f): (bool, bool)| out.push((section.to_string(), e, f));
        add(
            "github",
            both(&self.github.token_env, &self.github.token_file),
        );
        if let Some(tc) = &self.teamcity {
            add("teamcity", both(&tc.token_env, &tc.token_file));
        }
        if let Some(dd) = &self.datadog {
            add("datadog", both(&dd.api_key_env, &dd.api_key_file));
            add("datadog", both(&dd.app_key_env, &dd.app_key_file));
        }
        if let Some(j) = &self.jira {
            add("jira", both(&j.email_env, &j.email_file));
            add("jira", both(&j.token_env, &j.token_file));
        }
        for r in &self.registries {
            add("registries", both(&r.username_env, &r.username_file));
            add("registries", both(&r.token_env, &r.token_file));
        }
        out
    }

    /// GraphQL endpoint: explicit, or derived from the REST base URL
    /// (`https://api.github.com` → `/graphql`; GHES `https://h/api/v3` → `https://h/api/graphql`).
    pub fn graphql_url(&self) -> String {
        if let Some(u) = &self.github.graphql_url {
            return u.clone();
        }
        let base = self.github.base_url.trim_end_matches('/');
        match base.strip_suffix("/api/v3") {
            Some(host) => format!("{host}/api/graphql"),
            None => format!("{base}/graphql"),
        }
    }

    /// The kustomization path of one component in one environment.
    pub fn kustomization_path(&self, env: &str, component: &str) -> String {
        self.gitops
            .path
            .replace("{env}", env)
            .replace("{component}", component)
    }

    /// Reads every secret the configured sources need. A missing variable or file is an
    /// error naming it, before any request is sent.
    pub fn resolve_secrets(&self) -> Result<Secrets, ConfigError> {
        let gh = &self.github;
        let mut warnings = Vec::new();
        let mut s = Secrets {
            github_token: read_secret(
                "github token",
                &gh.token_env,
                &gh.token_file,
                false,
                &mut warnings,
            )?,
            ..Secrets::default()
        };
        if let Some(tc) = &self.teamcity {
            s.teamcity_token = read_secret(
                "teamcity token",
                &tc.token_env,
                &tc.token_file,
                true,
                &mut warnings,
            )?;
        }
        if let Some(dd) = &self.datadog {
            s.datadog_api_key = read_secret(
                "datadog api key",
                &dd.api_key_env,
                &dd.api_key_file,
                true,
                &mut warnings,
            )?;
            s.datadog_app_key = read_secret(
                "datadog app key",
                &dd.app_key_env,
                &dd.app_key_file,
                true,
                &mut warnings,
            )?;
        }
        if let Some(j) = &self.jira {
            s.jira_email = read_secret(
                "jira email",
                &j.email_env,
                &j.email_file,
                true,
                &mut warnings,
            )?;
            s.jira_token = read_secret(
                "jira token",
                &j.token_env,
                &j.token_file,
                true,
                &mut warnings,
            )?;
        }
        for r in &self.registries {
            let user = read_secret(
                &format!("{} registry username", r.host),
                &r.username_env,
                &r.username_file,
                false,
                &mut warnings,
            )?;
            let token = read_secret(
                &format!("{} registry token", r.host),
                &r.token_env,
                &r.token_file,
                false,
                &mut warnings,
            )?;
            s.registries.insert(r.host.clone(), (user, token));
        }
        s.warnings = warnings;
        for w in &s.warnings {
            tracing::warn!("{w}");
        }
        Ok(s)
    }
}

/// The user name sent with a registry token when none is configured (GHCR accepts any).
pub const REGISTRY_DEFAULT_USER: &str = "snaptop";

/// Reads a secret from its environment variable or file. `required` sources (all but
/// GitHub, which works unauthenticated for public repos) must name one.
fn read_secret(
    what: &str,
    env: &Option<String>,
    file: &Option<PathBuf>,
    required: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, ConfigError> {
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
            _ => Err(ConfigError::Secret(format!(
                "environment variable {var} ({what}) is not set"
            ))),
        };
    }
    if let Some(path) = file {
        warnings.extend(check_permissions(path, what).map_err(ConfigError::Secret)?);
        return match std::fs::read_to_string(path) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
            Ok(_) => Err(ConfigError::Secret(format!(
                "{}: {what} file is empty",
                path.display()
            ))),
            Err(e) => Err(ConfigError::Secret(format!(
                "{}: cannot read {what}: {e}",
                path.display()
            ))),
        };
    }
    if required {
        return Err(ConfigError::Secret(format!(
            "no {what} configured: set `{}_env` or `{}_file`",
            what.replace(' ', "_"),
            what.replace(' ', "_")
        )));
    }
    Ok(None)
}

/// The TUI settings of a config file without sources: demo mode with the user's keys
/// and theme.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UiOnly {
    #[serde(default)]
    pub ui: UiConfig,
    #[serde(default)]
    pub schedule: toml::Table,
    #[serde(default)]
    pub keys: BTreeMap<String, KeyBinding>,
    /// `[serve] socket`: attach to the daemon there (a team's), with no sources here.
    #[serde(default)]
    pub serve: ServeConfig,
}

/// What a config file holds for the TUI.
#[derive(Debug, Clone)]
pub enum ConfigFile {
    Sources(Box<Config>),
    /// Only `[ui]` and `[keys]`: demo mode, with these.
    UiOnly(UiOnly),
}

impl ConfigFile {
    /// Reads a config for the TUI: one with sources, or one with only `[ui]`/`[keys]`.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        check_permissions(path, "config").map_err(ConfigError::Secret)?;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        if !is_ui_only(&text) {
            return Config::parse(&text, path).map(|c| ConfigFile::Sources(Box::new(c)));
        }
        let ui: UiOnly = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(1),
            message: e.message().trim().to_string(),
        })?;
        check_schedule(&ui.schedule, &text, path)?;
        Ok(ConfigFile::UiOnly(ui))
    }

    /// The `[schedule]` values as the policy's file layer.
    pub fn schedule_layer(&self) -> crate::schedule::Layer {
        let table = match self {
            ConfigFile::Sources(c) => &c.schedule,
            ConfigFile::UiOnly(u) => &u.schedule,
        };
        crate::schedule::Settings::file_layer(table).unwrap_or_default()
    }

    pub fn serve(&self) -> &ServeConfig {
        match self {
            ConfigFile::Sources(c) => &c.serve,
            ConfigFile::UiOnly(u) => &u.serve,
        }
    }

    pub fn ui(&self) -> &UiConfig {
        match self {
            ConfigFile::Sources(c) => &c.ui,
            ConfigFile::UiOnly(u) => &u.ui,
        }
    }

    pub fn keys(&self) -> &BTreeMap<String, KeyBinding> {
        match self {
            ConfigFile::Sources(c) => &c.keys,
            ConfigFile::UiOnly(u) => &u.keys,
        }
    }
}

/// A config with no source keys at all (an empty file or one with only `[ui]`/`[keys]`).
fn is_ui_only(text: &str) -> bool {
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return false;
    };
    table
        .keys()
        .all(|k| k == "ui" || k == "keys" || k == "schedule" || k == "serve")
}

/// Checks `[schedule]` on its own and with the built-in values filling the rest, naming
/// the line of the key at fault.
fn check_schedule(table: &toml::Table, text: &str, path: &Path) -> Result<(), ConfigError> {
    use crate::schedule::Settings;
    let error = |e: crate::schedule::FieldError| ConfigError::Parse {
        path: path.to_owned(),
        line: line_of_key(text, "schedule", &e.field)
            .or_else(|| line_of_section(text, "schedule"))
            .unwrap_or(1),
        message: format!("[schedule] {e}"),
    };
    let file = Settings::file_layer(table).map_err(error)?;
    Settings {
        file,
        store: Default::default(),
    }
    .resolve()
    .map_err(|errors| error(errors.into_iter().next().expect("at least one error")))?;
    Ok(())
}

/// The line of the `[section]` (or `[[section]]`) header.
pub fn line_of_section(text: &str, section: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim();
            l == format!("[{section}]") || l == format!("[[{section}]]")
        })
        .map(|i| i + 1)
}

/// The line of `key = …` inside `[section]` (the key bare or quoted), for errors found
/// after parsing: a bad key binding, an unknown theme.
pub fn line_of_key(text: &str, section: &str, key: &str) -> Option<usize> {
    let start = line_of_section(text, section)?;
    text.lines()
        .enumerate()
        .skip(start)
        .take_while(|(_, l)| !l.trim_start().starts_with('['))
        .find(|(_, l)| {
            let l = l.trim_start();
            let rest = l
                .strip_prefix(key)
                .or_else(|| l.strip_prefix(&format!("\"{key}\"")))
                .or_else(|| l.strip_prefix(&format!("'{key}'")));
            rest.is_some_and(|r| r.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1)
}

/// The first `{name}` in `template` that is not one of `known`.
fn unknown_placeholder(template: &str, known: &[&str]) -> Option<String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Some(rest[start..].to_string());
        };
        let name = &after[..end];
        if !known.contains(&name) {
            return Some(format!("{{{name}}}"));
        }
        rest = &after[end + 1..];
    }
    None
}

/// The line of `key = "value"` in TOML text (the value's first appearance after its key),
/// for errors found after parsing.
fn line_of_value(text: &str, key: &str, value: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.starts_with(key) && l[key.len()..].trim_start().starts_with('=') && l.contains(value)
        })
        .or_else(|| text.lines().position(|l| l.contains(value)))
        .map(|i| i + 1)
        .unwrap_or(1)
}

/// Refuses a file others can write (like ssh's StrictModes: whoever can change it decides
/// where credentials go, or what they are); returns a warning for a secret file others can
/// read.
fn check_permissions(path: &Path, what: &str) -> Result<Option<String>, String> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        // Missing or unreadable: the read that follows names it.
        return Ok(None);
    };
    let mode = meta.permissions().mode() & 0o777;
    let shown = path.display();
    if mode & 0o022 != 0 {
        return Err(format!(
            "{shown}: {what} file is writable by others (mode {mode:04o}); refusing it: `chmod go-w {shown}`"
        ));
    }
    if what != "config" && mode & 0o044 != 0 {
        return Ok(Some(format!(
            "{shown}: {what} file is readable by others (mode {mode:04o}): `chmod 600 {shown}`"
        )));
    }
    Ok(None)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn first_duplicate<'a>(mut items: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    let mut seen = std::collections::HashSet::new();
    items.find(|i| !seen.insert(*i))
}

fn check_repo(what: &str, repo: &str) -> Result<(), String> {
    let mut parts = repo.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(o), Some(r), None) if !o.is_empty() && !r.is_empty() => Ok(()),
        _ => Err(format!("{what} `{repo}` is not of the form `owner/name`")),
    }
}

fn check_url(what: &str, url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(()),
        _ => Err(format!("{what} `{url}` is not an http(s) URL")),
    }
}

/// The default config location: `$XDG_CONFIG_HOME/snaptop/config.toml`.
pub fn default_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("snaptop").join("config.toml"))
}

/// `$XDG_DATA_HOME/snaptop` (or `~/.local/share/snaptop`).
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir)
        .join("snaptop")
}

/// `$XDG_STATE_HOME/snaptop` (or `~/.local/state/snaptop`): where logs go.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("snaptop")
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = r#"
environments = ["dev", "staging", "prod"]
[gitops]
repo = "acme/deploy"
path = "overlays/{env}/{component}/kustomization.yaml"
history_days = 60
[[components]]
name = "api"
repo = "acme/payments-api"
image = "ghcr.io/acme/payments-api"
teamcity_build_type = "Payments_Api"
datadog_service = "payments-api"
[github]
base_url = "https://api.github.com"
graphql_url = "https://api.github.com/graphql"
token_env = "GITHUB_TOKEN"
[teamcity]
base_url = "https://teamcity.example.com"
token_env = "TEAMCITY_TOKEN"
[datadog]
base_url = "https://api.datadoghq.com"
api_key_env = "DD_API_KEY"
app_key_env = "DD_APP_KEY"
[datadog.queries]
error_rate = "sum:trace.http.request.errors{service:{service},env:{env}}.as_rate()"
p95_ms = "p95:trace.http.request.duration{service:{service},env:{env}}"
[jira]
base_url = "https://acme.atlassian.net"
email_env = "JIRA_EMAIL"
token_env = "JIRA_TOKEN"
ticket_pattern = "[A-Z][A-Z0-9]+-[0-9]+"
"#;

    #[test]
    fn the_readme_cache_section_is_the_defaults() {
        let readme = include_str!("../README.md");
        let start = readme
            .find("[cache]  ")
            .expect("a [cache] block in the README");
        let end = start + readme[start..].find("\n\n").unwrap();
        let text = format!("{EXAMPLE}\n{}", &readme[start..end]);
        let c = Config::parse(&text, Path::new("c.toml")).unwrap();
        assert_eq!(c.cache, CacheConfig::default());
        let off = format!("{EXAMPLE}\n[cache]\nmemory_mib = 0\n");
        assert_eq!(
            Config::parse(&off, Path::new("c.toml"))
                .unwrap()
                .cache
                .memory_mib,
            0
        );
    }

    #[test]
    fn parses_the_documented_example() {
        let c = Config::parse(EXAMPLE, Path::new("c.toml")).unwrap();
        assert_eq!(c.environments, ["dev", "staging", "prod"]);
        assert_eq!(
            c.components[0].teamcity_build_type.as_deref(),
            Some("Payments_Api")
        );
        assert_eq!(c.datadog.as_ref().unwrap().queries.len(), 2);
        assert_eq!(
            c.kustomization_path("prod", "api"),
            "overlays/prod/api/kustomization.yaml"
        );
    }

    #[test]
    fn a_bad_schedule_value_names_file_line_field_and_reason() {
        let text = format!("{EXAMPLE}\n[schedule]\ninterval_business = \"30m\"\nstart = \"8am\"\n");
        let line = text.lines().position(|l| l.starts_with("start")).unwrap() + 1;
        let err = Config::parse(&text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("c.toml:{line}: [schedule] start: \"8am\" is not a time like 08:00")
        );
        let ok = format!("{EXAMPLE}\n[schedule]\ndays = [\"mon\", \"thu\"]\nadaptive = true\n");
        let config = Config::parse(&ok, Path::new("c.toml")).unwrap();
        let layer = config.schedule_layer();
        assert_eq!(layer[&crate::schedule::Key::Days], "mon,thu");
    }

    #[test]
    fn a_schedule_only_config_is_the_demo_with_that_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[schedule]\ninterval_off_hours = \"3h\"\n").unwrap();
        let file = ConfigFile::load(&path).unwrap();
        assert!(matches!(file, ConfigFile::UiOnly(_)));
        assert_eq!(
            file.schedule_layer()[&crate::schedule::Key::IntervalOffHours],
            "3h"
        );
        std::fs::write(&path, "[schedule]\njitter = \"90%\"\n").unwrap();
        let err = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(
            err.ends_with(":2: [schedule] jitter: 90% is more than 50% of the interval"),
            "{err}"
        );
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let text = EXAMPLE.replace("history_days = 60", "history_days = 60\nhistroy = 3");
        let err = Config::parse(&text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:7:"), "{err}");
        assert!(err.contains("histroy"), "{err}");
    }

    #[test]
    fn wrong_type_names_line() {
        let text = EXAMPLE.replace("history_days = 60", "history_days = \"sixty\"");
        let err = Config::parse(&text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:6:"), "{err}");
    }

    #[test]
    fn graphql_url_is_derived() {
        let mut c = Config::parse(EXAMPLE, Path::new("c.toml")).unwrap();
        c.github.graphql_url = None;
        assert_eq!(c.graphql_url(), "https://api.github.com/graphql");
        c.github.base_url = "https://ghe.acme.com/api/v3/".into();
        assert_eq!(c.graphql_url(), "https://ghe.acme.com/api/graphql");
    }

    #[test]
    fn optional_sources_may_be_absent() {
        let text = EXAMPLE.split("[teamcity]").next().unwrap();
        let c = Config::parse(text, Path::new("c.toml")).unwrap();
        assert!(c.teamcity.is_none() && c.datadog.is_none() && c.jira.is_none());
    }

    #[test]
    fn missing_env_var_is_named() {
        let mut c = Config::parse(EXAMPLE, Path::new("c.toml")).unwrap();
        c.github.token_env = Some("SNAPTOP_TEST_SURELY_UNSET_VAR".into());
        let err = c.resolve_secrets().unwrap_err().to_string();
        assert!(err.contains("SNAPTOP_TEST_SURELY_UNSET_VAR"), "{err}");
    }

    #[test]
    fn secrets_debug_hides_values() {
        let s = Secrets {
            github_token: Some("ghp_supersecret".into()),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("supersecret"));
    }

    #[test]
    fn bad_repo_is_rejected() {
        let text = EXAMPLE.replace("acme/deploy", "deploy");
        let err = Config::parse(&text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("owner/name"), "{err}");
    }
}
