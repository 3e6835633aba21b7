//! The twin cache: the last twin seen from the cloud per identity, the reported patches accepted
//! locally but not yet synced upstream (in order), one small file per identity (JSON sealed with
//! AES-256-GCM under a key derived from the edge device's key, mode 0600), replaced atomically.
//! Twin GET is served from here while the hub is unreachable; reported patches are acknowledged
//! once they are here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use edge_scope::{SealingKey, write_private_file};
use iothub_auth::SymmetricKey;
use iothub_types::Identity;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::hub::lock;

pub use twin::json_merge_patch as merge;

/// The largest reported section accepted (IoT Hub's limit).
pub const MAX_REPORTED_BYTES: usize = 32 * 1024;
/// The HMAC message that derives the twin cache key from the edge device's key.
pub const TWIN_CACHE_KEY_CONTEXT: &[u8] = b"outpost edge twin cache v1";
/// The first bytes of a sealed twin file. Files without it are the plain JSON of earlier
/// versions: read once, sealed on their next write.
const TWIN_FILE_MAGIC: &[u8; 8] = b"OPTWIN01";

/// Why a twin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TwinCacheError {
    #[error("the patch is not a JSON object: {0}")]
    InvalidPatch(String),
    #[error("the reported properties would exceed {MAX_REPORTED_BYTES} bytes")]
    TooLarge,
    #[error("cannot write the twin cache: {0}")]
    Io(#[from] std::io::Error),
}

/// What is cached for one identity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CachedTwin {
    /// The desired properties with `$version`.
    pub desired: Map<String, Value>,
    /// The reported properties with `$version`, including patches not yet synced.
    pub reported: Map<String, Value>,
    /// Reported patches accepted locally and not yet acknowledged by the cloud, oldest first.
    #[serde(default)]
    pub pending: Vec<Value>,
}

impl CachedTwin {
    fn empty() -> CachedTwin {
        let mut twin = CachedTwin::default();
        twin.desired.insert("$version".into(), json!(1));
        twin.reported.insert("$version".into(), json!(1));
        twin
    }

    /// The twin as the device SDK receives it: `{"desired": ..., "reported": ...}`.
    pub fn document(&self) -> Value {
        json!({"desired": self.desired, "reported": self.reported})
    }

    /// The desired `$version`.
    pub fn desired_version(&self) -> u64 {
        version_of(&self.desired)
    }
}

fn version_of(section: &Map<String, Value>) -> u64 {
    section.get("$version").and_then(Value::as_u64).unwrap_or(0)
}

/// The twin cache. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TwinCache {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    directory: PathBuf,
    key: SealingKey,
    twins: Mutex<HashMap<Identity, CachedTwin>>,
    /// Held across every read-modify-write, so concurrent updates of one twin (a reported patch
    /// while a cloud twin is stored) neither lose each other's changes nor race on the file.
    writes: Mutex<()>,
}

impl TwinCache {
    /// Opens the cache in `directory`, creating it if needed; files are sealed under a key
    /// derived from `device_key`.
    pub fn open(
        directory: impl Into<PathBuf>,
        device_key: &SymmetricKey,
    ) -> std::io::Result<TwinCache> {
        let directory = directory.into();
        std::fs::create_dir_all(&directory)?;
        let key = SealingKey::derive(device_key, TWIN_CACHE_KEY_CONTEXT)
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        Ok(TwinCache {
            shared: Arc::new(Shared {
                directory,
                key,
                twins: Mutex::new(HashMap::new()),
                writes: Mutex::new(()),
            }),
        })
    }

    /// The cached twin of `identity`, if any (loaded from disk on first use).
    pub fn get(&self, identity: &Identity) -> Option<CachedTwin> {
        let mut twins = lock(&self.shared.twins);
        if let Some(twin) = twins.get(identity) {
            return Some(twin.clone());
        }
        let loaded = self.load(identity)?;
        twins.insert(identity.clone(), loaded.clone());
        Some(loaded)
    }

    /// The twin document to answer a GET with while offline: the cached one, or an empty twin.
    pub fn document_or_empty(&self, identity: &Identity) -> Value {
        self.get(identity)
            .unwrap_or_else(CachedTwin::empty)
            .document()
    }

    /// Stores a twin fetched from the cloud (`{"desired":..,"reported":..}`), re-applying the
    /// patches still pending on top of its reported section. Returns the previous desired section
    /// (to tell the client what changed while it could not hear).
    pub fn store_from_cloud(
        &self,
        identity: &Identity,
        document: &Value,
    ) -> Result<Option<Map<String, Value>>, TwinCacheError> {
        let _write = lock(&self.shared.writes);
        let desired = document
            .get("desired")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut reported = document
            .get("reported")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let previous = self.get(identity);
        let pending = previous
            .as_ref()
            .map(|twin| twin.pending.clone())
            .unwrap_or_default();
        for patch in &pending {
            if let Some(patch) = patch.as_object() {
                merge(&mut reported, patch);
            }
        }
        let twin = CachedTwin {
            desired,
            reported,
            pending,
        };
        self.save(identity, twin)?;
        Ok(previous.map(|twin| twin.desired))
    }

