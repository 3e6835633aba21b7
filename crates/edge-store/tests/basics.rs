//! Behaviour of the public API one rule at a time: fan-out, priorities, acknowledgement across
//! reopen, expiry, back-pressure, dropping, validation and event-driven wake-up.

use std::time::Duration;

use bytes::Bytes;
use edge_store::{
    EdgeStoreError, EndpointId, MessageStore, Overflow, Priority, StoreOptions, Target,
};

/// A target that refuses new messages at the byte bound.
fn target(endpoint: &str, priority: u8, time_to_live_ms: u64) -> Target {
    Target {
        endpoint: EndpointId::new(endpoint).unwrap(),
        priority: Priority::new(priority).unwrap(),
        time_to_live: Duration::from_millis(time_to_live_ms),
        overflow: Overflow::RefuseNew,
    }
}

/// A target that lets the oldest segments go at the byte bound.
fn dropping(endpoint: &str, priority: u8, time_to_live_ms: u64) -> Target {
    Target {
        overflow: Overflow::DropOldest,
        ..target(endpoint, priority, time_to_live_ms)
    }
}

fn small_options() -> StoreOptions {
    StoreOptions {
        max_bytes: 4096,
        segment_bytes: 1024,
        ..StoreOptions::default()
    }
}

/// Payloads of the next batch of `endpoint` as text, with the batch's priority.
async fn next(reader: &mut edge_store::EndpointReader, max: usize, now_ms: u64) -> String {
    let batch = reader.next_batch(max, usize::MAX, now_ms).await.unwrap();
    let payloads: Vec<_> = batch
        .messages
        .iter()
        .map(|message| String::from_utf8(message.payload.to_vec()).unwrap())
        .collect();
    format!("p{} {}", batch.priority.get(), payloads.join(","))
}

async fn put(store: &MessageStore, payload: &str, targets: Vec<Target>, now_ms: u64) -> u64 {
    store
        .put(Bytes::copy_from_slice(payload.as_bytes()), targets, now_ms)
        .await
        .unwrap()
}

/// Puts `payload` for `targets` until the store refuses one; returns how many it accepted and
/// the refusal. Fails the test if 100 puts all succeed.
async fn fill_until_refused(
    store: &MessageStore,
    payload: &Bytes,
    targets: &[Target],
    now_ms: u64,
) -> (u64, EdgeStoreError) {
    for accepted in 0..100 {
        if let Err(error) = store.put(payload.clone(), targets.to_vec(), now_ms).await {
            return (accepted, error);
        }
    }
    panic!("the store accepted 100 puts of {} bytes", payload.len());
}

#[tokio::test]
async fn fan_out_priorities_and_acks_survive_reopen() {
    let directory = tempfile::tempdir().unwrap();
    let store = MessageStore::open(directory.path(), StoreOptions::default())
        .await
        .unwrap();
    let module = "edge-1/filter/input1";
    put(
        &store,
        "a",
        vec![target("$upstream", 10, 0), target(module, 10, 0)],
        0,
    )
    .await;
    put(&store, "b", vec![target("$upstream", 2, 0)], 0).await;
    put(&store, "c", vec![target("$upstream", 10, 0)], 0).await;
    put(
        &store,
        "d",
        vec![target("$upstream", 2, 0), target(module, 0, 0)],
        0,
    )
    .await;

    let mut upstream = store.reader(&EndpointId::upstream());
    assert_eq!(next(&mut upstream, 10, 1).await, "p2 b,d");
    // Several batches in flight: the next one continues after the last.
    assert_eq!(next(&mut upstream, 1, 1).await, "p10 a");
    let in_flight = upstream.next_batch(10, usize::MAX, 1).await.unwrap();
    assert_eq!(in_flight.messages.len(), 1);

    let mut input = store.reader(&EndpointId::new(module).unwrap());
    let first = input.next_batch(10, usize::MAX, 1).await.unwrap();
    assert_eq!(first.priority.get(), 0);
    input.ack(&first).await.unwrap();

    // Acknowledge only the priority-2 batch by replaying: rewind, take it again, ack it.
    upstream.rewind();
    let high = upstream.next_batch(10, usize::MAX, 1).await.unwrap();
    assert_eq!(high.priority.get(), 2);
    upstream.ack(&high).await.unwrap();

    store.close().await.unwrap();
    let store = MessageStore::open(directory.path(), StoreOptions::default())
        .await
        .unwrap();
    let mut upstream = store.reader(&EndpointId::upstream());
    assert_eq!(next(&mut upstream, 10, 1).await, "p10 a,c");
    let mut input = store.reader(&EndpointId::new(module).unwrap());
    assert_eq!(next(&mut input, 10, 1).await, "p10 a");
    store.close().await.unwrap();
}

