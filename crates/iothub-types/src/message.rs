//! The message model: body bytes, IoT Hub system properties and ordered application properties.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::identifiers::is_identifier_character;

/// The documented device-to-cloud message limit: 256 KB counted by [`Message::iothub_size`].
pub const MAX_DEVICE_TO_CLOUD_MESSAGE_SIZE: usize = 256 * 1024;

/// The longest message id IoT Hub accepts, in characters.
pub const MAX_MESSAGE_ID_LENGTH: usize = 128;

/// Why a message id breaks the IoT Hub rule (1 to 128 characters, the same charset as device ids).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageIdError {
    #[error("message id must not be empty")]
    Empty,
    #[error("message id is {length} characters long, the maximum is 128")]
    TooLong { length: usize },
    #[error(
        "message id contains the character {character:?} at byte {position}, which IoT Hub does not allow"
    )]
    InvalidCharacter { character: char, position: usize },
}

/// Checks a message id against the IoT Hub rule: at most 128 characters from ASCII alphanumerics and
/// `- : . + % _ # * ? ! ( ) , = @ ; $ '`. IoT Hub applies it to messages it accepts for sending to devices
/// and to device-to-cloud messages; callers decide where to enforce it.
pub fn validate_message_id(message_id: &str) -> Result<(), MessageIdError> {
    if message_id.is_empty() {
        return Err(MessageIdError::Empty);
    }
    if let Some((position, character)) = message_id
        .char_indices()
        .find(|(_, character)| !is_identifier_character(*character))
    {
        return Err(MessageIdError::InvalidCharacter {
            character,
            position,
        });
    }
    if message_id.len() > MAX_MESSAGE_ID_LENGTH {
        return Err(MessageIdError::TooLong {
            length: message_id.len(),
        });
    }
    Ok(())
}

/// Why a message breaks an IoT Hub limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message is {size} bytes by IoT Hub accounting, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error(transparent)]
    InvalidMessageId(#[from] MessageIdError),
}

/// The `iothub-ack` feedback request on a cloud-to-device message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    None,
    Positive,
    Negative,
    Full,
}

/// The `iothub-ack` value is not one of `none`, `positive`, `negative`, `full`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not an ack mode (expected none, positive, negative or full)")]
pub struct AckModeParseError {
    pub value: String,
}

impl AckMode {
    /// The lower-case wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::None => "none",
            AckMode::Positive => "positive",
            AckMode::Negative => "negative",
            AckMode::Full => "full",
        }
    }
}

impl fmt::Display for AckMode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Parses an ack mode case-insensitively.
impl FromStr for AckMode {
    type Err = AckModeParseError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        [
            AckMode::None,
            AckMode::Positive,
            AckMode::Negative,
            AckMode::Full,
        ]
        .into_iter()
        .find(|mode| mode.as_str().eq_ignore_ascii_case(value))
        .ok_or_else(|| AckModeParseError {
            value: value.to_owned(),
        })
    }
}

/// Names one IoT Hub system property, with its spellings in routing queries, MQTT property bags and AMQP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SystemProperty {
    MessageId,
    CorrelationId,
    UserId,
    ContentType,
    ContentEncoding,
    ExpiryTimeUtc,
    To,
    OutputName,
    InputName,
    InterfaceId,
    CreationTimeUtc,
    ComponentName,
    MessageSchema,
    DataSchema,
    ConnectionDeviceId,
    ConnectionModuleId,
    ConnectionAuthGenerationId,
    ConnectionAuthMethod,
    EnqueuedTime,
    Ack,
    DiagId,
    DiagContext,
    MessageSource,
}

impl SystemProperty {
    /// Every system property, in the fixed order used when writing property bags.
    pub const ALL: [SystemProperty; 23] = [
        SystemProperty::MessageId,
        SystemProperty::To,
        SystemProperty::CorrelationId,
        SystemProperty::UserId,
        SystemProperty::ContentType,
        SystemProperty::ContentEncoding,
        SystemProperty::ExpiryTimeUtc,
        SystemProperty::OutputName,
        SystemProperty::InputName,
        SystemProperty::InterfaceId,
        SystemProperty::CreationTimeUtc,
        SystemProperty::ComponentName,
        SystemProperty::MessageSchema,
        SystemProperty::DataSchema,
        SystemProperty::ConnectionDeviceId,
        SystemProperty::ConnectionModuleId,
        SystemProperty::ConnectionAuthGenerationId,
        SystemProperty::ConnectionAuthMethod,
        SystemProperty::EnqueuedTime,
        SystemProperty::Ack,
        SystemProperty::DiagId,
        SystemProperty::DiagContext,
        SystemProperty::MessageSource,
    ];

