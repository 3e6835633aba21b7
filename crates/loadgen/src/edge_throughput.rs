//! Edge hub throughput at QoS 1 (issue 6): modules publish to an output, the edge hub routes every
//! message, writes it durably to its store before PUBACK, and delivers it either to another module's
//! input (module → route → module) or to the cloud hub (module → `$upstream`). The reference is
//! Mosquitto doing QoS 1 publish→subscribe of the same messages from the same number of publishers.
//!
//! The clock runs from the start signal until the last message arrived where it goes: at the sink
//! module's subscription, in the hub's event stream (`GET /events`), or at Mosquitto's subscriber.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use tokio::task::JoinHandle;

use crate::edge::{
    EDGE_DEVICE, EDGE_LAB_GATEWAY_IP, EDGE_LAB_HUB_IP, EdgeLab, EdgeRuntime, deployment,
    inputs_filter, module_route, output_topic, sleeping_module, upstream_route,
};
use crate::events::start_event_counter;
use crate::mqtt::{self, ConnectOptions, ReadyPublishers};
use crate::processes::{MosquittoSettings, Programs};
use crate::stats::{RunSummary, rate_per_second, ratio};
use crate::targets::{KEEP_ALIVE_SECONDS, RunningTarget, TargetKind, process_cpu_time};
use crate::transport::Endpoint;

/// The module every routed message goes to.
const SINK: &str = "sink";

/// One path under comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum EdgeTarget {
    /// Modules `src{i}` → route → module `sink` on the edge hub.
    EdgeRoute,
    /// Modules `up{i}` → `$upstream` → the cloud hub's event stream.
    EdgeUpstream,
    /// Mosquitto publish→subscribe over plain TCP (Debian's default listener).
    MosquittoTcp,
    /// Mosquitto publish→subscribe over TLS.
    MosquittoTls,
}

impl EdgeTarget {
    /// A short label for reports.
    pub fn label(self) -> &'static str {
        match self {
            EdgeTarget::EdgeRoute => "edge hub: module → route → module (TLS)",
            EdgeTarget::EdgeUpstream => "edge hub: module → $upstream → hub (TLS)",
            EdgeTarget::MosquittoTcp => "mosquitto (TCP) pub→sub",
            EdgeTarget::MosquittoTls => "mosquitto (TLS) pub→sub",
        }
    }

    fn is_edge(self) -> bool {
        matches!(self, EdgeTarget::EdgeRoute | EdgeTarget::EdgeUpstream)
    }
}

/// What the edge throughput benchmark does.
#[derive(Clone, Debug)]
pub struct EdgeThroughputOptions {
    /// Publishing modules (or Mosquitto clients), each on its own connection.
    pub publishers: usize,
    pub messages_per_publisher: u64,
    pub payload_bytes: usize,
    /// Unacknowledged PUBLISHes allowed per connection.
    pub window: usize,
    pub runs: usize,
    pub warmup_messages_per_publisher: u64,
    pub round_timeout: Duration,
    pub targets: Vec<EdgeTarget>,
    pub mosquitto: MosquittoSettings,
    /// `--edge-hub-store-max-bytes` for the edge runtime.
    pub store_max_bytes: Option<u64>,
    /// The sink module connects with a persistent session (clean session 0), as the SDKs do.
    pub persistent_sink: bool,
}

/// What one round measured.
#[derive(Clone, Copy, Debug)]
pub struct EdgeRound {
    pub messages: u64,
    /// From the start signal to the last PUBACK (durable in the edge store, for the edge hub).
    pub to_last_acknowledgement: Duration,
    /// From the start signal until the last message arrived where it goes.
    pub to_last_delivery: Duration,
    /// CPU time of the server process (the edge runtime, or Mosquitto) over the round.
    pub server_cpu: Duration,
}

impl EdgeRound {
    /// Messages per second delivered end to end.
    pub fn delivered_rate(&self) -> f64 {
        rate_per_second(self.messages, self.to_last_delivery)
    }

    /// Messages per second acknowledged to the publishers.
    pub fn acknowledged_rate(&self) -> f64 {
        rate_per_second(self.messages, self.to_last_acknowledgement)
    }

