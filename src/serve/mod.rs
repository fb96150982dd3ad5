//! `snaptop serve`: one process that owns the engine, the scheduler, the HTTP cache and
//! the store, and serves them on a Unix socket every pane of the config attaches to
//! ([`socket`], [`client`]), and, opt-in, on loopback HTTP for CI jobs and webhooks
//! ([`http`], with the Prometheus exposition of [`metrics`]).

pub mod client;
pub mod daemon;
pub mod http;
pub mod metrics;
pub mod socket;
pub mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cache::HttpCache;
use crate::engine::scheduler::ScheduleSetup;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The socket panes attach to (default: one per config under
    /// $XDG_RUNTIME_DIR/snaptop/, or `[serve] socket`).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Team mode: the socket is 0660 for this group, whose members may attach.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// Also serve the HTTP API on this address (loopback unless --http-public).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// The bearer token every HTTP request must carry (a file of mode 600).
    #[arg(long, value_name = "FILE")]
    pub http_token_file: Option<PathBuf>,
    /// Allow --http on an address beyond loopback (the token is still required).
    #[arg(long)]
    pub http_public: bool,
    /// Started by a pane: end once no pane has been attached for a while.
    #[arg(long, hide = true)]
    pub auto: bool,
}

/// The socket a config's daemon serves: `[serve] socket`, else the default one.
pub fn socket_of(config_path: &Path, serve: &crate::config::ServeConfig) -> PathBuf {
    serve
        .socket
        .clone()
        .unwrap_or_else(|| socket::default_socket(config_path))
}

/// Runs the daemon until SIGINT or SIGTERM (or, started by a pane, until no pane has
/// been attached for [`daemon::AUTO_LINGER`]); the exit code.
pub fn run(config: Option<&Path>, args: ServeArgs) -> i32 {
    match run_inner(config, args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("snaptop: {e:#}");
            2
        }
    }
}

