//! Durable, checksummed, segment-based append-only log with group commit, byte bounds and TTL
//! reclaim. The hub's telemetry event log and the edge hub's per-endpoint store-and-forward
//! queues are the same mechanism.
//!
//! A log is a directory of segment files named by the offset of their first record. Records are
//! framed with their length, a CRC32, their offset and a timestamp (see [`framing`]). One writer
//! thread owns the active segment: it takes append requests from a bounded channel in batches,
//! writes each batch once and calls `fdatasync` once per batch (group commit) before any
//! appender learns its offset. Opening a log scans its segments, cuts off a torn or corrupt
//! tail and rebuilds sparse per-segment indexes. Retention only ever deletes whole segments:
//! by byte bound ([`OverflowPolicy`]), by age ([`LogOptions::time_to_live`]) or below the
//! acknowledgement cursor of a [`Queue`]. Consumer offsets live in a [`CheckpointStore`] that is
//! replaced atomically on every commit.
//!
//! ```
//! use bytes::Bytes;
//! use store::{CheckpointName, CheckpointStore, LogHandle, LogOptions, ReadLimits, StartPosition};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), store::StoreError> {
//! # let directory = tempfile::tempdir().unwrap();
//! let log = LogHandle::open(directory.path().join("events"), LogOptions::default()).await?;
//! // Resolves only once the record is on disk: this is when a PUBACK may be sent.
//! let offset = log.append(Bytes::from_static(b"{\"temperature\":21.5}")).await?;
//!
//! // A consumer group resumes from its committed offset, or starts from the beginning.
//! let checkpoints = CheckpointStore::open(directory.path().join("consumer-groups.ckpt"))?;
//! let group = CheckpointName::new("$Default")?;
//! let start = match checkpoints.get(&group) {
//!     Some(committed) => StartPosition::Offset(committed),
//!     None => StartPosition::Start,
//! };
//! let mut tail = log.tail(start);
//! let records = tail.next_batch(ReadLimits::default()).await?;
//! assert_eq!(records[0].offset, offset);
//! checkpoints.commit(group, tail.next_offset()).await?;
//! log.close().await?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod checkpoint;
mod error;
mod faults;
pub mod framing;
mod log;
mod queue;
mod segment;
mod writer;

pub use checkpoint::{CheckpointName, CheckpointStore};
pub use error::{StoreError, StoreResult};
pub use faults::{FaultInjector, FileOperation};
pub use framing::Record;
pub use log::{
    LogHandle, LogOptions, LogStats, LogTail, OverflowPolicy, SegmentInfo, StartPosition, now_ms,
};
pub use queue::Queue;
pub use segment::ReadLimits;
pub use writer::{AppendRecord, ReclaimReport};
