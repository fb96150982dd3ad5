//! `snaptop schedule`: the next run times, the policy in force and where each value came
//! from, and the same edits as the Schedule tab (checked, saved in the store).
//!
//! The store belongs to one process at a time. While a TUI holds it, `next` and `show`
//! answer from the config file alone and say so on stderr; edits are refused with the
//! reason (make them in the TUI's Schedule tab).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use jiff::Timestamp;
use serde_json::json;

use super::next::{Due, PastRun, Seed};
use super::policy::{Key, Layer, Settings};
use crate::config::{self, ConfigFile};
use crate::engine::scheduler::{EDITS_KEY, PAUSED_KEY, Scheduler, history_of};
use crate::store::{Store, StoreError};

/// Exit codes: 0 done, 2 bad input or the store cannot be used.
pub const EXIT_OK: i32 = 0;
pub const EXIT_BAD: i32 = 2;

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub command: ScheduleCommand,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// The next automatic runs (RFC 3339, in the policy's zone) and the rule of each.
    Next {
        /// Count from this time instead of now (RFC 3339, e.g. 2026-12-07T07:30:00+01:00).
        #[arg(long, value_name = "RFC3339")]
        from: Option<String>,
        /// How many runs.
        #[arg(short = 'n', default_value_t = 10)]
        count: usize,
        /// Without this box's jitter (the nominal times).
        #[arg(long)]
        no_jitter: bool,
        #[arg(long)]
        json: bool,
    },
    /// The policy in force and where each value came from.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Saves one value (checked with the rest), as the Schedule tab does.
    Set {
        key: String,
        value: String,
    },
    /// Drops a saved edit (all of them without KEY): the config file's value applies.
    Reset {
        key: Option<String>,
    },
    /// Holds automatic runs until `resume` (kept across restarts).
    Pause,
    Resume,
}

/// What the command works on.
struct Target {
    settings: Settings,
    paused: bool,
    history: Vec<PastRun>,
    seed: Seed,
    /// The store, when this process could open it.
    store: Option<Store>,
    /// Why there is no store, for a note or an error.
    no_store: Option<String>,
    /// The daemon that holds the store: edits and pause go through it.
    daemon: Option<Daemon>,
}

/// A daemon serving the config, and a runtime to ask it from this blocking CLI.
struct Daemon {
    runtime: tokio::runtime::Runtime,
    client: crate::serve::client::Client,
}

impl Daemon {
    /// The daemon serving `config` at `path`, with its schedule; None when none answers.
    fn find(
        config: &crate::config::Config,
        path: &Path,
    ) -> Option<(Daemon, crate::serve::wire::ScheduleAnswer)> {
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let socket = crate::serve::socket_of(&path, &config.serve);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let found = runtime.block_on(async {
            let (client, _) = crate::serve::client::Client::connect(&socket).await.ok()?;
            let answer = client.schedule().await.ok()?;
            Some((client, answer))
        });
        let (client, answer) = found?;
        Some((Daemon { runtime, client }, answer))
    }
}

pub fn run(config_path: Option<&Path>, args: ScheduleArgs) -> i32 {
    match run_inner(config_path, args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("snaptop: {e:#}");
            EXIT_BAD
        }
    }
}

