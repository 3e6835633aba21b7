//! Memory of `outpost edge run` (issues 5 and 6): the resident set of the runtime process with a
//! deployment of sleeping process modules, first as the agent alone (`--no-edge-hub`), then with its
//! edge hub idle, then with that many leaf devices connected to the edge hub over MQTT/TLS.
//!
//! The modules are separate processes and not counted; the edge hub's part is the difference between
//! the runtime with and without it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::edge::{
    EDGE_LAB_GATEWAY_IP, EDGE_LAB_HUB_IP, EdgeInitOptions, EdgeLab, deployment, sleeping_modules,
};
use crate::mqtt::{self, ConnectOptions};
use crate::processes::{Programs, ensure_open_files_limit};
use crate::service::{device_credentials, device_mqtt_credentials};
use crate::stats::RunSummary;
use crate::targets::KEEP_ALIVE_SECONDS;

/// How often `outpost edge list` is polled while waiting for modules.
const POLL: Duration = Duration::from_millis(100);

/// What the memory benchmark does.
#[derive(Clone, Debug)]
pub struct EdgeMemoryOptions {
    /// Process modules in the deployment.
    pub modules: usize,
    /// Leaf devices (children of the edge device) to connect to the edge hub.
    pub leaves: usize,
    pub runs: usize,
    pub connect_concurrency: usize,
    /// Pause before each RSS reading.
    pub settle: Duration,
    /// Read the agent alone and nothing else (no edge hub, no leaf devices): the quick loop for
    /// measuring changes to the agent's footprint.
    pub agent_only: bool,
}

/// One run's readings, in KiB.
#[derive(Clone, Copy, Debug)]
pub struct EdgeMemoryRun {
    /// `outpost edge run --no-edge-hub`, all modules running.
    pub agent_kib: u64,
    /// Of `agent_kib`: anonymous memory (heap, stacks) and file-backed pages (code).
    pub agent_anon_kib: u64,
    pub agent_file_kib: u64,
    /// Threads of the agent process (`Threads:` in `/proc/PID/status`).
    pub agent_threads: u64,
    /// `outpost edge run` with its edge hub, all modules running, routes applied, no client, no
    /// child device in the edge device's scope.
    pub idle_kib: u64,
    /// The same with the leaf devices registered as children (synced into the edge hub's scope).
    pub scoped_idle_kib: u64,
    /// The same with every leaf device connected.
    pub connected_kib: u64,
}

/// Every run.
pub struct EdgeMemoryReport {
    pub options: EdgeMemoryOptions,
    pub runs: Vec<EdgeMemoryRun>,
}

