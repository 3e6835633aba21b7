//! The scope cache: the identities in memory plus one encrypted file, so that the edge hub
//! authenticates its modules and child devices after a restart while the hub is unreachable.
//!
//! File layout: [`FILE_MAGIC`] (8 bytes), a random 96-bit nonce, then the AES-256-GCM sealed JSON
//! of the scope (the magic is the associated data). The key is HMAC-SHA256 of
//! [`CACHE_KEY_CONTEXT`] under the edge device's key, so only that device's runtime reads it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use iothub_auth::SymmetricKey;
use iothub_types::{DeviceId, Identity, ModuleId};
use serde::{Deserialize, Serialize};

use crate::error::ScopeError;
use crate::identity::{ScopeAuth, ScopeIdentity};
use crate::sealed::{SealingKey, write_private_file};

/// The HMAC message that derives the cache key from the edge device's key.
pub const CACHE_KEY_CONTEXT: &[u8] = b"outpost edge scope cache v1";
/// The first bytes of a cache file (also its AEAD associated data).
const FILE_MAGIC: &[u8; 8] = b"OPSCOPE1";

/// What [`ScopeCache::replace_all`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeDiff {
    /// Identities that were not cached before.
    pub added: Vec<Identity>,
    /// Identities no longer in the scope (their connections should be closed).
    pub removed: Vec<Identity>,
    /// Identities still in the scope whose credentials, status or scopes changed.
    pub changed: Vec<Identity>,
}

/// The scope in memory and on disk. Cheap to clone (shared state). Methods do blocking file I/O
/// while holding the cache's lock, so writes are serialized; call them from a blocking context
/// when latency matters.
#[derive(Clone)]
pub struct ScopeCache {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    key: SealingKey,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    identities: BTreeMap<Identity, ScopeIdentity>,
    last_sync_ms: Option<u64>,
}

impl ScopeCache {
    /// Opens the cache file at `path` (creating its directory; a missing file is an empty
    /// cache). A file that does not decrypt under `device_key` (another device's key, or
    /// corruption) is logged without secrets and treated as empty; it is replaced on the next
    /// write.
    pub fn open(
        path: impl Into<PathBuf>,
        device_key: &SymmetricKey,
    ) -> Result<ScopeCache, ScopeError> {
        let path = path.into();
        if let Some(directory) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            fs::create_dir_all(directory).map_err(|source| ScopeError::Io {
                path: directory.to_owned(),
                source,
            })?;
        }
        let key = SealingKey::derive(device_key, CACHE_KEY_CONTEXT)?;
        let state = match fs::read(&path) {
            Ok(bytes) => match key
                .open(FILE_MAGIC, &bytes)
                .and_then(|plain| decode_state(&plain))
            {
                Some(state) => state,
                None => {
                    tracing::warn!(
                        path = %path.display(),
                        "the scope cache does not decrypt with this device's key (another key or \
                         corruption); starting with an empty scope"
                    );
                    State::default()
                }
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(source) => return Err(ScopeError::Io { path, source }),
        };
        Ok(ScopeCache {
            inner: Arc::new(Inner {
                path,
                key,
                state: Mutex::new(state),
            }),
        })
    }

    /// The cached identity, if it is in the scope.
    pub fn get(&self, identity: &Identity) -> Option<ScopeIdentity> {
        self.lock().identities.get(identity).cloned()
    }

    /// How many identities are cached.
    pub fn len(&self) -> usize {
        self.lock().identities.len()
    }

    /// Whether no identity is cached.
    pub fn is_empty(&self) -> bool {
        self.lock().identities.is_empty()
    }

    /// Every cached identity, sorted.
    pub fn identities(&self) -> Vec<Identity> {
        self.lock().identities.keys().cloned().collect()
    }

    /// Replaces the whole scope after a full sync, records the sync time and persists. The
    /// memory holds the new scope even when persisting fails (authentication follows the hub);
    /// the error then says the file is stale.
    pub fn replace_all(&self, identities: Vec<ScopeIdentity>) -> Result<ScopeDiff, ScopeError> {
        let mut state = self.lock();
        let new: BTreeMap<Identity, ScopeIdentity> = identities
            .into_iter()
            .map(|identity| (identity.identity.clone(), identity))
            .collect();
        let mut diff = ScopeDiff::default();
        for (identity, entry) in &new {
            match state.identities.get(identity) {
                None => diff.added.push(identity.clone()),
                Some(old) if old != entry => diff.changed.push(identity.clone()),
                Some(_) => {}
            }
        }
        diff.removed = state
            .identities
            .keys()
            .filter(|identity| !new.contains_key(*identity))
            .cloned()
            .collect();
        state.identities = new;
        state.last_sync_ms = Some(now_ms());
        self.persist(&state)?;
        Ok(diff)
    }

