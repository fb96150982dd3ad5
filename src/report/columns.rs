//! Header rows of Locust's CSV files: which file is which, and whether it is whole.
//!
//! A file is identified by its header only, and only when the header is one Locust could
//! have written: every column the report reads is there, no column is unknown or repeated,
//! and percentile columns go up. A one-byte typo, a deleted column or a header re-encoded
//! as UTF-16 therefore makes the file unidentifiable, and the error names the columns that
//! were expected: a gate never judges a table it only half read.

use std::collections::HashMap;

use super::model::LocustGeneration;

/// What a CSV file holds, judged from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    Stats,
    Distribution,
    History,
    Failures,
    Exceptions,
}

impl FileRole {
    /// The kind as Locust's file names say it (`stats` for `PREFIX_stats.csv`).
    pub fn kind(self) -> &'static str {
        match self {
            Self::Stats => "stats",
            Self::Distribution => "distribution",
            Self::History => "stats_history",
            Self::Failures => "failures",
            Self::Exceptions => "exceptions",
        }
    }

    /// The role a Locust file name promises (`x_stats.csv`, 0.13's `x_requests.csv`...),
    /// used to explain a header that is not what it should be, never to decide a role.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase();
        [
            ("_stats_history.csv", Self::History),
            ("_stats.csv", Self::Stats),
            ("_requests.csv", Self::Stats),
            ("_distribution.csv", Self::Distribution),
            ("_failures.csv", Self::Failures),
            ("_exceptions.csv", Self::Exceptions),
        ]
        .into_iter()
        .find_map(|(suffix, role)| name.ends_with(suffix).then_some(role))
    }
}

/// Column names across generations (lower-case), newest spelling first.
pub(crate) mod col {
    pub const METHOD: &[&str] = &["type", "method"];
    pub const NAME: &[&str] = &["name"];
    pub const REQUESTS: &[&str] = &["request count", "# requests"];
    pub const FAILURES: &[&str] = &["failure count", "# failures"];
    pub const MEDIAN: &[&str] = &["median response time"];
    pub const AVERAGE: &[&str] = &["average response time"];
    pub const MIN: &[&str] = &["min response time"];
    pub const MAX: &[&str] = &["max response time"];
    pub const CONTENT_SIZE: &[&str] = &["average content size"];
    pub const RPS: &[&str] = &["requests/s"];
    pub const FAILURES_PER_SEC: &[&str] = &["failures/s", "requests failed/s"];
    pub const TIMESTAMP: &[&str] = &["timestamp"];
    pub const USERS: &[&str] = &["user count"];
    pub const ERROR: &[&str] = &["error"];
    /// Locust before 1.0 spelled it "Occurences".
    pub const OCCURRENCES: &[&str] = &["occurrences", "occurences"];
    pub const FIRST_SEEN: &[&str] = &["first seen"];
    pub const LAST_SEEN: &[&str] = &["last seen"];
    pub const COUNT: &[&str] = &["count"];
    pub const MESSAGE: &[&str] = &["message"];
    pub const TRACEBACK: &[&str] = &["traceback"];
    pub const NODES: &[&str] = &["nodes"];
    /// 0.13's distribution file and 0.14's history spell the count only this way.
    pub const OLD_REQUESTS: &[&str] = &["# requests"];
    pub const OLD_FAILURES: &[&str] = &["# failures"];
    /// The cumulative columns at the end of a 1.x/2.x history row.
    pub const HISTORY_TOTALS: &[&[&str]] = &[
        &["total request count"],
        &["total failure count"],
        &["total median response time"],
        &["total average response time"],
        &["total min response time"],
        &["total max response time"],
        &["total average content size"],
    ];
}

/// How a column is written in Locust's header, for messages.
fn shown(aliases: &[&str]) -> String {
    aliases[0]
        .split(' ')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) if word != "#" => first.to_uppercase().chain(chars).collect(),
                _ => word.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What Locust writes in a file of one kind.
