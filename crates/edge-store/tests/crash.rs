//! Crash safety with `kill -9` under load: a child process (this same test binary, re-invoked
//! with an environment variable) puts messages to two endpoints from several tasks, prints each
//! acknowledged put, and consumes and acknowledges both endpoints while printing what it was
//! handed. The parent kills it with SIGKILL at an arbitrary moment, three rounds in a row on the
//! same directory, then reopens the store and reads everything left. Every put that returned Ok
//! must have been handed out before a crash or be handed out now, exactly once now, in order per
//! endpoint; redeliveries of messages handed out but not durably acknowledged are counted.
//!
//! This file has its own `main` (no libtest harness) because the child mode must run in place of
//! the tests.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_store::{EndpointId, MessageStore, Overflow, Priority, StoreOptions, Target};

const CHILD_DIRECTORY_VARIABLE: &str = "EDGE_STORE_CRASH_CHILD_DIRECTORY";
const CHILD_ROUND_VARIABLE: &str = "EDGE_STORE_CRASH_CHILD_ROUND";
const PUTTERS: u64 = 8;
/// Acknowledged puts the parent waits for before killing, per round.
const KILL_AFTER_PUTS: [usize; 3] = [300, 700, 450];
const ENDPOINTS: [&str; 2] = ["$upstream", "edge-1/filter/input1"];

fn options() -> StoreOptions {
    StoreOptions {
        max_bytes: 4 * 1024 * 1024,
        segment_bytes: 16 * 1024,
        ..StoreOptions::default()
    }
}

fn endpoint(index: usize) -> EndpointId {
    EndpointId::new(ENDPOINTS[index]).unwrap()
}

fn payload(round: u64, putter: u64, counter: u64) -> Bytes {
    let mut bytes = format!("r{round} p{putter} c{counter} ").into_bytes();
    let length = 30 + ((putter * 131 + counter * 17) % 200) as usize;
    bytes.resize(length, b'z');
    Bytes::from(bytes)
}

fn main() {
    if let Ok(directory) = std::env::var(CHILD_DIRECTORY_VARIABLE) {
        let round = std::env::var(CHILD_ROUND_VARIABLE)
            .unwrap()
            .parse()
            .unwrap();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(run_child(PathBuf::from(directory), round));
        return;
    }
    let started = Instant::now();
    let outcome = std::panic::catch_unwind(run_parent);
    let elapsed = started.elapsed();
    match outcome {
        Ok(()) => {
            println!("test kill_9_loses_nothing_acknowledged ... ok ({elapsed:.1?})");
            println!("1 passed, 0 failed");
        }
        Err(_) => {
            println!("test kill_9_loses_nothing_acknowledged ... FAILED");
            std::process::exit(101);
        }
    }
}

/// Puts forever from several tasks and consumes both endpoints; prints
/// `put <sequence> <targets bitmask> <payload>` after each durable put and
/// `got <endpoint> <sequence>` for each message handed out (before acknowledging it).
async fn run_child(directory: PathBuf, round: u64) {
    let store = MessageStore::open(directory, options()).await.unwrap();
    for putter in 0..PUTTERS {
        let store = store.clone();
        tokio::spawn(async move {
            for counter in 0.. {
                let payload = payload(round, putter, counter);
                let mask = 1 + (putter + counter) % 3; // 1: first, 2: second, 3: both
                let targets: Vec<_> = (0..2)
                    .filter(|index| mask & (1 << index) != 0)
                    .map(|index| Target {
                        endpoint: endpoint(index),
                        priority: Priority::DEFAULT,
                        time_to_live: Duration::ZERO,
                        overflow: Overflow::RefuseNew,
                    })
                    .collect();
                let sequence = loop {
                    match store
                        .put(payload.clone(), targets.clone(), store::now_ms())
                        .await
                    {
                        Ok(sequence) => break sequence,
                        Err(error) if error.is_full() => store.space_freed().await,
                        Err(error) => panic!("put failed: {error}"),
                    }
                };
                let text = String::from_utf8(payload.to_vec()).unwrap();
                print_line(&format!("put {sequence} {mask} {text}"));
            }
        });
    }
    for index in 0..2 {
        let store = store.clone();
        tokio::spawn(async move {
            let mut reader = store.reader(&endpoint(index));
            loop {
                let batch = reader
                    .next_batch(16, 1 << 20, store::now_ms())
                    .await
                    .unwrap();
                for message in &batch.messages {
                    print_line(&format!("got {index} {}", message.sequence));
                }
                reader.ack(&batch).await.unwrap();
            }
        });
    }
    std::future::pending::<()>().await;
}

