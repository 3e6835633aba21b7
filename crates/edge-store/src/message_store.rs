//! The message store: one shared log holding every message once, durable per-queue ack cursors,
//! bounded per-segment summaries, admission against the byte bound, and retention.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use store::framing::{SEGMENT_HEADER_LENGTH, frame_length};
use store::{CheckpointName, CheckpointStore, LogHandle, LogOptions, ReadLimits, SegmentInfo};
use tokio::sync::watch;

use crate::header::{StoredTarget, encode_record, walk_header};
use crate::reader::EndpointReader;
use crate::types::{
    EdgeStoreError, EndpointId, Overflow, Priority, ReclaimStats, StoreOptions, StoreStats, Target,
};

/// Name of the log's directory inside the store directory.
const LOG_DIRECTORY_NAME: &str = "log";
/// Name of the ack cursor file inside the store directory.
const CURSOR_FILE_NAME: &str = "cursors.ckpt";
/// Endpoint ids longer than this are shortened (plus a hash) in cursor names, which may be at
/// most 255 bytes.
const MAXIMUM_PLAIN_NAME_LENGTH: usize = 240;
/// How much one internal read of the log returns.
pub(crate) const SCAN_LIMITS: ReadLimits = ReadLimits {
    max_records: 1024,
    max_bytes: 1024 * 1024,
};

/// An endpoint's dense index (interned) and a priority: one logical queue.
pub(crate) type QueueKey = (u32, Priority);

/// The durable store-and-forward of the edge hub. Cloning shares the store.
#[derive(Clone, Debug)]
pub struct MessageStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) log: LogHandle,
    cursor_store: CheckpointStore,
    options: StoreOptions,
    /// The byte bound in force: `options.max_bytes` unless lowered by [`MessageStore::set_max_bytes`].
    max_bytes: AtomicU64,
    state: Mutex<State>,
    /// Serialises the passes that delete segments (overflow drops and reclaim).
    retention: tokio::sync::Mutex<()>,
    /// Serialises the start of puts (admission and submission to the log) in arrival order.
    order: tokio::sync::Mutex<()>,
    /// Bumped after each durable put has been recorded in the summaries (and on close).
    pub(crate) bookkept: watch::Sender<u64>,
    /// Bumped whenever retention deletes segments.
    freed: watch::Sender<u64>,
    /// The value of `freed` when the last put was refused for lack of space.
    refused_at: AtomicU64,
    pub(crate) closed: AtomicBool,
    messages_written: AtomicU64,
    dropped_overflow: AtomicU64,
    pub(crate) expired_skipped: AtomicU64,
}

/// In-memory bookkeeping; bounded by the number of endpoints and of segments, never by the
/// number of stored messages.
#[derive(Debug, Default)]
pub(crate) struct State {
    endpoint_indexes: HashMap<String, u32>,
    /// Per segment (by base offset): which queues have records there, and the latest expiry.
    summaries: BTreeMap<u64, SegmentSummary>,
    /// Per queue: the sequence of its newest record.
    last_written: HashMap<QueueKey, u64>,
    /// Per queue: the first unacknowledged sequence (mirrors the durable cursor file).
    cursors: HashMap<QueueKey, u64>,
    /// Puts between admission and bookkeeping, by the committed offset when they started:
    /// their records are at or after that offset and not in the summaries yet.
    in_flight: BTreeMap<u64, usize>,
    /// Bytes promised to puts in flight.
    reserved_bytes: u64,
    /// Per endpoint: the generation of its live reader.
    reader_generations: HashMap<u32, u64>,
    /// The oldest stored offset at the last deletion (to tell whether one freed space).
    first_offset_seen: u64,
}

/// The durable-write future of one put, with what its bookkeeping needs.
struct PendingPut {
    inner: Arc<Inner>,
    durable: Pin<Box<dyn Future<Output = Result<u64, store::StoreError>> + Send>>,
    rest: Option<(Vec<StoredTarget>, InFlight)>,
}

