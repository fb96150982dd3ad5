//! Issue 10, engine side: the last good answer is never hidden. What a run cannot fetch is
//! carried from the last snapshot, marked stale with when it was fetched; a cancel is not
//! an error; the matrix of a running snapshot is sent as its stages end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use snaptop::engine::events::EngineEvent;
use snaptop::engine::model::{Part, Trigger};
use snaptop::sim::{Fault, SimOptions, Source};
use snaptop::store::Store;

#[tokio::test]
async fn a_run_where_every_source_fails_keeps_every_last_good_value_marked_stale() {
    let sim = common::sim(SimOptions::default()).await;
    let store = Store::temporary().unwrap();
    let good = common::snapshot(&sim, &store).await;
    assert!(!good.partial);
    for s in Source::ALL {
        sim.set_fault(s, Fault::ServerError);
    }
    let (bad, _) = common::snapshot_env(&sim, sim.config(), &store, |_| {}).await;
    assert!(bad.partial);
    assert_eq!(
        snaptop::headless::exit_code(&bad),
        1,
        "nothing could be fetched"
    );
    for (env, row) in &good.cells {
        for (comp, before) in row {
            let cell = bad.cell(env, comp).unwrap();
            let at = format!("{env}/{comp}");
            assert_eq!(cell.tag, before.tag, "{at}");
            assert_eq!(cell.deployed_at, before.deployed_at, "{at}");
            assert_eq!(cell.build, before.build, "{at}");
            assert_eq!(cell.health, before.health, "{at}");
            assert_eq!(
                cell.tickets, before.tickets,
                "{at}: the shipped tickets, not 0"
            );
            // As of the first run: its end when carried over, or when the source gave
            // the answer the cache served stale (stale-if-error, second precision).
            for part in [Part::Deployment, Part::Build, Part::Tickets] {
                let as_of = cell.as_of(part, bad.finished_at);
                assert!(cell.is_stale(part), "{at}: {part:?}");
                assert!(
                    as_of <= good.finished_at && as_of >= good.started_at - Duration::from_secs(1),
                    "{at}: {part:?} as of {as_of}, the good run was {} – {}",
                    good.started_at,
                    good.finished_at
                );
            }
        }
    }
    // A third failed run still says when the data was fetched: the first run.
    let (worse, _) = common::snapshot_env(&sim, sim.config(), &store, |_| {}).await;
    let cell = worse.cell("prod", "payments").unwrap();
    let as_of = cell.as_of(Part::Deployment, worse.finished_at);
    assert!(as_of <= good.finished_at && as_of >= good.started_at - Duration::from_secs(1));
    let json = snaptop::headless::snapshot_json(&worse);
    assert!(
        json["environments"]["prod"]["payments"]["stale"]["deployment"].is_string(),
        "{}",
        json["environments"]["prod"]["payments"]
    );
    // Once the sources answer again, nothing is stale.
    for s in Source::ALL {
        sim.set_fault(s, Fault::None);
    }
    let healed = common::snapshot(&sim, &store).await;
    assert!(!healed.partial, "{:?}", healed.failures);
    assert!(
        healed
            .cells
            .values()
            .flat_map(|r| r.values())
            .all(|c| c.stale.is_empty())
    );
}

#[tokio::test]
async fn a_cancelled_run_is_not_an_error_and_the_log_says_who_cancelled() {
    let sim = common::sim(SimOptions::default()).await;
    let store = Store::temporary().unwrap();
    let good = common::snapshot(&sim, &store).await;
    // Jira never answers: the run is still going when it is cancelled.
    sim.set_fault(Source::Jira, Fault::Hang);
    let (engine, mut events) = snaptop::engine::spawn_with(
        Arc::new(sim.config()),
        sim.secrets(),
        store.clone(),
        snaptop::cache::HttpCache::open(store.clone(), sim.config().cache),
        Duration::from_millis(1),
    );
    engine.trigger(Trigger::Manual);
    let mut cancelled = false;
    let mut logged = Vec::new();
    let finished = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(ev) = events.recv().await {
            match ev {
                EngineEvent::Progress(p)
                    if !cancelled
                        && p.stages.iter().any(|s| {
                            s.stage == snaptop::engine::events::Stage::Deployments
                                && s.state == snaptop::engine::events::StageState::Done
                        }) =>
                {
                    engine.cancel();
                    cancelled = true;
                }
                EngineEvent::Log(l) => logged.push(l.message),
                EngineEvent::Finished { summary, snapshot } => return Some((summary, snapshot)),
                _ => {}
            }
        }
        None
    })
    .await
    .expect("the cancelled run ends")
    .expect("a snapshot");
    let (summary, snapshot) = finished;
    assert!(summary.cancelled && snapshot.cancelled);
    assert_eq!(
        summary.errors, 0,
        "a cancel is not an error: {:?}",
        snapshot.failures
    );
    assert!(snapshot.failures.is_empty(), "{:?}", snapshot.failures);
    assert!(
        logged
            .iter()
            .any(|l| l.contains("cancelled by you, from the keyboard")),
        "{logged:#?}"
    );
    // What Jira could not say this time is the last good answer, marked.
    let cell = snapshot.cell("dev", "payments").unwrap();
    assert_eq!(cell.tickets, good.cell("dev", "payments").unwrap().tickets);
    let history = store.run_history(5).unwrap();
    assert!(history[0].cancelled && history[0].errors == 0);
}

#[tokio::test]
async fn the_matrix_of_a_running_snapshot_is_sent_as_its_stages_end() {
    // A network's latency spreads the stages' ends over the run.
    let sim = common::sim(SimOptions {
        latency: Duration::from_millis(40),
        ..SimOptions::default()
    })
    .await;
    let store = Store::temporary().unwrap();
    let (result, events) = common::snapshot_with(&sim, sim.config(), &store).await;
    let (_, last) = result.unwrap_or_else(|(_, e)| panic!("{e}"));
    let provisional: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::Provisional(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(
        provisional.len() >= 2,
        "{} provisional matrices",
        provisional.len()
    );
    // Each one has every cell, and the last one has the run's tags.
    for p in &provisional {
        assert_eq!(p.cells.len(), last.cells.len());
    }
    let tags = |s: &snaptop::engine::model::Snapshot| {
        s.cells
            .values()
            .flat_map(|r| r.values())
            .filter(|c| c.tag.is_some())
            .count()
    };
    assert_eq!(tags(provisional.last().unwrap()), tags(&last));
}
