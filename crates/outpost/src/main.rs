//! The `outpost` binary: command-line parsing and wiring. All logic lives in the library crates.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "outpost", version, about = "Open, self-hostable IoT Hub and IoT Edge runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run and manage the cloud hub.
    Hub,
    /// Run and manage the edge runtime on a device.
    Edge,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Hub | Command::Edge => anyhow::bail!("not yet available"),
    }
}
