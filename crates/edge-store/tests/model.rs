//! The store against a simple in-memory model (one `VecDeque` per endpoint and priority), under
//! random puts (both overflow modes), batches, acks, rewinds, reopens, reclaims with an
//! advancing clock, and injected write / fsync / checkpoint write / rename failures.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use edge_store::{
    Batch, EndpointId, EndpointReader, MessageStore, Overflow, Priority, StoreOptions, Target,
};
use proptest::prelude::*;
use store::{FaultInjector, FileOperation};

const ENDPOINTS: [&str; 3] = ["$upstream", "edge-1/filter/input1", "m2/in"];
const PRIORITIES: [u8; 3] = [0, 3, 10];

/// Fails the next operations of the armed kinds with "no space left on device".
#[derive(Debug, Default)]
struct Faults {
    armed: Mutex<HashMap<FileOperation, u32>>,
}

impl FaultInjector for Faults {
    fn before(&self, operation: FileOperation) -> io::Result<()> {
        let mut armed = self.armed.lock().unwrap();
        match armed.get_mut(&operation) {
            Some(remaining) if *remaining > 0 => {
                *remaining -= 1;
                Err(io::Error::new(io::ErrorKind::StorageFull, "injected"))
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        /// (endpoint index, priority index, time-to-live ms, drop oldest at the bound)
        targets: Vec<(usize, usize, u64, bool)>,
        size: usize,
    },
    NextBatch {
        endpoint: usize,
        max_messages: usize,
    },
    Ack {
        endpoint: usize,
    },
    Rewind {
        endpoint: usize,
    },
    Reopen,
    Reclaim {
        advance_ms: u64,
    },
    Fail {
        operation: usize,
    },
}

const FAULTS: [FileOperation; 4] = [
    FileOperation::WriteSegment,
    FileOperation::SyncSegment,
    FileOperation::WriteCheckpoint,
    FileOperation::RenameCheckpoint,
];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            proptest::collection::vec((0..3usize, 0..3usize, prop_oneof![Just(100u64), Just(1_000), Just(100_000)], prop_oneof![3 => Just(true), 1 => Just(false)]), 1..4),
            1..200usize,
        )
            .prop_map(|(targets, size)| Op::Put { targets, size }),
        4 => (0..3usize, 1..6usize).prop_map(|(endpoint, max_messages)| Op::NextBatch { endpoint, max_messages }),
        3 => (0..3usize).prop_map(|endpoint| Op::Ack { endpoint }),
        1 => (0..3usize).prop_map(|endpoint| Op::Rewind { endpoint }),
        1 => Just(Op::Reopen),
        2 => (0..400u64).prop_map(|advance_ms| Op::Reclaim { advance_ms }),
        1 => (0..4usize).prop_map(|operation| Op::Fail { operation }),
    ]
}

#[derive(Debug, Clone)]
struct Entry {
    sequence: u64,
    expiry_ms: u64,
    payload: Bytes,
    /// Put with `RefuseNew`: overflow must never delete it while unacknowledged and unexpired.
    refuse_new: bool,
}

/// The model: per (endpoint, priority) the unacknowledged entries, and per endpoint the
/// batches handed out and not acknowledged yet.
#[derive(Default)]
struct Model {
    queues: BTreeMap<(usize, u8), VecDeque<Entry>>,
    /// Per queue: sequences below this were handed out in a batch still in flight.
    delivered_below: BTreeMap<(usize, u8), u64>,
    in_flight: BTreeMap<usize, VecDeque<Batch>>,
    /// Payloads of puts that failed: they may or may not reappear after a reopen.
    ghosts: BTreeSet<Bytes>,
    now_ms: u64,
}

impl Model {
    fn pending(&self, endpoint: usize, priority: u8) -> Vec<&Entry> {
        let below = self
            .delivered_below
            .get(&(endpoint, priority))
            .copied()
            .unwrap_or(0);
        self.queues
            .get(&(endpoint, priority))
            .into_iter()
            .flatten()
            .filter(|entry| entry.sequence >= below && entry.expiry_ms > self.now_ms)
            .collect()
    }

