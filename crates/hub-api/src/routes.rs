//! The handlers of the service REST API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hub_core::{
    AccessRight, ErrorCode, Hub, IdentityScope, IdentityView, MethodInvocation, TwinWriteMode,
};
use iothub_types::{AckMode, DeviceId, Identity, Message, ModuleId};
use serde_json::{Value, json};
use twin::ServiceTwinUpdate;

use crate::error::ApiError;
use crate::wire::{self, BulkEntry, IdentityBody, MethodBody, QueryBody};

/// Most entries in one bulk registry call.
pub const MAX_BULK_ENTRIES: usize = 100;
/// Default page size of `GET /devices` when `top` is absent.
pub const DEFAULT_DEVICE_LIST_SIZE: usize = 1000;

pub(crate) type ApiResult = Result<Response, ApiError>;

/// The state every handler shares.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) hub: Arc<Hub>,
}

/// Checks the `Authorization` header; any one of `rights` suffices.
pub(crate) fn authorize(
    state: &ApiState,
    headers: &HeaderMap,
    rights: &[AccessRight],
) -> Result<(), ApiError> {
    let header = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    let mut last_error = None;
    for right in rights {
        match state.hub.authorize_service(header, *right) {
            Ok(_) => return Ok(()),
            Err(error) => last_error = Some(error),
        }
    }
    if device_scoped_token(header) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "a device-scoped token (no skn) only gives an IoT Edge device access to its own \
             device and module identities",
        ));
    }
    Err(last_error.map_or_else(
        || ApiError::new(ErrorCode::IotHubUnauthorizedAccess, "no right given"),
        ApiError::from,
    ))
}

/// Whether the `Authorization` header holds a SAS token without `skn` scoped to one device: an
/// IoT Edge device signing with its own key.
fn device_scoped_token(header: Option<&str>) -> bool {
    header
        .and_then(|text| iothub_auth::SasToken::parse(text.trim()).ok())
        .is_some_and(|token| {
            token.key_name().is_none()
                && matches!(token.scope(), iothub_auth::ResourceScope::Device { .. })
        })
}

/// Like [`authorize`], but an IoT Edge device signing with its own key (see
/// [`Hub::authorize_edge_device`]) is also let through when `device` is itself; another device's
/// token is refused with 403.
async fn authorize_for_device(
    state: &ApiState,
    headers: &HeaderMap,
    rights: &[AccessRight],
    device: &str,
) -> Result<(), ApiError> {
    let header = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok());
    if !device_scoped_token(header) {
        return authorize(state, headers, rights);
    }
    let edge_device = state.hub.authorize_edge_device(header).await?;
    if edge_device.as_str() != device {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("device {edge_device} may only manage its own module identities"),
        ));
    }
    Ok(())
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get("if-match")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

pub(crate) fn device_id(text: &str) -> Result<DeviceId, ApiError> {
    DeviceId::new(text)
        .map_err(|error| ApiError::invalid(format!("invalid device id {text:?}: {error}")))
}

fn module_id(text: &str) -> Result<ModuleId, ApiError> {
    ModuleId::new(text)
        .map_err(|error| ApiError::invalid(format!("invalid module id {text:?}: {error}")))
}

fn json_with_etag(value: Value, etag: &str) -> Response {
    let mut response = Json(value).into_response();
    if let Ok(header) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        response.headers_mut().insert("etag", header);
    }
    response
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid(format!("invalid {what}: {error}")))
}

// === registry ===