    /// The spellings a routing query may use for this property, canonical name first. Lookup ignores ASCII case.
    pub fn routing_names(self) -> &'static [&'static str] {
        match self {
            SystemProperty::MessageId => &["$messageId", "$message-id"],
            SystemProperty::CorrelationId => &["$correlationId", "$correlation-id"],
            SystemProperty::UserId => &["$userId", "$user-id"],
            SystemProperty::ContentType => &["$contentType", "$content-type"],
            SystemProperty::ContentEncoding => &["$contentEncoding", "$content-encoding"],
            SystemProperty::ExpiryTimeUtc => &["$expiryTimeUtc", "$absolute-expiry-time"],
            SystemProperty::To => &["$to"],
            SystemProperty::OutputName => &["$outputName", "$iothub-outputname"],
            SystemProperty::InputName => &["$inputName", "$iothub-inputname"],
            SystemProperty::InterfaceId => &["$interfaceId", "$iothub-interface-id"],
            SystemProperty::CreationTimeUtc => &["$creationTimeUtc", "$iothub-creation-time-utc"],
            SystemProperty::ComponentName => {
                &["$dt-subject", "$componentName", "$iothub-component-name"]
            }
            SystemProperty::MessageSchema => &["$messageSchema", "$iothub-message-schema"],
            SystemProperty::DataSchema => &["$dt-dataschema"],
            SystemProperty::ConnectionDeviceId => {
                &["$connectionDeviceId", "$iothub-connection-device-id"]
            }
            SystemProperty::ConnectionModuleId => {
                &["$connectionModuleId", "$iothub-connection-module-id"]
            }
            SystemProperty::ConnectionAuthGenerationId => &[
                "$connectionDeviceGenerationId",
                "$connectionAuthGenerationId",
                "$iothub-connection-auth-generation-id",
            ],
            SystemProperty::ConnectionAuthMethod => {
                &["$connectionAuthMethod", "$iothub-connection-auth-method"]
            }
            SystemProperty::EnqueuedTime => &["$enqueuedTime", "$iothub-enqueuedtime"],
            SystemProperty::Ack => &["$ack", "$iothub-ack"],
            SystemProperty::DiagId => &["$diagId", "$diag-id"],
            SystemProperty::DiagContext => &["$diagContext", "$diag-context"],
            SystemProperty::MessageSource => &["$iothub-message-source", "$messageSource"],
        }
    }

    /// The canonical routing-query name, e.g. `$contentType`.
    pub fn routing_name(self) -> &'static str {
        self.routing_names()[0]
    }

    /// Finds a system property by any of its routing names (with the leading `$`), ignoring ASCII case.
    pub fn from_routing_name(name: &str) -> Option<SystemProperty> {
        SystemProperty::ALL.into_iter().find(|property| {
            property
                .routing_names()
                .iter()
                .any(|candidate| candidate.eq_ignore_ascii_case(name))
        })
    }

    /// The decoded key in an MQTT topic property bag, e.g. `$.mid`, or `iothub-ack` for the ack request.
    /// Properties the hub keeps to itself (enqueued time, auth method, ...) have no bag key.
    pub fn mqtt_bag_key(self) -> Option<&'static str> {
        match self {
            SystemProperty::MessageId => Some("$.mid"),
            SystemProperty::CorrelationId => Some("$.cid"),
            SystemProperty::UserId => Some("$.uid"),
            SystemProperty::ContentType => Some("$.ct"),
            SystemProperty::ContentEncoding => Some("$.ce"),
            SystemProperty::ExpiryTimeUtc => Some("$.exp"),
            SystemProperty::To => Some("$.to"),
            SystemProperty::OutputName => Some("$.on"),
            SystemProperty::InterfaceId => Some("$.ifid"),
            SystemProperty::CreationTimeUtc => Some("$.ctime"),
            SystemProperty::ComponentName => Some("$.sub"),
            SystemProperty::MessageSchema => Some("$.schema"),
            SystemProperty::ConnectionDeviceId => Some("$.cdid"),
            SystemProperty::ConnectionModuleId => Some("$.cmid"),
            SystemProperty::DiagId => Some("$.diagid"),
            SystemProperty::DiagContext => Some("$.diagctx"),
            SystemProperty::Ack => Some("iothub-ack"),
            SystemProperty::InputName
            | SystemProperty::DataSchema
            | SystemProperty::ConnectionAuthGenerationId
            | SystemProperty::ConnectionAuthMethod
            | SystemProperty::EnqueuedTime
            | SystemProperty::MessageSource => None,
        }
    }

    /// Finds a system property by its decoded MQTT bag key (case-sensitive, as the SDKs compare them).
    pub fn from_mqtt_bag_key(key: &str) -> Option<SystemProperty> {
        SystemProperty::ALL
            .into_iter()
            .find(|property| property.mqtt_bag_key() == Some(key))
    }

    /// The AMQP property or annotation name IoT Hub uses, e.g. `iothub-connection-device-id`.
    pub fn amqp_name(self) -> &'static str {
        match self {
            SystemProperty::MessageId => "message-id",
            SystemProperty::CorrelationId => "correlation-id",
            SystemProperty::UserId => "user-id",
            SystemProperty::ContentType => "content-type",
            SystemProperty::ContentEncoding => "content-encoding",
            SystemProperty::ExpiryTimeUtc => "absolute-expiry-time",
            SystemProperty::To => "to",
            SystemProperty::OutputName => "iothub-outputname",
            SystemProperty::InputName => "x-opt-input-name",
            SystemProperty::InterfaceId => "iothub-interface-id",
            SystemProperty::CreationTimeUtc => "iothub-creation-time-utc",
            SystemProperty::ComponentName => "dt-subject",
            SystemProperty::MessageSchema => "iothub-message-schema",
            SystemProperty::DataSchema => "dt-dataschema",
            SystemProperty::ConnectionDeviceId => "iothub-connection-device-id",
            SystemProperty::ConnectionModuleId => "iothub-connection-module-id",
            SystemProperty::ConnectionAuthGenerationId => "iothub-connection-auth-generation-id",
            SystemProperty::ConnectionAuthMethod => "iothub-connection-auth-method",
            SystemProperty::EnqueuedTime => "iothub-enqueuedtime",
            SystemProperty::Ack => "iothub-ack",
            SystemProperty::DiagId => "diag-id",
            SystemProperty::DiagContext => "diag-context",
            SystemProperty::MessageSource => "iothub-message-source",
        }
    }
}

