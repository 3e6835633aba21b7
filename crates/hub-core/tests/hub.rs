//! Behaviour of the hub core against a real SQLite database and telemetry log in a temporary
//! directory, with a manual clock and a fake connection layer.

mod support;

use std::time::Duration;

use bytes::Bytes;
use expect_test::{Expect, expect};
use hub_core::{
    AccessRight, AuthenticationSpec, ConsumerStart, DeviceCredential, HubError, IdentityScope,
    IdentitySpec, IdentityStatus, IdentityView, MethodInvocation, TwinWriteMode,
};
use iothub_types::{Identity, Message};
use serde_json::json;
use support::*;
use twin::ServiceTwinUpdate;

/// Renders a registry view compactly for snapshots.
fn render_view(view: &IdentityView) -> String {
    let record = &view.record;
    let authentication = match &record.authentication {
        hub_core::Authentication::Sas {
            primary_key,
            secondary_key,
        } => {
            format!("sas(keys {} {})", primary_key.len(), secondary_key.len())
        }
        other => format!("{:?}", other.authentication_type()),
    };
    format!(
        "{} etag={} status={} auth={authentication} edge={} scope={:?} parents={:?} twin_version={} conn={:?}",
        record.identity(),
        record.etag,
        record.status.as_str(),
        record.iot_edge,
        record.device_scope,
        record.parent_scopes,
        view.twin.version(),
        view.connection_state,
    )
}

fn check(lines: Vec<String>, expected: Expect) {
    expected.assert_eq(&lines.join("\n"));
}

