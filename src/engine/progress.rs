//! Stage progress of a running snapshot, and the ETA learned from earlier runs.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::events::{Stage, StageProgress, StageState};

/// Weight of the newest run in the learned durations (exponential moving average).
const EMA_WEIGHT_NEW: f64 = 0.4;

/// Stage durations learned from earlier runs (stored in the store).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LearnedDurations {
    /// Stage label → seconds from run start until that stage finished.
    pub stage_end_secs: BTreeMap<String, f64>,
    pub total_secs: Option<f64>,
    pub runs: u32,
}

impl LearnedDurations {
    pub const STORE_KEY: &'static str = "eta\0stage_durations";

    pub fn learn(&mut self, ends: &BTreeMap<Stage, Duration>, total: Duration) {
        let blend = |old: Option<f64>, new: f64| match old {
            Some(o) => o * (1.0 - EMA_WEIGHT_NEW) + new * EMA_WEIGHT_NEW,
            None => new,
        };
        for (stage, d) in ends {
            let key = stage.label().to_string();
            let v = blend(self.stage_end_secs.get(&key).copied(), d.as_secs_f64());
            self.stage_end_secs.insert(key, v);
        }
        self.total_secs = Some(blend(self.total_secs, total.as_secs_f64()));
        self.runs += 1;
    }
}

/// The live state of the stages of one run. Written by the stage tasks, read by the
/// progress emitter; `dirty` says whether anything changed since the last read.
pub struct Tracker {
    started: Instant,
    stages: Mutex<BTreeMap<Stage, (StageProgress, Option<Duration>)>>,
    dirty: AtomicBool,
}

impl Tracker {
    pub fn new() -> Tracker {
        let stages = Stage::ALL
            .iter()
            .map(|&stage| {
                (
                    stage,
                    (
                        StageProgress {
                            stage,
                            state: StageState::Pending,
                            done: 0,
                            total: 0,
                        },
                        None,
                    ),
                )
            })
            .collect();
        Tracker {
            started: Instant::now(),
            stages: Mutex::new(stages),
            dirty: AtomicBool::new(true),
        }
    }

    fn with(
        &self,
        stage: Stage,
        f: impl FnOnce(&mut StageProgress, &mut Option<Duration>, Duration),
    ) {
        let elapsed = self.started.elapsed();
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((p, end)) = stages.get_mut(&stage) {
            f(p, end, elapsed);
        }
        self.dirty.store(true, Ordering::Release);
    }

    pub fn start(&self, stage: Stage, total: u32) {
        self.with(stage, |p, _, _| {
            p.state = StageState::Running;
            p.total = total;
        });
    }

    /// Starts `stage` if it is not running yet, with `more` steps added to what it has.
    pub fn extend(&self, stage: Stage, more: u32) {
        self.with(stage, |p, _, _| {
            p.state = StageState::Running;
            p.total += more;
        });
    }

    pub fn add_total(&self, stage: Stage, more: u32) {
        self.with(stage, |p, _, _| p.total += more);
    }

    pub fn advance(&self, stage: Stage) {
        self.with(stage, |p, _, _| {
            p.done = (p.done + 1).min(p.total.max(p.done + 1))
        });
    }

    /// Marks a stage finished; `failed` when any part of it failed.
    pub fn finish(&self, stage: Stage, failed: bool) {
        self.with(stage, |p, end, elapsed| {
            p.state = if failed {
                StageState::Failed
            } else {
                StageState::Done
            };
            p.done = p.done.max(p.total);
            *end = Some(elapsed);
        });
    }

    pub fn skip(&self, stage: Stage) {
        self.with(stage, |p, end, _| {
            p.state = StageState::Skipped;
            *end = None;
        });
    }

    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn stages(&self) -> Vec<StageProgress> {
        let stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        stages.values().map(|(p, _)| p.clone()).collect()
    }

    /// When each finished stage ended, relative to the run start.
    pub fn stage_ends(&self) -> BTreeMap<Stage, Duration> {
        let stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        stages
            .iter()
            .filter_map(|(s, (_, end))| end.map(|e| (*s, e)))
            .collect()
    }

    /// Overall fraction done and time left. Stages are weighted by how long they took
    /// in earlier runs; with nothing learned yet, equally, and no ETA ("learning").
    pub fn estimate(&self, learned: &LearnedDurations) -> (f64, Option<Duration>) {
        let stages = self.stages();
        let active: Vec<&StageProgress> = stages
            .iter()
            .filter(|p| p.state != StageState::Skipped)
            .collect();
        if active.is_empty() {
            return (0.0, None);
        }
        let part = |p: &StageProgress| match p.state {
            StageState::Done | StageState::Failed => 1.0,
            _ if p.total == 0 => 0.0,
            _ => f64::from(p.done) / f64::from(p.total),
        };
        let weight = |p: &StageProgress| {
            learned
                .stage_end_secs
                .get(p.stage.label())
                .copied()
                .unwrap_or(1.0)
                .max(0.01)
        };
        let total_weight: f64 = active.iter().map(|p| weight(p)).sum();
        let fraction = (active.iter().map(|p| weight(p) * part(p)).sum::<f64>() / total_weight)
            .clamp(0.0, 1.0);
        let Some(expected) = learned.total_secs else {
            return (fraction, None);
        };
        let elapsed = self.elapsed().as_secs_f64();
        // Trust the learned total early on, the observed rate later.
        let by_history = (expected - elapsed).max(0.0);
        let by_rate = if fraction > 0.05 {
            elapsed * (1.0 - fraction) / fraction
        } else {
            by_history
        };
        let blend = fraction.clamp(0.0, 1.0);
        let left = by_history * (1.0 - blend) + by_rate * blend;
        (fraction, Some(Duration::from_secs_f64(left.max(0.0))))
    }
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_run_is_learning_then_eta_appears() {
        let t = Tracker::new();
        t.start(Stage::Repos, 4);
        t.advance(Stage::Repos);
        let (f, eta) = t.estimate(&LearnedDurations::default());
        assert!(f > 0.0 && f < 1.0);
        assert_eq!(eta, None);

        let mut learned = LearnedDurations::default();
        let ends = BTreeMap::from([
            (Stage::Repos, Duration::from_secs(2)),
            (Stage::Deployments, Duration::from_secs(6)),
        ]);
        learned.learn(&ends, Duration::from_secs(8));
        assert_eq!(learned.runs, 1);
        let (_, eta) = t.estimate(&learned);
        assert!(eta.unwrap() > Duration::from_secs(1));
    }

    #[test]
    fn finished_stages_count_fully_and_skipped_not_at_all() {
        let t = Tracker::new();
        for s in Stage::ALL {
            t.skip(s);
        }
        t.start(Stage::Builds, 3);
        t.finish(Stage::Builds, false);
        let (f, _) = t.estimate(&LearnedDurations::default());
        assert_eq!(f, 1.0);
        assert!(t.take_dirty());
        assert!(!t.take_dirty());
    }
}
