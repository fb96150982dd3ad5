//! The simulated organisation: source repositories with commits, merges, tags and pull
//! requests; a GitOps repository whose kustomization files record every deployment;
//! TeamCity builds, Datadog metrics and Jira tickets. Generated deterministically from a
//! seed and a profile, with dates relative to the moment the simulator started.
//!
//! The generator also keeps the ground truth (what is deployed where, which tickets
//! shipped), computed from its own data rather than through the APIs, so tests can check
//! a snapshot against it.

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const DAY_SECS: i64 = 86_400;
const HOUR_SECS: i64 = 3_600;
/// History that exists before the snapshot window (so the window has a "before").
const HISTORY_BEFORE_WINDOW_DAYS: i64 = 30;

/// What size of organisation to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// 4 components, 3 environments, 30 days: fast, for demos and tests.
    Small,
    /// The seed team's workload: 15 components, 4 environments, 60 days, ~450
    /// kustomization commits per component, ~40 merged PRs and ~150 commits per repo.
    Seed,
}

struct ProfileSpec {
    components: usize,
    environments: &'static [&'static str],
    window_days: i64,
    /// Kustomization commits per component in the window, over all its files.
    kustomization_commits: usize,
    merged_prs: usize,
    main_commits: usize,
    releases: usize,
}

impl Profile {
    fn spec(self) -> ProfileSpec {
        match self {
            Profile::Small => ProfileSpec {
                components: 4,
                environments: &["dev", "staging", "prod"],
                window_days: 30,
                kustomization_commits: 40,
                merged_prs: 10,
                main_commits: 40,
                releases: 8,
            },
            Profile::Seed => ProfileSpec {
                components: 15,
                environments: &["dev", "qa", "staging", "prod"],
                window_days: 60,
                kustomization_commits: 450,
                merged_prs: 40,
                main_commits: 150,
                releases: 30,
            },
        }
    }
}

/// How a component names its versions in `images[]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagStyle {
    /// `newTag: v1.4.0` (the git tag itself).
    V,
    /// `newTag: 1.4.0` (git tag `v1.4.0`).
    Bare,
    /// `newTag: sha-abc1234` (the release commit's short sha).
    Sha,
    /// `newTag: v1.4.0` plus `digest: sha256:...` (the digest is the version).
    Digest,
    /// `digest: sha256:...` alone; the image's `org.opencontainers.image.revision` label
    /// (in the simulated registry) names the release commit.
    DigestOnly,
    /// Each deployment sets `newTag: v1.4.0`; a later commit pins it, replacing the tag
    /// with its `digest:` (as digest-pinning bots do).
    Pinned,
    /// `digest:` alone, and the image carries no revision label: nothing can tell which
    /// source version it is.
    DigestUnlabelled,
}

#[derive(Debug, Clone)]
pub struct SimComponent {
    pub name: String,
    pub repo: String,
    pub image: String,
    pub build_type: String,
    pub service: String,
    pub project_key: String,
    pub style: TagStyle,
}

