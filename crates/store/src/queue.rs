//! A queue view over a log: one durable acknowledgement cursor, so a consumer (for the edge hub,
//! one endpoint at one priority) reads what it has not acknowledged yet, and acknowledged
//! segments are reclaimed.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Mutex;

use crate::checkpoint::{CheckpointName, CheckpointStore};
use crate::error::StoreResult;
use crate::framing::Record;
use crate::log::{LogHandle, LogOptions};
use crate::segment::ReadLimits;

/// File name of the acknowledgement cursor inside a queue's directory.
const CURSOR_FILE_NAME: &str = "queue-cursor.ckpt";
/// Name of the single cursor inside that file.
const CURSOR_NAME: &str = "acknowledged";

/// A durable FIFO queue: a log plus an acknowledgement cursor. Cloning shares the queue.
#[derive(Clone, Debug)]
pub struct Queue {
    log: LogHandle,
    cursors: CheckpointStore,
    cursor_name: CheckpointName,
    /// The first offset not acknowledged yet; the mutex also serialises acknowledgements.
    first_unacknowledged: Arc<Mutex<u64>>,
}

impl Queue {
    /// Opens (or creates) the queue stored in `directory`.
    pub async fn open(directory: impl Into<PathBuf>, options: LogOptions) -> StoreResult<Queue> {
        let directory = directory.into();
        let fault_injector = options.fault_injector.clone();
        let log = LogHandle::open(directory.clone(), options).await?;
        let cursor_path = directory.join(CURSOR_FILE_NAME);
        let cursors = tokio::task::spawn_blocking(move || {
            CheckpointStore::open_with_faults(cursor_path, fault_injector)
        })
        .await
        .map_err(|_| crate::StoreError::Closed)??;
        let cursor_name = CheckpointName::new(CURSOR_NAME)?;
        let first_unacknowledged = cursors.get(&cursor_name).unwrap_or(0);
        log.set_retention_floor(first_unacknowledged).await?;
        Ok(Queue {
            log,
            cursors,
            cursor_name,
            first_unacknowledged: Arc::new(Mutex::new(first_unacknowledged)),
        })
    }

    /// The underlying log.
    pub fn log(&self) -> &LogHandle {
        &self.log
    }

    /// Appends a message; resolves with its offset once it is durable.
    pub async fn enqueue(&self, payload: Bytes) -> StoreResult<u64> {
        self.log.append(payload).await
    }

    /// Appends a message with a caller-supplied timestamp.
    pub async fn enqueue_at(&self, payload: Bytes, timestamp_ms: u64) -> StoreResult<u64> {
        self.log.append_at(payload, timestamp_ms).await
    }

    /// The first offset not acknowledged yet.
    pub async fn first_unacknowledged(&self) -> u64 {
        *self.first_unacknowledged.lock().await
    }

    /// Reads unacknowledged messages from the front of the queue (without removing them).
    pub async fn peek(&self, limits: ReadLimits) -> StoreResult<Vec<Record>> {
        let from_offset = self.first_unacknowledged().await;
        self.log.read_from(from_offset, limits).await
    }

    /// Reads unacknowledged messages starting at `from_offset` (for a consumer that keeps
    /// several batches in flight).
    pub async fn read_from(
        &self,
        from_offset: u64,
        limits: ReadLimits,
    ) -> StoreResult<Vec<Record>> {
        let first_unacknowledged = self.first_unacknowledged().await;
        self.log
            .read_from(from_offset.max(first_unacknowledged), limits)
            .await
    }

    /// Resolves once a message at `offset` or later is durable.
    pub async fn wait_for(&self, offset: u64) -> StoreResult<()> {
        self.log.wait_for(offset).await
    }

    /// Durably acknowledges every message up to and including `up_to_offset`; acknowledged
    /// whole segments are deleted. Acknowledging an offset already acknowledged does nothing.
    pub async fn ack(&self, up_to_offset: u64) -> StoreResult<()> {
        let mut first_unacknowledged = self.first_unacknowledged.lock().await;
        let new_first_unacknowledged = up_to_offset.saturating_add(1);
        if new_first_unacknowledged <= *first_unacknowledged {
            return Ok(());
        }
        self.cursors
            .commit(self.cursor_name.clone(), new_first_unacknowledged)
            .await?;
        *first_unacknowledged = new_first_unacknowledged;
        drop(first_unacknowledged);
        self.log
            .set_retention_floor(new_first_unacknowledged)
            .await?;
        Ok(())
    }

    /// Stops the queue's writer and releases its directory.
    pub async fn close(&self) -> StoreResult<()> {
        self.log.close().await
    }
}
