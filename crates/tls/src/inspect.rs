//! Looking inside certificates: thumbprints and the few fields identity decisions need.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::TlsError;

/// The SHA-1 thumbprint of a DER certificate as upper-case hex, the form IoT Hub stores for
/// self-signed X.509 devices (`primaryThumbprint`, `secondaryThumbprint`).
pub fn thumbprint_sha1_hex(certificate_der: &[u8]) -> String {
    upper_hex(
        ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, certificate_der).as_ref(),
    )
}

/// The SHA-256 thumbprint of a DER certificate as upper-case hex.
pub fn thumbprint_sha256_hex(certificate_der: &[u8]) -> String {
    upper_hex(ring::digest::digest(&ring::digest::SHA256, certificate_der).as_ref())
}

/// The fields of a certificate that authentication and diagnostics look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateSummary {
    /// The first common name of the subject, if any.
    pub subject_common_name: Option<String>,
    /// The first common name of the issuer, if any.
    pub issuer_common_name: Option<String>,
    /// Whether subject and issuer names are equal (a self-issued, usually self-signed, certificate).
    pub self_issued: bool,
    /// Whether the basic constraints extension marks it as a CA.
    pub is_ca: bool,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before_unix_secs: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after_unix_secs: i64,
}

/// Parses a DER certificate and extracts its [`CertificateSummary`].
pub fn summarize_certificate(certificate_der: &[u8]) -> Result<CertificateSummary, TlsError> {
    let (_remainder, certificate) = X509Certificate::from_der(certificate_der)
        .map_err(|error| TlsError::InvalidCertificate(error.to_string()))?;
    let first_common_name = |name: &x509_parser::x509::X509Name<'_>| {
        name.iter_common_name()
            .next()
            .and_then(|attribute| attribute.as_str().ok())
            .map(str::to_owned)
    };
    let is_ca = certificate
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|extension| extension.value.ca);
    Ok(CertificateSummary {
        subject_common_name: first_common_name(certificate.subject()),
        issuer_common_name: first_common_name(certificate.issuer()),
        self_issued: certificate.subject().as_raw() == certificate.issuer().as_raw(),
        is_ca,
        not_before_unix_secs: certificate.validity().not_before.timestamp(),
        not_after_unix_secs: certificate.validity().not_after.timestamp(),
    })
}

fn upper_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}