#[derive(Debug, Clone)]
pub struct Commit {
    pub sha: String,
    pub date: i64,
    pub parents: Vec<usize>,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Pull {
    pub number: u64,
    pub title: String,
    pub head_ref: String,
    pub head_commit: usize,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub merged_at: Option<i64>,
    pub merge_commit: Option<usize>,
    pub keys: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Release {
    pub tag: String,
    pub commit: usize,
    pub date: i64,
    /// The digest of the release's image index in the simulated registry.
    pub digest: String,
}

/// A source repository. `commits` is in creation order; `main` lists the commits of the
/// default branch in first-parent order, oldest first.
#[derive(Debug, Clone)]
pub struct SourceRepo {
    pub full_name: String,
    pub id: u64,
    pub commits: Vec<Commit>,
    pub by_sha: HashMap<String, usize>,
    pub main: Vec<usize>,
    /// Position in `main` of each main commit.
    pub main_pos: HashMap<usize, usize>,
    pub releases: Vec<Release>,
    pub pulls: Vec<Pull>,
}

/// One state of a kustomization file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileVersion {
    pub release: usize,
    pub replicas: u32,
    /// The tag is pinned by its digest (the [`TagStyle::Pinned`] style's second commit).
    pub pinned: bool,
}

#[derive(Debug, Clone)]
pub struct KustomizationFile {
    pub path: String,
    pub component: usize,
    pub env: String,
    /// (gitops commit index, state from that commit on), oldest first.
    pub changes: Vec<(usize, FileVersion)>,
}

#[derive(Debug, Clone)]
pub struct GitopsCommit {
    pub sha: String,
    pub date: i64,
    pub message: String,
    /// Index into `GitopsRepo::files` of the file it changed.
    pub file: usize,
}

#[derive(Debug, Clone)]
pub struct GitopsRepo {
    pub full_name: String,
    pub id: u64,
    /// Linear history, oldest first; commit i's parent is commit i-1.
    pub commits: Vec<GitopsCommit>,
    pub by_sha: HashMap<String, usize>,
    pub files: Vec<KustomizationFile>,
    pub file_by_path: HashMap<String, usize>,
    /// Commit indices touching each file, oldest first.
    pub commits_by_file: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimBuild {
    pub id: u64,
    pub number: u32,
    pub status: &'static str,
    pub state: &'static str,
    pub branch: &'static str,
    pub start: i64,
    pub finish: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct SimTicket {
    pub id: u64,
    pub key: String,
    pub summary: String,
    pub status: &'static str,
    pub status_category: &'static str,
}

/// The whole simulated organisation.
#[derive(Debug, Clone)]
pub struct Org {
    pub now: i64,
    pub window_days: i64,
    pub environments: Vec<String>,
    pub components: Vec<SimComponent>,
    pub gitops: GitopsRepo,
    pub repos: BTreeMap<String, SourceRepo>,
    /// Build type id → builds, newest first.
    pub builds: BTreeMap<String, Vec<SimBuild>>,
    pub tickets: BTreeMap<String, SimTicket>,
    /// Datadog services that report no data at all.
    pub silent_services: Vec<String>,
    /// The simulated registry's objects: digest → (repository, media type, body), for
    /// every release's image index, manifests and configs.
    pub oci: HashMap<String, OciObject>,
}

const NAMES: [(&str, &str); 15] = [
    ("payments", "PAY"),
    ("checkout", "CHK"),
    ("ledger", "LED"),
    ("notifications", "NOT"),
    ("search", "SRCH"),
    ("catalog", "CAT"),
    ("accounts", "ACC"),
    ("gateway", "GW"),
    ("inventory", "INV"),
    ("pricing", "PRC"),
    ("shipping", "SHP"),
    ("reports", "REP"),
    ("auth", "AUTH"),
    ("media", "MED"),
    ("scheduler", "SCH"),
];

const VERBS: [&str; 8] = [
    "Fix", "Add", "Speed up", "Refactor", "Harden", "Remove", "Log", "Retry",
];
const NOUNS: [&str; 8] = [
    "rounding in totals",
    "idempotency keys",
    "the retry budget",
    "pagination of listings",
    "currency conversion",
    "webhook signatures",
    "cache invalidation",
    "the health endpoint",
];
const STATUSES: [(&str, &str); 4] = [
    ("Done", "done"),
    ("Closed", "done"),
    ("In Review", "indeterminate"),
    ("Released", "done"),
];

pub const GITOPS_REPO: &str = "acme/deploy";
pub const GITOPS_PATH: &str = "overlays/{env}/{component}/kustomization.yaml";
pub const SIDECAR_IMAGE: &str = "ghcr.io/acme/envoy-sidecar";

fn hex(rng: &mut StdRng, len: usize) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    (0..len)
        .map(|_| DIGITS[rng.random_range(0..16)] as char)
        .collect()
}

impl Org {
    pub fn generate(profile: Profile, seed: u64, now: i64) -> Org {
        let spec = profile.spec();
        let mut rng = StdRng::seed_from_u64(seed);
        let environments: Vec<String> = spec.environments.iter().map(|s| s.to_string()).collect();
        let window_start = now - spec.window_days * DAY_SECS;
        let history_start = window_start - HISTORY_BEFORE_WINDOW_DAYS * DAY_SECS;

        let styles = [TagStyle::V, TagStyle::Bare, TagStyle::Sha, TagStyle::Digest];
        let components: Vec<SimComponent> = (0..spec.components)
            .map(|i| {
                let (name, key) = NAMES[i % NAMES.len()];
                let style = match i {
                    0..4 => styles[i],
                    4 => TagStyle::DigestOnly,
                    6 => TagStyle::Pinned,
                    7 => TagStyle::DigestUnlabelled,
                    _ if i % 5 == 0 => TagStyle::Bare,
                    _ => TagStyle::V,
                };
                let camel: String = name[..1].to_uppercase() + &name[1..];
                SimComponent {
                    name: name.to_string(),
                    repo: format!("acme/{name}"),
                    image: format!("ghcr.io/acme/{name}"),
                    build_type: format!("Acme_{camel}_Build"),
                    service: name.to_string(),
                    project_key: key.to_string(),
                    style,
                }
            })
            .collect();

        let mut tickets = BTreeMap::new();
        let mut repos = BTreeMap::new();
        let mut builds = BTreeMap::new();
        let mut oci = HashMap::new();
        for (i, comp) in components.iter().enumerate() {
            let mut repo = gen_source_repo(
                &mut rng,
                comp,
                1000 + i as u64,
                history_start,
                window_start,
                now,
                &spec,
                &mut tickets,
            );
            builds.insert(comp.build_type.clone(), gen_builds(&mut rng, i, now));
            let labelled = comp.style != TagStyle::DigestUnlabelled;
            for rel in &mut repo.releases {
                let revision = labelled.then(|| repo.commits[rel.commit].sha.clone());
                rel.digest = image_objects(&comp.image, &rel.tag, revision.as_deref(), &mut oci);
            }
            repos.insert(comp.repo.clone(), repo);
        }
        let gitops = gen_gitops(
            &mut rng,
            &components,
            &repos,
            &environments,
            history_start,
            window_start,
            now,
            &spec,
        );
        let silent_services = components
            .last()
            .filter(|_| components.len() > 2)
            .map(|c| vec![c.service.clone()])
            .unwrap_or_default();
        Org {
            now,
            window_days: spec.window_days,
            environments,
            components,
            gitops,
            repos,
            builds,
            tickets,
            silent_services,
            oci,
        }
    }

