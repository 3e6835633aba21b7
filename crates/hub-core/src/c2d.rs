//! Cloud-to-device queues: per-device FIFO with IoT Hub's limits (depth 50, TTL 1 h by default,
//! maximum delivery count 10, 64 KB bodies), delivered to connected devices at QoS 1 and
//! completed by the device's PUBACK. Queues live in the store and survive restarts.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use iothub_types::{DeviceId, Identity, Message};

use crate::connections::C2dDelivery;
use crate::error::HubError;
use crate::hub::{Hub, lock};
use crate::registry::not_found;
use crate::storage::QueuedC2dMessage;

/// A message accepted into a device's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C2dAccepted {
    /// The message id (the sender's, or a generated UUID).
    pub message_id: String,
    /// The hub's sequence number for the message.
    pub sequence: i64,
    /// When it expires.
    pub expiry_time: DateTime<Utc>,
}

/// Result of purging a device's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct C2dPurged {
    /// How many messages were removed.
    pub total_messages_purged: u64,
}

impl Hub {
    /// Queues a cloud-to-device message for a device and delivers it right away when the device
    /// is connected. `time_to_live` defaults to one hour and is capped at two days.
    ///
    /// The hub sets `to` to `/devices/{id}/messages/deviceBound` and generates a message id
    /// when there is none. Errors: unknown device (404), body over 64 KB (413), queue full (403).
    pub async fn send_c2d(
        &self,
        device_id: &DeviceId,
        mut message: Message,
        time_to_live: Option<Duration>,
    ) -> Result<C2dAccepted, HubError> {
        if message.body.len() > self.limits.c2d_max_body_bytes {
            return Err(HubError::TooLarge {
                what: "cloud-to-device message body",
                size: message.body.len(),
                limit: self.limits.c2d_max_body_bytes,
            });
        }
        let time_to_live = time_to_live.unwrap_or(self.limits.c2d_default_time_to_live);
        if time_to_live.is_zero() || time_to_live > self.limits.c2d_max_time_to_live {
            return Err(HubError::InvalidArgument(format!(
                "time to live must be between 1 second and {} seconds",
                self.limits.c2d_max_time_to_live.as_secs()
            )));
        }
        if let Some(message_id) = &message.system.message_id {
            iothub_types::validate_message_id(message_id).map_err(|error| {
                HubError::InvalidArgument(format!("invalid message id: {error}"))
            })?;
        }
        let identity = Identity::device(device_id.clone());
        if self.store.get_identity(device_id, None).await?.is_none() {
            return Err(not_found(&identity));
        }
        let message_id = message
            .system
            .message_id
            .get_or_insert_with(|| uuid::Uuid::new_v4().to_string())
            .clone();
        message.system.to = Some(format!("/devices/{device_id}/messages/deviceBound"));
        let now = self.clock.now();
        let expiry_time = now
            + chrono::Duration::from_std(time_to_live)
                .map_err(|error| HubError::InvalidArgument(error.to_string()))?;
        message.system.expiry_time_utc.get_or_insert_with(|| {
            expiry_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        });
        let queued = QueuedC2dMessage {
            sequence: 0,
            device_id: device_id.clone(),
            message,
            enqueued_time: now,
            expiry_time,
            delivery_count: 0,
        };
        let Some(sequence) = self
            .store
            .c2d_enqueue(&queued, self.limits.c2d_max_queue_depth, now)
            .await?
        else {
            return Err(HubError::QueueFull {
                device_id: device_id.to_string(),
                limit: self.limits.c2d_max_queue_depth,
            });
        };
        self.deliver_c2d(device_id).await;
        Ok(C2dAccepted {
            message_id,
            sequence,
            expiry_time,
        })
    }

    /// The device acknowledged (PUBACK) a delivered message: it leaves the queue, and the next
    /// queued messages go out (a connection's outbound queue may have refused them before).
    pub async fn complete_c2d(
        &self,
        device_id: &DeviceId,
        sequence: i64,
    ) -> Result<bool, HubError> {
        let removed = self.store.c2d_remove(device_id, sequence).await?;
        if let Some(in_flight) = lock(&self.c2d_in_flight).get_mut(device_id) {
            in_flight.remove(&sequence);
        }
        self.deliver_c2d(device_id).await;
        Ok(removed)
    }

