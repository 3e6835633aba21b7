//! Twin change and device lifecycle notifications, built as IoT Hub builds them.
//!
//! IoT Hub emits these as messages with a JSON body and a fixed set of properties; routes read
//! them through the `TwinChangeEvents` and `DeviceLifecycleEvents` sources. System properties
//! (the `$`-prefixed names of the Azure documentation) are `content-type`, `content-encoding`,
//! `iothub-message-source`, `iothub-enqueuedtime` and the connection device and module ids;
//! `hubName`, `deviceId`, `moduleId`, `operationTimestamp`, `iothub-message-schema` and `opType`
//! are application properties.

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use iothub_types::{DeviceId, Message, ModuleId, SystemProperties};
use serde_json::{Map, Value};

/// The `iothub-message-source` of twin change notifications.
pub const TWIN_CHANGE_MESSAGE_SOURCE: &str = "twinChangeEvents";
/// The `iothub-message-source` of device lifecycle notifications.
pub const LIFECYCLE_MESSAGE_SOURCE: &str = "deviceLifecycleEvents";
/// The `iothub-message-schema` of twin change notifications.
pub const TWIN_CHANGE_SCHEMA: &str = "twinChangeNotification";
/// The `iothub-message-schema` of device lifecycle notifications.
pub const LIFECYCLE_SCHEMA: &str = "deviceLifecycleNotification";

/// Who and when a notification is about.
#[derive(Debug, Clone, Copy)]
pub struct NotificationContext<'a> {
    /// The hub's name, e.g. `outpost` (IoT Hub uses the host name's first label).
    pub hub_name: &'a str,
    pub device_id: &'a DeviceId,
    /// Set for module twins and module identities.
    pub module_id: Option<&'a ModuleId>,
    /// When the operation happened; also used as the enqueued time.
    pub operation_time: DateTime<Utc>,
}

/// The `opType` of a twin change notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwinChangeOperation {
    /// The whole twin (tags and desired properties) was replaced.
    ReplaceTwin,
    /// The twin was patched (service tags/desired patch or a device reported patch).
    UpdateTwin,
}

impl TwinChangeOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            TwinChangeOperation::ReplaceTwin => "replaceTwin",
            TwinChangeOperation::UpdateTwin => "updateTwin",
        }
    }
}

/// The `opType` of a device lifecycle notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleOperation {
    CreateDeviceIdentity,
    DeleteDeviceIdentity,
}

impl LifecycleOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleOperation::CreateDeviceIdentity => "createDeviceIdentity",
            LifecycleOperation::DeleteDeviceIdentity => "deleteDeviceIdentity",
        }
    }
}

/// The body of a twin change notification: `{"version": v, "tags": .., "properties":
/// {"desired": .., "reported": ..}}` with only the parts that changed. The desired and reported
/// parts are the changed properties with their `$metadata` and `$version`, as the caller
/// gives them.
pub fn twin_change_body(
    twin_version: u64,
    tags: Option<&Value>,
    desired: Option<&Value>,
    reported: Option<&Value>,
) -> Value {
    let mut body = Map::new();
    body.insert("version".to_owned(), Value::from(twin_version));
    if let Some(tags) = tags {
        body.insert("tags".to_owned(), tags.clone());
    }
    let mut properties = Map::new();
    if let Some(desired) = desired {
        properties.insert("desired".to_owned(), desired.clone());
    }
    if let Some(reported) = reported {
        properties.insert("reported".to_owned(), reported.clone());
    }
    if !properties.is_empty() {
        body.insert("properties".to_owned(), Value::Object(properties));
    }
    Value::Object(body)
}

/// A twin change notification whose body is `diff` (see [`twin_change_body`]).
pub fn twin_change_event(
    context: &NotificationContext<'_>,
    operation: TwinChangeOperation,
    diff: &Value,
) -> Message {
    notification(
        context,
        TWIN_CHANGE_MESSAGE_SOURCE,
        TWIN_CHANGE_SCHEMA,
        operation.as_str(),
        diff,
    )
}

/// A device lifecycle notification whose body is the device (or module) twin.
pub fn device_lifecycle_event(
    context: &NotificationContext<'_>,
    operation: LifecycleOperation,
    twin: &Value,
) -> Message {
    notification(
        context,
        LIFECYCLE_MESSAGE_SOURCE,
        LIFECYCLE_SCHEMA,
        operation.as_str(),
        twin,
    )
}

fn notification(
    context: &NotificationContext<'_>,
    message_source: &str,
    schema: &str,
    operation: &str,
    body: &Value,
) -> Message {
    let timestamp = context
        .operation_time
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let system = SystemProperties {
        content_type: Some("application/json".to_owned()),
        content_encoding: Some("utf-8".to_owned()),
        message_source: Some(message_source.to_owned()),
        connection_device_id: Some(context.device_id.to_string()),
        connection_module_id: context.module_id.map(ToString::to_string),
        enqueued_time: Some(timestamp.clone()),
        ..SystemProperties::default()
    };
    let mut application = Vec::with_capacity(6);
    application.push(("hubName".to_owned(), Some(context.hub_name.to_owned())));
    application.push(("deviceId".to_owned(), Some(context.device_id.to_string())));
    if let Some(module_id) = context.module_id {
        application.push(("moduleId".to_owned(), Some(module_id.to_string())));
    }
    application.push(("operationTimestamp".to_owned(), Some(timestamp)));
    application.push(("iothub-message-schema".to_owned(), Some(schema.to_owned())));
    application.push(("opType".to_owned(), Some(operation.to_owned())));
    Message {
        body: Bytes::from(body.to_string()),
        system,
        application,
    }
}