    pub fn component(&self, name: &str) -> Option<&SimComponent> {
        self.components.iter().find(|c| c.name == name)
    }

    /// The version string a snapshot reports for file state `v` of `comp`: the
    /// `digest` when one is written, else `newTag`.
    pub fn version_of(&self, comp: &SimComponent, v: FileVersion) -> String {
        let repo = &self.repos[&comp.repo];
        let rel = &repo.releases[v.release];
        match (comp.style, v.pinned) {
            (TagStyle::V, _) | (TagStyle::Pinned, false) => rel.tag.clone(),
            (TagStyle::Bare, _) => rel.tag.trim_start_matches('v').to_string(),
            (TagStyle::Sha, _) => format!("sha-{}", &repo.commits[rel.commit].sha[..7]),
            (TagStyle::Digest | TagStyle::DigestOnly | TagStyle::DigestUnlabelled, _)
            | (TagStyle::Pinned, true) => rel.digest.clone(),
        }
    }

    /// `newTag` and `digest` as written in the file for state `v`.
    fn written(&self, comp: &SimComponent, v: FileVersion) -> (Option<String>, Option<String>) {
        let rel = &self.repos[&comp.repo].releases[v.release];
        match (comp.style, v.pinned) {
            (TagStyle::Digest, _) => (Some(rel.tag.clone()), Some(rel.digest.clone())),
            (TagStyle::DigestOnly | TagStyle::DigestUnlabelled, _) | (TagStyle::Pinned, true) => {
                (None, Some(rel.digest.clone()))
            }
            _ => (Some(self.version_of(comp, v)), None),
        }
    }

    /// The text of the kustomization file at gitops commit `commit` (None: absent there).
    pub fn file_at(&self, file: usize, commit: usize) -> Option<String> {
        let f = &self.gitops.files[file];
        let pos = f.changes.partition_point(|(c, _)| *c <= commit);
        let (_, state) = f.changes.get(pos.checked_sub(1)?)?;
        let comp = &self.components[f.component];
        let (new_tag, digest) = self.written(comp, *state);
        let mut text = format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\n\
             kind: Kustomization\n\
             namespace: {name}-{env}\n\
             resources:\n  - ../../../base/{name}\n\
             replicas:\n  - name: {name}\n    count: {replicas}\n\
             images:\n  - name: {sidecar}\n    newTag: \"1.29.{side}\"\n  - name: {image}\n",
            name = comp.name,
            env = f.env,
            replicas = state.replicas,
            sidecar = SIDECAR_IMAGE,
            side = state.release % 7,
            image = comp.image,
        );
        if let Some(tag) = new_tag {
            text.push_str(&format!("    newTag: \"{tag}\"\n"));
        }
        if let Some(digest) = digest {
            text.push_str(&format!("    digest: {digest}\n"));
        }
        Some(text)
    }