#[tokio::test]
async fn expired_messages_are_skipped_and_counted() {
    let directory = tempfile::tempdir().unwrap();
    let store = MessageStore::open(directory.path(), StoreOptions::default())
        .await
        .unwrap();
    put(&store, "short", vec![target("$upstream", 10, 100)], 1_000).await;
    put(&store, "long", vec![target("$upstream", 10, 10_000)], 1_000).await;
    let mut reader = store.reader(&EndpointId::upstream());
    assert_eq!(next(&mut reader, 10, 1_100).await, "p10 long");
    assert_eq!(store.stats().expired_skipped, 1);
    store.close().await.unwrap();
}

#[tokio::test]
async fn refuse_new_is_back_pressure_until_acks_free_space() {
    let directory = tempfile::tempdir().unwrap();
    let store = MessageStore::open(directory.path(), small_options())
        .await
        .unwrap();
    let payload = Bytes::from(vec![b'x'; 200]);
    let (accepted, refused) =
        fill_until_refused(&store, &payload, &[target("$upstream", 10, 0)], 0).await;
    assert!(matches!(refused, EdgeStoreError::Full { .. }), "{refused}");
    assert!(store.stats().bytes_on_disk <= 4096);
    assert!(accepted >= 10, "{accepted}");

    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.space_freed().await })
    };
    let mut reader = store.reader(&EndpointId::upstream());
    let batch = reader.next_batch(8, usize::MAX, 0).await.unwrap();
    reader.ack(&batch).await.unwrap();
    waiter.await.unwrap();
    store
        .put(payload, vec![target("$upstream", 10, 0)], 0)
        .await
        .unwrap();
    store.close().await.unwrap();
}

#[tokio::test]
async fn drop_oldest_counts_what_it_loses() {
    let directory = tempfile::tempdir().unwrap();
    let store = MessageStore::open(directory.path(), small_options())
        .await
        .unwrap();
    let payload = Bytes::from(vec![b'x'; 200]);
    for _ in 0..40 {
        store
            .put(
                payload.clone(),
                vec![dropping("$upstream", 10, 0), dropping("m/in", 3, 0)],
                0,
            )
            .await
            .unwrap();
    }
    let stats = store.stats();
    assert!(stats.bytes_on_disk <= stats.max_bytes);
    // Two targets per message: every dropped message is two lost queue entries.
    let kept = stats.next_sequence - stats.first_sequence;
    assert_eq!(stats.dropped_overflow, 2 * (40 - kept));
    let mut reader = store.reader(&EndpointId::upstream());
    let batch = reader.next_batch(100, usize::MAX, 0).await.unwrap();
    assert_eq!(batch.messages.len() as u64, kept);
    assert_eq!(batch.messages[0].sequence, stats.first_sequence);
    store.close().await.unwrap();
}

