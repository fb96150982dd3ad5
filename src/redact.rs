//! Keeps configured secrets out of every message: a server or proxy that echoes request
//! headers into an error page must not put a token into the JSON `failures`, stderr, the
//! log file, the store or the screen.
//!
//! Each secret is searched in the forms an echo can take: as sent, base64 (HTTP Basic
//! sends `user:password` that way; some proxies base64 whole headers), percent-encoded
//! (a token in a query string) and with `/` escaped as `\/` (JSON writers that escape it).

use std::borrow::Cow;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";
/// Shorter values are not searched: replacing every `ab` in every message would hide
/// more than it protects (and real tokens are far longer).
const MIN_SECRET_CHARS: usize = 4;

/// Finds and replaces configured secrets. Cheap to clone.
#[derive(Clone, Default)]
pub struct Redactor {
    matcher: Option<Arc<AhoCorasick>>,
    /// What it was built from, to build one that knows one more secret.
    secrets: Arc<Sources>,
}

/// Single secrets and (user, password) pairs.
type Sources = (Vec<String>, Vec<(String, String)>);

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor(..)")
    }
}

impl Redactor {
    /// A redactor for `secrets` (single values: tokens, keys) and `basic` pairs
    /// (user, password) as HTTP Basic credentials.
    pub fn new<'a>(
        secrets: impl IntoIterator<Item = &'a str>,
        basic: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Redactor {
        let secrets: Vec<String> = secrets.into_iter().map(str::to_string).collect();
        let basic: Vec<(String, String)> = basic
            .into_iter()
            .map(|(u, p)| (u.to_string(), p.to_string()))
            .collect();
        let mut needles: Vec<String> = Vec::new();
        let mut add_forms = |value: &str| {
            if value.chars().count() < MIN_SECRET_CHARS {
                return;
            }
            let engines = [
                &base64::engine::general_purpose::STANDARD,
                &base64::engine::general_purpose::STANDARD_NO_PAD,
                &base64::engine::general_purpose::URL_SAFE,
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            ];
            let mut forms = vec![value.to_string()];
            forms.extend(engines.iter().map(|e| e.encode(value)));
            forms.push(url::form_urlencoded::byte_serialize(value.as_bytes()).collect());
            let escaped: Vec<String> = forms
                .iter()
                .filter(|f| f.contains('/'))
                .map(|f| f.replace('/', "\\/"))
                .collect();
            forms.extend(escaped);
            for f in forms {
                if !needles.contains(&f) {
                    needles.push(f);
                }
            }
        };
        for s in &secrets {
            add_forms(s.trim());
        }
        for (user, password) in &basic {
            add_forms(&format!("{user}:{password}"));
            add_forms(password);
        }
        let secrets = Arc::new((secrets, basic));
        if needles.is_empty() {
            return Redactor {
                matcher: None,
                secrets,
            };
        }
        // Longest first, so a base64 form is replaced whole rather than around a shorter
        // secret that happens to appear inside it.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&needles)
            .ok()
            .map(Arc::new);
        Redactor { matcher, secrets }
    }

    /// This redactor, also finding `secret` (a token obtained while running).
    pub fn with(&self, secret: &str) -> Redactor {
        let (singles, basic) = &*self.secrets;
        Redactor::new(
            singles.iter().map(String::as_str).chain([secret]),
            basic.iter().map(|(u, p)| (u.as_str(), p.as_str())),
        )
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match &self.matcher {
            Some(m) if m.is_match(text) => {
                Cow::Owned(m.replace_all(text, &vec![REDACTED; m.patterns_len()]))
            }
            _ => Cow::Borrowed(text),
        }
    }

    /// Whether `text` holds any secret (a response that echoes one is not stored).
    pub fn contains_secret(&self, text: &str) -> bool {
        self.matcher.as_ref().is_some_and(|m| m.is_match(text))
    }

    /// Redacts `s` in place.
    pub fn redact_in_place(&self, s: &mut String) {
        if let Cow::Owned(clean) = self.redact(s) {
            *s = clean;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_echoed_form_is_replaced() {
        let r = Redactor::new(
            ["ghp_S3cretTokenValue/with+chars"],
            [("me@acme.test", "jira-t0ken")],
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("me@acme.test:jira-t0ken");
        let echoes = [
            "Authorization: Bearer ghp_S3cretTokenValue/with+chars".to_string(),
            format!("Authorization: Basic {basic}"),
            "{\"auth\":\"ghp_S3cretTokenValue\\/with+chars\"}".to_string(),
            "?access_token=ghp_S3cretTokenValue%2Fwith%2Bchars".to_string(),
            "password=jira-t0ken".to_string(),
        ];
        for e in &echoes {
            let out = r.redact(e);
            assert!(out.contains(REDACTED), "{e} → {out}");
            for leak in ["S3cret", "jira-t0ken", &basic[..12]] {
                assert!(!out.contains(leak), "{leak} left in {out}");
            }
        }
        assert!(matches!(r.redact("nothing to see"), Cow::Borrowed(_)));
        assert!(r.contains_secret(&echoes[1]));
    }

    #[test]
    fn tiny_or_missing_secrets_redact_nothing() {
        let r = Redactor::new(["ab", ""], []);
        assert_eq!(r.redact("ab cd"), "ab cd");
        assert_eq!(Redactor::default().redact("x"), "x");
    }
}
