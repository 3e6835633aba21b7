//! IoT Edge routes of the service API: `applyConfigurationContent` and the device-scoped access an
//! edge device has with its own key (its own module identities, nothing else).

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use expect_test::expect;
use serde_json::{Value, json};
use support::{Api, Caller, check, error_code};

impl Api {
    async fn send(
        &self,
        caller: Caller<'_>,
        method: Method,
        path: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{path}?api-version=2021-04-12"))
            .header("content-type", "application/json");
        if let Some(token) = self.token(caller).await {
            request = request.header("authorization", token);
        }
        self.call_json(request.body(Body::from(body.to_owned())).expect("request"))
            .await
    }

    /// One request rendered as `METHOD path -> status summary` for snapshots.
    async fn line(&self, caller: Caller<'_>, method: Method, path: &str, body: &str) -> String {
        let (status, value) = self.send(caller, method.clone(), path, body).await;
        format!("{method} {path} -> {} {}", status.as_u16(), summary(&value))
    }

    async fn create_device(&self, device: &str, edge: bool) {
        let body = json!({"deviceId": device, "capabilities": {"iotEdge": edge}}).to_string();
        let (status, _) = self
            .send(
                Caller::Policy("iothubowner"),
                Method::PUT,
                &format!("/devices/{device}"),
                &body,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
}

/// The parts of an answer worth a snapshot: module ids with their `managedBy` and whether keys
/// came back, a device id, or the error code.
fn summary(value: &Value) -> String {
    let module = |module: &Value| {
        let has_key = module["authentication"]["symmetricKey"]["primaryKey"]
            .as_str()
            .is_some_and(|key| !key.is_empty());
        format!(
            "{}(managedBy={}, key={has_key})",
            module["moduleId"].as_str().unwrap_or("?"),
            module["managedBy"].as_str().unwrap_or("-")
        )
    };
    match value {
        Value::Array(items) => items.iter().map(module).collect::<Vec<_>>().join(" "),
        Value::Object(map) if map.contains_key("moduleId") => module(value),
        Value::Object(map) if map.contains_key("deviceId") => {
            format!("device {}", value["deviceId"].as_str().unwrap_or("?"))
        }
        Value::Object(map) if map.contains_key("Message") => error_code(value),
        Value::Null => "(empty)".to_owned(),
        other => other.to_string(),
    }
}

fn deployment() -> Value {
    json!({"modulesContent": {
        "$edgeAgent": {"properties.desired": {
            "schemaVersion": "1.1",
            "runtime": {"type": "process", "settings": {}},
            "systemModules": {
                "edgeAgent": {"type": "docker", "settings": {"image": "agent:1"}},
                "edgeHub": {"type": "docker", "settings": {"image": "hub:1"}, "status": "running", "restartPolicy": "always"}
            },
            "modules": {
                "sensor": {"type": "process", "settings": {"path": "/bin/sleep", "args": ["60"]}},
                "filter": {"type": "process", "settings": {"path": "/bin/sleep", "args": ["60"]}}
            }
        }},
        "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {}}},
        "sensor": {"properties.desired": {"interval": 5}}
    }})
}

#[tokio::test]
async fn apply_configuration_content_writes_module_twins_and_creates_identities() {
    let api = Api::new().await;
    api.create_device("edge1", true).await;
    api.create_device("plain", false).await;
    let owner = Caller::Policy("iothubowner");
    let content = deployment().to_string();
    // The sensor twin has a desired property the deployment does not give: replaced, not merged.
    let lines = vec![
        api.line(owner, Method::GET, "/devices/edge1/modules", "")
            .await,
        api.line(
            owner,
            Method::POST,
            "/devices/edge1/applyConfigurationContent",
            &content,
        )
        .await,
        api.line(owner, Method::GET, "/devices/edge1/modules", "")
            .await,
        api.line(
            owner,
            Method::POST,
            "/devices/plain/applyConfigurationContent",
            &content,
        )
        .await,
        api.line(
            owner,
            Method::POST,
            "/devices/nobody/applyConfigurationContent",
            &content,
        )
        .await,
        api.line(
            owner,
            Method::POST,
            "/devices/edge1/applyConfigurationContent",
            r#"{"modulesContent": {"$bad": {"properties.desired": {}}}}"#,
        )
        .await,
        api.line(
            owner,
            Method::POST,
            "/devices/edge1/applyConfigurationContent",
            r#"{"modulesContent": {"sensor": {"properties.desired": 5}}}"#,
        )
        .await,
        api.line(
            Caller::Policy("registryRead"),
            Method::POST,
            "/devices/edge1/applyConfigurationContent",
            &content,
        )
        .await,
    ];
    check(
        lines,
        expect![[r#"
            GET /devices/edge1/modules -> 200 $edgeAgent(managedBy=-, key=true) $edgeHub(managedBy=-, key=true)
            POST /devices/edge1/applyConfigurationContent -> 204 (empty)
            GET /devices/edge1/modules -> 200 $edgeAgent(managedBy=-, key=true) $edgeHub(managedBy=-, key=true) filter(managedBy=IotEdge, key=true) sensor(managedBy=IotEdge, key=true)
            POST /devices/plain/applyConfigurationContent -> 400 ErrorCode:ArgumentInvalid
            POST /devices/nobody/applyConfigurationContent -> 404 ErrorCode:DeviceNotFound
            POST /devices/edge1/applyConfigurationContent -> 400 ErrorCode:ArgumentInvalid
            POST /devices/edge1/applyConfigurationContent -> 400 ErrorCode:ArgumentInvalid
            POST /devices/edge1/applyConfigurationContent -> 401 ErrorCode:IotHubUnauthorizedAccess"#]],
    );

    let (_, twin) = api
        .send(owner, Method::GET, "/twins/edge1/modules/sensor", "")
        .await;
    assert_eq!(twin["properties"]["desired"]["interval"], 5);
    let (_, agent) = api
        .send(owner, Method::GET, "/twins/edge1/modules/$edgeAgent", "")
        .await;
    assert_eq!(agent["properties"]["desired"]["schemaVersion"], "1.1");
    assert_eq!(
        agent["properties"]["desired"]["modules"]["filter"]["settings"]["path"],
        "/bin/sleep"
    );

    // A second deployment replaces the desired properties of the modules it names.
    let second = json!({"modulesContent": {"sensor": {"properties.desired": {"threshold": 1}}}});
    let (status, _) = api
        .send(
            owner,
            Method::POST,
            "/devices/edge1/applyConfigurationContent",
            &second.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, twin) = api
        .send(owner, Method::GET, "/twins/edge1/modules/sensor", "")
        .await;
    assert_eq!(twin["properties"]["desired"]["threshold"], 1);
    assert!(twin["properties"]["desired"].get("interval").is_none());
    let (_, agent) = api
        .send(owner, Method::GET, "/twins/edge1/modules/$edgeAgent", "")
        .await;
    assert_eq!(
        agent["properties"]["desired"]["schemaVersion"], "1.1",
        "twins the deployment does not name are left alone"
    );
}

#[tokio::test]
async fn an_edge_device_manages_only_its_own_module_identities_with_its_own_key() {
    let api = Api::new().await;
    api.create_device("edge1", true).await;
    api.create_device("edge2", true).await;
    api.create_device("plain", false).await;
    let edge = Caller::Own("edge1");
    let module =
        r#"{"moduleId": "sensor", "managedBy": "IotEdge", "authentication": {"type": "sas"}}"#;
    let lines = vec![
        api.line(edge, Method::GET, "/devices/edge1", "").await,
        api.line(edge, Method::PUT, "/devices/edge1/modules/sensor", module)
            .await,
        api.line(edge, Method::GET, "/devices/edge1/modules", "")
            .await,
        api.line(edge, Method::GET, "/devices/edge1/modules/sensor", "")
            .await,
        api.line(edge, Method::DELETE, "/devices/edge1/modules/sensor", "")
            .await,
        api.line(edge, Method::GET, "/devices/edge1/modules", "")
            .await,
        // Another device, other routes, a device that is not an edge device, a forged token.
        api.line(edge, Method::GET, "/devices/edge2/modules", "")
            .await,
        api.line(edge, Method::PUT, "/devices/edge2/modules/sensor", module)
            .await,
        api.line(edge, Method::GET, "/devices/edge2", "").await,
        api.line(
            edge,
            Method::PUT,
            "/devices/edge1",
            r#"{"deviceId": "edge1"}"#,
        )
        .await,
        api.line(edge, Method::DELETE, "/devices/edge1", "").await,
        api.line(edge, Method::GET, "/devices", "").await,
        api.line(edge, Method::GET, "/twins/edge1/modules/$edgeAgent", "")
            .await,
        api.line(
            edge,
            Method::POST,
            "/devices/edge1/applyConfigurationContent",
            &deployment().to_string(),
        )
        .await,
        api.line(
            Caller::Own("plain"),
            Method::GET,
            "/devices/plain/modules",
            "",
        )
        .await,
        api.line(
            Caller::Forged("edge1"),
            Method::GET,
            "/devices/edge1/modules",
            "",
        )
        .await,
    ];
    check(
        lines,
        expect![[r#"
            GET /devices/edge1 -> 200 device edge1
            PUT /devices/edge1/modules/sensor -> 200 sensor(managedBy=IotEdge, key=true)
            GET /devices/edge1/modules -> 200 $edgeAgent(managedBy=-, key=true) $edgeHub(managedBy=-, key=true) sensor(managedBy=IotEdge, key=true)
            GET /devices/edge1/modules/sensor -> 200 sensor(managedBy=IotEdge, key=true)
            DELETE /devices/edge1/modules/sensor -> 204 (empty)
            GET /devices/edge1/modules -> 200 $edgeAgent(managedBy=-, key=true) $edgeHub(managedBy=-, key=true)
            GET /devices/edge2/modules -> 403 ErrorCode:Forbidden
            PUT /devices/edge2/modules/sensor -> 403 ErrorCode:Forbidden
            GET /devices/edge2 -> 403 ErrorCode:Forbidden
            PUT /devices/edge1 -> 403 ErrorCode:Forbidden
            DELETE /devices/edge1 -> 403 ErrorCode:Forbidden
            GET /devices -> 403 ErrorCode:Forbidden
            GET /twins/edge1/modules/$edgeAgent -> 403 ErrorCode:Forbidden
            POST /devices/edge1/applyConfigurationContent -> 403 ErrorCode:Forbidden
            GET /devices/plain/modules -> 403 ErrorCode:Forbidden
            GET /devices/edge1/modules -> 401 ErrorCode:IotHubUnauthorizedAccess"#]],
    );
}