/// Runs the benchmark; every reading uses a fresh edge runtime (new data directory) against one hub.
/// First, with no child device registered: the agent alone and the runtime with its edge hub idle.
/// Then the leaf devices are registered as children, and for each run a fresh runtime (which syncs
/// them into its scope) is read idle and with every leaf connected.
pub async fn run(
    options: &EdgeMemoryOptions,
    programs: &Programs,
) -> anyhow::Result<EdgeMemoryReport> {
    ensure_open_files_limit(options.leaves as u64 + 256)?;
    let mut lab = EdgeLab::start(programs, EDGE_LAB_HUB_IP, EDGE_LAB_GATEWAY_IP).await?;
    let (names, modules) = sleeping_modules(options.modules);
    let routes = BTreeMap::from([(
        "leaves".to_owned(),
        "FROM /messages/* WHERE NOT IS_DEFINED($connectionModuleId) INTO $upstream".to_owned(),
    )]);
    lab.apply(&deployment(&modules, &routes)).await?;
    let mut without_children = Vec::new();
    for run in 0..options.runs {
        let mut agent = lab
            .init_runtime(&EdgeInitOptions {
                no_edge_hub: true,
                store_max_bytes: None,
            })
            .await?;
        agent.start().await?;
        agent.wait_for_modules(&names, POLL).await?;
        tokio::time::sleep(options.settle).await;
        let agent_reading = agent.process()?.resident_breakdown_kib()?;
        let agent_threads = agent.process()?.threads()?;
        agent.stop().await?;
        if options.agent_only {
            eprintln!(
                "run {}/{}: agent {} KiB, {agent_threads} threads",
                run + 1,
                options.runs,
                agent_reading.0
            );
            without_children.push((agent_reading, agent_threads, 0));
            continue;
        }
        let mut full = lab.init_runtime(&EdgeInitOptions::default()).await?;
        full.start().await?;
        full.wait_for_modules(&names, POLL).await?;
        lab.wait_for_routes(&mut full).await?;
        tokio::time::sleep(options.settle).await;
        let idle_kib = full.process()?.resident_kib()?;
        full.stop().await?;
        eprintln!(
            "run {}/{}: agent {} KiB, with edge hub idle {idle_kib} KiB",
            run + 1,
            options.runs,
            agent_reading.0
        );
        without_children.push((agent_reading, agent_threads, idle_kib));
    }
    if options.agent_only {
        let runs = without_children
            .into_iter()
            .map(
                |((agent_kib, agent_anon_kib, agent_file_kib), agent_threads, _)| EdgeMemoryRun {
                    agent_kib,
                    agent_anon_kib,
                    agent_file_kib,
                    agent_threads,
                    idle_kib: 0,
                    scoped_idle_kib: 0,
                    connected_kib: 0,
                },
            )
            .collect();
        return Ok(EdgeMemoryReport {
            options: options.clone(),
            runs,
        });
    }

    let leaves = device_credentials("bench-leaf-", options.leaves)?;
    let scope = lab.scope.clone();
    lab.service
        .create_devices_in_scope(&leaves, Some(&scope))
        .await
        .context("registering the leaf devices")?;
    let clients = leaves
        .iter()
        .map(|leaf| {
            let (username, password) = device_mqtt_credentials(&lab.hub.hostname, leaf)?;
            Ok(ConnectOptions {
                client_id: leaf.device_id.as_str().to_owned(),
                username: Some(username),
                password: Some(password),
                clean_session: false,
                keep_alive_seconds: KEEP_ALIVE_SECONDS,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut runs = Vec::new();
    for (run, ((agent_kib, agent_anon_kib, agent_file_kib), agent_threads, idle_kib)) in
        without_children.into_iter().enumerate()
    {
        let mut full = lab.init_runtime(&EdgeInitOptions::default()).await?;
        full.start().await?;
        full.wait_for_modules(&names, POLL).await?;
        lab.wait_for_routes(&mut full).await?;
        tokio::time::sleep(options.settle).await;
        let scoped_idle_kib = full.process()?.resident_kib()?;
        let endpoint = full.gateway_endpoint()?;
        let limit = Arc::new(Semaphore::new(options.connect_concurrency.max(1)));
        let mut connecting = JoinSet::new();
        for client in &clients {
            let permit = limit.clone().acquire_owned().await?;
            let endpoint = endpoint.clone();
            let client = client.clone();
            connecting.spawn(async move {
                let stream = endpoint.connect().await?;
                let connection = mqtt::connect(stream, &client)
                    .await
                    .with_context(|| format!("leaf {}", client.client_id))?;
                drop(permit);
                Ok::<_, anyhow::Error>(connection)
            });
        }
        let mut connections = Vec::new();
        while let Some(joined) = connecting.join_next().await {
            connections.push(joined.context("a connecting task failed")??);
        }
        tokio::time::sleep(options.settle).await;
        full.ensure_running()?;
        let connected_kib = full.process()?.resident_kib()?;
        drop(connections);
        full.stop().await?;
        eprintln!(
            "run {}/{}: {} children in scope: idle {scoped_idle_kib} KiB, all connected {connected_kib} KiB",
            run + 1,
            options.runs,
            options.leaves
        );
        runs.push(EdgeMemoryRun {
            agent_kib,
            agent_anon_kib,
            agent_file_kib,
            agent_threads,
            idle_kib,
            scoped_idle_kib,
            connected_kib,
        });
    }
    Ok(EdgeMemoryReport {
        options: options.clone(),
        runs,
    })
}

/// KiB as MiB.
fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

impl EdgeMemoryReport {
    /// The median over the runs of one reading (NaN without runs).
    fn median(&self, pick: fn(&EdgeMemoryRun) -> f64) -> f64 {
        RunSummary::from_samples(self.runs.iter().map(pick).collect())
            .map_or(f64::NAN, |summary| summary.median)
    }

    /// The report as Markdown: every run, then the medians and the targets.
    pub fn to_markdown(&self) -> String {
        if self.options.agent_only {
            return self.agent_markdown();
        }
        let options = &self.options;
        let leaves = options.leaves.max(1) as f64;
        let mut text = format!(
            "Edge memory: VmRSS of `outpost edge run` with {} process modules running (not counted), \
             {} runs, each reading {:?} after the state is reached, every reading on a fresh runtime.\n\n",
            options.modules, options.runs, options.settle
        );
        text.push_str(&format!(
            "| run | agent alone (MiB) | with edge hub, idle (MiB) | edge hub part (MiB) | idle, {n} children in scope (MiB) | {n} leaves connected (MiB) | KiB per connected leaf |\n",
            n = options.leaves
        ));
        text.push_str("|---|---|---|---|---|---|---|\n");
        let row = |label: String, agent: f64, idle: f64, scoped: f64, connected: f64| {
            format!(
                "| {label} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |\n",
                mib(agent),
                mib(idle),
                mib(idle - agent),
                mib(scoped),
                mib(connected),
                (connected - scoped) / leaves
            )
        };
        for (index, run) in self.runs.iter().enumerate() {
            text.push_str(&row(
                format!("{}", index + 1),
                run.agent_kib as f64,
                run.idle_kib as f64,
                run.scoped_idle_kib as f64,
                run.connected_kib as f64,
            ));
        }
        let summary = |pick| self.median(pick);
        let agent = summary(|run| run.agent_kib as f64);
        let idle = summary(|run| run.idle_kib as f64);
        let edge_hub_part = summary(|run| run.idle_kib as f64 - run.agent_kib as f64);
        text.push_str(&row(
            "**median**".to_owned(),
            agent,
            idle,
            summary(|run| run.scoped_idle_kib as f64),
            summary(|run| run.connected_kib as f64),
        ));
        text.push_str(&format!(
            "\nThe agent's resident set (median): {:.1} MiB anonymous (heap, stacks), {:.1} MiB file-backed \
             (the program's code and read-only data).\n",
            mib(summary(|run| run.agent_anon_kib as f64)),
            mib(summary(|run| run.agent_file_kib as f64)),
        ));
        text.push_str(&format!(
            "\nTargets: agent part ≤ 15 MB (#5): {:.1} MiB ({:.1} MB) → {}; edge hub idle ≤ 10 MB (#6): \
             edge hub part {:.1} MiB ({:.1} MB) → {}; whole runtime idle {:.1} MiB.\n",
            mib(agent),
            agent * 1.024 / 1000.0,
            verdict(agent * 1.024 / 1000.0 <= 15.0),
            mib(edge_hub_part),
            edge_hub_part * 1.024 / 1000.0,
            verdict(edge_hub_part * 1.024 / 1000.0 <= 10.0),
            mib(idle),
        ));
        text
    }
}

impl EdgeMemoryReport {
    /// The `--agent-only` report: the agent's resident set per run, split, with its thread count.
    fn agent_markdown(&self) -> String {
        let mut text = format!(
            "Edge agent memory: VmRSS of `outpost edge run --no-edge-hub` with {} process modules running \
             (not counted), {} runs, each read {:?} after the modules run, every run on a fresh runtime.\n\n\
             | run | agent (MiB) | anonymous (MiB) | file-backed (MiB) | threads |\n|---|---|---|---|---|\n",
            self.options.modules, self.options.runs, self.options.settle
        );
        // Total, anonymous and file-backed KiB, threads.
        let columns: [fn(&EdgeMemoryRun) -> f64; 4] = [
            |run| run.agent_kib as f64,
            |run| run.agent_anon_kib as f64,
            |run| run.agent_file_kib as f64,
            |run| run.agent_threads as f64,
        ];
        let row = |label: String, [total, anon, file, threads]: [f64; 4]| {
            format!(
                "| {label} | {:.1} | {:.1} | {:.1} | {threads} |\n",
                mib(total),
                mib(anon),
                mib(file)
            )
        };
        for (index, run) in self.runs.iter().enumerate() {
            text.push_str(&row(
                format!("{}", index + 1),
                columns.map(|pick| pick(run)),
            ));
        }
        text.push_str(&row(
            "**median**".to_owned(),
            columns.map(|pick| self.median(pick)),
        ));
        let agent = self.median(columns[0]);
        text.push_str(&format!(
            "\nTarget: agent ≤ 15 MB (#5): {:.1} MiB ({:.1} MB) → {}.\n",
            mib(agent),
            agent * 1.024 / 1000.0,
            verdict(agent * 1.024 / 1000.0 <= 15.0),
        ));
        text
    }
}

/// `met` or `missed`.
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    fn agent_run(agent_kib: u64, agent_anon_kib: u64, agent_threads: u64) -> EdgeMemoryRun {
        EdgeMemoryRun {
            agent_kib,
            agent_anon_kib,
            agent_file_kib: agent_kib - agent_anon_kib,
            agent_threads,
            idle_kib: 0,
            scoped_idle_kib: 0,
            connected_kib: 0,
        }
    }

    #[test]
    fn agent_only_report() {
        let report = EdgeMemoryReport {
            options: EdgeMemoryOptions {
                modules: 10,
                leaves: 1000,
                runs: 3,
                connect_concurrency: 32,
                settle: Duration::from_secs(2),
                agent_only: true,
            },
            runs: vec![
                agent_run(14_234, 2_560, 6),
                agent_run(16_384, 2_662, 7),
                agent_run(14_131, 2_560, 5),
            ],
        };
        expect![[r#"
            Edge agent memory: VmRSS of `outpost edge run --no-edge-hub` with 10 process modules running (not counted), 3 runs, each read 2s after the modules run, every run on a fresh runtime.

            | run | agent (MiB) | anonymous (MiB) | file-backed (MiB) | threads |
            |---|---|---|---|---|
            | 1 | 13.9 | 2.5 | 11.4 | 6 |
            | 2 | 16.0 | 2.6 | 13.4 | 7 |
            | 3 | 13.8 | 2.5 | 11.3 | 5 |
            | **median** | 13.9 | 2.5 | 11.4 | 6 |

            Target: agent ≤ 15 MB (#5): 13.9 MiB (14.6 MB) → met.
        "#]]
        .assert_eq(&report.to_markdown());
    }
}
