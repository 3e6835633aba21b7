//! Message routing through the hub: telemetry, `$twin` conditions, twin change and lifecycle
//! notifications, routing configuration stored across restarts.

mod support;

use bytes::Bytes;
use expect_test::{Expect, expect};
use hub_core::{
    AuthMethod, AuthenticatedDevice, ConsumerStart, IdentitySpec, ROUTING_DIRECTORY,
    ROUTING_FILES_DIRECTORY, TwinWriteMode,
};
use hub_routing::{RoutingDocument, RoutingSource};
use iothub_types::{Identity, Message};
use serde_json::{Value, json};
use support::*;
use twin::ServiceTwinUpdate;

fn sender(identity: &Identity) -> AuthenticatedDevice {
    AuthenticatedDevice {
        identity: identity.clone(),
        method: AuthMethod::DeviceSas,
        generation_id: "1".to_owned(),
        token_expiry_unix_secs: None,
    }
}

fn telemetry(index: u32, alert: &str) -> Message {
    let mut message = Message::new(Bytes::from(
        json!({"i": index, "temp": 20 + index}).to_string(),
    ))
    .with_application_property("alert", Some(alert));
    message.system.content_type = Some("application/json".to_owned());
    message.system.content_encoding = Some("utf-8".to_owned());
    message
}

fn document(json: Value) -> RoutingDocument {
    serde_json::from_value(json).expect("routing document")
}

/// Every record of one file endpoint, one line each: the source, the sender, `opType` when the
/// message is a notification, and the body.
fn file_records(fixture: &Fixture, name: &str) -> Vec<String> {
    let path = fixture
        .directory
        .path()
        .join(ROUTING_DIRECTORY)
        .join(ROUTING_FILES_DIRECTORY)
        .join(name);
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).expect("json record");
            let system = &record["SystemProperties"];
            let sender = match system["connectionModuleId"].as_str() {
                Some(module) => format!("{}/{module}", system["connectionDeviceId"]),
                None => system["connectionDeviceId"].to_string(),
            };
            format!(
                "{} {sender} {} {}",
                system["messageSource"].as_str().unwrap_or("telemetry"),
                record["Properties"]["opType"].as_str().unwrap_or("-"),
                record["Body"]
            )
        })
        .collect()
}

/// The bodies of every event in the telemetry log, from the start.
async fn events(fixture: &Fixture) -> Vec<String> {
    let mut consumer = fixture
        .hub
        .telemetry_consumer("check", ConsumerStart::Start)
        .expect("consumer");
    consumer
        .try_next_batch(1000)
        .await
        .expect("events")
        .iter()
        .map(|event| {
            format!(
                "{} {}",
                event.identity,
                String::from_utf8_lossy(&event.message.body)
            )
        })
        .collect()
}

fn check(lines: Vec<String>, expected: Expect) {
    expected.assert_eq(&(lines.join("\n") + "\n"));
}

