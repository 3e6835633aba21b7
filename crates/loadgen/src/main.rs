//! The `outpost-loadgen` binary: argument parsing and report printing around the `loadgen` library.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use loadgen::processes::{MosquittoSettings, Programs};
use loadgen::targets::TargetKind;

#[derive(Parser)]
#[command(
    name = "outpost-loadgen",
    version,
    about = "Bounded, loopback-only benchmarks of the Outpost hub against Mosquitto"
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct CommonArgs {
    /// The `outpost` binary [default: next to this program, else from PATH].
    #[arg(long, global = true)]
    outpost_bin: Option<PathBuf>,
    /// The `mosquitto` binary [default: /usr/sbin/mosquitto, else from PATH].
    #[arg(long, global = true)]
    mosquitto_bin: Option<PathBuf>,
    /// The host name the hub is started with (certificate name, SAS resource, MQTT user name).
    #[arg(long, global = true, default_value = "localhost")]
    hub_hostname: String,
}

#[derive(Subcommand)]
enum Command {
    /// QoS 1 telemetry throughput: hub publish→PUBACK (durable) vs Mosquitto publish→subscribe.
    Telemetry(TelemetryArgs),
    /// Memory per idle MQTT-over-TLS connection and idle server RSS. Needs `ulimit -n` above --connections.
    IdleConnections(IdleArgs),
    /// Direct-method round-trip latency through the hub's REST API to a device that answers at once.
    MethodRtt(MethodArgs),
    /// Edge hub QoS 1 throughput, module → route → module and module → $upstream, vs Mosquitto pub/sub.
    EdgeThroughput(EdgeThroughputArgs),
    /// RSS of `outpost edge run`: agent alone, with its edge hub idle, with leaf devices connected.
    /// Needs `ulimit -n` above --leaves.
    EdgeMemory(EdgeMemoryArgs),
    /// Hub outage: messages stored by the edge hub, time to the first delivered after the hub returns, drain rate.
    EdgeRecovery(EdgeRecoveryArgs),
    /// Cold start of `outpost edge run` until every module of a stored process deployment runs.
    EdgeColdStart(EdgeColdStartArgs),
}

#[derive(Args)]
struct EdgeThroughputArgs {
    /// Publishing modules (and Mosquitto publishers), each on its own connection.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// QoS 1 messages each publisher sends per round.
    #[arg(long, default_value_t = 5000)]
    messages_per_publisher: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// Unacknowledged PUBLISHes allowed per connection.
    #[arg(long, default_value_t = 10)]
    window: usize,
    /// Measured rounds per path; medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Messages per publisher in the unrecorded warm-up round of each path.
    #[arg(long, default_value_t = 200)]
    warmup_messages_per_publisher: u64,
    /// A round that takes longer than this fails.
    #[arg(long, default_value_t = 300)]
    round_timeout_secs: u64,
    /// Which paths to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "edge-route,edge-upstream,mosquitto-tcp,mosquitto-tls"
    )]
    targets: Vec<loadgen::edge_throughput::EdgeTarget>,
    /// `--edge-hub-store-max-bytes` for the edge runtime [default: the runtime's].
    #[arg(long)]
    store_max_bytes: Option<u64>,
    /// Connect the sink module with a persistent session (clean session 0) as the SDKs do,
    /// instead of a clean one.
    #[arg(long)]
    persistent_sink: bool,
}

#[derive(Args)]
struct EdgeMemoryArgs {
    /// Process modules in the deployment.
    #[arg(long, default_value_t = 10)]
    modules: usize,
    /// Leaf devices connected to the edge hub.
    #[arg(long, default_value_t = 1000)]
    leaves: usize,
    /// Runs, each with fresh edge runtimes; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 32)]
    connect_concurrency: usize,
    /// Pause before each RSS reading, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    settle_millis: u64,
    /// Read only the agent alone (its resident set, split, and its threads): no edge hub, no leaves.
    #[arg(long)]
    agent_only: bool,
}

