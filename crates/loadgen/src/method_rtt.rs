//! Direct-method round trip: one device answers every method request at once; the service side
//! invokes methods one after another over one keep-alive HTTPS connection and times each call.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use iothub_topics::{ClientPublish, HubPublish};
use mqtt_codec::{Packet, PacketId, Publish, QoS};
use serde_json::json;

use crate::mqtt;
use crate::processes::{MosquittoSettings, Programs};
use crate::service::{ServiceConnection, device_credentials};
use crate::stats::{LatencyPercentiles, RunSummary, milliseconds};
use crate::targets::{RunningTarget, TargetKind};

/// What the method benchmark does.
#[derive(Clone, Debug)]
pub struct MethodOptions {
    pub invocations: usize,
    pub warmup: usize,
    pub runs: usize,
    pub hub_hostname: String,
}

pub struct MethodReport {
    pub options: MethodOptions,
    pub runs: Vec<LatencyPercentiles>,
}

/// Starts a hub, connects the answering device, then runs `runs` series of `invocations` calls after
/// `warmup` calls that are not recorded.
pub async fn run(options: &MethodOptions, programs: &Programs) -> anyhow::Result<MethodReport> {
    if options.invocations == 0 || options.runs == 0 {
        bail!("--invocations and --runs must be at least 1");
    }
    let target = RunningTarget::start(
        TargetKind::Hub,
        programs,
        &options.hub_hostname,
        &MosquittoSettings::default(),
    )
    .await?;
    let devices = device_credentials("bench-method-", 1)?;
    target.register_devices(&devices).await?;
    let device = &devices[0];
    let stream = target.endpoint.connect().await?;
    let (mut reader, mut writer) = mqtt::connect(stream, &target.connect_options(device)?).await?;
    mqtt::subscribe(
        &mut reader,
        &mut writer,
        "$iothub/methods/POST/#",
        QoS::AtLeastOnce,
    )
    .await?;
    let responder = tokio::spawn(answer_methods(reader, writer));

    let hub = target.hub().context("the method benchmark needs the hub")?;
    let mut service =
        ServiceConnection::open(hub.https_address, &hub.ca_pem, &hub.owner_connection_string)
            .await?;
    let body = json!({
        "methodName": "loadgenPing",
        "payload": {"n": 1},
        "responseTimeoutInSeconds": 30,
        "connectTimeoutInSeconds": 0,
    });
    for _ in 0..options.warmup {
        invoke_once(&mut service, device, &body).await?;
    }
    let mut runs = Vec::new();
    for run in 0..options.runs {
        let mut latencies = Vec::with_capacity(options.invocations);
        for _ in 0..options.invocations {
            latencies.push(invoke_once(&mut service, device, &body).await?);
        }
        let percentiles = LatencyPercentiles::from_latencies(&latencies).context("no latencies")?;
        eprintln!(
            "run {}/{}: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            run + 1,
            options.runs,
            milliseconds(percentiles.p50),
            milliseconds(percentiles.p99),
            milliseconds(percentiles.maximum)
        );
        runs.push(percentiles);
    }
    responder.abort();
    target.stop().await;
    Ok(MethodReport {
        options: options.clone(),
        runs,
    })
}

/// Answers every method request with status 200 at once, acknowledging QoS 1 requests, until the
/// connection closes.
async fn answer_methods(
    mut reader: mqtt::PacketReader,
    mut writer: mqtt::PacketWriter,
) -> anyhow::Result<()> {
    let mut packet_id = PacketId::new(1).expect("1 is not zero");
    let mut batch = Vec::new();
    loop {
        batch.clear();
        reader.next_batch(&mut batch).await?;
        for packet in batch.drain(..) {
            let Packet::Publish(request) = packet else {
                continue;
            };
            if let Some(request_id) = request.packet_id {
                writer.queue(&Packet::PubAck(request_id))?;
            }
            let Ok(HubPublish::MethodRequest { rid, .. }) = HubPublish::parse(&request.topic)
            else {
                continue;
            };
            let topic = ClientPublish::MethodResponse { status: 200, rid }.to_topic();
            let response = Publish::with_packet_id(
                topic,
                QoS::AtLeastOnce,
                packet_id,
                Bytes::from_static(b"{\"ok\":true}"),
            );
            writer.queue(&Packet::Publish(response))?;
            packet_id = packet_id.next();
        }
        writer.flush().await?;
    }
}

async fn invoke_once(
    service: &mut ServiceConnection,
    device: &crate::service::DeviceCredential,
    body: &serde_json::Value,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = service.invoke_method(&device.device_id, body).await?;
    let elapsed = started.elapsed();
    if status != 200 {
        bail!("the device answered {status}, the responder always answers 200");
    }
    Ok(elapsed)
}

impl MethodReport {
    /// The report as Markdown: per-run percentiles and their medians.
    pub fn to_markdown(&self) -> String {
        let mut text = format!(
            "Direct methods: {} sequential invocations per run over one keep-alive HTTPS connection, \
             {} runs after {} warm-up calls; the device answers at once (milliseconds).\n\n",
            self.options.invocations, self.options.runs, self.options.warmup
        );
        text.push_str("| run | p50 | p90 | p99 | max | mean |\n|---|---|---|---|---|---|\n");
        for (index, run) in self.runs.iter().enumerate() {
            text.push_str(&format!(
                "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
                index + 1,
                milliseconds(run.p50),
                milliseconds(run.p90),
                milliseconds(run.p99),
                milliseconds(run.maximum),
                milliseconds(run.mean)
            ));
        }
        let median = |value: fn(&LatencyPercentiles) -> Duration| {
            RunSummary::from_samples(
                self.runs
                    .iter()
                    .map(|run| milliseconds(value(run)))
                    .collect(),
            )
            .map_or(f64::NAN, |summary| summary.median)
        };
        text.push_str(&format!(
            "| **median** | **{:.3}** | **{:.3}** | **{:.3}** | **{:.3}** | **{:.3}** |\n",
            median(|run| run.p50),
            median(|run| run.p90),
            median(|run| run.p99),
            median(|run| run.maximum),
            median(|run| run.mean)
        ));
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn markdown_report() {
        let series = |base: u64| {
            let latencies: Vec<Duration> = (1..=100)
                .map(|index| Duration::from_micros(base + index * 10))
                .collect();
            LatencyPercentiles::from_latencies(&latencies).expect("non-empty")
        };
        let report = MethodReport {
            options: MethodOptions {
                invocations: 100,
                warmup: 10,
                runs: 3,
                hub_hostname: "localhost".to_owned(),
            },
            runs: vec![series(500), series(700), series(600)],
        };
        expect![[r#"
            Direct methods: 100 sequential invocations per run over one keep-alive HTTPS connection, 3 runs after 10 warm-up calls; the device answers at once (milliseconds).

            | run | p50 | p90 | p99 | max | mean |
            |---|---|---|---|---|---|
            | 1 | 1.000 | 1.400 | 1.490 | 1.500 | 1.005 |
            | 2 | 1.200 | 1.600 | 1.690 | 1.700 | 1.205 |
            | 3 | 1.100 | 1.500 | 1.590 | 1.600 | 1.105 |
            | **median** | **1.100** | **1.500** | **1.590** | **1.600** | **1.105** |
        "#]]
        .assert_eq(&report.to_markdown());
    }
}