    /// Accepts a reported patch locally: merged into the cached reported section (new
    /// `$version`) and queued for the cloud. Returns the new reported version.
    pub fn apply_reported(&self, identity: &Identity, patch: &[u8]) -> Result<u64, TwinCacheError> {
        let _write = lock(&self.shared.writes);
        let value: Value = serde_json::from_slice(patch)
            .map_err(|error| TwinCacheError::InvalidPatch(error.to_string()))?;
        let Value::Object(object) = value else {
            return Err(TwinCacheError::InvalidPatch(
                "the patch must be an object".to_owned(),
            ));
        };
        let mut twin = self.get(identity).unwrap_or_else(CachedTwin::empty);
        let version = version_of(&twin.reported) + 1;
        merge(&mut twin.reported, &object);
        twin.reported.insert("$version".into(), json!(version));
        if serde_json::to_vec(&twin.reported).map_or(0, |bytes| bytes.len()) > MAX_REPORTED_BYTES {
            return Err(TwinCacheError::TooLarge);
        }
        twin.pending.push(Value::Object(object));
        self.save(identity, twin)?;
        Ok(version)
    }

    /// The oldest reported patch not yet synced.
    pub fn first_pending(&self, identity: &Identity) -> Option<Value> {
        self.get(identity)?.pending.first().cloned()
    }

    /// Forgets the oldest pending patch after the cloud acknowledged it.
    pub fn pop_pending(&self, identity: &Identity) -> Result<(), TwinCacheError> {
        let _write = lock(&self.shared.writes);
        if let Some(mut twin) = self.get(identity)
            && !twin.pending.is_empty()
        {
            twin.pending.remove(0);
            self.save(identity, twin)?;
        }
        Ok(())
    }

    /// Applies a desired patch from the cloud to the cached twin (when it is the next version; a
    /// gap is left for the next full sync to repair).
    pub fn apply_desired_patch(
        &self,
        identity: &Identity,
        version: u64,
        patch: &Value,
    ) -> Result<(), TwinCacheError> {
        let _write = lock(&self.shared.writes);
        let Some(mut twin) = self.get(identity) else {
            return Ok(());
        };
        if let Some(patch) = patch.as_object() {
            merge(&mut twin.desired, patch);
        }
        twin.desired.insert("$version".into(), json!(version));
        self.save(identity, twin)
    }

    /// Identities with reported patches still waiting for the cloud.
    pub fn identities_with_pending(&self) -> Vec<Identity> {
        let mut identities: Vec<Identity> = lock(&self.shared.twins)
            .iter()
            .filter(|(_, twin)| !twin.pending.is_empty())
            .map(|(identity, _)| identity.clone())
            .collect();
        // Twins not loaded yet: scan the directory.
        if let Ok(entries) = std::fs::read_dir(&self.shared.directory) {
            for entry in entries.flatten() {
                let Some(identity) = identity_from_file_name(&entry.path()) else {
                    continue;
                };
                if identities.contains(&identity) {
                    continue;
                }
                if self
                    .get(&identity)
                    .is_some_and(|twin| !twin.pending.is_empty())
                {
                    identities.push(identity);
                }
            }
        }
        identities
    }

    fn path(&self, identity: &Identity) -> PathBuf {
        self.shared
            .directory
            .join(format!("{}.json", hex(identity.to_string().as_bytes())))
    }

    fn load(&self, identity: &Identity) -> Option<CachedTwin> {
        let bytes = std::fs::read(self.path(identity)).ok()?;
        let plain = if bytes.starts_with(TWIN_FILE_MAGIC) {
            let Some(plain) = self.shared.key.open(TWIN_FILE_MAGIC, &bytes) else {
                tracing::warn!(
                    %identity,
                    "cached twin does not decrypt with this device's key (another key or damage); ignored"
                );
                return None;
            };
            plain
        } else {
            bytes
        };
        match serde_json::from_slice(&plain) {
            Ok(twin) => Some(twin),
            Err(error) => {
                tracing::warn!(%identity, %error, "unreadable cached twin ignored");
                None
            }
        }
    }

    fn save(&self, identity: &Identity, twin: CachedTwin) -> Result<(), TwinCacheError> {
        let plain = serde_json::to_vec(&twin).expect("a twin serialises");
        let sealed = self
            .shared
            .key
            .seal(TWIN_FILE_MAGIC, plain)
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        write_private_file(&self.path(identity), &sealed)?;
        lock(&self.shared.twins).insert(identity.clone(), twin);
        Ok(())
    }
}

