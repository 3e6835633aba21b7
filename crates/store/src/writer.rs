//! The writer thread: the single owner of the active segment. It drains the request channel in
//! batches, writes each batch with one positioned write, makes it durable with one `fdatasync`
//! (group commit), publishes it to readers and only then completes the appenders' replies.

use std::fs::File;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{StoreError, StoreResult};
use crate::faults::FaultHook;
use crate::framing::{
    MAXIMUM_PAYLOAD_LENGTH, Record, SEGMENT_HEADER_LENGTH, encode_frame, encode_segment_header,
    frame_length,
};
use crate::log::{LogOptions, OverflowPolicy, Shared};
use crate::segment::{IndexEntry, Segment, remove_sealed_index, segment_path, write_sealed_index};

/// One record handed to the log for appending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRecord {
    /// The opaque payload.
    pub payload: Bytes,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReclaimReport {
    /// Number of whole segment files deleted.
    pub deleted_segments: usize,
    /// Bytes those files held.
    pub reclaimed_bytes: u64,
}

impl ReclaimReport {
    fn absorb(&mut self, other: ReclaimReport) {
        self.deleted_segments += other.deleted_segments;
        self.reclaimed_bytes += other.reclaimed_bytes;
    }
}

pub(crate) enum WriterRequest {
    Append {
        records: Vec<AppendRecord>,
        reply: oneshot::Sender<StoreResult<Range<u64>>>,
    },
    ReclaimExpired {
        now_ms: u64,
        reply: oneshot::Sender<StoreResult<ReclaimReport>>,
    },
    SetRetentionFloor {
        floor_offset: u64,
        reply: oneshot::Sender<StoreResult<ReclaimReport>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// The channel on which an appender learns its offsets (or the failure of its batch).
type AppendReply = oneshot::Sender<StoreResult<Range<u64>>>;

struct PendingAppend {
    records: Vec<AppendRecord>,
    reply: AppendReply,
}

/// Frames encoded for the active segment but not yet written and synced.
#[derive(Default)]
struct PendingBatch {
    bytes: Vec<u8>,
    record_count: u64,
    newest_timestamp_ms: Option<u64>,
    index_entries: Vec<IndexEntry>,
    last_indexed_position: u64,
    replies: Vec<(AppendReply, Range<u64>)>,
    /// The staged records, for the log's tail cache once they are durable.
    records: Vec<Record>,
}

pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) options: LogOptions,
    pub(crate) hooks: FaultHook,
    pub(crate) active_file: File,
    pub(crate) active_path: PathBuf,
    pub(crate) active_base_offset: u64,
    pub(crate) active_durable_length: u64,
    /// The active file's size: its durable records plus zero bytes written ahead of them
    /// ([`LogOptions::preallocate_bytes`]).
    pub(crate) active_file_length: u64,
    pub(crate) active_last_indexed_position: u64,
    /// True after a failed write: the active file may hold bytes past its durable length that
    /// must be cut off before anything else is written.
    pub(crate) needs_truncate: bool,
    pub(crate) next_offset: u64,
    pub(crate) retention_floor: Option<u64>,
    pub(crate) committed: watch::Sender<u64>,
    /// Held for the writer's lifetime: the advisory lock on the directory.
    pub(crate) _directory_lock: File,
}

