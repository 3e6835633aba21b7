//! The hub's error type and the IoT Hub error codes it maps to.

use std::fmt;

/// An IoT Hub error code: the name IoT Hub puts in `iothub-errorcode` and in `ErrorCode:` of error
/// bodies, its six-digit number, and the HTTP status it travels with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A request field or parameter is invalid (400).
    ArgumentInvalid,
    /// A required argument is missing (400).
    ArgumentNull,
    /// The request body is not valid JSON or not the expected shape (400).
    InvalidProtocolVersion,
    /// The bulk request holds more than 100 entries, or the same device twice (400).
    TooManyDevices,
    /// The SAS token is missing, malformed, expired or signed with the wrong key, or the policy lacks a right (401).
    IotHubUnauthorizedAccess,
    /// The device's C2D queue already holds the maximum number of messages (403).
    DeviceMaximumQueueDepthExceeded,
    /// The caller is authenticated but may not do this (403): an edge device's own token used
    /// outside its device-scoped routes.
    Forbidden,
    /// No such device (404).
    DeviceNotFound,
    /// No such module on the device (404).
    ModuleNotFound,
    /// The device or module is not connected, or not subscribed to direct methods (404).
    DeviceNotOnline,
    /// No such route, method or CA certificate (404).
    NotFound,
    /// A device with this id exists already (409).
    DeviceAlreadyExists,
    /// A module with this id exists already on the device (409).
    ModuleAlreadyExistsOnDevice,
    /// The `If-Match` etag does not match the current one (412).
    PreconditionFailed,
    /// The message or payload is too large (413).
    MessageTooLarge,
    /// Too many requests or pending operations (429).
    ThrottlingException,
    /// An unexpected server-side failure, such as a storage error (500).
    ServerError,
    /// The device did not answer a direct method in time (504).
    GatewayTimeout,
}