impl Drop for PendingPut {
    /// A put dropped before its write was durable: finish the bookkeeping in the background.
    fn drop(&mut self) {
        let Some((targets, in_flight)) = self.rest.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime: the process is ending; opening the store again rebuilds the summaries.
            return;
        };
        let inner = Arc::clone(&self.inner);
        let durable = std::mem::replace(&mut self.durable, Box::pin(std::future::pending()));
        runtime.spawn(async move {
            let result = durable.await;
            let _ = inner.record_put(result, targets, in_flight);
        });
    }
}

/// A put between admission and bookkeeping. Dropping it (also on a panic) releases the
/// reservation and the retention fence, so a failed put can never stall retention.
struct InFlight {
    inner: Arc<Inner>,
    floor: u64,
    reserved_bytes: u64,
}

impl InFlight {
    /// Registers a put that reserved `reserved_bytes`: its record will be at or after the
    /// offset that is committed now.
    fn start(inner: &Arc<Inner>, reserved_bytes: u64) -> InFlight {
        let mut state = inner.lock();
        let floor = inner.log.stats().next_offset;
        *state.in_flight.entry(floor).or_insert(0) += 1;
        InFlight {
            inner: Arc::clone(inner),
            floor,
            reserved_bytes,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.finish_in_flight(self.floor);
        state.reserved_bytes -= self.reserved_bytes;
    }
}

#[derive(Debug, Default)]
struct SegmentSummary {
    queues: HashMap<QueueKey, QueueRange>,
    max_expiry_ms: u64,
    /// The latest expiry of the segment's [`Overflow::RefuseNew`] entries (0: none).
    refuse_new_max_expiry_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct QueueRange {
    count: u64,
    first: u64,
    last: u64,
    /// The sequence of the queue's last [`Overflow::RefuseNew`] entry in the segment.
    refuse_new_last: Option<u64>,
}

impl State {
    /// The index of `endpoint`, loading its cursors the first time it is seen.
    fn intern(&mut self, endpoint: &str, cursor_store: &CheckpointStore) -> u32 {
        if let Some(index) = self.endpoint_indexes.get(endpoint) {
            return *index;
        }
        let index = self.endpoint_indexes.len() as u32;
        self.endpoint_indexes.insert(endpoint.to_owned(), index);
        for priority in Priority::all() {
            let committed = cursor_store
                .get(&cursor_name(endpoint, priority))
                .unwrap_or(0);
            self.cursors.insert((index, priority), committed);
        }
        index
    }

    pub(crate) fn cursor(&self, key: QueueKey) -> u64 {
        self.cursors.get(&key).copied().unwrap_or(0)
    }

    pub(crate) fn last_written(&self, key: QueueKey) -> Option<u64> {
        self.last_written.get(&key).copied()
    }

    /// Offsets below this belong to puts already recorded in the summaries.
    pub(crate) fn bookkept_frontier(&self) -> u64 {
        self.in_flight.keys().next().copied().unwrap_or(u64::MAX)
    }

    /// True when the sealed, fully bookkept `segment` holds no record of `key` at or after
    /// `position`, so a reader of `key` may jump over it.
    pub(crate) fn can_skip(&self, segment: &SegmentInfo, key: QueueKey, position: u64) -> bool {
        segment.is_sealed
            && segment.next_offset <= self.bookkept_frontier()
            && self
                .summaries
                .get(&segment.base_offset)
                .and_then(|summary| summary.queues.get(&key))
                .is_none_or(|range| range.last < position)
    }

