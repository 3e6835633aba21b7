//! IoT Hub MQTT topics: parse and format every topic the SDKs use, as typed values (pure, no I/O).
//!
//! This crate owns the topic grammar of the IoT Hub MQTT surface in both directions:
//! [`ClientPublish`] is every topic a device or module publishes (telemetry with its percent-encoded
//! property bag, twin GET, reported-property PATCH, method responses), [`ClientSubscription`] is every
//! filter the SDKs subscribe to, and [`HubPublish`] is every topic the hub sends (twin responses,
//! desired-property notifications, method requests, cloud-to-device messages, module inputs). Each type
//! parses from and formats to the exact wire text, and [`MessageProperties`] maps the `$.xx` bag keys to
//! [`iothub_types::SystemProperties`]. Authorization against the connected [`iothub_types::Identity`] is
//! decided here too, so the MQTT front end never compares topic strings itself. Unknown or foreign topics
//! are typed errors; nothing here panics on client input.
//!
//! Request ids (`$rid`) are kept and written raw, never percent-coded, so a response echoes exactly what
//! the client sent; they must therefore not contain `&`, `/` or `?` (the SDKs use UUIDs or integers).

#![forbid(unsafe_code)]

mod bag;
mod client;
mod error;
mod hub;
mod query;
mod subscription;

pub use bag::{BagDirection, MessageProperties};
pub use client::ClientPublish;
pub use error::{AuthorizationError, ParseForError, TopicError};
pub use hub::HubPublish;
pub use subscription::ClientSubscription;

#[cfg(test)]
mod tests;