/// Writes one line to stdout at once (before the caller goes on, so that the parent has seen
/// everything that happened before a kill).
fn print_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").unwrap();
    stdout.flush().unwrap();
}

#[derive(Default)]
struct Observed {
    /// Durable puts: sequence -> (targets bitmask, payload).
    puts: BTreeMap<u64, (u64, String)>,
    /// Per endpoint: sequences handed out by a child.
    handed_out: [BTreeSet<u64>; 2],
    /// Messages a child handed out although an earlier child had already handed them out.
    redelivered_by_children: usize,
}

fn run_child_round(directory: &Path, round: u64, observed: &mut Observed) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_DIRECTORY_VARIABLE, directory)
        .env(CHILD_ROUND_VARIABLE, round.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut puts_this_round = 0;
    for line in stdout.lines() {
        let line = line.unwrap();
        let mut words = line.splitn(4, ' ');
        match words.next() {
            Some("put") => {
                let sequence: u64 = words.next().unwrap().parse().unwrap();
                let mask: u64 = words.next().unwrap().parse().unwrap();
                let text = words.next().unwrap().to_owned();
                observed.puts.insert(sequence, (mask, text));
                puts_this_round += 1;
                if puts_this_round == KILL_AFTER_PUTS[round as usize] {
                    // std's kill sends SIGKILL.
                    child.kill().unwrap();
                }
            }
            Some("got") => {
                let index: usize = words.next().unwrap().parse().unwrap();
                let sequence: u64 = words.next().unwrap().parse().unwrap();
                if !observed.handed_out[index].insert(sequence) {
                    observed.redelivered_by_children += 1;
                }
            }
            _ => panic!("unexpected child output {line:?}"),
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed");
}

fn run_parent() {
    let directory = tempfile::tempdir().unwrap();
    let mut observed = Observed::default();
    for round in 0..3 {
        run_child_round(directory.path(), round, &mut observed);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = MessageStore::open(directory.path(), options()).await.unwrap();
        let mut duplicates = 0;
        let mut delivered_now = 0;
        for (index, name) in ENDPOINTS.iter().enumerate() {
            let mut reader = store.reader(&endpoint(index));
            let mut delivered = Vec::new();
            while let Ok(batch) = tokio::time::timeout(
                Duration::from_millis(300),
                reader.next_batch(1000, 1 << 24, store::now_ms()),
            )
            .await
            {
                let batch = batch.unwrap();
                for message in &batch.messages {
                    if let Some((mask, text)) = observed.puts.get(&message.sequence) {
                        assert!(mask & (1 << index) != 0, "delivered to a non-target");
                        assert_eq!(message.payload, text.as_bytes(), "payload of {}", message.sequence);
                    }
                    delivered.push(message.sequence);
                }
                reader.ack(&batch).await.unwrap();
            }
            assert!(
                delivered.windows(2).all(|pair| pair[0] < pair[1]),
                "order per endpoint"
            );
            let delivered: BTreeSet<u64> = delivered.into_iter().collect();
            for (sequence, (mask, _)) in &observed.puts {
                if mask & (1 << index) != 0 {
                    assert!(
                        delivered.contains(sequence) || observed.handed_out[index].contains(sequence),
                        "acknowledged put {sequence} to {name} was lost"
                    );
                }
            }
            duplicates += delivered.intersection(&observed.handed_out[index]).count();
            delivered_now += delivered.len();
        }
        let handed_out: usize = observed.handed_out.iter().map(BTreeSet::len).sum();
        println!(
            "acknowledged puts: {}, handed out before crashes: {handed_out}, delivered after the last crash: {delivered_now}, duplicates (handed out again after a crash because the ack was not durable yet): {}",
            observed.puts.len(),
            duplicates + observed.redelivered_by_children
        );
        store.close().await.unwrap();
    });
}
