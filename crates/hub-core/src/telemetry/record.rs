//! The stored form of one telemetry event: a compact, versioned binary record (pure, no I/O).
//!
//! Layout of version 1 (every length is an unsigned LEB128 varint):
//!
//! ```text
//! 0x01                                   format version
//! count                                  number of system properties that are set
//!   code len bytes                       one per property: a stable one-byte code, UTF-8 text
//! count                                  number of application properties, in their order
//!   len bytes  value                     name; value is 0 for a bare key, else len+1 then bytes
//! bytes...                               the body: the rest of the record, as received
//! ```
//!
//! The sender is not stored separately: it is the `connection_device_id` and
//! `connection_module_id` the hub stamps on everything it routes. Reading hands out the body as
//! a slice of the record (no copy).
//!
//! Records written before this format are compact JSON objects, so they begin with `{`; they are
//! still read ([`LEGACY_JSON_TAG`]). Any other first byte is an unknown version and is refused
//! with [`RecordError::UnknownVersion`], so a newer hub's log is never misread by an older one.

use base64::Engine;
use bytes::Bytes;
use iothub_types::{DeviceId, Identity, Message, ModuleId, SystemProperties, SystemProperty};
use serde::Deserialize;

/// The first byte of a version 1 record.
pub(crate) const FORMAT_VERSION: u8 = 1;
/// The first byte of a record written before the binary format (a JSON object).
pub(crate) const LEGACY_JSON_TAG: u8 = b'{';

/// Why a stored record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecordError {
    #[error("the record is empty")]
    Empty,
    #[error(
        "unknown telemetry record format version {0} (this hub reads version {FORMAT_VERSION} and legacy JSON); was the log written by a newer hub?"
    )]
    UnknownVersion(u8),
    #[error("the record ends inside its {0}")]
    Truncated(&'static str),
    #[error("the record's {0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("unknown system property code {0}")]
    UnknownSystemProperty(u8),
    #[error("invalid system property value: {0}")]
    InvalidSystemProperty(String),
    #[error("the record has no connection device id")]
    NoDevice,
    #[error("invalid sender identity: {0}")]
    InvalidIdentity(String),
    #[error("unreadable legacy JSON record: {0}")]
    LegacyJson(String),
    #[error("a routed message has no connection device id")]
    UnroutableMessage,
}

/// The stable one-byte code of each system property in version 1 records. Never renumber:
/// give new properties new codes.
fn code_of(property: SystemProperty) -> u8 {
    match property {
        SystemProperty::MessageId => 1,
        SystemProperty::CorrelationId => 2,
        SystemProperty::UserId => 3,
        SystemProperty::ContentType => 4,
        SystemProperty::ContentEncoding => 5,
        SystemProperty::ExpiryTimeUtc => 6,
        SystemProperty::To => 7,
        SystemProperty::OutputName => 8,
        SystemProperty::InputName => 9,
        SystemProperty::InterfaceId => 10,
        SystemProperty::CreationTimeUtc => 11,
        SystemProperty::ComponentName => 12,
        SystemProperty::MessageSchema => 13,
        SystemProperty::DataSchema => 14,
        SystemProperty::ConnectionDeviceId => 15,
        SystemProperty::ConnectionModuleId => 16,
        SystemProperty::ConnectionAuthGenerationId => 17,
        SystemProperty::ConnectionAuthMethod => 18,
        SystemProperty::EnqueuedTime => 19,
        SystemProperty::Ack => 20,
        SystemProperty::DiagId => 21,
        SystemProperty::DiagContext => 22,
        SystemProperty::MessageSource => 23,
    }
}

fn property_of(code: u8) -> Option<SystemProperty> {
    SystemProperty::ALL
        .into_iter()
        .find(|property| code_of(*property) == code)
}

