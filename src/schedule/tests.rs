//! The next-run rule across the week, the window's edges, both daylight-saving changes
//! of two zones, cooldown, jitter, missed runs and adaptive intervals; the policy's text
//! forms and layers.

use std::time::Duration;

use jiff::Timestamp;

use super::next::{PastRun, Rule, Runs, Seed, effective_interval, in_window, next_run, preview};
use super::policy::{Days, Jitter, Key, Layer, Origin, Policy, Settings, check};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn policy_in(zone: &str) -> Policy {
    with(zone, &[])
}

fn with(zone: &str, values: &[(Key, &str)]) -> Policy {
    let mut file = Layer::new();
    file.insert(Key::Timezone, zone.to_string());
    for (k, v) in values {
        file.insert(*k, v.to_string());
    }
    Settings {
        file,
        store: Layer::new(),
    }
    .resolve()
    .unwrap_or_else(|e| panic!("{e:?}"))
    .policy
}

fn after(last: &str) -> Runs {
    Runs::from_runs([auto(last)])
}

fn auto(at: &str) -> PastRun {
    PastRun {
        started: ts(at),
        manual: false,
        changed: Some(false),
    }
}

fn manual(at: &str) -> PastRun {
    PastRun {
        started: ts(at),
        manual: true,
        changed: Some(false),
    }
}

/// The next run without jitter, with `now` just after the last run.
fn next(p: &Policy, runs: &Runs) -> (Timestamp, Rule) {
    let now = runs.last.expect("a last run");
    let due = next_run(p, runs, now, Seed::NONE).expect("enabled");
    (due.at, due.rule)
}

const BERLIN: &str = "Europe/Berlin";
const NEW_YORK: &str = "America/New_York";

// ---- the cadence inside and outside the window -------------------------------------

#[test]
fn inside_the_window_a_run_is_due_one_business_interval_after_the_last() {
    let p = policy_in(BERLIN);
    // Tuesday 1 December 2026, 10:00 CET.
    assert_eq!(
        next(&p, &after("2026-12-01T10:00:00+01:00")),
        (ts("2026-12-01T10:30:00+01:00"), Rule::Business)
    );
}

#[test]
fn when_the_window_closes_off_hours_spacing_counts_from_the_last_run() {
    let p = policy_in(BERLIN);
    assert_eq!(
        next(&p, &after("2026-12-01T17:45:00+01:00")),
        (ts("2026-12-01T19:45:00+01:00"), Rule::OffHours)
    );
    // A business run due after the close becomes an off-hours one.
    assert_eq!(
        next(&p, &after("2026-12-01T17:40:00+01:00")),
        (ts("2026-12-01T19:40:00+01:00"), Rule::OffHours)
    );
}

#[test]
fn when_the_window_opens_the_business_cadence_starts_at_once() {
    let p = policy_in(BERLIN);
    // The last off-hours run was ten minutes before the opening: the opening still wins.
    assert_eq!(
        next(&p, &after("2026-12-02T07:50:00+01:00")),
        (ts("2026-12-02T08:00:00+01:00"), Rule::WindowOpen)
    );
    // From the opening on, business spacing.
    assert_eq!(
        next(&p, &after("2026-12-02T08:00:00+01:00")),
        (ts("2026-12-02T08:30:00+01:00"), Rule::Business)
    );
}

#[test]
fn the_weekend_is_off_hours_and_monday_opens_the_window() {
    let p = policy_in(BERLIN);
    // Friday 4 December 17:50 → off-hours from Friday evening.
    assert_eq!(
        next(&p, &after("2026-12-04T17:50:00+01:00")),
        (ts("2026-12-04T19:50:00+01:00"), Rule::OffHours)
    );
    // Saturday 10:00 is off-hours.
    assert!(!in_window(&p, ts("2026-12-05T10:00:00+01:00")));
    assert_eq!(
        next(&p, &after("2026-12-05T10:00:00+01:00")),
        (ts("2026-12-05T12:00:00+01:00"), Rule::OffHours)
    );
    // Sunday 23:30 → Monday 01:30 (the week turns), then Monday 07:30 → opening.
    assert_eq!(
        next(&p, &after("2026-12-06T23:30:00+01:00")),
        (ts("2026-12-07T01:30:00+01:00"), Rule::OffHours)
    );
    assert_eq!(
        next(&p, &after("2026-12-07T07:30:00+01:00")),
        (ts("2026-12-07T08:00:00+01:00"), Rule::WindowOpen)
    );
}

