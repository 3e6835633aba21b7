//! The service REST API against a real hub (SQLite and telemetry log in a temporary directory):
//! in-process requests through the router for most cases, and one real HTTPS connection.

mod support;

use std::sync::{Arc, OnceLock, Weak};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use expect_test::expect;
use http_body_util::BodyExt;
use hub_core::{BoxFuture, C2dDelivery, DeviceConnections, Hub, MethodRequest};
use iothub_types::{DeviceId, Identity, Message};
use serde_json::Value;
use support::check;

/// The host name clients put in `HostName=`, with the port the service SDK then signs.
const HOST_WITH_PORT: &str = "localhost:8443";

/// Answers every method request with status 200 and the request payload, like an echo device.
#[derive(Default)]
struct EchoDevices {
    hub: OnceLock<Weak<Hub>>,
    online: std::sync::Mutex<Vec<Identity>>,
    c2d: std::sync::Mutex<Vec<C2dDelivery>>,
}

impl DeviceConnections for EchoDevices {
    fn accepts_methods(&self, identity: &Identity) -> bool {
        self.online.lock().unwrap().contains(identity)
    }

    fn accepts_c2d(&self, device_id: &DeviceId) -> bool {
        self.online
            .lock()
            .unwrap()
            .contains(&Identity::device(device_id.clone()))
    }

    fn send_method_request<'a>(
        &'a self,
        identity: &'a Identity,
        request: MethodRequest,
    ) -> BoxFuture<'a, bool> {
        let hub = self.hub.get().and_then(Weak::upgrade).expect("hub");
        let identity = identity.clone();
        tokio::spawn(async move {
            hub.complete_method(&identity, &request.request_id, 200, &request.payload);
        });
        Box::pin(async { true })
    }

    fn send_desired_patch<'a>(&'a self, _: &'a Identity, _: u64, _: Bytes) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn send_c2d(&self, delivery: C2dDelivery) -> BoxFuture<'_, bool> {
        self.c2d.lock().unwrap().push(delivery);
        Box::pin(async { true })
    }

    fn disconnect<'a>(&'a self, _: &'a Identity) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// The shared fixture with [`EchoDevices`] attached to its hub.
struct Api {
    base: support::Api,
    devices: Arc<EchoDevices>,
}

impl std::ops::Deref for Api {
    type Target = support::Api;

    fn deref(&self) -> &support::Api {
        &self.base
    }
}

impl Api {
    async fn new() -> Api {
        let base = support::Api::new().await;
        let devices = Arc::new(EchoDevices::default());
        devices.hub.set(Arc::downgrade(&base.hub)).ok();
        base.hub.attach_connections(devices.clone());
        Api { base, devices }
    }

    /// A token of `policy` signed, as the service SDK does, with the port in the host name.
    fn token(&self, policy: &str) -> String {
        self.policy_token(policy, HOST_WITH_PORT)
    }

