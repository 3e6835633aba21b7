//! [`HubStore`] in memory: the reference model for the SQLite store, and a store for tests that
//! must not wait on a database thread (paused tokio time).

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use iothub_types::{DeviceId, ModuleId};
use twin::Twin;

use super::{
    BoxFuture, DeviceCounts, HubStore, IdentityKey, IdentityScope, QueuedC2dMessage, StoredIdentity,
};
use crate::certificates::{CaCertificate, CertificateName};
use crate::error::HubError;
use crate::hub::lock;
use crate::model::{IdentityRecord, SharedAccessPolicy};

/// Everything a [`MemoryStore`] holds.
#[derive(Debug, Default)]
struct MemoryState {
    identities: BTreeMap<IdentityKey, StoredIdentity>,
    policies: BTreeMap<String, SharedAccessPolicy>,
    c2d: BTreeMap<i64, QueuedC2dMessage>,
    next_sequence: i64,
    ca_certificates: BTreeMap<CertificateName, CaCertificate>,
}

/// A [`HubStore`] that keeps everything in memory (lost on drop).
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

fn key(device_id: &DeviceId, module_id: Option<&ModuleId>) -> IdentityKey {
    IdentityKey {
        device_id: device_id.to_string(),
        module_id: module_id.map(ToString::to_string).unwrap_or_default(),
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl HubStore for MemoryStore {
    fn get_identity<'a>(
        &'a self,
        device_id: &'a DeviceId,
        module_id: Option<&'a ModuleId>,
    ) -> BoxFuture<'a, Result<Option<StoredIdentity>, HubError>> {
        ready(Ok(lock(&self.state)
            .identities
            .get(&key(device_id, module_id))
            .cloned()))
    }

    fn insert_identity<'a>(
        &'a self,
        identity: &'a StoredIdentity,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        let record = &identity.record;
        let mut state = lock(&self.state);
        let identity_key = key(&record.device_id, record.module_id.as_ref());
        if state.identities.contains_key(&identity_key) {
            return ready(Ok(false));
        }
        state.identities.insert(identity_key, identity.clone());
        ready(Ok(true))
    }

    fn update_identity<'a>(
        &'a self,
        record: &'a IdentityRecord,
        expected_etag: &'a str,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        let mut state = lock(&self.state);
        let stored = state
            .identities
            .get_mut(&key(&record.device_id, record.module_id.as_ref()));
        let updated = match stored {
            Some(stored) if stored.record.etag == expected_etag => {
                stored.record = record.clone();
                true
            }
            _ => false,
        };
        ready(Ok(updated))
    }

    fn update_twin<'a>(
        &'a self,
        device_id: &'a DeviceId,
        module_id: Option<&'a ModuleId>,
        twin: &'a Twin,
        expected_version: u64,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        let mut state = lock(&self.state);
        let updated = match state.identities.get_mut(&key(device_id, module_id)) {
            Some(stored) if stored.twin.version() == expected_version => {
                stored.twin = twin.clone();
                true
            }
            _ => false,
        };
        ready(Ok(updated))
    }

    fn delete_identity<'a>(
        &'a self,
        device_id: &'a DeviceId,
        module_id: Option<&'a ModuleId>,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        let mut state = lock(&self.state);
        let existed = state
            .identities
            .remove(&key(device_id, module_id))
            .is_some();
        if module_id.is_none() {
            state
                .identities
                .retain(|identity_key, _| identity_key.device_id != device_id.as_str());
            state
                .c2d
                .retain(|_, message| message.device_id != *device_id);
        }
        ready(Ok(existed))
    }

    fn list_identities<'a>(
        &'a self,
        scope: IdentityScope<'a>,
        after: Option<&'a IdentityKey>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredIdentity>, HubError>> {
        let state = lock(&self.state);
        let listed = state
            .identities
            .iter()
            .filter(|(identity_key, _)| after.is_none_or(|after| *identity_key > after))
            .filter(|(identity_key, _)| match scope {
                IdentityScope::Devices => identity_key.module_id.is_empty(),
                IdentityScope::ModulesOf(device_id) => {
                    identity_key.device_id == device_id.as_str()
                        && !identity_key.module_id.is_empty()
                }
                IdentityScope::AllModules => !identity_key.module_id.is_empty(),
            })
            .take(limit)
            .map(|(_, stored)| stored.clone())
            .collect();
        ready(Ok(listed))
    }

    fn count_devices(&self) -> BoxFuture<'_, Result<DeviceCounts, HubError>> {
        let state = lock(&self.state);
        let mut counts = DeviceCounts::default();
        for stored in state
            .identities
            .values()
            .filter(|stored| stored.record.module_id.is_none())
        {
            counts.total += 1;
            if stored.record.status == twin::IdentityStatus::Enabled {
                counts.enabled += 1;
            } else {
                counts.disabled += 1;
            }
        }
        ready(Ok(counts))
    }

    fn list_policies(&self) -> BoxFuture<'_, Result<Vec<SharedAccessPolicy>, HubError>> {
        ready(Ok(lock(&self.state).policies.values().cloned().collect()))
    }

    fn insert_policy<'a>(
        &'a self,
        policy: &'a SharedAccessPolicy,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        let mut state = lock(&self.state);
        if state.policies.contains_key(&policy.name) {
            return ready(Ok(false));
        }
        state.policies.insert(policy.name.clone(), policy.clone());
        ready(Ok(true))
    }

    fn c2d_enqueue<'a>(
        &'a self,
        message: &'a QueuedC2dMessage,
        max_depth: usize,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<i64>, HubError>> {
        let mut state = lock(&self.state);
        let depth = state
            .c2d
            .values()
            .filter(|queued| queued.device_id == message.device_id && queued.expiry_time > now)
            .count();
        if depth >= max_depth {
            return ready(Ok(None));
        }
        state.next_sequence += 1;
        let sequence = state.next_sequence;
        state.c2d.insert(
            sequence,
            QueuedC2dMessage {
                sequence,
                ..message.clone()
            },
        );
        ready(Ok(Some(sequence)))
    }

    fn c2d_list<'a>(
        &'a self,
        device_id: &'a DeviceId,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<QueuedC2dMessage>, HubError>> {
        let state = lock(&self.state);
        let listed = state
            .c2d
            .values()
            .filter(|queued| queued.device_id == *device_id)
            .take(limit)
            .cloned()
            .collect();
        ready(Ok(listed))
    }

    fn c2d_set_delivery_count<'a>(
        &'a self,
        device_id: &'a DeviceId,
        sequence: i64,
        delivery_count: u32,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        let mut state = lock(&self.state);
        let updated = match state.c2d.get_mut(&sequence) {
            Some(queued) if queued.device_id == *device_id => {
                queued.delivery_count = delivery_count;
                true
            }
            _ => false,
        };
        ready(Ok(updated))
    }

    fn c2d_remove<'a>(
        &'a self,
        device_id: &'a DeviceId,
        sequence: i64,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        let mut state = lock(&self.state);
        let removed = match state.c2d.get(&sequence) {
            Some(queued) if queued.device_id == *device_id => state.c2d.remove(&sequence).is_some(),
            _ => false,
        };
        ready(Ok(removed))
    }

    fn c2d_purge<'a>(&'a self, device_id: &'a DeviceId) -> BoxFuture<'a, Result<u64, HubError>> {
        let mut state = lock(&self.state);
        let before = state.c2d.len();
        state.c2d.retain(|_, queued| queued.device_id != *device_id);
        ready(Ok((before - state.c2d.len()) as u64))
    }

    fn c2d_count<'a>(&'a self, device_id: &'a DeviceId) -> BoxFuture<'a, Result<u64, HubError>> {
        let state = lock(&self.state);
        ready(Ok(state
            .c2d
            .values()
            .filter(|queued| queued.device_id == *device_id)
            .count() as u64))
    }

    fn list_ca_certificates(&self) -> BoxFuture<'_, Result<Vec<CaCertificate>, HubError>> {
        ready(Ok(lock(&self.state)
            .ca_certificates
            .values()
            .cloned()
            .collect()))
    }

    fn get_ca_certificate<'a>(
        &'a self,
        name: &'a CertificateName,
    ) -> BoxFuture<'a, Result<Option<CaCertificate>, HubError>> {
        ready(Ok(lock(&self.state).ca_certificates.get(name).cloned()))
    }

    fn put_ca_certificate<'a>(
        &'a self,
        certificate: &'a CaCertificate,
        expected_etag: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        let mut state = lock(&self.state);
        let current_etag = state
            .ca_certificates
            .get(&certificate.name)
            .map(|stored| stored.etag.as_str());
        if current_etag != expected_etag {
            return ready(Ok(false));
        }
        state
            .ca_certificates
            .insert(certificate.name.clone(), certificate.clone());
        ready(Ok(true))
    }

    fn delete_ca_certificate<'a>(
        &'a self,
        name: &'a CertificateName,
        expected_etag: &'a str,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        let mut state = lock(&self.state);
        let matches = state
            .ca_certificates
            .get(name)
            .is_some_and(|stored| stored.etag == expected_etag);
        if matches {
            state.ca_certificates.remove(name);
        }
        ready(Ok(matches))
    }
}
