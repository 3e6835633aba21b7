//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while creating, loading or using TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused to build or sign a certificate (for example an invalid DNS name).
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, such as "reading" or "writing".
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// PEM text was malformed.
    #[error("invalid PEM in {origin}: {detail}")]
    Pem {
        /// Where the text came from (a path or a description).
        origin: String,
        /// What the PEM parser said.
        detail: String,
    },
    /// PEM text held no certificate.
    #[error("no certificate found in {origin}")]
    NoCertificate {
        /// Where the text came from.
        origin: String,
    },
    /// PEM text held no private key.
    #[error("no private key found in {origin}")]
    NoPrivateKey {
        /// Where the text came from.
        origin: String,
    },
    /// A DER certificate could not be parsed as X.509.
    #[error("invalid X.509 certificate: {0}")]
    InvalidCertificate(String),
    /// rustls rejected a key, a certificate or a chain.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The rustls client verifier could not be built (for example from an empty trust store).
    #[error("cannot build client certificate verifier: {0}")]
    Verifier(String),
}
