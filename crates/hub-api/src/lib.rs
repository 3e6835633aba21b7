//! The cloud hub's service REST API (the one azure-iot-hub calls) and its HTTPS/WebSocket listener.
//!
//! [`router`] builds the axum router over a [`hub_core::Hub`]; [`serve`] runs it over TLS (rustls)
//! on a TCP listener, with HTTP/1.1 upgrades so that the same port also takes MQTT over WebSocket
//! at `/$iothub/websocket` (handed to the MQTT front end through a [`WebSocketHandler`]).
//!
//! # Routes of `azure-iot-hub` 2.7 (`?api-version=2021-04-12`, accepted but not required)
//!
//! | Route | Right | Answer |
//! |---|---|---|
//! | `GET /devices[?top=n]` | RegistryRead | 200 `[Device]` |
//! | `PUT /devices/{id}` (no `If-Match`: create, 409 if it exists; `If-Match`: update, 412 on mismatch) | RegistryWrite | 200 `Device` |
//! | `GET /devices/{id}`, `DELETE /devices/{id}` (`If-Match` optional, `*` = any) | RegistryRead / RegistryWrite | 200 / 204 |
//! | `GET /devices/{id}/modules`, `GET/PUT/DELETE /devices/{id}/modules/{mid}` | as above | 200 / 204 |
//! | `POST /devices` (bulk `[ExportImportDevice]`, at most 100) | RegistryWrite | 200, or 400 with `isSuccessful:false` |
//! | `GET/PATCH/PUT /twins/{id}[/modules/{mid}]` (`If-Match`) | ServiceConnect or registry | 200 `Twin` |
//! | `POST /twins/{id}[/modules/{mid}]/methods` | ServiceConnect | 200 `{status, payload}`; 404 offline; 504 timeout |
//! | `POST /devices/query` (`x-ms-max-item-count`, `x-ms-continuation`) | ServiceConnect or RegistryRead | 200 rows + `x-ms-item-type` |
//! | `GET /statistics/devices`, `GET /statistics/service` | RegistryRead / ServiceConnect | 200 |
//! | `DELETE /devices/{id}/commands` (purge the C2D queue) | ServiceConnect | 200 `{totalMessagesPurged, deviceId, moduleId}` |
//! | `POST /devices/{id}/applyConfigurationContent` (`{"modulesContent": …}`, edge devices) | RegistryWrite | 204 |
//!
//! **Device-scoped access.** An IoT Edge device may sign with its own key (a SAS token without
//! `skn`, `sr = {host}/devices/{id}`) to `GET /devices/{id}` and to `GET/PUT/DELETE` its own
//! `/devices/{id}/modules[/{mid}]` (answers include module keys): this is how the edge runtime
//! keeps its module identities in sync without a shared access policy. Such a token is refused
//! with 403 `Forbidden` everywhere else and for other devices. The edge device (or its `$edgeHub`
//! module, with its own key) also reads its identity scope, paged, at
//! `GET /devices/{id}/modules/$edgeHub/devicesAndModulesInDeviceScope` (see `device_scope.rs`).
//!
//! Errors carry IoT Hub's shape: the status of the error code, header `iothub-errorcode`, body
//! `{"Message":"ErrorCode:<Name>;<text>","ExceptionMessage":"Tracking ID:..."}`.
//!
//! # Outpost's own endpoints
//!
//! **Send a cloud-to-device message**: `POST /devices/{id}/messages/deviceBound` (ServiceConnect).
//! The request body is the message body, sent as is. Optional headers set the system properties:
//! `iothub-messageid` (generated when absent), `iothub-correlationid`, `iothub-userid`,
//! `iothub-contenttype`, `iothub-contentencoding`, `iothub-ack` (`none|positive|negative|full`),
//! and the lifetime as `iothub-ttl-seconds` (default 3600, at most 172800) or `iothub-expiry`
//! (RFC 3339). Every header `iothub-app-{name}` becomes application property `{name}` (HTTP
//! lower-cases header names, so property names arrive in lower case). Answers 200
//! `{"messageId","sequenceNumber","expiryTimeUtc"}`; 404 unknown device; 403
//! `DeviceMaximumQueueDepthExceeded` when 50 messages are queued; 413 above 64 KB.
//!
//! **Stream telemetry**: `GET /events?consumerGroup=G&from=F[&limit=N][&idleTimeoutSecs=T][&autoCommit=true]`
//! (ServiceConnect). `consumerGroup` defaults to `$Default`. `from` is `committed` (the default:
//! the group's committed offset, else the oldest event), `start` (oldest stored event), `now`
//! (only new events) or a number (that offset). The answer is a long-lived
//! `application/x-ndjson` stream, one JSON object per line:
//! `{"deviceId","moduleId"(null for devices),"body","bodyEncoding":"utf-8"|"base64","systemProperties":{AMQP names such as "message-id","content-type","iothub-connection-device-id","iothub-enqueuedtime"},"applicationProperties":{name: value|null},"enqueuedTime","offset"}`.
//! The stream ends after `limit` events, or after `idleTimeoutSecs` without a new event; otherwise
//! it stays open. With `autoCommit=true` the group's offset is committed after each batch written.
//! With `deviceId=D` only events of device `D` (and its modules) are written; `limit` counts those.
//!
//! **Consumer-group offsets**: `GET /events/consumerGroups/{group}` answers
//! `{"consumerGroup","offset"(null if never committed),"firstOffset","nextOffset"}`;
//! `PUT /events/consumerGroups/{group}` with `{"offset": N}` commits N, the offset the group
//! reads next (so after processing event `k`, commit `k + 1`); 204.
//!
//! **Message routing** (see the `hub-routing` crate for the configuration's JSON shape:
//! `endpoints.webhooks`, `endpoints.files`, `routes`, `fallbackRoute`). Changing the
//! configuration needs a policy with *every* right ([`HUB_CONFIGURATION_RIGHTS`], as the
//! default `iothubowner` has), because routes can send device data anywhere; reading and
//! testing need ServiceConnect.
//!
//! | Route | Right | Answer |
//! |---|---|---|
//! | `GET /routing` | ServiceConnect | 200, the configuration in force with defaults spelt out |
//! | `PUT /routing` (the configuration) | every right | 200, the configuration now in force (stored in `DATA_DIR/routing/routing.json`, applied without restart); 400 `ArgumentInvalid` whose message lists every problem, condition errors with a caret diagram |
//! | `POST /routing/test` | ServiceConnect | 200 `{"routingSource","matchedRoutes":[..],"fallbackApplied","endpoints":[..]}`; nothing is sent |
//! | `GET /routing/stats` | ServiceConnect | 200 `{"eventsAppended","unrouted","endpoints":[{"name","kind","delivered","retries","deadLettered","droppedQueueFull","queued","lastError"?}]}` |
//!
//! The body of `POST /routing/test` follows IoT Hub's "test all routes" input:
//! `{"routingSource": "DeviceMessages" (default) | "TwinChangeEvents" | "DeviceLifecycleEvents",
//! "message": {"body": "text" or any JSON value (taken as its JSON text), "appProperties": {name: value|null},
//! "systemProperties": {"contentType", "contentEncoding", "connectionDeviceId", "messageId", ...}},
//! "twin": {"tags": .., "properties": {"desired": .., "reported": ..}}}`. Without `twin`, `$twin`
//! reads the twin of the device named by `connectionDeviceId`, if it exists. `$body` conditions
//! need `contentType` `application/json` and `contentEncoding` `utf-8` (or UTF-16/32), as in IoT Hub.
//! File endpoints write under `DATA_DIR/routing/files`.
//!
//! **CA certificates** for X.509 CA authentication, in the shape of IoT Hub's certificates API.
//! Every route needs every right ([`HUB_CONFIGURATION_RIGHTS`]). A device registered with
//! `authentication.type = certificateAuthority` connects with a client certificate whose chain
//! verifies to one of these certificates and whose subject CN is its device id. Uploads are
//! marked verified at once: IoT Hub's proof-of-possession flow (verification code) is not
//! implemented, and revocation is not checked.
//!
//! | Route | Answer |
//! |---|---|
//! | `PUT /certificates/{name}` with `{"properties": {"certificate": "<PEM or base64 DER>"}}` | 200 description; no `If-Match` creates (412 if the name exists), `If-Match` (etag or `*`) replaces (404 if missing, 412 on mismatch); 400 unless one unexpired CA certificate (`cA=true`) |
//! | `GET /certificates` | 200 `{"value": [description, ...]}` |
//! | `GET /certificates/{name}` | 200 description, 404 `NotFound` |
//! | `DELETE /certificates/{name}` (`If-Match` required: etag or `*`) | 204; 400 `ArgumentNull` without `If-Match` |
//!
//! A description is `{"name","etag","type":"Microsoft.Devices/IotHubs/Certificates","properties":
//! {"subject","expiry","thumbprint","isVerified":true,"created","updated","certificate"}}` with
//! RFC 1123 times (`Thu, 27 Nov 2026 05:10:16 GMT`), the subject as `CN=..., O=...`, the SHA-1
//! thumbprint in upper-case hex and the certificate as PEM.