struct Spec {
    role: FileRole,
    /// Columns the report reads: all must be there.
    required: &'static [&'static [&'static str]],
    /// Columns Locust writes that the report may do without.
    optional: &'static [&'static [&'static str]],
    /// Whether percentile columns (`50%`...) belong in this file.
    percentiles: bool,
    /// The header Locust 2.x writes, shown when a header is not recognised.
    expected: &'static str,
}

const STATS: Spec = Spec {
    role: FileRole::Stats,
    required: &[
        col::METHOD,
        col::NAME,
        col::REQUESTS,
        col::FAILURES,
        col::MEDIAN,
        col::AVERAGE,
        col::MIN,
        col::MAX,
        col::RPS,
    ],
    optional: &[col::CONTENT_SIZE, col::FAILURES_PER_SEC],
    percentiles: true,
    expected: "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
               Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,\
               50%,66%,…,100%",
};

const DISTRIBUTION: Spec = Spec {
    role: FileRole::Distribution,
    required: &[col::NAME, col::OLD_REQUESTS],
    optional: &[],
    percentiles: true,
    expected: "Name,# requests,50%,66%,…,100%",
};

const HISTORY: Spec = Spec {
    role: FileRole::History,
    required: &[
        col::TIMESTAMP,
        col::USERS,
        col::METHOD,
        col::NAME,
        col::RPS,
        col::FAILURES_PER_SEC,
    ],
    // 0.14 wrote the cumulative figures before the percentiles, 1.x/2.x as `Total ...`.
    optional: &[
        col::OLD_REQUESTS,
        col::OLD_FAILURES,
        col::MEDIAN,
        col::AVERAGE,
        col::MIN,
        col::MAX,
        col::CONTENT_SIZE,
        col::HISTORY_TOTALS[0],
        col::HISTORY_TOTALS[1],
        col::HISTORY_TOTALS[2],
        col::HISTORY_TOTALS[3],
        col::HISTORY_TOTALS[4],
        col::HISTORY_TOTALS[5],
        col::HISTORY_TOTALS[6],
    ],
    percentiles: true,
    expected: "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,…,100%,\
               Total Request Count,Total Failure Count,…",
};

const FAILURES: Spec = Spec {
    role: FileRole::Failures,
    required: &[col::METHOD, col::NAME, col::ERROR, col::OCCURRENCES],
    optional: &[col::FIRST_SEEN, col::LAST_SEEN],
    percentiles: false,
    expected: "Method,Name,Error,Occurrences",
};

const EXCEPTIONS: Spec = Spec {
    role: FileRole::Exceptions,
    required: &[col::COUNT, col::MESSAGE, col::TRACEBACK],
    optional: &[col::NODES],
    percentiles: false,
    expected: "Count,Message,Traceback,Nodes",
};

/// In the order a header is tried.
const SPECS: [&Spec; 5] = [&HISTORY, &EXCEPTIONS, &FAILURES, &STATS, &DISTRIBUTION];

fn spec_of(role: FileRole) -> &'static Spec {
    SPECS
        .into_iter()
        .find(|s| s.role == role)
        .expect("every role has a spec")
}

/// `50%` → 50, `99.999` → 99.999 (0.13.3–0.14 wrote it without `%`), anything else → None.
pub(crate) fn percentile_of_header(name: &str) -> Option<f64> {
    let digits = name.strip_suffix('%').unwrap_or(name);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let percent: f64 = digits.parse().ok()?;
    (percent > 0.0 && percent <= 100.0).then_some(percent)
}

/// A header row, lower-cased and trimmed, so lookups are by name.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub(crate) names: Vec<String>,
    /// As written (trimmed), for messages.
    written: Vec<String>,
    index: HashMap<String, usize>,
}