impl fmt::Display for SystemProperty {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.routing_name())
    }
}

/// The IoT Hub system properties of a message. Every field is optional; values are kept exactly as
/// received (for example `expiry_time_utc` may be a naive ISO 8601 time from the Python SDK).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SystemProperties {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry_time_utc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_time_utc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_schema: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_module_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_auth_generation_id: Option<String>,
    /// JSON such as `{"scope":"device","type":"sas","issuer":"iothub"}`, kept as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_auth_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enqueued_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<AckMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diag_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diag_context: Option<String>,
    /// `iothub-message-source`, e.g. `Telemetry`, `twinChangeEvents`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_source: Option<String>,
}

impl SystemProperties {
    /// The value of one system property, if set.
    pub fn get(&self, property: SystemProperty) -> Option<&str> {
        match property {
            SystemProperty::Ack => self.ack.map(AckMode::as_str),
            other => self.text_field(other).as_deref(),
        }
    }

    /// Sets one system property from its wire text. Only [`SystemProperty::Ack`] can fail, when the text is
    /// not an ack mode.
    pub fn set(
        &mut self,
        property: SystemProperty,
        value: String,
    ) -> Result<(), AckModeParseError> {
        match property {
            SystemProperty::Ack => self.ack = Some(value.parse()?),
            other => {
                if let Some(field) = self.text_field_mut(other) {
                    *field = Some(value);
                }
            }
        }
        Ok(())
    }

    /// Clears one system property.
    pub fn clear(&mut self, property: SystemProperty) {
        match property {
            SystemProperty::Ack => self.ack = None,
            other => {
                if let Some(field) = self.text_field_mut(other) {
                    *field = None;
                }
            }
        }
    }

    /// Looks a property up by a routing-query name such as `$contentType` or `$iothub-enqueuedtime`.
    pub fn by_routing_name(&self, name: &str) -> Option<&str> {
        self.get(SystemProperty::from_routing_name(name)?)
    }