    fn forget_in_flight(&mut self, endpoint: usize) {
        self.in_flight.remove(&endpoint);
        for priority in PRIORITIES {
            self.delivered_below.remove(&(endpoint, priority));
        }
    }

    /// Removes entries below `first_sequence` (their segments are gone); returns how many.
    /// Retention may only delete expired entries (`must_be_expired`), overflow anything but
    /// unexpired refuse-new entries.
    fn cut_below(&mut self, first_sequence: u64, must_be_expired: bool) -> u64 {
        let mut removed = 0;
        for queue in self.queues.values_mut() {
            while queue
                .front()
                .is_some_and(|entry| entry.sequence < first_sequence)
            {
                let entry = queue.pop_front().unwrap();
                if must_be_expired || entry.refuse_new {
                    assert!(
                        entry.expiry_ms <= self.now_ms,
                        "deleted unacknowledged, unexpired {entry:?} at {}",
                        self.now_ms
                    );
                }
                removed += 1;
            }
        }
        removed
    }
}

fn options(faults: &Arc<Faults>) -> StoreOptions {
    StoreOptions {
        max_bytes: 4096,
        segment_bytes: 1024,
        default_time_to_live: Duration::from_secs(60),
        fault_injector: Some(Arc::clone(faults) as Arc<dyn FaultInjector>),
    }
}

fn endpoint_id(endpoint: usize) -> EndpointId {
    EndpointId::new(ENDPOINTS[endpoint]).unwrap()
}

