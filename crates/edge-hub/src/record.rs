//! The stored form of a routed message: a compact, versioned binary encoding of
//! [`iothub_types::Message`] (system properties by routing name, application properties in order,
//! then the body), so the store holds each message once and reading it back needs no JSON.
//!
//! ```text
//! u8 version (1)
//! u8 system count   { u8 name length, name, u32 value length, value }*
//! u32 app count     { u32 name length, name, u8 has value, [u32 value length, value] }*
//! body (the rest)
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use iothub_types::{Message, SystemProperty};

const VERSION: u8 = 1;

/// Why a stored record cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("stored message version {0} is not known to this edge hub")]
    UnknownVersion(u8),
    #[error("stored message is truncated")]
    Truncated,
    #[error("stored message has an unknown system property {0:?}")]
    UnknownProperty(String),
    #[error("stored message has a property that is not UTF-8")]
    NotUtf8,
}

/// Encodes a message for the store.
pub fn encode(message: &Message) -> Bytes {
    let system: Vec<(SystemProperty, &str)> = message.system.iter().collect();
    let mut size = 1 + 1 + 4 + message.body.len();
    for (property, value) in &system {
        size += 1 + property.routing_name().len() + 4 + value.len();
    }
    for (name, value) in &message.application {
        size += 4 + name.len() + 1 + value.as_ref().map_or(0, |value| 4 + value.len());
    }
    let mut buffer = BytesMut::with_capacity(size);
    buffer.put_u8(VERSION);
    // At most SystemProperty::ALL.len() (23) entries, so the count fits a byte.
    buffer.put_u8(system.len() as u8);
    for (property, value) in system {
        let name = property.routing_name();
        buffer.put_u8(name.len() as u8);
        buffer.put_slice(name.as_bytes());
        put_text(&mut buffer, value);
    }
    buffer.put_u32(message.application.len() as u32);
    for (name, value) in &message.application {
        put_text(&mut buffer, name);
        match value {
            Some(value) => {
                buffer.put_u8(1);
                put_text(&mut buffer, value);
            }
            None => buffer.put_u8(0),
        }
    }
    buffer.put_slice(&message.body);
    buffer.freeze()
}

/// Decodes a message written by [`encode`]; the body shares `record`'s buffer.
pub fn decode(record: &Bytes) -> Result<Message, RecordError> {
    let mut reader = Reader {
        bytes: record,
        position: 0,
    };
    let version = reader.u8()?;
    if version != VERSION {
        return Err(RecordError::UnknownVersion(version));
    }
    let mut message = Message::default();
    let system_count = reader.u8()?;
    for _ in 0..system_count {
        let name_length = usize::from(reader.u8()?);
        let name = reader.text(name_length)?;
        let property = SystemProperty::from_routing_name(&name)
            .ok_or_else(|| RecordError::UnknownProperty(name.clone()))?;
        let value = reader.prefixed_text()?;
        message
            .system
            .set(property, value)
            .map_err(|_| RecordError::UnknownProperty(name))?;
    }
    let application_count = reader.u32()?;
    for _ in 0..application_count {
        let name = reader.prefixed_text()?;
        let value = match reader.u8()? {
            0 => None,
            _ => Some(reader.prefixed_text()?),
        };
        message.application.push((name, value));
    }
    message.body = record.slice(reader.position..);
    Ok(message)
}

fn put_text(buffer: &mut BytesMut, text: &str) {
    buffer.put_u32(text.len() as u32);
    buffer.put_slice(text.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Reader<'_> {
    fn take(&mut self, length: usize) -> Result<&[u8], RecordError> {
        let end = self
            .position
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(RecordError::Truncated)?;
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        let bytes = self.take(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn text(&mut self, length: usize) -> Result<String, RecordError> {
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::NotUtf8)
    }

    fn prefixed_text(&mut self) -> Result<String, RecordError> {
        let length = self.u32()? as usize;
        self.text(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Message {
        let mut message = Message::new(&b"{\"t\":21.5}"[..])
            .with_application_property("alert", Some("high"))
            .with_application_property("flag", None::<String>);
        message.system.content_type = Some("application/json".into());
        message.system.output_name = Some("out1".into());
        message.system.connection_device_id = Some("edge".into());
        message.system.connection_module_id = Some("sensor".into());
        message
    }

    #[test]
    fn a_message_round_trips() {
        let message = sample();
        assert_eq!(decode(&encode(&message)).unwrap(), message);
    }

    #[test]
    fn truncated_and_foreign_records_are_errors() {
        let encoded = encode(&sample());
        let body_start = encoded.len() - sample().body.len();
        for cut in 0..body_start {
            assert!(decode(&encoded.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut other_version = encoded.to_vec();
        other_version[0] = 9;
        assert_eq!(
            decode(&Bytes::from(other_version)),
            Err(RecordError::UnknownVersion(9))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&Bytes::from(bytes));
        }

        #[test]
        fn arbitrary_messages_round_trip(
            body in proptest::collection::vec(any::<u8>(), 0..64),
            application in proptest::collection::vec(("[a-z$]{1,8}", proptest::option::of("\\PC{0,8}")), 0..5),
            message_id in proptest::option::of("[a-z0-9]{1,10}"),
        ) {
            let mut message = Message::new(body);
            message.application = application;
            message.system.message_id = message_id;
            prop_assert_eq!(decode(&encode(&message)).unwrap(), message);
        }
    }
}
