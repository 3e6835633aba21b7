//! Message-routing conditions: compiled once, evaluated against any [`MessageView`].

use std::cell::OnceCell;

use serde_json::Value as Json;

use crate::ast::{Expr, ExprKind, Property};
use crate::error::ParseError;
use crate::eval::{Scope, evaluate};
use crate::parser::{Dialect, Parser};
use crate::value::Value;

/// The system properties a routing condition can name with a `$` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemProperty {
    ContentType,
    ContentEncoding,
    ConnectionDeviceId,
    ConnectionModuleId,
    ConnectionAuthMethod,
    ConnectionDeviceGenerationId,
    MessageId,
    CorrelationId,
    UserId,
    To,
    EnqueuedTime,
    CreationTimeUtc,
    ExpiryTimeUtc,
    MessageSource,
    MessageSchema,
    InterfaceName,
    DataSchema,
    Subject,
    OutputName,
    InputName,
}

impl SystemProperty {
    /// Resolves a condition name (without the `$`, ASCII-lowercased). Both the short routing
    /// names (`connectionDeviceId`) and the wire names (`iothub-connection-device-id`) work.
    pub fn from_condition_name(lowercase_name: &str) -> Option<SystemProperty> {
        const TABLE: &[(&str, SystemProperty)] = &[
            ("contenttype", SystemProperty::ContentType),
            ("content-type", SystemProperty::ContentType),
            ("contentencoding", SystemProperty::ContentEncoding),
            ("content-encoding", SystemProperty::ContentEncoding),
            ("connectiondeviceid", SystemProperty::ConnectionDeviceId),
            (
                "iothub-connection-device-id",
                SystemProperty::ConnectionDeviceId,
            ),
            ("connectionmoduleid", SystemProperty::ConnectionModuleId),
            (
                "iothub-connection-module-id",
                SystemProperty::ConnectionModuleId,
            ),
            ("connectionauthmethod", SystemProperty::ConnectionAuthMethod),
            (
                "iothub-connection-auth-method",
                SystemProperty::ConnectionAuthMethod,
            ),
            (
                "connectiondevicegenerationid",
                SystemProperty::ConnectionDeviceGenerationId,
            ),
            (
                "iothub-connection-auth-generation-id",
                SystemProperty::ConnectionDeviceGenerationId,
            ),
            ("messageid", SystemProperty::MessageId),
            ("message-id", SystemProperty::MessageId),
            ("correlationid", SystemProperty::CorrelationId),
            ("correlation-id", SystemProperty::CorrelationId),
            ("userid", SystemProperty::UserId),
            ("user-id", SystemProperty::UserId),
            ("to", SystemProperty::To),
            ("enqueuedtime", SystemProperty::EnqueuedTime),
            ("iothub-enqueuedtime", SystemProperty::EnqueuedTime),
            ("creationtimeutc", SystemProperty::CreationTimeUtc),
            ("iothub-creation-time-utc", SystemProperty::CreationTimeUtc),
            ("expirytimeutc", SystemProperty::ExpiryTimeUtc),
            ("absolute-expiry-time", SystemProperty::ExpiryTimeUtc),
            ("messagesource", SystemProperty::MessageSource),
            ("iothub-message-source", SystemProperty::MessageSource),
            ("messageschema", SystemProperty::MessageSchema),
            ("iothub-message-schema", SystemProperty::MessageSchema),
            ("interfacename", SystemProperty::InterfaceName),
            ("iothub-interface-name", SystemProperty::InterfaceName),
            ("dt-dataschema", SystemProperty::DataSchema),
            ("dt-subject", SystemProperty::Subject),
            ("outputname", SystemProperty::OutputName),
            ("iothub-outputname", SystemProperty::OutputName),
            ("inputname", SystemProperty::InputName),
            ("x-opt-input-name", SystemProperty::InputName),
        ];
        TABLE
            .iter()
            .find(|(name, _)| *name == lowercase_name)
            .map(|(_, property)| *property)
    }

    /// The property's name on the wire (MQTT topic property bag / AMQP annotation).
    pub fn wire_name(self) -> &'static str {
        match self {
            SystemProperty::ContentType => "content-type",
            SystemProperty::ContentEncoding => "content-encoding",
            SystemProperty::ConnectionDeviceId => "iothub-connection-device-id",
            SystemProperty::ConnectionModuleId => "iothub-connection-module-id",
            SystemProperty::ConnectionAuthMethod => "iothub-connection-auth-method",
            SystemProperty::ConnectionDeviceGenerationId => "iothub-connection-auth-generation-id",
            SystemProperty::MessageId => "message-id",
            SystemProperty::CorrelationId => "correlation-id",
            SystemProperty::UserId => "user-id",
            SystemProperty::To => "to",
            SystemProperty::EnqueuedTime => "iothub-enqueuedtime",
            SystemProperty::CreationTimeUtc => "iothub-creation-time-utc",
            SystemProperty::ExpiryTimeUtc => "absolute-expiry-time",
            SystemProperty::MessageSource => "iothub-message-source",
            SystemProperty::MessageSchema => "iothub-message-schema",
            SystemProperty::InterfaceName => "iothub-interface-name",
            SystemProperty::DataSchema => "dt-dataschema",
            SystemProperty::Subject => "dt-subject",
            SystemProperty::OutputName => "iothub-outputname",
            SystemProperty::InputName => "x-opt-input-name",
        }
    }
}