    /// Finds a gitops file by path.
    pub fn gitops_file(&self, path: &str) -> Option<usize> {
        self.gitops.file_by_path.get(path).copied()
    }

    /// A deterministic metric value for a Datadog query (None: the service reports no data).
    pub fn metric_value(&self, query: &str) -> Option<f64> {
        if self
            .silent_services
            .iter()
            .any(|s| query.contains(&format!("service:{s}")))
        {
            return None;
        }
        let h = fnv1a(query.as_bytes());
        let unit = (h % 10_000) as f64 / 10_000.0;
        Some(if query.contains("error") {
            (unit * 0.05 * 1000.0).round() / 1000.0
        } else {
            (40.0 + unit * 400.0).round()
        })
    }

    /// The ground truth of one cell, for runs whose window starts at `window_start`.
    pub fn expected(&self, env: &str, component: &str, window_start: i64) -> Option<Expected> {
        let comp_idx = self.components.iter().position(|c| c.name == component)?;
        let comp = &self.components[comp_idx];
        let path = GITOPS_PATH
            .replace("{env}", env)
            .replace("{component}", component);
        let file = &self.gitops.files[self.gitops_file(&path)?];
        let mut events = Vec::new();
        let mut prev: Option<(FileVersion, String)> = None;
        let mut set_at = None;
        // A deployment event is any change of the version string (a pin of the same
        // release to its digest too: the image reference changed).
        for (commit, v) in &file.changes {
            let version = self.version_of(comp, *v);
            if prev.as_ref().map(|(_, t)| t) != Some(&version) {
                let at = self.gitops.commits[*commit].date;
                if at >= window_start {
                    events.push(ExpectedEvent {
                        at,
                        from: prev.as_ref().map(|(_, t)| t.clone()),
                        to: version.clone(),
                    });
                }
                set_at = Some(at);
                prev = Some((*v, version));
            }
        }
        let (current, tag) = prev?;
        let release = current.release;
        let repo = &self.repos[&comp.repo];
        let release_pos = repo.main_pos[&repo.releases[release].commit];
        let mut tickets: Vec<String> = repo
            .pulls
            .iter()
            .filter(|p| p.merged_at.is_some_and(|m| m >= window_start))
            .filter(|p| {
                p.merge_commit
                    .and_then(|c| repo.main_pos.get(&c))
                    .is_some_and(|pos| *pos <= release_pos)
            })
            .flat_map(|p| p.keys.iter().cloned())
            .collect();
        tickets.sort();
        tickets.dedup();
        let build = self.builds[&comp.build_type]
            .iter()
            .find(|b| b.state == "finished")
            .cloned();
        // Nothing ties an unlabelled digest to a source version: tickets are unknown.
        let known = comp.style != TagStyle::DigestUnlabelled;
        let resolved_tag = match comp.style {
            TagStyle::Digest | TagStyle::DigestOnly => Some(repo.releases[release].tag.clone()),
            TagStyle::Pinned if current.pinned => Some(repo.releases[release].tag.clone()),
            _ => None,
        };
        Some(Expected {
            tag,
            deployed_at: set_at?,
            events,
            tickets: known.then_some(tickets),
            build,
            resolved_tag,
        })
    }
}

/// What a correct snapshot shows for one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub tag: String,
    pub deployed_at: i64,
    pub events: Vec<ExpectedEvent>,
    /// Keys of the merged PRs shipped (Jira may not know some: `Org::tickets` says);
    /// None: unknowable (an unlabelled digest).
    pub tickets: Option<Vec<String>>,
    pub build: Option<SimBuild>,
    /// The tag a digest pin stands for (how a careful client resolves it).
    pub resolved_tag: Option<String>,
}

/// The registry objects of one release: an image index (linux/amd64, linux/arm64, and an
/// attestation manifest as buildx writes), their manifests and configs, the configs
/// labelled with `revision` when given. Returns the index digest.
/// One object of the simulated registry.
#[derive(Debug, Clone)]
pub struct OciObject {
    /// `acme/payments`: the repository part of the image name.
    pub repository: String,
    pub media_type: String,
    pub body: String,
}