/// The merge patch that turns desired section `old` into `new` (keys removed become `null`),
/// `$`-keys excluded; `None` when nothing changed.
pub fn desired_difference(old: &Map<String, Value>, new: &Map<String, Value>) -> Option<Value> {
    let mut patch = Map::new();
    for (key, value) in new {
        if key.starts_with('$') {
            continue;
        }
        match (old.get(key), value) {
            (Some(Value::Object(before)), Value::Object(after)) => {
                if let Some(inner) = desired_difference(before, after) {
                    patch.insert(key.clone(), inner);
                }
            }
            (Some(before), after) if before == after => {}
            _ => {
                patch.insert(key.clone(), value.clone());
            }
        }
    }
    for key in old.keys() {
        if !key.starts_with('$') && !new.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    (!patch.is_empty()).then_some(Value::Object(patch))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn identity_from_file_name(path: &Path) -> Option<Identity> {
    let stem = path.file_name()?.to_str()?.strip_suffix(".json")?;
    if stem.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..stem.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(&stem[index..index + 2], 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub_types::{DeviceId, ModuleId};

    fn device_key(seed: u8) -> SymmetricKey {
        SymmetricKey::from_bytes(vec![seed; 32]).unwrap()
    }

    fn module() -> Identity {
        Identity::module(
            DeviceId::new("edge").unwrap(),
            ModuleId::new("filter").unwrap(),
        )
    }

    #[test]
    fn twin_files_are_sealed_private_and_read_only_with_the_device_key() {
        use std::os::unix::fs::PermissionsExt;
        let directory = tempfile::tempdir().unwrap();
        let identity = module();
        // A plain JSON file as an earlier version wrote it is still read, and sealed on write.
        let legacy = CachedTwin {
            desired: json!({"$version": 3, "password": "hunter2"})
                .as_object()
                .unwrap()
                .clone(),
            ..CachedTwin::empty()
        };
        let cache = TwinCache::open(directory.path(), &device_key(1)).unwrap();
        std::fs::write(cache.path(&identity), serde_json::to_vec(&legacy).unwrap()).unwrap();
        assert_eq!(cache.get(&identity).unwrap().desired_version(), 3);
        cache.apply_reported(&identity, br#"{"a":1}"#).unwrap();
        let bytes = std::fs::read(cache.path(&identity)).unwrap();
        assert!(bytes.starts_with(TWIN_FILE_MAGIC));
        assert!(!bytes.windows(7).any(|window| window == b"hunter2"));
        let mode = std::fs::metadata(cache.path(&identity))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let reopened = TwinCache::open(directory.path(), &device_key(1)).unwrap();
        let twin = reopened.get(&identity).unwrap();
        assert_eq!(twin.desired["password"], "hunter2");
        assert_eq!(twin.pending, [json!({"a": 1})]);
        let other_device = TwinCache::open(directory.path(), &device_key(2)).unwrap();
        assert_eq!(other_device.get(&identity), None);
    }

    #[test]
    fn reported_patches_are_kept_in_order_across_reopen_and_reapplied_over_cloud_twins() {
        let directory = tempfile::tempdir().unwrap();
        let cache = TwinCache::open(directory.path(), &device_key(1)).unwrap();
        let identity = module();
        assert_eq!(cache.apply_reported(&identity, br#"{"a":1}"#).unwrap(), 2);
        assert_eq!(
            cache
                .apply_reported(&identity, br#"{"b":{"c":2}}"#)
                .unwrap(),
            3
        );
        assert!(cache.apply_reported(&identity, b"[1]").is_err());

        let reopened = TwinCache::open(directory.path(), &device_key(1)).unwrap();
        assert_eq!(reopened.identities_with_pending(), vec![identity.clone()]);
        assert_eq!(reopened.first_pending(&identity), Some(json!({"a":1})));
        let previous = reopened
            .store_from_cloud(
                &identity,
                &json!({"desired":{"x":1,"$version":4},"reported":{"a":0,"$version":7}}),
            )
            .unwrap();
        assert_eq!(previous.unwrap().get("$version"), Some(&json!(1)));
        let twin = reopened.get(&identity).unwrap();
        assert_eq!(
            Value::Object(twin.reported.clone()),
            json!({"a":1,"b":{"c":2},"$version":7})
        );
        reopened.pop_pending(&identity).unwrap();
        assert_eq!(
            reopened.first_pending(&identity),
            Some(json!({"b":{"c":2}}))
        );
    }

    #[test]
    fn the_desired_difference_names_changed_and_removed_keys() {
        let old = json!({"a":1,"b":{"c":1,"d":2},"gone":true,"$version":3});
        let new = json!({"a":1,"b":{"c":5,"d":2},"added":"x","$version":9});
        let patch = desired_difference(old.as_object().unwrap(), new.as_object().unwrap());
        assert_eq!(patch, Some(json!({"b":{"c":5},"added":"x","gone":null})));
        assert_eq!(
            desired_difference(new.as_object().unwrap(), new.as_object().unwrap()),
            None
        );
    }
}
