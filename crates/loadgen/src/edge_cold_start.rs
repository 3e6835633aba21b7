//! Cold start of the edge runtime (issue 5): the time from spawning `outpost edge run`, with a
//! deployment of process modules already stored by an earlier run and the hub reachable, until
//! `outpost edge list` reports every module running.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::edge::{
    EDGE_LAB_GATEWAY_IP, EDGE_LAB_HUB_IP, EdgeInitOptions, EdgeLab, deployment, sleeping_modules,
};
use crate::edge_memory::verdict;
use crate::processes::Programs;
use crate::stats::{RunSummary, milliseconds};

/// What the cold-start benchmark does.
#[derive(Clone, Debug)]
pub struct ColdStartOptions {
    pub modules: usize,
    pub runs: usize,
    /// How often `outpost edge list --output json` is polled.
    pub poll: Duration,
    /// Start the agent alone (`--no-edge-hub`).
    pub no_edge_hub: bool,
}

/// The first start (deployment fetched from the hub) and every measured cold start.
pub struct ColdStartReport {
    pub options: ColdStartOptions,
    pub first_start: Duration,
    pub cold_starts: Vec<Duration>,
    /// VmRSS of the runtime, in KiB, right after the last cold start saw all modules running.
    pub resident_kib: u64,
}

/// Runs the benchmark.
pub async fn run(
    options: &ColdStartOptions,
    programs: &Programs,
) -> anyhow::Result<ColdStartReport> {
    let mut lab = EdgeLab::start(programs, EDGE_LAB_HUB_IP, EDGE_LAB_GATEWAY_IP).await?;
    let (names, modules) = sleeping_modules(options.modules);
    lab.apply(&deployment(&modules, &BTreeMap::new())).await?;
    let mut runtime = lab
        .init_runtime(&EdgeInitOptions {
            no_edge_hub: options.no_edge_hub,
            store_max_bytes: None,
        })
        .await?;
    let spawned = runtime.spawn()?;
    let first_start = runtime.wait_for_modules(&names, options.poll).await? - spawned;
    runtime.stop().await?;
    eprintln!("first start (deployment from the hub): {first_start:?}");
    let mut cold_starts = Vec::new();
    let mut resident_kib = 0;
    for run in 0..options.runs {
        let spawned = runtime.spawn()?;
        let running = runtime.wait_for_modules(&names, options.poll).await?;
        resident_kib = runtime.process()?.resident_kib()?;
        runtime.stop().await?;
        let elapsed = running - spawned;
        eprintln!("cold start {}/{}: {elapsed:?}", run + 1, options.runs);
        cold_starts.push(elapsed);
    }
    Ok(ColdStartReport {
        options: options.clone(),
        first_start,
        cold_starts,
        resident_kib,
    })
}

impl ColdStartReport {
    /// The report as Markdown.
    pub fn to_markdown(&self) -> String {
        let options = &self.options;
        let samples: Vec<f64> = self.cold_starts.iter().copied().map(milliseconds).collect();
        let runs = samples
            .iter()
            .map(|sample| format!("{sample:.0}"))
            .collect::<Vec<_>>()
            .join(", ");
        let summary = RunSummary::from_samples(samples);
        let median = summary.as_ref().map_or(f64::NAN, |summary| summary.median);
        format!(
            "Cold start: `outpost edge run`{} with {} process modules (`/bin/sleep`) stored from an \
             earlier run, hub reachable, `outpost edge list --output json` polled every {:?}.\n\n\
             | what | ms |\n|---|---|\n\
             | first start (deployment fetched from the hub) | {:.0} |\n\
             | cold start, median of {} | **{median:.0}** |\n\
             | cold start, every run | {runs} |\n\n\
             Target < 1 s (#5): {}. RSS right after the last start: {:.1} MiB.\n",
            if options.no_edge_hub {
                " --no-edge-hub"
            } else {
                ""
            },
            options.modules,
            options.poll,
            milliseconds(self.first_start),
            self.cold_starts.len(),
            verdict(median < 1000.0),
            self.resident_kib as f64 / 1024.0,
        )
    }
}
