//! Errors of the report engine; every one names the file (and line) it is about.
//!
//! Messages quote file contents and paths, which come from outside: every interpolated
//! piece goes through [`for_terminal`] when displayed, so an error printed on stderr or
//! shown by the TUI can never carry an escape sequence or a bidi override.

use std::path::{Path, PathBuf};

use crate::sanitize::for_terminal;

fn shown(path: &Path) -> String {
    for_terminal(&path.display().to_string()).into_owned()
}

fn clean(text: &str) -> String {
    for_terminal(text).into_owned()
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: cannot read: {source}", path = shown(path))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file whose content is not what its header (or Locust) promises.
    #[error("{path}:{line}: {message}", path = shown(path), message = clean(message))]
    Malformed {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error(
        "{path}: no Locust CSV found (expected files such as PREFIX_stats.csv, \
         PREFIX_stats_history.csv, PREFIX_failures.csv or, before 0.13.3, \
         PREFIX_requests.csv + PREFIX_distribution.csv)",
        path = shown(path)
    )]
    NoInput { path: PathBuf },
    #[error("{path}: {message}", path = shown(path), message = clean(message))]
    Ambiguous { path: PathBuf, message: String },
    /// Something that is not a regular file where one was expected: never opened (a FIFO
    /// would block).
    #[error("{path}: {kind}, not a regular file: nothing was read from it", path = shown(path))]
    NotAFile { path: PathBuf, kind: &'static str },
    /// A file refused as a whole (too large for what it should be...).
    #[error("{path}: {message}", path = shown(path), message = clean(message))]
    Refused { path: PathBuf, message: String },
    /// A stats table without an endpoint to judge.
    #[error("{path}: no endpoints: {reason}", path = shown(path), reason = clean(reason))]
    EmptyRun { path: PathBuf, reason: String },
    /// A run whose files were found, but not its stats table: nothing to judge.
    #[error(
        "{path}: missing: the run has {found} but no stats file, and the report and its gate \
         are built from the stats table (Locust writes PREFIX_stats.csv with --csv PREFIX; \
         PREFIX_requests.csv before 0.13.3)",
        path = shown(path),
        found = clean(found)
    )]
    NoStats { path: PathBuf, found: String },
    /// A targets or thresholds file that is not valid.
    #[error("{path}:{line}: {message}", path = shown(path), message = clean(message))]
    Config {
        path: PathBuf,
        line: u64,
        message: String,
    },
    /// The analysis task died (only from the async entry point).
    #[error("the report task failed: {}", clean(.0))]
    Task(String),
}

impl ReportError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(
        path: impl Into<PathBuf>,
        line: u64,
        message: impl Into<String>,
    ) -> Self {
        Self::Malformed {
            path: path.into(),
            line,
            message: message.into(),
        }
    }
}
