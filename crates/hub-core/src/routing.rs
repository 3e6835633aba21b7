//! Message routing on the hub: device telemetry, twin change notifications and device lifecycle
//! notifications go through the `hub-routing` [`Router`], whose built-in `events` endpoint is
//! the hub's telemetry log.
//!
//! - **Telemetry**: [`Hub::ingest_telemetry`](crate::Hub::ingest_telemetry) dispatches with
//!   source `DeviceMessages`; the dispatch returns once the `events` append (if the message is
//!   routed there) is durable, so the device is acknowledged only then. With no routing
//!   configuration the fallback route sends everything to `events`, as before routing existed.
//! - **`$twin`**: the sender's device twin (`{"deviceId","version","tags","properties":{"desired",
//!   "reported"}}`, the device's even for a module sender, as IoT Hub routes see device twins
//!   only). It is read from the store only when a condition of the message's source mentions
//!   `$twin`, so the telemetry hot path does no twin read by default.
//! - **Twin change events** (`TwinChangeEvents`): after every service write of tags or desired
//!   properties and every reported patch, with IoT Hub's body and properties
//!   (`opType` `updateTwin` or `replaceTwin`).
//! - **Lifecycle events** (`DeviceLifecycleEvents`): after a device or module is created
//!   (`createDeviceIdentity`) or deleted (`deleteDeviceIdentity`); the body is the twin.
//!
//! Notifications are built only when some enabled route takes their source, and their delivery
//! is best effort: the write they describe is already committed, so a failed `events` append is
//! logged, not returned.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use hub_routing::{
    DispatchError, EventsAppendError, EventsEndpoint, LifecycleOperation, NotificationContext,
    RoutedMessage, Router, RouterOptions, RoutingSource, TwinChangeOperation,
    device_lifecycle_event, twin_change_event,
};
use iothub_types::{DeviceId, Identity, Message};
use serde_json::{Map, Value};
use twin::{Twin, TwinChange};

use crate::clock::Clock;
use crate::error::HubError;
use crate::hub::Hub;
use crate::registry::IdentityView;
use crate::telemetry::TelemetryLog;

/// The directory of the routing configuration inside the data directory.
pub const ROUTING_DIRECTORY: &str = "routing";
/// The directory of file endpoints inside [`ROUTING_DIRECTORY`].
pub const ROUTING_FILES_DIRECTORY: &str = "files";

/// Where a hub keeps its routing configuration (`routing.json`) and file endpoints.
pub(crate) fn router_options(routing_directory: &Path) -> RouterOptions {
    RouterOptions::new(
        routing_directory.to_path_buf(),
        routing_directory.join(ROUTING_FILES_DIRECTORY),
    )
}

/// The default routing directory of a hub whose data lives in `data_dir`.
pub(crate) fn default_routing_directory(data_dir: &Path) -> PathBuf {
    data_dir.join(ROUTING_DIRECTORY)
}

/// Encodes a routed message as a telemetry log record ([`crate::telemetry::record`]). The
/// sender comes from the message's `connection_device_id` and `connection_module_id`, which the
/// hub stamps on everything it routes.
pub(crate) fn encode_event(message: &Message) -> Result<Vec<u8>, HubError> {
    crate::telemetry::record::encode(message).map_err(HubError::storage)
}

/// The built-in `events` endpoint: the hub's durable telemetry log.
pub(crate) struct TelemetryEvents {
    pub(crate) telemetry: Arc<dyn TelemetryLog>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl EventsEndpoint for TelemetryEvents {
    fn append<'a>(
        &'a self,
        routed: &'a RoutedMessage,
    ) -> hub_routing::BoxFuture<'a, Result<u64, EventsAppendError>> {
        Box::pin(async move {
            let payload = encode_event(&routed.message)?;
            // The record's timestamp is the enqueued time the hub stamped, to the millisecond.
            let enqueued_ms = routed
                .message
                .system
                .enqueued_time
                .as_deref()
                .and_then(crate::telemetry::enqueued_time::parse_millis)
                .unwrap_or_else(|| self.clock.now().timestamp_millis());
            let timestamp_ms = u64::try_from(enqueued_ms).unwrap_or(0);
            let offset = self
                .telemetry
                .append(Bytes::from(payload), timestamp_ms)
                .await?;
            Ok(offset)
        })
    }
}

/// Maps a dispatch failure back to the hub error the telemetry log reported.
pub(crate) fn dispatch_error(error: DispatchError) -> HubError {
    match error {
        DispatchError::Events(error) => match error.downcast::<HubError>() {
            Ok(error) => *error,
            Err(error) => HubError::storage(error),
        },
        DispatchError::ShutDown => HubError::Throttled("the hub is shutting down".to_owned()),
    }
}