#[derive(Args)]
struct EdgeRecoveryArgs {
    /// Messages stored while the hub is down, per run.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Publishing modules.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// Unacknowledged PUBLISHes allowed per connection.
    #[arg(long, default_value_t = 10)]
    window: usize,
    /// Outages; medians are reported.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Seconds the hub stays down after the last message was stored.
    #[arg(long, default_value_t = 5)]
    offline_secs: u64,
    /// `--edge-hub-store-max-bytes` for the edge runtime [default: the runtime's].
    #[arg(long)]
    store_max_bytes: Option<u64>,
    /// A drain that takes longer than this fails.
    #[arg(long, default_value_t = 3600)]
    drain_timeout_secs: u64,
}

#[derive(Args)]
struct EdgeColdStartArgs {
    /// Process modules in the deployment.
    #[arg(long, default_value_t = 5)]
    modules: usize,
    /// Measured cold starts; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// How often `outpost edge list` is polled, in milliseconds.
    #[arg(long, default_value_t = 20)]
    poll_millis: u64,
    /// Run the agent alone (`--no-edge-hub`).
    #[arg(long)]
    no_edge_hub: bool,
}

#[derive(Args)]
struct TelemetryArgs {
    /// Connected devices, each publishing on its own connection.
    #[arg(long, default_value_t = 100)]
    devices: usize,
    /// QoS 1 messages each device publishes per round.
    #[arg(long, default_value_t = 1000)]
    messages_per_device: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// Unacknowledged PUBLISHes allowed per connection.
    #[arg(long, default_value_t = 10)]
    window: usize,
    /// Measured rounds per target; medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Messages per device in the unrecorded warm-up round of each target.
    #[arg(long, default_value_t = 20)]
    warmup_messages_per_device: u64,
    /// A round that takes longer than this fails.
    #[arg(long, default_value_t = 300)]
    round_timeout_secs: u64,
    /// Which servers to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "hub,mosquitto-tcp,mosquitto-tls"
    )]
    targets: Vec<TargetKind>,
    /// Keep Mosquitto's default limit of 1,000 queued messages per client (it may then drop messages
    /// for a slow subscriber, and the round fails).
    #[arg(long)]
    mosquitto_default_queue: bool,
    /// Turn Nagle's algorithm off in Mosquitto (`set_tcp_nodelay true`).
    #[arg(long)]
    mosquitto_tcp_nodelay: bool,
}

#[derive(Args)]
struct IdleArgs {
    /// Idle connections to open per target.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Runs per target, each on a fresh server; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Only complete the TLS handshake, send no MQTT CONNECT (the server may close such connections
    /// after its CONNECT timeout, so keep the run short).
    #[arg(long)]
    handshake_only: bool,
    /// Pause before each RSS reading, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    settle_millis: u64,
    /// Which servers to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "hub,mosquitto-tls,mosquitto-tcp"
    )]
    targets: Vec<TargetKind>,
}