#[tokio::test]
async fn registry_create_update_delete_with_etags() {
    let fixture = Fixture::new().await;
    let hub = &fixture.hub;
    let dev1 = device_identity("dev1");
    let mut lines = Vec::new();
    let created = hub.put_identity(&dev1, IdentitySpec::default(), None).await;
    lines.push(outcome(&created, render_view));
    lines.push(outcome(
        &hub.put_identity(&dev1, IdentitySpec::default(), None).await,
        render_view,
    ));
    let disable = IdentitySpec {
        status: Some(IdentityStatus::Disabled),
        ..IdentitySpec::default()
    };
    lines.push(outcome(
        &hub.put_identity(&dev1, disable.clone(), Some("\"Nzk5\""))
            .await,
        render_view,
    ));
    lines.push(outcome(
        &hub.put_identity(&dev1, disable, Some("\"MQ==\"")).await,
        render_view,
    ));
    lines.extend(fixture.connections.take_events());
    let keys = IdentitySpec {
        authentication: Some(AuthenticationSpec::Sas {
            primary_key: Some("a2V5".to_owned()),
            secondary_key: None,
        }),
        ..IdentitySpec::default()
    };
    lines.push(outcome(
        &hub.put_identity(&dev1, keys, Some("*")).await,
        render_view,
    ));
    let bad_key = IdentitySpec {
        authentication: Some(AuthenticationSpec::Sas {
            primary_key: Some("not base64!".to_owned()),
            secondary_key: None,
        }),
        ..IdentitySpec::default()
    };
    lines.push(outcome(
        &hub.put_identity(&dev1, bad_key, Some("*")).await,
        render_view,
    ));
    lines.push(outcome(
        &hub.delete_identity(&dev1, Some("\"MQ==\"")).await,
        |_| "deleted".to_owned(),
    ));
    lines.push(outcome(
        &hub.delete_identity(&dev1, Some("\"Mw==\"")).await,
        |_| "deleted".to_owned(),
    ));
    lines.push(outcome(&hub.get_identity(&dev1).await, render_view));
    lines.push(outcome(&hub.delete_identity(&dev1, None).await, |_| {
        "deleted".to_owned()
    }));
    lines.extend(fixture.connections.take_events());
    check(
        lines,
        expect![[r#"
            ok dev1 etag=MQ== status=enabled auth=sas(keys 44 44) edge=false scope=None parents=[] twin_version=2 conn=Disconnected
            error DeviceAlreadyExists 409: device dev1 already exists
            error PreconditionFailed 412: the etag "Nzk5" does not match the current etag MQ==
            ok dev1 etag=Mg== status=disabled auth=sas(keys 44 44) edge=false scope=None parents=[] twin_version=2 conn=Disconnected
            disconnect dev1
            ok dev1 etag=Mw== status=disabled auth=sas(keys 4 44) edge=false scope=None parents=[] twin_version=2 conn=Disconnected
            error ArgumentInvalid 400: authentication.symmetricKey.primaryKey is not a valid key: symmetric key is not valid base64: Invalid symbol 32, offset 3.
            error PreconditionFailed 412: the etag "MQ==" does not match the current etag Mw==
            ok deleted
            error DeviceNotFound 404: device dev1 does not exist
            error DeviceNotFound 404: device dev1 does not exist
            disconnect dev1"#]],
    );
}

#[tokio::test]
async fn modules_edge_devices_and_listing() {
    let fixture = Fixture::new().await;
    let hub = &fixture.hub;
    let mut lines = Vec::new();
    let orphan = module_identity("nodevice", "m1");
    lines.push(outcome(
        &hub.put_identity(&orphan, IdentitySpec::default(), None)
            .await,
        render_view,
    ));
    let edge = IdentitySpec {
        iot_edge: Some(true),
        ..IdentitySpec::default()
    };
    lines.push(outcome(
        &hub.put_identity(&device_identity("edge1"), edge, None)
            .await,
        render_view,
    ));
    let leaf = IdentitySpec {
        device_scope: Some("ms-azure-iot-edge://edge1-1".to_owned()),
        ..IdentitySpec::default()
    };
    lines.push(outcome(
        &hub.put_identity(&device_identity("leaf1"), leaf, None)
            .await,
        render_view,
    ));
    let module = module_identity("leaf1", "m1");
    let managed = IdentitySpec {
        managed_by: Some("iotEdge".to_owned()),
        ..IdentitySpec::default()
    };
    lines.push(outcome(
        &hub.put_identity(&module, managed, None).await,
        |view| {
            format!(
                "{} managedBy={:?}",
                render_view(view),
                view.record.managed_by
            )
        },
    ));
    lines.push(outcome(
        &hub.put_identity(&module, IdentitySpec::default(), None)
            .await,
        render_view,
    ));
    let thumbprints = IdentitySpec {
        authentication: Some(AuthenticationSpec::SelfSigned {
            primary_thumbprint: Some("ab".repeat(20)),
            secondary_thumbprint: None,
        }),
        ..IdentitySpec::default()
    };
    lines.push(outcome(
        &hub.put_identity(&device_identity("x509"), thumbprints, None)
            .await,
        render_view,
    ));
    let devices = hub
        .list_identities(IdentityScope::Devices, None, 100)
        .await
        .expect("list");
    lines.push(format!(
        "devices: {:?}",
        devices
            .iter()
            .map(|view| view.record.identity().to_string())
            .collect::<Vec<_>>()
    ));
    let modules = hub
        .list_identities(IdentityScope::AllModules, None, 100)
        .await
        .expect("list");
    lines.push(format!(
        "modules: {:?}",
        modules
            .iter()
            .map(|view| view.record.identity().to_string())
            .collect::<Vec<_>>()
    ));
    let page = hub
        .list_identities(IdentityScope::Devices, None, 2)
        .await
        .expect("list");
    let last = page.last().expect("a page").record.identity();
    let after = hub_core::IdentityKey {
        device_id: last.device.to_string(),
        module_id: String::new(),
    };
    let next = hub
        .list_identities(IdentityScope::Devices, Some(&after), 2)
        .await
        .expect("list");
    lines.push(format!(
        "second page: {:?}",
        next.iter()
            .map(|view| view.record.identity().to_string())
            .collect::<Vec<_>>()
    ));
    let statistics = hub.device_statistics().await.expect("statistics");
    lines.push(format!("statistics: {statistics:?}"));
    lines.push(outcome(
        &hub.delete_identity(&device_identity("edge1"), Some("*"))
            .await,
        |_| "deleted".to_owned(),
    ));
    let modules = hub
        .list_identities(IdentityScope::AllModules, None, 100)
        .await
        .expect("list");
    lines.push(format!(
        "modules: {:?}",
        modules
            .iter()
            .map(|view| view.record.identity().to_string())
            .collect::<Vec<_>>()
    ));
    check(
        lines,
        expect![[r#"
            error DeviceNotFound 404: device nodevice does not exist
            ok edge1 etag=MQ== status=enabled auth=sas(keys 44 44) edge=true scope=Some("ms-azure-iot-edge://edge1-1800000000000000") parents=[] twin_version=2 conn=Disconnected
            ok leaf1 etag=MQ== status=enabled auth=sas(keys 44 44) edge=false scope=Some("ms-azure-iot-edge://edge1-1") parents=["ms-azure-iot-edge://edge1-1"] twin_version=2 conn=Disconnected
            ok leaf1/m1 etag=MQ== status=enabled auth=sas(keys 44 44) edge=false scope=None parents=[] twin_version=2 conn=Disconnected managedBy=Some("iotEdge")
            error ModuleAlreadyExistsOnDevice 409: module m1 already exists on device leaf1
            ok x509 etag=MQ== status=enabled auth=SelfSigned edge=false scope=None parents=[] twin_version=2 conn=Disconnected
            devices: ["edge1", "leaf1", "x509"]
            modules: ["edge1/$edgeAgent", "edge1/$edgeHub", "leaf1/m1"]
            second page: ["x509"]
            statistics: DeviceCounts { total: 3, enabled: 3, disabled: 0 }
            ok deleted
            modules: ["leaf1/m1"]"#]],
    );
}

#[tokio::test]
async fn twin_updates_version_etags_and_push_desired_changes() {
    let fixture = Fixture::new().await;
    let hub = &fixture.hub;
    let dev1 = device_identity("dev1");
    hub.put_identity(&dev1, IdentitySpec::default(), None)
        .await
        .expect("create");
    let mut lines = Vec::new();
    let render_twin = |view: &IdentityView| {
        let twin = view.service_twin_json();
        format!(
            "version={} etag={} tags={} desired={}",
            twin["version"], twin["etag"], twin["tags"], twin["properties"]["desired"]["fan"]
        )
    };
    let patch = |body: serde_json::Value| {
        ServiceTwinUpdate::parse(body.to_string().as_bytes()).expect("twin body")
    };
    let update = patch(json!({"tags": {"a": 1}, "properties": {"desired": {"fan": "on", "x": 1}}}));
    lines.push(outcome(
        &hub.update_twin(
            &dev1,
            update,
            TwinWriteMode::Patch,
            Some("\"AAAAAAAAAAE=\""),
        )
        .await,
        render_twin,
    ));
    let update = patch(json!({"properties": {"desired": {"fan": "off"}}}));
    lines.push(outcome(
        &hub.update_twin(
            &dev1,
            update,
            TwinWriteMode::Patch,
            Some("\"AAAAAAAAAAE=\""),
        )
        .await,
        render_twin,
    ));
    let update = patch(json!({"properties": {"desired": {"fan": "off", "x": null}}}));
    lines.push(outcome(
        &hub.update_twin(&dev1, update, TwinWriteMode::Patch, Some("*"))
            .await,
        render_twin,
    ));
    let update = patch(json!({"tags": {"b": 2}, "properties": {"desired": {"fan": "auto"}}}));
    lines.push(outcome(
        &hub.update_twin(&dev1, update, TwinWriteMode::Replace, None)
            .await,
        render_twin,
    ));
    lines.extend(fixture.connections.take_events());
    let reported = hub
        .patch_reported(&dev1, br#"{"temp": 21, "nested": {"a": 1}}"#, None)
        .await;
    lines.push(outcome(&reported, |version| {
        format!("reported version {version}")
    }));
    let reported = hub.patch_reported(&dev1, b"not json", None).await;
    lines.push(outcome(&reported, |version| {
        format!("reported version {version}")
    }));
    let reported = hub.patch_reported(&dev1, br#"{"temp": 22}"#, Some(7)).await;
    lines.push(outcome(&reported, |version| {
        format!("reported version {version}")
    }));
    lines.push(
        hub.device_twin_document(&dev1)
            .await
            .expect("document")
            .to_string(),
    );
    let missing = hub.get_twin(&device_identity("ghost")).await;
    lines.push(outcome(&missing, render_twin));
    check(
        lines,
        expect![[r#"
            ok version=3 etag="AAAAAAAAAAI=" tags={"a":1} desired="on"
            error PreconditionFailed 412: precondition failed: If-Match "\"AAAAAAAAAAE=\"" does not match the current etag "AAAAAAAAAAI="
            ok version=4 etag="AAAAAAAAAAM=" tags={"a":1} desired="off"
            ok version=5 etag="AAAAAAAAAAQ=" tags={"b":2} desired="auto"
            desired dev1 v2 {"$version":2,"fan":"on","x":1}
            desired dev1 v3 {"$version":3,"fan":"off","x":null}
            desired dev1 v4 {"$version":4,"fan":"auto"}
            ok reported version 2
            error ArgumentInvalid 400: malformed json in reported properties patch: expected ident at line 1 column 2
            error PreconditionFailed 412: properties.reported is at version 2, the request expected version 7
            {"desired":{"$version":4,"fan":"auto"},"reported":{"$version":2,"nested":{"a":1},"temp":21}}
            error DeviceNotFound 404: device ghost does not exist"#]],
    );
}

#[tokio::test]
async fn service_policies_grant_their_real_rights() {
    let mut fixture = Fixture::new().await;
    let hub = fixture.hub.clone();
    let mut lines = Vec::new();
    let policies = hub.policies();
    lines.push(format!(
        "{:?}",
        policies
            .iter()
            .map(|policy| format!("{}: {}", policy.name, policy.rights.to_wire()))
            .collect::<Vec<_>>()
    ));
    let rights = [
        AccessRight::RegistryRead,
        AccessRight::RegistryWrite,
        AccessRight::ServiceConnect,
    ];
    for policy in &policies {
        let token = service_token(HOST, &policy.name, &policy.secondary_key, expiry_in(3600));
        let granted: Vec<String> = rights
            .iter()
            .map(|right| {
                let result = hub.authorize_service(Some(&token), *right);
                format!(
                    "{}={}",
                    right.name(),
                    if result.is_ok() { "yes" } else { "no" }
                )
            })
            .collect();
        lines.push(format!("{}: {}", policy.name, granted.join(" ")));
    }
    let owner = hub.policy("iothubowner").expect("owner policy");
    let with_port = service_token(
        &format!("{HOST}:8443"),
        "iothubowner",
        &owner.primary_key,
        expiry_in(60),
    );
    lines.push(outcome(
        &hub.authorize_service(Some(&with_port), AccessRight::RegistryWrite),
        |principal| principal.policy_name.clone(),
    ));
    let expired = service_token(HOST, "iothubowner", &owner.primary_key, expiry_in(-1));
    lines.push(outcome(
        &hub.authorize_service(Some(&expired), AccessRight::RegistryRead),
        |principal| principal.policy_name.clone(),
    ));
    let foreign = service_token(
        "other.example.net",
        "iothubowner",
        &owner.primary_key,
        expiry_in(60),
    );
    lines.push(outcome(
        &hub.authorize_service(Some(&foreign), AccessRight::RegistryRead),
        |principal| principal.policy_name.clone(),
    ));
    let wrong_key = service_token(
        HOST,
        "iothubowner",
        &hub.policy("service").expect("service").primary_key,
        expiry_in(60),
    );
    lines.push(outcome(
        &hub.authorize_service(Some(&wrong_key), AccessRight::RegistryRead),
        |principal| principal.policy_name.clone(),
    ));
    lines.push(outcome(
        &hub.authorize_service(None, AccessRight::RegistryRead),
        |principal| principal.policy_name.clone(),
    ));
    lines.push(outcome(
        &hub.authorize_service(Some("Bearer x"), AccessRight::RegistryRead),
        |principal| principal.policy_name.clone(),
    ));
    fixture.restart().await;
    lines.push(format!(
        "keys survive a restart: {}",
        fixture.hub.policies() == policies
    ));
    check(
        lines,
        expect![[r#"
            ["device: DeviceConnect", "iothubowner: RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect", "registryRead: RegistryRead", "registryReadWrite: RegistryRead, RegistryWrite", "service: ServiceConnect"]
            device: RegistryRead=no RegistryWrite=no ServiceConnect=no
            iothubowner: RegistryRead=yes RegistryWrite=yes ServiceConnect=yes
            registryRead: RegistryRead=yes RegistryWrite=no ServiceConnect=no
            registryReadWrite: RegistryRead=yes RegistryWrite=yes ServiceConnect=no
            service: RegistryRead=no RegistryWrite=no ServiceConnect=yes
            ok iothubowner
            error IotHubUnauthorizedAccess 401: the token was refused: SAS token expired at 1799999999, now is 1800000000
            error IotHubUnauthorizedAccess 401: the token is for host other.example.net, this hub is hub.example.net
            error IotHubUnauthorizedAccess 401: the token was refused: SAS token signature does not match the key
            error IotHubUnauthorizedAccess 401: the request has no Authorization header
            error IotHubUnauthorizedAccess 401: the Authorization header is not a SAS token: SAS token must start with `SharedAccessSignature ` (exact case, one space)
            keys survive a restart: true"#]],
    );
}

#[tokio::test]
async fn devices_authenticate_with_keys_policies_and_thumbprints() {
    let fixture = Fixture::new().await;
    let hub = &fixture.hub;
    let dev1 = device_identity("dev1");
    let view = hub
        .put_identity(&dev1, IdentitySpec::default(), None)
        .await
        .expect("create");
    let hub_core::Authentication::Sas {
        primary_key,
        secondary_key,
    } = view.record.authentication.clone()
    else {
        panic!("sas device")
    };
    let module = module_identity("dev1", "m1");
    let module_view = hub
        .put_identity(&module, IdentitySpec::default(), None)
        .await
        .expect("module");
    let hub_core::Authentication::Sas {
        primary_key: module_key,
        ..
    } = module_view.record.authentication.clone()
    else {
        panic!("sas module")
    };
    let thumbprint = "AB".repeat(32);
    let x509 = device_identity("x509");
    let spec = IdentitySpec {
        authentication: Some(AuthenticationSpec::SelfSigned {
            primary_thumbprint: Some(thumbprint.to_ascii_lowercase()),
            secondary_thumbprint: None,
        }),
        ..IdentitySpec::default()
    };
    hub.put_identity(&x509, spec, None)
        .await
        .expect("x509 device");
    let device_policy = hub.policy("device").expect("device policy");
    let service_policy = hub.policy("service").expect("service policy");

    let cases: Vec<(&str, Identity, String)> = vec![
        (
            "device key",
            dev1.clone(),
            device_token(&dev1, &primary_key, expiry_in(3600)),
        ),
        (
            "secondary key",
            dev1.clone(),
            device_token(&dev1, &secondary_key, expiry_in(3600)),
        ),
        (
            "expired",
            dev1.clone(),
            device_token(&dev1, &primary_key, expiry_in(-10)),
        ),
        (
            "wrong key",
            dev1.clone(),
            device_token(&dev1, &module_key, expiry_in(3600)),
        ),
        (
            "other device's token",
            device_identity("dev2"),
            device_token(&dev1, &primary_key, expiry_in(3600)),
        ),
        (
            "module key",
            module.clone(),
            device_token(&module, &module_key, expiry_in(3600)),
        ),
        (
            "module with device token",
            module.clone(),
            device_token(&dev1, &primary_key, expiry_in(3600)),
        ),
        (
            "device policy",
            dev1.clone(),
            policy_device_token(&dev1, "device", &device_policy.primary_key, expiry_in(60)),
        ),
        (
            "service policy",
            dev1.clone(),
            policy_device_token(&dev1, "service", &service_policy.primary_key, expiry_in(60)),
        ),
        (
            "unknown",
            device_identity("ghost"),
            device_token(&device_identity("ghost"), &primary_key, expiry_in(60)),
        ),
        (
            "garbage",
            dev1.clone(),
            "SharedAccessSignature nonsense".to_owned(),
        ),
    ];
    let mut lines = Vec::new();
    for (name, identity, token) in cases {
        let result = hub
            .authenticate_device(&identity, DeviceCredential::SasToken(&token))
            .await;
        lines.push(match result {
            Ok(device) => format!("{name}: ok {} {:?}", device.identity, device.method),
            Err(error) => format!("{name}: {error}"),
        });
    }
    for (name, sha256) in [
        ("thumbprint", thumbprint.as_str()),
        ("other thumbprint", "CD"),
    ] {
        let credential = DeviceCredential::X509Thumbprints { sha1: "00", sha256 };
        lines.push(match hub.authenticate_device(&x509, credential).await {
            Ok(device) => format!("{name}: ok {:?}", device.method),
            Err(error) => format!("{name}: {error}"),
        });
    }
    let disable = IdentitySpec {
        status: Some(IdentityStatus::Disabled),
        ..IdentitySpec::default()
    };
    hub.put_identity(&dev1, disable, Some("*"))
        .await
        .expect("disable");
    for (name, identity, token) in [
        (
            "disabled device",
            dev1.clone(),
            device_token(&dev1, &primary_key, expiry_in(3600)),
        ),
        (
            "module of disabled device",
            module.clone(),
            device_token(&module, &module_key, expiry_in(3600)),
        ),
    ] {
        let result = hub
            .authenticate_device(&identity, DeviceCredential::SasToken(&token))
            .await;
        lines.push(format!(
            "{name}: {}",
            result.map_or_else(|error| error.to_string(), |_| "ok".to_owned())
        ));
    }
    check(
        lines,
        expect![[r#"
            device key: ok dev1 DeviceSas
            secondary key: ok dev1 DeviceSas
            expired: not authorized: SAS token expired at 1799999990, now is 1800000000
            wrong key: not authorized: SAS token signature does not match the key
            other device's token: not authorized: dev2 is not registered
            module key: ok dev1/m1 ModuleSas
            module with device token: not authorized: a module must present a module-scoped token
            device policy: ok dev1 HubPolicySas
            service policy: not authorized: policy service lacks the DeviceConnect right
            unknown: not authorized: ghost is not registered
            garbage: not authorized: malformed SAS token: SAS token piece `nonsense` has no `=`, expected `name=value`
            thumbprint: ok X509SelfSigned
            other thumbprint: not authorized: the client certificate's thumbprint is not registered for x509
            disabled device: not authorized: device dev1 is disabled
            module of disabled device: not authorized: device dev1 is disabled"#]],
    );
}

/// The primary key of a symmetric-key identity.
async fn primary_key(hub: &hub_core::Hub, identity: &Identity) -> String {
    let view = hub.get_identity(identity).await.expect("identity");
    let hub_core::Authentication::Sas { primary_key, .. } = view.record.authentication else {
        panic!("{identity} has no symmetric keys")
    };
    primary_key
}

/// Creates an IoT Edge device and one child device in its scope; returns the edge's `$edgeHub`.
async fn edge_with_child(hub: &hub_core::Hub, edge: &str, child: &str) -> Identity {
    let spec = IdentitySpec {
        iot_edge: Some(true),
        ..IdentitySpec::default()
    };
    let view = hub
        .put_identity(&device_identity(edge), spec, None)
        .await
        .expect("edge device");
    let child_spec = IdentitySpec {
        parent_scopes: Some(vec![view.record.device_scope.expect("edge scope")]),
        ..IdentitySpec::default()
    };
    hub.put_identity(&device_identity(child), child_spec, None)
        .await
        .expect("child device");
    module_identity(edge, "$edgeHub")
}

#[tokio::test]
async fn edge_hubs_authenticate_on_behalf_of_their_scope() {
    let fixture = Fixture::new().await;
    let hub = &fixture.hub;
    let edge_hub = edge_with_child(hub, "edge1", "leaf1").await;
    let other_edge_hub = edge_with_child(hub, "edge2", "leaf2").await;
    let disabled_edge_hub = edge_with_child(hub, "edge3", "leaf3").await;
    let demoted_edge_hub = edge_with_child(hub, "edge4", "leaf4").await;
    for identity in [
        module_identity("edge1", "m1"),
        module_identity("leaf1", "m1"),
        device_identity("outsider"),
    ] {
        hub.put_identity(&identity, IdentitySpec::default(), None)
            .await
            .expect("identity");
    }
    let disable = IdentitySpec {
        status: Some(IdentityStatus::Disabled),
        ..IdentitySpec::default()
    };
    hub.put_identity(&device_identity("edge3"), disable, Some("*"))
        .await
        .expect("disable edge3");
    let demote = IdentitySpec {
        iot_edge: Some(false),
        ..IdentitySpec::default()
    };
    hub.put_identity(&device_identity("edge4"), demote, Some("*"))
        .await
        .expect("edge4 without capabilities.iotEdge");
    let key = primary_key(hub, &edge_hub).await;
    let other_key = primary_key(hub, &other_edge_hub).await;
    let disabled_key = primary_key(hub, &disabled_edge_hub).await;
    let demoted_key = primary_key(hub, &demoted_edge_hub).await;
    let leaf_key = primary_key(hub, &device_identity("leaf1")).await;
    let cases = [
        (
            "child device",
            device_identity("leaf1"),
            device_token(&edge_hub, &key, expiry_in(3600)),
        ),
        (
            "module of the edge",
            module_identity("edge1", "m1"),
            device_token(&edge_hub, &key, expiry_in(3600)),
        ),
        (
            "module of a child",
            module_identity("leaf1", "m1"),
            device_token(&edge_hub, &key, expiry_in(3600)),
        ),
        (
            "the edge device",
            device_identity("edge1"),
            device_token(&edge_hub, &key, expiry_in(3600)),
        ),
        (
            "$edgeAgent of the edge",
            module_identity("edge1", "$edgeAgent"),
            device_token(&edge_hub, &key, expiry_in(3600)),
        ),
        (
            "$edgeHub as itself",
            edge_hub.clone(),
            device_token(&edge_hub, &key, expiry_in(3600)),
        ),
        (
            "device outside the scope",
            device_identity("outsider"),
            device_token(&edge_hub, &key, expiry_in(3600)),
        ),
        (
            "child of another edge",
            device_identity("leaf2"),
            device_token(&edge_hub, &key, expiry_in(3600)),
        ),
        (
            "other edge device",
            device_identity("edge2"),
            device_token(&edge_hub, &key, expiry_in(3600)),
        ),
        (
            "other edge's own child",
            device_identity("leaf2"),
            device_token(&other_edge_hub, &other_key, expiry_in(3600)),
        ),
        (
            "signed with the child's key",
            device_identity("leaf1"),
            device_token(&edge_hub, &leaf_key, expiry_in(3600)),
        ),
        (
            "outsider, signed with the child's key",
            device_identity("outsider"),
            device_token(&edge_hub, &leaf_key, expiry_in(3600)),
        ),
        (
            "signed with the other edge's key",
            device_identity("leaf1"),
            device_token(&edge_hub, &other_key, expiry_in(3600)),
        ),
        (
            "expired",
            device_identity("leaf1"),
            device_token(&edge_hub, &key, expiry_in(-10)),
        ),
        (
            "edge device disabled",
            device_identity("leaf3"),
            device_token(&disabled_edge_hub, &disabled_key, expiry_in(3600)),
        ),
        (
            "edge device without iotEdge",
            device_identity("leaf4"),
            device_token(&demoted_edge_hub, &demoted_key, expiry_in(3600)),
        ),
        (
            "unregistered edge",
            device_identity("leaf1"),
            device_token(&module_identity("ghost", "$edgeHub"), &key, expiry_in(3600)),
        ),
    ];
    let mut lines = Vec::new();
    for (name, identity, token) in cases {
        let result = hub
            .authenticate_device(&identity, DeviceCredential::SasToken(&token))
            .await;
        lines.push(match result {
            Ok(device) => format!(
                "{name}: ok {} {:?} expires {:?}",
                device.identity, device.method, device.token_expiry_unix_secs
            ),
            Err(error) => format!("{name}: {error}"),
        });
    }
    check(
        lines,
        expect![[r#"
        child device: ok leaf1 DeviceSas expires Some(1800003600)
        module of the edge: ok edge1/m1 ModuleSas expires Some(1800003600)
        module of a child: ok leaf1/m1 ModuleSas expires Some(1800003600)
        the edge device: ok edge1 DeviceSas expires Some(1800003600)
        $edgeAgent of the edge: ok edge1/$edgeAgent ModuleSas expires Some(1800003600)
        $edgeHub as itself: ok edge1/$edgeHub ModuleSas expires Some(1800003600)
        device outside the scope: not authorized: outsider is not in the scope of edge device edge1
        child of another edge: not authorized: leaf2 is not in the scope of edge device edge1
        other edge device: not authorized: edge2 is not in the scope of edge device edge1
        other edge's own child: ok leaf2 DeviceSas expires Some(1800003600)
        signed with the child's key: not authorized: SAS token signature does not match the key
        outsider, signed with the child's key: not authorized: SAS token signature does not match the key
        signed with the other edge's key: not authorized: SAS token signature does not match the key
        expired: not authorized: SAS token expired at 1799999990, now is 1800000000
        edge device disabled: not authorized: edge3 is not an enabled IoT Edge device
        edge device without iotEdge: not authorized: edge4 is not an enabled IoT Edge device
        unregistered edge: not authorized: edge device ghost is not registered"#]],
    );
}

fn c2d_message(text: &str) -> Message {
    Message::new(Bytes::from(text.to_owned())).with_application_property("k", Some("v"))
}

#[tokio::test]
async fn c2d_queue_limits_ttl_delivery_count_and_restart() {
    let mut fixture = Fixture::new().await;
    let dev1 = device_identity("dev1");
    fixture
        .hub
        .put_identity(&dev1, IdentitySpec::default(), None)
        .await
        .expect("create");
    let device_id = dev1.device.clone();
    let mut lines = Vec::new();
    let ghost = fixture
        .hub
        .send_c2d(&device("ghost"), c2d_message("x"), None)
        .await;
    lines.push(outcome(&ghost, |accepted| accepted.message_id.clone()));
    let huge = fixture
        .hub
        .send_c2d(&device_id, Message::new(vec![0u8; 64 * 1024 + 1]), None)
        .await;
    lines.push(outcome(&huge, |accepted| accepted.message_id.clone()));
    for index in 0..50 {
        let mut message = c2d_message(&format!("m{index}"));
        message.system.message_id = Some(format!("id-{index}"));
        let ttl = if index < 5 {
            Some(Duration::from_secs(60))
        } else {
            None
        };
        fixture
            .hub
            .send_c2d(&device_id, message, ttl)
            .await
            .expect("queued");
    }
    let full = fixture
        .hub
        .send_c2d(&device_id, c2d_message("overflow"), None)
        .await;
    lines.push(outcome(&full, |accepted| accepted.message_id.clone()));
    // Five messages expire after a minute; their slots free up.
    fixture.clock.advance(chrono::Duration::seconds(61));
    let after_expiry = fixture
        .hub
        .send_c2d(&device_id, c2d_message("late"), None)
        .await;
    lines.push(outcome(&after_expiry, |accepted| {
        format!("sequence {}", accepted.sequence)
    }));
    lines.push(format!(
        "queued: {}",
        fixture
            .hub
            .get_identity(&dev1)
            .await
            .expect("view")
            .cloud_to_device_message_count
    ));

    fixture.restart().await;
    fixture.connections.set_c2d_online(&device_id, true);
    fixture.hub.device_connected(&dev1).await;
    let delivered = fixture.connections.take_c2d();
    lines.push(format!(
        "delivered after restart: {} first={:?} to={:?} props={:?} count={}",
        delivered.len(),
        delivered[0].message.system.message_id,
        delivered[0].message.system.to,
        delivered[0].message.application,
        delivered[0].delivery_count
    ));
    lines.push(format!(
        "queued after expiry sweep: {}",
        fixture
            .hub
            .queued_c2d(&device_id)
            .await
            .expect("list")
            .len()
    ));
    // Completing two removes them; the rest stay until acknowledged.
    for delivery in &delivered[..2] {
        assert!(
            fixture
                .hub
                .complete_c2d(&device_id, delivery.sequence)
                .await
                .expect("complete")
        );
    }
    lines.push(format!(
        "queued after two completions: {}",
        fixture
            .hub
            .queued_c2d(&device_id)
            .await
            .expect("list")
            .len()
    ));
    // Nine more reconnects deliver the rest nine more times; the tenth is the last allowed.
    for _ in 0..9 {
        fixture.hub.device_disconnected(&dev1).await;
        fixture.hub.device_connected(&dev1).await;
    }
    let deliveries = fixture.connections.take_c2d();
    lines.push(format!(
        "redeliveries: {} max count {}",
        deliveries.len(),
        deliveries
            .iter()
            .map(|delivery| delivery.delivery_count)
            .max()
            .unwrap_or(0)
    ));
    fixture.hub.device_disconnected(&dev1).await;
    fixture.hub.device_connected(&dev1).await;
    lines.push(format!(
        "after the maximum delivery count: delivered {} queued {}",
        fixture.connections.take_c2d().len(),
        fixture
            .hub
            .queued_c2d(&device_id)
            .await
            .expect("list")
            .len()
    ));
    let purged = fixture.hub.purge_c2d(&device_id).await;
    lines.push(outcome(&purged, |purged| {
        format!("purged {}", purged.total_messages_purged)
    }));
    check(
        lines,
        expect![[r#"
            error DeviceNotFound 404: device ghost does not exist
            error MessageTooLarge 413: cloud-to-device message body is 65537 bytes, the limit is 65536
            error DeviceMaximumQueueDepthExceeded 403: the cloud-to-device queue of device dev1 already holds 50 messages
            ok sequence 51
            queued: 51
            delivered after restart: 46 first=Some("id-5") to=Some("/devices/dev1/messages/deviceBound") props=[("k", Some("v"))] count=1
            queued after expiry sweep: 46
            queued after two completions: 44
            redeliveries: 396 max count 10
            after the maximum delivery count: delivered 0 queued 0
            ok purged 0"#]],
    );
}

#[tokio::test]
async fn c2d_delivery_stops_when_the_connection_refuses_more() {
    let fixture = Fixture::new().await;
    let dev1 = device_identity("dev1");
    fixture
        .hub
        .put_identity(&dev1, IdentitySpec::default(), None)
        .await
        .expect("create");
    fixture.connections.set_c2d_online(&dev1.device, true);
    *fixture.connections.c2d_capacity.lock().unwrap() = Some(2);
    for index in 0..4 {
        fixture
            .hub
            .send_c2d(&dev1.device, c2d_message(&format!("m{index}")), None)
            .await
            .expect("queued");
    }
    let first = fixture.connections.take_c2d();
    assert_eq!(first.len(), 2);
    *fixture.connections.c2d_capacity.lock().unwrap() = None;
    fixture.hub.device_subscribed(&dev1).await;
    let rest: Vec<String> = fixture
        .connections
        .take_c2d()
        .iter()
        .map(|delivery| String::from_utf8_lossy(&delivery.message.body).into_owned())
        .collect();
    assert_eq!(rest, ["m2", "m3"]);
}

#[tokio::test(start_paused = true)]
async fn direct_methods_round_trip_time_out_and_report_offline() {
    let fixture = Fixture::in_memory().await;
    let hub = fixture.hub.clone();
    let dev1 = device_identity("dev1");
    hub.put_identity(&dev1, IdentitySpec::default(), None)
        .await
        .expect("create");
    let invocation = |timeout: Option<u64>, connect: Option<u64>| MethodInvocation {
        method_name: "reboot".to_owned(),
        payload: json!({"delay": 3}),
        response_timeout_secs: timeout,
        connect_timeout_secs: connect,
    };
    let render = |result: &hub_core::MethodResult| {
        format!("status {} payload {}", result.status, result.payload)
    };
    let mut lines = Vec::new();
    lines.push(outcome(
        &hub.invoke_method(&device_identity("ghost"), invocation(None, None))
            .await,
        render,
    ));
    lines.push(outcome(
        &hub.invoke_method(&dev1, invocation(None, None)).await,
        render,
    ));
    lines.push(outcome(
        &hub.invoke_method(&dev1, invocation(Some(1), None)).await,
        render,
    ));
    lines.push(outcome(
        &hub.invoke_method(&dev1, invocation(None, Some(301))).await,
        render,
    ));

    // The device answers.
    let mut requests = fixture.connections.method_channel();
    fixture.connections.set_methods_online(&dev1, true);
    let responder_hub = hub.clone();
    let responder = tokio::spawn(async move {
        let (identity, request) = requests.recv().await.expect("a request");
        assert!(!responder_hub.complete_method(
            &device_identity("intruder"),
            &request.request_id,
            200,
            b"{}"
        ));
        assert!(responder_hub.complete_method(
            &identity,
            &request.request_id,
            201,
            br#"{"ok":true}"#
        ));
        let (identity, request) = requests.recv().await.expect("a second request");
        assert!(responder_hub.complete_method(&identity, &request.request_id, 500, b""));
        // The third request is never answered.
        requests.recv().await.expect("a third request")
    });
    lines.push(outcome(
        &hub.invoke_method(&dev1, invocation(None, None)).await,
        render,
    ));
    lines.push(outcome(
        &hub.invoke_method(&dev1, invocation(None, None)).await,
        render,
    ));
    let started = tokio::time::Instant::now();
    lines.push(outcome(
        &hub.invoke_method(&dev1, invocation(Some(7), None)).await,
        render,
    ));
    lines.push(format!(
        "waited {} s, pending {}",
        started.elapsed().as_secs(),
        hub.pending_method_calls()
    ));
    let (_, late) = responder.await.expect("responder");
    lines.push(format!(
        "late answer accepted: {}",
        hub.complete_method(&dev1, &late.request_id, 200, b"{}")
    ));

    // Waiting for the device to come online within the connect timeout.
    fixture.connections.set_methods_online(&dev1, false);
    let mut requests = fixture.connections.method_channel();
    let waiting_hub = hub.clone();
    let waiting = tokio::spawn(async move {
        waiting_hub
            .invoke_method(
                &device_identity("dev1"),
                MethodInvocation {
                    method_name: "ping".to_owned(),
                    payload: serde_json::Value::Null,
                    response_timeout_secs: None,
                    connect_timeout_secs: Some(20),
                },
            )
            .await
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    fixture.connections.set_methods_online(&dev1, true);
    hub.device_subscribed(&dev1).await;
    let (identity, request) = requests.recv().await.expect("request after connect");
    hub.complete_method(&identity, &request.request_id, 200, b"\"pong\"");
    lines.push(outcome(&waiting.await.expect("task"), render));
    fixture.connections.set_methods_online(&dev1, false);
    let started = tokio::time::Instant::now();
    lines.push(outcome(
        &hub.invoke_method(&dev1, invocation(None, Some(3))).await,
        render,
    ));
    lines.push(format!(
        "waited {} s for the connection",
        started.elapsed().as_secs()
    ));
    lines.extend(fixture.connections.take_events());
    check(
        lines,
        expect![[r#"
            error DeviceNotFound 404: device ghost does not exist
            error DeviceNotOnline 404: dev1 is not online
            error ArgumentInvalid 400: responseTimeoutInSeconds must be between 5 and 300, got 1
            error ArgumentInvalid 400: connectTimeoutInSeconds must be between 0 and 300, got 301
            ok status 201 payload {"ok":true}
            ok status 500 payload null
            error GatewayTimeout 504: dev1 did not answer method reboot within 7 s
            waited 7 s, pending 0
            late answer accepted: false
            ok status 200 payload "pong"
            error DeviceNotOnline 404: dev1 is not online
            waited 3 s for the connection
            method dev1 reboot {"delay":3}
            method dev1 reboot {"delay":3}
            method dev1 reboot {"delay":3}
            method dev1 ping null"#]],
    );
}

#[tokio::test]
async fn telemetry_is_durable_and_consumer_groups_resume() {
    let mut fixture = Fixture::new().await;
    let dev1 = device_identity("dev1");
    let module = module_identity("dev1", "m1");
    let view = fixture
        .hub
        .put_identity(&dev1, IdentitySpec::default(), None)
        .await
        .expect("create");
    fixture
        .hub
        .put_identity(&module, IdentitySpec::default(), None)
        .await
        .expect("module");
    let hub_core::Authentication::Sas { primary_key, .. } = view.record.authentication else {
        panic!("sas")
    };
    let token = device_token(&dev1, &primary_key, expiry_in(3600));
    let sender = fixture
        .hub
        .authenticate_device(&dev1, DeviceCredential::SasToken(&token))
        .await
        .expect("auth");
    let module_sender = hub_core::AuthenticatedDevice {
        identity: module.clone(),
        ..sender.clone()
    };
    let mut message = Message::new(Bytes::from_static(b"{\"t\":1}"))
        .with_application_property("alert", Some("high"));
    message.system.content_type = Some("application/json".to_owned());
    let offset = fixture
        .hub
        .ingest_telemetry(&sender, message)
        .await
        .expect("ingest");
    let second = fixture
        .hub
        .ingest_telemetry(&module_sender, Message::new(vec![0xffu8, 0x00]))
        .await
        .expect("ingest");
    let too_big = fixture
        .hub
        .ingest_telemetry(&sender, Message::new(vec![0u8; 256 * 1024 + 1]))
        .await;
    let mut lines = vec![
        format!("offsets {offset:?} {second:?}"),
        outcome(&too_big, |offset| format!("{offset:?}")),
    ];

    let mut consumer = fixture
        .hub
        .telemetry_consumer("cg1", ConsumerStart::Start)
        .expect("consumer");
    let events = consumer.next_batch(10).await.expect("events");
    for event in &events {
        lines.push(format!(
            "{} {} body={:?} system={} app={:?} enqueued={}",
            event.offset,
            event.identity,
            event.message.body,
            serde_json::to_string(&event.message.system).expect("json"),
            event.message.application,
            event.enqueued_time.to_rfc3339()
        ));
    }
    fixture
        .hub
        .commit_consumer_offset("cg1", events[0].offset + 1)
        .await
        .expect("commit");
    let at_end = fixture
        .hub
        .telemetry_consumer("cg2", ConsumerStart::End)
        .expect("consumer");
    lines.push(format!("end consumer starts at {}", at_end.next_offset()));

    fixture.restart().await;
    let mut resumed = fixture
        .hub
        .telemetry_consumer("cg1", ConsumerStart::Committed)
        .expect("consumer");
    let events = resumed.try_next_batch(10).await.expect("events");
    lines.push(format!(
        "resumed after restart: {:?}",
        events.iter().map(|event| event.offset).collect::<Vec<_>>()
    ));
    let mut fresh = fixture
        .hub
        .telemetry_consumer("never-committed", ConsumerStart::Committed)
        .expect("consumer");
    lines.push(format!(
        "fresh group reads {} events",
        fresh.try_next_batch(10).await.expect("events").len()
    ));
    let mut explicit = fixture
        .hub
        .telemetry_consumer("cg3", ConsumerStart::Offset(1))
        .expect("consumer");
    lines.push(format!(
        "explicit offset: {:?}",
        explicit
            .try_next_batch(10)
            .await
            .expect("events")
            .iter()
            .map(|event| event.offset)
            .collect::<Vec<_>>()
    ));
    lines.push(outcome(
        &fixture
            .hub
            .telemetry_consumer("", ConsumerStart::Start)
            .map(|_| ()),
        |_| "opened".to_owned(),
    ));
    check(
        lines,
        expect![[r#"
            offsets Some(0) Some(1)
            error MessageTooLarge 413: device-to-cloud message is 262145 bytes, the limit is 262144
            0 dev1 body=b"{\"t\":1}" system={"contentType":"application/json","connectionDeviceId":"dev1","connectionAuthGenerationId":"1800000000000000","connectionAuthMethod":"{\"scope\":\"device\",\"type\":\"sas\",\"issuer\":\"iothub\"}","enqueuedTime":"2027-01-15T08:00:00.000Z"} app=[("alert", Some("high"))] enqueued=2027-01-15T08:00:00+00:00
            1 dev1/m1 body=b"\xff\0" system={"connectionDeviceId":"dev1","connectionModuleId":"m1","connectionAuthGenerationId":"1800000000000000","connectionAuthMethod":"{\"scope\":\"device\",\"type\":\"sas\",\"issuer\":\"iothub\"}","enqueuedTime":"2027-01-15T08:00:00.000Z"} app=[] enqueued=2027-01-15T08:00:00+00:00
            end consumer starts at 2
            resumed after restart: [1]
            fresh group reads 2 events
            explicit offset: [1]
            error ArgumentInvalid 400: invalid consumer group: invalid checkpoint name "": must not be empty"#]],
    );
    let _ = HubError::Throttled(String::new());
}
