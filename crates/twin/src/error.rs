//! Typed errors for twin operations, each mapping to the status code IoT Hub answers with.

use std::fmt;

use serde_json::Value;

use crate::etag::EtagMismatch;

/// One of the three JSON documents of a twin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TwinSection {
    /// `tags`: written by the service only, invisible to devices.
    Tags,
    /// `properties.desired`: written by the service, read by the device.
    Desired,
    /// `properties.reported`: written by the device, read by the service.
    Reported,
}

/// The JSON type of a value, used in error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonKind {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

/// Everything that can go wrong when parsing or applying a twin write.
///
/// A failed operation never modifies the twin.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TwinError {
    /// The body is not valid JSON.
    #[error("malformed json in {what}: {reason}")]
    MalformedJson { what: String, reason: String },
    /// A patch, a section, the body or a field is valid JSON of the wrong type (patches and
    /// sections must be objects).
    #[error("{what} must be {expected}, found {found}")]
    UnexpectedType {
        what: String,
        expected: JsonKind,
        found: JsonKind,
    },
    /// A key is the empty string.
    #[error("empty key under {path}")]
    EmptyKey { path: String },
    /// A key is longer than [`crate::MAX_KEY_BYTES`] bytes of UTF-8.
    #[error("key under {path} is {length} bytes long, the limit is {limit}")]
    KeyTooLong {
        path: String,
        length: usize,
        limit: usize,
    },
    /// A key starts with `$`: system properties such as `$version` and `$metadata` are
    /// maintained by the hub and cannot be written.
    #[error("key {key:?} under {path} is reserved for system properties")]
    SystemKeyNotAllowed { path: String, key: String },
    /// A key contains `.`, `$`, a space or a control character.
    #[error("key {key:?} under {path} contains the forbidden character {character:?}")]
    ForbiddenKeyCharacter {
        path: String,
        key: String,
        character: char,
    },
    /// A string value is longer than [`crate::MAX_STRING_VALUE_BYTES`] bytes of UTF-8.
    #[error("string value at {path} is {length} bytes long, the limit is {limit}")]
    StringValueTooLong {
        path: String,
        length: usize,
        limit: usize,
    },
    /// An integer lies outside [`crate::MIN_INTEGER`]..=[`crate::MAX_INTEGER`].
    #[error("integer {value} at {path} is outside the range -4503599627370496..=4503599627370495")]
    IntegerOutOfRange { path: String, value: String },
    /// Objects or arrays are nested deeper than [`crate::MAX_DEPTH`] levels.
    #[error("{path} is nested {level} levels deep, the limit is {limit}")]
    TooDeep {
        path: String,
        level: usize,
        limit: usize,
    },
    /// The section would grow beyond its size limit (IoT Hub's accounting, see
    /// [`crate::section_size_bytes`]).
    #[error("{section} would be {size} bytes, the limit is {limit}")]
    SectionTooLarge {
        section: TwinSection,
        size: usize,
        limit: usize,
    },
    /// The `If-Match` etag does not match the twin's etag.
    #[error(transparent)]
    PreconditionFailed(#[from] EtagMismatch),
    /// A caller-supplied expected `$version` does not match the section's version.
    #[error("{section} is at version {current}, the request expected version {expected}")]
    VersionMismatch {
        section: TwinSection,
        expected: u64,
        current: u64,
    },
}

// === impl TwinSection ===

impl TwinSection {
    /// The dotted path of the section inside the service twin document.
    pub fn path(self) -> &'static str {
        match self {
            TwinSection::Tags => "tags",
            TwinSection::Desired => "properties.desired",
            TwinSection::Reported => "properties.reported",
        }
    }

    /// The section's size limit in bytes.
    pub fn size_limit_bytes(self) -> usize {
        match self {
            TwinSection::Tags => crate::MAX_TAGS_BYTES,
            TwinSection::Desired => crate::MAX_DESIRED_BYTES,
            TwinSection::Reported => crate::MAX_REPORTED_BYTES,
        }
    }
}

impl fmt::Display for TwinSection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.path())
    }
}

// === impl JsonKind ===

impl JsonKind {
    /// The kind of `value`.
    pub fn of(value: &Value) -> JsonKind {
        match value {
            Value::Null => JsonKind::Null,
            Value::Bool(_) => JsonKind::Boolean,
            Value::Number(_) => JsonKind::Number,
            Value::String(_) => JsonKind::String,
            Value::Array(_) => JsonKind::Array,
            Value::Object(_) => JsonKind::Object,
        }
    }
}

impl fmt::Display for JsonKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            JsonKind::Null => "null",
            JsonKind::Boolean => "a boolean",
            JsonKind::Number => "a number",
            JsonKind::String => "a string",
            JsonKind::Array => "an array",
            JsonKind::Object => "an object",
        })
    }
}

// === impl TwinError ===

impl TwinError {
    /// The status code for the MQTT `$iothub/twin/res/{status}` topic and for the REST reply:
    /// 412 for failed preconditions, 413 for oversized sections, 400 for everything else.
    pub fn status_code(&self) -> u16 {
        match self {
            TwinError::PreconditionFailed(_) | TwinError::VersionMismatch { .. } => 412,
            TwinError::SectionTooLarge { .. } => 413,
            _ => 400,
        }
    }

    /// The IoT Hub error code name for the `iothub-errorcode` header and error bodies.
    /// These names are our best match to IoT Hub's catalogue, not captured from the service.
    pub fn error_code(&self) -> &'static str {
        match self.status_code() {
            412 => "PreconditionFailed",
            413 => "MessageTooLarge",
            _ => "ArgumentInvalid",
        }
    }
}
