//! `GET /devices/{id}/modules/$edgeHub/devicesAndModulesInDeviceScope`: what an edge device's
//! scope holds, who may read it, and paging through it.

mod support;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use expect_test::expect;
use hub_core::{AuthenticationSpec, IdentitySpec, IdentityStatus};
use serde_json::Value;
use support::{Api, Caller, check, error_code, identity};

const SCOPE_PATH: &str = "/devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope";

impl Api {
    async fn edge_scope(&self, edge: &str) -> String {
        let view = self.hub.get_identity(&identity(edge)).await.expect("edge");
        view.record.device_scope.expect("edge devices have a scope")
    }

    async fn get(&self, caller: Caller<'_>, path_and_query: &str) -> (StatusCode, Value) {
        let mut request = Request::get(path_and_query);
        if let Some(token) = self.token(caller).await {
            request = request.header("authorization", token);
        }
        self.call_json(request.body(Body::empty()).expect("request"))
            .await
    }

    /// `path as caller -> status` with the number of devices, or the error code.
    async fn outcome(&self, caller: Caller<'_>, path: &str) -> String {
        let (status, value) = self.get(caller, path).await;
        let text = if status.is_success() {
            format!(
                "{} devices",
                value["devices"].as_array().map_or(0, Vec::len)
            )
        } else {
            error_code(&value)
        };
        format!(
            "{path} as {} -> {} {text}",
            caller_name(caller),
            status.as_u16()
        )
    }

    /// `path -> status` plus, for a scope page, one line per device and module, or the error code.
    async fn line(&self, caller: Caller<'_>, path_and_query: &str) -> String {
        let (status, value) = self.get(caller, path_and_query).await;
        let summary = if status.is_success() {
            render_page(&value)
        } else {
            error_code(&value)
        };
        format!("{} {summary}", status.as_u16())
    }
}

fn render_page(page: &Value) -> String {
    let empty = Vec::new();
    let mut lines = Vec::new();
    for device in page["devices"].as_array().unwrap_or(&empty) {
        let parents: Vec<&str> = device["parentScopes"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|scope| {
                if scope.as_str().is_some_and(|s| s.contains("edge1")) {
                    "edge1"
                } else {
                    "other"
                }
            })
            .collect();
        lines.push(format!(
            "\n  device {} status={} auth={} keys={} thumbprint={} edge={} scope={} parents={parents:?} generationId={}",
            device["deviceId"].as_str().unwrap_or("?"),
            device["status"].as_str().unwrap_or("?"),
            device["authentication"]["type"].as_str().unwrap_or("?"),
            device["authentication"]["symmetricKey"]["primaryKey"].is_string()
                && device["authentication"]["symmetricKey"]["secondaryKey"].is_string(),
            device["authentication"]["x509Thumbprint"]["primaryThumbprint"]
                .as_str()
                .unwrap_or("-"),
            device["capabilities"]["iotEdge"],
            device["deviceScope"].is_string(),
            !device["generationId"].as_str().unwrap_or_default().is_empty(),
        ));
    }
    for module in page["modules"].as_array().unwrap_or(&empty) {
        lines.push(format!(
            "\n  module {}/{} auth={} keys={}",
            module["deviceId"].as_str().unwrap_or("?"),
            module["moduleId"].as_str().unwrap_or("?"),
            module["authentication"]["type"].as_str().unwrap_or("?"),
            module["authentication"]["symmetricKey"]["primaryKey"].is_string(),
        ));
    }
    lines.push(format!("\n  continuationLink={}", page["continuationLink"]));
    lines.concat()
}

fn edge() -> IdentitySpec {
    IdentitySpec {
        iot_edge: Some(true),
        ..IdentitySpec::default()
    }
}

fn child_of(scope: &str) -> IdentitySpec {
    IdentitySpec {
        parent_scopes: Some(vec![scope.to_owned()]),
        ..IdentitySpec::default()
    }
}