#[tokio::test]
async fn drop_oldest_never_deletes_what_a_refuse_new_target_still_needs() {
    let directory = tempfile::tempdir().unwrap();
    let store = MessageStore::open(directory.path(), small_options())
        .await
        .unwrap();
    let payload = Bytes::from(vec![b'x'; 200]);
    // The oldest messages belong to a refuse-new route ("kept"); the rest may be dropped.
    for _ in 0..4 {
        put(&store, "kept", vec![target("kept", 10, 0)], 0).await;
    }
    // The refuse-new messages hold the oldest segment, so drop-oldest puts are refused at the
    // bound instead of deleting them.
    let (dropping_accepted, refused) =
        fill_until_refused(&store, &payload, &[dropping("lossy", 10, 0)], 0).await;
    assert!(refused.is_full(), "{refused}");
    assert!(dropping_accepted >= 5, "{dropping_accepted}");
    assert_eq!(store.stats().dropped_overflow, 0, "nothing was deleted");
    // A message with one refuse-new and one drop-oldest target is refused as a whole.
    let mixed = store
        .put(
            payload.clone(),
            vec![target("kept", 10, 0), dropping("lossy", 10, 0)],
            0,
        )
        .await;
    assert!(mixed.is_err_and(|error| error.is_full()));

    // Once the refuse-new messages are acknowledged, drop-oldest makes room again.
    let mut kept = store.reader(&EndpointId::new("kept").unwrap());
    let batch = kept.next_batch(10, usize::MAX, 0).await.unwrap();
    assert_eq!(batch.messages.len(), 4);
    kept.ack(&batch).await.unwrap();
    store
        .put(payload.clone(), vec![dropping("lossy", 10, 0)], 0)
        .await
        .unwrap();
    let dropped = store.stats().dropped_overflow;
    assert!(dropped > 0);
    // A refuse-new message makes room by dropping drop-oldest ones too: only its own entries
    // are protected.
    while store.stats().bytes_on_disk + 300 < store.stats().max_bytes {
        store
            .put(payload.clone(), vec![dropping("lossy", 10, 0)], 0)
            .await
            .unwrap();
    }
    for _ in 0..10 {
        store
            .put(payload.clone(), vec![target("kept", 10, 0)], 0)
            .await
            .unwrap();
    }
    assert!(store.stats().dropped_overflow > dropped);
    store.close().await.unwrap();

    // Expired refuse-new messages do not hold the space either (here across a reopen, so the
    // policy is read back from the records).
    let directory = tempfile::tempdir().unwrap();
    let store = MessageStore::open(directory.path(), small_options())
        .await
        .unwrap();
    put(&store, "kept", vec![target("kept", 10, 1_000)], 0).await;
    // The unexpired refuse-new message holds the oldest segment.
    let (_, refused) = fill_until_refused(&store, &payload, &[dropping("lossy", 10, 0)], 500).await;
    assert!(refused.is_full(), "{refused}");
    store.close().await.unwrap();
    let store = MessageStore::open(directory.path(), small_options())
        .await
        .unwrap();
    let still_refused = store
        .put(payload.clone(), vec![dropping("lossy", 10, 0)], 999)
        .await;
    assert!(still_refused.is_err_and(|error| error.is_full()));
    for _ in 0..20 {
        store
            .put(payload.clone(), vec![dropping("lossy", 10, 0)], 1_000)
            .await
            .unwrap();
    }
    store.close().await.unwrap();
}

#[tokio::test]
async fn the_byte_bound_can_be_lowered_and_raised_back_while_open() {
    let directory = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        max_bytes: 8192,
        ..small_options()
    };
    let store = MessageStore::open(directory.path(), options).await.unwrap();
    assert_eq!(store.set_max_bytes(100), 2048, "at least two segments");
    assert_eq!(
        store.set_max_bytes(1 << 40),
        8192,
        "at most the bound it opened with"
    );
    assert_eq!(store.set_max_bytes(4096), 4096);
    let payload = Bytes::from(vec![b'x'; 200]);
    // The lowered bound is enforced.
    let (_, refused) = fill_until_refused(&store, &payload, &[target("a", 10, 0)], 0).await;
    assert!(refused.is_full(), "{refused}");
    let stats = store.stats();
    assert_eq!(stats.max_bytes, 4096);
    assert!(stats.bytes_on_disk <= 4096, "{stats:?}");
    // Raising the bound wakes the writers held back.
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.space_freed().await })
    };
    store.set_max_bytes(8192);
    waiter.await.unwrap();
    store
        .put(payload, vec![target("a", 10, 0)], 0)
        .await
        .unwrap();
    store.close().await.unwrap();
}

#[tokio::test]
async fn reclaim_deletes_expired_and_acknowledged_segments_only() {
    let directory = tempfile::tempdir().unwrap();
    let store = MessageStore::open(directory.path(), small_options())
        .await
        .unwrap();
    let payload = Bytes::from(vec![b'x'; 300]);
    for _ in 0..6 {
        store
            .put(payload.clone(), vec![target("a", 10, 1_000)], 0)
            .await
            .unwrap();
    }
    assert_eq!(store.reclaim(999).await.unwrap().deleted_segments, 0);
    let reclaimed = store.reclaim(1_000).await.unwrap();
    assert!(reclaimed.deleted_segments >= 1, "{reclaimed:?}");
    store.close().await.unwrap();
}