fn image_objects(
    image: &str,
    tag: &str,
    revision: Option<&str>,
    oci: &mut HashMap<String, OciObject>,
) -> String {
    use crate::sources::registry::sha256_digest;
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    let repository = crate::sources::registry::split_image(image).1;
    let mut put = |media: &str, body: String| {
        let digest = sha256_digest(body.as_bytes());
        oci.insert(
            digest.clone(),
            OciObject {
                repository: repository.clone(),
                media_type: media.to_string(),
                body,
            },
        );
        digest
    };
    let mut manifests = Vec::new();
    for (os, arch) in [
        ("linux", "amd64"),
        ("linux", "arm64"),
        ("unknown", "unknown"),
    ] {
        let mut labels = serde_json::Map::new();
        labels.insert(
            "org.opencontainers.image.source".into(),
            format!("https://github.com/{image}").into(),
        );
        labels.insert("org.opencontainers.image.version".into(), tag.into());
        if let Some(rev) = revision.filter(|_| os != "unknown") {
            labels.insert("org.opencontainers.image.revision".into(), rev.into());
        }
        let config = serde_json::json!({
            "architecture": arch,
            "os": os,
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin"], "Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": []},
        })
        .to_string();
        let config_size = config.len();
        let config_digest = put(CONFIG, config);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config_digest, "size": config_size},
            "layers": [],
        })
        .to_string();
        let size = manifest.len();
        let digest = put(MANIFEST, manifest);
        manifests.push(serde_json::json!({
            "mediaType": MANIFEST,
            "digest": digest,
            "size": size,
            "platform": {"architecture": arch, "os": os},
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": manifests,
    })
    .to_string();
    put(INDEX, index)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedEvent {
    pub at: i64,
    pub from: Option<String>,
    pub to: String,
}

pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Random distinct times in `[from, to)`, sorted.
fn times(rng: &mut StdRng, n: usize, from: i64, to: i64) -> Vec<i64> {
    let mut t: Vec<i64> = (0..n)
        .map(|_| rng.random_range(from..to.max(from + 1)))
        .collect();
    t.sort_unstable();
    for i in 1..t.len() {
        if t[i] <= t[i - 1] {
            t[i] = t[i - 1] + 1;
        }
    }
    t
}

#[allow(clippy::too_many_arguments)]
fn gen_source_repo(
    rng: &mut StdRng,
    comp: &SimComponent,
    id: u64,
    history_start: i64,
    window_start: i64,
    now: i64,
    spec: &ProfileSpec,
    tickets: &mut BTreeMap<String, SimTicket>,
) -> SourceRepo {
    let before_share = HISTORY_BEFORE_WINDOW_DAYS as f64 / spec.window_days as f64;
    let n_main = spec.main_commits + (spec.main_commits as f64 * before_share) as usize;
    let n_prs = spec.merged_prs + (spec.merged_prs as f64 * before_share) as usize;
    let main_times = times(rng, n_main, history_start, now - HOUR_SECS);
    // Which main commits are PR merges: spread evenly, never the root.
    let merge_slots: Vec<usize> = (0..n_prs)
        .map(|k| 1 + (k * (n_main - 1)) / n_prs.max(1))
        .collect();
    let mut commits: Vec<Commit> = Vec::new();
    let mut main = Vec::new();
    let mut pulls = Vec::new();
    let mut ticket_no = 100u64;
    let mut pr_no = 1u64;
    let mut slot = 0;
    for (i, &t) in main_times.iter().enumerate() {
        let prev = main.last().copied();
        let is_merge = merge_slots.get(slot) == Some(&i);
        if !is_merge {
            commits.push(Commit {
                sha: hex(rng, 40),
                date: t,
                parents: prev.into_iter().collect(),
                message: format!("{} {}", VERBS[i % 8], NOUNS[(i / 8) % 8]),
            });
            main.push(commits.len() - 1);
            continue;
        }
        slot += 1;
        let prev = prev.unwrap_or(0);
        // The PR branch: one commit forked from the main head a little earlier.
        let fork = main[main.len().saturating_sub(1 + rng.random_range(0..3usize))];
        let head_time = (t - rng.random_range(600..6 * HOUR_SECS)).max(commits[fork].date + 1);
        let key_no = ticket_no;
        ticket_no += rng.random_range(1..4u64);
        let key = format!("{}-{key_no}", comp.project_key);
        let title_text = format!(
            "{} {}",
            VERBS[rng.random_range(0..8)],
            NOUNS[rng.random_range(0..8)]
        );
        // Where the key is written: title, branch, both, or nowhere (a chore).
        let kind = rng.random_range(0..10u32);
        let (title, branch, keys) = match kind {
            0 => (
                format!("chore: {}", title_text.to_lowercase()),
                format!("chore/deps-{pr_no}"),
                vec![],
            ),
            1 => (
                title_text.clone(),
                format!("feature/{key}-{}", slug(&title_text)),
                vec![key.clone()],
            ),
            // A key Jira does not know (a typo, a project that moved): never a ticket.
            2 => {
                let stray = format!("OPS-{}", 9000 + key_no);
                (
                    format!("{key}: {title_text} (see {stray})"),
                    format!("feature/{key}"),
                    vec![key.clone(), stray],
                )
            }
            3 => {
                let second = format!("{}-{}", comp.project_key, key_no + 1000);
                (
                    format!("{key}, {second}: {title_text}"),
                    format!("fix/{key}"),
                    vec![key.clone(), second],
                )
            }
            _ => (
                format!("{key}: {title_text}"),
                format!("feature/{key}-{}", slug(&title_text)),
                vec![key.clone()],
            ),
        };
        for k in keys.iter().filter(|k| !k.starts_with("OPS-")) {
            let n = tickets.len() as u64;
            let (status, category) = STATUSES[(fnv1a(k.as_bytes()) % 4) as usize];
            tickets.insert(
                k.clone(),
                SimTicket {
                    id: 10_000 + n,
                    key: k.clone(),
                    summary: title_text.clone(),
                    status,
                    status_category: category,
                },
            );
        }
        commits.push(Commit {
            sha: hex(rng, 40),
            date: head_time,
            parents: vec![fork],
            message: title_text.clone(),
        });
        let head = commits.len() - 1;
        // Half are merge commits (the branch commit becomes reachable), half squashes.
        let parents = if rng.random_bool(0.5) {
            vec![prev, head]
        } else {
            vec![prev]
        };
        let message = if parents.len() == 2 {
            format!("Merge pull request #{pr_no} from acme/{branch}")
        } else {
            format!("{title} (#{pr_no})")
        };
        commits.push(Commit {
            sha: hex(rng, 40),
            date: t,
            parents,
            message,
        });
        let merge = commits.len() - 1;
        main.push(merge);
        pulls.push(Pull {
            number: pr_no,
            title,
            head_ref: branch,
            head_commit: head,
            created_at: head_time - HOUR_SECS,
            updated_at: t + rng.random_range(0..HOUR_SECS),
            closed_at: Some(t),
            merged_at: Some(t),
            merge_commit: Some(merge),
            keys,
        });
        pr_no += 1;
    }
    // A few closed-unmerged and open PRs, which must never count as shipped.
    for k in 0..3 {
        let head = main[main.len() / 2 + k];
        let t = (commits[head].date + DAY_SECS).min(now - 60);
        let key = format!("{}-{}", comp.project_key, 9000 + k);
        pulls.push(Pull {
            number: pr_no,
            title: format!("{key}: experiment {k}"),
            head_ref: format!("spike/{key}"),
            head_commit: head,
            created_at: t - HOUR_SECS,
            updated_at: t,
            closed_at: (k < 2).then_some(t),
            merged_at: None,
            merge_commit: None,
            keys: vec![key],
        });
        pr_no += 1;
    }
    let by_sha = commits
        .iter()
        .enumerate()
        .map(|(i, c)| (c.sha.clone(), i))
        .collect();
    let main_pos = main.iter().enumerate().map(|(p, &c)| (c, p)).collect();
    // Releases: evenly over main, the first at the root's successor, the last near the end.
    let n_releases = spec.releases + (spec.releases as f64 * before_share) as usize;
    let releases = (0..n_releases)
        .map(|k| {
            let pos = 1 + (k * (main.len() - 2)) / n_releases.max(1);
            let commit = main[pos];
            Release {
                tag: format!("v1.{k}.0"),
                commit,
                date: commits[commit].date,
                digest: format!("sha256:{}", hex(rng, 64)),
            }
        })
        .collect();
    let _ = window_start;
    SourceRepo {
        full_name: comp.repo.clone(),
        id,
        commits,
        by_sha,
        main,
        main_pos,
        releases,
        pulls,
    }
}

fn slug(s: &str) -> String {
    s.to_lowercase()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join("-")
}

fn gen_builds(rng: &mut StdRng, i: usize, now: i64) -> Vec<SimBuild> {
    let n = 30u32;
    let mut out = Vec::new();
    let mut t = now - 20 * 60;
    for k in 0..n {
        let number = 1000 + (n - k);
        let duration = rng.random_range(300..1500);
        let running = k == 0 && i.is_multiple_of(3);
        let status = if running {
            "SUCCESS"
        } else if rng.random_bool(0.15) {
            "FAILURE"
        } else {
            "SUCCESS"
        };
        out.push(SimBuild {
            id: (i as u64 + 1) * 100_000 + u64::from(number),
            number,
            status,
            state: if running { "running" } else { "finished" },
            branch: "main",
            start: t - duration,
            finish: (!running).then_some(t),
        });
        t -= rng.random_range(HOUR_SECS..12 * HOUR_SECS);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn gen_gitops(
    rng: &mut StdRng,
    components: &[SimComponent],
    repos: &BTreeMap<String, SourceRepo>,
    environments: &[String],
    history_start: i64,
    window_start: i64,
    now: i64,
    spec: &ProfileSpec,
) -> GitopsRepo {
    // (time, file, state, message) for every change, then sorted into one history.
    let mut changes: Vec<(i64, usize, FileVersion, String)> = Vec::new();
    let mut files = Vec::new();
    for (ci, comp) in components.iter().enumerate() {
        let repo = &repos[&comp.repo];
        for (ei, env) in environments.iter().enumerate() {
            let file = files.len();
            files.push(KustomizationFile {
                path: GITOPS_PATH
                    .replace("{env}", env)
                    .replace("{component}", &comp.name),
                component: ci,
                env: env.clone(),
                changes: vec![],
            });
            // Later environments deploy fewer releases, later.
            let rank = ei as f64 / environments.len().max(1) as f64;
            let is_last = ei + 1 == environments.len();
            let p_deploy = if ei == 0 { 1.0 } else { 0.85 - 0.35 * rank };
            let delay = |rng: &mut StdRng| -> i64 {
                let base = 600 + (ei as i64) * 8 * HOUR_SECS;
                base + rng.random_range(0..(ei as i64 + 1) * 6 * HOUR_SECS)
            };
            let created = history_start + DAY_SECS + ei as i64 * HOUR_SECS + ci as i64 * 60;
            let replicas = if is_last { 4 } else { 2 };
            let pinning = comp.style == TagStyle::Pinned;
            // A digest-pinning bot follows every deployment of a Pinned component.
            let pin = |changes: &mut Vec<(i64, usize, FileVersion, String)>, t: i64, r: usize| {
                if pinning {
                    changes.push((
                        t + 30,
                        file,
                        FileVersion {
                            release: r,
                            replicas,
                            pinned: true,
                        },
                        format!(
                            "Pin {} {} to its digest in {env}",
                            comp.name, repo.releases[r].tag
                        ),
                    ));
                }
            };
            changes.push((
                created,
                file,
                FileVersion {
                    release: 0,
                    replicas,
                    pinned: false,
                },
                format!("Add {} overlay for {env}", comp.name),
            ));
            pin(&mut changes, created, 0);
            let mut last_time = created;
            for (r, rel) in repo.releases.iter().enumerate().skip(1) {
                // Development always takes the newest release; the others lag behind.
                let newest = r + 1 == repo.releases.len();
                if rng.random::<f64>() > p_deploy && !(newest && ei == 0) {
                    continue;
                }
                let t = (rel.date + delay(rng)).max(last_time + 60);
                if t >= now - 60 {
                    break;
                }
                last_time = t;
                changes.push((
                    t,
                    file,
                    FileVersion {
                        release: r,
                        replicas,
                        pinned: false,
                    },
                    format!("Deploy {} {} to {env}", comp.name, repo.releases[r].tag),
                ));
                pin(&mut changes, t, r);
            }
        }
    }
    // Other edits (replicas, resources) fill each component up to its commit count in the
    // window; they never change the version, which the engine must notice.
    for ci in 0..components.len() {
        let comp_files: Vec<usize> = files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.component == ci)
            .map(|(i, _)| i)
            .collect();
        let in_window = changes
            .iter()
            .filter(|(t, f, _, _)| *t >= window_start && comp_files.contains(f))
            .count();
        let extra = spec.kustomization_commits.saturating_sub(in_window);
        for t in times(rng, extra, window_start + HOUR_SECS, now - 120) {
            let file = comp_files[rng.random_range(0..comp_files.len())];
            changes.push((
                t,
                file,
                FileVersion {
                    release: usize::MAX,
                    replicas: rng.random_range(2..7),
                    pinned: false,
                },
                String::new(),
            ));
        }
    }
    changes.sort_by_key(|(t, f, _, _)| (*t, *f));
    let mut commits = Vec::new();
    let mut last_time = i64::MIN;
    let mut state: Vec<Option<FileVersion>> = vec![None; files.len()];
    let mut commits_by_file = vec![Vec::new(); files.len()];
    for (t, file, v, message) in changes {
        let t = t.max(last_time + 1);
        last_time = t;
        let idx = commits.len();
        let prev = state[file];
        let (v, message) = if v.release == usize::MAX {
            // A replicas edit keeps the file's current release.
            let Some(p) = prev else { continue };
            let comp = &components[files[file].component];
            (
                FileVersion {
                    release: p.release,
                    replicas: v.replicas,
                    pinned: p.pinned,
                },
                format!(
                    "Scale {} in {} to {} replicas",
                    comp.name, files[file].env, v.replicas
                ),
            )
        } else {
            (
                FileVersion {
                    release: v.release,
                    replicas: prev.map(|p| p.replicas).unwrap_or(v.replicas),
                    pinned: v.pinned,
                },
                message,
            )
        };
        state[file] = Some(v);
        files[file].changes.push((idx, v));
        commits_by_file[file].push(idx);
        commits.push(GitopsCommit {
            sha: hex(rng, 40),
            date: t,
            message,
            file,
        });
    }
    let by_sha = commits
        .iter()
        .enumerate()
        .map(|(i, c)| (c.sha.clone(), i))
        .collect();
    let file_by_path = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.clone(), i))
        .collect();
    GitopsRepo {
        full_name: GITOPS_REPO.to_string(),
        id: 999,
        commits,
        by_sha,
        files,
        file_by_path,
        commits_by_file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;

    #[test]
    fn seed_profile_has_the_documented_shape() {
        let org = Org::generate(Profile::Seed, 7, NOW);
        assert_eq!(org.components.len(), 15);
        assert_eq!(org.environments.len(), 4);
        let window_start = NOW - 60 * DAY_SECS;
        for (ci, comp) in org.components.iter().enumerate() {
            let in_window = org
                .gitops
                .commits
                .iter()
                .filter(|c| c.date >= window_start && org.gitops.files[c.file].component == ci)
                .count();
            assert!(
                (430..=470).contains(&in_window),
                "{}: {in_window}",
                comp.name
            );
            let repo = &org.repos[&comp.repo];
            let merged = repo
                .pulls
                .iter()
                .filter(|p| p.merged_at.is_some_and(|m| m >= window_start))
                .count();
            assert!((30..=50).contains(&merged), "{merged} PRs");
            let main_in_window = repo
                .main
                .iter()
                .filter(|&&c| repo.commits[c].date >= window_start)
                .count();
            assert!((120..=180).contains(&main_in_window), "{main_in_window}");
        }
        // About a fifth of kustomization commits change the version.
        let version_changes: usize = org
            .gitops
            .files
            .iter()
            .map(|f| {
                f.changes
                    .windows(2)
                    .filter(|w| w[0].1.release != w[1].1.release)
                    .count()
            })
            .sum();
        let share = version_changes as f64 / org.gitops.commits.len() as f64;
        assert!((0.1..0.35).contains(&share), "{share}");
    }

    #[test]
    fn generation_is_deterministic_and_files_render() {
        let a = Org::generate(Profile::Small, 1, NOW);
        let b = Org::generate(Profile::Small, 1, NOW);
        assert_eq!(a.gitops.commits[5].sha, b.gitops.commits[5].sha);
        let last = a.gitops.commits.len() - 1;
        let text = a.file_at(0, last).unwrap();
        assert!(text.contains("images:"), "{text}");
        assert_eq!(a.file_at(0, 0).is_some(), a.gitops.commits[0].file == 0);
        let e = a.expected("prod", "payments", NOW - 30 * DAY_SECS).unwrap();
        assert!(e.tag.starts_with("v1."));
    }
}