impl Writer {
    pub(crate) fn run(mut self, mut requests: mpsc::Receiver<WriterRequest>) {
        let mut close_reply = None;
        while let Some(first_request) = requests.blocking_recv() {
            let mut appends = Vec::new();
            let mut controls = Vec::new();
            let mut batch_records = 0usize;
            let mut batch_bytes = 0usize;
            let mut next_request = Some(first_request);
            while let Some(request) = next_request.take() {
                match request {
                    WriterRequest::Append { records, reply } => {
                        batch_records += records.len();
                        batch_bytes += records
                            .iter()
                            .map(|record| record.payload.len())
                            .sum::<usize>();
                        appends.push(PendingAppend { records, reply });
                    }
                    control => controls.push(control),
                }
                if batch_records < self.options.max_batch_records
                    && batch_bytes < self.options.max_batch_bytes
                {
                    next_request = requests.try_recv().ok();
                }
            }
            if !appends.is_empty() {
                self.append_batch(appends);
                // Segments sealed by this batch may already be fully acknowledged.
                if let Err(error) = self.reclaim_below_floor() {
                    tracing::warn!(%error, "reclaiming acknowledged segments failed");
                }
            }
            for control in controls {
                match control {
                    WriterRequest::ReclaimExpired { now_ms, reply } => {
                        let _ = reply.send(self.reclaim_expired(now_ms));
                    }
                    WriterRequest::SetRetentionFloor {
                        floor_offset,
                        reply,
                    } => {
                        self.retention_floor = Some(
                            self.retention_floor
                                .map_or(floor_offset, |floor| floor.max(floor_offset)),
                        );
                        let _ = reply.send(self.reclaim_below_floor());
                    }
                    WriterRequest::Close { reply } => close_reply = Some(reply),
                    WriterRequest::Append { .. } => unreachable!("appends are batched above"),
                }
            }
            if close_reply.is_some() {
                break;
            }
        }
        if (self.needs_truncate || self.active_file_length > self.active_durable_length)
            && let Err(error) = self.truncate_active_to_durable_length()
        {
            tracing::warn!(%error, "could not cut the active segment to its records before closing");
        }
        // Release every file (and the directory lock) before telling the closer we are done.
        drop(requests);
        drop(self);
        if let Some(reply) = close_reply {
            let _ = reply.send(());
        }
    }

    fn append_batch(&mut self, appends: Vec<PendingAppend>) {
        let mut batch = PendingBatch {
            last_indexed_position: self.active_last_indexed_position,
            ..PendingBatch::default()
        };
        let mut remaining = appends.into_iter();
        while let Some(append) = remaining.next() {
            if let Err(error) = self.stage_append(&mut batch, append) {
                for append in remaining {
                    let _ = append.reply.send(Err(error.clone()));
                }
                return;
            }
        }
        // The error, if any, was already reported to every appender of the batch.
        let _ = self.commit(&mut batch);
    }

    /// Adds one request to the batch, committing and rolling first when needed. An `Err` means
    /// the batch failed: every staged reply got the error and the caller fails the rest.
    fn stage_append(
        &mut self,
        batch: &mut PendingBatch,
        append: PendingAppend,
    ) -> Result<(), StoreError> {
        let PendingAppend { records, reply } = append;
        if let Some(oversized) = records
            .iter()
            .find(|record| record.payload.len() > self.options.max_record_bytes)
        {
            let _ = reply.send(Err(StoreError::RecordTooLarge {
                payload_bytes: oversized.payload.len(),
                maximum_bytes: self.options.max_record_bytes,
            }));
            return Ok(());
        }
        let request_bytes: u64 = records
            .iter()
            .map(|record| frame_length(record.payload.len()) as u64)
            .sum();

        if let Some(limit_bytes) = self.options.max_total_bytes {
            // Starting a new segment for this request costs that segment's header too.
            let request_bytes = request_bytes
                + if self.roll_needed(batch, request_bytes) {
                    SEGMENT_HEADER_LENGTH as u64
                } else {
                    0
                };
            let used_bytes = self.shared.total_bytes() + batch.bytes.len() as u64;
            if used_bytes + request_bytes > limit_bytes {
                match self.options.overflow_policy {
                    OverflowPolicy::RefuseNew => {
                        let _ = reply.send(Err(StoreError::StoreFull {
                            used_bytes,
                            limit_bytes,
                            requested_bytes: request_bytes,
                        }));
                        return Ok(());
                    }
                    OverflowPolicy::DropOldest => {
                        if let Err(error) = self.make_room(batch, request_bytes, limit_bytes) {
                            let _ = reply.send(Err(error));
                            return Ok(());
                        }
                    }
                }
            }
        }

        if self.roll_needed(batch, request_bytes) {
            if let Err(error) = self.commit(batch) {
                let _ = reply.send(Err(error.clone()));
                return Err(error);
            }
            if let Err(error) = self.roll() {
                let _ = reply.send(Err(error.clone()));
                return Err(error);
            }
            batch.last_indexed_position = self.active_last_indexed_position;
        }

        let first_offset = self.next_offset + batch.record_count;
        for record in &records {
            let position = self.active_durable_length + batch.bytes.len() as u64;
            let offset = self.next_offset + batch.record_count;
            if position - batch.last_indexed_position >= self.options.index_interval_bytes {
                batch.index_entries.push(IndexEntry { offset, position });
                batch.last_indexed_position = position;
            }
            encode_frame(
                &mut batch.bytes,
                offset,
                record.timestamp_ms,
                &record.payload,
            );
            batch.records.push(Record {
                offset,
                timestamp_ms: record.timestamp_ms,
                payload: record.payload.clone(),
            });
            batch.record_count += 1;
            batch.newest_timestamp_ms = Some(
                batch
                    .newest_timestamp_ms
                    .map_or(record.timestamp_ms, |newest| {
                        newest.max(record.timestamp_ms)
                    }),
            );
        }
        let end_offset = self.next_offset + batch.record_count;
        batch.replies.push((reply, first_offset..end_offset));
        Ok(())
    }

