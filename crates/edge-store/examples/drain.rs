//! Stores 1,000,000 messages of 256 bytes for `$upstream`, then drains them, and prints the put
//! rate (many concurrent puts, so group commit batches them), the time to reopen (which rebuilds
//! the segment summaries by one scan) and the drain rate (batches of 1000, each acknowledged).
//!
//! `cargo run --release -p edge-store --example drain [messages] [concurrent putters]`

use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_store::{EndpointId, MessageStore, Overflow, Priority, StoreOptions, Target};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1);
    let messages: u64 = arguments.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let putters: u64 = arguments.next().map_or(Ok(512), |a| a.parse())?;
    let directory = tempfile::tempdir()?;
    let options = StoreOptions {
        max_bytes: 2 * 1024 * 1024 * 1024,
        ..StoreOptions::default()
    };
    let store = MessageStore::open(directory.path(), options.clone()).await?;
    let payload = Bytes::from(vec![b'm'; 256]);
    let target = Target {
        endpoint: EndpointId::upstream(),
        priority: Priority::DEFAULT,
        time_to_live: Duration::ZERO,
        overflow: Overflow::RefuseNew,
    };

    let started = Instant::now();
    let mut tasks = Vec::new();
    for putter in 0..putters {
        let store = store.clone();
        let payload = payload.clone();
        let target = target.clone();
        let count = messages / putters + u64::from(putter < messages % putters);
        tasks.push(tokio::spawn(async move {
            for _ in 0..count {
                store.put(payload.clone(), vec![target.clone()], 0).await?;
            }
            Ok::<_, edge_store::EdgeStoreError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let put_elapsed = started.elapsed();
    let stats = store.stats();
    println!(
        "put:    {messages} messages of 256 B with {putters} concurrent putters in {put_elapsed:.2?}: {:.0} msgs/s, {} MiB on disk",
        messages as f64 / put_elapsed.as_secs_f64(),
        stats.bytes_on_disk / (1024 * 1024)
    );

    store.close().await?;
    let started = Instant::now();
    let store = MessageStore::open(directory.path(), options).await?;
    println!(
        "reopen: {:.2?} (one scan rebuilds the segment summaries)",
        started.elapsed()
    );

    // One urgent message behind everything: the reader must find it without reading the
    // segments whose summaries show no priority-0 record.
    let urgent = Target {
        priority: Priority::new(0)?,
        ..target
    };
    store
        .put(Bytes::from_static(b"urgent"), vec![urgent], 0)
        .await?;
    let mut reader = store.reader(&EndpointId::upstream());
    let started = Instant::now();
    let batch = reader.next_batch(1000, 4 * 1024 * 1024, 0).await?;
    assert_eq!(batch.priority.get(), 0);
    reader.ack(&batch).await?;
    println!(
        "urgent: a priority-0 message behind {messages} stored ones delivered and acked in {:.2?}",
        started.elapsed()
    );

    let started = Instant::now();
    let mut drained = 0u64;
    while drained < messages {
        let batch = reader.next_batch(1000, 4 * 1024 * 1024, 0).await?;
        drained += batch.messages.len() as u64;
        reader.ack(&batch).await?;
    }
    let drain_elapsed = started.elapsed();
    println!(
        "drain:  {drained} messages in batches of 1000 (each acked durably) in {drain_elapsed:.2?}: {:.0} msgs/s; {} MiB left on disk",
        drained as f64 / drain_elapsed.as_secs_f64(),
        store.stats().bytes_on_disk / (1024 * 1024)
    );
    store.close().await?;
    Ok(())
}
