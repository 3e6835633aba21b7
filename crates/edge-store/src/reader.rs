//! The reader of one endpoint: scans the shared log forward from its positions, keeps the
//! records addressed to it, and acknowledges through the durable cursors.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;

use crate::header::walk_header;
use crate::message_store::{Inner, SCAN_LIMITS};
use crate::types::{Batch, EdgeStoreError, EndpointId, Priority, StoredMessage};

/// How long an endpoint must stay without pending messages before [`EndpointReader::next_batch`]
/// makes deferred acknowledgements durable. Under load a reader catches up with the writer many
/// times a second; committing at each of those moments (a file write, two `fsync`s and a rename)
/// cost the edge hub a tenth of its CPU. A crash redelivers at most this much more.
pub(crate) const IDLE_COMMIT_DELAY: Duration = Duration::from_millis(50);

/// Delivers one endpoint's messages, highest priority first, in order within a priority.
///
/// The reader keeps no index of pending messages: per priority it keeps the position after the
/// last message it returned, scans the log forward from there and jumps over sealed segments
/// whose summary shows no record for it.
#[derive(Debug)]
pub struct EndpointReader {
    inner: Arc<Inner>,
    endpoint: EndpointId,
    index: u32,
    generation: u64,
    /// Per priority (by value): where the next scan starts.
    positions: Vec<u64>,
    /// Per priority (by value): the first message not acknowledged through
    /// [`EndpointReader::ack_deferred`]; ahead of the durable cursor until the next commit.
    acknowledged: Vec<u64>,
    /// Messages acknowledged in memory and not yet durably.
    deferred: usize,
    bookkept: watch::Receiver<u64>,
}

impl EndpointReader {
    pub(crate) fn new(
        inner: Arc<Inner>,
        endpoint: EndpointId,
        index: u32,
        generation: u64,
        positions: Vec<u64>,
    ) -> EndpointReader {
        let bookkept = inner.bookkept.subscribe();
        EndpointReader {
            inner,
            endpoint,
            index,
            generation,
            acknowledged: positions.clone(),
            positions,
            deferred: 0,
            bookkept,
        }
    }

    /// The endpoint this reader serves.
    pub fn endpoint(&self) -> &EndpointId {
        &self.endpoint
    }