fn put_varint(out: &mut Vec<u8>, mut value: usize) {
    while value >= 0x80 {
        // Truncation to the low seven bits is the point.
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// Encodes a routed message as a version 1 record. The sender is the message's
/// `connection_device_id` (required) and `connection_module_id`.
pub(crate) fn encode(message: &Message) -> Result<Vec<u8>, RecordError> {
    if message.system.connection_device_id.is_none() {
        return Err(RecordError::UnroutableMessage);
    }
    // Telemetry's properties are short: the body plus this headroom rarely needs a reallocation.
    let mut out = Vec::with_capacity(message.body.len() + 256);
    out.push(FORMAT_VERSION);
    // There are fewer than 128 system properties, so the count is one varint byte, patched once
    // the properties are written (one pass over them).
    let count_at = out.len();
    out.push(0);
    let mut count: u8 = 0;
    for (property, value) in message.system.iter() {
        out.push(code_of(property));
        put_text(&mut out, value);
        count += 1;
    }
    out[count_at] = count;
    put_varint(&mut out, message.application.len());
    for (name, value) in &message.application {
        put_text(&mut out, name);
        match value {
            None => out.push(0),
            Some(value) => {
                put_varint(&mut out, value.len() + 1);
                out.extend_from_slice(value.as_bytes());
            }
        }
    }
    out.extend_from_slice(&message.body);
    Ok(out)
}

/// Reads a record written by [`encode`] (or a legacy JSON record): the sender and the message.
pub(crate) fn decode(record: &Bytes) -> Result<(Identity, Message), RecordError> {
    match record.first() {
        None => Err(RecordError::Empty),
        Some(&FORMAT_VERSION) => decode_v1(record),
        Some(&LEGACY_JSON_TAG) => decode_legacy_json(record),
        Some(&other) => Err(RecordError::UnknownVersion(other)),
    }
}

/// A cursor over a version 1 record.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self, field: &'static str) -> Result<u8, RecordError> {
        let byte = *self
            .bytes
            .get(self.position)
            .ok_or(RecordError::Truncated(field))?;
        self.position += 1;
        Ok(byte)
    }

    fn varint(&mut self, field: &'static str) -> Result<usize, RecordError> {
        let mut value: usize = 0;
        for shift in (0..usize::BITS).step_by(7) {
            let byte = self.byte(field)?;
            value |= usize::from(byte & 0x7f)
                .checked_shl(shift)
                .ok_or(RecordError::Truncated(field))?;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::Truncated(field))
    }

    fn text_of_length(
        &mut self,
        length: usize,
        field: &'static str,
    ) -> Result<&'a str, RecordError> {
        let end = self
            .position
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(RecordError::Truncated(field))?;
        let text = std::str::from_utf8(&self.bytes[self.position..end])
            .map_err(|_| RecordError::NotUtf8(field))?;
        self.position = end;
        Ok(text)
    }

    fn text(&mut self, field: &'static str) -> Result<&'a str, RecordError> {
        let length = self.varint(field)?;
        self.text_of_length(length, field)
    }
}

fn decode_v1(record: &Bytes) -> Result<(Identity, Message), RecordError> {
    let mut reader = Reader {
        bytes: record,
        position: 1,
    };
    let mut system = SystemProperties::default();
    let count = reader.varint("system property count")?;
    for _ in 0..count {
        let code = reader.byte("system property code")?;
        let property = property_of(code).ok_or(RecordError::UnknownSystemProperty(code))?;
        let value = reader.text("system property value")?;
        system
            .set(property, value.to_owned())
            .map_err(|error| RecordError::InvalidSystemProperty(error.to_string()))?;
    }
    let count = reader.varint("application property count")?;
    // Each property takes at least two bytes, which bounds the allocation for a corrupt count.
    let mut application = Vec::with_capacity(count.min(record.len() / 2));
    for _ in 0..count {
        let name = reader.text("application property name")?.to_owned();
        let value = match reader.varint("application property value")? {
            0 => None,
            length => Some(
                reader
                    .text_of_length(length - 1, "application property value")?
                    .to_owned(),
            ),
        };
        application.push((name, value));
    }
    let body = record.slice(reader.position..);
    let identity = identity_of(&system)?;
    Ok((
        identity,
        Message {
            body,
            system,
            application,
        },
    ))
}

