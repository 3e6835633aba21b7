//! The percent-encoded `k=v&k=v` property bag at the end of telemetry, C2D and module input topics.

use bytes::Bytes;
use iothub_types::{Message, SystemProperties, SystemProperty};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::error::TopicError;

/// The SDKs encode with Python's `quote(s, safe='')`: everything except ASCII alphanumerics and `- . _ ~`
/// is escaped, so `/ & = % $ # +`, spaces and non-ASCII all come out as `%XX`.
const BAG_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Which way a bag travels, which decides whether `iothub-ack` is a system property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BagDirection {
    /// Telemetry and module outputs, device or module to hub. `iothub-ack` is an ordinary application
    /// property here, because only the service side may request feedback.
    DeviceToCloud,
    /// Cloud-to-device messages and module inputs, hub to client. `iothub-ack` carries the ack request.
    CloudToDevice,
}

impl BagDirection {
    /// The system property a decoded bag key stands for in this direction, if any.
    fn system_property_for_key(self, key: &str) -> Option<SystemProperty> {
        let property = SystemProperty::from_mqtt_bag_key(key)?;
        match (self, property) {
            (BagDirection::DeviceToCloud, SystemProperty::Ack) => None,
            _ => Some(property),
        }
    }
}

/// The properties carried in a topic bag: the system properties with a `$.xx` key (or `iothub-ack`
/// towards devices) and the application properties in their original order, `None` for a bare key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MessageProperties {
    pub system: SystemProperties,
    pub application: Vec<(String, Option<String>)>,
}

impl MessageProperties {
    /// Takes the properties of `message` (system properties without a bag key are dropped when formatted).
    pub fn from_message(message: &Message) -> Self {
        Self {
            system: message.system.clone(),
            application: message.application.clone(),
        }
    }

    /// Builds a message from these properties and `body`.
    pub fn into_message(self, body: impl Into<Bytes>) -> Message {
        Message {
            body: body.into(),
            system: self.system,
            application: self.application,
        }
    }

    /// Parses a raw (still percent-encoded) bag. The rule from the reference: split on `&`, then on the
    /// first `=`, percent-decode both halves without turning `+` into a space; a key without `=` has no
    /// value and `k=` has the empty value. Empty segments are skipped. A repeated system key keeps the last
    /// value; application properties keep every occurrence in order.
    pub fn parse(raw_bag: &str, direction: BagDirection) -> Result<Self, TopicError> {
        let mut properties = MessageProperties::default();
        for segment in raw_bag.split('&').filter(|segment| !segment.is_empty()) {
            let (raw_key, raw_value) = match segment.split_once('=') {
                Some((raw_key, raw_value)) => (raw_key, Some(raw_value)),
                None => (segment, None),
            };
            let key = percent_decode_utf8(raw_key, "property name")?;
            let value = raw_value
                .map(|raw_value| percent_decode_utf8(raw_value, "property value"))
                .transpose()?;
            match (direction.system_property_for_key(&key), value) {
                (Some(property), Some(value)) => {
                    properties
                        .system
                        .set(property, value)
                        .map_err(TopicError::InvalidAck)?;
                }
                // A bare system key carries no value, so there is nothing to set; keep it as an application
                // property instead of silently dropping what the client sent.
                (Some(_), None) | (None, None) => properties.application.push((key, None)),
                (None, Some(value)) => properties.application.push((key, Some(value))),
            }
        }
        Ok(properties)
    }

    /// Formats the bag: system properties with a key in this direction first, in
    /// [`SystemProperty::ALL`] order, then application properties in order; a `None` value is written
    /// as a bare key and an empty value as `key=`. Keys and values are percent-encoded with no safe
    /// characters beyond `- . _ ~`.
    pub fn format(&self, direction: BagDirection) -> String {
        let mut bag = String::new();
        let system_pairs = self.system.iter().filter_map(|(property, value)| {
            let key = property.mqtt_bag_key()?;
            direction.system_property_for_key(key)?;
            Some((key, Some(value)))
        });
        let application_pairs = self
            .application
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref()));
        for (key, value) in system_pairs.chain(application_pairs) {
            if !bag.is_empty() {
                bag.push('&');
            }
            bag.extend(utf8_percent_encode(key, BAG_ENCODE_SET));
            if let Some(value) = value {
                bag.push('=');
                bag.extend(utf8_percent_encode(value, BAG_ENCODE_SET));
            }
        }
        bag
    }
}

/// Percent-encodes a single topic segment (method name, input name) the same way bag parts are encoded.
pub(crate) fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, BAG_ENCODE_SET).to_string()
}

/// Percent-decodes `raw` (leaving `+` alone) and requires the result to be UTF-8.
pub(crate) fn percent_decode_utf8(raw: &str, what: &'static str) -> Result<String, TopicError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| TopicError::NotUtf8 {
            what,
            raw: raw.to_owned(),
        })
}
