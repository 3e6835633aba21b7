//! Symmetric keys as IoT Hub stores them (base64 text) and HMAC-SHA256 signing with them.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Number of random bytes in a key made by [`SymmetricKey::generate`], the size IoT Hub itself uses.
pub const GENERATED_KEY_LENGTH_BYTES: usize = 32;

/// Length in bytes of an HMAC-SHA256 digest, and so of every SAS signature.
pub const SIGNATURE_LENGTH_BYTES: usize = 32;

/// A shared access key: a device or module `primaryKey`/`secondaryKey`, or a shared access policy key.
///
/// It is built from the base64 text found in connection strings and registry documents, and signs
/// with the decoded bytes, as both official SDKs do. `Debug` never prints the key material.
#[derive(Clone)]
pub struct SymmetricKey {
    key_bytes: Vec<u8>,
}

/// Why a string is not a usable symmetric key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymmetricKeyError {
    /// The key text is empty.
    #[error("symmetric key is empty, expected base64 text")]
    Empty,
    /// The key text is not canonical standard base64 (alphabet `A-Z a-z 0-9 + /`, `=` padding).
    #[error("symmetric key is not valid base64: {reason}")]
    NotBase64 {
        /// What the base64 decoder reported.
        reason: String,
    },
}

// === impl SymmetricKey ===

impl SymmetricKey {
    /// Decodes the base64 text of a key, as stored in the registry or a connection string.
    ///
    /// Only canonical padded base64 is accepted, so [`SymmetricKey::to_base64`] gives back the
    /// very same text.
    pub fn from_base64(key_base64: &str) -> Result<Self, SymmetricKeyError> {
        if key_base64.is_empty() {
            return Err(SymmetricKeyError::Empty);
        }
        let key_bytes =
            BASE64
                .decode(key_base64)
                .map_err(|error| SymmetricKeyError::NotBase64 {
                    reason: error.to_string(),
                })?;
        if key_bytes.is_empty() {
            return Err(SymmetricKeyError::Empty);
        }
        Ok(SymmetricKey { key_bytes })
    }

    /// Wraps raw key bytes, for example ones read from a secure store.
    pub fn from_bytes(key_bytes: Vec<u8>) -> Result<Self, SymmetricKeyError> {
        if key_bytes.is_empty() {
            return Err(SymmetricKeyError::Empty);
        }
        Ok(SymmetricKey { key_bytes })
    }

    /// Makes a new key of [`GENERATED_KEY_LENGTH_BYTES`] random bytes from the given generator.
    ///
    /// The registry calls this with `rand::rng()`; tests pass a seeded generator.
    pub fn generate<R: rand::CryptoRng + ?Sized>(random_generator: &mut R) -> Self {
        let mut key_bytes = vec![0u8; GENERATED_KEY_LENGTH_BYTES];
        random_generator.fill_bytes(&mut key_bytes);
        SymmetricKey { key_bytes }
    }

    /// Makes a new random key from the thread-local, OS-seeded generator of `rand`.
    pub fn generate_random() -> Self {
        Self::generate(&mut rand::rng())
    }

    /// The key as standard padded base64, the form the registry and connection strings carry.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.key_bytes)
    }

    /// The decoded key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.key_bytes
    }

    /// HMAC-SHA256 of `data` under this key.
    ///
    /// This is the whole of what the IoT Edge workload API's `sign` call does with the bytes it is given.
    pub fn sign(&self, data: &[u8]) -> [u8; SIGNATURE_LENGTH_BYTES] {
        self.mac_over(data).finalize().into_bytes().into()
    }

    /// Base64 of the HMAC-SHA256 of `data`: the `digest` the workload API returns and, before
    /// percent-encoding, the `sig` of a SAS token.
    pub fn sign_to_base64(&self, data: &[u8]) -> String {
        BASE64.encode(self.sign(data))
    }

    /// Checks in constant time that `candidate_signature` is the HMAC-SHA256 of `data` under this key.
    pub fn verify(&self, data: &[u8], candidate_signature: &[u8]) -> bool {
        self.mac_over(data)
            .verify_slice(candidate_signature)
            .is_ok()
    }

    fn mac_over(&self, data: &[u8]) -> Hmac<Sha256> {
        // HMAC is defined for keys of every length, so this cannot fail; the key is also never empty.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key_bytes)
            .expect("HMAC accepts keys of any length");
        mac.update(data);
        mac
    }
}

/// Keys compare in constant time, so equality checks never leak how much of a key matched.
impl PartialEq for SymmetricKey {
    fn eq(&self, other: &Self) -> bool {
        self.key_bytes.ct_eq(&other.key_bytes).into()
    }
}

impl Eq for SymmetricKey {}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "SymmetricKey(<{} bytes redacted>)",
            self.key_bytes.len()
        )
    }
}

/// Decodes standard padded base64, shared with the token parser.
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    BASE64.decode(text)
}

/// Encodes standard padded base64, shared with the token builder.
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}
