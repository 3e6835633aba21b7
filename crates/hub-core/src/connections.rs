//! The seam between the hub and whatever holds live device connections (the MQTT front end's
//! sessions): [`DeviceConnections`] pushes hub-originated traffic to devices, and the
//! `Hub::device_*` notifications tell the hub about connects, disconnects and activity.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use iothub_types::{DeviceId, Identity, Message};

use crate::hub::{Hub, LiveConnection, lock};
use crate::storage::BoxFuture;

/// A direct method request on its way to a device or module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodRequest {
    /// The method name.
    pub method_name: String,
    /// The request id the device echoes in its response (`$rid`).
    pub request_id: String,
    /// The JSON payload bytes (`null` when the caller sent none).
    pub payload: Bytes,
}

/// A cloud-to-device message handed to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C2dDelivery {
    /// The device.
    pub device_id: DeviceId,
    /// The hub's handle on the message; pass it back to `Hub::complete_c2d` on PUBACK.
    pub sequence: i64,
    /// The message; `system.to` is `/devices/{id}/messages/deviceBound`, `message_id` is set.
    pub message: Message,
    /// The delivery count including this delivery.
    pub delivery_count: u32,
}

/// Pushes hub traffic to live connections. Implemented for the MQTT front end's sessions by
/// [`crate::FrontendConnections`] and by fakes in tests. Sends never wait for the client: they
/// resolve once the push is queued for the connection (or refused).
pub trait DeviceConnections: Send + Sync + 'static {
    /// Whether `identity` has a live connection subscribed to `$iothub/methods/POST/#`.
    fn accepts_methods(&self, identity: &Identity) -> bool;

    /// Whether the device can take cloud-to-device messages now (connected and subscribed to
    /// `devices/{id}/messages/devicebound/#`).
    fn accepts_c2d(&self, device_id: &DeviceId) -> bool;

    /// Sends a method request. Resolves to `false` when the identity cannot take it (offline, not subscribed).
    fn send_method_request<'a>(
        &'a self,
        identity: &'a Identity,
        request: MethodRequest,
    ) -> BoxFuture<'a, bool>;

    /// Sends a desired-properties patch (`$iothub/twin/PATCH/properties/desired/?$version={version}`);
    /// `body` already holds `"$version"`. Dropped when the identity is offline or not subscribed.
    fn send_desired_patch<'a>(
        &'a self,
        identity: &'a Identity,
        version: u64,
        body: Bytes,
    ) -> BoxFuture<'a, ()>;

    /// Hands a C2D message to the device at QoS 1. Resolves to `false` when it could not be queued
    /// for the connection; the hub keeps it for a later delivery pass (the next acknowledgement,
    /// send or connect).
    fn send_c2d(&self, delivery: C2dDelivery) -> BoxFuture<'_, bool>;

    /// Drops the live connection of `identity` (for a device, also those of its modules).
    fn disconnect<'a>(&'a self, identity: &'a Identity) -> BoxFuture<'a, ()>;
}

impl Hub {
    /// Records that `identity` connected (after successful authentication). Starts C2D
    /// delivery for devices and wakes method calls waiting for the device to come online.
    pub async fn device_connected(&self, identity: &Identity) {
        let now = self.clock.now();
        lock(&self.live).insert(
            identity.clone(),
            LiveConnection {
                connected_since: now,
            },
        );
        lock(&self.last_activity).insert(identity.clone(), now);
        self.presence_changed.notify_waiters();
        if identity.module.is_none() {
            self.deliver_c2d(&identity.device).await;
        }
    }

    /// Records that `identity` subscribed to something (methods, C2D). Wakes method calls waiting
    /// for a subscriber and delivers queued C2D messages.
    pub async fn device_subscribed(&self, identity: &Identity) {
        self.presence_changed.notify_waiters();
        if identity.module.is_none() {
            self.deliver_c2d(&identity.device).await;
        }
    }

    /// Records that the connection of `identity` ended. C2D messages handed out on it and not
    /// completed become deliverable again (their delivery count already counts the attempt).
    pub async fn device_disconnected(&self, identity: &Identity) {
        lock(&self.live).remove(identity);
        if identity.module.is_none() {
            lock(&self.c2d_in_flight).remove(&identity.device);
        }
        let last_activity = lock(&self.last_activity).get(identity).copied();
        if let Some(last_activity) = last_activity {
            self.persist_last_activity(identity, last_activity).await;
        }
        self.presence_changed.notify_waiters();
    }

    /// Records activity (a publish) of `identity` for `lastActivityTime`.
    pub fn device_activity(&self, identity: &Identity) {
        let now = self.clock.now();
        let mut last_activity = lock(&self.last_activity);
        // Called for every telemetry message: update in place, clone the key only the first time.
        match last_activity.get_mut(identity) {
            Some(time) => *time = now,
            None => {
                last_activity.insert(identity.clone(), now);
            }
        }
    }

    /// Whether `identity` has a live connection.
    pub fn is_connected(&self, identity: &Identity) -> bool {
        lock(&self.live).contains_key(identity)
    }

    /// Number of connected devices (module connections not counted).
    pub fn connected_device_count(&self) -> u64 {
        lock(&self.live)
            .keys()
            .filter(|identity| identity.module.is_none())
            .count() as u64
    }

    pub(crate) fn connected_since(&self, identity: &Identity) -> Option<DateTime<Utc>> {
        lock(&self.live)
            .get(identity)
            .map(|live| live.connected_since)
    }

    pub(crate) fn last_activity_of(&self, identity: &Identity) -> Option<DateTime<Utc>> {
        lock(&self.last_activity).get(identity).copied()
    }

    async fn persist_last_activity(&self, identity: &Identity, last_activity: DateTime<Utc>) {
        // Activity is best-effort metadata: a concurrent registry write wins and is not retried.
        let stored = self
            .store
            .get_identity(&identity.device, identity.module.as_ref())
            .await;
        if let Ok(Some(mut stored)) = stored {
            let expected_etag = stored.record.etag.clone();
            stored.record.last_activity_time = Some(last_activity);
            if let Err(error) = self
                .store
                .update_identity(&stored.record, &expected_etag)
                .await
            {
                tracing::warn!(%error, identity = %identity, "cannot persist last activity time");
            }
        }
    }

    /// Writes every in-memory last-activity time back to the store (on shutdown).
    pub(crate) async fn flush_last_activity(&self) {
        let snapshot: Vec<(Identity, DateTime<Utc>)> = lock(&self.last_activity)
            .iter()
            .map(|(identity, time)| (identity.clone(), *time))
            .collect();
        for (identity, time) in snapshot {
            self.persist_last_activity(&identity, time).await;
        }
    }
}