#[tokio::test]
async fn invalid_input_is_rejected() {
    assert!(EndpointId::new("").is_err());
    assert!(EndpointId::new("a\nb").is_err());
    assert!(EndpointId::new(&"x".repeat(257)).is_err());
    assert!(EndpointId::new(&"x".repeat(256)).is_ok());
    assert!(Priority::new(11).is_err());
    assert_eq!(Priority::new(10).unwrap(), Priority::DEFAULT);
    assert_eq!(EndpointId::upstream().to_string(), "$upstream");

    let directory = tempfile::tempdir().unwrap();
    let too_small = StoreOptions {
        max_bytes: 1024,
        segment_bytes: 1024,
        ..StoreOptions::default()
    };
    assert!(
        MessageStore::open(directory.path(), too_small)
            .await
            .is_err()
    );
    let store = MessageStore::open(directory.path(), StoreOptions::default())
        .await
        .unwrap();
    let no_targets = store.put(Bytes::new(), Vec::new(), 0).await;
    assert!(matches!(no_targets, Err(EdgeStoreError::NoTargets)));
    store.close().await.unwrap();
}

#[tokio::test]
async fn long_endpoint_ids_keep_separate_cursors() {
    let directory = tempfile::tempdir().unwrap();
    let first = format!("{}/one", "m".repeat(250));
    let second = format!("{}/two", "m".repeat(250));
    let store = MessageStore::open(directory.path(), StoreOptions::default())
        .await
        .unwrap();
    put(
        &store,
        "x",
        vec![target(&first, 10, 0), target(&second, 10, 0)],
        0,
    )
    .await;
    let mut reader = store.reader(&EndpointId::new(&first).unwrap());
    let batch = reader.next_batch(10, usize::MAX, 0).await.unwrap();
    reader.ack(&batch).await.unwrap();
    store.close().await.unwrap();
    let store = MessageStore::open(directory.path(), StoreOptions::default())
        .await
        .unwrap();
    let mut reader = store.reader(&EndpointId::new(&second).unwrap());
    assert_eq!(next(&mut reader, 10, 0).await, "p10 x");
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_newer_reader_retires_the_old_one() {
    let directory = tempfile::tempdir().unwrap();
    let store = MessageStore::open(directory.path(), StoreOptions::default())
        .await
        .unwrap();
    let mut old = store.reader(&EndpointId::upstream());
    let _new = store.reader(&EndpointId::upstream());
    let result = old.next_batch(1, 1, 0).await;
    assert!(matches!(result, Err(EdgeStoreError::ReaderReplaced(_))));
    store.close().await.unwrap();
}

/// The reader sleeps without a timer and wakes as soon as a put for it is durable: with the
/// clock paused, a timer-based poll would have to advance time, and it does not.
#[tokio::test(start_paused = true)]
async fn next_batch_wakes_on_put_without_polling() {
    let directory = tempfile::tempdir().unwrap();
    let store = MessageStore::open(directory.path(), StoreOptions::default())
        .await
        .unwrap();
    let mut reader = store.reader(&EndpointId::upstream());
    let mut waiting = tokio::spawn(async move {
        let batch = reader.next_batch(10, usize::MAX, 0).await.unwrap();
        (batch, tokio::time::Instant::now())
    });
    // Nothing to deliver: the reader is still waiting an hour later.
    assert!(
        tokio::time::timeout(Duration::from_secs(3600), &mut waiting)
            .await
            .is_err()
    );
    // A put for another endpoint does not satisfy it either.
    put(&store, "other", vec![target("m/in", 10, 0)], 0).await;
    let put_at = tokio::time::Instant::now();
    put(&store, "mine", vec![target("$upstream", 10, 0)], 0).await;
    let (batch, woke_at) = waiting.await.unwrap();
    assert_eq!(batch.messages[0].payload, "mine");
    assert_eq!(woke_at, put_at, "woken without any timer");
    store.close().await.unwrap();
}

/// Concurrent puts are recorded in any order; the loss count must still be exact when an ack
/// cursor sits inside a dropped segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_drop_oldest_accounts_for_every_message() {
    let directory = tempfile::tempdir().unwrap();
    let store = MessageStore::open(directory.path(), small_options())
        .await
        .unwrap();
    let payload = Bytes::from(vec![b'x'; 100]);
    // The first segment is written concurrently too, then acknowledged into its middle.
    let first_puts: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let targets = vec![dropping("$upstream", 10, 0)];
                store.put(payload, targets, 0).await.unwrap()
            })
        })
        .collect();
    for put in first_puts {
        put.await.unwrap();
    }
    let mut reader = store.reader(&EndpointId::upstream());
    let acked = reader.next_batch(5, usize::MAX, 0).await.unwrap();
    reader.ack(&acked).await.unwrap();
    assert_eq!(store.pending_estimate(&EndpointId::upstream()), 8);

    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let mut stored = 0u64;
                for _ in 0..10 {
                    match store
                        .put(payload.clone(), vec![dropping("$upstream", 10, 0)], 0)
                        .await
                    {
                        Ok(_) => stored += 1,
                        Err(error) => assert!(error.is_full(), "{error}"),
                    }
                }
                stored
            })
        })
        .collect();
    let mut stored = 8;
    for task in tasks {
        stored += task.await.unwrap();
    }
    let stats = store.stats();
    assert!(stats.dropped_overflow > 0);
    assert!(stats.bytes_on_disk <= stats.max_bytes);
    reader.rewind();
    let mut delivered = 0;
    while let Ok(batch) = tokio::time::timeout(
        Duration::from_millis(200),
        reader.next_batch(100, usize::MAX, 0),
    )
    .await
    {
        let batch = batch.unwrap();
        delivered += batch.messages.len() as u64;
        reader.ack(&batch).await.unwrap();
    }
    assert_eq!(
        acked.messages.len() as u64 + stats.dropped_overflow + delivered,
        stored,
        "{stats:?}"
    );
    assert_eq!(store.pending_estimate(&EndpointId::upstream()), 0);
    store.close().await.unwrap();
}

