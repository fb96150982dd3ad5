//! `snaptop serve`: one process that owns the engine, the scheduler, the HTTP cache and
//! the store (issue 13). So far it serves the loopback HTTP API ([`http`]) with the
//! Prometheus exposition ([`metrics`]); the Unix socket panes attach to comes next.

pub mod http;
pub mod metrics;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use tokio::sync::watch;

use crate::cache::HttpCache;
use crate::engine::scheduler::ScheduleSetup;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve the HTTP API on this address (loopback unless --http-public).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// The bearer token every HTTP request must carry (a file of mode 600).
    #[arg(long, value_name = "FILE")]
    pub http_token_file: Option<PathBuf>,
    /// Allow --http on an address beyond loopback (the token is still required).
    #[arg(long)]
    pub http_public: bool,
}

/// Runs the daemon until SIGINT or SIGTERM; the exit code.
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
    let Some(addr) = args.http else {
        anyhow::bail!(
            "serve: pass --http 127.0.0.1:PORT --http-token-file FILE (the Unix socket panes attach to is not built yet)"
        );
    };
    if !addr.ip().is_loopback() && !args.http_public {
        anyhow::bail!("--http {addr} is beyond loopback: add --http-public to mean it");
    }
    let Some(token_file) = args.http_token_file else {
        anyhow::bail!("--http needs --http-token-file FILE: the API never runs without a token");
    };
    let token = http::read_token(&token_file)?;
    let (config, _) = crate::headless::load_config(config_path)?;
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
    runtime.block_on(async move {
        let cache = HttpCache::open(store.clone(), config.cache.clone());
        let schedule = ScheduleSetup::new(
            config.schedule_layer(),
            &crate::headless::host_name(),
            &config.identity(),
        );
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
        let pump = tokio::spawn(http::pump(events, status_tx, metrics.clone(), feed.clone()));
        let listener = http::bind(addr).await?;
        let bound = listener.local_addr()?;
        eprintln!("snaptop: serving http://{bound} (Ctrl-C stops)");
        let api = http::Api {
            token,
            engine: engine.clone(),
            store: store.clone(),
            cache: cache.clone(),
            metrics,
            status: status_rx,
            feed,
        };
        let result = http::serve(listener, api, shutdown_signal()).await;
        engine.cancel_by("the daemon stopping");
        drop(engine);
        pump.abort();
        cache.checkpoint();
        let _ = store.flush().await;
        result
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
