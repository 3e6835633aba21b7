//! Typed errors of the store.

use std::path::PathBuf;
use std::sync::Arc;

/// Everything that can go wrong in the store.
///
/// The error is `Clone` because one failed group commit is reported to every appender in the batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed (full disk, I/O error, injected fault, ...).
    #[error("{operation} failed for {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The byte bound is reached and the overflow policy is `RefuseNew`; the caller should
    /// withhold its acknowledgement so that the sender backs off.
    #[error(
        "store full: {used_bytes} of {limit_bytes} bytes used, {requested_bytes} more requested"
    )]
    StoreFull {
        used_bytes: u64,
        limit_bytes: u64,
        requested_bytes: u64,
    },
    /// A single payload is larger than the configured maximum record size.
    #[error("record of {payload_bytes} bytes exceeds the maximum of {maximum_bytes} bytes")]
    RecordTooLarge {
        payload_bytes: usize,
        maximum_bytes: usize,
    },
    /// Stored bytes inside the durable part of the log fail validation.
    #[error("corrupt data in {path} at byte {position}: {detail}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        detail: String,
    },
    /// Another process (or another handle in this process) has the directory open.
    #[error("the store directory {path} is already open elsewhere")]
    AlreadyOpen { path: PathBuf },
    /// The log's writer has shut down.
    #[error("the log is closed")]
    Closed,
    /// A name used for a checkpoint is not acceptable.
    #[error("invalid checkpoint name {name:?}: {reason}")]
    InvalidCheckpointName { name: String, reason: &'static str },
    /// An option value is out of range.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        option: &'static str,
        reason: &'static str,
    },
}

impl StoreError {
    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        StoreError::Io {
            operation,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// True when the error is an I/O failure (as opposed to a policy or usage error).
    pub fn is_io(&self) -> bool {
        matches!(self, StoreError::Io { .. })
    }

    /// True when the append failed for lack of space: the byte bound under
    /// [`crate::OverflowPolicy::RefuseNew`], or a full disk. Either way the caller should
    /// withhold its acknowledgement and let the sender retry later.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::StoreFull { .. } => true,
            StoreError::Io { source, .. } => {
                source.kind() == std::io::ErrorKind::StorageFull
                    || source.kind() == std::io::ErrorKind::QuotaExceeded
            }
            _ => false,
        }
    }
}

/// Result alias of the store.
pub type StoreResult<T> = Result<T, StoreError>;