#[tokio::test]
async fn deferred_acks_survive_rewind_and_become_durable_on_commit_or_idle() {
    let directory = tempfile::tempdir().unwrap();
    let options = StoreOptions::default;
    let store = MessageStore::open(directory.path(), options())
        .await
        .unwrap();
    for payload in ["a", "b", "c", "d"] {
        put(&store, payload, vec![target("$upstream", 0, 0)], 0).await;
    }
    let mut reader = store.reader(&EndpointId::upstream());
    let first = reader.next_batch(1, usize::MAX, 1).await.unwrap();
    assert_eq!(reader.ack_deferred(&first).unwrap(), 1);
    let second = reader.next_batch(1, usize::MAX, 1).await.unwrap();
    assert_eq!(reader.ack_deferred(&second).unwrap(), 2);
    // A rewind (failed delivery) goes back to the first message not acknowledged in memory.
    assert_eq!(next(&mut reader, 1, 1).await, "p0 c");
    reader.rewind();
    assert_eq!(next(&mut reader, 1, 1).await, "p0 c");

    // Not committed: a reopened store delivers them again.
    store.close().await.unwrap();
    let store = MessageStore::open(directory.path(), options())
        .await
        .unwrap();
    let mut reader = store.reader(&EndpointId::upstream());
    let batch = reader.next_batch(2, usize::MAX, 1).await.unwrap();
    assert_eq!(batch.messages.len(), 2);
    assert_eq!(reader.ack_deferred(&batch).unwrap(), 2);
    reader.commit().await.unwrap();
    // Running dry commits too: acknowledge "c" and wait for a message that never comes.
    let batch = reader.next_batch(1, usize::MAX, 1).await.unwrap();
    assert_eq!(reader.ack_deferred(&batch).unwrap(), 1);
    let last = reader.next_batch(1, usize::MAX, 1).await.unwrap();
    reader.ack_deferred(&last).unwrap();
    // Real time: the idle commit does blocking file I/O, which paused time would race.
    let idle = tokio::time::timeout(
        Duration::from_millis(500),
        reader.next_batch(1, usize::MAX, 1),
    )
    .await;
    assert!(idle.is_err(), "nothing is pending");
    store.close().await.unwrap();
    let store = MessageStore::open(directory.path(), options())
        .await
        .unwrap();
    let mut reader = store.reader(&EndpointId::upstream());
    put(&store, "e", vec![target("$upstream", 0, 0)], 0).await;
    assert_eq!(next(&mut reader, 10, 1).await, "p0 e");
    store.close().await.unwrap();
}
