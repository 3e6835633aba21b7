//! Reading and writing PEM text and files.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsError;

/// Parses every `CERTIFICATE` block of `pem_text`, in order; `origin` names the text in errors.
///
/// Other blocks (keys, parameters) are skipped. At least one certificate must be present.
pub fn certificates_from_pem(
    pem_text: &[u8],
    origin: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Pem {
            origin: origin.to_owned(),
            detail: error.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            origin: origin.to_owned(),
        });
    }
    Ok(certificates)
}

/// Parses the first private key (PKCS#8, SEC1 or PKCS#1) of `pem_text`.
pub fn private_key_from_pem(
    pem_text: &[u8],
    origin: &str,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem_text).map_err(|error| match error {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            origin: origin.to_owned(),
        },
        other => TlsError::Pem {
            origin: origin.to_owned(),
            detail: other.to_string(),
        },
    })
}

/// Encodes certificates as consecutive `CERTIFICATE` PEM blocks.
pub fn certificates_to_pem(certificates: &[CertificateDer<'_>]) -> String {
    certificates
        .iter()
        .map(|certificate| encode_pem_block("CERTIFICATE", certificate.as_ref()))
        .collect()
}

/// Encodes a private key as one PEM block whose label matches its format.
pub fn private_key_to_pem(private_key: &PrivateKeyDer<'_>) -> String {
    let label = match private_key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    encode_pem_block(label, private_key.secret_der())
}

/// Reads a PEM file holding one or more certificates (a chain starts with the end entity).
pub fn read_certificates_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read_file(path)?;
    certificates_from_pem(&text, &path.display().to_string())
}

/// Reads the first private key of a PEM file.
pub fn read_private_key_file(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read_file(path)?;
    private_key_from_pem(&text, &path.display().to_string())
}

/// Writes PEM text to `path` atomically (temporary file, then rename).
///
/// The file is created readable by its owner only (mode 0600 on Unix) when `access` is
/// [`FileAccess::OwnerOnly`], which is what private keys need; certificates use
/// [`FileAccess::WorldReadable`].
pub fn write_pem_file(path: &Path, pem_text: &str, access: FileAccess) -> Result<(), TlsError> {
    let io_error = |source| TlsError::Io {
        action: "writing",
        path: path.to_owned(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary_path = path.with_file_name(format!(".{file_name}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(match access {
            FileAccess::OwnerOnly => 0o600,
            FileAccess::WorldReadable => 0o644,
        });
    }
    #[cfg(not(unix))]
    let _ = access;
    let mut file = options.open(&temporary_path).map_err(io_error)?;
    file.write_all(pem_text.as_bytes()).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    drop(file);
    std::fs::rename(&temporary_path, path).map_err(io_error)
}

/// Who may read a PEM file written by [`write_pem_file`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileAccess {
    /// Mode 0600: for private keys.
    OwnerOnly,
    /// Mode 0644: for certificates.
    WorldReadable,
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })
}

fn encode_pem_block(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}