    /// Inserts or replaces one identity (the runtime knows its own modules' keys before any
    /// sync) and persists, with the same failure rule as [`ScopeCache::replace_all`].
    pub fn upsert(&self, identity: ScopeIdentity) -> Result<(), ScopeError> {
        let mut state = self.lock();
        state.identities.insert(identity.identity.clone(), identity);
        self.persist(&state)
    }

    /// When the last full sync ([`ScopeCache::replace_all`]) happened, in milliseconds since the
    /// Unix epoch; `None` before the first one.
    pub fn last_sync_ms(&self) -> Option<u64> {
        self.lock().last_sync_ms
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent map (every update is one assignment).
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn persist(&self, state: &State) -> Result<(), ScopeError> {
        let plain = serde_json::to_vec(&encode_state(state)).map_err(|_| ScopeError::Encrypt)?;
        let bytes = self.inner.key.seal(FILE_MAGIC, plain)?;
        write_private_file(&self.inner.path, &bytes).map_err(|source| ScopeError::Io {
            path: self.inner.path.clone(),
            source,
        })
    }
}

impl std::fmt::Debug for ScopeCache {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ScopeCache")
            .field("path", &self.inner.path)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The plaintext of the cache file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredScope {
    last_sync_ms: Option<u64>,
    identities: Vec<StoredIdentity>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredIdentity {
    device_id: String,
    module_id: Option<String>,
    generation_id: String,
    enabled: bool,
    auth: StoredAuth,
    is_edge: bool,
    parent_scopes: Vec<String>,
    device_scope: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum StoredAuth {
    Sas {
        primary: String,
        secondary: String,
    },
    SelfSigned {
        primary_thumbprint: String,
        secondary_thumbprint: String,
    },
    CertificateAuthority,
    None,
}

fn encode_state(state: &State) -> StoredScope {
    StoredScope {
        last_sync_ms: state.last_sync_ms,
        identities: state
            .identities
            .values()
            .map(|entry| StoredIdentity {
                device_id: entry.identity.device.to_string(),
                module_id: entry.identity.module.as_ref().map(ToString::to_string),
                generation_id: entry.generation_id.clone(),
                enabled: entry.enabled,
                auth: match &entry.auth {
                    ScopeAuth::Sas { primary, secondary } => StoredAuth::Sas {
                        primary: primary.to_base64(),
                        secondary: secondary.to_base64(),
                    },
                    ScopeAuth::SelfSigned {
                        primary_thumbprint,
                        secondary_thumbprint,
                    } => StoredAuth::SelfSigned {
                        primary_thumbprint: primary_thumbprint.clone(),
                        secondary_thumbprint: secondary_thumbprint.clone(),
                    },
                    ScopeAuth::CertificateAuthority => StoredAuth::CertificateAuthority,
                    ScopeAuth::None => StoredAuth::None,
                },
                is_edge: entry.is_edge,
                parent_scopes: entry.parent_scopes.clone(),
                device_scope: entry.device_scope.clone(),
            })
            .collect(),
    }
}

/// Decodes the plaintext; `None` when any entry is invalid (the file is then not trusted).
fn decode_state(plain: &[u8]) -> Option<State> {
    let stored: StoredScope = serde_json::from_slice(plain).ok()?;
    let mut identities = BTreeMap::new();
    for entry in stored.identities {
        let device = DeviceId::new(&entry.device_id).ok()?;
        let identity = match entry.module_id {
            None => Identity::device(device),
            Some(module) => Identity::module(device, ModuleId::new(&module).ok()?),
        };
        let auth = match entry.auth {
            StoredAuth::Sas { primary, secondary } => ScopeAuth::Sas {
                primary: SymmetricKey::from_base64(&primary).ok()?,
                secondary: SymmetricKey::from_base64(&secondary).ok()?,
            },
            StoredAuth::SelfSigned {
                primary_thumbprint,
                secondary_thumbprint,
            } => ScopeAuth::SelfSigned {
                primary_thumbprint,
                secondary_thumbprint,
            },
            StoredAuth::CertificateAuthority => ScopeAuth::CertificateAuthority,
            StoredAuth::None => ScopeAuth::None,
        };
        identities.insert(
            identity.clone(),
            ScopeIdentity {
                identity,
                generation_id: entry.generation_id,
                enabled: entry.enabled,
                auth,
                is_edge: entry.is_edge,
                parent_scopes: entry.parent_scopes,
                device_scope: entry.device_scope,
            },
        );
    }
    Some(State {
        identities,
        last_sync_ms: stored.last_sync_ms,
    })
}
