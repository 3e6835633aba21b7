//! The log handle: opening a directory, appending through the writer thread, reading, tailing
//! and retention requests.

use std::collections::VecDeque;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{StoreError, StoreResult};
use crate::faults::{FaultHook, FaultInjector};
use crate::framing::Record;
use crate::segment::{
    IndexEntry, ReadFailure, ReadLimits, Segment, SegmentView, encode_sealed_index, read_records,
    recover_directory, remove_sealed_index,
};
use crate::writer::{AppendRecord, ReclaimReport, Writer, WriterRequest, hard_payload_limit};

/// Name of the advisory lock file inside a log directory.
const LOCK_FILE_NAME: &str = "LOCK";

/// What to do when an append would push the log past its byte bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// Delete whole oldest segments (even unread ones) to make room.
    DropOldest,
    /// Refuse the append with [`StoreError::StoreFull`]; the caller applies back-pressure.
    RefuseNew,
}

/// Tuning and retention settings of a log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// A segment is sealed and a new one started once it would grow past this size.
    pub segment_max_bytes: u64,
    /// Upper bound on the bytes of all segments together; `None` for unbounded.
    pub max_total_bytes: Option<u64>,
    /// What happens at the byte bound.
    pub overflow_policy: OverflowPolicy,
    /// Whole segments whose newest record is older than this are deleted by
    /// [`LogHandle::reclaim_expired`].
    pub time_to_live: Option<Duration>,
    /// Largest accepted payload.
    pub max_record_bytes: usize,
    /// Capacity of the bounded request channel to the writer (back-pressure on appenders).
    pub request_channel_capacity: usize,
    /// A group commit takes at most about this many records...
    pub max_batch_records: usize,
    /// ...and about this many payload bytes.
    pub max_batch_bytes: usize,
    /// Distance in bytes between sparse index entries.
    pub index_interval_bytes: u64,
    /// The active segment file grows ahead of its records in steps of this many zero bytes, so
    /// that a group commit's `fdatasync` writes the records only and not the file's new size
    /// (on ext4 that is a second write per commit, about half of its cost). 0 grows the file
    /// with every batch. The space ahead is cut off when the segment is sealed or the log closed.
    pub preallocate_bytes: u64,
    /// Test hook that can fail file operations; `None` in production.
    pub fault_injector: Option<Arc<dyn FaultInjector>>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_max_bytes: 64 * 1024 * 1024,
            max_total_bytes: None,
            overflow_policy: OverflowPolicy::DropOldest,
            time_to_live: None,
            max_record_bytes: 4 * 1024 * 1024,
            request_channel_capacity: 4096,
            max_batch_records: 4096,
            max_batch_bytes: 8 * 1024 * 1024,
            index_interval_bytes: 64 * 1024,
            preallocate_bytes: 1024 * 1024,
            fault_injector: None,
        }
    }
}

impl LogOptions {
    fn validate(&self) -> StoreResult<()> {
        if self.segment_max_bytes < 64 {
            return Err(StoreError::InvalidOption {
                option: "segment_max_bytes",
                reason: "must be at least 64",
            });
        }
        if self.max_record_bytes > hard_payload_limit() {
            return Err(StoreError::InvalidOption {
                option: "max_record_bytes",
                reason: "must be at most 64 MiB",
            });
        }
        if self.request_channel_capacity == 0 || self.max_batch_records == 0 {
            return Err(StoreError::InvalidOption {
                option: "request_channel_capacity",
                reason: "channel capacity and batch size must be positive",
            });
        }
        if self.index_interval_bytes == 0 {
            return Err(StoreError::InvalidOption {
                option: "index_interval_bytes",
                reason: "must be positive",
            });
        }
        Ok(())
    }
}

/// Where a consumer starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record still stored.
    Start,
    /// Only records appended from now on.
    End,
    /// A specific offset (clamped into the stored range).
    Offset(u64),
}

