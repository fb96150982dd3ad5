//! The local join: deployed versions → source commits → shipped pull requests.
//! "Is PR X in version Y" is an ancestry query on the stored commit graph, not an API call.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::store::CommitNode;

/// A source repository's commit graph.
#[derive(Debug, Default, Clone)]
pub struct CommitGraph {
    nodes: HashMap<String, CommitNode>,
}

impl CommitGraph {
    pub fn new(nodes: impl IntoIterator<Item = (String, CommitNode)>) -> Self {
        CommitGraph {
            nodes: nodes.into_iter().collect(),
        }
    }

    pub fn into_nodes(self) -> Vec<(String, CommitNode)> {
        self.nodes.into_iter().collect()
    }

    pub fn shas(&self) -> impl Iterator<Item = &String> {
        self.nodes.keys()
    }

    pub fn contains(&self, sha: &str) -> bool {
        self.nodes.contains_key(sha)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// `sha` and all its ancestors present in the graph.
    pub fn ancestors(&self, sha: &str) -> HashSet<String> {
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([sha.to_string()]);
        while let Some(s) = queue.pop_front() {
            if !seen.insert(s.clone()) {
                continue;
            }
            if let Some(node) = self.nodes.get(&s) {
                queue.extend(node.parents.iter().filter(|p| !seen.contains(*p)).cloned());
            }
        }
        seen
    }

    /// The unique commit whose sha starts with `prefix` (≥ 7 hex digits).
    pub fn by_prefix(&self, prefix: &str) -> Option<String> {
        if prefix.len() < 7 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let prefix = prefix.to_ascii_lowercase();
        let mut found = self.nodes.keys().filter(|k| k.starts_with(&prefix));
        let first = found.next()?;
        found.next().is_none().then(|| first.clone())
    }
}

/// The source commit a deployed version names: a tag (exact, or with/without a leading
/// `v`), else a commit sha or `sha-`/`git-` prefixed short sha found in the graph.
pub fn resolve_version(
    version: &str,
    tags: &HashMap<String, String>,
    graph: &CommitGraph,
) -> Option<String> {
    if let Some(sha) = tags.get(version) {
        return Some(sha.clone());
    }
    let alt = match version.strip_prefix('v') {
        Some(rest) => rest.to_string(),
        None => format!("v{version}"),
    };
    if let Some(sha) = tags.get(&alt) {
        return Some(sha.clone());
    }
    let hex = ["sha-", "sha", "git-", "g", ""].iter().find_map(|p| {
        version
            .strip_prefix(p)
            .filter(|rest| rest.len() >= 7 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
    })?;
    if hex.len() == 40 {
        return Some(hex.to_ascii_lowercase());
    }
    graph.by_prefix(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(parents: &[&str]) -> CommitNode {
        CommitNode {
            parents: parents.iter().map(|s| s.to_string()).collect(),
            date: 0,
        }
    }

    fn graph() -> CommitGraph {
        // a ← b ← c (merge of b and f) ← d ;  e ← f
        CommitGraph::new([
            ("aaaaaaa1".into(), node(&[])),
            ("bbbbbbb2".into(), node(&["aaaaaaa1"])),
            ("ccccccc3".into(), node(&["bbbbbbb2", "fffffff6"])),
            ("ddddddd4".into(), node(&["ccccccc3"])),
            ("eeeeeee5".into(), node(&[])),
            ("fffffff6".into(), node(&["eeeeeee5"])),
        ])
    }

    #[test]
    fn ancestry_follows_both_merge_parents() {
        let g = graph();
        let a = g.ancestors("ccccccc3");
        for s in ["ccccccc3", "bbbbbbb2", "aaaaaaa1", "fffffff6", "eeeeeee5"] {
            assert!(a.contains(s), "{s}");
        }
        assert!(!a.contains("ddddddd4"));
        assert_eq!(g.ancestors("unknown").len(), 1);
    }

    #[test]
    fn resolves_tags_and_shas() {
        let g = graph();
        let tags = HashMap::from([("v1.2.0".to_string(), "bbbbbbb2".to_string())]);
        assert_eq!(
            resolve_version("v1.2.0", &tags, &g).as_deref(),
            Some("bbbbbbb2")
        );
        assert_eq!(
            resolve_version("1.2.0", &tags, &g).as_deref(),
            Some("bbbbbbb2")
        );
        assert_eq!(
            resolve_version("sha-ddddddd", &tags, &g).as_deref(),
            Some("ddddddd4")
        );
        assert_eq!(
            resolve_version("ddddddd", &tags, &g).as_deref(),
            Some("ddddddd4")
        );
        assert_eq!(resolve_version("latest", &tags, &g), None);
        assert_eq!(resolve_version("sha256:abcdef0123", &tags, &g), None);
    }
}