fn run_inner(config_path: Option<&Path>, args: ServeArgs) -> anyhow::Result<()> {
    let http = match args.http {
        Some(addr) => {
            if !addr.ip().is_loopback() && !args.http_public {
                anyhow::bail!("--http {addr} is beyond loopback: add --http-public to mean it");
            }
            let Some(token_file) = &args.http_token_file else {
                anyhow::bail!(
                    "--http needs --http-token-file FILE: the API never runs without a token"
                );
            };
            Some((addr, http::read_token(token_file)?))
        }
        None => None,
    };
    let (config, path) = crate::headless::load_config(config_path)?;
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let socket_path = args
        .socket
        .clone()
        .unwrap_or_else(|| socket_of(&path, &config.serve));
    let group = args.group.clone().or(config.serve.group.clone());
    let access = match &group {
        Some(name) => socket::Access::team(name)?,
        None => socket::Access::owner_only(),
    };
    // The per-user directory of default sockets is made (or checked) here; a socket
    // path given by hand or by `[serve] socket` lives where its owner put it.
    if socket_path == socket::default_socket(&path)
        && let Some(dir) = socket_path.parent()
    {
        socket::prepare_private_dir(dir)?;
    }
    // Said before the store is found locked by it.
    if std::os::unix::net::UnixStream::connect(&socket_path).is_ok() {
        anyhow::bail!(
            "a snaptop daemon already serves {} at {} (`snaptop` attaches to it)",
            path.display(),
            socket_path.display()
        );
    }
    let secrets = config.resolve_secrets()?;
    for w in &secrets.warnings {
        eprintln!("snaptop: warning: {w}");
    }
    let _log = crate::headless::init_file_logging(&crate::config::default_state_dir());
    let store = crate::headless::open_store(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let hello = wire::Hello::ours(
        path.display().to_string(),
        config.identity(),
        time::OffsetDateTime::now_utc(),
    );
    runtime.block_on(async move {
        let (bound, listener, previous) = socket::bind(&socket_path, &access).await?;
        if previous == socket::Previous::Stale {
            eprintln!(
                "snaptop: replaced a stale socket at {} (its daemon had been killed)",
                socket_path.display()
            );
        }
        let tcp = match &http {
            Some((addr, _)) => Some(http::bind(*addr).await?),
            None => None,
        };
        let cache = HttpCache::open(store.clone(), config.cache.clone());
        let schedule = ScheduleSetup::new(
            config.schedule_layer(),
            &crate::headless::host_name(),
            &config.identity(),
        );
        let live = Arc::new(std::sync::Mutex::new(http::Live::from_store(&store)));
        let (engine, events) = crate::engine::spawn_scheduled(
            Arc::new(config),
            secrets,
            store.clone(),
            cache.clone(),
            schedule,
        );
        let metrics = Arc::new(metrics::Metrics::new());
        let (status_tx, status_rx) = watch::channel(http::Status {
            state: "idle",
            ..http::Status::default()
        });
        let (feed, _) = tokio::sync::broadcast::channel(http::FEED_BUFFER);
        let pump = tokio::spawn(http::pump(
            events,
            status_tx,
            metrics.clone(),
            live.clone(),
            feed.clone(),
        ));
        let shared = http::Shared::new(http::Api {
            hello,
            engine: engine.clone(),
            store: store.clone(),
            cache: cache.clone(),
            metrics,
            status: status_rx.clone(),
            live,
            feed,
        });
        let stop = CancellationToken::new();
        let mut serving = format!("serving {}", socket_path.display());
        if let Some(listener) = &tcp {
            serving.push_str(&format!(" and http://{}", listener.local_addr()?));
        }
        match &group {
            Some(g) => serving.push_str(&format!(" for group {g}")),
            None => serving.push_str(" for this user"),
        }
        eprintln!("snaptop: {serving} (Ctrl-C stops)");
        tracing::info!(pid = std::process::id(), "{serving}");
        if args.auto {
            let stop = stop.clone();
            let shared = shared.clone();
            let linger = linger_time();
            tokio::spawn(async move {
                until_unused(&shared, status_rx, linger).await;
                tracing::info!("no pane attached for {}s: stopping", linger.as_secs());
                stop.cancel();
            });
        }
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                stop.cancel();
            });
        }
        let on_unix = http::serve_unix(
            listener,
            shared.clone(),
            access,
            stop.clone().cancelled_owned(),
        );
        let result = match (tcp, http) {
            (Some(listener), Some((_, token))) => {
                let on_tcp = http::serve_tcp(
                    listener,
                    shared.clone(),
                    token,
                    stop.clone().cancelled_owned(),
                );
                let (a, b) = tokio::join!(on_unix, on_tcp);
                a.and(b)
            }
            _ => on_unix.await,
        };
        // New panes find no socket (they start a daemon of their own) while this one
        // winds down.
        bound.remove();
        engine.cancel_by("the daemon stopping");
        drop(engine);
        // The run's partial result commits before the store is flushed.
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            let mut status = shared.status_watch();
            let _ = status.wait_for(|s| s.state != "running").await;
        })
        .await;
        pump.abort();
        cache.checkpoint();
        let _ = store.flush().await;
        tracing::info!("daemon stopped");
        result
    })
}

/// `SNAPTOP_DAEMON_LINGER_SECS` (tests), else [`daemon::AUTO_LINGER`].
fn linger_time() -> Duration {
    std::env::var("SNAPTOP_DAEMON_LINGER_SECS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map_or(daemon::AUTO_LINGER, Duration::from_secs)
}

/// Returns once no pane has been attached for `linger` and no run is going.
async fn until_unused(
    shared: &http::Shared,
    mut status: watch::Receiver<http::Status>,
    linger: Duration,
) {
    let mut attached = shared.attached();
    loop {
        let _ = attached.wait_for(|n| *n == 0).await;
        tokio::select! {
            () = tokio::time::sleep(linger) => {}
            _ = attached.wait_for(|n| *n > 0) => continue,
        }
        let _ = status.wait_for(|s| s.state != "running").await;
        if *attached.borrow() == 0 {
            return;
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        _ = hup.recv() => {}
    }
}