/// A snapshot of the log's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    /// The oldest offset that may still be stored.
    pub first_offset: u64,
    /// The offset the next append will get.
    pub next_offset: u64,
    /// Number of segment files.
    pub segment_count: usize,
    /// Bytes of all segment files together.
    pub total_bytes: u64,
    /// Group commits (one write and one `fdatasync` each) since the log was opened.
    pub group_commits: u64,
}

/// One segment file as the log currently sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Offset of the segment's first record.
    pub base_offset: u64,
    /// Offset after the segment's last durable record.
    pub next_offset: u64,
    /// Durable bytes of the segment file (header included).
    pub bytes: u64,
    /// False for the active segment (the one appends go to).
    pub is_sealed: bool,
}

/// State shared by the writer thread and every handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) directory: PathBuf,
    state: Mutex<LogState>,
}

#[derive(Debug)]
struct LogState {
    /// Ordered by base offset; the last one is the active segment.
    segments: VecDeque<Segment>,
    total_bytes: u64,
    group_commits: u64,
    /// The newest durable records, consecutive offsets, at most [`TAIL_CACHE_BYTES`] of
    /// payload: readers that keep up with the writer are served from memory, without opening,
    /// reading and checking the segment file.
    tail: VecDeque<Record>,
    tail_bytes: usize,
}