impl ErrorCode {
    /// The code name, e.g. `DeviceNotFound`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::ArgumentInvalid => "ArgumentInvalid",
            ErrorCode::ArgumentNull => "ArgumentNull",
            ErrorCode::InvalidProtocolVersion => "InvalidProtocolVersion",
            ErrorCode::TooManyDevices => "TooManyDevices",
            ErrorCode::IotHubUnauthorizedAccess => "IotHubUnauthorizedAccess",
            ErrorCode::DeviceMaximumQueueDepthExceeded => "DeviceMaximumQueueDepthExceeded",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::DeviceNotFound => "DeviceNotFound",
            ErrorCode::ModuleNotFound => "ModuleNotFound",
            ErrorCode::DeviceNotOnline => "DeviceNotOnline",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::DeviceAlreadyExists => "DeviceAlreadyExists",
            ErrorCode::ModuleAlreadyExistsOnDevice => "ModuleAlreadyExistsOnDevice",
            ErrorCode::PreconditionFailed => "PreconditionFailed",
            ErrorCode::MessageTooLarge => "MessageTooLarge",
            ErrorCode::ThrottlingException => "ThrottlingException",
            ErrorCode::ServerError => "ServerError",
            ErrorCode::GatewayTimeout => "GatewayTimeout",
        }
    }

    /// The six-digit IoT Hub error number, e.g. 404001.
    pub fn number(self) -> u32 {
        match self {
            ErrorCode::ArgumentInvalid => 400004,
            ErrorCode::ArgumentNull => 400005,
            ErrorCode::InvalidProtocolVersion => 400001,
            ErrorCode::TooManyDevices => 400013,
            ErrorCode::IotHubUnauthorizedAccess => 401002,
            ErrorCode::DeviceMaximumQueueDepthExceeded => 403004,
            ErrorCode::Forbidden => 403000,
            ErrorCode::DeviceNotFound => 404001,
            ErrorCode::ModuleNotFound => 404010,
            ErrorCode::DeviceNotOnline => 404103,
            ErrorCode::NotFound => 404000,
            ErrorCode::DeviceAlreadyExists => 409001,
            ErrorCode::ModuleAlreadyExistsOnDevice => 409301,
            ErrorCode::PreconditionFailed => 412002,
            ErrorCode::MessageTooLarge => 413001,
            ErrorCode::ThrottlingException => 429001,
            ErrorCode::ServerError => 500001,
            ErrorCode::GatewayTimeout => 504101,
        }
    }

    /// The HTTP status this code travels with: the first three digits of [`ErrorCode::number`].
    pub fn http_status(self) -> u16 {
        (self.number() / 1000) as u16
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Why a hub operation failed. Every variant maps to one [`ErrorCode`] through [`HubError::code`].
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A field, parameter or body is invalid; the text says which and why.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request is not authorized; the text says why.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller is authenticated but not allowed to do this; the text says why.
    #[error("{0}")]
    Forbidden(String),
    /// The device does not exist.
    #[error("device {device_id} does not exist")]
    DeviceNotFound {
        /// The requested device.
        device_id: String,
    },
    /// The module does not exist on the device.
    #[error("module {module_id} does not exist on device {device_id}")]
    ModuleNotFound {
        /// The requested device.
        device_id: String,
        /// The requested module.
        module_id: String,
    },
    /// A device with this id exists already.
    #[error("device {device_id} already exists")]
    DeviceAlreadyExists {
        /// The device.
        device_id: String,
    },
    /// A module with this id exists already on the device.
    #[error("module {module_id} already exists on device {device_id}")]
    ModuleAlreadyExists {
        /// The device.
        device_id: String,
        /// The module.
        module_id: String,
    },
    /// No CA certificate is uploaded under this name.
    #[error("there is no CA certificate named {name}")]
    CertificateNotFound {
        /// The requested name.
        name: String,
    },
    /// A CA certificate is uploaded under this name already and no `If-Match` was given.
    #[error(
        "a CA certificate named {name} exists already; send If-Match with its etag (or *) to replace it"
    )]
    CertificateAlreadyExists {
        /// The name.
        name: String,
    },
    /// The `If-Match` etag did not match.
    #[error("the etag {given} does not match the current etag {current}")]
    PreconditionFailed {
        /// The etag the caller sent.
        given: String,
        /// The current etag.
        current: String,
    },
    /// The device's cloud-to-device queue is full.
    #[error("the cloud-to-device queue of device {device_id} already holds {limit} messages")]
    QueueFull {
        /// The device.
        device_id: String,
        /// The queue limit.
        limit: usize,
    },
    /// A message or payload exceeds its limit.
    #[error("{what} is {size} bytes, the limit is {limit}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// The target of a direct method is not connected or not subscribed to methods.
    #[error("{target} is not online")]
    DeviceNotOnline {
        /// The device or `device/module`.
        target: String,
    },
    /// The target of a direct method did not answer in time.
    #[error("{target} did not answer method {method_name} within {timeout_secs} s")]
    MethodTimeout {
        /// The device or `device/module`.
        target: String,
        /// The method.
        method_name: String,
        /// The response timeout.
        timeout_secs: u64,
    },
    /// Too many operations are in flight.
    #[error("{0}")]
    Throttled(String),
    /// A twin write was refused by the twin rules.
    #[error(transparent)]
    Twin(#[from] twin::TwinError),
    /// The storage layer failed.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl HubError {
    /// The IoT Hub error code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            HubError::InvalidArgument(_) => ErrorCode::ArgumentInvalid,
            HubError::Unauthorized(_) => ErrorCode::IotHubUnauthorizedAccess,
            HubError::Forbidden(_) => ErrorCode::Forbidden,
            HubError::DeviceNotFound { .. } => ErrorCode::DeviceNotFound,
            HubError::ModuleNotFound { .. } => ErrorCode::ModuleNotFound,
            HubError::DeviceAlreadyExists { .. } => ErrorCode::DeviceAlreadyExists,
            HubError::ModuleAlreadyExists { .. } => ErrorCode::ModuleAlreadyExistsOnDevice,
            HubError::CertificateNotFound { .. } => ErrorCode::NotFound,
            HubError::CertificateAlreadyExists { .. } => ErrorCode::PreconditionFailed,
            HubError::PreconditionFailed { .. } => ErrorCode::PreconditionFailed,
            HubError::QueueFull { .. } => ErrorCode::DeviceMaximumQueueDepthExceeded,
            HubError::TooLarge { .. } => ErrorCode::MessageTooLarge,
            HubError::DeviceNotOnline { .. } => ErrorCode::DeviceNotOnline,
            HubError::MethodTimeout { .. } => ErrorCode::GatewayTimeout,
            HubError::Throttled(_) => ErrorCode::ThrottlingException,
            HubError::Twin(twin_error) => twin_error_code(twin_error),
            HubError::Storage(_) => ErrorCode::ServerError,
        }
    }

    pub(crate) fn storage(error: impl fmt::Display) -> HubError {
        HubError::Storage(error.to_string())
    }
}

fn twin_error_code(error: &twin::TwinError) -> ErrorCode {
    match error.status_code() {
        412 => ErrorCode::PreconditionFailed,
        413 => ErrorCode::MessageTooLarge,
        _ => ErrorCode::ArgumentInvalid,
    }
}

impl From<sqlx::Error> for HubError {
    fn from(error: sqlx::Error) -> HubError {
        HubError::storage(error)
    }
}
