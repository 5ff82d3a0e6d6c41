//! Minimal dispatch for `switchyard echo`; the full CLI comes later.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "switchyard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the echo backend (echo-golem compatible test server).
    Echo(switchyard::echo::EchoArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Echo(args) => switchyard::echo::run(args).await,
    }
}