/// Payload bytes of the newest records kept in memory for readers that keep up.
pub(crate) const TAIL_CACHE_BYTES: usize = 1024 * 1024;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A poisoned lock only means another thread panicked while holding it; the state is
        // still consistent because every update is a handful of plain assignments.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn total_bytes(&self) -> u64 {
        self.lock().total_bytes
    }

    pub(crate) fn sealed_segment_count(&self) -> usize {
        self.lock().segments.len().saturating_sub(1)
    }

    pub(crate) fn publish_commit(
        &self,
        batch_length: u64,
        next_offset: u64,
        newest_timestamp_ms: Option<u64>,
        index_entries: Vec<IndexEntry>,
        records: Vec<Record>,
    ) {
        let mut state = self.lock();
        state.total_bytes += batch_length;
        state.group_commits += 1;
        let active = state
            .segments
            .back_mut()
            .expect("a log always has an active segment");
        active.durable_length += batch_length;
        active.next_offset = next_offset;
        if let Some(newest) = newest_timestamp_ms {
            active.newest_timestamp_ms =
                Some(active.newest_timestamp_ms.map_or(newest, |n| n.max(newest)));
        }
        active.sparse_index.extend(index_entries);
        for record in records {
            state.tail_bytes += record.payload.len();
            state.tail.push_back(record);
        }
        while state.tail_bytes > TAIL_CACHE_BYTES
            && let Some(evicted) = state.tail.pop_front()
        {
            state.tail_bytes -= evicted.payload.len();
        }
    }

    /// The records from `from_offset` on, when the tail cache covers that offset (`None`
    /// sends the reader to the segment files). Durable records only, within `limits`.
    fn read_tail(&self, from_offset: u64, limits: ReadLimits) -> Option<Vec<Record>> {
        let state = self.lock();
        let first = state.tail.front()?.offset;
        if from_offset < first {
            return None;
        }
        let skip = usize::try_from(from_offset - first).ok()?;
        let mut records = Vec::new();
        let mut payload_bytes = 0usize;
        for record in state.tail.iter().skip(skip) {
            if records.len() >= limits.max_records.max(1)
                || (!records.is_empty() && payload_bytes + record.payload.len() > limits.max_bytes)
            {
                break;
            }
            payload_bytes += record.payload.len();
            records.push(record.clone());
        }
        Some(records)
    }

    /// Drops cached records below `first_kept` (their segment is gone).
    fn evict_tail_below(state: &mut LogState, first_kept: u64) {
        while state
            .tail
            .front()
            .is_some_and(|record| record.offset < first_kept)
            && let Some(evicted) = state.tail.pop_front()
        {
            state.tail_bytes -= evicted.payload.len();
        }
    }

    pub(crate) fn push_segment(&self, segment: Segment) {
        let mut state = self.lock();
        state.total_bytes += segment.durable_length;
        state.segments.push_back(segment);
    }

    pub(crate) fn front_sealed_segment_path_if(
        &self,
        predicate: impl Fn(&Segment) -> bool,
    ) -> Option<PathBuf> {
        let state = self.lock();
        if state.segments.len() < 2 {
            return None;
        }
        let front = state.segments.front()?;
        predicate(front).then(|| front.path.clone())
    }

    /// Forgets the oldest segment; returns its base offset and size.
    pub(crate) fn pop_front_segment(&self) -> (u64, u64) {
        let mut state = self.lock();
        let removed = state
            .segments
            .pop_front()
            .expect("only called after a front segment was found");
        state.total_bytes -= removed.durable_length;
        Shared::evict_tail_below(&mut state, removed.next_offset);
        (removed.base_offset, removed.durable_length)
    }

    /// Makes a sealed segment end before the damaged frame that should hold `damaged_offset`.
    /// Returns false when there is nothing to shrink (the segment is active or gone, or already
    /// ends there).
    fn quarantine(&self, base_offset: u64, damaged_offset: u64) -> bool {
        let mut state = self.lock();
        let segment_count = state.segments.len();
        let Some((segment_index, segment)) = state
            .segments
            .iter_mut()
            .enumerate()
            .find(|(_, segment)| segment.base_offset == base_offset)
        else {
            return false;
        };
        if segment_index + 1 == segment_count || damaged_offset >= segment.next_offset {
            return false;
        }
        segment.next_offset = damaged_offset.max(segment.base_offset);
        // Damage is rare: forget the cache rather than reason about which records it covers.
        state.tail.clear();
        state.tail_bytes = 0;
        true
    }

    /// The index file contents of the active segment, about to be sealed (if it has records).
    pub(crate) fn encode_active_segment_index(&self) -> Option<Vec<u8>> {
        let state = self.lock();
        let active = state.segments.back()?;
        (!active.is_empty()).then(|| encode_sealed_index(active))
    }

    fn stats(&self) -> LogStats {
        let state = self.lock();
        LogStats {
            first_offset: state
                .segments
                .front()
                .map_or(0, |segment| segment.base_offset),
            next_offset: state
                .segments
                .back()
                .map_or(0, |segment| segment.next_offset),
            segment_count: state.segments.len(),
            total_bytes: state.total_bytes,
            group_commits: state.group_commits,
        }
    }

    fn segment_infos(&self) -> Vec<SegmentInfo> {
        let state = self.lock();
        let segment_count = state.segments.len();
        state
            .segments
            .iter()
            .enumerate()
            .map(|(segment_index, segment)| {
                segment_info(segment, segment_index + 1 < segment_count)
            })
            .collect()
    }

    fn segment_containing(&self, offset: u64) -> Option<SegmentInfo> {
        let state = self.lock();
        let segment_count = state.segments.len();
        // Segments are ordered by base offset: the candidate is the last one starting at or
        // before `offset`.
        let after = state
            .segments
            .partition_point(|segment| segment.base_offset <= offset);
        let segment_index = after.checked_sub(1)?;
        let segment = &state.segments[segment_index];
        (offset < segment.next_offset)
            .then(|| segment_info(segment, segment_index + 1 < segment_count))
    }

    fn views_from(&self, from_offset: u64) -> Vec<SegmentView> {
        let state = self.lock();
        let segment_count = state.segments.len();
        state
            .segments
            .iter()
            .enumerate()
            .filter(|(_, segment)| !segment.is_empty() && segment.next_offset > from_offset)
            .map(|(segment_index, segment)| SegmentView {
                base_offset: segment.base_offset,
                next_offset: segment.next_offset,
                start: segment.start_for(from_offset),
                durable_length: segment.durable_length,
                is_sealed: segment_index + 1 < segment_count,
                path: segment.path.clone(),
            })
            .collect()
    }
}

