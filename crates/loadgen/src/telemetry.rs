//! Telemetry throughput: N devices each publish M QoS 1 messages with a bounded in-flight window.
//!
//! For the hub the clock runs from the first PUBLISH to the last PUBACK, and the hub acknowledges a
//! message only once it is durable in its telemetry log. For Mosquitto it runs from the first PUBLISH
//! until a QoS 1 subscriber on `#` holds every message (publish→subscribe); the time to the last
//! PUBACK is recorded too. Every round starts with all devices connected and waiting on one signal.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;

use crate::mqtt::{self, ConnectOptions, ReadyPublishers};
use crate::processes::{MosquittoSettings, Programs};
use crate::service::device_credentials;
use crate::stats::{RunSummary, rate_per_second, ratio};
use crate::targets::{KEEP_ALIVE_SECONDS, RunningTarget, TargetKind, process_cpu_time};
use crate::transport::Endpoint;

/// What the telemetry benchmark does.
#[derive(Clone, Debug)]
pub struct TelemetryOptions {
    pub devices: usize,
    pub messages_per_device: u64,
    pub payload_bytes: usize,
    pub window: usize,
    pub runs: usize,
    pub warmup_messages_per_device: u64,
    pub round_timeout: Duration,
    pub targets: Vec<TargetKind>,
    pub mosquitto: MosquittoSettings,
    pub hub_hostname: String,
}

/// What one round measured on one target.
#[derive(Clone, Copy, Debug)]
pub struct RoundMeasurement {
    /// From the start signal to the last PUBACK any device received.
    pub to_last_acknowledgement: Duration,
    /// From the start signal until the subscriber had every message (Mosquitto only).
    pub to_last_delivery: Option<Duration>,
    /// CPU time the server used during the round.
    pub server_cpu: Duration,
    pub messages: u64,
}

impl RoundMeasurement {
    /// The headline rate: publish→subscribe where a subscriber ran, publish→PUBACK otherwise.
    pub fn headline_rate(&self) -> f64 {
        rate_per_second(
            self.messages,
            self.to_last_delivery
                .unwrap_or(self.to_last_acknowledgement),
        )
    }

    pub fn acknowledged_rate(&self) -> f64 {
        rate_per_second(self.messages, self.to_last_acknowledgement)
    }

    pub fn server_cpu_micros_per_message(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.messages as f64
    }
}

/// Every round of every target.
pub struct TelemetryReport {
    pub options: TelemetryOptions,
    pub rounds: Vec<(TargetKind, Vec<RoundMeasurement>)>,
    /// The hub's data directory size after every round, and the messages it had acknowledged by then
    /// (warm-up included): a check that what was acknowledged was written.
    pub hub_storage: Option<(u64, u64)>,
}

/// Starts each target once, warms it up, then runs `runs` rounds, rotating the order of the targets
/// from round to round so that a noisy moment does not always hit the same one.
pub async fn run(
    options: &TelemetryOptions,
    programs: &Programs,
) -> anyhow::Result<TelemetryReport> {
    if options.devices == 0 || options.messages_per_device == 0 || options.runs == 0 {
        bail!("--devices, --messages-per-device and --runs must be at least 1");
    }
    let devices = device_credentials("bench-telemetry-", options.devices)?;
    let mut running = Vec::new();
    for kind in &options.targets {
        let target =
            RunningTarget::start(*kind, programs, &options.hub_hostname, &options.mosquitto)
                .await?;
        target.register_devices(&devices).await?;
        let clients = devices
            .iter()
            .map(|device| target.connect_options(device))
            .collect::<anyhow::Result<Vec<_>>>()?;
        eprintln!(
            "started {} (pid {}) at {}",
            kind.label(),
            target.process().pid(),
            target.endpoint.address
        );
        running.push((target, clients));
    }
    let payload = Bytes::from(vec![b'x'; options.payload_bytes]);
    if options.warmup_messages_per_device > 0 {
        for (target, clients) in &mut running {
            eprintln!("warming up {}", target.kind.label());
            run_round(
                target,
                clients,
                &payload,
                options.warmup_messages_per_device,
                options,
            )
            .await?;
        }
    }
    let mut rounds: Vec<(TargetKind, Vec<RoundMeasurement>)> = running
        .iter()
        .map(|(target, _)| (target.kind, Vec::new()))
        .collect();
    for round in 0..options.runs {
        for offset in 0..running.len() {
            let index = (round + offset) % running.len();
            let (target, clients) = &mut running[index];
            let measurement = run_round(
                target,
                clients,
                &payload,
                options.messages_per_device,
                options,
            )
            .await
            .with_context(|| format!("round {} on {}", round + 1, target.kind.label()))?;
            eprintln!(
                "round {}/{} {}: {:.0} msg/s (PUBACK {:.0} msg/s, server CPU {:.1} µs/msg)",
                round + 1,
                options.runs,
                target.kind.label(),
                measurement.headline_rate(),
                measurement.acknowledged_rate(),
                measurement.server_cpu_micros_per_message()
            );
            rounds[index].1.push(measurement);
        }
    }
    let mut hub_storage = None;
    for (target, _) in running {
        if let Some(hub) = target.hub() {
            let messages = (options.warmup_messages_per_device
                + options.messages_per_device * options.runs as u64)
                * options.devices as u64;
            hub_storage = Some((hub.data_dir_bytes()?, messages));
        }
        target.stop().await;
    }
    Ok(TelemetryReport {
        options: options.clone(),
        rounds,
        hub_storage,
    })
}

