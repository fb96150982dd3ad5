//! The Reports tab's I/O, done for it by the event loop: building reports on the blocking
//! pool (the latest request wins), listing path completions, and watching the files of
//! the report on screen to reload it when Locust rewrites them.
//!
//! Watching is event-driven (inotify, FSEvents...): nothing wakes while the files are
//! still. Changes are debounced: a reload starts [`RELOAD_DEBOUNCE_MS`] after the last one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::time::Instant;
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::report::{Report, ReportRequest, build_report, paths};
use crate::ui::{AppEvent, ReportLoad};

/// Quiet time after a file change before the report is rebuilt (Locust writes its
/// files one after another every few seconds).
pub const RELOAD_DEBOUNCE_MS: u64 = 400;

pub struct ReportJobs {
    tx: mpsc::UnboundedSender<AppEvent>,
    /// Sequence number of the latest load.
    seq: u64,
    /// The request of the report on screen (the last one that loaded), and its files.
    current: Option<(ReportRequest, Vec<PathBuf>)>,
    watcher: Option<RecommendedWatcher>,
    changes_tx: mpsc::UnboundedSender<()>,
    changes: mpsc::UnboundedReceiver<()>,
    reload_at: Option<Instant>,
}

impl ReportJobs {
    pub fn new(tx: mpsc::UnboundedSender<AppEvent>) -> ReportJobs {
        let (changes_tx, changes) = mpsc::unbounded_channel();
        ReportJobs {
            tx,
            seq: 0,
            current: None,
            watcher: None,
            changes_tx,
            changes,
            reload_at: None,
        }
    }

    /// Starts building a report off the render path; returns the event that tells the
    /// tab (apply it at once). The result arrives later as [`AppEvent::ReportLoaded`].
    pub fn load(&mut self, request: ReportRequest, reload: bool) -> AppEvent {
        self.seq += 1;
        let seq = self.seq;
        let tx = self.tx.clone();
        let req = request.clone();
        tokio::task::spawn_blocking(move || {
            let result = build_report(&req, None).map_err(|e| e.to_string());
            let _ = tx.send(AppEvent::ReportLoaded(Box::new(ReportLoad {
                seq,
                request: req,
                reload,
                at: OffsetDateTime::now_utc(),
                result,
            })));
        });
        AppEvent::ReportLoading {
            seq,
            request,
            reload,
        }
    }

    /// Loads the report on screen again; None when there is none.
    pub fn reload(&mut self) -> Option<AppEvent> {
        self.reload_at = None;
        let request = self.current.as_ref()?.0.clone();
        Some(self.load(request, true))
    }

    /// Lists completions of a typed path on the blocking pool.
    pub fn complete(&self, input: String) {
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let candidates = paths::complete(&input);
            let _ = tx.send(AppEvent::Completions { input, candidates });
        });
    }

    /// Sees every app event before the app does: the latest report that loaded becomes
    /// the one watched.
    pub fn observe(&mut self, event: &AppEvent) {
        if let AppEvent::ReportLoaded(load) = event
            && load.seq == self.seq
            && let Ok(report) = &load.result
        {
            self.watch(&load.request, report);
        }
    }

    /// When the debounced reload is due; None when no change is pending.
    pub fn reload_at(&self) -> Option<Instant> {
        self.reload_at
    }

    /// Waits for a change of a watched file and (re)arms the debounce.
    pub async fn changed(&mut self) {
        if self.changes.recv().await.is_some() {
            self.reload_at = Some(Instant::now() + Duration::from_millis(RELOAD_DEBOUNCE_MS));
        }
    }

    fn watch(&mut self, request: &ReportRequest, report: &Report) {
        let mut files: Vec<PathBuf> = report.run.files.paths().into_iter().cloned().collect();
        files.extend(request.targets.iter().cloned());
        files.extend(request.thresholds.iter().cloned());
        // Events name files by absolute path under the watched directory.
        let files: Vec<PathBuf> = files
            .iter()
            .filter_map(|f| std::fs::canonicalize(f).ok())
            .collect();
        if self
            .current
            .as_ref()
            .is_some_and(|(r, f)| r == request && *f == files)
            && self.watcher.is_some()
        {
            return;
        }
        self.current = Some((request.clone(), files.clone()));
        self.watcher = None;
        self.reload_at = None;
        match watch_files(&files, self.changes_tx.clone()) {
            Ok(w) => self.watcher = Some(w),
            // The report still shows; it only will not reload by itself.
            Err(e) => tracing::warn!("cannot watch the report's files: {e}"),
        }
    }
}

/// Watches the directories holding `files` and sends a unit on `changed` when one of
/// those files is written, created, removed or renamed (reads are not changes).
fn watch_files(
    files: &[PathBuf],
    changed: mpsc::UnboundedSender<()>,
) -> notify::Result<RecommendedWatcher> {
    let wanted: HashSet<PathBuf> = files.iter().cloned().collect();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if matches!(ev.kind, EventKind::Access(_)) {
            return;
        }
        if ev.paths.iter().any(|p| wanted.contains(p)) {
            let _ = changed.send(());
        }
    })?;
    let dirs: HashSet<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    for dir in dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn loads_then_reloads_when_a_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let request = crate::report::demo::write_demo_run(dir.path()).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut jobs = ReportJobs::new(tx);
        let AppEvent::ReportLoading { seq, reload, .. } = jobs.load(request, false) else {
            panic!("a load starts with ReportLoading");
        };
        assert!(!reload);
        let ev = rx.recv().await.unwrap();
        let AppEvent::ReportLoaded(load) = &ev else {
            panic!("expected a load result");
        };
        assert_eq!(load.seq, seq);
        assert!(load.result.is_ok(), "{:?}", load.result.as_ref().err());
        jobs.observe(&ev);
        assert!(jobs.reload_at().is_none());
        // Locust rewrites the stats file.
        let stats = dir.path().join("api_stats.csv");
        let text = std::fs::read_to_string(&stats).unwrap();
        std::fs::write(&stats, text).unwrap();
        tokio::time::timeout(Duration::from_secs(5), jobs.changed())
            .await
            .expect("the change is seen");
        assert!(jobs.reload_at().is_some());
        let Some(AppEvent::ReportLoading { reload: true, .. }) = jobs.reload() else {
            panic!("a reload starts");
        };
        assert!(jobs.reload_at().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_path_fails_with_a_message_naming_it() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut jobs = ReportJobs::new(tx);
        jobs.load(
            ReportRequest {
                inputs: vec!["/no/such/run".into()],
                ..ReportRequest::default()
            },
            false,
        );
        let AppEvent::ReportLoaded(load) = rx.recv().await.unwrap() else {
            panic!("expected a load result");
        };
        let e = load.result.unwrap_err();
        assert!(e.contains("/no/such/run"), "{e}");
        // Nothing loaded: nothing to reload.
        assert!(jobs.reload().is_none());
    }
}