fn run_inner(config_path: Option<&Path>, args: ScheduleArgs) -> anyhow::Result<i32> {
    let mut cx = open(config_path)?;
    match args.command {
        ScheduleCommand::Next {
            from,
            count,
            no_jitter,
            json,
        } => {
            note(&cx);
            let now = match from {
                Some(t) => t.trim().parse::<Timestamp>().with_context(|| {
                    format!("--from {t:?}: not an RFC 3339 time like 2026-12-07T07:30:00+01:00")
                })?,
                None => Timestamp::now(),
            };
            let seed = if no_jitter { Seed::NONE } else { cx.seed };
            let scheduler = detached(&cx, seed)?;
            let runs = scheduler.preview(now, seed, count);
            print_next(&scheduler, &runs, now, json, no_jitter);
            Ok(EXIT_OK)
        }
        ScheduleCommand::Show { json } => {
            note(&cx);
            show(&cx, json)
        }
        ScheduleCommand::Set { key, value } => {
            let key = parse_key(&key)?;
            let mut edits = cx.settings.store.clone();
            edits.insert(key, value.trim().to_string());
            save(&mut cx, edits)?;
            let (text, origin) = cx.settings.text(key);
            let when = if cx.daemon.is_some() {
                "applied now by the daemon"
            } else {
                "applied from the next start"
            };
            println!("{key} = {text} ({}), {when}", origin.label());
            Ok(EXIT_OK)
        }
        ScheduleCommand::Reset { key } => {
            let mut edits = cx.settings.store.clone();
            match key {
                Some(k) => {
                    let k = parse_key(&k)?;
                    edits.remove(&k);
                }
                None => edits.clear(),
            }
            save(&mut cx, edits)?;
            println!("saved edits: {}", describe_layer(&cx.settings.store));
            Ok(EXIT_OK)
        }
        ScheduleCommand::Pause | ScheduleCommand::Resume => {
            let paused = matches!(args.command, ScheduleCommand::Pause);
            if let Some(d) = &cx.daemon {
                d.runtime
                    .block_on(d.client.pause(paused))
                    .map_err(anyhow::Error::msg)?;
            } else {
                let store = writable(&cx)?;
                store
                    .put_state(PAUSED_KEY, &paused)
                    .and_then(|()| store.flush_blocking())
                    .with_context(|| format!("store {}", store.path().display()))?;
            }
            println!(
                "{}",
                if paused {
                    "automatic snapshots paused (resume with `snaptop schedule resume`)"
                } else {
                    "automatic snapshots resumed"
                }
            );
            Ok(EXIT_OK)
        }
    }
}

fn parse_key(name: &str) -> anyhow::Result<Key> {
    Key::parse(name.trim()).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown schedule key {name:?} (known: {})",
            Key::ALL.map(Key::name).join(", ")
        )
    })
}

fn describe_layer(layer: &Layer) -> String {
    if layer.is_empty() {
        return "none (the config file and the defaults apply)".into();
    }
    layer
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the config (or the demo's defaults) and, when it can, the store.
fn open(config_path: Option<&Path>) -> anyhow::Result<Target> {
    let path: Option<PathBuf> = match config_path {
        Some(p) => Some(p.to_owned()),
        None => config::default_config_path().filter(|p| p.exists()),
    };
    let host = crate::headless::host_name();
    let file = match &path {
        Some(p) => Some(ConfigFile::load(p)?),
        None => None,
    };
    let (layer, identity, sources) = match &file {
        Some(f @ ConfigFile::Sources(c)) => (f.schedule_layer(), c.identity(), Some(c)),
        Some(f @ ConfigFile::UiOnly(_)) => (f.schedule_layer(), "demo".to_string(), None),
        None => (Layer::new(), "demo".to_string(), None),
    };
    let mut cx = Target {
        settings: Settings {
            file: layer,
            store: Layer::new(),
        },
        paused: false,
        history: Vec::new(),
        seed: Seed::for_box(&host, &identity),
        store: None,
        no_store: None,
        daemon: None,
    };
    let Some(config) = sources else {
        cx.no_store = Some(
            "demo mode (no config with sources): nothing is kept, so there are no saved \
             edits and no run history"
                .into(),
        );
        return Ok(cx);
    };
    match crate::headless::open_store(config) {
        Ok(store) => {
            cx.settings.store = store
                .state::<Layer>(EDITS_KEY)
                .with_context(|| format!("store {}", store.path().display()))?
                .unwrap_or_default();
            cx.paused = store
                .state::<bool>(PAUSED_KEY)
                .ok()
                .flatten()
                .unwrap_or(false);
            cx.history = history_of(&store);
            cx.store = Some(store);
        }
        Err(e) => match e.downcast_ref::<StoreError>() {
            Some(StoreError::Locked { .. })
                if let Some(p) = &path
                    && let Some((daemon, answer)) = Daemon::find(config, p) =>
            {
                if let Some(status) = answer.status {
                    cx.settings.store = status.settings.store;
                    cx.paused = status.paused;
                    cx.seed = status.seed;
                }
                cx.history = crate::engine::scheduler::past_runs(&answer.history);
                cx.daemon = Some(daemon);
            }
            Some(StoreError::Locked { path }) => {
                cx.no_store = Some(format!(
                    "store {} is in use by the running snaptop: its saved edits, pause and run \
                     history are not read here (its Schedule tab shows them)",
                    path.display()
                ));
            }
            _ => return Err(e),
        },
    }
    Ok(cx)
}

fn note(cx: &Target) {
    if let Some(why) = &cx.no_store {
        eprintln!("snaptop: note: {why}");
    }
}

fn writable(cx: &Target) -> anyhow::Result<&Store> {
    cx.store.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "cannot save: {}",
            cx.no_store.as_deref().unwrap_or("no store")
        )
    })
}

