use clap::{Parser, Subcommand};

/// filegate: a gRPC file gateway for Filestack.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a Filestack-compatible HTTP API from a local folder.
    Emulator(filegate::emulator::EmulatorArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    filegate::telemetry::init();
    match Cli::parse().command {
        Command::Emulator(args) => filegate::emulator::run(args).await,
    }
}
