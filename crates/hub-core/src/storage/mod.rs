//! The narrow storage seam of the hub: registry identities with their twins, shared access policies,
//! cloud-to-device queues and uploaded CA certificates. [`SqliteStore`] is the single-node
//! implementation; a later PostgreSQL implementation plugs in behind the same [`HubStore`] trait.
//!
//! Every write that must not race is a single conditional statement (compare the etag or version
//! in the `WHERE` clause), so implementations need no long-lived transactions and the SQL stays portable.

mod memory;
mod sqlite;

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use iothub_types::{DeviceId, Message, ModuleId};
use twin::Twin;

use crate::certificates::{CaCertificate, CertificateName};
use crate::error::HubError;
use crate::model::{IdentityRecord, SharedAccessPolicy};

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

/// A boxed, sendable future, so that [`HubStore`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An identity with its twin, as stored together.
#[derive(Debug, Clone)]
pub struct StoredIdentity {
    /// The registry record.
    pub record: IdentityRecord,
    /// The twin.
    pub twin: Twin,
}

/// Which identities a listing covers.
#[derive(Debug, Clone, Copy)]
pub enum IdentityScope<'a> {
    /// Every device (no modules).
    Devices,
    /// The modules of one device.
    ModulesOf(&'a DeviceId),
    /// Every module of every device.
    AllModules,
}

/// The sort key of an identity in listings: device id, then module id (empty for devices).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IdentityKey {
    /// The device id.
    pub device_id: String,
    /// The module id, empty for a device.
    pub module_id: String,
}

/// Device counts for `GET /statistics/devices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceCounts {
    /// Every device.
    pub total: u64,
    /// Enabled devices.
    pub enabled: u64,
    /// Disabled devices.
    pub disabled: u64,
}

/// A queued cloud-to-device message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedC2dMessage {
    /// The queue position, assigned by the store; increasing per hub.
    pub sequence: i64,
    /// The target device.
    pub device_id: DeviceId,
    /// The message (body, system and application properties). `message_id` is always set.
    pub message: Message,
    /// When it was accepted.
    pub enqueued_time: DateTime<Utc>,
    /// When it expires unless delivered and completed.
    pub expiry_time: DateTime<Utc>,
    /// How many times it has been handed to the device.
    pub delivery_count: u32,
}

/// Storage for the hub's registry, twins, policies and cloud-to-device queues.
pub trait HubStore: Send + Sync + 'static {
    /// Reads one device (`module_id` `None`) or module with its twin.
    fn get_identity<'a>(
        &'a self,
        device_id: &'a DeviceId,
        module_id: Option<&'a ModuleId>,
    ) -> BoxFuture<'a, Result<Option<StoredIdentity>, HubError>>;

    /// Inserts a new identity and its twin. Returns `false` when the identity exists already.
    fn insert_identity<'a>(
        &'a self,
        identity: &'a StoredIdentity,
    ) -> BoxFuture<'a, Result<bool, HubError>>;

    /// Replaces an identity record when its stored etag is `expected_etag`. Returns `false` when
    /// the identity is gone or its etag changed meanwhile.
    fn update_identity<'a>(
        &'a self,
        record: &'a IdentityRecord,
        expected_etag: &'a str,
    ) -> BoxFuture<'a, Result<bool, HubError>>;

    /// Replaces the twin of an identity when its stored twin version is `expected_version`.
    /// Returns `false` when the identity is gone or the twin changed meanwhile.
    fn update_twin<'a>(
        &'a self,
        device_id: &'a DeviceId,
        module_id: Option<&'a ModuleId>,
        twin: &'a Twin,
        expected_version: u64,
    ) -> BoxFuture<'a, Result<bool, HubError>>;

    /// Deletes a device together with its modules and queued messages, or one module. Returns
    /// `false` when it did not exist.
    fn delete_identity<'a>(
        &'a self,
        device_id: &'a DeviceId,
        module_id: Option<&'a ModuleId>,
    ) -> BoxFuture<'a, Result<bool, HubError>>;

    /// Lists identities in `scope` sorted by [`IdentityKey`], strictly after `after`, at most `limit`.
    fn list_identities<'a>(
        &'a self,
        scope: IdentityScope<'a>,
        after: Option<&'a IdentityKey>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredIdentity>, HubError>>;

    /// Counts devices by status.
    fn count_devices(&self) -> BoxFuture<'_, Result<DeviceCounts, HubError>>;

    /// Every shared access policy.
    fn list_policies(&self) -> BoxFuture<'_, Result<Vec<SharedAccessPolicy>, HubError>>;

    /// Inserts a policy. Returns `false` when a policy with that name exists.
    fn insert_policy<'a>(
        &'a self,
        policy: &'a SharedAccessPolicy,
    ) -> BoxFuture<'a, Result<bool, HubError>>;

    /// Appends a message to a device's queue unless the queue already holds `max_depth`
    /// unexpired messages (expired ones, relative to `now`, do not count). Returns the sequence
    /// number, or `None` when the queue is full.
    fn c2d_enqueue<'a>(
        &'a self,
        message: &'a QueuedC2dMessage,
        max_depth: usize,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<i64>, HubError>>;

    /// The queued messages of a device in order, at most `limit`.
    fn c2d_list<'a>(
        &'a self,
        device_id: &'a DeviceId,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<QueuedC2dMessage>, HubError>>;

    /// Records that a message was handed to its device once more. Returns `false` when it is gone.
    fn c2d_set_delivery_count<'a>(
        &'a self,
        device_id: &'a DeviceId,
        sequence: i64,
        delivery_count: u32,
    ) -> BoxFuture<'a, Result<bool, HubError>>;

    /// Removes one message (completed, expired or dead-lettered). Returns `false` when it was gone.
    fn c2d_remove<'a>(
        &'a self,
        device_id: &'a DeviceId,
        sequence: i64,
    ) -> BoxFuture<'a, Result<bool, HubError>>;

    /// Removes every message of a device, returning how many there were.
    fn c2d_purge<'a>(&'a self, device_id: &'a DeviceId) -> BoxFuture<'a, Result<u64, HubError>>;

    /// How many messages a device has queued, expired ones included until they are swept.
    fn c2d_count<'a>(&'a self, device_id: &'a DeviceId) -> BoxFuture<'a, Result<u64, HubError>>;

    /// Every uploaded CA certificate, sorted by name.
    fn list_ca_certificates(&self) -> BoxFuture<'_, Result<Vec<CaCertificate>, HubError>>;

    /// One uploaded CA certificate.
    fn get_ca_certificate<'a>(
        &'a self,
        name: &'a CertificateName,
    ) -> BoxFuture<'a, Result<Option<CaCertificate>, HubError>>;

    /// Stores a CA certificate: with `expected_etag` `None` only when the name is free, otherwise
    /// only when the stored etag is `expected_etag`. Returns `false` when the condition failed.
    fn put_ca_certificate<'a>(
        &'a self,
        certificate: &'a CaCertificate,
        expected_etag: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, HubError>>;

    /// Deletes a CA certificate when its stored etag is `expected_etag`. Returns `false` when it
    /// is gone or its etag changed meanwhile.
    fn delete_ca_certificate<'a>(
        &'a self,
        name: &'a CertificateName,
        expected_etag: &'a str,
    ) -> BoxFuture<'a, Result<bool, HubError>>;
}