/// Checks the new edits with the file's values and saves them.
fn save(cx: &mut Target, edits: Layer) -> anyhow::Result<()> {
    let settings = Settings {
        file: cx.settings.file.clone(),
        store: edits,
    };
    if let Err(errors) = settings.resolve() {
        let why: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::bail!("not saved, the policy in force stays: {}", why.join("; "));
    }
    if let Some(d) = &cx.daemon {
        d.runtime
            .block_on(d.client.set_schedule(&settings.store))
            .map_err(anyhow::Error::msg)?;
        cx.settings = settings;
        return Ok(());
    }
    let store = writable(cx)?;
    store
        .put_state(EDITS_KEY, &settings.store)
        .and_then(|()| store.flush_blocking())
        .with_context(|| format!("store {}", store.path().display()))?;
    cx.settings = settings;
    Ok(())
}

fn detached(cx: &Target, seed: Seed) -> anyhow::Result<Scheduler> {
    Scheduler::detached(cx.settings.clone(), cx.paused, cx.history.clone(), seed).map_err(
        |errors| {
            let why: Vec<String> = errors.iter().map(ToString::to_string).collect();
            anyhow::anyhow!(
                "the saved schedule edits no longer check: {} (fix with `snaptop schedule set` or `reset`)",
                why.join("; ")
            )
        },
    )
}

fn local(s: &Scheduler, t: Timestamp) -> String {
    let offset = s.policy().timezone.to_offset(t);
    t.round(jiff::Unit::Second)
        .unwrap_or(t)
        .display_with_offset(offset)
        .to_string()
}

/// "in 12m", "in 1h30m", as the TUI says it.
fn relative(now: Timestamp, t: Timestamp) -> String {
    match t.duration_since(now).try_into() {
        Ok(left) if left > std::time::Duration::ZERO => {
            format!("in {}", crate::ui::text::countdown(left))
        }
        _ => "now".into(),
    }
}

fn print_next(s: &Scheduler, runs: &[Due], now: Timestamp, json: bool, no_jitter: bool) {
    let p = s.policy();
    if json {
        let doc = json!({
            "from": local(s, now),
            "timezone": p.timezone_name,
            "enabled": p.enabled,
            "paused": s.is_paused(),
            "jitter": !no_jitter,
            "runs": runs.iter().map(|d| json!({
                "at": local(s, d.at),
                "rule": d.rule,
                "business_hours": d.business,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return;
    }
    if !p.enabled {
        println!("automatic snapshots are off (enabled = false): manual only");
        return;
    }
    if s.is_paused() {
        println!("automatic snapshots are paused (`snaptop schedule resume`)");
        return;
    }
    println!(
        "next {} automatic snapshots ({}{}):",
        runs.len(),
        p.timezone_name,
        if no_jitter { ", without jitter" } else { "" }
    );
    for d in runs {
        println!(
            "  {}  {:>9}  {}",
            local(s, d.at),
            relative(now, d.at),
            d.rule.label()
        );
    }
}

fn show(cx: &Target, json: bool) -> anyhow::Result<i32> {
    let resolved = cx.settings.resolve();
    let rows: Vec<(Key, String, &'static str)> = Key::ALL
        .into_iter()
        .map(|k| {
            let (text, origin) = cx.settings.text(k);
            (k, text, origin.label())
        })
        .collect();
    if json {
        let values: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v, o)| (k.name().to_string(), json!({ "value": v, "from": o })))
            .collect();
        let doc = json!({
            "values": values,
            "paused": cx.paused,
            "store": cx.store.as_ref().map(|s| s.path().display().to_string()),
            "errors": resolved.as_ref().err().map(|e| e.iter().map(ToString::to_string).collect::<Vec<_>>()),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        println!("schedule policy in force (a saved edit wins over the config file):");
        for (k, v, o) in &rows {
            println!("  {:<22} {:<16} {o}", k.name(), v);
        }
        println!(
            "  {:<22} {}",
            "paused",
            if cx.paused { "yes" } else { "no" }
        );
    }
    match resolved {
        Ok(_) => Ok(EXIT_OK),
        Err(errors) => {
            for e in errors {
                eprintln!("snaptop: saved schedule edit does not check: {e}");
            }
            Ok(EXIT_BAD)
        }
    }
}