impl Header {
    pub(crate) fn from_fields<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let written: Vec<String> = fields
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                let text = String::from_utf8_lossy(raw);
                // A UTF-8 byte-order mark can precede the first header (Excel round trips).
                let text = if i == 0 {
                    text.trim_start_matches('\u{feff}')
                } else {
                    &text
                };
                text.trim().trim_matches('"').trim().to_owned()
            })
            .collect();
        let names: Vec<String> = written.iter().map(|w| w.to_ascii_lowercase()).collect();
        let mut index = HashMap::new();
        for (i, name) in names.iter().enumerate() {
            index.entry(name.clone()).or_insert(i);
        }
        Self {
            names,
            written,
            index,
        }
    }

    /// The first column named by any of `aliases` (already lower-case).
    pub(crate) fn find(&self, aliases: &[&str]) -> Option<usize> {
        aliases.iter().find_map(|a| self.index.get(*a).copied())
    }

    /// Columns whose name is a percentile (`50%`, `99.9%`, `99.999`), with the percent.
    pub(crate) fn percentiles(&self) -> Vec<(usize, f64)> {
        self.names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| percentile_of_header(name).map(|p| (i, p)))
            .collect()
    }

    /// Which Locust generation wrote a stats file with this header.
    pub(crate) fn stats_generation(&self) -> LocustGeneration {
        let old_count_name = self.find(col::OLD_REQUESTS).is_some();
        match (old_count_name, self.percentiles().is_empty()) {
            (true, true) => LocustGeneration::Legacy,
            (true, false) => LocustGeneration::Transitional,
            (false, _) => LocustGeneration::Modern,
        }
    }

    /// What is wrong with this header as a file of `spec`'s kind; None when Locust could
    /// have written it.
    fn problem(&self, spec: &Spec) -> Option<String> {
        let missing: Vec<String> = spec
            .required
            .iter()
            .filter(|aliases| self.find(aliases).is_none())
            .map(|aliases| format!("`{}`", shown(aliases)))
            .collect();
        if !missing.is_empty() {
            let (list, noun) = match missing.as_slice() {
                [one] => (one.clone(), "column"),
                [init @ .., last] => (format!("{} or {last}", init.join(", ")), "columns"),
                [] => unreachable!("not empty"),
            };
            return Some(format!("no {list} {noun}"));
        }
        let known = |name: &str| {
            spec.required
                .iter()
                .chain(spec.optional)
                .any(|aliases| aliases.contains(&name))
        };
        let mut seen: Vec<(&str, Option<f64>)> = Vec::new();
        let mut last_percent: Option<(f64, &str)> = None;
        for (name, written) in self.names.iter().zip(&self.written) {
            let percent = percentile_of_header(name);
            match percent {
                Some(_) if !spec.percentiles => {
                    return Some(format!("unknown column `{written}`"));
                }
                None if !known(name) => return Some(format!("unknown column `{written}`")),
                _ => {}
            }
            let repeated = seen.iter().any(|(other, other_percent)| {
                *other == name.as_str()
                    || matches!((percent, other_percent), (Some(a), Some(b)) if (a - b).abs() < 1e-9)
            });
            if repeated {
                return Some(format!("column `{written}` appears twice"));
            }
            seen.push((name, percent));
            if let Some(p) = percent {
                if let Some((before, before_written)) = last_percent
                    && p <= before
                {
                    return Some(format!(
                        "percentile columns out of order (`{written}` after `{before_written}`)"
                    ));
                }
                last_percent = Some((p, written));
            }
        }
        if spec.role == FileRole::Stats {
            // 0.13 and older kept percentiles in their own file and had no failures/s;
            // every later stats file has both.
            let legacy = self.stats_generation() == LocustGeneration::Legacy
                && self.find(col::FAILURES_PER_SEC).is_none();
            if !legacy && self.percentiles().is_empty() {
                return Some("no percentile columns (`50%`, …, `100%`)".into());
            }
            if !legacy && self.find(col::FAILURES_PER_SEC).is_none() {
                return Some(format!("no `{}` column", shown(col::FAILURES_PER_SEC)));
            }
        }
        if spec.role == FileRole::Distribution && self.percentiles().is_empty() {
            return Some("no percentile columns (`50%`, …, `100%`)".into());
        }
        None
    }

    /// Checks this header as the header of a `role` file.
    pub(crate) fn check(&self, role: FileRole) -> Result<(), String> {
        let spec = spec_of(role);
        match self.problem(spec) {
            None => Ok(()),
            Some(problem) => Err(format!(
                "not a Locust {} file: {problem} (expected {})",
                role.kind(),
                spec.expected
            )),
        }
    }

    /// Which kind of Locust file this header is. `hint` (from the file's name) only picks
    /// what the error compares the header with when it is none.
    pub(crate) fn identify(&self, hint: Option<FileRole>) -> Result<FileRole, String> {
        if let Some(spec) = SPECS.iter().find(|spec| self.problem(spec).is_none()) {
            return Ok(spec.role);
        }
        if let Some(role) = hint {
            return Err(self.check(role).expect_err("no spec matched"));
        }
        // The kind whose required columns the header has most of.
        let present = |spec: &Spec| {
            spec.required
                .iter()
                .filter(|aliases| self.find(aliases).is_some())
                .count()
        };
        let closest = SPECS
            .iter()
            .copied()
            .filter(|spec| present(spec) > 0)
            .max_by(|a, b| {
                let share = |s: &Spec| present(s) as f64 / s.required.len() as f64;
                share(a).total_cmp(&share(b))
            });
        match closest {
            Some(spec) => Err(format!(
                "not a Locust CSV: read as a {} file (the closest kind): {} (expected {})",
                spec.role.kind(),
                self.problem(spec).expect("no spec matched"),
                spec.expected
            )),
            None => Err(format!(
                "not a Locust CSV: none of the columns of a stats, stats_history, failures or \
                 exceptions file (expected e.g. {} for a stats file)",
                STATS.expected
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> Header {
        Header::from_fields(text.split(',').map(str::as_bytes))
    }

    const MODERN: &str = "Type,Name,Request Count,Failure Count,Median Response Time,\
        Average Response Time,Min Response Time,Max Response Time,Average Content Size,\
        Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%";

    #[test]
    fn every_generation_is_identified() {
        assert_eq!(header(MODERN).identify(None), Ok(FileRole::Stats));
        for (text, role) in [
            (
                "Method,Name,# requests,# failures,Median response time,Average response time,\
                 Min response time,Max response time,Average Content Size,Requests/s",
                FileRole::Stats,
            ),
            ("Name,# requests,50%,66%,100%", FileRole::Distribution),
            ("Method,Name,Error,Occurences", FileRole::Failures),
            (
                "Method,Name,Error,Occurrences,First Seen,Last Seen",
                FileRole::Failures,
            ),
            ("Count,Message,Traceback,Nodes", FileRole::Exceptions),
            (
                "Timestamp,User Count,Type,Name,# requests,# failures,Requests/s,\
                 Requests Failed/s,Median Response Time,Average Response Time,Min Response Time,\
                 Max Response Time,Average Content Size,50%,99.999,100%",
                FileRole::History,
            ),
        ] {
            assert_eq!(header(text).identify(None), Ok(role), "{text}");
        }
    }

    #[test]
    fn a_damaged_header_is_not_identified_and_says_why() {
        let cases = [
            (MODERN.replacen(",Name,", ",Nmae,", 1), "no `Name` column"),
            (
                MODERN.replacen(
                    "Request Count,Failure Count",
                    "Reqest Count,Failure Cont",
                    1,
                ),
                "no `Request Count` or `Failure Count` columns",
            ),
            (
                MODERN.replacen("Average Content Size", "Average Content Sise", 1),
                "unknown column `Average Content Sise`",
            ),
            (
                MODERN.replacen(",99%,", ",9%,", 1),
                "out of order (`9%` after `98%`)",
            ),
            (MODERN.replacen(",99%,", ",98%,", 1), "`98%` appears twice"),
            (
                MODERN.replacen(",Failures/s", "", 1),
                "no `Failures/s` column",
            ),
        ];
        for (text, why) in cases {
            let error = header(&text).identify(Some(FileRole::Stats)).unwrap_err();
            assert!(
                error.starts_with("not a Locust stats file: ")
                    && error.contains(why)
                    && error.contains("(expected Type,Name,Request Count,"),
                "{error}"
            );
        }
        // Without a name to go by, the closest kind is named.
        let error = header(&MODERN.replacen(",Name,", ",Nmae,", 1))
            .identify(None)
            .unwrap_err();
        assert!(
            error.contains("read as a stats file (the closest kind): no `Name`"),
            "{error}"
        );
        let error = header("a,b,c").identify(None).unwrap_err();
        assert!(error.starts_with("not a Locust CSV: none of"), "{error}");
        // A stats header that lost its failure count is not taken for 0.13's distribution.
        let error = header(&MODERN.replacen("Failure Count,", "", 1))
            .identify(None)
            .unwrap_err();
        assert!(error.contains("`Failure Count`"), "{error}");
    }

    #[test]
    fn roles_promised_by_file_names() {
        assert_eq!(
            FileRole::from_file_name("api_stats_history.csv"),
            Some(FileRole::History)
        );
        assert_eq!(
            FileRole::from_file_name("API_STATS.CSV"),
            Some(FileRole::Stats)
        );
        assert_eq!(FileRole::from_file_name("users.csv"), None);
    }
}
