//! Completing the path of a run as a user types it: directories, Locust run prefixes
//! (`results/api` for `results/api_stats.csv`), and files that are a run by themselves
//! (JMeter `*.jtl`, and other `*.csv` such as k6's), which is what the report reads.
//!
//! Reads one directory: call it off the UI thread.

use std::path::PathBuf;

/// At most this many candidates are returned (a huge directory stays cheap to show).
pub const MAX_CANDIDATES: usize = 200;

/// A file that names a run: its name without this suffix is the run's prefix.
const RUN_SUFFIXES: [&str; 2] = ["_stats.csv", "_requests.csv"];
/// The other files Locust writes beside a run's stats: offered as the prefix, not by name.
const LOCUST_SUFFIXES: [&str; 4] = [
    "_stats_history.csv",
    "_failures.csv",
    "_exceptions.csv",
    "_distribution.csv",
];

/// A file that is a whole run by itself: a JMeter `.jtl` or a CSV Locust did not name
/// (k6 `--out csv`). What it holds is read from its content when it is opened.
fn is_single_file_run(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".jtl")
        || (lower.ends_with(".csv")
            && !RUN_SUFFIXES
                .iter()
                .chain(LOCUST_SUFFIXES.iter())
                .any(|s| lower.ends_with(s)))
}

/// `~/x` becomes `$HOME/x`; anything else is taken as typed.
pub fn expand_home(input: &str) -> PathBuf {
    match (input.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ if input == "~" => std::env::var_os("HOME").map_or_else(|| input.into(), PathBuf::from),
        _ => PathBuf::from(input),
    }
}

/// What could follow `input`, written as the user would type it (a leading `~/` kept):
/// directories end in `/`, runs are prefixes. Sorted; hidden entries only when the typed
/// name starts with a dot. An unreadable directory has no candidates.
pub fn complete(input: &str) -> Vec<String> {
    let (typed_dir, stem) = match input.rfind('/') {
        Some(i) => (&input[..=i], &input[i + 1..]),
        None if input == "~" => ("~/", ""),
        None => ("", input),
    };
    let dir = if typed_dir.is_empty() {
        PathBuf::from(".")
    } else {
        expand_home(typed_dir)
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') && !stem.starts_with('.') {
            continue;
        }
        // `is_dir` on the path follows symlinks, as a shell's completion does.
        if entry.path().is_dir() {
            if name.starts_with(stem) {
                out.push(format!("{typed_dir}{name}/"));
            }
        } else if let Some(prefix) = RUN_SUFFIXES.iter().find_map(|s| name.strip_suffix(s))
            && prefix.starts_with(stem)
        {
            out.push(format!("{typed_dir}{prefix}"));
        } else if is_single_file_run(&name) && name.starts_with(stem) {
            out.push(format!("{typed_dir}{name}"));
        }
    }
    out.sort();
    out.dedup();
    out.truncate(MAX_CANDIDATES);
    out
}

/// The longest text every candidate starts with (whole characters).
pub fn common_prefix(candidates: &[String]) -> String {
    let Some(first) = candidates.first() else {
        return String::new();
    };
    let mut end = first.len();
    for c in &candidates[1..] {
        end = first
            .char_indices()
            .zip(c.chars())
            .find(|((_, a), b)| a != b)
            .map_or(end.min(c.len()).min(first.len()), |((i, _), _)| i)
            .min(end);
    }
    first[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_run_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("runs")).unwrap();
        std::fs::create_dir(d.join(".hidden")).unwrap();
        for f in [
            "api_stats.csv",
            "api_stats_history.csv",
            "api_failures.csv",
            "old_requests.csv",
            "notes.txt",
            "jmeter.jtl",
            "k6.csv",
        ] {
            std::fs::write(d.join(f), "x").unwrap();
        }
        let base = format!("{}/", d.display());
        let got = complete(&base);
        assert_eq!(
            got,
            [
                format!("{base}api"),
                format!("{base}jmeter.jtl"),
                format!("{base}k6.csv"),
                format!("{base}old"),
                format!("{base}runs/")
            ]
        );
        assert_eq!(complete(&format!("{base}r")), [format!("{base}runs/")]);
        assert_eq!(complete(&format!("{base}.h")), [format!("{base}.hidden/")]);
        assert!(complete(&format!("{base}zzz")).is_empty());
        assert!(complete(&format!("{base}no/such/dir/")).is_empty());
    }

    #[test]
    fn common_prefix_of_candidates() {
        let c = |v: &[&str]| common_prefix(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(c(&["runs/a_1", "runs/a_2"]), "runs/a_");
        assert_eq!(c(&["x"]), "x");
        assert_eq!(c(&[]), "");
        assert_eq!(c(&["ab", "a"]), "a");
        assert_eq!(c(&["é1", "é2"]), "é");
    }
}