    fn note_record(
        &mut self,
        sequence: u64,
        segment_base: u64,
        targets: impl IntoIterator<Item = (u32, Priority, u64, Overflow)>,
    ) {
        let summary = self.summaries.entry(segment_base).or_default();
        for (endpoint, priority, expiry_ms, overflow) in targets {
            let key = (endpoint, priority);
            summary.max_expiry_ms = summary.max_expiry_ms.max(expiry_ms);
            let refuse_new = (overflow == Overflow::RefuseNew).then_some(sequence);
            if refuse_new.is_some() {
                summary.refuse_new_max_expiry_ms = summary.refuse_new_max_expiry_ms.max(expiry_ms);
            }
            summary
                .queues
                .entry(key)
                .and_modify(|range| {
                    // Concurrent puts are recorded in any order.
                    range.count += 1;
                    range.first = range.first.min(sequence);
                    range.last = range.last.max(sequence);
                    range.refuse_new_last = range.refuse_new_last.max(refuse_new);
                })
                .or_insert(QueueRange {
                    count: 1,
                    first: sequence,
                    last: sequence,
                    refuse_new_last: refuse_new,
                });
            let last = self.last_written.entry(key).or_insert(sequence);
            *last = (*last).max(sequence);
        }
    }

    /// Whether overflow may delete the segment at `segment_base`: none of its
    /// [`Overflow::RefuseNew`] entries is still unacknowledged and unexpired at `now_ms`.
    fn may_drop(&self, segment_base: u64, now_ms: u64) -> bool {
        self.summaries.get(&segment_base).is_none_or(|summary| {
            summary.refuse_new_max_expiry_ms <= now_ms
                || summary.queues.iter().all(|(key, range)| {
                    range
                        .refuse_new_last
                        .is_none_or(|last| self.cursor(*key) > last)
                })
        })
    }

    fn finish_in_flight(&mut self, floor: u64) {
        if let Some(count) = self.in_flight.get_mut(&floor) {
            *count -= 1;
            if *count == 0 {
                self.in_flight.remove(&floor);
            }
        }
    }
}

/// The durable cursor name of one queue: `p<priority>#<endpoint>`. Checkpoint names take any
/// character but control characters (so `/` and `$` are fine) and at most 255 bytes, so a long
/// endpoint id is cut at a character boundary and suffixed with a 64-bit FNV-1a hash of the
/// whole id.
pub(crate) fn cursor_name(endpoint: &str, priority: Priority) -> CheckpointName {
    let name = if endpoint.len() <= MAXIMUM_PLAIN_NAME_LENGTH {
        format!("p{}#{endpoint}", priority.get())
    } else {
        let mut cut = 200;
        while !endpoint.is_char_boundary(cut) {
            cut -= 1;
        }
        let hash = endpoint
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
            });
        format!("p{}#{}~{hash:016x}", priority.get(), &endpoint[..cut])
    };
    CheckpointName::new(name).expect("endpoint ids are valid checkpoint names once shortened")
}

