//! The engine's side of the schedule: the policy in force, pause, the runs the rule
//! counts from, and the one timer that sleeps until the next due time. The rule itself
//! is [`crate::schedule::next_run`]; this keeps its inputs current and persists edits.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::model::{RunSummary, Trigger};
use crate::schedule::{Due, FieldError, Layer, PastRun, Policy, Runs, Seed, Settings};
use crate::store::Store;

/// Store keys of the saved edits and of the pause switch.
pub const EDITS_KEY: &str = "schedule.edits";
pub const PAUSED_KEY: &str = "schedule.paused";
/// Runs read back from the history at start (the rule needs the last few).
const HISTORY_READ: usize = 50;

/// What time it is for the scheduler. Production reads the system clock; tests read
/// tokio's (paused) clock, anchored at a wall time.
#[derive(Debug, Clone, Copy)]
pub enum WallClock {
    System,
    Tokio {
        anchor: Timestamp,
        at: tokio::time::Instant,
    },
}

impl WallClock {
    /// A clock that follows tokio's time from `anchor` (tests on a paused clock).
    pub fn tokio_from(anchor: Timestamp) -> WallClock {
        WallClock::Tokio {
            anchor,
            at: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        match self {
            WallClock::System => Timestamp::now(),
            WallClock::Tokio { anchor, at } => *anchor + at.elapsed(),
        }
    }

    /// The tokio instant at which the wall clock reads `t`.
    fn instant_of(&self, t: Timestamp) -> tokio::time::Instant {
        let wait = t.duration_since(self.now());
        tokio::time::Instant::now() + wait.try_into().unwrap_or(Duration::ZERO)
    }
}

/// How the engine is told to schedule.
#[derive(Debug, Clone)]
pub struct ScheduleSetup {
    /// The config file's `[schedule]` values (checked at load).
    pub file: Layer,
    pub seed: Seed,
    pub clock: WallClock,
}

impl ScheduleSetup {
    /// The system clock and this box's seed.
    pub fn new(file: Layer, host: &str, config_identity: &str) -> ScheduleSetup {
        ScheduleSetup {
            file,
            seed: Seed::for_box(host, config_identity),
            clock: WallClock::System,
        }
    }
}

/// The schedule as the engine last said, for the header, the tabs and the CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleStatus {
    pub enabled: bool,
    pub paused: bool,
    /// The next automatic run (None when disabled or paused).
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub next_at: Option<OffsetDateTime>,
    /// Why it is due then ("business", "after cooldown", …).
    pub next_rule: Option<String>,
    pub next_business: bool,
    /// Automatic runs skipped because one was still going, since start.
    pub skipped: u64,
    /// What the rule counts from, so a preview of edited values can be worked out
    /// without asking the engine (the Schedule tab's preview as you type).
    pub settings: Settings,
    pub runs: Runs,
    pub seed: Seed,
}

/// The scheduler's state inside the engine loop.
#[derive(Debug)]
pub struct Scheduler {
    settings: Settings,
    policy: Policy,
    paused: bool,
    seed: Seed,
    clock: WallClock,
    /// Oldest first, bounded.
    history: Vec<PastRun>,
    due: Option<Due>,
    skipped: u64,
}

fn past_run(summary: &RunSummary) -> PastRun {
    PastRun {
        started: crate::schedule::timestamp_of(summary.started_at),
        manual: summary.trigger != Trigger::Scheduled,
        changed: summary.new_deployments.map(|n| n > 0),
    }
}

/// The runs the rule counts from, oldest first, as the store has them.
pub fn history_of(store: &Store) -> Vec<PastRun> {
    past_runs(&store.run_history(HISTORY_READ).unwrap_or_default())
}

/// The runs the rule counts from, oldest first, of a run history (any order).
pub fn past_runs(summaries: &[RunSummary]) -> Vec<PastRun> {
    let mut history: Vec<PastRun> = summaries.iter().map(past_run).collect();
    history.sort_by_key(|r| r.started);
    history
}

impl Scheduler {
    /// The saved edits and pause from the store over the file's values, and the runs
    /// so far. A saved edit that no longer checks (a zone removed from the tz database,
    /// say) is dropped with a warning rather than stopping the schedule.
    pub fn load(setup: ScheduleSetup, store: &Store) -> (Scheduler, Vec<String>) {
        let mut warnings = Vec::new();
        let edits: Layer = match store.state::<Layer>(EDITS_KEY) {
            Ok(edits) => edits.unwrap_or_default(),
            Err(e) => {
                warnings.push(format!("saved schedule edits unreadable, ignored: {e}"));
                Layer::new()
            }
        };
        let paused = store
            .state::<bool>(PAUSED_KEY)
            .ok()
            .flatten()
            .unwrap_or(false);
        let mut settings = Settings {
            file: setup.file,
            store: edits,
        };
        let policy =
            match settings.resolve() {
                Ok(r) => r.policy,
                Err(errors) => {
                    warnings.push(format!(
                    "saved schedule edits no longer valid, the config file's values are used: {}",
                    errors.iter().map(FieldError::to_string).collect::<Vec<_>>().join("; ")
                ));
                    settings.store.clear();
                    settings.resolve().map(|r| r.policy).unwrap_or_default()
                }
            };
        let history = history_of(store);
        let mut s = Scheduler {
            settings,
            policy,
            paused,
            seed: setup.seed,
            clock: setup.clock,
            history,
            due: None,
            skipped: 0,
        };
        s.recompute();
        (s, warnings)
    }