#![forbid(unsafe_code)]

mod certificates;
mod device_scope;
mod error;
mod events;
mod routes;
mod routing;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Extension, State};
use axum::response::Response;
use axum::routing::{get, post};
use hub_core::Hub;
use mqtt_frontend::ClientCertificate;

pub use device_scope::DEVICE_SCOPE_API_VERSION;
pub use error::ApiError;
pub use events::{DEFAULT_CONSUMER_GROUP, event_json};
pub use mqtt_frontend::https::{ConnectionInfo, serve_connection, serve_plain, serve_router};
pub use routes::{APPLICATION_PROPERTY_HEADER_PREFIX, DEFAULT_DEVICE_LIST_SIZE, MAX_BULK_ENTRIES};
pub use routing::HUB_CONFIGURATION_RIGHTS;
pub use wire::{device_json, module_json, time_json};

/// The path of MQTT over WebSocket.
pub const WEBSOCKET_PATH: &str = "/$iothub/websocket";

/// Completes a WebSocket upgrade on [`WEBSOCKET_PATH`]: typically
/// `move |upgrade, certificate, address| frontend.upgrade_websocket(upgrade, certificate, address)`.
pub type WebSocketHandler = Arc<
    dyn Fn(WebSocketUpgrade, Option<ClientCertificate>, Option<SocketAddr>) -> Response
        + Send
        + Sync,