    /// Every property that is set, in [`SystemProperty::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (SystemProperty, &str)> + '_ {
        SystemProperty::ALL
            .into_iter()
            .filter_map(|property| Some((property, self.get(property)?)))
    }

    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    fn text_field(&self, property: SystemProperty) -> &Option<String> {
        match property {
            SystemProperty::MessageId => &self.message_id,
            SystemProperty::CorrelationId => &self.correlation_id,
            SystemProperty::UserId => &self.user_id,
            SystemProperty::ContentType => &self.content_type,
            SystemProperty::ContentEncoding => &self.content_encoding,
            SystemProperty::ExpiryTimeUtc => &self.expiry_time_utc,
            SystemProperty::To => &self.to,
            SystemProperty::OutputName => &self.output_name,
            SystemProperty::InputName => &self.input_name,
            SystemProperty::InterfaceId => &self.interface_id,
            SystemProperty::CreationTimeUtc => &self.creation_time_utc,
            SystemProperty::ComponentName => &self.component_name,
            SystemProperty::MessageSchema => &self.message_schema,
            SystemProperty::DataSchema => &self.data_schema,
            SystemProperty::ConnectionDeviceId => &self.connection_device_id,
            SystemProperty::ConnectionModuleId => &self.connection_module_id,
            SystemProperty::ConnectionAuthGenerationId => &self.connection_auth_generation_id,
            SystemProperty::ConnectionAuthMethod => &self.connection_auth_method,
            SystemProperty::EnqueuedTime => &self.enqueued_time,
            SystemProperty::DiagId => &self.diag_id,
            SystemProperty::DiagContext => &self.diag_context,
            SystemProperty::MessageSource => &self.message_source,
            SystemProperty::Ack => &None,
        }
    }

    /// The text field behind `property`, or `None` for the typed [`SystemProperty::Ack`].
    fn text_field_mut(&mut self, property: SystemProperty) -> Option<&mut Option<String>> {
        let field = match property {
            SystemProperty::MessageId => &mut self.message_id,
            SystemProperty::CorrelationId => &mut self.correlation_id,
            SystemProperty::UserId => &mut self.user_id,
            SystemProperty::ContentType => &mut self.content_type,
            SystemProperty::ContentEncoding => &mut self.content_encoding,
            SystemProperty::ExpiryTimeUtc => &mut self.expiry_time_utc,
            SystemProperty::To => &mut self.to,
            SystemProperty::OutputName => &mut self.output_name,
            SystemProperty::InputName => &mut self.input_name,
            SystemProperty::InterfaceId => &mut self.interface_id,
            SystemProperty::CreationTimeUtc => &mut self.creation_time_utc,
            SystemProperty::ComponentName => &mut self.component_name,
            SystemProperty::MessageSchema => &mut self.message_schema,
            SystemProperty::DataSchema => &mut self.data_schema,
            SystemProperty::ConnectionDeviceId => &mut self.connection_device_id,
            SystemProperty::ConnectionModuleId => &mut self.connection_module_id,
            SystemProperty::ConnectionAuthGenerationId => &mut self.connection_auth_generation_id,
            SystemProperty::ConnectionAuthMethod => &mut self.connection_auth_method,
            SystemProperty::EnqueuedTime => &mut self.enqueued_time,
            SystemProperty::DiagId => &mut self.diag_id,
            SystemProperty::DiagContext => &mut self.diag_context,
            SystemProperty::MessageSource => &mut self.message_source,
            SystemProperty::Ack => return None,
        };
        Some(field)
    }
}

/// One IoT Hub message: raw body, system properties and application properties in their original order.
/// An application property with value `None` was a key without a value (a bare `key` in an MQTT bag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub body: Bytes,
    pub system: SystemProperties,
    pub application: Vec<(String, Option<String>)>,
}

impl Message {
    /// A message with `body` and no properties.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }

    /// Appends an application property, keeping the insertion order.
    pub fn with_application_property(
        mut self,
        name: impl Into<String>,
        value: Option<impl Into<String>>,
    ) -> Self {
        self.application.push((name.into(), value.map(Into::into)));
        self
    }

    /// The size IoT Hub charges against its 256 KB limit: body bytes plus the UTF-8 length of every system
    /// property value plus the names and values of every application property.
    pub fn iothub_size(&self) -> usize {
        let system_size: usize = self.system.iter().map(|(_, value)| value.len()).sum();
        let application_size: usize = self
            .application
            .iter()
            .map(|(name, value)| name.len() + value.as_ref().map_or(0, String::len))
            .sum();
        self.body.len() + system_size + application_size
    }

