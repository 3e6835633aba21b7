//! Property test of a queue (log plus acknowledgement cursor) against a simple in-memory model,
//! through random sequences of appends, reads, acknowledgements, reopenings, crashes that leave
//! garbage after the durable tail, and injected file-operation failures.
//!
//! The model keeps every record whose append was acknowledged. A failed append may or may not
//! leave its records behind (a torn batch whose truncation also failed is recovered from the
//! file as written), so its payloads are remembered as "possible". After every step the whole
//! log is read back and checked: offsets strictly increase, acknowledged records keep their
//! offsets and payloads, nothing unknown appears, and nothing acknowledged at or above the
//! acknowledgement cursor is missing.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use common::ScriptedFaults;
use proptest::prelude::*;
use store::{AppendRecord, FileOperation, LogOptions, Queue, ReadLimits, Record};

#[derive(Debug, Clone)]
enum Operation {
    Append {
        payload_lengths: Vec<usize>,
    },
    Read {
        from_offset_pick: prop::sample::Index,
        max_records: usize,
        max_bytes: usize,
    },
    Ack {
        pick: prop::sample::Index,
    },
    Reopen,
    CrashWithGarbageTail {
        garbage: Vec<u8>,
    },
    InjectFault {
        operation: FileOperation,
        count: u32,
    },
}

fn file_operation() -> impl Strategy<Value = FileOperation> {
    prop_oneof![
        Just(FileOperation::WriteSegment),
        Just(FileOperation::SyncSegment),
        Just(FileOperation::TruncateSegment),
        Just(FileOperation::CreateSegment),
        Just(FileOperation::SyncDirectory),
        Just(FileOperation::RemoveSegment),
        Just(FileOperation::WriteCheckpoint),
        Just(FileOperation::RenameCheckpoint),
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        6 => proptest::collection::vec(0usize..90, 1..4)
            .prop_map(|payload_lengths| Operation::Append { payload_lengths }),
        2 => (any::<prop::sample::Index>(), 1usize..6, 1usize..300)
            .prop_map(|(from_offset_pick, max_records, max_bytes)| Operation::Read { from_offset_pick, max_records, max_bytes }),
        2 => any::<prop::sample::Index>().prop_map(|pick| Operation::Ack { pick }),
        1 => Just(Operation::Reopen),
        1 => proptest::collection::vec(any::<u8>(), 1..80)
            .prop_map(|garbage| Operation::CrashWithGarbageTail { garbage }),
        2 => (file_operation(), 1u32..3)
            .prop_map(|(operation, count)| Operation::InjectFault { operation, count }),
    ]
}

#[derive(Default)]
struct Model {
    /// Acknowledged records by offset.
    acknowledged: BTreeMap<u64, Bytes>,
    /// Payloads of appends that failed and so may or may not be stored.
    possible: HashSet<Bytes>,
    /// Every offset below this was acknowledged by a successful `ack`.
    certain_floor: u64,
    /// The highest floor any `ack` attempted, successful or not.
    attempted_floor: u64,
    /// The highest offset ever handed out.
    highest_offset: Option<u64>,
    next_payload_id: u64,
}

impl Model {
    fn new_payload(&mut self, length: usize) -> Bytes {
        let mut bytes = format!("#{}:", self.next_payload_id).into_bytes();
        self.next_payload_id += 1;
        bytes.resize(bytes.len().max(length), b'~');
        Bytes::from(bytes)
    }
}

fn options(faults: &Arc<ScriptedFaults>) -> LogOptions {
    LogOptions {
        segment_max_bytes: 300,
        index_interval_bytes: 70,
        fault_injector: Some(faults.clone()),
        ..LogOptions::default()
    }
}

async fn read_everything(queue: &Queue) -> Vec<Record> {
    queue
        .log()
        .read_from(
            0,
            ReadLimits {
                max_records: usize::MAX,
                max_bytes: usize::MAX,
            },
        )
        .await
        .expect("reading the whole log")
}

async fn check_against_model(queue: &Queue, model: &Model) -> Result<(), TestCaseError> {
    let stored = read_everything(queue).await;
    let mut previous_offset = None;
    let mut present = HashSet::new();
    for record in &stored {
        prop_assert!(
            previous_offset < Some(record.offset),
            "offsets must increase: {previous_offset:?} then {}",
            record.offset
        );
        previous_offset = Some(record.offset);
        match model.acknowledged.get(&record.offset) {
            Some(payload) => prop_assert_eq!(
                payload,
                &record.payload,
                "payload of offset {}",
                record.offset
            ),
            None => prop_assert!(
                model.possible.contains(&record.payload),
                "unknown record at offset {}: {:?}",
                record.offset,
                record.payload
            ),
        }
        present.insert(record.offset);
    }
    for offset in model
        .acknowledged
        .range(model.attempted_floor..)
        .map(|(offset, _)| *offset)
    {
        prop_assert!(
            present.contains(&offset),
            "acknowledged offset {offset} is missing"
        );
    }
    let first_unacknowledged = queue.first_unacknowledged().await;
    prop_assert!(
        (model.certain_floor..=model.attempted_floor).contains(&first_unacknowledged),
        "cursor {first_unacknowledged} outside {}..={}",
        model.certain_floor,
        model.attempted_floor
    );
    Ok(())
}

