//! Durable append throughput with 1, 10 and 100 concurrent appenders, with the active segment
//! preallocated (the default, [`LogOptions::preallocate_bytes`]) and grown with every batch (0),
//! side by side.
//!
//! Every append resolves only after its group commit was `fdatasync`ed, so the numbers measure
//! durable appends per second on this machine's disk. "CPU per fdatasync" is the process's user
//! and system time (from `/proc/self/stat`) divided by the group commits.
//!
//! Run: `cargo run --release -p store --example bench [-- SECONDS_PER_RUN PAYLOAD_BYTES]`
//! (defaults: 3 seconds, 256-byte payloads). The log lives in a temporary directory under
//! `$TMPDIR` (or /tmp), so that is the disk being measured.

use std::time::{Duration, Instant};

use bytes::Bytes;
use store::{LogHandle, LogOptions};

fn main() {
    let mut arguments = std::env::args().skip(1);
    let seconds_per_run: u64 = arguments
        .next()
        .map(|value| value.parse().expect("SECONDS_PER_RUN must be a number"))
        .unwrap_or(3);
    let payload_bytes: usize = arguments
        .next()
        .map(|value| value.parse().expect("PAYLOAD_BYTES must be a number"))
        .unwrap_or(256);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "durable appends, {payload_bytes}-byte payloads, {seconds_per_run} s per run, directory under {}",
        std::env::temp_dir().display()
    );
    println!(
        "| segment file | appenders | appends/s | MB/s | mean latency | records per fdatasync | CPU per fdatasync |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for appenders in [1usize, 10, 100] {
        for preallocate_bytes in [LogOptions::default().preallocate_bytes, 0] {
            let cpu_before = process_cpu_seconds();
            let (appends, group_commits, elapsed) = runtime.block_on(run(
                appenders,
                payload_bytes,
                preallocate_bytes,
                Duration::from_secs(seconds_per_run),
            ));
            let cpu = process_cpu_seconds() - cpu_before;
            let appends_per_second = appends as f64 / elapsed.as_secs_f64();
            let megabytes_per_second = appends_per_second * payload_bytes as f64 / 1e6;
            let mean_latency = elapsed.as_secs_f64() * appenders as f64 / appends as f64;
            let file = if preallocate_bytes > 0 {
                "preallocated"
            } else {
                "grown per batch"
            };
            println!(
                "| {file} | {appenders} | {appends_per_second:.0} | {megabytes_per_second:.2} | {:.2} ms | {:.1} | {:.0} µs |",
                mean_latency * 1e3,
                appends as f64 / group_commits.max(1) as f64,
                cpu * 1e6 / group_commits.max(1) as f64
            );
        }
    }
}

/// User plus system time of this process so far, in seconds (Linux; 0 elsewhere).
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&index| fields.get(index)?.parse::<f64>().ok())
        .sum();
    // The kernel reports in USER_HZ, which is 100 on every mainstream Linux build.
    ticks / 100.0
}

async fn run(
    appenders: usize,
    payload_bytes: usize,
    preallocate_bytes: u64,
    duration: Duration,
) -> (u64, u64, Duration) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let options = LogOptions {
        preallocate_bytes,
        ..LogOptions::default()
    };
    let log = LogHandle::open(directory.path(), options)
        .await
        .expect("open log");
    let payload = Bytes::from(vec![b'x'; payload_bytes]);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..appenders {
        let log = log.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut appends = 0u64;
            while Instant::now() < deadline {
                log.append(payload.clone()).await.expect("append");
                appends += 1;
            }
            appends
        }));
    }
    let mut appends = 0;
    for task in tasks {
        appends += task.await.expect("appender task");
    }
    let elapsed = started.elapsed();
    let group_commits = log.stats().group_commits;
    log.close().await.expect("close");
    (appends, group_commits, elapsed)
}
