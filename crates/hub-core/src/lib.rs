//! The cloud hub's state: identity registry, twins, C2D queues, method dispatch, behind storage traits.
//!
//! [`Hub`] owns everything the service API and the MQTT front end share. Registry identities and
//! twins live behind [`HubStore`] (SQLite through sqlx in [`SqliteStore`]); telemetry lives
//! behind [`TelemetryLog`] (the `store` crate's durable log in [`FileTelemetryLog`]). The hub
//! authorizes service requests against shared access policies, authenticates connecting devices
//! (SAS tokens, self-signed X.509 by thumbprint, CA-signed X.509 by chain to an uploaded
//! [`CaCertificate`]), pushes desired-property patches, direct method requests and C2D messages
//! through the [`DeviceConnections`] the front end attaches, and matches method responses by
//! request id.
//! Device telemetry, twin change and device lifecycle notifications go through the message
//! [`hub_routing::Router`] ([`Hub::router`]), whose built-in `events` endpoint is the telemetry
//! log; `routing.rs` says what is produced when. Time comes from a [`Clock`], so expiry is
//! testable. Wire shapes (REST JSON, MQTT topics) are not here: `hub-api` and `mqtt-frontend`
//! translate.

#![forbid(unsafe_code)]

mod auth;
mod c2d;
mod certificates;
mod clock;
mod connections;
mod edge;
mod error;
mod frontend;
mod hub;
mod methods;
mod model;
mod query;
mod registry;
mod routing;
mod storage;
mod telemetry;
mod twins;

pub use auth::{
    AuthMethod, AuthenticatedDevice, DeviceAuthError, DeviceCredential, ServicePrincipal,
};
pub use c2d::{C2dAccepted, C2dPurged};
pub use certificates::{CaCertificate, CertificateName};
pub use clock::{Clock, ManualClock, SystemClock};
pub use connections::{C2dDelivery, DeviceConnections, MethodRequest};
pub use edge::{
    DEFAULT_DEVICE_SCOPE_PAGE_SIZE, DeviceScopePage, EDGE_HUB_MODULE, EDGE_MANAGED_BY,
    MAX_DEVICE_SCOPE_PAGE_SIZE,
};
pub use error::{ErrorCode, HubError};
pub use frontend::{FrontendConnections, HubBackend};
pub use hub::{Hub, HubLimits, HubOptions, REGISTRY_DATABASE_FILE, TELEMETRY_DIRECTORY};
pub use methods::{
    CONNECT_TIMEOUT_RANGE_SECS, DEFAULT_RESPONSE_TIMEOUT, MethodInvocation, MethodResult,
    RESPONSE_TIMEOUT_RANGE_SECS,
};
pub use model::{
    AccessRight, AccessRights, Authentication, AuthenticationType, ConnectionState, IdentityRecord,
    IdentityStatus, SharedAccessPolicy, default_policy_rights,
};
pub use query::{MAX_QUERY_PAGE_SIZE, QueryPage};
pub use registry::{AuthenticationSpec, EDGE_SYSTEM_MODULES, IdentitySpec, IdentityView};
pub use routing::{ROUTING_DIRECTORY, ROUTING_FILES_DIRECTORY};
pub use storage::{
    BoxFuture, DeviceCounts, HubStore, IdentityKey, IdentityScope, MemoryStore, QueuedC2dMessage,
    SqliteStore, StoredIdentity,
};
pub use telemetry::{
    ConsumerStart, FileTelemetryLog, LogRecord, TelemetryConsumer, TelemetryEvent, TelemetryLog,
};
pub use twins::TwinWriteMode;