    /// A scheduler from its parts, for the CLI when the store is held by another
    /// process (or there is none): the given runs stand for the history.
    pub fn detached(
        settings: Settings,
        paused: bool,
        history: Vec<PastRun>,
        seed: Seed,
    ) -> Result<Scheduler, Vec<FieldError>> {
        let policy = settings.resolve()?.policy;
        let mut s = Scheduler {
            settings,
            policy,
            paused,
            seed,
            clock: WallClock::System,
            history,
            due: None,
            skipped: 0,
        };
        s.recompute();
        Ok(s)
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The next `n` automatic runs from `now` if each ran when due (none while paused).
    pub fn preview(&self, now: Timestamp, seed: Seed, n: usize) -> Vec<Due> {
        if self.paused {
            return Vec::new();
        }
        crate::schedule::preview(&self.policy, &self.runs(), now, seed, n)
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn due(&self) -> Option<Due> {
        self.due
    }

    fn runs(&self) -> Runs {
        Runs::from_runs(self.history.iter().copied())
    }

    /// Works out the next due time from what is known now.
    pub fn recompute(&mut self) {
        self.due = if self.paused {
            None
        } else {
            crate::schedule::next_run(&self.policy, &self.runs(), self.clock.now(), self.seed)
        };
    }

    /// When the engine should wake for the next run (None: never on its own).
    pub fn wake_at(&self) -> Option<tokio::time::Instant> {
        self.due.map(|d| self.clock.instant_of(d.at))
    }

    /// Whether the due time has really come: the system clock may have been set back
    /// since the timer was armed, in which case the engine sleeps again.
    pub fn is_due(&self) -> bool {
        self.due.is_some_and(|d| self.clock.now() >= d.at)
    }

    /// A run began (of any trigger): the cadence counts from its start.
    pub fn run_started(&mut self, trigger: Trigger) {
        let now = self.clock.now();
        // A scheduled run counts from its due time, not from when the timer woke (a few
        // ms later): the cadence then is exactly the rule's, and a preview stays true.
        let started = match (trigger, self.due) {
            (Trigger::Scheduled, Some(due)) if due.at <= now => due.at,
            _ => now,
        };
        self.push(PastRun {
            started,
            manual: trigger != Trigger::Scheduled,
            changed: None,
        });
        self.recompute();
    }

    /// A run ended: what it found sets the adaptive pace.
    pub fn run_finished(&mut self, summary: &RunSummary) {
        if let Some(last) = self.history.last_mut() {
            last.changed = summary.new_deployments.map(|n| n > 0);
        }
        self.recompute();
    }

    /// A run fell due while one was going: skipped, never queued. The slot counts as
    /// taken so the next one is an interval later, not at once when the run ends.
    pub fn skip(&mut self) -> Option<Due> {
        let due = self.due?;
        self.skipped += 1;
        self.push(PastRun {
            started: due.at.max(self.clock.now()),
            manual: false,
            changed: None,
        });
        self.recompute();
        Some(due)
    }

    fn push(&mut self, run: PastRun) {
        self.history.push(run);
        if self.history.len() > HISTORY_READ {
            self.history.remove(0);
        }
    }

    /// New saved edits (the whole layer), checked with the file's values; the policy
    /// in force stays when they do not check.
    pub fn set_edits(&mut self, store: &Store, edits: Layer) -> Result<(), Vec<FieldError>> {
        let settings = Settings {
            file: self.settings.file.clone(),
            store: edits,
        };
        let resolved = settings.resolve()?;
        // Flushed at once: a saved edit survives a kill (a rare keypress; ms of sled).
        store
            .put_state(EDITS_KEY, &settings.store)
            .and_then(|()| store.flush_blocking())
            .map_err(|e| {
                vec![FieldError {
                    field: "store".into(),
                    message: format!("cannot save the edits: {e}"),
                }]
            })?;
        self.settings = settings;
        self.policy = resolved.policy;
        self.recompute();
        Ok(())
    }

    pub fn set_paused(&mut self, store: &Store, paused: bool) -> Result<(), String> {
        store
            .put_state(PAUSED_KEY, &paused)
            .and_then(|()| store.flush_blocking())
            .map_err(|e| format!("cannot save the pause: {e}"))?;
        self.paused = paused;
        self.recompute();
        Ok(())
    }

    pub fn status(&self) -> ScheduleStatus {
        ScheduleStatus {
            enabled: self.policy.enabled,
            paused: self.paused,
            next_at: self.due.map(|d| crate::schedule::offset_of(d.at)),
            next_rule: self.due.map(|d| d.rule.label().to_string()),
            next_business: self.due.is_some_and(|d| d.business),
            skipped: self.skipped,
            settings: self.settings.clone(),
            runs: self.runs(),
            seed: self.seed,
        }
    }
}