    /// True when `request_bytes` more would push a non-empty active segment past its size.
    fn roll_needed(&self, batch: &PendingBatch, request_bytes: u64) -> bool {
        let active_has_records =
            self.next_offset > self.active_base_offset || batch.record_count > 0;
        let active_length_after =
            self.active_durable_length + batch.bytes.len() as u64 + request_bytes;
        active_has_records && active_length_after > self.options.segment_max_bytes
    }

    /// Drops whole oldest segments until `request_bytes` more fit under `limit_bytes`.
    fn make_room(
        &mut self,
        batch: &mut PendingBatch,
        request_bytes: u64,
        limit_bytes: u64,
    ) -> StoreResult<()> {
        let fits = |writer: &Writer, batch: &PendingBatch| {
            writer.shared.total_bytes() + batch.bytes.len() as u64 + request_bytes <= limit_bytes
        };
        while !fits(self, batch) && self.shared.sealed_segment_count() > 0 {
            self.delete_oldest_sealed_segment()?;
        }
        if fits(self, batch) {
            return Ok(());
        }
        // Only the active segment is left: seal it and drop it too.
        let active_has_records =
            self.next_offset > self.active_base_offset || batch.record_count > 0;
        if active_has_records {
            self.commit(batch)?;
            self.roll()?;
            batch.last_indexed_position = self.active_last_indexed_position;
            while !fits(self, batch) && self.shared.sealed_segment_count() > 0 {
                self.delete_oldest_sealed_segment()?;
            }
        }
        if fits(self, batch) {
            Ok(())
        } else {
            Err(StoreError::StoreFull {
                used_bytes: self.shared.total_bytes() + batch.bytes.len() as u64,
                limit_bytes,
                requested_bytes: request_bytes,
            })
        }
    }