    /// Server CPU per message, in microseconds.
    pub fn server_cpu_micros_per_message(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.messages as f64
    }
}

/// Every round of every target.
pub struct EdgeThroughputReport {
    pub options: EdgeThroughputOptions,
    pub rounds: Vec<(EdgeTarget, Vec<EdgeRound>)>,
}

/// A started target with its publishers and where deliveries are counted.
struct Prepared {
    target: EdgeTarget,
    endpoint: Endpoint,
    publishers: Vec<(ConnectOptions, String)>,
    server_pid: u32,
    delivery: Delivery,
}

enum Delivery {
    Subscriber {
        options: ConnectOptions,
        filter: String,
    },
    HubEvents {
        https_address: std::net::SocketAddr,
        ca_pem: String,
        owner_connection_string: String,
    },
}

/// Runs the benchmark: one edge runtime serves both edge targets, each Mosquitto target is its own
/// server; the order of the targets rotates from round to round.
pub async fn run(
    options: &EdgeThroughputOptions,
    programs: &Programs,
) -> anyhow::Result<EdgeThroughputReport> {
    if options.publishers == 0 || options.messages_per_publisher == 0 || options.runs == 0 {
        bail!("--publishers, --messages-per-publisher and --runs must be at least 1");
    }
    let mut lab = None;
    let mut runtime = None;
    let mut mosquittos = Vec::new();
    let mut prepared = Vec::new();
    if options.targets.iter().any(|target| target.is_edge()) {
        let (edge_lab, edge_runtime, edge_targets) = start_edge(options, programs).await?;
        lab = Some(edge_lab);
        runtime = Some(edge_runtime);
        prepared.extend(edge_targets);
    }
    for target in &options.targets {
        let kind = match target {
            EdgeTarget::MosquittoTcp => TargetKind::MosquittoTcp,
            EdgeTarget::MosquittoTls => TargetKind::MosquittoTls,
            _ => continue,
        };
        let running = RunningTarget::start(kind, programs, "localhost", &options.mosquitto).await?;
        let publishers = (0..options.publishers)
            .map(|index| {
                (
                    anonymous(&format!("bench-src{index}")),
                    format!("bench/src{index}"),
                )
            })
            .collect();
        prepared.push(Prepared {
            target: *target,
            endpoint: running.endpoint.clone(),
            publishers,
            server_pid: running.process().pid(),
            delivery: Delivery::Subscriber {
                options: anonymous("bench-subscriber"),
                filter: "#".to_owned(),
            },
        });
        mosquittos.push(running);
    }
    let payload = Bytes::from(vec![b'x'; options.payload_bytes]);
    if options.warmup_messages_per_publisher > 0 {
        for target in &prepared {
            eprintln!("warming up {}", target.target.label());
            run_round(
                target,
                &payload,
                options.warmup_messages_per_publisher,
                options,
            )
            .await
            .with_context(|| format!("warm-up of {}", target.target.label()))?;
        }
    }
    let mut rounds: Vec<(EdgeTarget, Vec<EdgeRound>)> = prepared
        .iter()
        .map(|target| (target.target, Vec::new()))
        .collect();
    for round in 0..options.runs {
        for offset in 0..prepared.len() {
            let index = (round + offset) % prepared.len();
            let target = &prepared[index];
            let measurement = run_round(target, &payload, options.messages_per_publisher, options)
                .await
                .with_context(|| format!("round {} of {}", round + 1, target.target.label()))?;
            eprintln!(
                "round {}/{} {}: {:.0} msg/s delivered (PUBACK {:.0} msg/s, server CPU {:.1} µs/msg)",
                round + 1,
                options.runs,
                target.target.label(),
                measurement.delivered_rate(),
                measurement.acknowledged_rate(),
                measurement.server_cpu_micros_per_message()
            );
            rounds[index].1.push(measurement);
        }
    }
    if let Some(runtime) = runtime.as_mut() {
        runtime.stop().await?;
    }
    drop(lab);
    for mosquitto in mosquittos {
        mosquitto.stop().await;
    }
    Ok(EdgeThroughputReport {
        options: options.clone(),
        rounds,
    })
}

