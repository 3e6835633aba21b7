//! The JSON shape of a routing configuration, close to the `routing` object of an IoT Hub ARM
//! resource (`endpoints`, `routes`, `fallbackRoute`).
//!
//! These are plain serde documents: any text that parses as JSON of this shape deserializes,
//! and [`crate::RoutingConfig::from_document`] then checks it and reports every problem with a
//! typed [`crate::ConfigError`]. Azure's endpoint kinds (`eventHubs`, `serviceBusQueues`,
//! `storageContainers`, ...) are replaced by Outpost's `webhooks` and `files`; unknown fields are
//! rejected so a misspelt key does not silently fall back to a default.
//!
//! ```json
//! {
//!   "endpoints": {
//!     "webhooks": [{"name": "alerts", "url": "http://127.0.0.1:8080/alerts",
//!                   "headers": {"x-api-key": "k"}, "maxAttempts": 5,
//!                   "initialBackoffMs": 500, "maxBackoffMs": 30000, "timeoutMs": 10000}],
//!     "files": [{"name": "archive", "path": "archive/telemetry.jsonl"}]
//!   },
//!   "routes": [{"name": "hot", "source": "DeviceMessages", "condition": "processingPath = 'hot'",
//!               "endpointNames": ["alerts", "events"], "isEnabled": true}],
//!   "fallbackRoute": {"name": "$fallback", "source": "DeviceMessages", "condition": "true",
//!                     "endpointNames": ["events"], "isEnabled": true}
//! }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The whole routing configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutingDocument {
    #[serde(default)]
    pub endpoints: EndpointsDocument,
    #[serde(default)]
    pub routes: Vec<RouteDocument>,
    /// Absent means the IoT Hub default: the fallback route is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_route: Option<FallbackRouteDocument>,
}

/// Custom endpoints by kind. The built-in `events` endpoint is always present and not listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointsDocument {
    #[serde(default)]
    pub webhooks: Vec<WebhookEndpointDocument>,
    #[serde(default)]
    pub files: Vec<FileEndpointDocument>,
}

/// An HTTP endpoint that receives each routed message as one JSON `POST`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookEndpointDocument {
    pub name: String,
    /// An `http://host[:port]/path` URL; `https` is not supported.
    pub url: String,
    /// Extra request headers, such as an API key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Delivery attempts per message before it is dead-lettered (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// The wait after the first failed attempt; it doubles per attempt (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_backoff_ms: Option<u64>,
    /// The cap on the wait between attempts (default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff_ms: Option<u64>,
    /// The limit on one attempt, connection included (default 10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// An append-only JSON-lines file, relative to the router's file directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileEndpointDocument {
    pub name: String,
    pub path: String,
}

/// One named route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteDocument {
    pub name: String,
    /// `DeviceMessages`, `TwinChangeEvents` or `DeviceLifecycleEvents`.
    pub source: String,
    /// A routing query condition; absent means `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    pub endpoint_names: Vec<String>,
    #[serde(default = "enabled_by_default")]
    pub is_enabled: bool,
}

/// The fallback route: device messages that match no route go to `events` when it is enabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FallbackRouteDocument {
    /// Conventionally `$fallback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Must be `DeviceMessages` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Must be `["events"]` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_names: Option<Vec<String>>,
    pub is_enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}