    /// Sends a request as `policy` (or without credentials) and returns status, headers and body.
    async fn send(
        &self,
        policy: Option<&str>,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, HeaderMap, String) {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{path}{separator}api-version=2021-04-12"));
        if let Some(policy) = policy {
            request = request.header("authorization", self.token(policy));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !body.is_empty() {
            request = request.header("content-type", "application/json; charset=utf-8");
        }
        let request = request.body(Body::from(body.to_owned())).expect("request");
        let (status, headers, bytes) = self.call(request).await;
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// Like [`Api::send`] as `iothubowner`, rendered as one line for snapshots.
    async fn line(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> String {
        let (status, response_headers, text) = self
            .send(Some("iothubowner"), method.clone(), path, headers, body)
            .await;
        render(&method, path, status, &response_headers, &text)
    }
}

/// Replaces values that change from run to run (keys, times, generation ids, tracking ids).
fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                let volatile = matches!(
                    key.as_str(),
                    "primaryKey"
                        | "secondaryKey"
                        | "generationId"
                        | "statusUpdatedTime"
                        | "statusUpdateTime"
                        | "$lastUpdated"
                        | "ExceptionMessage"
                        | "enqueuedTime"
                        | "iothub-enqueuedtime"
                        | "iothub-connection-auth-generation-id"
                        | "expiryTimeUtc"
                        | "messageId"
                        | "deviceScope"
                );
                if volatile && !child.is_null() {
                    *child = Value::String("<redacted>".to_owned());
                } else {
                    redact(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn render(
    method: &Method,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    text: &str,
) -> String {
    let mut extras = Vec::new();
    for name in [
        "iothub-errorcode",
        "etag",
        "x-ms-item-type",
        "x-ms-continuation",
    ] {
        if let Some(value) = headers.get(name) {
            extras.push(format!("{name}={}", value.to_str().unwrap_or("?")));
        }
    }
    let body = match serde_json::from_str::<Value>(text) {
        Ok(mut value) => {
            redact(&mut value);
            value.to_string()
        }
        Err(_) => text.to_owned(),
    };
    format!(
        "{method} {path} -> {} [{}] {body}",
        status.as_u16(),
        extras.join(" ")
    )
}

#[tokio::test]
async fn device_registry_crud_with_etags() {
    let api = Api::new().await;
    let if_match = |etag: &'static str| [("if-match", etag)];
    let mut lines = vec![
        api.line(Method::PUT, "/devices/dev1", &[], r#"{"deviceId":"dev1","status":"enabled","authentication":{"symmetricKey":{},"type":"sas"},"capabilities":{"iotEdge":false}}"#).await,
        api.line(Method::PUT, "/devices/dev1", &[], r#"{"deviceId":"dev1"}"#).await,
        api.line(Method::PUT, "/devices/dev1", &if_match("\"Nzk5\""), r#"{"deviceId":"dev1","status":"disabled"}"#).await,
        api.line(Method::PUT, "/devices/dev1", &if_match("\"MQ==\""), r#"{"deviceId":"dev1","status":"disabled","statusReason":"maintenance"}"#).await,
        api.line(Method::PUT, "/devices/dev1", &if_match("Mg=="), r#"{"deviceId":"dev1","status":"enabled","authentication":{"x509Thumbprint":{"primaryThumbprint":"ABABABABABABABABABABABABABABABABABABABAB"},"type":"selfSigned"}}"#).await,
        api.line(Method::PUT, "/devices/dev2", &[], r#"{"deviceId":"other"}"#).await,
        api.line(Method::PUT, "/devices/dev%201", &[], r#"{}"#).await,
        api.line(Method::PUT, "/devices/dev3", &[], r#"{"status":"sleepy"}"#).await,
        api.line(Method::PUT, "/devices/dev3", &[], r#"not json"#).await,
        api.line(Method::PUT, "/devices/edge1", &[], r#"{"deviceId":"edge1","capabilities":{"iotEdge":true}}"#).await,
        api.line(Method::GET, "/devices/edge1/modules", &[], "").await,
        api.line(Method::PUT, "/devices/edge1/modules/mod1", &[], r#"{"moduleId":"mod1","managedBy":"iotEdge","deviceId":"edge1","authentication":{"symmetricKey":{},"type":"sas"}}"#).await,
        api.line(Method::PUT, "/devices/edge1/modules/mod1", &[], r#"{"moduleId":"mod1"}"#).await,
        api.line(Method::GET, "/devices/edge1/modules/mod1", &[], "").await,
        api.line(Method::DELETE, "/devices/edge1/modules/mod1", &if_match("\"bad\""), "").await,
        api.line(Method::DELETE, "/devices/edge1/modules/mod1", &if_match("\"*\""), "").await,
        api.line(Method::GET, "/devices?top=10", &[], "").await,
        api.line(Method::GET, "/statistics/devices", &[], "").await,
        api.line(Method::DELETE, "/devices/dev1", &if_match("\"MQ==\""), "").await,
        api.line(Method::DELETE, "/devices/dev1", &if_match("\"*\""), "").await,
        api.line(Method::GET, "/devices/dev1", &[], "").await,
        api.line(Method::GET, "/nowhere", &[], "").await,
        api.line(Method::PATCH, "/devices/dev1", &[], "").await,
    ];
    lines.push(api.line(Method::GET, "/statistics/service", &[], "").await);
    check(
        lines,
        expect![[r#"
        PUT /devices/dev1 -> 200 [etag="MQ=="] {"authentication":{"symmetricKey":{"primaryKey":"<redacted>","secondaryKey":"<redacted>"},"type":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}},"capabilities":{"iotEdge":false},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","connectionStateUpdatedTime":"0001-01-01T00:00:00Z","deviceId":"dev1","deviceScope":null,"etag":"MQ==","generationId":"<redacted>","lastActivityTime":"0001-01-01T00:00:00Z","parentScopes":[],"status":"enabled","statusReason":null,"statusUpdatedTime":"<redacted>"}
        PUT /devices/dev1 -> 409 [iothub-errorcode=DeviceAlreadyExists] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:DeviceAlreadyExists;device dev1 already exists"}
        PUT /devices/dev1 -> 412 [iothub-errorcode=PreconditionFailed] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:PreconditionFailed;the etag \"Nzk5\" does not match the current etag MQ=="}
        PUT /devices/dev1 -> 200 [etag="Mg=="] {"authentication":{"symmetricKey":{"primaryKey":"<redacted>","secondaryKey":"<redacted>"},"type":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}},"capabilities":{"iotEdge":false},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","connectionStateUpdatedTime":"0001-01-01T00:00:00Z","deviceId":"dev1","deviceScope":null,"etag":"Mg==","generationId":"<redacted>","lastActivityTime":"0001-01-01T00:00:00Z","parentScopes":[],"status":"disabled","statusReason":"maintenance","statusUpdatedTime":"<redacted>"}
        PUT /devices/dev1 -> 200 [etag="Mw=="] {"authentication":{"symmetricKey":{"primaryKey":null,"secondaryKey":null},"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"ABABABABABABABABABABABABABABABABABABABAB","secondaryThumbprint":null}},"capabilities":{"iotEdge":false},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","connectionStateUpdatedTime":"0001-01-01T00:00:00Z","deviceId":"dev1","deviceScope":null,"etag":"Mw==","generationId":"<redacted>","lastActivityTime":"0001-01-01T00:00:00Z","parentScopes":[],"status":"enabled","statusReason":"maintenance","statusUpdatedTime":"<redacted>"}
        PUT /devices/dev2 -> 400 [iothub-errorcode=ArgumentInvalid] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ArgumentInvalid;deviceId \"other\" in the body differs from \"dev2\" in the path"}
        PUT /devices/dev%201 -> 400 [iothub-errorcode=ArgumentInvalid] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ArgumentInvalid;invalid device id \"dev 1\": device id contains the character ' ' at byte 3, which IoT Hub does not allow"}
        PUT /devices/dev3 -> 400 [iothub-errorcode=ArgumentInvalid] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ArgumentInvalid;status must be enabled or disabled, not \"sleepy\""}
        PUT /devices/dev3 -> 400 [iothub-errorcode=ArgumentInvalid] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ArgumentInvalid;invalid request body: expected ident at line 1 column 2"}
        PUT /devices/edge1 -> 200 [etag="MQ=="] {"authentication":{"symmetricKey":{"primaryKey":"<redacted>","secondaryKey":"<redacted>"},"type":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}},"capabilities":{"iotEdge":true},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","connectionStateUpdatedTime":"0001-01-01T00:00:00Z","deviceId":"edge1","deviceScope":"<redacted>","etag":"MQ==","generationId":"<redacted>","lastActivityTime":"0001-01-01T00:00:00Z","parentScopes":[],"status":"enabled","statusReason":null,"statusUpdatedTime":"<redacted>"}
        GET /devices/edge1/modules -> 200 [] [{"authentication":{"symmetricKey":{"primaryKey":"<redacted>","secondaryKey":"<redacted>"},"type":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","connectionStateUpdatedTime":"0001-01-01T00:00:00Z","deviceId":"edge1","etag":"MQ==","generationId":"<redacted>","lastActivityTime":"0001-01-01T00:00:00Z","managedBy":null,"moduleId":"$edgeAgent"},{"authentication":{"symmetricKey":{"primaryKey":"<redacted>","secondaryKey":"<redacted>"},"type":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","connectionStateUpdatedTime":"0001-01-01T00:00:00Z","deviceId":"edge1","etag":"MQ==","generationId":"<redacted>","lastActivityTime":"0001-01-01T00:00:00Z","managedBy":null,"moduleId":"$edgeHub"}]
        PUT /devices/edge1/modules/mod1 -> 200 [etag="MQ=="] {"authentication":{"symmetricKey":{"primaryKey":"<redacted>","secondaryKey":"<redacted>"},"type":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","connectionStateUpdatedTime":"0001-01-01T00:00:00Z","deviceId":"edge1","etag":"MQ==","generationId":"<redacted>","lastActivityTime":"0001-01-01T00:00:00Z","managedBy":"iotEdge","moduleId":"mod1"}
        PUT /devices/edge1/modules/mod1 -> 409 [iothub-errorcode=ModuleAlreadyExistsOnDevice] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ModuleAlreadyExistsOnDevice;module mod1 already exists on device edge1"}
        GET /devices/edge1/modules/mod1 -> 200 [etag="MQ=="] {"authentication":{"symmetricKey":{"primaryKey":"<redacted>","secondaryKey":"<redacted>"},"type":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","connectionStateUpdatedTime":"0001-01-01T00:00:00Z","deviceId":"edge1","etag":"MQ==","generationId":"<redacted>","lastActivityTime":"0001-01-01T00:00:00Z","managedBy":"iotEdge","moduleId":"mod1"}
        DELETE /devices/edge1/modules/mod1 -> 412 [iothub-errorcode=PreconditionFailed] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:PreconditionFailed;the etag \"bad\" does not match the current etag MQ=="}
        DELETE /devices/edge1/modules/mod1 -> 204 [] 
        GET /devices?top=10 -> 200 [] [{"authentication":{"symmetricKey":{"primaryKey":null,"secondaryKey":null},"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"ABABABABABABABABABABABABABABABABABABABAB","secondaryThumbprint":null}},"capabilities":{"iotEdge":false},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","connectionStateUpdatedTime":"0001-01-01T00:00:00Z","deviceId":"dev1","deviceScope":null,"etag":"Mw==","generationId":"<redacted>","lastActivityTime":"0001-01-01T00:00:00Z","parentScopes":[],"status":"enabled","statusReason":"maintenance","statusUpdatedTime":"<redacted>"},{"authentication":{"symmetricKey":{"primaryKey":"<redacted>","secondaryKey":"<redacted>"},"type":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}},"capabilities":{"iotEdge":true},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","connectionStateUpdatedTime":"0001-01-01T00:00:00Z","deviceId":"edge1","deviceScope":"<redacted>","etag":"MQ==","generationId":"<redacted>","lastActivityTime":"0001-01-01T00:00:00Z","parentScopes":[],"status":"enabled","statusReason":null,"statusUpdatedTime":"<redacted>"}]
        GET /statistics/devices -> 200 [] {"disabledDeviceCount":0,"enabledDeviceCount":2,"totalDeviceCount":2}
        DELETE /devices/dev1 -> 412 [iothub-errorcode=PreconditionFailed] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:PreconditionFailed;the etag \"MQ==\" does not match the current etag Mw=="}
        DELETE /devices/dev1 -> 204 [] 
        GET /devices/dev1 -> 404 [iothub-errorcode=DeviceNotFound] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:DeviceNotFound;device dev1 does not exist"}
        GET /nowhere -> 404 [iothub-errorcode=NotFound] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:NotFound;no such resource; see the hub-api crate documentation for the routes"}
        PATCH /devices/dev1 -> 405 [iothub-errorcode=ArgumentInvalid] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ArgumentInvalid;this method is not allowed on this resource"}
        GET /statistics/service -> 200 [] {"connectedDeviceCount":0}"#]],
    );
}

#[tokio::test]
async fn policies_grant_only_their_rights() {
    let api = Api::new().await;
    api.line(Method::PUT, "/devices/dev1", &[], "{}").await;
    let mut lines = Vec::new();
    for (policy, method, path, body) in [
        (Some("registryRead"), Method::GET, "/devices/dev1", ""),
        (Some("registryRead"), Method::PUT, "/devices/dev2", "{}"),
        (
            Some("registryRead"),
            Method::POST,
            "/twins/dev1/methods",
            r#"{"methodName":"m"}"#,
        ),
        (
            Some("registryReadWrite"),
            Method::PUT,
            "/devices/dev2",
            "{}",
        ),
        (Some("service"), Method::PUT, "/devices/dev3", "{}"),
        (Some("service"), Method::GET, "/devices/dev1", ""),
        (Some("service"), Method::GET, "/twins/dev1", ""),
        (Some("device"), Method::GET, "/twins/dev1", ""),
        (None, Method::GET, "/devices", ""),
    ] {
        let (status, headers, text) = api.send(policy, method.clone(), path, &[], body).await;
        let code = headers
            .get("iothub-errorcode")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-");
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|value| {
                value
                    .get("Message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        lines.push(format!(
            "{} {method} {path} -> {} {code} {message}",
            policy.unwrap_or("anonymous"),
            status.as_u16()
        ));
    }
    check(
        lines,
        expect![[r#"
        registryRead GET /devices/dev1 -> 200 - 
        registryRead PUT /devices/dev2 -> 401 IotHubUnauthorizedAccess ErrorCode:IotHubUnauthorizedAccess;policy registryRead lacks the RegistryWrite right (RegistryRead granted)
        registryRead POST /twins/dev1/methods -> 401 IotHubUnauthorizedAccess ErrorCode:IotHubUnauthorizedAccess;policy registryRead lacks the ServiceConnect right (RegistryRead granted)
        registryReadWrite PUT /devices/dev2 -> 200 - 
        service PUT /devices/dev3 -> 401 IotHubUnauthorizedAccess ErrorCode:IotHubUnauthorizedAccess;policy service lacks the RegistryWrite right (ServiceConnect granted)
        service GET /devices/dev1 -> 401 IotHubUnauthorizedAccess ErrorCode:IotHubUnauthorizedAccess;policy service lacks the RegistryRead right (ServiceConnect granted)
        service GET /twins/dev1 -> 200 - 
        device GET /twins/dev1 -> 401 IotHubUnauthorizedAccess ErrorCode:IotHubUnauthorizedAccess;policy device lacks the RegistryRead right (DeviceConnect granted)
        anonymous GET /devices -> 401 IotHubUnauthorizedAccess ErrorCode:IotHubUnauthorizedAccess;the request has no Authorization header"#]],
    );
}

#[tokio::test]
async fn twins_update_replace_and_etags() {
    let api = Api::new().await;
    api.line(Method::PUT, "/devices/dev1", &[], "{}").await;
    api.line(Method::PUT, "/devices/dev1/modules/m1", &[], "{}")
        .await;
    let lines = vec![
        api.line(Method::GET, "/twins/dev1", &[], "").await,
        api.line(Method::PATCH, "/twins/dev1", &[("if-match", "\"AAAAAAAAAAE=\"")], r#"{"tags":{"a":1},"properties":{"desired":{"fan":"on","x":null}}}"#).await,
        api.line(Method::PATCH, "/twins/dev1", &[("if-match", "\"AAAAAAAAAAE=\"")], r#"{"tags":{"a":2}}"#).await,
        api.line(Method::PUT, "/twins/dev1", &[("if-match", "\"*\"")], r#"{"tags":{"b":1},"properties":{"desired":{"fan":"off"},"reported":{"ignored":true}}}"#).await,
        api.line(Method::PATCH, "/twins/dev1", &[], r#"{"properties":{"desired":{"bad key":1}}}"#).await,
        api.line(Method::PATCH, "/twins/dev1", &[], r#"[1,2]"#).await,
        api.line(Method::PATCH, "/twins/dev1/modules/m1", &[], r#"{"properties":{"desired":{"rate":5}}}"#).await,
        api.line(Method::GET, "/twins/dev1/modules/m2", &[], "").await,
    ];
    check(
        lines,
        expect![[r#"
            GET /twins/dev1 -> 200 [etag="AAAAAAAAAAE="] {"authenticationType":"sas","capabilities":{"iotEdge":false},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","deviceEtag":"MQ==","deviceId":"dev1","etag":"AAAAAAAAAAE=","lastActivityTime":"0001-01-01T00:00:00Z","modelId":"","parentScopes":[],"properties":{"desired":{"$metadata":{"$lastUpdated":"<redacted>"},"$version":1},"reported":{"$metadata":{"$lastUpdated":"<redacted>"},"$version":1}},"status":"enabled","statusReason":null,"statusUpdateTime":"<redacted>","tags":{},"version":2,"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}}
            PATCH /twins/dev1 -> 200 [etag="AAAAAAAAAAI="] {"authenticationType":"sas","capabilities":{"iotEdge":false},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","deviceEtag":"MQ==","deviceId":"dev1","etag":"AAAAAAAAAAI=","lastActivityTime":"0001-01-01T00:00:00Z","modelId":"","parentScopes":[],"properties":{"desired":{"$metadata":{"$lastUpdated":"<redacted>","$lastUpdatedVersion":2,"fan":{"$lastUpdated":"<redacted>","$lastUpdatedVersion":2}},"$version":2,"fan":"on"},"reported":{"$metadata":{"$lastUpdated":"<redacted>"},"$version":1}},"status":"enabled","statusReason":null,"statusUpdateTime":"<redacted>","tags":{"a":1},"version":3,"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}}
            PATCH /twins/dev1 -> 412 [iothub-errorcode=PreconditionFailed] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:PreconditionFailed;precondition failed: If-Match \"\\\"AAAAAAAAAAE=\\\"\" does not match the current etag \"AAAAAAAAAAI=\""}
            PUT /twins/dev1 -> 200 [etag="AAAAAAAAAAM="] {"authenticationType":"sas","capabilities":{"iotEdge":false},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","deviceEtag":"MQ==","deviceId":"dev1","etag":"AAAAAAAAAAM=","lastActivityTime":"0001-01-01T00:00:00Z","modelId":"","parentScopes":[],"properties":{"desired":{"$metadata":{"$lastUpdated":"<redacted>","$lastUpdatedVersion":3,"fan":{"$lastUpdated":"<redacted>","$lastUpdatedVersion":3}},"$version":3,"fan":"off"},"reported":{"$metadata":{"$lastUpdated":"<redacted>"},"$version":1}},"status":"enabled","statusReason":null,"statusUpdateTime":"<redacted>","tags":{"b":1},"version":4,"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}}
            PATCH /twins/dev1 -> 400 [iothub-errorcode=ArgumentInvalid] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ArgumentInvalid;key \"bad key\" under properties.desired contains the forbidden character ' '"}
            PATCH /twins/dev1 -> 400 [iothub-errorcode=ArgumentInvalid] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ArgumentInvalid;twin must be an object, found an array"}
            PATCH /twins/dev1/modules/m1 -> 200 [etag="AAAAAAAAAAI="] {"authenticationType":"sas","cloudToDeviceMessageCount":0,"connectionState":"Disconnected","deviceEtag":"MQ==","deviceId":"dev1","etag":"AAAAAAAAAAI=","lastActivityTime":"0001-01-01T00:00:00Z","modelId":"","moduleId":"m1","properties":{"desired":{"$metadata":{"$lastUpdated":"<redacted>","$lastUpdatedVersion":2,"rate":{"$lastUpdated":"<redacted>","$lastUpdatedVersion":2}},"$version":2,"rate":5},"reported":{"$metadata":{"$lastUpdated":"<redacted>"},"$version":1}},"status":"enabled","statusReason":null,"statusUpdateTime":"<redacted>","tags":{},"version":3,"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}}
            GET /twins/dev1/modules/m2 -> 404 [iothub-errorcode=ModuleNotFound] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ModuleNotFound;module m2 does not exist on device dev1"}"#]],
    );
}

#[tokio::test]
async fn bulk_query_methods_and_c2d() {
    let api = Api::new().await;
    let mut lines = vec![
        api.line(Method::POST, "/devices", &[], r#"[{"id":"b1","importMode":"create","status":"enabled","authentication":{"symmetricKey":{"primaryKey":"a2V5","secondaryKey":"a2V5"},"type":"sas"}},{"id":"b2","importMode":"create","tags":{"site":"north"}},{"id":"b3","importMode":"create","properties":{"desired":{"rate":1}}}]"#).await,
        api.line(Method::POST, "/devices", &[], r#"[{"id":"b1","importMode":"create"},{"id":"b4","importMode":"create"},{"id":"b4","importMode":"delete"},{"id":"ghost","importMode":"delete"},{"id":"b2","importMode":"updateTwinIfMatchETag","twinETag":"nope","tags":{"x":1}}]"#).await,
    ];
    let too_many: Vec<Value> = (0..101)
        .map(|index| serde_json::json!({"id": format!("d{index}")}))
        .collect();
    lines.push(
        api.line(
            Method::POST,
            "/devices",
            &[],
            &Value::Array(too_many).to_string(),
        )
        .await,
    );
    api.line(Method::PUT, "/devices/b1/modules/m1", &[], "{}")
        .await;
    lines.extend([
        api.line(
            Method::POST,
            "/devices/query",
            &[("x-ms-max-item-count", "2")],
            r#"{"query":"SELECT deviceId, tags.site FROM devices"}"#,
        )
        .await,
        api.line(
            Method::POST,
            "/devices/query",
            &[("x-ms-max-item-count", "2"), ("x-ms-continuation", "2")],
            r#"{"query":"SELECT deviceId FROM devices"}"#,
        )
        .await,
        api.line(
            Method::POST,
            "/devices/query",
            &[],
            r#"{"query":"SELECT COUNT() AS n FROM devices WHERE properties.desired.rate = 1"}"#,
        )
        .await,
        api.line(
            Method::POST,
            "/devices/query",
            &[],
            r#"{"query":"SELECT * FROM devices.modules"}"#,
        )
        .await,
        api.line(
            Method::POST,
            "/devices/query",
            &[],
            r#"{"query":"SELECT * FROM nowhere"}"#,
        )
        .await,
        api.line(
            Method::POST,
            "/twins/b1/methods",
            &[],
            r#"{"methodName":"reboot","payload":{"delay":1},"responseTimeoutInSeconds":30}"#,
        )
        .await,
        api.line(
            Method::POST,
            "/twins/ghost/methods",
            &[],
            r#"{"methodName":"reboot"}"#,
        )
        .await,
    ]);
    api.devices
        .online
        .lock()
        .unwrap()
        .push(Identity::device(DeviceId::new("b1").expect("id")));
    lines.extend([
        api.line(
            Method::POST,
            "/twins/b1/methods",
            &[],
            r#"{"methodName":"reboot","payload":{"delay":1},"responseTimeoutInSeconds":30}"#,
        )
        .await,
        api.line(Method::POST, "/twins/b1/methods", &[], r#"{"payload":1}"#)
            .await,
        api.line(
            Method::POST,
            "/twins/b1/modules/m1/methods",
            &[],
            r#"{"methodName":"m","payload":"str"}"#,
        )
        .await,
        api.line(
            Method::POST,
            "/devices/b1/messages/deviceBound",
            &[
                ("iothub-messageid", "m-1"),
                ("iothub-correlationid", "c-1"),
                ("iothub-app-Prop1", "v 1"),
                ("iothub-ack", "full"),
                ("iothub-contenttype", "application/json"),
            ],
            r#"{"hello":1}"#,
        )
        .await,
        api.line(
            Method::POST,
            "/devices/b1/messages/deviceBound",
            &[("iothub-ack", "sometimes")],
            "x",
        )
        .await,
        api.line(
            Method::POST,
            "/devices/ghost/messages/deviceBound",
            &[],
            "x",
        )
        .await,
    ]);
    let delivered = api.devices.c2d.lock().unwrap().clone();
    lines.push(format!(
        "delivered: {:?}",
        delivered
            .iter()
            .map(|delivery| (
                &delivery.message.system.message_id,
                &delivery.message.system.ack,
                &delivery.message.application
            ))
            .collect::<Vec<_>>()
    ));
    for _ in 0..49 {
        api.line(Method::POST, "/devices/b2/messages/deviceBound", &[], "x")
            .await;
    }
    lines.push(
        api.line(Method::POST, "/devices/b2/messages/deviceBound", &[], "x")
            .await,
    );
    lines.push(
        api.line(Method::POST, "/devices/b2/messages/deviceBound", &[], "x")
            .await,
    );
    lines.push(api.line(Method::GET, "/devices/b2", &[], "").await);
    lines.push(
        api.line(Method::DELETE, "/devices/b2/commands", &[], "")
            .await,
    );
    check(
        lines,
        expect![[r#"
            POST /devices -> 200 [] {"errors":[],"isSuccessful":true,"warnings":[]}
            POST /devices -> 400 [] {"errors":[{"deviceId":"b1","errorCode":"DeviceAlreadyExists","errorStatus":"device b1 already exists","moduleId":null,"operation":"create"},{"deviceId":"b4","errorCode":"DeviceDefinedMultipleTimes","errorStatus":"the identity appears more than once in the request","moduleId":null,"operation":"delete"},{"deviceId":"ghost","errorCode":"DeviceNotFound","errorStatus":"device ghost does not exist","moduleId":null,"operation":"delete"},{"deviceId":"b2","errorCode":"ArgumentInvalid","errorStatus":"precondition failed: If-Match \"nope\" does not match the current etag \"AAAAAAAAAAI=\"","moduleId":null,"operation":"updateTwinIfMatchETag"}],"isSuccessful":false,"warnings":[]}
            POST /devices -> 400 [iothub-errorcode=TooManyDevices] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:TooManyDevices;a bulk call takes at most 100 entries, got 101"}
            POST /devices/query -> 200 [x-ms-item-type=raw x-ms-continuation=2] [{"deviceId":"b1"},{"deviceId":"b2","site":"north"}]
            POST /devices/query -> 200 [x-ms-item-type=raw] [{"deviceId":"b3"},{"deviceId":"b4"}]
            POST /devices/query -> 200 [x-ms-item-type=raw] [{"n":1}]
            POST /devices/query -> 200 [x-ms-item-type=twin] [{"authenticationType":"sas","cloudToDeviceMessageCount":0,"connectionState":"Disconnected","deviceEtag":"MQ==","deviceId":"b1","etag":"AAAAAAAAAAE=","lastActivityTime":"0001-01-01T00:00:00Z","modelId":"","moduleId":"m1","properties":{"desired":{"$metadata":{"$lastUpdated":"<redacted>"},"$version":1},"reported":{"$metadata":{"$lastUpdated":"<redacted>"},"$version":1}},"status":"enabled","statusReason":null,"statusUpdateTime":"<redacted>","tags":{},"version":2,"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}}]
            POST /devices/query -> 400 [iothub-errorcode=ArgumentInvalid] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ArgumentInvalid;invalid query: error: expected `devices`, `devices.modules` or `devices.jobs`, found `nowhere`\n --> 1:15\n  |\n1 | SELECT * FROM nowhere\n  |               ^^^^^^^\n"}
            POST /twins/b1/methods -> 404 [iothub-errorcode=DeviceNotOnline] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:DeviceNotOnline;b1 is not online"}
            POST /twins/ghost/methods -> 404 [iothub-errorcode=DeviceNotFound] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:DeviceNotFound;device ghost does not exist"}
            POST /twins/b1/methods -> 200 [] {"payload":{"delay":1},"status":200}
            POST /twins/b1/methods -> 400 [iothub-errorcode=ArgumentNull] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ArgumentNull;methodName is required"}
            POST /twins/b1/modules/m1/methods -> 404 [iothub-errorcode=DeviceNotOnline] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:DeviceNotOnline;b1/m1 is not online"}
            POST /devices/b1/messages/deviceBound -> 200 [] {"expiryTimeUtc":"<redacted>","messageId":"<redacted>","sequenceNumber":1}
            POST /devices/b1/messages/deviceBound -> 400 [iothub-errorcode=ArgumentInvalid] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ArgumentInvalid;iothub-ack: \"sometimes\" is not an ack mode (expected none, positive, negative or full)"}
            POST /devices/ghost/messages/deviceBound -> 404 [iothub-errorcode=DeviceNotFound] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:DeviceNotFound;device ghost does not exist"}
            delivered: [(Some("m-1"), Some(Full), [("prop1", Some("v 1"))])]
            POST /devices/b2/messages/deviceBound -> 200 [] {"expiryTimeUtc":"<redacted>","messageId":"<redacted>","sequenceNumber":51}
            POST /devices/b2/messages/deviceBound -> 403 [iothub-errorcode=DeviceMaximumQueueDepthExceeded] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:DeviceMaximumQueueDepthExceeded;the cloud-to-device queue of device b2 already holds 50 messages"}
            GET /devices/b2 -> 200 [etag="MQ=="] {"authentication":{"symmetricKey":{"primaryKey":"<redacted>","secondaryKey":"<redacted>"},"type":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}},"capabilities":{"iotEdge":false},"cloudToDeviceMessageCount":50,"connectionState":"Disconnected","connectionStateUpdatedTime":"0001-01-01T00:00:00Z","deviceId":"b2","deviceScope":null,"etag":"MQ==","generationId":"<redacted>","lastActivityTime":"0001-01-01T00:00:00Z","parentScopes":[],"status":"enabled","statusReason":null,"statusUpdatedTime":"<redacted>"}
            DELETE /devices/b2/commands -> 200 [] {"deviceId":"b2","moduleId":null,"totalMessagesPurged":50}"#]],
    );
}

#[tokio::test]
async fn telemetry_streams_as_json_lines_with_consumer_groups() {
    let api = Api::new().await;
    api.line(Method::PUT, "/devices/dev1", &[], "{}").await;
    let sender = hub_core::AuthenticatedDevice {
        identity: Identity::device(DeviceId::new("dev1").expect("id")),
        method: hub_core::AuthMethod::DeviceSas,
        generation_id: "1".to_owned(),
        token_expiry_unix_secs: None,
    };
    let mut message = Message::new(Bytes::from_static(b"{\"temp\":21}"))
        .with_application_property("alert", Some("high"));
    message.system.message_id = Some("mid-1".to_owned());
    api.hub
        .ingest_telemetry(&sender, message)
        .await
        .expect("ingest");
    api.hub
        .ingest_telemetry(
            &sender,
            Message::new(vec![0xffu8, 0xfe]).with_application_property("flag", None::<String>),
        )
        .await
        .expect("ingest");
    let mut lines = vec![
        api.line(Method::GET, "/events/consumerGroups/cg1", &[], "")
            .await,
    ];
    let (status, headers, text) = api
        .send(
            Some("service"),
            Method::GET,
            "/events?consumerGroup=cg1&from=start&limit=2&autoCommit=true",
            &[],
            "",
        )
        .await;
    lines.push(format!(
        "stream {} {:?}",
        status.as_u16(),
        headers.get("content-type")
    ));
    for line in text.lines() {
        let mut value: Value = serde_json::from_str(line).expect("json line");
        redact(&mut value);
        lines.push(value.to_string());
    }
    lines.push(
        api.line(Method::GET, "/events/consumerGroups/cg1", &[], "")
            .await,
    );
    lines.push(
        api.line(
            Method::PUT,
            "/events/consumerGroups/cg1",
            &[],
            r#"{"offset":1}"#,
        )
        .await,
    );
    let (_, _, text) = api
        .send(
            Some("service"),
            Method::GET,
            "/events?consumerGroup=cg1&idleTimeoutSecs=0",
            &[],
            "",
        )
        .await;
    lines.push(format!(
        "from committed: {:?}",
        text.lines()
            .map(|line| serde_json::from_str::<Value>(line).expect("json")["offset"].clone())
            .collect::<Vec<_>>()
    ));
    let (_, _, text) = api
        .send(
            Some("service"),
            Method::GET,
            "/events?from=now&idleTimeoutSecs=0",
            &[],
            "",
        )
        .await;
    lines.push(format!("from now: {} lines", text.lines().count()));
    lines.push(
        api.line(Method::GET, "/events?from=yesterday", &[], "")
            .await,
    );
    let (status, _, _) = api
        .send(
            Some("registryRead"),
            Method::GET,
            "/events?from=start&limit=1",
            &[],
            "",
        )
        .await;
    lines.push(format!("registryRead streaming: {}", status.as_u16()));
    check(
        lines,
        expect![[r#"
        GET /events/consumerGroups/cg1 -> 200 [] {"consumerGroup":"cg1","firstOffset":0,"nextOffset":2,"offset":null}
        stream 200 Some("application/x-ndjson")
        {"applicationProperties":{"alert":"high"},"body":"{\"temp\":21}","bodyEncoding":"utf-8","deviceId":"dev1","enqueuedTime":"<redacted>","moduleId":null,"offset":0,"systemProperties":{"iothub-connection-auth-generation-id":"<redacted>","iothub-connection-auth-method":"{\"scope\":\"device\",\"type\":\"sas\",\"issuer\":\"iothub\"}","iothub-connection-device-id":"dev1","iothub-enqueuedtime":"<redacted>","message-id":"mid-1"}}
        {"applicationProperties":{"flag":null},"body":"//4=","bodyEncoding":"base64","deviceId":"dev1","enqueuedTime":"<redacted>","moduleId":null,"offset":1,"systemProperties":{"iothub-connection-auth-generation-id":"<redacted>","iothub-connection-auth-method":"{\"scope\":\"device\",\"type\":\"sas\",\"issuer\":\"iothub\"}","iothub-connection-device-id":"dev1","iothub-enqueuedtime":"<redacted>"}}
        GET /events/consumerGroups/cg1 -> 200 [] {"consumerGroup":"cg1","firstOffset":0,"nextOffset":2,"offset":2}
        PUT /events/consumerGroups/cg1 -> 204 [] 
        from committed: [Number(1)]
        from now: 0 lines
        GET /events?from=yesterday -> 400 [iothub-errorcode=ArgumentInvalid] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ArgumentInvalid;from must be start, now, committed or an offset, not \"yesterday\""}
        registryRead streaming: 401"#]],
    );
}

#[tokio::test]
async fn https_listener_serves_the_api_over_tls() {
    let api = Api::new().await;
    let authority =
        tls::CertificateAuthority::generate("test CA", tls::CertificateValidity::days_from_now(2))
            .expect("ca");
    let server_certificate = authority
        .issue_server_certificate(&tls::ServerCertificateRequest {
            common_name: "localhost".to_owned(),
            dns_names: vec!["localhost".to_owned()],
            ip_addresses: vec![],
            validity: tls::CertificateValidity::days_from_now(2),
        })
        .expect("server certificate");
    let resolver =
        Arc::new(tls::ReloadableCertificateResolver::new(&server_certificate).expect("resolver"));
    let server_config = tls::server_config(resolver, tls::ClientCertificates::AcceptAnyOptional)
        .expect("server config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let server = tokio::spawn(hub_api::serve_router(
        listener,
        Arc::new(server_config),
        api.router.clone(),
    ));

    let client_config =
        tls::client_config(&[authority.certificate().clone()]).expect("client config");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let server_name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let stream = connector
        .connect(server_name, tcp)
        .await
        .expect("TLS handshake");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("HTTP handshake");
    tokio::spawn(connection);
    let mut lines = Vec::new();
    for (path, body) in [
        ("/devices/tls1?api-version=2021-04-12", "{}"),
        ("/statistics/devices?api-version=2021-04-12", ""),
    ] {
        let method = if body.is_empty() {
            Method::GET
        } else {
            Method::PUT
        };
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header("host", HOST_WITH_PORT)
            .header("authorization", api.token("iothubowner"))
            .body(http_body_util::Full::new(Bytes::from(body)))
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        lines.push(render(
            &method,
            path,
            status,
            &headers,
            &String::from_utf8_lossy(&bytes),
        ));
    }
    server.abort();
    check(
        lines,
        expect![[r#"
        PUT /devices/tls1?api-version=2021-04-12 -> 200 [etag="MQ=="] {"authentication":{"symmetricKey":{"primaryKey":"<redacted>","secondaryKey":"<redacted>"},"type":"sas","x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}},"capabilities":{"iotEdge":false},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","connectionStateUpdatedTime":"0001-01-01T00:00:00Z","deviceId":"tls1","deviceScope":null,"etag":"MQ==","generationId":"<redacted>","lastActivityTime":"0001-01-01T00:00:00Z","parentScopes":[],"status":"enabled","statusReason":null,"statusUpdatedTime":"<redacted>"}
        GET /statistics/devices?api-version=2021-04-12 -> 200 [] {"disabledDeviceCount":0,"enabledDeviceCount":1,"totalDeviceCount":1}"#]],
    );
}

#[tokio::test]
async fn routing_is_configured_tested_and_counted_over_rest() {
    let api = Api::new().await;
    api.line(Method::PUT, "/devices/dev1", &[], "{}").await;
    api.line(
        Method::PATCH,
        "/twins/dev1",
        &[("if-match", "*")],
        r#"{"tags":{"env":"prod"}}"#,
    )
    .await;
    let config = r#"{
        "endpoints": {"files": [{"name": "archive", "path": "archive.jsonl"}]},
        "routes": [
            {"name": "hot", "source": "DeviceMessages", "condition": "alert = 'high' AND $body.temp > 20",
             "endpointNames": ["archive"]},
            {"name": "prod", "source": "DeviceMessages", "condition": "$twin.tags.env = 'prod'",
             "endpointNames": ["events"]}
        ]
    }"#;
    let invalid = r#"{"routes": [
        {"name": "bad", "source": "DeviceMessages", "condition": "alert = = 'high'", "endpointNames": ["events"]},
        {"name": "worse", "source": "Nowhere", "endpointNames": ["missing"]}
    ]}"#;
    let hot_message = r#"{"message": {"body": {"temp": 25}, "appProperties": {"alert": "high"},
        "systemProperties": {"contentType": "application/json", "contentEncoding": "utf-8", "connectionDeviceId": "dev1"}}}"#;
    let mut lines = vec![
        api.line(Method::GET, "/routing", &[], "").await,
        api.line(Method::PUT, "/routing", &[], config).await,
        api.line(Method::POST, "/routing/test", &[], hot_message).await,
        api.line(
            Method::POST,
            "/routing/test",
            &[],
            r#"{"message": {"body": "{\"temp\": 25}", "appProperties": {"alert": "high"}}, "twin": {"tags": {"env": "test"}}}"#,
        )
        .await,
        api.line(
            Method::POST,
            "/routing/test",
            &[],
            r#"{"routingSource": "TwinChangeEvents", "message": {}}"#,
        )
        .await,
        api.line(
            Method::POST,
            "/routing/test",
            &[],
            r#"{"message": {"systemProperties": {"contentTyp": "application/json"}}}"#,
        )
        .await,
        api.line(Method::PUT, "/routing", &[], r#"{"routes": 1}"#)
            .await,
    ];
    // The whole error message, caret diagram included.
    let (status, _, text) = api
        .send(Some("iothubowner"), Method::PUT, "/routing", &[], invalid)
        .await;
    let error: Value = serde_json::from_str(&text).expect("error body");
    lines.push(format!(
        "invalid -> {}:\n{}",
        status.as_u16(),
        error["Message"].as_str().expect("message")
    ));
    // Changing routing needs every right; reading needs ServiceConnect.
    for (policy, method, path) in [
        ("service", Method::PUT, "/routing"),
        ("registryReadWrite", Method::PUT, "/routing"),
        ("service", Method::GET, "/routing"),
        ("registryRead", Method::GET, "/routing/stats"),
    ] {
        let body = if method == Method::PUT { config } else { "" };
        let (status, headers, _) = api
            .send(Some(policy), method.clone(), path, &[], body)
            .await;
        lines.push(format!(
            "{policy} {method} {path} -> {} {}",
            status.as_u16(),
            headers
                .get("iothub-errorcode")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
        ));
    }

    let sender = hub_core::AuthenticatedDevice {
        identity: Identity::device(DeviceId::new("dev1").expect("id")),
        method: hub_core::AuthMethod::DeviceSas,
        generation_id: "1".to_owned(),
        token_expiry_unix_secs: None,
    };
    let mut message = Message::new(Bytes::from_static(b"{\"temp\":21}"))
        .with_application_property("alert", Some("high"));
    message.system.content_type = Some("application/json".to_owned());
    message.system.content_encoding = Some("utf-8".to_owned());
    let offset = api
        .hub
        .ingest_telemetry(&sender, message)
        .await
        .expect("ingest");
    lines.push(format!("telemetry offset {offset:?}"));
    // Closing drains the file endpoint, so the counters are final.
    api.hub.close().await.expect("close");
    lines.push(api.line(Method::GET, "/routing/stats", &[], "").await);
    check(
        lines,
        expect![[r#"
        GET /routing -> 200 [] {"endpoints":{"files":[],"webhooks":[]},"fallbackRoute":{"condition":"true","endpointNames":["events"],"isEnabled":true,"name":"$fallback","source":"DeviceMessages"},"routes":[]}
        PUT /routing -> 200 [] {"endpoints":{"files":[{"name":"archive","path":"archive.jsonl"}],"webhooks":[]},"fallbackRoute":{"condition":"true","endpointNames":["events"],"isEnabled":true,"name":"$fallback","source":"DeviceMessages"},"routes":[{"condition":"alert = 'high' AND $body.temp > 20","endpointNames":["archive"],"isEnabled":true,"name":"hot","source":"DeviceMessages"},{"condition":"$twin.tags.env = 'prod'","endpointNames":["events"],"isEnabled":true,"name":"prod","source":"DeviceMessages"}]}
        POST /routing/test -> 200 [] {"endpoints":["events","archive"],"fallbackApplied":false,"matchedRoutes":["hot","prod"],"routingSource":"DeviceMessages"}
        POST /routing/test -> 200 [] {"endpoints":["events"],"fallbackApplied":true,"matchedRoutes":[],"routingSource":"DeviceMessages"}
        POST /routing/test -> 200 [] {"endpoints":[],"fallbackApplied":false,"matchedRoutes":[],"routingSource":"TwinChangeEvents"}
        POST /routing/test -> 400 [iothub-errorcode=ArgumentInvalid] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ArgumentInvalid;message.systemProperties has an unknown or empty property \"contentTyp\""}
        PUT /routing -> 400 [iothub-errorcode=ArgumentInvalid] {"ExceptionMessage":"<redacted>","Message":"ErrorCode:ArgumentInvalid;the routing configuration is not JSON of the expected shape: invalid type: integer `1`, expected a sequence at line 1 column 12"}
        invalid -> 400:
        ErrorCode:ArgumentInvalid;invalid routing configuration (3 problems)
        - route "bad": condition does not parse
        error: expected expression, found `=`
         --> 1:9
          |
        1 | alert = = 'high'
          |         ^
        - route "worse": unknown source "Nowhere", expected DeviceMessages, TwinChangeEvents or DeviceLifecycleEvents
        - route "worse": unknown endpoint "missing"
        service PUT /routing -> 401 IotHubUnauthorizedAccess
        registryReadWrite PUT /routing -> 401 IotHubUnauthorizedAccess
        service GET /routing -> 200 
        registryRead GET /routing/stats -> 401 IotHubUnauthorizedAccess
        telemetry offset Some(0)
        GET /routing/stats -> 200 [] {"endpoints":[{"deadLettered":0,"delivered":1,"droppedQueueFull":0,"kind":"file","name":"archive","queued":0,"retries":0}],"eventsAppended":1,"unrouted":0}"#]],
    );
}

#[tokio::test]
async fn ca_certificates_are_uploaded_listed_replaced_and_deleted() {
    let api = Api::new().await;
    let validity = tls::CertificateValidity::days_from_now(30);
    let root = tls::CertificateAuthority::generate("Contoso Root", validity).expect("CA");
    let other = tls::CertificateAuthority::generate("Fabrikam Root", validity).expect("CA");
    let body = |text: &str| serde_json::json!({"properties": {"certificate": text}}).to_string();
    let root_body = body(&root.certificate_pem());
    let other_der = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        other.certificate(),
    );
    let other_body = body(&other_der);
    /// Renders an answer with its volatile parts (etags, times, PEM) reduced to their shape.
    fn summary(status: StatusCode, headers: &HeaderMap, text: &str) -> String {
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            return format!("{} {text}", status.as_u16());
        };
        let describe = |item: &Value| {
            let properties = &item["properties"];
            format!(
                "{} type={} subject={} verified={} thumbprint_len={} etag_len={} times_gmt={} pem={}",
                item["name"].as_str().unwrap_or("?"),
                item["type"].as_str().unwrap_or("?"),
                properties["subject"].as_str().unwrap_or("?"),
                properties["isVerified"],
                properties["thumbprint"].as_str().map_or(0, str::len),
                item["etag"].as_str().map_or(0, str::len),
                ["created", "updated", "expiry"]
                    .iter()
                    .all(|key| properties[*key]
                        .as_str()
                        .is_some_and(|time| time.ends_with(" GMT"))),
                properties["certificate"]
                    .as_str()
                    .is_some_and(|pem| pem.starts_with("-----BEGIN CERTIFICATE-----")),
            )
        };
        let etag_header = headers.contains_key("etag");
        if let Some(message) = value.get("Message") {
            format!("{} {}", status.as_u16(), message.as_str().unwrap_or("?"))
        } else if let Some(items) = value.get("value").and_then(Value::as_array) {
            let names: Vec<String> = items.iter().map(describe).collect();
            format!("{} [{}]", status.as_u16(), names.join("; "))
        } else {
            format!(
                "{} etag_header={etag_header} {}",
                status.as_u16(),
                describe(&value)
            )
        }
    }
    let mut lines = Vec::new();
    let mut run =
        async |policy: &str, method: Method, path: &str, if_match: Option<&str>, body: &str| {
            let headers: Vec<(&str, &str)> = if_match
                .map(|etag| ("if-match", etag))
                .into_iter()
                .collect();
            let (status, response_headers, text) = api
                .send(Some(policy), method.clone(), path, &headers, body)
                .await;
            lines.push(format!(
                "{method} {path} as {policy}: {}",
                summary(status, &response_headers, &text)
            ));
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)["etag"]
                .as_str()
                .map(str::to_owned)
        };
    run(
        "service",
        Method::PUT,
        "/certificates/root",
        None,
        &root_body,
    )
    .await;
    run("registryReadWrite", Method::GET, "/certificates", None, "").await;
    let etag = run(
        "iothubowner",
        Method::PUT,
        "/certificates/root",
        None,
        &root_body,
    )
    .await
    .expect("etag");
    run(
        "iothubowner",
        Method::PUT,
        "/certificates/root",
        None,
        &other_body,
    )
    .await;
    run(
        "iothubowner",
        Method::PUT,
        "/certificates/root",
        Some("\"stale\""),
        &other_body,
    )
    .await;
    run(
        "iothubowner",
        Method::PUT,
        "/certificates/root",
        Some(&format!("\"{etag}\"")),
        &other_body,
    )
    .await;
    run(
        "iothubowner",
        Method::PUT,
        "/certificates/bad%20name",
        None,
        &root_body,
    )
    .await;
    run(
        "iothubowner",
        Method::PUT,
        "/certificates/empty",
        None,
        r#"{"properties": {}}"#,
    )
    .await;
    run(
        "iothubowner",
        Method::PUT,
        "/certificates/junk",
        None,
        &body("junk"),
    )
    .await;
    run(
        "iothubowner",
        Method::PUT,
        "/certificates/second",
        None,
        &root_body,
    )
    .await;
    run("iothubowner", Method::GET, "/certificates", None, "").await;
    run("iothubowner", Method::GET, "/certificates/second", None, "").await;
    run(
        "iothubowner",
        Method::DELETE,
        "/certificates/second",
        None,
        "",
    )
    .await;
    run(
        "iothubowner",
        Method::DELETE,
        "/certificates/second",
        Some("*"),
        "",
    )
    .await;
    run("iothubowner", Method::GET, "/certificates/second", None, "").await;
    // The etag is random.
    let lines = lines
        .iter()
        .map(|line| line.replace(&etag, "<etag>"))
        .collect();
    check(
        lines,
        expect![[r#"
        PUT /certificates/root as service: 401 ErrorCode:IotHubUnauthorizedAccess;policy service lacks the RegistryRead right (ServiceConnect granted)
        GET /certificates as registryReadWrite: 401 ErrorCode:IotHubUnauthorizedAccess;policy registryReadWrite lacks the ServiceConnect right (RegistryRead, RegistryWrite granted)
        PUT /certificates/root as iothubowner: 200 etag_header=true root type=Microsoft.Devices/IotHubs/Certificates subject=CN=Contoso Root verified=true thumbprint_len=40 etag_len=12 times_gmt=true pem=true
        PUT /certificates/root as iothubowner: 412 ErrorCode:PreconditionFailed;a CA certificate named root exists already; send If-Match with its etag (or *) to replace it
        PUT /certificates/root as iothubowner: 412 ErrorCode:PreconditionFailed;the etag "stale" does not match the current etag <etag>
        PUT /certificates/root as iothubowner: 200 etag_header=true root type=Microsoft.Devices/IotHubs/Certificates subject=CN=Fabrikam Root verified=true thumbprint_len=40 etag_len=12 times_gmt=true pem=true
        PUT /certificates/bad%20name as iothubowner: 400 ErrorCode:ArgumentInvalid;invalid certificate name "bad name": expected 1 to 64 ASCII letters, digits, '-', '.' or '_'
        PUT /certificates/empty as iothubowner: 400 ErrorCode:ArgumentInvalid;expected {"properties": {"certificate": "<PEM or base64 DER>"}}: missing field `certificate` at line 1 column 17
        PUT /certificates/junk as iothubowner: 400 ErrorCode:ArgumentInvalid;invalid X.509 certificate: Parsing requires 104 bytes/chars
        PUT /certificates/second as iothubowner: 200 etag_header=true second type=Microsoft.Devices/IotHubs/Certificates subject=CN=Contoso Root verified=true thumbprint_len=40 etag_len=12 times_gmt=true pem=true
        GET /certificates as iothubowner: 200 [root type=Microsoft.Devices/IotHubs/Certificates subject=CN=Fabrikam Root verified=true thumbprint_len=40 etag_len=12 times_gmt=true pem=true; second type=Microsoft.Devices/IotHubs/Certificates subject=CN=Contoso Root verified=true thumbprint_len=40 etag_len=12 times_gmt=true pem=true]
        GET /certificates/second as iothubowner: 200 etag_header=true second type=Microsoft.Devices/IotHubs/Certificates subject=CN=Contoso Root verified=true thumbprint_len=40 etag_len=12 times_gmt=true pem=true
        DELETE /certificates/second as iothubowner: 400 ErrorCode:ArgumentNull;deleting a certificate needs If-Match: its etag, or *
        DELETE /certificates/second as iothubowner: 204 
        GET /certificates/second as iothubowner: 404 ErrorCode:NotFound;there is no CA certificate named second"#]],
    );
}
