//! TLS material: a private CA, server and client certificates, and rustls configurations.
//!
//! This crate owns everything certificate-shaped that Outpost needs: creating a long-lived private
//! certificate authority, issuing server certificates whose subject alternative names cover the
//! names and addresses clients dial, issuing client certificates for X.509 device tests, reading and
//! writing PEM files, computing the SHA-1 and SHA-256 thumbprints IoT Hub uses to identify
//! self-signed devices, and building rustls configurations. The server configuration offers TLS 1.2
//! (which the Python device SDK pins) and TLS 1.3, asks for an optional client certificate that it
//! accepts at the TLS layer without judging it (the application decides by thumbprint or by chain),
//! and serves its certificate through a resolver that can be swapped at run time for renewal.
//!
//! The crypto provider is rustls' `ring` provider everywhere; nothing here touches a global default
//! provider, so callers need not install one.

#![forbid(unsafe_code)]

mod authority;
mod config;
mod error;
mod inspect;
mod pem;

pub use authority::{
    CertificateAuthority, CertificateValidity, ClientCertificateRequest, IssuedCertificate,
    ServerCertificateRequest, certificate_renewal_time, renewal_time,
    self_signed_client_certificate,
};
pub use config::{
    AcceptAnyClientCertificate, ClientCertificates, ReloadableCertificateResolver, client_config,
    client_config_with_certificate, crypto_provider, server_config, verify_client_chain,
};
pub use error::TlsError;
pub use inspect::{
    CertificateSummary, summarize_certificate, thumbprint_sha1_hex, thumbprint_sha256_hex,
};
pub use pem::{
    FileAccess, certificates_from_pem, certificates_to_pem, private_key_from_pem,
    private_key_to_pem, read_certificates_file, read_private_key_file, write_pem_file,
};

// Re-exported so that callers can name the types in these signatures without a direct dependency.
pub use rustls;
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
pub use tokio_rustls;
