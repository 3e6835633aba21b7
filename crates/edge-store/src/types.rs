//! The store's vocabulary: validated endpoint ids and priorities, targets, options, results and
//! errors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// Largest endpoint id, in bytes.
const MAXIMUM_ENDPOINT_LENGTH: usize = 256;

/// Everything that can go wrong in the edge store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EdgeStoreError {
    /// An endpoint id is not acceptable.
    #[error("invalid endpoint id {id:?}: {reason}")]
    InvalidEndpoint {
        /// The rejected id.
        id: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A priority is out of range.
    #[error("invalid priority {0}: must be 0..=10")]
    InvalidPriority(u8),
    /// A put named no target.
    #[error("a message needs at least one target")]
    NoTargets,
    /// An option value is out of range.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The byte bound is reached and no room can be made: the oldest segment still holds an
    /// unacknowledged [`Overflow::RefuseNew`] entry, or is the active one, or every byte is held
    /// by writes still in flight. The caller withholds its PUBACK, waits on
    /// [`crate::MessageStore::space_freed`] and retries.
    #[error("store full: {used_bytes} of {max_bytes} bytes used, {requested_bytes} more requested")]
    Full {
        /// Bytes on disk plus bytes reserved by writes in flight.
        used_bytes: u64,
        /// The configured bound.
        max_bytes: u64,
        /// What the refused put needed.
        requested_bytes: u64,
    },
    /// A newer reader was created for the same endpoint; this one is retired.
    #[error("a newer reader for endpoint {0} replaced this one")]
    ReaderReplaced(EndpointId),
    /// The underlying log failed (disk full, I/O error, closed, record too large, ...).
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

impl EdgeStoreError {
    /// True when the put failed for lack of space (the byte bound or a full disk): the caller
    /// should withhold its acknowledgement and retry later.
    pub fn is_full(&self) -> bool {
        match self {
            EdgeStoreError::Full { .. } => true,
            EdgeStoreError::Store(error) => error.is_storage_full(),
            _ => false,
        }
    }
}

/// The name of an endpoint (a module input such as `edge-1/filter/input1`, or `$upstream`):
/// 1 to 256 bytes without control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointId(pub(crate) String);

impl EndpointId {
    /// Validates `id`.
    pub fn new(id: &str) -> Result<EndpointId, EdgeStoreError> {
        EndpointId::validate(id).map_err(|reason| EdgeStoreError::InvalidEndpoint {
            id: id.to_owned(),
            reason,
        })?;
        Ok(EndpointId(id.to_owned()))
    }

    /// The endpoint that forwards to the cloud hub.
    pub fn upstream() -> EndpointId {
        EndpointId("$upstream".to_owned())
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn validate(id: &str) -> Result<(), &'static str> {
        if id.is_empty() {
            Err("must not be empty")
        } else if id.len() > MAXIMUM_ENDPOINT_LENGTH {
            Err("must be at most 256 bytes")
        } else if id.chars().any(char::is_control) {
            Err("must not contain control characters")
        } else {
            Ok(())
        }
    }
}

impl fmt::Display for EndpointId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A route priority: 0 is the highest, 9 the lowest a route can name, and
/// [`Priority::DEFAULT`] (10) is what routes without a priority get, drained last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    /// The priority of routes that name none; lower than every explicit priority.
    pub const DEFAULT: Priority = Priority(10);

    /// Validates `value` (0..=10).
    pub fn new(value: u8) -> Result<Priority, EdgeStoreError> {
        if value <= Priority::DEFAULT.0 {
            Ok(Priority(value))
        } else {
            Err(EdgeStoreError::InvalidPriority(value))
        }
    }

    /// The numeric value (0 = highest).
    pub fn get(self) -> u8 {
        self.0
    }

    /// Every priority, highest first.
    pub(crate) fn all() -> impl Iterator<Item = Priority> {
        (0..=Priority::DEFAULT.0).map(Priority)
    }
}

/// Where a put message goes: one endpoint queue at one priority, for a limited time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The endpoint.
    pub endpoint: EndpointId,
    /// Its queue's priority.
    pub priority: Priority,
    /// How long the message stays deliverable to this endpoint; [`Duration::ZERO`] means
    /// [`StoreOptions::default_time_to_live`].
    pub time_to_live: Duration,
    /// Whether this entry may be deleted to make room at the byte bound.
    pub overflow: Overflow,
}

/// What may happen to a stored queue entry when the store is at its byte bound. A put at the
/// bound deletes whole oldest segments (counting the unacknowledged entries lost) while every
/// unacknowledged, unexpired entry in them is `DropOldest`; when the oldest segment holds a
/// `RefuseNew` entry the put fails with [`EdgeStoreError::Full`] instead: back-pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The entry may be deleted to make room for newer messages.
    DropOldest,
    /// The entry leaves only when acknowledged or expired; new messages wait for room.
    RefuseNew,
}

/// Settings of a [`crate::MessageStore`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Upper bound on the bytes of all segment files; at least twice `segment_bytes`.
    pub max_bytes: u64,
    /// Size at which a segment is sealed; retention deletes whole segments.
    pub segment_bytes: u64,
    /// Time-to-live of targets that give none.
    pub default_time_to_live: Duration,
    /// Test hook that fails file operations on command; `None` in production.
    pub fault_injector: Option<Arc<dyn store::FaultInjector>>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_bytes: 1024 * 1024 * 1024,
            segment_bytes: 8 * 1024 * 1024,
            default_time_to_live: Duration::from_secs(7200),
            fault_injector: None,
        }
    }
}

/// One message handed to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its position in the store (unique, increasing in put order).
    pub sequence: u64,
    /// The priority of the queue it came from.
    pub priority: Priority,
    /// The `now_ms` of its put.
    pub enqueued_ms: u64,
    /// The caller's payload, unchanged.
    pub payload: Bytes,
}

/// Messages of one priority of one endpoint, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The priority every message has.
    pub priority: Priority,
    /// The messages, by increasing sequence.
    pub messages: Vec<StoredMessage>,
}

/// A snapshot of the store's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Bytes of all segment files.
    pub bytes_on_disk: u64,
    /// The configured bound.
    pub max_bytes: u64,
    /// Puts that became durable since open.
    pub messages_written: u64,
    /// Unacknowledged queue entries (message × target) deleted by [`Overflow::DropOldest`]
    /// since open.
    pub dropped_overflow: u64,
    /// Queue entries skipped by readers because they had expired, since open.
    pub expired_skipped: u64,
    /// The oldest sequence still stored.
    pub first_sequence: u64,
    /// The sequence the next put will get at least.
    pub next_sequence: u64,
}

/// What one [`crate::MessageStore::reclaim`] pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReclaimStats {
    /// Whole segment files deleted.
    pub deleted_segments: usize,
    /// Bytes they held.
    pub reclaimed_bytes: u64,
}
