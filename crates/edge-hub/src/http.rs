//! The edge hub's HTTPS listener: MQTT over WebSocket (`/$iothub/websocket`) handed to the MQTT
//! front end, and the module-to-module direct method API the device SDK calls
//! (`POST /twins/{device}[/modules/{module}]/methods`, authenticated by the caller's SAS token and
//! `x-ms-edge-moduleId`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use iothub_types::{DeviceId, Identity, ModuleId};
use mqtt_frontend::Frontend;
use mqtt_frontend::https::{ConnectionInfo, serve_router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::hub::{EdgeHub, LocalMethodError, method_payload_json};

/// The largest method payload accepted (IoT Hub's limit).
const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// Serves the edge hub's HTTPS API on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls_config: Arc<tls::rustls::ServerConfig>,
    hub: EdgeHub,
    frontend: Frontend<EdgeHub>,
) {
    serve_router(listener, tls_config, router(hub, frontend)).await;
}

#[derive(Clone)]
struct ApiState {
    hub: EdgeHub,
    frontend: Frontend<EdgeHub>,
}

/// The router, for tests and for callers with their own listener.
pub fn router(hub: EdgeHub, frontend: Frontend<EdgeHub>) -> Router {
    Router::new()
        .route(mqtt_frontend::WEBSOCKET_PATH, get(websocket))
        .route("/twins/{device}/methods", post(invoke_device))
        .route(
            "/twins/{device}/modules/{module}/methods",
            post(invoke_module),
        )
        .with_state(ApiState { hub, frontend })
}

async fn websocket(
    State(state): State<ApiState>,
    connection: Option<Extension<ConnectionInfo>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let (certificate, address): (_, Option<SocketAddr>) = match connection {
        Some(Extension(info)) => (info.client_certificate, info.remote_address),
        None => (None, None),
    };
    state
        .frontend
        .upgrade_websocket(upgrade, certificate, address)
}

/// The request body the SDKs send.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MethodRequestBody {
    method_name: String,
    #[serde(default)]
    payload: Value,
    response_timeout_in_seconds: Option<u64>,
    connect_timeout_in_seconds: Option<u64>,
}

async fn invoke_device(
    State(state): State<ApiState>,
    Path(device): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    invoke(state, device, None, headers, body).await
}

async fn invoke_module(
    State(state): State<ApiState>,
    Path((device, module)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    invoke(state, device, Some(module), headers, body).await
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    (
        status,
        Json(json!({"Message": message, "ExceptionMessage": message})),
    )
        .into_response()
}

async fn invoke(
    state: ApiState,
    device: String,
    module: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match authenticate(&state.hub, &headers) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    let target = match (DeviceId::new(&device), module.as_deref().map(ModuleId::new)) {
        (Ok(device), None) => Identity::device(device),
        (Ok(device), Some(Ok(module))) => Identity::module(device, module),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "the target is not a valid identity",
            );
        }
    };
    if body.len() > MAX_PAYLOAD_BYTES + 1024 {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the method payload exceeds 128 KB",
        );
    }
    let request: MethodRequestBody = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(problem) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the request body is not a method request: {problem}"),
            );
        }
    };
    let response_timeout = request
        .response_timeout_in_seconds
        .unwrap_or(30)
        .clamp(5, 300);
    let connect_timeout = request.connect_timeout_in_seconds.unwrap_or(0).min(300);
    let payload = Bytes::from(serde_json::to_vec(&request.payload).unwrap_or_default());
    tracing::debug!(%caller, %target, method = request.method_name, "local method call");
    match state
        .hub
        .invoke_local_method(
            &target,
            &request.method_name,
            payload,
            Duration::from_secs(connect_timeout),
            Duration::from_secs(response_timeout),
        )
        .await
    {
        Ok(response) => {
            let payload = method_payload_json(&response.payload);
            Json(json!({"status": response.status, "payload": payload})).into_response()
        }
        Err(LocalMethodError::NotConnected) => error(
            StatusCode::NOT_FOUND,
            format!("{target} is not connected to this edge hub or not listening for methods"),
        ),
        Err(LocalMethodError::Timeout) => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!("{target} did not answer within {response_timeout} s"),
        ),
    }
}

/// The caller named by `x-ms-edge-moduleId`, proven by the SAS token in `Authorization`.
fn authenticate(hub: &EdgeHub, headers: &HeaderMap) -> Result<Identity, Box<Response>> {
    let unauthorized = |message: &str| Box::new(error(StatusCode::UNAUTHORIZED, message));
    let caller = headers
        .get("x-ms-edge-moduleId")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| unauthorized("the x-ms-edge-moduleId header is missing"))?;
    let identity: Identity = caller
        .parse()
        .map_err(|_| unauthorized("x-ms-edge-moduleId is not {device}/{module}"))?;
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| unauthorized("the Authorization header is missing"))?;
    hub.verify_caller(&identity, token)
        .map_err(|refusal| unauthorized(&format!("the caller's token was refused: {refusal}")))?;
    Ok(identity)
}
