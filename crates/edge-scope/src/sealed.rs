//! Sealed files: AES-256-GCM under a key derived from the edge device's key, so the edge hub's
//! on-disk caches (the scope, the twins) are readable only by that device's runtime.
//!
//! Layout: an 8-byte magic naming the kind of file (also the associated data), a random 96-bit
//! nonce, then the sealed bytes with their tag.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use iothub_auth::SymmetricKey;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::ScopeError;

/// A file-sealing key: HMAC-SHA256 of a context string under the device key.
pub struct SealingKey {
    key: LessSafeKey,
    random: SystemRandom,
}

impl SealingKey {
    /// Derives the key for files of one kind (`context` names it) from the device key.
    pub fn derive(device_key: &SymmetricKey, context: &[u8]) -> Result<SealingKey, ScopeError> {
        let derived = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, device_key.as_bytes()),
            context,
        );
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, derived.as_ref()).map_err(|_| ScopeError::Encrypt)?,
        );
        Ok(SealingKey {
            key,
            random: SystemRandom::new(),
        })
    }

    /// `magic`, a fresh nonce and `plain` sealed.
    pub fn seal(&self, magic: &[u8; 8], plain: Vec<u8>) -> Result<Vec<u8>, ScopeError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| ScopeError::Encrypt)?;
        let mut sealed = plain;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(magic),
                &mut sealed,
            )
            .map_err(|_| ScopeError::Encrypt)?;
        let mut bytes = Vec::with_capacity(magic.len() + NONCE_LEN + sealed.len());
        bytes.extend_from_slice(magic);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Ok(bytes)
    }

    /// The plain bytes of a file sealed by [`SealingKey::seal`] with the same magic and key;
    /// `None` for another magic, another key or any damage.
    pub fn open(&self, magic: &[u8; 8], bytes: &[u8]) -> Option<Vec<u8>> {
        let rest = bytes.strip_prefix(magic.as_slice())?;
        if rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(magic), &mut buffer)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// Writes `bytes` to a fresh 0600 temporary file next to `path`, syncs it, renames it over
/// `path` and syncs the directory, so a crash leaves either the old or the new file. Writers of
/// one path must not run concurrently (the temporary name is per process).
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_owned());
    let temporary = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    // A leftover from a crash may have another mode; start from nothing.
    let _ = fs::remove_file(&temporary);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, path)?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory).and_then(|directory| directory.sync_all())
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SealingKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8, context: &[u8]) -> SealingKey {
        SealingKey::derive(&SymmetricKey::from_bytes(vec![seed; 32]).unwrap(), context).unwrap()
    }

    #[test]
    fn only_the_same_key_context_and_magic_open_a_sealed_file() {
        let sealing = key(1, b"one");
        let bytes = sealing.seal(b"MAGIC001", b"secret".to_vec()).unwrap();
        assert!(bytes.starts_with(b"MAGIC001"));
        assert!(!bytes.windows(6).any(|window| window == b"secret"));
        assert_eq!(sealing.open(b"MAGIC001", &bytes).unwrap(), b"secret");
        assert_eq!(sealing.open(b"MAGIC002", &bytes), None);
        assert_eq!(key(2, b"one").open(b"MAGIC001", &bytes), None);
        assert_eq!(key(1, b"two").open(b"MAGIC001", &bytes), None);
        for cut in 0..bytes.len() {
            assert_eq!(
                sealing.open(b"MAGIC001", &bytes[..cut]),
                None,
                "cut at {cut}"
            );
        }
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(sealing.open(b"MAGIC001", &flipped), None);
        // Two seals of the same bytes differ (fresh nonces).
        assert_ne!(
            bytes,
            sealing.seal(b"MAGIC001", b"secret".to_vec()).unwrap()
        );
    }
}