#[test]
fn a_whole_week_previewed_has_every_kind_of_run_where_it_belongs() {
    let p = policy_in(BERLIN);
    let runs = after("2026-11-30T00:00:00+01:00"); // Monday 00:00
    let week = preview(&p, &runs, ts("2026-11-30T00:00:00+01:00"), Seed::NONE, 200);
    let until = ts("2026-12-07T00:00:00+01:00");
    let week: Vec<_> = week.into_iter().filter(|d| d.at < until).collect();
    // 5 business days: 08:00 … 17:30 every 30 minutes (20 runs a day).
    let business = week.iter().filter(|d| d.business).count();
    assert_eq!(business, 5 * 20);
    for d in &week {
        assert_eq!(d.business, in_window(&p, d.at), "{d:?}");
        match d.rule {
            Rule::Business | Rule::WindowOpen => assert!(d.business, "{d:?}"),
            Rule::OffHours => assert!(!d.business, "{d:?}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let opens: Vec<_> = week.iter().filter(|d| d.rule == Rule::WindowOpen).collect();
    assert_eq!(opens.len(), 5);
    assert!(
        opens
            .iter()
            .all(|d| d.at.in_tz(BERLIN).unwrap().hour() == 8)
    );
    // Never two runs closer than the business interval.
    for pair in week.windows(2) {
        assert!(pair[1].at.duration_since(pair[0].at) >= jiff::SignedDuration::from_mins(30));
    }
}

#[test]
fn no_business_days_means_off_hours_all_week() {
    let p = with(BERLIN, &[(Key::Days, "none")]);
    assert!(!in_window(&p, ts("2026-12-01T10:00:00+01:00")));
    assert_eq!(
        next(&p, &after("2026-12-01T10:00:00+01:00")),
        (ts("2026-12-01T12:00:00+01:00"), Rule::OffHours)
    );
}

#[test]
fn a_window_ending_before_it_starts_runs_past_midnight() {
    let p = with(
        BERLIN,
        &[
            (Key::Start, "22:00"),
            (Key::End, "06:00"),
            (Key::Days, "mon-sun"),
        ],
    );
    assert!(in_window(&p, ts("2026-12-01T23:00:00+01:00")));
    assert!(in_window(&p, ts("2026-12-02T05:59:00+01:00")));
    assert!(!in_window(&p, ts("2026-12-02T06:00:00+01:00")));
    assert_eq!(
        next(&p, &after("2026-12-01T21:00:00+01:00")),
        (ts("2026-12-01T22:00:00+01:00"), Rule::WindowOpen)
    );
    assert_eq!(
        next(&p, &after("2026-12-02T05:45:00+01:00")),
        (ts("2026-12-02T07:45:00+01:00"), Rule::OffHours)
    );
}

// ---- daylight saving ----------------------------------------------------------------

#[test]
fn berlin_in_march_the_window_opens_at_eight_local_on_both_sides_of_the_change() {
    // Clocks go 02:00 → 03:00 on Sunday 29 March 2026.
    let p = policy_in(BERLIN);
    // Friday before: 08:00 CET is 07:00Z.
    assert_eq!(
        next(&p, &after("2026-03-27T06:30:00Z")),
        (ts("2026-03-27T07:00:00Z"), Rule::WindowOpen)
    );
    // Monday after: 08:00 CEST is 06:00Z.
    assert_eq!(
        next(&p, &after("2026-03-30T05:30:00Z")),
        (ts("2026-03-30T06:00:00Z"), Rule::WindowOpen)
    );
    // An off-hours interval across the change is two hours of real time: 01:30 CET
    // (00:30Z) + 2h is 02:30Z, which the wall clock shows as 04:30 CEST.
    let (at, rule) = next(&p, &after("2026-03-29T00:30:00Z"));
    assert_eq!((at, rule), (ts("2026-03-29T02:30:00Z"), Rule::OffHours));
    assert_eq!(at.in_tz(BERLIN).unwrap().hour(), 4);
}

#[test]
fn berlin_in_october_the_window_opens_at_eight_local_and_the_longer_night_is_real_time() {
    // Clocks go 03:00 → 02:00 on Sunday 25 October 2026.
    let p = policy_in(BERLIN);
    assert_eq!(
        next(&p, &after("2026-10-23T05:50:00Z")),
        (ts("2026-10-23T06:00:00Z"), Rule::WindowOpen) // Friday, CEST
    );
    assert_eq!(
        next(&p, &after("2026-10-26T06:50:00Z")),
        (ts("2026-10-26T07:00:00Z"), Rule::WindowOpen) // Monday, CET
    );
    // 01:30 CEST (23:30Z) + 2h = 01:30Z, which is 02:30 CET: the repeated hour is counted.
    let (at, _) = next(&p, &after("2026-10-24T23:30:00Z"));
    assert_eq!(at, ts("2026-10-25T01:30:00Z"));
}

#[test]
fn new_york_a_window_starting_in_the_spring_gap_opens_after_it() {
    // Sunday 8 March 2026, 02:00 → 03:00. A window starting at 02:30 every day.
    let p = with(
        NEW_YORK,
        &[
            (Key::Start, "02:30"),
            (Key::End, "10:00"),
            (Key::Days, "mon-sun"),
        ],
    );
    // The day before: 02:30 EST = 07:30Z.
    assert_eq!(
        next(&p, &after("2026-03-07T07:00:00Z")),
        (ts("2026-03-07T07:30:00Z"), Rule::WindowOpen)
    );
    // The day of: 02:30 does not exist; the window opens at 03:30 EDT = 07:30Z.
    assert_eq!(
        next(&p, &after("2026-03-08T06:45:00Z")),
        (ts("2026-03-08T07:30:00Z"), Rule::WindowOpen)
    );
    // The day after: 02:30 EDT = 06:30Z.
    assert_eq!(
        next(&p, &after("2026-03-09T06:00:00Z")),
        (ts("2026-03-09T06:30:00Z"), Rule::WindowOpen)
    );
}

#[test]
fn new_york_a_window_starting_in_the_autumn_fold_opens_at_its_first_pass() {
    // Sunday 1 November 2026, 02:00 EDT → 01:00 EST: 01:30 happens twice.
    let p = with(
        NEW_YORK,
        &[
            (Key::Start, "01:30"),
            (Key::End, "09:00"),
            (Key::Days, "mon-sun"),
        ],
    );
    // The first 01:30 (EDT) is 05:30Z.
    assert_eq!(
        next(&p, &after("2026-11-01T05:00:00Z")),
        (ts("2026-11-01T05:30:00Z"), Rule::WindowOpen)
    );
    // The next day: 01:30 EST = 06:30Z, and the default window of weekdays at 08:00
    // EST is 13:00Z.
    assert_eq!(
        next(&p, &after("2026-11-02T06:00:00Z")),
        (ts("2026-11-02T06:30:00Z"), Rule::WindowOpen)
    );
    let default = policy_in(NEW_YORK);
    assert_eq!(
        next(&default, &after("2026-11-02T12:45:00Z")),
        (ts("2026-11-02T13:00:00Z"), Rule::WindowOpen)
    );
    assert_eq!(
        next(&default, &after("2026-10-30T11:45:00Z")),
        (ts("2026-10-30T12:00:00Z"), Rule::WindowOpen) // Friday before, EDT
    );
}

// ---- cooldown, missed runs, first run, disabled --------------------------------------

#[test]
fn no_automatic_run_within_the_cooldown_after_a_manual_one() {
    let p = policy_in(BERLIN);
    // A manual run two minutes before the window opens holds the opening back.
    let runs = Runs::from_runs([manual("2026-12-02T07:58:00+01:00")]);
    assert_eq!(
        next(&p, &runs),
        (ts("2026-12-02T08:03:00+01:00"), Rule::Cooldown)
    );
    // A manual run inside the window restarts the spacing from it (cooldown shorter).
    let runs = Runs::from_runs([
        auto("2026-12-02T10:00:00+01:00"),
        manual("2026-12-02T10:20:00+01:00"),
    ]);
    assert_eq!(
        next(&p, &runs),
        (ts("2026-12-02T10:50:00+01:00"), Rule::Business)
    );
    // A cooldown longer than the interval wins.
    let p = with(BERLIN, &[(Key::CooldownAfterManual, "45m")]);
    assert_eq!(
        next(&p, &runs),
        (ts("2026-12-02T11:05:00+01:00"), Rule::Cooldown)
    );
}

#[test]
fn after_a_closed_weekend_one_run_is_due_now_never_one_per_missed_slot() {
    let p = policy_in(BERLIN);
    let runs = after("2026-12-04T17:30:00+01:00"); // Friday evening
    let now = ts("2026-12-07T09:12:00+01:00"); // Monday morning
    let due = next_run(&p, &runs, now, Seed::NONE).unwrap();
    assert_eq!((due.at, due.rule, due.business), (now, Rule::Missed, true));
    // Once that run is done, the cadence counts from it: one run, not a backlog.
    let mut runs = runs;
    runs.record(auto("2026-12-07T09:12:00+01:00"));
    let due = next_run(&p, &runs, ts("2026-12-07T09:13:00+01:00"), Seed::NONE).unwrap();
    assert_eq!(
        (due.at, due.rule),
        (ts("2026-12-07T09:42:00+01:00"), Rule::Business)
    );
}

#[test]
fn nothing_fires_on_start_when_nothing_was_missed() {
    let p = policy_in(BERLIN);
    let runs = after("2026-12-01T10:00:00+01:00");
    let due = next_run(&p, &runs, ts("2026-12-01T10:12:00+01:00"), Seed::NONE).unwrap();
    assert_eq!(due.at, ts("2026-12-01T10:30:00+01:00"));
    assert_eq!(due.rule, Rule::Business);
}

#[test]
fn the_missed_rule_is_stable_when_asked_again_at_its_own_time() {
    let p = policy_in(BERLIN);
    let runs = after("2026-12-01T10:00:00+01:00");
    let now = ts("2026-12-01T12:00:00+01:00");
    let first = next_run(&p, &runs, now, Seed::NONE).unwrap();
    let again = next_run(&p, &runs, first.at, Seed::NONE).unwrap();
    assert_eq!(first, again);
}

#[test]
fn an_empty_history_is_due_now_and_a_disabled_policy_never() {
    let p = policy_in(BERLIN);
    let now = ts("2026-12-01T03:00:00+01:00");
    let due = next_run(&p, &Runs::default(), now, Seed::NONE).unwrap();
    assert_eq!((due.at, due.rule), (now, Rule::First));
    let off = with(BERLIN, &[(Key::Enabled, "false")]);
    assert_eq!(next_run(&off, &Runs::default(), now, Seed::NONE), None);
    assert!(preview(&off, &Runs::default(), now, Seed::NONE, 10).is_empty());
}

// ---- jitter ---------------------------------------------------------------------------

#[test]
fn jitter_stays_within_its_bounds_for_every_box() {
    let p = policy_in(BERLIN);
    let span_b = Jitter::Percent(10).span(Duration::from_secs(1800));
    let span_o = Jitter::Percent(10).span(Duration::from_secs(7200));
    let lasts = [
        "2026-12-01T10:00:00+01:00",
        "2026-12-01T17:45:00+01:00",
        "2026-12-02T07:50:00+01:00",
        "2026-12-05T13:07:00+01:00",
    ];
    for host in 0..200 {
        let seed = Seed::for_box(&format!("box-{host}"), "acme/gitops");
        for last in lasts {
            let runs = after(last);
            let plain = next_run(&p, &runs, runs.last.unwrap(), Seed::NONE).unwrap();
            let jittered = next_run(&p, &runs, runs.last.unwrap(), seed).unwrap();
            let shift = jittered.at.duration_since(plain.at);
            let span = if plain.business { span_b } else { span_o };
            assert!(
                shift >= jiff::SignedDuration::ZERO,
                "{host} {last}: {shift}"
            );
            assert!(
                shift.unsigned_abs() <= span,
                "{host} {last}: {shift} > {span:?}"
            );
            assert_eq!(jittered.rule, plain.rule);
        }
    }
}

#[test]
fn a_box_keeps_its_offset_and_boxes_of_a_team_spread_out() {
    let p = policy_in(BERLIN);
    let runs = after("2026-12-02T07:00:00+01:00");
    let now = runs.last.unwrap();
    let open = |host: &str| {
        next_run(&p, &runs, now, Seed::for_box(host, "acme/gitops"))
            .unwrap()
            .at
    };
    // Stable: the same box, the same time, every time.
    assert_eq!(open("build-01"), open("build-01"));
    // Spread: twenty boxes open over the jitter's span, not all at 08:00.
    let mut times: Vec<_> = (0..20).map(|i| open(&format!("build-{i:02}"))).collect();
    times.sort();
    times.dedup();
    assert!(times.len() >= 18, "{times:?}");
    let spread = times
        .last()
        .unwrap()
        .duration_since(*times.first().unwrap());
    assert!(spread >= jiff::SignedDuration::from_secs(60), "{spread}");
    // Another config on the same box gets another offset.
    assert_ne!(
        Seed::for_box("build-01", "acme/gitops"),
        Seed::for_box("build-01", "acme/other")
    );
}

#[test]
fn a_jittered_box_stays_evenly_spaced_through_the_day() {
    let p = policy_in(BERLIN);
    let seed = Seed::for_box("build-07", "acme/gitops");
    let runs = after("2026-12-02T07:00:00+01:00");
    let day = preview(&p, &runs, runs.last.unwrap(), seed, 25);
    let business: Vec<_> = day.iter().filter(|d| d.business).collect();
    assert!(business.len() >= 15);
    for pair in business.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at).unsigned_abs();
        // The interval plus at most the per-run share (20 % of a 3-minute span).
        assert!(gap >= Duration::from_secs(1800), "{gap:?}");
        assert!(gap <= Duration::from_secs(1800 + 36), "{gap:?}");
    }
}

// ---- adaptive -----------------------------------------------------------------------------

#[test]
fn adaptive_intervals_halve_after_changes_down_to_the_floor_and_return_after_quiet() {
    let p = with(BERLIN, &[(Key::Adaptive, "true")]);
    let base = p.interval_business;
    let mut runs = Runs::default();
    let changed = |at: &str, c: bool| PastRun {
        started: ts(at),
        manual: false,
        changed: Some(c),
    };
    runs.record(changed("2026-12-02T10:00:00+01:00", true));
    assert_eq!(
        effective_interval(&p, base, &runs),
        Duration::from_secs(900)
    );
    assert_eq!(next(&p, &runs).0, ts("2026-12-02T10:15:00+01:00"));
    runs.record(changed("2026-12-02T10:15:00+01:00", true));
    // 7.5 minutes is under the 10-minute floor.
    assert_eq!(next(&p, &runs).0, ts("2026-12-02T10:25:00+01:00"));
    // A run that could not tell keeps the pace.
    runs.record(PastRun {
        started: ts("2026-12-02T10:25:00+01:00"),
        manual: false,
        changed: None,
    });
    assert_eq!(next(&p, &runs).0, ts("2026-12-02T10:35:00+01:00"));
    runs.record(changed("2026-12-02T10:35:00+01:00", false));
    assert_eq!(next(&p, &runs).0, ts("2026-12-02T11:05:00+01:00"));
    // Not adaptive: changes do not matter.
    let plain = policy_in(BERLIN);
    let mut runs = Runs::default();
    runs.record(changed("2026-12-02T10:00:00+01:00", true));
    assert_eq!(next(&plain, &runs).0, ts("2026-12-02T10:30:00+01:00"));
}

// ---- the policy's text and layers --------------------------------------------------------

#[test]
fn days_parse_ranges_lists_and_wrapping_and_print_back() {
    for (text, shown) in [
        ("mon-fri", "mon-fri"),
        ("Mon,Tue,Wed", "mon-wed"),
        ("mon,wed,fri", "mon,wed,fri"),
        ("sat,sun", "sat,sun"),
        ("fri-mon", "mon,fri-sun"),
        ("monday-friday", "mon-fri"),
        ("none", "none"),
    ] {
        let days = Days::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(days.to_string(), shown, "{text}");
        assert_eq!(Days::parse(shown).unwrap(), days);
    }
    assert!(Days::parse("mon-frx").unwrap_err().contains("\"frx\""));
    assert!(Days::parse("").is_err());
}

#[test]
fn each_bad_value_names_its_field_and_the_reason() {
    for (key, text, needle) in [
        (
            Key::IntervalBusiness,
            "30",
            "\"30\" is not a duration (write it like 90s",
        ),
        (
            Key::IntervalBusiness,
            "10s",
            "shorter than the shortest interval",
        ),
        (Key::IntervalOffHours, "30d", "longer than the longest"),
        (Key::Start, "8am", "not a time like 08:00"),
        (Key::End, "25:00", "not a time of day"),
        (Key::Timezone, "Mars/Olympus", "not a time zone"),
        (Key::Jitter, "80%", "more than 50%"),
        (Key::Enabled, "maybe", "not true or false"),
        (Key::RunTimeout, "5s", "would cancel every run"),
    ] {
        let err = check(key, text).expect_err(text);
        assert!(err.contains(needle), "{key} {text}: {err}");
    }
    assert!(check(Key::IntervalBusiness, "1h30m").is_ok());
    assert!(check(Key::Jitter, "2m").is_ok());
    assert!(check(Key::Timezone, "local").is_ok());
}

#[test]
fn checks_across_fields_name_the_field_to_fix() {
    let mut file = Layer::new();
    file.insert(Key::Start, "09:00".into());
    file.insert(Key::End, "09:00".into());
    file.insert(Key::Adaptive, "true".into());
    file.insert(Key::AdaptiveFloor, "1h".into());
    let errors = Settings {
        file,
        store: Layer::new(),
    }
    .resolve()
    .unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["end", "adaptive_floor"], "{errors:?}");
}