/// A Mosquitto client that connects anonymously.
fn anonymous(client_id: &str) -> ConnectOptions {
    ConnectOptions {
        client_id: client_id.to_owned(),
        username: None,
        password: None,
        clean_session: true,
        keep_alive_seconds: KEEP_ALIVE_SECONDS,
    }
}

/// Starts the hub and an edge runtime whose deployment has the publishing modules, the sink and a
/// route per publisher, and waits until the edge hub applied the routes.
async fn start_edge(
    options: &EdgeThroughputOptions,
    programs: &Programs,
) -> anyhow::Result<(EdgeLab, EdgeRuntime, Vec<Prepared>)> {
    let mut lab = EdgeLab::start(programs, EDGE_LAB_HUB_IP, EDGE_LAB_GATEWAY_IP).await?;
    let mut modules = BTreeMap::from([(SINK.to_owned(), sleeping_module())]);
    let mut routes = BTreeMap::new();
    for index in 0..options.publishers {
        let source = format!("src{index}");
        let up = format!("up{index}");
        routes.insert(source.clone(), module_route(&source, SINK, "in"));
        routes.insert(up.clone(), upstream_route(&up));
        modules.insert(source, sleeping_module());
        modules.insert(up, sleeping_module());
    }
    let runtime = lab
        .deploy_and_start(&deployment(&modules, &routes), options.store_max_bytes)
        .await?;
    let endpoint = runtime.gateway_endpoint()?;
    let server_pid = runtime.process()?.pid();
    eprintln!(
        "edge runtime (pid {server_pid}) with its edge hub at {}, hub at {}",
        endpoint.address, lab.hub.mqtt_address
    );
    let mut prepared = Vec::new();
    for target in &options.targets {
        let prefix = match target {
            EdgeTarget::EdgeRoute => "src",
            EdgeTarget::EdgeUpstream => "up",
            _ => continue,
        };
        let mut publishers = Vec::new();
        for index in 0..options.publishers {
            let module = format!("{prefix}{index}");
            publishers.push((
                lab.module_client(&module).await?,
                output_topic(EDGE_DEVICE, &module, "out"),
            ));
        }
        let delivery = if *target == EdgeTarget::EdgeRoute {
            Delivery::Subscriber {
                // A clean session: with a persistent one the edge hub redelivers acknowledged
                // messages after a reconnect (see BENCHMARKS.md).
                options: ConnectOptions {
                    clean_session: !options.persistent_sink,
                    ..lab.module_client(SINK).await?
                },
                filter: inputs_filter(EDGE_DEVICE, SINK),
            }
        } else {
            Delivery::HubEvents {
                https_address: lab.hub.https_address,
                ca_pem: lab.hub.ca_pem.clone(),
                owner_connection_string: lab.hub.owner_connection_string.clone(),
            }
        };
        prepared.push(Prepared {
            target: *target,
            endpoint: endpoint.clone(),
            publishers,
            server_pid,
            delivery,
        });
    }
    Ok((lab, runtime, prepared))
}

/// Starts counting deliveries of `expected` messages; the task ends with the last one's arrival.
async fn start_delivery(
    target: &Prepared,
    expected: u64,
) -> anyhow::Result<JoinHandle<anyhow::Result<Instant>>> {
    match &target.delivery {
        Delivery::Subscriber { options, filter } => {
            mqtt::start_counting_subscriber(&target.endpoint, options, filter, expected, true).await
        }
        Delivery::HubEvents {
            https_address,
            ca_pem,
            owner_connection_string,
        } => {
            let counter = start_event_counter(
                *https_address,
                ca_pem,
                owner_connection_string,
                &format!("from=now&deviceId={EDGE_DEVICE}"),
                0,
                expected,
            )
            .await?;
            Ok(tokio::spawn(async move {
                Ok(counter
                    .await
                    .context("the event counter failed")??
                    .last_read)
            }))
        }
    }
}