#[tokio::test]
async fn telemetry_follows_routes_with_twin_and_body_conditions_across_restarts() {
    let mut fixture = Fixture::new().await;
    let hub = fixture.hub.clone();
    let prod = device_identity("prod-1");
    let test = device_identity("test-1");
    for identity in [&prod, &test] {
        hub.put_identity(identity, IdentitySpec::default(), None)
            .await
            .expect("create");
    }
    hub.update_twin(
        &prod,
        ServiceTwinUpdate::from_json(json!({"tags": {"env": "prod"}})).expect("update"),
        TwinWriteMode::Patch,
        None,
    )
    .await
    .expect("tags");

    let applied = hub
        .router()
        .apply(&document(json!({
            "endpoints": {"files": [{"name": "production", "path": "production.jsonl"},
                                    {"name": "hot", "path": "hot.jsonl"}]},
            "routes": [
                {"name": "prod", "source": "DeviceMessages", "condition": "$twin.tags.env = 'prod'",
                 "endpointNames": ["production"]},
                {"name": "hot", "source": "DeviceMessages",
                 "condition": "$body.temp > 21 AND alert = 'high'", "endpointNames": ["hot", "events"]}
            ]
        })))
        .await;
    assert!(applied.is_ok(), "{applied:?}");

    let mut offsets = Vec::new();
    for (identity, index, alert) in [
        (&prod, 1, "high"),
        (&prod, 2, "high"),
        (&test, 3, "high"),
        (&test, 4, "low"),
    ] {
        offsets.push(
            hub.ingest_telemetry(&sender(identity), telemetry(index, alert))
                .await
                .expect("ingest"),
        );
    }
    // Message 1 goes only to the `production` file, so it has no events offset; message 4
    // matches no route and falls back to `events`.
    assert_eq!(offsets, [None, Some(0), Some(1), Some(2)]);

    // Closing drains the file endpoints; the configuration is still in force after a restart.
    fixture.restart().await;
    let restarted = fixture.hub.clone();
    assert!(restarted.router().needs_twin(RoutingSource::DeviceMessages));
    restarted
        .ingest_telemetry(&sender(&prod), telemetry(5, "low"))
        .await
        .expect("ingest");
    fixture.restart().await;

    let mut lines = vec!["production:".to_owned()];
    lines.extend(file_records(&fixture, "production.jsonl"));
    lines.push("hot:".to_owned());
    lines.extend(file_records(&fixture, "hot.jsonl"));
    lines.push("events:".to_owned());
    lines.extend(events(&fixture).await);
    check(
        lines,
        expect![[r#"
            production:
            telemetry "prod-1" - {"i":1,"temp":21}
            telemetry "prod-1" - {"i":2,"temp":22}
            telemetry "prod-1" - {"i":5,"temp":25}
            hot:
            telemetry "prod-1" - {"i":2,"temp":22}
            telemetry "test-1" - {"i":3,"temp":23}
            events:
            prod-1 {"i":2,"temp":22}
            test-1 {"i":3,"temp":23}
            test-1 {"i":4,"temp":24}
        "#]],
    );
}

#[tokio::test]
async fn twin_changes_and_lifecycle_events_are_routed_as_iot_hub_emits_them() {
    let mut fixture = Fixture::new().await;
    let hub = fixture.hub.clone();
    // Nothing is routed for notifications by default, so this device's creation goes nowhere.
    hub.put_identity(&device_identity("before"), IdentitySpec::default(), None)
        .await
        .expect("create");
    hub.router()
        .apply(&document(json!({
            "endpoints": {"files": [{"name": "changes", "path": "changes.jsonl"},
                                    {"name": "lifecycle", "path": "lifecycle.jsonl"}]},
            "routes": [
                {"name": "twins", "source": "TwinChangeEvents", "endpointNames": ["changes"]},
                {"name": "prod-twins", "source": "TwinChangeEvents",
                 "condition": "$twin.tags.env = 'prod' AND opType = 'updateTwin'", "endpointNames": ["events"]},
                {"name": "life", "source": "DeviceLifecycleEvents", "endpointNames": ["lifecycle"]}
            ]
        })))
        .await
        .expect("apply");

    let dev = device_identity("dev1");
    let module = module_identity("dev1", "m1");
    hub.put_identity(&dev, IdentitySpec::default(), None)
        .await
        .expect("create device");
    hub.put_identity(&module, IdentitySpec::default(), None)
        .await
        .expect("create module");
    hub.update_twin(
        &dev,
        ServiceTwinUpdate::from_json(
            json!({"tags": {"env": "prod"}, "properties": {"desired": {"fan": "on"}}}),
        )
        .expect("update"),
        TwinWriteMode::Patch,
        None,
    )
    .await
    .expect("patch");
    hub.patch_reported(&dev, br#"{"fw": "1.0"}"#, None)
        .await
        .expect("reported");
    hub.patch_reported(&module, br#"{"state": "ready"}"#, None)
        .await
        .expect("module reported");
    hub.update_twin(
        &dev,
        ServiceTwinUpdate::from_json(json!({"tags": {"env": "test"}})).expect("replace"),
        TwinWriteMode::Replace,
        None,
    )
    .await
    .expect("replace");
    hub.delete_identity(&dev, None).await.expect("delete");
    fixture.restart().await;

    let mut lines = vec!["changes:".to_owned()];
    lines.extend(file_records(&fixture, "changes.jsonl"));
    lines.push("lifecycle:".to_owned());
    lines.extend(file_records(&fixture, "lifecycle.jsonl"));
    lines.push("events:".to_owned());
    lines.extend(events(&fixture).await);
    check(
        lines,
        expect![[r#"
        changes:
        twinChangeEvents "dev1" updateTwin {"properties":{"desired":{"$metadata":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z","$lastUpdatedVersion":2,"fan":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z","$lastUpdatedVersion":2}},"$version":2,"fan":"on"}},"tags":{"env":"prod"},"version":3}
        twinChangeEvents "dev1" updateTwin {"properties":{"reported":{"$metadata":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z","fw":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z"}},"$version":2,"fw":"1.0"}},"version":4}
        twinChangeEvents "dev1"/m1 updateTwin {"properties":{"reported":{"$metadata":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z","state":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z"}},"$version":2,"state":"ready"}},"version":3}
        twinChangeEvents "dev1" replaceTwin {"deviceId":"dev1","etag":"AAAAAAAAAAM=","properties":{"desired":{"$metadata":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z","$lastUpdatedVersion":2,"fan":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z","$lastUpdatedVersion":2}},"$version":2,"fan":"on"},"reported":{"$metadata":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z","fw":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z"}},"$version":2,"fw":"1.0"}},"tags":{"env":"test"},"version":5}
        lifecycle:
        deviceLifecycleEvents "dev1" createDeviceIdentity {"authenticationType":"sas","capabilities":{"iotEdge":false},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","deviceEtag":"MQ==","deviceId":"dev1","etag":"AAAAAAAAAAE=","lastActivityTime":"0001-01-01T00:00:00Z","modelId":"","parentScopes":[],"properties":{"desired":{"$metadata":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z"},"$version":1},"reported":{"$metadata":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z"},"$version":1}},"status":"enabled","statusReason":null,"statusUpdateTime":"2027-01-15T08:00:00.0000000Z","tags":{},"version":2,"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}}
        deviceLifecycleEvents "dev1"/m1 createDeviceIdentity {"authenticationType":"sas","cloudToDeviceMessageCount":0,"connectionState":"Disconnected","deviceEtag":"MQ==","deviceId":"dev1","etag":"AAAAAAAAAAE=","lastActivityTime":"0001-01-01T00:00:00Z","modelId":"","moduleId":"m1","properties":{"desired":{"$metadata":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z"},"$version":1},"reported":{"$metadata":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z"},"$version":1}},"status":"enabled","statusReason":null,"statusUpdateTime":"2027-01-15T08:00:00.0000000Z","tags":{},"version":2,"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}}
        deviceLifecycleEvents "dev1" deleteDeviceIdentity {"authenticationType":"sas","capabilities":{"iotEdge":false},"cloudToDeviceMessageCount":0,"connectionState":"Disconnected","deviceEtag":"MQ==","deviceId":"dev1","etag":"AAAAAAAAAAM=","lastActivityTime":"2027-01-15T08:00:00.0000000Z","modelId":"","parentScopes":[],"properties":{"desired":{"$metadata":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z","$lastUpdatedVersion":2,"fan":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z","$lastUpdatedVersion":2}},"$version":2,"fan":"on"},"reported":{"$metadata":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z","fw":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z"}},"$version":2,"fw":"1.0"}},"status":"enabled","statusReason":null,"statusUpdateTime":"2027-01-15T08:00:00.0000000Z","tags":{"env":"test"},"version":5,"x509Thumbprint":{"primaryThumbprint":null,"secondaryThumbprint":null}}
        events:
        dev1 {"properties":{"desired":{"$metadata":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z","$lastUpdatedVersion":2,"fan":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z","$lastUpdatedVersion":2}},"$version":2,"fan":"on"}},"tags":{"env":"prod"},"version":3}
        dev1 {"properties":{"reported":{"$metadata":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z","fw":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z"}},"$version":2,"fw":"1.0"}},"version":4}
        dev1/m1 {"properties":{"reported":{"$metadata":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z","state":{"$lastUpdated":"2027-01-15T08:00:00.0000000Z"}},"$version":2,"state":"ready"}},"version":3}
    "#]],
    );

    // The whole record of one notification, as endpoints receive it.
    let path = fixture.directory.path().join("routing/files/changes.jsonl");
    let first = std::fs::read_to_string(path).expect("changes");
    let record: Value = serde_json::from_str(first.lines().next().expect("a line")).expect("json");
    expect![[r#"
        {
          "Body": {
            "properties": {
              "desired": {
                "$metadata": {
                  "$lastUpdated": "2027-01-15T08:00:00.0000000Z",
                  "$lastUpdatedVersion": 2,
                  "fan": {
                    "$lastUpdated": "2027-01-15T08:00:00.0000000Z",
                    "$lastUpdatedVersion": 2
                  }
                },
                "$version": 2,
                "fan": "on"
              }
            },
            "tags": {
              "env": "prod"
            },
            "version": 3
          },
          "EnqueuedTimeUtc": "2027-01-15T08:00:00.000Z",
          "Properties": {
            "deviceId": "dev1",
            "hubName": "hub",
            "iothub-message-schema": "twinChangeNotification",
            "opType": "updateTwin",
            "operationTimestamp": "2027-01-15T08:00:00.000Z"
          },
          "SystemProperties": {
            "connectionDeviceId": "dev1",
            "contentEncoding": "utf-8",
            "contentType": "application/json",
            "enqueuedTime": "2027-01-15T08:00:00.000Z",
            "messageSource": "twinChangeEvents"
          }
        }
    "#]]
    .assert_eq(&(serde_json::to_string_pretty(&record).expect("json") + "\n"));
}
