//! Typed errors: why a connection attempt failed, and why an operation did not complete.

use iothub_types::MessageError;
use mqtt_codec::ConnectReturnCode;

/// Why a connection attempt (TCP, TLS, CONNECT/CONNACK) failed.
///
/// Values are cheap to clone and comparable, because they also travel in the connection-state
/// watch ([`crate::DisconnectReason::ConnectFailed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The hub answered CONNACK with a refusal code. Code 3 (server unavailable) is transient;
    /// 4 and 5 mean the credentials were refused; 1 and 2 are protocol-level refusals.
    #[error("hub refused the connection with CONNACK code {}", code.as_u8())]
    Refused { code: ConnectReturnCode },
    /// TCP connect, read or write failed.
    #[error("i/o error while connecting: {message}")]
    Io {
        kind: std::io::ErrorKind,
        message: String,
    },
    /// The TLS handshake failed (for example, the server certificate is not trusted).
    #[error("tls handshake failed: {message}")]
    Tls { message: String },
    /// No CONNACK within the connect timeout (the timeout covers TCP, TLS and CONNECT).
    #[error("no CONNACK within {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    /// The server answered CONNECT with something other than a CONNACK, or with a malformed packet.
    #[error("protocol error while connecting: {message}")]
    Protocol { message: String },
    /// The token provider could not produce a SAS token.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The options cannot work (for example an X.509 credential over plain TCP).
    #[error("invalid client options: {message}")]
    Configuration { message: String },
    /// The client was shut down before the connection was established.
    #[error("client was shut down")]
    Closed,
}

impl ConnectError {
    /// Whether retrying later may succeed without changing anything: everything except refused
    /// credentials (CONNACK 4 and 5), protocol refusals (1 and 2) and invalid options. The
    /// azure-iot-device SDK makes the same split; this client's automatic reconnect retries all of
    /// them with back-off anyway, because an edge device must recover once an operator fixes the
    /// registry.
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::Refused { code } => *code == ConnectReturnCode::ServerUnavailable,
            ConnectError::Io { .. }
            | ConnectError::Tls { .. }
            | ConnectError::Timeout { .. }
            | ConnectError::Protocol { .. }
            | ConnectError::Token(_) => true,
            ConnectError::Configuration { .. } | ConnectError::Closed => false,
        }
    }

    pub(crate) fn io(error: &std::io::Error) -> ConnectError {
        ConnectError::Io {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

/// A token provider's failure, with its explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token provider failed: {message}")]
pub struct TokenError {
    pub message: String,
}

impl TokenError {
    /// A failure explained by `message`.
    pub fn new(message: impl Into<String>) -> TokenError {
        TokenError {
            message: message.into(),
        }
    }
}

/// Why an operation (telemetry, twin, method response, subscription) did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The client is disconnected and [`crate::WhileDisconnected::FailFast`] is configured.
    #[error("not connected to the hub")]
    NotConnected,
    /// The request was sent but the connection dropped before the answer arrived (fail-fast mode).
    /// For telemetry the outcome is unknown: the hub may or may not have accepted the message.
    #[error("connection lost before the hub answered")]
    ConnectionLost,
    /// The operation did not complete within the operation timeout (which also covers waiting for
    /// a slot in the in-flight window and, in queueing mode, for a connection). For telemetry the
    /// outcome is unknown.
    #[error("no answer within {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    /// The client was shut down, or its connection task ended.
    #[error("client is shut down")]
    Closed,
    /// The hub answered a twin request with a status of 300 or more.
    #[error("hub answered the twin request with status {status}: {body}")]
    TwinStatus { status: u16, body: String },
    /// The hub's twin answer is not what the protocol promises (bad JSON, no `$version`).
    #[error("invalid twin response: {reason}")]
    InvalidTwinResponse { reason: String },
    /// The hub refused a subscription (SUBACK 0x80).
    #[error("hub refused the subscription to {filter}")]
    SubscriptionRefused { filter: String },
    /// The message breaks an IoT Hub limit and was not sent.
    #[error(transparent)]
    InvalidMessage(#[from] MessageError),
    /// The topic would exceed MQTT's 65535-byte limit (too many or too long properties).
    #[error("topic is {length} bytes long, more than 65535")]
    TopicTooLong { length: usize },
    /// A method request id or output name that cannot be written into a topic.
    #[error("{what} {value:?} cannot be written into a topic")]
    InvalidTopicPart { what: &'static str, value: String },
}