impl MessageStore {
    /// Opens (or creates) the store in `dir`, recovering from any crash: the log cuts off torn
    /// writes, and the per-segment summaries are rebuilt by one scan of the stored records.
    pub async fn open(
        dir: impl Into<PathBuf>,
        options: StoreOptions,
    ) -> Result<MessageStore, EdgeStoreError> {
        let directory = dir.into();
        if options.segment_bytes < 1024 {
            return Err(EdgeStoreError::InvalidOption {
                option: "segment_bytes",
                reason: "must be at least 1024",
            });
        }
        if options.max_bytes < 2 * options.segment_bytes {
            return Err(EdgeStoreError::InvalidOption {
                option: "max_bytes",
                reason: "must be at least twice segment_bytes",
            });
        }
        let log = LogHandle::open(
            directory.join(LOG_DIRECTORY_NAME),
            LogOptions {
                segment_max_bytes: options.segment_bytes,
                max_total_bytes: None,
                time_to_live: None,
                max_record_bytes: (options.segment_bytes as usize)
                    .min(LogOptions::default().max_record_bytes),
                fault_injector: options.fault_injector.clone(),
                ..LogOptions::default()
            },
        )
        .await?;
        let fault_injector = options.fault_injector.clone();
        let rebuild_log = log.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let cursor_store = CheckpointStore::open_with_faults(
                directory.join(CURSOR_FILE_NAME),
                fault_injector,
            )?;
            let state = rebuild_state(&rebuild_log, &cursor_store)?;
            Ok::<_, EdgeStoreError>((cursor_store, state))
        })
        .await
        .map_err(|_| EdgeStoreError::Store(store::StoreError::Closed))
        .and_then(|opened| opened);
        let (cursor_store, state) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                let _ = log.close().await;
                return Err(error);
            }
        };
        Ok(MessageStore {
            inner: Arc::new(Inner {
                log,
                cursor_store,
                max_bytes: AtomicU64::new(options.max_bytes),
                options,
                state: Mutex::new(state),
                retention: tokio::sync::Mutex::new(()),
                order: tokio::sync::Mutex::new(()),
                bookkept: watch::channel(0).0,
                freed: watch::channel(0).0,
                refused_at: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                messages_written: AtomicU64::new(0),
                dropped_overflow: AtomicU64::new(0),
                expired_skipped: AtomicU64::new(0),
            }),
        })
    }

    /// Writes the payload once and queues it on every target; resolves only after it is
    /// durable, with its sequence. A target endpoint named twice keeps its highest priority,
    /// longest time-to-live and [`Overflow::RefuseNew`] if either asked for it. At the byte
    /// bound the oldest segments are deleted to make room as long as everything they still hold
    /// unacknowledged and unexpired was put with [`Overflow::DropOldest`]; otherwise the put is
    /// refused ([`EdgeStoreError::Full`]). The write completes even if the returned future is
    /// dropped.
    pub async fn put(
        &self,
        payload: Bytes,
        targets: Vec<Target>,
        now_ms: u64,
    ) -> Result<u64, EdgeStoreError> {
        if targets.is_empty() {
            return Err(EdgeStoreError::NoTargets);
        }
        let mut by_endpoint: BTreeMap<EndpointId, (Priority, u64, Overflow)> = BTreeMap::new();
        for target in targets {
            let time_to_live = if target.time_to_live.is_zero() {
                self.inner.options.default_time_to_live
            } else {
                target.time_to_live
            };
            let expiry_ms = now_ms.saturating_add(time_to_live.as_millis() as u64);
            by_endpoint
                .entry(target.endpoint)
                .and_modify(|(priority, expiry, overflow)| {
                    *priority = (*priority).min(target.priority);
                    *expiry = (*expiry).max(expiry_ms);
                    if target.overflow == Overflow::RefuseNew {
                        *overflow = Overflow::RefuseNew;
                    }
                })
                .or_insert((target.priority, expiry_ms, target.overflow));
        }
        let targets: Vec<StoredTarget> = by_endpoint
            .into_iter()
            .map(|(endpoint, (priority, expiry_ms, overflow))| StoredTarget {
                endpoint,
                priority,
                expiry_ms,
                overflow,
            })
            .collect();
        let mut record = Vec::with_capacity(payload.len() + 64);
        encode_record(&mut record, now_ms, &targets, &payload);
        let inner = Arc::clone(&self.inner);
        // Puts take their place in the log in the order they were first polled (the lock is
        // fair), so one client's messages keep their order even while many wait for the same
        // group commit.
        let order = inner.order.lock().await;
        let needed_bytes = frame_length(record.len()) as u64 + SEGMENT_HEADER_LENGTH as u64;
        inner.admit(needed_bytes, now_ms).await?;
        let in_flight = InFlight::start(&inner, needed_bytes);
        let durable = inner.log.submit_at(Bytes::from(record), now_ms).await?;
        drop(order);
        // A record that reached the log is always recorded in the summaries, even when the
        // caller stops waiting: the guard finishes the bookkeeping in a task of its own then.
        let mut pending = PendingPut {
            inner,
            durable: Box::pin(durable),
            rest: Some((targets, in_flight)),
        };
        let result = (&mut pending.durable).await;
        let (targets, in_flight) = pending.rest.take().expect("taken only here or on drop");
        pending.inner.record_put(result, targets, in_flight)
    }

    /// The reader of one endpoint (all its priorities), starting at its durable cursors. At most
    /// one live reader per endpoint: creating another retires this one (its calls then fail
    /// with [`EdgeStoreError::ReaderReplaced`]).
    pub fn reader(&self, endpoint: &EndpointId) -> EndpointReader {
        let mut state = self.inner.lock();
        let index = state.intern(endpoint.as_str(), &self.inner.cursor_store);
        let generation = state.reader_generations.entry(index).or_insert(0);
        *generation += 1;
        let generation = *generation;
        let positions = Priority::all()
            .map(|priority| state.cursor((index, priority)))
            .collect();
        drop(state);
        EndpointReader::new(
            Arc::clone(&self.inner),
            endpoint.clone(),
            index,
            generation,
            positions,
        )
    }

    /// Resolves the next time retention frees space, or at once if space was freed since the
    /// last put refused for lack of it (so a refused caller cannot miss the wake-up).
    pub async fn space_freed(&self) {
        let mut freed = self.inner.freed.subscribe();
        let refused_at = self.inner.refused_at.load(Ordering::Acquire);
        let _ = freed.wait_for(|generation| *generation > refused_at).await;
    }

    /// Deletes the oldest segments whose records are all acknowledged by their targets or
    /// expired at `now_ms`. Only whole segments, only from the front, never the active one: no
    /// data is rewritten. Cheap when there is nothing to delete.
    pub async fn reclaim(&self, now_ms: u64) -> Result<ReclaimStats, EdgeStoreError> {
        self.inner.reclaim(Some(now_ms)).await
    }

    /// Sets the byte bound for the puts from now on, at most the bound the store was opened with
    /// and at least twice the segment size; returns the bound in force. Lowering it deletes
    /// nothing at once: puts at the new bound make room or are refused as usual.
    pub fn set_max_bytes(&self, max_bytes: u64) -> u64 {
        let bound = max_bytes
            .min(self.inner.options.max_bytes)
            .max(2 * self.inner.options.segment_bytes);
        let previous = self.inner.max_bytes.swap(bound, Ordering::AcqRel);
        if bound > previous {
            // Writers held back at the lower bound may have room now.
            self.inner.freed.send_modify(|generation| *generation += 1);
        }
        bound
    }

    /// The store's counters.
    pub fn stats(&self) -> StoreStats {
        let log = self.inner.log.stats();
        StoreStats {
            bytes_on_disk: log.total_bytes,
            max_bytes: self.inner.max_bytes.load(Ordering::Relaxed),
            messages_written: self.inner.messages_written.load(Ordering::Relaxed),
            dropped_overflow: self.inner.dropped_overflow.load(Ordering::Relaxed),
            expired_skipped: self.inner.expired_skipped.load(Ordering::Relaxed),
            first_sequence: log.first_offset,
            next_sequence: log.next_offset,
        }
    }

    /// About how many queue entries of `endpoint` (all priorities) are not acknowledged yet,
    /// expired ones included: exact except that a segment holding the ack cursor counts whole.
    /// Costs one pass over the segment summaries.
    pub fn pending_estimate(&self, endpoint: &EndpointId) -> u64 {
        let state = self.inner.lock();
        let Some(index) = state.endpoint_indexes.get(endpoint.as_str()).copied() else {
            return 0;
        };
        state
            .summaries
            .values()
            .flat_map(|summary| summary.queues.iter())
            .filter(|(key, range)| key.0 == index && range.last >= state.cursor(**key))
            .map(|(_, range)| range.count)
            .sum()
    }

    /// Stops the log writer after the writes already queued and releases the directory;
    /// waiting readers fail with a closed error and `space_freed` waiters return (their retry
    /// then fails the same way).
    pub async fn close(&self) -> Result<(), EdgeStoreError> {
        self.inner.closed.store(true, Ordering::Release);
        self.inner
            .bookkept
            .send_modify(|generation| *generation += 1);
        // Writers waiting for space retry and learn that the store is closed.
        self.inner.freed.send_modify(|generation| *generation += 1);
        self.inner.log.close().await?;
        Ok(())
    }
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of the state is a few plain assignments; a panic elsewhere while the
        // lock was held leaves it consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn reader_generation(&self, endpoint: u32) -> u64 {
        self.lock()
            .reader_generations
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// The index of an endpoint named in a record, if any reader or put has seen it.
    pub(crate) fn endpoint_index(&self, state: &State, endpoint: &str) -> Option<u32> {
        state.endpoint_indexes.get(endpoint).copied()
    }

    /// Records a submitted put in the summaries once it is durable (or failed).
    fn record_put(
        &self,
        result: Result<u64, store::StoreError>,
        targets: Vec<StoredTarget>,
        in_flight: InFlight,
    ) -> Result<u64, EdgeStoreError> {
        if let Ok(sequence) = result {
            let mut state = self.lock();
            match self.log.segment_containing(sequence) {
                Some(segment) => {
                    let targets: Vec<_> = targets
                        .iter()
                        .map(|target| {
                            let index = state.intern(target.endpoint.as_str(), &self.cursor_store);
                            (index, target.priority, target.expiry_ms, target.overflow)
                        })
                        .collect();
                    state.note_record(sequence, segment.base_offset, targets);
                }
                None => tracing::error!(sequence, "a durable record has no segment"),
            }
        }
        drop(in_flight);
        let sequence = result?;
        self.messages_written.fetch_add(1, Ordering::Relaxed);
        self.bookkept.send_modify(|generation| *generation += 1);
        Ok(sequence)
    }

    /// Reserves `needed_bytes` under the byte bound, dropping oldest segments first when what
    /// they hold may be dropped.
    async fn admit(&self, needed_bytes: u64, now_ms: u64) -> Result<(), EdgeStoreError> {
        loop {
            // Read before looking at the space: a deletion after this point wakes
            // `space_freed` callers even if it races with the refusal below.
            let freed_generation = *self.freed.borrow();
            let used_bytes = {
                let mut state = self.lock();
                let used_bytes = self.log.stats().total_bytes + state.reserved_bytes;
                if used_bytes + needed_bytes <= self.max_bytes.load(Ordering::Acquire) {
                    state.reserved_bytes += needed_bytes;
                    return Ok(());
                }
                used_bytes
            };
            let full = EdgeStoreError::Full {
                used_bytes,
                max_bytes: self.max_bytes.load(Ordering::Acquire),
                requested_bytes: needed_bytes,
            };
            if !self.drop_oldest_segment(now_ms).await? {
                self.refused_at
                    .fetch_max(freed_generation, Ordering::AcqRel);
                return Err(full);
            }
        }
    }

    /// Deletes the oldest sealed segment, counting its unacknowledged queue entries as lost.
    /// Returns false when there is no segment that may be dropped: none is sealed, or the
    /// oldest still holds a `RefuseNew` entry that is neither acknowledged nor expired.
    async fn drop_oldest_segment(&self, now_ms: u64) -> Result<bool, EdgeStoreError> {
        let _retention = self.retention.lock().await;
        let segments = self.log.segments();
        let Some(front) = segments.first().copied() else {
            return Ok(false);
        };
        {
            let state = self.lock();
            if !front.is_sealed
                || front.next_offset > state.bookkept_frontier()
                || !state.may_drop(front.base_offset, now_ms)
            {
                return Ok(false);
            }
        }
        let lost = self.count_unacknowledged(&front).await?;
        self.log.set_retention_floor(front.next_offset).await?;
        if self.log.stats().first_offset >= front.next_offset {
            self.dropped_overflow.fetch_add(lost, Ordering::Relaxed);
            tracing::warn!(
                lost,
                base_offset = front.base_offset,
                "store full: dropped the oldest segment"
            );
        }
        self.after_deletion();
        Ok(true)
    }

    /// Queue entries in `segment` not acknowledged yet.
    async fn count_unacknowledged(&self, segment: &SegmentInfo) -> Result<u64, EdgeStoreError> {
        let mut needs_scan = false;
        let mut count = 0;
        {
            let state = self.lock();
            if let Some(summary) = state.summaries.get(&segment.base_offset) {
                for (key, range) in &summary.queues {
                    let cursor = state.cursor(*key);
                    if cursor <= range.first {
                        count += range.count;
                    } else if cursor <= range.last {
                        needs_scan = true;
                    }
                }
            }
        }
        if !needs_scan {
            return Ok(count);
        }
        // A queue's cursor is inside this segment: count its entries one by one.
        let mut count = 0;
        let mut position = segment.base_offset;
        while position < segment.next_offset {
            let records = self.log.read_from(position, SCAN_LIMITS).await?;
            let Some(last) = records.last() else { break };
            position = last.offset + 1;
            let state = self.lock();
            for record in records
                .iter()
                .filter(|record| record.offset < segment.next_offset)
            {
                let _ = walk_header(&record.payload, |target| {
                    if let Some(index) = self.endpoint_index(&state, target.endpoint)
                        && record.offset >= state.cursor((index, target.priority))
                    {
                        count += 1;
                    }
                });
            }
        }
        Ok(count)
    }

    /// Deletes the front segments every target is done with (acknowledged, or expired at
    /// `now_ms` when given).
    pub(crate) async fn reclaim(
        &self,
        now_ms: Option<u64>,
    ) -> Result<ReclaimStats, EdgeStoreError> {
        let _retention = self.retention.lock().await;
        let floor = {
            let state = self.lock();
            let frontier = state.bookkept_frontier();
            let mut floor = None;
            for segment in self.log.segments() {
                if !segment.is_sealed || segment.next_offset > frontier {
                    break;
                }
                let done = state
                    .summaries
                    .get(&segment.base_offset)
                    .is_none_or(|summary| {
                        now_ms.is_some_and(|now_ms| summary.max_expiry_ms <= now_ms)
                            || summary
                                .queues
                                .iter()
                                .all(|(key, range)| state.cursor(*key) > range.last)
                    });
                if !done {
                    break;
                }
                floor = Some(segment.next_offset);
            }
            floor
        };
        let Some(floor) = floor else {
            return Ok(ReclaimStats::default());
        };
        let report = self.log.set_retention_floor(floor).await;
        self.after_deletion();
        let report = report?;
        Ok(ReclaimStats {
            deleted_segments: report.deleted_segments,
            reclaimed_bytes: report.reclaimed_bytes,
        })
    }

    /// Forgets the summaries of deleted segments and wakes refused writers.
    fn after_deletion(&self) {
        let first_offset = self.log.stats().first_offset;
        let mut state = self.lock();
        let kept = state.summaries.split_off(&first_offset);
        state.summaries = kept;
        if first_offset > state.first_offset_seen {
            state.first_offset_seen = first_offset;
            drop(state);
            self.freed.send_modify(|generation| *generation += 1);
        }
    }

    /// Durably moves the cursor of `key` to `first_unacknowledged` (never backwards), then
    /// deletes segments that became fully acknowledged.
    pub(crate) async fn acknowledge(
        &self,
        endpoint: &EndpointId,
        key: QueueKey,
        first_unacknowledged: u64,
    ) -> Result<(), EdgeStoreError> {
        if first_unacknowledged <= self.lock().cursor(key) {
            return Ok(());
        }
        self.cursor_store
            .commit(cursor_name(endpoint.as_str(), key.1), first_unacknowledged)
            .await?;
        {
            let mut state = self.lock();
            let cursor = state.cursors.entry(key).or_insert(0);
            *cursor = (*cursor).max(first_unacknowledged);
        }
        if let Err(error) = self.reclaim(None).await {
            // The acknowledgement itself is durable; retention is retried on the next pass.
            tracing::warn!(%error, "reclaiming acknowledged segments failed");
        }
        Ok(())
    }
}

