//! The error of cache and client operations.

use std::path::PathBuf;

/// Why a cache write or a scope fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// Reading or writing the cache file failed.
    #[error("cache file {path}: {source}")]
    Io {
        /// The file or directory at fault.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// Encrypting the cache failed (the crypto library refused; never expected).
    #[error("cannot encrypt the scope cache")]
    Encrypt,
    /// The hub could not be reached (connect, TLS handshake, timeout, broken connection): the edge
    /// hub keeps using its cache.
    #[error("cannot reach the hub at {address}: {message}")]
    Unreachable {
        /// The address dialled.
        address: String,
        /// What went wrong.
        message: String,
    },
    /// The hub answered with an error status.
    #[error("the hub refused the device scope request: {status} {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The hub's message.
        message: String,
    },
    /// The hub answered something the API does not promise.
    #[error("the hub's device scope answer is invalid: {0}")]
    InvalidAnswer(String),
    /// The TLS client configuration cannot be built.
    #[error("the TLS configuration cannot be built: {0}")]
    Tls(String),
}

impl ScopeError {
    /// Whether the hub was simply not reachable, so the cached scope stays in use.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ScopeError::Unreachable { .. })
    }
}
