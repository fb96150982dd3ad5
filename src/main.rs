use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A keyboard-driven cockpit for release and platform engineers.
#[derive(Parser)]
#[command(name = "snaptop", version, about)]
struct Cli {
    /// Config file (default: $XDG_CONFIG_HOME/snaptop/config.toml; none: demo mode).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// TUI theme: default, light, high-contrast, a name in $XDG_CONFIG_HOME/snaptop/themes/,
    /// or a path to a theme file (overrides `[ui] theme`).
    #[arg(long)]
    theme: Option<String>,
    /// Open this Locust run in the Reports tab at start (a prefix such as results/api,
    /// a directory, or a *_stats.csv).
    #[arg(long, value_name = "PREFIX")]
    report: Option<PathBuf>,
    /// Targets (SLA) TOML file checked against every report the Reports tab opens.
    #[arg(long, value_name = "FILE")]
    targets: Option<PathBuf>,
    /// Compare the --report run with this earlier run (a prefix, directory or file).
    #[arg(long, value_name = "BASE_PREFIX", requires = "report")]
    compare: Option<PathBuf>,
    /// Run the engine in this pane: never attach to (or start) a `snaptop serve` daemon.
    #[arg(long)]
    embedded: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run one snapshot headless; progress on stderr.
    Snapshot {
        /// Print the snapshot as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// End the run (partial, exit 2) after this long: 90s, 10m, 1h, or seconds; 0: never.
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
        timeout: std::time::Duration,
    },
    /// Bottleneck report from Locust CSVs (exit 0 pass, 1 gate failed, 2 bad input).
    Report(snaptop::report::cli::ReportArgs),
    /// The auto-snapshot schedule: next run times, the policy in force, edits, pause.
    Schedule(snaptop::schedule::cli::ScheduleArgs),
    /// One engine for the box: the socket every pane attaches to, and opt-in loopback
    /// HTTP (trigger, status, latest, events, schedule, cache, metrics).
    Serve(snaptop::serve::ServeArgs),
    /// Serve the simulated GitHub, TeamCity, Datadog and Jira APIs on 127.0.0.1.
    Sim(snaptop::sim::cli::SimArgs),
    /// The HTTP cache of the configured store: counters, clearing, purging.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Hit rates (each naming its window), counters and sizes per namespace.
    Stats {
        /// Print a JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove every entry of a namespace (github, teamcity, datadog, jira, registry) or all.
    Clear {
        #[arg(value_name = "NAMESPACE|all")]
        namespace: String,
    },
    /// Remove the entries nothing can use any more (idle past max_idle, or expired with
    /// nothing to revalidate them by).
    Purge,
    /// Rewrite the store's files around their live data (sled's files grow and do not
    /// shrink by themselves; this also runs at start when they are far larger).
    Compact,
}

fn main() -> ExitCode {
    // Before any thread starts: the only time the local offset can be read safely.
    snaptop::clock::init_local_offset();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Report(args)) => exit_code(snaptop::report::cli::run(args)),
        Some(Command::Schedule(args)) => {
            exit_code(snaptop::schedule::cli::run(cli.config.as_deref(), args))
        }
        Some(Command::Serve(args)) => exit_code(snaptop::serve::run(cli.config.as_deref(), args)),
        Some(Command::Sim(args)) => match runtime().block_on(snaptop::sim::cli::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        Some(Command::Cache { command }) => cache(cli.config.as_deref(), command),
        Some(Command::Snapshot { json, timeout }) => {
            let limits = snaptop::headless::RunLimits {
                timeout: (!timeout.is_zero()).then_some(timeout),
            };
            snapshot(cli.config.as_deref(), json, limits)
        }
        None => match snaptop::app::run::main(snaptop::app::run::TuiOptions {
            config: cli.config,
            theme: cli.theme,
            report: cli.report,
            targets: cli.targets,
            compare: cli.compare,
            embedded: cli.embedded,
        }) {
            // 128 + the signal's number when a signal ended it.
            Ok(exit) => ExitCode::from(exit.code()),
            Err(e) => fail(&e),
        },
    }
}