/// Scans every stored record once to rebuild the per-segment summaries.
fn rebuild_state(log: &LogHandle, cursor_store: &CheckpointStore) -> Result<State, EdgeStoreError> {
    let mut state = State::default();
    let segments = log.segments();
    let mut position = log.stats().first_offset;
    state.first_offset_seen = position;
    loop {
        let records = log.read_from_blocking(position, SCAN_LIMITS)?;
        let Some(last) = records.last() else { break };
        position = last.offset + 1;
        for record in &records {
            let segment_index =
                segments.partition_point(|segment| segment.base_offset <= record.offset);
            let Some(segment) = segment_index.checked_sub(1).map(|index| segments[index]) else {
                continue;
            };
            let mut targets = Vec::new();
            let walked = walk_header(&record.payload, |target| {
                targets.push((
                    target.endpoint,
                    target.priority,
                    target.expiry_ms,
                    target.overflow,
                ));
            });
            if let Err(error) = walked {
                tracing::error!(%error, sequence = record.offset, "skipping a record with a malformed header");
                continue;
            }
            let interned: Vec<_> = targets
                .iter()
                .map(|(endpoint, priority, expiry_ms, overflow)| {
                    (
                        state.intern(endpoint, cursor_store),
                        *priority,
                        *expiry_ms,
                        *overflow,
                    )
                })
                .collect();
            state.note_record(record.offset, segment.base_offset, interned);
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_take_records_in_any_order() {
        let mut state = State::default();
        let priority = Priority::DEFAULT;
        state.note_record(7, 0, [(0, priority, 100, Overflow::DropOldest)]);
        state.note_record(3, 0, [(0, priority, 50, Overflow::RefuseNew)]);
        state.note_record(5, 0, [(0, priority, 70, Overflow::RefuseNew)]);
        let summary = &state.summaries[&0];
        let range = summary.queues[&(0, priority)];
        assert_eq!((range.count, range.first, range.last), (3, 3, 7));
        assert_eq!(range.refuse_new_last, Some(5));
        assert_eq!(summary.max_expiry_ms, 100);
        assert_eq!(summary.refuse_new_max_expiry_ms, 70);
        assert_eq!(state.last_written((0, priority)), Some(7));
    }

    #[test]
    fn overflow_may_drop_a_segment_once_its_refuse_new_entries_are_acknowledged_or_expired() {
        let mut state = State::default();
        let (low, high) = (Priority::DEFAULT, Priority::new(0).unwrap());
        state.note_record(1, 0, [(0, low, 100, Overflow::RefuseNew)]);
        state.note_record(2, 0, [(0, low, 500, Overflow::DropOldest)]);
        state.note_record(3, 0, [(1, high, 80, Overflow::RefuseNew)]);
        state.note_record(4, 10, [(0, low, 500, Overflow::DropOldest)]);
        assert!(!state.may_drop(0, 0));
        assert!(state.may_drop(10, 0), "only drop-oldest entries");
        assert!(state.may_drop(99, 0), "a segment without a summary");
        state.cursors.insert((0, low), 2);
        assert!(!state.may_drop(0, 0), "endpoint 1 still needs sequence 3");
        state.cursors.insert((1, high), 4);
        assert!(state.may_drop(0, 0), "both refuse-new entries acknowledged");
        state.cursors.clear();
        assert!(!state.may_drop(0, 99));
        assert!(state.may_drop(0, 100), "both refuse-new entries expired");
    }

    #[test]
    fn cursor_names_fit_and_stay_distinct() {
        let priority = Priority::new(3).unwrap();
        assert_eq!(
            cursor_name("edge-1/filter/input1", priority).as_str(),
            "p3#edge-1/filter/input1"
        );
        assert_eq!(
            cursor_name("$upstream", Priority::DEFAULT).as_str(),
            "p10#$upstream"
        );
        let long_one = format!("{}/one", "é".repeat(126));
        let long_two = format!("{}/two", "é".repeat(126));
        let one = cursor_name(&long_one, priority);
        let two = cursor_name(&long_two, priority);
        assert!(one.as_str().len() <= 255 && two.as_str().len() <= 255);
        assert_ne!(one, two);
    }
}