#[tokio::test]
async fn the_scope_holds_the_edge_device_its_modules_and_its_children_only() {
    let api = Api::new().await;
    api.create("edge1", edge()).await;
    api.create("edge2", edge()).await;
    let scope1 = api.edge_scope("edge1").await;
    let scope2 = api.edge_scope("edge2").await;
    api.create("sensor", child_of(&scope1)).await;
    api.create("sensor/telemetry", IdentitySpec::default())
        .await;
    api.create(
        "camera",
        IdentitySpec {
            status: Some(IdentityStatus::Disabled),
            authentication: Some(AuthenticationSpec::SelfSigned {
                primary_thumbprint: Some("ab".repeat(20)),
                secondary_thumbprint: None,
            }),
            ..child_of(&scope1)
        },
    )
    .await;
    api.create(
        "ca-leaf",
        IdentitySpec {
            authentication: Some(AuthenticationSpec::CertificateAuthority),
            ..child_of(&scope1)
        },
    )
    .await;
    // A nested edge device below edge1 is in its scope; edge2's child and a loose device are not.
    api.create(
        "nested",
        IdentitySpec {
            iot_edge: Some(true),
            ..child_of(&scope1)
        },
    )
    .await;
    api.create("elsewhere", child_of(&scope2)).await;
    api.create("loose", IdentitySpec::default()).await;
    api.create("edge1/filter", IdentitySpec::default()).await;

    let lines = vec![api.line(Caller::Own("edge1"), SCOPE_PATH).await];
    check(
        lines,
        expect![[r#"
            200 
              device ca-leaf status=enabled auth=certificateAuthority keys=false thumbprint=- edge=false scope=false parents=["edge1"] generationId=true
              device camera status=disabled auth=selfSigned keys=false thumbprint=ABABABABABABABABABABABABABABABABABABABAB edge=false scope=false parents=["edge1"] generationId=true
              device edge1 status=enabled auth=sas keys=true thumbprint=- edge=true scope=true parents=[] generationId=true
              device nested status=enabled auth=sas keys=true thumbprint=- edge=true scope=true parents=["edge1"] generationId=true
              device sensor status=enabled auth=sas keys=true thumbprint=- edge=false scope=false parents=["edge1"] generationId=true
              module edge1/$edgeAgent auth=sas keys=true
              module edge1/$edgeHub auth=sas keys=true
              module edge1/filter auth=sas keys=true
              module nested/$edgeAgent auth=sas keys=true
              module nested/$edgeHub auth=sas keys=true
              module sensor/telemetry auth=sas keys=true
              continuationLink=null"#]],
    );
}

#[tokio::test]
async fn only_the_edge_device_and_its_edge_hub_module_may_read_the_scope() {
    let api = Api::new().await;
    api.create("edge1", edge()).await;
    api.create("edge2", edge()).await;
    let scope1 = api.edge_scope("edge1").await;
    api.create("child", child_of(&scope1)).await;
    api.create("plain", IdentitySpec::default()).await;
    api.create(
        "off",
        IdentitySpec {
            status: Some(IdentityStatus::Disabled),
            ..edge()
        },
    )
    .await;
    const EDGE2: &str = "/devices/edge2/modules/$edgeHub/devicesAndModulesInDeviceScope";
    const PLAIN: &str = "/devices/plain/modules/$edgeHub/devicesAndModulesInDeviceScope";
    const OFF: &str = "/devices/off/modules/$edgeHub/devicesAndModulesInDeviceScope";
    const AGENT: &str = "/devices/edge1/modules/$edgeAgent/devicesAndModulesInDeviceScope";
    const ENCODED: &str = "/devices/edge1/modules/%24edgeHub/devicesAndModulesInDeviceScope?api-version=2018-08-30-preview";
    const BAD_COUNT: &str =
        "/devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope?deviceCount=many";
    const BAD_TOKEN: &str =
        "/devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope?continuationToken=%21%21";
    let lines = vec![
        api.outcome(Caller::Own("edge1"), SCOPE_PATH).await,
        api.outcome(Caller::Own("edge1/$edgeHub"), SCOPE_PATH).await,
        api.outcome(Caller::Own("edge1"), ENCODED).await,
        api.outcome(Caller::Own("edge1/$edgeAgent"), SCOPE_PATH)
            .await,
        api.outcome(Caller::Own("edge2"), SCOPE_PATH).await,
        api.outcome(Caller::Own("edge2/$edgeHub"), SCOPE_PATH).await,
        api.outcome(Caller::Own("child"), SCOPE_PATH).await,
        api.outcome(Caller::Own("plain"), PLAIN).await,
        api.outcome(Caller::Own("off"), OFF).await,
        api.outcome(Caller::Own("edge1"), EDGE2).await,
        api.outcome(Caller::Forged("edge1"), SCOPE_PATH).await,
        api.outcome(Caller::Forged("edge1/$edgeHub"), SCOPE_PATH)
            .await,
        api.outcome(Caller::Policy("iothubowner"), SCOPE_PATH).await,
        api.outcome(Caller::Nobody, SCOPE_PATH).await,
        api.outcome(Caller::Own("edge1"), AGENT).await,
        api.outcome(Caller::Own("edge1"), BAD_COUNT).await,
        api.outcome(Caller::Own("edge1"), BAD_TOKEN).await,
    ];
    check(
        lines,
        expect![[r#"
            /devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope as edge1 -> 200 2 devices
            /devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope as edge1/$edgeHub -> 200 2 devices
            /devices/edge1/modules/%24edgeHub/devicesAndModulesInDeviceScope?api-version=2018-08-30-preview as edge1 -> 200 2 devices
            /devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope as edge1/$edgeAgent -> 403 ErrorCode:Forbidden
            /devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope as edge2 -> 403 ErrorCode:Forbidden
            /devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope as edge2/$edgeHub -> 403 ErrorCode:Forbidden
            /devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope as child -> 403 ErrorCode:Forbidden
            /devices/plain/modules/$edgeHub/devicesAndModulesInDeviceScope as plain -> 403 ErrorCode:Forbidden
            /devices/off/modules/$edgeHub/devicesAndModulesInDeviceScope as off -> 401 ErrorCode:IotHubUnauthorizedAccess
            /devices/edge2/modules/$edgeHub/devicesAndModulesInDeviceScope as edge1 -> 403 ErrorCode:Forbidden
            /devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope as forged edge1 -> 401 ErrorCode:IotHubUnauthorizedAccess
            /devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope as forged edge1/$edgeHub -> 401 ErrorCode:IotHubUnauthorizedAccess
            /devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope as policy iothubowner -> 401 ErrorCode:IotHubUnauthorizedAccess
            /devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope as nobody -> 401 ErrorCode:IotHubUnauthorizedAccess
            /devices/edge1/modules/$edgeAgent/devicesAndModulesInDeviceScope as edge1 -> 400 ErrorCode:ArgumentInvalid
            /devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope?deviceCount=many as edge1 -> 400 ErrorCode:ArgumentInvalid
            /devices/edge1/modules/$edgeHub/devicesAndModulesInDeviceScope?continuationToken=%21%21 as edge1 -> 400 ErrorCode:ArgumentInvalid"#]],
    );
}

fn caller_name(caller: Caller<'_>) -> String {
    match caller {
        Caller::Nobody => "nobody".to_owned(),
        Caller::Policy(policy) => format!("policy {policy}"),
        Caller::Own(name) => name.to_owned(),
        Caller::Forged(name) => format!("forged {name}"),
    }
}

#[tokio::test]
async fn paging_returns_every_child_exactly_once() {
    let api = Api::new().await;
    api.create("edge1", edge()).await;
    api.create("edge2", edge()).await;
    let scope1 = api.edge_scope("edge1").await;
    let scope2 = api.edge_scope("edge2").await;
    for index in 0..250 {
        api.create(&format!("child-{index:03}"), child_of(&scope1))
            .await;
        // Interleaved devices of another edge must not disturb the pages.
        if index % 3 == 0 {
            api.create(&format!("child-{index:03}-other"), child_of(&scope2))
                .await;
        }
    }
    let mut seen = Vec::new();
    let mut page_sizes = Vec::new();
    let mut link = format!("{SCOPE_PATH}?deviceCount=100&api-version=2018-08-30-preview");
    loop {
        let (status, page) = api.get(Caller::Own("edge1/$edgeHub"), &link).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let devices = page["devices"].as_array().expect("devices");
        page_sizes.push(devices.len());
        seen.extend(
            devices
                .iter()
                .map(|device| device["deviceId"].as_str().expect("id").to_owned()),
        );
        match page["continuationLink"].as_str() {
            Some(next) => link = next.to_owned(),
            None => break,
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a device came twice");
    let expected: BTreeSet<String> = (0..250)
        .map(|index| format!("child-{index:03}"))
        .chain(["edge1".to_owned()])
        .collect();
    assert_eq!(unique, expected.iter().collect());
    assert_eq!(page_sizes, vec![100, 100, 51]);

    // Without deviceCount a page holds 100 devices; more than the maximum is served the maximum.
    let (_, page) = api.get(Caller::Own("edge1"), SCOPE_PATH).await;
    assert_eq!(page["devices"].as_array().map(Vec::len), Some(100));
    let (_, page) = api
        .get(
            Caller::Own("edge1"),
            &format!("{SCOPE_PATH}?deviceCount=5000"),
        )
        .await;
    assert_eq!(page["devices"].as_array().map(Vec::len), Some(251));
    assert!(page["continuationLink"].is_null());
}
