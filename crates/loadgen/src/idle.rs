//! Memory per idle connection: open K MQTT connections (TLS handshake plus an accepted CONNECT) and
//! compare the server's resident set size before and after.
//!
//! Each run starts a fresh server. Its RSS is read once it has started and settled ("idle RSS"), again
//! after the benchmark's devices are registered (the baseline, so that registry caches are not counted
//! as connection cost), and once more after every connection is up and the server has settled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::mqtt;
use crate::processes::{MosquittoSettings, Programs, ensure_open_files_limit};
use crate::service::device_credentials;
use crate::stats::{RunSummary, ratio};
use crate::targets::{RunningTarget, TargetKind};

/// File descriptors the load generator needs besides one per connection.
const SPARE_FILE_DESCRIPTORS: u64 = 256;

/// What the idle-connection benchmark does.
#[derive(Clone, Debug)]
pub struct IdleOptions {
    pub connections: usize,
    pub runs: usize,
    pub connect_concurrency: usize,
    pub settle: Duration,
    /// Stop after the TLS handshake and send no CONNECT, to tell transport cost from MQTT session cost.
    pub handshake_only: bool,
    pub targets: Vec<TargetKind>,
    pub hub_hostname: String,
}

/// What one run measured on one target.
#[derive(Clone, Copy, Debug)]
pub struct IdleMeasurement {
    pub idle_kib: u64,
    pub baseline_kib: u64,
    pub connected_kib: u64,
    pub connections: usize,
    pub connect_duration: Duration,
}

impl IdleMeasurement {
    /// Growth of the resident set per connection, in KiB.
    pub fn kib_per_connection(&self) -> f64 {
        self.connected_kib.saturating_sub(self.baseline_kib) as f64 / self.connections as f64
    }

    pub fn connections_per_second(&self) -> f64 {
        self.connections as f64 / self.connect_duration.as_secs_f64()
    }
}

pub struct IdleReport {
    pub options: IdleOptions,
    pub runs: Vec<(TargetKind, Vec<IdleMeasurement>)>,
}

/// Runs every target `runs` times, each time on a fresh server.
pub async fn run(options: &IdleOptions, programs: &Programs) -> anyhow::Result<IdleReport> {
    ensure_open_files_limit(options.connections as u64 + SPARE_FILE_DESCRIPTORS)?;
    let devices = device_credentials("bench-idle-", options.connections)?;
    let mut runs: Vec<(TargetKind, Vec<IdleMeasurement>)> = options
        .targets
        .iter()
        .map(|kind| (*kind, Vec::new()))
        .collect();
    for run in 0..options.runs {
        for (kind, measurements) in &mut runs {
            let mut target = RunningTarget::start(
                *kind,
                programs,
                &options.hub_hostname,
                &MosquittoSettings::default(),
            )
            .await?;
            tokio::time::sleep(options.settle).await;
            let idle_kib = target.process().resident_kib()?;
            target.register_devices(&devices).await?;
            tokio::time::sleep(options.settle).await;
            let baseline_kib = target.process().resident_kib()?;
            let started = Instant::now();
            let connections = open_connections(&target, &devices, options)
                .await
                .with_context(|| format!("run {} on {}", run + 1, kind.label()))?;
            let connect_duration = started.elapsed();
            tokio::time::sleep(options.settle).await;
            target.process_mut().ensure_running()?;
            let connected_kib = target.process().resident_kib()?;
            let measurement = IdleMeasurement {
                idle_kib,
                baseline_kib,
                connected_kib,
                connections: connections.len(),
                connect_duration,
            };
            eprintln!(
                "run {}/{} {}: idle {} KiB, baseline {} KiB, with {} connections {} KiB = {:.2} KiB each \
                 (connected at {:.0}/s)",
                run + 1,
                options.runs,
                kind.label(),
                idle_kib,
                baseline_kib,
                connections.len(),
                connected_kib,
                measurement.kib_per_connection(),
                measurement.connections_per_second()
            );
            measurements.push(measurement);
            drop(connections);
            target.stop().await;
        }
    }
    Ok(IdleReport {
        options: options.clone(),
        runs,
    })
}

/// A connection held open and idle until the measurement is taken.
enum OpenConnection {
    /// TLS (or TCP) established and MQTT CONNECT accepted.
    Mqtt {
        _reader: mqtt::PacketReader,
        _writer: mqtt::PacketWriter,
    },
    /// Only the transport handshake done.
    Transport {
        _stream: crate::transport::BoxedStream,
    },
}