fn identity_of(system: &SystemProperties) -> Result<Identity, RecordError> {
    let device = system
        .connection_device_id
        .as_deref()
        .ok_or(RecordError::NoDevice)?;
    let device =
        DeviceId::new(device).map_err(|error| RecordError::InvalidIdentity(error.to_string()))?;
    let module = system
        .connection_module_id
        .as_deref()
        .map(ModuleId::new)
        .transpose()
        .map_err(|error| RecordError::InvalidIdentity(error.to_string()))?;
    Ok(Identity { device, module })
}

/// A record written before the binary format (compact JSON; the body in base64).
#[derive(Deserialize)]
struct LegacyJsonEvent {
    #[serde(rename = "d")]
    device_id: DeviceId,
    #[serde(rename = "m", default)]
    module_id: Option<ModuleId>,
    #[serde(rename = "s")]
    system: SystemProperties,
    #[serde(rename = "a")]
    application: Vec<(String, Option<String>)>,
    #[serde(rename = "b")]
    body: String,
}

fn decode_legacy_json(record: &[u8]) -> Result<(Identity, Message), RecordError> {
    let stored: LegacyJsonEvent = serde_json::from_slice(record)
        .map_err(|error| RecordError::LegacyJson(error.to_string()))?;
    let body = base64::engine::general_purpose::STANDARD
        .decode(stored.body)
        .map_err(|error| RecordError::LegacyJson(format!("body: {error}")))?;
    Ok((
        Identity {
            device: stored.device_id,
            module: stored.module_id,
        },
        Message {
            body: Bytes::from(body),
            system: stored.system,
            application: stored.application,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};
    use proptest::prelude::*;

    fn check(record: &[u8], expected: Expect) {
        let shown = match decode(&Bytes::copy_from_slice(record)) {
            Ok((identity, message)) => format!(
                "{identity} system={:?} application={:?} body={:?}",
                message.system.iter().collect::<Vec<_>>(),
                message.application,
                message.body
            ),
            Err(error) => format!("error: {error}"),
        };
        expected.assert_eq(&shown);
    }

    fn telemetry_message() -> Message {
        let mut message = Message::new(&b"{\"t\":21.5}"[..])
            .with_application_property("alert", Some("high"))
            .with_application_property("flag", None::<String>);
        message.system.content_type = Some("application/json".to_owned());
        message.system.connection_device_id = Some("dev1".to_owned());
        message.system.connection_module_id = Some("mod1".to_owned());
        message.system.ack = Some(iothub_types::AckMode::Full);
        message.system.enqueued_time = Some("2030-01-02T03:04:05.000Z".to_owned());
        message
    }

    #[test]
    fn layout_of_a_version_1_record() {
        let record = encode(&telemetry_message()).unwrap();
        expect![[r#"
            [1, 5, 4, 16, 97, 112, 112, 108, 105, 99, 97, 116, 105, 111, 110, 47, 106, 115, 111, 110, 15, 4, 100, 101, 118, 49, 16, 4, 109, 111, 100, 49, 19, 24, 50, 48, 51, 48, 45, 48, 49, 45, 48, 50, 84, 48, 51, 58, 48, 52, 58, 48, 53, 46, 48, 48, 48, 90, 20, 4, 102, 117, 108, 108, 2, 5, 97, 108, 101, 114, 116, 5, 104, 105, 103, 104, 4, 102, 108, 97, 103, 0, 123, 34, 116, 34, 58, 50, 49, 46, 53, 125]"#]]
        .assert_eq(&format!("{record:?}"));
        check(
            &record,
            expect![[
                r#"dev1/mod1 system=[(ContentType, "application/json"), (ConnectionDeviceId, "dev1"), (ConnectionModuleId, "mod1"), (EnqueuedTime, "2030-01-02T03:04:05.000Z"), (Ack, "full")] application=[("alert", Some("high")), ("flag", None)] body=b"{\"t\":21.5}""#
            ]],
        );
    }

    #[test]
    fn legacy_json_records_are_still_read() {
        check(
            br#"{"d":"dev1","s":{"connectionDeviceId":"dev1","enqueuedTime":"2030-01-02T03:04:05.000Z"},"a":[["k",null],["x","y"]],"b":"aGk="}"#,
            expect![[r#"dev1 system=[(ConnectionDeviceId, "dev1"), (EnqueuedTime, "2030-01-02T03:04:05.000Z")] application=[("k", None), ("x", Some("y"))] body=b"hi""#]],
        );
    }

    #[test]
    fn unreadable_records_are_refused_with_the_reason() {
        check(&[], expect!["error: the record is empty"]);
        check(
            &[2, 0, 0],
            expect![
                "error: unknown telemetry record format version 2 (this hub reads version 1 and legacy JSON); was the log written by a newer hub?"
            ],
        );
        check(
            &[1],
            expect!["error: the record ends inside its system property count"],
        );
        check(
            &[1, 1, 99, 0],
            expect!["error: unknown system property code 99"],
        );
        check(
            &[1, 1, 15, 9, b'd'],
            expect!["error: the record ends inside its system property value"],
        );
        check(
            &[1, 1, 20, 3, b'y', b'e', b's', 0],
            expect![[
                r#"error: invalid system property value: "yes" is not an ack mode (expected none, positive, negative or full)"#
            ]],
        );
        check(
            &[1, 0, 0],
            expect!["error: the record has no connection device id"],
        );
        check(
            &[1, 1, 15, 1, 0xff, 0],
            expect!["error: the record's system property value is not UTF-8"],
        );
        check(
            &[1, 1, 15, 1, b'd', 1, 1, b'k', 5, b'v'],
            expect!["error: the record ends inside its application property value"],
        );
        check(
            &[
                1, 1, 15, 1, b'd', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
            expect!["error: the record ends inside its application property count"],
        );
        check(
            br#"{"d":"dev1"}"#,
            expect!["error: unreadable legacy JSON record: missing field `s` at line 1 column 12"],
        );
    }

    #[test]
    fn every_system_property_has_its_own_code() {
        for property in SystemProperty::ALL {
            assert_eq!(property_of(code_of(property)), Some(property));
        }
    }

    #[test]
    fn a_message_without_sender_is_not_encoded() {
        assert_eq!(
            encode(&Message::new(&b"x"[..])),
            Err(RecordError::UnroutableMessage)
        );
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9-]{0,12}",
            "\\PC{0,8}",
            "[a-z]{120,200}", // lengths beyond one varint byte
        ]
    }

    fn message() -> impl Strategy<Value = Message> {
        (
            proptest::collection::vec((0..SystemProperty::ALL.len(), text()), 0..6),
            proptest::collection::vec((text(), proptest::option::of(text())), 0..5),
            proptest::collection::vec(any::<u8>(), 0..300),
            "[a-z0-9]{1,20}",
            proptest::option::of("[a-z0-9]{1,20}"),
        )
            .prop_map(|(system, application, body, device, module)| {
                let mut message = Message {
                    body: Bytes::from(body),
                    system: SystemProperties::default(),
                    application,
                };
                for (index, value) in system {
                    let property = SystemProperty::ALL[index];
                    if property != SystemProperty::Ack {
                        let _ = message.system.set(property, value);
                    }
                }
                message.system.connection_device_id = Some(device);
                message.system.connection_module_id = module;
                message
            })
    }

    proptest! {
        /// Decoding gives back exactly the message encoded, with the sender it names.
        #[test]
        fn records_round_trip(message in message()) {
            let record = Bytes::from(encode(&message).unwrap());
            let (identity, decoded) = decode(&record).unwrap();
            prop_assert_eq!(identity.device.as_str(), message.system.connection_device_id.as_deref().unwrap());
            prop_assert_eq!(identity.module.as_ref().map(ModuleId::as_str), message.system.connection_module_id.as_deref());
            prop_assert_eq!(decoded, message);
        }

        /// Any prefix of a record, and any corruption, is refused or read without panicking.
        #[test]
        fn damaged_records_never_panic(message in message(), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
            let record = encode(&message).unwrap();
            let _ = decode(&Bytes::copy_from_slice(&record[..cut.index(record.len())]));
            let mut damaged = record.clone();
            let at = flip.0.index(damaged.len());
            damaged[at] ^= flip.1;
            let _ = decode(&Bytes::from(damaged));
        }
    }
}