    /// Writes and syncs the pending batch, publishes it and completes its replies.
    fn commit(&mut self, batch: &mut PendingBatch) -> StoreResult<()> {
        let replies = std::mem::take(&mut batch.replies);
        if batch.bytes.is_empty() {
            for (reply, offsets) in replies {
                let _ = reply.send(Ok(offsets));
            }
            return Ok(());
        }
        let repair_result = if self.needs_truncate {
            self.truncate_active_to_durable_length()
        } else {
            Ok(())
        };
        let batch_end = self.active_durable_length + batch.bytes.len() as u64;
        let mut grown_length = self.grown_file_length(batch_end);
        let write_result = repair_result.and_then(|()| {
            self.hooks
                .write_all_at(&self.active_file, &batch.bytes, self.active_durable_length)
                .map_err(|error| StoreError::io("write segment", &self.active_path, error))
                .map(|()| {
                    // Zeros ahead of the records, so that the next commits leave the size alone.
                    // Only an optimization: on a nearly full disk the records still go in.
                    if let Some(length) = grown_length {
                        let zeros = vec![0u8; (length - batch_end) as usize];
                        if let Err(error) =
                            self.hooks
                                .write_all_at(&self.active_file, &zeros, batch_end)
                        {
                            tracing::debug!(%error, "cannot preallocate the active segment");
                            // Some zeros may be in the file: its length is unknown, so it is cut
                            // back when the segment is sealed or the log closed, and never grown
                            // ahead again.
                            grown_length = Some(u64::MAX);
                        }
                    }
                })
                .and_then(|()| {
                    self.hooks
                        .sync_data(&self.active_file)
                        .map_err(|error| StoreError::io("sync segment", &self.active_path, error))
                })
        });
        if let Err(error) = write_result {
            tracing::warn!(%error, "group commit failed");
            self.needs_truncate = true;
            // Try to restore the durable length right away; if this fails too, the next batch
            // retries before writing anything.
            let _ = self.truncate_active_to_durable_length();
            *batch = PendingBatch {
                last_indexed_position: self.active_last_indexed_position,
                ..PendingBatch::default()
            };
            for (reply, _) in replies {
                let _ = reply.send(Err(error.clone()));
            }
            return Err(error);
        }

        let batch_length = batch.bytes.len() as u64;
        self.active_durable_length += batch_length;
        self.active_file_length = self
            .active_file_length
            .max(grown_length.unwrap_or(batch_end));
        self.next_offset += batch.record_count;
        self.active_last_indexed_position = batch.last_indexed_position;
        self.shared.publish_commit(
            batch_length,
            self.next_offset,
            batch.newest_timestamp_ms,
            std::mem::take(&mut batch.index_entries),
            std::mem::take(&mut batch.records),
        );
        let _ = self.committed.send(self.next_offset);
        *batch = PendingBatch {
            last_indexed_position: self.active_last_indexed_position,
            ..PendingBatch::default()
        };
        for (reply, offsets) in replies {
            let _ = reply.send(Ok(offsets));
        }
        Ok(())
    }

    /// The size the active file grows to when a batch ends at `batch_end`, or `None` when the
    /// zeros written ahead still hold the batch (or preallocation is off).
    fn grown_file_length(&self, batch_end: u64) -> Option<u64> {
        let step = self.options.preallocate_bytes;
        if step == 0 || batch_end <= self.active_file_length {
            return None;
        }
        // Never past the point where the segment is sealed anyway.
        let length = (batch_end + step).min(self.options.segment_max_bytes.max(batch_end));
        (length > batch_end).then_some(length)
    }

    fn truncate_active_to_durable_length(&mut self) -> StoreResult<()> {
        self.hooks
            .set_len(&self.active_file, self.active_durable_length)
            .and_then(|()| self.hooks.sync_data(&self.active_file))
            .map_err(|error| StoreError::io("truncate segment", &self.active_path, error))?;
        self.active_file_length = self.active_durable_length;
        self.needs_truncate = false;
        Ok(())
    }