/// Opens one connection per device, `concurrency` handshakes at a time, and keeps them open.
async fn open_connections(
    target: &RunningTarget,
    devices: &[crate::service::DeviceCredential],
    options: &IdleOptions,
) -> anyhow::Result<Vec<OpenConnection>> {
    let limit = Arc::new(Semaphore::new(options.connect_concurrency.max(1)));
    let handshake_only = options.handshake_only;
    let mut connecting = JoinSet::new();
    let mut connections = Vec::with_capacity(devices.len());
    for device in devices {
        let permit = limit.clone().acquire_owned().await?;
        let endpoint = target.endpoint.clone();
        let connect_options = target.connect_options(device)?;
        connecting.spawn(async move {
            let stream = endpoint.connect().await?;
            let connection = if handshake_only {
                OpenConnection::Transport { _stream: stream }
            } else {
                let (reader, writer) = mqtt::connect(stream, &connect_options).await?;
                OpenConnection::Mqtt {
                    _reader: reader,
                    _writer: writer,
                }
            };
            drop(permit);
            Ok::<_, anyhow::Error>(connection)
        });
        while let Some(joined) = connecting.try_join_next() {
            connections.push(joined.context("a connecting task failed")??);
        }
    }
    while let Some(joined) = connecting.join_next().await {
        connections.push(joined.context("a connecting task failed")??);
    }
    Ok(connections)
}

impl IdleReport {
    /// The report as Markdown: medians over the runs, per target.
    pub fn to_markdown(&self) -> String {
        let what = if self.options.handshake_only {
            "transport connections (TLS handshake only, no MQTT CONNECT)"
        } else {
            "MQTT connections (TLS handshake + accepted CONNECT, no traffic after)"
        };
        let mut text = format!(
            "Idle connections: {} {what}, {} runs, fresh server each run (medians; min–max in brackets).\n\n",
            self.options.connections, self.options.runs
        );
        text.push_str(
            "| target | idle RSS (MiB) | RSS after registering devices (MiB) | RSS connected (MiB) | KiB per connection | connects/s |\n",
        );
        text.push_str("|---|---|---|---|---|---|\n");
        let mut per_connection = Vec::new();
        for (kind, measurements) in &self.runs {
            let mib = |value: fn(&IdleMeasurement) -> u64| {
                RunSummary::from_samples(
                    measurements
                        .iter()
                        .map(|m| value(m) as f64 / 1024.0)
                        .collect(),
                )
            };
            let (Some(idle), Some(baseline), Some(connected), Some(each), Some(rate)) = (
                mib(|m| m.idle_kib),
                mib(|m| m.baseline_kib),
                mib(|m| m.connected_kib),
                RunSummary::from_samples(
                    measurements
                        .iter()
                        .map(IdleMeasurement::kib_per_connection)
                        .collect(),
                ),
                RunSummary::from_samples(
                    measurements
                        .iter()
                        .map(IdleMeasurement::connections_per_second)
                        .collect(),
                ),
            ) else {
                continue;
            };
            text.push_str(&format!(
                "| {} | {:.1} | {:.1} | {:.1} | {:.2} ({:.2}–{:.2}) | {:.0} |\n",
                kind.label(),
                idle.median,
                baseline.median,
                connected.median,
                each.median,
                each.minimum,
                each.maximum,
                rate.median
            ));
            per_connection.push((*kind, each.median));
        }
        if let Some((_, hub)) = per_connection
            .iter()
            .find(|(kind, _)| *kind == TargetKind::Hub)
        {
            text.push('\n');
            for (kind, each) in &per_connection {
                if *kind != TargetKind::Hub {
                    text.push_str(&format!(
                        "Outpost / {} memory per connection: {}\n",
                        kind.label(),
                        ratio(*hub, *each)
                    ));
                }
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn markdown_report() {
        let measurement = |baseline_kib: u64, connected_kib: u64| IdleMeasurement {
            idle_kib: 8 * 1024,
            baseline_kib,
            connected_kib,
            connections: 10_000,
            connect_duration: Duration::from_secs(20),
        };
        let report = IdleReport {
            options: IdleOptions {
                connections: 10_000,
                runs: 2,
                connect_concurrency: 64,
                settle: Duration::from_secs(1),
                handshake_only: false,
                targets: vec![TargetKind::Hub, TargetKind::MosquittoTls],
                hub_hostname: "localhost".to_owned(),
            },
            runs: vec![
                (
                    TargetKind::Hub,
                    vec![measurement(10_240, 130_240), measurement(10_240, 150_240)],
                ),
                (
                    TargetKind::MosquittoTls,
                    vec![measurement(2_048, 202_048), measurement(2_048, 202_048)],
                ),
            ],
        };
        expect![[r#"
            Idle connections: 10000 MQTT connections (TLS handshake + accepted CONNECT, no traffic after), 2 runs, fresh server each run (medians; min–max in brackets).

            | target | idle RSS (MiB) | RSS after registering devices (MiB) | RSS connected (MiB) | KiB per connection | connects/s |
            |---|---|---|---|---|---|
            | outpost hub (TLS) | 8.0 | 10.0 | 137.0 | 13.00 (12.00–14.00) | 500 |
            | mosquitto (TLS) | 8.0 | 2.0 | 197.3 | 20.00 (20.00–20.00) | 500 |

            Outpost / mosquitto (TLS) memory per connection: 0.65x
        "#]]
        .assert_eq(&report.to_markdown());
    }
}
