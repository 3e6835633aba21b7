//! Real crash safety: a child process (this same test binary, re-invoked with an environment
//! variable) appends from several concurrent appenders and prints every acknowledged offset;
//! the parent kills it with SIGKILL at an arbitrary moment, reopens the log and checks that every
//! printed offset is present with the right payload. Three rounds run against the same
//! directory, so recovery after a kill is itself followed by more appends and another kill.
//!
//! This file has its own `main` (no libtest harness) because the child mode must run in place of
//! the tests.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use store::{LogHandle, LogOptions, ReadLimits};

const CHILD_DIRECTORY_VARIABLE: &str = "STORE_CRASH_CHILD_DIRECTORY";
const CHILD_ROUND_VARIABLE: &str = "STORE_CRASH_CHILD_ROUND";
const APPENDERS: u64 = 8;
const ROUNDS: u64 = 3;
/// Acknowledgements the parent waits for before killing, growing each round.
const KILL_AFTER_ACKNOWLEDGEMENTS: [usize; 3] = [150, 400, 250];

fn options() -> LogOptions {
    LogOptions {
        segment_max_bytes: 16 * 1024,
        index_interval_bytes: 1024,
        ..LogOptions::default()
    }
}

/// The payload appender `appender` writes as its `sequence`-th record in `round`; its length
/// varies so frames straddle read windows and segment ends.
fn payload(round: u64, appender: u64, sequence: u64) -> Bytes {
    let mut bytes = format!("round {round} appender {appender} sequence {sequence} ").into_bytes();
    let length = 40 + ((appender * 131 + sequence * 17) % 300) as usize;
    while bytes.len() < length {
        bytes.push(b'a' + (bytes.len() % 26) as u8);
    }
    Bytes::from(bytes)
}

fn main() {
    if let Ok(directory) = std::env::var(CHILD_DIRECTORY_VARIABLE) {
        let round = std::env::var(CHILD_ROUND_VARIABLE)
            .expect("round variable")
            .parse()
            .expect("round number");
        run_child(PathBuf::from(directory), round);
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
            println!("0 passed, 1 failed");
            std::process::exit(101);
        }
    }
}

/// Appends forever from concurrent tasks, printing `offset round appender sequence` per
/// acknowledged record, until killed.
fn run_child(directory: PathBuf, round: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let log = LogHandle::open(directory, options())
            .await
            .expect("open log");
        let (line_sender, mut line_receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
        for appender in 0..APPENDERS {
            let log = log.clone();
            let line_sender = line_sender.clone();
            tokio::spawn(async move {
                for sequence in 0.. {
                    let offset = log
                        .append(payload(round, appender, sequence))
                        .await
                        .expect("append");
                    if line_sender
                        .send(format!("{offset} {round} {appender} {sequence}\n"))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
        drop(line_sender);
        let mut stdout = std::io::stdout().lock();
        while let Some(line) = line_receiver.recv().await {
            stdout.write_all(line.as_bytes()).expect("stdout");
            stdout.flush().expect("stdout");
        }
    });
}

fn run_parent() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let mut acknowledged: BTreeMap<u64, Bytes> = BTreeMap::new();
    for round in 0..ROUNDS {
        let printed = run_and_kill_child(
            directory.path(),
            round,
            KILL_AFTER_ACKNOWLEDGEMENTS[round as usize],
        );
        for (offset, payload) in printed {
            assert!(
                acknowledged.insert(offset, payload).is_none(),
                "offset {offset} acknowledged twice"
            );
        }
        verify(directory.path(), &acknowledged);
    }
}

/// Runs one child until it printed `kill_after` acknowledgements, kills it with SIGKILL and
/// returns every complete line it printed.
fn run_and_kill_child(directory: &Path, round: u64, kill_after: usize) -> Vec<(u64, Bytes)> {
    let mut child = Command::new(std::env::current_exe().expect("current executable"))
        .env(CHILD_DIRECTORY_VARIABLE, directory)
        .env(CHILD_ROUND_VARIABLE, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let mut reader = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut line = String::new();
    while printed.len() < kill_after {
        line.clear();
        let read = reader.read_line(&mut line).expect("read child output");
        assert!(read > 0, "child exited early after {} lines", printed.len());
        printed.push(parse_line(&line));
        assert!(Instant::now() < deadline, "child too slow");
    }
    // SIGKILL: no destructor, no flush, no close of the log.
    child.kill().expect("kill child");
    // Lines the child wrote before it died are still in the pipe: they count too.
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.ends_with('\n') => printed.push(parse_line(&line)),
            Ok(_) => break,
        }
    }
    child.wait().expect("reap child");
    printed
}

fn parse_line(line: &str) -> (u64, Bytes) {
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(|field| field.parse().expect("numeric field"))
        .collect();
    let [offset, round, appender, sequence] = fields[..] else {
        panic!("malformed child line {line:?}");
    };
    (offset, payload(round, appender, sequence))
}

/// Reopens the log and checks that every acknowledged record is there, in order, intact.
fn verify(directory: &Path, acknowledged: &BTreeMap<u64, Bytes>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let log = LogHandle::open(directory, options())
            .await
            .expect("reopen log");
        let records = log
            .read_from(
                0,
                ReadLimits {
                    max_records: usize::MAX,
                    max_bytes: usize::MAX,
                },
            )
            .await
            .expect("read back");
        assert!(
            records
                .windows(2)
                .all(|pair| pair[0].offset < pair[1].offset),
            "offsets out of order"
        );
        let stored: BTreeMap<u64, Bytes> = records
            .into_iter()
            .map(|record| (record.offset, record.payload))
            .collect();
        for (offset, payload) in acknowledged {
            let found = stored.get(offset);
            assert_eq!(found, Some(payload), "acknowledged offset {offset}");
        }
        let unacknowledged_but_durable = stored.len() - acknowledged.len();
        eprintln!(
            "crash round verified: {} acknowledged records present, {} more durable but unreported",
            acknowledged.len(),
            unacknowledged_but_durable
        );
        log.close().await.expect("close");
    });
}