fn snapshot(
    config: Option<&std::path::Path>,
    json: bool,
    limits: snaptop::headless::RunLimits,
) -> ExitCode {
    use snaptop::headless;
    let _log = headless::init_file_logging(&snaptop::config::default_state_dir());
    let (config, path) = match headless::load_config(config) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    // A daemon serving this config runs it: one engine (and API budget) per box.
    let attached = runtime().block_on(async {
        match daemon_of(&config, &path).await {
            Some(client) => Some(headless::run_attached(client, json, limits).await),
            None => None,
        }
    });
    if let Some(code) = attached {
        return ExitCode::from(code);
    }
    // Secrets first: a missing variable stops the run before any request is sent.
    let secrets = match config.resolve_secrets() {
        Ok(s) => s,
        Err(e) => return fail(&e.into()),
    };
    for w in &secrets.warnings {
        eprintln!("snaptop: warning: {w}");
    }
    let store = match headless::open_store(&config) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    ExitCode::from(runtime().block_on(headless::run(config, secrets, store, json, limits)))
}

fn cache(config: Option<&std::path::Path>, command: CacheCommand) -> ExitCode {
    use snaptop::headless;
    let command = match command {
        CacheCommand::Stats { json } => headless::CacheCommand::Stats { json },
        CacheCommand::Clear { namespace } => headless::CacheCommand::Clear { namespace },
        CacheCommand::Purge => headless::CacheCommand::Purge,
        CacheCommand::Compact => headless::CacheCommand::Compact,
    };
    // A bad name is told before the store is opened (or found in use).
    if let headless::CacheCommand::Clear { namespace } = &command
        && let Err(e) = headless::parse_clear_target(namespace)
    {
        eprintln!("snaptop: {e}");
        return ExitCode::from(headless::EXIT_USAGE);
    }
    let _log = headless::init_file_logging(&snaptop::config::default_state_dir());
    // The daemon holding the store does the work on its own cache.
    if let Ok((loaded, path)) = headless::load_config(config) {
        let code = runtime().block_on(async {
            let client = daemon_of(&loaded, &path).await?;
            Some(headless::cache_command_on(&client, &command).await)
        });
        if let Some(code) = code {
            return ExitCode::from(code);
        }
    }
    let (store, cache_config) = match headless::cache_target(config) {
        Ok(t) => t,
        Err(e) => return fail(&e),
    };
    let cache = snaptop::cache::HttpCache::open(store.clone(), cache_config);
    let code = headless::cache_command(&cache, &command);
    if let Err(e) = store.flush_blocking() {
        eprintln!("snaptop: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::from(code)
}

/// The daemon serving `config` (at `[serve] socket` or its default socket), if one
/// answers; a refusal or a version mismatch is said and the command goes on without it.
async fn daemon_of(
    config: &snaptop::config::Config,
    path: &std::path::Path,
) -> Option<snaptop::serve::client::Client> {
    use snaptop::serve::client::{Client, ConnectError};
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let socket = snaptop::serve::socket_of(&path, &config.serve);
    if !socket.exists() {
        return None;
    }
    match Client::connect(&socket).await {
        Ok((client, _)) => Some(client),
        Err(ConnectError::Absent(_)) => None,
        Err(e) => {
            eprintln!("snaptop: {e}");
            None
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime")
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("snaptop: {e:#}");
    ExitCode::FAILURE
}

/// `90s`, `10m`, `1h`, `1h30m` or plain seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(format!("{text:?}: use a number of seconds or 90s, 10m, 1h")),
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("{text:?}: a number must come before {c:?}"))?;
        total += n * unit;
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!("{text:?}: give the unit of {number} (s, m or h)"));
    }
    Ok(std::time::Duration::from_secs(total))
}