#[derive(Args)]
struct MethodArgs {
    /// Timed invocations per run, one after another.
    #[arg(long, default_value_t = 1000)]
    invocations: usize,
    /// Unrecorded invocations before the first run.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Runs; the median of each percentile is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let programs = Programs::locate(cli.common.outpost_bin, cli.common.mosquitto_bin);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let command_line = std::env::args().collect::<Vec<_>>().join(" ");
    let load_before = load_average();
    let report = runtime.block_on(async {
        match cli.command {
            Command::Telemetry(args) => {
                let options = loadgen::telemetry::TelemetryOptions {
                    devices: args.devices,
                    messages_per_device: args.messages_per_device,
                    payload_bytes: args.payload_bytes,
                    window: args.window,
                    runs: args.runs,
                    warmup_messages_per_device: args.warmup_messages_per_device,
                    round_timeout: Duration::from_secs(args.round_timeout_secs),
                    targets: args.targets,
                    mosquitto: MosquittoSettings {
                        unlimited_queue: !args.mosquitto_default_queue,
                        tcp_nodelay: args.mosquitto_tcp_nodelay,
                    },
                    hub_hostname: cli.common.hub_hostname,
                };
                loadgen::telemetry::run(&options, &programs)
                    .await
                    .map(|report| report.to_markdown())
            }
            Command::IdleConnections(args) => {
                let options = loadgen::idle::IdleOptions {
                    connections: args.connections,
                    runs: args.runs,
                    connect_concurrency: args.connect_concurrency,
                    settle: Duration::from_millis(args.settle_millis),
                    handshake_only: args.handshake_only,
                    targets: args.targets,
                    hub_hostname: cli.common.hub_hostname,
                };
                loadgen::idle::run(&options, &programs)
                    .await
                    .map(|report| report.to_markdown())
            }
            Command::MethodRtt(args) => {
                let options = loadgen::method_rtt::MethodOptions {
                    invocations: args.invocations,
                    warmup: args.warmup,
                    runs: args.runs,
                    hub_hostname: cli.common.hub_hostname,
                };
                loadgen::method_rtt::run(&options, &programs)
                    .await
                    .map(|report| report.to_markdown())
            }
            Command::EdgeThroughput(args) => {
                let options = loadgen::edge_throughput::EdgeThroughputOptions {
                    publishers: args.publishers,
                    messages_per_publisher: args.messages_per_publisher,
                    payload_bytes: args.payload_bytes,
                    window: args.window,
                    runs: args.runs,
                    warmup_messages_per_publisher: args.warmup_messages_per_publisher,
                    round_timeout: Duration::from_secs(args.round_timeout_secs),
                    targets: args.targets,
                    mosquitto: MosquittoSettings {
                        unlimited_queue: true,
                        tcp_nodelay: false,
                    },
                    store_max_bytes: args.store_max_bytes,
                    persistent_sink: args.persistent_sink,
                };
                loadgen::edge_throughput::run(&options, &programs)
                    .await
                    .map(|report| report.to_markdown())
            }
            Command::EdgeMemory(args) => {
                let options = loadgen::edge_memory::EdgeMemoryOptions {
                    modules: args.modules,
                    leaves: args.leaves,
                    runs: args.runs,
                    connect_concurrency: args.connect_concurrency,
                    settle: Duration::from_millis(args.settle_millis),
                    agent_only: args.agent_only,
                };
                loadgen::edge_memory::run(&options, &programs)
                    .await
                    .map(|report| report.to_markdown())
            }
            Command::EdgeRecovery(args) => {
                let options = loadgen::edge_recovery::RecoveryOptions {
                    messages: args.messages,
                    publishers: args.publishers,
                    payload_bytes: args.payload_bytes,
                    window: args.window,
                    runs: args.runs,
                    offline: Duration::from_secs(args.offline_secs),
                    store_max_bytes: args.store_max_bytes,
                    drain_timeout: Duration::from_secs(args.drain_timeout_secs),
                };
                loadgen::edge_recovery::run(&options, &programs)
                    .await
                    .map(|report| report.to_markdown())
            }
            Command::EdgeColdStart(args) => {
                let options = loadgen::edge_cold_start::ColdStartOptions {
                    modules: args.modules,
                    runs: args.runs,
                    poll: Duration::from_millis(args.poll_millis),
                    no_edge_hub: args.no_edge_hub,
                };
                loadgen::edge_cold_start::run(&options, &programs)
                    .await
                    .map(|report| report.to_markdown())
            }
        }
    })?;
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "{report}\nCommand: `{command_line}`\nMachine: {cores} cores; load average (1, 5, 15 min) before {load_before}, after {}",
        load_average()
    );
    Ok(())
}

/// The first three fields of `/proc/loadavg`, to show how busy the machine was around a benchmark.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}