async fn run(ops: Vec<Op>) {
    let directory = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let mut store = MessageStore::open(directory.path(), options(&faults))
        .await
        .unwrap();
    let mut readers: Vec<EndpointReader> = (0..3).map(|e| store.reader(&endpoint_id(e))).collect();
    let mut model = Model {
        now_ms: 1_000,
        ..Model::default()
    };
    let mut put_count = 0u64;
    for op in ops {
        let mut dropped_before = store.stats().dropped_overflow;
        // Only a put at the byte bound may drop entries (and only drop-oldest ones).
        let may_drop = matches!(op, Op::Put { .. });
        match op {
            Op::Put { targets, size } => {
                put_count += 1;
                let mut payload = format!("put {put_count} ").into_bytes();
                payload.resize(size.max(payload.len()), b'x');
                let payload = Bytes::from(payload);
                let mut by_endpoint: BTreeMap<usize, (u8, u64, bool)> = BTreeMap::new();
                let mut store_targets = Vec::new();
                for (endpoint, priority, ttl, drop_oldest) in targets {
                    let priority = PRIORITIES[priority];
                    store_targets.push(Target {
                        endpoint: endpoint_id(endpoint),
                        priority: Priority::new(priority).unwrap(),
                        time_to_live: Duration::from_millis(ttl),
                        overflow: if drop_oldest {
                            Overflow::DropOldest
                        } else {
                            Overflow::RefuseNew
                        },
                    });
                    let expiry = model.now_ms + ttl;
                    by_endpoint
                        .entry(endpoint)
                        .and_modify(|(p, e, refuse_new)| {
                            *p = (*p).min(priority);
                            *e = (*e).max(expiry);
                            *refuse_new |= !drop_oldest;
                        })
                        .or_insert((priority, expiry, !drop_oldest));
                }
                match store
                    .put(payload.clone(), store_targets, model.now_ms)
                    .await
                {
                    Ok(sequence) => {
                        for (endpoint, (priority, expiry_ms, refuse_new)) in by_endpoint {
                            model
                                .queues
                                .entry((endpoint, priority))
                                .or_default()
                                .push_back(Entry {
                                    sequence,
                                    expiry_ms,
                                    payload: payload.clone(),
                                    refuse_new,
                                });
                        }
                    }
                    Err(error) => {
                        assert!(error.is_full(), "unexpected put error {error}");
                        model.ghosts.insert(payload);
                    }
                }
            }
            Op::NextBatch {
                endpoint,
                max_messages,
            } => {
                let expected_priority = PRIORITIES
                    .iter()
                    .copied()
                    .find(|priority| !model.pending(endpoint, *priority).is_empty());
                let reader = &mut readers[endpoint];
                let batch = match expected_priority {
                    Some(_) => Some(
                        reader
                            .next_batch(max_messages, usize::MAX, model.now_ms)
                            .await
                            .unwrap(),
                    ),
                    None => tokio::time::timeout(
                        Duration::from_millis(20),
                        reader.next_batch(max_messages, usize::MAX, model.now_ms),
                    )
                    .await
                    .ok()
                    .map(Result::unwrap),
                };
                if let Some(batch) = batch {
                    assert!(batch.messages.len() <= max_messages);
                    let known: Vec<_> = batch
                        .messages
                        .iter()
                        .filter(|message| !model.ghosts.contains(&message.payload))
                        .collect();
                    let ghost_count = batch.messages.len() - known.len();
                    if !known.is_empty() || ghost_count == 0 {
                        let priority =
                            expected_priority.expect("a batch although nothing is pending");
                        assert_eq!(batch.priority.get(), priority, "highest priority first");
                        let pending = model.pending(endpoint, priority);
                        let expected: Vec<_> = pending
                            .iter()
                            .take(max_messages - ghost_count)
                            .map(|entry| (entry.sequence, entry.payload.clone()))
                            .collect();
                        let got: Vec<_> = known
                            .iter()
                            .map(|message| (message.sequence, message.payload.clone()))
                            .collect();
                        if ghost_count == 0 {
                            assert_eq!(got, expected, "batch of {}", ENDPOINTS[endpoint]);
                        } else {
                            assert!(expected.starts_with(&got));
                        }
                    }
                    if let Some(last) = batch.messages.last() {
                        model
                            .delivered_below
                            .insert((endpoint, batch.priority.get()), last.sequence + 1);
                    }
                    model
                        .in_flight
                        .entry(endpoint)
                        .or_default()
                        .push_back(batch);
                }
            }
            Op::Ack { endpoint } => {
                if let Some(batch) = model
                    .in_flight
                    .get(&endpoint)
                    .and_then(|b| b.front())
                    .cloned()
                {
                    match readers[endpoint].ack(&batch).await {
                        Ok(()) => {
                            model.in_flight.get_mut(&endpoint).unwrap().pop_front();
                            let last = batch.messages.last().unwrap().sequence;
                            if let Some(queue) =
                                model.queues.get_mut(&(endpoint, batch.priority.get()))
                            {
                                while queue.front().is_some_and(|entry| entry.sequence <= last) {
                                    queue.pop_front();
                                }
                            }
                        }
                        Err(error) => assert!(error.is_full(), "unexpected ack error {error}"),
                    }
                }
            }
            Op::Rewind { endpoint } => {
                readers[endpoint].rewind();
                model.forget_in_flight(endpoint);
            }
            Op::Reopen => {
                faults.armed.lock().unwrap().clear();
                store.close().await.unwrap();
                drop(readers);
                store = MessageStore::open(directory.path(), options(&faults))
                    .await
                    .unwrap();
                readers = (0..3).map(|e| store.reader(&endpoint_id(e))).collect();
                // Counters start again with the new instance.
                dropped_before = 0;
                for endpoint in 0..3 {
                    model.forget_in_flight(endpoint);
                }
            }
            Op::Reclaim { advance_ms } => {
                model.now_ms += advance_ms;
                store.reclaim(model.now_ms).await.unwrap();
            }
            Op::Fail { operation } => {
                *faults
                    .armed
                    .lock()
                    .unwrap()
                    .entry(FAULTS[operation])
                    .or_default() += 1;
            }
        }
        let stats = store.stats();
        assert!(stats.bytes_on_disk <= stats.max_bytes, "{stats:?}");
        let lost_in_model = model.cut_below(stats.first_sequence, !may_drop);
        let dropped = stats.dropped_overflow - dropped_before;
        if !may_drop {
            // Acknowledged or expired entries went away; nothing counts as dropped.
            assert_eq!(dropped, 0, "dropped count");
        } else if model.ghosts.is_empty() {
            assert_eq!(dropped, lost_in_model, "dropped count");
        } else {
            // Failed puts that reached the disk after all count when dropped.
            assert!(dropped >= lost_in_model, "dropped count");
        }
    }
    store.close().await.unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(ops));
    }
}