/// One round: start counting, connect every publisher, start together, wait for every PUBACK and
/// every delivery.
async fn run_round(
    target: &Prepared,
    payload: &Bytes,
    messages_per_publisher: u64,
    options: &EdgeThroughputOptions,
) -> anyhow::Result<EdgeRound> {
    let total = messages_per_publisher * target.publishers.len() as u64;
    let delivery = start_delivery(target, total).await?;
    let publishers = ReadyPublishers::connect(
        &target.endpoint,
        &target.publishers,
        payload,
        messages_per_publisher,
        options.window,
        true,
    )
    .await?;
    let cpu_before = process_cpu_time(target.server_pid)?;
    let started = publishers.start();
    let waiting = async {
        let (acknowledged, last_acknowledgement) = publishers.finish(started).await?;
        let delivered = delivery.await.context("the delivery counter failed")??;
        Ok::<_, anyhow::Error>((acknowledged, last_acknowledgement, delivered))
    };
    let (acknowledged, last_acknowledgement, delivered) =
        tokio::time::timeout(options.round_timeout, waiting)
            .await
            .map_err(|_| {
                anyhow!(
                    "the round did not finish within {:?}",
                    options.round_timeout
                )
            })??;
    let server_cpu = process_cpu_time(target.server_pid)?.saturating_sub(cpu_before);
    if acknowledged != total {
        bail!("{acknowledged} of {total} messages were acknowledged");
    }
    Ok(EdgeRound {
        messages: total,
        to_last_acknowledgement: last_acknowledgement - started,
        to_last_delivery: delivered.max(last_acknowledgement) - started,
        server_cpu,
    })
}

impl EdgeThroughputReport {
    /// The report as Markdown: one row per target, then the ratios against Mosquitto.
    pub fn to_markdown(&self) -> String {
        let options = &self.options;
        let total = options.messages_per_publisher * options.publishers as u64;
        let mut text = format!(
            "Edge throughput: {} publishers x {} QoS 1 messages of {} bytes = {total} messages per round, \
             window {} per connection, {} rounds after a warm-up of {} messages per publisher.\n\n",
            options.publishers,
            options.messages_per_publisher,
            options.payload_bytes,
            options.window,
            options.runs,
            options.warmup_messages_per_publisher,
        );
        text.push_str("| path | msg/s delivered (median) | range | msg/s to last PUBACK | server CPU µs/msg |\n");
        text.push_str("|---|---|---|---|---|\n");
        let mut medians = BTreeMap::new();
        for (target, rounds) in &self.rounds {
            let delivered =
                RunSummary::from_samples(rounds.iter().map(EdgeRound::delivered_rate).collect());
            let acknowledged =
                RunSummary::from_samples(rounds.iter().map(EdgeRound::acknowledged_rate).collect());
            let cpu = RunSummary::from_samples(
                rounds
                    .iter()
                    .map(EdgeRound::server_cpu_micros_per_message)
                    .collect(),
            );
            let (Some(delivered), Some(acknowledged), Some(cpu)) = (delivered, acknowledged, cpu)
            else {
                continue;
            };
            medians.insert(*target, delivered.median);
            text.push_str(&format!(
                "| {} | **{:.0}** | {:.0}–{:.0} | {:.0} | {:.1} |\n",
                target.label(),
                delivered.median,
                delivered.minimum,
                delivered.maximum,
                acknowledged.median,
                cpu.median
            ));
        }
        text.push('\n');
        for edge in [EdgeTarget::EdgeRoute, EdgeTarget::EdgeUpstream] {
            let Some(edge_rate) = medians.get(&edge) else {
                continue;
            };
            let mut comparisons = vec![format!(
                "{} / Azure edgeHub's ~1,000 msg/s = {}",
                edge.label(),
                ratio(*edge_rate, 1000.0)
            )];
            for reference in [EdgeTarget::MosquittoTcp, EdgeTarget::MosquittoTls] {
                if let Some(reference_rate) = medians.get(&reference) {
                    comparisons.push(format!(
                        "/ {} = **{}**",
                        reference.label(),
                        ratio(*edge_rate, *reference_rate)
                    ));
                }
            }
            text.push_str(&format!("Ratio {}\n\n", comparisons.join("; ")));
        }
        text
    }
}