>;

/// Serves the service API and MQTT over WebSocket (handed to `frontend`) over TLS on `listener`.
/// Runs until the task is dropped; accept errors are logged and retried, so it does not return.
pub async fn serve<B: mqtt_frontend::Backend>(
    listener: tokio::net::TcpListener,
    tls_config: Arc<rustls::ServerConfig>,
    hub: Arc<Hub>,
    frontend: mqtt_frontend::Frontend<B>,
) -> std::io::Result<()> {
    let websocket: WebSocketHandler = Arc::new(move |upgrade, certificate, address| {
        frontend.upgrade_websocket(upgrade, certificate, address)
    });
    serve_router(listener, tls_config, router(hub, Some(websocket))).await;
    Ok(())
}

/// The service API router over `hub`; with `websocket`, also `GET /$iothub/websocket`.
pub fn router(hub: Arc<Hub>, websocket: Option<WebSocketHandler>) -> Router {
    let state = routes::ApiState { hub };
    let mut router = Router::new()
        .route("/devices", get(routes::get_devices).post(routes::bulk))
        .route("/devices/query", post(routes::query))
        .route(
            "/devices/{id}",
            get(routes::get_device)
                .put(routes::put_device)
                .delete(routes::delete_device),
        )
        .route("/devices/{id}/modules", get(routes::get_modules))
        .route(
            "/devices/{id}/modules/{mid}/devicesAndModulesInDeviceScope",
            get(device_scope::get_device_scope),
        )
        .route(
            "/devices/{id}/applyConfigurationContent",
            post(routes::apply_configuration_content),
        )
        .route(
            "/devices/{id}/modules/{mid}",
            get(routes::get_module)
                .put(routes::put_module)
                .delete(routes::delete_module),
        )
        .route(
            "/devices/{id}/commands",
            axum::routing::delete(routes::purge_c2d),
        )
        .route("/devices/{id}/messages/deviceBound", post(routes::send_c2d))
        .route("/devices/{id}/messages/devicebound", post(routes::send_c2d))
        .route(
            "/twins/{id}",
            get(routes::get_twin)
                .patch(routes::patch_twin)
                .put(routes::put_twin),
        )
        .route("/twins/{id}/methods", post(routes::invoke_device_method))
        .route(
            "/twins/{id}/modules/{mid}",
            get(routes::get_module_twin)
                .patch(routes::patch_module_twin)
                .put(routes::put_module_twin),
        )
        .route(
            "/twins/{id}/modules/{mid}/methods",
            post(routes::invoke_module_method),
        )
        .route("/statistics/devices", get(routes::device_statistics))
        .route("/statistics/service", get(routes::service_statistics))
        .route("/events", get(events::stream_events))
        .route(
            "/events/consumerGroups/{group}",
            get(events::get_consumer_group).put(events::put_consumer_group),
        )
        .route(
            "/routing",
            get(routing::get_routing).put(routing::put_routing),
        )
        .route("/routing/test", post(routing::test_route))
        .route("/routing/stats", get(routing::routing_stats))
        .route("/certificates", get(certificates::list_certificates))
        .route(
            "/certificates/{name}",
            get(certificates::get_certificate)
                .put(certificates::put_certificate)
                .delete(certificates::delete_certificate),
        )
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .with_state(state);
    if let Some(handler) = websocket {
        let websocket_router = Router::new()
            .route(WEBSOCKET_PATH, get(websocket_upgrade))
            .with_state(handler);
        router = router.merge(websocket_router);
    }
    router
}

async fn websocket_upgrade(
    State(handler): State<WebSocketHandler>,
    connection: Option<Extension<ConnectionInfo>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let (certificate, address) = match connection {
        Some(Extension(info)) => (info.client_certificate, info.remote_address),
        None => (None, None),
    };
    handler(upgrade, certificate, address)
}