    /// Makes the listed deliveries of a device deliverable again (a connection ended before
    /// their acknowledgement).
    pub fn release_c2d_deliveries(&self, device_id: &DeviceId, sequences: &[i64]) {
        if let Some(in_flight) = lock(&self.c2d_in_flight).get_mut(device_id) {
            for sequence in sequences {
                in_flight.remove(sequence);
            }
        }
    }

    /// Makes every message handed out to `device_id` and not completed deliverable again, e.g.
    /// when the session that held them ends. The next delivery pass sends them again.
    pub fn release_c2d_in_flight(&self, device_id: &DeviceId) {
        lock(&self.c2d_in_flight).remove(device_id);
    }

    /// `DELETE /devices/{id}/commands`: drops every queued message of the device.
    pub async fn purge_c2d(&self, device_id: &DeviceId) -> Result<C2dPurged, HubError> {
        if self.store.get_identity(device_id, None).await?.is_none() {
            return Err(not_found(&Identity::device(device_id.clone())));
        }
        let total_messages_purged = self.store.c2d_purge(device_id).await?;
        lock(&self.c2d_in_flight).remove(device_id);
        Ok(C2dPurged {
            total_messages_purged,
        })
    }

    /// The messages currently queued for a device, in order (expired ones included until swept).
    pub async fn queued_c2d(
        &self,
        device_id: &DeviceId,
    ) -> Result<Vec<QueuedC2dMessage>, HubError> {
        self.store
            .c2d_list(
                device_id,
                self.limits.c2d_max_queue_depth.saturating_mul(2).max(1),
            )
            .await
    }

    /// Hands every deliverable queued message to the device, if it can take messages now.
    /// Expired messages and messages that reached the maximum delivery count are removed.
    pub async fn deliver_c2d(&self, device_id: &DeviceId) {
        if let Err(error) = self.try_deliver_c2d(device_id).await {
            tracing::warn!(%error, device = %device_id, "cloud-to-device delivery pass failed");
        }
    }

    async fn try_deliver_c2d(&self, device_id: &DeviceId) -> Result<(), HubError> {
        let Some(connections) = self.connections().cloned() else {
            return Ok(());
        };
        if !connections.accepts_c2d(device_id) {
            return Ok(());
        }
        let device_lock = {
            let mut locks = lock(&self.c2d_delivery_locks);
            Arc::clone(locks.entry(device_id.clone()).or_default())
        };
        let _delivery_pass = device_lock.lock().await;
        let now = self.clock.now();
        let queued = self
            .store
            .c2d_list(
                device_id,
                self.limits.c2d_max_queue_depth.saturating_mul(2).max(1),
            )
            .await?;
        for message in queued {
            let already_in_flight = lock(&self.c2d_in_flight)
                .get(device_id)
                .is_some_and(|in_flight| in_flight.contains(&message.sequence));
            if already_in_flight {
                continue;
            }
            if message.expiry_time <= now {
                tracing::debug!(device = %device_id, sequence = message.sequence, "cloud-to-device message expired");
                self.store.c2d_remove(device_id, message.sequence).await?;
                continue;
            }
            if message.delivery_count >= self.limits.c2d_max_delivery_count {
                tracing::debug!(device = %device_id, sequence = message.sequence, "cloud-to-device message dead-lettered");
                self.store.c2d_remove(device_id, message.sequence).await?;
                continue;
            }
            if !connections.accepts_c2d(device_id) {
                break;
            }
            let delivery_count = message.delivery_count + 1;
            if !self
                .store
                .c2d_set_delivery_count(device_id, message.sequence, delivery_count)
                .await?
            {
                continue;
            }
            lock(&self.c2d_in_flight)
                .entry(device_id.clone())
                .or_default()
                .insert(message.sequence);
            let delivery = C2dDelivery {
                device_id: device_id.clone(),
                sequence: message.sequence,
                message: message.message,
                delivery_count,
            };
            if !connections.send_c2d(delivery).await {
                if let Some(in_flight) = lock(&self.c2d_in_flight).get_mut(device_id) {
                    in_flight.remove(&message.sequence);
                }
                break;
            }
        }
        Ok(())
    }
}
