//! `snaptop sim`: serve the simulator until interrupted, after printing a ready-to-use
//! config and the credentials it accepts.

use std::time::Duration;

use super::{Profile, SimOptions};

/// Arguments of `snaptop sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Latency added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests (0.0–1.0) answered with a transient 502/503.
    #[arg(long, default_value_t = 0.0, value_parser = parse_fraction)]
    pub fail_rate: f64,
    /// Size of the generated organisation.
    #[arg(long, value_enum, default_value = "small")]
    pub profile: Profile,
    /// Seed of the generated organisation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write the config here instead of printing it.
    #[arg(long)]
    pub write_config: Option<std::path::PathBuf>,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not between 0.0 and 1.0"))
    }
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let sim = super::start(SimOptions {
        port: args.port,
        latency: Duration::from_millis(args.latency_ms),
        fail_rate: args.fail_rate,
        profile: args.profile,
        seed: args.seed,
        ..SimOptions::default()
    })
    .await?;
    match &args.write_config {
        Some(path) => {
            // Works as written: its directory is made, and the credentials the simulator
            // accepts go to files beside it (0600) that the config names.
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sim".into());
            let secrets = dir.join(format!("{stem}-secrets"));
            let config = sim.config_toml_with_token_files(&secrets).map_err(|e| {
                anyhow::anyhow!("{}: cannot write the token files: {e}", secrets.display())
            })?;
            std::fs::write(path, config)
                .map_err(|e| anyhow::anyhow!("{}: cannot write config: {e}", path.display()))?;
            eprintln!(
                "snaptop sim: config written to {} (tokens in {}); then: snaptop snapshot --config {}",
                path.display(),
                secrets.display(),
                path.display()
            );
        }
        None => {
            println!("# snaptop config for the simulator\n{}", sim.config_toml());
            eprintln!(
                "snaptop sim: set the credentials it accepts, then run `snaptop --config FILE`:\n{}",
                sim.env_exports()
            );
        }
    }
    eprintln!(
        "snaptop sim: serving GitHub, TeamCity, Datadog, Jira and a registry on {} ({:?} profile); Ctrl-C stops it.",
        sim.base_url(),
        args.profile,
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    sim.shutdown().await;
    Ok(())
}