#[test]
fn a_saved_edit_wins_over_the_file_which_wins_over_the_default() {
    let mut file = Layer::new();
    file.insert(Key::IntervalBusiness, "20m".into());
    file.insert(Key::Start, "07:00".into());
    let mut store = Layer::new();
    store.insert(Key::IntervalBusiness, "45m".into());
    let resolved = Settings { file, store }.resolve().unwrap();
    assert_eq!(
        resolved.policy.interval_business,
        Duration::from_secs(45 * 60)
    );
    assert_eq!(
        resolved.values[&Key::IntervalBusiness],
        ("45m".to_string(), Origin::Store)
    );
    assert_eq!(
        resolved.values[&Key::Start],
        ("07:00".to_string(), Origin::Config)
    );
    assert_eq!(
        resolved.values[&Key::End],
        ("18:00".to_string(), Origin::Default)
    );
}

#[test]
fn the_config_table_takes_booleans_strings_and_day_arrays() {
    let table: toml::Table = toml::from_str(
        r#"
        enabled = false
        days = ["mon", "tue"]
        interval_business = "15m"
        "#,
    )
    .unwrap();
    let layer = Settings::file_layer(&table).unwrap();
    assert_eq!(layer[&Key::Enabled], "false");
    assert_eq!(layer[&Key::Days], "mon,tue");
    let bad: toml::Table = toml::from_str("intervall = \"5m\"").unwrap();
    let err = Settings::file_layer(&bad).unwrap_err();
    assert_eq!(err.field, "intervall");
    assert!(err.message.contains("unknown key"));
    let wrong: toml::Table = toml::from_str("interval_business = 30").unwrap();
    let err = Settings::file_layer(&wrong).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("interval_business: expected a duration")
    );
}

#[test]
fn the_built_in_policy_is_the_documented_one() {
    let p = Policy::default();
    assert!(p.enabled);
    assert_eq!(p.interval_business, Duration::from_secs(30 * 60));
    assert_eq!(p.interval_off_hours, Duration::from_secs(2 * 3600));
    assert_eq!(p.days, Days::WEEKDAYS);
    assert_eq!(p.cooldown_after_manual, Duration::from_secs(300));
    assert_eq!(p.jitter, Jitter::Percent(10));
    assert_eq!(p.run_timeout, Duration::from_secs(15 * 60));
    assert!(!p.adaptive);
}
