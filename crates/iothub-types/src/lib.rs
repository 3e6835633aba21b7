//! IoT Hub domain vocabulary: validated identifiers and the message model (pure, no I/O).
//!
//! This crate owns the types every other Outpost layer shares when it talks about "who" and "what":
//! [`DeviceId`], [`ModuleId`] and [`Identity`] name a connected client, and [`Message`] with its
//! [`SystemProperties`] is the one in-memory shape of a telemetry, cloud-to-device or module message.
//! Identifiers are validated with the IoT Hub character and length rules when they are built, so code
//! holding a `DeviceId` never has to check it again. Nothing here knows about MQTT topics, JSON wire
//! documents or storage; those live in the crates that speak them.

#![forbid(unsafe_code)]

mod identifiers;
mod message;

pub use identifiers::{DeviceId, IdError, IdKind, Identity, IdentityParseError, ModuleId};
pub use message::{
    AckMode, AckModeParseError, MAX_DEVICE_TO_CLOUD_MESSAGE_SIZE, MAX_MESSAGE_ID_LENGTH, Message,
    MessageError, MessageIdError, SystemProperties, SystemProperty, validate_message_id,
};
