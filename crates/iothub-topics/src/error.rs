//! Typed errors for topic parsing and topic authorization.

use iothub_types::{AckModeParseError, IdError, Identity};

/// Why a topic or topic filter could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic matches none of the shapes this direction allows.
    #[error("unknown topic {topic:?}")]
    UnknownTopic { topic: String },
    #[error("invalid device id in topic: {0}")]
    InvalidDeviceId(IdError),
    #[error("invalid module id in topic: {0}")]
    InvalidModuleId(IdError),
    /// A twin or method topic lacks the `$rid` query key the response must echo.
    #[error("topic {topic:?} has no $rid")]
    MissingRequestId { topic: String },
    /// A desired-property notification lacks `$version`.
    #[error("topic {topic:?} has no $version")]
    MissingVersion { topic: String },
    #[error("$version {value:?} is not an unsigned integer")]
    InvalidVersion { value: String },
    #[error("status {value:?} is not an integer status code")]
    InvalidStatus { value: String },
    /// A method request topic with an empty method name.
    #[error("topic {topic:?} has an empty method name")]
    EmptyMethodName { topic: String },
    /// A module input topic with an empty input name.
    #[error("topic {topic:?} has an empty input name")]
    EmptyInputName { topic: String },
    /// A percent-decoded property bag key or value, method name or input name is not UTF-8.
    #[error("percent-decoded {what} {raw:?} is not valid UTF-8")]
    NotUtf8 { what: &'static str, raw: String },
    /// A filter uses `+` or `#` where a device or module id belongs.
    #[error("filter {filter:?} uses a wildcard in place of an id")]
    WildcardNotAllowed { filter: String },
    #[error("invalid iothub-ack in property bag: {0}")]
    InvalidAck(AckModeParseError),
}

/// Why a parsed topic does not belong to the connected identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    /// The topic names a different device than the one connected.
    #[error("{connected} may not use topics of device {topic_device}")]
    ForeignDevice {
        connected: Identity,
        topic_device: String,
    },
    /// The topic names a different module than the one connected.
    #[error("{connected} may not use topics of module {topic_module}")]
    ForeignModule {
        connected: Identity,
        topic_module: String,
    },
    /// A device connection used a module topic.
    #[error("device {connected} may not use module topics (module {topic_module})")]
    ModuleTopicOnDeviceConnection {
        connected: Identity,
        topic_module: String,
    },
    /// A module connection used a device-only topic (device telemetry or cloud-to-device messages).
    #[error("module {connected} may not use device-only topics")]
    DeviceTopicOnModuleConnection { connected: Identity },
}

/// Parsing or authorization failed in [`crate::ClientPublish::parse_for`] or [`crate::ClientSubscription::parse_for`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseForError {
    #[error(transparent)]
    Topic(#[from] TopicError),
    #[error(transparent)]
    Authorization(#[from] AuthorizationError),
}
