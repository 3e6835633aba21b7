//! IoT Hub message routing for the Outpost hub: named endpoints, named routes with conditions,
//! the fallback route, and delivery of routed messages.
//!
//! This crate owns what happens to a device message, twin change notification or device
//! lifecycle notification after the hub accepted it:
//!
//! - **Configuration** ([`RoutingConfig`], wire shape [`RoutingDocument`]): custom endpoints
//!   (webhooks and JSON-lines files; the built-in `events` endpoint is implicit), routes
//!   `{name, source, condition, endpointNames, isEnabled}` and the fallback route, validated
//!   into typed [`ConfigError`]s.
//! - **Pure core** ([`RoutingTable`]): for a source, a message and the sender's twin, the set
//!   of endpoints, each once. Conditions are compiled once by the `query` crate and evaluated
//!   without allocating; the set is a bit set.
//! - **Shell** ([`Router`]): the live table behind an `RwLock<Arc<..>>` swapped on
//!   reconfiguration (no restart), the configuration stored as `routing.json` (atomic replace),
//!   durable appends to `events` through the hub's [`EventsEndpoint`], and one delivery task
//!   per custom endpoint behind a bounded queue: webhooks over plain HTTP/1.1 with capped
//!   exponential back-off and a dead-letter count, files with one `fdatasync` per batch.
//!   [`Router::dispatch_loading_twin`] loads the sender's twin only when a condition of the
//!   message's source mentions `$twin` ([`RoutingTable::needs_twin`]), and
//!   [`Router::may_route`] lets producers of notifications skip building messages nobody routes.
//! - **Notifications** ([`twin_change_event`], [`device_lifecycle_event`]): the messages IoT
//!   Hub emits for the `TwinChangeEvents` and `DeviceLifecycleEvents` sources.
//!
//! **Semantics, as in IoT Hub:** a message goes to every endpoint of every enabled route of
//! its source whose condition is `true`, once per endpoint. A device message that matches no
//! route goes to `events` when the fallback route is enabled; notifications never fall back.
//!
//! **Architecture invariant:** [`RoutingTable`], [`RoutingConfig`] and the notification
//! builders do no I/O; only [`Router`] and its delivery tasks touch files and sockets.

#![forbid(unsafe_code)]

mod config;
mod file_sink;
mod names;
mod notifications;
mod record;
mod router;
mod stats;
mod table;
mod webhook;
pub mod wire;

pub use config::{
    ConfigError, ConfigErrors, ConfigLoadError, EndpointDefinition, EndpointKind,
    FALLBACK_ROUTE_NAME, FallbackRoute, FileEndpoint, MAX_CONDITION_LENGTH, MAX_CUSTOM_ENDPOINTS,
    MAX_ROUTES, RetryPolicy, RouteCondition, RouteDefinition, RoutingConfig, WebhookEndpoint,
    WebhookUrl,
};
pub use names::{EndpointName, MAX_NAME_LENGTH, NameError, RouteName, RoutingSource};
pub use notifications::{
    LIFECYCLE_MESSAGE_SOURCE, LIFECYCLE_SCHEMA, LifecycleOperation, NotificationContext,
    TWIN_CHANGE_MESSAGE_SOURCE, TWIN_CHANGE_SCHEMA, TwinChangeOperation, device_lifecycle_event,
    twin_change_body, twin_change_event,
};
pub use record::encode_endpoint_record;
pub use router::{
    BoxFuture, CONFIG_FILE_NAME, DispatchError, DispatchOutcome, EventsAppendError, EventsEndpoint,
    RoutedMessage, Router, RouterError, RouterOptions,
};
pub use stats::{EndpointStats, RouterStats};
pub use table::{EndpointSet, RoutableMessage, RouteExplanation, RoutingTable};
pub use wire::{
    EndpointsDocument, FallbackRouteDocument, FileEndpointDocument, RouteDocument, RoutingDocument,
    WebhookEndpointDocument,
};
