//! The `outpost` binary: command-line parsing and wiring. All logic lives in the library crates.
//!
//! `outpost hub serve` runs the cloud hub; the management commands (`device`, `module`, `twin`, `method`,
//! `c2d`, `monitor`, `query`, `route`, `ca`) talk to a running hub over its service REST API with a shared access policy.

mod ca;
mod edge;
mod manage;
mod route;
mod serve;
mod service_client;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: the hub's per-message path allocates a few dozen
/// small objects on one thread and frees many of them on another (connection tasks, the
/// telemetry log's writer), which glibc malloc handles at several hundred instructions per
/// pair. Measured in BENCHMARKS.md (telemetry). Built without transparent huge pages
/// (`no_thp`): with them, each thread's heap held a 2 MiB page and idle RSS rose from 12 to 24 MiB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "outpost",
    version,
    about = "Open, self-hostable IoT Hub and IoT Edge runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the cloud hub.
    #[command(subcommand)]
    Hub(HubCommand),
    /// Set up, run and inspect the IoT Edge runtime; apply deployments to edge devices.
    Edge(edge::EdgeArgs),
    /// Manage device identities.
    Device(manage::DeviceArgs),
    /// Manage module identities.
    Module(manage::ModuleArgs),
    /// Show and update device and module twins.
    Twin(manage::TwinArgs),
    /// Invoke direct methods.
    Method(manage::MethodArgs),
    /// Send cloud-to-device messages.
    C2d(manage::C2dArgs),
    /// Watch what devices send.
    Monitor(manage::MonitorArgs),
    /// Run an IoT Hub query, e.g. `outpost query "SELECT * FROM devices WHERE tags.env = 'prod'"`.
    Query(manage::QueryArgs),
    /// Show, replace, test and count the hub's message routing.
    Route(route::RouteArgs),
    /// Upload, list and delete the CA certificates X.509 CA-signed devices chain to.
    Ca(ca::CaArgs),
}

#[derive(Subcommand)]
enum HubCommand {
    /// Serve devices (MQTT over TLS and WebSocket) and services (HTTPS REST) from one data directory.
    Serve(serve::ServeArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // The whole cause chain on one line, without a backtrace: these are messages for people.
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OUTPOST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Hub(HubCommand::Serve(args)) => serve::run(args).await,
            Command::Edge(args) => edge::edge(args).await,
            Command::Device(command) => manage::device(command).await,
            Command::Module(command) => manage::module(command).await,
            Command::Twin(command) => manage::twin(command).await,
            Command::Method(command) => manage::method(command).await,
            Command::C2d(command) => manage::c2d(command).await,
            Command::Monitor(command) => manage::monitor(command).await,
            Command::Query(args) => manage::query(args).await,
            Command::Route(args) => route::route(args).await,
            Command::Ca(args) => ca::ca(args).await,
        }
    })
}
