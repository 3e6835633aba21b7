//! Module identities: what the hub knows about this device's modules (generation ids and keys),
//! the pure plan that brings the hub in line with a deployment, and the cache the runtime signs
//! with, kept in memory and in a file readable by the runtime's user only.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use edge_workload::{ModuleKeyError, ModuleKeys};
use iothub_auth::SymmetricKey;
use iothub_types::ModuleId;
use serde::{Deserialize, Serialize};

use crate::files::write_private_file;

/// The `managedBy` value of module identities the runtime creates, as Azure's edge agent writes it.
pub const EDGE_MANAGED_BY: &str = "IotEdge";

/// One module identity as the hub's registry reports it (the wire type, a subset of IoT Hub's
/// `Module` JSON).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModuleIdentityRecord {
    pub module_id: ModuleId,
    #[serde(default)]
    pub generation_id: String,
    #[serde(default)]
    pub managed_by: Option<String>,
    #[serde(default)]
    pub primary_key: Option<String>,
    #[serde(default)]
    pub secondary_key: Option<String>,
}

impl std::fmt::Debug for ModuleIdentityRecord {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ModuleIdentityRecord")
            .field("module_id", &self.module_id)
            .field("generation_id", &self.generation_id)
            .field("managed_by", &self.managed_by)
            .field("has_primary_key", &self.primary_key.is_some())
            .finish()
    }
}

impl ModuleIdentityRecord {
    /// Reads one module from the registry's JSON (`authentication.symmetricKey.primaryKey` …).
    pub fn from_registry_json(value: &serde_json::Value) -> Option<ModuleIdentityRecord> {
        let module_id = ModuleId::new(value.get("moduleId")?.as_str()?).ok()?;
        let text = |pointer: &str| {
            value
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        Some(ModuleIdentityRecord {
            module_id,
            generation_id: text("/generationId").unwrap_or_default(),
            managed_by: text("/managedBy"),
            primary_key: text("/authentication/symmetricKey/primaryKey"),
            secondary_key: text("/authentication/symmetricKey/secondaryKey"),
        })
    }

    /// Whether the runtime created it (and may delete it when no deployment wants it).
    pub fn is_managed_by_edge(&self) -> bool {
        self.managed_by
            .as_deref()
            .is_some_and(|managed_by| managed_by.eq_ignore_ascii_case(EDGE_MANAGED_BY))
    }

    pub fn primary_key(&self) -> Option<SymmetricKey> {
        self.primary_key
            .as_deref()
            .and_then(|text| SymmetricKey::from_base64(text).ok())
    }
}

/// What to do in the hub so that exactly the wanted modules have identities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentitySyncPlan {
    /// Wanted modules without an identity (or with one that has no usable key: it is recreated).
    pub create: Vec<ModuleId>,
    /// Identities the runtime created earlier that no module wants any more. System modules
    /// and identities created by someone else are never deleted.
    pub delete: Vec<ModuleId>,
}

/// Plans the identity changes for `wanted` given what the hub has (pure).
///
/// With `delete_unwanted` false nothing is deleted: the runtime only deletes identities once
/// it acts on a deployment read from the hub in this session, never on one restored from disk
/// (which may be older than the hub's and would delete identities, and their twins, that a
/// newer deployment just created).
pub fn plan_identity_sync(
    existing: &[ModuleIdentityRecord],
    wanted: &BTreeSet<ModuleId>,
    delete_unwanted: bool,
) -> IdentitySyncPlan {
    let by_id: BTreeMap<&ModuleId, &ModuleIdentityRecord> = existing
        .iter()
        .map(|record| (&record.module_id, record))
        .collect();
    let create = wanted
        .iter()
        .filter(|module_id| !by_id.contains_key(module_id))
        .cloned()
        .collect();
    let delete = if delete_unwanted {
        by_id
            .values()
            .filter(|record| {
                !wanted.contains(&record.module_id)
                    && !record.module_id.is_system_module()
                    && record.is_managed_by_edge()
            })
            .map(|record| record.module_id.clone())
            .collect()
    } else {
        Vec::new()
    };
    IdentitySyncPlan { create, delete }
}

/// The module identities the runtime knows, shared by the agent (which refreshes them from the
/// hub), the workload API (which signs with their keys) and the module runtime (which tells each
/// module its generation id, see [`crate::workload::LaunchIdentities`]). Cheap to clone.
#[derive(Clone)]
pub struct IdentityCache {
    inner: Arc<Inner>,
}

struct Inner {
    file: PathBuf,
    records: RwLock<BTreeMap<ModuleId, ModuleIdentityRecord>>,
    /// Serialises file writes, so the file always ends with the latest records.
    persisting: Mutex<()>,
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    modules: Vec<ModuleIdentityRecord>,
}

impl IdentityCache {
    /// Loads the cache from `file` (missing means empty; an unreadable file is an error, so
    /// that a broken disk is noticed rather than silently dropping every key).
    pub fn load(file: PathBuf) -> io::Result<IdentityCache> {
        let records = match std::fs::read(&file) {
            Ok(bytes) => {
                let parsed: CacheFile = serde_json::from_slice(&bytes).map_err(|error| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is not a module identity file: {error}", file.display()),
                    )
                })?;
                parsed
                    .modules
                    .into_iter()
                    .map(|record| (record.module_id.clone(), record))
                    .collect()
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(error),
        };
        Ok(IdentityCache {
            inner: Arc::new(Inner {
                file,
                records: RwLock::new(records),
                persisting: Mutex::new(()),
            }),
        })
    }

    pub fn get(&self, module_id: &ModuleId) -> Option<ModuleIdentityRecord> {
        self.read().get(module_id).cloned()
    }

    pub fn all(&self) -> Vec<ModuleIdentityRecord> {
        self.read().values().cloned().collect()
    }

    /// Replaces every record (after a sync with the hub) and writes the file.
    pub fn replace_all(&self, records: Vec<ModuleIdentityRecord>) -> io::Result<()> {
        let map: BTreeMap<ModuleId, ModuleIdentityRecord> = records
            .into_iter()
            .map(|record| (record.module_id.clone(), record))
            .collect();
        *self.write() = map;
        self.persist()
    }

    /// Adds or replaces one record and writes the file.
    pub fn upsert(&self, record: ModuleIdentityRecord) -> io::Result<()> {
        self.write().insert(record.module_id.clone(), record);
        self.persist()
    }

    fn persist(&self) -> io::Result<()> {
        let _writing = self
            .inner
            .persisting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let file = CacheFile {
            modules: self.all(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(io::Error::other)?;
        write_private_file(&self.inner.file, &bytes)
    }

    pub fn file(&self) -> &Path {
        &self.inner.file
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ModuleId, ModuleIdentityRecord>> {
        self.inner
            .records
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<ModuleId, ModuleIdentityRecord>> {
        self.inner
            .records
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ModuleKeys for IdentityCache {
    async fn module_key(
        &self,
        module_id: &ModuleId,
        generation_id: &str,
    ) -> Result<SymmetricKey, ModuleKeyError> {
        let record = self
            .get(module_id)
            .ok_or_else(|| ModuleKeyError::UnknownModule(module_id.to_string()))?;
        if !generation_id.is_empty() && record.generation_id != generation_id {
            return Err(ModuleKeyError::WrongGeneration {
                module: module_id.to_string(),
                generation_id: generation_id.to_owned(),
            });
        }
        record.primary_key().ok_or_else(|| {
            ModuleKeyError::Unavailable(format!("module {module_id} has no symmetric key"))
        })
    }
}
