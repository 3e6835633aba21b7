//! Behaviour of one log through its public handle: append, group commit, read, tail, reopen.

use std::time::Duration;

mod common;

use bytes::Bytes;
use common::ScriptedFaults;
use store::{FileOperation, LogHandle, LogOptions, ReadLimits, StartPosition, StoreError};

fn small_segments() -> LogOptions {
    LogOptions {
        segment_max_bytes: 256,
        index_interval_bytes: 64,
        ..LogOptions::default()
    }
}

fn payload(index: u64) -> Bytes {
    Bytes::from(format!("message number {index}"))
}

async fn read_all(log: &LogHandle, from_offset: u64) -> Vec<(u64, Bytes)> {
    let mut records = Vec::new();
    let mut next_offset = from_offset;
    loop {
        let batch = log
            .read_from(
                next_offset,
                ReadLimits {
                    max_records: 7,
                    max_bytes: 1024,
                },
            )
            .await
            .unwrap();
        let Some(last) = batch.last() else {
            return records;
        };
        next_offset = last.offset + 1;
        records.extend(
            batch
                .into_iter()
                .map(|record| (record.offset, record.payload)),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_get_consecutive_offsets_and_read_back_across_segments() {
    let directory = tempfile::tempdir().unwrap();
    let log = LogHandle::open(directory.path(), small_segments())
        .await
        .unwrap();
    for index in 0..50 {
        assert_eq!(
            log.append_at(payload(index), 1_000 + index).await.unwrap(),
            index
        );
    }
    let batch = log
        .append_batch(vec![payload(50), payload(51), payload(52)])
        .await
        .unwrap();
    assert_eq!(batch, 50..53);
    let stats = log.stats();
    assert!(stats.segment_count > 5, "{stats:?}");
    assert_eq!(stats.next_offset, 53);

    let records = read_all(&log, 0).await;
    assert_eq!(records.len(), 53);
    for (index, (offset, bytes)) in records.iter().enumerate() {
        assert_eq!(*offset, index as u64);
        assert_eq!(*bytes, payload(index as u64));
    }
    // Reading from the middle of a segment uses the sparse index and skips earlier records.
    let from_middle = read_all(&log, 37).await;
    assert_eq!(from_middle.first().unwrap().0, 37);
    assert_eq!(from_middle.len(), 16);
    assert!(
        log.read_from(53, ReadLimits::default())
            .await
            .unwrap()
            .is_empty()
    );
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_records_and_continues_offsets() {
    let directory = tempfile::tempdir().unwrap();
    let log = LogHandle::open(directory.path(), small_segments())
        .await
        .unwrap();
    for index in 0..20 {
        log.append(payload(index)).await.unwrap();
    }
    log.close().await.unwrap();
    assert!(matches!(
        log.append(payload(99)).await,
        Err(StoreError::Closed)
    ));

    let reopened = LogHandle::open(directory.path(), small_segments())
        .await
        .unwrap();
    assert_eq!(reopened.stats().next_offset, 20);
    assert_eq!(reopened.append(payload(20)).await.unwrap(), 20);
    let records = read_all(&reopened, 0).await;
    assert_eq!(records.len(), 21);
    assert_eq!(records[20], (20, payload(20)));
    reopened.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_can_be_open_only_once() {
    let directory = tempfile::tempdir().unwrap();
    let log = LogHandle::open(directory.path(), LogOptions::default())
        .await
        .unwrap();
    let second = LogHandle::open(directory.path(), LogOptions::default()).await;
    assert!(
        matches!(second, Err(StoreError::AlreadyOpen { .. })),
        "{second:?}"
    );
    log.close().await.unwrap();
    let third = LogHandle::open(directory.path(), LogOptions::default())
        .await
        .unwrap();
    third.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appenders_are_group_committed_in_order() {
    let directory = tempfile::tempdir().unwrap();
    let log = LogHandle::open(directory.path(), small_segments())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for appender in 0..8u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for index in 0..25u64 {
                let offset = log
                    .append(Bytes::from(format!("{appender}:{index}")))
                    .await
                    .unwrap();
                offsets.push(offset);
            }
            offsets
        }));
    }
    let mut every_offset = Vec::new();
    for task in tasks {
        let offsets = task.await.unwrap();
        assert!(offsets.windows(2).all(|pair| pair[0] < pair[1]));
        every_offset.extend(offsets);
    }
    every_offset.sort_unstable();
    assert_eq!(every_offset, (0..200).collect::<Vec<_>>());
    let records = read_all(&log, 0).await;
    assert_eq!(records.len(), 200);
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_wakes_up_when_records_arrive() {
    let directory = tempfile::tempdir().unwrap();
    let log = LogHandle::open(directory.path(), LogOptions::default())
        .await
        .unwrap();
    log.append(payload(0)).await.unwrap();
    let mut tail = log.tail(StartPosition::End);
    assert_eq!(tail.next_offset(), 1);
    let reader = tokio::spawn(async move {
        let records = tail.next_batch(ReadLimits::default()).await.unwrap();
        records
            .into_iter()
            .map(|record| record.offset)
            .collect::<Vec<_>>()
    });
    tokio::task::yield_now().await;
    log.append(payload(1)).await.unwrap();
    let offsets = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offsets, vec![1]);
    assert_eq!(log.resolve(StartPosition::Start), 0);
    assert_eq!(log.resolve(StartPosition::Offset(1_000)), 2);
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_records_are_refused_without_harming_the_batch() {
    let directory = tempfile::tempdir().unwrap();
    let options = LogOptions {
        max_record_bytes: 16,
        ..LogOptions::default()
    };
    let log = LogHandle::open(directory.path(), options).await.unwrap();
    let refused = log.append(Bytes::from(vec![0u8; 17])).await;
    assert!(
        matches!(refused, Err(StoreError::RecordTooLarge { .. })),
        "{refused:?}"
    );
    assert_eq!(log.append(Bytes::from_static(b"fits")).await.unwrap(), 0);
    log.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_segment_indexes_speed_up_reopen_and_are_ignored_when_wrong() {
    let directory = tempfile::tempdir().unwrap();
    let log = LogHandle::open(directory.path(), small_segments())
        .await
        .unwrap();
    for index in 0..40 {
        log.append_at(payload(index), index).await.unwrap();
    }
    log.close().await.unwrap();
    let mut index_files: Vec<String> = std::fs::read_dir(directory.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".idx"))
        .collect();
    index_files.sort();
    assert!(index_files.len() >= 4, "{index_files:?}");

    let expected: Vec<(u64, Bytes)> = (0..40).map(|index| (index, payload(index))).collect();
    let reopened = LogHandle::open(directory.path(), small_segments())
        .await
        .unwrap();
    assert_eq!(read_all(&reopened, 0).await, expected);
    assert_eq!(read_all(&reopened, 23).await, expected[23..].to_vec());
    reopened.close().await.unwrap();

    // A damaged index and an index whose segment grew are both ignored: recovery scans.
    std::fs::write(directory.path().join(&index_files[0]), b"not an index").unwrap();
    let second_segment = directory
        .path()
        .join(index_files[1].replace(".idx", ".log"));
    let mut bytes = std::fs::read(&second_segment).unwrap();
    bytes.extend_from_slice(b"trailing bytes");
    std::fs::write(&second_segment, bytes).unwrap();
    // An index without a segment is removed.
    std::fs::write(directory.path().join("00000000000099999999.idx"), b"orphan").unwrap();
    let reopened = LogHandle::open(directory.path(), small_segments())
        .await
        .unwrap();
    assert_eq!(read_all(&reopened, 0).await, expected);
    assert_eq!(reopened.append_at(payload(40), 40).await.unwrap(), 40);
    reopened.close().await.unwrap();
    assert!(!directory.path().join("00000000000099999999.idx").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_describe_the_layout_for_layers_above() {
    let directory = tempfile::tempdir().unwrap();
    let log = LogHandle::open(directory.path(), small_segments())
        .await
        .unwrap();
    for index in 0..20 {
        log.append_at(payload(index), 0).await.unwrap();
    }
    let segments = log.segments();
    assert!(segments.len() > 2, "{segments:?}");
    let (active, sealed) = segments.split_last().unwrap();
    assert!(!active.is_sealed && sealed.iter().all(|segment| segment.is_sealed));
    assert_eq!(segments[0].base_offset, 0);
    assert_eq!(active.next_offset, 20);
    for pair in segments.windows(2) {
        assert_eq!(pair[0].next_offset, pair[1].base_offset);
    }
    assert_eq!(
        segments.iter().map(|segment| segment.bytes).sum::<u64>(),
        log.stats().total_bytes
    );
    for offset in 0..20 {
        let segment = log.segment_containing(offset).unwrap();
        assert!(segment.base_offset <= offset && offset < segment.next_offset);
    }
    assert_eq!(log.segment_containing(20), None);
    log.set_retention_floor(segments[1].next_offset)
        .await
        .unwrap();
    assert_eq!(log.segment_containing(0), None);
    assert_eq!(log.segments()[0].base_offset, segments[2].base_offset);
    log.close().await.unwrap();
}

fn file_lengths(directory: &std::path::Path) -> Vec<(String, u64)> {
    let mut lengths: Vec<(String, u64)> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
        .map(|entry| {
            let length = entry.metadata().unwrap().len();
            (entry.file_name().to_string_lossy().into_owned(), length)
        })
        .collect();
    lengths.sort();
    lengths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_segment_grows_ahead_and_sealed_or_closed_segments_end_at_their_records() {
    let directory = tempfile::tempdir().unwrap();
    let options = LogOptions {
        segment_max_bytes: 4096,
        preallocate_bytes: 1024,
        ..LogOptions::default()
    };
    let log = LogHandle::open(directory.path(), options.clone())
        .await
        .unwrap();
    for index in 0..200 {
        log.append(payload(index)).await.unwrap();
    }
    let segments = log.segments();
    assert!(segments.len() > 2, "{segments:?}");
    let lengths = file_lengths(directory.path());
    let (active_length, sealed_lengths) = lengths.split_last().unwrap();
    let (active, sealed) = segments.split_last().unwrap();
    // Sealed segments were cut to their records; the active one holds zeros ahead of them.
    for ((_, length), segment) in sealed_lengths.iter().zip(sealed) {
        assert_eq!(*length, segment.bytes);
    }
    assert!(
        active_length.1 > active.bytes,
        "{active_length:?} {active:?}"
    );
    assert!(active_length.1 <= options.segment_max_bytes);

    // A crash: copy the files as they are while the log is open, zero tail included.
    let crashed = tempfile::tempdir().unwrap();
    for (name, _) in &lengths {
        std::fs::copy(directory.path().join(name), crashed.path().join(name)).unwrap();
    }
    log.close().await.unwrap();
    let closed_lengths = file_lengths(directory.path());
    assert_eq!(closed_lengths.last().unwrap().1, active.bytes);

    let recovered = LogHandle::open(crashed.path(), options).await.unwrap();
    assert_eq!(recovered.stats().next_offset, 200);
    assert_eq!(recovered.append(payload(200)).await.unwrap(), 200);
    let records = read_all(&recovered, segments[0].base_offset).await;
    let expected: Vec<(u64, Bytes)> = (segments[0].base_offset..=200)
        .map(|index| (index, payload(index)))
        .collect();
    assert_eq!(records, expected);
    recovered.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_too_full_to_preallocate_still_takes_the_records() {
    let directory = tempfile::tempdir().unwrap();
    let faults = ScriptedFaults::new();
    // The first append writes its records, then the zeros ahead: that second write fails.
    faults.fail_after(FileOperation::WriteSegment, 1, 1);
    let options = LogOptions {
        segment_max_bytes: 4096,
        preallocate_bytes: 1024,
        fault_injector: Some(faults),
        ..LogOptions::default()
    };
    let log = LogHandle::open(directory.path(), options.clone())
        .await
        .unwrap();
    for index in 0..100 {
        assert_eq!(log.append(payload(index)).await.unwrap(), index);
    }
    let segments = log.segments();
    log.close().await.unwrap();
    // Closed and sealed segments end exactly at their records.
    let lengths = file_lengths(directory.path());
    assert_eq!(lengths.len(), segments.len());
    for ((_, length), segment) in lengths.iter().zip(&segments) {
        assert_eq!(*length, segment.bytes);
    }
    let reopened = LogHandle::open(directory.path(), LogOptions::default())
        .await
        .unwrap();
    let expected: Vec<(u64, Bytes)> = (0..100).map(|index| (index, payload(index))).collect();
    assert_eq!(read_all(&reopened, 0).await, expected);
    reopened.close().await.unwrap();
}