/// What `$twin` reads: the routing-relevant part of a twin.
pub(crate) fn routing_twin_json(device_id: &DeviceId, twin: &Twin) -> Value {
    let mut document = Map::new();
    document.insert("deviceId".to_owned(), Value::String(device_id.to_string()));
    document.insert("version".to_owned(), Value::from(twin.version()));
    document.insert("tags".to_owned(), Value::Object(twin.tags().clone()));
    document.insert("properties".to_owned(), twin.properties_json());
    Value::Object(document)
}

fn twin_change_operation(change: &TwinChange) -> TwinChangeOperation {
    if change.op_type() == "replaceTwin" {
        TwinChangeOperation::ReplaceTwin
    } else {
        TwinChangeOperation::UpdateTwin
    }
}

impl Hub {
    /// The message router: its configuration ([`Router::document`], [`Router::apply`]), route
    /// tests ([`Router::explain`]) and counters ([`Router::stats`]).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The hub name notifications carry: the host name's first label (the whole name for an
    /// IP address), as IoT Hub names itself after the first label of `*.azure-devices.net`.
    pub fn hub_name(&self) -> &str {
        let host = self.host_name.as_str();
        let host = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) => name,
            _ => host,
        };
        if host.parse::<std::net::IpAddr>().is_ok() {
            return host;
        }
        host.split('.').next().unwrap_or(host)
    }

    /// The twin `$twin` conditions see for messages of `device_id` (see the module docs);
    /// `None` when the device does not exist or the store fails (conditions then see
    /// `undefined`).
    pub async fn routing_twin(&self, device_id: &DeviceId) -> Option<Value> {
        match self.store.get_identity(device_id, None).await {
            Ok(Some(stored)) => Some(routing_twin_json(device_id, &stored.twin)),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(%error, device = %device_id, "cannot read the twin for routing");
                None
            }
        }
    }

    /// `$twin` for a notification about `identity`, whose twin after the operation is `twin`.
    async fn notification_twin(&self, identity: &Identity, twin: &Twin) -> Option<Value> {
        match identity.module {
            None => Some(routing_twin_json(&identity.device, twin)),
            Some(_) => self.routing_twin(&identity.device).await,
        }
    }

    /// Routes a notification; failures are logged (the operation it describes is committed).
    async fn dispatch_notification(
        &self,
        source: RoutingSource,
        message: Message,
        identity: &Identity,
        twin: &Twin,
    ) {
        let result = self
            .router
            .dispatch_loading_twin(source, message, || self.notification_twin(identity, twin))
            .await;
        if let Err(error) = result {
            tracing::warn!(%error, identity = %identity, source = source.as_str(), "notification not routed");
        }
    }

    /// Produces and routes the twin change event of a committed twin write.
    pub(crate) async fn emit_twin_change(
        &self,
        identity: &Identity,
        change: &TwinChange,
        twin: &Twin,
    ) {
        if change.tags.is_none() && change.desired.is_none() && change.reported.is_none() {
            return;
        }
        if !self.router.may_route(RoutingSource::TwinChangeEvents) {
            return;
        }
        let module_id = identity.module.as_ref().map(ToString::to_string);
        let body = change.change_event_body(identity.device.as_str(), module_id.as_deref());
        let context = NotificationContext {
            hub_name: self.hub_name(),
            device_id: &identity.device,
            module_id: identity.module.as_ref(),
            operation_time: self.clock.now(),
        };
        let message = twin_change_event(&context, twin_change_operation(change), &body);
        self.dispatch_notification(RoutingSource::TwinChangeEvents, message, identity, twin)
            .await;
    }

    /// Whether lifecycle notifications would go anywhere now.
    pub(crate) fn lifecycle_routed(&self) -> bool {
        self.router.may_route(RoutingSource::DeviceLifecycleEvents)
    }

    /// Produces and routes the lifecycle event of a created or deleted identity.
    pub(crate) async fn emit_lifecycle(&self, view: &IdentityView, operation: LifecycleOperation) {
        if !self.lifecycle_routed() {
            return;
        }
        let identity = view.record.identity();
        let context = NotificationContext {
            hub_name: self.hub_name(),
            device_id: &identity.device,
            module_id: identity.module.as_ref(),
            operation_time: self.clock.now(),
        };
        let message = device_lifecycle_event(&context, operation, &view.service_twin_json());
        self.dispatch_notification(
            RoutingSource::DeviceLifecycleEvents,
            message,
            &identity,
            &view.twin,
        )
        .await;
    }
}
