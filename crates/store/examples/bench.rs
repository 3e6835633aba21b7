//! Durable append throughput with 1, 10 and 100 concurrent appenders.
//!
//! Every append resolves only after its group commit was `fdatasync`ed, so the numbers measure
//! durable appends per second on this machine's disk.
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
    println!("| appenders | appends/s | MB/s | mean latency | records per fdatasync |");
    println!("|---:|---:|---:|---:|---:|");
    for appenders in [1usize, 10, 100] {
        let (appends, group_commits, elapsed) = runtime.block_on(run(
            appenders,
            payload_bytes,
            Duration::from_secs(seconds_per_run),
        ));
        let appends_per_second = appends as f64 / elapsed.as_secs_f64();
        let megabytes_per_second = appends_per_second * payload_bytes as f64 / 1e6;
        let mean_latency = elapsed.as_secs_f64() * appenders as f64 / appends as f64;
        println!(
            "| {appenders} | {appends_per_second:.0} | {megabytes_per_second:.2} | {:.2} ms | {:.1} |",
            mean_latency * 1e3,
            appends as f64 / group_commits.max(1) as f64
        );
    }
}

async fn run(appenders: usize, payload_bytes: usize, duration: Duration) -> (u64, u64, Duration) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let log = LogHandle::open(directory.path(), LogOptions::default())
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
