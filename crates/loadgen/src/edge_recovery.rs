//! Store-and-forward recovery (issue 6): modules route their output to `$upstream`; the hub is
//! killed with SIGKILL; the modules publish N messages, which the edge hub stores durably before each
//! PUBACK; the hub is started again on the same data directory. Measured: how fast the edge hub
//! stores while offline, the time from the hub's MQTT listener accepting again until the first stored
//! message is enqueued at the hub, and the drain rate until all N are there.
//!
//! Times at the hub are its `enqueuedTime`s (same machine, same clock), so the measurement does not
//! depend on when this process got around to opening the event stream.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;

use crate::edge::{
    EDGE_DEVICE, EDGE_LAB_GATEWAY_IP, EDGE_LAB_HUB_IP, EdgeLab, deployment, output_topic,
    sleeping_module, upstream_route,
};
use crate::edge_memory::verdict;
use crate::events::{now_seconds_of_day, seconds_between, start_event_counter};
use crate::mqtt::ReadyPublishers;
use crate::processes::Programs;
use crate::stats::{RunSummary, rate_per_second};

/// What the recovery benchmark does.
#[derive(Clone, Debug)]
pub struct RecoveryOptions {
    /// Messages stored while the hub is down, per run.
    pub messages: u64,
    pub publishers: usize,
    pub payload_bytes: usize,
    pub window: usize,
    pub runs: usize,
    /// How long the hub stays down after the last message was stored.
    pub offline: Duration,
    /// `--edge-hub-store-max-bytes` for the edge runtime.
    pub store_max_bytes: Option<u64>,
    /// How long the drain may take before the run fails.
    pub drain_timeout: Duration,
}

/// One outage.
#[derive(Clone, Copy, Debug)]
pub struct RecoveryRun {
    pub messages: u64,
    /// First PUBLISH to last PUBACK while the hub was down.
    pub store_time: Duration,
    /// Hub listener accepting → first stored message enqueued at the hub, in seconds.
    pub first_delivery_seconds: f64,
    /// First → last stored message enqueued at the hub, in seconds.
    pub drain_seconds: f64,
    /// Hub listener accepting → this process read the last message from the event stream.
    pub to_last_read: Duration,
}

impl RecoveryRun {
    /// Messages per second the edge hub stored while offline.
    pub fn store_rate(&self) -> f64 {
        rate_per_second(self.messages, self.store_time)
    }

    /// Messages per second from the first to the last enqueued at the hub.
    pub fn drain_rate(&self) -> f64 {
        rate_per_second(
            self.messages,
            Duration::from_secs_f64(self.drain_seconds.max(0.0)),
        )
    }
}

/// Every run.
pub struct RecoveryReport {
    pub options: RecoveryOptions,
    pub runs: Vec<RecoveryRun>,
}