/// Read access to one message, implemented by the caller's message type.
pub trait MessageView {
    /// The value of a system property, if the message has it.
    fn system_property(&self, property: SystemProperty) -> Option<&str>;

    /// The value of the application property whose name equals `lowercase_name` ignoring ASCII
    /// case. The name is already lowercased, so an implementation that stores lowercased keys
    /// can look it up directly.
    fn application_property(&self, lowercase_name: &str) -> Option<&str>;

    /// The raw message body.
    fn body(&self) -> &[u8];

    /// The sender's device twin (service shape), for `$twin...` references; `None` if unknown.
    fn twin(&self) -> Option<&Json> {
        None
    }
}

/// How a condition evaluated, for diagnostics: IoT Hub logs conditions that are not boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionOutcome {
    Matched,
    NotMatched,
    /// The condition evaluated to something other than a boolean (usually undefined).
    NotBoolean,
}

/// A compiled routing condition such as `alert = 'high' AND $connectionDeviceId = 'dev1'`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    expression: Expr,
    references_body: bool,
}

impl Condition {
    /// Parses a routing condition. Bare names are application properties, `$name` system
    /// properties (falling back to an application property literally named `$name`),
    /// `$body.path` the JSON body and `$twin.path` the sender's twin.
    pub fn parse(source: &str) -> Result<Condition, ParseError> {
        let expression = Parser::new(source, Dialect::Message)?.parse_condition()?;
        Ok(Condition::from_expression(expression))
    }

    pub(crate) fn from_expression(expression: Expr) -> Condition {
        let references_body = references_body(&expression);
        Condition {
            expression,
            references_body,
        }
    }

    /// True when the condition reads `$body`, so evaluating it may parse the body.
    pub fn references_body(&self) -> bool {
        self.references_body
    }

    /// Whether the message matches: only a boolean `true` result does.
    pub fn evaluate<M: MessageView + ?Sized>(&self, message: &M) -> bool {
        self.outcome(message) == ConditionOutcome::Matched
    }

    pub fn outcome<M: MessageView + ?Sized>(&self, message: &M) -> ConditionOutcome {
        let scope = MessageScope {
            message,
            body: OnceCell::new(),
        };
        match evaluate(&self.expression, &scope) {
            Value::Bool(true) => ConditionOutcome::Matched,
            Value::Bool(false) => ConditionOutcome::NotMatched,
            _ => ConditionOutcome::NotBoolean,
        }
    }

    /// The evaluated value as JSON (`None` for undefined), for tools and tests.
    pub fn evaluate_to_json<M: MessageView + ?Sized>(&self, message: &M) -> Option<Json> {
        let scope = MessageScope {
            message,
            body: OnceCell::new(),
        };
        evaluate(&self.expression, &scope).to_json()
    }
}

fn references_body(expression: &Expr) -> bool {
    match &expression.kind {
        ExprKind::Property(Property::Body(_)) => true,
        ExprKind::Literal(_) | ExprKind::Property(_) => false,
        ExprKind::Array(items) => items.iter().any(references_body),
        ExprKind::Unary { operand, .. } => references_body(operand),
        ExprKind::Binary { left, right, .. } => references_body(left) || references_body(right),
        ExprKind::Logical { operands, .. } => operands.iter().any(references_body),
        ExprKind::In {
            needle, haystack, ..
        } => references_body(needle) || references_body(haystack),
        ExprKind::Call { arguments, .. } => arguments.iter().any(references_body),
    }
}

/// Evaluation scope for one message. The body is decoded and parsed at most once, and only when
/// the condition actually reaches a `$body` reference.
struct MessageScope<'m, M: ?Sized> {
    message: &'m M,
    body: OnceCell<Option<Json>>,
}

impl<M: MessageView + ?Sized> Scope for MessageScope<'_, M> {
    fn document(&self) -> Option<&Json> {
        None
    }

    fn application_property(&self, lowercase_name: &str) -> Option<&str> {
        self.message.application_property(lowercase_name)
    }

    fn system_property(&self, property: SystemProperty) -> Option<&str> {
        self.message.system_property(property)
    }

    fn body(&self) -> Option<&Json> {
        self.body
            .get_or_init(|| {
                decode_json_body(
                    self.message.system_property(SystemProperty::ContentType),
                    self.message
                        .system_property(SystemProperty::ContentEncoding),
                    self.message.body(),
                )
            })
            .as_ref()
    }

    fn twin(&self) -> Option<&Json> {
        self.message.twin()
    }
}

