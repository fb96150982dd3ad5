use clap::{Parser, Subcommand};

/// A keyboard-driven cockpit for release and platform engineers.
#[derive(Parser)]
#[command(name = "snaptop", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run one snapshot headless.
    Snapshot,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        None | Some(Command::Snapshot) => {
            eprintln!("snaptop: not built yet");
            std::process::exit(1);
        }
    }
}