    /// Seals the active segment and starts a new one at the next offset.
    fn roll(&mut self) -> StoreResult<()> {
        // The sealed segment must end exactly at its last durable record: frames of a failed
        // batch left behind it would reappear on recovery with the new segment's offsets, and
        // recovery reads a sealed segment to its end.
        if self.needs_truncate || self.active_file_length > self.active_durable_length {
            self.truncate_active_to_durable_length()?;
        }
        let base_offset = self.next_offset;
        let path = segment_path(&self.shared.directory, base_offset);
        let created = self
            .hooks
            .create_segment(&path, &encode_segment_header(base_offset))
            .map_err(|error| StoreError::io("create segment", &path, error))
            .and_then(|file| {
                self.hooks
                    .sync_directory(&self.shared.directory)
                    .map_err(|error| {
                        StoreError::io("sync directory", &self.shared.directory, error)
                    })?;
                Ok(file)
            });
        let file = match created {
            Ok(file) => file,
            Err(error) => {
                // Best effort: a stray empty segment is also tolerated by recovery.
                let _ = std::fs::remove_file(&path);
                return Err(error);
            }
        };
        if let Some(sealed_index) = self.shared.encode_active_segment_index() {
            write_sealed_index(
                &self.shared.directory,
                self.active_base_offset,
                &sealed_index,
            );
        }
        self.active_file = file;
        self.active_path = path.clone();
        self.active_base_offset = base_offset;
        self.active_durable_length = SEGMENT_HEADER_LENGTH as u64;
        self.active_file_length = SEGMENT_HEADER_LENGTH as u64;
        self.active_last_indexed_position = SEGMENT_HEADER_LENGTH as u64;
        self.needs_truncate = false;
        self.shared.push_segment(Segment {
            base_offset,
            next_offset: base_offset,
            durable_length: SEGMENT_HEADER_LENGTH as u64,
            newest_timestamp_ms: None,
            sparse_index: Vec::new(),
            path,
        });
        Ok(())
    }

    fn delete_oldest_sealed_segment(&mut self) -> StoreResult<ReclaimReport> {
        self.delete_sealed_segments_while(|_| true, 1)
    }

    /// Deletes sealed segments from the front while `predicate` holds, at most `limit` of them.
    fn delete_sealed_segments_while(
        &mut self,
        predicate: impl Fn(&Segment) -> bool,
        limit: usize,
    ) -> StoreResult<ReclaimReport> {
        let mut report = ReclaimReport::default();
        while report.deleted_segments < limit {
            let Some(path) = self.shared.front_sealed_segment_path_if(&predicate) else {
                break;
            };
            self.hooks
                .remove_file(&path)
                .map_err(|error| StoreError::io("remove segment", &path, error))?;
            let (removed_base_offset, removed_bytes) = self.shared.pop_front_segment();
            remove_sealed_index(&self.shared.directory, removed_base_offset);
            report.deleted_segments += 1;
            report.reclaimed_bytes += removed_bytes;
        }
        if report.deleted_segments > 0 {
            self.hooks
                .sync_directory(&self.shared.directory)
                .map_err(|error| StoreError::io("sync directory", &self.shared.directory, error))?;
        }
        Ok(report)
    }

    fn reclaim_expired(&mut self, now_ms: u64) -> StoreResult<ReclaimReport> {
        let mut report = self.reclaim_below_floor()?;
        if let Some(time_to_live) = self.options.time_to_live {
            let cutoff_ms = now_ms.saturating_sub(time_to_live.as_millis() as u64);
            report.absorb(self.delete_sealed_segments_while(
                |segment| {
                    segment
                        .newest_timestamp_ms
                        .is_none_or(|newest| newest < cutoff_ms)
                },
                usize::MAX,
            )?);
        }
        Ok(report)
    }

    fn reclaim_below_floor(&mut self) -> StoreResult<ReclaimReport> {
        match self.retention_floor {
            Some(floor_offset) => self.delete_sealed_segments_while(
                |segment| segment.next_offset <= floor_offset,
                usize::MAX,
            ),
            None => Ok(ReclaimReport::default()),
        }
    }
}

/// The largest payload a log accepts, whatever the options say.
pub(crate) const fn hard_payload_limit() -> usize {
    MAXIMUM_PAYLOAD_LENGTH
}
