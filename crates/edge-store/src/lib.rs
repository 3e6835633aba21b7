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
//! };
//! // Resolves once the message is durable: now the PUBACK may go out.
//! let sequence = store.put(Bytes::from_static(b"21.5"), vec![target], Overflow::RefuseNew, 1_000).await?;
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
