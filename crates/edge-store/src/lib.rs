//! The edge hub's durable store-and-forward: every routed message is written once to a byte-bounded
//! on-disk log and queued per endpoint and priority until that endpoint acknowledges it.
//!
//! One shared [`store::LogHandle`] holds every message once: a record is a small header naming
//! its targets (endpoint, priority, expiry) followed by the caller's opaque payload, so a message
//! routed to three endpoints costs one write and one `fdatasync` (group commit) like any other.
//! Each (endpoint, priority) pair is a logical queue whose only state is a durable ack cursor in a
//! [`store::CheckpointStore`]. Readers keep no index of pending messages: they scan the log
//! forward and keep what is addressed to them, jumping over sealed segments whose in-memory
//! summary (which queues occur there, latest expiry) shows nothing for them. Memory is therefore
//! bounded by the number of endpoints and segments, however long an outage lasts.
//!
//! Retention deletes whole segments from the front once every record in them is acknowledged by
//! all its targets or expired; nothing is rewritten. At the byte bound a put either drops the
//! oldest segments ([`Overflow::DropOldest`], counting what was lost) or is refused at once
//! ([`Overflow::RefuseNew`]) so the caller withholds its PUBACK and waits on
//! [`MessageStore::space_freed`].
//!
//! On disk, a store directory holds `log/` (the segment files of the shared log) and
//! `cursors.ckpt` (every queue's first unacknowledged sequence, named `p<priority>#<endpoint>`).
//! Opening scans the stored records once to rebuild the segment summaries (about 0.3 s for
//! 1,000,000 messages of 256 bytes).
//!
//! Delivery is at least once: a batch handed out but not acknowledged before a crash (or a
//! [`EndpointReader::rewind`]) is handed out again. A put that failed may still appear after a
//! crash if its bytes reached the disk; it never appears half-written.
//!
//! ```
//! use bytes::Bytes;
//! use edge_store::{EndpointId, MessageStore, Overflow, Priority, StoreOptions, Target};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), edge_store::EdgeStoreError> {
//! # let directory = tempfile::tempdir().unwrap();
//! let store = MessageStore::open(directory.path(), StoreOptions::default()).await?;
//! let upstream = EndpointId::upstream();
//! let target = Target {
//!     endpoint: upstream.clone(),
//!     priority: Priority::DEFAULT,
//!     time_to_live: std::time::Duration::ZERO, // the store's default
//!     overflow: Overflow::RefuseNew,              // at the byte bound: back-pressure
//! };
//! // Resolves once the message is durable: now the PUBACK may go out.
//! let sequence = store.put(Bytes::from_static(b"21.5"), vec![target], 1_000).await?;
//!
//! let mut reader = store.reader(&upstream);
//! let batch = reader.next_batch(100, 1 << 20, 2_000).await?;
//! assert_eq!(batch.messages[0].sequence, sequence);
//! reader.ack(&batch).await?; // never delivered again
//! store.close().await?;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod header;
mod message_store;
mod reader;
mod types;

pub use crate::message_store::MessageStore;
pub use crate::reader::EndpointReader;
pub use crate::types::{
    Batch, EdgeStoreError, EndpointId, Overflow, Priority, ReclaimStats, StoreOptions, StoreStats,
    StoredMessage, Target,
};