    /// Waits until at least one unexpired message is pending for this endpoint, then returns up
    /// to `max_messages` (and about `max_bytes`; at least one) of the highest priority that has
    /// pending messages, in order, continuing after the last batch returned (several batches
    /// may be in flight). Never mixes priorities. Wakes as soon as a put for this endpoint is
    /// durable. Cancel-safe: a cancelled call returns nothing and skips nothing.
    pub async fn next_batch(
        &mut self,
        max_messages: usize,
        max_bytes: usize,
        now_ms: u64,
    ) -> Result<Batch, EdgeStoreError> {
        let max_messages = max_messages.max(1);
        loop {
            self.check_live()?;
            self.bookkept.borrow_and_update();
            for priority in Priority::all() {
                let key = (self.index, priority);
                let slot = usize::from(priority.get());
                let last_written = {
                    let state = self.inner.lock();
                    self.positions[slot] = self.positions[slot].max(state.cursor(key));
                    state.last_written(key)
                };
                if last_written.is_none_or(|last| last < self.positions[slot]) {
                    continue;
                }
                let messages = self.scan(priority, max_messages, max_bytes, now_ms).await?;
                if !messages.is_empty() {
                    return Ok(Batch { priority, messages });
                }
            }
            // Nothing pending. Deferred acknowledgements become durable once the endpoint stays
            // idle for a moment; then sleep until the next put is recorded (or the store closes).
            if self.deferred > 0 {
                match tokio::time::timeout(IDLE_COMMIT_DELAY, self.bookkept.changed()).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) => return Err(store::StoreError::Closed.into()),
                    Err(_) => self.commit().await?,
                }
            }
            if self.bookkept.changed().await.is_err() {
                return Err(store::StoreError::Closed.into());
            }
        }
    }

    /// Durably acknowledges a batch: its messages (and anything before them at its priority)
    /// are never delivered again, and segments every target is done with are deleted. Batches
    /// of one priority must be acknowledged in the order they were returned.
    pub async fn ack(&mut self, batch: &Batch) -> Result<(), EdgeStoreError> {
        self.check_live()?;
        let Some(last) = batch.messages.last() else {
            return Ok(());
        };
        let first_unacknowledged = last.sequence + 1;
        self.inner
            .acknowledge(
                &self.endpoint,
                (self.index, batch.priority),
                first_unacknowledged,
            )
            .await?;
        let slot = usize::from(batch.priority.get());
        self.positions[slot] = self.positions[slot].max(first_unacknowledged);
        self.acknowledged[slot] = self.acknowledged[slot].max(first_unacknowledged);
        Ok(())
    }

    /// Acknowledges a batch in memory only: this reader never returns its messages again (also
    /// not after [`EndpointReader::rewind`]), but the durable cursor moves only at the next
    /// [`EndpointReader::commit`], which [`EndpointReader::next_batch`] also does before it
    /// waits for new messages. A crash (or a replaced reader) before that delivers them again.
    /// Returns how many messages are acknowledged in memory and not yet durably. Batches of one
    /// priority must be acknowledged in the order they were returned.
    pub fn ack_deferred(&mut self, batch: &Batch) -> Result<usize, EdgeStoreError> {
        self.check_live()?;
        let Some(last) = batch.messages.last() else {
            return Ok(self.deferred);
        };
        let slot = usize::from(batch.priority.get());
        let first_unacknowledged = last.sequence + 1;
        self.acknowledged[slot] = self.acknowledged[slot].max(first_unacknowledged);
        self.positions[slot] = self.positions[slot].max(first_unacknowledged);
        self.deferred += batch.messages.len();
        Ok(self.deferred)
    }

    /// Durably acknowledges everything acknowledged with [`EndpointReader::ack_deferred`] (one
    /// cursor commit per priority that moved), and deletes segments every target is done with.
    pub async fn commit(&mut self) -> Result<(), EdgeStoreError> {
        if self.deferred == 0 {
            return Ok(());
        }
        self.check_live()?;
        for priority in Priority::all() {
            let first_unacknowledged = self.acknowledged[usize::from(priority.get())];
            self.inner
                .acknowledge(&self.endpoint, (self.index, priority), first_unacknowledged)
                .await?;
        }
        self.deferred = 0;
        Ok(())
    }

    /// Forgets what was returned but not acknowledged (after a failed delivery): the next batch
    /// starts again at the first unacknowledged message.
    pub fn rewind(&mut self) {
        let state = self.inner.lock();
        for priority in Priority::all() {
            let slot = usize::from(priority.get());
            self.positions[slot] = state
                .cursor((self.index, priority))
                .max(self.acknowledged[slot]);
        }
    }

    fn check_live(&self) -> Result<(), EdgeStoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(store::StoreError::Closed.into());
        }
        if self.inner.reader_generation(self.index) != self.generation {
            return Err(EdgeStoreError::ReaderReplaced(self.endpoint.clone()));
        }
        Ok(())
    }

    /// Reads this endpoint's messages of `priority` from its position up to what is durable
    /// now; moves the position only when it returns (so cancelling loses nothing).
    async fn scan(
        &mut self,
        priority: Priority,
        max_messages: usize,
        max_bytes: usize,
        now_ms: u64,
    ) -> Result<Vec<StoredMessage>, EdgeStoreError> {
        let key = (self.index, priority);
        let slot = usize::from(priority.get());
        let mut position = self.positions[slot];
        let mut messages = Vec::new();
        let mut payload_bytes = 0usize;
        let mut expired = 0u64;
        let segments = self.inner.log.segments();
        'scan: loop {
            {
                let state = self.inner.lock();
                loop {
                    let after = segments.partition_point(|segment| segment.base_offset <= position);
                    let Some(segment) = after.checked_sub(1).map(|index| &segments[index]) else {
                        break;
                    };
                    if position < segment.next_offset && state.can_skip(segment, key, position) {
                        position = segment.next_offset;
                    } else {
                        break;
                    }
                }
            }
            let records = self.inner.log.read_from(position, SCAN_LIMITS).await?;
            if records.is_empty() {
                break;
            }
            for record in records {
                position = record.offset + 1;
                let mut mine = None;
                let walked = walk_header(&record.payload, |target| {
                    if target.endpoint == self.endpoint.as_str() {
                        mine = Some(target);
                    }
                });
                let (enqueued_ms, payload_start) = match walked {
                    Ok(walked) => walked,
                    Err(error) => {
                        tracing::error!(%error, sequence = record.offset, "skipping a record with a malformed header");
                        continue;
                    }
                };
                let Some(target) = mine.filter(|target| target.priority == priority) else {
                    continue;
                };
                if now_ms >= target.expiry_ms {
                    expired += 1;
                    continue;
                }
                payload_bytes += record.payload.len() - payload_start;
                messages.push(StoredMessage {
                    sequence: record.offset,
                    priority,
                    enqueued_ms,
                    payload: record.payload.slice(payload_start..),
                });
                if messages.len() >= max_messages || payload_bytes >= max_bytes {
                    break 'scan;
                }
            }
        }
        self.positions[slot] = position;
        self.inner
            .expired_skipped
            .fetch_add(expired, Ordering::Relaxed);
        Ok(messages)
    }
}