/// Runs the benchmark against one hub and one edge runtime; each run is one outage.
pub async fn run(options: &RecoveryOptions, programs: &Programs) -> anyhow::Result<RecoveryReport> {
    if options.messages == 0 || options.publishers == 0 || options.runs == 0 {
        bail!("--messages, --publishers and --runs must be at least 1");
    }
    let per_publisher = options.messages.div_ceil(options.publishers as u64);
    let messages = per_publisher * options.publishers as u64;
    let mut lab = EdgeLab::start(programs, EDGE_LAB_HUB_IP, EDGE_LAB_GATEWAY_IP).await?;
    let names: Vec<String> = (0..options.publishers)
        .map(|index| format!("up{index}"))
        .collect();
    let modules = names
        .iter()
        .map(|name| (name.clone(), sleeping_module()))
        .collect();
    let routes: BTreeMap<String, String> = names
        .iter()
        .map(|name| (name.clone(), upstream_route(name)))
        .collect();
    let mut runtime = lab
        .deploy_and_start(&deployment(&modules, &routes), options.store_max_bytes)
        .await?;
    let endpoint = runtime.gateway_endpoint()?;
    let mut publishers = Vec::new();
    for name in &names {
        publishers.push((
            lab.module_client(name).await?,
            output_topic(EDGE_DEVICE, name, "out"),
        ));
    }
    let payload = Bytes::from(vec![b'x'; options.payload_bytes]);
    let mut runs = Vec::new();
    let mut delivered_before = 0;
    for run in 0..options.runs {
        lab.hub.process.kill().await;
        // Give the edge hub a moment to see its upstream links drop.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let ready = ReadyPublishers::connect(
            &endpoint,
            &publishers,
            &payload,
            per_publisher,
            options.window,
            false,
        )
        .await?;
        let started = ready.start();
        let (acknowledged, last_acknowledgement) = ready.finish(started).await?;
        if acknowledged != messages {
            bail!("{acknowledged} of {messages} messages were acknowledged while offline");
        }
        let store_time = last_acknowledgement - started;
        eprintln!(
            "run {}/{}: stored {messages} messages offline in {store_time:?}",
            run + 1,
            options.runs
        );
        tokio::time::sleep(options.offline).await;
        runtime.ensure_running()?;
        let accepted = lab.hub.restart(programs).await?;
        let accepted_at = now_seconds_of_day() - accepted.elapsed().as_secs_f64();
        let counter = start_event_counter(
            lab.hub.https_address,
            &lab.hub.ca_pem,
            &lab.hub.owner_connection_string,
            &format!("from=start&deviceId={EDGE_DEVICE}"),
            delivered_before,
            messages,
        )
        .await?;
        let seen = tokio::time::timeout(options.drain_timeout, counter)
            .await
            .with_context(|| {
                format!(
                    "the stored messages did not all arrive within {:?}; edge log:\n{}",
                    options.drain_timeout,
                    runtime.log_tail()
                )
            })?
            .context("the event counter failed")??;
        delivered_before += seen.count;
        let (Some(first), Some(last)) = (seen.first_enqueued, seen.last_enqueued) else {
            bail!("the hub's events carry no enqueuedTime");
        };
        let measured = RecoveryRun {
            messages,
            store_time,
            first_delivery_seconds: seconds_between(accepted_at, first),
            drain_seconds: seconds_between(first, last),
            to_last_read: seen.last_read - accepted,
        };
        eprintln!(
            "run {}/{}: first stored message at the hub {:.3} s after its listener accepted; drained at {:.0} msg/s; all read after {:?}",
            run + 1,
            options.runs,
            measured.first_delivery_seconds,
            measured.drain_rate(),
            measured.to_last_read
        );
        runs.push(measured);
    }
    runtime.stop().await?;
    Ok(RecoveryReport {
        options: options.clone(),
        runs,
    })
}

impl RecoveryReport {
    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let options = &self.options;
        let mut text = format!(
            "Recovery: {} publishing modules route to `$upstream`; the hub is killed (SIGKILL); {} QoS 1 \
             messages of {} bytes (window {}) are stored by the edge hub; after {:?} offline the hub \
             restarts on its data directory. {} run(s).\n\n",
            options.publishers,
            self.runs
                .first()
                .map_or(options.messages, |run| run.messages),
            options.payload_bytes,
            options.window,
            options.offline,
            self.runs.len()
        );
        text.push_str("| run | stored offline (msg/s, durable) | hub accepts → first stored message at the hub (s) | drain rate (msg/s) | hub accepts → all read (s) |\n");
        text.push_str("|---|---|---|---|---|\n");
        for (index, run) in self.runs.iter().enumerate() {
            text.push_str(&format!(
                "| {} | {:.0} | {:.3} | {:.0} | {:.1} |\n",
                index + 1,
                run.store_rate(),
                run.first_delivery_seconds,
                run.drain_rate(),
                run.to_last_read.as_secs_f64()
            ));
        }
        let median = |pick: fn(&RecoveryRun) -> f64| {
            RunSummary::from_samples(self.runs.iter().map(pick).collect())
                .map_or(f64::NAN, |summary| summary.median)
        };
        let first = median(|run| run.first_delivery_seconds);
        text.push_str(&format!(
            "| **median** | {:.0} | **{:.3}** | **{:.0}** | {:.1} |\n\nTarget: first stored message delivered < 1 s after the hub returns (#6): {}.\n",
            median(RecoveryRun::store_rate),
            first,
            median(RecoveryRun::drain_rate),
            median(|run| run.to_last_read.as_secs_f64()),
            verdict(first < 1.0),
        ));
        text
    }
}