fn segment_info(segment: &Segment, is_sealed: bool) -> SegmentInfo {
    SegmentInfo {
        base_offset: segment.base_offset,
        next_offset: segment.next_offset,
        bytes: segment.durable_length,
        is_sealed,
    }
}

/// A cheap, cloneable handle on an open log. The log's writer thread stops when
/// [`LogHandle::close`] is called or the last handle is dropped.
#[derive(Clone, Debug)]
pub struct LogHandle {
    requests: mpsc::Sender<WriterRequest>,
    shared: Arc<Shared>,
    committed: watch::Receiver<u64>,
}

impl LogHandle {
    /// Opens the log in `directory` (creating it when missing), recovering from any crash, and
    /// starts its writer thread. Fails with [`StoreError::AlreadyOpen`] when another handle or
    /// process has the directory open.
    pub async fn open(
        directory: impl Into<PathBuf>,
        options: LogOptions,
    ) -> StoreResult<LogHandle> {
        let directory = directory.into();
        tokio::task::spawn_blocking(move || LogHandle::open_blocking(directory, options))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Like [`LogHandle::open`], for callers outside an async context.
    pub fn open_blocking(directory: PathBuf, options: LogOptions) -> StoreResult<LogHandle> {
        options.validate()?;
        std::fs::create_dir_all(&directory)
            .map_err(|error| StoreError::io("create directory", &directory, error))?;
        let directory_lock = lock_directory(&directory)?;
        let hooks = FaultHook::new(options.fault_injector.clone());
        let recovered = recover_directory(&directory, options.index_interval_bytes, &hooks)?;
        let active = recovered
            .segments
            .back()
            .expect("recovery always leaves an active segment");
        let next_offset = active.next_offset;
        let active_path = active.path.clone();
        let active_base_offset = active.base_offset;
        let active_durable_length = active.durable_length;
        let total_bytes = recovered
            .segments
            .iter()
            .map(|segment| segment.durable_length)
            .sum();
        let shared = Arc::new(Shared {
            directory: directory.clone(),
            state: Mutex::new(LogState {
                segments: recovered.segments,
                total_bytes,
                group_commits: 0,
                tail: VecDeque::new(),
                tail_bytes: 0,
            }),
        });
        let (committed_sender, committed_receiver) = watch::channel(next_offset);
        let (request_sender, request_receiver) = mpsc::channel(options.request_channel_capacity);
        let writer = Writer {
            shared: Arc::clone(&shared),
            options,
            hooks,
            active_file: recovered.active_file,
            active_path,
            active_base_offset,
            active_durable_length,
            // Recovery cut the file to its durable records.
            active_file_length: active_durable_length,
            active_last_indexed_position: recovered.active_last_indexed_position,
            needs_truncate: false,
            next_offset,
            retention_floor: None,
            committed: committed_sender,
            _directory_lock: directory_lock,
        };
        std::thread::Builder::new()
            .name("store-writer".to_owned())
            // The writer's frames are shallow; many queues mean many writers.
            .stack_size(256 * 1024)
            .spawn(move || writer.run(request_receiver))
            .map_err(|error| StoreError::io("spawn writer thread", &directory, error))?;
        Ok(LogHandle {
            requests: request_sender,
            shared,
            committed: committed_receiver,
        })
    }

    /// The directory this log lives in.
    pub fn directory(&self) -> &Path {
        &self.shared.directory
    }

    /// Appends one record stamped with the current wall-clock time; resolves with its offset
    /// once the record is durable.
    pub async fn append(&self, payload: Bytes) -> StoreResult<u64> {
        self.append_at(payload, now_ms()).await
    }

    /// Appends one record with a caller-supplied timestamp; resolves once it is durable.
    pub async fn append_at(&self, payload: Bytes, timestamp_ms: u64) -> StoreResult<u64> {
        let offsets = self
            .append_records(vec![AppendRecord {
                payload,
                timestamp_ms,
            }])
            .await?;
        Ok(offsets.start)
    }

    /// Queues one record for the writer and returns a future that resolves with its offset once
    /// it is durable. The record's place in the log is fixed when this returns, so callers that
    /// must keep an order (the edge hub: one client's messages) submit in that order and may
    /// then wait concurrently.
    pub async fn submit_at(
        &self,
        payload: Bytes,
        timestamp_ms: u64,
    ) -> StoreResult<impl Future<Output = StoreResult<u64>> + Send + 'static> {
        let (reply, response) = oneshot::channel();
        let records = vec![AppendRecord {
            payload,
            timestamp_ms,
        }];
        self.requests
            .send(WriterRequest::Append { records, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(async move {
            let offsets = response.await.map_err(|_| StoreError::Closed)??;
            Ok(offsets.start)
        })
    }

    /// Appends several records atomically (they get consecutive offsets and become durable
    /// together), stamped with the current time.
    pub async fn append_batch(&self, payloads: Vec<Bytes>) -> StoreResult<Range<u64>> {
        let timestamp_ms = now_ms();
        self.append_records(
            payloads
                .into_iter()
                .map(|payload| AppendRecord {
                    payload,
                    timestamp_ms,
                })
                .collect(),
        )
        .await
    }

    /// Appends several records with their own timestamps; resolves with their offsets once
    /// all of them are durable.
    pub async fn append_records(&self, records: Vec<AppendRecord>) -> StoreResult<Range<u64>> {
        let (reply, response) = oneshot::channel();
        self.requests
            .send(WriterRequest::Append { records, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        response.await.map_err(|_| StoreError::Closed)?
    }

    /// Reads records with offsets at or after `from_offset` (or from the oldest stored record,
    /// if `from_offset` was already reclaimed). Returns an empty vector when nothing is there yet.
    /// The newest durable records (about 1 MiB of payload) are served from memory, exactly as
    /// they were appended; older ones are read from the segment files and checked there.
    pub async fn read_from(
        &self,
        from_offset: u64,
        limits: ReadLimits,
    ) -> StoreResult<Vec<Record>> {
        if let Some(records) = self.shared.read_tail(from_offset, limits) {
            return Ok(records);
        }
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || read_from_shared(&shared, from_offset, limits))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Like [`LogHandle::read_from`], but always reading (and checking) the segment files, on
    /// the calling thread.
    pub fn read_from_blocking(
        &self,
        from_offset: u64,
        limits: ReadLimits,
    ) -> StoreResult<Vec<Record>> {
        read_from_shared(&self.shared, from_offset, limits)
    }

    /// Resolves once a record with `offset` (or a later one) is durable.
    pub async fn wait_for(&self, offset: u64) -> StoreResult<()> {
        let mut committed = self.committed.clone();
        committed
            .wait_for(|next_offset| *next_offset > offset)
            .await
            .map(|_| ())
            .map_err(|_| StoreError::Closed)
    }

    /// A watch channel carrying the offset the next durable record will get.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    /// A reader that tails the log from `start`.
    pub fn tail(&self, start: StartPosition) -> LogTail {
        LogTail {
            log: self.clone(),
            next_offset: self.resolve(start),
        }
    }

    /// The offset a consumer starting at `start` reads first.
    pub fn resolve(&self, start: StartPosition) -> u64 {
        let stats = self.stats();
        match start {
            StartPosition::Start => stats.first_offset,
            StartPosition::End => stats.next_offset,
            StartPosition::Offset(offset) => offset.clamp(stats.first_offset, stats.next_offset),
        }
    }

    /// The log's current size.
    pub fn stats(&self) -> LogStats {
        self.shared.stats()
    }

    /// Every segment, oldest first (the last one is the active segment). Lets a layer above the
    /// log keep per-segment summaries and decide retention itself.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.shared.segment_infos()
    }

    /// The segment holding the durable record at `offset`, if it is still stored.
    pub fn segment_containing(&self, offset: u64) -> Option<SegmentInfo> {
        self.shared.segment_containing(offset)
    }

    /// Deletes whole sealed segments whose newest record is older than the time-to-live
    /// (relative to `now_ms`), plus any below the retention floor.
    pub async fn reclaim_expired(&self, now_ms: u64) -> StoreResult<ReclaimReport> {
        let (reply, response) = oneshot::channel();
        self.requests
            .send(WriterRequest::ReclaimExpired { now_ms, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        response.await.map_err(|_| StoreError::Closed)?
    }

    /// Declares that records below `floor_offset` are no longer needed (for queue use: every
    /// consumer acknowledged them), so sealed segments entirely below it are deleted.
    /// The floor only moves forward.
    pub async fn set_retention_floor(&self, floor_offset: u64) -> StoreResult<ReclaimReport> {
        let (reply, response) = oneshot::channel();
        self.requests
            .send(WriterRequest::SetRetentionFloor {
                floor_offset,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        response.await.map_err(|_| StoreError::Closed)?
    }

    /// Stops the writer after the requests already queued and waits until it has released the
    /// directory; appends through any clone fail with [`StoreError::Closed`] afterwards.
    pub async fn close(&self) -> StoreResult<()> {
        let (reply, response) = oneshot::channel();
        if self
            .requests
            .send(WriterRequest::Close { reply })
            .await
            .is_err()
        {
            return Ok(());
        }
        let _ = response.await;
        Ok(())
    }
}

/// A consumer that reads the log in order and waits (without polling) when it has caught up.
#[derive(Debug)]
pub struct LogTail {
    log: LogHandle,
    next_offset: u64,
}

impl LogTail {
    /// The offset the next record returned will have at least.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Returns the next records, waiting until at least one is durable.
    pub async fn next_batch(&mut self, limits: ReadLimits) -> StoreResult<Vec<Record>> {
        loop {
            let durable_before_read = *self.log.committed.borrow();
            let records = self.log.read_from(self.next_offset, limits).await?;
            if let Some(last) = records.last() {
                self.next_offset = last.offset + 1;
                return Ok(records);
            }
            // Nothing readable below what was durable before the read means those offsets are
            // gone (reclaimed, or fenced off as damaged): skip them instead of spinning.
            self.next_offset = self.next_offset.max(durable_before_read);
            self.log.wait_for(self.next_offset).await?;
        }
    }
}

fn read_from_shared(
    shared: &Shared,
    from_offset: u64,
    limits: ReadLimits,
) -> StoreResult<Vec<Record>> {
    loop {
        let views = shared.views_from(from_offset);
        match read_records(&views, from_offset, limits) {
            Ok(records) => return Ok(records),
            Err(ReadFailure::Store(error)) => return Err(error),
            Err(ReadFailure::Corrupt {
                view,
                position,
                expected_offset,
                detail,
            }) => {
                let error = StoreError::Corrupt {
                    path: view.path.clone(),
                    position,
                    detail,
                };
                // Damage in a sealed segment is fenced off (as recovery would) and the read
                // retried; each retry shrinks a segment, so this ends. The active segment is
                // the writer's: its damage is reported.
                if !view.is_sealed || !shared.quarantine(view.base_offset, expected_offset) {
                    return Err(error);
                }
                tracing::error!(%error, expected_offset, "records of a damaged segment are unreadable from here on");
                remove_sealed_index(&shared.directory, view.base_offset);
            }
        }
    }
}

fn lock_directory(directory: &Path) -> StoreResult<File> {
    let path = directory.join(LOCK_FILE_NAME);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| StoreError::io("open lock file", &path, error))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::AlreadyOpen {
            path: directory.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(StoreError::io("lock directory", &path, error))
        }
    }
}

/// Milliseconds since the Unix epoch by the wall clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