/// Parses a message body as JSON when its content type is `application/json` (parameters such
/// as `; charset=utf-8` allowed) and its content encoding is UTF-8, UTF-16 or UTF-32 (ASCII case
/// ignored). UTF-16 and UTF-32 honour a byte-order mark and default to little-endian.
pub fn decode_json_body(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
) -> Option<Json> {
    let media_type = content_type?.split(';').next()?.trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return None;
    }
    let encoding = content_encoding?.trim();
    let text: String = if encoding.eq_ignore_ascii_case("utf-8") {
        let bytes = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        return serde_json::from_slice(bytes).ok();
    } else if encoding.eq_ignore_ascii_case("utf-16") {
        decode_utf16(body)?
    } else if encoding.eq_ignore_ascii_case("utf-32") {
        decode_utf32(body)?
    } else {
        return None;
    };
    serde_json::from_str(&text).ok()
}

fn decode_utf16(body: &[u8]) -> Option<String> {
    let (big_endian, bytes) = match body {
        [0xFE, 0xFF, rest @ ..] => (true, rest),
        [0xFF, 0xFE, rest @ ..] => (false, rest),
        _ => (false, body),
    };
    if bytes.len() % 2 != 0 {
        return None;
    }
    let units = bytes.chunks_exact(2).map(|pair| {
        let pair = [pair[0], pair[1]];
        if big_endian {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        }
    });
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .ok()
}

fn decode_utf32(body: &[u8]) -> Option<String> {
    let (big_endian, bytes) = match body {
        [0x00, 0x00, 0xFE, 0xFF, rest @ ..] => (true, rest),
        [0xFF, 0xFE, 0x00, 0x00, rest @ ..] => (false, rest),
        _ => (false, body),
    };
    if bytes.len() % 4 != 0 {
        return None;
    }
    bytes
        .chunks_exact(4)
        .map(|quad| {
            let quad = [quad[0], quad[1], quad[2], quad[3]];
            let scalar = if big_endian {
                u32::from_be_bytes(quad)
            } else {
                u32::from_le_bytes(quad)
            };
            char::from_u32(scalar)
        })
        .collect()
}

/// A simple owned message for tests, tools and callers without their own message type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimpleMessage {
    system_properties: Vec<(SystemProperty, String)>,
    /// Application properties with lowercased names.
    application_properties: Vec<(String, String)>,
    body: Vec<u8>,
    twin: Option<Json>,
}

impl SimpleMessage {
    pub fn new() -> SimpleMessage {
        SimpleMessage::default()
    }

    pub fn with_system_property(
        mut self,
        property: SystemProperty,
        value: impl Into<String>,
    ) -> SimpleMessage {
        self.system_properties
            .retain(|(existing, _)| *existing != property);
        self.system_properties.push((property, value.into()));
        self
    }

    /// Adds an application property; names are matched ignoring ASCII case.
    pub fn with_application_property(
        mut self,
        name: &str,
        value: impl Into<String>,
    ) -> SimpleMessage {
        let lowercase_name = name.to_ascii_lowercase();
        self.application_properties
            .retain(|(existing, _)| *existing != lowercase_name);
        self.application_properties
            .push((lowercase_name, value.into()));
        self
    }

    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> SimpleMessage {
        self.body = body.into();
        self
    }

    /// Sets a UTF-8 JSON body with `application/json` content type and `utf-8` encoding.
    pub fn with_json_body(self, body: &Json) -> SimpleMessage {
        self.with_system_property(SystemProperty::ContentType, "application/json")
            .with_system_property(SystemProperty::ContentEncoding, "utf-8")
            .with_body(body.to_string())
    }

    pub fn with_twin(mut self, twin: Json) -> SimpleMessage {
        self.twin = Some(twin);
        self
    }
}

impl MessageView for SimpleMessage {
    fn system_property(&self, property: SystemProperty) -> Option<&str> {
        self.system_properties
            .iter()
            .find(|(existing, _)| *existing == property)
            .map(|(_, value)| value.as_str())
    }

    fn application_property(&self, lowercase_name: &str) -> Option<&str> {
        self.application_properties
            .iter()
            .find(|(name, _)| name == lowercase_name)
            .map(|(_, value)| value.as_str())
    }

    fn body(&self) -> &[u8] {
        &self.body
    }

    fn twin(&self) -> Option<&Json> {
        self.twin.as_ref()
    }
}
