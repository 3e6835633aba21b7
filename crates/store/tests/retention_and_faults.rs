//! Byte bounds, TTL reclaim, queue acknowledgements, checkpoints and injected I/O failures.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::ScriptedFaults;
use store::{
    CheckpointName, CheckpointStore, FileOperation, LogHandle, LogOptions, OverflowPolicy, Queue,
    ReadLimits, StoreError,
};

/// Every frame of these tests is 24 bytes of header plus a 40-byte payload.
const PAYLOAD_BYTES: usize = 40;
const FRAME_BYTES: u64 = 64;
const SEGMENT_HEADER_BYTES: u64 = 24;

fn payload(index: u64) -> Bytes {
    let mut bytes = format!("payload {index}").into_bytes();
    bytes.resize(PAYLOAD_BYTES, b'.');
    Bytes::from(bytes)
}

/// Segments of a header plus exactly four frames.
fn four_frames_per_segment() -> LogOptions {
    LogOptions {
        segment_max_bytes: SEGMENT_HEADER_BYTES + 4 * FRAME_BYTES,
        index_interval_bytes: 100,
        ..LogOptions::default()
    }
}

async fn offsets(log: &LogHandle) -> Vec<u64> {
    log.read_from(
        0,
        ReadLimits {
            max_records: 10_000,
            max_bytes: usize::MAX,
        },
    )
    .await
    .unwrap()
    .into_iter()
    .map(|record| record.offset)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_new_reports_store_full_and_recovers_after_acknowledgement() {
    let directory = tempfile::tempdir().unwrap();
    let options = LogOptions {
        max_total_bytes: Some(3 * (SEGMENT_HEADER_BYTES + 4 * FRAME_BYTES)),
        overflow_policy: OverflowPolicy::RefuseNew,
        ..four_frames_per_segment()
    };
    let queue = Queue::open(directory.path(), options).await.unwrap();
    for index in 0..12 {
        assert_eq!(queue.enqueue_at(payload(index), 0).await.unwrap(), index);
    }
    let refused = queue.enqueue_at(payload(12), 0).await;
    // The request needs a frame and, since the active segment is full, a new segment header.
    let Err(StoreError::StoreFull {
        used_bytes,
        limit_bytes,
        requested_bytes,
    }) = refused
    else {
        panic!("expected StoreFull, got {refused:?}");
    };
    assert_eq!((used_bytes, limit_bytes, requested_bytes), (840, 840, 88));

    // Acknowledging the first segment's records frees it; appends flow again.
    queue.ack(3).await.unwrap();
    assert_eq!(queue.log().stats().first_offset, 4);
    assert_eq!(queue.enqueue_at(payload(12), 0).await.unwrap(), 12);
    let unacknowledged = queue.peek(ReadLimits::default()).await.unwrap();
    assert_eq!(unacknowledged.first().unwrap().offset, 4);
    assert_eq!(unacknowledged.len(), 9);
    queue.close().await.unwrap();

    // The cursor is durable.
    let reopened = Queue::open(directory.path(), four_frames_per_segment())
        .await
        .unwrap();
    assert_eq!(reopened.first_unacknowledged().await, 4);
    reopened.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_deletes_whole_oldest_segments() {
    let directory = tempfile::tempdir().unwrap();
    let options = LogOptions {
        max_total_bytes: Some(3 * (SEGMENT_HEADER_BYTES + 4 * FRAME_BYTES)),
        overflow_policy: OverflowPolicy::DropOldest,
        ..four_frames_per_segment()
    };
    let log = LogHandle::open(directory.path(), options).await.unwrap();
    for index in 0..30 {
        assert_eq!(log.append_at(payload(index), 0).await.unwrap(), index);
        assert!(log.stats().total_bytes <= 840, "{:?}", log.stats());
    }
    let stored = offsets(&log).await;
    assert_eq!(stored, (20..30).collect::<Vec<_>>());
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_reclaim_deletes_only_segments_whose_newest_record_expired() {
    let directory = tempfile::tempdir().unwrap();
    let options = LogOptions {
        time_to_live: Some(Duration::from_secs(60)),
        ..four_frames_per_segment()
    };
    let log = LogHandle::open(directory.path(), options).await.unwrap();
    // Segment 0: timestamps 0..4 s; segment 1: 10..14 s, but its last record is at 100 s;
    // segment 2: 20..24 s; the active segment: 30 s.
    let timestamps_ms = [0, 1, 2, 3, 10, 11, 12, 100, 20, 21, 22, 23, 30];
    for (index, timestamp_s) in timestamps_ms.iter().enumerate() {
        log.append_at(payload(index as u64), timestamp_s * 1_000)
            .await
            .unwrap();
    }
    assert_eq!(log.stats().segment_count, 4);
    // At 70 s only segment 0 is wholly older than 60 s: segment 1 holds a record from 100 s,
    // so it stays, and segment 2 stays behind it (deletion is front to back).
    let report = log.reclaim_expired(70_000).await.unwrap();
    assert_eq!(report.deleted_segments, 1);
    assert_eq!(
        report.reclaimed_bytes,
        SEGMENT_HEADER_BYTES + 4 * FRAME_BYTES
    );
    assert_eq!(offsets(&log).await.first(), Some(&4));
    // At 161 s segments 1 and 2 have expired; the active segment is never deleted.
    let report = log.reclaim_expired(161_000).await.unwrap();
    assert_eq!(report.deleted_segments, 2);
    assert_eq!(offsets(&log).await, vec![12]);
    log.close().await.unwrap();
    // Offsets continue after reopen even though most segments are gone.
    let reopened = LogHandle::open(directory.path(), four_frames_per_segment())
        .await
        .unwrap();
    assert_eq!(reopened.append_at(payload(13), 0).await.unwrap(), 13);
    reopened.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_fails_every_appender_of_the_batch_and_the_log_recovers() {
    let directory = tempfile::tempdir().unwrap();
    let faults = ScriptedFaults::new();
    let options = LogOptions {
        fault_injector: Some(faults.clone()),
        ..LogOptions::default()
    };
    let log = LogHandle::open(directory.path(), options).await.unwrap();
    log.append_at(payload(0), 0).await.unwrap();

    faults.fail_next(FileOperation::WriteSegment, 1);
    let failed = log
        .append_batch(vec![payload(100), payload(101), payload(102)])
        .await;
    let Err(error) = failed else {
        panic!("expected a failure")
    };
    assert!(error.is_io(), "{error}");
    assert!(error.is_storage_full(), "{error}");
    assert!(
        error
            .to_string()
            .contains("injected failure of write segment"),
        "{error}"
    );

    // The torn half-batch was cut off; offsets continue where they were.
    assert_eq!(log.append_at(payload(1), 0).await.unwrap(), 1);

    // A failing fsync, then a failing truncate: the next batch repairs the tail first.
    faults.fail_next(FileOperation::SyncSegment, 1);
    faults.fail_next(FileOperation::TruncateSegment, 1);
    assert!(log.append_at(payload(200), 0).await.is_err());
    assert_eq!(log.append_at(payload(2), 0).await.unwrap(), 2);
    let stored = log.read_from(0, ReadLimits::default()).await.unwrap();
    let payloads: Vec<Bytes> = stored.into_iter().map(|record| record.payload).collect();
    assert_eq!(payloads, vec![payload(0), payload(1), payload(2)]);
    log.close().await.unwrap();

    let reopened = LogHandle::open(directory.path(), LogOptions::default())
        .await
        .unwrap();
    assert_eq!(offsets(&reopened).await, vec![0, 1, 2]);
    reopened.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_segment_roll_is_retried_by_the_next_batch() {
    let directory = tempfile::tempdir().unwrap();
    let faults = ScriptedFaults::new();
    let options = LogOptions {
        fault_injector: Some(faults.clone()),
        ..four_frames_per_segment()
    };
    let log = LogHandle::open(directory.path(), options).await.unwrap();
    for index in 0..4 {
        log.append_at(payload(index), 0).await.unwrap();
    }
    faults.fail_next(FileOperation::SyncDirectory, 1);
    assert!(log.append_at(payload(99), 0).await.is_err());
    assert_eq!(log.append_at(payload(4), 0).await.unwrap(), 4);
    assert_eq!(log.stats().segment_count, 2);
    log.close().await.unwrap();
    let reopened = LogHandle::open(directory.path(), four_frames_per_segment())
        .await
        .unwrap();
    assert_eq!(offsets(&reopened).await, vec![0, 1, 2, 3, 4]);
    reopened.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_are_durable_and_survive_failed_commits() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("consumers.ckpt");
    let faults = ScriptedFaults::new();
    let store = CheckpointStore::open_with_faults(&path, Some(faults.clone())).unwrap();
    let group = CheckpointName::new("$Default").unwrap();
    let other = CheckpointName::new("analytics/eu-west").unwrap();
    assert_eq!(store.get(&group), None);
    store.commit(group.clone(), 17).await.unwrap();
    store.commit(other.clone(), 3).await.unwrap();

    for operation in [
        FileOperation::WriteCheckpoint,
        FileOperation::SyncCheckpoint,
        FileOperation::RenameCheckpoint,
    ] {
        faults.fail_next(operation, 1);
        assert!(store.commit(group.clone(), 99).await.is_err());
        assert_eq!(store.get(&group), Some(17));
    }
    drop(store);

    let reopened = CheckpointStore::open(&path).unwrap();
    let entries: Vec<(String, u64)> = reopened
        .entries()
        .into_iter()
        .map(|(name, offset)| (name.to_string(), offset))
        .collect();
    assert_eq!(
        entries,
        vec![
            ("$Default".to_owned(), 17),
            ("analytics/eu-west".to_owned(), 3)
        ]
    );

    // Damage is reported, not misread.
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    assert!(matches!(
        CheckpointStore::open(&path),
        Err(StoreError::Corrupt { .. })
    ));

    assert!(CheckpointName::new("").is_err());
    assert!(CheckpointName::new("line\nbreak").is_err());
    assert!(CheckpointName::new("x".repeat(256)).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_truncates_garbage_after_the_last_durable_record() {
    let directory = tempfile::tempdir().unwrap();
    let log = LogHandle::open(directory.path(), four_frames_per_segment())
        .await
        .unwrap();
    for index in 0..6 {
        log.append_at(payload(index), 0).await.unwrap();
    }
    log.close().await.unwrap();
    let last_segment = directory.path().join("00000000000000000004.log");
    let durable_length = std::fs::metadata(&last_segment).unwrap().len();
    let mut bytes = std::fs::read(&last_segment).unwrap();
    bytes.extend_from_slice(&[0xab; 37]);
    std::fs::write(&last_segment, bytes).unwrap();

    let reopened = LogHandle::open(directory.path(), four_frames_per_segment())
        .await
        .unwrap();
    assert_eq!(
        std::fs::metadata(&last_segment).unwrap().len(),
        durable_length
    );
    assert_eq!(offsets(&reopened).await, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(reopened.append_at(payload(6), 0).await.unwrap(), 6);
    reopened.close().await.unwrap();
}

/// The offsets of every record as read from the segment files (not the in-memory tail).
fn offsets_on_disk(log: &LogHandle) -> Vec<u64> {
    log.read_from_blocking(
        0,
        ReadLimits {
            max_records: 10_000,
            max_bytes: usize::MAX,
        },
    )
    .unwrap()
    .into_iter()
    .map(|record| record.offset)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_inside_durable_data_is_reported_never_returned() {
    let directory = tempfile::tempdir().unwrap();
    let log = LogHandle::open(directory.path(), four_frames_per_segment())
        .await
        .unwrap();
    for index in 0..6 {
        log.append_at(payload(index), 0).await.unwrap();
    }
    // Flip a payload byte of offset 1 underneath the running log (the segment is sealed).
    let first_segment = directory.path().join("00000000000000000000.log");
    let mut bytes = std::fs::read(&first_segment).unwrap();
    let position = (SEGMENT_HEADER_BYTES + FRAME_BYTES + 30) as usize;
    bytes[position] ^= 0x55;
    std::fs::write(&first_segment, bytes).unwrap();
    // From memory the records read as they were appended; from the files, the damaged part of
    // the sealed segment is skipped: records before and after it stay readable, the damaged
    // ones are never returned.
    assert_eq!(offsets(&log).await, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(offsets_on_disk(&log), vec![0, 4, 5]);
    log.close().await.unwrap();

    // The same holds after reopen, when recovery scans the segment again.
    let reopened = LogHandle::open(directory.path(), four_frames_per_segment())
        .await
        .unwrap();
    assert_eq!(offsets(&reopened).await, vec![0, 4, 5]);
    reopened.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_in_the_active_segment_is_reported_as_an_error() {
    let directory = tempfile::tempdir().unwrap();
    let log = LogHandle::open(directory.path(), four_frames_per_segment())
        .await
        .unwrap();
    for index in 0..3 {
        log.append_at(payload(index), 0).await.unwrap();
    }
    let active_segment = directory.path().join("00000000000000000000.log");
    let mut bytes = std::fs::read(&active_segment).unwrap();
    let position = (SEGMENT_HEADER_BYTES + FRAME_BYTES + 30) as usize;
    bytes[position] ^= 0x55;
    std::fs::write(&active_segment, bytes).unwrap();
    let read = log.read_from_blocking(0, ReadLimits::default());
    let Err(StoreError::Corrupt { position, .. }) = read else {
        panic!("expected corruption, got {read:?}");
    };
    assert_eq!(position, SEGMENT_HEADER_BYTES + FRAME_BYTES);
    // Reading before the damage still works.
    let first = log
        .read_from_blocking(
            0,
            ReadLimits {
                max_records: 1,
                max_bytes: 1,
            },
        )
        .unwrap();
    assert_eq!(first.len(), 1);
    log.close().await.unwrap();
}

/// Holds the writer inside the fsync of one append while ten more appenders queue up, so the
/// ten are deterministically one group commit.
async fn ten_appends_queued_behind_a_held_fsync(
    log: &LogHandle,
    faults: &std::sync::Arc<ScriptedFaults>,
) -> (
    tokio::task::JoinHandle<Result<u64, StoreError>>,
    Vec<tokio::task::JoinHandle<Result<u64, StoreError>>>,
) {
    faults.hold_next(FileOperation::SyncSegment);
    let held = tokio::spawn({
        let log = log.clone();
        async move { log.append_at(payload(1000), 0).await }
    });
    let waiter = faults.clone();
    tokio::task::spawn_blocking(move || waiter.wait_until_held())
        .await
        .unwrap();
    let queued: Vec<_> = (0..10)
        .map(|index| {
            let log = log.clone();
            tokio::spawn(async move { log.append_at(payload(index), 0).await })
        })
        .collect();
    // On this single-threaded runtime, yielding lets every spawned appender send its request.
    tokio::task::yield_now().await;
    (held, queued)
}

#[tokio::test]
async fn queued_appenders_share_one_group_commit_and_share_its_failure() {
    let directory = tempfile::tempdir().unwrap();
    let faults = ScriptedFaults::new();
    let options = LogOptions {
        fault_injector: Some(faults.clone()),
        ..LogOptions::default()
    };
    let log = LogHandle::open(directory.path(), options).await.unwrap();

    // Success: one commit for the held append, one for the ten queued behind it.
    let (held, queued) = ten_appends_queued_behind_a_held_fsync(&log, &faults).await;
    faults.release();
    assert_eq!(held.await.unwrap().unwrap(), 0);
    let mut offsets = Vec::new();
    for append in queued {
        offsets.push(append.await.unwrap().unwrap());
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (1..11).collect::<Vec<_>>());
    assert_eq!(log.stats().group_commits, 2);

    // Failure: the write of the ten fails, and every one of them hears about it.
    let (held, queued) = ten_appends_queued_behind_a_held_fsync(&log, &faults).await;
    faults.fail_next(FileOperation::WriteSegment, 1);
    faults.release();
    assert_eq!(held.await.unwrap().unwrap(), 11);
    for append in queued {
        let error = append.await.unwrap().unwrap_err();
        assert!(error.is_io(), "{error}");
    }
    assert_eq!(log.stats().group_commits, 3);
    // The log goes on where it was.
    assert_eq!(log.append_at(payload(99), 0).await.unwrap(), 12);
    log.close().await.unwrap();
}
