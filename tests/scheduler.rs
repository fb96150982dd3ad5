//! The scheduler inside the engine loop, on tokio's paused clock: runs fire when due,
//! never two at once, not inside a cooldown, one missed run on start and none when
//! nothing is due, pause and edits apply at once. The runs here are stand-ins that take
//! a set time (the rule and the loop are what is tested); the last test drives a real
//! run against the simulator to its timeout.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use snaptop::cache::HttpCache;
use snaptop::config::Config;
use snaptop::engine::events::EngineEvent;
use snaptop::engine::model::{RunSummary, Trigger};
use snaptop::engine::runner::RunEnv;
use snaptop::engine::scheduler::{PAUSED_KEY, ScheduleSetup, Scheduler, WallClock};
use snaptop::engine::{self, EngineHandle};
use snaptop::schedule::{Key, Layer, Seed};
use snaptop::sim::{Fault, SimOptions, Source};
use snaptop::store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const CONFIG: &str = r#"
environments = ["prod"]
[gitops]
repo = "acme/gitops"
path = "apps/{component}/{env}/kustomization.yaml"
[github]
token_env = "SNAPTOP_TEST_UNSET_TOKEN"
"#;

/// Tuesday 1 December 2026, 10:00 in Berlin: inside the default business window.
const TUESDAY_10: &str = "2026-12-01T10:00:00+01:00";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn summary(id: u64, at: Timestamp, trigger: Trigger) -> RunSummary {
    common::run_summary(id, snaptop::schedule::offset_of(at), trigger)
}

/// A started run, as the stand-in saw it.
#[derive(Debug, Clone, Copy)]
struct Started {
    at: Timestamp,
    trigger: Trigger,
    timeout: Option<Duration>,
}

struct Harness {
    engine: EngineHandle,
    events: mpsc::Receiver<EngineEvent>,
    started: Arc<Mutex<Vec<Started>>>,
    most_at_once: Arc<AtomicUsize>,
    clock: WallClock,
    store: Store,
}

impl Harness {
    /// An engine whose runs each take `run_for`, starting at `now` on a paused clock
    /// with `past` already in the store.
    fn start(now: &str, past: &[RunSummary], file: &[(Key, &str)], run_for: Duration) -> Harness {
        Harness::start_seeded(now, past, file, run_for, Seed::NONE)
    }

    fn start_seeded(
        now: &str,
        past: &[RunSummary],
        file: &[(Key, &str)],
        run_for: Duration,
        seed: Seed,
    ) -> Harness {
        let store = Store::temporary().unwrap();
        for s in past {
            store.commit_run(s, None).unwrap();
        }
        let mut layer = Layer::new();
        layer.insert(Key::Timezone, "Europe/Berlin".into());
        for (k, v) in file {
            layer.insert(*k, v.to_string());
        }
        let clock = WallClock::tokio_from(ts(now));
        let setup = ScheduleSetup {
            file: layer,
            seed,
            clock,
        };
        let (scheduler, warnings) = Scheduler::load(setup, &store);
        assert!(warnings.is_empty(), "{warnings:?}");
        let config = Config::parse(CONFIG, Path::new("t.toml")).unwrap();
        let (tx, events) = mpsc::channel(4096);
        let cache = HttpCache::open(store.clone(), config.cache.clone());
        let env = RunEnv::new(
            Arc::new(config),
            Default::default(),
            store.clone(),
            cache,
            tx,
        );
        let started = Arc::new(Mutex::new(Vec::new()));
        let active = Arc::new(AtomicUsize::new(0));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let (log, most) = (started.clone(), most_at_once.clone());
        let launch = move |env: RunEnv, trigger: Trigger, cancel: CancellationToken| {
            let (log, active, most) = (log.clone(), active.clone(), most.clone());
            tokio::spawn(async move {
                let at = clock.now();
                log.lock().unwrap().push(Started {
                    at,
                    trigger,
                    timeout: env.timeout,
                });
                let now_active = active.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now_active, Ordering::SeqCst);
                tokio::select! {
                    () = tokio::time::sleep(run_for) => {}
                    () = cancel.cancelled() => {}
                }
                active.fetch_sub(1, Ordering::SeqCst);
                let id = env.store.next_run_id().unwrap();
                let s = summary(id, at, trigger);
                env.store.commit_run(&s, None).unwrap();
                EngineEvent::Failed {
                    summary: s,
                    error: "stand-in run".into(),
                }
            })
        };
        let engine = engine::spawn_loop(env, Some(scheduler), launch);
        Harness {
            engine,
            events,
            started,
            most_at_once,
            clock,
            store,
        }
    }

    /// Lets `d` of (paused) time pass, the engine's events drained meanwhile.
    async fn pass(&mut self, d: Duration) -> Vec<EngineEvent> {
        let end = tokio::time::Instant::now() + d;
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(end) => break,
                ev = self.events.recv() => match ev {
                    Some(ev) => seen.push(ev),
                    None => break,
                },
            }
        }
        seen
    }

    fn starts(&self) -> Vec<Started> {
        self.started.lock().unwrap().clone()
    }

    fn start_times(&self) -> Vec<Timestamp> {
        self.starts().iter().map(|s| s.at).collect()
    }
}

fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

/// Times are compared to the second: the paused clock moves in whole steps, but a
/// spawned task may start a few microseconds of wall arithmetic later.
fn assert_times(got: &[Timestamp], want: &[&str]) {
    let got: Vec<String> = got
        .iter()
        .map(|t| t.round(jiff::Unit::Second).unwrap().to_string())
        .collect();
    let want: Vec<String> = want.iter().map(|w| ts(w).to_string()).collect();
    assert_eq!(got, want);
}

#[tokio::test(start_paused = true)]
async fn runs_fire_when_due_from_the_last_run_in_the_store() {
    let past = [summary(
        1,
        ts("2026-12-01T09:45:00+01:00"),
        Trigger::Scheduled,
    )];
    let mut h = Harness::start(TUESDAY_10, &past, &[], minutes(1));
    h.pass(minutes(100)).await;
    assert_times(
        &h.start_times(),
        &[
            "2026-12-01T10:15:00+01:00",
            "2026-12-01T10:45:00+01:00",
            "2026-12-01T11:15:00+01:00",
        ],
    );
    let s = h.starts();
    assert!(s.iter().all(|s| s.trigger == Trigger::Scheduled));
    // Each run gets the policy's run timeout.
    assert!(s.iter().all(|s| s.timeout == Some(minutes(15))), "{s:?}");
    assert_eq!(h.most_at_once.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_run_longer_than_the_interval_skips_the_slot_and_never_runs_two_at_once() {
    let past = [summary(
        1,
        ts("2026-12-01T09:45:00+01:00"),
        Trigger::Scheduled,
    )];
    // Each run takes 40 minutes (the run timeout is raised so it is not cut).
    let mut h = Harness::start(TUESDAY_10, &past, &[(Key::RunTimeout, "1h")], minutes(40));
    let events = h.pass(minutes(125)).await;
    // 10:15 runs to 10:55; 10:45 falls due meanwhile and is skipped (never queued):
    // the next is 11:15, and its own slot 11:45 is skipped again.
    assert_times(
        &h.start_times(),
        &["2026-12-01T10:15:00+01:00", "2026-12-01T11:15:00+01:00"],
    );
    assert_eq!(h.most_at_once.load(Ordering::SeqCst), 1);
    let skipped = common::log_lines(&events)
        .into_iter()
        .filter(|l| l.contains("skipped"))
        .count();
    assert_eq!(skipped, 2, "{:?}", common::log_lines(&events));
    let status = events.iter().rev().find_map(|e| match e {
        EngineEvent::Schedule(Some(s)) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(status.unwrap().skipped, 2);
}

#[tokio::test(start_paused = true)]
async fn no_automatic_run_inside_the_cooldown_after_a_manual_one() {
    let past = [summary(
        1,
        ts("2026-12-01T09:45:00+01:00"),
        Trigger::Scheduled,
    )];
    let mut h = Harness::start(
        TUESDAY_10,
        &past,
        &[(Key::CooldownAfterManual, "45m")],
        minutes(1),
    );
    h.pass(minutes(12)).await;
    // 10:12: someone presses r, three minutes before the 10:15 run.
    h.engine.trigger(Trigger::Manual);
    h.pass(minutes(60)).await;
    assert_times(
        &h.start_times(),
        &["2026-12-01T10:12:00+01:00", "2026-12-01T10:57:00+01:00"],
    );
    let s = h.starts();
    assert_eq!(s[0].trigger, Trigger::Manual);
    assert_eq!(s[1].trigger, Trigger::Scheduled);
}

#[tokio::test(start_paused = true)]
async fn a_manual_trigger_while_a_run_goes_is_coalesced_not_queued() {
    let past = [summary(
        1,
        ts("2026-12-01T09:45:00+01:00"),
        Trigger::Scheduled,
    )];
    let mut h = Harness::start(TUESDAY_10, &past, &[], minutes(10));
    h.pass(minutes(16)).await; // the 10:15 run is going
    h.engine.trigger(Trigger::Manual);
    let events = h.pass(minutes(10)).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, EngineEvent::AlreadyRunning))
    );
    assert_eq!(h.starts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn after_a_closed_weekend_one_missed_run_fires_on_start_then_the_cadence() {
    // The last run was Friday evening; the pane opens Monday 09:12.
    let past = [summary(
        1,
        ts("2026-12-04T17:30:00+01:00"),
        Trigger::Scheduled,
    )];
    let mut h = Harness::start("2026-12-07T09:12:00+01:00", &past, &[], minutes(1));
    h.pass(minutes(65)).await;
    assert_times(
        &h.start_times(),
        &[
            "2026-12-07T09:12:00+01:00",
            "2026-12-07T09:42:00+01:00",
            "2026-12-07T10:12:00+01:00",
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn nothing_fires_on_start_when_nothing_is_due() {
    let past = [summary(
        1,
        ts("2026-12-01T09:55:00+01:00"),
        Trigger::Scheduled,
    )];
    let mut h = Harness::start(TUESDAY_10, &past, &[], minutes(1));
    h.pass(minutes(24)).await;
    assert!(h.starts().is_empty());
    h.pass(minutes(2)).await;
    assert_times(&h.start_times(), &["2026-12-01T10:25:00+01:00"]);
}

#[tokio::test(start_paused = true)]
async fn pause_holds_every_automatic_run_is_kept_and_resume_catches_up_once() {
    let past = [summary(
        1,
        ts("2026-12-01T09:45:00+01:00"),
        Trigger::Scheduled,
    )];
    let mut h = Harness::start(TUESDAY_10, &past, &[], minutes(1));
    h.engine.pause(true);
    let events = h.pass(minutes(120)).await;
    assert!(h.starts().is_empty());
    let paused = events.iter().rev().find_map(|e| match e {
        EngineEvent::Schedule(Some(s)) => Some(s.clone()),
        _ => None,
    });
    let paused = paused.unwrap();
    assert!(paused.paused && paused.next_at.is_none());
    assert_eq!(h.store.state::<bool>(PAUSED_KEY).unwrap(), Some(true));
    // Resumed at 12:00: the 10:15 run was missed, one run now, then every 30 minutes.
    h.engine.pause(false);
    h.pass(minutes(31)).await;
    assert_times(
        &h.start_times(),
        &["2026-12-01T12:00:00+01:00", "2026-12-01T12:30:00+01:00"],
    );
}

#[tokio::test(start_paused = true)]
async fn an_edit_applies_at_once_and_a_bad_one_is_refused_with_the_policy_kept() {
    let past = [summary(
        1,
        ts("2026-12-01T09:45:00+01:00"),
        Trigger::Scheduled,
    )];
    let mut h = Harness::start(TUESDAY_10, &past, &[], minutes(1));
    let mut bad = Layer::new();
    bad.insert(Key::IntervalBusiness, "5s".into());
    h.engine.set_schedule(bad);
    let events = h.pass(minutes(1)).await;
    let refused = common::log_lines(&events);
    assert!(
        refused
            .iter()
            .any(|l| l.contains("refused") && l.contains("interval_business")),
        "{refused:?}"
    );
    let mut edit = Layer::new();
    edit.insert(Key::IntervalBusiness, "10m".into());
    h.engine.set_schedule(edit.clone());
    h.pass(minutes(20)).await;
    // From 09:45 every 10 minutes: 09:55 is past (missed, due at 10:01), then 10:11.
    assert_times(
        &h.start_times(),
        &["2026-12-01T10:01:00+01:00", "2026-12-01T10:11:00+01:00"],
    );
    assert_eq!(
        h.store
            .state::<Layer>(snaptop::engine::scheduler::EDITS_KEY)
            .unwrap(),
        Some(edit)
    );
    let _ = h.clock;
}

#[tokio::test(start_paused = true)]
async fn a_weekend_left_open_runs_exactly_at_the_policys_times_with_jitter() {
    // Friday 17:00 to Monday 10:00 in Berlin, this box's jitter on: the runs the engine
    // starts are the ones the pure rule previews, none inside a cooldown, one at a time.
    let seed = Seed::for_box("build-07", "acme/gitops");
    let past = [summary(
        1,
        ts("2026-12-04T16:50:00+01:00"),
        Trigger::Scheduled,
    )];
    let mut h = Harness::start_seeded(
        "2026-12-04T17:00:00+01:00",
        &past,
        &[],
        Duration::from_secs(40),
        seed,
    );
    h.pass(Duration::from_secs(65 * 3600)).await;
    let got = h.start_times();
    let mut layer = Layer::new();
    layer.insert(Key::Timezone, "Europe/Berlin".into());
    let policy = snaptop::schedule::Settings {
        file: layer,
        store: Layer::new(),
    }
    .resolve()
    .unwrap()
    .policy;
    let runs = snaptop::schedule::Runs::from_runs([snaptop::schedule::PastRun {
        started: ts("2026-12-04T16:50:00+01:00"),
        manual: false,
        changed: Some(false),
    }]);
    let until = ts("2026-12-07T10:00:00+01:00");
    let want: Vec<String> =
        snaptop::schedule::preview(&policy, &runs, ts("2026-12-04T17:00:00+01:00"), seed, 200)
            .into_iter()
            .filter(|d| d.at < until)
            .map(|d| d.at.round(jiff::Unit::Second).unwrap().to_string())
            .collect();
    let got: Vec<String> = got
        .iter()
        .map(|t| t.round(jiff::Unit::Second).unwrap().to_string())
        .collect();
    assert_eq!(got, want);
    // Friday evening and the weekend every ~2h, Monday from 08:00 every ~30m.
    assert!(got.len() > 30, "{got:?}");
    assert!(
        got.iter().any(|t| t.starts_with("2026-12-07T07:0")),
        "{got:?}"
    );
    assert_eq!(h.most_at_once.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_scheduled_run_past_its_timeout_is_cancelled_and_kept_as_partial() {
    let sim = common::sim(SimOptions::default()).await;
    let store = Store::temporary().unwrap();
    // Jira never answers; the run times out after the policy's 10 s.
    sim.set_fault(Source::Jira, Fault::Hang);
    let mut file = Layer::new();
    file.insert(Key::RunTimeout, "10s".into());
    let setup = ScheduleSetup {
        file,
        seed: Seed::NONE,
        clock: WallClock::System,
    };
    // An empty store: the first run is due at once.
    let config = sim.config();
    let cache = HttpCache::open(store.clone(), config.cache.clone());
    let (_engine, mut events) =
        engine::spawn_scheduled(Arc::new(config), sim.secrets(), store.clone(), cache, setup);
    let began = std::time::Instant::now();
    let (summary, snapshot) = tokio::time::timeout(Duration::from_secs(40), async {
        while let Some(ev) = events.recv().await {
            if let EngineEvent::Finished { summary, snapshot } = ev {
                return Some((summary, snapshot));
            }
        }
        None
    })
    .await
    .expect("the run ends by its timeout")
    .expect("a snapshot");
    assert!(began.elapsed() < Duration::from_secs(30));
    assert_eq!(summary.trigger, Trigger::Scheduled);
    assert!(summary.partial && snapshot.partial);
    assert!(
        snapshot
            .failures
            .iter()
            .any(|f| f.message.contains("timed out after 10s")),
        "{:?}",
        snapshot.failures
    );
    // Kept: the store's latest snapshot is this partial one.
    let latest = store.latest_snapshot().unwrap().unwrap();
    assert_eq!(latest.run_id, summary.id);
}