/// One round on one target: connect everyone, start together, wait for every acknowledgement (and for
/// the subscriber, on Mosquitto), disconnect.
async fn run_round(
    target: &mut RunningTarget,
    clients: &[ConnectOptions],
    payload: &Bytes,
    messages_per_device: u64,
    options: &TelemetryOptions,
) -> anyhow::Result<RoundMeasurement> {
    target.process_mut().ensure_running()?;
    let total = messages_per_device * clients.len() as u64;
    let subscriber = if target.kind == TargetKind::Hub {
        None
    } else {
        Some(start_subscriber(&target.endpoint, total).await?)
    };
    let publishers: Vec<(ConnectOptions, String)> = clients
        .iter()
        .map(|client| {
            (
                client.clone(),
                format!("devices/{}/messages/events/", client.client_id),
            )
        })
        .collect();
    let publishers = ReadyPublishers::connect(
        &target.endpoint,
        &publishers,
        payload,
        messages_per_device,
        options.window,
        false,
    )
    .await?;
    let cpu_before = process_cpu_time(target.process().pid())?;
    let started = publishers.start();
    let waiting = async {
        let (acknowledged, last_acknowledgement) = publishers.finish(started).await?;
        let last_delivery = match subscriber {
            Some(subscriber) => Some(subscriber.await.context("the subscriber task failed")??),
            None => None,
        };
        Ok::<_, anyhow::Error>((acknowledged, last_acknowledgement, last_delivery))
    };
    let (acknowledged, last_acknowledgement, last_delivery) =
        tokio::time::timeout(options.round_timeout, waiting)
            .await
            .map_err(|_| {
                anyhow!(
                    "the round did not finish within {:?}",
                    options.round_timeout
                )
            })??;
    let server_cpu = process_cpu_time(target.process().pid())?.saturating_sub(cpu_before);
    if acknowledged != total {
        bail!("{acknowledged} of {total} messages were acknowledged");
    }
    Ok(RoundMeasurement {
        to_last_acknowledgement: last_acknowledgement - started,
        to_last_delivery: last_delivery.map(|delivered| delivered - started),
        server_cpu,
        messages: total,
    })
}

