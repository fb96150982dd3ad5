//! `snaptop sim`: serve the simulator until interrupted.

/// Arguments of `snaptop sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

/// Serves until Ctrl-C.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    anyhow::bail!("the simulator is not built yet (port {})", args.port)
}