    /// Checks the size against `size_limit` (see [`MAX_DEVICE_TO_CLOUD_MESSAGE_SIZE`]) and the message id, if
    /// any, against [`validate_message_id`].
    pub fn check_limits(&self, size_limit: usize) -> Result<(), MessageError> {
        let size = self.iothub_size();
        if size > size_limit {
            return Err(MessageError::TooLarge {
                size,
                limit: size_limit,
            });
        }
        if let Some(message_id) = &self.system.message_id {
            validate_message_id(message_id)?;
        }
        Ok(())
    }

    /// Looks a system property up by its routing-query name (`$contentType`, `$connectionDeviceId`,
    /// `$iothub-enqueuedtime`, `$iothub-message-source`, ...), ignoring ASCII case.
    pub fn system_property(&self, name: &str) -> Option<&str> {
        self.system.by_routing_name(name)
    }

    /// The first application property whose name matches `name` ignoring case, as routing queries do.
    /// The outer `None` means absent; `Some(None)` means the key is present without a value.
    pub fn application_property(&self, name: &str) -> Option<Option<&str>> {
        self.application
            .iter()
            .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{Expect, expect};
    use proptest::prelude::*;

    /// Renders the size, the limit check and a few routing lookups of `message` for a snapshot.
    fn check(message: &Message, lookups: &[&str], expected: Expect) {
        let mut rendered = format!("size {}\n", message.iothub_size());
        match message.check_limits(MAX_DEVICE_TO_CLOUD_MESSAGE_SIZE) {
            Ok(()) => rendered.push_str("limits ok\n"),
            Err(error) => rendered.push_str(&format!("limits error: {error}\n")),
        }
        for name in lookups {
            rendered.push_str(&format!("{name} = {:?}\n", message.system_property(name)));
        }
        expected.assert_eq(&rendered);
    }

    fn sample_message() -> Message {
        let mut message = Message::new(&b"{\"temp\":21}"[..])
            .with_application_property("alert", Some("high"))
            .with_application_property("flag", None::<String>);
        message.system.message_id = Some("mid-1".to_owned());
        message.system.content_type = Some("application/json".to_owned());
        message.system.content_encoding = Some("utf-8".to_owned());
        message.system.connection_device_id = Some("dev1".to_owned());
        message.system.enqueued_time = Some("2030-01-02T03:04:05Z".to_owned());
        message.system.message_source = Some("Telemetry".to_owned());
        message
    }

    #[test]
    fn size_and_routing_lookups() {
        check(
            &sample_message(),
            &[
                "$contentType",
                "$CONTENTENCODING",
                "$connectionDeviceId",
                "$connectionModuleId",
                "$iothub-enqueuedtime",
                "$enqueuedTime",
                "$iothub-message-source",
                "$messageId",
                "contentType",
                "$unknown",
            ],
            expect![[r#"
                size 83
                limits ok
                $contentType = Some("application/json")
                $CONTENTENCODING = Some("utf-8")
                $connectionDeviceId = Some("dev1")
                $connectionModuleId = None
                $iothub-enqueuedtime = Some("2030-01-02T03:04:05Z")
                $enqueuedTime = Some("2030-01-02T03:04:05Z")
                $iothub-message-source = Some("Telemetry")
                $messageId = Some("mid-1")
                contentType = None
                $unknown = None
            "#]],
        );
    }

    #[test]
    fn oversized_message_and_bad_message_id_are_reported() {
        let mut message = Message::new(vec![0_u8; MAX_DEVICE_TO_CLOUD_MESSAGE_SIZE]);
        check(
            &message,
            &[],
            expect![[r#"
            size 262144
            limits ok
        "#]],
        );
        message.application.push(("a".to_owned(), None));
        check(
            &message,
            &[],
            expect![[r#"
            size 262145
            limits error: message is 262145 bytes by IoT Hub accounting, the limit is 262144
        "#]],
        );
        let mut message = Message::new(Bytes::new());
        message.system.message_id = Some("has space".to_owned());
        check(
            &message,
            &[],
            expect![[r#"
            size 9
            limits error: message id contains the character ' ' at byte 3, which IoT Hub does not allow
        "#]],
        );
        message.system.message_id = Some("m".repeat(129));
        check(
            &message,
            &[],
            expect![[r#"
            size 129
            limits error: message id is 129 characters long, the maximum is 128
        "#]],
        );
    }

    #[test]
    fn application_lookup_ignores_case_and_keeps_null() {
        let message = sample_message();
        assert_eq!(message.application_property("ALERT"), Some(Some("high")));
        assert_eq!(message.application_property("flag"), Some(None));
        assert_eq!(message.application_property("missing"), None);
    }

    #[test]
    fn ack_mode_parses_case_insensitively() {
        assert_eq!("Full".parse::<AckMode>(), Ok(AckMode::Full));
        expect![[r#""sometimes" is not an ack mode (expected none, positive, negative or full)"#]]
            .assert_eq(&"sometimes".parse::<AckMode>().unwrap_err().to_string());
    }

    #[test]
    fn system_property_names_are_consistent() {
        let table: Vec<String> = SystemProperty::ALL
            .into_iter()
            .map(|property| {
                format!(
                    "{} {} {}",
                    property.routing_name(),
                    property.mqtt_bag_key().unwrap_or("-"),
                    property.amqp_name()
                )
            })
            .collect();
        expect![[r#"
            $messageId $.mid message-id
            $to $.to to
            $correlationId $.cid correlation-id
            $userId $.uid user-id
            $contentType $.ct content-type
            $contentEncoding $.ce content-encoding
            $expiryTimeUtc $.exp absolute-expiry-time
            $outputName $.on iothub-outputname
            $inputName - x-opt-input-name
            $interfaceId $.ifid iothub-interface-id
            $creationTimeUtc $.ctime iothub-creation-time-utc
            $dt-subject $.sub dt-subject
            $messageSchema $.schema iothub-message-schema
            $dt-dataschema - dt-dataschema
            $connectionDeviceId $.cdid iothub-connection-device-id
            $connectionModuleId $.cmid iothub-connection-module-id
            $connectionDeviceGenerationId - iothub-connection-auth-generation-id
            $connectionAuthMethod - iothub-connection-auth-method
            $enqueuedTime - iothub-enqueuedtime
            $ack iothub-ack iothub-ack
            $diagId $.diagid diag-id
            $diagContext $.diagctx diag-context
            $iothub-message-source - iothub-message-source
        "#]]
        .assert_eq(&(table.join("\n") + "\n"));
        for property in SystemProperty::ALL {
            for name in property.routing_names() {
                assert_eq!(SystemProperty::from_routing_name(name), Some(property));
            }
            if let Some(key) = property.mqtt_bag_key() {
                assert_eq!(SystemProperty::from_mqtt_bag_key(key), Some(property));
            }
        }
    }

    #[test]
    fn system_properties_serialize_as_camel_case() {
        let properties = sample_message().system;
        let json = serde_json::to_string(&properties).unwrap();
        expect![[r#"{"messageId":"mid-1","contentType":"application/json","contentEncoding":"utf-8","connectionDeviceId":"dev1","enqueuedTime":"2030-01-02T03:04:05Z","messageSource":"Telemetry"}"#]]
            .assert_eq(&json);
        assert_eq!(
            serde_json::from_str::<SystemProperties>(&json).unwrap(),
            properties
        );
    }

    fn any_system_property() -> impl Strategy<Value = SystemProperty> {
        proptest::sample::select(SystemProperty::ALL.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Against a model: setting then getting returns the value, and size counts every set value once.
        #[test]
        fn set_get_and_size_match_model(
            assignments in proptest::collection::vec((any_system_property(), "\\PC{0,12}"), 0..10),
            body in proptest::collection::vec(any::<u8>(), 0..64),
            application in proptest::collection::vec(("\\PC{0,8}", proptest::option::of("\\PC{0,8}")), 0..5),
        ) {
            let mut model = std::collections::BTreeMap::new();
            let mut message = Message { body: Bytes::from(body.clone()), application: application.clone(), ..Message::default() };
            for (property, value) in assignments {
                let value = if property == SystemProperty::Ack { "negative".to_owned() } else { value };
                message.system.set(property, value.clone()).unwrap();
                model.insert(property, value);
            }
            for property in SystemProperty::ALL {
                prop_assert_eq!(message.system.get(property), model.get(&property).map(String::as_str));
            }
            let application_size: usize = application.iter().map(|(name, value)| name.len() + value.as_ref().map_or(0, |value| value.len())).sum();
            let expected_size = body.len() + model.values().map(String::len).sum::<usize>() + application_size;
            prop_assert_eq!(message.iothub_size(), expected_size);
        }

        #[test]
        fn message_id_validation_never_panics(candidate in any::<String>()) {
            let _ = validate_message_id(&candidate);
        }
    }
}