pub(crate) async fn get_devices(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult {
    authorize(&state, &headers, &[AccessRight::RegistryRead])?;
    let top = match query.get("top") {
        None => DEFAULT_DEVICE_LIST_SIZE,
        Some(text) => text
            .parse::<usize>()
            .map_err(|_| ApiError::invalid(format!("top must be a number, not {text:?}")))?,
    };
    let views = state
        .hub
        .list_identities(
            IdentityScope::Devices,
            None,
            top.min(DEFAULT_DEVICE_LIST_SIZE),
        )
        .await?;
    Ok(Json(views.iter().map(wire::device_json).collect::<Vec<_>>()).into_response())
}

pub(crate) async fn get_device(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    authorize_for_device(&state, &headers, &[AccessRight::RegistryRead], &id).await?;
    let view = state
        .hub
        .get_identity(&Identity::device(device_id(&id)?))
        .await?;
    Ok(json_with_etag(wire::device_json(&view), &view.record.etag))
}

pub(crate) async fn put_device(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    authorize(&state, &headers, &[AccessRight::RegistryWrite])?;
    let identity = Identity::device(device_id(&id)?);
    let body = IdentityBody::parse(&body)?;
    if let Some(body_id) = &body.device_id
        && body_id != &id
    {
        return Err(ApiError::invalid(format!(
            "deviceId {body_id:?} in the body differs from {id:?} in the path"
        )));
    }
    let view = state
        .hub
        .put_identity(&identity, body.into_spec()?, if_match(&headers).as_deref())
        .await?;
    Ok(json_with_etag(wire::device_json(&view), &view.record.etag))
}

pub(crate) async fn delete_device(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    authorize(&state, &headers, &[AccessRight::RegistryWrite])?;
    state
        .hub
        .delete_identity(
            &Identity::device(device_id(&id)?),
            if_match(&headers).as_deref(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn get_modules(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    authorize_for_device(&state, &headers, &[AccessRight::RegistryRead], &id).await?;
    let device = device_id(&id)?;
    let views = state
        .hub
        .list_identities(
            IdentityScope::ModulesOf(&device),
            None,
            DEFAULT_DEVICE_LIST_SIZE,
        )
        .await?;
    Ok(Json(views.iter().map(wire::module_json).collect::<Vec<_>>()).into_response())
}

pub(crate) async fn get_module(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult {
    authorize_for_device(&state, &headers, &[AccessRight::RegistryRead], &id).await?;
    let view = state
        .hub
        .get_identity(&Identity::module(device_id(&id)?, module_id(&mid)?))
        .await?;
    Ok(json_with_etag(wire::module_json(&view), &view.record.etag))
}

pub(crate) async fn put_module(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    authorize_for_device(&state, &headers, &[AccessRight::RegistryWrite], &id).await?;
    let identity = Identity::module(device_id(&id)?, module_id(&mid)?);
    let body = IdentityBody::parse(&body)?;
    if let Some(body_id) = &body.module_id
        && body_id != &mid
    {
        return Err(ApiError::invalid(format!(
            "moduleId {body_id:?} in the body differs from {mid:?} in the path"
        )));
    }
    let view = state
        .hub
        .put_identity(&identity, body.into_spec()?, if_match(&headers).as_deref())
        .await?;
    Ok(json_with_etag(wire::module_json(&view), &view.record.etag))
}

pub(crate) async fn delete_module(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult {
    authorize_for_device(&state, &headers, &[AccessRight::RegistryWrite], &id).await?;
    let identity = Identity::module(device_id(&id)?, module_id(&mid)?);
    state
        .hub
        .delete_identity(&identity, if_match(&headers).as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /devices/{id}/applyConfigurationContent`: a deployment manifest's `modulesContent`
/// written to an IoT Edge device's module twins (see [`Hub::apply_configuration_content`]); 204.
pub(crate) async fn apply_configuration_content(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    authorize(&state, &headers, &[AccessRight::RegistryWrite])?;
    let device = device_id(&id)?;
    let content: Value = parse_json(&body, "configuration content")?;
    state
        .hub
        .apply_configuration_content(&device, &content)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn device_statistics(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(&state, &headers, &[AccessRight::RegistryRead])?;
    let counts = state.hub.device_statistics().await?;
    Ok(Json(json!({
        "totalDeviceCount": counts.total,
        "enabledDeviceCount": counts.enabled,
        "disabledDeviceCount": counts.disabled,
    }))
    .into_response())
}

pub(crate) async fn service_statistics(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> ApiResult {
    authorize(
        &state,
        &headers,
        &[AccessRight::ServiceConnect, AccessRight::RegistryRead],
    )?;
    Ok(Json(json!({"connectedDeviceCount": state.hub.connected_device_count()})).into_response())
}

// === bulk ===

struct BulkError {
    device_id: String,
    module_id: Option<String>,
    code: &'static str,
    status: String,
    operation: String,
}

fn bulk_error_code(error: &hub_core::HubError) -> &'static str {
    match error {
        hub_core::HubError::PreconditionFailed { .. } => "EtagDoesNotMatch",
        other => match other.code() {
            ErrorCode::DeviceNotFound => "DeviceNotFound",
            ErrorCode::ModuleNotFound => "ModuleNotFound",
            ErrorCode::DeviceAlreadyExists => "DeviceAlreadyExists",
            ErrorCode::ModuleAlreadyExistsOnDevice => "ModuleAlreadyExistsOnDevice",
            _ => "ArgumentInvalid",
        },
    }
}

pub(crate) async fn bulk(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    authorize(&state, &headers, &[AccessRight::RegistryWrite])?;
    let entries: Vec<BulkEntry> = parse_json(&body, "bulk request body")?;
    if entries.len() > MAX_BULK_ENTRIES {
        return Err(ApiError::new(
            ErrorCode::TooManyDevices,
            format!(
                "a bulk call takes at most {MAX_BULK_ENTRIES} entries, got {}",
                entries.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut errors = Vec::new();
    for entry in entries {
        let operation = entry
            .import_mode
            .clone()
            .unwrap_or_else(|| "createOrUpdate".to_owned());
        let device_text = entry.id.clone().unwrap_or_default();
        let module_text = entry.module_id.clone();
        if !seen.insert((device_text.clone(), module_text.clone())) {
            errors.push(BulkError {
                device_id: device_text,
                module_id: module_text,
                code: "DeviceDefinedMultipleTimes",
                status: "the identity appears more than once in the request".to_owned(),
                operation,
            });
            continue;
        }
        if let Err(error) = apply_bulk_entry(&state.hub, entry, &operation).await {
            errors.push(BulkError {
                device_id: device_text,
                module_id: module_text,
                code: error.0,
                status: error.1,
                operation,
            });
        }
    }
    let is_successful = errors.is_empty();
    let body = json!({
        "isSuccessful": is_successful,
        "errors": errors.iter().map(|error| json!({
            "deviceId": error.device_id,
            "errorCode": error.code,
            "errorStatus": error.status,
            "moduleId": error.module_id,
            "operation": error.operation,
        })).collect::<Vec<_>>(),
        "warnings": [],
    });
    let status = if is_successful {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, Json(body)).into_response())
}

async fn apply_bulk_entry(
    hub: &Hub,
    entry: BulkEntry,
    operation: &str,
) -> Result<(), (&'static str, String)> {
    let invalid = |message: String| ("ArgumentInvalid", message);
    let hub_error = |error: hub_core::HubError| (bulk_error_code(&error), error.to_string());
    let device = DeviceId::new(entry.id.as_deref().unwrap_or_default())
        .map_err(|error| invalid(error.to_string()))?;
    let identity = match &entry.module_id {
        None => Identity::device(device),
        Some(module) => Identity::module(
            device,
            ModuleId::new(module).map_err(|error| invalid(error.to_string()))?,
        ),
    };
    let spec = IdentityBody {
        device_id: None,
        module_id: None,
        status: entry.status,
        status_reason: entry.status_reason,
        authentication: entry.authentication,
        capabilities: entry.capabilities,
        device_scope: entry.device_scope,
        parent_scopes: entry.parent_scopes,
        managed_by: None,
    }
    .into_spec()
    .map_err(|error| invalid(error.message))?;
    let etag = entry.etag.unwrap_or_else(|| "*".to_owned());
    let twin_etag = entry.twin_etag;
    let twin_update = ServiceTwinUpdate {
        tags: entry.tags,
        desired: entry.properties.and_then(|properties| properties.desired),
        etag: None,
    };
    let has_twin = twin_update.tags.is_some() || twin_update.desired.is_some();
    match operation {
        "create" => {
            hub.put_identity(&identity, spec, None)
                .await
                .map_err(hub_error)?;
        }
        "createOrUpdate" | "update" => {
            match hub.put_identity(&identity, spec.clone(), Some("*")).await {
                Err(
                    hub_core::HubError::DeviceNotFound { .. }
                    | hub_core::HubError::ModuleNotFound { .. },
                ) if identity.module.is_none()
                    || operation == "createOrUpdate"
                    || operation == "update" =>
                {
                    hub.put_identity(&identity, spec, None)
                        .await
                        .map_err(hub_error)?;
                }
                other => {
                    other.map_err(hub_error)?;
                }
            }
        }
        "createOrUpdateIfMatchETag" | "updateIfMatchETag" => {
            hub.put_identity(&identity, spec, Some(&etag))
                .await
                .map_err(hub_error)?;
        }
        "delete" => hub
            .delete_identity(&identity, None)
            .await
            .map_err(hub_error)?,
        "deleteIfMatchETag" => hub
            .delete_identity(&identity, Some(&etag))
            .await
            .map_err(hub_error)?,
        "updateTwin" | "updateTwinIfMatchETag" => {}
        other => return Err(invalid(format!("unknown importMode {other:?}"))),
    }
    if has_twin && !operation.starts_with("delete") {
        let twin_if_match = if operation == "updateTwinIfMatchETag" {
            twin_etag
        } else {
            None
        };
        hub.update_twin(
            &identity,
            twin_update,
            TwinWriteMode::Patch,
            twin_if_match.as_deref(),
        )
        .await
        .map_err(hub_error)?;
    }
    Ok(())
}

// === twins ===

fn twin_identity(id: &str, mid: Option<&str>) -> Result<Identity, ApiError> {
    let device = device_id(id)?;
    Ok(match mid {
        None => Identity::device(device),
        Some(mid) => Identity::module(device, module_id(mid)?),
    })
}

fn twin_response(view: &IdentityView) -> Response {
    let etag = view.twin.etag().to_string();
    json_with_etag(view.service_twin_json(), &etag)
}

async fn read_twin(state: &ApiState, headers: &HeaderMap, identity: Identity) -> ApiResult {
    authorize(
        state,
        headers,
        &[AccessRight::ServiceConnect, AccessRight::RegistryRead],
    )?;
    let view = state.hub.get_twin(&identity).await?;
    Ok(twin_response(&view))
}

async fn write_twin(
    state: &ApiState,
    headers: &HeaderMap,
    identity: Identity,
    body: &[u8],
    mode: TwinWriteMode,
) -> ApiResult {
    authorize(
        state,
        headers,
        &[AccessRight::ServiceConnect, AccessRight::RegistryWrite],
    )?;
    let update = ServiceTwinUpdate::parse(body).map_err(hub_core::HubError::from)?;
    let view = state
        .hub
        .update_twin(&identity, update, mode, if_match(headers).as_deref())
        .await?;
    Ok(twin_response(&view))
}

pub(crate) async fn get_twin(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    read_twin(&state, &headers, twin_identity(&id, None)?).await
}

pub(crate) async fn patch_twin(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    write_twin(
        &state,
        &headers,
        twin_identity(&id, None)?,
        &body,
        TwinWriteMode::Patch,
    )
    .await
}

pub(crate) async fn put_twin(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    write_twin(
        &state,
        &headers,
        twin_identity(&id, None)?,
        &body,
        TwinWriteMode::Replace,
    )
    .await
}

pub(crate) async fn get_module_twin(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
) -> ApiResult {
    read_twin(&state, &headers, twin_identity(&id, Some(&mid))?).await
}

pub(crate) async fn patch_module_twin(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    write_twin(
        &state,
        &headers,
        twin_identity(&id, Some(&mid))?,
        &body,
        TwinWriteMode::Patch,
    )
    .await
}

pub(crate) async fn put_module_twin(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    write_twin(
        &state,
        &headers,
        twin_identity(&id, Some(&mid))?,
        &body,
        TwinWriteMode::Replace,
    )
    .await
}

// === methods ===

async fn invoke(
    state: &ApiState,
    headers: &HeaderMap,
    identity: Identity,
    body: &[u8],
) -> ApiResult {
    authorize(state, headers, &[AccessRight::ServiceConnect])?;
    let body: MethodBody = parse_json(body, "method request body")?;
    let method_name = body
        .method_name
        .ok_or_else(|| ApiError::new(ErrorCode::ArgumentNull, "methodName is required"))?;
    let invocation = MethodInvocation {
        method_name,
        payload: body.payload,
        response_timeout_secs: body.response_timeout_in_seconds,
        connect_timeout_secs: body.connect_timeout_in_seconds,
    };
    let result = state.hub.invoke_method(&identity, invocation).await?;
    Ok(Json(json!({"status": result.status, "payload": result.payload})).into_response())
}

pub(crate) async fn invoke_device_method(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    invoke(&state, &headers, twin_identity(&id, None)?, &body).await
}

pub(crate) async fn invoke_module_method(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path((id, mid)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    invoke(&state, &headers, twin_identity(&id, Some(&mid))?, &body).await
}

// === query ===

pub(crate) async fn query(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    authorize(
        &state,
        &headers,
        &[AccessRight::ServiceConnect, AccessRight::RegistryRead],
    )?;
    let body: QueryBody = parse_json(&body, "query body")?;
    let text = body
        .query
        .ok_or_else(|| ApiError::new(ErrorCode::ArgumentNull, "query is required"))?;
    let continuation = headers
        .get("x-ms-continuation")
        .and_then(|value| value.to_str().ok());
    let max_items = match headers
        .get("x-ms-max-item-count")
        .and_then(|value| value.to_str().ok())
    {
        None => None,
        Some(text) => Some(text.trim().parse::<usize>().map_err(|_| {
            ApiError::invalid(format!(
                "x-ms-max-item-count must be a number, not {text:?}"
            ))
        })?),
    };
    let page = state.hub.query(&text, continuation, max_items).await?;
    let mut response = Json(page.items).into_response();
    response
        .headers_mut()
        .insert("x-ms-item-type", HeaderValue::from_static(page.item_type));
    if let Some(token) = page.continuation
        && let Ok(value) = HeaderValue::from_str(&token)
    {
        response.headers_mut().insert("x-ms-continuation", value);
    }
    Ok(response)
}

// === cloud-to-device ===

/// Header prefix of application properties on `POST /devices/{id}/messages/deviceBound`.
pub const APPLICATION_PROPERTY_HEADER_PREFIX: &str = "iothub-app-";

pub(crate) async fn send_c2d(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    authorize(&state, &headers, &[AccessRight::ServiceConnect])?;
    let device = device_id(&id)?;
    let header = |name: &str| -> Result<Option<String>, ApiError> {
        match headers.get(name) {
            None => Ok(None),
            Some(value) => value
                .to_str()
                .map(|text| Some(text.to_owned()))
                .map_err(|_| ApiError::invalid(format!("header {name} is not ASCII text"))),
        }
    };
    let mut message = Message::new(body);
    message.system.message_id = header("iothub-messageid")?;
    message.system.correlation_id = header("iothub-correlationid")?;
    message.system.user_id = header("iothub-userid")?;
    message.system.content_type = header("iothub-contenttype")?;
    message.system.content_encoding = header("iothub-contentencoding")?;
    if let Some(ack) = header("iothub-ack")? {
        let ack: AckMode = ack
            .parse()
            .map_err(|error| ApiError::invalid(format!("iothub-ack: {error}")))?;
        message.system.ack = Some(ack);
    }
    let mut time_to_live = None;
    if let Some(expiry) = header("iothub-expiry")? {
        let expiry = chrono::DateTime::parse_from_rfc3339(&expiry).map_err(|error| {
            ApiError::invalid(format!("iothub-expiry is not an RFC 3339 time: {error}"))
        })?;
        let remaining = expiry.with_timezone(&chrono::Utc) - state.hub.now();
        let seconds = u64::try_from(remaining.num_seconds()).unwrap_or(0);
        time_to_live = Some(Duration::from_secs(seconds));
    }
    if let Some(seconds) = header("iothub-ttl-seconds")? {
        let seconds = seconds.parse::<u64>().map_err(|_| {
            ApiError::invalid(format!(
                "iothub-ttl-seconds must be a number, not {seconds:?}"
            ))
        })?;
        time_to_live = Some(Duration::from_secs(seconds));
    }
    for (name, value) in &headers {
        let Some(property) = name
            .as_str()
            .strip_prefix(APPLICATION_PROPERTY_HEADER_PREFIX)
        else {
            continue;
        };
        let value = value
            .to_str()
            .map_err(|_| ApiError::invalid(format!("header {name} is not ASCII text")))?;
        message
            .application
            .push((property.to_owned(), Some(value.to_owned())));
    }
    let accepted = state.hub.send_c2d(&device, message, time_to_live).await?;
    Ok(Json(json!({
        "messageId": accepted.message_id,
        "sequenceNumber": accepted.sequence,
        "expiryTimeUtc": wire::time_json(Some(accepted.expiry_time)),
    }))
    .into_response())
}

pub(crate) async fn purge_c2d(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    authorize(&state, &headers, &[AccessRight::ServiceConnect])?;
    let device = device_id(&id)?;
    let purged = state.hub.purge_c2d(&device).await?;
    Ok(Json(json!({"totalMessagesPurged": purged.total_messages_purged, "deviceId": id, "moduleId": null})).into_response())
}

// === fallbacks ===

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        "no such resource; see the hub-api crate documentation for the routes",
    )
}

pub(crate) async fn method_not_allowed() -> Response {
    let mut response =
        ApiError::invalid("this method is not allowed on this resource").into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}