/// Connects a QoS 1 subscriber on `#` and returns a task that acknowledges every delivery and ends when
/// `expected` messages have arrived, with the instant the last one did.
async fn start_subscriber(
    endpoint: &Endpoint,
    expected: u64,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<Instant>>> {
    let options = ConnectOptions {
        client_id: "bench-subscriber".to_owned(),
        username: None,
        password: None,
        clean_session: true,
        keep_alive_seconds: KEEP_ALIVE_SECONDS,
    };
    mqtt::start_counting_subscriber(endpoint, &options, "#", expected, false).await
}

impl TelemetryReport {
    /// The report as Markdown: one table row per target, then the ratios against Mosquitto.
    pub fn to_markdown(&self) -> String {
        let options = &self.options;
        let total = options.messages_per_device * options.devices as u64;
        let mut text = format!(
            "Telemetry: {} devices x {} QoS 1 messages of {} bytes = {total} messages per round, \
             window {} unacknowledged per connection, {} rounds (medians; min–max in brackets).\n\n",
            options.devices,
            options.messages_per_device,
            options.payload_bytes,
            options.window,
            options.runs
        );
        text.push_str("| target | what is timed | msg/s (median) | range | msg/s to last PUBACK | server CPU µs/msg |\n");
        text.push_str("|---|---|---|---|---|---|\n");
        let mut medians = Vec::new();
        for (kind, measurements) in &self.rounds {
            let headline = summary(measurements, RoundMeasurement::headline_rate);
            let acknowledged = summary(measurements, RoundMeasurement::acknowledged_rate);
            let cpu = summary(
                measurements,
                RoundMeasurement::server_cpu_micros_per_message,
            );
            let what = if *kind == TargetKind::Hub {
                "first PUBLISH → last PUBACK (durable)"
            } else {
                "first PUBLISH → subscriber has all"
            };
            if let (Some(headline), Some(acknowledged), Some(cpu)) = (headline, acknowledged, cpu) {
                text.push_str(&format!(
                    "| {} | {what} | {:.0} | {:.0}–{:.0} | {:.0} | {:.1} |\n",
                    kind.label(),
                    headline.median,
                    headline.minimum,
                    headline.maximum,
                    acknowledged.median,
                    cpu.median
                ));
                medians.push((*kind, headline.median));
            }
        }
        let hub = medians
            .iter()
            .find(|(kind, _)| *kind == TargetKind::Hub)
            .map(|(_, rate)| *rate);
        if let Some(hub) = hub {
            text.push('\n');
            for (kind, rate) in &medians {
                if *kind != TargetKind::Hub {
                    text.push_str(&format!(
                        "Outpost / {}: {}\n",
                        kind.label(),
                        ratio(hub, *rate)
                    ));
                }
            }
        }
        if let Some((bytes, messages)) = self.hub_storage {
            text.push_str(&format!(
                "\nHub data directory after the rounds: {:.1} MiB for {messages} acknowledged messages \
                 ({:.0} bytes per message).\n",
                bytes as f64 / (1024.0 * 1024.0),
                bytes as f64 / messages.max(1) as f64
            ));
        }
        text
    }
}

fn summary(
    measurements: &[RoundMeasurement],
    value: fn(&RoundMeasurement) -> f64,
) -> Option<RunSummary> {
    RunSummary::from_samples(measurements.iter().map(value).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn markdown_report() {
        let options = TelemetryOptions {
            devices: 100,
            messages_per_device: 1000,
            payload_bytes: 256,
            window: 10,
            runs: 3,
            warmup_messages_per_device: 10,
            round_timeout: Duration::from_secs(60),
            targets: vec![TargetKind::Hub, TargetKind::MosquittoTls],
            mosquitto: MosquittoSettings {
                unlimited_queue: true,
                tcp_nodelay: false,
            },
            hub_hostname: "localhost".to_owned(),
        };
        let round = |acknowledged_ms: u64, delivered_ms: Option<u64>| RoundMeasurement {
            to_last_acknowledgement: Duration::from_millis(acknowledged_ms),
            to_last_delivery: delivered_ms.map(Duration::from_millis),
            server_cpu: Duration::from_millis(1000),
            messages: 100_000,
        };
        let report = TelemetryReport {
            options,
            rounds: vec![
                (
                    TargetKind::Hub,
                    vec![round(2000, None), round(2500, None), round(4000, None)],
                ),
                (
                    TargetKind::MosquittoTls,
                    vec![
                        round(1000, Some(4000)),
                        round(1000, Some(5000)),
                        round(1000, Some(3000)),
                    ],
                ),
            ],
            hub_storage: Some((31_457_280, 301_000)),
        };
        expect![[r#"
            Telemetry: 100 devices x 1000 QoS 1 messages of 256 bytes = 100000 messages per round, window 10 unacknowledged per connection, 3 rounds (medians; min–max in brackets).

            | target | what is timed | msg/s (median) | range | msg/s to last PUBACK | server CPU µs/msg |
            |---|---|---|---|---|---|
            | outpost hub (TLS) | first PUBLISH → last PUBACK (durable) | 40000 | 25000–50000 | 40000 | 10.0 |
            | mosquitto (TLS) | first PUBLISH → subscriber has all | 25000 | 20000–33333 | 100000 | 10.0 |

            Outpost / mosquitto (TLS): 1.60x

            Hub data directory after the rounds: 30.0 MiB for 301000 acknowledged messages (105 bytes per message).
        "#]]
        .assert_eq(&report.to_markdown());
    }
}
