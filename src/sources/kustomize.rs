//! Reading the deployed version of an image out of a `kustomization.yaml`.

use yaml_rust2::{Yaml, YamlLoader};

/// One entry of `images:`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageEntry {
    pub name: String,
    pub new_name: Option<String>,
    pub new_tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageEntry {
    /// The deployed version: the digest if set, else the tag.
    pub fn version(&self) -> Option<String> {
        self.digest.clone().or_else(|| self.new_tag.clone())
    }
}

/// The `images:` entries of a kustomization file. A file that is not valid YAML is an
/// error (the caller names the file and commit).
pub fn images(text: &str) -> Result<Vec<ImageEntry>, String> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    let mut out = Vec::new();
    for doc in &docs {
        let Yaml::Array(items) = &doc["images"] else {
            continue;
        };
        for item in items {
            let Some(name) = scalar(&item["name"]) else {
                continue;
            };
            out.push(ImageEntry {
                name,
                new_name: scalar(&item["newName"]),
                new_tag: scalar(&item["newTag"]),
                digest: scalar(&item["digest"]),
            });
        }
    }
    Ok(out)
}

/// The entry for `image`: matched by `name`, else by `newName`.
pub fn find_image(entries: &[ImageEntry], image: &str) -> Option<ImageEntry> {
    entries
        .iter()
        .find(|e| e.name == image)
        .or_else(|| {
            entries
                .iter()
                .find(|e| e.new_name.as_deref() == Some(image))
        })
        .cloned()
}

/// YAML scalars as text, as written (`newTag: 1.10` stays "1.10").
fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base/api   # the base
images:
  - name: ghcr.io/acme/payments-api
    newTag: "v1.4.2"
  - name: ghcr.io/acme/sidecar
    newName: registry.acme.com/sidecar
    newTag: 1.10
  - name: ghcr.io/acme/pinned
    newTag: v2.0.0
    digest: sha256:24a0c4b4a4c0eb97a1aabb8e29f18e917d05abfe1b7a7c07857230879ce7d3d3
  - name: ghcr.io/acme/numeric
    newTag: 42
"#;

    #[test]
    fn reads_tags_digests_and_numbers() {
        let imgs = images(FILE).unwrap();
        assert_eq!(imgs.len(), 4);
        assert_eq!(
            find_image(&imgs, "ghcr.io/acme/payments-api")
                .unwrap()
                .version()
                .as_deref(),
            Some("v1.4.2")
        );
        assert_eq!(
            find_image(&imgs, "ghcr.io/acme/sidecar")
                .unwrap()
                .version()
                .as_deref(),
            Some("1.10")
        );
        let pinned = find_image(&imgs, "ghcr.io/acme/pinned").unwrap();
        assert!(pinned.version().unwrap().starts_with("sha256:"));
        assert_eq!(pinned.new_tag.as_deref(), Some("v2.0.0"));
        assert_eq!(
            find_image(&imgs, "ghcr.io/acme/numeric")
                .unwrap()
                .version()
                .as_deref(),
            Some("42")
        );
        assert_eq!(
            find_image(&imgs, "registry.acme.com/sidecar").unwrap().name,
            "ghcr.io/acme/sidecar"
        );
        assert!(find_image(&imgs, "nope").is_none());
    }

    #[test]
    fn no_images_and_bad_yaml() {
        assert!(images("resources: [a]\n").unwrap().is_empty());
        assert!(images("").unwrap().is_empty());
        assert!(images("images: [\n  - name: x").is_err());
    }
}
