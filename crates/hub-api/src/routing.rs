//! Message routing administration: `GET`/`PUT /routing`, `POST /routing/test`,
//! `GET /routing/stats` (see the crate docs for the wire shapes).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use hub_core::{AccessRight, ErrorCode};
use hub_routing::{RouterError, RoutingDocument, RoutingSource};
use iothub_types::{DeviceId, Message, SystemProperties};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::routes::{ApiResult, ApiState, authorize};

/// The rights a policy needs to change the hub's configuration (routing): every right, as the
/// default `iothubowner` policy has. Routing can send device data to any webhook, so neither
/// `ServiceConnect` nor `RegistryWrite` alone is enough.
pub const HUB_CONFIGURATION_RIGHTS: [AccessRight; 4] = [
    AccessRight::RegistryRead,
    AccessRight::RegistryWrite,
    AccessRight::ServiceConnect,
    AccessRight::DeviceConnect,
];

/// Checks that the caller's policy grants every one of `rights`.
pub(crate) fn authorize_all(
    state: &ApiState,
    headers: &HeaderMap,
    rights: &[AccessRight],
) -> Result<(), ApiError> {
    for right in rights {
        authorize(state, headers, &[*right])?;
    }
    Ok(())
}

/// `GET /routing`: the configuration in force, defaults spelt out.
pub(crate) async fn get_routing(State(state): State<ApiState>, headers: HeaderMap) -> ApiResult {
    authorize(&state, &headers, &[AccessRight::ServiceConnect])?;
    Ok(Json(state.hub.router().document()).into_response())
}

/// `PUT /routing`: validates, stores and applies a configuration without a restart.
pub(crate) async fn put_routing(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    authorize_all(&state, &headers, &HUB_CONFIGURATION_RIGHTS)?;
    let document: RoutingDocument = serde_json::from_slice(&body).map_err(|error| {
        ApiError::invalid(format!(
            "the routing configuration is not JSON of the expected shape: {error}"
        ))
    })?;
    match state.hub.router().apply(&document).await {
        Ok(config) => Ok(Json(config.to_document()).into_response()),
        Err(RouterError::Invalid(errors)) => Err(ApiError::invalid(errors.to_string())),
        Err(RouterError::ShutDown) => Err(ApiError::new(
            ErrorCode::ThrottlingException,
            "the hub is shutting down",
        )),
        Err(error) => Err(ApiError::new(ErrorCode::ServerError, error.to_string())),
    }
}

/// `GET /routing/stats`: router and endpoint counters.
pub(crate) async fn routing_stats(State(state): State<ApiState>, headers: HeaderMap) -> ApiResult {
    authorize(&state, &headers, &[AccessRight::ServiceConnect])?;
    Ok(Json(state.hub.router().stats()).into_response())
}

/// The body of `POST /routing/test`, shaped like IoT Hub's "test all routes" input.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TestRouteRequest {
    /// `DeviceMessages` (the default), `TwinChangeEvents` or `DeviceLifecycleEvents`.
    #[serde(default)]
    routing_source: Option<String>,
    #[serde(default)]
    message: TestMessage,
    /// The twin `$twin` conditions see; when absent, the twin of the device named by
    /// `message.systemProperties.connectionDeviceId`, if it exists.
    #[serde(default)]
    twin: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TestMessage {
    /// The body: a string is taken as its UTF-8 bytes, any other JSON value as its JSON text.
    #[serde(default)]
    body: Option<Value>,
    /// Application properties; `null` is a property without a value.
    #[serde(default)]
    app_properties: BTreeMap<String, Option<String>>,
    /// System properties by their camelCase names (`contentType`, `contentEncoding`,
    /// `connectionDeviceId`, `messageId`, ...).
    #[serde(default)]
    system_properties: Map<String, Value>,
}

fn test_message(request: TestMessage) -> Result<Message, ApiError> {
    let body = match request.body {
        None => Vec::new(),
        Some(Value::String(text)) => text.into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    let system: SystemProperties = serde_json::from_value(Value::Object(
        request.system_properties.clone(),
    ))
    .map_err(|error| ApiError::invalid(format!("message.systemProperties is invalid: {error}")))?;
    // Serde ignores names it does not know; a misspelt name would silently test nothing.
    let known = serde_json::to_value(&system).unwrap_or(Value::Null);
    if let Some(unknown) = request
        .system_properties
        .keys()
        .find(|name| known.get(name.as_str()).is_none())
    {
        return Err(ApiError::invalid(format!(
            "message.systemProperties has an unknown or empty property {unknown:?}"
        )));
    }
    Ok(Message {
        body: body.into(),
        system,
        application: request.app_properties.into_iter().collect(),
    })
}

/// `POST /routing/test`: where a sample message would go with the configuration in force.
pub(crate) async fn test_route(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    authorize(&state, &headers, &[AccessRight::ServiceConnect])?;
    let request: TestRouteRequest = serde_json::from_slice(&body)
        .map_err(|error| ApiError::invalid(format!("invalid route test request: {error}")))?;
    let source = match request.routing_source.as_deref() {
        None => RoutingSource::DeviceMessages,
        Some(text) => RoutingSource::parse(text).ok_or_else(|| {
            ApiError::invalid(format!(
                "unknown routingSource {text:?}, expected DeviceMessages, TwinChangeEvents or DeviceLifecycleEvents"
            ))
        })?,
    };
    let message = test_message(request.message)?;
    let twin = match request.twin {
        Some(twin) => Some(twin),
        None => match message
            .system
            .connection_device_id
            .as_deref()
            .and_then(|text| DeviceId::new(text).ok())
        {
            Some(device_id) => state.hub.routing_twin(&device_id).await,
            None => None,
        },
    };
    let explanation = state.hub.router().explain(source, &message, twin.as_ref());
    Ok(Json(json!({
        "routingSource": source.as_str(),
        "matchedRoutes": names(&explanation.matched_routes),
        "fallbackApplied": explanation.fallback_applied,
        "endpoints": names(&explanation.endpoints),
    }))
    .into_response())
}

fn names<Name: ToString>(names: &[Name]) -> Vec<String> {
    names.iter().map(ToString::to_string).collect()
}