async fn run(operations: Vec<Operation>) -> Result<(), TestCaseError> {
    let directory = tempfile::tempdir().unwrap();
    let faults = ScriptedFaults::new();
    let mut queue = Queue::open(directory.path(), options(&faults))
        .await
        .unwrap();
    let mut model = Model::default();

    for operation in operations {
        match operation {
            Operation::Append { payload_lengths } => {
                let payloads: Vec<Bytes> = payload_lengths
                    .into_iter()
                    .map(|length| model.new_payload(length))
                    .collect();
                let records = payloads
                    .iter()
                    .map(|payload| AppendRecord {
                        payload: payload.clone(),
                        timestamp_ms: 0,
                    })
                    .collect();
                match queue.log().append_records(records).await {
                    Ok(offsets) => {
                        prop_assert_eq!(offsets.end - offsets.start, payloads.len() as u64);
                        prop_assert!(
                            model.highest_offset < Some(offsets.start),
                            "offsets must be new"
                        );
                        model.highest_offset = Some(offsets.end - 1);
                        for (offset, payload) in offsets.zip(payloads) {
                            model.acknowledged.insert(offset, payload);
                        }
                    }
                    Err(error) => {
                        prop_assert!(error.is_io(), "unexpected error {error}");
                        model.possible.extend(payloads);
                    }
                }
            }
            Operation::Read {
                from_offset_pick,
                max_records,
                max_bytes,
            } => {
                // Records below the acknowledgement floor may be reclaimed at any moment (the
                // writer deletes acknowledged segments in the background), so reads are compared
                // only above it.
                let everything: Vec<Record> = read_everything(&queue)
                    .await
                    .into_iter()
                    .filter(|record| record.offset >= model.attempted_floor)
                    .collect();
                let from_offset = match everything.len() {
                    0 => model.attempted_floor,
                    count => everything[from_offset_pick.index(count)].offset,
                };
                let limits = ReadLimits {
                    max_records,
                    max_bytes,
                };
                let read = queue.log().read_from(from_offset, limits).await.unwrap();
                let mut expected = Vec::new();
                let mut bytes = 0;
                for record in everything
                    .into_iter()
                    .filter(|record| record.offset >= from_offset)
                {
                    if expected.len() == max_records
                        || (!expected.is_empty() && bytes + record.payload.len() > max_bytes)
                    {
                        break;
                    }
                    bytes += record.payload.len();
                    expected.push(record);
                }
                prop_assert_eq!(read, expected);
            }
            Operation::Ack { pick } => {
                let Some(highest_offset) = model.highest_offset else {
                    continue;
                };
                let up_to_offset = pick.index(highest_offset as usize + 1) as u64;
                let floor = up_to_offset + 1;
                model.attempted_floor = model.attempted_floor.max(floor);
                if queue.ack(up_to_offset).await.is_ok() {
                    model.certain_floor = model.certain_floor.max(floor);
                }
            }
            Operation::Reopen | Operation::CrashWithGarbageTail { .. } => {
                queue.close().await.unwrap();
                if let Operation::CrashWithGarbageTail { garbage } = &operation {
                    let mut segments: Vec<_> = std::fs::read_dir(directory.path())
                        .unwrap()
                        .map(|entry| entry.unwrap().path())
                        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
                        .collect();
                    segments.sort();
                    let mut last = std::fs::OpenOptions::new()
                        .append(true)
                        .open(segments.last().unwrap())
                        .unwrap();
                    last.write_all(garbage).unwrap();
                }
                // Recovery itself runs without injected faults.
                faults.disarm();
                queue = Queue::open(directory.path(), options(&faults))
                    .await
                    .unwrap();
                let first_unacknowledged = queue.first_unacknowledged().await;
                prop_assert!(
                    (model.certain_floor..=model.attempted_floor).contains(&first_unacknowledged)
                );
                model.certain_floor = first_unacknowledged;
                let stored = read_everything(&queue).await;
                if let Some(last) = stored.last() {
                    model.highest_offset = model.highest_offset.max(Some(last.offset));
                }
            }
            Operation::InjectFault { operation, count } => faults.fail_next(operation, count),
        }
        check_against_model(&queue, &model).await?;
    }

    // With faults cleared, the log accepts appends again and they are readable after reopen.
    faults.disarm();
    let payload = model.new_payload(10);
    let offset = queue.enqueue_at(payload.clone(), 0).await.unwrap();
    prop_assert!(model.highest_offset < Some(offset));
    model.acknowledged.insert(offset, payload);
    queue.close().await.unwrap();
    let reopened = Queue::open(directory.path(), options(&faults))
        .await
        .unwrap();
    check_against_model(&reopened, &model).await?;
    reopened.close().await.unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn queue_matches_model(operations in proptest::collection::vec(operation(), 1..30)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(run(operations))?;
    }
}
