//! `GET /devices/{id}/modules/$edgeHub/devicesAndModulesInDeviceScope`: the identity scope an
//! edge hub caches to authenticate its modules and child devices offline.
//!
//! Query: `deviceCount` (default [`hub_core::DEFAULT_DEVICE_SCOPE_PAGE_SIZE`], larger than
//! [`hub_core::MAX_DEVICE_SCOPE_PAGE_SIZE`] is served that many), `continuationToken` (opaque,
//! from the previous page), `api-version` (`2018-08-30-preview`, accepted but not required).
//! Answer, as Azure's edge hub reads it (`ScopeResult`): `{"devices": [Device], "modules":
//! [Module], "continuationLink": "<path and query of the next page>" | null}` with the registry's
//! `Device` and `Module` JSON, keys included. The link is relative to the hub, as Azure's edge hub
//! resolves it against its hub URL.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use hub_core::{DEFAULT_DEVICE_SCOPE_PAGE_SIZE, EDGE_HUB_MODULE};
use serde_json::json;

use crate::error::ApiError;
use crate::routes::{ApiResult, ApiState, device_id};
use crate::wire;

/// The api-version the scope API is called with.
pub const DEVICE_SCOPE_API_VERSION: &str = "2018-08-30-preview";

pub(crate) async fn get_device_scope(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    let edge_device = device_id(&id)?;
    let header = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    state
        .hub
        .authorize_device_scope_caller(header, &edge_device)
        .await?;
    if mid != EDGE_HUB_MODULE {
        return Err(ApiError::invalid(format!(
            "the device scope is served to {EDGE_HUB_MODULE}, not to {mid:?}"
        )));
    }
    let device_count = match query.get("deviceCount").map(String::as_str) {
        None | Some("") => DEFAULT_DEVICE_SCOPE_PAGE_SIZE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|count| *count > 0)
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "deviceCount must be a positive number, not {text:?}"
                ))
            })?,
    };
    let continuation = query
        .get("continuationToken")
        .map(String::as_str)
        .filter(|token| !token.is_empty());
    let page = state
        .hub
        .device_scope_page(&edge_device, device_count, continuation)
        .await?;
    let continuation_link = page.continuation_token.map(|token| {
        format!(
            "/devices/{}/modules/{}/devicesAndModulesInDeviceScope?deviceCount={device_count}&continuationToken={token}&api-version={DEVICE_SCOPE_API_VERSION}",
            iothub_auth::quote_nothing_safe(edge_device.as_str()),
            iothub_auth::quote_nothing_safe(EDGE_HUB_MODULE),
        )
    });
    Ok(Json(json!({
        "devices": page.devices.iter().map(wire::device_json).collect::<Vec<_>>(),
        "modules": page.modules.iter().map(wire::module_json).collect::<Vec<_>>(),
        "continuationLink": continuation_link,
    }))
    .into_response())
}
